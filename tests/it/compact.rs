//! The compact index of a tied matrix against the classic one: the same nonzeros (compact ↔ CSR ↔ classic,
//! entry for entry, on the exhaustive small-case grid), the same row groups, gradient plan and scatter segments,
//! and products with the same bits. See proofs/T8 (the compact layout's bytes).

use cnn_as_mlp::compare::measure::random_mask;
use cnn_as_mlp::engines::sparse::avgpool::compile_pool;
use cnn_as_mlp::engines::sparse::conv::{
    compile_conv, compile_conv_compact, compile_conv_in, compile_grouped_conv, compile_pruned_conv, compile_table_conv,
};
use cnn_as_mlp::engines::sparse::local::compile_local;
use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use cnn_as_mlp::tables::Table;
use cnn_as_mlp::tied::{CompactMap, Storage, TiedMatrix, gradients, products};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Every `(row, column, code)` of a CSR map, in row order.
fn csr_entries(m: &cnn_as_mlp::tied::IndexMap) -> Vec<(u32, u32, u32)> {
    let mut v = Vec::new();
    for (r, row) in m.outer_iterator().enumerate() {
        v.extend(row.iter().map(|(c, &code)| (r as u32, c as u32, code)));
    }
    v
}

/// Every `(row, column, code)` a compact map enumerates, sorted.
fn compact_entries(m: &CompactMap) -> Vec<(u32, u32, u32)> {
    let mut v = Vec::new();
    m.for_each_nonzero(|r, _, c, code| v.push((r, c, code)));
    v.sort_unstable();
    v
}

/// The compact form of `m` holds the same matrix: it passes the checker; its enumeration, its CSR and the
/// classic CSR agree entry for entry (W and Wᵀ); the CSR converts back to the same compact map; row groups,
/// gradient plan, scatter segments and multiplicities are the classic ones; it never takes more bytes.
fn check_same(m: &TiedMatrix, what: &str) {
    let c = m.to_compact();
    assert_eq!(c.storage(), Storage::Compact);
    assert_eq!(c.check_structure(), Ok(()), "{what}");
    let (w, wt) = c.compact().expect("compact");
    for (cm, classic, groups) in [(w, m.map(), m.groups()), (wt, m.map_t(), m.groups_t())] {
        assert_eq!(cm.shape(), classic.shape(), "{what}");
        assert_eq!(cm.nnz(), classic.nnz(), "{what}");
        let csr = cm.to_csr();
        assert_eq!(&csr, classic, "{what}: compact → CSR differs from the classic CSR");
        assert_eq!(compact_entries(cm), csr_entries(classic), "{what}: enumeration differs");
        assert_eq!(&CompactMap::from_csr(&csr, groups, m.n_params()), cm, "{what}: CSR → compact differs");
        assert_eq!(cm.groups(), groups, "{what}");
    }
    assert_eq!((c.shape(), c.nnz(), c.n_params()), (m.shape(), m.nnz(), m.n_params()), "{what}");
    assert_eq!(c.grad_plan(), m.grad_plan(), "{what}: gradient plans differ");
    assert_eq!(c.scatter_segments(), m.scatter_segments(), "{what}: scatter segments differ");
    assert_eq!(c.multiplicity(), m.multiplicity(), "{what}");
    // Never more than a block header and a few ids per group above the classic bytes (when nothing is shared,
    // on a few nonzeros), usually far below.
    let n_groups = m.groups().len() + m.groups_t().len();
    assert!(
        c.index_bytes() <= m.index_bytes() + 28 * n_groups + 64,
        "{what}: compact {} > classic {}",
        c.index_bytes(),
        m.index_bytes()
    );
    // The classic CSR a compact matrix builds on demand is the classic one.
    assert_eq!(c.map(), m.map(), "{what}");
    assert_eq!(c.map_t(), m.map_t(), "{what}");
}

