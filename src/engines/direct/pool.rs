//! Fast direct pooling on the (B, F) column-major layout, vectorised over the batch.
//!
//! Letters: `B` batch; input `x` (B, c·h_in·w_in), output `y` (B, c·h_out·w_out); window `k × k`,
//! stride `s`; `j(c, oy, ox, ky, kx) = (c·h_in + oy·s + ky)·w_in + ox·s + kx` is the input feature of a
//! window cell. Row-major window order is `ky`, then `kx`; outputs are in (C, H, W) order.
//!
//! ```text
//! max forward    y[b, c, oy, ox] = x[b, win],  win[b, (c, oy, ox)] = first j of the window with the largest x[b, j]
//! max backward   δx[b, j] = Σ_{windows (c, oy, ox) ∋ j, in output order} [win[b, (c, oy, ox)] = j] · δy[b, c, oy, ox]
//! mean forward   y[b, c, oy, ox] = Σ_{ky, kx} (1/k²) · x[b, j(c, oy, ox, ky, kx)]        (row-major window order)
//! mean backward  δx[b, j] = Σ_{windows ∋ j, in output order} (1/k²) · δy[b, window]
//! ```
//!
//! Both backward passes are in gather form: each input cell sums the windows that contain it. They do
//! the same operations in the same order as the tests' oracle (`tests/it/oracle/reference/`), which scatters
//! output by output, so the results are the same bits on any data: each input cell receives its terms in
//! output order, from 0, with one rounding per product and per sum. The max forward pass replaces the
//! running maximum only when a cell is strictly larger (a branchless select per lane), so the first
//! maximum in row-major window order wins ties, as in PyTorch. Tasks are channels; each writes its own
//! output plane.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::geometry::PoolGeometry;
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// The output coordinates along one axis whose windows contain input coordinate `i`:
/// `o·s ≤ i < o·s + k`, `o < n_out`.
#[inline]
fn windows_containing(i: usize, k: usize, s: usize, n_out: usize) -> std::ops::Range<usize> {
    let lo = (i + 1).saturating_sub(k).div_ceil(s);
    let hi = (i / s + 1).min(n_out);
    lo..hi.max(lo)
}

/// Batch column `f` of a (B, F) slice.
#[inline(always)]
fn col<T>(m: &[T], f: usize, batch: usize) -> &[T] {
    &m[f * batch..(f + 1) * batch]
}

/// Max pooling of channel `c`: writes its output plane `y_c` (h_out·w_out batch columns) and the winners
/// `win_c` (the input feature of each output value's window maximum).
#[inline(always)]
fn max_forward_channel<T: Real>(g: &PoolGeometry, c: usize, x: &[T], y_c: &mut [T], win_c: &mut [u32], batch: usize) {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    for oy in 0..h_out {
        for ox in 0..w_out {
            let at = (oy * w_out + ox) * batch;
            let (y, win) = (&mut y_c[at..at + batch], &mut win_c[at..at + batch]);
            let mut cells = g.window(c, oy, ox);
            let first = cells.next().expect("a window has a cell");
            y.copy_from_slice(col(x, first, batch));
            win.fill(first as u32);
            for j in cells {
                for ((yv, wv), &xv) in y.iter_mut().zip(win.iter_mut()).zip(col(x, j, batch)) {
                    // Strictly larger: on ties the earlier cell stays.
                    let gt = xv > *yv;
                    *yv = if gt { xv } else { *yv };
                    *wv = if gt { j as u32 } else { *wv };
                }
            }
        }
    }
}

/// Max pooling backward of channel `c`: writes its input-gradient plane `dx_c` (h_in·w_in batch columns).
#[inline(always)]
fn max_backward_channel<T: Real>(g: &PoolGeometry, c: usize, dx_c: &mut [T], win: &[u32], dy: &[T], batch: usize) {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    for iy in 0..g.h_in {
        for ix in 0..g.w_in {
            let j = (c * g.h_in + iy) * g.w_in + ix;
            let dx = &mut dx_c[(iy * g.w_in + ix) * batch..][..batch];
            dx.fill(T::zero());
            for oy in windows_containing(iy, g.k, g.stride, h_out) {
                for ox in windows_containing(ix, g.k, g.stride, w_out) {
                    let f = (c * h_out + oy) * w_out + ox;
                    for ((d, &wv), &gv) in dx.iter_mut().zip(col(win, f, batch)).zip(col(dy, f, batch)) {
                        *d = if wv == j as u32 { *d + gv } else { *d };
                    }
                }
            }
        }
    }
}

/// Mean pooling of channel `c` into its output plane `y_c`.
#[inline(always)]
fn avg_forward_channel<T: Real>(g: &PoolGeometry, c: usize, x: &[T], y_c: &mut [T], batch: usize) {
    let inv = T::of(1.0 / (g.k * g.k) as f64);
    let (h_out, w_out) = (g.h_out(), g.w_out());
    for oy in 0..h_out {
        for ox in 0..w_out {
            let y = &mut y_c[(oy * w_out + ox) * batch..][..batch];
            y.fill(T::zero());
            for j in g.window(c, oy, ox) {
                for (yv, &xv) in y.iter_mut().zip(col(x, j, batch)) {
                    *yv += inv * xv;
                }
            }
        }
    }
}

