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
use crate::tables::Table;
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
    assert!(
        groups > 0 && g.c_in.is_multiple_of(groups) && g.c_out.is_multiple_of(groups),
        "compile_conv: groups={groups} must divide c_in={} and c_out={}",
        g.c_in,
        g.c_out
    );
    let (cig, cog) = (g.c_in / groups, g.c_out / groups);
    // Input channel i of group i / cig, local index j; taps across groups are absent.
    compile_where(g, g.c_out * cig * g.k * g.k, cig, None, |o, i| (i / cig == o / cog).then_some(i % cig))
}

/// Compiles a convolution through a connection table: only the taps from input channel `i` to output
/// channel `o` with `T[o, i] = 1` are stored; parameter ids keep the dense `(c_out, c_in, k, k)` layout.
///
/// # Panics
/// If the geometry does not apply, or the table is not `(c_out, c_in)`.
#[track_caller]
pub fn compile_table_conv(g: &ConvGeometry, table: Table) -> TiedMatrix {
    assert_eq!(table.dims(), (g.c_out, g.c_in), "compile_table_conv: table {table} on {g:?}");
    compile_where(g, g.kernel_len(), g.c_in, None, |o, i| table.connects(o, i).then_some(i))
}

/// Compiles a convolution of `groups` groups or through `table`, keeping only the kernel entries `p` with
/// `keep[p]` (a pruning mask over the weight tensor, in its layout): the other taps are not stored, so
/// they cost no time and no index memory. With every entry kept it is [`compile_grouped_conv`] or
/// [`compile_table_conv`].
///
/// # Panics
/// If the geometry does not apply, `groups` does not divide the channels, the table is not
/// `(c_out, c_in)`, or `keep` does not have one flag per weight entry.
#[track_caller]
pub fn compile_pruned_conv(g: &ConvGeometry, groups: usize, table: Option<Table>, keep: &[bool]) -> TiedMatrix {
    let width = g.c_in / groups;
    assert_eq!(keep.len(), g.c_out * width * g.k * g.k, "compile_pruned_conv: mask length on {g:?}, groups={groups}");
    match table {
        Some(t) => {
            assert_eq!(t.dims(), (g.c_out, g.c_in), "compile_pruned_conv: table {t} on {g:?}");
            compile_where(g, g.kernel_len(), g.c_in, Some(keep), |o, i| t.connects(o, i).then_some(i))
        }
        None => {
            let cog = g.c_out / groups;
            compile_where(g, keep.len(), width, Some(keep), |o, i| (i / width == o / cog).then_some(i % width))
        }
    }
}

/// The taps of `g` whose `(o, i)` has a kernel column `j = column(o, i)`, parameter id
/// `((o·width + j)·k + ky)·k + kx`, over `n_params` parameters; with `keep`, only the taps whose parameter
/// `p` has `keep[p]`.
#[track_caller]
fn compile_where(
    g: &ConvGeometry,
    n_params: usize,
    width: usize,
    keep: Option<&[bool]>,
    column: impl Fn(usize, usize) -> Option<usize>,
) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_conv: {e}");
    }
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let mut b = TiedBuilder::new(g.out_len(), g.in_len(), n_params);
    let kept = keep.map_or(1.0, |m| m.iter().filter(|&&k| k).count() as f64 / m.len().max(1) as f64);
    b.reserve((g.out_len() as f64 * (width * g.k * g.k) as f64 * kept).ceil() as usize);
    g.for_each_tap(|t| {
        let Some(j) = column(t.o, t.i) else { return };
        let row = (t.o * h_out + t.oy) * w_out + t.ox;
        let col = (t.i * g.h_in + t.iy) * g.w_in + t.ix;
        let param = ((t.o * width + j) * g.k + t.ky) * g.k + t.kx;
        if keep.is_some_and(|m| !m[param]) {
            return;
        }
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

/// A convolution of `groups` groups or through `table` with only the kernel entries where `keep` is true
/// ([`compile_pruned_conv`]): weight `(c_out, c_in/G, k, k)` as without the mask (entries outside it are
/// read by no nonzero), bias `(c_out)`.
pub fn pruned_conv_layer<T: Real>(
    g: &ConvGeometry,
    groups: usize,
    table: Option<Table>,
    keep: &[bool],
) -> TiedLayer<T> {
    let positions = g.h_out() * g.w_out();
    let bias_ids = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
    let weight_shape = vec![g.c_out, g.c_in / groups, g.k, g.k];
    TiedLayer::new(compile_pruned_conv(g, groups, table, keep), weight_shape, Some((bias_ids, vec![g.c_out])))
}

/// A convolution through a connection table: weight `(c_out, c_in, k, k)` (entries outside the table
/// are read by no nonzero), bias `(c_out)`.
pub fn table_conv_layer<T: Real>(g: &ConvGeometry, table: Table) -> TiedLayer<T> {
    let positions = g.h_out() * g.w_out();
    let bias_ids = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
    TiedLayer::new(compile_table_conv(g, table), g.weight_shape(), Some((bias_ids, vec![g.c_out])))
}
