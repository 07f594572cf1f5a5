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
//! ([`AxisTaps`]). `G` is the adjoint of `F` for every padding mode: a border cell that reads input `i`
//! (reflect, replicate, circular) sends its gradient back to `i`, which is the fold `Pᵀ` of the reference
//! (the oracle's `pad_adjoint` in `tests/oracle/reference/`). The forward pass and the input gradient are one
//! routine, `Gather`, with the roles of the two sides exchanged and the kernel read transposed.
//!
//! Summation orders (fixed, so the bits do not depend on the number of threads): forward from `b[o]`, then
//! `i`, `ky`, `kx` increasing (the reference's order); input gradient `o`, then `G_h`, then `G_w` in list
//! order; kernel and bias gradients position by position, 8 batch lanes per accumulator, the lanes summed
//! in lane order at the end, then added to the gradient.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::cpu::{has_avx2, has_avx512};
use crate::disjoint::Disjoint;
use crate::geometry::{ConvGeometry, PaddingMode};
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// One axis of a convolution: `n_in` input and `n_out` output coordinates, `k` taps.
#[derive(Clone, Copy, Debug)]
struct Axis {
    n_in: usize,
    n_out: usize,
    k: usize,
    s: usize,
    p: usize,
    d: usize,
    mode: PaddingMode,
}

impl Axis {
    fn rows(g: &ConvGeometry) -> Self {
        Axis { n_in: g.h_in, n_out: g.h_out(), k: g.k, s: g.stride, p: g.pad, d: g.dil, mode: g.mode }
    }

    fn cols(g: &ConvGeometry) -> Self {
        Axis { n_in: g.w_in, n_out: g.w_out(), k: g.k, s: g.stride, p: g.pad, d: g.dil, mode: g.mode }
    }

    /// `src(o, κ) = pad_map(o·s + κ·d − p)`: the input coordinate that output `o` reads through tap `κ`.
    #[inline]
    fn src(&self, o: usize, kappa: usize) -> Option<usize> {
        self.mode.source((o * self.s + kappa * self.d) as isize - self.p as isize, self.n_in)
    }
}

/// `((F_h, F_w), (G_h, G_w))` of a geometry: the taps per output row and column, and their inverses per input
/// row and column ([`AxisTaps`]).
pub(super) fn axis_taps(g: &ConvGeometry) -> ((AxisTaps, AxisTaps), (AxisTaps, AxisTaps)) {
    let (ay, ax) = (Axis::rows(g), Axis::cols(g));
    ((AxisTaps::forward(&ay), AxisTaps::forward(&ax)), (AxisTaps::backward(&ay), AxisTaps::backward(&ax)))
}

/// For each coordinate `t` along one axis, a list of `(tap, coordinate on the other side)` pairs.
#[derive(Clone, Debug, Default)]
pub struct AxisTaps {
    /// Coordinate `t`'s pairs are `taps[start[t]..start[t + 1]]`.
    start: Vec<u32>,
    taps: Vec<(u32, u32)>,
}

impl AxisTaps {
    /// `F(o)` for every output coordinate: the taps `(κ, src(o, κ))` that read a value, `κ` increasing.
    fn forward(a: &Axis) -> Self {
        let lists: Vec<Vec<(u32, u32)>> = (0..a.n_out)
            .map(|o| (0..a.k).filter_map(|kappa| a.src(o, kappa).map(|i| (kappa as u32, i as u32))).collect())
            .collect();
        Self::from_lists(lists)
    }

    /// `G(i)` for every input coordinate: the pairs `(κ, o)` with `src(o, κ) = i`, `o` then `κ` increasing.
    fn backward(a: &Axis) -> Self {
        let mut lists = vec![Vec::new(); a.n_in];
        for o in 0..a.n_out {
            for kappa in 0..a.k {
                if let Some(i) = a.src(o, kappa) {
                    lists[i].push((kappa as u32, o as u32));
                }
            }
        }
        Self::from_lists(lists)
    }

    fn from_lists(lists: Vec<Vec<(u32, u32)>>) -> Self {
        let mut start = vec![0u32];
        let mut taps = Vec::new();
        for l in lists {
            taps.extend(l);
            start.push(taps.len() as u32);
        }
        AxisTaps { start, taps }
    }

