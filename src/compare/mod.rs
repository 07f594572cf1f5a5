//! The research comparison behind `cnn-as-mlp compare`: one layer at a time, the tied sparse
//! formulation against direct convolution and im2col + GEMM.
//!
//! For every layer of a grid and every formulation it measures, at one batch size in f32 with seeded
//! random inputs: the median time of the forward pass, the input gradient and the parameter gradient
//! over `repeats` runs after one warm-up; the time to build the layer (for the sparse formulation: to
//! compile its matrix); the bytes of the index structure the formulation needs besides the kernel; the
//! number of nonzeros; and the largest absolute difference of each result from the direct reference.
//!
//! Before a sparse layer is compiled, [`crate::budget::index::estimate_index_bytes`] bounds its index bytes from the geometry
//! alone; a layer whose bound exceeds the memory limit is reported as not fitting and never compiled.

//!
//! With `--map`, the crossover map: which engine is fastest on single convolutions over channels × spatial size ×
//! batch, and by how much ([`map`](mod@map)).
//!
//! With `--model`, the layers of one network at their shapes in it, and the whole network on each engine
//! (build time, index bytes, one training step, peak memory, gradient agreement: [`network`]).
//!
//! Rooms: [`grid`](mod@grid) (the case list and the `--layers` parser), [`measure`] (the timing harness, the agreement
//! check, the /proc readers and memory), [`network`] (`--model`), [`report`] (byte formatting, Markdown and CSV). The plots are drawn
//! by the command (`src/cli/draw/compare.rs`).

pub mod grid;
pub mod map;
pub mod measure;
pub mod network;
pub mod report;
mod row;

pub use grid::{Case, LENET, grid, select};
pub use measure::{
    activation_bytes, default_memory_limit, im2col_bytes, machine, random_mask, run_case, run_case_only,
};
pub use network::{network_cases, run_network};
pub use report::{csv, header, human_bytes, markdown, parse_bytes, read_csv};
pub use row::{Config, Row, Status};
