//! Locally connected layer on the (B, F) column-major layout, vectorised over the batch.
//!
//! Letters as in [`super::conv`]: input `x` (B, c_in·h_in·w_in), output `y` (B, c_out·h_out·w_out); output
//! feature `r = (o·h_out + oy)·w_out + ox`; weight `w` `(c_out, h_out, w_out, c_in, k, k)`, so that output `r`
//! owns the `c_in·k²` weights `w[r, i, ky, kx]`; bias `b` `(c_out, h_out, w_out)`, one per output. With the
//! convolution's per-axis tap lists `F` and their inverses `G` (`super::taps::AxisTaps`):
//!
//! ```text
//! forward   y[:, r]          = b[r] + Σ_i Σ_{(ky, iy) ∈ F_h(oy)} Σ_{(kx, ix) ∈ F_w(ox)} w[r, i, ky, kx] · x[:, i, iy, ix]
//! input     δx[:, i, iy, ix] = Σ_o Σ_{(ky, oy) ∈ G_h(iy)} Σ_{(kx, ox) ∈ G_w(ix)} w[r(o, oy, ox), i, ky, kx] · δy[:, r]
//! kernel    δw[r, i, ky, kx] += Σ_b δy[b, r] · x[b, i, src_h(oy, ky), src_w(ox, kx)]
//! bias      δb[r]            += Σ_b δy[b, r]
//! ```
//!
//! Each value is summed by one task in a fixed order (forward from `b[r]`, then `i`, `ky`, `kx`; input
//! gradient `o`, then `G_h`, then `G_w`; kernel and bias gradients over the batch in 8 lanes, then the lanes
//! in order), with one `mul_add` per product: the bits do not depend on the number of threads. Tasks are
//! output channels (forward), input channels (input gradient) and output features (parameter gradients).

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::taps::{AxisTaps, axis_taps};
use crate::geometry::ConvGeometry;
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// A locally connected layer computed directly on the (B, F) layout (the direct engine's): weight
/// `(c_out, h_out, w_out, c_in, k, k)`, bias `(c_out, h_out, w_out)`.
#[derive(Clone, Debug)]
pub struct DirectLocal {
    pub geometry: ConvGeometry,
    /// `F_h`, `F_w`: per output row / column, `(tap, input coordinate)`.
    fwd: (AxisTaps, AxisTaps),
    /// `G_h`, `G_w`: per input row / column, `(tap, output coordinate)`.
    bwd: (AxisTaps, AxisTaps),
}

impl DirectLocal {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        let g = g.checked("DirectLocal");
        let (fwd, bwd) = axis_taps(&g);
        DirectLocal { geometry: g, fwd, bwd }
    }
}

/// `y += a · x` over the batch, one rounding per product.
#[inline(always)]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = a.mul_add(xv, *yv);
    }
}

/// `Σ_b a[b] · c[b]` in 8 lanes (sample `b` in lane `b mod 8`), the lanes added in order, then the last samples.
#[inline(always)]
fn dot<T: Real>(a: &[T], c: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let n8 = a.len() - a.len() % 8;
    for (ca, cc) in a[..n8].chunks_exact(8).zip(c[..n8].chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = ca[l].mul_add(cc[l], lanes[l]);
        }
    }
    let mut s = lanes.into_iter().fold(T::zero(), |s, v| s + v);
    for (&x, &y) in a[n8..].iter().zip(&c[n8..]) {
        s = x.mul_add(y, s);
    }
    s
}

impl<T: Real> LinearMap<T> for DirectLocal {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.geometry.local_param_shapes()
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct local forward", self.geometry.dims(), z, x);
        let g = &self.geometry;
        let (w, b) = (&params[0].data, &params[1].data);
        let (batch, kk, taps) = (x.nrows(), g.k * g.k, g.c_in * g.k * g.k);
        let (h_out, w_out, plane_in) = (g.h_out(), g.w_out(), g.h_in * g.w_in);
        let x = x.as_slice();
        // Output channel o writes its plane (h_out·w_out batch columns).
        z.as_mut_slice().par_chunks_mut((h_out * w_out * batch).max(1)).enumerate().for_each(|(o, z_o)| {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    let r = (o * h_out + oy) * w_out + ox;
                    let y = &mut z_o[(oy * w_out + ox) * batch..][..batch];
                    y.fill(b[r]);
                    let w_r = &w[r * taps..(r + 1) * taps];
                    for i in 0..g.c_in {
                        for &(ky, iy) in self.fwd.0.of(oy) {
                            for &(kx, ix) in self.fwd.1.of(ox) {
                                let f = i * plane_in + iy as usize * g.w_in + ix as usize;
                                let wv = w_r[i * kk + ky as usize * g.k + kx as usize];
                                axpy(wv, &x[f * batch..(f + 1) * batch], y);
                            }
                        }
                    }
                }
            }
        });
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct local backward", self.geometry.dims(), dz, dx);
        let g = &self.geometry;
        let w = &params[0].data;
        let (batch, kk, taps) = (dz.nrows(), g.k * g.k, g.c_in * g.k * g.k);
        let (h_out, w_out) = (g.h_out(), g.w_out());
        let dy = dz.as_slice();
        // Input channel i writes its plane (h_in·w_in batch columns), gathering the outputs that read it.
        dx.as_mut_slice().par_chunks_mut((g.h_in * g.w_in * batch).max(1)).enumerate().for_each(|(i, dx_i)| {
            for iy in 0..g.h_in {
                for ix in 0..g.w_in {
                    let d = &mut dx_i[(iy * g.w_in + ix) * batch..][..batch];
                    d.fill(T::zero());
                    for o in 0..g.c_out {
                        for &(ky, oy) in self.bwd.0.of(iy) {
                            for &(kx, ox) in self.bwd.1.of(ix) {
                                let r = (o * h_out + oy as usize) * w_out + ox as usize;
                                let wv = w[r * taps + i * kk + ky as usize * g.k + kx as usize];
                                axpy(wv, &dy[r * batch..(r + 1) * batch], d);
                            }
                        }
                    }
                }
            }
        });
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("direct local backward", self.geometry.dims(), dz, x);
        let g = &self.geometry;
        let (batch, kk, taps) = (x.nrows(), g.k * g.k, g.c_in * g.k * g.k);
        let (h_out, w_out, plane_in) = (g.h_out(), g.w_out(), g.h_in * g.w_in);
        let (x, dy) = (x.as_slice(), dz.as_slice());
        // Output feature r owns its weights δw[r, ·]: one task each.
        let (dw, db) = grads.split_at_mut(1);
        dw[0].data.par_chunks_mut(taps).enumerate().for_each(|(r, dw_r)| {
            let (oy, ox) = (r / w_out % h_out, r % w_out);
            let dy_r = &dy[r * batch..(r + 1) * batch];
            for i in 0..g.c_in {
                for &(ky, iy) in self.fwd.0.of(oy) {
                    for &(kx, ix) in self.fwd.1.of(ox) {
                        let f = i * plane_in + iy as usize * g.w_in + ix as usize;
                        dw_r[i * kk + ky as usize * g.k + kx as usize] += dot(dy_r, &x[f * batch..(f + 1) * batch]);
                    }
                }
            }
        });
        // δb[r] += Σ_b δy[b, r], samples in order.
        for (r, d) in db[0].data.iter_mut().enumerate() {
            *d += dy[r * batch..(r + 1) * batch].iter().fold(T::zero(), |s, &v| s + v);
        }
    }

    /// One per tap that reads an input value, one per bias ([`ConvGeometry::local_multiplicity`]).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        self.geometry.local_multiplicity()
    }
}
