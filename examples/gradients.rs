//! Compute the gradients of a network on one batch, as a library user would, and check them against
//! finite differences of the loss. Run: `cargo run --release --example gradients`; `cargo test` runs it.
//!
//! `grads[l][t]` has the shape and PyTorch layout of parameter tensor `t` of layer `l` (`l.weight`,
//! `l.bias`); a convolution's kernel gradient is the sum over every nonzero of the compiled matrix that
//! copies the kernel value (proofs/T3).

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::{Engine, Network, Spec};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// The largest relative difference between backpropagation and central differences, over every parameter.
fn check() -> f64 {
    let spec = Spec::parse("1x6x6 > conv(2,3) > tanh > avgpool(2) > dense(3)").expect("a valid spec");
    // f64 for the check; training uses f32.
    let mut net = Network::<f64>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 1);
    let mut rng = StdRng::seed_from_u64(2);
    let x = DMatrix::<f64>::from_fn(4, 36, |_, _| rng.random_range(-1.0..1.0)); // (batch, C·H·W)
    let labels = [0, 2, 1, 2];
    let targets = Targets::Labels(&labels);

    let mut grads = net.zero_grads();
    let loss = net.loss_and_grad(&mut grads, &x, targets, Loss::CrossEntropy);
    println!("loss {loss:.6}");
    let names = net.param_names();
    let mut worst = 0.0f64;
    let mut name = names.iter();
    for (l, layer_grads) in grads.iter().enumerate() {
        for (t, g) in layer_grads.iter().enumerate() {
            let (n, shape) = name.next().expect("a name per tensor");
            let mut tensor_worst = 0.0f64;
            for j in 0..net.params[l][t].len() {
                let h = 1e-6;
                let v = net.params[l][t].data[j];
                net.params[l][t].data[j] = v + h;
                let up = net.loss(&x, targets, Loss::CrossEntropy);
                net.params[l][t].data[j] = v - h;
                let down = net.loss(&x, targets, Loss::CrossEntropy);
                net.params[l][t].data[j] = v;
                let (numeric, analytic) = ((up - down) / (2.0 * h), g.data[j]);
                let rel = (numeric - analytic).abs() / (numeric.abs().max(analytic.abs()) + 1e-8);
                tensor_worst = tensor_worst.max(rel);
            }
            println!("  {n} {shape:?}: largest relative difference {tensor_worst:.1e}");
            worst = worst.max(tensor_worst);
        }
    }
    worst
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    check();
}

#[cfg(test)]
mod tests {
    #[test]
    fn gradients_match_finite_differences() {
        let worst = super::check();
        assert!(worst < 1e-6, "largest relative difference {worst:e}");
    }
}
