//! The tied sparse matrix: the structural checker, the conv compiler against the convolution's definition,
//! multiplicities, compound entries and the cost of the index.

#![allow(clippy::too_many_arguments)]

use crate::common;

use approx::abs_diff_eq;
use cnn_as_mlp::engines::sparse::conv::{compile_conv, conv_layer};
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::tensor::Tensor;
use cnn_as_mlp::tied::{StructureError, TiedMatrix, gradients, products};
use common::{geom, pad_map_by_table, random_matrix};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Tolerance for f64 sums of a few dozen products of values in [-1, 1].
const F64_TOL: f64 = 1e-12;

/// The convolution from its definition, one output at a time:
/// `y[b, o, oy, ox] = bias[o] + Σ_{i, ky, kx} θ[o, i, ky, kx] · x[b, i, μ(oy·s + ky·d − p), μ(ox·s + kx·d − p)]`.
fn conv_by_definition(g: &ConvGeometry, theta: &[f64], bias: &[f64], x: &DMatrix<f64>) -> DMatrix<f64> {
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let mut y = DMatrix::zeros(x.nrows(), g.out_len());
    for b in 0..x.nrows() {
        for o in 0..g.c_out {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    let mut s = bias[o];
                    for i in 0..g.c_in {
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let py = (oy * g.stride + ky * g.dil) as isize - g.pad as isize;
                                let px = (ox * g.stride + kx * g.dil) as isize - g.pad as isize;
                                let (Some(iy), Some(ix)) =
                                    (pad_map_by_table(g.mode, py, g.h_in), pad_map_by_table(g.mode, px, g.w_in))
                                else {
                                    continue;
                                };
                                let w = theta[((o * g.c_in + i) * g.k + ky) * g.k + kx];
                                s += w * x[(b, (i * g.h_in + iy) * g.w_in + ix)];
                            }
                        }
                    }
                    y[(b, (o * h_out + oy) * w_out + ox)] = s;
                }
            }
        }
    }
    y
}

/// Checks proofs/T1 (guarding the compiler): the compiled matrix times `x` equals the convolution computed from
/// its definition, on small random cases over strides, paddings, dilations and every padding mode.
#[test]
fn compiled_conv_matches_definition_loop() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut cases = 0;
    for mode in PaddingMode::ALL {
        for _ in 0..40 {
            let g = geom(
                rng.random_range(1..=3),
                rng.random_range(2..=8),
                rng.random_range(2..=8),
                rng.random_range(1..=3),
                rng.random_range(1..=3),
                rng.random_range(1..=3),
                rng.random_range(0..=2),
                rng.random_range(1..=2),
                mode,
            );
            if g.check().is_err() {
                continue;
            }
            let mut layer = conv_layer::<f64>(&g);
            let theta: Vec<f64> = (0..g.kernel_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let bias: Vec<f64> = (0..g.c_out).map(|_| rng.random_range(-1.0..1.0)).collect();
            let params = [
                Tensor::from_vec(&[g.c_out, g.c_in, g.k, g.k], theta.clone()),
                Tensor::from_vec(&[g.c_out], bias.clone()),
            ];
            let x = random_matrix(3, g.in_len(), -1.0, 1.0, cases);
            let mut y = DMatrix::zeros(3, g.out_len());
            layer.forward(&params, &x, &mut y);
            let expected = conv_by_definition(&g, &theta, &bias, &x);
            let diff = (&y - &expected).abs().max();
            assert!(abs_diff_eq!(y, expected, epsilon = F64_TOL), "{g:?}: compiled and definition differ by {diff:e}");
            cases += 1;
        }
    }
    assert!(cases >= 100, "only {cases} geometries applied");
}

