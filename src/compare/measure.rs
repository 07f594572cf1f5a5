//! The measurement of `compare`: the timing harness (median over repeats after a warm-up), the agreement
//! check against the direct engine, the memory a formulation needs, and the machine read from /proc.

use std::time::Instant;

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::grid::Case;
use super::row::{Config, Row, Status};
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
///
/// The formulations are timed in interleaved rounds, not one after another: every formulation at every
/// sparsity is built first, then each round times each of them once (forward, input gradient, parameter
/// gradient; a short one right after an untimed run of the same, so that it meets warm caches), and each
/// reported time is the median over the rounds after the first (the warm-up). A
/// shared host's slow spells then fall on every formulation and sparsity alike, so the ratios between rows
/// (the speed-up of a sparsity over 0, one engine against another) hold even when the absolute times drift.
/// Formulations are built while the sum of their memory (`subject_bytes`) stays under the memory limit;
/// past it, the ones built so far are timed and dropped first.
pub fn run_case(case: &Case, cfg: &Config, progress: impl FnMut(&str)) -> Vec<Row> {
    run_case_only(case, cfg, |_, _| true, true, progress)
}

/// Bytes of the activations [`run_case`] holds for `case` at this batch with `levels` sparsity levels (the
/// zero-work floor counts as one), before
/// any formulation is built: each level's input and output gradient, and the outputs and input gradients of
/// up to three formulations timed together and of the reference (`4·B·(in + out)·(2·levels + 8)`). A case
/// above what the process may use is refused by the command before anything is allocated.
pub fn activation_bytes(case: &Case, batch: usize, levels: usize) -> u128 {
    let per_sample = (case.input.len() + case.output().len()) as u128;
    4 * batch as u128 * per_sample * (2 * levels as u128 + 8)
}

/// [`run_case`] restricted to the (sparsity, engine) pairs `keep` accepts: the others are neither built nor
/// timed, and their rows are left out (the crossover map times the dense engines at sparsity 0 only, as a
/// masked kernel costs them the same time). With `floor`, each pruned sparse row gets its zero-work floor
/// (`Row::floor_s`), timed in the same rounds.
pub fn run_case_only(
    case: &Case,
    cfg: &Config,
    keep: impl Fn(f64, Engine) -> bool,
    floor: bool,
    mut progress: impl FnMut(&str),
) -> Vec<Row> {
    let no_params =
        build_map::<f32>(&case.layer, case.input, Engine::Direct).expect("a linear layer").param_shapes().is_empty();
    let levels: Vec<f64> = if no_params { vec![0.0] } else { cfg.sparsity.clone() };
    let mut levels: Vec<Level> = levels
        .iter()
        .enumerate()
        .map(|(i, &s)| Level::new(case, cfg, s, cfg.seed.wrapping_add(1 + i as u64)))
        .collect();
    // A pruned sparse row is timed beside its zero-work floor: the layer with a mask that keeps nothing.
    let floor = floor && !no_params && levels.iter().any(|l| l.s > 0.0 && keep(l.s, Engine::Sparse));
    if floor {
        levels.push(Level::floor(case, cfg));
    }
    let mut rows: Vec<Row> = Vec::new();
    let mut built: Vec<Subject> = Vec::new();
    let mut built_bytes = 0usize;
    // The direct engine's results at each level: the reference the others are compared with.
    let mut refs: Vec<Option<Outputs>> = levels.iter().map(|_| None).collect();
    for (li, level) in levels.iter().enumerate() {
        // The level's rows in report order (sparse, direct, im2col); each engine fills its own.
        let first_row = rows.len();
        rows.extend(Engine::ALL.map(|e| level.row(case, e)));
        // Direct first: it is the reference the others are compared with.
        for engine in [Engine::Direct, Engine::Sparse, Engine::Im2col] {
            let r = first_row + Engine::ALL.iter().position(|&e| e == engine).expect("every engine");
            let row = &mut rows[r];
            if !keep(level.s, engine) || (level.is_floor() && engine != Engine::Sparse) {
                continue;
            }
            match engine {
                Engine::Sparse if row.estimated_bytes.is_some_and(|e| e > cfg.memory_limit) => {
                    row.status = Status::DoesNotFit(row.estimated_bytes.unwrap_or(0))
                }
                Engine::Im2col if !case.has_im2col() => {
                    row.status = Status::NotApplicable("no im2col lowering for this layer kind")
                }
                Engine::Im2col if im2col_bytes(case, cfg.batch) > cfg.memory_limit => {
                    row.status = Status::DoesNotFit(im2col_bytes(case, cfg.batch))
                }
                _ => {
                    let need = subject_bytes(case, cfg.batch, engine);
                    if !built.is_empty() && built_bytes.saturating_add(need) > cfg.memory_limit {
                        time_rounds(case, &mut built, cfg, &levels, &mut refs, &mut rows, &mut progress);
                        built_bytes = 0;
                    }
                    progress(&format!("{} on {}", level.label(case), engine.name()));
                    built.push(Subject::build(case, level, li, engine, r));
                    built_bytes = built_bytes.saturating_add(need);
                }
            }
        }
    }
    time_rounds(case, &mut built, cfg, &levels, &mut refs, &mut rows, &mut progress);
    if floor {
        let floor_rows = rows.split_off(rows.len() - Engine::ALL.len());
        let floor_s = floor_rows.iter().find(|r| r.engine == Engine::Sparse).and_then(Row::total_s);
        rows.iter_mut().filter(|r| r.engine == Engine::Sparse && r.sparsity > 0.0).for_each(|r| r.floor_s = floor_s);
    }
    rows.retain(|r| keep(r.sparsity, r.engine));
    rows
}

