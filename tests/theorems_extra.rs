//! Tests that check the statements of proofs/T2, T6 and T8 directly on the compiled matrix (issue 14): the
//! transpose of `W` against T2's rotated-kernel formula with its border folds, T6's penalties with compound
//! entries, and T8's cost figures to the byte.

#![allow(clippy::too_many_arguments)]

use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode};
use cnn_as_mlp::layers::conv::compile_conv;
use cnn_as_mlp::tied::TiedMatrix;

fn geom(
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    mode: PaddingMode,
) -> ConvGeometry {
    ConvGeometry { c_in, h_in: h, w_in: w, c_out, k, stride, pad, dil, mode }
}

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
    assert_eq!(plan.bytes(), 8 * 6 + 4 * 25 + 4 * 784 * (1 + 6 + 25));
    assert_eq!(plan.bytes(), 100_500);
    assert_eq!(m.index_bytes(), 1_904_360);
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
    assert_eq!(plan.bytes(), 67_528);
    assert_eq!(m.index_bytes(), 3_943_780);
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
