//! Convolution compiled into a tied sparse matrix.
//!
//! Row `(o, oy, ox)` of `W` (index `(o·h_out + oy)·w_out + ox`) holds, for every tap that reads an input
//! value, the nonzero
//!
//! ```text
//! W((o, oy, ox), (i, iy, ix)) += θ[o, i, ky, kx]      iy = pad_map(oy·s + ky·d − p),  ix = pad_map(ox·s + kx·d − p)
//! ```
//!
//! with parameter id `((o·c_in + i)·k + ky)·k + kx` (PyTorch's `(c_out, c_in, k, k)` layout). Zero padding
//! drops taps that fall outside; the other modes map them inside, where two taps of one row may meet (their
//! entry is then the sum of the two parameters). The bias of row `(o, ·, ·)` is `bias[o]`. See proofs/T1.

use super::TiedLayer;
use crate::geometry::ConvGeometry;
use crate::scalar::Real;
use crate::tied::{Source, TiedBuilder, TiedMatrix};

/// Compiles the weight matrix of a convolution: (c_out·h_out·w_out, c_in·h_in·w_in) over
/// `c_out·c_in·k·k` parameters.
///
/// # Panics
/// If the geometry does not apply ([`ConvGeometry::check`]); specs are checked before they compile.
#[track_caller]
pub fn compile_conv(g: &ConvGeometry) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_conv: {e}");
    }
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let mut b = TiedBuilder::new(g.out_len(), g.in_len(), g.kernel_len());
    b.reserve(g.out_len() * g.c_in * g.k * g.k);
    g.for_each_tap(|t| {
        let row = (t.o * h_out + t.oy) * w_out + t.ox;
        let col = (t.i * g.h_in + t.iy) * g.w_in + t.ix;
        let param = ((t.o * g.c_in + t.i) * g.k + t.ky) * g.k + t.kx;
        b.push(row, col, Source::Param(param as u32));
    });
    b.build()
}

/// A convolution layer: the compiled matrix, weight `(c_out, c_in, k, k)`, bias `(c_out)`.
pub fn conv_layer<T: Real>(g: &ConvGeometry) -> TiedLayer<T> {
    let positions = g.h_out() * g.w_out();
    let bias_ids = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
    TiedLayer::new(compile_conv(g), g.weight_shape(), Some((bias_ids, vec![g.c_out])))
}
