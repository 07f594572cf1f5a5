//! Tests that check the statements of proofs/T2, T4, T6 and T8 directly (issue 14): the transpose of the
//! compiled `W` against T2's rotated-kernel formula with its border folds, max pooling with ties against
//! PyTorch, T6's penalties with compound entries, and T8's cost figures to the byte.
//!
//! The formulas here are written from the theorem statements, not from the crate's code: in particular the
//! padding maps are the table of proofs/T1, not `PaddingMode::map`. Data are small integers, so every sum is
//! exact in f64 and the comparisons are exact.

#![allow(clippy::too_many_arguments, clippy::needless_range_loop)]

use crate::common;

use cnn_as_mlp::engines::sparse::conv::compile_conv;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::{Layer, Spec};
use cnn_as_mlp::tied::{Entry, TiedMatrix, products};
use common::{geom, pad_map_by_table};
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use safetensors::{Dtype, SafeTensors};

/// The terms of proofs/T8 part 4's formula, read off the compiled matrix, added up.
fn t8_index_bytes(m: &TiedMatrix) -> usize {
    let (r, c) = m.shape();
    let (g, g_t) = (m.groups().len(), m.groups_t().len());
    let ids: usize = (0..m.n_compounds()).map(|j| m.compound(j).len()).sum();
    (8 * m.nnz() + 4 * (r + 1))
        + (8 * m.nnz() + 4 * (c + 1))
        + 4 * (r + g + 1)
        + 4 * (c + g_t + 1)
        + 4 * (m.n_compounds() + 1 + ids)
        + 16 * m.scatter_segments().len()
        + m.separable().bytes()
        + m.separable_t().bytes()
        + m.grad_plan().bytes()
}

/// Checks proofs/T8 part 5: the LeNet-5 figures T8 quotes, exactly (nnz, N, groups, the tables, the index
/// bytes), and part 4's formula term by term, twin-flag bytes included.
#[test]
fn t8_lenet5_cost_figures_are_exact() {
    // conv1: 1 -> 6, 5x5, pad 2, 28x28.
    let m = compile_conv(&geom(1, 28, 28, 6, 5, 1, 2, 1, PaddingMode::Zeros));
    assert_eq!(m.shape(), (4704, 784));
    assert_eq!(m.nnz(), 6 * 134 * 134);
    assert_eq!(m.nnz(), 107_736);
    assert_eq!(6 * 784 * 25 - m.nnz(), 9_864, "border loss");
    assert_eq!(m.n_params(), 150);
    assert_eq!(m.multiplicity().iter().map(|&x| x as usize).sum::<usize>(), m.nnz());
    assert_eq!((m.groups().len(), m.groups_t().len()), (784, 784));
    assert_eq!((m.n_compounds(), m.scatter_segments().len()), (0, 6));
    // Separable tables: 4(G + R) + G twin flags, 4(G' + C) + G' twin flags.
    assert_eq!(m.separable().bytes(), 4 * (784 + 4704) + 784);
    assert_eq!(m.separable().bytes(), 22_736);
    assert_eq!(m.separable_t().bytes(), 7_056);
    let plan = m.grad_plan();
    assert_eq!((plan.classes.len(), plan.fallback.len()), (1, 0));
    let class = &plan.classes[0];
    assert_eq!((class.offsets.len(), class.taps.len(), class.groups.len()), (6, 25, 784));
    // One row pattern of 6 rows; a column pattern per kind of position (5 per axis: 25).
    assert_eq!((class.row_patterns.len(), class.col_patterns.len()), (6, 25 * 25));
    assert_eq!(plan.bytes(), 8 * 6 + 4 * 25 + 4 * 784 * (1 + 4) + 4 * (6 + 25 * 25));
    assert_eq!(plan.bytes(), 18_352);
    assert_eq!(m.index_bytes(), 1_822_212);
    assert_eq!(t8_index_bytes(&m), m.index_bytes());

    // conv2: 6 -> 16, 5x5, 14x14, no padding.
    let m = compile_conv(&geom(6, 14, 14, 16, 5, 1, 0, 1, PaddingMode::Zeros));
    assert_eq!(m.shape(), (1600, 1176));
    assert_eq!(m.nnz(), 16 * 6 * 50 * 50);
    assert_eq!(m.nnz(), 240_000);
    assert_eq!(m.n_params(), 2_400);
    assert!(m.multiplicity().iter().all(|&x| x == 100), "no border loss: m_q = hw");
    assert_eq!((m.groups().len(), m.groups_t().len()), (100, 196));
    assert_eq!((m.n_compounds(), m.scatter_segments().len()), (0, 16));
    assert_eq!(m.separable().bytes(), 6_900);
    assert_eq!(m.separable_t().bytes(), 5_684);
    let plan = m.grad_plan();
    assert_eq!((plan.classes.len(), plan.fallback.len()), (1, 0));
    // No padding: one row pattern (16 rows) and one column pattern (150 columns).
    assert_eq!(plan.bytes(), 8 * 16 + 4 * 150 + 4 * 100 * (1 + 4) + 4 * (16 + 150));
    assert_eq!(plan.bytes(), 3_392);
    assert_eq!(m.index_bytes(), 3_879_644);
    assert_eq!(t8_index_bytes(&m), m.index_bytes());
}

