//! Train a network of your own on tensors of your own, as a library user would.
//!
//! Two ways: (1) put the images in a [`Dataset`] and let [`Trainer`] run epochs (shuffling, SGD or Adam,
//! evaluation), as the command does; (2) keep your own `f32` tensors and write the loop yourself with
//! [`Network::loss_and_grad`] and an optimizer's `step`.
//!
//! The task is made up here, so the example runs anywhere: 8×8 images holding a bright bar that is
//! horizontal, vertical or diagonal, with noise; three classes. Run: `cargo run --release --example
//! train_your_data`. `cargo test` runs it too (it is declared with `test = true`) and checks that both
//! ways learn the task.

use cnn_as_mlp::data::Dataset;
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::optim::{Adam, DecayMode, OptimizerKind};
use cnn_as_mlp::spec::Shape;
use cnn_as_mlp::train::{Hyper, LrSchedule, Trainer, evaluate};
use cnn_as_mlp::{Engine, Network, Spec};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

const SIDE: usize = 8;
const CLASSES: [&str; 3] = ["horizontal", "vertical", "diagonal"];

/// `n` images (pixels 0-255, one 8×8 plane each) and their labels: a bar of class `label` at a random
/// position, on noise.
fn bars(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut pixels, mut labels) = (Vec::with_capacity(n * SIDE * SIDE), Vec::with_capacity(n));
    for _ in 0..n {
        let label = rng.random_range(0..3u8);
        let at = rng.random_range(0..SIDE);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let on = match label {
                    0 => y == at,
                    1 => x == at,
                    _ => (x + SIDE - y) % SIDE == at,
                };
                let noise: u8 = rng.random_range(0..90);
                pixels.push(if on { 255 - noise } else { noise });
            }
        }
        labels.push(label);
    }
    (pixels, labels)
}

/// A [`Dataset`] of `n` bar images.
fn dataset(n: usize, seed: u64) -> Dataset {
    let (pixels, labels) = bars(n, seed);
    Dataset {
        shape: Shape { c: 1, h: SIDE, w: SIDE },
        pixels,
        labels,
        classes: Some(CLASSES.iter().map(|s| s.to_string()).collect()),
        standardize: None,
    }
}

const SPEC: &str = "1x8x8 > conv(4,3,pad=1) > relu > maxpool(2) > dense(3)";

/// (1) A `Trainer` over `Dataset`s: returns the test accuracy after each epoch.
fn with_trainer() -> Vec<f64> {
    let spec = Spec::parse(SPEC).expect("a valid spec");
    let (train, test) = (dataset(1200, 1), dataset(300, 2));
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    // Hyperparameters: start from a preset's and change what you need.
    let hyper =
        Hyper { lr: 0.1, schedule: LrSchedule::Constant, batch: 32, epochs: 4, seed: 3, ..Hyper::preset("lenet5") };
    init_params(&mut net, hyper.init, hyper.seed);
    let mut trainer = Trainer::new(net, hyper);
    let mut accuracies = Vec::new();
    for _ in 0..4 {
        let m = trainer.run_epoch(&train, &test, &mut |_| {}).expect("the loss stays finite");
        println!("trainer: epoch {} loss {:.4} test accuracy {:.3}", m.epoch, m.loss, m.test_acc);
        accuracies.push(m.test_acc);
    }
    // Per-class accuracy from the confusion matrix, with the data's class names.
    let ev = evaluate(&mut trainer.net, &test, trainer.hyper.loss, 100);
    for (k, name) in CLASSES.iter().enumerate() {
        let row = &ev.confusion[k];
        println!("  {name:10} {:.3}", row[k] as f64 / row.iter().sum::<usize>().max(1) as f64);
    }
    accuracies
}

/// (2) Your own `f32` tensors, (batch, features) column-major, and your own loop with Adam: returns the
/// loss before and after.
fn with_own_loop() -> (f32, f32) {
    let spec = Spec::parse(SPEC).expect("a valid spec");
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 4);
    let (pixels, labels) = bars(256, 5);
    // Row b of x is image b, flattened (C, H, W) as PyTorch flattens NCHW.
    let features = SIDE * SIDE;
    let x = DMatrix::<f32>::from_fn(256, features, |b, f| f32::from(pixels[b * features + f]) / 255.0);
    let y: Vec<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    let mut adam = Adam::<f32>::new(0.01, 0.0, DecayMode::PerParameter, false);
    let mut grads = net.zero_grads();
    let first = net.loss(&x, Targets::Labels(&y), Loss::CrossEntropy);
    for step in 0..60 {
        grads.iter_mut().flatten().for_each(|g| g.fill_zero());
        let loss = net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy);
        adam.step(&mut net, &grads);
        if step % 20 == 0 {
            println!("own loop: step {step} loss {loss:.4}");
        }
    }
    let last = net.loss(&x, Targets::Labels(&y), Loss::CrossEntropy);
    println!("own loop ({}): loss {first:.4} -> {last:.4}", OptimizerKind::Adam.name());
    (first, last)
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    with_trainer();
    with_own_loop();
}

#[cfg(test)]
mod tests {
    /// Both ways learn the task: chance is 1/3.
    #[test]
    fn both_ways_learn_the_bars() {
        let acc = super::with_trainer();
        assert!(*acc.last().unwrap() > 0.9, "test accuracy {acc:?}");
        let (first, last) = super::with_own_loop();
        assert!(last < 0.25 * first, "loss {first} -> {last}");
    }
}
