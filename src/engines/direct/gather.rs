//! `Gather`: the forward pass and the input gradient of the direct convolution, one routine with the roles of
//! the two sides exchanged (see [`super::conv`]).

use rayon::prelude::*;

use super::taps::AxisTaps;
use crate::cpu::{has_avx2, has_avx512};
use crate::disjoint::Disjoint;
use crate::scalar::Real;

/// Destination channels per register block: blocks of 6, the rest as 4, 2, 1 (`16 = 6 + 6 + 4`).
pub(super) fn channel_blocks(n: usize, widths: &[usize]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut r0 = 0;
    for &w in widths {
        while n - r0 >= w {
            blocks.push((r0, w));
            r0 += w;
        }
    }
    debug_assert_eq!(r0, n, "widths end with 1");
    blocks
}

/// Register block widths of [`Gather`] (destination channels).
pub(super) const GATHER_WIDTHS: [usize; 5] = [8, 6, 4, 2, 1];
/// The same with AVX2 (16 registers of 8 lanes), where 6 channels × 16 lanes (12 accumulators, two input
/// loads and a weight) is the widest block that stays in registers (see [`Gather::row_of`]).
pub(super) const GATHER_WIDTHS_AVX2: [usize; 4] = [6, 4, 2, 1];

/// [`Gather`]'s channel block widths at the kernel level this process runs (the bits are the same for any).
pub(super) fn gather_widths() -> &'static [usize] {
    if has_avx2() && !has_avx512() { &GATHER_WIDTHS_AVX2 } else { &GATHER_WIDTHS }
}

/// Weights packed for [`Gather`]: block `(r0, R)` of destination channels at offset `r0·c_src·k²`, laid out
/// `(c_src, k, k, R)`, so that the `R` weights of one tap are adjacent. `weight(r, c, t)` is the weight
/// from source channel `c` to destination channel `r` at tap `t = κy·k + κx`.
pub(super) fn pack<T: Real>(
    blocks: &[(usize, usize)],
    c_src: usize,
    kk: usize,
    weight: impl Fn(usize, usize, usize) -> T,
) -> Vec<T> {
    let mut wp = Vec::with_capacity(blocks.iter().map(|b| b.1).sum::<usize>() * c_src * kk);
    for &(r0, rn) in blocks {
        for c in 0..c_src {
            for t in 0..kk {
                wp.extend((r0..r0 + rn).map(|r| weight(r, c, t)));
            }
        }
    }
    wp
}

/// A gather product on the (B, F) layout:
///
/// ```text
/// dst[:, (r, py, px)] = init[r] + Σ_c Σ_{(κy, sy) ∈ rows(py)} Σ_{(κx, sx) ∈ cols(px)} w(r, c, κy, κx) · src[:, (c, sy, sx)]
/// ```
///
/// `src` (B, c_src·h_src·w_src), `dst` (B, c_dst·h_dst·w_dst). The forward pass is `dst = y`, `src = x`,
/// `rows = F_h`; the input gradient `dst = δx`, `src = δy`, `rows = G_h`, the kernel read transposed.
/// Tasks are (register block of destination channels, destination row); each writes its own outputs.
pub(super) struct Gather<'a, T> {
    pub(super) src: &'a [T],
    /// `(c, h, w)` of the source.
    pub(super) src_dims: (usize, usize, usize),
    /// `(c, h, w)` of the destination.
    pub(super) dst_dims: (usize, usize, usize),
    pub(super) k: usize,
    pub(super) batch: usize,
    pub(super) rows: &'a AxisTaps,
    pub(super) cols: &'a AxisTaps,
    pub(super) blocks: &'a [(usize, usize)],
    /// [`pack`]ed weights.
    pub(super) wp: &'a [T],
    /// One starting value per destination channel (the bias), or zeros.
    pub(super) init: Option<&'a [T]>,
}

