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

use super::storage;
use super::tied_layer::TiedLayer;
use crate::geometry::{ConvGeometry, tap_coord};
use crate::scalar::Real;
use crate::tables::Table;
use crate::tied::compact::{CompactBuilder, CompactMap};
use crate::tied::{RowGroups, Source, Storage, TiedBuilder, TiedMatrix};

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
    compile_conv_in(g, groups, None, None, Storage::Classic)
}

/// Compiles a convolution through a connection table: only the taps from input channel `i` to output
/// channel `o` with `T[o, i] = 1` are stored; parameter ids keep the dense `(c_out, c_in, k, k)` layout.
///
/// # Panics
/// If the geometry does not apply, or the table is not `(c_out, c_in)`.
#[track_caller]
pub fn compile_table_conv(g: &ConvGeometry, table: Table) -> TiedMatrix {
    compile_conv_in(g, 1, Some(table), None, Storage::Classic)
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
    compile_conv_in(g, groups, table, Some(keep), Storage::Classic)
}

/// A convolution of `groups` groups or through `table`, with only the kernel entries `keep` marks when
/// given, in `storage`: [`compile_grouped_conv`], [`compile_table_conv`] or [`compile_pruned_conv`], stored
/// as `storage` says. Under zero padding the compact form is compiled straight from the geometry, group by
/// group ([`CompactMap::from_rows`]), so the compile never holds the classic index (4 bytes per nonzero
/// of codes at most); it equals the classic form's `to_compact()` (tests/it/compact.rs).
///
/// # Panics
/// As [`compile_pruned_conv`]; `table` with `groups` other than 1.
#[track_caller]
pub fn compile_conv_in(
    g: &ConvGeometry,
    groups: usize,
    table: Option<Table>,
    keep: Option<&[bool]>,
    storage: Storage,
) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_conv: {e}");
    }
    assert!(
        groups > 0 && g.c_in.is_multiple_of(groups) && g.c_out.is_multiple_of(groups),
        "compile_conv: groups={groups} must divide c_in={} and c_out={}",
        g.c_in,
        g.c_out
    );
    assert!(table.is_none() || groups == 1, "compile_conv: a table with groups={groups}");
    let width = if table.is_some() { g.c_in } else { g.c_in / groups };
    let n_params = g.c_out * width * g.k * g.k;
    if let Some(keep) = keep {
        assert_eq!(keep.len(), n_params, "compile_pruned_conv: mask length on {g:?}, groups={groups}");
    }
    if let Some(t) = table {
        assert_eq!(t.dims(), (g.c_out, g.c_in), "compile_table_conv: table {t} on {g:?}");
    }
    let (cig, cog) = (g.c_in / groups, g.c_out / groups);
    // Input channel `i` through kernel column `j` of output channel `o`, if they connect.
    let column = |o: usize, i: usize| match table {
        Some(t) => t.connects(o, i).then_some(i),
        None => (i / cig == o / cog).then_some(i % cig),
    };
    let m = match storage {
        Storage::Compact if g.mode == crate::geometry::PaddingMode::Zeros => {
            compile_where_compact(g, n_params, width, keep, column)
        }
        _ => storage::stored_as(compile_where(g, n_params, width, keep, column), storage),
    };
    let Some(keep) = keep else { return m };
    // A mask gives each row its own column list, so each row is a group of one: visited channel by channel,
    // every output channel would sweep the whole input; position by position, the channels at one position
    // share an input window that stays in cache, but consecutive rows write to different channel planes. So
    // the rows go in runs of positions, channel by channel within a run (same bits, see `with_visit_order`).
    let kept = keep.iter().filter(|&&k| k).count() as f64 / keep.len().max(1) as f64;
    let (p_out, p_in) = ((g.h_out() * g.w_out()) as u64, (g.h_in * g.w_in) as u64);
    let run_w = visit_run(g.c_in, g.k, g.w_out(), kept);
    let run_t = visit_run(g.c_out, g.k, g.w_in, kept);
    let (c_out, c_in) = (g.c_out as u64, g.c_in as u64);
    m.with_visit_order(move |r| run_key(r as u64, p_out, c_out, run_w), move |c| run_key(c as u64, p_in, c_in, run_t))
}

