//! The kernels of [`super::super::lanes`]: products that fill the vector lanes from positions (a run) or from
//! the rows of a group (a set) when the batch does not fill them, and the parameter gradient's stream tile.
//!
//! They are written once over [`Lanes`], a register of `f32` lanes, and instantiated for AVX2 (`ymm`, 8 lanes)
//! and AVX-512 (`zmm`, 16 lanes) by the `*_avx2` and `*_avx512` entry points. Every output value sums the
//! columns in order from its initial value with fused multiply-adds, as the group products of
//! [`super::avx512`], [`super::avx2`] and [`super::portable`] do: the bits are theirs (the unit tests below
//! compare them, and `products.rs`'s tests compare whole products with the portable loop).

#![cfg(target_arch = "x86_64")]
// The index loops over registers are the register tiles.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::super::members::{ABSENT, TileMembers, stretch_len};
use crate::cpu::{POSITION_LANES, TILE_MAX};

/// A register of `f32` lanes. The methods are the intrinsics of one instruction set; they are `unsafe`
/// because the CPU must have it, and the loads and stores because they dereference raw pointers.
pub(crate) trait Lanes: Copy {
    /// Lanes per register.
    const W: usize;
    /// A mask of the first lanes.
    type Mask: Copy;
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn zero() -> Self;
    /// The first `n` lanes, `1 <= n <= W`.
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn mask(n: usize) -> Self::Mask;
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for reading `W` values.
    unsafe fn load(p: *const f32) -> Self;
    /// The lanes of `m` from `p`, zeros elsewhere (nothing read there).
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for reading the lanes of `m`.
    unsafe fn load_mask(p: *const f32, m: Self::Mask) -> Self;
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for writing `W` values.
    unsafe fn store(p: *mut f32, v: Self);
    /// The lanes of `m` to `p` (nothing written elsewhere).
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for writing the lanes of `m`.
    unsafe fn store_mask(p: *mut f32, v: Self, m: Self::Mask);
    /// `*p` in every lane.
    /// # Safety
    /// The CPU has the instruction set; `p` is valid for reading one value.
    unsafe fn bcast(p: *const f32) -> Self;
    /// `a · b + c`, rounded once.
    /// # Safety
    /// The CPU has the instruction set.
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self;
}

/// An AVX2 register (with FMA).
#[derive(Clone, Copy)]
pub(crate) struct Y(__m256);

