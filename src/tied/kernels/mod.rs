//! The register-tile loops of the tied products and gradients, and the one place in [`super`] that asks the CPU
//! which of them may run.
//!
//! `portable` holds the loops in plain Rust (compiled as they are, and again for AVX2 + FMA and for AVX-512
//! by the wrappers below); `avx512` and `avx2` hold the hand-written `f32` kernels. Every variant computes the
//! same fused multiply-adds in the same order, so the bits never depend on which one runs. The kernels know
//! only their inputs (slices, [`super::views`], [`super::members`]); the schedules above them
//! ([`super::products`], [`super::gradients`]) decide what runs where.

use super::grad_plan::{CompactClass, GradClass};
use crate::cpu::{LANES, Simd, TILE_MAX, as_f32, simd_level};
use crate::scalar::Real;

/// The tile shapes (rows, taps) of `class_grad`, written once: `$kernel!(RB, CB)` for the tile's shape,
/// each expansion a kernel compiled for that shape. `blocks` keeps shapes to [`tile_shape`] (4 × 6 with
/// AVX-512 at 16 samples or more, 2 × 3 with AVX2 there, 4 × 3 under 16 samples) and then halves them (4
/// rows to 2 and 1; 6 taps to 3 and 1).
macro_rules! by_tile_shape {
    ($shape:expr, $kernel:ident) => {
        match $shape {
            (4, 6) => $kernel!(4, 6),
            (2, 6) => $kernel!(2, 6),
            (1, 6) => $kernel!(1, 6),
            (4, 3) => $kernel!(4, 3),
            (2, 3) => $kernel!(2, 3),
            (1, 3) => $kernel!(1, 3),
            (4, 1) => $kernel!(4, 1),
            (2, 1) => $kernel!(2, 1),
            (1, 1) => $kernel!(1, 1),
            (rb, cb) => unreachable!("tile shape {rb} x {cb}"),
        }
    };
}
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(super) mod avx512;
#[cfg(target_arch = "x86_64")]
pub(super) mod lanes;
pub(super) mod portable;

pub(super) use portable::Tile;

/// True when the AVX-512 kernels may run (the CPU has AVX-512F, AVX2 and FMA, and no cap holds them back).
#[inline]
pub(super) fn avx512() -> bool {
    simd_level() >= Simd::Avx512
}

/// True when the AVX2 + FMA kernels may run.
#[inline]
pub(super) fn avx2() -> bool {
    simd_level() >= Simd::Avx2
}

// The same loops compiled for AVX2 + FMA and chosen at run time. Products are accumulated with `mul_add`, a
// fused multiply-add rounded once: one instruction with FMA, an exact library call without, so both versions
// give the same bits.
/// [`portable::accumulate`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    portable::accumulate(acc, w, cols, x, batch)
}

#[inline]
pub(super) fn accumulate<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { accumulate_avx2(acc, w, cols, x, batch) };
    }
    portable::accumulate(acc, w, cols, x, batch)
}

// The same loops compiled for AVX2 + FMA and chosen at run time. Products are accumulated with `mul_add`, a
// fused multiply-add rounded once: one instruction with FMA, an exact library call without, so both versions
// give the same bits; the lanes of `dot` are fixed.
/// [`portable::dots`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    portable::dots(dw, dy, cols, x, batch)
}

/// [`portable::tile_any`] compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    portable::tile_any(c, t, x, dy, zeros, batch)
}

/// [`portable::tile_any`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    portable::tile_any(c, t, x, dy, zeros, batch)
}

/// The portable tile loop compiled for the CPU's vector width (the same bits on every ISA).
#[inline]
pub(super) fn tile<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // (For f32 `class_grad` runs the AVX-512 kernel on the class in place: `tile_in_place`.)
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked above).
        return unsafe { tile_avx512(c, t, x, dy, zeros, batch) };
    } else if avx2() {
        // (For f32 `class_grad` runs the AVX2 kernel on the class in place: `tile_in_place`.)
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { tile_avx2(c, t, x, dy, zeros, batch) };
    }
    portable::tile_any(c, t, x, dy, zeros, batch)
}

/// The hand-written gradient tile for the CPU ([`avx512::grad_tile`] with AVX-512,
/// [`avx2::grad_tile_avx2`] or its half-block twin with AVX2) on the tile `t` of class `c` read in
/// place (no tile written out), for `f32`; `None` for another type.
///
/// The caller checked AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(super) fn tile_in_place<T: Real>(
    c: &CompactClass,
    t: Tile,
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> Option<[T; TILE_MAX]> {
    let (Some(x), Some(dy), Some(zeros)) = (as_f32(x), as_f32(dy), as_f32(zeros)) else {
        return None;
    };
    type Kernel =
        unsafe fn(&CompactClass, (usize, usize), usize, usize, &[f32], &[f32], &[f32], usize) -> [f32; TILE_MAX];
    // A batch under 16 has no full 16-lane block: one 256-bit register per pair holds its half block (with
    // AVX-512 too, where a 512-bit register would leave half its lanes idle).
    let f = if avx512() && batch >= LANES {
        macro_rules! avx512 {
            ($rb:literal, $cb:literal) => {
                avx512::grad_tile::<$rb, $cb, CompactClass> as Kernel
            };
        }
        by_tile_shape!((t.rb, t.cb), avx512)
    } else {
        macro_rules! avx2 {
            ($rb:literal, $cb:literal) => {
                if batch < LANES {
                    avx2::grad_tile_avx2_half::<$rb, $cb, CompactClass> as Kernel
                } else {
                    avx2::grad_tile_avx2::<$rb, $cb, CompactClass> as Kernel
                }
            };
        }
        by_tile_shape!((t.rb, t.cb), avx2)
    };
    // SAFETY: the caller checked AVX2 and FMA, and `avx512()` AVX-512F for that kernel; the class comes
    // from the plan of a checked map, so its rows and columns index d_y and x; the tile lies inside the class.
    let s = unsafe { f(c, (t.m0, t.m1), t.i0, t.u0, x, dy, zeros, batch) };
    Some(std::array::from_fn(|k| T::of(s[k] as f64)))
}

