//! The two products of a tied matrix, `y = W x + b` and `d_x = Wᵀ d_y`, on the (batch, features)
//! column-major layout.
//!
//! Letters: `B` batch size, `R` rows of `W` (outputs), `C` columns of `W` (inputs), `G` rows in a group,
//! `n` nonzeros per row of a group. A (B, F) matrix is a slice of `B * F` values, feature `f` at
//! `[f * B, (f + 1) * B)`, so that a nonzero `(r, c, w)` is one AXPY `y[:, r] += w · x[:, c]` over the batch.
//!
//! Both products walk the row groups of the pattern (of `W`, or of its stored transpose): the `G` rows of a
//! group share their `n` columns, so each input column is loaded once and used `G` times. Groups run in
//! parallel (rayon); each output value is summed by one thread in a fixed order (columns increasing), so the
//! bits do not depend on the number of threads. The gradients are in [`super::gradients`].

use rayon::prelude::*;

use super::{IndexMap, RowGroups, SeparableGroups, TiedMatrix};
use crate::cpu::{LANES, as_f32, has_avx2, has_avx512};
use crate::disjoint::Disjoint;
use crate::scalar::Real;

/// `y = W x + b`: `x` (B, C), `y` (B, R), overwritten. `bias`, when given, is `(values, id per row)`:
/// row `r` adds `values[ids[r]]`.
#[track_caller]
pub fn forward<T: Real>(m: &TiedMatrix, theta: &[T], bias: Option<(&[T], &[u32])>, x: &[T], y: &mut [T], batch: usize) {
    let (rows, cols) = m.shape();
    assert_eq!(theta.len(), m.n_params(), "forward: θ has {} values, the matrix reads {}", theta.len(), m.n_params());
    assert_eq!(x.len(), batch * cols, "forward: x has {} values, expected batch {batch} x {cols}", x.len());
    assert_eq!(y.len(), batch * rows, "forward: y has {} values, expected batch {batch} x {rows}", y.len());
    if let Some((b, ids)) = bias {
        assert_eq!(ids.len(), rows, "forward: {} bias ids for {rows} rows", ids.len());
        assert!(ids.iter().all(|&i| (i as usize) < b.len()), "forward: bias id out of range ({} biases)", b.len());
    }
    grouped_product(m, m.map(), m.groups(), m.separable(), theta, bias, x, y, batch);
}

/// `d_x = Wᵀ d_y`: `dy` (B, R), `dx` (B, C), overwritten. Uses the stored transpose: no reduction
/// crosses threads.
#[track_caller]
pub fn backward_input<T: Real>(m: &TiedMatrix, theta: &[T], dy: &[T], dx: &mut [T], batch: usize) {
    let (rows, cols) = m.shape();
    assert_eq!(
        theta.len(),
        m.n_params(),
        "backward_input: θ has {} values, the matrix reads {}",
        theta.len(),
        m.n_params()
    );
    assert_eq!(dy.len(), batch * rows, "backward_input: dy has {} values, expected {batch} x {rows}", dy.len());
    assert_eq!(dx.len(), batch * cols, "backward_input: dx has {} values, expected {batch} x {cols}", dx.len());
    grouped_product(m, m.map_t(), m.groups_t(), m.separable_t(), theta, None, dy, dx, batch);
}

