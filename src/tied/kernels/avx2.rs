//! Hand-written AVX2 + FMA micro-kernels for `f32`, for CPUs without AVX-512 (16 registers of 8 `f32`). They
//! do the jobs of [`super::avx512`](mod@super::avx512)'s AVX-512 kernels with tiles sized for 16 `ymm` registers, and compute exactly
//! what the portable loops compute, with the same fused multiply-adds in the same order, so the bits do not
//! depend on which one runs: the unit tests below compare the group product with the portable loop, and the
//! unit test in `gradients.rs` compares the gradient tiles.
//!
//! Register tiles (accumulators + loaded inputs + one broadcast weight ≤ 16):
//! - group product, rows `R` × `Q` registers of 8 samples: 6 × 2 (16 samples), 2 × 4 (32), and
//!   1 × 8 (64 samples) for groups of one row, as pruned convolutions compile to (no input column is shared
//!   between rows there, so the batch width is what hides the FMA latency);
//! - gradient tile, `RB` rows × `CB` taps × 2 registers (lanes 0..8 and 8..16 of a 16-lane block): 2 × 3.

#![cfg(target_arch = "x86_64")]
// The index loops over registers are the register tiles.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::super::views::{OutRows, RowWeights};
use super::avx512::{check_group, row_bases};

/// `f32` values in one 256-bit register.
const W8: usize = 8;

/// Most accumulators of a product tile.
const ACC: usize = 16;

/// The group product of [`super::super::products`] for `f32` on AVX2: for the `G` rows `g` of a group,
/// `y[:, rows[g]] = init[g] + Σ_j w(g, j) · x[:, cols[j]]`, summed in column order from `init[g]` with fused
/// multiply-adds, as the portable loop does. The rows go in blocks of 6, 2 or 1 (a 4 × 3 tile spills a register);
/// each block covers the whole
/// batch in register tiles of its width (see the module doc), then narrower tiles, then the last samples one by
/// one. A value's sum is the same whatever tile it falls in.
///
/// # Safety
/// The CPU has AVX2 and FMA; every column is `< x.len() / batch`; `out.y` is valid for writes at
/// `out.rows[g]·batch .. (out.rows[g] + 1)·batch` for each `g`, and no other thread touches those values;
/// `init.len() == out.rows.len()`; `w.get(g, j)` is valid for every row `g` and `j < cols.len()`.
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn product_avx2<Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
) {
    check_group(out, init, cols, x, batch);
    let mut g0 = 0;
    let g_total = out.rows.len();
    // SAFETY: the caller's contract, the group checked above; each call covers rows g0..g0 + r < G.
    unsafe {
        while g0 < g_total {
            g0 += match g_total - g0 {
                6.. => row_block::<6, 2, Wt>(out, init, w, cols, x, batch, g0),
                2..6 => row_block::<2, 4, Wt>(out, init, w, cols, x, batch, g0),
                _ => row_block::<1, 8, Wt>(out, init, w, cols, x, batch, g0),
            };
        }
    }
}

/// Rows `g0..g0 + R` of [`product_avx2`] over the whole batch (returns `R`): tiles of `Q` registers (`8Q` samples) while they
/// fit, then one tile each of 4, 2 and 1 registers where narrower ones are left, then the samples one by one.
///
/// # Safety
/// [`product_avx2`]'s; `g0 + R <= G`.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn row_block<const R: usize, const Q: usize, Wt: RowWeights>(
    out: OutRows<'_>,
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    g0: usize,
) -> usize {
    assert!(g0 + R <= out.rows.len());
    // SAFETY: every tile lies inside 0..batch; the rest is the caller's.
    unsafe {
        let mut yp = [out.y; R];
        for r in 0..R {
            yp[r] = out.y.add(out.rows[g0 + r] as usize * batch);
        }
        let mut b0 = 0;
        while b0 + Q * W8 <= batch {
            tile::<R, Q, Wt>(&yp, init, w, cols, x, batch, g0, b0);
            b0 += Q * W8;
        }
        if Q > 4 && b0 + 4 * W8 <= batch {
            tile::<R, 4, Wt>(&yp, init, w, cols, x, batch, g0, b0);
            b0 += 4 * W8;
        }
        if Q > 2 && b0 + 2 * W8 <= batch {
            tile::<R, 2, Wt>(&yp, init, w, cols, x, batch, g0, b0);
            b0 += 2 * W8;
        }
        if Q > 1 && b0 + W8 <= batch {
            tile::<R, 1, Wt>(&yp, init, w, cols, x, batch, g0, b0);
            b0 += W8;
        }
        if b0 < batch {
            // The last samples one by one, from init, columns in order.
            for r in 0..R {
                for b in b0..batch {
                    *yp[r].add(b) = init[g0 + r];
                }
            }
            for (j, &c) in cols.iter().enumerate() {
                let xc = x.as_ptr().add(c as usize * batch);
                for r in 0..R {
                    let wv = w.get(g0 + r, j);
                    for b in b0..batch {
                        *yp[r].add(b) = wv.mul_add(*xc.add(b), *yp[r].add(b));
                    }
                }
            }
        }
    }
    R
}