/// [`portable::stream_any`] compiled for AVX-512.
///
/// # Safety
/// The CPU has AVX-512F, AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn stream_avx512<T: Real>(
    c: &GradClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    portable::stream_any(c, t, stretches, x, dy, zeros, batch)
}

/// [`portable::stream_any`] compiled for AVX2 + FMA.
///
/// # Safety
/// The CPU has AVX2 and FMA (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn stream_avx2<T: Real>(
    c: &GradClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    portable::stream_any(c, t, stretches, x, dy, zeros, batch)
}

/// The portable stream tile of the positions layout ([`portable::stream_any`]) compiled for the CPU's vector
/// width (the same bits on every ISA).
#[inline]
pub(super) fn stream<T: Real>(
    c: &GradClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    #[cfg(target_arch = "x86_64")]
    if avx512() {
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked above).
        return unsafe { stream_avx512(c, t, stretches, x, dy, zeros, batch) };
    } else if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { stream_avx2(c, t, stretches, x, dy, zeros, batch) };
    }
    portable::stream_any(c, t, stretches, x, dy, zeros, batch)
}

/// The hand-written stream tile of the positions layout ([`lanes::stream_tile_avx512`] with AVX-512,
/// [`lanes::stream_tile_avx2`] with AVX2) on the tile `t` of class `c` read in place, for `f32`; `None` for
/// another type. The caller checked AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
pub(super) fn stream_in_place<T: Real>(
    c: &CompactClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> Option<[T; TILE_MAX]> {
    let (Some(x), Some(dy), Some(zeros)) = (as_f32(x), as_f32(dy), as_f32(zeros)) else {
        return None;
    };
    type Kernel = unsafe fn(
        &CompactClass,
        (usize, usize),
        &[u32],
        usize,
        usize,
        &[f32],
        &[f32],
        &[f32],
        usize,
    ) -> [f32; TILE_MAX];
    let f = if avx512() {
        macro_rules! avx512 {
            ($rb:literal, $cb:literal) => {
                lanes::stream_tile_avx512::<$rb, $cb, CompactClass> as Kernel
            };
        }
        by_tile_shape!((t.rb, t.cb), avx512)
    } else {
        macro_rules! avx2 {
            ($rb:literal, $cb:literal) => {
                lanes::stream_tile_avx2::<$rb, $cb, CompactClass> as Kernel
            };
        }
        by_tile_shape!((t.rb, t.cb), avx2)
    };
    // SAFETY: the caller checked AVX2 and FMA, and `avx512()` AVX-512F for that kernel; the class comes from
    // the plan of a checked map, so its rows and columns index d_y and x; the tile lies inside the class; the
    // caller's zeros hold a chunk's stream and its stretches are the tile's (asserted by the kernel).
    let s = unsafe { f(c, (t.m0, t.m1), stretches, t.i0, t.u0, x, dy, zeros, batch) };
    Some(std::array::from_fn(|k| T::of(s[k] as f64)))
}

/// The gradient tile (rows, taps) of the positions layout: 4 × 6 with AVX-512 (one register per pair), 2 × 3
/// with AVX2 (two registers per pair), 4 × 3 on the portable loops. The shape never changes the bits.
pub(super) fn positions_tile_shape() -> (usize, usize) {
    if avx512() {
        (4, 6)
    } else if avx2() {
        (2, 3)
    } else {
        (4, 3)
    }
}

/// The largest gradient tile (rows, taps) whose accumulators fit the registers: 24 pairs of one 512-bit
/// register with AVX-512 (4 × 6: 24 accumulators, 6 taps and one row loaded, 31 of the 32 registers), 6 pairs
/// of two 256-bit registers with AVX2, or, on either, 12 pairs of one 256-bit register when the batch has
/// fewer than 16 samples (12 accumulators, 3 taps and one row loaded: 16 registers).
/// The shape never changes the bits: each pair's sum is the same in any tile.
pub(super) fn tile_shape(batch: usize) -> (usize, usize) {
    if avx512() && batch >= LANES {
        (4, 6)
    } else if batch < LANES {
        // One 256-bit register per pair (a batch of 8 to 15 fills lanes 0..8 only): 12 accumulators, 3 taps
        // and one row loaded.
        (4, 3)
    } else {
        (2, 3)
    }
}

#[inline]
pub(super) fn dots<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { dots_avx2(dw, dy, cols, x, batch) };
    }
    portable::dots(dw, dy, cols, x, batch)
}