/// Checks proofs/T8: a convolution without border effects stores `c_out·h_out·w_out·c_in·k²` nonzeros; each
/// kernel entry is copied once per output position (its multiplicity); the index costs 8 bytes per nonzero in
/// each of W and Wᵀ plus the row pointers and groups.
#[test]
fn conv_nnz_multiplicity_and_bytes() {
    let g = geom(2, 6, 7, 3, 3, 1, 0, 1, PaddingMode::Zeros);
    let m = compile_conv(&g);
    let positions = g.h_out() * g.w_out();
    assert_eq!(m.shape(), (3 * 4 * 5, 2 * 6 * 7));
    assert_eq!(m.nnz(), 3 * positions * 2 * 9);
    assert!(m.multiplicity().iter().all(|&c| c as usize == positions));
    let rows = m.shape().0 + m.shape().1;
    // The gradient plan: one class (every position copies the same 18 taps into 3 rows): offsets, taps,
    // member groups and a 16-byte member record each, one row pattern (3 rows) and, without padding, one
    // column pattern (18 columns) shared by every position.
    let n_groups = m.groups().len();
    let plan = m.grad_plan();
    assert_eq!(plan.classes.len(), 1);
    assert_eq!((plan.classes[0].row_patterns.len(), plan.classes[0].col_patterns.len()), (3, 18));
    assert_eq!(plan.bytes(), 8 * 3 + 4 * (18 + n_groups) + 16 * n_groups + 4 * (3 + 18));
    assert!(
        m.index_bytes()
            <= 16 * m.nnz()
                + 4 * (rows + 2)
                + 4 * (2 * rows + m.groups().len() + m.groups_t().len() + 2)
                + m.grad_plan().bytes()
                + m.separable().bytes()
                + m.separable_t().bytes()
    );
    // Every group of W and of Wᵀ reads θ directly (zero padding): a start per group, an offset per row, a
    // twin flag per group.
    assert_eq!(m.separable().bytes(), 4 * (m.groups().len() + m.shape().0) + m.groups().len());
    assert_eq!(m.separable_t().bytes(), 4 * (m.groups_t().len() + m.shape().1) + m.groups_t().len());
    // Without padding every position of W meets the same taps: each group is the twin of the next. In Wᵀ
    // only the inner input positions (touched by every tap) are twins of their right-hand neighbours.
    let twins = |t: &[bool]| t.iter().filter(|&&t| t).count();
    assert_eq!(twins(&m.separable().twin), n_groups - 1);
    assert!(!m.separable().twin[n_groups - 1]);
    let inner_t = twins(&m.separable_t().twin);
    assert!(inner_t > 0 && inner_t < m.groups_t().len() - 1, "{inner_t} twins in Wᵀ");
    // Zero padding: the centre tap of a 3x3 kernel on a 4x4 input with pad 1 is used at all 16 positions, a
    // corner tap at 9, an edge tap at 12.
    let m = compile_conv(&geom(1, 4, 4, 1, 3, 1, 1, 1, PaddingMode::Zeros));
    assert_eq!(m.multiplicity(), vec![9, 12, 9, 12, 16, 12, 9, 12, 9]);
    assert_eq!(m.multiplicity().iter().sum::<u32>() as usize, m.nnz());
}

/// Checks proofs/T1 (padding modes as index maps): replicate padding of a 1x1 input sends all nine taps of a
/// 3x3 kernel to the one input, so W is 1x1 and its entry is the sum of the nine parameters.
#[test]
fn replicate_padding_merges_taps_into_one_compound_entry() {
    let m = compile_conv(&geom(1, 1, 1, 1, 3, 1, 1, 1, PaddingMode::Replicate));
    assert_eq!(m.shape(), (1, 1));
    assert_eq!(m.nnz(), 1);
    assert_eq!(m.n_compounds(), 1);
    assert_eq!(m.compound(0), &[0, 1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(m.multiplicity(), vec![1; 9]);
    let theta: Vec<f64> = (1..=9).map(f64::from).collect();
    assert_eq!(m.to_dense(&theta), vec![45.0]);
    // The gradient of each parameter is the gradient of the one entry: d_y · x.
    let (x, dy) = ([2.0], [3.0]);
    let mut dtheta = vec![0.0; 9];
    gradients::param_grad(&m, &x, &dy, &mut dtheta, &mut Vec::new(), 1);
    assert_eq!(dtheta, vec![6.0; 9]);
}

/// The structural checker refuses each broken invariant and names it.
#[test]
fn structure_checker_refuses_each_broken_invariant() {
    // A valid 2x3 matrix over 2 parameters: row 0 = [θ0, 0, θ1], row 1 = [0, θ1, 0].
    let ok = TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![0, 2, 1], vec![0, 1, 1], 2, vec![], vec![0], vec![]);
    let m = ok.expect("a valid matrix");
    assert_eq!(m.to_dense(&[5.0, 7.0]), vec![5.0, 0.0, 7.0, 0.0, 7.0, 0.0]);
    assert_eq!(m.check_structure(), Ok(()));

    let cases: Vec<(Result<TiedMatrix, StructureError>, &str)> = vec![
        (
            TiedMatrix::try_new((2, 3), vec![0, 2], vec![0, 2], vec![0, 1], 2, vec![], vec![0], vec![]),
            "2 entries for 2 rows",
        ),
        (
            TiedMatrix::try_new((3, 3), vec![0, 3, 1, 3], vec![0, 1, 2], vec![0, 1, 1], 2, vec![], vec![0], vec![]),
            "decrease at row 1: 3 > 1",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![2, 0, 1], vec![0, 1, 1], 2, vec![], vec![0], vec![]),
            "not strictly increasing (2 then 0)",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![1, 1, 1], vec![0, 1, 1], 2, vec![], vec![0], vec![]),
            "not strictly increasing (1 then 1)",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![0, 3, 1], vec![0, 1, 1], 2, vec![], vec![0], vec![]),
            "column 3 out of range",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![0, 2, 1], vec![0, 2, 1], 2, vec![], vec![0], vec![]),
            "entry code 2 out of range",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![0, 2, 1], vec![0, 2, 1], 2, vec![], vec![0, 2], vec![0, 5]),
            "parameter id 5 out of range",
        ),
        (
            TiedMatrix::try_new((2, 3), vec![0, 2, 3], vec![0, 2, 1], vec![0, 2, 1], 2, vec![], vec![0, 2], vec![1, 1]),
            "repeated ids",
        ),
    ];
    for (result, needle) in cases {
        let err = result.expect_err(needle).to_string();
        assert!(err.contains(needle), "expected an error containing {needle:?}, got {err:?}");
    }
}

