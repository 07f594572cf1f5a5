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

use super::kernels;
#[cfg(target_arch = "x86_64")]
use super::lane_products::{lane_plan, lane_product};
use super::matrix::TiedMatrix;
use super::views::{Columns, GroupSource, OutRows, SeparableWeights, WeightBlock};
use crate::cpu::{LANES, as_f32};
use crate::disjoint::Disjoint;
use crate::scalar::Real;

/// The layout the products of `m` put in the vector lanes at this batch, for `T`: `positions` (runs of
/// positions, the private module `tied::lanes`), `channels` (only sets of groups: rows in the lanes) or `samples` (the group
/// products). The parameter gradient sums positions in the lanes at every batch, whatever the products do.
pub fn layout<T: Real>(m: &TiedMatrix, batch: usize) -> &'static str {
    #[cfg(target_arch = "x86_64")]
    if let Some(plan) = lane_plan::<T>(m, 0, batch) {
        return if plan.has_runs() { "positions" } else { "channels" };
    }
    let _ = (m, batch);
    "samples"
}

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
    #[cfg(target_arch = "x86_64")]
    if let (Some(plan), Some((w, _))) = (lane_plan::<T>(m, 0, batch), m.compact()) {
        return lane_product(m, w, plan, theta, bias, x, y, batch);
    }
    match m.compact() {
        Some((w, _)) => grouped_product(m, w, m.visit_runs(0), theta, bias, x, y, batch),
        None => grouped_product(m, &m.classic_w(), m.visit_runs(0), theta, bias, x, y, batch),
    }
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
    #[cfg(target_arch = "x86_64")]
    if let (Some(plan), Some((_, wt))) = (lane_plan::<T>(m, 1, batch), m.compact()) {
        return lane_product(m, wt, plan, theta, None, dy, dx, batch);
    }
    match m.compact() {
        Some((_, wt)) => grouped_product(m, wt, m.visit_runs(1), theta, None, dy, dx, batch),
        None => grouped_product(m, &m.classic_wt(), m.visit_runs(1), theta, None, dy, dx, batch),
    }
}

