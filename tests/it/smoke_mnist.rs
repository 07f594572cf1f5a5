//! Smoke test on real data: the engine learns MNIST.

use cnn_as_mlp::data::Source;
use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::Spec;

/// 200 SGD steps of `lenet5` (batch 64, lr 0.05, momentum 0.9) on the embedded MNIST-10k lower the training
/// loss, averaged over 20 steps, by at least half; and the trained network beats chance on the test set.
#[test]
fn lenet5_200_steps_on_mnist10k_halve_the_loss() {
    let data = Source::Mnist10k.load().expect("embedded data loads");
    assert!(data.train.len() >= 7_900 && data.test.len() >= 1_900, "{} / {}", data.train.len(), data.test.len());
    let spec = Spec::parse("lenet5").unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 0);
    let mut sgd = Sgd::new(0.05, 0.9, 1e-4, DecayMode::PerParameter);
    let mut losses = Vec::new();
    for step in 0..200 {
        let idx: Vec<usize> = (0..64).map(|i| (step * 64 + i) % data.train.len()).collect();
        let (x, y) = (data.train.batch_x(&idx), data.train.batch_y(&idx));
        let mut grads = net.zero_grads();
        losses.push(net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy));
        sgd.step(&mut net, &grads);
    }
    let mean = |s: &[f32]| s.iter().sum::<f32>() / s.len() as f32;
    let (first, last) = (mean(&losses[..20]), mean(&losses[180..]));
    println!("mean loss over steps 1-20: {first:.4}, over steps 181-200: {last:.4}");
    assert!(last <= 0.5 * first, "loss went from {first} to {last}");
    let idx: Vec<usize> = (0..1000).collect();
    let out = net.forward(&data.test.batch_x(&idx)).clone();
    let correct = cnn_as_mlp::train::count_correct(&out, &data.test.batch_y(&idx));
    assert!(correct > 800, "{correct}/1000 test digits right after 200 steps");
}
