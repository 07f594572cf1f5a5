//! Hand-written AVX-512 micro-kernels for `f32`, the training type, where the portable loops of
//! [`super::super::products`] and [`super::super::gradients`] leave the compiler spilling accumulators. Each computes
//! exactly what its portable twin computes, with the same fused multiply-adds in the same order, so the bits
//! do not depend on which one runs: the unit tests below compare the group products with the portable
//! loop, and the unit test in `gradients.rs` compares the gradient tiles (`param_grad` against `param_grad_portable`).

#![cfg(target_arch = "x86_64")]
// The index loops over registers are the register tiles.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::super::views::{OutRows, RowWeights};

use crate::cpu::LANES;

/// The group product of [`super::super::products`] for `f32`: for the `G` rows `g` of a group,
/// `y[:, rows[g]] = init[g] + Σ_j w(g, j) · x[:, cols[j]]`, summed in column order from `init[g]` with fused
/// multiply-adds, as the portable loop sums from an accumulator holding `init[g]`. Blocks of rows × 64 samples
/// (up to 6 rows, 4 registers per row) stay in registers over all `n` columns; then one block of 32 samples (up
/// to 8 rows × 2 registers), then one of 16 (up to 8 rows × 1 register), then the last samples one by one. A
/// value's sum is the same whatever block it falls in.
///
/// # Safety
/// The CPU has AVX-512F and FMA; every column is `< x.len() / batch`; `out.y` is valid for writes at
/// `out.rows[g]·batch .. (out.rows[g] + 1)·batch` for each `g`, and no other thread touches those values;
/// `init.len() == out.rows.len()`; `w.get(g, j)` is valid for every row `g` and `j < cols.len()`, and
/// `*w.base(g).offset(w.delta(j))` is that value ([`RowWeights`]; for a `SeparableWeights` `w`, `θ.len() <= 2³¹`).
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn product_avx512<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
) {
    check_group(out, init, cols, x, batch);
    let e = Ends::of(batch);
    // SAFETY: the caller's contract, the group checked above.
    unsafe {
        blocks_of_64(out, init, w, cols, x, batch, e.e64);
        blocks_of_q(out, init, w, cols, x, batch, 2, (e.e64, e.e32));
        blocks_of_q(out, init, w, cols, x, batch, 1, (e.e32, e.e16));
        block_of_8(out, init, w, cols, x, batch, (e.e16, e.e8));
        tail(out, init, w, cols, x, batch, e.e8);
    }
}

/// [`product_avx512`] for two twin groups (see [`super::super::SeparableGroups::twin`]): the same weights
/// `w`, their own rows and columns. The block of 32 samples runs both groups at once (up to 6 rows × 2 groups
/// × 2 registers), so each loaded weight serves both; every value is the sum [`product_avx512`] computes, in
/// the same order.
///
/// # Safety
/// [`product_avx512`]'s, for each group with the shared `w`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn product_twins_avx512<Wt: RowWeights>(
    out: [OutRows<'_>; 2],
    init: [&[f32]; 2],
    w: Wt,
    cols: [&[u32]; 2],
    x: &[f32],
    batch: usize,
) {
    for k in 0..2 {
        check_group(out[k], init[k], cols[k], x, batch);
    }
    assert!(out[0].rows.len() == out[1].rows.len() && cols[0].len() == cols[1].len());
    let e = Ends::of(batch);
    // SAFETY: the caller's contract, both groups checked above.
    unsafe {
        for k in 0..2 {
            blocks_of_64(out[k], init[k], w, cols[k], x, batch, e.e64);
        }
        if e.e32 > e.e64 {
            for_row_blocks(out[0].rows.len(), 6, |g0, r| match r {
                6 => twin_rows_avx512::<6, Wt>(out, init, w, cols, x, batch, g0, e.e64),
                4 => twin_rows_avx512::<4, Wt>(out, init, w, cols, x, batch, g0, e.e64),
                2 => twin_rows_avx512::<2, Wt>(out, init, w, cols, x, batch, g0, e.e64),
                _ => twin_rows_avx512::<1, Wt>(out, init, w, cols, x, batch, g0, e.e64),
            });
        }
        for k in 0..2 {
            blocks_of_q(out[k], init[k], w, cols[k], x, batch, 1, (e.e32, e.e16));
            block_of_8(out[k], init[k], w, cols[k], x, batch, (e.e16, e.e8));
            tail(out[k], init[k], w, cols[k], x, batch, e.e8);
        }
    }
}

