//! Times each phase of a LeNet-5 training step on the sparse engine, layer by layer, for one batch of BATCH
//! samples (64 unless given) run as one piece: forward, parameter gradient, input gradient, activations, loss,
//! SGD. Reports the minimum over the steps of each phase (robust to other load on the machine) and the sum of
//! those minima. The loop mirrors one shard of `Network::loss_and_grad` and `Sgd::step`: the network runs a
//! batch of 64 as two shards of 32 in parallel tasks, so `step_phases 1000 1 32` times what each task does.
//! Run: `cargo run --release --example step_phases -- [STEPS] [THREADS] [BATCH]`; `MODEL=SPEC|PRESET` times
//! another network (e.g. `MODEL=cifar`) instead of LeNet-5.

#[path = "common/env.rs"]
mod env;

use std::time::Instant;

use cnn_as_mlp::activation;
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets, loss_and_delta};
use cnn_as_mlp::network::{Engine, Network, build_map};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::{Layer, Spec};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    env::apply();
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let steps = args.first().copied().unwrap_or(200);
    let threads = args.get(1).copied().unwrap_or(1);
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let model = std::env::var("MODEL").unwrap_or_else(|_| "lenet5".into());
    let spec = Spec::parse(&model).unwrap_or_else(|e| {
        eprintln!("error: MODEL={model:?}: {e}");
        std::process::exit(2)
    });
    let batch = args.get(2).copied().unwrap_or(64);
    let mut rng = StdRng::seed_from_u64(1);
    let x = DMatrix::<f32>::from_fn(batch, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
    let y: Vec<usize> = (0..batch).map(|_| rng.random_range(0..10)).collect();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 0);
    let shapes = net.activation_shapes().to_vec();
    let mut maps: Vec<_> =
        spec.layers.iter().zip(&shapes).map(|(l, s)| build_map::<f32>(l, *s, Engine::Sparse)).collect();
    let names: Vec<String> = spec.layers.iter().map(|l| format!("{l}")).collect();
    let n = spec.layers.len();
    let mut acts: Vec<DMatrix<f32>> = shapes.iter().map(|s| DMatrix::zeros(batch, s.len())).collect();
    let mut deltas = acts.clone();
    let mut grads = net.zero_grads();
    let mut sgd = Sgd::new(0.01, 0.9, 1e-4, DecayMode::PerParameter);
    // Phase minima, by name, in first-seen order.
    let mut phases: Vec<(String, f64)> = Vec::new();
    let mut record = |name: String, t: Instant| {
        let s = t.elapsed().as_secs_f64();
        match phases.iter_mut().find(|(n, _)| *n == name) {
            Some((_, m)) => *m = m.min(s),
            None => phases.push((name, s)),
        }
    };
    let mut whole = f64::INFINITY;
    pool.install(|| {
        for _ in 0..steps {
            let t0 = Instant::now();
            let t = Instant::now();
            grads.iter_mut().flatten().for_each(|t| t.fill_zero());
            acts[0].copy_from(&x);
            record("zero grads, copy x".into(), t);
            for i in 0..n {
                let t = Instant::now();
                let (before, after) = acts.split_at_mut(i + 1);
                let after_map = i > 0 && maps[i - 1].is_some();
                match (&mut maps[i], spec.layers[i]) {
                    (Some(m), _) => m.forward(&net.params[i], &before[i], &mut after[0]),
                    (None, Layer::Act(f)) if after_map => {
                        activation::forward_in_place(f, &mut before[i]);
                        std::mem::swap(&mut before[i], &mut after[0]);
                    }
                    (None, Layer::Act(f)) => activation::forward(f, &mut after[0], &before[i]),
                    _ => unreachable!(),
                }
                record(format!("fwd {i} {}", names[i]), t);
            }
            let t = Instant::now();
            let mut d = DMatrix::zeros(batch, 10);
            loss_and_delta(Loss::CrossEntropy, &acts[n], Targets::Labels(&y), &mut d);
            deltas[n].copy_from(&d);
            record("loss".into(), t);
            for i in (0..n).rev() {
                let (before, after) = deltas.split_at_mut(i + 1);
                match (&mut maps[i], spec.layers[i]) {
                    (Some(m), _) => {
                        let t = Instant::now();
                        m.backward_params(&mut grads[i], &acts[i], &after[0]);
                        record(format!("grad {i} {}", names[i]), t);
                        if i > 0 {
                            let t = Instant::now();
                            m.backward_input(&mut before[i], &net.params[i], &after[0]);
                            record(format!("dx {i} {}", names[i]), t);
                        }
                    }
                    (None, Layer::Act(f)) => {
                        let t = Instant::now();
                        activation::backward_in_place(f, &mut after[0], &acts[i + 1]);
                        std::mem::swap(&mut before[i], &mut after[0]);
                        record(format!("bwd {i} {}", names[i]), t);
                    }
                    _ => unreachable!(),
                }
            }
            let t = Instant::now();
            sgd.step(&mut net, &grads);
            record("sgd".into(), t);
            whole = whole.min(t0.elapsed().as_secs_f64());
        }
    });
    let total: f64 = phases.iter().map(|(_, s)| s).sum();
    for (name, s) in &phases {
        println!("{:>9.1} us {:>5.1}%  {name}", s * 1e6, 100.0 * s / total);
    }
    println!("{:>9.1} us         sum of minima ({threads} threads)", total * 1e6);
    println!("{:>9.1} us         fastest whole step", whole * 1e6);
}
