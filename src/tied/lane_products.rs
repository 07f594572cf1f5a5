//! The products of a compact tied matrix at a small batch, with positions or rows in the vector lanes (see
//! [`super::lanes`]): the runs of a [`LanePlan`] through the run kernels, its sets through the set kernels, in
//! parallel. Each output value is summed by one task, over the columns in order from its initial value with
//! fused multiply-adds: the bits of [`super::products`]' group products, whatever the number of threads.

use rayon::prelude::*;

use super::compact::{CompactMap, GroupWeights};
use super::kernels;
use super::lanes::LanePlan;
use super::matrix::TiedMatrix;
use super::views::{OutRows, WeightBlock};
use crate::cpu::{LANES, as_f32};
use crate::disjoint::Disjoint;
use crate::scalar::Real;

/// Values of a row one task of a bundle covers at most (a multiple of the run kernels' tiles, 24 and 64).
const Q_CHUNK: usize = 384;

/// Rows (of all the runs of a bundle) one task covers at most, about.
const TASK_ROWS: usize = 128;

/// (Group, sample) members one task of a set covers, about.
const TASK_MEMBERS: usize = 96;

/// Which layout a product of `m` runs in at this batch: `Some(side's plan)` when the lane kernels apply (an
/// `f32` product with AVX2 or AVX-512, a batch under [`LANES`], a compact matrix in its own group order whose
/// plan has a run or a set the set kernels take); `None`: the group products, samples in the lanes.
pub(crate) fn lane_plan<T: Real>(m: &TiedMatrix, side: usize, batch: usize) -> Option<&LanePlan> {
    if as_f32::<T>(&[]).is_none() || !(kernels::avx2() && batch > 0 && batch < LANES) || m.visit_order(side).is_some() {
        return None;
    }
    let plan = m.lane_plans()?.get(side)?;
    let (w, wt) = m.compact()?;
    let src = if side == 0 { w } else { wt };
    (plan.has_runs()
        || plan.sets.windows(2).any(|s| set_kernel(src.groups().group(plan.singles[s[0] as usize] as usize).len())))
    .then_some(plan)
}

/// Whether the set kernels take groups of `g` rows: enough rows to fill half a register, at most 16.
fn set_kernel(g: usize) -> bool {
    let min = if kernels::avx512() { 8 } else { 4 };
    (min..=16).contains(&g)
}

/// A task: rows of one bundle's runs over some of their values, or some groups of one set.
#[derive(Clone, Copy, Debug)]
enum Task {
    Runs { runs: (usize, usize), q: (usize, usize) },
    Set { groups: (usize, usize) },
}