/// Panics unless a group's initial values match its rows. That its columns lie inside `x` (B, C) is the
/// caller's contract (they come from a checked map, and `x` was checked to be (B, C)): checked here in debug
/// builds only, since a loop over the columns per group costs 10-15% of a 32-sample product.
#[inline]
pub(super) fn check_group(out: OutRows<'_>, init: &[f32], cols: &[u32], x: &[f32], batch: usize) {
    assert!(init.len() == out.rows.len());
    debug_assert!(cols.iter().all(|&c| (c as usize + 1) * batch <= x.len()));
}

/// Where the sample blocks of a batch end: blocks of 64 up to `e64`, one of 32 up to `e32`, one of 16 up to
/// `e16`, one of 8 (lanes 0..8 of a register) up to `e8`, then single samples.
#[derive(Clone, Copy)]
struct Ends {
    e64: usize,
    e32: usize,
    e16: usize,
    e8: usize,
}

impl Ends {
    fn of(batch: usize) -> Self {
        let e64 = batch - batch % (4 * LANES);
        let e32 = e64 + (batch - e64) / (2 * LANES) * (2 * LANES);
        let e16 = e32 + (batch - e32) / LANES * LANES;
        let e8 = e16 + (batch - e16) / HALF * HALF;
        Ends { e64, e32, e16, e8 }
    }
}

/// The samples of a half block: lanes 0..8 of a 512-bit register.
const HALF: usize = LANES / 2;

/// The samples `0..end64` of a group, in blocks of up to 6 rows × 64 samples.
///
/// # Safety
/// [`product_avx512`]'s.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn blocks_of_64<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    end64: usize,
) {
    if end64 == 0 {
        return;
    }
    // SAFETY: whole blocks of 64 inside 0..batch; the rest is the caller's.
    unsafe {
        for_row_blocks(out.rows.len(), 6, |g0, r| match r {
            6 => rows_avx512::<6, 4, Wt>(out, init, w, cols, x, batch, g0, (0, end64)),
            4 => rows_avx512::<4, 4, Wt>(out, init, w, cols, x, batch, g0, (0, end64)),
            2 => rows_avx512::<2, 4, Wt>(out, init, w, cols, x, batch, g0, (0, end64)),
            _ => rows_avx512::<1, 4, Wt>(out, init, w, cols, x, batch, g0, (0, end64)),
        });
    }
}

/// The samples `range` of a group (a block of `q·16`, `q` 2 or 1, or nothing), in blocks of up to 8 rows.
///
/// # Safety
/// [`product_avx512`]'s.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn blocks_of_q<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    q: usize,
    range: (usize, usize),
) {
    if range.0 == range.1 {
        return;
    }
    // SAFETY: one whole block inside 0..batch; the rest is the caller's.
    unsafe {
        for_row_blocks(out.rows.len(), 8, |g0, r| match (q, r) {
            (2, 8) => rows_avx512::<8, 2, Wt>(out, init, w, cols, x, batch, g0, range),
            (2, 6) => rows_avx512::<6, 2, Wt>(out, init, w, cols, x, batch, g0, range),
            (2, 4) => rows_avx512::<4, 2, Wt>(out, init, w, cols, x, batch, g0, range),
            (2, 2) => rows_avx512::<2, 2, Wt>(out, init, w, cols, x, batch, g0, range),
            (2, _) => rows_avx512::<1, 2, Wt>(out, init, w, cols, x, batch, g0, range),
            (_, 8) => rows_avx512::<8, 1, Wt>(out, init, w, cols, x, batch, g0, range),
            (_, 6) => rows_avx512::<6, 1, Wt>(out, init, w, cols, x, batch, g0, range),
            (_, 4) => rows_avx512::<4, 1, Wt>(out, init, w, cols, x, batch, g0, range),
            (_, 2) => rows_avx512::<2, 1, Wt>(out, init, w, cols, x, batch, g0, range),
            _ => rows_avx512::<1, 1, Wt>(out, init, w, cols, x, batch, g0, range),
        });
    }
}

