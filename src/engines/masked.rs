//! A layer with a fixed weight mask on the dense engines (direct, im2col): connection tables and pruning.
//!
//! `z = conv(M ⊙ w) x + b`, with `M` the 0/1 mask of the weight tensor: a connection table's
//! `(c_out, c_in, k, k)` ([`crate::tables`]), or a pruning mask over any layer's weight. The gradient of a masked entry is `M ⊙ ∂J/∂(M ⊙ w)`, so it is 0 where `M` is 0 and an
//! entry that starts at 0 stays 0 through SGD, momentum and weight decay. The dense engines still multiply
//! by the zeros (as a masked `nn.Conv2d` does); the sparse engine stores no nonzero there instead
//! ([`super::sparse::table_conv_layer`]).

use nalgebra::DMatrix;

use super::engine::Engine;
use super::{direct, im2col};
use crate::geometry::ConvGeometry;
use crate::linear_map::LinearMap;
use crate::scalar::Real;
use crate::tables::Table;
use crate::tensor::Tensor;

/// A layer of the direct or im2col engine (or a dense layer) whose weight is multiplied by a fixed mask.
pub struct Masked<T: Real> {
    inner: Box<dyn LinearMap<T>>,
    /// `M`: the weight's shape (`(c_out, c_in, k, k)` for a table), `true` where the entry exists.
    mask: Vec<bool>,
}

impl<T: Real> Clone for Masked<T> {
    fn clone(&self) -> Self {
        Masked { inner: self.inner.replica(), mask: self.mask.clone() }
    }
}

impl<T: Real> Masked<T> {
    /// The convolution `g` through `table`.
    ///
    /// # Panics
    /// If the table is not `(c_out, c_in)`, or `engine` is the sparse engine (which compiles the table).
    #[track_caller]
    pub fn table_conv(g: &ConvGeometry, table: Table, engine: Engine) -> Self {
        assert_eq!(table.dims(), (g.c_out, g.c_in), "Masked: table {table} on {g:?}");
        let inner: Box<dyn LinearMap<T>> = match engine {
            Engine::Direct => Box::new(direct::DirectConv::new(g)),
            Engine::Im2col => Box::new(im2col::Im2colConv::<T>::new(g)),
            Engine::Sparse => panic!("Masked: the sparse engine compiles tables into its matrix"),
        };
        Masked { inner, mask: table.weight_mask(g.k) }
    }

    /// `inner` with its weight (the first parameter tensor) multiplied by `mask`.
    ///
    /// # Panics
    /// If `mask` does not have one flag per weight entry.
    #[track_caller]
    pub fn new(inner: Box<dyn LinearMap<T>>, mask: Vec<bool>) -> Self {
        let n: usize = inner.param_shapes().first().map_or(0, |(_, s)| s.iter().product());
        assert_eq!(mask.len(), n, "Masked: {} flags for a weight of {n} entries", mask.len());
        Masked { inner, mask }
    }

    /// `[M ⊙ w, b]`.
    fn masked(&self, params: &[Tensor<T>]) -> Vec<Tensor<T>> {
        let mut p = params.to_vec();
        // Branch-free: a random mask would mispredict half of the branches.
        for (v, &keep) in p[0].data.iter_mut().zip(&self.mask) {
            *v = if keep { *v } else { T::zero() };
        }
        p
    }
}

impl<T: Real> LinearMap<T> for Masked<T> {
    fn dims(&self) -> (usize, usize) {
        self.inner.dims()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        self.inner.param_shapes()
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let p = self.masked(params);
        self.inner.forward(&p, x, z);
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        self.inner.backward_input(dx, &self.masked(params), dz);
    }

    /// `grads[0] += M ⊙ ∂J/∂w`, `grads[1] += ∂J/∂b`.
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let mut g: Vec<Tensor<T>> = grads.iter().map(|t| Tensor::zeros(&t.shape)).collect();
        self.inner.backward_params(&mut g, x, dz);
        for ((d, v), &keep) in grads[0].data.iter_mut().zip(&g[0].data).zip(&self.mask) {
            *d = if keep { *d + *v } else { *d };
        }
        for (d, v) in grads[1..].iter_mut().zip(&g[1..]).flat_map(|(d, v)| d.data.iter_mut().zip(&v.data)) {
            *d += *v;
        }
    }

    /// The convolution's multiplicities, 0 where the mask is 0 (no entry of `W` copies them).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let mut m = self.inner.multiplicity();
        for (v, &keep) in m[0].iter_mut().zip(&self.mask) {
            if !keep {
                *v = 0;
            }
        }
        m
    }
}
