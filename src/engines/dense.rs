//! Dense layer: the full pattern, one parameter per entry, computed by GEMM.
//!
//! Weight `(n_out, n_in)` row-major is, read column-major, the `(n_in, n_out)` matrix `Wᵀ`, so
//! `z = x Wᵀ + b` is one GEMM `[B, n_in] @ [n_in, n_out] -> [B, n_out]` with no copy. The products run in
//! fixed blocks of the output ([`crate::gemm::par_gemm`]), so the bits do not depend on the thread count.

use nalgebra::DMatrix;

use crate::gemm::{Strided, par_gemm};
use crate::linear_map::{LinearMap, assert_shape};
use crate::scalar::Real;
use crate::tensor::Tensor;

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
        let wt = Strided::col_major(w, self.n_in, self.n_out);
        let xs = Strided::col_major(x.as_slice(), batch, self.n_in);
        par_gemm(z.as_mut_slice(), xs, wt, T::one());
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        let batch = dz.nrows();
        assert_shape("dense backward dz", dz, batch, self.n_out);
        assert_shape("dense backward dx", dx, batch, self.n_in);
        // dx = dz @ W: [B, n_out] @ [n_out, n_in] -> [B, n_in], W read row-major.
        let w = Strided::row_major(&params[0].data, self.n_out, self.n_in);
        let dzs = Strided::col_major(dz.as_slice(), batch, self.n_out);
        par_gemm(dx.as_mut_slice(), dzs, w, T::zero());
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let batch = x.nrows();
        // dWᵀ += xᵀ @ dz: [n_in, B] @ [B, n_out] -> [n_in, n_out] (column-major dWᵀ is row-major dW).
        let xt = Strided::row_major(x.as_slice(), self.n_in, batch);
        let dzs = Strided::col_major(dz.as_slice(), batch, self.n_out);
        par_gemm(&mut grads[0].data, xt, dzs, T::one());
        let db = &mut grads[1].data;
        for (o, col) in dz.column_iter().enumerate() {
            db[o] += col.iter().fold(T::zero(), |s, &v| s + v);
        }
    }

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        vec![vec![1; self.n_in * self.n_out], vec![1; self.n_out]]
    }
}