/// The samples `range` of a group (a block of 8, or nothing) in lanes 0..8, in blocks of up to 16 rows (vgg16's
/// batch of 8 would otherwise run one sample at a time).
///
/// # Safety
/// [`product_avx512`]'s.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn block_of_8<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    range: (usize, usize),
) {
    if range.0 == range.1 {
        return;
    }
    // SAFETY: one block of 8 inside 0..batch; the rest is the caller's.
    unsafe {
        for_row_blocks(out.rows.len(), 16, |g0, r| match r {
            16 => rows_of_8::<16, Wt>(out, init, w, cols, x, batch, g0, range.0),
            6 => rows_of_8::<6, Wt>(out, init, w, cols, x, batch, g0, range.0),
            4 => rows_of_8::<4, Wt>(out, init, w, cols, x, batch, g0, range.0),
            2 => rows_of_8::<2, Wt>(out, init, w, cols, x, batch, g0, range.0),
            _ => rows_of_8::<1, Wt>(out, init, w, cols, x, batch, g0, range.0),
        });
    }
}

/// Rows `g0..g0 + R` of a group at the 8 samples `b0..b0 + 8`, in lanes 0..8 (masked loads and stores: lanes
/// 8..16 read and write nothing). Each value sums the columns in order, as every block does.
///
/// # Safety
/// [`product_avx512`]'s (asserted here: `R <= 24`, `b0 + 8 <= batch`, `g0 + R <= G`).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_of_8<const R: usize, Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    g0: usize,
    b0: usize,
) {
    const LOW: __mmask16 = 0x00ff;
    assert!(R <= 24 && b0 + HALF <= batch && g0 + R <= out.rows.len());
    let xp = x.as_ptr();
    // SAFETY: the rows' batch columns are writable (caller); b0 + 8 <= batch and the masked accesses touch
    // lanes 0..8 only; every column c has x[c·batch..(c + 1)·batch] (checked by the caller).
    unsafe {
        let mut a = [_mm512_setzero_ps(); R];
        for r in 0..R {
            a[r] = _mm512_set1_ps(init[g0 + r]);
        }
        let wp = row_bases::<R, Wt>(w, g0, cols.len());
        for (j, &c) in cols.iter().enumerate() {
            let d = w.delta(j);
            let xv = _mm512_maskz_loadu_ps(LOW, xp.add(c as usize * batch + b0));
            for r in 0..R {
                a[r] = _mm512_fmadd_ps(_mm512_set1_ps(*wp[r].offset(d)), xv, a[r]);
            }
        }
        for r in 0..R {
            _mm512_mask_storeu_ps(out.y.add(out.rows[g0 + r] as usize * batch + b0), LOW, a[r]);
        }
    }
}

/// The samples `start..batch` of a group, one by one.
///
/// # Safety
/// [`product_avx512`]'s.
#[inline]
unsafe fn tail<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    start: usize,
) {
    if start == batch {
        return;
    }
    // SAFETY: the rows' batch columns are writable and the columns inside x (caller).
    unsafe {
        for (g, &row) in out.rows.iter().enumerate() {
            let y = out.y.add(row as usize * batch);
            for b in start..batch {
                *y.add(b) = init[g];
            }
        }
        for (j, &c) in cols.iter().enumerate() {
            let xc = x.as_ptr().add(c as usize * batch);
            for (g, &row) in out.rows.iter().enumerate() {
                let wv = w.get(g, j);
                let y = out.y.add(row as usize * batch);
                for b in start..batch {
                    *y.add(b) = wv.mul_add(*xc.add(b), *y.add(b));
                }
            }
        }
    }
}