    /// The pairs of coordinate `t`.
    #[inline]
    pub fn of(&self, t: usize) -> &[(u32, u32)] {
        &self.taps[self.start[t] as usize..self.start[t + 1] as usize]
    }
}

/// Destination channels per register block: blocks of 6, the rest as 4, 2, 1 (`16 = 6 + 6 + 4`).
fn channel_blocks(n: usize, widths: &[usize]) -> Vec<(usize, usize)> {
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
const GATHER_WIDTHS: [usize; 5] = [8, 6, 4, 2, 1];
/// The same with AVX2 (16 registers of 8 lanes), where 6 channels × 16 lanes (12 accumulators, two input
/// loads and a weight) is the widest block that stays in registers (see [`Gather::row_of`]).
const GATHER_WIDTHS_AVX2: [usize; 4] = [6, 4, 2, 1];

/// [`Gather`]'s channel block widths at the kernel level this process runs (the bits are the same for any).
fn gather_widths() -> &'static [usize] {
    if has_avx2() && !has_avx512() { &GATHER_WIDTHS_AVX2 } else { &GATHER_WIDTHS }
}

/// Register block widths of [`KernelGrad`] (output channels).
const GRAD_WIDTHS: [usize; 3] = [3, 2, 1];
/// The same with AVX-512 for `f32`, where a register holds the 8 lanes of two output channels
/// ([`KernelGrad::task_pairs`]): blocks of 4 and 2 channels run in pairs, a last single channel as before.
const GRAD_WIDTHS_PAIRS: [usize; 4] = [6, 4, 2, 1];
/// Taps per register block of [`KernelGrad`] (the rest one by one).
const GRAD_TAPS: usize = 4;
/// Batch lanes of the kernel-gradient accumulators.
const GRAD_LANES: usize = 8;

/// Weights packed for [`Gather`]: block `(r0, R)` of destination channels at offset `r0·c_src·k²`, laid out
/// `(c_src, k, k, R)`, so that the `R` weights of one tap are adjacent. `weight(r, c, t)` is the weight
/// from source channel `c` to destination channel `r` at tap `t = κy·k + κx`.
fn pack<T: Real>(
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
struct Gather<'a, T> {
    src: &'a [T],
    /// `(c, h, w)` of the source.
    src_dims: (usize, usize, usize),
    /// `(c, h, w)` of the destination.
    dst_dims: (usize, usize, usize),
    k: usize,
    batch: usize,
    rows: &'a AxisTaps,
    cols: &'a AxisTaps,
    blocks: &'a [(usize, usize)],
    /// [`pack`]ed weights.
    wp: &'a [T],
    /// One starting value per destination channel (the bias), or zeros.
    init: Option<&'a [T]>,
}

