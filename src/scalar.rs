//! The scalar types the engine runs on: `f32` for training, `f64` for gradient checks.

use nalgebra::RealField;

/// A floating-point scalar the engine is generic over (`f32` or `f64`).
///
/// `RealField` brings arithmetic and the elementary functions; `of` / `as_f64`
/// convert constants and report values.
pub trait Real: RealField + Copy + Send + Sync + Default + std::fmt::Debug + 'static {
    /// Converts an `f64` constant (rounding to nearest for `f32`).
    fn of(x: f64) -> Self;
    /// Widens to `f64`, exactly.
    fn as_f64(self) -> f64;
    /// Name used in checkpoints and messages ("F32", "F64").
    const NAME: &'static str;

    /// `C ← α A B + β C` by matrixmultiply (the fallback of [`crate::gemm::gemm_serial`] where faer's x86-64
    /// kernels do not run), for `A` (m, k), `B` (k, n), `C` (m, n) with element `(i, j)` of
    /// a matrix `X` at `X[i·rs + j·cs]` (strides in elements). With `β = 0`, `C` is not read.
    ///
    /// # Safety
    /// Every element addressed through the shapes and strides must lie inside its buffer, and `C` must not
    /// alias `A` or `B`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: (*const Self, isize, isize),
        b: (*const Self, isize, isize),
        beta: Self,
        c: (*mut Self, isize, isize),
    );
}

/// Implements [`Real`] for a primitive float with its matrixmultiply GEMM.
macro_rules! impl_real {
    ($t:ty, $name:literal, $gemm:path) => {
        impl Real for $t {
            fn of(x: f64) -> Self {
                x as $t
            }
            fn as_f64(self) -> f64 {
                self as f64
            }
            const NAME: &'static str = $name;

            /// # Safety
            /// As [`Real::gemm_raw`]: every element the shapes and strides address lies inside its buffer, and
            /// `c` aliases neither `a` nor `b`.
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: (*const Self, isize, isize),
                b: (*const Self, isize, isize),
                beta: Self,
                c: (*mut Self, isize, isize),
            ) {
                // SAFETY: the caller upholds `gemm_raw`'s contract, which is matrixmultiply's: every element
                // addressed through `m`, `k`, `n` and the strides lies inside its buffer, and `c` does not
                // alias `a` or `b`.
                unsafe { $gemm(m, k, n, alpha, a.0, a.1, a.2, b.0, b.1, b.2, beta, c.0, c.1, c.2) }
            }
        }
    };
}

impl_real!(f32, "F32", matrixmultiply::sgemm);
impl_real!(f64, "F64", matrixmultiply::dgemm);
