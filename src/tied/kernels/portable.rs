//! The loops in plain Rust: the group product (`accumulate`), the per-nonzero dots, and the gradient tile
//! (`stream_sums`). The dispatch in [`super`] runs them as they are or compiled for AVX2 + FMA or AVX-512.

use super::super::grad_plan::GradClass;
use super::super::members::ABSENT;
use crate::cpu::{LANES, POSITION_LANES, TILE_MAX};
use crate::scalar::Real;

/// `acc[g, :] += Σ_j w[g, j] · x[:, cols[j]]` for the rows `g` of a group: `acc` (G, B) row by row, `w` (G, n)
/// row-major. Register blocks of `R` rows × [`LANES`] samples stay in registers over all `n` columns, and
/// each loaded input block serves the `R` rows. Every value is summed in column order, starting from `acc`.
#[inline(always)]
pub(super) fn accumulate<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    let g_total = acc.len() / batch;
    let mut g0 = 0;
    while g0 + 4 <= g_total {
        accumulate_rows::<T, 4>(acc, w, cols, x, batch, g0);
        g0 += 4;
    }
    while g0 < g_total {
        accumulate_rows::<T, 1>(acc, w, cols, x, batch, g0);
        g0 += 1;
    }
}

/// [`accumulate`] for rows `g0..g0 + R`.
#[inline(always)]
fn accumulate_rows<T: Real, const R: usize>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize, g0: usize) {
    let n = cols.len();
    let w = &w[g0 * n..(g0 + R) * n];
    let mut b0 = 0;
    while b0 + LANES <= batch {
        let mut a = [[T::zero(); LANES]; R];
        for (r, ar) in a.iter_mut().enumerate() {
            ar.copy_from_slice(&acc[(g0 + r) * batch + b0..][..LANES]);
        }
        for (j, &c) in cols.iter().enumerate() {
            let xv: &[T; LANES] = x[c as usize * batch + b0..][..LANES].try_into().expect("LANES values");
            for (r, ar) in a.iter_mut().enumerate() {
                let wv = w[r * n + j];
                for l in 0..LANES {
                    ar[l] = wv.mul_add(xv[l], ar[l]);
                }
            }
        }
        for (r, ar) in a.iter().enumerate() {
            acc[(g0 + r) * batch + b0..][..LANES].copy_from_slice(ar);
        }
        b0 += LANES;
    }
    if b0 < batch {
        for (j, &c) in cols.iter().enumerate() {
            let xc = &x[c as usize * batch + b0..(c as usize + 1) * batch];
            for r in 0..R {
                axpy(w[r * n + j], xc, &mut acc[(g0 + r) * batch + b0..(g0 + r + 1) * batch]);
            }
        }
    }
}

/// `y += a · x`.
#[inline(always)]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = a.mul_add(xv, *yv);
    }
}

/// One register tile of a class: rows `i0..i0 + rb` of its groups × taps `u0..u0 + cb`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tile {
    pub(crate) class: usize,
    /// Member groups `m0..m1` of the class.
    pub(crate) m0: usize,
    pub(crate) m1: usize,
    pub(crate) i0: usize,
    pub(crate) rb: usize,
    pub(crate) u0: usize,
    pub(crate) cb: usize,
}

/// `dw[j] = d_y · x[:, cols[j]]` for one row.
#[inline(always)]
pub(super) fn dots<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    for (d, &c) in dw.iter_mut().zip(cols) {
        let c = c as usize;
        *d = dot(dy, &x[c * batch..(c + 1) * batch]);
    }
}