/// `y[:, r] = bias(r) + Σ_{k in row r} value(code[k]) · x[:, col(k)]`, row group by row group. A group's columns
/// are `shift + cols[j]`: the kernels read `x` from column `shift` on with the relative columns, so the compact
/// and the classic form run the same fused multiply-adds in the same order. `visit`, when given, is the order
/// in which the groups run and its runs (see [`TiedMatrix::with_visit_order`]): it changes no bit.
#[allow(clippy::too_many_arguments)]
fn grouped_product<T: Real, S: GroupSource>(
    m: &TiedMatrix,
    src: &S,
    visit: Option<(&[u32], &[u32])>,
    theta: &[T],
    bias: Option<(&[T], &[u32])>,
    x: &[T],
    y: &mut [T],
    batch: usize,
) {
    assert_eq!(theta.len(), m.n_params());
    // The hand-written f32 kernels (AVX-512, else AVX2) read separable groups straight from θ, the others from a
    // gathered block, and write the group's rows in place.
    // (Both read a separable group's weights at signed 32-bit distances from each row's first.)
    let kernels_apply = as_f32(theta).is_some() && theta.len() <= i32::MAX as usize;
    let fast = kernels::avx512() && kernels_apply;
    let fast_avx2 = !fast && kernels::avx2() && kernels_apply;
    let out = Disjoint::new(y);
    let bias_of = |r: u32| bias.map_or(T::zero(), |(b, ids)| b[ids[r as usize] as usize]);
    let n_groups = src.n_groups();
    // With AVX-512 and fewer than 16 samples (vgg16's batch of 8), where each weight serves one register, a
    // separable group's weights are gathered column-major and kept while the next groups share its offsets
    // and first-row codes (the interior positions of a convolution): the kernel then broadcasts each weight
    // from memory instead of computing its index.
    let columns = fast && batch < LANES;
    // One group, written in place.
    let one = |g: usize, wblock: &mut Gathered<T>, acc: &mut Vec<T>| {
        let grows = src.rows(g);
        let (gcols, shift) = src.cols(g);
        // x from column `shift` on: (B, C − shift).
        let xs = &x[shift as usize * batch..];
        #[cfg(target_arch = "x86_64")]
        if fast || fast_avx2 {
            // acc: the initial value (bias) of each row of the group.
            acc.clear();
            acc.extend(grows.iter().map(|&r| bias_of(r)));
            let separable = src.separable(g);
            if columns
                && let Some((offsets, code0)) = separable
                && wblock.columns_of(offsets, code0, theta)
            {
                let (Some(init), Some(xs), Some(w)) = (as_f32(acc), as_f32(xs), as_f32(&wblock.columns)) else {
                    unreachable!("fast implies f32")
                };
                let rows = OutRows { y: out.ptr().cast::<f32>(), rows: grows };
                let w = Columns { w: w.as_ptr(), g: grows.len() };
                // SAFETY: the CPU has AVX-512F and FMA; the block holds (n, G) values; the columns come from
                // the checked map and lie inside xs (B, C − shift); the group's rows are written by this task
                // only (groups partition the rows) and lie inside y (B, R).
                unsafe { kernels::avx512::product_avx512(rows, init, w, gcols, xs, batch) };
                return;
            }
            if separable.is_none() {
                src.gather(g, theta, &|c| m.value(theta, c), &mut wblock.w);
            }
            let (Some(init), Some(theta), Some(xs), Some(wblock)) =
                (as_f32(acc), as_f32(theta), as_f32(xs), as_f32(&wblock.w))
            else {
                unreachable!("fast implies f32")
            };
            let rows = OutRows { y: out.ptr().cast::<f32>(), rows: grows };
            match separable {
                Some((offsets, code0)) => {
                    let w =
                        SeparableWeights { theta: theta.as_ptr(), offsets: offsets.as_ptr(), code0: code0.as_ptr() };
                    // SAFETY: the CPU has AVX-512F and FMA (fast) or AVX2 and FMA (fast_avx2); a separable
                    // group's code[0][j] + o_i is its code of row i, column j, a parameter below θ.len(); the
                    // columns come from the checked map and lie inside xs (B, C − shift); the group's rows are
                    // written by this task only (groups partition the rows) and lie inside y (B, R).
                    unsafe {
                        if fast {
                            kernels::avx512::product_avx512(rows, init, w, gcols, xs, batch)
                        } else {
                            kernels::avx2::product_avx2(rows, init, w, gcols, xs, batch)
                        }
                    };
                }
                None => {
                    let w = WeightBlock { w: wblock.as_ptr(), n: gcols.len() };
                    // SAFETY: as above, with the (G, n) block gathered just now.
                    unsafe {
                        if fast {
                            kernels::avx512::product_avx512(rows, init, w, gcols, xs, batch)
                        } else {
                            kernels::avx2::product_avx2(rows, init, w, gcols, xs, batch)
                        }
                    };
                }
            }
            return;
        }
        // acc: (G, B), one batch column per row of the group.
        acc.clear();
        for &r in grows {
            acc.extend(std::iter::repeat_n(bias_of(r), batch));
        }
        src.gather(g, theta, &|c| m.value(theta, c), &mut wblock.w);
        kernels::accumulate(acc, &wblock.w, gcols, xs, batch);
        for (gi, &r) in grows.iter().enumerate() {
            let r = r as usize;
            // SAFETY: row r belongs to this group only (groups partition the rows).
            let yr = unsafe { out.slice(r * batch, batch) };
            yr.copy_from_slice(&acc[gi * batch..(gi + 1) * batch]);
        }
    };
    if let Some((order, runs)) = visit {
        assert_eq!(order.len(), n_groups, "grouped_product: a visit order of {} for {n_groups} groups", order.len());
        // In the given order, two runs per task; no twins (an ordered matrix's groups are single rows). A run
        // of several groups (single rows copying one weight row at their own shifts) runs in one kernel that
        // broadcasts each weight once for all of them; the others group by group.
        let n_runs = runs.len().saturating_sub(1);
        (0..n_runs.div_ceil(2)).into_par_iter().for_each_init(
            || (Gathered::<T>::default(), Vec::<T>::new(), Vec::<u32>::new(), Vec::<u32>::new()),
            |(wblock, acc, rows, shifts), u| {
                for k in 2 * u..(2 * u + 2).min(n_runs) {
                    let run = &order[runs[k] as usize..runs[k + 1] as usize];
                    #[cfg(target_arch = "x86_64")]
                    if run.len() > 1
                        && fast
                        && batch >= LANES
                        && let Some((offsets, code0)) = src.separable(run[0] as usize)
                    {
                        let (gcols, _) = src.cols(run[0] as usize);
                        rows.clear();
                        shifts.clear();
                        acc.clear();
                        for &g in run {
                            let r = src.rows(g as usize)[0];
                            rows.push(r);
                            shifts.push(src.cols(g as usize).1);
                            acc.push(bias_of(r));
                        }
                        let (Some(init), Some(theta), Some(x)) = (as_f32(acc), as_f32(theta), as_f32(x)) else {
                            unreachable!("fast implies f32")
                        };
                        let w = SeparableWeights {
                            theta: theta.as_ptr(),
                            offsets: offsets.as_ptr(),
                            code0: code0.as_ptr(),
                        };
                        let out = OutRows { y: out.ptr().cast::<f32>(), rows };
                        // SAFETY: the CPU has AVX-512F and FMA (fast); the run's groups are single rows with one
                        // pattern and one separable block (the visit's runs, `CompactMap::same_weight_row`), so
                        // `w`'s row 0 is each member's weight row; each member's columns `shift + cols[j]` come from
                        // the checked map and lie inside x (B, C); the rows are written by this task only (groups
                        // partition the rows, runs partition the order) and lie inside y (B, R).
                        unsafe { kernels::avx512::product_run_avx512(out, shifts, init, w, gcols, x, batch) };
                        continue;
                    }
                    for &g in run {
                        one(g as usize, wblock, acc);
                    }
                }
            },
        );
        return;
    }
    // Twin groups share their weights: with a block of 32 samples, both run in one register tile.
    let twins_pay = fast && batch % 64 >= 32;
    (0..n_groups.div_ceil(2)).into_par_iter().for_each_init(
        || (Gathered::<T>::default(), Vec::<T>::new(), Vec::<T>::new(), Vec::<u32>::new(), Vec::<u32>::new()),
        |(wblock, acc, acc_b, abs_a, abs_b), u| {
            let g = 2 * u;
            #[cfg(target_arch = "x86_64")]
            if twins_pay
                && src.twins(g)
                && let Some((offsets, code0)) = src.separable(g)
            {
                let (rows_a, rows_b) = (src.rows(g), src.rows(g + 1));
                let ((cols_a, shift_a), (cols_b, shift_b)) = (src.cols(g), src.cols(g + 1));
                // The twin kernel reads one x: both groups' columns absolute (as stored when both shifts are 0).
                let (cols_a, cols_b) = if shift_a == 0 && shift_b == 0 {
                    (cols_a, cols_b)
                } else {
                    abs_a.clear();
                    abs_a.extend(cols_a.iter().map(|&c| c + shift_a));
                    abs_b.clear();
                    abs_b.extend(cols_b.iter().map(|&c| c + shift_b));
                    (&abs_a[..], &abs_b[..])
                };
                acc.clear();
                acc.extend(rows_a.iter().map(|&r| bias_of(r)));
                acc_b.clear();
                acc_b.extend(rows_b.iter().map(|&r| bias_of(r)));
                let (Some(init_a), Some(init_b), Some(theta), Some(x)) =
                    (as_f32(acc), as_f32(acc_b), as_f32(theta), as_f32(x))
                else {
                    unreachable!("fast implies f32")
                };
                let w = SeparableWeights { theta: theta.as_ptr(), offsets: offsets.as_ptr(), code0: code0.as_ptr() };
                let y = out.ptr().cast::<f32>();
                let outs = [OutRows { y, rows: rows_a }, OutRows { y, rows: rows_b }];
                // SAFETY: as for one separable group; twins have the same offsets and first-row codes, so `w`
                // is the weight of either group; the two groups' rows are disjoint and written by this task
                // only.
                unsafe { kernels::avx512::product_twins_avx512(outs, [init_a, init_b], w, [cols_a, cols_b], x, batch) };
                return;
            }
            one(g, wblock, acc);
            if g + 1 < n_groups {
                one(g + 1, wblock, acc);
            }
        },
    );
}

