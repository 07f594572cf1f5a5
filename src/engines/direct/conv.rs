//! Fast direct convolution on the (B, F) column-major layout: forward, input gradient (gather form),
//! kernel and bias gradients.
//!
//! Letters: `B` batch; input `x` (B, c_in·h_in·w_in), output `y` (B, c_out·h_out·w_out), features in
//! (C, H, W) order; kernel `w` `(c_out, c_in, k, k)`, bias `b` `(c_out)`; `s` stride, `p` padding, `d`
//! dilation. Along one axis, output coordinate `o` and tap `κ` read the input coordinate
//! `src(o, κ) = pad_map(o·s + κ·d − p)`, or nothing (zero padding). Then
//!
//! ```text
//! forward   y[:, o, oy, ox]  = b[o] + Σ_i Σ_{(ky, iy) ∈ F_h(oy)} Σ_{(kx, ix) ∈ F_w(ox)} w[o, i, ky, kx] · x[:, i, iy, ix]
//! input     δx[:, i, iy, ix] = Σ_o Σ_{(ky, oy) ∈ G_h(iy)} Σ_{(kx, ox) ∈ G_w(ix)} w[o, i, ky, kx] · δy[:, o, oy, ox]
//! kernel    δw[o, i, ky, kx] += Σ_{oy, ox} Σ_b δy[b, o, oy, ox] · x[b, i, src_h(oy, ky), src_w(ox, kx)]
//! bias      δb[o]            += Σ_{oy, ox} Σ_b δy[b, o, oy, ox]
//! ```
//!
//! where `F(o) = {(κ, src(o, κ))}` lists the taps of output coordinate `o` that read a value and
//! `G(i) = {(κ, o) : src(o, κ) = i}` is its inverse, the outputs that read input coordinate `i`
//! (`super::taps::AxisTaps`). `G` is the adjoint of `F` for every padding mode: a border cell that reads input `i`
//! (reflect, replicate, circular) sends its gradient back to `i`, which is the fold `Pᵀ` of the reference
//! (the oracle's `pad_adjoint` in `tests/it/oracle/reference/`). The forward pass and the input gradient are one
//! routine, `Gather`, with the roles of the two sides exchanged and the kernel read transposed.
//!
//! Summation orders (fixed, so the bits do not depend on the number of threads): forward from `b[o]`, then
//! `i`, `ky`, `kx` increasing (the reference's order); input gradient `o`, then `G_h`, then `G_w` in list
//! order; kernel and bias gradients position by position, 8 batch lanes per accumulator, the lanes summed
//! in lane order at the end, then added to the gradient.
//!
//! Lanes. The forward pass and the input gradient fill their vector lanes with consecutive `(position,
//! sample)` values of one row's shift run (`AxisTaps::runs`): with stride 1 a row's interior reads a
//! contiguous stretch of the other side for every tap, in the (B, F) layout and at any batch, so a block of
//! 32 lanes holds 32 samples at batch 64 and 32 positions at batch 1. Each value keeps its own sum in the
//! order above, so their bits do not depend on the batch's layout. The kernel gradient streams a row's
//! stretch the same way when the batch is whole lane blocks, and, at batches below 16 that are not
//! (`KernelGrad::low_lanes`), puts each stretch's last values in the low lanes instead of a scalar sum: there
//! its order is over positions in lanes, which depends on the geometry and the batch only. [`DirectConv::layout`]
//! names the layout a batch runs in.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::geometry::ConvGeometry;
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

use super::gather::{Gather, channel_blocks, gather_widths, pack};
use super::kernel_grad::{GRAD_WIDTHS, GRAD_WIDTHS_PAIRS, KernelGrad, channel_sum_dispatch};
use super::taps::{Axis, AxisTaps, NONE};

/// A convolution computed directly on the (B, F) layout (the direct engine's conv): weight
/// `(c_out, c_in, k, k)`, bias `(c_out)`, every padding mode, stride and dilation.
#[derive(Clone, Debug)]
pub struct DirectConv {
    pub geometry: ConvGeometry,
    /// `F_h`, `F_w`: per output row / column, `(tap, input coordinate)`.
    fwd: (AxisTaps, AxisTaps),
    /// `G_h`, `G_w`: per input row / column, `(tap, output coordinate)`.
    bwd: (AxisTaps, AxisTaps),
    /// `src_h(oy, κy)` at `[oy·k + κy]` and `src_w(ox, κx)` at `[ox·k + κx]`, [`NONE`] for nothing.
    src: (Vec<u32>, Vec<u32>),
}

impl DirectConv {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        let g = &g.checked("DirectConv");
        let (ay, ax) = (Axis::rows(g), Axis::cols(g));
        let table = |a: &Axis| -> Vec<u32> {
            (0..a.n_out).flat_map(|o| (0..a.k).map(move |kappa| a.src(o, kappa).map_or(NONE, |i| i as u32))).collect()
        };
        DirectConv {
            geometry: *g,
            fwd: (AxisTaps::forward(&ay), AxisTaps::forward(&ax)),
            bwd: (AxisTaps::backward(&ay), AxisTaps::backward(&ax)),
            src: (table(&ay), table(&ax)),
        }
    }
}

