//! Runs LeNet-5 training steps on random data, for profiling (`perf record`, `valgrind --tool=callgrind`).
//! Run: `cargo run --release --example train_steps -- [STEPS] [THREADS] [sparse|direct|im2col]` (engine
//! `sparse` by default).

#[path = "common/env.rs"]
mod env;

use std::time::Instant;

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::Spec;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn main() {
    env::apply();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<usize> = raw.iter().filter_map(|a| a.parse().ok()).collect();
    let steps = args.first().copied().unwrap_or(50);
    let threads = args.get(1).copied().unwrap_or(1);
    let engine = match raw.iter().find(|a| a.parse::<usize>().is_err()) {
        None => Engine::Sparse,
        Some(name) => Engine::from_name(name).unwrap_or_else(|| {
            eprintln!("train_steps: unknown engine {name:?} (expected sparse, direct or im2col)");
            std::process::exit(2)
        }),
    };
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    let spec = Spec::parse("lenet5").unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let x = DMatrix::<f32>::from_fn(64, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
    let y: Vec<usize> = (0..64).map(|_| rng.random_range(0..10)).collect();
    let mut net = Network::<f32>::new(&spec, engine);
    init_params(&mut net, Init::TorchDefault, 0);
    let mut sgd = Sgd::new(0.01, 0.9, 1e-4, DecayMode::PerParameter);
    let mut grads = net.zero_grads();
    let t = Instant::now();
    pool.install(|| {
        for _ in 0..steps {
            grads.iter_mut().flatten().for_each(|t| t.fill_zero());
            net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy);
            sgd.step(&mut net, &grads);
        }
    });
    let s = t.elapsed().as_secs_f64();
    println!("{} engine, {steps} steps, {threads} threads: {:.0} img/s", engine.name(), (steps * 64) as f64 / s);
}