/// The memory one built formulation holds while it waits for its rounds: its index (sparse: the estimate
/// of the compiled matrix; im2col: its scratch) and its output, input-gradient and gradient buffers.
fn subject_bytes(case: &Case, batch: usize, engine: Engine) -> usize {
    let buffers = 4 * batch * (case.input.len() + case.output().len());
    let index = match engine {
        Engine::Sparse => case.estimate_index_bytes(),
        Engine::Im2col => im2col_bytes(case, batch),
        Engine::Direct => 0,
    };
    index.saturating_add(buffers)
}

/// One sparsity of one layer: the random batch, output gradient and parameters every formulation shares
/// (the kernel masked at sparsity `s`, seeded by `mask_seed`: the sparse formulation compiles only the kept
/// taps, direct and im2col multiply by the masked kernel).
struct Level {
    s: f64,
    x: DMatrix<f32>,
    dz: DMatrix<f32>,
    params: Vec<Tensor<f32>>,
    mask: Option<Vec<bool>>,
}

impl Level {
    fn new(case: &Case, cfg: &Config, s: f64, mask_seed: u64) -> Level {
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
        // At sparsity 0 every formulation runs unmasked, as without `--sparsity`.
        let mask = params.first().filter(|_| s > 0.0).map(|w| random_mask(w.len(), s, mask_seed));
        if let (Some(m), Some(w)) = (&mask, params.first_mut()) {
            w.data.iter_mut().zip(m).filter(|(_, k)| !**k).for_each(|(v, _)| *v = 0.0);
        }
        Level { s, x, dz, params, mask }
    }

    /// The zero-work floor of `case`: the level of [`Level::new`] at sparsity 0 with a kernel that is all
    /// zeros and a mask that keeps nothing (marked by sparsity 1, which no `--sparsity` level can be).
    fn floor(case: &Case, cfg: &Config) -> Level {
        let mut level = Level::new(case, cfg, 0.0, 0);
        if let Some(w) = level.params.first_mut() {
            w.data.fill(0.0);
            level.mask = Some(vec![false; w.len()]);
        }
        level.s = 1.0;
        level
    }

    fn is_floor(&self) -> bool {
        self.s == 1.0
    }

    fn has_params(&self) -> bool {
        !self.params.is_empty()
    }

