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
}

impl Real for f32 {
    fn of(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    const NAME: &'static str = "F32";
}

impl Real for f64 {
    fn of(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    const NAME: &'static str = "F64";
}
