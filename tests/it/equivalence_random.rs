//! Equivalence of the compiled sparse layers, the direct reference and im2col on larger shapes in f32,
//! with seeded normal data.
//!
//! Each f32 result is compared with the exact answer (the direct reference in f64 on the same values)
//! element by element against the rounding bound of a sum of `n` products,
//! `|got − exact| <= SLACK · n · ε_f32 · Σ|terms|`, where the fan-in `n` and the magnitude `Σ|terms|` of
//! each element are themselves computed by the f64 reference, on all-ones data and on absolute values.
//! Two implementations then differ by at most twice that bound, which is checked too.

use cnn_as_mlp::engines::im2col::Im2colConv;
use cnn_as_mlp::engines::sparse::TiedMaxPool;
use cnn_as_mlp::engines::sparse::avgpool_layer;
use cnn_as_mlp::engines::sparse::conv_layer;
use cnn_as_mlp::engines::sparse::local_layer;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use cnn_as_mlp::linear_map::LinearMap;
use oracle::Oracle;
use oracle::reference;

use crate::oracle;
use cnn_as_mlp::{Real, Tensor};
use nalgebra::DMatrix;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

const SEED: u64 = 17;
const BATCH: usize = 4;
/// Rounding slack over the first-order bound `n · ε · Σ|terms|` (GEMM blocking and FMA change the order
/// and the number of roundings, not the order of magnitude).
const SLACK: f64 = 2.0;
const EPS_F32: f64 = f32::EPSILON as f64;