/// One register tile: rows `g0..g0 + R` (their batch columns at `yp`) × samples `b0..b0 + 8Q`, kept in
/// `R·Q <= 16` registers over all the group's columns.
///
/// # Safety
/// [`product_avx2`]'s; `b0 + 8Q <= batch`.
#[target_feature(enable = "avx2,fma")]
#[inline]
#[allow(clippy::too_many_arguments)]
unsafe fn tile<const R: usize, const Q: usize, Wt: RowWeights>(
    yp: &[*mut f32; R],
    init: &[f32],
    w: Wt,
    cols: &[u32],
    x: &[f32],
    batch: usize,
    g0: usize,
    b0: usize,
) {
    assert!(R * Q <= ACC && b0 + Q * W8 <= batch);
    let xp = x.as_ptr();
    // SAFETY: b0 + 8Q <= batch; every column c has x[c·batch..(c + 1)·batch] and the rows' batch columns are
    // writable (caller).
    unsafe {
        let mut a = [_mm256_setzero_ps(); ACC];
        for r in 0..R {
            for q in 0..Q {
                a[Q * r + q] = _mm256_set1_ps(init[g0 + r]);
            }
        }
        // wp[r]: the address of w(g0 + r, 0) (a group without columns reads no weight).
        let wp = row_bases::<R, Wt>(w, g0, cols.len());
        for (j, &c) in cols.iter().enumerate() {
            let xc = xp.add(c as usize * batch + b0);
            let dj = w.delta(j);
            if R == 1 {
                // One row: the inputs are read once, straight into the multiply-adds.
                let wv = _mm256_broadcast_ss(&*wp[0].offset(dj));
                for q in 0..Q {
                    a[q] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(xc.add(q * W8)), a[q]);
                }
            } else {
                let mut xv = [_mm256_setzero_ps(); 4];
                for q in 0..Q {
                    xv[q] = _mm256_loadu_ps(xc.add(q * W8));
                }
                for r in 0..R {
                    let wv = _mm256_broadcast_ss(&*wp[r].offset(dj));
                    for q in 0..Q {
                        a[Q * r + q] = _mm256_fmadd_ps(wv, xv[q], a[Q * r + q]);
                    }
                }
            }
        }
        for r in 0..R {
            for q in 0..Q {
                _mm256_storeu_ps(yp[r].add(b0 + q * W8), a[Q * r + q]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The group product against its portable twin ([`super::super::portable`]' `accumulate`), bit for bit,
    //! on batch sizes that reach every tile width and the last samples, row counts that reach every row block,
    //! with weights gathered into a block and read from θ as a separable group, and groups without columns.

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::super::views::{SeparableWeights as Separable, WeightBlock as Block};
    use super::super::portable::accumulate;
    use super::*;

    /// The portable loop's result, (G, B) row by row.
    fn portable(init: &[f32], w: &[f32], cols: &[u32], x: &[f32], batch: usize) -> Vec<f32> {
        let mut acc: Vec<f32> = init.iter().flat_map(|&v| std::iter::repeat_n(v, batch)).collect();
        accumulate(&mut acc, w, cols, x, batch);
        acc
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn avx2_group_product_equals_the_portable_loop_bit_for_bit() {
        if !super::super::avx2() {
            eprintln!("no AVX2 + FMA on this CPU: nothing to compare");
            return;
        }
        let mut rng = StdRng::seed_from_u64(11);
        let mut cases = 0;
        for batch in [1, 7, 8, 15, 16, 17, 24, 33, 40, 48, 56, 64, 65, 100, 131] {
            for g in 1..=9usize {
                for n in [0, 1, 5, 25] {
                    // x (B, C) with C = 2n + 1; columns spread over it, out of order for odd j.
                    let c = 2 * n + 1;
                    let mut v = |len: usize| (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect::<Vec<f32>>();
                    let (x, theta, init) = (v(batch * c), v(g * n + 3), v(g));
                    let cols: Vec<u32> = (0..n as u32).map(|j| (2 * j + 3 * (j % 2)) % c as u32).collect();
                    // Separable weights: row r, column j copies θ[code0[j] + o_r] with o_r = r·n − 3
                    // (wrapping) and code0[j] = n − 1 − j + 6: row r reads θ[r·n + 3..r·n + n + 3] reversed.
                    let offsets: Vec<u32> = (0..g as u32).map(|r| (r * n as u32).wrapping_add(u32::MAX - 2)).collect();
                    let code0: Vec<u32> = (0..n as u32).map(|j| n as u32 - 1 - j + 6).collect();
                    let w: Vec<f32> = (0..g)
                        .flat_map(|r| (0..n).map(move |j| (r, j)))
                        .map(|(r, j)| theta[(code0[j].wrapping_add(offsets[r])) as usize])
                        .collect();
                    let expected = portable(&init, &w, &cols, &x, batch);
                    // Rows written in reverse order into columns 1..=G of a (B, G + 2) output whose other
                    // columns stay NaN.
                    let rows: Vec<u32> = (0..g as u32).map(|r| g as u32 - r).collect();
                    for separable in [false, true] {
                        let mut y = vec![f32::NAN; (g + 2) * batch];
                        let out = OutRows { y: y.as_mut_ptr(), rows: &rows };
                        // SAFETY: AVX2 + FMA checked above; the columns lie inside x, the rows inside y and
                        // distinct, every code inside θ.
                        unsafe {
                            if separable {
                                let w = Separable {
                                    theta: theta.as_ptr(),
                                    offsets: offsets.as_ptr(),
                                    code0: code0.as_ptr(),
                                };
                                product_avx2(out, &init, w, &cols, &x, batch);
                            } else {
                                product_avx2(out, &init, Block { w: w.as_ptr(), n }, &cols, &x, batch);
                            }
                        }
                        let got: Vec<f32> =
                            rows.iter().flat_map(|&r| y[r as usize * batch..][..batch].to_vec()).collect();
                        let what = if separable { "separable" } else { "gathered" };
                        assert_eq!(bits(&got), bits(&expected), "{what}: batch {batch}, {g} rows, {n} columns");
                        let untouched = (0..g as u32 + 2).filter(|r| !rows.contains(r));
                        for r in untouched {
                            assert!(y[r as usize * batch..][..batch].iter().all(|v| v.is_nan()), "row {r} written");
                        }
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 15 * 9 * 4 * 2);
    }
}