/// Checks proofs/T8 part 4: for stride 1, dilation 1 and zero padding with `k <= H, W`, the number of row groups
/// of `W` is `n_r⌈c_out/16⌉ + ⌈c_out(hw − n_r)/16⌉` with `n_r = (h − e_H)(w − e_W)` positions that read an
/// input, `e_n = 2 max(0, p − k + 1)` (so `hw⌈c_out/16⌉` when `p <= k − 1`); `Wᵀ` has `HW⌈c_in/16⌉` groups when
/// `H, W >= 2k − 1 − 2p`; and the byte formula holds on every such geometry. Example: a 1x1 input, `k = 1`,
/// `p = 1`: `G = 2`.
#[test]
fn t8_group_counts_follow_the_formula() {
    let m = compile_conv(&geom(1, 1, 1, 1, 1, 1, 1, 1, PaddingMode::Zeros));
    assert_eq!(m.shape(), (9, 1));
    assert_eq!(m.groups().len(), 2);
    let mut checked = 0;
    for (c_in, c_out) in [(1, 1), (2, 3), (1, 17), (17, 2)] {
        for h in 1..=6 {
            for w in [1, 2, 5] {
                for k in 1..=h.min(w) {
                    for p in 0..=4 {
                        let g = geom(c_in, h, w, c_out, k, 1, p, 1, PaddingMode::Zeros);
                        let m = compile_conv(&g);
                        let (ho, wo) = (g.h_out(), g.w_out());
                        let e = |_: usize| 2 * (p + 1).saturating_sub(k);
                        let n_r = (ho - e(h)) * (wo - e(w));
                        let expect = n_r * c_out.div_ceil(16) + (c_out * (ho * wo - n_r)).div_ceil(16);
                        assert_eq!(m.groups().len(), expect, "G for {g:?}");
                        if h + 2 * p + 1 >= 2 * k && w + 2 * p + 1 >= 2 * k {
                            assert_eq!(m.groups_t().len(), h * w * c_in.div_ceil(16), "G' for {g:?}");
                        }
                        assert_eq!(t8_index_bytes(&m), m.index_bytes(), "bytes for {g:?}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 200, "{checked} geometries");
}

/// Small integers in `[-3, 3]`.
fn small_ints(n: usize, rng: &mut StdRng) -> Vec<f64> {
    (0..n).map(|_| f64::from(rng.random_range(-3i32..=3))).collect()
}

/// `Wᵀ δ` by proofs/T2: (a) on the padded input `ĝ[i, u, v] = Σ_o Σ_{a,b ∈ [K]} θ↻[o, i, a, b] δ̃[o, u + a − (K−1),
/// v + b − (K−1)]` (the rotated `d`-dilated kernel against the `s`-dilated residual, `p = 0`), then (c) the
/// fold `Πᵀ`: input `(i, iy, ix)` receives `ĝ[i, u, v]` for every padded `(u, v)` with `μ(u − p) = iy`,
/// `μ(v − p) = ix`.
fn transpose_by_t2(g: &ConvGeometry, theta: &[f64], delta: &[f64]) -> Vec<f64> {
    let (ci, co, k, s, p, d) = (g.c_in, g.c_out, g.k as i64, g.stride as i64, g.pad as i64, g.dil as i64);
    let (hh, ww) = (g.h_in as i64, g.w_in as i64);
    let (h, w) = (g.h_out() as i64, g.w_out() as i64);
    let big_k = d * (k - 1) + 1;
    let (hp, wp) = (hh + 2 * p, ww + 2 * p);
    // θ↻[o, i, a, b] = θ[o, i, (K−1−a)/d, (K−1−b)/d] where d divides both, else 0.
    let rot = |o: usize, i: usize, a: i64, b: i64| -> f64 {
        let (ra, rb) = (big_k - 1 - a, big_k - 1 - b);
        if ra % d != 0 || rb % d != 0 {
            return 0.0;
        }
        theta[((o * ci + i) * g.k + (ra / d) as usize) * g.k + (rb / d) as usize]
    };
    // δ̃[o, u, v] = δ[o, u/s, v/s] where s divides both and the quotient is an output position, else 0.
    let dil = |o: usize, u: i64, v: i64| -> f64 {
        if u < 0 || v < 0 || u % s != 0 || v % s != 0 || u / s >= h || v / s >= w {
            return 0.0;
        }
        delta[(o * h as usize + (u / s) as usize) * w as usize + (v / s) as usize]
    };
    let mut out = vec![0.0; g.in_len()];
    for i in 0..ci {
        for u in 0..hp {
            for v in 0..wp {
                let mut ghat = 0.0;
                for o in 0..co {
                    for a in 0..big_k {
                        for b in 0..big_k {
                            ghat += rot(o, i, a, b) * dil(o, u + a - (big_k - 1), v + b - (big_k - 1));
                        }
                    }
                }
                let (iy, ix) = (
                    pad_map_by_table(g.mode, (u - p) as isize, g.h_in),
                    pad_map_by_table(g.mode, (v - p) as isize, g.w_in),
                );
                if let (Some(iy), Some(ix)) = (iy, ix) {
                    out[(i * g.h_in + iy) * g.w_in + ix] += ghat;
                }
            }
        }
    }
    out
}

/// Checks proofs/T2 (a), (b) and (c) on the compiled matrix itself: for every stride (1 to 3), dilation (1, 2),
/// padding (0 to 3) and padding mode on small inputs, `Wᵀδ` computed by the crate (`products::backward_input`,
/// the stored transpose the engine uses, and the dense `W` transposed) equals T2's rotated-kernel formula with
/// the fold of each mode, exactly on integer data.
#[test]
fn t2_transpose_of_compiled_conv_is_rotated_kernel_formula() {
    let mut rng = StdRng::seed_from_u64(14);
    let mut checked = [0usize; 4];
    for (c_in, c_out) in [(1, 1), (2, 3)] {
        for h in 1..=5 {
            for w in [1, 3, 4] {
                for k in 1..=3 {
                    for stride in 1..=3 {
                        for dil in 1..=2 {
                            for pad in 0..=3 {
                                for (mi, mode) in PaddingMode::ALL.into_iter().enumerate() {
                                    let g = geom(c_in, h, w, c_out, k, stride, pad, dil, mode);
                                    if g.check().is_err() {
                                        continue;
                                    }
                                    let m = compile_conv(&g);
                                    let theta = small_ints(g.kernel_len(), &mut rng);
                                    let delta = small_ints(g.out_len(), &mut rng);
                                    let expect = transpose_by_t2(&g, &theta, &delta);
                                    let mut dx = vec![0.0; g.in_len()];
                                    products::backward_input(&m, &theta, &delta, &mut dx, 1);
                                    assert_eq!(dx, expect, "Wᵀδ for {g:?}");
                                    let dense = m.to_dense(&theta);
                                    let (rows, cols) = m.shape();
                                    let by_dense: Vec<f64> = (0..cols)
                                        .map(|c| (0..rows).map(|r| dense[r * cols + c] * delta[r]).sum())
                                        .collect();
                                    assert_eq!(by_dense, expect, "dense Wᵀδ for {g:?}");
                                    checked[mi] += 1;
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(checked.iter().all(|&n| n > 300), "geometries per mode: {checked:?}");
}

/// The entry sets `A_rc` of every stored nonzero of `m`, as (row, column, parameters).
fn entries(m: &TiedMatrix) -> Vec<(usize, usize, Vec<usize>)> {
    let mut out = Vec::new();
    for (r, row) in m.map().outer_iterator().enumerate() {
        for (c, &code) in row.iter() {
            let ids = match m.decode(code) {
                Entry::Param(q) => vec![q as usize],
                Entry::Sum(ids) => ids.iter().map(|&q| q as usize).collect(),
                Entry::Const(_) => panic!("a conv has no constant entry"),
            };
            out.push((r, c, ids));
        }
    }
    out
}

/// Checks proofs/T6 parts 1, 3 and 4 with compound entries (reflect, replicate and circular padding at the
/// border): every kernel value has multiplicity `m_q = hw` (every tap reads an input); the tap-counting
/// penalty is `Σ_q m_q θ_q²`; the literal penalty on the expanded matrix exceeds it by exactly the cross terms
/// `2 Σ_rc Σ_{q<q' ∈ A_rc} θ_q θ_q'`, and its gradient is `Σ_{rc ∋ q} W_rc` (not `m_q θ_q`); and one SGD step in
/// expanded mode decays by `λ m_q θ_q`, the tap-counting gradient, in per-parameter mode by `λ θ_q`.
#[test]
fn t6_decay_with_compound_entries() {
    const LR: f64 = 0.5;
    const WD: f64 = 0.25;
    let mut rng = StdRng::seed_from_u64(6);
    for (spec, mode) in [
        ("2x3x3 > conv(2,3,pad=2,mode=replicate)", PaddingMode::Replicate),
        ("1x3x4 > conv(2,3,pad=2,mode=reflect)", PaddingMode::Reflect),
        ("2x2x3 > conv(3,3,pad=2,dil=1,mode=circular)", PaddingMode::Circular),
        ("1x1x1 > conv(1,3,pad=1,mode=replicate)", PaddingMode::Replicate),
    ] {
        let spec = Spec::parse(spec).unwrap();
        let Layer::Conv { c_out, k, stride, pad, dil, mode: conv_mode, .. } = spec.layers[0] else {
            panic!("{spec:?}: not a conv")
        };
        let g = geom(spec.input.c, spec.input.h, spec.input.w, c_out, k, stride, pad, dil, conv_mode);
        assert_eq!(g.mode, mode);
        let m = compile_conv(&g);
        let positions = g.h_out() * g.w_out();
        let mult = m.multiplicity();
        assert!(mult.iter().all(|&x| x as usize == positions), "m_q = hw for {g:?}: {mult:?}");
        let theta = small_ints(g.kernel_len(), &mut rng);
        let e = entries(&m);
        assert!(e.iter().any(|(_, _, ids)| ids.len() > 1), "{g:?} has no compound entry");
        let r_tap: f64 = e.iter().map(|(_, _, ids)| ids.iter().map(|&q| theta[q] * theta[q]).sum::<f64>()).sum();
        let by_mult: f64 = (0..theta.len()).map(|q| f64::from(mult[q]) * theta[q] * theta[q]).sum();
        assert_eq!(r_tap, by_mult, "R_tap = Σ m_q θ_q² for {g:?}");
        let dense = m.to_dense(&theta);
        let r_exp: f64 = dense.iter().map(|x| x * x).sum();
        let cross: f64 = e
            .iter()
            .map(|(_, _, ids)| {
                let mut c = 0.0;
                for (j, &q) in ids.iter().enumerate() {
                    for &q2 in &ids[j + 1..] {
                        c += theta[q] * theta[q2];
                    }
                }
                c
            })
            .sum();
        assert_eq!(r_exp, r_tap + 2.0 * cross, "R_exp = R_tap + cross terms for {g:?}");
        // ∂R_exp/∂θ_q by a central difference (exact: R_exp is quadratic, steps are integers).
        for q in 0..theta.len() {
            let at = |t: f64| -> f64 {
                let mut th = theta.clone();
                th[q] += t;
                m.to_dense(&th).iter().map(|x| x * x).sum()
            };
            let grad = (at(1.0) - at(-1.0)) / 4.0; // ∂(½ R_exp)
            let formula: f64 = e
                .iter()
                .filter(|(_, _, ids)| ids.contains(&q))
                .map(|(_, _, ids)| ids.iter().map(|&q2| theta[q2]).sum::<f64>())
                .sum();
            assert_eq!(grad, formula, "∂(½R_exp)/∂θ_{q} = Σ_rc∋q W_rc for {g:?}");
        }
        // One step with zero gradient and no momentum in each mode.
        for decay in [DecayMode::Expanded, DecayMode::PerParameter] {
            let mut net = Network::<f64>::new(&spec, Engine::Sparse);
            net.params[0][0].data.copy_from_slice(&theta);
            let zero = net.zero_grads();
            Sgd::new(LR, 0.0, WD, decay).step(&mut net, &zero);
            for q in 0..theta.len() {
                let nu = if decay == DecayMode::Expanded { f64::from(mult[q]) } else { 1.0 };
                assert_eq!(net.params[0][0].data[q], theta[q] - LR * WD * nu * theta[q], "{decay:?} θ_{q} for {g:?}");
            }
        }
    }
}

/// A tensor of a fixture file as f64 values (row-major, as PyTorch wrote it) and its shape.
fn fixture_tensor(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f64>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("tensor {name:?}: {e}"));
    let data = view.data();
    let values = match view.dtype() {
        Dtype::F64 => data.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect(),
        Dtype::I64 => data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64).collect(),
        other => panic!("tensor {name:?}: dtype {other:?}"),
    };
    (view.shape().to_vec(), values)
}

/// Checks proofs/T4 against PyTorch where the maximum is not unique (fixtures `maxpool2_ties`,
/// `maxpool3_stride2_ties` from `tests/fixtures/make_fixtures.py`, inputs in {0, 1, 2}): PyTorch's
/// `indices` are the first maximum in row-major window order (the rule T4 states and the crate implements),
/// and the crate's output and `Sᵀ dout` equal PyTorch's `out` and `dx` exactly, overlapping windows included.
#[test]
fn t4_max_pool_ties_match_pytorch() {
    for case in ["maxpool2_ties", "maxpool3_stride2_ties"] {
        let path = format!("{}/tests/fixtures/{case}.safetensors", env!("CARGO_MANIFEST_DIR"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let spec_text = meta.metadata().as_ref().and_then(|m| m.get("spec").cloned()).expect("spec");
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let spec = Spec::parse(&spec_text).unwrap();
        let Layer::MaxPool { k, stride } = spec.layers[0] else { panic!("{case}: not a max pool") };
        let (c, hh, ww) = (spec.input.c, spec.input.h, spec.input.w);
        let (x_shape, x) = fixture_tensor(&st, "x");
        let (out_shape, out) = fixture_tensor(&st, "out");
        let (_, dout) = fixture_tensor(&st, "dout");
        let (_, dx_torch) = fixture_tensor(&st, "dx");
        let (idx_shape, indices) = fixture_tensor(&st, "indices");
        let batch = x_shape[0];
        assert_eq!(x_shape, vec![batch, c, hh, ww]);
        assert_eq!(idx_shape, out_shape);
        let (h, w) = (out_shape[2], out_shape[3]);
        // PyTorch's choice is the first maximum in row-major window order.
        let mut ties = 0;
        for b in 0..batch {
            for ch in 0..c {
                for oy in 0..h {
                    for ox in 0..w {
                        let at = |y: usize, x_: usize| x[((b * c + ch) * hh + y) * ww + x_];
                        let mut best = (oy * stride, ox * stride);
                        let mut count = 0;
                        let max = (0..k)
                            .flat_map(|ky| (0..k).map(move |kx| (ky, kx)))
                            .map(|(ky, kx)| at(oy * stride + ky, ox * stride + kx))
                            .fold(f64::NEG_INFINITY, f64::max);
                        for ky in 0..k {
                            for kx in 0..k {
                                let (y, x_) = (oy * stride + ky, ox * stride + kx);
                                if at(y, x_) == max {
                                    if count == 0 {
                                        best = (y, x_);
                                    }
                                    count += 1;
                                }
                            }
                        }
                        ties += usize::from(count > 1);
                        let o = ((b * c + ch) * h + oy) * w + ox;
                        assert_eq!(indices[o], (best.0 * ww + best.1) as f64, "{case}: window {o}");
                    }
                }
            }
        }
        assert!(ties * 2 >= out.len(), "{case}: only {ties} windows with ties");
        // The crate: forward, then dx = Sᵀ dout.
        let mut net = Network::<f64>::new(&spec, Engine::Sparse);
        let xm = DMatrix::from_row_slice(batch, c * hh * ww, &x);
        let ours = net.forward(&xm).clone();
        let ours_rm: Vec<f64> = (0..batch).flat_map(|b| ours.row(b).iter().copied().collect::<Vec<_>>()).collect();
        assert_eq!(ours_rm, out, "{case}: out");
        let dz = DMatrix::from_row_slice(batch, out.len() / batch, &dout);
        let mut dx = DMatrix::zeros(batch, xm.ncols());
        net.linear_map(0).expect("max pooling is a linear map").backward_input(&mut dx, &net.params[0], &dz);
        let dx_rm: Vec<f64> = (0..batch).flat_map(|b| dx.row(b).iter().copied().collect::<Vec<_>>()).collect();
        assert_eq!(dx_rm, dx_torch, "{case}: dx");
    }
}
