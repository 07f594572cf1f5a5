//! `KernelGrad`: the kernel and bias gradients of the direct convolution, position by position in batch lanes
//! (see [`super::conv`]).

use super::taps::NONE;
use crate::cpu::{has_avx2, has_avx512};
use crate::geometry::{ConvGeometry, tap_coord};
use crate::scalar::Real;

/// Register block widths of [`KernelGrad`] (output channels).
pub(super) const GRAD_WIDTHS: [usize; 3] = [3, 2, 1];
/// The same with AVX-512 for `f32`, where a register holds the 8 lanes of two output channels
/// ([`KernelGrad::task_pairs`]): blocks of 4 and 2 channels run in pairs, a last single channel as before.
pub(super) const GRAD_WIDTHS_PAIRS: [usize; 4] = [6, 4, 2, 1];
/// Taps per register block of [`KernelGrad`] (the rest one by one).
pub(super) const GRAD_TAPS: usize = 4;
/// Batch lanes of the kernel-gradient accumulators.
pub(super) const GRAD_LANES: usize = 8;

/// The kernel gradient `δw[o, i, t] += Σ_{oy, ox} Σ_b δy[b, o, oy, ox] · x[b, i, src_h(oy, κy), src_w(ox, κx)]`,
/// `t = κy·k + κx`. Tasks are (register block of output channels, input channel); each returns its
/// `(R, k²)` sums, added to the gradient in task order.
pub(super) struct KernelGrad<'a, T> {
    pub(super) x: &'a [T],
    pub(super) dy: &'a [T],
    pub(super) g: ConvGeometry,
    pub(super) batch: usize,
    /// `src_h(oy, κy)` at `[oy·k + κy]`, [`NONE`] when it reads nothing.
    pub(super) src_y: &'a [u32],
    /// `src_w(ox, κx)` at `[ox·k + κx]`.
    pub(super) src_x: &'a [u32],
    /// `w_out·B` zeros, read by taps that read nothing (over a whole stretch of a row).
    pub(super) zeros: &'a [T],
}

/// [`GRAD_LANES`] batch lanes of a kernel-gradient accumulator.
///
/// The accumulators of a [`KernelGrad`] block multiply two loaded vectors (δy and x), a pattern LLVM's
/// vectoriser leaves scalar once the block has more than a few accumulators; so the AVX2 build of `f32`
/// uses the vector type itself ([`F32x8`]). Both do the same per-lane `mul_add` and the same in-order lane
/// sum, so the bits agree.
pub(super) trait Lanes<T>: Copy {
    fn zero() -> Self;
    /// `GRAD_LANES` values from `p`.
    ///
    /// # Safety
    /// `p` must point to `GRAD_LANES` readable values.
    unsafe fn load(p: *const T) -> Self;
    /// The `n < GRAD_LANES` values from `p` in the low lanes, zeros above them ([`partial_lanes`]).
    ///
    /// # Safety
    /// `p` must point to `n` readable values.
    unsafe fn load_partial(p: *const T, n: usize) -> Self;
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
    /// # Safety
    /// As [`Lanes::load`]: `p` points to `GRAD_LANES` readable values.
    #[inline(always)]
    unsafe fn load(p: *const T) -> Self {
        // SAFETY: `p` points to `GRAD_LANES` readable values (the caller), and `[T; GRAD_LANES]` has `T`'s
        // alignment.
        unsafe { *p.cast::<[T; GRAD_LANES]>() }
    }
    /// # Safety
    /// As [`Lanes::load_partial`]: `p` points to `n` readable values.
    #[inline(always)]
    unsafe fn load_partial(p: *const T, n: usize) -> Self {
        // SAFETY: the caller's.
        unsafe { partial_lanes(p, n) }
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
pub(super) struct F32x8(std::arch::x86_64::__m256);

#[cfg(target_arch = "x86_64")]
impl Lanes<f32> for F32x8 {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: only called from code compiled with AVX2 (see the type's doc).
        F32x8(unsafe { std::arch::x86_64::_mm256_setzero_ps() })
    }
    /// # Safety
    /// As [`Lanes::load`]: `p` points to `GRAD_LANES` readable values; and, as for every method of this type,
    /// the caller runs with AVX2 (see the type's doc).
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: `p` points to 8 readable values (the caller) and the load is unaligned; AVX2 as above.
        F32x8(unsafe { std::arch::x86_64::_mm256_loadu_ps(p) })
    }
    /// # Safety
    /// As [`Lanes::load_partial`]: `p` points to `n` readable values; AVX2 as for every method of this type.
    #[inline(always)]
    unsafe fn load_partial(p: *const f32, n: usize) -> Self {
        use std::arch::x86_64::*;
        /// Lane masks: the 8 from `[8 − n]` select the low `n` lanes.
        const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        debug_assert!(n < GRAD_LANES);
        // SAFETY: `8 − n + 8 <= 16` values of `MASKS`; the masked load reads only the `n` selected values from
        // `p` (the caller's) and gives zeros in the other lanes; AVX2 as above.
        unsafe { F32x8(_mm256_maskload_ps(p, _mm256_loadu_si256(MASKS.as_ptr().add(8 - n).cast()))) }
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
    pub(super) fn block_dispatch<const R: usize, const TN: usize>(
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
                // SAFETY: the CPU has AVX2 and FMA (checked above); `block`'s reads rely on the checks of
                // `DirectConv::backward_params`, which hold for every `KernelGrad` built (see `block`).
                let sums = unsafe { me.block_f32x8::<R, TN>(o0, i, t0, stream) };
                // SAFETY: T is f32.
                return unsafe { std::mem::transmute_copy(&sums) };
            }
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            return unsafe { self.block_avx2::<R, TN>(o0, i, t0, stream) };
        }
        self.block::<[T; GRAD_LANES], R, TN>(o0, i, t0, stream)
    }