/// [`product_twins_avx512`]'s block of 32 samples `b0..b0 + 32` for rows `g0..g0 + R` of both groups.
///
/// # Safety
/// [`product_twins_avx512`]'s: [`product_avx512`]'s for each group with the shared `w`, the two groups with as
/// many rows and columns (asserted there); asserted here: `R <= 6`, `b0 + 32 <= batch`, `g0 + R <= G`.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn twin_rows_avx512<const R: usize, Wt: RowWeights>(
    out: [OutRows<'_>; 2],
    init: [&[f32]; 2],
    w: Wt,
    cols: [&[u32]; 2],
    x: &[f32],
    batch: usize,
    g0: usize,
    b0: usize,
) {
    assert!(R <= 6 && b0 + 2 * LANES <= batch && g0 + R <= out[0].rows.len());
    let xp = x.as_ptr();
    // SAFETY: the rows' batch columns are writable (caller); b0 + 32 <= batch; every column c of either group
    // has x[c·batch..(c + 1)·batch] (checked by the caller).
    unsafe {
        // a[(k·R + r)·2 + q]: group k, row g0 + r, samples b0 + 16q..
        let mut a = [_mm512_setzero_ps(); 24];
        for k in 0..2 {
            for r in 0..R {
                let v = _mm512_set1_ps(init[k][g0 + r]);
                a[(k * R + r) * 2] = v;
                a[(k * R + r) * 2 + 1] = v;
            }
        }
        let wp = row_bases::<R, Wt>(w, g0, cols[0].len());
        for j in 0..cols[0].len() {
            let d = w.delta(j);
            let xa = xp.add(cols[0][j] as usize * batch + b0);
            let xb = xp.add(cols[1][j] as usize * batch + b0);
            let xv = [
                _mm512_loadu_ps(xa),
                _mm512_loadu_ps(xa.add(LANES)),
                _mm512_loadu_ps(xb),
                _mm512_loadu_ps(xb.add(LANES)),
            ];
            for r in 0..R {
                let wv = _mm512_set1_ps(*wp[r].offset(d));
                a[r * 2] = _mm512_fmadd_ps(wv, xv[0], a[r * 2]);
                a[r * 2 + 1] = _mm512_fmadd_ps(wv, xv[1], a[r * 2 + 1]);
                a[(R + r) * 2] = _mm512_fmadd_ps(wv, xv[2], a[(R + r) * 2]);
                a[(R + r) * 2 + 1] = _mm512_fmadd_ps(wv, xv[3], a[(R + r) * 2 + 1]);
            }
        }
        for k in 0..2 {
            for r in 0..R {
                let y = out[k].y.add(out[k].rows[g0 + r] as usize * batch + b0);
                _mm512_storeu_ps(y, a[(k * R + r) * 2]);
                _mm512_storeu_ps(y.add(LANES), a[(k * R + r) * 2 + 1]);
            }
        }
    }
}

/// The addresses of `w(g0 + r, 0)` for the `R` rows of a register tile: each weight is then one broadcast
/// from a row pointer and the column's distance ([`RowWeights`]).
///
/// Null for a group without columns, which reads no weight.
///
/// # Safety
/// Rows `g0..g0 + R` lie inside the group of `n` columns.
#[inline(always)]
pub(super) unsafe fn row_bases<const R: usize, Wt: RowWeights>(w: Wt, g0: usize, n: usize) -> [*const f32; R] {
    // SAFETY: the caller's; the group has a column.
    std::array::from_fn(|r| if n == 0 { std::ptr::null() } else { unsafe { w.base(g0 + r) } })
}

/// Calls `f(g0, r)` for consecutive blocks of `r` rows covering `0..g_total`: `max` rows while they last, then
/// 6, 4, 2 or 1.
#[inline(always)]
fn for_row_blocks(g_total: usize, max: usize, mut f: impl FnMut(usize, usize)) {
    let mut g0 = 0;
    while g0 < g_total {
        let r = match g_total - g0 {
            rest if rest >= max => max,
            rest if rest >= 6 => 6,
            rest if rest >= 4 => 4,
            rest if rest >= 2 => 2,
            _ => 1,
        };
        f(g0, r);
        g0 += r;
    }
}