/// Checks proofs/T8 (compact layout): on every small convolution geometry (every padding mode), grouped and
/// table convolutions, locally connected layers and pools, compact ↔ CSR ↔ classic index agree entry for entry;
/// under zero padding the convolution compiled straight into the compact form (`compile_conv_compact`) is the
/// compact form of the classic one, with the same gradient plan and scatter segments.
#[test]
fn compact_csr_and_classic_agree_on_the_small_grid() {
    let mut cases = 0;
    for c_in in 1..=2 {
        for c_out in 1..=2 {
            for h_in in 1..=6 {
                for w_in in 1..=6 {
                    for k in 1..=3 {
                        for stride in 1..=3 {
                            for pad in 0..=2 {
                                for dil in 1..=2 {
                                    for mode in PaddingMode::ALL {
                                        let g = ConvGeometry { c_in, h_in, w_in, c_out, k, stride, pad, dil, mode };
                                        if g.check().is_err() {
                                            continue;
                                        }
                                        let m = compile_conv(&g);
                                        check_same(&m, &format!("conv {g:?}"));
                                        if mode == PaddingMode::Zeros {
                                            let direct = compile_conv_compact(&g);
                                            assert_eq!(direct.compact(), m.to_compact().compact(), "{g:?}");
                                            assert_eq!(direct.grad_plan(), m.grad_plan(), "{g:?}");
                                            assert_eq!(direct.scatter_segments(), m.scatter_segments(), "{g:?}");
                                        }
                                        if mode == PaddingMode::Zeros && dil == 1 {
                                            check_same(&compile_local(&g), &format!("local {g:?}"));
                                        }
                                        cases += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(cases > 20_000, "{cases} convolution cases");
    for c in 1..=2 {
        for h_in in 1..=6 {
            for w_in in 1..=6 {
                for k in 1..=3 {
                    for stride in 1..=3 {
                        let g = PoolGeometry { c, h_in, w_in, k, stride };
                        if g.check().is_ok() {
                            check_same(&compile_pool(&g, 1.0 / (k * k) as f64), &format!("pool {g:?}"));
                        }
                    }
                }
            }
        }
    }
    for groups in [1, 2, 4] {
        let g = ConvGeometry {
            c_in: 4,
            h_in: 7,
            w_in: 6,
            c_out: 8,
            k: 3,
            stride: 1,
            pad: 1,
            dil: 1,
            mode: PaddingMode::Zeros,
        };
        check_same(&compile_grouped_conv(&g, groups), &format!("groups={groups}"));
    }
    let g = ConvGeometry {
        c_in: 6,
        h_in: 14,
        w_in: 14,
        c_out: 16,
        k: 5,
        stride: 1,
        pad: 0,
        dil: 1,
        mode: PaddingMode::Zeros,
    };
    check_same(&compile_table_conv(&g, Table::from_name("lenet5_c3").unwrap()), "lenet5_c3");
}

/// Checks proofs/T8 (compact layout): grouped, table and pruned convolutions under zero padding compiled
/// straight into the compact form (`compile_conv_in`, never holding the classic index) are the compact form of
/// the classic ones — the same groups, patterns, blocks and codes, gradient plan and scatter segments — over
/// small geometries, every group count, masks from empty to full, and LeNet-5's table with and without a mask.
#[test]
fn grouped_table_and_pruned_convolutions_compile_straight_into_the_compact_form() {
    let same = |direct: &TiedMatrix, classic: &TiedMatrix, what: &str| {
        let c = classic.to_compact();
        assert_eq!(direct.compact(), c.compact(), "{what}");
        assert_eq!(direct.grad_plan(), c.grad_plan(), "{what}");
        assert_eq!(direct.scatter_segments(), c.scatter_segments(), "{what}");
        assert_eq!(direct.nnz(), classic.nnz(), "{what}");
    };
    let mut cases = 0;
    for (c_in, c_out) in [(2, 2), (4, 2), (2, 4), (4, 4)] {
        for (h_in, w_in) in [(1, 1), (3, 5), (6, 6)] {
            for (k, stride, pad, dil) in [(1, 1, 0, 1), (3, 1, 1, 1), (3, 2, 1, 1), (3, 1, 2, 2), (2, 2, 0, 1)] {
                let g = ConvGeometry { c_in, h_in, w_in, c_out, k, stride, pad, dil, mode: PaddingMode::Zeros };
                if g.check().is_err() {
                    continue;
                }
                for groups in [1, 2, 4].into_iter().filter(|&d| c_in % d == 0 && c_out % d == 0) {
                    let what = format!("{g:?} groups={groups}");
                    let direct = compile_conv_in(&g, groups, None, None, Storage::Compact);
                    same(&direct, &compile_grouped_conv(&g, groups), &what);
                    let n = c_out * (c_in / groups) * k * k;
                    for s in [0.0, 0.5, 0.9, 0.99] {
                        let keep = random_mask(n, s, cases as u64);
                        let direct = compile_conv_in(&g, groups, None, Some(&keep), Storage::Compact);
                        same(&direct, &compile_pruned_conv(&g, groups, None, &keep), &format!("{what} s={s}"));
                        cases += 1;
                    }
                    let none = vec![false; n];
                    let direct = compile_conv_in(&g, groups, None, Some(&none), Storage::Compact);
                    assert_eq!(direct.nnz(), 0, "{what}");
                    same(&direct, &compile_pruned_conv(&g, groups, None, &none), &format!("{what} nothing kept"));
                }
            }
        }
    }
    assert!(cases > 100, "{cases} cases");
    let g = crate::common::geom(6, 14, 14, 16, 5, 1, 0, 1, PaddingMode::Zeros);
    let t = Table::from_name("lenet5_c3").unwrap();
    same(&compile_conv_in(&g, 1, Some(t), None, Storage::Compact), &compile_table_conv(&g, t), "lenet5_c3");
    let keep = random_mask(16 * 6 * 25, 0.7, 3);
    let direct = compile_conv_in(&g, 1, Some(t), Some(&keep), Storage::Compact);
    same(&direct, &compile_pruned_conv(&g, 1, Some(t), &keep), "lenet5_c3 pruned");
    // Another padding mode compiles through the classic index, and still ends compact.
    let reflect = ConvGeometry { mode: PaddingMode::Reflect, pad: 1, ..g };
    let m = compile_conv_in(&reflect, 2, None, None, Storage::Compact);
    assert!(m.compact().is_some());
    same(&m, &compile_grouped_conv(&reflect, 2), "reflect groups=2");
}

/// Checks proofs/T8 (compact layout): the interior positions of a convolution share one column pattern up to a
/// shift and one separable block, so the compact index of a 16 → 32 3×3 layer on 20×20 is a small fraction of a
/// byte per nonzero, against about 16 for the classic one.
#[test]
fn interior_positions_share_one_pattern() {
    let g = ConvGeometry {
        c_in: 16,
        h_in: 20,
        w_in: 20,
        c_out: 32,
        k: 3,
        stride: 1,
        pad: 1,
        dil: 1,
        mode: PaddingMode::Zeros,
    };
    let m = compile_conv(&g);
    let c = m.to_compact();
    let (w, wt) = c.compact().unwrap();
    // Nine kinds of position (4 corners, 4 edges, the interior) meet nine tap sets: with two blocks of 16
    // output channels, 18 weight blocks in W; their column lists are four patterns up to a shift (a corner,
    // a top or bottom edge, a left or right edge, the interior: opposite sides read mirrored taps at the same
    // relative columns).
    assert_eq!(w.distinct(), (4, 18));
    assert_eq!(wt.distinct().0, 4);
    let per_nnz = c.index_bytes() as f64 / c.nnz() as f64;
    let classic = m.index_bytes() as f64 / m.nnz() as f64;
    assert!(per_nnz < 0.5, "compact: {per_nnz} bytes per nonzero");
    assert!(classic > 16.0, "classic: {classic} bytes per nonzero");
}

/// Random values in [-1, 1).
fn random<T: cnn_as_mlp::Real>(rng: &mut StdRng, n: usize) -> Vec<T> {
    (0..n).map(|_| T::of(rng.random_range(-1.0..1.0))).collect()
}

/// The products and the parameter gradient of the compact and the classic form, bit for bit.
fn same_bits<T: cnn_as_mlp::Real>(m: &TiedMatrix, rng: &mut StdRng, batch: usize, what: &str) {
    let c = m.to_compact();
    let (rows, cols) = m.shape();
    let theta = random::<T>(rng, m.n_params());
    let bias = random::<T>(rng, 3);
    let ids: Vec<u32> = (0..rows as u32).map(|r| r % 3).collect();
    let x = random::<T>(rng, batch * cols);
    let dy = random::<T>(rng, batch * rows);
    let bits = |v: &[T]| v.iter().map(|f| f.as_f64().to_bits()).collect::<Vec<u64>>();
    let (mut y1, mut y2) = (vec![T::zero(); batch * rows], vec![T::zero(); batch * rows]);
    products::forward(m, &theta, Some((&bias, &ids)), &x, &mut y1, batch);
    products::forward(&c, &theta, Some((&bias, &ids)), &x, &mut y2, batch);
    assert_eq!(bits(&y1), bits(&y2), "{what}: forward, batch {batch}");
    let (mut d1, mut d2) = (vec![T::zero(); batch * cols], vec![T::zero(); batch * cols]);
    products::backward_input(m, &theta, &dy, &mut d1, batch);
    products::backward_input(&c, &theta, &dy, &mut d2, batch);
    assert_eq!(bits(&d1), bits(&d2), "{what}: input gradient, batch {batch}");
    let (mut g1, mut g2) = (vec![T::zero(); m.n_params()], vec![T::zero(); m.n_params()]);
    gradients::param_grad(m, &x, &dy, &mut g1, &mut Vec::new(), batch);
    gradients::param_grad(&c, &x, &dy, &mut g2, &mut Vec::new(), batch);
    assert_eq!(bits(&g1), bits(&g2), "{what}: parameter gradient, batch {batch}");
}

/// Checks proofs/T8 (compact layout): forward, input gradient and parameter gradient on the compact form equal
/// the classic form's bit for bit, in f32 (the AVX-512 kernels, twins and the column-major blocks of batches under
/// 16 included) and f64, at batch sizes that
/// reach every register block, for every padding mode, local layers and pools.
#[test]
fn compact_products_equal_classic_bit_for_bit() {
    let mut rng = StdRng::seed_from_u64(12);
    let zeros = PaddingMode::Zeros;
    let mut matrices: Vec<(TiedMatrix, String)> = Vec::new();
    for (c_in, hw, c_out, k, stride, pad, dil) in [
        (1, 28, 6, 5, 1, 2, 1),
        (6, 14, 16, 5, 1, 0, 1),
        (16, 9, 32, 3, 1, 1, 1),
        (3, 11, 5, 3, 2, 2, 2),
        (20, 6, 17, 3, 1, 1, 1),
    ] {
        for mode in PaddingMode::ALL {
            let g = ConvGeometry { c_in, h_in: hw, w_in: hw, c_out, k, stride, pad, dil, mode };
            if g.check().is_ok() {
                matrices.push((compile_conv(&g), format!("conv {g:?}")));
            }
        }
    }
    let g = ConvGeometry { c_in: 3, h_in: 7, w_in: 7, c_out: 4, k: 3, stride: 1, pad: 1, dil: 1, mode: zeros };
    matrices.push((compile_local(&g), "local".into()));
    matrices.push((compile_pool(&PoolGeometry { c: 6, h_in: 28, w_in: 28, k: 2, stride: 2 }, 0.25), "avgpool".into()));
    for (m, what) in &matrices {
        for batch in [1, 8, 12, 17, 32, 64, 96, 131] {
            same_bits::<f32>(m, &mut rng, batch, what);
        }
        same_bits::<f64>(m, &mut rng, 37, what);
    }
}

/// Checks proofs/T8 (compact layout, LeNet-5 figures): compiled straight into the compact storage, LeNet-5's conv1
/// takes 80,748 index bytes and conv2 76,940 (against 1,822,212 and 3,879,644 in the classic form), of which
/// the gradient plan, the same in both forms, is 18,352 and 3,392.
#[test]
fn t8_compact_lenet5_figures() {
    let zeros = PaddingMode::Zeros;
    let conv1 = ConvGeometry { c_in: 1, h_in: 28, w_in: 28, c_out: 6, k: 5, stride: 1, pad: 2, dil: 1, mode: zeros };
    let conv2 = ConvGeometry { c_in: 6, h_in: 14, w_in: 14, c_out: 16, k: 5, stride: 1, pad: 0, dil: 1, mode: zeros };
    for (g, compact, classic, plan) in [(conv1, 80_748, 1_822_212, 18_352), (conv2, 76_940, 3_879_644, 3_392)] {
        let m = compile_conv_compact(&g);
        assert_eq!((m.index_bytes(), compile_conv(&g).index_bytes()), (compact, classic), "{g:?}");
        assert_eq!(m.grad_plan().bytes(), plan, "{g:?}");
    }
}