/// `y[:, r] = bias(r) + Σ_{k in row r} value(code[k]) · x[:, col(k)]`, row group by row group.
#[allow(clippy::too_many_arguments)]
fn grouped_product<T: Real>(
    m: &TiedMatrix,
    map: &IndexMap,
    groups: &RowGroups,
    separable: &SeparableGroups,
    theta: &[T],
    bias: Option<(&[T], &[u32])>,
    x: &[T],
    y: &mut [T],
    batch: usize,
) {
    assert_eq!(theta.len(), m.n_params());
    // The hand-written f32 kernel reads separable groups straight from θ, the others from a gathered block, and
    // writes the group's rows in place.
    let fast = has_avx512() && as_f32(theta).is_some();
    let indptr = map.indptr();
    let indptr = indptr.raw_storage();
    let indices = map.indices();
    let codes = map.data();
    let out = Disjoint::new(y);
    let bias_of = |r: u32| bias.map_or(T::zero(), |(b, ids)| b[ids[r as usize] as usize]);
    let cols_of = |g: usize| {
        let first = groups.group(g)[0] as usize;
        &indices[indptr[first] as usize..indptr[first + 1] as usize]
    };
    // One group, written in place.
    let one = |g: usize, wblock: &mut Vec<T>, acc: &mut Vec<T>| {
        let grows = groups.group(g);
        let first = grows[0] as usize;
        let gcols = cols_of(g);
        #[cfg(target_arch = "x86_64")]
        if fast {
            // acc: the initial value (bias) of each row of the group.
            acc.clear();
            acc.extend(grows.iter().map(|&r| bias_of(r)));
            let separable = separable.of(g, grows.len());
            if separable.is_none() {
                gather_block(m, grows, (indptr, codes), theta, wblock, gcols.len());
            }
            let (Some(init), Some(theta), Some(x), Some(wblock)) =
                (as_f32(acc), as_f32(theta), as_f32(x), as_f32(wblock))
            else {
                unreachable!("fast implies f32")
            };
            let rows = super::simd::OutRows { y: out.ptr().cast::<f32>(), rows: grows };
            match separable {
                Some(offsets) => {
                    let w = super::simd::Separable {
                        theta: theta.as_ptr(),
                        offsets: offsets.as_ptr(),
                        code0: codes[indptr[first] as usize..][..gcols.len()].as_ptr(),
                    };
                    // SAFETY: the CPU has AVX-512F and FMA; a separable group's code[0][j] + o_i is its code
                    // of row i, column j, a parameter below θ.len(); the columns come from the checked map;
                    // the group's rows are written by this task only (groups partition the rows) and lie
                    // inside y (B, R).
                    unsafe { super::simd::product_avx512(rows, init, w, gcols, x, batch) };
                }
                None => {
                    let w = super::simd::Block { w: wblock.as_ptr(), n: gcols.len() };
                    // SAFETY: as above, with the (G, n) block gathered just now.
                    unsafe { super::simd::product_avx512(rows, init, w, gcols, x, batch) };
                }
            }
            return;
        }
        // acc: (G, B), one batch column per row of the group.
        acc.clear();
        for &r in grows {
            acc.extend(std::iter::repeat_n(bias_of(r), batch));
        }
        gather_block(m, grows, (indptr, codes), theta, wblock, gcols.len());
        accumulate_dispatch(acc, wblock, gcols, x, batch);
        for (gi, &r) in grows.iter().enumerate() {
            let r = r as usize;
            // SAFETY: row r belongs to this group only (groups partition the rows).
            let yr = unsafe { out.slice(r * batch, batch) };
            yr.copy_from_slice(&acc[gi * batch..(gi + 1) * batch]);
        }
    };
    // Twin groups share their weights: with a block of 32 samples, both run in one register tile.
    let twins_pay = fast && batch % 64 >= 32;
    (0..groups.len().div_ceil(2)).into_par_iter().for_each_init(
        || (Vec::<T>::new(), Vec::<T>::new(), Vec::<T>::new()),
        |(wblock, acc, acc_b), u| {
            let g = 2 * u;
            #[cfg(target_arch = "x86_64")]
            if twins_pay
                && separable.twins(g)
                && let Some(offsets) = separable.of(g, groups.group(g).len())
            {
                let (rows_a, rows_b) = (groups.group(g), groups.group(g + 1));
                let (cols_a, cols_b) = (cols_of(g), cols_of(g + 1));
                acc.clear();
                acc.extend(rows_a.iter().map(|&r| bias_of(r)));
                acc_b.clear();
                acc_b.extend(rows_b.iter().map(|&r| bias_of(r)));
                let (Some(init_a), Some(init_b), Some(theta), Some(x)) =
                    (as_f32(acc), as_f32(acc_b), as_f32(theta), as_f32(x))
                else {
                    unreachable!("fast implies f32")
                };
                let first = rows_a[0] as usize;
                let w = super::simd::Separable {
                    theta: theta.as_ptr(),
                    offsets: offsets.as_ptr(),
                    code0: codes[indptr[first] as usize..][..cols_a.len()].as_ptr(),
                };
                let y = out.ptr().cast::<f32>();
                let outs = [super::simd::OutRows { y, rows: rows_a }, super::simd::OutRows { y, rows: rows_b }];
                // SAFETY: as for one separable group; twins have the same offsets and first-row codes, so `w`
                // is the weight of either group; the two groups' rows are disjoint and written by this task
                // only.
                unsafe { super::simd::product_twins_avx512(outs, [init_a, init_b], w, [cols_a, cols_b], x, batch) };
                return;
            }
            one(g, wblock, acc);
            if g + 1 < groups.len() {
                one(g + 1, wblock, acc);
            }
        },
    );
}

/// The group's values gathered from θ into `wblock` (G, n) row-major.
#[inline]
fn gather_block<T: Real>(
    m: &TiedMatrix,
    grows: &[u32],
    (indptr, codes): (&[u32], &[u32]),
    theta: &[T],
    wblock: &mut Vec<T>,
    n: usize,
) {
    wblock.clear();
    for &r in grows {
        let k0 = indptr[r as usize] as usize;
        wblock.extend(codes[k0..k0 + n].iter().map(|&c| m.value(theta, c)));
    }
}

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

// The same loops compiled for AVX2 + FMA and chosen at run time. Products are accumulated with `mul_add`, a
// fused multiply-add rounded once: one instruction with FMA, an exact library call without, so both versions
// give the same bits.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    accumulate(acc, w, cols, x, batch)
}

#[inline]
fn accumulate_dispatch<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { accumulate_avx2(acc, w, cols, x, batch) };
    }
    accumulate(acc, w, cols, x, batch)
}

/// `y += a · x`.
#[inline(always)]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = a.mul_add(xv, *yv);
    }
}
