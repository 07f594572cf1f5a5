//! Mean pooling: a fixed tied matrix whose nonzeros are the constant `1/k²`.
//!
//! `W((c, oy, ox), (c, oy·s + ky, ox·s + kx)) = 1/k²` for `0 <= ky, kx < k`. No parameters. See proofs/T5.

use super::storage;
use super::tied_layer::TiedLayer;
use crate::geometry::PoolGeometry;
use crate::scalar::Real;
use crate::tied::{Source, TiedBuilder, TiedMatrix};

/// Compiles the window pattern of a pooling layer, every nonzero the constant `value`.
///
/// # Panics
/// If the window does not fit; specs are checked before they compile.
#[track_caller]
pub fn compile_pool(g: &PoolGeometry, value: f64) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_pool: {e}");
    }
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let mut b = TiedBuilder::new(g.out_len(), g.in_len(), 0);
    b.reserve(g.out_len() * g.k * g.k);
    for c in 0..g.c {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let row = (c * h_out + oy) * w_out + ox;
                for col in g.window(c, oy, ox) {
                    b.push(row, col, Source::Const(value));
                }
            }
        }
    }
    b.build()
}

/// A mean-pooling layer.
pub fn avgpool_layer<T: Real>(g: &PoolGeometry) -> TiedLayer<T> {
    TiedLayer::new(storage::stored(compile_pool(g, 1.0 / (g.k * g.k) as f64)), Vec::new(), None)
}