    fn label(&self, case: &Case) -> String {
        match self.s {
            _ if self.is_floor() => format!("{} with nothing kept (the zero-work floor)", case.name),
            s if s > 0.0 => format!("{} at sparsity {s}", case.name),
            _ => case.name.clone(),
        }
    }

    /// `engine`'s row at this sparsity, before anything is measured.
    fn row(&self, case: &Case, engine: Engine) -> Row {
        let nnz = case.nnz_bound();
        Row {
            sparsity: self.s,
            estimated_bytes: (engine == Engine::Sparse).then(|| case.estimate_index_bytes()),
            param_bytes: 4 * self.params.iter().map(Tensor::len).sum::<usize>(),
            nnz,
            flops: 2.0 * nnz as f64 * self.x.nrows() as f64,
            ..Row::new(case.name.clone(), case.spec(), engine)
        }
    }
}

/// One formulation of one layer at one sparsity, built, with its buffers and the times of its rounds.
struct Subject {
    /// Its level in `run_case`'s list, and its row.
    level: usize,
    row: usize,
    engine: Engine,
    map: Box<dyn LinearMap<f32>>,
    compile_s: f64,
    z: DMatrix<f32>,
    dx: DMatrix<f32>,
    grads: Vec<Tensor<f32>>,
    /// Forward, input gradient and parameter gradient, one per round after the warm-up.
    times: [Vec<f64>; 3],
    /// Its warm-up round took less than [`SHORT_ROUND_S`]: each later round runs it once untimed first.
    short: bool,
}

/// A round (three products) shorter than this is preceded by an untimed one in each round (see
/// `time_rounds`).
const SHORT_ROUND_S: f64 = 0.1;

impl Subject {
    /// Builds `engine`'s map of the layer (timed: the compile time) with the level's mask.
    fn build(case: &Case, level: &Level, li: usize, engine: Engine, row: usize) -> Subject {
        let t0 = Instant::now();
        let map: Box<dyn LinearMap<f32>> = match &level.mask {
            Some(keep) => build_pruned_map(&case.layer, case.input, engine, keep),
            None => build_map(&case.layer, case.input, engine),
        }
        .expect("a linear layer");
        let compile_s = t0.elapsed().as_secs_f64();
        let (out, inp) = map.dims();
        let b = level.x.nrows();
        Subject {
            level: li,
            row,
            engine,
            compile_s,
            z: DMatrix::<f32>::zeros(b, out),
            dx: DMatrix::<f32>::zeros(b, inp),
            grads: level.params.iter().map(|p| Tensor::zeros(&p.shape)).collect(),
            map,
            times: [Vec::new(), Vec::new(), Vec::new()],
            short: false,
        }
    }

    /// One round: the three products once each, timed.
    fn round(&mut self, level: &Level) -> [f64; 3] {
        let f = time(|| self.map.forward(&level.params, &level.x, &mut self.z));
        let i = time(|| self.map.backward_input(&mut self.dx, &level.params, &level.dz));
        self.grads.iter_mut().for_each(Tensor::fill_zero);
        let p = time(|| self.map.backward_params(&mut self.grads, &level.x, &level.dz));
        [f, i, p]
    }

    /// The results of the last round.
    fn outputs(&self) -> Outputs {
        Outputs {
            z: self.z.as_slice().to_vec(),
            dx: self.dx.as_slice().to_vec(),
            dtheta: self.grads.iter().flat_map(|t| t.data.iter().copied()).collect(),
        }
    }
}