/// The sums of one tile in the *positions* layout of a batch under [`LANES`] (see `class_grad`): the member
/// groups `t.m0..t.m1` cut into stretches of `stretches[s]` members ([`super::super::members::stretch_len`], found
/// on the class before the tile was written out), each stretch one stream of `n·B` consecutive values per row
/// and column; lane `l` of pair `(i, u)` sums the stream values `q ≡ l (mod 8)` ([`POSITION_LANES`]) in order, stretch after
/// stretch; then the lanes are added in order. (An absent tap reads `zeros`, which holds a stream's values.)
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the index loops are the register tile
#[allow(clippy::too_many_arguments)]
fn stream_sums<T: Real, const RB: usize, const CB: usize>(
    c: &GradClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    let (n_rows, n_taps) = (c.offsets.len(), c.taps.len());
    let (dy0, x0, z0) = (dy.as_ptr(), x.as_ptr(), zeros.as_ptr());
    assert!(t.i0 + RB <= n_rows && t.u0 + CB <= n_taps);
    assert!(c.rows.len() == c.groups.len() * n_rows && c.cols.len() == c.groups.len() * n_taps);
    assert_eq!(stretches.iter().map(|&n| n as usize).sum::<usize>(), t.m1 - t.m0, "stretches cover the tile");
    let (mut d, mut xs) = ([dy0; RB], [x0; CB]);
    let mut acc = [[[T::zero(); POSITION_LANES]; CB]; RB];
    let mut mi = t.m0;
    for &n in stretches {
        let len = n as usize * batch;
        assert!(zeros.len() >= len, "zeros hold a stream");
        member_ptrs(c, mi, t, (dy0, x0, z0), batch, 0, &mut d, &mut xs);
        for q in 0..len {
            let l = q % POSITION_LANES;
            for i in 0..RB {
                // SAFETY: over a stretch each row of d_y and each present column of x continues for the stretch's
                // members (their rows and columns are the first member's plus 0..n, inside d_y and x: the plan
                // comes from the checked map); the zeros hold len values (asserted).
                let dv = unsafe { *d[i].add(q) };
                for u in 0..CB {
                    // SAFETY: as above.
                    acc[i][u][l] = dv.mul_add(unsafe { *xs[u].add(q) }, acc[i][u][l]);
                }
            }
        }
        mi += n as usize;
    }
    let mut out = [T::zero(); TILE_MAX];
    for i in 0..RB {
        for u in 0..CB {
            let mut s = T::zero();
            for l in 0..POSITION_LANES {
                s += acc[i][u][l];
            }
            out[i * CB + u] = s;
        }
    }
    out
}

/// [`stream_sums`] for the tile's shape.
#[inline(always)]
pub(super) fn stream_any<T: Real>(
    c: &GradClass,
    t: Tile,
    stretches: &[u32],
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    macro_rules! portable {
        ($rb:literal, $cb:literal) => {
            stream_sums::<T, $rb, $cb>(c, t, stretches, x, dy, zeros, batch)
        };
    }
    by_tile_shape!((t.rb, t.cb), portable)
}

/// Member `mi`'s pointers for a tile, each at sample `start` of a (B, ·) column: its `RB` rows of `d_y` and
/// `CB` columns of `x` (the zeros for an absent tap). Each starts `batch - start` readable values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn member_ptrs<T: Real, const RB: usize, const CB: usize>(
    c: &GradClass,
    mi: usize,
    t: Tile,
    (dy0, x0, z0): (*const T, *const T, *const T),
    batch: usize,
    start: usize,
    d: &mut [*const T; RB],
    xs: &mut [*const T; CB],
) {
    let rows = &c.rows[mi * c.offsets.len() + t.i0..][..RB];
    let cols = &c.cols[mi * c.taps.len() + t.u0..][..CB];
    for i in 0..RB {
        // SAFETY: rows are < R (the plan comes from the checked map), so the column of d_y (B, R) is in
        // bounds; start < batch.
        d[i] = unsafe { dy0.add(rows[i] as usize * batch + start) };
    }
    for u in 0..CB {
        // SAFETY: columns are < C, so the column of x (B, C) is in bounds; the zeros hold batch values.
        xs[u] = unsafe {
            match cols[u] {
                ABSENT => z0.add(start),
                col => x0.add(col as usize * batch + start),
            }
        };
    }
}

/// `Σ_b a[b] · b[b]`, summed in 8 interleaved lanes then lane by lane (a fixed order, so the same bits on
/// every run and every thread count; the lanes let the compiler vectorise).
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = ca[l].mul_add(cb[l], lanes[l]);
        }
    }
    let mut s = T::zero();
    for l in lanes {
        s += l;
    }
    for (&x, &y) in a_rest.iter().zip(b_rest) {
        s = x.mul_add(y, s);
    }
    s
}
