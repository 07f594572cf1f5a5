//! Max pooling: a data-dependent 0/1 selection over a compiled window pattern.
//!
//! The pattern is the mean-pooling matrix's (constant 1). For sample `b`, the forward pass keeps in row
//! `r` only the nonzero whose input is largest, the first in row-major window order on ties (as PyTorch):
//! `z[b, r] = x[b, win[b, r]]`; the backward pass sends `d_z[b, r]` to `win[b, r]`. See proofs/T4.

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::avgpool::compile_pool;
use super::{LinearMap, assert_shape};
use crate::geometry::PoolGeometry;
use crate::scalar::Real;
use crate::tensor::Tensor;
use crate::tied::TiedMatrix;

/// A max-pooling layer: the window pattern and the winners of the last forward pass.
#[derive(Clone, Debug)]
pub struct MaxPool {
    pub geometry: PoolGeometry,
    /// The window pattern (every nonzero the constant 1): (c·h_out·w_out, c·h_in·w_in).
    pub pattern: TiedMatrix,
    /// Winners of the last forward pass: input feature of row `r` for sample `b` at `[r·B + b]`, (B, out).
    winners: Vec<u32>,
}

impl MaxPool {
    /// Compiles the window pattern of `g`.
    pub fn new(g: &PoolGeometry) -> Self {
        MaxPool { geometry: *g, pattern: compile_pool(g, 1.0), winners: Vec::new() }
    }

    /// Winners of the last forward pass, (B, out) column-major.
    pub fn winners(&self) -> &[u32] {
        &self.winners
    }
}

impl<T: Real> LinearMap<T> for MaxPool {
    fn dims(&self) -> (usize, usize) {
        self.pattern.shape()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let (rows, cols) = self.pattern.shape();
        let batch = x.nrows();
        assert_shape("maxpool forward x", x, batch, cols);
        assert_shape("maxpool forward z", z, batch, rows);
        self.winners.resize(batch * rows, 0);
        let map = self.pattern.map();
        let (indptr, indices) = (map.indptr(), map.indices());
        let indptr = indptr.raw_storage();
        let x = x.as_slice();
        // Rows in parallel: z[b, r] = max over the row's columns, first maximum wins.
        z.as_mut_slice().par_chunks_mut(batch).zip(self.winners.par_chunks_mut(batch)).enumerate().for_each(
            |(r, (zr, wr))| {
                let cols = &indices[indptr[r] as usize..indptr[r + 1] as usize];
                let c0 = cols[0] as usize;
                zr.copy_from_slice(&x[c0 * batch..(c0 + 1) * batch]);
                wr.iter_mut().for_each(|w| *w = c0 as u32);
                for &c in &cols[1..] {
                    let xc = &x[c as usize * batch..(c as usize + 1) * batch];
                    for b in 0..batch {
                        if xc[b] > zr[b] {
                            zr[b] = xc[b];
                            wr[b] = c;
                        }
                    }
                }
            },
        );
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        let g = self.geometry;
        let (rows, cols) = self.pattern.shape();
        let batch = dz.nrows();
        assert_shape("maxpool backward dz", dz, batch, rows);
        assert_shape("maxpool backward dx", dx, batch, cols);
        assert_eq!(self.winners.len(), batch * rows, "maxpool backward: no forward pass at batch {batch}");
        let (in_plane, out_plane) = (g.h_in * g.w_in, g.h_out() * g.w_out());
        let dz = dz.as_slice();
        // Channels in parallel: channel c's rows select only channel c's inputs. Within a channel,
        // rows in order: d_x[b, win[b, r]] += d_z[b, r].
        dx.as_mut_slice().par_chunks_mut(batch * in_plane).enumerate().for_each(|(c, dxc)| {
            dxc.iter_mut().for_each(|v| *v = T::zero());
            for r in c * out_plane..(c + 1) * out_plane {
                for b in 0..batch {
                    let w = self.winners[r * batch + b] as usize - c * in_plane;
                    dxc[w * batch + b] += dz[r * batch + b];
                }
            }
        });
    }

    fn backward_params(&mut self, _grads: &mut [Tensor<T>], _x: &DMatrix<T>, _dz: &DMatrix<T>) {}

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        Vec::new()
    }

    fn tied(&self) -> Option<&TiedMatrix> {
        Some(&self.pattern)
    }
}
