//! Locally connected layer lowered to GEMMs: the convolution's im2col, then one small GEMM per output
//! position with that position's own weights.
//!
//! Letters as in [`super::conv`]: `B` batch, `P = h_out·w_out` positions, `Q = c_in·k·k` taps. The weight
//! `(c_out, h_out, w_out, c_in, k, k)` holds, for position `p`, the matrix `W_p` with
//! `W_p[o, q] = w[(o·P + p)·Q + q]`; the bias `(c_out, h_out, w_out)` holds `b[o·P + p]`. Rows `p·B .. p·B + B`
//! of `col` `[B·P, Q]` are position `p`'s inputs `col_p` `[B, Q]`, and the columns `o·P + p` of the
//! (B, c_out·P) output are its outputs `z_p` `[B, c_out]`: every operand is a strided view, no copy.
//!
//! ```text
//! z_p   = col_p @ W_pᵀ + b_p          [B, Q] @ [Q, c_out] -> [B, c_out]
//! δcol_p = δz_p @ W_p                 [B, c_out] @ [c_out, Q] -> [B, Q],   δx = col2im(δcol)
//! δW_pᵀ += col_pᵀ @ δz_p              [Q, B] @ [B, c_out] -> [Q, c_out]
//! δb_p  += Σ_b δz_p[b, :]
//! ```
//!
//! Positions run in parallel; each writes only its own outputs, weights' gradients and `δcol` rows, and
//! each GEMM sums over its whole inner dimension, so no sum crosses threads.

use std::sync::Mutex;

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::conv::{col2im, im2col_into};
use crate::disjoint::Disjoint;
use crate::gemm::{Operand, gemm_serial};
use crate::geometry::ConvGeometry;
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// A locally connected layer computed by im2col + one GEMM per position: weight
/// `(c_out, h_out, w_out, c_in, k, k)`, bias `(c_out, h_out, w_out)`.
#[derive(Debug)]
pub struct Im2colLocal<T: Real> {
    pub geometry: ConvGeometry,
    /// Scratch `col` `[B·P, Q]`, reused from call to call.
    col: DMatrix<T>,
    /// Scratch `δcol` `[B·P, Q]` for the input gradient (a `&self` pass, hence the lock; never contended:
    /// each shard of a batch has its own copy of the layer).
    dcol: Mutex<DMatrix<T>>,
}

impl<T: Real> Clone for Im2colLocal<T> {
    /// The geometry; fresh scratch.
    fn clone(&self) -> Self {
        Im2colLocal::new(&self.geometry)
    }
}

/// `c = a @ b + β c` for `a` `[m, k]`, `b` `[k, n]` and `c` `[m, n]` given as strided pointers.
///
/// # Safety
/// Every element the strides reach is inside its buffer, `c` aliases neither `a` nor `b`, and no other thread
/// touches the elements of `c`.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: Operand<T>,
    b: Operand<T>,
    beta: T,
    c: (*mut T, isize, isize),
) {
    // SAFETY: the caller's contract is `gemm_serial`'s (elements inside their buffers, `c` aliasing neither `a`
    // nor `b`, no other thread on `c`'s elements); β is 0 or 1 at every call below.
    unsafe { gemm_serial(m, k, n, a, b, beta == T::one(), c) }
}

impl<T: Real> Im2colLocal<T> {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        Im2colLocal {
            geometry: g.checked("Im2colLocal"),
            col: DMatrix::zeros(0, 0),
            dcol: Mutex::new(DMatrix::zeros(0, 0)),
        }
    }

    /// `(P, Q, c_out)`.
    fn sizes(&self) -> (usize, usize, usize) {
        let g = &self.geometry;
        (g.h_out() * g.w_out(), g.c_in * g.k * g.k, g.c_out)
    }
}