impl<T: Real> Gather<'_, T> {
    /// Writes every value of `dst`.
    pub(super) fn run(&self, dst: &mut [T]) {
        let ((c_src, h_src, w_src), (c_dst, h_dst, w_dst)) = (self.src_dims, self.dst_dims);
        let (k, batch) = (self.k, self.batch);
        // The inner loops read without bounds checks: every address they form is checked here.
        assert_eq!(self.src.len(), batch * c_src * h_src * w_src, "Gather: source length");
        assert_eq!(dst.len(), batch * c_dst * h_dst * w_dst, "Gather: destination length");
        assert_eq!(self.wp.len(), c_dst * c_src * k * k, "Gather: packed weights");
        assert_eq!(self.blocks.iter().map(|b| b.1).sum::<usize>(), c_dst, "Gather: blocks");
        assert!(self.init.is_none_or(|b| b.len() == c_dst), "Gather: one starting value per channel");
        assert!(self.rows.start.len() == h_dst + 1 && self.cols.start.len() == w_dst + 1, "Gather: tap lists");
        assert!(self.rows.taps.iter().all(|&(t, s)| (t as usize) < k && (s as usize) < h_src), "Gather: row taps");
        assert!(self.cols.taps.iter().all(|&(t, s)| (t as usize) < k && (s as usize) < w_src), "Gather: column taps");
        // A run [a, e) reads, through entry j of column a's list, source columns s_j..s_j + (e − a): inside the
        // source row, and the runs cover the destination row in order.
        let runs = &self.cols.runs;
        assert!(
            runs.first().is_none_or(|r| r.0 == 0)
                && runs.last().map_or(w_dst == 0, |r| r.1 as usize == w_dst)
                && runs.windows(2).all(|p| p[0].1 == p[1].0)
                && runs.iter().all(|&(a, e)| {
                    a < e && self.cols.of(a as usize).iter().all(|&(_, s)| ((s + (e - a - 1)) as usize) < w_src)
                }),
            "Gather: column runs"
        );
        let out = Disjoint::new(dst);
        (0..self.blocks.len() * h_dst).into_par_iter().for_each(|task| {
            let (r0, rn) = self.blocks[task / h_dst];
            self.row_dispatch(r0, rn, task % h_dst, &out);
        });
    }

    pub(super) fn row_dispatch(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        #[cfg(target_arch = "x86_64")]
        if has_avx512() {
            // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked above).
            return unsafe { self.row_avx512(r0, rn, py, out) };
        }
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { self.row_avx2(r0, rn, py, out) };
        }
        self.row::<false>(r0, rn, py, out)
    }

    /// [`Self::row`] compiled for AVX2 + FMA, with the narrower lane blocks of 16 registers.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA, and the checks of [`Self::run`] hold (the body reads without bounds checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn row_avx2(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        self.row::<true>(r0, rn, py, out)
    }

    /// The same loop with 512-bit registers: a block of 16 lanes is one register per destination channel, a
    /// block of 32 two (each loaded weight serves both).
    /// Each value's sum is the same (lanes are samples), so the bits do not depend on the width.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA, and the checks of [`Self::run`] hold (the body reads without bounds
    /// checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn row_avx512(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        self.row::<false>(r0, rn, py, out)
    }

    /// Destination row `py` of channels `r0..r0 + rn`. `NARROW`: 16 vector registers (AVX2), so the lane
    /// blocks are narrower for wide channel blocks (see [`Self::row_of`]).
    #[inline(always)]
    pub(super) fn row<const NARROW: bool>(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        match rn {
            8 => self.row_of::<8, NARROW>(r0, py, out),
            6 => self.row_of::<6, NARROW>(r0, py, out),
            4 => self.row_of::<4, NARROW>(r0, py, out),
            2 => self.row_of::<2, NARROW>(r0, py, out),
            1 => self.row_of::<1, NARROW>(r0, py, out),
            _ => unreachable!("block width {rn} not in {GATHER_WIDTHS:?}"),
        }
    }

    /// Destination row `py` of channels `r0..r0 + R`, shift run by shift run (`AxisTaps::runs`), in lane blocks
    /// of 32, 16, 8 and 1 consecutive `(position, sample)` values of the run. Over a run `[a, e)` the
    /// `(e − a)·B` destination values of one channel are contiguous, and so are the source values each entry
    /// of the (shifted) column list reads, so a lane block may span several positions: the lanes are samples
    /// at large batch and positions × samples at small batch, and every lane sums its own value's terms in
    /// the same order either way. A run's last values take one more block ending at the run's end
    /// (overlapping the previous one, whose values it writes again with the same bits) when the run has
    /// room for it, else single lanes. With `NARROW` (AVX2: 16 registers of 8 lanes) a block of `R`
    /// channels × `L` lanes takes `R·L/8` accumulators, so the widest lane block is 16 lanes for 6 or 4
    /// channels (and 8 for 8, which [`GATHER_WIDTHS_AVX2`] does not use): the accumulators, the loaded input
    /// and a broadcast weight fit the registers. (Blocks of 8 channels × 32 lanes, 32 accumulators, spilled
    /// to the stack.) Each value's sum is the same in any block, so the bits depend neither on the widths
    /// nor on the batch's layout.
    #[inline(always)]
    pub(super) fn row_of<const R: usize, const NARROW: bool>(&self, r0: usize, py: usize, out: &Disjoint<T>) {
        let widest = match (NARROW, R) {
            (false, _) | (true, ..=2) => 32,
            (true, ..=6) => 16,
            (true, _) => 8,
        };
        debug_assert!(!NARROW || R <= 6, "AVX2 runs blocks of at most 6 channels ({GATHER_WIDTHS_AVX2:?})");
        let (c_src, _, _) = self.src_dims;
        let kk = self.k * self.k;
        let wp = &self.wp[r0 * c_src * kk..][..R * c_src * kk];
        let rows = self.rows.of(py);
        let batch = self.batch;
        for &(a, e) in &self.cols.runs {
            let (a, e) = (a as usize, e as usize);
            let cols = self.cols.of(a);
            let at = (r0, py, a);
            let len = (e - a) * batch;
            let mut q = 0;
            while widest >= 32 && q + 32 <= len {
                self.block::<R, 32>(wp, rows, cols, at, q, len, out);
                q += 32;
            }
            while widest >= 16 && q + 16 <= len {
                self.block::<R, 16>(wp, rows, cols, at, q, len, out);
                q += 16;
            }
            while q + 8 <= len {
                self.block::<R, 8>(wp, rows, cols, at, q, len, out);
                q += 8;
            }
            if q < len {
                if widest >= 16 && len >= 16 {
                    self.block::<R, 16>(wp, rows, cols, at, len - 16, len, out);
                } else if len >= 8 {
                    self.block::<R, 8>(wp, rows, cols, at, len - 8, len, out);
                } else {
                    while q < len {
                        self.block::<R, 1>(wp, rows, cols, at, q, len, out);
                        q += 1;
                    }
                }
            }
        }
    }

    /// Values `q0..q0 + L` of the run that starts at destination `(r0..r0 + R, py, a)` and holds `len`
    /// `(position, sample)` values per channel (`cols` is position `a`'s list), kept in registers over every
    /// term.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn block<const R: usize, const L: usize>(
        &self,
        wp: &[T],
        rows: &[(u32, u32)],
        cols: &[(u32, u32)],
        (r0, py, a): (usize, usize, usize),
        q0: usize,
        len: usize,
        out: &Disjoint<T>,
    ) {
        let (c_src, h_src, w_src) = self.src_dims;
        let (_, h_dst, w_dst) = self.dst_dims;
        let (k, batch) = (self.k, self.batch);
        let kk = k * k;
        let mut acc = [[T::zero(); L]; R];
        if let Some(init) = self.init {
            for (r, a) in acc.iter_mut().enumerate() {
                *a = [init[r0 + r]; L];
            }
        }
        assert!(q0 + L <= len, "Gather: lane block past its run");
        debug_assert!(wp.len() == R * c_src * kk);
        for c in 0..c_src {
            for &(ky, sy) in rows {
                // The reads below are unchecked: `run` checked that every tap is < k, every source coordinate
                // inside the source plane and every run's shifted source columns inside the source row, so
                // `(c, sy, sx + j)` is a source feature for `j < e − a`, and values `q0..q0 + L <= len` from
                // its column `sx`'s lane 0 lie in those `e − a` consecutive batch columns; `wp` holds
                // `(c_src, k, k, R)` weights.
                // SAFETY: `c < c_src` and `sy < h_src` (checked by `run`), so the offset is that of feature
                // `(c, sy, 0)`'s lane 0, inside `src` (length `B·c_src·h_src·w_src`, checked).
                let src_row = unsafe { self.src.as_ptr().add((c * h_src + sy as usize) * w_src * batch) };
                // SAFETY: `c < c_src` and `ky < k` (checked by `run`), and `wp` holds `R·c_src·k²` weights (the
                // slice `row_of` cut), so `(c·k² + ky·k)·R` is inside it.
                let w_row = unsafe { wp.as_ptr().add((c * kk + ky as usize * k) * R) };
                for &(kx, sx) in cols {
                    // SAFETY: `sx + (e − a − 1) < w_src` for this run (checked by `run`) and `q0 + L <= len =
                    // (e − a)·B` (asserted above), so the `L` values from `src_row + sx·B + q0` lie in the
                    // batch columns of features `(c, sy, sx..sx + e − a)`, inside `src`; `[T; L]` has `T`'s
                    // alignment.
                    let xv: &[T; L] = unsafe { &*src_row.add(sx as usize * batch + q0).cast::<[T; L]>() };
                    // SAFETY: `kx < k` (checked by `run`), so the `R` weights of tap `(ky, kx)` of channel `c`,
                    // at `((c·k + ky)·k + kx)·R`, lie inside `wp`'s `R·c_src·k²`; `[T; R]` has `T`'s alignment.
                    let wv: &[T; R] = unsafe { &*w_row.add(kx as usize * R).cast::<[T; R]>() };
                    unroll!(r < R => {
                        for l in 0..L {
                            acc[r][l] = wv[r].mul_add(xv[l], acc[r][l]);
                        }
                    });
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            let f = ((r0 + r) * h_dst + py) * w_dst + a;
            // SAFETY: the destinations (r0 + r, py, a..e) belong to this task only (tasks partition channel
            // blocks × rows), values q0..q0 + L <= len of the run lie in their batch columns, and this
            // sub-slice dies at the end of the statement (a last block may write values again: not while
            // another sub-slice lives).
            unsafe { out.slice(f * batch + q0, L) }.copy_from_slice(acc_r);
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::engines::direct::taps::axis_taps;
    use crate::geometry::{ConvGeometry, PaddingMode};

    /// Every value of a gather product summed one by one, in the order the module fixes (the start value, then
    /// source channel, row list, column list), with `mul_add`: the bits of the position-by-position path
    /// that ran before the shift runs, whose lanes were samples.
    fn one_by_one(gt: &Gather<'_, f32>) -> Vec<f32> {
        let ((c_src, h_src, w_src), (c_dst, h_dst, w_dst)) = (gt.src_dims, gt.dst_dims);
        let (k, batch) = (gt.k, gt.batch);
        let mut dst = vec![0f32; batch * c_dst * h_dst * w_dst];
        let weight = |r: usize, c: usize, t: usize| {
            let &(r0, rn) = gt.blocks.iter().find(|b| (b.0..b.0 + b.1).contains(&r)).unwrap();
            gt.wp[r0 * c_src * k * k + (c * k * k + t) * rn + (r - r0)]
        };
        for r in 0..c_dst {
            for py in 0..h_dst {
                for px in 0..w_dst {
                    for b in 0..batch {
                        let mut acc = gt.init.map_or(0.0, |i| i[r]);
                        for c in 0..c_src {
                            for &(ky, sy) in gt.rows.of(py) {
                                for &(kx, sx) in gt.cols.of(px) {
                                    let x = gt.src[((c * h_src + sy as usize) * w_src + sx as usize) * batch + b];
                                    acc = weight(r, c, ky as usize * k + kx as usize).mul_add(x, acc);
                                }
                            }
                        }
                        dst[((r * h_dst + py) * w_dst + px) * batch + b] = acc;
                    }
                }
            }
        }
        dst
    }

    /// The shift-run gather (lane blocks across positions at small batch, overlapping last blocks) gives, for
    /// the forward pass and the input gradient, the bits of the sums taken one value at a time in the fixed
    /// order, at every kernel level this CPU runs, over batches 1 to 70, strides, dilations and padding
    /// modes. The runs of a stride-1 row are its interior plus one run per border position.
    #[test]
    fn shift_run_gather_has_the_bits_of_the_value_by_value_sums() {
        let mut rng = StdRng::seed_from_u64(27);
        let geometries = [
            (3, 8, 9, 3, 1, 1, 1, PaddingMode::Zeros),
            (2, 6, 11, 3, 1, 2, 2, PaddingMode::Reflect),
            (4, 2, 7, 1, 1, 0, 1, PaddingMode::Zeros),
            (2, 4, 9, 5, 2, 2, 1, PaddingMode::Circular),
            (5, 7, 40, 3, 1, 1, 1, PaddingMode::Replicate),
        ];
        for (c_in, c_out, h, k, stride, pad, dil, mode) in geometries {
            let g = ConvGeometry { c_in, h_in: h, w_in: h, c_out, k, stride, pad, dil, mode };
            assert!(g.check().is_ok(), "{g:?}");
            let ((fh, fw), (bh, bw)) = axis_taps(&g);
            if stride == 1 && pad == 1 && k == 3 {
                let n = g.w_out() as u32;
                assert_eq!(fw.runs, vec![(0, 1), (1, n - 1), (n - 1, n)], "{g:?}: forward runs");
            }
            for batch in [1, 2, 3, 5, 8, 12, 16, 17, 32, 64, 70] {
                let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
                let (x, dy, w, bias) =
                    (v(batch * g.in_len()), v(batch * g.out_len()), v(c_out * c_in * k * k), v(c_out));
                let kk = k * k;
                for widths in [&GATHER_WIDTHS[..], &GATHER_WIDTHS_AVX2[..]] {
                    let fwd_blocks = channel_blocks(c_out, widths);
                    let bwd_blocks = channel_blocks(c_in, widths);
                    let fwd_wp = pack(&fwd_blocks, c_in, kk, |o, i, t| w[(o * c_in + i) * kk + t]);
                    let bwd_wp = pack(&bwd_blocks, c_out, kk, |i, o, t| w[(o * c_in + i) * kk + t]);
                    let gathers = [
                        Gather {
                            src: &x,
                            src_dims: (c_in, h, h),
                            dst_dims: (c_out, g.h_out(), g.w_out()),
                            k,
                            batch,
                            rows: &fh,
                            cols: &fw,
                            blocks: &fwd_blocks,
                            wp: &fwd_wp,
                            init: Some(&bias),
                        },
                        Gather {
                            src: &dy,
                            src_dims: (c_out, g.h_out(), g.w_out()),
                            dst_dims: (c_in, h, h),
                            k,
                            batch,
                            rows: &bh,
                            cols: &bw,
                            blocks: &bwd_blocks,
                            wp: &bwd_wp,
                            init: None,
                        },
                    ];
                    for (name, gt) in ["forward", "input gradient"].iter().zip(&gathers) {
                        let want: Vec<u32> = one_by_one(gt).iter().map(|v| v.to_bits()).collect();
                        let mut got = vec![f32::NAN; want.len()];
                        gt.run(&mut got);
                        let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                        assert!(got == want, "{g:?} batch {batch} widths {widths:?}: {name} (dispatched)");
                        // The portable loop, and the AVX2 one with its narrow blocks when the CPU has AVX2.
                        let mut levels: Vec<bool> = vec![false];
                        if has_avx2() && widths == GATHER_WIDTHS_AVX2 {
                            levels.push(true);
                        }
                        for narrow in levels {
                            let mut got = vec![f32::NAN; want.len()];
                            let out = Disjoint::new(&mut got);
                            for &(r0, rn) in gt.blocks {
                                for py in 0..gt.dst_dims.1 {
                                    if narrow {
                                        #[cfg(target_arch = "x86_64")]
                                        // SAFETY: the CPU has AVX2 and FMA (checked above), and `run` checked
                                        // this product's addresses above.
                                        unsafe {
                                            gt.row_avx2(r0, rn, py, &out)
                                        };
                                    } else {
                                        gt.row::<false>(r0, rn, py, &out);
                                    }
                                }
                            }
                            let got: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                            assert!(got == want, "{g:?} batch {batch}: {name}, narrow {narrow}");
                        }
                    }
                }
            }
        }
    }
}