impl<T: Real> Gather<'_, T> {
    /// Writes every value of `dst`.
    fn run(&self, dst: &mut [T]) {
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

    fn row_dispatch(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
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

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn row_avx2(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        self.row::<true>(r0, rn, py, out)
    }

    /// The same loop with 512-bit registers: a block of 16 lanes is one register per destination channel, a
    /// block of 32 two (each loaded weight serves both).
    /// Each value's sum is the same (lanes are samples), so the bits do not depend on the width.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn row_avx512(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
        self.row::<false>(r0, rn, py, out)
    }

    /// Destination row `py` of channels `r0..r0 + rn`. `NARROW`: 16 vector registers (AVX2), so the lane
    /// blocks are narrower for wide channel blocks (see [`Self::row_of`]).
    #[inline(always)]
    fn row<const NARROW: bool>(&self, r0: usize, rn: usize, py: usize, out: &Disjoint<T>) {
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
    fn row_of<const R: usize, const NARROW: bool>(&self, r0: usize, py: usize, out: &Disjoint<T>) {
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
    fn block<const R: usize, const L: usize>(
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
                // SAFETY (the three reads): `run` checked that every tap is < k and every source
                // coordinate inside the source plane, so `(c, sy, sx)` is a source feature and lanes
                // `b0..b0 + L <= B` lie in its batch column; `wp` holds `(c_src, k, k, R)` weights.
                let src_row = unsafe { self.src.as_ptr().add((c * h_src + sy as usize) * w_src * batch + b0) };
                let w_row = unsafe { wp.as_ptr().add((c * kk + ky as usize * k) * R) };
                for &(kx, sx) in cols {
                    let xv: &[T; L] = unsafe { &*src_row.add(sx as usize * batch).cast::<[T; L]>() };
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

/// Marks a tap that reads nothing in [`KernelGrad`]'s source tables.
const NONE: u32 = u32::MAX;

/// The kernel gradient `δw[o, i, t] += Σ_{oy, ox} Σ_b δy[b, o, oy, ox] · x[b, i, src_h(oy, κy), src_w(ox, κx)]`,
/// `t = κy·k + κx`. Tasks are (register block of output channels, input channel); each returns its
/// `(R, k²)` sums, added to the gradient in task order.
struct KernelGrad<'a, T> {
    x: &'a [T],
    dy: &'a [T],
    g: ConvGeometry,
    batch: usize,
    /// `src_h(oy, κy)` at `[oy·k + κy]`, [`NONE`] when it reads nothing.
    src_y: &'a [u32],
    /// `src_w(ox, κx)` at `[ox·k + κx]`.
    src_x: &'a [u32],
    /// `B` zeros, read by taps that read nothing.
    zeros: &'a [T],
}

/// [`GRAD_LANES`] batch lanes of a kernel-gradient accumulator.
///
/// The accumulators of a [`KernelGrad`] block multiply two loaded vectors (δy and x), a pattern LLVM's
/// vectoriser leaves scalar once the block has more than a few accumulators; so the AVX2 build of `f32`
/// uses the vector type itself ([`F32x8`]). Both do the same per-lane `mul_add` and the same in-order lane
/// sum, so the bits agree.
trait Lanes<T>: Copy {
    fn zero() -> Self;
    /// `GRAD_LANES` values from `p`.
    ///
    /// # Safety
    /// `p` must point to `GRAD_LANES` readable values.
    unsafe fn load(p: *const T) -> Self;
    /// `self + a·b` lane by lane, rounded once.
    fn fma(self, a: Self, b: Self) -> Self;
    /// `self + a` lane by lane.
    fn add(self, a: Self) -> Self;
    /// The lanes summed in lane order.
    fn sum(self) -> T;
}

impl<T: Real> Lanes<T> for [T; GRAD_LANES] {
    #[inline(always)]
    fn zero() -> Self {
        [T::zero(); GRAD_LANES]
    }
    #[inline(always)]
    unsafe fn load(p: *const T) -> Self {
        // SAFETY: the caller's contract.
        unsafe { *p.cast::<[T; GRAD_LANES]>() }
    }
    #[inline(always)]
    fn fma(mut self, a: Self, b: Self) -> Self {
        for l in 0..GRAD_LANES {
            self[l] = a[l].mul_add(b[l], self[l]);
        }
        self
    }
    #[inline(always)]
    fn add(mut self, a: Self) -> Self {
        for l in 0..GRAD_LANES {
            self[l] += a[l];
        }
        self
    }
    #[inline(always)]
    fn sum(self) -> T {
        self.iter().fold(T::zero(), |s, &v| s + v)
    }
}

/// Eight `f32` lanes in one AVX register; only used inside `#[target_feature(enable = "avx2,fma")]` code.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct F32x8(std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
impl Lanes<f32> for F32x8 {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: only called from code compiled with AVX2 (see the type's doc).
        F32x8(unsafe { std::arch::x86_64::_mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's contract; AVX2 as above.
        F32x8(unsafe { std::arch::x86_64::_mm256_loadu_ps(p) })
    }
    #[inline(always)]
    fn fma(self, a: Self, b: Self) -> Self {
        // SAFETY: FMA as above.
        F32x8(unsafe { std::arch::x86_64::_mm256_fmadd_ps(a.0, b.0, self.0) })
    }
    #[inline(always)]
    fn add(self, a: Self) -> Self {
        // SAFETY: AVX as above.
        F32x8(unsafe { std::arch::x86_64::_mm256_add_ps(self.0, a.0) })
    }
    #[inline(always)]
    fn sum(self) -> f32 {
        let mut v = [0f32; GRAD_LANES];
        // SAFETY: `v` holds 8 values; AVX2 as above.
        unsafe { std::arch::x86_64::_mm256_storeu_ps(v.as_mut_ptr(), self.0) };
        v.iter().fold(0.0, |s, &x| s + x)
    }
}

impl<T: Real> KernelGrad<'_, T> {
    /// [`Self::block`], compiled for AVX2 + FMA when the CPU has them (chosen at run time), with explicit
    /// vectors for `f32`.
    /// `stream`: whether row stretches run as one stream ([`Self::stretch`]; the same bits either way).
    fn block_dispatch<const R: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
        stream: bool,
    ) -> [[T; TN]; R] {
        #[cfg(target_arch = "x86_64")]
        if has_avx2() {
            if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
                // SAFETY: T is f32, so the two types are one; the CPU has AVX2 and FMA.
                let me = unsafe { &*(self as *const Self as *const KernelGrad<'_, f32>) };
                let sums = unsafe { me.block_f32x8::<R, TN>(o0, i, t0, stream) };
                // SAFETY: T is f32.
                return unsafe { std::mem::transmute_copy(&sums) };
            }
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { self.block_avx2::<R, TN>(o0, i, t0, stream) };
        }
        self.block::<[T; GRAD_LANES], R, TN>(o0, i, t0, stream)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_avx2<const R: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
        stream: bool,
    ) -> [[T; TN]; R] {
        self.block::<[T; GRAD_LANES], R, TN>(o0, i, t0, stream)
    }

    /// The positions `lo..hi` of an output row (the first run) at which every tap of `taps` reads input column
    /// `ox·1 + kx·d − p` (no border mapping, nothing missing), when the stride is 1 and the batch is whole lane
    /// blocks; `(0, 0)` otherwise. Over such a stretch the batch columns each tap reads, and those of δy, are
    /// consecutive in memory.
    fn stretch<const TN: usize>(&self, taps: &[(usize, usize); TN]) -> (usize, usize) {
        let g = &self.g;
        if g.stride != 1 || !self.batch.is_multiple_of(GRAD_LANES) {
            return (0, 0);
        }
        let (k, w_out) = (g.k, g.w_out());
        let plain = |ox: usize| {
            taps.iter().all(|&(_, kx)| {
                let c = (ox + kx * g.dil) as i64 - g.pad as i64;
                self.src_x[ox * k + kx] != NONE && self.src_x[ox * k + kx] as i64 == c
            })
        };
        let Some(lo) = (0..w_out).find(|&ox| plain(ox)) else { return (0, 0) };
        let hi = (lo..w_out).find(|&ox| !plain(ox)).unwrap_or(w_out);
        (lo, hi)
    }

    /// Whether every tap of `taps` reads an input row at output row `oy` (none falls in zero padding), so that
    /// the row's stretch ([`Self::stretch`]) may run as one stream.
    #[inline(always)]
    fn row_reads<const TN: usize>(&self, taps: &[(usize, usize); TN], oy: usize) -> bool {
        taps.iter().all(|&(ky, _)| self.src_y[oy * self.g.k + ky] != NONE)
    }

    /// The batch columns of input channel `i` that the taps `taps` read at output position `(oy, ox)`: the
    /// zero column for a tap that reads nothing.
    ///
    /// # Safety
    /// [`DirectConv::backward_params`]' checks hold (the lengths of x, and source tables of input coordinates
    /// or [`NONE`]), so every column formed lies inside x.
    #[inline(always)]
    unsafe fn tap_columns<const TN: usize>(
        &self,
        i: usize,
        taps: &[(usize, usize); TN],
        oy: usize,
        ox: usize,
    ) -> [*const T; TN] {
        let (g, k, batch) = (&self.g, self.g.k, self.batch);
        let mut xs = [self.zeros.as_ptr(); TN];
        for (x, &(ky, kx)) in xs.iter_mut().zip(taps) {
            let (iy, ix) = (self.src_y[oy * k + ky], self.src_x[ox * k + kx]);
            if iy != NONE && ix != NONE {
                // SAFETY: the caller's.
                *x = unsafe { self.x.as_ptr().add(((i * g.h_in + iy as usize) * g.w_in + ix as usize) * batch) };
            }
        }
        xs
    }
}

#[cfg(target_arch = "x86_64")]
impl KernelGrad<'_, f32> {
    #[target_feature(enable = "avx2,fma")]
    unsafe fn block_f32x8<const R: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
        stream: bool,
    ) -> [[f32; TN]; R] {
        self.block::<F32x8, R, TN>(o0, i, t0, stream)
    }

    /// [`Self::task`] for an even number `rn` (2 or 4) of output channels with AVX-512: one 512-bit register
    /// holds the [`GRAD_LANES`] lanes of output channels `2p` (lanes 0..8) and `2p + 1` (lanes 8..16) at one
    /// tap, so each fused multiply-add does the work of two 8-lane ones. Every lane sums the same products in
    /// the same order as [`Self::block`] (positions, then lane blocks), and the lanes of each channel are
    /// added in lane order, so the bits equal those of the 8-lane kernel.
    ///
    /// # Safety
    /// The CPU has AVX-512F, AVX2 and FMA; [`DirectConv::backward_params`]' checks hold.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn task_pairs(&self, o0: usize, rn: usize, i: usize) -> Vec<f32> {
        let kk = self.g.k * self.g.k;
        let mut out = vec![0f32; rn * kk];
        // SAFETY: the caller's.
        unsafe {
            match rn {
                6 => self.fill_pairs::<3>(o0, i, &mut out),
                4 => self.fill_pairs::<2>(o0, i, &mut out),
                2 => self.fill_pairs::<1>(o0, i, &mut out),
                _ => unreachable!("pair block of {rn} channels"),
            }
        }
        out
    }

    /// Every tap of output channels `o0..o0 + 2P` into `out` `(2P, k²)`: blocks of 9 taps, then 4, then 1.
    ///
    /// # Safety
    /// [`Self::task_pairs`]'.
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn fill_pairs<const P: usize>(&self, o0: usize, i: usize, out: &mut [f32]) {
        let kk = self.g.k * self.g.k;
        let mut t0 = 0;
        // SAFETY (each block): the caller's.
        unsafe {
            while t0 + 9 <= kk {
                let s = self.block_pairs::<P, 9>(o0, i, t0);
                store_pairs(out, kk, t0, &s);
                t0 += 9;
            }
            while t0 + 4 <= kk {
                let s = self.block_pairs::<P, 4>(o0, i, t0);
                store_pairs(out, kk, t0, &s);
                t0 += 4;
            }
            while t0 < kk {
                let s = self.block_pairs::<P, 1>(o0, i, t0);
                store_pairs(out, kk, t0, &s);
                t0 += 1;
            }
        }
    }

    /// Taps `t0..t0 + TN` of output channels `o0..o0 + 2P` and input channel `i`: `P × TN` registers of two
    /// channels' 8 lanes each, over every position and sample. Returns `[p][h][j]`, channel `o0 + 2p + h`, tap
    /// `t0 + j`.
    ///
    /// # Safety
    /// [`Self::task_pairs`]'.
    #[target_feature(enable = "avx512f,avx2,fma")]
    #[inline]
    #[allow(clippy::needless_range_loop)] // the index loops over registers are the register tile
    unsafe fn block_pairs<const P: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
    ) -> [[[f32; TN]; 2]; P] {
        use std::arch::x86_64::*;
        let g = &self.g;
        let (h_out, w_out, k, batch) = (g.h_out(), g.w_out(), g.k, self.batch);
        let plane = h_out * w_out;
        let taps: [(usize, usize); TN] = std::array::from_fn(|j| ((t0 + j) / k, (t0 + j) % k));
        let dy = self.dy.as_ptr();
        let mut tail = [[[0f32; TN]; 2]; P];
        // SAFETY: as in `block`: backward_params checked the lengths of x and dy and the source tables, so every
        // column formed below lies inside its matrix and lanes b0..b0 + 8 <= B, b < B inside its batch column.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); TN]; P];
            // Positions `lo..hi` of a row where every tap reads input column `ox + kx·d − p`: with stride 1 and
            // whole lane blocks, their batch columns of x (per tap) and of δy (per channel) are consecutive, so
            // the stretch runs as one stream of lane blocks, in the order the positions would run one by one.
            let (lo, hi) = self.stretch(&taps);
            for oy in 0..h_out {
                let row_streams = hi > lo && self.row_reads(&taps, oy);
                let mut ox = 0;
                while ox < w_out {
                    let n_pos = if row_streams && ox == lo { hi - lo } else { 1 };
                    let pos = oy * w_out + ox;
                    let xs = self.tap_columns(i, &taps, oy, ox);
                    let mut ds = [[dy; 2]; P];
                    for p in 0..P {
                        for h in 0..2 {
                            ds[p][h] = dy.add(((o0 + 2 * p + h) * plane + pos) * batch);
                        }
                    }
                    let len = n_pos * batch;
                    let mut b0 = 0;
                    while b0 + GRAD_LANES <= len {
                        let mut dv = [_mm512_setzero_ps(); P];
                        for p in 0..P {
                            let lo = _mm512_castps256_ps512(_mm256_loadu_ps(ds[p][0].add(b0)));
                            let hi = _mm256_castps_pd(_mm256_loadu_ps(ds[p][1].add(b0)));
                            dv[p] = _mm512_castpd_ps(_mm512_insertf64x4::<1>(_mm512_castps_pd(lo), hi));
                        }
                        for j in 0..TN {
                            let xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(
                                xs[j].add(b0),
                            ))));
                            for p in 0..P {
                                acc[p][j] = _mm512_fmadd_ps(dv[p], xv, acc[p][j]);
                            }
                        }
                        b0 += GRAD_LANES;
                    }
                    // A stretch has whole lane blocks; one position may have a tail.
                    for b in b0..len {
                        for j in 0..TN {
                            for p in 0..P {
                                for h in 0..2 {
                                    tail[p][h][j] = (*ds[p][h].add(b)).mul_add(*xs[j].add(b), tail[p][h][j]);
                                }
                            }
                        }
                    }
                    ox += n_pos;
                }
            }
            // Each channel's 8 lanes in lane order, then its samples past the last lane block.
            let mut sums = tail;
            for p in 0..P {
                for j in 0..TN {
                    let mut v = [0f32; 16];
                    _mm512_storeu_ps(v.as_mut_ptr(), acc[p][j]);
                    for h in 0..2 {
                        let lanes = v[h * GRAD_LANES..(h + 1) * GRAD_LANES].iter().fold(0.0, |s, &x| s + x);
                        sums[p][h][j] = lanes + tail[p][h][j];
                    }
                }
            }
            sums
        }
    }
}

