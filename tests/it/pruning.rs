//! Pruned kernels: a convolution compiled without the taps of removed kernel entries is the unpruned
//! matrix with those entries set to 0 (and stores nothing for them), on every padding mode, with groups and
//! with a connection table; the dense engines' masked layers compute the same map.

use crate::common;

use cnn_as_mlp::Tensor;
use cnn_as_mlp::compare::random_mask;
use cnn_as_mlp::engines::sparse::conv::compile_pruned_conv;
use cnn_as_mlp::engines::{Engine, build_map, build_pruned_map};
use cnn_as_mlp::geometry::PaddingMode;
use cnn_as_mlp::spec::Spec;
use cnn_as_mlp::tables::Table;
use cnn_as_mlp::tied::Entry;
use common::geom;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `W(keep)` = `W` with θ ⊙ keep, value for value; its nonzeros are exactly the entries of `W` that read at
/// least one kept parameter.
#[test]
fn pruned_compile_is_the_matrix_of_the_masked_kernel() {
    let mut rng = StdRng::seed_from_u64(13);
    let cases = [
        (geom(3, 7, 6, 4, 3, 1, 1, 1, PaddingMode::Zeros), 1, None),
        (geom(3, 7, 6, 4, 3, 2, 2, 2, PaddingMode::Reflect), 1, None),
        (geom(2, 5, 5, 2, 3, 1, 2, 1, PaddingMode::Circular), 1, None),
        (geom(2, 5, 5, 2, 3, 1, 1, 1, PaddingMode::Replicate), 1, None),
        (geom(4, 6, 6, 6, 3, 1, 1, 1, PaddingMode::Zeros), 2, None),
        (geom(6, 7, 7, 16, 3, 1, 0, 1, PaddingMode::Zeros), 1, Some(Table::LeNet5C3)),
    ];
    for (g, groups, table) in cases {
        let full = match table {
            Some(t) => cnn_as_mlp::engines::sparse::conv::compile_table_conv(&g, t),
            None => cnn_as_mlp::engines::sparse::conv::compile_grouped_conv(&g, groups),
        };
        let n = full.n_params();
        let theta: Vec<f64> = (0..n).map(|_| rng.random_range(1..=9) as f64).collect();
        for (i, s) in [0.0, 0.3, 0.7, 0.99].into_iter().enumerate() {
            let keep = random_mask(n, s, i as u64);
            let pruned = compile_pruned_conv(&g, groups, table, &keep);
            pruned.check_structure().unwrap();
            assert_eq!((pruned.shape(), pruned.n_params()), (full.shape(), n), "{g:?}");
            let masked: Vec<f64> = theta.iter().zip(&keep).map(|(&v, &k)| if k { v } else { 0.0 }).collect();
            assert_eq!(pruned.to_dense(&theta), full.to_dense(&masked), "{g:?} groups={groups} s={s}");
            let reads_kept = |c: u32| match full.decode(c) {
                Entry::Param(p) => keep[p as usize],
                Entry::Sum(ids) => ids.iter().any(|&p| keep[p as usize]),
                Entry::Const(_) => true,
            };
            let expected = full.map().data().iter().filter(|&&c| reads_kept(c)).count();
            assert_eq!(pruned.nnz(), expected, "{g:?} groups={groups} s={s}");
            let m = pruned.multiplicity();
            assert!(m.iter().zip(&keep).all(|(&m, &k)| k || m == 0), "a removed entry is still read");
        }
    }
}

/// The three engines' pruned layers (the sparse engine's compiled without the taps, the dense engines'
/// masked) give the same forward pass, input gradient and parameter gradient, with 0 at removed entries.
#[test]
fn pruned_layers_agree_on_every_engine() {
    for spec in [
        "3x9x9 > conv(5,3,pad=1)",
        "4x8x8 > conv(6,3,stride=2,pad=1,groups=2)",
        "6x7x7 > conv(16,3,table=lenet5_c3)",
        "2x5x5 > dense(7)",
    ] {
        let sp = Spec::parse(spec).unwrap();
        let (layer, input) = (sp.layers[0], sp.input);
        let reference = build_map::<f64>(&layer, input, Engine::Direct).unwrap();
        let mut rng = StdRng::seed_from_u64(7);
        let params: Vec<Tensor<f64>> = reference
            .param_shapes()
            .iter()
            .map(|(_, s)| {
                Tensor::from_vec(s, (0..s.iter().product()).map(|_| rng.random_range(-3..=3) as f64).collect())
            })
            .collect();
        let keep = random_mask(params[0].len(), 0.6, 3);
        let (out, inp) = reference.dims();
        let x = DMatrix::from_fn(3, inp, |_, _| rng.random_range(-3..=3) as f64);
        let dz = DMatrix::from_fn(3, out, |_, _| rng.random_range(-3..=3) as f64);
        let mut results = Vec::new();
        for e in Engine::ALL {
            let mut m = build_pruned_map::<f64>(&layer, input, e, &keep).unwrap();
            let mut z = DMatrix::zeros(3, out);
            let mut dx = DMatrix::zeros(3, inp);
            let mut grads: Vec<Tensor<f64>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
            m.forward(&params, &x, &mut z);
            m.backward_input(&mut dx, &params, &dz);
            m.backward_params(&mut grads, &x, &dz);
            assert!(grads[0].data.iter().zip(&keep).all(|(&g, &k)| k || g == 0.0), "{spec} on {e:?}");
            assert!(m.multiplicity()[0].iter().zip(&keep).all(|(&c, &k)| k || c == 0), "{spec} on {e:?}");
            results.push((e, z, dx, grads));
        }
        let (_, z0, dx0, g0) = &results[0];
        assert!(z0.iter().any(|&v| v != 0.0));
        for (e, z, dx, g) in &results[1..] {
            assert_eq!(z, z0, "{spec}: forward on {e:?}");
            assert_eq!(dx, dx0, "{spec}: input gradient on {e:?}");
            assert_eq!(g, g0, "{spec}: parameter gradients on {e:?}");
        }
    }
}

