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

    /// Destination row `py` of channels `r0..r0 + R`, position by position, in lane blocks of 32, 16, 8 and
    /// 1 samples. With `NARROW` (AVX2: 16 registers of 8 lanes) a block of `R` channels × `L` lanes takes
    /// `R·L/8` accumulators, so the widest lane block is 16 lanes for 6 or 4 channels (and 8 for 8, which
    /// [`GATHER_WIDTHS_AVX2`] does not use): the accumulators, the loaded input and a broadcast weight fit the
    /// registers. (Blocks of 8 channels × 32 lanes, 32 accumulators, spilled to the stack.) Each value's sum is
    /// the same in any block (lanes are samples), so the bits do not depend on the widths.
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
        for px in 0..self.dst_dims.2 {
            let cols = self.cols.of(px);
            let at = (r0, py, px);
            let mut b0 = 0;
            while widest >= 32 && b0 + 32 <= batch {
                self.block::<R, 32>(wp, rows, cols, at, b0, out);
                b0 += 32;
            }
            while widest >= 16 && b0 + 16 <= batch {
                self.block::<R, 16>(wp, rows, cols, at, b0, out);
                b0 += 16;
            }
            while b0 + 8 <= batch {
                self.block::<R, 8>(wp, rows, cols, at, b0, out);
                b0 += 8;
            }
            while b0 < batch {
                self.block::<R, 1>(wp, rows, cols, at, b0, out);
                b0 += 1;
            }
        }
    }

    /// Lanes `b0..b0 + L` of destination `(r0..r0 + R, py, px)`, kept in registers over every term.
    #[inline(always)]
    pub(super) fn block<const R: usize, const L: usize>(
        &self,
        wp: &[T],
        rows: &[(u32, u32)],
        cols: &[(u32, u32)],
        (r0, py, px): (usize, usize, usize),
        b0: usize,
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
        debug_assert!(wp.len() == R * c_src * kk && b0 + L <= batch);
        for c in 0..c_src {
            for &(ky, sy) in rows {
                // The reads below are unchecked: `run` checked that every tap is < k and every source
                // coordinate inside the source plane, so `(c, sy, sx)` is a source feature and lanes
                // `b0..b0 + L <= B` lie in its batch column; `wp` holds `(c_src, k, k, R)` weights.
                // SAFETY: `c < c_src` and `sy < h_src` (checked by `run`), so the offset is at most that of
                // feature `(c, sy, 0)`'s lane `b0 < B`, inside `src` (length `B·c_src·h_src·w_src`, checked).
                let src_row = unsafe { self.src.as_ptr().add((c * h_src + sy as usize) * w_src * batch + b0) };
                // SAFETY: `c < c_src` and `ky < k` (checked by `run`), and `wp` holds `R·c_src·k²` weights (the
                // slice `row_of` cut), so `(c·k² + ky·k)·R` is inside it.
                let w_row = unsafe { wp.as_ptr().add((c * kk + ky as usize * k) * R) };
                for &(kx, sx) in cols {
                    // SAFETY: `sx < w_src` (checked by `run`), so `src_row + sx·B` is lane `b0` of feature
                    // `(c, sy, sx)`, and `b0 + L <= B` (the lane blocks of `row_of`): the `L` values lie in its
                    // batch column; `[T; L]` has `T`'s alignment.
                    let xv: &[T; L] = unsafe { &*src_row.add(sx as usize * batch).cast::<[T; L]>() };
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
        for (r, a) in acc.iter().enumerate() {
            let f = ((r0 + r) * h_dst + py) * w_dst + px;
            // SAFETY: destination (r0 + r, py, px) belongs to this task only (tasks partition channel
            // blocks × rows), and lanes b0..b0 + L to this block only.
            unsafe { out.slice(f * batch + b0, L) }.copy_from_slice(a);
        }
    }
}
