//! Shards (proofs/T9): a batch runs as shards of `SHARD` samples, each on its own copy of the layers' state;
//! the batch's gradient is the sum of the shards' gradients, each normalised by the whole batch, added in
//! shard order.

use crate::common;

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets, partial_loss_and_delta};
use cnn_as_mlp::network::{Engine, Network, Params, SHARD, shard_ranges};
use cnn_as_mlp::spec::Spec;
use common::{grad_check, random_labels};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

fn bits(p: &Params<f32>) -> Vec<u32> {
    p.iter().flatten().flat_map(|t| t.data.iter().map(|v| v.to_bits())).collect()
}

fn input(batch: usize, features: usize, seed: u64) -> DMatrix<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    DMatrix::from_fn(batch, features, |_, _| rng.random_range(0.0..1.0))
}

/// Checks proofs/T9 (the cut): shards are consecutive runs of `SHARD` samples, the last one shorter, and
/// they cover the batch exactly once.
#[test]
fn shards_cut_a_batch_into_runs_of_shard_samples() {
    assert_eq!(SHARD, 32);
    assert_eq!(shard_ranges(0), Vec::<std::ops::Range<usize>>::new());
    assert_eq!(shard_ranges(1), vec![0..1]);
    assert_eq!(shard_ranges(32), vec![0..32]);
    assert_eq!(shard_ranges(64), vec![0..32, 32..64]);
    assert_eq!(shard_ranges(70), vec![0..32, 32..64, 64..70]);
    for b in 0..200 {
        let r = shard_ranges(b);
        assert_eq!(r.iter().map(|r| r.len()).sum::<usize>(), b);
        assert!(r.windows(2).all(|w| w[0].end == w[1].start && w[0].len() == SHARD));
    }
}

/// Checks proofs/T9 (the sum, in floating point): `loss_and_grad` on a batch of 70 (shards 32, 32, 6) returns
/// bit for bit what three separate networks, one per shard, give when each shard's loss is normalised by
/// the whole batch and their gradients are added in shard order; for the sparse, direct and im2col engines.
#[test]
fn batch_gradient_is_the_shard_gradients_added_in_order() {
    let spec = Spec::parse("lenet5").unwrap();
    let batch = 70;
    let x = input(batch, spec.input.len(), 3);
    let y = random_labels(batch, 10, 4);
    for engine in [Engine::Sparse, Engine::Direct, Engine::Im2col] {
        let mut net = Network::<f32>::new(&spec, engine);
        init_params(&mut net, Init::TorchDefault, 5);
        let mut grads = net.zero_grads();
        let j = net.loss_and_grad(&mut grads, &x, Targets::Labels(&y), Loss::CrossEntropy);

        let mut expected = net.zero_grads();
        let mut j_expected = 0.0f32;
        for (s, r) in shard_ranges(batch).into_iter().enumerate() {
            let mut part = Network::<f32>::new(&spec, engine);
            part.params = net.params.clone();
            let xs = x.rows(r.start, r.len()).into_owned();
            let out = part.forward(&xs).clone();
            let mut delta = DMatrix::zeros(out.nrows(), out.ncols());
            j_expected += partial_loss_and_delta(Loss::CrossEntropy, &out, Targets::Labels(&y[r]), &mut delta, batch);
            if s == 0 {
                part.backward(&mut expected, &delta);
            } else {
                let mut g = part.zero_grads();
                part.backward(&mut g, &delta);
                for (e, g) in expected.iter_mut().flatten().zip(g.iter().flatten()) {
                    e.data.iter_mut().zip(&g.data).for_each(|(e, g)| *e += g);
                }
            }
        }
        assert_eq!(j.to_bits(), j_expected.to_bits(), "{engine:?}: loss {j} != {j_expected}");
        assert!(bits(&grads) == bits(&expected), "{engine:?}: the batch gradient is not the shards' sum");
        assert!(grads.iter().flatten().all(|t| t.data.iter().any(|&v| v != 0.0)), "{engine:?}: a zero tensor");
    }
}

/// Checks proofs/T9 (per-sample forward): a sample's output does not depend, to the bit, on the batch it
/// runs in: the same rows give the same outputs alone, in a batch of 70, and in a window that straddles
/// shard boundaries.
#[test]
fn a_sample_output_does_not_depend_on_its_batch() {
    for spec in ["lenet5", "seed", "1x12x12 > conv(4,3,pad=1,mode=reflect) > tanh > local(3,3) > avgpool(2) > dense(5)"]
    {
        let spec = Spec::parse(spec).unwrap();
        for engine in [Engine::Sparse, Engine::Direct, Engine::Im2col] {
            let mut net = Network::<f32>::new(&spec, engine);
            init_params(&mut net, Init::TorchDefault, 6);
            let x = input(70, spec.input.len(), 7);
            let whole = net.forward(&x).clone();
            for (start, len) in [(0, 1), (31, 1), (69, 1), (5, 40), (30, 35)] {
                let part = net.forward(&x.rows(start, len).into_owned()).clone();
                let want = whole.rows(start, len);
                assert!(
                    part.iter().zip(want.iter()).all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{engine:?}, rows {start}..{}: outputs differ from the batch of 70",
                    start + len
                );
            }
        }
    }
}

/// Checks proofs/T9 (exact arithmetic) with proofs/T3: finite differences in f64 agree with the gradient of
/// batches cut into several shards (37 = 32 + 5 and 70 = 32 + 32 + 6 samples).
#[test]
fn gradcheck_across_shards() {
    grad_check("2x8x8 > conv(3,3) > relu > maxpool(2) > dense(3)", Loss::CrossEntropy, 37, 40, 41);
    grad_check("1x6x6 > conv(2,3,pad=1) > sigmoid > avgpool(2) > dense(3)", Loss::HalfSquared, 70, 40, 42);
}

/// Checks proofs/T9 (the cut of an empty batch has no shard): a batch of no samples runs no shard, adds
/// nothing to the gradient and has no loss (NaN, the mean over nothing); the forward output is (0, K).
#[test]
fn an_empty_batch_has_no_shard_and_no_loss() {
    let spec = Spec::parse("lenet5").unwrap();
    let mut net = Network::<f32>::new(&spec, Engine::Sparse);
    init_params(&mut net, Init::TorchDefault, 8);
    let x = DMatrix::<f32>::zeros(0, spec.input.len());
    assert_eq!(net.forward(&x).shape(), (0, 10));
    let mut grads = net.zero_grads();
    let j = net.loss_and_grad(&mut grads, &x, Targets::Labels(&[]), Loss::CrossEntropy);
    assert!(j.is_nan(), "loss of an empty batch: {j}");
    assert!(grads.iter().flatten().all(|t| t.data.iter().all(|&v| v == 0.0)));
}