/// Times the built formulations in `cfg.repeats + 1` interleaved rounds (the first is the warm-up), writes
/// their medians, index bytes and differences from the direct engine into their rows, and drops them.
fn time_rounds(
    case: &Case,
    built: &mut Vec<Subject>,
    cfg: &Config,
    levels: &[Level],
    refs: &mut [Option<Outputs>],
    rows: &mut [Row],
    progress: &mut impl FnMut(&str),
) {
    if built.is_empty() {
        return;
    }
    progress(&format!("timing {} formulations in {} interleaved rounds", built.len(), cfg.repeats + 1));
    for rep in 0..=cfg.repeats {
        for b in built.iter_mut() {
            // A short formulation first runs its round once untimed, so that it is timed on warm caches, as
            // in a loop of repeats, not on the caches the formulation before it left (a long one hardly
            // depends on them, and is not run twice).
            if rep > 0 && b.short {
                b.round(&levels[b.level]);
            }
            let t = b.round(&levels[b.level]);
            if rep == 0 {
                b.short = t.iter().sum::<f64>() < SHORT_ROUND_S;
            } else {
                b.times.iter_mut().zip(t).for_each(|(v, t)| v.push(t));
            }
        }
    }
    // Direct first within each level (it was built first), so that its outputs are the reference when the
    // others are compared.
    for b in built.drain(..) {
        let level = &levels[b.level];
        let outputs = b.outputs();
        let row = &mut rows[b.row];
        let [tf, ti, tp] = b.times;
        row.compile_s = Some(b.compile_s);
        row.forward_s = Some(median(tf));
        row.input_grad_s = Some(median(ti));
        row.param_grad_s = level.has_params().then(|| median(tp));
        row.index_bytes = match b.engine {
            Engine::Sparse => b.map.index_bytes(),
            Engine::Im2col => im2col_bytes(case, level.x.nrows()),
            Engine::Direct => 0,
        };
        if b.engine == Engine::Sparse {
            let batch = level.x.nrows();
            row.layout =
                Some(b.map.tied().map_or("samples", |t| crate::tied::products::layout::<f32>(t, batch)).into());
            row.nnz = b.map.tied().map_or(0, |t| t.nnz());
            row.flops = 2.0 * row.nnz as f64 * level.x.nrows() as f64;
        }
        match (&refs[b.level], b.engine) {
            (_, Engine::Direct) => {
                row.diff_forward = Some(0.0);
                row.diff_input_grad = Some(0.0);
                row.diff_param_grad = level.has_params().then_some(0.0);
                refs[b.level] = Some(outputs);
            }
            (Some(o), _) => {
                row.diff_forward = Some(max_abs_diff(&outputs.z, &o.z));
                row.diff_input_grad = Some(max_abs_diff(&outputs.dx, &o.dx));
                row.diff_param_grad = level.has_params().then(|| max_abs_diff(&outputs.dtheta, &o.dtheta));
            }
            (None, _) => {}
        }
    }
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

/// Half of `MemAvailable` from `/proc/meminfo` (8 GiB if it cannot be read), never more than what the
/// process may use at all ([`crate::system::available`]: the address-space limit of `ulimit -v` and the
/// memory-limit variable count too).
pub fn default_memory_limit() -> usize {
    let half = crate::system::mem_available().map_or(8u128 << 30, |b| b / 2);
    usize::try_from(half.min(crate::system::available().bytes)).unwrap_or(usize::MAX)
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

    /// The floor does no work: its sparse layer compiles no nonzero, its forward writes the bias alone, its
    /// input gradient is zero and its kernel gradient too (the bias gradient is the sum of `δz`).
    #[test]
    fn the_floor_keeps_nothing() {
        let case = select("3x7x7 > conv(4,3,pad=1)").unwrap().remove(0);
        let cfg = Config { batch: 2, repeats: 1, memory_limit: usize::MAX, seed: 3, sparsity: vec![0.0, 0.9] };
        let level = Level::floor(&case, &cfg);
        assert!(level.is_floor() && level.params[0].data.iter().all(|&w| w == 0.0));
        let mut sub = Subject::build(&case, &level, 0, Engine::Sparse, 0);
        assert_eq!(sub.map.tied().map(|t| t.nnz()), Some(0));
        sub.round(&level);
        let bias = &level.params[1].data;
        assert!(bias.iter().any(|&b| b != 0.0));
        let hw = 7 * 7;
        for b in 0..2 {
            for (j, &z) in sub.z.row(b).iter().enumerate() {
                assert_eq!(z, bias[j / hw], "sample {b} output {j}");
            }
        }
        assert!(sub.dx.iter().all(|&v| v == 0.0));
        assert!(sub.grads[0].data.iter().all(|&v| v == 0.0));
        let db0: f32 = (0..2).map(|b| (0..hw).map(|p| level.dz[(b, p)]).sum::<f32>()).sum();
        assert!((sub.grads[1].data[0] - db0).abs() < 1e-4, "{} {db0}", sub.grads[1].data[0]);
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
            // The pruned sparse rows carry their zero-work floor; no other row does, and the floor is no row.
            for r in &rows {
                let pruned = r.engine == Engine::Sparse && r.sparsity > 0.0;
                assert_eq!(r.floor_s.is_some(), pruned, "{}: {:?}", c.name, r);
            }
            for r in rows.iter().filter(|r| r.status == Status::Ran) {
                for d in [r.diff_forward, r.diff_input_grad, r.diff_param_grad].into_iter().flatten() {
                    assert!(d < 1e-5, "{}: {:?}", c.name, r);
                }
            }
        }
    }

    /// Every formulation at every sparsity is built before any is timed, and all are timed in one set of
    /// interleaved rounds when the memory limit holds them all; under a limit that holds only a few at a time,
    /// they are timed a few at a time, each once, and the rows (times, differences, bytes) come out the same.
    #[test]
    fn formulations_are_timed_together_within_the_memory_limit() {
        let case = select("8x6x6 > conv(4,3,pad=1)").unwrap().remove(0);
        let run = |limit: usize| {
            let cfg = Config { batch: 4, repeats: 2, memory_limit: limit, seed: 1, sparsity: vec![0.0, 0.5] };
            let mut log = Vec::new();
            let rows = run_case(&case, &cfg, |m| log.push(m.to_string()));
            (rows, log)
        };
        let (rows, log) = run(usize::MAX);
        let timing: Vec<usize> = (0..log.len()).filter(|&i| log[i].starts_with("timing")).collect();
        // Three engines at two sparsities and the floor of the pruned one.
        assert_eq!(timing, [7], "seven builds, then one set of rounds: {log:?}");
        assert!(log[7].contains("7 formulations") && log[7].contains("3 interleaved rounds"), "{log:?}");
        // The largest formulation's buffers and index: the rounds are cut into several sets.
        let one = subject_bytes(&case, 4, Engine::Im2col).max(subject_bytes(&case, 4, Engine::Sparse));
        let (alone, log_alone) = run(one);
        let sets: Vec<usize> =
            log_alone.iter().filter_map(|m| m.strip_prefix("timing ")?.split_once(' ')?.0.parse().ok()).collect();
        assert!(sets.len() >= 3 && sets.iter().sum::<usize>() == 7, "each formulation timed once: {log_alone:?}");
        assert_eq!(rows.len(), 6);
        for (a, b) in rows.iter().zip(&alone) {
            assert_eq!((a.engine, a.sparsity, a.status.clone()), (b.engine, b.sparsity, b.status.clone()));
            assert_eq!(a.status, Status::Ran, "{a:?}");
            assert!(a.forward_s.is_some() && a.input_grad_s.is_some() && a.param_grad_s.is_some(), "{a:?}");
            assert_eq!(
                (a.diff_forward, a.diff_input_grad, a.diff_param_grad),
                (b.diff_forward, b.diff_input_grad, b.diff_param_grad)
            );
            assert_eq!((a.index_bytes, a.nnz), (b.index_bytes, b.nnz));
        }
        // Sparse, direct, im2col at each sparsity; the sparse rows compiled fewer nonzeros at 0.5.
        assert_eq!(
            rows.iter().map(|r| r.engine).collect::<Vec<_>>(),
            [Engine::ALL.to_vec(), Engine::ALL.to_vec()].concat()
        );
        assert!(rows[3].nnz < rows[0].nnz, "{:?} {:?}", rows[0], rows[3]);
        assert!(rows[4].diff_forward == Some(0.0) && rows[3].diff_forward.is_some_and(|d| d < 1e-5));
    }
}
