//! `compare --model`: one whole network on each engine.
//!
//! Every layer whose formulation differs between the engines (convolutions, local layers, pools) is
//! measured on its own, as a grid case ([`network_cases`], then [`super::run_case`]), at the shape it has in
//! the network. Then [`run_network`] builds the whole network once per engine and reports one `total` row
//! each: the time to build every layer (for the sparse engine, to compile every matrix), the index bytes of
//! all layers, one full training step (forward, cross-entropy, backward, an SGD step with momentum; median
//! over the repeats after one warm-up), the peak resident memory of that engine's run, and the largest
//! absolute difference of its first parameter gradient from the direct engine's on the same batch and the
//! same parameters.
//!
//! A network whose estimate ([`crate::budget::estimate`]) exceeds the memory limit on an engine is reported
//! as not fitting and never built on it.

use std::time::Instant;

use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::grid::Case;
use super::measure::{max_abs_diff, median};
use super::row::{Config, Row, Status};
use crate::budget::{self, Use};
use crate::init::{Init, init_params};
use crate::loss::{Loss, Targets};
use crate::network::{Engine, Network, Params};
use crate::optim::{DecayMode, Sgd};
use crate::spec::{Layer, Spec};

/// The layer name used in reports: the layer's index in the spec and its kind, e.g. `3.maxpool`.
pub fn layer_name(index: usize, layer: &Layer) -> String {
    let text = layer.to_string();
    let kind = text.split('(').next().unwrap_or(&text);
    format!("{index}.{kind}")
}

/// The layers of `spec` that the engines compute differently (conv, local, maxpool, avgpool), each as a
/// grid case with its input shape in the network. `spec` must have passed [`Spec::output_shapes`].
pub fn network_cases(spec: &Spec) -> Vec<Case> {
    let shapes = spec.output_shapes().expect("network_cases: a checked spec");
    let mut input = spec.input;
    let mut cases = Vec::new();
    for (i, (layer, &output)) in spec.layers.iter().zip(&shapes).enumerate() {
        if matches!(layer, Layer::Conv { .. } | Layer::Local { .. } | Layer::MaxPool { .. } | Layer::AvgPool { .. }) {
            cases.push(Case { name: layer_name(i, layer), input, layer: *layer });
        }
        input = output;
    }
    cases
}