/// Writes a pair block's sums `[p][h][j]` (channel `2p + h` of the block, tap `t0 + j`) into `out` `(2P, k²)`.
#[cfg(target_arch = "x86_64")]
fn store_pairs<const P: usize, const TN: usize>(out: &mut [f32], kk: usize, t0: usize, sums: &[[[f32; TN]; 2]; P]) {
    for p in 0..P {
        for h in 0..2 {
            out[(2 * p + h) * kk + t0..][..TN].copy_from_slice(&sums[p][h]);
        }
    }
}

impl<T: Real> KernelGrad<'_, T> {
    /// Whether this gradient runs in pairs of output channels ([`Self::task_pairs`]): `f32` on a CPU with
    /// AVX-512. Its channel blocks are then [`GRAD_WIDTHS_PAIRS`], else [`GRAD_WIDTHS`].
    fn pairs() -> bool {
        cfg!(target_arch = "x86_64") && has_avx512() && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
    }

    /// `δw[o0..o0 + rn, i, :]`, `(rn, k²)` row-major.
    fn task(&self, o0: usize, rn: usize, i: usize) -> Vec<T> {
        #[cfg(target_arch = "x86_64")]
        if rn.is_multiple_of(2) && Self::pairs() {
            // SAFETY: T is f32 (pairs), so the two types are one; the CPU has AVX-512F, AVX2 and FMA.
            let me = unsafe { &*(self as *const Self as *const KernelGrad<'_, f32>) };
            let out = std::mem::ManuallyDrop::new(unsafe { me.task_pairs(o0, rn, i) });
            // SAFETY: T is f32: the same allocation, length and capacity.
            return unsafe { Vec::from_raw_parts(out.as_ptr() as *mut T, out.len(), out.capacity()) };
        }
        match rn {
            3 => self.task_of::<3>(o0, i),
            2 => self.task_of::<2>(o0, i),
            1 => self.task_of::<1>(o0, i),
            _ => unreachable!("block width {rn} not in {GRAD_WIDTHS:?}"),
        }
    }

    fn task_of<const R: usize>(&self, o0: usize, i: usize) -> Vec<T> {
        self.task_with::<R>(o0, i, true)
    }

    /// [`Self::task_of`], with or without streaming row stretches (`stream`; the tests compare the two).
    fn task_with<const R: usize>(&self, o0: usize, i: usize, stream: bool) -> Vec<T> {
        let kk = self.g.k * self.g.k;
        let mut out = vec![T::zero(); R * kk];
        let mut t0 = 0;
        while t0 + GRAD_TAPS <= kk {
            let sums = self.block_dispatch::<R, GRAD_TAPS>(o0, i, t0, stream);
            for r in 0..R {
                out[r * kk + t0..][..GRAD_TAPS].copy_from_slice(&sums[r]);
            }
            t0 += GRAD_TAPS;
        }
        while t0 < kk {
            let sums = self.block_dispatch::<R, 1>(o0, i, t0, stream);
            for r in 0..R {
                out[r * kk + t0] = sums[r][0];
            }
            t0 += 1;
        }
        out
    }

    /// Taps `t0..t0 + TN` of output channels `o0..o0 + R` and input channel `i`: `R × TN` accumulators of
    /// [`GRAD_LANES`] lanes stay in registers over every position and sample. With `stream`, a row's stretch
    /// ([`Self::stretch`]) runs as one loop of lane blocks over its consecutive batch columns, in the order the
    /// positions run one by one, so every lane sums the same products in the same order.
    #[inline(always)]
    fn block<V: Lanes<T>, const R: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
        stream: bool,
    ) -> [[T; TN]; R] {
        let g = &self.g;
        let (h_out, w_out, k, batch) = (g.h_out(), g.w_out(), g.k, self.batch);
        let plane = h_out * w_out;
        let taps: [(usize, usize); TN] = std::array::from_fn(|j| ((t0 + j) / k, (t0 + j) % k));
        let mut acc = [[V::zero(); TN]; R];
        // Samples past the last full block of lanes, accumulated apart.
        let mut tail = [[T::zero(); TN]; R];
        let dy = self.dy.as_ptr();
        let (lo, hi) = if stream { self.stretch(&taps) } else { (0, 0) };
        for oy in 0..h_out {
            let row_streams = hi > lo && self.row_reads(&taps, oy);
            let mut ox = 0;
            while ox < w_out {
                let n_pos = if row_streams && ox == lo { hi - lo } else { 1 };
                let pos = oy * w_out + ox;
                // Batch columns of the taps' inputs (the zero column for taps that read nothing) and of
                // the output channels' residuals.
                // SAFETY (all reads below): `backward_params` checked the lengths of x and dy and that the
                // source tables hold input coordinates or NONE, so every column is inside its matrix and
                // lanes b0..b0 + GRAD_LANES <= len, b < len lie in it (a stretch's `n_pos` columns are
                // consecutive and inside it).
                let xs = unsafe { self.tap_columns(i, &taps, oy, ox) };
                let mut ds = [dy; R];
                unroll!(r < R => {
                    ds[r] = unsafe { dy.add(((o0 + r) * plane + pos) * batch) };
                });
                let len = n_pos * batch;
                let mut b0 = 0;
                while b0 + GRAD_LANES <= len {
                    unroll!(r < R => {
                        let dv = unsafe { V::load(ds[r].add(b0)) };
                        unroll!(j < TN => {
                            acc[r][j] = acc[r][j].fma(dv, unsafe { V::load(xs[j].add(b0)) });
                        });
                    });
                    b0 += GRAD_LANES;
                }
                // A stretch has whole lane blocks; one position may have a tail.
                for b in b0..len {
                    for j in 0..TN {
                        for r in 0..R {
                            tail[r][j] = unsafe { (*ds[r].add(b)).mul_add(*xs[j].add(b), tail[r][j]) };
                        }
                    }
                }
                ox += n_pos;
            }
        }
        // The lanes in order, then the samples past the last full lane block.
        let mut sums = tail;
        unroll!(r < R => {
            unroll!(j < TN => {
                sums[r][j] = acc[r][j].sum() + tail[r][j];
            });
        });
        sums
    }
}

