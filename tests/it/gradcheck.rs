//! Finite-difference gradient checks in f64 for every layer kind and option (proofs/T3: the gradient of a
//! tied parameter is the sum of the gradients of its copies).

use crate::common;

use cnn_as_mlp::loss::Loss;
use common::grad_check;

/// Checks proofs/T3 for conv layers over every option: strides 2 and 3, padding, dilation 2, every padding
/// mode, several channels, and sizes where `in + 2p − k` is not divisible by the stride.
#[test]
fn gradcheck_conv_options() {
    let cases = [
        "2x7x8 > conv(3,3) > tanh > dense(3)",
        "2x7x8 > conv(3,3,stride=2) > tanh > dense(3)",
        "1x8x7 > conv(2,3,stride=3) > tanh > dense(3)",
        "2x6x6 > conv(3,3,pad=1) > tanh > dense(3)",
        "2x7x6 > conv(2,2,stride=2,pad=1) > tanh > dense(3)",
        "1x9x8 > conv(2,3,dil=2) > tanh > dense(3)",
        "2x8x9 > conv(3,3,stride=2,pad=2,dil=2) > tanh > dense(3)",
        "2x5x6 > conv(2,3,pad=2,mode=reflect) > tanh > dense(3)",
        "2x5x6 > conv(2,3,pad=2,mode=replicate) > tanh > dense(3)",
        "2x5x6 > conv(2,3,pad=2,mode=circular) > tanh > dense(3)",
        "3x4x5 > conv(2,3,stride=2,pad=1,mode=reflect) > tanh > dense(3)",
        "1x3x3 > conv(2,3,pad=3,mode=circular) > tanh > dense(3)",
        "1x3x4 > conv(2,3,pad=3,mode=replicate) > tanh > dense(3)",
        "2x6x6 > conv(4,1) > tanh > dense(3)",
    ];
    for spec in cases {
        let r = grad_check(spec, Loss::CrossEntropy, 3, 1000, 7);
        assert!(r.checked >= 20, "{spec}: only {} values checked", r.checked);
    }
}

/// Checks proofs/T3 for the untied `local` layer.
#[test]
fn gradcheck_local() {
    grad_check("2x6x5 > local(3,3) > sigmoid > dense(3)", Loss::CrossEntropy, 3, 1000, 11);
    grad_check("1x7x7 > local(2,3,stride=2,pad=1) > tanh > dense(3)", Loss::HalfSquared, 3, 1000, 12);
}

/// Checks proofs/T4 and T5: gradients flow through max and mean pooling (windows overlapping or not) to the
/// conv kernels before them.
#[test]
fn gradcheck_pools() {
    grad_check("2x8x8 > conv(3,3) > relu > maxpool(2) > dense(3)", Loss::CrossEntropy, 3, 1000, 21);
    grad_check("2x9x9 > conv(2,3) > tanh > maxpool(3,stride=2) > dense(3)", Loss::CrossEntropy, 3, 1000, 22);
    grad_check("2x8x8 > conv(3,3) > sigmoid > avgpool(2) > dense(3)", Loss::HalfSquared, 3, 1000, 23);
    grad_check("1x9x8 > conv(2,2) > tanh > avgpool(3,stride=2) > dense(3)", Loss::CrossEntropy, 3, 1000, 24);
}

/// Checks proofs/T3 for dense layers, both losses and every activation.
#[test]
fn gradcheck_dense_losses_activations() {
    for act in ["relu", "sigmoid", "tanh"] {
        for loss in [Loss::CrossEntropy, Loss::HalfSquared] {
            let spec = format!("1x3x4 > dense(7) > {act} > dense(5) > {act} > dense(4)");
            grad_check(&spec, loss, 4, 1000, 31);
        }
    }
}

/// Checks proofs/T3 on the whole `lenet5` network (28x28 input, batch 2), a sample of every tensor.
#[test]
fn gradcheck_lenet5() {
    let r = grad_check("lenet5", Loss::CrossEntropy, 2, 12, 41);
    assert!(r.checked >= 100, "{r:?}");
}

/// Checks proofs/T3 on the whole `seed` network (sigmoid, mean pooling, ½‖h − y‖²), a sample of every
/// tensor.
#[test]
fn gradcheck_seed() {
    let r = grad_check("seed", Loss::HalfSquared, 2, 12, 51);
    assert!(r.checked >= 80, "{r:?}");
}