/// Peak resident memory of this process since the last [`reset_peak_resident`], in bytes (`VmHWM` of
/// `/proc/self/status`), or `None` where it cannot be read.
pub fn peak_resident() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: usize = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Resets the peak resident memory to the current resident memory (writes `5` to `/proc/self/clear_refs`;
/// Linux ≥ 4.0). Returns whether it could.
pub fn reset_peak_resident() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Parameters and gradients flattened in layer order.
fn flat(p: &Params<f32>) -> Vec<f32> {
    p.iter().flatten().flat_map(|t| t.data.iter().copied()).collect()
}

/// One `total` row per engine (sparse, direct, im2col): the whole network built, one full training step
/// timed, its peak memory and its gradient's largest difference from the direct engine's. The batch is
/// `cfg.batch` random images in `[0, 1)` with random labels, the parameters PyTorch's default
/// initialisation seeded with `cfg.seed`, the same on every engine. Call inside the rayon pool whose
/// threads are to be measured. `spec` must have passed [`Spec::output_shapes`].
pub fn run_network(spec: &Spec, cfg: &Config, mut progress: impl FnMut(&str)) -> Vec<Row> {
    let b = cfg.batch;
    let classes = spec.output().expect("run_network: a checked spec").len();
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let x = DMatrix::<f32>::from_fn(b, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
    let labels: Vec<usize> = (0..b).map(|_| rng.random_range(0..classes)).collect();
    let mut direct_grad: Option<Vec<f32>> = None;
    let mut rows = Vec::new();
    for engine in [Engine::Direct, Engine::Sparse, Engine::Im2col] {
        // The whole network runs unmasked (sparsity 0).
        let mut row = Row::new("total", spec.to_string(), engine);
        let need = budget::estimate(spec, engine, Use::grad(b)).map(|n| n.total);
        match need {
            Err(_) => row.status = Status::NotApplicable("a layer overflows 32-bit indices"),
            Ok(n) if n > cfg.memory_limit as u128 => {
                row.status = Status::DoesNotFit(n.min(usize::MAX as u128) as usize)
            }
            Ok(n) => {
                row.estimated_bytes = Some(n.min(usize::MAX as u128) as usize);
                progress(&format!("whole network on {}", engine.name()));
                let m = measure_network(spec, cfg, engine, &x, &labels);
                row.compile_s = Some(m.build_s);
                row.step_s = Some(m.step_s);
                let cases = network_cases(spec);
                row.index_bytes = match engine {
                    Engine::Im2col => cases.iter().map(|c| super::measure::im2col_bytes(c, b)).sum(),
                    _ => m.index_bytes,
                };
                row.param_bytes = 4 * m.n_params;
                row.nnz = if engine == Engine::Sparse { m.nnz } else { cases.iter().map(Case::nnz_bound).sum() };
                row.peak_bytes = m.peak_bytes;
                match &direct_grad {
                    None => {
                        row.diff_param_grad = Some(0.0);
                        direct_grad = Some(m.grad);
                    }
                    Some(d) => row.diff_param_grad = Some(max_abs_diff(&m.grad, d)),
                }
            }
        }
        rows.push(row);
    }
    // Report order: sparse, direct, im2col.
    rows.swap(0, 1);
    rows
}

/// What one engine's run of the whole network measured.
struct NetworkRun {
    build_s: f64,
    step_s: f64,
    index_bytes: usize,
    nnz: usize,
    n_params: usize,
    peak_bytes: Option<usize>,
    /// The gradient of the first step (before any update), flattened.
    grad: Vec<f32>,
}

fn measure_network(spec: &Spec, cfg: &Config, engine: Engine, x: &DMatrix<f32>, labels: &[usize]) -> NetworkRun {
    let reset = reset_peak_resident();
    let t0 = Instant::now();
    let mut net = Network::<f32>::new(spec, engine);
    let build_s = t0.elapsed().as_secs_f64();
    init_params(&mut net, Init::TorchDefault, cfg.seed);
    let maps = (0..spec.layers.len()).filter_map(|i| net.linear_map(i));
    let (index_bytes, nnz) =
        maps.fold((0, 0), |(bytes, nnz), m| (bytes + m.index_bytes(), nnz + m.tied().map_or(0, |t| t.nnz())));
    let n_params = net.n_params();
    let mut grads = net.zero_grads();
    net.loss_and_grad(&mut grads, x, Targets::Labels(labels), Loss::CrossEntropy);
    let grad = flat(&grads);
    // One training step: the gradient of the batch, then SGD with momentum (the presets' optimiser).
    let mut sgd = Sgd::new(0.01, 0.9, 1e-4, DecayMode::PerParameter);
    let mut times = Vec::new();
    for rep in 0..=cfg.repeats {
        let t = Instant::now();
        grads.iter_mut().flatten().for_each(|g| g.fill_zero());
        net.loss_and_grad(&mut grads, x, Targets::Labels(labels), Loss::CrossEntropy);
        sgd.step(&mut net, &grads);
        if rep > 0 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let peak_bytes = if reset { peak_resident() } else { None };
    NetworkRun { build_s, step_s: median(times), index_bytes, nnz, n_params, peak_bytes, grad }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_the_layers_engines_compute_differently_at_their_shapes() {
        let spec = Spec::parse("lenet5").unwrap();
        let cases = network_cases(&spec);
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["0.conv", "2.maxpool", "3.conv", "5.maxpool"]);
        assert_eq!(cases[2].input, crate::spec::Shape { c: 6, h: 14, w: 14 });
        assert_eq!(cases[3].output(), crate::spec::Shape { c: 16, h: 5, w: 5 });
    }

    /// The three engines build the same network with the same parameters: their first gradients agree to
    /// rounding, the sparse engine reports its index and nonzeros, and a step is timed on each.
    #[test]
    fn engines_agree_on_a_whole_network() {
        let spec = Spec::parse("2x9x9 > conv(3,3,pad=1) > relu > avgpool(2) > conv(4,2) > relu > dense(5)").unwrap();
        let cfg = Config { batch: 5, repeats: 1, memory_limit: usize::MAX, seed: 4, sparsity: vec![0.0] };
        let rows = run_network(&spec, &cfg, |_| {});
        assert_eq!(rows.iter().map(|r| r.engine).collect::<Vec<_>>(), Engine::ALL.to_vec());
        for r in &rows {
            assert_eq!(r.status, Status::Ran, "{r:?}");
            assert!(r.step_s.unwrap() > 0.0 && r.compile_s.is_some());
            assert!(r.diff_param_grad.unwrap() < 1e-5, "{r:?}");
            assert_eq!(r.param_bytes, 4 * (3 * 2 * 9 + 3 + 4 * 3 * 4 + 4 + 5 * 4 * 3 * 3 + 5));
        }
        let sparse = &rows[0];
        assert!(sparse.index_bytes > 0 && sparse.nnz > 0, "{sparse:?}");
        assert_eq!(rows[1].index_bytes, 0, "direct has no index");
        // im2col keeps a column buffer and its gradient per convolution: 2 · 4 · B·P·Q bytes.
        assert_eq!(rows[2].index_bytes, 2 * 4 * 5 * (81 * 18 + 9 * 12));
        // A limit below the estimate: nothing is built.
        let tight = Config { memory_limit: 1, ..cfg };
        assert!(run_network(&spec, &tight, |_| {}).iter().all(|r| matches!(r.status, Status::DoesNotFit(_))));
    }
}
