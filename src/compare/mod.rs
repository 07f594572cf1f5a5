//! The research comparison behind `cnn-as-mlp compare`: one layer at a time, the tied sparse
//! formulation against direct convolution and im2col + GEMM.
//!
//! For every layer of a grid and every formulation it measures, at one batch size in f32 with seeded
//! random inputs: the median time of the forward pass, the input gradient and the parameter gradient
//! over `repeats` runs after one warm-up; the time to build the layer (for the sparse formulation: to
//! compile its matrix); the bytes of the index structure the formulation needs besides the kernel; the
//! number of nonzeros; and the largest absolute difference of each result from the direct reference.
//!
//! Before a sparse layer is compiled, [`crate::tied::bytes::estimate_index_bytes`] bounds its index bytes from the geometry
//! alone; a layer whose bound exceeds the memory limit is reported as not fitting and never compiled.

//!
//! With `--model`, the layers of one network at their shapes in it, and the whole network on each engine
//! (build time, index bytes, one training step, peak memory, gradient agreement: [`network`]).
//!
//! Rooms: [`grid`](mod@grid) (the case list and the `--layers` parser), [`measure`] (the timing harness, the agreement
//! check, the /proc readers and memory), [`network`] (`--model`), [`report`] (byte formatting, Markdown and CSV). The plots are drawn
//! by the command (`src/cli/draw/compare.rs`).

pub mod grid;
pub mod measure;
pub mod network;
pub mod report;

pub use grid::{Case, LENET, grid, select};
pub use measure::{default_memory_limit, im2col_bytes, machine, random_mask, run_case};
pub use network::{network_cases, run_network};
pub use report::{csv, header, human_bytes, markdown, parse_bytes, read_csv};

use crate::network::Engine;

/// What happened to one formulation of one layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Ran,
    /// Not attempted: the index structure needs more bytes than the limit.
    DoesNotFit(usize),
    /// The formulation does not exist for this layer kind.
    NotApplicable(&'static str),
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Status::Ran => f.write_str("ok"),
            Status::DoesNotFit(n) => write!(f, "does not fit: needs {n} bytes"),
            Status::NotApplicable(why) => write!(f, "n/a: {why}"),
        }
    }
}

/// Measurements of one formulation on one layer. Times in seconds; `None` where not measured.
///
/// A row of `compare.csv`, whose columns are the fields in this order under their `serde` names
/// ([`report::csv`], [`report::read_csv`]): numbers as Rust prints them, times and differences in exponent
/// notation, `None` as an empty field.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Row {
    pub layer: String,
    pub spec: String,
    /// Fraction of kernel entries removed by the layer's random mask (0 for layers without parameters;
    /// files written before this column read as 0).
    #[serde(serialize_with = "report::shortest", default)]
    pub sparsity: f64,
    #[serde(rename = "formulation", serialize_with = "report::engine_name", deserialize_with = "report::engine")]
    pub engine: Engine,
    #[serde(serialize_with = "report::display", deserialize_with = "report::status")]
    pub status: Status,
    #[serde(serialize_with = "report::exp")]
    pub compile_s: Option<f64>,
    #[serde(serialize_with = "report::exp")]
    pub forward_s: Option<f64>,
    #[serde(serialize_with = "report::exp")]
    pub input_grad_s: Option<f64>,
    /// `None` also for layers without parameters.
    #[serde(serialize_with = "report::exp")]
    pub param_grad_s: Option<f64>,
    /// Bytes of the index structure: the compiled matrix (sparse), the per-call column buffer (im2col),
    /// 0 (direct).
    pub index_bytes: usize,
    /// [`crate::tied::bytes::estimate_index_bytes`] (sparse rows only).
    #[serde(rename = "estimated_index_bytes")]
    pub estimated_bytes: Option<usize>,
    /// Bytes of the parameters (kernel and bias, f32).
    pub param_bytes: usize,
    pub nnz: usize,
    /// `2·nnz·batch`: the FLOPs of one product of the sparse formulation.
    #[serde(serialize_with = "report::shortest")]
    pub flops: f64,
    #[serde(rename = "max_diff_forward", serialize_with = "report::exp")]
    pub diff_forward: Option<f64>,
    #[serde(rename = "max_diff_input_grad", serialize_with = "report::exp")]
    pub diff_input_grad: Option<f64>,
    #[serde(rename = "max_diff_param_grad", serialize_with = "report::exp")]
    pub diff_param_grad: Option<f64>,
    /// One full training step of the whole network (`total` rows of `compare --model` only).
    #[serde(serialize_with = "report::exp")]
    pub step_s: Option<f64>,
    /// Peak resident memory of the whole network's run (`total` rows only, where `/proc` tells).
    #[serde(rename = "peak_rss_bytes")]
    pub peak_bytes: Option<usize>,
}

impl Row {
    /// A row of `engine` on `layer` (`spec`) at sparsity 0 that ran and measured nothing yet: every time,
    /// difference and byte count empty or zero.
    pub fn new(layer: impl Into<String>, spec: impl Into<String>, engine: Engine) -> Row {
        Row {
            layer: layer.into(),
            spec: spec.into(),
            sparsity: 0.0,
            engine,
            status: Status::Ran,
            compile_s: None,
            forward_s: None,
            input_grad_s: None,
            param_grad_s: None,
            index_bytes: 0,
            estimated_bytes: None,
            param_bytes: 0,
            nnz: 0,
            flops: 0.0,
            diff_forward: None,
            diff_input_grad: None,
            diff_param_grad: None,
            step_s: None,
            peak_bytes: None,
        }
    }
}

/// Settings of a comparison.
#[derive(Clone, Debug)]
pub struct Config {
    pub batch: usize,
    pub repeats: usize,
    /// Bytes a formulation's index structure may take.
    pub memory_limit: usize,
    pub seed: u64,
    /// Kernel sparsities to measure, each in `[0, 1)`: a random mask removes that fraction of the kernel
    /// entries of each layer with parameters ([`measure::random_mask`]).
    pub sparsity: Vec<f64>,
}
