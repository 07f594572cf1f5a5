//! Convolution lowered to one GEMM (Caffe's im2col), and col2im, its adjoint, for the input gradient.
//! The lowering itself ([`im2col`], [`col2im`]) serves the locally connected layer too ([`super::local`]).
//!
//! Letters: `B` batch, `P = h_out·w_out` output positions, `Q = c_in·k·k` kernel taps per output channel.
//! Shapes are written `[rows, cols]`; every matrix is column-major, so a `[B·P, c_out]` matrix with row
//! `p·B + b` is exactly the (B, c_out·P) activation buffer: no reshuffling between layers.
//!
//! ```text
//! col[p·B + b, (i·k + ky)·k + kx] = x̃[b, i, oy·s + ky·d, ox·s + kx·d]      p = oy·w_out + ox   (im2col)
//! z  = col @ Wᵀ + b                   [B·P, Q] @ [Q, c_out] -> [B·P, c_out]
//! δcol = δz @ W                       [B·P, c_out] @ [c_out, Q] -> [B·P, Q],   δx = col2im(δcol)
//! δWᵀ += colᵀ @ δz                    [Q, B·P] @ [B·P, c_out] -> [Q, c_out]
//! ```
//!
//! The weight `(c_out, c_in, k, k)` read column-major is `Wᵀ` `[Q, c_out]`; `W` and `colᵀ` are strided
//! views (no copy; faer's kernels through [`crate::gemm`]). The padding mode enters only through the
//! padding map in im2col; col2im adds each column entry back to the input cell it was read from.
//! GEMMs run in parallel over fixed blocks of output rows or columns ([`crate::gemm::blocks`]), each over its
//! whole inner dimension, so no sum crosses threads.

use std::sync::Mutex;

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::gemm::{self, Strided};
use crate::geometry::{ConvGeometry, tap_coord};
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// `s` as a `[rows, cols]` matrix with element `(r, c)` at `s[r·rs + c·cs]`.
fn view<T: Real>(s: &[T], rows: usize, cols: usize, rs: usize, cs: usize) -> Strided<'_, T> {
    Strided { data: s, rows, cols, rs, cs }
}

/// `out = a @ b + beta · out`, blocks of `out` in parallel ([`crate::gemm::par_gemm`]).
fn par_gemm<T: Real>(out: &mut [T], a: Strided<'_, T>, b: Strided<'_, T>, beta: T) {
    gemm::par_gemm(out, a, b, beta);
}

/// im2col through the padding map: `x` (B, c_in·h_in·w_in) -> `col` `[B·P, Q]`, 0 where zero padding
/// reads nothing. Each entry of a column is a contiguous batch copy; columns in parallel.
pub fn im2col<T: Real>(g: &ConvGeometry, x: &DMatrix<T>) -> DMatrix<T> {
    let mut col = DMatrix::zeros(0, 0);
    im2col_into(g, x, &mut col);
    col
}

/// [`im2col`] into `col`, reshaped only when its shape differs (a layer reuses one buffer).
pub fn im2col_into<T: Real>(g: &ConvGeometry, x: &DMatrix<T>, col: &mut DMatrix<T>) {
    let batch = x.nrows();
    let (h_out, w_out, k) = (g.h_out(), g.w_out(), g.k);
    let bp = batch * h_out * w_out;
    let x = x.as_slice();
    if col.shape() != (bp, g.c_in * k * k) {
        *col = DMatrix::<T>::zeros(bp, g.c_in * k * k);
    }
    col.as_mut_slice().par_chunks_mut(bp).enumerate().for_each(|(q, colq)| {
        let (i, ky, kx) = (q / (k * k), q / k % k, q % k);
        for oy in 0..h_out {
            let iy = g.mode.source(tap_coord(oy, ky, g.stride, g.dil, g.pad), g.h_in);
            for ox in 0..w_out {
                let ix = g.mode.source(tap_coord(ox, kx, g.stride, g.dil, g.pad), g.w_in);
                let p = oy * w_out + ox;
                let out = &mut colq[p * batch..(p + 1) * batch];
                match (iy, ix) {
                    (Some(iy), Some(ix)) => {
                        let f = (i * g.h_in + iy) * g.w_in + ix;
                        out.copy_from_slice(&x[f * batch..(f + 1) * batch]);
                    }
                    _ => out.fill(T::zero()),
                }
            }
        }
    });
}