impl<T: Real> LinearMap<T> for Im2colLocal<T> {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.geometry.local_param_shapes()
    }

    /// `z_p = col_p @ W_pᵀ + b_p` for every position `p`.
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("im2col local forward", self.geometry.dims(), z, x);
        let (p_n, q, c_out) = self.sizes();
        let batch = x.nrows();
        let bp = batch * p_n;
        im2col_into(&self.geometry, x, &mut self.col);
        let (w, b) = (&params[0].data, &params[1].data);
        // z[:, o·P + p] = b[o·P + p], then the GEMMs add.
        for (f, zf) in z.as_mut_slice().chunks_mut(batch.max(1)).enumerate() {
            zf.fill(b[f]);
        }
        assert!(self.col.len() == bp * q && w.len() == c_out * p_n * q, "im2col local forward: buffers");
        let (col, out) = (self.col.as_slice(), Disjoint::new(z.as_mut_slice()));
        (0..p_n).into_par_iter().for_each(|p| {
            // SAFETY: col_p [B, Q] at col[p·B + b + q·BP], W_pᵀ [Q, c_out] at w[p·Q + q + o·P·Q] and z_p
            // [B, c_out] at z[p·B + b + o·P·B] stay inside their buffers (checked sizes); position p alone
            // writes its outputs.
            unsafe {
                gemm(
                    batch,
                    q,
                    c_out,
                    (col.as_ptr().add(p * batch), 1, bp as isize),
                    (w.as_ptr().add(p * q), 1, (p_n * q) as isize),
                    T::one(),
                    (out.ptr().add(p * batch), 1, bp as isize),
                )
            }
        });
    }

    /// `δcol_p = δz_p @ W_p` for every position, then `δx = col2im(δcol)`.
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("im2col local backward", self.geometry.dims(), dz, dx);
        let (p_n, q, c_out) = self.sizes();
        let batch = dz.nrows();
        let bp = batch * p_n;
        let mut dcol = self.dcol.lock().unwrap_or_else(|e| e.into_inner());
        if dcol.shape() != (bp, q) {
            *dcol = DMatrix::<T>::zeros(bp, q);
        }
        let (w, dy) = (&params[0].data, dz.as_slice());
        assert!(w.len() == c_out * p_n * q, "im2col local backward: weight has {} values", w.len());
        let out = Disjoint::new(dcol.as_mut_slice());
        (0..p_n).into_par_iter().for_each(|p| {
            // SAFETY: δz_p [B, c_out] at dz[p·B + b + o·BP], W_p [c_out, Q] at w[p·Q + o·P·Q + q] and δcol_p
            // [B, Q] at δcol[p·B + b + q·BP] stay inside their buffers; position p alone writes its rows.
            // β = 0: the product overwrites δcol_p.
            unsafe {
                gemm(
                    batch,
                    c_out,
                    q,
                    (dy.as_ptr().add(p * batch), 1, bp as isize),
                    (w.as_ptr().add(p * q), (p_n * q) as isize, 1),
                    T::zero(),
                    (out.ptr().add(p * batch), 1, bp as isize),
                )
            }
        });
        col2im(&self.geometry, dx, &dcol);
    }

    /// `δW_pᵀ += col_pᵀ @ δz_p` and `δb_p += Σ_b δz_p[b, :]` for every position.
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("im2col local backward", self.geometry.dims(), dz, x);
        let (p_n, q, c_out) = self.sizes();
        let batch = x.nrows();
        let bp = batch * p_n;
        im2col_into(&self.geometry, x, &mut self.col);
        let (col, dy) = (self.col.as_slice(), dz.as_slice());
        let (dw, db) = grads.split_at_mut(1);
        assert!(dw[0].data.len() == c_out * p_n * q, "im2col local backward: weight gradient");
        let out = Disjoint::new(&mut dw[0].data);
        (0..p_n).into_par_iter().for_each(|p| {
            // SAFETY: col_pᵀ [Q, B] at col[q·BP + p·B + b], δz_p [B, c_out] at dz[p·B + b + o·BP] and δW_pᵀ
            // [Q, c_out] at δw[p·Q + q + o·P·Q] stay inside their buffers; position p alone writes its weights.
            unsafe {
                gemm(
                    q,
                    batch,
                    c_out,
                    (col.as_ptr().add(p * batch), bp as isize, 1),
                    (dy.as_ptr().add(p * batch), 1, bp as isize),
                    T::one(),
                    (out.ptr().add(p * q), 1, (p_n * q) as isize),
                )
            }
        });
        // δb[f] += Σ_b δz[b, f], samples in order.
        for (f, d) in db[0].data.iter_mut().enumerate() {
            *d += dy[f * batch..(f + 1) * batch].iter().fold(T::zero(), |s, &v| s + v);
        }
    }

    /// One per tap that reads an input value, one per bias ([`ConvGeometry::local_multiplicity`]).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        self.geometry.local_multiplicity()
    }
}