/// A task's gathered weights: `w`, a group's (G, n) block; `columns`, the (n, G) column-major block of the
/// separable groups with the offsets and first-row codes of `key` (their addresses and lengths, which the
/// map's interned patterns share), valid for one product (one θ).
#[derive(Default)]
struct Gathered<T> {
    w: Vec<T>,
    key: Option<(usize, usize, usize, usize)>,
    columns: Vec<T>,
}

impl<T: Real> Gathered<T> {
    /// Whether `columns` holds the block of a separable group with these `offsets` and first-row codes
    /// `code0` (`columns[j·G + i] = θ[code0[j] + offsets[i]]`), gathering it first when the group has more
    /// columns than the block held: the interior positions of a convolution, which have the most columns, keep
    /// their block while the border positions met between them read θ through their codes.
    fn columns_of(&mut self, offsets: &[u32], code0: &[u32], theta: &[T]) -> bool {
        let key = (offsets.as_ptr() as usize, offsets.len(), code0.as_ptr() as usize, code0.len());
        if self.key == Some(key) {
            return true;
        }
        if self.key.is_some_and(|k| k.3 >= code0.len()) {
            return false;
        }
        self.columns.clear();
        for &c in code0 {
            self.columns.extend(offsets.iter().map(|&o| theta[c.wrapping_add(o) as usize]));
        }
        self.key = Some(key);
        true
    }
}