/// The row groups list rows with equal column lists: in a conv, the output channels at one position.
#[test]
fn conv_row_groups_are_output_channels_at_one_position() {
    let g = geom(2, 5, 5, 4, 3, 1, 0, 1, PaddingMode::Zeros);
    let m = compile_conv(&g);
    let positions = g.h_out() * g.w_out();
    assert_eq!(m.groups().len(), positions);
    for gi in 0..m.groups().len() {
        let rows = m.groups().group(gi);
        assert_eq!(rows.len(), 4);
        assert!(rows.iter().all(|&r| r as usize % positions == rows[0] as usize % positions));
    }
    // In Wᵀ, all input channels at one input position share their rows (the outputs they feed).
    assert_eq!(m.groups_t().len(), 25);
}

/// Checks proofs/T3: the parameter gradient (classes of positions summed in registers, the rest per nonzero)
/// equals the per-nonzero gradient followed by the scatter, exactly on small integers, for every padding mode
/// (compound entries go the per-nonzero way), at batch sizes below, at and past the 16 lanes of a register,
/// and adds to what the gradient buffer held.
#[test]
fn param_grad_equals_nonzero_grad_then_scatter() {
    let mut rng = StdRng::seed_from_u64(17);
    for mode in PaddingMode::ALL {
        for ((c_in, c_out, k, stride, pad, dil), batch) in [
            ((3, 5, 3, 1, 1, 1), 5),
            ((2, 8, 2, 2, 1, 1), 16),
            ((4, 4, 3, 1, 2, 2), 37),
            ((1, 6, 5, 1, 2, 1), 64),
            ((3, 18, 3, 1, 1, 1), 21),
        ] {
            let g = geom(c_in, 9, 8, c_out, k, stride, pad, dil, mode);
            if g.check().is_err() {
                continue;
            }
            let m = compile_conv(&g);
            if mode == PaddingMode::Zeros {
                assert!(m.grad_plan().fallback.is_empty(), "a zero-padded conv is all classes: {g:?}");
            }
            let x: Vec<f64> = (0..batch * g.in_len()).map(|_| rng.random_range(-3..=3) as f64).collect();
            let dy: Vec<f64> = (0..batch * g.out_len()).map(|_| rng.random_range(-3..=3) as f64).collect();
            let mut dw = vec![0.0; m.nnz()];
            gradients::nonzero_grad(&m, &x, &dy, &mut dw, batch);
            let mut expected = vec![1.0; m.n_params()];
            gradients::scatter_grad(&m, &dw, &mut expected);
            let mut combined = vec![1.0; m.n_params()];
            gradients::param_grad(&m, &x, &dy, &mut combined, &mut Vec::new(), batch);
            assert_eq!(combined, expected, "{g:?}");
            assert!(expected.iter().any(|&v| v != 1.0));
        }
    }
}

/// The scatter segments of a convolution are its output channels (rows `o·P..(o+1)·P` read kernel `o` only);
/// for any matrix, successive segments read disjoint, increasing parameter ranges that cover every row.
#[test]
fn scatter_segments_partition_rows_into_disjoint_parameter_ranges() {
    let g = geom(3, 6, 6, 4, 3, 1, 1, 1, PaddingMode::Zeros);
    let m = compile_conv(&g);
    let positions = (g.h_out() * g.w_out()) as u32;
    let q = (g.c_in * g.k * g.k) as u32;
    let segs = m.scatter_segments();
    assert_eq!(segs.len(), 4);
    for (o, s) in segs.iter().enumerate() {
        let o = o as u32;
        assert_eq!(s.rows, (o * positions, (o + 1) * positions));
        assert_eq!(s.params, (o * q, (o + 1) * q));
    }
    // A later row reading a low parameter merges the segments it overlaps: rows 0, 1, 2 read θ0, θ1, θ0.
    let m = TiedMatrix::try_new((4, 2), vec![0, 1, 2, 3, 3], vec![0, 1, 0], vec![0, 1, 0], 2, vec![], vec![0], vec![])
        .unwrap();
    let segs = m.scatter_segments();
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!((segs[0].rows, segs[0].params), ((0, 4), (0, 2)));
}

