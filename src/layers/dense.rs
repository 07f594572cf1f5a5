//! Dense layer: the full pattern, one parameter per entry, computed by GEMM.
//!
//! Weight `(n_out, n_in)` row-major is, read column-major, the `(n_in, n_out)` matrix `Wᵀ`, so
//! `z = x Wᵀ + b` is one GEMM `[B, n_in] @ [n_in, n_out] -> [B, n_out]` with no copy.

use nalgebra::{DMatrix, DMatrixView, DMatrixViewMut, Dyn};
use rayon::prelude::*;

use super::{LinearMap, assert_shape};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// Output columns per parallel GEMM task: each task owns its outputs, so no sum crosses threads.
const COLS_PER_TASK: usize = 16;

/// A fully connected layer `n_in → n_out`.
#[derive(Clone, Debug)]
pub struct Dense {
    pub n_in: usize,
    pub n_out: usize,
}

impl Dense {
    pub fn new(n_in: usize, n_out: usize) -> Self {
        Dense { n_in, n_out }
    }
}

/// A strided view: element `(r, c)` of the `(rows, cols)` matrix at `s[r·rs + c·cs]`.
type Strided<'a, T> = DMatrixView<'a, T, Dyn, Dyn>;

fn strided<T: Real>(s: &[T], rows: usize, cols: usize, rs: usize, cs: usize) -> Strided<'_, T> {
    DMatrixView::from_slice_with_strides_generic(s, Dyn(rows), Dyn(cols), Dyn(rs), Dyn(cs))
}

/// nalgebra hands a GEMM to matrixmultiply only when every dimension exceeds this; below it, its own
/// fallback loop indexes strided views out of bounds (heap corruption in release builds), so small
/// blocks take [`small_gemm`] instead.
const NALGEBRA_SMALL_DIM: usize = 5;

/// `out = a @ b + beta · out` for column blocks of `out` in parallel: `a` (m, k), `b` (k, n), `out` (m, n)
/// column-major. Each block is one GEMM over the whole `k`: no sum crosses blocks.
fn par_gemm<T: Real>(out: &mut [T], a: Strided<T>, b: Strided<T>, beta: T) {
    let (m, k) = a.shape();
    out.par_chunks_mut(m * COLS_PER_TASK).enumerate().for_each(|(t, chunk)| {
        let j0 = t * COLS_PER_TASK;
        let nj = chunk.len() / m.max(1);
        let bj = b.columns(j0, nj);
        if m.min(nj).min(k) <= NALGEBRA_SMALL_DIM {
            small_gemm(chunk, &a, &bj, beta);
        } else {
            let mut o = DMatrixViewMut::from_slice(chunk, m, nj);
            o.gemm(T::one(), &a, &bj, beta);
        }
    });
}

/// `out = a @ b + beta · out` by plain loops (`out` (m, n) column-major; not read when `beta` is 0).
fn small_gemm<T: Real>(out: &mut [T], a: &Strided<T>, b: &Strided<T>, beta: T) {
    let (m, k) = a.shape();
    for j in 0..b.ncols() {
        for i in 0..m {
            let s = (0..k).fold(T::zero(), |s, l| s + a[(i, l)] * b[(l, j)]);
            let o = &mut out[j * m + i];
            *o = if beta == T::zero() { s } else { s + beta * *o };
        }
    }
}