impl DirectConv {
    /// The lane layout this layer runs a batch of `batch` in: `"samples"` when the batch is a multiple of 16
    /// (the lane blocks hold samples of one position, except where a block of 32 spans two), `"positions"`
    /// otherwise (the lane blocks of the forward pass and input gradient span consecutive positions of a row;
    /// below batch 16, unless the batch is 8, the kernel gradient's lanes do too, which fixes its summation
    /// order for that batch, see the module doc).
    pub fn layout(&self, batch: usize) -> &'static str {
        if batch >= 16 && batch.is_multiple_of(16) { "samples" } else { "positions" }
    }
}

impl<T: Real> LinearMap<T> for DirectConv {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.geometry.conv_param_shapes()
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct conv forward", LinearMap::<T>::dims(self), z, x);
        let g = &self.geometry;
        let (w, b) = (&params[0].data, &params[1].data);
        let kk = g.k * g.k;
        let blocks = channel_blocks(g.c_out, gather_widths());
        // Destination o, source i: w[o, i, t].
        let wp = pack(&blocks, g.c_in, kk, |o, i, t| w[(o * g.c_in + i) * kk + t]);
        let gather = Gather {
            src: x.as_slice(),
            src_dims: (g.c_in, g.h_in, g.w_in),
            dst_dims: (g.c_out, g.h_out(), g.w_out()),
            k: g.k,
            batch: x.nrows(),
            rows: &self.fwd.0,
            cols: &self.fwd.1,
            blocks: &blocks,
            wp: &wp,
            init: Some(b),
        };
        gather.run(z.as_mut_slice());
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct conv backward", LinearMap::<T>::dims(self), dz, dx);
        let g = &self.geometry;
        let w = &params[0].data;
        let kk = g.k * g.k;
        let blocks = channel_blocks(g.c_in, gather_widths());
        // Destination i, source o: w[o, i, t].
        let wp = pack(&blocks, g.c_out, kk, |i, o, t| w[(o * g.c_in + i) * kk + t]);
        let gather = Gather {
            src: dz.as_slice(),
            src_dims: (g.c_out, g.h_out(), g.w_out()),
            dst_dims: (g.c_in, g.h_in, g.w_in),
            k: g.k,
            batch: dz.nrows(),
            rows: &self.bwd.0,
            cols: &self.bwd.1,
            blocks: &blocks,
            wp: &wp,
            init: None,
        };
        gather.run(dx.as_mut_slice());
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("direct conv backward", LinearMap::<T>::dims(self), dz, x);
        let g = self.geometry;
        let batch = x.nrows();
        let zeros = vec![T::zero(); g.w_out() * batch];
        let kg = KernelGrad {
            x: x.as_slice(),
            dy: dz.as_slice(),
            g,
            batch,
            src_y: &self.src.0,
            src_x: &self.src.1,
            zeros: &zeros,
        };
        // KernelGrad reads without bounds checks: the addresses it forms are checked here.
        assert!(zeros.len() >= g.w_out() * batch, "zero column");
        assert!(self.src.0.len() == g.h_out() * g.k && self.src.1.len() == g.w_out() * g.k, "source tables");
        assert!(self.src.0.iter().all(|&v| v == NONE || (v as usize) < g.h_in), "row source table");
        assert!(self.src.1.iter().all(|&v| v == NONE || (v as usize) < g.w_in), "column source table");
        let widths: &[usize] = if KernelGrad::<T>::pairs() { &GRAD_WIDTHS_PAIRS } else { &GRAD_WIDTHS };
        let blocks = channel_blocks(g.c_out, widths);
        let tasks: Vec<(usize, usize, usize)> =
            blocks.iter().flat_map(|&(o0, rn)| (0..g.c_in).map(move |i| (o0, rn, i))).collect();
        let sums: Vec<Vec<T>> = tasks.par_iter().map(|&(o0, rn, i)| kg.task(o0, rn, i)).collect();
        // δw[o, i, t] += the task's sum, (R, k²) per task.
        let kk = g.k * g.k;
        let dw = &mut grads[0].data;
        for (&(o0, rn, i), s) in tasks.iter().zip(&sums) {
            for r in 0..rn {
                let row = &mut dw[((o0 + r) * g.c_in + i) * kk..][..kk];
                row.iter_mut().zip(&s[r * kk..(r + 1) * kk]).for_each(|(d, &v)| *d += v);
            }
        }
        // δb[o] += Σ_{oy, ox} Σ_b δy[b, o, oy, ox].
        let plane = g.h_out() * g.w_out() * batch;
        let db: Vec<T> = dz.as_slice().par_chunks(plane.max(1)).map(|dy_o| channel_sum_dispatch(dy_o, batch)).collect();
        grads[1].data.iter_mut().zip(db).for_each(|(d, v)| *d += v);
    }

    /// Taps per kernel entry, `h_out·w_out` per bias ([`ConvGeometry::conv_multiplicity`]).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        self.geometry.conv_multiplicity()
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::kernel_grad::{GRAD_LANES, GRAD_TAPS};
    use super::*;
    use crate::geometry::PaddingMode;

    /// The AVX-512 kernel gradient in pairs of output channels ([`KernelGrad::task_pairs`]) gives the bits of
    /// the 8-lane kernel with row stretches streamed ([`KernelGrad::task_with`]), and both give the bits of
    /// the 8-lane kernel that runs position by position wherever the order is the whole-lane-block one (every
    /// batch but those below 16 that are not 8, where streaming puts positions in lanes and the sums agree to
    /// a rounding tolerance), on random data, for kernels of 1, 3 and 5 taps a side (blocks of 9, 4 and 1
    /// taps), strides, dilations, padding modes and batches with lane tails. The pairs are checked only on a
    /// CPU with AVX-512 (the test says so otherwise), where they run.
    #[test]
    fn paired_and_streamed_kernel_gradients_have_the_bits_of_the_8_lane_kernel() {
        let pairs_run = KernelGrad::<f32>::pairs();
        if !pairs_run {
            eprintln!("no AVX-512: the paired kernel gradient does not run here; only the 8-lane streams are checked");
        }
        let mut rng = StdRng::seed_from_u64(5);
        let geometries = [
            (3, 4, 7, 3, 1, 1, 1, PaddingMode::Zeros),
            (2, 2, 9, 5, 1, 2, 1, PaddingMode::Reflect),
            (1, 4, 6, 1, 1, 0, 1, PaddingMode::Zeros),
            (2, 6, 9, 3, 2, 2, 2, PaddingMode::Circular),
        ];
        for (c_in, c_out, h, k, stride, pad, dil, mode) in geometries {
            let g = ConvGeometry { c_in, h_in: h, w_in: h, c_out, k, stride, pad, dil, mode };
            let conv = DirectConv::new(&g);
            for batch in [1, 3, 8, 12, 17, 64, 70] {
                let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
                let (x, dy, zeros) = (v(batch * g.in_len()), v(batch * g.out_len()), vec![0f32; g.w_out() * batch]);
                let kg = KernelGrad { x: &x, dy: &dy, g, batch, src_y: &conv.src.0, src_x: &conv.src.1, zeros: &zeros };
                // Below batch 16, unless whole lane blocks, a stretch's values share lanes across positions,
                // so streaming changes the order (`KernelGrad::low_lanes`): the streamed sums then agree with
                // the positions one by one to a rounding tolerance, and the pairs equal the streamed bits.
                let low = kg.low_lanes();
                assert_eq!(low, batch < 16 && batch % 8 != 0);
                for &(o0, rn) in channel_blocks(c_out, &GRAD_WIDTHS_PAIRS).iter().filter(|b| b.1 % 2 == 0) {
                    for i in 0..c_in {
                        let lanes8: Vec<f32> =
                            (0..rn / 2).flat_map(|p| kg.task_with::<2>(o0 + 2 * p, i, false)).collect();
                        let streamed: Vec<f32> =
                            (0..rn / 2).flat_map(|p| kg.task_with::<2>(o0 + 2 * p, i, true)).collect();
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        if low {
                            for (a, b) in streamed.iter().zip(&lanes8) {
                                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{g:?} batch {batch}: {a} vs {b}");
                            }
                        } else {
                            assert_eq!(bits(&streamed), bits(&lanes8), "{g:?} batch {batch}: 8 lanes, streamed");
                        }
                        // The portable lanes (not the AVX2 vectors `task_with` runs on such a CPU) give the
                        // same bits, partial lane blocks included.
                        let kk = k * k;
                        let portable: Vec<f32> = (0..rn / 2)
                            .flat_map(|p| {
                                let (o, mut out, mut t0) = (o0 + 2 * p, vec![0f32; 2 * kk], 0);
                                while t0 + GRAD_TAPS <= kk {
                                    let s = kg.block::<[f32; GRAD_LANES], 2, GRAD_TAPS>(o, i, t0, true);
                                    (0..2).for_each(|r| out[r * kk + t0..][..GRAD_TAPS].copy_from_slice(&s[r]));
                                    t0 += GRAD_TAPS;
                                }
                                while t0 < kk {
                                    let s = kg.block::<[f32; GRAD_LANES], 2, 1>(o, i, t0, true);
                                    (0..2).for_each(|r| out[r * kk + t0] = s[r][0]);
                                    t0 += 1;
                                }
                                out
                            })
                            .collect();
                        assert_eq!(bits(&portable), bits(&streamed), "{g:?} batch {batch}: portable lanes");
                        if pairs_run {
                            let pairs = kg.task(o0, rn, i);
                            assert_eq!(
                                bits(&pairs),
                                bits(&streamed),
                                "{g:?} batch {batch}: channels {o0}+{rn}, input {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}
