//! Whole networks trained on the sparse engine and on the references follow the same trajectory.
//!
//! Same spec, same initial parameters (`init::init_params` with one seed), same batches (seeded random
//! images in [0, 1], labels 0..10), the same SGD (lr 0.05, momentum 0.9, weight decay 1e-4), in f64.
//! After every one of the steps the losses and, at the end, every parameter tensor agree to a relative
//! 1e-10 between `Engine::Sparse`, `Engine::Direct` and `Engine::Im2col`.

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::{Engine, Network, Params, Spec};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const STEPS: usize = 50;
const BATCH: usize = 8;
const CLASSES: usize = 10;
const INIT_SEED: u64 = 5;
const DATA_SEED: u64 = 6;
const LR: f64 = 0.05;
const MOMENTUM: f64 = 0.9;
const WEIGHT_DECAY: f64 = 1e-4;
/// Relative agreement of losses and parameters (largest difference over the largest magnitude).
const TRAJECTORY_REL_TOL: f64 = 1e-10;

/// `STEPS` batches of `BATCH` images (B, 1·28·28) in [0, 1] with labels in 0..10.
fn batches(features: usize) -> Vec<(DMatrix<f64>, Vec<usize>)> {
    let mut rng = StdRng::seed_from_u64(DATA_SEED);
    (0..STEPS)
        .map(|_| {
            let x = DMatrix::from_fn(BATCH, features, |_, _| rng.random::<f64>());
            let y = (0..BATCH).map(|_| rng.random_range(0..CLASSES)).collect();
            (x, y)
        })
        .collect()
}

/// Trains `spec` on `engine`: the loss at every step and the final parameters.
fn train(spec: &Spec, engine: Engine, loss: Loss, data: &[(DMatrix<f64>, Vec<usize>)]) -> (Vec<f64>, Params<f64>) {
    let mut net = Network::<f64>::new(spec, engine);
    init_params(&mut net, Init::TorchDefault, INIT_SEED);
    let mut sgd = Sgd::new(LR, MOMENTUM, WEIGHT_DECAY, DecayMode::PerParameter);
    let mut losses = Vec::with_capacity(data.len());
    for (x, labels) in data {
        let mut grads = net.zero_grads();
        losses.push(net.loss_and_grad(&mut grads, x, Targets::Labels(labels), loss));
        sgd.step(&mut net, &grads);
    }
    (losses, net.params)
}

/// `max |a − b| <= TRAJECTORY_REL_TOL · max |b|`, with the values named on failure; returns the ratio
/// `max |a − b| / max |b|`.
#[track_caller]
fn assert_rel_close(what: &str, a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f64::max);
    let scale = b.iter().map(|y| y.abs()).fold(0.0, f64::max);
    assert!(diff <= TRAJECTORY_REL_TOL * scale, "{what}: max difference {diff:e} over max magnitude {scale:e}");
    if scale > 0.0 { diff / scale } else { 0.0 }
}

/// Runs `preset` on the three engines and compares the trajectories with the sparse one.
fn check_trajectories(preset: &str, loss: Loss) {
    let spec = Spec::parse(preset).expect("preset parses");
    let data = batches(spec.input.len());
    let (losses, params) = train(&spec, Engine::Sparse, loss, &data);
    assert!(losses.iter().all(|l| l.is_finite()), "{preset}: sparse losses {losses:?}");
    let net = Network::<f64>::new(&spec, Engine::Sparse);
    for engine in [Engine::Direct, Engine::Im2col] {
        let (other_losses, other_params) = train(&spec, engine, loss, &data);
        let loss_rel =
            assert_rel_close(&format!("{preset}: losses, {} vs sparse", engine.name()), &other_losses, &losses);
        let mut param_rel: f64 = 0.0;
        let names = net.param_names();
        let mut names = names.iter();
        for (layer, (a, b)) in other_params.iter().zip(&params).enumerate() {
            assert_eq!(a.len(), b.len(), "{preset}: layer {layer} tensors");
            for (ta, tb) in a.iter().zip(b) {
                let (name, _) = names.next().expect("one name per tensor");
                assert_eq!(ta.shape, tb.shape, "{preset}: {name} shape");
                let what = format!("{preset}: {name}, {} vs sparse", engine.name());
                param_rel = param_rel.max(assert_rel_close(&what, &ta.data, &tb.data));
            }
        }
        println!(
            "{preset}: {} matches sparse over {STEPS} steps (final loss {:.6}; relative difference: losses {loss_rel:.1e}, parameters {param_rel:.1e})",
            engine.name(),
            losses[STEPS - 1]
        );
    }
}

/// Checks proofs/T7: LeNet-5 (ReLU, max pooling, cross-entropy) follows the same SGD trajectory on the
/// sparse engine, the direct reference and im2col.
#[test]
fn lenet5_trains_identically_on_sparse_direct_and_im2col() {
    check_trajectories("lenet5", Loss::CrossEntropy);
}

/// Checks proofs/T7: the source's network (sigmoid, mean pooling, ½‖h − y‖²) follows the same SGD
/// trajectory on the sparse engine, the direct reference and im2col.
#[test]
fn seed_network_trains_identically_on_sparse_direct_and_im2col() {
    check_trajectories("seed", Loss::HalfSquared);
}

/// The engine names parse back to their engines.
#[test]
fn engine_names_round_trip() {
    for engine in Engine::ALL {
        assert_eq!(Engine::from_name(engine.name()), Some(engine));
    }
    assert_eq!(Engine::from_name("dense"), None);
}
