//! Dense matrix products on strided slices, by matrixmultiply (single-threaded per call; callers split
//! the output into blocks for rayon).
//!
//! nalgebra's `gemm` falls back to a per-column loop for dimensions up to 5, which mishandles views whose
//! row stride is not 1; calling matrixmultiply directly avoids that path and the views altogether.

use rayon::prelude::*;

use crate::scalar::Real;

/// A read-only strided matrix: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Strided<'a, T> {
    /// A column-major (rows, cols) matrix.
    pub fn col_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Strided { data, rows, cols, rs: 1, cs: rows }
    }

    /// A row-major (rows, cols) matrix (the transpose of a column-major (cols, rows) one).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Strided { data, rows, cols, rs: cols, cs: 1 }
    }

    #[track_caller]
    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "gemm: {what} ({}x{}) reaches {last} of {}",
                self.rows,
                self.cols,
                self.data.len()
            );
        }
    }
}

/// `C = A B + β C` with `C` (m, n) column-major in `c`: `[m, k] @ [k, n] -> [m, n]`. Output columns are
/// split into fixed blocks of `cols_per_task` computed in parallel; each block is one GEMM over the whole
/// `k`, so no sum crosses blocks and the bits do not depend on the number of threads.
#[track_caller]
pub fn par_gemm<T: Real>(c: &mut [T], a: Strided<T>, b: Strided<T>, beta: T, cols_per_task: usize) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions {k} and {} differ", b.rows);
    assert_eq!(c.len(), m * n, "gemm: output has {} values, expected {m} x {n}", c.len());
    a.check("A");
    b.check("B");
    if m == 0 || n == 0 {
        return;
    }
    c.par_chunks_mut(m * cols_per_task).enumerate().for_each(|(t, block)| {
        let j0 = t * cols_per_task;
        let nj = block.len() / m;
        let b_block = &b.data[j0 * b.cs..];
        // SAFETY: A and B were bounds-checked above (the block reads columns j0..j0+nj of B, inside B);
        // `block` is an exclusive (m, nj) column-major slice.
        unsafe {
            T::gemm_raw(
                m,
                k,
                nj,
                T::one(),
                (a.data.as_ptr(), a.rs as isize, a.cs as isize),
                (b_block.as_ptr(), b.rs as isize, b.cs as isize),
                beta,
                (block.as_mut_ptr(), 1, m as isize),
            )
        }
    });
}
