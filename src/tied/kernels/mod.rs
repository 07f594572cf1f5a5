//! The register-tile loops of the tied products and gradients, and the one place in [`super`] that asks the CPU
//! which of them may run.
//!
//! `portable` holds the loops in plain Rust (compiled as they are, and again for AVX2 + FMA and for AVX-512
//! by the wrappers below); `avx512` and `avx2` hold the hand-written `f32` kernels. Every variant computes the
//! same fused multiply-adds in the same order, so the bits never depend on which one runs. The kernels know
//! only their inputs (slices, [`super::views`], [`super::members`]); the schedules above them
//! ([`super::products`], [`super::gradients`]) decide what runs where.

use super::grad_plan::{CompactClass, GradClass};
use crate::cpu::{Simd, TILE_MAX, as_f32, simd_level};
use crate::scalar::Real;

/// The tile shapes (rows, taps) of `class_grad`, written once: `$kernel!(RB, CB)` for the tile's shape,
/// each expansion a kernel compiled for that shape. `blocks` keeps shapes to [`positions_tile_shape`]
/// (4 × 3) and then halves them (4 rows to 2 and 1; 3 taps to 1).
macro_rules! by_tile_shape {
    ($shape:expr, $kernel:ident) => {
        match $shape {
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

/// The hand-written stream tile of the positions layout ([`lanes::stream_tile_avx2`], on AVX-512 machines
/// too) on the tile `t` of class `c` read in place, for `f32`; `None` for
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
    // One kernel on AVX2 and AVX-512 alike: the eight lanes of the layout are one 256-bit register.
    macro_rules! avx2 {
        ($rb:literal, $cb:literal) => {
            lanes::stream_tile_avx2::<$rb, $cb, CompactClass> as Kernel
        };
    }
    let f = by_tile_shape!((t.rb, t.cb), avx2);
    // SAFETY: the caller checked AVX2 and FMA; the class comes from the plan of a checked map, so its rows and columns index d_y and x; the tile lies inside the class; the
    // caller's zeros hold a chunk's stream and its stretches are the tile's (asserted by the kernel).
    let s = unsafe { f(c, (t.m0, t.m1), stretches, t.i0, t.u0, x, dy, zeros, batch) };
    Some(std::array::from_fn(|k| T::of(s[k] as f64)))
}

/// The gradient tile (rows, taps) of the positions layout: 4 × 3 on every instruction set (12 sums of one
/// 256-bit register, 3 taps and one row loaded: 16 registers). The shape never changes the bits.
pub(super) fn positions_tile_shape() -> (usize, usize) {
    (4, 3)
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