/// Mean pooling backward of channel `c` into its input-gradient plane `dx_c`.
#[inline(always)]
fn avg_backward_channel<T: Real>(g: &PoolGeometry, c: usize, dx_c: &mut [T], dy: &[T], batch: usize) {
    let inv = T::of(1.0 / (g.k * g.k) as f64);
    let (h_out, w_out) = (g.h_out(), g.w_out());
    for iy in 0..g.h_in {
        for ix in 0..g.w_in {
            let dx = &mut dx_c[(iy * g.w_in + ix) * batch..][..batch];
            dx.fill(T::zero());
            for oy in windows_containing(iy, g.k, g.stride, h_out) {
                for ox in windows_containing(ix, g.k, g.stride, w_out) {
                    let f = (c * h_out + oy) * w_out + ox;
                    for (d, &gv) in dx.iter_mut().zip(col(dy, f, batch)) {
                        *d += inv * gv;
                    }
                }
            }
        }
    }
}

/// Defines `$name`, which runs the `#[inline(always)]` function `$f` compiled for AVX2 + FMA when the CPU
/// has them (chosen at run time), and for the baseline target otherwise. Same operations, same bits.
macro_rules! dispatched {
    ($name:ident, $avx2:ident, $f:ident, ($($arg:ident: $ty:ty),*)) => {
        /// `$f` compiled for AVX2 + FMA.
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx2<T: Real>($($arg: $ty),*) {
            $f($($arg),*)
        }

        fn $name<T: Real>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if crate::cpu::has_avx2() {
                // SAFETY: the CPU has AVX2 and FMA (checked above).
                return unsafe { $avx2($($arg),*) };
            }
            $f($($arg),*)
        }
    };
}

dispatched!(max_forward, max_forward_avx2, max_forward_channel,
    (g: &PoolGeometry, c: usize, x: &[T], y_c: &mut [T], win_c: &mut [u32], batch: usize));
dispatched!(max_backward, max_backward_avx2, max_backward_channel,
    (g: &PoolGeometry, c: usize, dx_c: &mut [T], win: &[u32], dy: &[T], batch: usize));
dispatched!(avg_forward, avg_forward_avx2, avg_forward_channel,
    (g: &PoolGeometry, c: usize, x: &[T], y_c: &mut [T], batch: usize));
dispatched!(avg_backward, avg_backward_avx2, avg_backward_channel,
    (g: &PoolGeometry, c: usize, dx_c: &mut [T], dy: &[T], batch: usize));

/// Max pooling on the (B, F) layout (the direct engine's); remembers the winners of the last forward pass.
#[derive(Clone, Debug)]
pub struct DirectMaxPool {
    pub geometry: PoolGeometry,
    /// Winners of the last forward pass, (B, out) like the output: the winner of output `f` for sample `b`
    /// at `[f·B + b]`, an input feature of the sample.
    winners: Vec<u32>,
}

impl DirectMaxPool {
    /// # Panics
    /// If the window does not fit ([`PoolGeometry::check`]).
    #[track_caller]
    pub fn new(g: &PoolGeometry) -> Self {
        DirectMaxPool { geometry: g.checked("DirectMaxPool"), winners: Vec::new() }
    }
}

impl<T: Real> LinearMap<T> for DirectMaxPool {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct maxpool forward", LinearMap::<T>::dims(self), z, x);
        let g = self.geometry;
        let batch = x.nrows();
        let plane = (g.h_out() * g.w_out() * batch).max(1);
        self.winners.resize(batch * g.out_len(), 0);
        let x = x.as_slice();
        z.as_mut_slice()
            .par_chunks_mut(plane)
            .zip(self.winners.par_chunks_mut(plane))
            .enumerate()
            .for_each(|(c, (y_c, win_c))| max_forward(&g, c, x, y_c, win_c, batch));
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct maxpool backward", LinearMap::<T>::dims(self), dz, dx);
        let g = self.geometry;
        let batch = dz.nrows();
        assert_eq!(
            self.winners.len(),
            batch * g.out_len(),
            "direct maxpool backward: no forward pass at batch {batch}"
        );
        let plane = (g.h_in * g.w_in * batch).max(1);
        let dy = dz.as_slice();
        dx.as_mut_slice()
            .par_chunks_mut(plane)
            .enumerate()
            .for_each(|(c, dx_c)| max_backward(&g, c, dx_c, &self.winners, dy, batch));
    }
}

/// Mean pooling on the (B, F) layout (the direct engine's).
#[derive(Clone, Debug)]
pub struct DirectAvgPool {
    pub geometry: PoolGeometry,
}

impl DirectAvgPool {
    /// # Panics
    /// If the window does not fit ([`PoolGeometry::check`]).
    #[track_caller]
    pub fn new(g: &PoolGeometry) -> Self {
        DirectAvgPool { geometry: g.checked("DirectAvgPool") }
    }
}

impl<T: Real> LinearMap<T> for DirectAvgPool {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct avgpool forward", LinearMap::<T>::dims(self), z, x);
        let g = self.geometry;
        let batch = x.nrows();
        let plane = (g.h_out() * g.w_out() * batch).max(1);
        let x = x.as_slice();
        z.as_mut_slice().par_chunks_mut(plane).enumerate().for_each(|(c, y_c)| avg_forward(&g, c, x, y_c, batch));
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct avgpool backward", LinearMap::<T>::dims(self), dz, dx);
        let g = self.geometry;
        let batch = dz.nrows();
        let plane = (g.h_in * g.w_in * batch).max(1);
        let dy = dz.as_slice();
        dx.as_mut_slice().par_chunks_mut(plane).enumerate().for_each(|(c, dx_c)| avg_backward(&g, c, dx_c, dy, batch));
    }
}