/// [`product_avx512`] for rows `g0..g0 + R` and the samples `b_start..b_end`, in blocks of `Q` registers
/// (`Q·16` samples; `R·Q <= 24`).
///
/// # Safety
/// [`product_avx512`]'s (asserted here: `R·Q <= 24`, whole blocks of `Q·16` samples in `b_start..b_end`,
/// `b_end <= batch`, `g0 + R <= G`).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn rows_avx512<const R: usize, const Q: usize, Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    g0: usize,
    (b_start, b_end): (usize, usize),
) {
    assert!(R * Q <= 24 && (b_end - b_start) % (Q * LANES) == 0 && b_end <= batch && g0 + R <= out.rows.len());
    let xp = x.as_ptr();
    // SAFETY: the rows' batch columns are writable (caller); b0 + Q·LANES <= b_end <= batch; every column c has
    // x[c·batch..(c + 1)·batch] (checked by the caller).
    unsafe {
        let mut yp = [out.y; R];
        for r in 0..R {
            yp[r] = out.y.add(out.rows[g0 + r] as usize * batch);
        }
        let wp = row_bases::<R, Wt>(w, g0, cols.len());
        let mut b0 = b_start;
        while b0 < b_end {
            let mut a = [_mm512_setzero_ps(); 24];
            for r in 0..R {
                for q in 0..Q {
                    a[Q * r + q] = _mm512_set1_ps(init[g0 + r]);
                }
            }
            for (j, &c) in cols.iter().enumerate() {
                let d = w.delta(j);
                let xc = xp.add(c as usize * batch + b0);
                let mut xv = [_mm512_setzero_ps(); Q];
                for q in 0..Q {
                    xv[q] = _mm512_loadu_ps(xc.add(q * LANES));
                }
                for r in 0..R {
                    let wv = _mm512_set1_ps(*wp[r].offset(d));
                    for q in 0..Q {
                        a[Q * r + q] = _mm512_fmadd_ps(wv, xv[q], a[Q * r + q]);
                    }
                }
            }
            for r in 0..R {
                for q in 0..Q {
                    _mm512_storeu_ps(yp[r].add(b0 + q * LANES), a[Q * r + q]);
                }
            }
            b0 += Q * LANES;
        }
    }
}

/// The product of a *run*: groups of one row each that copy one weight row at different shifts (a pruned
/// convolution's output channel at consecutive positions: the same kept taps, each position's window shifted).
/// Member `r` writes `y[:, out.rows[r]] = init[r] + Σ_j w(0, j) · x[:, shifts[r] + cols[j]]`, summed in column
/// order from `init[r]` with fused multiply-adds: exactly what [`product_avx512`] computes for each member
/// alone (on `x` from column `shifts[r]` on), so the bits do not change. Blocks of up to 6 members × 64 samples
/// (4 registers each) stay in registers over all `n` columns, each weight broadcast once for the block; then
/// one block of 32 samples (up to 12 members), one of 16 (up to 12), then each member's last samples as
/// [`product_avx512`] runs them.
///
/// # Safety
/// [`product_avx512`]'s for each member `r` (one row, `out.rows[r..r + 1]`, on `x` from column `shifts[r]`),
/// with `w`'s row 0 the shared weights; `shifts.len() == init.len() == out.rows.len()`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn product_run_avx512<Wt: RowWeights>(
    out: OutRows<'_>,
    shifts: &[u32],
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
) {
    check_group(out, init, cols, x, batch);
    assert_eq!(shifts.len(), init.len());
    debug_assert!(
        shifts.iter().all(|&s| cols.last().is_none_or(|&c| (s as usize + c as usize + 1) * batch <= x.len()))
    );
    let e = Ends::of(batch);
    let m = shifts.len();
    // SAFETY: the caller's contract, the members checked above.
    unsafe {
        if e.e64 > 0 {
            for_row_blocks(m, 6, |g0, r| match r {
                6 => run_rows_avx512::<6, 4, Wt>(out, shifts, init, w, cols, x, batch, g0, (0, e.e64)),
                4 => run_rows_avx512::<4, 4, Wt>(out, shifts, init, w, cols, x, batch, g0, (0, e.e64)),
                2 => run_rows_avx512::<2, 4, Wt>(out, shifts, init, w, cols, x, batch, g0, (0, e.e64)),
                _ => run_rows_avx512::<1, 4, Wt>(out, shifts, init, w, cols, x, batch, g0, (0, e.e64)),
            });
        }
        for (q, range) in [(2, (e.e64, e.e32)), (1, (e.e32, e.e16))] {
            if range.0 == range.1 {
                continue;
            }
            for_row_blocks(m, 12, |g0, r| match (q, r) {
                (2, 12) => run_rows_avx512::<12, 2, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (2, 6) => run_rows_avx512::<6, 2, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (2, 4) => run_rows_avx512::<4, 2, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (2, 2) => run_rows_avx512::<2, 2, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (2, _) => run_rows_avx512::<1, 2, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (_, 12) => run_rows_avx512::<12, 1, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (_, 6) => run_rows_avx512::<6, 1, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (_, 4) => run_rows_avx512::<4, 1, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                (_, 2) => run_rows_avx512::<2, 1, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
                _ => run_rows_avx512::<1, 1, Wt>(out, shifts, init, w, cols, x, batch, g0, range),
            });
        }
        if e.e16 < batch {
            for r in 0..m {
                let one = OutRows { y: out.y, rows: &out.rows[r..r + 1] };
                let xs = &x[shifts[r] as usize * batch..];
                block_of_8(one, &init[r..r + 1], w, cols, xs, batch, (e.e16, e.e8));
                tail(one, &init[r..r + 1], w, cols, xs, batch, e.e8);
            }
        }
    }
}

