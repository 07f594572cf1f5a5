//! Shared helpers for the integration tests: seeded data and a finite-difference gradient check.
#![allow(dead_code, clippy::needless_range_loop)]

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::spec::Spec;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Central-difference step for f64 gradient checks.
pub const FD_STEP: f64 = 1e-6;
/// Relative tolerance between the analytic and the finite-difference gradient.
pub const FD_REL_TOL: f64 = 1e-5;
/// Absolute slack for gradients near zero: the central difference's rounding error is about
/// `ε·|J| / h ≈ 2.2e-16 · 2 / 1e-6 ≈ 5e-10` for a loss near 2.
pub const FD_ABS_TOL: f64 = 2e-9;

/// A (batch, features) matrix of seeded uniform values in `[lo, hi)`.
pub fn random_matrix(batch: usize, features: usize, lo: f64, hi: f64, seed: u64) -> DMatrix<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    DMatrix::from_fn(batch, features, |_, _| rng.random_range(lo..hi))
}

/// Seeded labels in `0..k`.
pub fn random_labels(batch: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..batch).map(|_| rng.random_range(0..k)).collect()
}

/// Outcome of a gradient check: how many parameter values were perturbed, and the worst error as a
/// fraction of its tolerance (`<= 1` passes).
#[derive(Debug)]
pub struct GradCheck {
    pub checked: usize,
    pub worst: f64,
    pub worst_at: String,
}

/// Builds `spec` in f64 with PyTorch-default parameters, then compares `∂J/∂θ` from backpropagation with
/// central differences `(J(θ + h e_p) − J(θ − h e_p)) / 2h`, perturbing each *shared parameter* (so a
/// kernel value moves every nonzero that copies it). At most `max_per_tensor` values per tensor (spread
/// evenly) are perturbed. Panics with the worst value when a relative error exceeds [`FD_REL_TOL`].
pub fn grad_check(spec: &str, loss: Loss, batch: usize, max_per_tensor: usize, seed: u64) -> GradCheck {
    let spec = Spec::parse(spec).unwrap();
    let mut net = Network::<f64>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, seed);
    // Biases start at zero under some schemes; give them values so their gradients are exercised.
    let x = random_matrix(batch, spec.input.len(), -1.0, 1.0, seed + 1);
    let k = spec.output().unwrap().len();
    let labels = random_labels(batch, k, seed + 2);
    let targets = Targets::Labels(&labels);
    let mut grads = net.zero_grads();
    net.loss_and_grad(&mut grads, &x, targets, loss);
    let names = net.param_names();
    let mut name_iter = names.iter();
    let mut out = GradCheck { checked: 0, worst: 0.0, worst_at: String::new() };
    for layer in 0..net.params.len() {
        for t in 0..net.params[layer].len() {
            let name = &name_iter.next().unwrap().0;
            let len = net.params[layer][t].len();
            let step = (len / max_per_tensor).max(1);
            for p in (0..len).step_by(step) {
                let orig = net.params[layer][t].data[p];
                net.params[layer][t].data[p] = orig + FD_STEP;
                let up = net.loss(&x, targets, loss);
                net.params[layer][t].data[p] = orig - FD_STEP;
                let down = net.loss(&x, targets, loss);
                net.params[layer][t].data[p] = orig;
                let numeric = (up - down) / (2.0 * FD_STEP);
                let analytic = grads[layer][t].data[p];
                let scale = numeric.abs().max(analytic.abs());
                // err <= 1 iff |a − n| <= FD_REL_TOL · max(|a|, |n|) + FD_ABS_TOL.
                let err = (numeric - analytic).abs() / (FD_REL_TOL * scale + FD_ABS_TOL);
                if err > out.worst {
                    out.worst = err;
                    out.worst_at = format!("{name}[{p}]: analytic {analytic:e}, numeric {numeric:e}");
                }
                out.checked += 1;
            }
        }
    }
    assert!(
        out.worst <= 1.0,
        "{spec}: gradient check failed, worst error {:.2}x its tolerance at {}",
        out.worst,
        out.worst_at
    );
    assert!(out.checked > 0, "{spec}: no parameter checked");
    out
}
