//! The measurement of `compare`: the timing harness (median over repeats after a warm-up), the agreement
//! check against the direct engine, the memory a formulation needs, and the machine read from /proc.

use std::time::Instant;

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{Case, Config, Row, Status};
use crate::engines::build_pruned_map;
use crate::linear_map::LinearMap;
use crate::network::{Engine, build_map};
use crate::spec::conv_geometry;
use crate::tensor::Tensor;

/// Bytes of im2col's scratch: the column buffer `col` and its gradient `δcol`, `[B·P, Q]` f32 each, which an
/// im2col layer keeps between calls.
pub fn im2col_bytes(case: &Case, batch: usize) -> usize {
    conv_geometry(&case.layer, case.input).map_or(0, |g| 2 * 4 * batch * g.h_out() * g.w_out() * g.c_in * g.k * g.k)
}

/// The median of `v` (the mean of the middle two for an even count).
pub(super) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) }
}

/// The largest `|a_i − b_i|`.
pub(super) fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).abs()).fold(0.0, f64::max)
}

fn time(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// Results of one formulation: output, input gradient, parameter gradients (flattened).
struct Outputs {
    z: Vec<f32>,
    dx: Vec<f32>,
    dtheta: Vec<f32>,
}

/// A random kernel mask of `n` entries at sparsity `s`: exactly `round(s·n)` entries removed (`false`),
/// chosen by a seeded shuffle; every entry kept at `s = 0`.
///
/// # Panics
/// If `s` is outside `[0, 1)`.
#[track_caller]
pub fn random_mask(n: usize, s: f64, seed: u64) -> Vec<bool> {
    assert!((0.0..1.0).contains(&s), "random_mask: sparsity {s} outside [0, 1)");
    let removed = ((s * n as f64).round() as usize).min(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    // Partial Fisher-Yates: the first `removed` positions are a uniform sample.
    for i in 0..removed {
        let j = rng.random_range(i..n);
        order.swap(i, j);
    }
    let mut keep = vec![true; n];
    order[..removed].iter().for_each(|&i| keep[i] = false);
    keep
}

/// Runs one layer on every formulation at every sparsity of `cfg` (rows in the order sparse, direct,
/// im2col for each sparsity). A layer without parameters runs once, at sparsity 0. Call inside the rayon
/// pool whose threads are to be measured.
pub fn run_case(case: &Case, cfg: &Config, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let no_params =
        build_map::<f32>(&case.layer, case.input, Engine::Direct).expect("a linear layer").param_shapes().is_empty();
    let levels: Vec<f64> = if no_params { vec![0.0] } else { cfg.sparsity.clone() };
    let mut rows = Vec::new();
    for (i, &s) in levels.iter().enumerate() {
        rows.extend(run_case_at(case, cfg, s, cfg.seed.wrapping_add(1 + i as u64), &mut progress));
    }
    rows
}

/// One layer on every formulation with a random kernel mask at sparsity `s` (seeded by `mask_seed`): the
/// sparse formulation compiles only the kept taps, direct and im2col multiply by the masked kernel.
fn run_case_at(case: &Case, cfg: &Config, s: f64, mask_seed: u64, progress: &mut impl FnMut(&str)) -> Vec<Row> {
    let (inp, out) = (case.input.len(), case.output().len());
    let b = cfg.batch;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let x = DMatrix::<f32>::from_fn(b, inp, |_, _| rng.random_range(-1.0..1.0));
    let dz = DMatrix::<f32>::from_fn(b, out, |_, _| rng.random_range(-1.0..1.0));
    let reference = build_map::<f32>(&case.layer, case.input, Engine::Direct).expect("a linear layer");
    let fan_in = conv_geometry(&case.layer, case.input).map_or(1, |g| g.c_in * g.k * g.k);
    let bound = 1.0 / (fan_in as f32).sqrt();
    let mut params: Vec<Tensor<f32>> = reference
        .param_shapes()
        .iter()
        .map(|(_, s)| {
            let n = s.iter().product();
            Tensor::from_vec(s, (0..n).map(|_| rng.random_range(-bound..bound)).collect())
        })
        .collect();
    drop(reference);
    // At sparsity 0 every formulation runs unmasked, as without `--sparsity`.
    let mask = params.first().filter(|_| s > 0.0).map(|w| random_mask(w.len(), s, mask_seed));
    if let (Some(m), Some(w)) = (&mask, params.first_mut()) {
        w.data.iter_mut().zip(m).filter(|(_, k)| !**k).for_each(|(v, _)| *v = 0.0);
    }
    let param_bytes = 4 * params.iter().map(Tensor::len).sum::<usize>();
    let has_params = !params.is_empty();
    let nnz = case.nnz_bound();
    let estimate = case.estimate_index_bytes();
    let label = if s > 0.0 { format!("{} at sparsity {s}", case.name) } else { case.name.clone() };

    let mut rows = Vec::new();
    let mut ref_out: Option<Outputs> = None;
    // Direct first: it is the reference the others are compared with.
    for engine in [Engine::Direct, Engine::Sparse, Engine::Im2col] {
        let mut row = Row {
            sparsity: s,
            estimated_bytes: (engine == Engine::Sparse).then_some(estimate),
            param_bytes,
            nnz,
            flops: 2.0 * nnz as f64 * b as f64,
            ..Row::new(case.name.clone(), case.spec(), engine)
        };
        match engine {
            Engine::Sparse if estimate > cfg.memory_limit => row.status = Status::DoesNotFit(estimate),
            Engine::Im2col if !case.has_im2col() => {
                row.status = Status::NotApplicable("no im2col lowering for this layer kind")
            }
            Engine::Im2col if im2col_bytes(case, b) > cfg.memory_limit => {
                row.status = Status::DoesNotFit(im2col_bytes(case, b))
            }
            _ => {
                progress(&format!("{label} on {}", engine.name()));
                let (r, outputs) = measure(case, cfg, engine, mask.as_deref(), &params, &x, &dz);
                row.compile_s = Some(r.0);
                row.forward_s = Some(r.1);
                row.input_grad_s = Some(r.2);
                row.param_grad_s = has_params.then_some(r.3);
                row.index_bytes = match engine {
                    Engine::Sparse => r.4,
                    Engine::Im2col => im2col_bytes(case, b),
                    Engine::Direct => 0,
                };
                if engine == Engine::Sparse {
                    row.nnz = r.5;
                    row.flops = 2.0 * r.5 as f64 * b as f64;
                }
                match &ref_out {
                    None => ref_out = Some(outputs),
                    Some(o) => {
                        row.diff_forward = Some(max_abs_diff(&outputs.z, &o.z));
                        row.diff_input_grad = Some(max_abs_diff(&outputs.dx, &o.dx));
                        row.diff_param_grad = has_params.then(|| max_abs_diff(&outputs.dtheta, &o.dtheta));
                    }
                }
                if engine == Engine::Direct {
                    row.diff_forward = Some(0.0);
                    row.diff_input_grad = Some(0.0);
                    row.diff_param_grad = has_params.then_some(0.0);
                }
            }
        }
        rows.push(row);
    }
    // Report order: sparse, direct, im2col.
    rows.swap(0, 1);
    rows
}

/// Builds (with the kernel mask `keep`, if any) and times one formulation: (compile, forward, input
/// gradient, parameter gradient, index bytes, nnz) and the results of the last repeat.
fn measure(
    case: &Case,
    cfg: &Config,
    engine: Engine,
    keep: Option<&[bool]>,
    params: &[Tensor<f32>],
    x: &DMatrix<f32>,
    dz: &DMatrix<f32>,
) -> ((f64, f64, f64, f64, usize, usize), Outputs) {
    let t0 = Instant::now();
    let mut map: Box<dyn LinearMap<f32>> = match keep {
        Some(keep) => build_pruned_map(&case.layer, case.input, engine, keep),
        None => build_map(&case.layer, case.input, engine),
    }
    .expect("a linear layer");
    let compile = t0.elapsed().as_secs_f64();
    let (out, inp) = map.dims();
    let b = x.nrows();
    let mut z = DMatrix::<f32>::zeros(b, out);
    let mut dx = DMatrix::<f32>::zeros(b, inp);
    let mut grads: Vec<Tensor<f32>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    let (mut tf, mut ti, mut tp) = (Vec::new(), Vec::new(), Vec::new());
    for rep in 0..=cfg.repeats {
        let f = time(|| map.forward(params, x, &mut z));
        let i = time(|| map.backward_input(&mut dx, params, dz));
        grads.iter_mut().for_each(Tensor::fill_zero);
        let p = time(|| map.backward_params(&mut grads, x, dz));
        if rep > 0 {
            tf.push(f);
            ti.push(i);
            tp.push(p);
        }
    }
    let index = map.index_bytes();
    let nnz = map.tied().map_or(0, |t| t.nnz());
    let outputs = Outputs {
        z: z.as_slice().to_vec(),
        dx: dx.as_slice().to_vec(),
        dtheta: grads.iter().flat_map(|t| t.data.iter().copied()).collect(),
    };
    ((compile, median(tf), median(ti), median(tp), index, nnz), outputs)
}

/// The CPU model (from `/proc/cpuinfo`), the number of cores and the kernels' instruction set
/// ([`crate::cpu::simd_level`], capped by `CNN_AS_MLP_SIMD`).
pub fn machine() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("unknown CPU".to_string(), |(_, m)| m.trim().to_string());
    let cores = info.lines().filter(|l| l.starts_with("processor")).count();
    let cores = if cores > 0 { cores } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
    let kernels = match crate::cpu::simd_level() {
        crate::cpu::Simd::Avx512 => "AVX-512",
        crate::cpu::Simd::Avx2 => "AVX2",
        crate::cpu::Simd::Portable => "portable",
    };
    format!("{model}, {cores} cores, {kernels} kernels")
}

/// Half of `MemAvailable` from `/proc/meminfo` ([`crate::budget`]'s reader), or 8 GiB if it cannot be read.
pub fn default_memory_limit() -> usize {
    crate::budget::mem_available().map_or(8 << 30, |b| usize::try_from(b / 2).unwrap_or(usize::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::select;

    /// Exactly `round(s·n)` entries removed, the same ones for the same seed, others for another seed.
    #[test]
    fn random_masks_remove_the_requested_fraction() {
        for (n, s, removed) in [(1000, 0.0, 0), (1000, 0.5, 500), (1000, 0.99, 990), (7, 0.5, 4), (150, 0.9, 135)] {
            let m = random_mask(n, s, 5);
            assert_eq!(m.len(), n);
            assert_eq!(m.iter().filter(|&&k| !k).count(), removed, "n={n} s={s}");
            assert_eq!(m, random_mask(n, s, 5));
        }
        assert_ne!(random_mask(1000, 0.5, 5), random_mask(1000, 0.5, 6));
    }

    /// Small layers: every formulation runs and agrees with the direct reference.
    #[test]
    fn formulations_agree() {
        let cfg = Config { batch: 3, repeats: 1, memory_limit: usize::MAX, seed: 1, sparsity: vec![0.0, 0.5] };
        for c in select("lenet-pool2, 3x7x7 > conv(4,3,stride=2,pad=1,dil=2)").unwrap() {
            let rows = run_case(&c, &cfg, |_| {});
            let levels = if c.name.contains("pool") { vec![0.0] } else { cfg.sparsity.clone() };
            assert_eq!(rows.len(), 3 * levels.len());
            for (chunk, s) in rows.chunks(3).zip(levels) {
                assert_eq!(chunk.iter().map(|r| r.engine).collect::<Vec<_>>(), Engine::ALL.to_vec());
                assert!(chunk.iter().all(|r| r.sparsity == s));
            }
            for r in rows.iter().filter(|r| r.status == Status::Ran) {
                for d in [r.diff_forward, r.diff_input_grad, r.diff_param_grad].into_iter().flatten() {
                    assert!(d < 1e-5, "{}: {:?}", c.name, r);
                }
            }
        }
    }
}