/// Input columns (of 64 samples, 256 bytes: 512 KiB, a second-level cache) that a run of a pruned
/// convolution's visit order may span.
const RUN_COLUMNS: usize = 2048;

/// Below this fraction of kept kernel entries, the rows of one position share almost no input column, and a
/// run is a whole row of the image.
const SPARSE_RUN: f64 = 0.05;

/// The positions per run of a pruned convolution's visit order (see [`run_key`]) for products that read
/// `channels` input channels through a `k × k` kernel over rows of `width` positions: as many as keep the
/// input window of the run (`channels · k · (run + k − 1)` columns) within [`RUN_COLUMNS`], at least one, at
/// most a row; a whole row when at most [`SPARSE_RUN`] of the entries are kept, so that each channel writes
/// (and reads) a row of the image in sequence. Measured on c64-56 and c32-64 at 90% and 99% with
/// `dev/pruned_time.rs` (docs/design.md, "Pruned products").
fn visit_run(channels: usize, k: usize, width: usize, kept: f64) -> usize {
    if kept <= SPARSE_RUN {
        return width.max(1);
    }
    (RUN_COLUMNS / (channels * k).max(1)).saturating_sub(k - 1).clamp(1, width.max(1))
}

/// The visit key of row `r` = `channel · positions + position`: runs of `run` consecutive positions, and
/// within a run the channels in order, each over the run's positions.
fn run_key(r: u64, positions: u64, channels: u64, run: usize) -> u64 {
    let (channel, position) = (r / positions, r % positions);
    let run = run as u64;
    ((position / run) * channels + channel) * run + position % run
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

/// [`compile_where`] under zero padding, straight into the compact storage: row `(o, oy, ox)` of `W` reads
/// columns `(i, iy, ix)` in increasing order (input channel, then the taps of each axis in kernel order), row
/// `(i, iy, ix)` of `Wᵀ` reads `(o, oy, ox)` in increasing order; each is generated when
/// [`CompactMap::from_rows`] asks for it.
fn compile_where_compact(
    g: &ConvGeometry,
    n_params: usize,
    width: usize,
    keep: Option<&[bool]>,
    column: impl Fn(usize, usize) -> Option<usize>,
) -> TiedMatrix {
    let (h_out, w_out, k) = (g.h_out(), g.w_out(), g.k);
    // The kept kernel entries once: per output channel `(i, ky, kx, param)` in increasing `(i, ky, kx)`, the
    // order of a row's columns; per input channel `(o, ky, kx, param)` in increasing `o`, then decreasing `ky`
    // and `kx`, the order of a `Wᵀ` row's columns (a larger kernel index reads from a smaller output
    // coordinate). A row then visits only its channel's kept entries.
    let mut by_out: Vec<Vec<(usize, usize, usize, u32)>> = vec![Vec::new(); g.c_out];
    let mut by_in: Vec<Vec<(usize, usize, usize, u32)>> = vec![Vec::new(); g.c_in];
    for (o, taps) in by_out.iter_mut().enumerate() {
        for (i, readers) in by_in.iter_mut().enumerate() {
            let Some(j) = column(o, i) else { continue };
            for ky in 0..k {
                for kx in 0..k {
                    let p = ((o * width + j) * k + ky) * k + kx;
                    if keep.is_none_or(|m| m[p]) {
                        taps.push((i, ky, kx, p as u32));
                        readers.push((o, ky, kx, p as u32));
                    }
                }
            }
        }
    }
    by_in.iter_mut().for_each(|t| t.sort_by_key(|&(o, ky, kx, _)| (o, std::cmp::Reverse((ky, kx)))));
    // Per axis, from its taps ([`axis_taps`]): the input coordinate each (output coordinate, kernel index)
    // reads, and the output coordinate that reads each (input coordinate, kernel index), if any.
    let tables = |n_in: usize, n_out: usize| {
        let (fwd, inv) = axis_taps(g, n_in, n_out);
        let mut reads = vec![vec![None; k]; n_out];
        let mut read_by = vec![vec![None; k]; n_in];
        for (o, taps) in fwd.iter().enumerate() {
            taps.iter().for_each(|&(kappa, c)| reads[o][kappa] = Some(c));
        }
        for (c, taps) in inv.iter().enumerate() {
            taps.iter().for_each(|&(o, kappa)| read_by[c][kappa] = Some(o));
        }
        (reads, read_by)
    };
    let ((iy_of, oy_of), (ix_of, ox_of)) = (tables(g.h_in, h_out), tables(g.w_in, w_out));
    let w_row = |r: usize, cols: &mut Vec<u32>, codes: &mut Vec<u32>| {
        cols.clear();
        codes.clear();
        let (o, oy, ox) = (r / (h_out * w_out), r / w_out % h_out, r % w_out);
        for &(i, ky, kx, p) in &by_out[o] {
            if let (Some(iy), Some(ix)) = (iy_of[oy][ky], ix_of[ox][kx]) {
                cols.push(((i * g.h_in + iy) * g.w_in + ix) as u32);
                codes.push(p);
            }
        }
    };
    let wt_row = |c: usize, cols: &mut Vec<u32>, codes: &mut Vec<u32>| {
        cols.clear();
        codes.clear();
        let (i, iy, ix) = (c / (g.h_in * g.w_in), c / g.w_in % g.h_in, c % g.w_in);
        for &(o, ky, kx, p) in &by_in[i] {
            if let (Some(oy), Some(ox)) = (oy_of[iy][ky], ox_of[ix][kx]) {
                cols.push(((o * h_out + oy) * w_out + ox) as u32);
                codes.push(p);
            }
        }
    };
    let w = CompactMap::from_rows((g.out_len(), g.in_len()), n_params, w_row);
    let wt = CompactMap::from_rows((g.in_len(), g.out_len()), n_params, wt_row);
    TiedMatrix::from_compact(w, wt, n_params, Vec::new(), vec![0], Vec::new())
}

/// One axis of `g` under zero padding: for each output coordinate, its (kernel index, input coordinate)
/// pairs inside the `n_in` inputs, kernel index increasing; for each input coordinate, its (output
/// coordinate, kernel index) pairs, output coordinate increasing.
#[allow(clippy::type_complexity)]
fn axis_taps(g: &ConvGeometry, n_in: usize, n_out: usize) -> (Vec<Vec<(usize, usize)>>, Vec<Vec<(usize, usize)>>) {
    let mut fwd = vec![Vec::new(); n_out];
    let mut inv = vec![Vec::new(); n_in];
    for (o, f) in fwd.iter_mut().enumerate() {
        for kappa in 0..g.k {
            let c = tap_coord(o, kappa, g.stride, g.dil, g.pad);
            if (0..n_in as isize).contains(&c) {
                f.push((kappa, c as usize));
                inv[c as usize].push((o, kappa));
            }
        }
    }
    (fwd, inv)
}

/// Compiles a plain convolution (one group, zero padding) straight into the compact storage
/// ([`crate::tied::compact`]), never holding a code per nonzero: the result equals
/// `compile_conv(g).to_compact()` (tests/it/compact.rs), built group by group.
///
/// Rows are grouped as [`crate::tied::RowGroups::detect`] groups them: positions with the same column list in
/// order of first appearance, their rows in row order, cut into groups of at most 16. A group of one position
/// (every group unless two positions read the same inputs) is separable: output channel `o0 + i` copies tap
/// `t` as parameter `(o0 + i)·c_in·k² + t` in `W`; in `Wᵀ`, input channel `i0 + i` reads output channel `o`
/// through tap `(ky, kx)` as parameter `o·c_in·k² + (i0 + i)·k² + ky·k + kx`.
///
/// # Panics
/// If the geometry does not apply, or its padding mode is not zeros.
#[track_caller]
pub fn compile_conv_compact(g: &ConvGeometry) -> TiedMatrix {
    if let Err(e) = g.check() {
        panic!("compile_conv_compact: {e}");
    }
    assert_eq!(g.mode, crate::geometry::PaddingMode::Zeros, "compile_conv_compact: zero padding only");
    let (h_out, w_out, k) = (g.h_out(), g.w_out(), g.k);
    let (kk, tpo) = (k * k, g.c_in * k * k);
    let ((fy, iy_inv), (fx, ix_inv)) = (axis_taps(g, g.h_in, h_out), axis_taps(g, g.w_in, w_out));
    let n_params = g.kernel_len();

    // W: position (oy, ox) reads columns (i, iy, ix) through taps (i, ky, kx), increasing together.
    let w_pos = |p: usize, cols: &mut Vec<u32>, taps: &mut Vec<u32>| {
        let (oy, ox) = (p / w_out, p % w_out);
        cols.clear();
        taps.clear();
        for i in 0..g.c_in {
            for &(ky, iy) in &fy[oy] {
                for &(kx, ix) in &fx[ox] {
                    cols.push(((i * g.h_in + iy) * g.w_in + ix) as u32);
                    taps.push(((i * k + ky) * k + kx) as u32);
                }
            }
        }
    };
    let w = compact_side((g.out_len(), g.in_len()), n_params, g.c_out, h_out * w_out, tpo, w_pos);
    // Wᵀ: input position (iy, ix) is read by outputs (o, oy, ox), increasing, through taps (o, ky, kx).
    let wt_pos = |q: usize, cols: &mut Vec<u32>, taps: &mut Vec<u32>| {
        let (iy, ix) = (q / g.w_in, q % g.w_in);
        cols.clear();
        taps.clear();
        for o in 0..g.c_out {
            for &(oy, ky) in &iy_inv[iy] {
                for &(ox, kx) in &ix_inv[ix] {
                    cols.push(((o * h_out + oy) * w_out + ox) as u32);
                    taps.push((o * tpo + ky * k + kx) as u32);
                }
            }
        }
    };
    let wt = compact_side((g.in_len(), g.out_len()), n_params, g.c_in, g.h_in * g.w_in, kk, wt_pos);
    TiedMatrix::from_compact(w, wt, n_params, Vec::new(), vec![0], Vec::new())
}

/// One direction of a plain convolution in compact form: `channels` channels of `positions` positions (row
/// `c·positions + p`), position `p` reading columns `cols` through the taps `taps` of channel 0 (`at(p, cols,
/// taps)`), channel `c` reading tap `t` as parameter `t + c·stride`.
fn compact_side(
    shape: (usize, usize),
    n_params: usize,
    channels: usize,
    positions: usize,
    stride: usize,
    at: impl Fn(usize, &mut Vec<u32>, &mut Vec<u32>),
) -> crate::tied::CompactMap {
    use std::collections::HashMap;
    let (mut cols, mut taps, mut rel) = (Vec::new(), Vec::new(), Vec::new());
    // Positions by column list (a pattern up to a shift), in order of first appearance; only the few distinct
    // patterns are held.
    let mut pattern_id: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut taps_id: HashMap<Vec<u32>, u32> = HashMap::new();
    let mut by_cols: HashMap<(u32, u32), usize> = HashMap::new();
    // Per set of positions with one column list: (pattern id, tap-list id of its first position), positions.
    let mut members: Vec<((u32, u32), Vec<u32>)> = Vec::new();
    for p in 0..positions {
        at(p, &mut cols, &mut taps);
        let shift = cols.first().copied().unwrap_or(0);
        rel.clear();
        rel.extend(cols.iter().map(|&c| c - shift));
        let n_patterns = pattern_id.len() as u32;
        let pid = *pattern_id.entry(rel.clone()).or_insert(n_patterns);
        let n_taps = taps_id.len() as u32;
        let tid = *taps_id.entry(taps.clone()).or_insert(n_taps);
        let m = *by_cols.entry((pid, shift)).or_insert_with(|| {
            members.push(((pid, tid), Vec::new()));
            members.len() - 1
        });
        members[m].1.push(p as u32);
    }
    drop((pattern_id, taps_id, by_cols));
    let mut b = CompactBuilder::new(shape, n_params);
    let max = RowGroups::MAX_ROWS;
    let (mut offsets, mut codes) = (Vec::new(), Vec::new());
    // The first group of each (pattern, taps, first channel, rows): the positions of one kind repeat its
    // pattern and block, shifted.
    let mut first_of_kind: HashMap<(u32, u32, u32, usize), usize> = HashMap::new();
    for (kind, ps) in &members {
        let rows: Vec<u32> = (0..channels).flat_map(|c| ps.iter().map(move |&p| (c * positions) as u32 + p)).collect();
        at(ps[0] as usize, &mut cols, &mut taps);
        for chunk in rows.chunks(max) {
            if ps.len() == 1 && !cols.is_empty() {
                // One position: channel c0 + i reads taps + (c0 + i)·stride.
                let c0 = (chunk[0] as usize / positions) as u32;
                let key = (kind.0, kind.1, c0, chunk.len());
                if let Some(&like) = first_of_kind.get(&key) {
                    b.push_like(chunk, cols[0], like);
                    continue;
                }
                first_of_kind.insert(key, b.n_groups());
                let base: Vec<u32> = taps.iter().map(|&t| t + c0 * stride as u32).collect();
                offsets.clear();
                offsets.extend(chunk.iter().map(|&r| (r as usize / positions) as u32 - c0).map(|d| d * stride as u32));
                b.push_separable(chunk, &cols, &base, &offsets);
                continue;
            }
            // Several positions share the columns (or none): each row's codes, then the general rule.
            codes.clear();
            let mut row_taps = Vec::new();
            for &r in chunk {
                let (c, p) = (r as usize / positions, r as usize % positions);
                at(p, &mut Vec::new(), &mut row_taps);
                codes.extend(row_taps.iter().map(|&t| t + (c * stride) as u32));
            }
            let n = cols.len();
            b.push_group(chunk, &cols, |i| &codes[i * n..(i + 1) * n]);
        }
    }
    b.finish()
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
    let plain = groups == 1 && g.mode == crate::geometry::PaddingMode::Zeros;
    let matrix = if plain && storage::index_storage() == Storage::Compact {
        compile_conv_compact(g)
    } else {
        compile_conv_in(g, groups, None, None, storage::index_storage())
    };
    TiedLayer::new(matrix, weight_shape, Some((bias_ids, vec![g.c_out])))
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
    TiedLayer::new(
        compile_conv_in(g, groups, table, Some(keep), storage::index_storage()),
        weight_shape,
        Some((bias_ids, vec![g.c_out])),
    )
}

/// A convolution through a connection table: weight `(c_out, c_in, k, k)` (entries outside the table
/// are read by no nonzero), bias `(c_out)`.
pub fn table_conv_layer<T: Real>(g: &ConvGeometry, table: Table) -> TiedLayer<T> {
    let positions = g.h_out() * g.w_out();
    let bias_ids = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
    let matrix = compile_conv_in(g, 1, Some(table), None, storage::index_storage());
    TiedLayer::new(matrix, g.weight_shape(), Some((bias_ids, vec![g.c_out])))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs of a pruned convolution's visit order: whole rows when at most 5% of the entries are kept,
    /// else as many positions as keep the window within 2,048 columns (c64-56: 8; c32-64: a row of 16), and
    /// the keys order every row once, channel by channel within a run of positions.
    #[test]
    fn visit_runs_fit_the_window_and_keys_are_a_permutation() {
        assert_eq!(visit_run(64, 3, 56, 0.1), 8);
        assert_eq!(visit_run(64, 3, 56, 0.01), 56);
        assert_eq!(visit_run(32, 3, 16, 0.1), 16);
        assert_eq!(visit_run(512, 3, 14, 0.5), 1);
        let (positions, channels, run) = (10u64, 3u64, 4usize);
        let mut keys: Vec<(u64, u64)> =
            (0..positions * channels).map(|r| (run_key(r, positions, channels, run), r)).collect();
        keys.sort();
        let order: Vec<u64> = keys.iter().map(|&(_, r)| r).collect();
        // Positions 0..4 of channels 0, 1, 2, then 4..8, then 8..10.
        let want: Vec<u64> = [(0, 4), (4, 8), (8, 10)]
            .iter()
            .flat_map(|&(a, b)| (0..channels).flat_map(move |c| (a..b).map(move |p| c * positions + p)))
            .collect();
        assert_eq!(order, want);
        let distinct: std::collections::BTreeSet<u64> = keys.iter().map(|&(k, _)| k).collect();
        assert_eq!(distinct.len(), keys.len(), "keys are distinct");
    }
}