/// Every quantity of one layer: `z`, `δx` and the parameter gradients, flattened, widened to f64.
#[derive(Clone, Debug, PartialEq)]
struct Quantities(Vec<(&'static str, Vec<f64>)>);

fn run<T: Real>(layer: &mut dyn LinearMap<T>, params: &[Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) -> Quantities {
    let (rows, cols) = layer.dims();
    let mut z = DMatrix::zeros(x.nrows(), rows);
    layer.forward(params, x, &mut z);
    let mut dx = DMatrix::zeros(x.nrows(), cols);
    layer.backward_input(&mut dx, params, dz);
    let mut grads: Vec<Tensor<T>> = params.iter().map(|p| Tensor::zeros(&p.shape)).collect();
    layer.backward_params(&mut grads, x, dz);
    let wide = |s: &[T]| s.iter().map(|v| v.as_f64()).collect::<Vec<f64>>();
    let mut q = vec![("forward z", wide(z.as_slice())), ("input gradient", wide(dx.as_slice()))];
    let names = ["weight gradient", "bias gradient"];
    q.extend(grads.iter().zip(names).map(|(g, n)| (n, wide(&g.data))));
    Quantities(q)
}

/// Data of one case in f64 (values are f32-representable) and its conversions.
struct Data {
    params: Vec<Tensor<f64>>,
    x: DMatrix<f64>,
    dz: DMatrix<f64>,
}

impl Data {
    fn random(rng: &mut StdRng, shapes: &[(&'static str, Vec<usize>)], n_in: usize, n_out: usize) -> Data {
        let mut draw = || {
            let v: f32 = StandardNormal.sample(rng);
            v as f64
        };
        let params = shapes
            .iter()
            .map(|(_, s)| Tensor::from_vec(s, (0..s.iter().product()).map(|_| draw()).collect()))
            .collect();
        let x = DMatrix::from_fn(BATCH, n_in, |_, _| draw());
        let dz = DMatrix::from_fn(BATCH, n_out, |_, _| draw());
        Data { params, x, dz }
    }

    fn map(&self, f: impl Fn(f64) -> f64) -> Data {
        let params = self.params.iter().map(|t| Tensor::from_vec(&t.shape, t.data.iter().map(|&v| f(v)).collect()));
        Data { params: params.collect(), x: self.x.map(&f), dz: self.dz.map(&f) }
    }

    fn f32(&self) -> (Vec<Tensor<f32>>, DMatrix<f32>, DMatrix<f32>) {
        let params = self.params.iter().map(|t| Tensor::from_vec(&t.shape, t.data.iter().map(|&v| v as f32).collect()));
        (params.collect(), self.x.map(|v| v as f32), self.dz.map(|v| v as f32))
    }
}

/// The exact answer, each element's fan-in and each element's magnitude `Σ|terms|`, by the f64 reference.
struct Bound {
    exact: Quantities,
    fan_in: Quantities,
    magnitude: Quantities,
}

impl Bound {
    /// `fan_scale` multiplies the fan-in computed on all-ones data, for layers whose own constants are
    /// not 1 (mean pooling sums `k²` terms of `1/k²`).
    fn new(reference: &mut dyn LinearMap<f64>, d: &Data, fan_scale: f64) -> Bound {
        let mut go = |d: &Data| run(reference, &d.params, &d.x, &d.dz);
        let mut fan_in = go(&d.map(|_| 1.0));
        fan_in.0.iter_mut().for_each(|(_, v)| v.iter_mut().for_each(|n| *n *= fan_scale));
        Bound { exact: go(d), fan_in, magnitude: go(&d.map(f64::abs)) }
    }

    /// Checks `got` against the exact answer (`factor` 1) or against another implementation (`factor`
    /// 2); returns the largest ratio of error to tolerance.
    fn check(&self, case: &str, got: &Quantities, other: &Quantities, factor: f64) -> f64 {
        let mut worst: f64 = 0.0;
        assert_eq!(got.0.len(), other.0.len(), "{case}: number of quantities");
        for (j, ((name, a), (_, b))) in got.0.iter().zip(&other.0).enumerate() {
            assert_eq!(a.len(), b.len(), "{case}: {name} length");
            let (fan, mag) = (&self.fan_in.0[j].1, &self.magnitude.0[j].1);
            for e in 0..a.len() {
                let tol = factor * SLACK * fan[e] * EPS_F32 * mag[e];
                let err = (a[e] - b[e]).abs();
                assert!(
                    err <= tol,
                    "{case}: {name}[{e}] = {} vs {}: error {err:e} > tolerance {tol:e} (fan-in {}, Σ|terms| {})",
                    a[e],
                    b[e],
                    fan[e],
                    mag[e]
                );
                if tol > 0.0 {
                    worst = worst.max(err / tol);
                }
            }
        }
        worst
    }
}

/// Runs f32 implementations against the f64 reference and against each other.
fn check_all(
    case: &str,
    reference: &mut dyn LinearMap<f64>,
    fan_scale: f64,
    d: &Data,
    impls: Vec<(&str, &mut dyn LinearMap<f32>)>,
) {
    let bound = Bound::new(reference, d, fan_scale);
    let (params, x, dz) = d.f32();
    let results: Vec<(&str, Quantities)> = impls.into_iter().map(|(n, l)| (n, run(l, &params, &x, &dz))).collect();
    for (name, q) in &results {
        let worst = bound.check(&format!("{case}, {name} vs exact"), q, &bound.exact, 1.0);
        println!("{case}: {name}: worst error / tolerance {worst:.3}");
    }
    for pair in results.windows(2) {
        bound.check(&format!("{case}, {} vs {}", pair[0].0, pair[1].0), &pair[0].1, &pair[1].1, 2.0);
    }
}

/// Checks proofs/T1, proofs/T2 and proofs/T3 beyond exact arithmetic: forward, input, kernel and bias
/// gradients of the compiled convolution, the direct convolution and im2col agree within the f32 rounding
/// bound on 3 → 8 channels over a 15 × 17 input, for strides, paddings, dilations and every padding mode;
/// the compiled locally connected layer agrees with its direct reference on the same geometries.
#[test]
fn compiled_conv_direct_and_im2col_agree_in_f32_on_larger_shapes() {
    use PaddingMode::*;
    let mut rng = StdRng::seed_from_u64(SEED);
    // (k, stride, pad, dil, mode)
    let cases = [
        (3, 1, 1, 1, Zeros),
        (5, 2, 2, 1, Reflect),
        (3, 2, 1, 2, Replicate),
        (4, 3, 3, 1, Circular),
        (1, 1, 0, 1, Zeros),
        (3, 1, 2, 2, Circular),
        (5, 1, 0, 1, Zeros),
        (2, 2, 0, 1, Reflect),
        (3, 3, 1, 2, Reflect),
        (5, 2, 4, 2, Replicate),
        (7, 1, 3, 1, Reflect),
    ];
    for (k, stride, pad, dil, mode) in cases {
        let g = ConvGeometry { c_in: 3, h_in: 15, w_in: 17, c_out: 8, k, stride, pad, dil, mode };
        g.check().unwrap_or_else(|e| panic!("{g:?}: {e}"));
        let case = format!("conv k={k} s={stride} p={pad} d={dil} {mode}");
        let shapes = LinearMap::<f64>::param_shapes(&Oracle(reference::Conv::new(&g)));
        let d = Data::random(&mut rng, &shapes, g.in_len(), g.out_len());
        let (mut sparse, mut direct, mut lowered) =
            (conv_layer::<f32>(&g), Oracle(reference::Conv::new(&g)), Im2colConv::new(&g));
        let impls: Vec<(&str, &mut dyn LinearMap<f32>)> =
            vec![("sparse", &mut sparse), ("direct", &mut direct), ("im2col", &mut lowered)];
        check_all(&case, &mut Oracle(reference::Conv::new(&g)), 1.0, &d, impls);

        let case = format!("local k={k} s={stride} p={pad} d={dil} {mode}");
        let shapes = LinearMap::<f64>::param_shapes(&Oracle(reference::Local::new(&g)));
        let d = Data::random(&mut rng, &shapes, g.in_len(), g.out_len());
        let (mut sparse, mut direct) = (local_layer::<f32>(&g), Oracle(reference::Local::new(&g)));
        let impls: Vec<(&str, &mut dyn LinearMap<f32>)> = vec![("sparse", &mut sparse), ("direct", &mut direct)];
        check_all(&case, &mut Oracle(reference::Local::new(&g)), 1.0, &d, impls);
    }
}

/// Checks proofs/T4 and proofs/T5 beyond exact arithmetic: on 8 × 15 × 17 normal data (no ties) the
/// compiled max pooling selects exactly what direct max pooling selects, and compiled mean pooling agrees
/// with direct mean pooling within the f32 rounding bound, for windows with stride equal to, smaller and
/// larger than the window.
#[test]
fn compiled_pools_agree_with_direct_pools_in_f32_on_larger_shapes() {
    let mut rng = StdRng::seed_from_u64(SEED + 1);
    for (k, stride) in [(2, 2), (3, 2), (3, 3), (2, 1), (4, 5)] {
        let g = PoolGeometry { c: 8, h_in: 15, w_in: 17, k, stride };
        let d = Data::random(&mut rng, &[], g.in_len(), g.out_len());
        let (_, x, dz) = d.f32();
        let sparse = run(&mut TiedMaxPool::new(&g), &[], &x, &dz);
        let direct = run(&mut Oracle(reference::MaxPool::new(&g)), &[], &x, &dz);
        for ((name, a), (_, b)) in sparse.0.iter().zip(&direct.0) {
            assert_eq!(a, b, "max pooling k={k} s={stride}: {name}");
        }
        let (mut sparse, mut direct) = (avgpool_layer::<f32>(&g), Oracle(reference::AvgPool::new(&g)));
        let impls: Vec<(&str, &mut dyn LinearMap<f32>)> = vec![("sparse", &mut sparse), ("direct", &mut direct)];
        let case = format!("mean pooling k={k} s={stride}");
        check_all(&case, &mut Oracle(reference::AvgPool::new(&g)), (k * k) as f64, &d, impls);
    }
}

/// Builds a fresh layer (each thread count runs its own, so no state is shared).
type MakeLayer = Box<dyn Fn() -> Box<dyn LinearMap<f32>> + Sync>;

/// The references keep the crate's determinism rule: no sum whose order depends on the number of
/// threads, so 1 and 3 worker threads give the same bits.
#[test]
fn reference_layers_are_bit_identical_across_thread_counts() {
    let mut rng = StdRng::seed_from_u64(SEED + 2);
    let g = ConvGeometry {
        c_in: 3,
        h_in: 15,
        w_in: 17,
        c_out: 8,
        k: 3,
        stride: 2,
        pad: 2,
        dil: 1,
        mode: PaddingMode::Reflect,
    };
    let pg = PoolGeometry { c: 8, h_in: 15, w_in: 17, k: 3, stride: 2 };
    let layers: Vec<(&str, MakeLayer)> = vec![
        ("direct conv", Box::new(move || Box::new(Oracle(reference::Conv::new(&g))))),
        ("im2col conv", Box::new(move || Box::new(Im2colConv::new(&g)))),
        ("direct local", Box::new(move || Box::new(Oracle(reference::Local::new(&g))))),
        ("direct max pooling", Box::new(move || Box::new(Oracle(reference::MaxPool::new(&pg))))),
        ("direct mean pooling", Box::new(move || Box::new(Oracle(reference::AvgPool::new(&pg))))),
    ];
    for (name, make) in layers {
        let probe = make();
        let (rows, cols) = probe.dims();
        let d = Data::random(&mut rng, &probe.param_shapes(), cols, rows);
        let (params, x, dz) = d.f32();
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
            pool.install(|| run(make().as_mut(), &params, &x, &dz))
        };
        assert_eq!(on(1), on(3), "{name}: 1 thread vs 3 threads");
    }
}