    /// [`Self::block`] compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `DirectConv::backward_params`' checks hold (the body reads without bounds
    /// checks).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_avx2<const R: usize, const TN: usize>(
        &self,
        o0: usize,
        i: usize,
        t0: usize,
        stream: bool,
    ) -> [[T; TN]; R] {
        self.block::<[T; GRAD_LANES], R, TN>(o0, i, t0, stream)
    }

    /// Whether the values past a position's (or a stretch's) last whole lane block go to the low lanes of the
    /// accumulators ([`partial_lanes`]) rather than to a separate scalar sum: at batches below 16 that are not
    /// whole lane blocks, where most values would be such a tail. The sums then run over positions in the
    /// lanes (the `positions` layout of [`super::conv::DirectConv::layout`]), an order that depends on the
    /// geometry and the batch only; at every other batch the order is the one of whole lane blocks, unchanged.
    #[inline(always)]
    pub(super) fn low_lanes(&self) -> bool {
        self.batch < 16 && !self.batch.is_multiple_of(GRAD_LANES)
    }

    /// The positions `lo..hi` of an output row (the first run) at which every tap of `taps` reads input column
    /// `ox·1 + kx·d − p` (no border mapping, nothing missing), when the stride is 1 and the batch is whole lane
    /// blocks or [`Self::low_lanes`]; `(0, 0)` otherwise. Over such a stretch the batch columns each tap reads,
    /// and those of δy, are consecutive in memory.
    pub(super) fn stretch<const TN: usize>(&self, taps: &[(usize, usize); TN]) -> (usize, usize) {
        let g = &self.g;
        if g.stride != 1 || !(self.batch.is_multiple_of(GRAD_LANES) || self.low_lanes()) {
            return (0, 0);
        }
        let (k, w_out) = (g.k, g.w_out());
        let plain = |ox: usize| {
            taps.iter().all(|&(_, kx)| {
                let c = tap_coord(ox, kx, 1, g.dil, g.pad) as i64;
                self.src_x[ox * k + kx] != NONE && self.src_x[ox * k + kx] as i64 == c
            })
        };
        let Some(lo) = (0..w_out).find(|&ox| plain(ox)) else { return (0, 0) };
        let hi = (lo..w_out).find(|&ox| !plain(ox)).unwrap_or(w_out);
        (lo, hi)
    }

    /// The batch columns of input channel `i` that the taps `taps` read at output position `(oy, ox)`: the
    /// zero column for a tap that reads nothing.
    ///
    /// # Safety
    /// `DirectConv::backward_params`' checks hold (the lengths of x, and source tables of input coordinates
    /// or [`NONE`]), so every column formed lies inside x.
    #[inline(always)]
    pub(super) unsafe fn tap_columns<const TN: usize>(
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
    /// [`Self::block`] compiled for AVX2 + FMA on [`F32x8`] vectors.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA (which [`F32x8`]'s methods need); `DirectConv::backward_params`' checks hold
    /// (the body reads without bounds checks).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn block_f32x8<const R: usize, const TN: usize>(
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
    /// The CPU has AVX-512F, AVX2 and FMA; `DirectConv::backward_params`' checks hold.
    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn task_pairs(&self, o0: usize, rn: usize, i: usize) -> Vec<f32> {
        assert!(!self.low_lanes(), "the pairs run whole lane blocks only");
        let kk = self.g.k * self.g.k;
        let mut out = vec![0f32; rn * kk];
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA and `backward_params`' checks hold (the caller); `fill_pairs`
        // needs no more, and `out` holds the `(rn, k²)` sums it writes.
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
    pub(super) unsafe fn fill_pairs<const P: usize>(&self, o0: usize, i: usize, out: &mut [f32]) {
        let kk = self.g.k * self.g.k;
        let mut t0 = 0;
        // SAFETY: each `block_pairs` needs what this function's caller holds (AVX-512F, AVX2, FMA and
        // `backward_params`' checks), and its taps `t0..t0 + TN` lie in `0..k²` (the loop bounds).
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
    pub(super) unsafe fn block_pairs<const P: usize, const TN: usize>(
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
                let row_streams = hi > lo;
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

/// The `n < GRAD_LANES` values from `p` followed by zeros, for the low lanes of a last lane block
/// ([`KernelGrad::low_lanes`]). An accumulator starts at +0 and a fused multiply-add onto +0 or a nonzero
/// value never gives −0, so adding the zero lanes' `+0·+0 = +0` leaves those lanes' bits as they were: the low
/// lanes hold exactly the sums of their own values, on every kernel level.
///
/// # Safety
/// `p` points to `n` readable values.
#[inline(always)]
pub(super) unsafe fn partial_lanes<T: Real>(p: *const T, n: usize) -> [T; GRAD_LANES] {
    debug_assert!(n < GRAD_LANES);
    let mut v = [T::zero(); GRAD_LANES];
    for (l, v) in v.iter_mut().enumerate().take(n) {
        // SAFETY: `l < n` (the caller's `n` readable values).
        *v = unsafe { *p.add(l) };
    }
    v
}

/// Writes a pair block's sums `[p][h][j]` (channel `2p + h` of the block, tap `t0 + j`) into `out` `(2P, k²)`.
#[cfg(target_arch = "x86_64")]
pub(super) fn store_pairs<const P: usize, const TN: usize>(
    out: &mut [f32],
    kk: usize,
    t0: usize,
    sums: &[[[f32; TN]; 2]; P],
) {
    for p in 0..P {
        for h in 0..2 {
            out[(2 * p + h) * kk + t0..][..TN].copy_from_slice(&sums[p][h]);
        }
    }
}

impl<T: Real> KernelGrad<'_, T> {
    /// Whether this gradient runs in pairs of output channels ([`Self::task_pairs`]): `f32` on a CPU with
    /// AVX-512. Its channel blocks are then [`GRAD_WIDTHS_PAIRS`], else [`GRAD_WIDTHS`].
    pub(super) fn pairs() -> bool {
        cfg!(target_arch = "x86_64") && has_avx512() && std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>()
    }

    /// `δw[o0..o0 + rn, i, :]`, `(rn, k²)` row-major.
    pub(super) fn task(&self, o0: usize, rn: usize, i: usize) -> Vec<T> {
        // The pairs keep the order of whole lane blocks; at the batches of `low_lanes` the pair blocks run as
        // blocks of 2 on the 8-lane kernel (AVX2), the order those batches define.
        if self.low_lanes() && rn.is_multiple_of(2) && rn > 2 {
            return (0..rn / 2).flat_map(|p| self.task_of::<2>(o0 + 2 * p, i)).collect();
        }
        #[cfg(target_arch = "x86_64")]
        if rn.is_multiple_of(2) && Self::pairs() && !self.low_lanes() {
            // SAFETY: T is f32 (pairs), so the two types are one; the CPU has AVX-512F, AVX2 and FMA.
            let me = unsafe { &*(self as *const Self as *const KernelGrad<'_, f32>) };
            // SAFETY: `pairs()` checked AVX-512F (with AVX2 and FMA); `task_pairs`' reads rely on the checks of
            // `DirectConv::backward_params`, which hold for every `KernelGrad` built (see `block`).
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

    pub(super) fn task_of<const R: usize>(&self, o0: usize, i: usize) -> Vec<T> {
        self.task_with::<R>(o0, i, true)
    }

    /// [`Self::task_of`], with or without streaming row stretches (`stream`; the tests compare the two).
    pub(super) fn task_with<const R: usize>(&self, o0: usize, i: usize, stream: bool) -> Vec<T> {
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
    pub(super) fn block<V: Lanes<T>, const R: usize, const TN: usize>(
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
        let low_lanes = self.low_lanes();
        for oy in 0..h_out {
            let row_streams = hi > lo;
            let mut ox = 0;
            while ox < w_out {
                let n_pos = if row_streams && ox == lo { hi - lo } else { 1 };
                let pos = oy * w_out + ox;
                // Batch columns of the taps' inputs (the zero column for taps that read nothing) and of
                // the output channels' residuals.
                // The reads below are unchecked: `backward_params` checked the lengths of x and dy and that the
                // source tables hold input coordinates or NONE, so every column is inside its matrix and
                // lanes b0..b0 + GRAD_LANES <= len, b < len lie in it (a stretch's `n_pos` columns are
                // consecutive and inside it).
                // SAFETY: `tap_columns` needs `backward_params`' checks, which hold for the `KernelGrad` it builds
                // (the one made outside the tests; the test in `conv.rs` builds its own from a `DirectConv`'s
                // source tables and buffers of the lengths those checks require).
                let xs = unsafe { self.tap_columns(i, &taps, oy, ox) };
                let mut ds = [dy; R];
                unroll!(r < R => {
                    // SAFETY: channel `o0 + r < c_out` (the channel blocks cover `0..c_out`) and position
                    // `pos < h_out·w_out`, so this is the start of a batch column of δy (B, c_out·h_out·w_out),
                    // whose length `backward_params` checked.
                    ds[r] = unsafe { dy.add(((o0 + r) * plane + pos) * batch) };
                });
                let len = n_pos * batch;
                let mut b0 = 0;
                while b0 + GRAD_LANES <= len {
                    unroll!(r < R => {
                        // SAFETY: `b0 + GRAD_LANES <= len`, and δy's `len = n_pos·B` values from `ds[r]` are the
                        // batch columns of the `n_pos` consecutive positions from `pos` (one row: a stretch ends
                        // within the row), all inside δy.
                        let dv = unsafe { V::load(ds[r].add(b0)) };
                        unroll!(j < TN => {
                            // SAFETY: `b0 + GRAD_LANES <= len`; `xs[j]` starts `len` readable values: the zero
                            // column (`w_out·B >= n_pos·B` values, `backward_params` made it) or the `n_pos`
                            // consecutive input columns of one input row, all inside x.
                            acc[r][j] = acc[r][j].fma(dv, unsafe { V::load(xs[j].add(b0)) });
                        });
                    });
                    b0 += GRAD_LANES;
                }
                if low_lanes && b0 < len {
                    // The last `len − b0 < GRAD_LANES` values in the low lanes, zeros above them.
                    let mut xv = [V::zero(); TN];
                    unroll!(j < TN => {
                        // SAFETY: the `len − b0` values from `xs[j] + b0` lie inside x or the zero column.
                        xv[j] = unsafe { V::load_partial(xs[j].add(b0), len - b0) };
                    });
                    unroll!(r < R => {
                        // SAFETY: the `len − b0` values from `ds[r] + b0` lie inside δy (as above).
                        let dv = unsafe { V::load_partial(ds[r].add(b0), len - b0) };
                        unroll!(j < TN => {
                            acc[r][j] = acc[r][j].fma(dv, xv[j]);
                        });
                    });
                } else {
                    // A stretch has whole lane blocks; one position may have a tail.
                    for b in b0..len {
                        for j in 0..TN {
                            for r in 0..R {
                                // SAFETY: `b < len`, inside the `len` values from `ds[r]` and from `xs[j]` (as
                                // above).
                                tail[r][j] = unsafe { (*ds[r].add(b)).mul_add(*xs[j].add(b), tail[r][j]) };
                            }
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
pub(super) fn channel_sum<T: Real, V: Lanes<T>>(dy_o: &[T], batch: usize) -> T {
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
pub(super) fn channel_sum_dispatch<T: Real>(dy_o: &[T], batch: usize) -> T {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        /// [`channel_sum`] on [`F32x8`] vectors, compiled for AVX2 + FMA.
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA (which [`F32x8`]'s methods need).
        #[target_feature(enable = "avx2,fma")]
        unsafe fn f32x8(dy_o: &[f32], batch: usize) -> f32 {
            channel_sum::<f32, F32x8>(dy_o, batch)
        }
        /// [`channel_sum`] compiled for AVX2 + FMA.
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Real>(dy_o: &[T], batch: usize) -> T {
            channel_sum::<T, [T; GRAD_LANES]>(dy_o, batch)
        }
        if std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>() {
            // SAFETY: T is f32, so the slices and the result have the same type; the CPU has AVX2 and FMA.
            let dy32 = unsafe { std::slice::from_raw_parts(dy_o.as_ptr().cast::<f32>(), dy_o.len()) };
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let s = unsafe { f32x8(dy32, batch) };
            // SAFETY: T is f32 (checked above), so `s` is read as the value it is.
            return unsafe { std::mem::transmute_copy(&s) };
        }
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { avx2(dy_o, batch) };
    }
    channel_sum::<T, [T; GRAD_LANES]>(dy_o, batch)
}