/// `δb[o] = Σ_{oy, ox} Σ_b δy[b, o, oy, ox]` for one output channel: the batch columns of `dy_o`, summed
/// position by position into [`GRAD_LANES`] lanes (samples past the last full lane block apart), the lanes
/// then in order.
#[inline(always)]
fn channel_sum<T: Real, V: Lanes<T>>(dy_o: &[T], batch: usize) -> T {
    let (mut acc, mut tail) = (V::zero(), T::zero());
    for col in dy_o.chunks_exact(batch.max(1)) {
        let mut b0 = 0;
        while b0 + GRAD_LANES <= batch {
            // SAFETY: lanes b0..b0 + GRAD_LANES <= B of a column of B values.
            acc = acc.add(unsafe { V::load(col.as_ptr().add(b0)) });
            b0 += GRAD_LANES;
        }
        for &v in &col[b0..] {
            tail += v;
        }
    }
    acc.sum() + tail
}

/// [`channel_sum`], compiled for AVX2 when the CPU has it, with explicit vectors for `f32`.
fn channel_sum_dispatch<T: Real>(dy_o: &[T], batch: usize) -> T {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn f32x8(dy_o: &[f32], batch: usize) -> f32 {
            channel_sum::<f32, F32x8>(dy_o, batch)
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Real>(dy_o: &[T], batch: usize) -> T {
            channel_sum::<T, [T; GRAD_LANES]>(dy_o, batch)
        }
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            // SAFETY: T is f32, so the slices and the result have the same type; the CPU has AVX2 and FMA.
            let dy32 = unsafe { std::slice::from_raw_parts(dy_o.as_ptr().cast::<f32>(), dy_o.len()) };
            let s = unsafe { f32x8(dy32, batch) };
            return unsafe { std::mem::transmute_copy(&s) };
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2(dy_o, batch) };
    }
    channel_sum::<T, [T; GRAD_LANES]>(dy_o, batch)
}

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
        let zeros = vec![T::zero(); batch];
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

    use super::*;

    /// The AVX-512 kernel gradient in pairs of output channels ([`KernelGrad::task_pairs`]) and the 8-lane
    /// kernel with row stretches streamed ([`KernelGrad::task_with`]) give the bits of the 8-lane kernel that
    /// runs position by position, on random data, for kernels of 1, 3 and 5 taps a side (blocks of 9, 4 and 1
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
            for batch in [3, 8, 17, 64, 70] {
                let mut v = |n: usize| (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
                let (x, dy, zeros) = (v(batch * g.in_len()), v(batch * g.out_len()), vec![0f32; batch]);
                let kg = KernelGrad { x: &x, dy: &dy, g, batch, src_y: &conv.src.0, src_x: &conv.src.1, zeros: &zeros };
                for &(o0, rn) in channel_blocks(c_out, &GRAD_WIDTHS_PAIRS).iter().filter(|b| b.1 % 2 == 0) {
                    for i in 0..c_in {
                        let lanes8: Vec<f32> =
                            (0..rn / 2).flat_map(|p| kg.task_with::<2>(o0 + 2 * p, i, false)).collect();
                        let streamed: Vec<f32> =
                            (0..rn / 2).flat_map(|p| kg.task_with::<2>(o0 + 2 * p, i, true)).collect();
                        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                        assert_eq!(bits(&streamed), bits(&lanes8), "{g:?} batch {batch}: 8 lanes, streamed");
                        if pairs_run {
                            let pairs = kg.task(o0, rn, i);
                            assert_eq!(
                                bits(&pairs),
                                bits(&lanes8),
                                "{g:?} batch {batch}: channels {o0}+{rn}, input {i}"
                            );
                        }
                    }
                }
            }
        }
    }
}
