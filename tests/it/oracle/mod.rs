//! The oracle ([`reference`]: layers written from their definitions, test code only, outside the library)
//! and its adapter to the engines' [`LinearMap`] interface, so that one test helper runs an engine's layer and
//! the oracle's alike. The adapter lives here, in the tests: the oracle shares nothing with the engines, not
//! even their trait.
#![allow(dead_code, unused_imports)]

pub mod reference;

use cnn_as_mlp::Tensor;
use cnn_as_mlp::linear_map::LinearMap;
use cnn_as_mlp::scalar::Real;
use nalgebra::DMatrix;
use reference::Reference;

/// A reference layer, forwarded call by call.
#[derive(Clone, Debug)]
pub struct Oracle<R>(pub R);

impl<T: Real, R: Reference<T> + Clone + Send + Sync + 'static> LinearMap<T> for Oracle<R> {
    fn dims(&self) -> (usize, usize) {
        self.0.dims()
    }
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.0.param_shapes()
    }
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        self.0.forward(params, x, z)
    }
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        self.0.backward_input(dx, params, dz)
    }
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        self.0.backward_params(grads, x, dz)
    }
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        self.0.multiplicity()
    }
}