/// The order in which the products and the gradient tiles visit the row groups (`with_visit_order`: a
/// pruned convolution goes in runs of positions, channel by channel within a run) changes no bit: forward
/// pass, input gradient and parameter gradient of a pruned convolution are the same `f32` bits in its compiled
/// order, in row order and in reverse row order, at one and at three threads, in the classic and the compact
/// index, at batches that reach every register block. Three compiled orders: runs of whole image rows (8 channels), runs shorter than a row (64 input
/// channels, 20% kept: 8 positions of 12), and whole rows again because at most 5% are kept.
#[test]
fn visit_order_changes_no_bit() {
    use cnn_as_mlp::tied::{gradients, products};
    let mut rng = StdRng::seed_from_u64(29);
    for (g, sparsity) in [
        (geom(8, 9, 9, 12, 3, 1, 1, 1, PaddingMode::Zeros), 0.8),
        (geom(64, 12, 12, 4, 3, 1, 1, 1, PaddingMode::Zeros), 0.8),
        (geom(64, 12, 12, 4, 3, 1, 1, 1, PaddingMode::Zeros), 0.97),
    ] {
        // 37: a block of 32 samples and 5 alone; 91: blocks of 64, 16 and 8 samples and 3 alone (every block of
        // the kernels, and of `product_run_avx512`, which runs a channel's positions together).
        for batch in [37, 91] {
            let n = g.c_out * g.c_in * 9;
            let keep = random_mask(n, sparsity, 4);
            let compiled = compile_pruned_conv(&g, 1, None, &keep);
            let theta: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
            let x: Vec<f32> = (0..batch * g.in_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let dy: Vec<f32> = (0..batch * g.out_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let run = |m: &cnn_as_mlp::tied::TiedMatrix, threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let mut y = vec![0f32; batch * g.out_len()];
                    products::forward(m, &theta, None, &x, &mut y, batch);
                    let mut dx = vec![0f32; batch * g.in_len()];
                    products::backward_input(m, &theta, &dy, &mut dx, batch);
                    let mut dt = vec![0f32; n];
                    gradients::param_grad(m, &x, &dy, &mut dt, &mut Vec::new(), batch);
                    [y, dx, dt].map(|v| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>())
                })
            };
            let want = run(&compiled, 1);
            type Key = fn(u32) -> u64;
            let orders: [(&str, Key); 2] = [("rows", |r| r as u64), ("reverse", |r| u64::MAX - r as u64)];
            for (name, key) in orders {
                for m in [compiled.clone(), compiled.to_compact()] {
                    let m = m.with_visit_order(key, key);
                    for threads in [1, 3] {
                        assert!(
                            run(&m, threads) == want,
                            "{g:?} {sparsity}: order {name}, {:?}, {threads} threads",
                            m.storage()
                        );
                    }
                }
            }
            assert!(run(&compiled.to_compact(), 3) == want, "{g:?} {sparsity}: the compiled order, compact, 3 threads");
        }
    }
}

/// A network built once with its masks (`Network::with_masks`, as a pruned run or checkpoint is loaded)
/// is the network built dense and then pruned layer by layer (`set_mask`): the same masks, the same
/// parameters, the same output bits, on every engine.
#[test]
fn a_network_built_with_its_masks_equals_one_pruned_after_building() {
    use cnn_as_mlp::Network;
    let spec = Spec::parse("2x9x9 > conv(4,3,pad=1,groups=2) > relu > conv(6,3) > relu > dense(5)").unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let inputs: Vec<_> = std::iter::once(spec.input).chain(spec.output_shapes().unwrap()).collect();
    let masks: Vec<Option<Vec<bool>>> = spec
        .layers
        .iter()
        .zip(&inputs)
        .enumerate()
        .map(|(i, (l, &input))| {
            cnn_as_mlp::spec::weight_len(l, input).map(|n| random_mask(n, 0.3 + 0.1 * (i % 5) as f64, i as u64))
        })
        .collect();
    assert_eq!(masks.iter().filter(|m| m.is_some()).count(), 3);
    let x = DMatrix::<f32>::from_fn(3, spec.input.len(), |_, _| rng.random_range(-1.0..1.0));
    for engine in Engine::ALL {
        let mut after = Network::<f32>::new(&spec, engine);
        cnn_as_mlp::init::init_params(&mut after, cnn_as_mlp::init::Init::TorchDefault, 5);
        let mut loaded = after.params.clone();
        for (layer, m) in loaded.iter_mut().zip(&masks) {
            if let Some(keep) = m {
                layer[0].data.iter_mut().zip(keep).filter(|(_, k)| !**k).for_each(|(v, _)| *v = 0.0);
            }
        }
        let mut once = Network::<f32>::with_masks(&spec, engine, masks.clone());
        once.params = loaded;
        for (i, m) in masks.iter().enumerate() {
            if let Some(keep) = m {
                after.set_mask(i, keep);
            }
        }
        assert_eq!(once.params, after.params, "{engine:?}");
        assert!((0..spec.layers.len()).all(|i| once.mask(i) == after.mask(i)), "{engine:?}");
        let (a, b) = (once.forward(&x).clone(), after.forward(&x).clone());
        assert!(a.iter().zip(b.iter()).all(|(p, q)| p.to_bits() == q.to_bits()), "{engine:?}");
    }
}
