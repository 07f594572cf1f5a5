//! How does one LeNet-5 training step (forward, loss, backward, SGD) at batch 64 scale from 1 to 2 threads,
//! on each engine (sparse, direct, im2col)? Throughput is in images per second. Run:
//! `cargo bench --bench scaling`.

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::Spec;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const BATCH: usize = 64;

fn lenet_step(c: &mut Criterion) {
    let spec = Spec::parse("lenet5").unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let x = DMatrix::<f32>::from_fn(BATCH, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
    let y: Vec<usize> = (0..BATCH).map(|_| rng.random_range(0..10)).collect();
    let mut group = c.benchmark_group("lenet5_train_step_b64");
    group.throughput(Throughput::Elements(BATCH as u64));
    for engine in Engine::ALL {
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut net = Network::<f32>::new(&spec, engine);
            init_params(&mut net, Init::TorchDefault, 0);
            let mut sgd = Sgd::new(0.01, 0.9, 1e-4, DecayMode::PerParameter);
            let mut grads = net.zero_grads();
            group.bench_function(format!("{}_threads{threads}", engine.name()), |b| {
                b.iter(|| {
                    pool.install(|| {
                        grads.iter_mut().flatten().for_each(|t| t.fill_zero());
                        net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy);
                        sgd.step(&mut net, &grads);
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = lenet_step
}
criterion_main!(benches);
