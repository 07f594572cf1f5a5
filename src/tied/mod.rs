//! The tied sparse matrix: a CSR pattern whose nonzeros copy entries of a shared parameter vector.
//!
//! A matrix `W` of shape `(n_rows, n_cols)` is stored as a CSR index map (an `sprs::CsMatI<u32, u32, u32>`)
//! whose stored values are not numbers but *entry codes*. For the nonzero `k` in row `i`, column
//! `indices[k]`, with `indptr[i] <= k < indptr[i+1]`:
//!
//! ```text
//! W(i, indices[k]) = value(code[k])
//! value(c) = θ[c]                                    if c < n_params              (a tied copy)
//!          = consts[c - n_params]                    if c < n_params + n_consts   (a constant, e.g. 1/k²)
//!          = Σ_{p ∈ compound(c - n_params - n_consts)} θ[p]    otherwise            (several taps merged)
//! ```
//!
//! Compound entries arise when padding modes other than zeros send two kernel taps of one output to the
//! same input (reflect, replicate and circular padding at the border): the matrix entry is then the sum of
//! the taps. Values are never stored: they are read from `θ` at every product.
//!
//! The transposed map `Wᵀ` is kept as a second CSR carrying the same codes, so that `d_x = Wᵀ d_y` is a
//! row-parallel product with no reduction across threads. Rows that share one column list (in a
//! convolution: all output channels at one output position) are listed as *row groups*; the kernels in
//! [`products`] and [`gradients`] load each input column once per group.
//!
//! Memory: 4 bytes per nonzero for the column, 4 for the code, in each of `W` and `Wᵀ`, plus 4 bytes per
//! row for the row pointers and 4 per row for the row groups (see [`bytes`] and [`TiedMatrix::index_bytes`]).
//!
//! # Layers
//!
//! Each file imports only those above it in this list (a test, `tests/it/import_graph.rs`, holds that no file of
//! `src/` imports in a circle):
//!
//! - [`index`]: the CSR map of entry codes, its row groups, and the checker of their invariants;
//! - `segments`, `visit`: the scatter segments and the visit order (plain tables);
//! - [`separable`]: which row groups read `θ` straight, by row offsets;
//! - [`compact`]: the compact index (shared patterns, bases and offsets);
//! - `lanes`: the runs of positions and the sets of groups a small batch puts in the vector lanes;
//! - `views`, `members`: what the kernels read (row groups of either index, weight blocks, member pointers);
//! - [`grad_plan`]: the classes of the parameter gradient;
//! - `matrix`, `builder`: the [`TiedMatrix`] itself and the [`TiedBuilder`] that assembles one;
//! - `kernels`: the register-tile loops (portable, AVX2, AVX-512) and the one dispatch that asks the CPU;
//! - `lane_products`, [`products`], [`gradients`]: the schedules that run the kernels over a matrix, in parallel.

mod builder;
pub mod bytes;
pub mod compact;
pub mod grad_plan;
pub mod gradients;
pub mod index;
mod kernels;
#[cfg(target_arch = "x86_64")]
mod lane_products;
mod lanes;
mod matrix;
mod members;
pub mod products;
mod segments;
pub mod separable;
mod views;
mod visit;

pub use builder::{Source, TiedBuilder};
pub use compact::CompactMap;
pub use grad_plan::{CompactClass, GradClass, GradPlan};
pub use index::{IndexMap, RowGroups, StructureError};
pub use matrix::{Entry, Storage, TiedMatrix};
pub use members::ABSENT;
pub use segments::ScatterSegment;
pub use separable::SeparableGroups;
