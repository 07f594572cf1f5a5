//! Determinism: the same seed gives the same bits whatever the number of threads.

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network, Params};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::Spec;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Several SGD steps of `spec` in f32 from seed 1 on seeded random batches of 70 (three shards), inside a
/// rayon pool of `threads`.
fn train_steps(spec: &str, loss: Loss, threads: usize, steps: usize) -> (Params<f32>, Vec<f32>) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let spec = Spec::parse(spec).unwrap();
        let mut net = Network::<f32>::new(&spec, Engine::Sparse);
        init_params(&mut net, Init::TorchDefault, 1);
        let mut sgd = Sgd::new(0.05, 0.9, 1e-4, DecayMode::Expanded);
        let mut rng = StdRng::seed_from_u64(2);
        let mut losses = Vec::new();
        for _ in 0..steps {
            let x = DMatrix::<f32>::from_fn(70, spec.input.len(), |_, _| rng.random_range(0.0..1.0));
            let y: Vec<usize> = (0..70).map(|_| rng.random_range(0..10)).collect();
            let mut grads = net.zero_grads();
            losses.push(net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), loss));
            sgd.step(&mut net, &grads);
        }
        (net.params, losses)
    })
}

fn bits(p: &Params<f32>) -> Vec<u32> {
    p.iter().flatten().flat_map(|t| t.data.iter().map(|v| v.to_bits())).collect()
}

/// Checks proofs/T7 (part 2a: the same operations in the same order give the same trajectory) and proofs/T9
/// (part 2: the shards' gradients are added in an order fixed by the batch size): five SGD steps of `lenet5`
/// on batches of three shards under 1-, 2- and 3-thread pools give bitwise equal parameters and losses.
#[test]
fn lenet5_sgd_is_bit_identical_across_thread_counts() {
    let (p1, l1) = train_steps("lenet5", Loss::CrossEntropy, 1, 5);
    for threads in [2, 3] {
        let (p, l) = train_steps("lenet5", Loss::CrossEntropy, threads, 5);
        assert_eq!(
            l.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            l1.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert!(bits(&p) == bits(&p1), "{threads} threads: parameters differ from 1 thread");
    }
    assert!(l1[4] != l1[0], "training moved");
}

/// The same for `seed` and for a network with local, avgpool and padding modes.
#[test]
fn other_layers_are_bit_identical_across_thread_counts() {
    for (spec, loss) in [
        ("seed", Loss::HalfSquared),
        (
            "1x28x28 > conv(4,3,stride=2,pad=1,mode=reflect) > tanh > local(4,3) > relu > avgpool(3,stride=2) > dense(10)",
            Loss::CrossEntropy,
        ),
    ] {
        let (p1, _) = train_steps(spec, loss, 1, 3);
        let (p2, _) = train_steps(spec, loss, 2, 3);
        assert!(bits(&p1) == bits(&p2), "{spec}: parameters differ between 1 and 2 threads");
    }
}
