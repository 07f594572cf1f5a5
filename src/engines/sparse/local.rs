//! Locally connected layer: the convolution's pattern with untied weights and biases.
//!
//! Same rows, columns and taps as [`super::conv`], but every tap has its own parameter:
//! weight `(c_out, h_out, w_out, c_in, k, k)`, id `((((o·h_out + oy)·w_out + ox)·c_in + i)·k + ky)·k + kx`,
//! and bias `(c_out, h_out, w_out)`, one per row. Zero padding only.

use super::storage;
use super::tied_layer::TiedLayer;
use crate::geometry::ConvGeometry;
use crate::scalar::Real;
use crate::tied::{Source, TiedBuilder, TiedMatrix};

/// Compiles the weight matrix of a locally connected layer.
///
/// # Panics
/// If the geometry does not apply; specs are checked before they compile.
#[track_caller]
pub fn compile_local(g: &ConvGeometry) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_local: {e}");
    }
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let n_params = g.out_len() * g.c_in * g.k * g.k;
    let mut b = TiedBuilder::new(g.out_len(), g.in_len(), n_params);
    b.reserve(n_params);
    g.for_each_tap(|t| {
        let row = (t.o * h_out + t.oy) * w_out + t.ox;
        let col = (t.i * g.h_in + t.iy) * g.w_in + t.ix;
        let param = ((row * g.c_in + t.i) * g.k + t.ky) * g.k + t.kx;
        b.push(row, col, Source::Param(param as u32));
    });
    b.build()
}

/// A locally connected layer: weight `(c_out, h_out, w_out, c_in, k, k)`, bias `(c_out, h_out, w_out)`.
pub fn local_layer<T: Real>(g: &ConvGeometry) -> TiedLayer<T> {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let bias_ids = (0..g.out_len() as u32).collect();
    TiedLayer::new(
        storage::stored(compile_local(g)),
        vec![g.c_out, h_out, w_out, g.c_in, g.k, g.k],
        Some((bias_ids, vec![g.c_out, h_out, w_out])),
    )
}