/// The parallel scatter adds each parameter's terms in nonzero order: it equals the sequential loop of the
/// definition bit for bit, on random (non-integer) gradients, compound entries included, at 1 and 2 threads.
#[test]
fn scatter_grad_equals_sequential_definition_bit_for_bit() {
    for mode in PaddingMode::ALL {
        let g = geom(2, 5, 6, 3, 3, 1, 2, 1, mode);
        if g.check().is_err() {
            continue;
        }
        let m = compile_conv(&g);
        let dw: Vec<f32> = {
            let mut rng = StdRng::seed_from_u64(5);
            (0..m.nnz()).map(|_| rng.random_range(-1.0..1.0)).collect()
        };
        let mut expected = vec![0.5f32; m.n_params()];
        for (&code, &d) in m.map().data().iter().zip(&dw) {
            match m.decode(code) {
                cnn_as_mlp::tied::Entry::Param(p) => expected[p as usize] += d,
                cnn_as_mlp::tied::Entry::Const(_) => {}
                cnn_as_mlp::tied::Entry::Sum(ids) => ids.iter().for_each(|&p| expected[p as usize] += d),
            }
        }
        for threads in [1, 2] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut got = vec![0.5f32; m.n_params()];
            pool.install(|| gradients::scatter_grad(&m, &dw, &mut got));
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&expected), "{mode:?}, {threads} threads");
        }
    }
}

/// Checks proofs/T3 (and T1 for the products): the `f32` products (hand-written AVX-512 kernels when the CPU
/// has them: separable groups read from θ,
/// the others from a gathered block; blocks of 64, 32, 16 and single samples; 8, 6, 4, 2 and 1 rows) equal the
/// `f64` products exactly on small integers, where every sum is exact in both types.
#[test]
fn f32_products_equal_f64_products_on_small_integers() {
    let mut rng = StdRng::seed_from_u64(11);
    for (c_in, c_out, pad, mode) in [
        (1, 6, 2, PaddingMode::Zeros),
        (6, 16, 0, PaddingMode::Zeros),
        (3, 19, 1, PaddingMode::Reflect),
        (2, 7, 1, PaddingMode::Circular),
    ] {
        let g = geom(c_in, 9, 8, c_out, 3, 1, pad, 1, mode);
        let m = compile_conv(&g);
        for batch in [1, 16, 17, 32, 48, 57, 64, 70, 130] {
            let ints =
                |n: usize, rng: &mut StdRng| -> Vec<f64> { (0..n).map(|_| rng.random_range(-4..=4) as f64).collect() };
            let (theta, x, dy) =
                (ints(m.n_params(), &mut rng), ints(batch * g.in_len(), &mut rng), ints(batch * g.out_len(), &mut rng));
            let f32s = |v: &[f64]| v.iter().map(|&a| a as f32).collect::<Vec<f32>>();
            let (rows, cols) = m.shape();
            let mut y64 = vec![0.0; batch * rows];
            products::forward(&m, &theta, None, &x, &mut y64, batch);
            let mut y32 = vec![0.0f32; batch * rows];
            products::forward(&m, &f32s(&theta), None, &f32s(&x), &mut y32, batch);
            assert_eq!(y32, f32s(&y64), "forward {g:?} batch {batch}");
            let mut dx64 = vec![0.0; batch * cols];
            products::backward_input(&m, &theta, &dy, &mut dx64, batch);
            let mut dx32 = vec![0.0f32; batch * cols];
            products::backward_input(&m, &f32s(&theta), &f32s(&dy), &mut dx32, batch);
            assert_eq!(dx32, f32s(&dx64), "backward_input {g:?} batch {batch}");
            let mut dt64 = vec![0.0; m.n_params()];
            gradients::param_grad(&m, &x, &dy, &mut dt64, &mut Vec::new(), batch);
            let mut dt32 = vec![0.0f32; m.n_params()];
            gradients::param_grad(&m, &f32s(&x), &f32s(&dy), &mut dt32, &mut Vec::new(), batch);
            assert_eq!(dt32, f32s(&dt64), "param_grad {g:?} batch {batch}");
            assert!(y64.iter().any(|&v| v != 0.0) && dt64.iter().any(|&v| v != 0.0));
        }
    }
}
