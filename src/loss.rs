//! Losses on the network's output `h` (B, K), each with its gradient `δ = ∂J/∂h`.
//!
//! - Softmax cross-entropy on logits, mean over the batch:
//!   `J = −(1/B) Σ_b log softmax(h_b)[y_b]`, `δ_b = (softmax(h_b) − e_{y_b}) / B`.
//! - The source's squared error: `J = (1/B) Σ_b ½‖h_b − y_b‖²`, `δ_b = (h_b − y_b) / B`, with one-hot
//!   targets from labels or given target vectors.

use nalgebra::DMatrix;

use crate::scalar::Real;

/// A training loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loss {
    /// Softmax cross-entropy on logits (`ce`).
    CrossEntropy,
    /// `½‖h − y‖²`, mean over the batch (`mse`).
    HalfSquared,
}

impl Loss {
    /// Short name: `ce` or `mse`.
    pub fn name(self) -> &'static str {
        match self {
            Loss::CrossEntropy => "ce",
            Loss::HalfSquared => "mse",
        }
    }

    /// Parses `ce` or `mse`.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "ce" => Some(Loss::CrossEntropy),
            "mse" => Some(Loss::HalfSquared),
            _ => None,
        }
    }
}

/// What the output should be.
#[derive(Clone, Copy, Debug)]
pub enum Targets<'a, T> {
    /// One class per sample, `< K`.
    Labels(&'a [usize]),
    /// A target vector per sample, (B, K) (squared error only).
    Dense(&'a DMatrix<T>),
}

/// `J(h, y)` and, into `delta` (B, K, overwritten), `∂J/∂h`. Sums run in sample order.
///
/// # Panics
/// On mismatched shapes, a label `>= K`, or dense targets with cross-entropy (callers check user data
/// before it gets here).
#[track_caller]
pub fn loss_and_delta<T: Real>(loss: Loss, h: &DMatrix<T>, targets: Targets<'_, T>, delta: &mut DMatrix<T>) -> T {
    partial_loss_and_delta(loss, h, targets, delta, h.nrows())
}

/// [`loss_and_delta`] for a shard of a batch: `h` holds some of the batch's `batch` outputs, and the result is
/// their part of the batch's `J` and `δ`, both divided by `batch`: `(1/batch) Σ_{b in h} J_b`, and `δ_b` as in
/// the whole batch. The parts of a batch's shards add up to the whole (proofs/T9).
#[track_caller]
pub fn partial_loss_and_delta<T: Real>(
    loss: Loss,
    h: &DMatrix<T>,
    targets: Targets<'_, T>,
    delta: &mut DMatrix<T>,
    batch_total: usize,
) -> T {
    let (batch, k) = h.shape();
    assert_eq!(delta.shape(), (batch, k), "loss: delta shape {:?} != output shape {:?}", delta.shape(), (batch, k));
    assert!(batch_total >= batch, "loss: a shard of {batch} rows in a batch of {batch_total}");
    let inv_b = T::one() / T::of(batch_total as f64);
    let half = T::of(0.5);
    let mut total = T::zero();
    match (loss, targets) {
        (Loss::CrossEntropy, Targets::Labels(y)) => {
            assert_eq!(y.len(), batch, "loss: {} labels for batch {batch}", y.len());
            for (b, &yb) in y.iter().enumerate() {
                assert!(yb < k, "loss: label {yb} out of range for {k} outputs");
                let max = (0..k).map(|j| h[(b, j)]).fold(h[(b, 0)], |m, v| if v > m { v } else { m });
                let sum = (0..k).fold(T::zero(), |s, j| s + (h[(b, j)] - max).exp());
                let log_sum = sum.ln();
                total += log_sum - (h[(b, yb)] - max);
                for j in 0..k {
                    let p = (h[(b, j)] - max).exp() / sum;
                    let onehot = if j == yb { T::one() } else { T::zero() };
                    delta[(b, j)] = (p - onehot) * inv_b;
                }
            }
        }
        (Loss::HalfSquared, t) => {
            for b in 0..batch {
                for j in 0..k {
                    let target = match t {
                        Targets::Labels(y) => {
                            assert!(y[b] < k, "loss: label {} out of range for {k} outputs", y[b]);
                            if y[b] == j { T::one() } else { T::zero() }
                        }
                        Targets::Dense(m) => m[(b, j)],
                    };
                    let diff = h[(b, j)] - target;
                    total += half * diff * diff;
                    delta[(b, j)] = diff * inv_b;
                }
            }
        }
        (Loss::CrossEntropy, Targets::Dense(_)) => panic!("loss: cross-entropy takes labels, not target vectors"),
    }
    total * inv_b
}
