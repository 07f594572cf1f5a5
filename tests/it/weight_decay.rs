//! Weight decay on tied parameters (proofs/T6): one SGD step moves each parameter by exactly the amount the
//! formula says, counting multiplicity in expanded mode and once in per-parameter mode.

#![allow(clippy::needless_range_loop)]

use crate::common;

use cnn_as_mlp::init::{Init, init_params};
use cnn_as_mlp::loss::{Loss, Targets};
use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::optim::{DecayMode, Sgd};
use cnn_as_mlp::spec::Spec;
use common::{random_labels, random_matrix};

const LR: f64 = 0.1;
const WD: f64 = 0.01;

/// Checks proofs/T6: after one step from gradient `g`, `θ' = θ − η (g + λ m θ)` with `m = m_p` (expanded) or
/// `m = 1` (per parameter), bit for bit; biases move by `−η g` only. Zero padding makes multiplicities differ
/// across the kernel, so the two modes must disagree on the border taps and agree nowhere they should not.
#[test]
fn weight_decay_step_matches_formula_in_both_modes() {
    let spec = Spec::parse("2x6x6 > conv(3,3,pad=1) > tanh > maxpool(2) > dense(4)").unwrap();
    for mode in [DecayMode::PerParameter, DecayMode::Expanded] {
        let mut net = Network::<f64>::new(&spec, Engine::Sparse);
        init_params(&mut net, Init::TorchDefault, 5);
        let x = random_matrix(3, spec.input.len(), 0.0, 1.0, 6);
        let labels = random_labels(3, 4, 7);
        let mut grads = net.zero_grads();
        net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy);
        let before = net.params.clone();
        let mult = net.multiplicity();
        let names = net.param_names();
        let mut sgd = Sgd::new(LR, 0.9, WD, mode);
        sgd.step(&mut net, &grads);
        let mut name = names.iter();
        let mut saw_multiplicity_above_one = false;
        for (layer, tensors) in before.iter().enumerate() {
            for (t, theta) in tensors.iter().enumerate() {
                let is_weight = name.next().unwrap().0.ends_with(".weight");
                for p in 0..theta.len() {
                    let g = grads[layer][t].data[p];
                    let m = match mode {
                        DecayMode::Expanded => mult[layer][t][p] as f64,
                        DecayMode::PerParameter => 1.0,
                    };
                    saw_multiplicity_above_one |= is_weight && mult[layer][t][p] > 1;
                    let decay = if is_weight { WD * m * theta.data[p] } else { 0.0 };
                    let expected = theta.data[p] - LR * (g + decay);
                    assert_eq!(net.params[layer][t].data[p], expected, "{mode:?} layer {layer} tensor {t} [{p}]");
                }
            }
        }
        assert!(saw_multiplicity_above_one);
    }
    // The conv's centre tap is copied at all 36 positions, a corner tap at 25.
    let net = Network::<f64>::new(&spec, Engine::Sparse);
    let m = &net.multiplicity()[0][0];
    assert_eq!((m[4], m[0]), (36, 25));
}

/// Checks proofs/T6: with zero gradient and no momentum, per-parameter decay shrinks every weight by the same
/// factor `1 − ηλ`, expanded decay by `1 − ηλ m_p`; the modes agree exactly where `m_p = 1` (dense layers).
#[test]
fn weight_decay_modes_agree_where_multiplicity_is_one() {
    let spec = Spec::parse("1x5x5 > conv(2,3) > dense(3)").unwrap();
    let mut per = Network::<f64>::new(&spec, Engine::Sparse);
    init_params(&mut per, Init::TorchDefault, 9);
    let mut exp = Network::<f64>::new(&spec, Engine::Sparse);
    exp.params = per.params.clone();
    let zero = per.zero_grads();
    Sgd::new(LR, 0.0, WD, DecayMode::PerParameter).step(&mut per, &zero);
    Sgd::new(LR, 0.0, WD, DecayMode::Expanded).step(&mut exp, &zero);
    // conv weight: 9 positions each.
    let theta0 = {
        let mut n = Network::<f64>::new(&spec, Engine::Sparse);
        init_params(&mut n, Init::TorchDefault, 9);
        n.params
    };
    for p in 0..18 {
        let t = theta0[0][0].data[p];
        assert_eq!(per.params[0][0].data[p], t - LR * (WD * t));
        assert_eq!(exp.params[0][0].data[p], t - LR * (WD * 9.0 * t));
    }
    assert_eq!(per.params[1], exp.params[1], "dense layer: multiplicity 1, modes agree");
    assert_eq!(per.params[0][1], theta0[0][1], "biases are not decayed");
}
