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
//!
//! With `G` groups (`c_in/G` input and `c_out/G` output channels each), row `(o, ·, ·)` holds only the taps
//! of the input channels of its own group, `i = (o / (c_out/G))·(c_in/G) + j`, `j < c_in/G`, with parameter
//! id `((o·(c_in/G) + j)·k + ky)·k + kx` (PyTorch's `(c_out, c_in/G, k, k)`): the other channels' entries are
//! nonzeros that are not stored, and cost nothing. `G = 1` is the plain convolution.

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
    compile_grouped_conv(g, 1)
}

/// Compiles a convolution of `groups` groups: (c_out·h_out·w_out, c_in·h_in·w_in) over
/// `c_out·(c_in/G)·k·k` parameters, only the taps inside each group stored.
///
/// # Panics
/// If the geometry does not apply, or `groups` does not divide `c_in` and `c_out`.
#[track_caller]
pub fn compile_grouped_conv(g: &ConvGeometry, groups: usize) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_conv: {e}");
    }
    assert!(
        groups > 0 && g.c_in.is_multiple_of(groups) && g.c_out.is_multiple_of(groups),
        "compile_conv: groups={groups} must divide c_in={} and c_out={}",
        g.c_in,
        g.c_out
    );
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let (cig, cog) = (g.c_in / groups, g.c_out / groups);
    let mut b = TiedBuilder::new(g.out_len(), g.in_len(), g.c_out * cig * g.k * g.k);
    b.reserve(g.out_len() * cig * g.k * g.k);
    g.for_each_tap(|t| {
        // Input channel i of group i / cig, local index j; taps across groups are absent.
        let (group, j) = (t.i / cig, t.i % cig);
        if group != t.o / cog {
            return;
        }
        let row = (t.o * h_out + t.oy) * w_out + t.ox;
        let col = (t.i * g.h_in + t.iy) * g.w_in + t.ix;
        let param = ((t.o * cig + j) * g.k + t.ky) * g.k + t.kx;
        b.push(row, col, Source::Param(param as u32));
    });
    b.build()
}

/// A convolution layer: the compiled matrix, weight `(c_out, c_in, k, k)`, bias `(c_out)`.
pub fn conv_layer<T: Real>(g: &ConvGeometry) -> TiedLayer<T> {
    grouped_conv_layer(g, 1)
}

/// A grouped convolution layer: the compiled matrix, weight `(c_out, c_in/G, k, k)`, bias `(c_out)`.
pub fn grouped_conv_layer<T: Real>(g: &ConvGeometry, groups: usize) -> TiedLayer<T> {
    let positions = g.h_out() * g.w_out();
    let bias_ids = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
    let weight_shape = vec![g.c_out, g.c_in / groups, g.k, g.k];
    TiedLayer::new(compile_grouped_conv(g, groups), weight_shape, Some((bias_ids, vec![g.c_out])))
}