/// `y = W x + b` (or `d_x = Wᵀ d_y`) of one side `src` of a compact `f32` matrix through its lane plan: `x` (B,
/// C), `y` (B, R) overwritten, row `r` starting from `bias(r)`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lane_product<T: Real>(
    m: &TiedMatrix,
    src: &CompactMap,
    plan: &LanePlan,
    theta: &[T],
    bias: Option<(&[T], &[u32])>,
    x: &[T],
    y: &mut [T],
    batch: usize,
) {
    let (Some(theta), Some(x)) = (as_f32(theta), as_f32(x)) else { unreachable!("lane products are f32") };
    let bias = bias.map(|(b, ids)| (as_f32(b).expect("f32 bias"), ids));
    let bias_of = |r: u32| bias.map_or(0.0, |(b, ids)| b[ids[r as usize] as usize]);
    let avx512 = kernels::avx512();
    let mut tasks = Vec::new();
    for ends in plan.bundles.windows(2) {
        let (ra, rb) = (ends[0] as usize, ends[1] as usize);
        let g = src.groups().group(plan.runs[ra].first as usize).len();
        let per_task = (TASK_ROWS / g).max(1);
        let len = plan.runs[ra].len as usize * batch;
        for r0 in (ra..rb).step_by(per_task) {
            for q0 in (0..len).step_by(Q_CHUNK) {
                tasks.push(Task::Runs { runs: (r0, (r0 + per_task).min(rb)), q: (q0, (q0 + Q_CHUNK).min(len)) });
            }
        }
    }
    let per_set_task = (TASK_MEMBERS / batch).max(1);
    for ends in plan.sets.windows(2) {
        let (sa, sb) = (ends[0] as usize, ends[1] as usize);
        for g0 in (sa..sb).step_by(per_set_task) {
            tasks.push(Task::Set { groups: (g0, (g0 + per_set_task).min(sb)) });
        }
    }
    let out = Disjoint::new(y);
    tasks.par_iter().for_each_init(Scratch::default, |s, &task| match task {
        Task::Runs { runs: (r0, r1), q: (q0, q1) } => {
            let yp = out.ptr().cast::<f32>();
            let runs = &plan.runs[r0..r1];
            let (cols, shift) = (src.pattern(runs[0].first as usize), src.shift(runs[0].first as usize));
            let n = cols.len();
            s.w.clear();
            for run in runs {
                gather_columns(m, src, run.first as usize, theta, 0, &mut s.w);
            }
            let mut at = 0;
            let list: Vec<kernels::lanes::RunRows<'_>> = runs
                .iter()
                .map(|run| {
                    let rows = src.groups().group(run.first as usize);
                    let w = s.w[at..].as_ptr();
                    at += rows.len() * n;
                    // The initial values: row rows[i] + k at sample b is value k·B + b of row i's stretch.
                    for &r in rows {
                        for q in q0..q1 {
                            // SAFETY: the rows of the runs of this task at the values q0..q1 are written by this
                            // task only (runs partition their groups, bundles and chunks partition the runs
                            // and the values); r·B + q lies inside y (B, R): row r + ⌊q/B⌋ is a row of the run.
                            unsafe { *yp.add(r as usize * batch + q) = bias_of(r + (q / batch) as u32) };
                        }
                    }
                    kernels::lanes::RunRows { rows, w }
                })
                .collect();
            let xs = &x[shift as usize * batch..];
            // SAFETY: the CPU has AVX2 and FMA (lane_plan), AVX-512F for the AVX-512 kernel; each run's row i
            // covers y[rows[i]·B + q] for q < len·B, the rows of its groups (`LanePlan::check`: each group of a
            // run is the previous one's rows plus one), written by this task only over q0..q1; its weights are
            // the n·G values gathered just now; column j reads xs[cols[j]·B + q], q < len·B, the inputs of the
            // run's groups at their shifts (shift + k + cols[j] < C, the map's invariant), inside x.
            unsafe {
                if avx512 {
                    kernels::lanes::runs_avx512(yp, &list, xs.as_ptr(), cols, batch, (q0, q1))
                } else {
                    kernels::lanes::runs_avx2(yp, &list, xs.as_ptr(), cols, batch, (q0, q1))
                }
            }
        }
        Task::Set { groups: (g0, g1) } => {
            let yp = out.ptr().cast::<f32>();
            let groups = &plan.singles[g0..g1];
            let first = groups[0] as usize;
            let (cols, g) = (src.pattern(first), src.groups().group(first).len());
            if !set_kernel(g) {
                for &gr in groups {
                    group_product(m, src, gr as usize, theta, &bias_of, x, yp, batch, s, avx512);
                }
                return;
            }
            let gp = if avx512 || g > 8 { 16 } else { 8 };
            s.w.clear();
            gather_columns(m, src, first, theta, gp, &mut s.w);
            s.xs.clear();
            s.init.clear();
            for &gr in groups {
                let rows = src.groups().group(gr as usize);
                let xg = x[src.shift(gr as usize) as usize * batch..].as_ptr();
                for b in 0..batch {
                    // SAFETY: b < B, inside the group's first column (or the end of x when it has none).
                    s.xs.push(unsafe { xg.add(b) });
                    s.init.extend(rows.iter().map(|&r| bias_of(r)));
                    s.init.extend(std::iter::repeat_n(0.0, gp - g));
                }
            }
            s.out.clear();
            s.out.resize(s.init.len(), 0.0);
            // SAFETY: the CPU has AVX2 and FMA (lane_plan), AVX-512F for the AVX-512 kernel; gp is 16, or 8
            // with at most 8 rows; the block holds n·gp values, zero past the rows; member k reads
            // xs[k] + cols[j]·B = x[(shift + cols[j])·B + b], inside x (the map's invariant); init and out
            // hold gp values per member.
            unsafe {
                if avx512 {
                    kernels::lanes::sets_avx512(s.w.as_ptr(), gp, &s.xs, cols, batch, &s.init, &mut s.out)
                } else {
                    kernels::lanes::sets_avx2(s.w.as_ptr(), gp, &s.xs, cols, batch, &s.init, &mut s.out)
                }
            }
            for (k, &gr) in groups.iter().enumerate() {
                for (i, &r) in src.groups().group(gr as usize).iter().enumerate() {
                    for b in 0..batch {
                        // SAFETY: the rows of this task's groups are written by this task only (the plan's sets
                        // partition the groups outside the runs, and tasks partition the sets); r·B + b lies
                        // inside y (B, R).
                        unsafe { *yp.add(r as usize * batch + b) = s.out[(k * batch + b) * gp + i] };
                    }
                }
            }
        }
    });
}

