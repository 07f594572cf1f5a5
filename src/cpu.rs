//! What the CPU can run, probed once here, and the SIMD sizes the hand-vectorised kernels share.
//!
//! Every kernel that has an AVX2 + FMA or AVX-512 variant asks these functions at run time; the variants
//! compute the same fused multiply-adds in the same order as the portable loops, so the bits never depend
//! on the answer. (`is_x86_feature_detected!` caches its probe, so a call is a load and a test.)

/// `f32` values in one AVX-512 register, and the batch lanes of every register block (portable or not): a
/// block of `LANES` samples is one 512-bit register of `f32`, or two 256-bit ones.
pub const LANES: usize = 16;

/// Most accumulators (rows × taps) of a gradient tile of the tied matrix: 24 of the 32 AVX-512 registers.
pub const TILE_MAX: usize = 24;

/// True when the CPU has AVX2 and FMA, so that the `#[target_feature(enable = "avx2,fma")]` variants may run.
#[inline]
pub fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// True when the CPU has AVX-512F besides AVX2 and FMA, so that the AVX-512 variants may run.
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f") && has_avx2()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `s` as `f32` values when `T` is `f32` (for the hand-written `f32` kernels).
#[inline]
pub fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}