/// col2im, the adjoint of [`im2col`]: `δcol` `[B·P, Q]` -> `dx` (B, c_in·h_in·w_in), overwritten, each
/// entry added to the input cell im2col read it from. Input channels in parallel (disjoint outputs).
pub fn col2im<T: Real>(g: &ConvGeometry, dx: &mut DMatrix<T>, dcol: &DMatrix<T>) {
    let batch = dx.nrows();
    let (h_out, w_out, k) = (g.h_out(), g.w_out(), g.k);
    let (bp, plane) = (batch * h_out * w_out, g.h_in * g.w_in);
    let dcol = dcol.as_slice();
    dx.as_mut_slice().par_chunks_mut(batch * plane).enumerate().for_each(|(i, dxi)| {
        dxi.iter_mut().for_each(|v| *v = T::zero());
        for ky in 0..k {
            for kx in 0..k {
                let q = (i * k + ky) * k + kx;
                let colq = &dcol[q * bp..(q + 1) * bp];
                for oy in 0..h_out {
                    let py = tap_coord(oy, ky, g.stride, g.dil, g.pad);
                    let Some(iy) = g.mode.source(py, g.h_in) else { continue };
                    for ox in 0..w_out {
                        let px = tap_coord(ox, kx, g.stride, g.dil, g.pad);
                        let Some(ix) = g.mode.source(px, g.w_in) else { continue };
                        let (f, p) = (iy * g.w_in + ix, oy * w_out + ox);
                        for (d, &c) in dxi[f * batch..(f + 1) * batch].iter_mut().zip(&colq[p * batch..(p + 1) * batch])
                        {
                            *d += c;
                        }
                    }
                }
            }
        }
    });
}

/// A convolution computed by im2col + GEMM: weight `(c_out, c_in, k, k)`, bias `(c_out)`.
#[derive(Debug)]
pub struct Im2colConv<T: Real> {
    pub geometry: ConvGeometry,
    /// Scratch `col` `[B·P, Q]`, reused from call to call (the passes that need it fill it).
    col: DMatrix<T>,
    /// Scratch `δcol` `[B·P, Q]` for the input gradient (a `&self` pass, hence the lock; never contended:
    /// each shard of a batch has its own copy of the layer).
    dcol: Mutex<DMatrix<T>>,
}

impl<T: Real> Clone for Im2colConv<T> {
    /// The geometry; fresh scratch.
    fn clone(&self) -> Self {
        Im2colConv::new(&self.geometry)
    }
}

impl<T: Real> Im2colConv<T> {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        Im2colConv {
            geometry: g.checked("Im2colConv"),
            col: DMatrix::zeros(0, 0),
            dcol: Mutex::new(DMatrix::zeros(0, 0)),
        }
    }

    /// `Q = c_in·k·k`.
    fn taps(&self) -> usize {
        self.geometry.c_in * self.geometry.k * self.geometry.k
    }
}

impl<T: Real> LinearMap<T> for Im2colConv<T> {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.geometry.conv_param_shapes()
    }

    /// `z = col @ Wᵀ + b`: `[B·P, Q] @ [Q, c_out] -> [B·P, c_out]`.
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("im2col conv forward", self.geometry.dims(), z, x);
        let (q, c_out) = (self.taps(), self.geometry.c_out);
        let bp = z.len() / c_out;
        im2col_into(&self.geometry, x, &mut self.col);
        let (w, b) = (&params[0].data, &params[1].data);
        let z = z.as_mut_slice();
        for (o, zo) in z.chunks_mut(bp).enumerate() {
            zo.fill(b[o]);
        }
        par_gemm(z, view(self.col.as_slice(), bp, q, 1, bp), view(w, q, c_out, 1, q), T::one());
    }

    /// `δcol = δz @ W`: `[B·P, c_out] @ [c_out, Q] -> [B·P, Q]`, then `δx = col2im(δcol)`.
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("im2col conv backward", self.geometry.dims(), dz, dx);
        let (q, c_out) = (self.taps(), self.geometry.c_out);
        let bp = dz.len() / c_out;
        let mut dcol = self.dcol.lock().unwrap_or_else(|e| e.into_inner());
        if dcol.shape() != (bp, q) {
            *dcol = DMatrix::<T>::zeros(bp, q);
        }
        let w = view(&params[0].data, c_out, q, q, 1);
        // β = 0: the product overwrites δcol.
        par_gemm(dcol.as_mut_slice(), view(dz.as_slice(), bp, c_out, 1, bp), w, T::zero());
        col2im(&self.geometry, dx, &dcol);
    }

    /// `δWᵀ += colᵀ @ δz`: `[Q, B·P] @ [B·P, c_out] -> [Q, c_out]`; `δb[o] += Σ δz[:, o]`.
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("im2col conv backward", self.geometry.dims(), dz, x);
        let (q, c_out) = (self.taps(), self.geometry.c_out);
        let bp = dz.len() / c_out;
        im2col_into(&self.geometry, x, &mut self.col);
        let colt = view(self.col.as_slice(), q, bp, bp, 1);
        par_gemm(&mut grads[0].data, colt, view(dz.as_slice(), bp, c_out, 1, bp), T::one());
        for (o, dzo) in dz.as_slice().chunks(bp).enumerate() {
            grads[1].data[o] += dzo.iter().fold(T::zero(), |s, &v| s + v);
        }
    }

    /// Taps per kernel entry, `h_out·w_out` per bias ([`ConvGeometry::conv_multiplicity`]).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        self.geometry.conv_multiplicity()
    }
}