/// [`product_run_avx512`] for members `g0..g0 + R` and the samples `b_start..b_end`, in blocks of `Q` registers
/// (`Q·16` samples; `R·Q <= 24`): each column's weight is broadcast once and serves the `R·Q` registers.
///
/// # Safety
/// [`product_run_avx512`]'s (asserted here: `R·Q <= 24`, whole blocks of `Q·16` samples in
/// `b_start..b_end`, `b_end <= batch`, `g0 + R` members at most).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn run_rows_avx512<const R: usize, const Q: usize, Wt: RowWeights>(
    out: OutRows<'_>,
    shifts: &[u32],
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    g0: usize,
    (b_start, b_end): (usize, usize),
) {
    assert!(R * Q <= 24 && (b_end - b_start) % (Q * LANES) == 0 && b_end <= batch && g0 + R <= out.rows.len());
    // SAFETY: the members' batch columns are writable (caller); b0 + Q·LANES <= b_end <= batch; every column
    // shifts[r] + c has x[(shifts[r] + c)·batch..+batch] (caller).
    unsafe {
        let mut yp = [out.y; R];
        let mut xp = [x.as_ptr(); R];
        for r in 0..R {
            yp[r] = out.y.add(out.rows[g0 + r] as usize * batch);
            xp[r] = x.as_ptr().add(shifts[g0 + r] as usize * batch);
        }
        let wp = row_bases::<1, Wt>(w, 0, cols.len())[0];
        let mut b0 = b_start;
        while b0 < b_end {
            let mut a = [_mm512_setzero_ps(); 24];
            for r in 0..R {
                for q in 0..Q {
                    a[Q * r + q] = _mm512_set1_ps(init[g0 + r]);
                }
            }
            for (j, &c) in cols.iter().enumerate() {
                let wv = _mm512_set1_ps(*wp.offset(w.delta(j)));
                let off = c as usize * batch + b0;
                for r in 0..R {
                    for q in 0..Q {
                        let xv = _mm512_loadu_ps(xp[r].add(off + q * LANES));
                        a[Q * r + q] = _mm512_fmadd_ps(wv, xv, a[Q * r + q]);
                    }
                }
            }
            for r in 0..R {
                for q in 0..Q {
                    _mm512_storeu_ps(yp[r].add(b0 + q * LANES), a[Q * r + q]);
                }
            }
            b0 += Q * LANES;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The group products against their portable twin ([`super::super::portable`]' `accumulate`), bit for
    //! bit, on batch sizes that reach every block (64, 32, 16 and 8 samples and the last ones) and row counts that
    //! reach every register block.

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::portable::accumulate;
    use super::*;
    use crate::tied::views::{Columns, WeightBlock};

    /// `(rows, cols, x, w, init)`.
    type Group = (Vec<u32>, Vec<u32>, Vec<f32>, Vec<f32>, Vec<f32>);

    /// `(rows, cols, x, w, init)` of a random group: `G` output rows `0..G` (of `G`), `n` columns of `x` (B, C)
    /// out of `C = 2n + 1`, weights (G, n) row-major, initial values per row.
    fn group(rng: &mut StdRng, g: usize, n: usize, batch: usize) -> Group {
        let c = 2 * n + 1;
        let mut v = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
        let (x, w, init) = (v(batch * c), v(g * n), v(g));
        let rows = (0..g as u32).collect();
        let cols = (0..n as u32).map(|j| 2 * j + (j % 2)).collect();
        (rows, cols, x, w, init)
    }

    /// The portable loop's result, (G, B) row by row.
    fn portable(init: &[f32], w: &[f32], cols: &[u32], x: &[f32], batch: usize) -> Vec<f32> {
        let mut acc: Vec<f32> = init.iter().flat_map(|&v| std::iter::repeat_n(v, batch)).collect();
        accumulate(&mut acc, w, cols, x, batch);
        acc
    }

    #[test]
    fn group_products_equal_the_portable_loop_bit_for_bit() {
        if !super::super::avx512() {
            eprintln!("no AVX-512 on this CPU: nothing to compare");
            return;
        }
        let mut rng = StdRng::seed_from_u64(7);
        let mut cases = 0;
        for batch in [1, 8, 9, 15, 16, 17, 24, 32, 33, 48, 64, 65, 100, 131] {
            for g in [1, 2, 3, 4, 6, 7, 9, 17] {
                for n in [1, 5, 25] {
                    let (rows, cols, x, w, init) = group(&mut rng, g, n, batch);
                    let expected = portable(&init, &w, &cols, &x, batch);
                    let mut y = vec![f32::NAN; g * batch];
                    let out = OutRows { y: y.as_mut_ptr(), rows: &rows };
                    // SAFETY: AVX-512 checked above; the columns lie inside x, y holds G batch columns.
                    unsafe { product_avx512(out, &init, WeightBlock { w: w.as_ptr(), n }, &cols, &x, batch) };
                    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<u32>>();
                    assert_eq!(bits(&y), bits(&expected), "one group: batch {batch}, {g} rows, {n} columns");
                    // The same weights column-major.
                    let wt: Vec<f32> = (0..n * g).map(|k| w[(k % g) * n + k / g]).collect();
                    let mut y_cols = vec![f32::NAN; g * batch];
                    let out = OutRows { y: y_cols.as_mut_ptr(), rows: &rows };
                    // SAFETY: as above.
                    unsafe { product_avx512(out, &init, Columns { w: wt.as_ptr(), g }, &cols, &x, batch) };
                    assert_eq!(bits(&y_cols), bits(&expected), "column-major: batch {batch}, {g} rows, {n} columns");

                    // Twins: the second group reads other columns with the same weights and writes rows G..2G.
                    let cols_b: Vec<u32> = cols.iter().map(|&c| c + 1).collect();
                    let rows_b: Vec<u32> = rows.iter().map(|&r| r + g as u32).collect();
                    let init_b: Vec<f32> = init.iter().map(|v| -v).collect();
                    let mut y2 = vec![f32::NAN; 2 * g * batch];
                    let outs =
                        [OutRows { y: y2.as_mut_ptr(), rows: &rows }, OutRows { y: y2.as_mut_ptr(), rows: &rows_b }];
                    // SAFETY: as above; the two groups' rows are disjoint.
                    unsafe {
                        product_twins_avx512(
                            outs,
                            [&init, &init_b],
                            WeightBlock { w: w.as_ptr(), n },
                            [&cols, &cols_b],
                            &x,
                            batch,
                        )
                    };
                    let mut expected2 = expected.clone();
                    expected2.extend(portable(&init_b, &w, &cols_b, &x, batch));
                    assert_eq!(bits(&y2), bits(&expected2), "twins: batch {batch}, {g} rows, {n} columns");
                    cases += 1;
                }
            }
        }
        assert_eq!(cases, 14 * 8 * 3);
    }
}
