//! A layer whose weight matrix is a compiled [`TiedMatrix`], with an optional bias tied per row.

use nalgebra::DMatrix;

use super::{LinearMap, assert_shape};
use crate::scalar::Real;
use crate::tensor::Tensor;
use crate::tied::{TiedMatrix, kernels};

/// `z = W x + b` with `W` a tied sparse matrix over the weight tensor and `b[r] = bias[bias_ids[r]]`.
#[derive(Clone, Debug)]
pub struct TiedLayer<T> {
    /// `W`: (out, in), nonzeros copy entries of the flattened weight tensor.
    pub matrix: TiedMatrix,
    /// Shape of the weight tensor (`matrix.n_params()` elements); empty when `W` is fixed (mean pooling).
    pub weight_shape: Vec<usize>,
    /// For each row, the bias element it adds, with the bias tensor's shape; `None` without bias.
    pub bias: Option<(Vec<u32>, Vec<usize>)>,
    /// Scratch: one gradient per nonzero, (nnz).
    dw: Vec<T>,
}

impl<T: Real> TiedLayer<T> {
    /// A layer from its compiled matrix, weight shape and per-row bias ids.
    #[track_caller]
    pub fn new(matrix: TiedMatrix, weight_shape: Vec<usize>, bias: Option<(Vec<u32>, Vec<usize>)>) -> Self {
        let n: usize = weight_shape.iter().product();
        assert!(
            n == matrix.n_params() || (weight_shape.is_empty() && matrix.n_params() == 0),
            "TiedLayer: weight shape {weight_shape:?} has {n} values, the matrix reads {}",
            matrix.n_params()
        );
        if let Some((ids, _)) = &bias {
            assert_eq!(ids.len(), matrix.shape().0, "TiedLayer: {} bias ids for {} rows", ids.len(), matrix.shape().0);
        }
        TiedLayer { matrix, weight_shape, bias, dw: Vec::new() }
    }

    fn has_weight(&self) -> bool {
        !self.weight_shape.is_empty()
    }

    /// The weight values θ (empty for a fixed matrix).
    fn theta<'a>(&self, params: &'a [Tensor<T>]) -> &'a [T] {
        if self.has_weight() { &params[0].data } else { &[] }
    }
}

impl<T: Real> LinearMap<T> for TiedLayer<T> {
    fn dims(&self) -> (usize, usize) {
        self.matrix.shape()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut v = Vec::new();
        if self.has_weight() {
            v.push(("weight", self.weight_shape.clone()));
        }
        if let Some((_, shape)) = &self.bias {
            v.push(("bias", shape.clone()));
        }
        v
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let (rows, cols) = self.dims();
        let batch = x.nrows();
        assert_shape("tied forward x", x, batch, cols);
        assert_shape("tied forward z", z, batch, rows);
        let bias = self.bias.as_ref().map(|(ids, _)| (params[params.len() - 1].data.as_slice(), ids.as_slice()));
        kernels::forward(&self.matrix, self.theta(params), bias, x.as_slice(), z.as_mut_slice(), batch);
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        let (rows, cols) = self.dims();
        let batch = dz.nrows();
        assert_shape("tied backward dz", dz, batch, rows);
        assert_shape("tied backward dx", dx, batch, cols);
        kernels::backward_input(&self.matrix, self.theta(params), dz.as_slice(), dx.as_mut_slice(), batch);
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let batch = x.nrows();
        if self.has_weight() {
            kernels::param_grad(&self.matrix, x.as_slice(), dz.as_slice(), &mut grads[0].data, &mut self.dw, batch);
        }
        if let Some((ids, _)) = &self.bias {
            // d_b[p] += Σ_{r : ids[r] = p} Σ_b d_z[b, r], rows in order.
            let db = &mut grads[grads.len() - 1].data;
            for (r, col) in dz.column_iter().enumerate() {
                db[ids[r] as usize] += col.iter().fold(T::zero(), |s, &v| s + v);
            }
        }
    }

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let mut v = Vec::new();
        if self.has_weight() {
            v.push(self.matrix.multiplicity());
        }
        if let Some((ids, shape)) = &self.bias {
            let mut m = vec![0u32; shape.iter().product()];
            ids.iter().for_each(|&i| m[i as usize] += 1);
            v.push(m);
        }
        v
    }

    fn tied(&self) -> Option<&TiedMatrix> {
        Some(&self.matrix)
    }
}
