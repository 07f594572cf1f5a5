//! The one interface of every layer with weights or a fixed matrix: a linear map `z = W x + b` with a
//! forward pass and its two backward passes. The training routine ([`crate::network`]) treats every
//! layer of every engine ([`crate::engines`]) alike through it.

use nalgebra::DMatrix;

use crate::scalar::Real;
use crate::tensor::Tensor;
use crate::tied::TiedMatrix;

/// A linear layer `z = W x + b` on (batch, features) column-major activations.
///
/// Gradient outputs come first in the backward passes, which accumulate with `+=` into parameter
/// gradients and overwrite the input gradient.
pub trait LinearMap<T: Real>: Send + Sync + Replicate<T> {
    /// `(out_features, in_features)`.
    fn dims(&self) -> (usize, usize);

    /// Names and shapes of the parameter tensors (`"weight"`, `"bias"`), PyTorch layouts. The default is a
    /// map without parameters (pools): no tensors.
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }

    /// `z = W x + b`: `x` (B, in), `z` (B, out), overwritten. Max pooling records its winners here.
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>);

    /// `d_x = Wᵀ d_z`: `dz` (B, out), `dx` (B, in), overwritten. Uses the state of the last `forward`.
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>);

    /// `grads[i] += ∂J/∂params[i]` given the forward input `x` (B, in) and `dz` (B, out). The default, for a
    /// map without parameters, adds nothing (`grads` is empty).
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let _ = (x, dz);
        debug_assert!(grads.is_empty(), "a map with parameters must implement backward_params");
    }

    /// For each parameter tensor, each element's multiplicity `m_p`: how many entries of the expanded
    /// matrix `W` copy it (1 per entry for dense layers). The default, for a map without parameters: none.
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        Vec::new()
    }

    /// The compiled tied matrix behind the layer, when it has one.
    fn tied(&self) -> Option<&TiedMatrix> {
        None
    }

    /// Bytes of the layer's index structure (0 for dense and direct layers).
    fn index_bytes(&self) -> usize {
        self.tied().map_or(0, TiedMatrix::index_bytes)
    }
}

/// Copies of a layer for the shards of a batch ([`crate::network::Network`]): each copy owns its per-pass
/// state (max-pooling winners, scratch) and shares the compiled structure, which layers keep behind an `Arc`.
pub trait Replicate<T: Real> {
    /// A copy of the layer that runs beside this one on other samples.
    fn replica(&self) -> Box<dyn LinearMap<T>>;
}

impl<T: Real, M: LinearMap<T> + Clone + 'static> Replicate<T> for M {
    fn replica(&self) -> Box<dyn LinearMap<T>> {
        Box::new(self.clone())
    }
}

/// Panics unless `out_side` is (B, out) and `in_side` is (B, in), `dims = (out, in)`: a layer's output-side and
/// input-side matrices in one pass; names the pass and both shapes.
#[track_caller]
pub fn check_io<T: Real>(what: &str, dims: (usize, usize), out_side: &DMatrix<T>, in_side: &DMatrix<T>) {
    let batch = out_side.nrows();
    assert_shape(what, out_side, batch, dims.0);
    assert_shape(what, in_side, batch, dims.1);
}

/// Panics unless `m` is (`rows`, `cols`); names the layer and both shapes.
#[track_caller]
pub fn assert_shape<T: Real>(what: &str, m: &DMatrix<T>, rows: usize, cols: usize) {
    assert!(
        m.nrows() == rows && m.ncols() == cols,
        "{what}: expected ({rows}, {cols}), got ({}, {})",
        m.nrows(),
        m.ncols()
    );
}