impl<T: Real> LinearMap<T> for Dense {
    fn dims(&self) -> (usize, usize) {
        (self.n_out, self.n_in)
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        vec![("weight", vec![self.n_out, self.n_in]), ("bias", vec![self.n_out])]
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let batch = x.nrows();
        assert_shape("dense forward x", x, batch, self.n_in);
        assert_shape("dense forward z", z, batch, self.n_out);
        let (w, b) = (&params[0].data, &params[1].data);
        // z[:, o] = b[o], then z += x @ Wᵀ, with Wᵀ the (n_in, n_out) column-major reading of w.
        for (o, mut col) in z.column_iter_mut().enumerate() {
            col.fill(b[o]);
        }
        let wt = strided(w, self.n_in, self.n_out, 1, self.n_in);
        par_gemm(z.as_mut_slice(), strided(x.as_slice(), batch, self.n_in, 1, batch), wt, T::one());
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        let batch = dz.nrows();
        assert_shape("dense backward dz", dz, batch, self.n_out);
        assert_shape("dense backward dx", dx, batch, self.n_in);
        // dx = dz @ W: w read column-major is Wᵀ (n_in, n_out); W is its strided transpose view.
        let w = strided(&params[0].data, self.n_out, self.n_in, self.n_in, 1);
        par_gemm(dx.as_mut_slice(), strided(dz.as_slice(), batch, self.n_out, 1, batch), w, T::zero());
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let batch = x.nrows();
        // dWᵀ (n_in, n_out) += xᵀ @ dz; xᵀ is a strided view of x.
        let xt = strided(x.as_slice(), self.n_in, batch, batch, 1);
        par_gemm(&mut grads[0].data, xt, strided(dz.as_slice(), batch, self.n_out, 1, batch), T::one());
        let db = &mut grads[1].data;
        for (o, col) in dz.column_iter().enumerate() {
            db[o] += col.iter().fold(T::zero(), |s, &v| s + v);
        }
    }

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        vec![vec![1; self.n_in * self.n_out], vec![1; self.n_out]]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dense forward and both backward passes against plain loops, at sizes that hit nalgebra's
    /// small-dimension GEMM path (which corrupted the heap before `small_gemm`): batches of 1 and 3,
    /// 84 -> 10 (a last column block of 4) and 7 -> 4.
    #[test]
    fn dense_matches_loops_at_small_dimensions() {
        for (batch, n_in, n_out) in [(1, 7, 4), (3, 84, 10), (3, 120, 84), (64, 5, 3)] {
            let mut d = Dense::new(n_in, n_out);
            let v = |i: usize| ((i * 37 % 23) as f64 - 11.0) / 7.0;
            let w = Tensor::from_vec(&[n_out, n_in], (0..n_in * n_out).map(v).collect());
            let b = Tensor::from_vec(&[n_out], (0..n_out).map(|i| v(i + 5)).collect());
            let params = [w.clone(), b.clone()];
            let x = DMatrix::from_fn(batch, n_in, |r, c| v(r * 31 + c * 3 + 1));
            let dz = DMatrix::from_fn(batch, n_out, |r, c| v(r * 13 + c * 5 + 2));
            let mut z = DMatrix::zeros(batch, n_out);
            d.forward(&params, &x, &mut z);
            let mut dx = DMatrix::from_element(batch, n_in, f64::NAN);
            d.backward_input(&mut dx, &params, &dz);
            let mut grads = [Tensor::zeros(&[n_out, n_in]), Tensor::zeros(&[n_out])];
            d.backward_params(&mut grads, &x, &dz);
            let tol = 1e-12;
            for r in 0..batch {
                for o in 0..n_out {
                    let e = b.data[o] + (0..n_in).map(|i| w.data[o * n_in + i] * x[(r, i)]).sum::<f64>();
                    assert!((z[(r, o)] - e).abs() < tol, "z ({r}, {o}) batch {batch} {n_in}->{n_out}");
                }
                for i in 0..n_in {
                    let e: f64 = (0..n_out).map(|o| w.data[o * n_in + i] * dz[(r, o)]).sum();
                    assert!((dx[(r, i)] - e).abs() < tol, "dx ({r}, {i}) batch {batch} {n_in}->{n_out}");
                }
            }
            for o in 0..n_out {
                for i in 0..n_in {
                    let e: f64 = (0..batch).map(|r| dz[(r, o)] * x[(r, i)]).sum();
                    assert!((grads[0].data[o * n_in + i] - e).abs() < tol, "dW ({o}, {i})");
                }
            }
        }
    }
}
