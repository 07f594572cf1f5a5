//! What the CPU can run, probed once here, and the SIMD sizes the hand-vectorised kernels share.
//!
//! Every kernel that has an AVX2 + FMA or AVX-512 variant asks these functions at run time; the variants
//! compute the same fused multiply-adds in the same order as the portable loops, so the bits never depend
//! on the answer. (The answer is probed once and cached, so a call is a load and a test.)
//!
//! [`set_simd_cap`] caps what the kernels may use below what the CPU has (`avx2`: no AVX-512 kernels;
//! `portable`: no hand-vectorised kernels at all), so that one machine can run, time and test every path
//! (`.ci/run` runs the test suite under each cap). It never raises the level above the CPU's. The library
//! reads no environment: the command turns [`SIMD_VAR`] into a cap, and so do the tests.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

/// The environment variable the command (and the test suite) reads as the kernels' cap: `auto` (the default:
/// the best the CPU has), `avx512`, `avx2` or `portable` ([`parse_simd_cap`]).
pub const SIMD_VAR: &str = "CNN_AS_MLP_SIMD";

/// The kernel levels, lowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Simd {
    /// Plain Rust loops (the compiler's own vectorisation only).
    Portable,
    /// The AVX2 + FMA kernels (256-bit registers).
    Avx2,
    /// The AVX-512F kernels (512-bit registers).
    Avx512,
}

/// The cap named by [`SIMD_VAR`]'s value `v`, or an error that names the value and the accepted ones.
pub fn parse_simd_cap(v: &str) -> Result<Option<Simd>, String> {
    match v.trim() {
        "" | "auto" => Ok(None),
        "avx512" => Ok(Some(Simd::Avx512)),
        "avx2" => Ok(Some(Simd::Avx2)),
        "portable" => Ok(Some(Simd::Portable)),
        other => Err(format!("{SIMD_VAR}={other:?} is not a kernel level; expected auto, avx512, avx2 or portable")),
    }
}

/// The best level the CPU has.
fn probed() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            Simd::Avx512
        } else if avx2 {
            Simd::Avx2
        } else {
            Simd::Portable
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Simd::Portable
    }
}

/// The cap set by [`set_simd_cap`]: 0 none, else `1 + level`.
static CAP: AtomicU8 = AtomicU8::new(0);

/// Caps the kernels at `cap` (`None`: the best the CPU has). Every kernel chosen after the call runs at the
/// lower of the cap and the CPU's best; the bits do not depend on it.
pub fn set_simd_cap(cap: Option<Simd>) {
    CAP.store(cap.map_or(0, |s| 1 + s as u8), Ordering::Relaxed);
}

/// The cap set by [`set_simd_cap`], if any.
pub fn simd_cap() -> Option<Simd> {
    match CAP.load(Ordering::Relaxed) {
        0 => None,
        1 => Some(Simd::Portable),
        2 => Some(Simd::Avx2),
        _ => Some(Simd::Avx512),
    }
}

/// The level the kernels run at: the CPU's best (probed once per process), lowered to the cap when one is set.
#[inline]
pub fn simd_level() -> Simd {
    // The library's own unit tests take the cap from the environment as the command does (test code only: the
    // library reads no environment), so that `CNN_AS_MLP_SIMD=avx2 cargo test` runs them on the AVX2 kernels.
    #[cfg(test)]
    {
        static FROM_ENV: std::sync::Once = std::sync::Once::new();
        FROM_ENV.call_once(|| {
            if let Ok(v) = std::env::var(SIMD_VAR) {
                set_simd_cap(parse_simd_cap(&v).expect("CNN_AS_MLP_SIMD names a kernel level"));
            }
        });
    }
    static BEST: OnceLock<Simd> = OnceLock::new();
    let best = *BEST.get_or_init(probed);
    match simd_cap() {
        Some(cap) => best.min(cap),
        None => best,
    }
}

/// `f32` values in one AVX-512 register, and the batch lanes of every register block (portable or not): a
/// block of `LANES` samples is one 512-bit register of `f32`, or two 256-bit ones.
pub const LANES: usize = 16;

/// The lanes of the parameter gradient's *positions* layout (a batch under [`LANES`]): lane `l` sums the
/// stream values `q ≡ l (mod 8)`. One 256-bit register of `f32`, so that a tile of 4 rows × 3 taps keeps its
/// 12 sums in registers with AVX2, and a stretch of 56 positions (a 56-wide image row) is 7 whole blocks.
pub const POSITION_LANES: usize = 8;

/// Most accumulators (rows × taps) of a gradient tile of the tied matrix: 4 × 3, one 256-bit register each.
pub const TILE_MAX: usize = 12;

/// True when the AVX2 + FMA variants (`#[target_feature(enable = "avx2,fma")]`) may run: the CPU has AVX2 and
/// FMA and [`SIMD_VAR`] does not cap the kernels to `portable`.
#[inline]
pub fn has_avx2() -> bool {
    simd_level() >= Simd::Avx2
}

/// True when the AVX-512 variants may run: the CPU has AVX-512F besides AVX2 and FMA, and [`SIMD_VAR`] does
/// not cap the kernels below `avx512`.
#[inline]
pub fn has_avx512() -> bool {
    simd_level() >= Simd::Avx512
}

/// `s` as `f32` values when `T` is `f32` (for the hand-written `f32` kernels).
#[inline]
pub fn as_f32<T: 'static>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast::<f32>(), s.len()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simd_caps_parse_and_bad_values_are_named() {
        assert_eq!(parse_simd_cap("auto"), Ok(None));
        assert_eq!(parse_simd_cap(""), Ok(None));
        assert_eq!(parse_simd_cap("avx2"), Ok(Some(Simd::Avx2)));
        assert_eq!(parse_simd_cap(" portable "), Ok(Some(Simd::Portable)));
        assert_eq!(parse_simd_cap("avx512"), Ok(Some(Simd::Avx512)));
        let e = parse_simd_cap("sse9").unwrap_err();
        assert!(e.contains("CNN_AS_MLP_SIMD") && e.contains("sse9") && e.contains("portable"), "{e}");
    }

    #[test]
    fn the_level_never_exceeds_the_cpu_nor_the_cap() {
        let level = simd_level();
        assert!(level <= probed());
        if let Some(cap) = simd_cap() {
            assert!(level <= cap, "{level:?} above the cap {cap:?}");
        }
        assert_eq!(has_avx512(), level == Simd::Avx512);
        assert_eq!(has_avx2(), level >= Simd::Avx2);
    }
}