/// A task's buffers.
#[derive(Default)]
struct Scratch {
    w: Vec<f32>,
    xs: Vec<*const f32>,
    init: Vec<f32>,
    out: Vec<f32>,
}

/// Appends group `g`'s weights to `out` column-major: column `j`'s `G` rows, then `pad − G` zeros when `pad` is
/// larger than `G`.
fn gather_columns(m: &TiedMatrix, src: &CompactMap, g: usize, theta: &[f32], pad: usize, out: &mut Vec<f32>) {
    let n = src.pattern(g).len();
    let rows = src.groups().group(g).len();
    let zeros = pad.saturating_sub(rows);
    match src.weights(g) {
        GroupWeights::Separable { offsets, taps } => {
            for &t in taps {
                out.extend(offsets.iter().map(|&o| theta[t.wrapping_add(o) as usize]));
                out.extend(std::iter::repeat_n(0.0, zeros));
            }
        }
        GroupWeights::Codes(codes) => {
            for j in 0..n {
                out.extend((0..rows).map(|i| m.value(theta, codes[i * n + j])));
                out.extend(std::iter::repeat_n(0.0, zeros));
            }
        }
    }
}

/// Group `g` through the group product (samples in the lanes), its weights gathered row-major.
#[allow(clippy::too_many_arguments)]
fn group_product(
    m: &TiedMatrix,
    src: &CompactMap,
    g: usize,
    theta: &[f32],
    bias_of: &impl Fn(u32) -> f32,
    x: &[f32],
    yp: *mut f32,
    batch: usize,
    s: &mut Scratch,
    avx512: bool,
) {
    let (rows, cols, shift) = (src.groups().group(g), src.pattern(g), src.shift(g));
    s.w.clear();
    match src.weights(g) {
        GroupWeights::Separable { offsets, taps } => {
            for &o in offsets {
                s.w.extend(taps.iter().map(|&t| theta[t.wrapping_add(o) as usize]));
            }
        }
        GroupWeights::Codes(codes) => s.w.extend(codes.iter().map(|&c| m.value(theta, c))),
    }
    s.init.clear();
    s.init.extend(rows.iter().map(|&r| bias_of(r)));
    let xs = &x[shift as usize * batch..];
    let out = OutRows { y: yp, rows };
    let w = WeightBlock { w: s.w.as_ptr(), n: cols.len() };
    // SAFETY: the CPU has AVX2 and FMA (lane_plan), AVX-512F for the AVX-512 kernel; the block holds the group's
    // (G, n) weights; its columns come from the checked map and lie inside xs (B, C − shift); its rows are
    // written by this task only (the plan's sets partition the groups outside the runs) and lie inside y.
    unsafe {
        if avx512 {
            kernels::avx512::product_avx512(out, &s.init, w, cols, xs, batch)
        } else {
            kernels::avx2::product_avx2(out, &s.init, w, cols, xs, batch)
        }
    }
}

#[cfg(test)]
mod tests {
    //! The lane products against the definition every group product computes (each output value from its
    //! initial value, `value · x` added column by column in order with a fused multiply-add), bit for bit: on
    //! convolutions with borders, padding, dilation, stride 2, groups, reflect padding (whose border groups
    //! carry codes) and an untied local layer, at batches under 16 (the lane kernels) and over (the group
    //! products), both directions, with and without a bias.

    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::super::products::{backward_input, forward};
    use super::*;
    use crate::engines::sparse::conv::{compile_conv_compact, compile_grouped_conv};
    use crate::engines::sparse::local::compile_local;
    use crate::geometry::{ConvGeometry, PaddingMode};