impl Lanes for Y {
    const W: usize = 8;
    type Mask = __m256i;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's (AVX).
        Y(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __m256i {
        // SAFETY: the caller's (AVX2).
        unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's.
        Y(unsafe { _mm256_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn load_mask(p: *const f32, m: __m256i) -> Self {
        // SAFETY: the caller's; masked-off lanes are not read (and do not fault).
        Y(unsafe { _mm256_maskload_ps(p, m) })
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: the caller's.
        unsafe { _mm256_storeu_ps(p, v.0) }
    }
    #[inline(always)]
    unsafe fn store_mask(p: *mut f32, v: Self, m: __m256i) {
        // SAFETY: the caller's; masked-off lanes are not written.
        unsafe { _mm256_maskstore_ps(p, m, v.0) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> Self {
        // SAFETY: the caller's.
        Y(unsafe { _mm256_broadcast_ss(&*p) })
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's (FMA).
        Y(unsafe { _mm256_fmadd_ps(a.0, b.0, c.0) })
    }
}

/// An AVX-512 register.
#[derive(Clone, Copy)]
pub(crate) struct Z(__m512);

impl Lanes for Z {
    const W: usize = 16;
    type Mask = __mmask16;
    #[inline(always)]
    unsafe fn zero() -> Self {
        // SAFETY: the caller's (AVX-512F).
        Z(unsafe { _mm512_setzero_ps() })
    }
    #[inline(always)]
    unsafe fn mask(n: usize) -> __mmask16 {
        ((1u32 << n) - 1) as __mmask16
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller's.
        Z(unsafe { _mm512_loadu_ps(p) })
    }
    #[inline(always)]
    unsafe fn load_mask(p: *const f32, m: __mmask16) -> Self {
        // SAFETY: the caller's; masked-off lanes are not read (and do not fault).
        Z(unsafe { _mm512_maskz_loadu_ps(m, p) })
    }
    #[inline(always)]
    unsafe fn store(p: *mut f32, v: Self) {
        // SAFETY: the caller's.
        unsafe { _mm512_storeu_ps(p, v.0) }
    }
    #[inline(always)]
    unsafe fn store_mask(p: *mut f32, v: Self, m: __mmask16) {
        // SAFETY: the caller's; masked-off lanes are not written.
        unsafe { _mm512_mask_storeu_ps(p, m, v.0) }
    }
    #[inline(always)]
    unsafe fn bcast(p: *const f32) -> Self {
        // SAFETY: the caller's.
        Z(unsafe { _mm512_set1_ps(*p) })
    }
    #[inline(always)]
    unsafe fn fmadd(a: Self, b: Self, c: Self) -> Self {
        // SAFETY: the caller's (AVX-512F).
        Z(unsafe { _mm512_fmadd_ps(a.0, b.0, c.0) })
    }
}

/// One run of a bundle as the run kernels read it: its first group's `rows` and its weights, column-major:
/// `w[j·rows.len() + i]` is row `i`, column `j`.
#[derive(Clone, Copy)]
pub(crate) struct RunRows<'a> {
    pub rows: &'a [u32],
    pub w: *const f32,
}

/// The runs of a bundle (the same pattern `cols`, shift and length) over the values `q0..q1` of each row: for
/// every run, row `i` and `q` in `q0..q1`,
///
/// ```text
/// y[rows[i]·B + q] = y[rows[i]·B + q] + Σ_j w(i, j) · x[cols[j]·B + q]       (x from the bundle's shift on)
/// ```
///
/// summed in column order from the value `y` holds (the row's initial value, written by the caller) with fused
/// multiply-adds. Tiles of `RQ` rows × `Q` registers (then `R1` rows × 1 register, the last one masked) keep
/// their sums in registers over all the columns; the values go in slices of `2·Q` registers, each slice through
/// every run before the next (its inputs stay in cache).
///
/// # Safety
/// The CPU has the instruction set of `V`; for every run and row `i`, `y` is valid for reading and writing
/// `rows[i]·B + q0 .. rows[i]·B + q1` and no other thread touches those values; `w` holds `n·G` values; `x` is
/// valid for reading `cols[j]·B + q0 .. cols[j]·B + q1` for every `j`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn runs<V: Lanes, const Q: usize, const RQ: usize, const R1: usize>(
    y: *mut f32,
    runs: &[RunRows<'_>],
    x: *const f32,
    cols: &[u32],
    batch: usize,
    (q0, q1): (usize, usize),
) {
    let slice = 2 * Q * V::W;
    let mut s0 = q0;
    while s0 < q1 {
        let s1 = (s0 + slice).min(q1);
        for run in runs {
            // SAFETY: the caller's, for the values s0..s1 inside q0..q1.
            unsafe { run_slice::<V, Q, RQ, R1>(y, *run, x, cols, batch, (s0, s1)) };
        }
        s0 = s1;
    }
}

/// [`runs`] for one run over the values `q0..q1`.
///
/// # Safety
/// [`runs`]'s.
#[inline(always)]
unsafe fn run_slice<V: Lanes, const Q: usize, const RQ: usize, const R1: usize>(
    y: *mut f32,
    run: RunRows<'_>,
    x: *const f32,
    cols: &[u32],
    batch: usize,
    (q0, q1): (usize, usize),
) {
    let g = run.rows.len();
    let mut q = q0;
    // SAFETY: every tile lies inside q0..q1 and the run's rows (the caller's).
    unsafe {
        let full = V::mask(V::W);
        while q + Q * V::W <= q1 {
            row_blocks::<V, Q, false, RQ>(y, run, g, x, cols, batch, q, full);
            q += Q * V::W;
        }
        while q < q1 {
            let n = (q1 - q).min(V::W);
            if n == V::W {
                row_blocks::<V, 1, false, R1>(y, run, g, x, cols, batch, q, full);
            } else {
                row_blocks::<V, 1, true, R1>(y, run, g, x, cols, batch, q, V::mask(n));
            }
            q += n;
        }
    }
}

/// The rows of a run in blocks of `R` (then 4, 2, 1) at the values `q..q + Q·W` (the last register masked by
/// `m` when `PART`).
///
/// # Safety
/// [`runs`]'s, the tile inside its range.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn row_blocks<V: Lanes, const Q: usize, const PART: bool, const R: usize>(
    y: *mut f32,
    run: RunRows<'_>,
    g: usize,
    x: *const f32,
    cols: &[u32],
    batch: usize,
    q: usize,
    m: V::Mask,
) {
    let mut i0 = 0;
    // SAFETY: rows i0..i0 + r lie inside the run; the rest is the caller's.
    unsafe {
        while i0 < g {
            let rest = g - i0;
            i0 += if rest >= R {
                run_tile::<V, R, Q, PART>(y, run, i0, x, cols, batch, q, m)
            } else if rest >= 4 && R > 4 {
                run_tile::<V, 4, Q, PART>(y, run, i0, x, cols, batch, q, m)
            } else if rest >= 2 && R > 2 {
                run_tile::<V, 2, Q, PART>(y, run, i0, x, cols, batch, q, m)
            } else {
                run_tile::<V, 1, Q, PART>(y, run, i0, x, cols, batch, q, m)
            };
        }
    }
}

/// Rows `i0..i0 + R` of a run at the values `q..q + Q·W` (the last register masked by `m` when `PART`), kept
/// in `R·Q` registers over all the columns; returns `R`.
///
/// # Safety
/// [`runs`]'s, the tile inside its range and `i0 + R <= G`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn run_tile<V: Lanes, const R: usize, const Q: usize, const PART: bool>(
    y: *mut f32,
    run: RunRows<'_>,
    i0: usize,
    x: *const f32,
    cols: &[u32],
    batch: usize,
    q: usize,
    m: V::Mask,
) -> usize {
    debug_assert!(i0 + R <= run.rows.len());
    let g = run.rows.len();
    // SAFETY: the caller's: each row's values q..q + Q·W (the masked lanes excepted) are its own, each column's
    // inputs at q.. are readable, and w holds n·G values, w(i, j) at j·G + i.
    unsafe {
        let mut yp = [y; R];
        for r in 0..R {
            yp[r] = y.add(run.rows[i0 + r] as usize * batch + q);
        }
        let mut a = [[V::zero(); Q]; R];
        for r in 0..R {
            for k in 0..Q {
                a[r][k] = if PART && k == Q - 1 {
                    V::load_mask(yp[r].add(k * V::W), m)
                } else {
                    V::load(yp[r].add(k * V::W))
                };
            }
        }
        let xq = x.add(q);
        let mut wj = run.w.add(i0);
        for &c in cols {
            let xc = xq.add(c as usize * batch);
            let mut xv = [V::zero(); Q];
            for k in 0..Q {
                xv[k] = if PART && k == Q - 1 { V::load_mask(xc.add(k * V::W), m) } else { V::load(xc.add(k * V::W)) };
            }
            for r in 0..R {
                let wv = V::bcast(wj.add(r));
                for k in 0..Q {
                    a[r][k] = V::fmadd(wv, xv[k], a[r][k]);
                }
            }
            wj = wj.add(g);
        }
        for r in 0..R {
            for k in 0..Q {
                if PART && k == Q - 1 {
                    V::store_mask(yp[r].add(k * V::W), a[r][k], m)
                } else {
                    V::store(yp[r].add(k * V::W), a[r][k])
                }
            }
        }
    }
    R
}

/// [`runs`] with AVX2: tiles of 4 rows × 3 registers (24 values), then 12 rows × 1 register.
///
/// # Safety
/// The CPU has AVX2 and FMA, and [`runs`]'s.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn runs_avx2(
    y: *mut f32,
    runs_: &[RunRows<'_>],
    x: *const f32,
    cols: &[u32],
    batch: usize,
    range: (usize, usize),
) {
    // SAFETY: the caller's.
    unsafe { runs::<Y, 3, 4, 12>(y, runs_, x, cols, batch, range) }
}

/// [`runs`] with AVX-512: tiles of 6 rows × 4 registers (64 values), then 16 rows × 1 register.
///
/// # Safety
/// The CPU has AVX-512F, and [`runs`]'s.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn runs_avx512(
    y: *mut f32,
    runs_: &[RunRows<'_>],
    x: *const f32,
    cols: &[u32],
    batch: usize,
    range: (usize, usize),
) {
    // SAFETY: the caller's.
    unsafe { runs::<Z, 4, 6, 16>(y, runs_, x, cols, batch, range) }
}

/// The rows of a group in the lanes: for members `k` (a group and a sample), each reading its inputs at
/// `xs[k] + cols[j]·B` through the weights `w` (column-major, `gp` values per column: `w[j·gp + i]` is row `i`,
/// column `j`, zeros past the group's rows),
///
/// ```text
/// out[k·gp + i] = init[k·gp + i] + Σ_j w[j·gp + i] · xs[k][cols[j]·B]
/// ```
///
/// summed in column order with fused multiply-adds. Tiles of `M` members × `NV` registers of rows; the last
/// tile repeats its last member where members run out (computed again, stored once).
///
/// # Safety
/// The CPU has the instruction set of `V`; `gp == NV·W`; `w` holds `n·gp` values; `init` and `out` hold
/// `xs.len()·gp` values; every `xs[k] + cols[j]·B` is readable.
#[inline(always)]
unsafe fn sets<V: Lanes, const M: usize, const NV: usize>(
    w: *const f32,
    gp: usize,
    xs: &[*const f32],
    cols: &[u32],
    batch: usize,
    init: &[f32],
    out: &mut [f32],
) {
    assert!(gp == NV * V::W && init.len() == xs.len() * gp && out.len() == init.len());
    let n_members = xs.len();
    let mut k0 = 0;
    // SAFETY: the caller's; member indices are clamped to the last member.
    unsafe {
        while k0 < n_members {
            let k = |t: usize| (k0 + t).min(n_members - 1);
            let mut a = [[V::zero(); NV]; M];
            let mut xp = [xs[0]; M];
            for t in 0..M {
                xp[t] = xs[k(t)];
                for v in 0..NV {
                    a[t][v] = V::load(init.as_ptr().add(k(t) * gp + v * V::W));
                }
            }
            let mut wj = w;
            for &c in cols {
                let off = c as usize * batch;
                let mut wv = [V::zero(); NV];
                for v in 0..NV {
                    wv[v] = V::load(wj.add(v * V::W));
                }
                for t in 0..M {
                    let xb = V::bcast(xp[t].add(off));
                    for v in 0..NV {
                        a[t][v] = V::fmadd(wv[v], xb, a[t][v]);
                    }
                }
                wj = wj.add(gp);
            }
            for t in 0..M.min(n_members - k0) {
                for v in 0..NV {
                    V::store(out.as_mut_ptr().add((k0 + t) * gp + v * V::W), a[t][v]);
                }
            }
            k0 += M;
        }
    }
}

/// [`sets`] with AVX2: `gp` 8 (6 … 12 members × 1 register) or 16 (6 members × 2 registers).
///
/// # Safety
/// The CPU has AVX2 and FMA, and [`sets`]'s with `gp` 8 or 16.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn sets_avx2(
    w: *const f32,
    gp: usize,
    xs: &[*const f32],
    cols: &[u32],
    batch: usize,
    init: &[f32],
    out: &mut [f32],
) {
    // SAFETY: the caller's.
    unsafe {
        match gp {
            8 => sets::<Y, 12, 1>(w, gp, xs, cols, batch, init, out),
            16 => sets::<Y, 6, 2>(w, gp, xs, cols, batch, init, out),
            _ => unreachable!("sets_avx2: {gp} values per column"),
        }
    }
}

/// [`sets`] with AVX-512: `gp` 16, 12 members × 1 register.
///
/// # Safety
/// The CPU has AVX-512F, and [`sets`]'s with `gp` 16.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn sets_avx512(
    w: *const f32,
    gp: usize,
    xs: &[*const f32],
    cols: &[u32],
    batch: usize,
    init: &[f32],
    out: &mut [f32],
) {
    assert_eq!(gp, 16, "sets_avx512: {gp} values per column");
    // SAFETY: the caller's.
    unsafe { sets::<Z, 12, 1>(w, gp, xs, cols, batch, init, out) }
}

/// The `RB × CB` gradient tile of the positions layout (`portable::stream_sums`, which it computes
/// bit for bit) for `f32`, reading the class `c` in place: members `m0..m1` cut into the stretches of
/// `stretches` ([`stretch_len`], found once for all the tiles of a chunk), each one stream of `n·B` values
/// per row of `d_y` and column of `x`; lane `l` of a pair
/// sums the stream values `q ≡ l (mod 8)` in order (`H` registers of `W` lanes make the [`POSITION_LANES`]),
/// the last block of a stream masked (its missing values add nothing: a sum that starts at +0 never holds −0, so adding +0
/// leaves it as it is); then the 16 lanes are added in order.
///
/// # Safety
/// The CPU has the instruction set of `V`; `H·W == POSITION_LANES`; `c` comes from a checked plan whose rows index `dy`
/// (B, R) and columns index `x` (B, C); `stretches` are the stretches of `m0..m1` ([`stretch_len`] from
/// `m0` on, their sum `m1 − m0`); `zeros` holds at least `(m1 − m0)·B` values (asserted, as are the tile's
/// bounds and the sum).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn stream_tile<V: Lanes, const H: usize, const RB: usize, const CB: usize, C: TileMembers>(
    c: &C,
    (m0, m1): (usize, usize),
    stretches: &[u32],
    i0: usize,
    u0: usize,
    x: &[f32],
    dy: &[f32],
    zeros: &[f32],
    batch: usize,
) -> [f32; TILE_MAX] {
    let (n_rows, n_taps, members) = c.dims();
    assert!(
        i0 + RB <= n_rows && u0 + CB <= n_taps && m1 <= members && RB * CB <= TILE_MAX && H * V::W == POSITION_LANES
    );
    assert!(zeros.len() >= (m1 - m0) * batch, "stream_tile: zeros for a stream of {} members", m1 - m0);
    assert_eq!(stretches.iter().map(|&n| n as usize).sum::<usize>(), m1 - m0, "stream_tile: stretches cover the tile");
    debug_assert!({
        let mut mi = m0;
        stretches.iter().all(|&n| {
            let ok = stretch_len(c, mi, m1) == n as usize;
            mi += n as usize;
            ok
        })
    });
    // SAFETY: the CPU has the instruction set (the caller).
    let mut a = [[[unsafe { V::zero() }; H]; CB]; RB];
    let mut mi = m0;
    // SAFETY: the CPU has the instruction set (the caller). Each stretch's members have the first one's rows
    // and present columns plus 0..n (`stretch_len`, the caller's), rows of d_y and columns of x (the plan comes
    // from the checked map), so from each pointer n·B values are readable; an absent tap reads the zeros, which
    // hold (m1 − m0)·B >= n·B values. Full blocks read 16 values at q with q + 16 <= len, the last block reads
    // the lanes of its masks, below len.
    unsafe {
        for &n in stretches {
            let n = n as usize;
            let (rows, cols) = c.member::<RB, CB>(mi, i0, u0);
            let d: [*const f32; RB] = std::array::from_fn(|i| dy.as_ptr().add(rows[i] as usize * batch));
            let xs: [*const f32; CB] = std::array::from_fn(|u| match cols[u] {
                ABSENT => zeros.as_ptr(),
                col => x.as_ptr().add(col as usize * batch),
            });
            let len = n * batch;
            let mut q = 0;
            while q + POSITION_LANES <= len {
                for h in 0..H {
                    let o = q + h * V::W;
                    let mut xv = [V::zero(); CB];
                    for u in 0..CB {
                        xv[u] = V::load(xs[u].add(o));
                    }
                    for i in 0..RB {
                        let dv = V::load(d[i].add(o));
                        for u in 0..CB {
                            a[i][u][h] = V::fmadd(dv, xv[u], a[i][u][h]);
                        }
                    }
                }
                q += POSITION_LANES;
            }
            for h in 0..H {
                let o = q + h * V::W;
                if o >= len {
                    break;
                }
                let m = V::mask((len - o).min(V::W));
                let mut xv = [V::zero(); CB];
                for u in 0..CB {
                    xv[u] = V::load_mask(xs[u].add(o), m);
                }
                for i in 0..RB {
                    let dv = V::load_mask(d[i].add(o), m);
                    for u in 0..CB {
                        a[i][u][h] = V::fmadd(dv, xv[u], a[i][u][h]);
                    }
                }
            }
            mi += n;
        }
    }
    let mut lanes = [[0.0f32; POSITION_LANES]; TILE_MAX];
    for i in 0..RB {
        for u in 0..CB {
            for h in 0..H {
                // SAFETY: lanes[·] holds H·W = POSITION_LANES values.
                unsafe { V::store(lanes[i * CB + u].as_mut_ptr().add(h * V::W), a[i][u][h]) };
            }
        }
    }
    let lanes = std::hint::black_box(lanes);
    std::array::from_fn(|k| {
        if k < RB * CB {
            let mut s = 0.0f32;
            for l in 0..POSITION_LANES {
                s += lanes[k][l];
            }
            s
        } else {
            0.0
        }
    })
}

/// [`stream_tile`] with AVX2 (one 256-bit register per pair; tiles up to 4 × 3), on AVX-512 machines too:
/// eight lanes are one 256-bit register, and the bits are the layout's on every instruction set.
///
/// # Safety
/// The CPU has AVX2 and FMA, and [`stream_tile`]'s.
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn stream_tile_avx2<const RB: usize, const CB: usize, C: TileMembers>(
    c: &C,
    m: (usize, usize),
    stretches: &[u32],
    i0: usize,
    u0: usize,
    x: &[f32],
    dy: &[f32],
    zeros: &[f32],
    batch: usize,
) -> [f32; TILE_MAX] {
    // SAFETY: the caller's.
    unsafe { stream_tile::<Y, 1, RB, CB, C>(c, m, stretches, i0, u0, x, dy, zeros, batch) }
}
