//! Byte accounting of a tied matrix's index structure, in one place: the per-part formulas. The exact count
//! of a compiled matrix is [`TiedMatrix::index_bytes`](super::TiedMatrix::index_bytes); the bound computed
//! from a layer's geometry before compiling it is `budget::index::estimate_index_bytes` (above the matrix:
//! it knows the model spec, the matrix does not).
//!
//! Parts of the index structure (parameter values are not part of it):
//!
//! ```text
//! W, Wᵀ            csr(rows, nnz)            = 4·(rows + 1) + 8·nnz     row pointers; a u32 column and a u32 code per nonzero
//! row groups       row_groups(ptr, rows)     = 4·(ptr + rows)           group pointers and row ids
//! constants        consts(n)                 = 8·n                      f64 each
//! compound tables  compound(ptr, ids)        = 4·(ptr + ids)            pointers and parameter ids of merged taps
//! scatter          segments(n)               = size_of::<ScatterSegment>()·n
//! gradient plan    GradPlan::bytes, SeparableGroups::bytes (their own tables, counted in grad_plan.rs)
//! ```

use super::grad_plan::Member;
use super::segments::ScatterSegment;

/// One CSR index map of `rows` rows and `nnz` nonzeros: `rows + 1` u32 row pointers, a u32 column and a
/// u32 code per nonzero.
pub const fn csr(rows: usize, nnz: usize) -> usize {
    4 * (rows + 1) + 8 * nnz
}

/// Row groups: `ptr` u32 group pointers and `rows` u32 row ids.
pub const fn row_groups(ptr: usize, rows: usize) -> usize {
    4 * (ptr + rows)
}

/// `n` constants, f64 each.
pub const fn consts(n: usize) -> usize {
    8 * n
}

/// Compound tables: `ptr` u32 pointers and `ids` u32 parameter ids.
pub const fn compound(ptr: usize, ids: usize) -> usize {
    4 * (ptr + ids)
}

/// One member record of a gradient-plan class (its row and column patterns and shifts).
pub const fn member() -> usize {
    std::mem::size_of::<Member>()
}

/// `n` scatter segments.
pub const fn segments(n: usize) -> usize {
    std::mem::size_of::<ScatterSegment>() * n
}