    /// `y[r·B + b] = init(r) + Σ_j value(code_j) · x[c_j·B + b]` over one side's rows, columns in order.
    fn reference(
        m: &TiedMatrix,
        side: &CompactMap,
        theta: &[f32],
        init: &dyn Fn(u32) -> f32,
        x: &[f32],
        batch: usize,
    ) -> Vec<f32> {
        let mut y: Vec<f32> = (0..side.shape().0 * batch).map(|k| init((k / batch) as u32)).collect();
        side.for_each_nonzero(|r, _, c, code| {
            let w = m.value(theta, code);
            for b in 0..batch {
                let k = r as usize * batch + b;
                y[k] = w.mul_add(x[c as usize * batch + b], y[k]);
            }
        });
        y
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|f| f.to_bits()).collect()
    }

    #[test]
    fn lane_products_equal_the_group_products_bit_for_bit() {
        let mut rng = StdRng::seed_from_u64(11);
        let zeros = PaddingMode::Zeros;
        let conv = |c_in, hw, c_out, k, stride, pad, dil, mode| ConvGeometry {
            c_in,
            h_in: hw,
            w_in: hw + 1,
            c_out,
            k,
            stride,
            pad,
            dil,
            mode,
        };
        // (geometry, groups, local): 16-channel blocks and a remainder, a 1×1 convolution (one run per image),
        // dilation, stride 2 (sets only), groups, reflect padding, few channels (sets too small for the set
        // kernels), an untied local layer.
        let cases = [
            (conv(3, 9, 20, 3, 1, 1, 1, zeros), 1, false),
            (conv(5, 7, 16, 1, 1, 0, 1, zeros), 1, false),
            (conv(4, 11, 9, 3, 1, 2, 2, zeros), 1, false),
            (conv(6, 10, 17, 3, 2, 1, 1, zeros), 1, false),
            (conv(8, 8, 12, 3, 1, 1, 1, zeros), 2, false),
            (conv(3, 8, 10, 3, 1, 1, 1, PaddingMode::Reflect), 1, false),
            (conv(2, 6, 3, 3, 1, 1, 1, zeros), 1, false),
            (conv(3, 6, 8, 3, 1, 1, 1, zeros), 1, true),
        ];
        let mut lanes_ran = 0;
        for (g, groups, local) in cases {
            let m = if local {
                compile_local(&g).to_compact()
            } else if groups == 1 && g.mode == zeros {
                compile_conv_compact(&g)
            } else {
                compile_grouped_conv(&g, groups).to_compact()
            };
            let (w, wt) = m.compact().expect("compact");
            let theta: Vec<f32> = (0..m.n_params()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let bias: Vec<f32> = (0..g.c_out).map(|_| rng.random_range(-1.0..1.0)).collect();
            let positions = g.h_out() * g.w_out();
            let ids: Vec<u32> = (0..g.out_len()).map(|r| (r / positions) as u32).collect();
            for batch in [1, 2, 3, 8, 15, 16, 64] {
                if lane_plan::<f32>(&m, 0, batch).is_some() {
                    lanes_ran += 1;
                }
                let x: Vec<f32> = (0..batch * g.in_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let dy: Vec<f32> = (0..batch * g.out_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut y = vec![f32::NAN; batch * g.out_len()];
                forward(&m, &theta, Some((&bias, &ids)), &x, &mut y, batch);
                let want = reference(&m, w, &theta, &|r| bias[ids[r as usize] as usize], &x, batch);
                assert_eq!(bits(&y), bits(&want), "forward {g:?} groups {groups} local {local} batch {batch}");
                let mut dx = vec![f32::NAN; batch * g.in_len()];
                backward_input(&m, &theta, &dy, &mut dx, batch);
                let want = reference(&m, wt, &theta, &|_| 0.0, &dy, batch);
                assert_eq!(bits(&dx), bits(&want), "input gradient {g:?} groups {groups} local {local} batch {batch}");
            }
        }
        if kernels::avx2() {
            assert!(lanes_ran >= 5 * 8, "the lane kernels ran on {lanes_ran} products");
        }
    }

    /// The plan of a padded 3×3 convolution at stride 1: every image row is a run of its interior positions,
    /// per block of 16 channels, the first and last positions of each row are sets; the checker accepts it
    /// and rejects a run that breaks the rule.
    #[test]
    fn plans_find_the_runs_of_a_convolution_and_the_checker_holds_them() {
        let g = ConvGeometry {
            c_in: 2,
            h_in: 6,
            w_in: 7,
            c_out: 20,
            k: 3,
            stride: 1,
            pad: 1,
            dil: 1,
            mode: PaddingMode::Zeros,
        };
        let m = compile_conv_compact(&g);
        let [p, pt] = m.lane_plans().expect("a compact matrix has plans");
        let (w, wt) = m.compact().unwrap();
        assert_eq!(p.check(w), Ok(()));
        assert_eq!(pt.check(wt), Ok(()));
        // 6 rows × 2 channel blocks (16 and 4), each a run of the 5 interior positions.
        assert_eq!(p.runs.len(), 12);
        assert!(p.runs.iter().all(|r| r.len == 5));
        // The first and last position of each row, per channel block.
        assert_eq!(p.singles.len(), 6 * 2 * 2);
        let mut broken = p.clone();
        broken.runs[0].len += 1;
        assert!(broken.check(w).is_err());
        let mut broken = p.clone();
        broken.singles.pop();
        assert!(broken.check(w).is_err());
    }
}
