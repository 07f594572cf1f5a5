//! A grouped convolution on the dense engines (direct, im2col): `G` independent convolutions side by side.
//!
//! With `G` groups, input channels `g·(c_in/G) .. (g+1)·(c_in/G)` feed only output channels
//! `g·(c_out/G) .. (g+1)·(c_out/G)`, through weight rows `g·(c_out/G) ..` of the `(c_out, c_in/G, k, k)`
//! tensor (PyTorch's `nn.Conv2d(groups=G)`). Features flatten as (C, H, W), C slowest, and activations are
//! (B, F) column-major, so group `g`'s input is one contiguous block of columns, `(B, (c_in/G)·h_in·w_in)`,
//! and its output another, `(B, (c_out/G)·h_out·w_out)`; its weight and bias are contiguous slices too. Each
//! group runs the engine's own convolution on `c_in/G → c_out/G` channels: the dense engines compute every
//! group in full, and have no way to skip the connections between groups other than not making them.
//! (The sparse engine compiles one matrix without the cross-group nonzeros instead,
//! [`super::sparse::grouped_conv_layer`].)

use nalgebra::DMatrix;

use super::engine::Engine;
use super::{direct, im2col};
use crate::geometry::ConvGeometry;
use crate::linear_map::{LinearMap, check_io};
use crate::scalar::Real;
use crate::tensor::Tensor;

/// `G` convolutions of `c_in/G → c_out/G` channels on consecutive channel blocks.
pub struct Grouped<T: Real> {
    /// The whole layer's geometry (all channels).
    pub geometry: ConvGeometry,
    pub groups: usize,
    /// One convolution per group, geometry `c_in/G → c_out/G`.
    inner: Vec<Box<dyn LinearMap<T>>>,
}

impl<T: Real> Clone for Grouped<T> {
    /// Replicas of the groups' convolutions (fresh scratch).
    fn clone(&self) -> Self {
        Grouped {
            geometry: self.geometry,
            groups: self.groups,
            inner: self.inner.iter().map(|m| m.replica()).collect(),
        }
    }
}

impl<T: Real> Grouped<T> {
    /// # Panics
    /// If the geometry does not apply, `groups` does not divide `c_in` and `c_out`, or `engine` is the
    /// sparse engine (which compiles groups into its matrix).
    #[track_caller]
    pub fn new(g: &ConvGeometry, groups: usize, engine: Engine) -> Self {
        let g = g.checked("Grouped");
        assert!(
            groups > 0 && g.c_in.is_multiple_of(groups) && g.c_out.is_multiple_of(groups),
            "Grouped: groups={groups} must divide c_in={} and c_out={}",
            g.c_in,
            g.c_out
        );
        let part = ConvGeometry { c_in: g.c_in / groups, c_out: g.c_out / groups, ..g };
        let inner = (0..groups)
            .map(|_| -> Box<dyn LinearMap<T>> {
                match engine {
                    Engine::Direct => Box::new(direct::DirectConv::new(&part)),
                    Engine::Im2col => Box::new(im2col::Im2colConv::<T>::new(&part)),
                    Engine::Sparse => panic!("Grouped: the sparse engine compiles groups into its matrix"),
                }
            })
            .collect();
        Grouped { geometry: g, groups, inner }
    }

    /// Features per group: `((c_in/G)·h_in·w_in, (c_out/G)·h_out·w_out)`.
    fn block(&self) -> (usize, usize) {
        let g = &self.geometry;
        (g.in_len() / self.groups, g.out_len() / self.groups)
    }

    /// Elements per group of the weight `(c_out/G)·(c_in/G)·k·k` and the bias `c_out/G`.
    fn param_block(&self) -> (usize, usize) {
        let g = &self.geometry;
        (g.c_out / self.groups * (g.c_in / self.groups) * g.k * g.k, g.c_out / self.groups)
    }

    /// Group `gi`'s weight and bias tensors, copied from the layer's.
    fn group_params(&self, params: &[Tensor<T>], gi: usize) -> Vec<Tensor<T>> {
        let (pw, pb) = self.param_block();
        let g = &self.geometry;
        let (cog, cig) = (g.c_out / self.groups, g.c_in / self.groups);
        vec![
            Tensor::from_vec(&[cog, cig, g.k, g.k], params[0].data[gi * pw..(gi + 1) * pw].to_vec()),
            Tensor::from_vec(&[cog], params[1].data[gi * pb..(gi + 1) * pb].to_vec()),
        ]
    }
}

/// Columns `gi·n .. (gi+1)·n` of `m` (B, ·) as their own (B, n) matrix.
fn columns<T: Real>(m: &DMatrix<T>, gi: usize, n: usize) -> DMatrix<T> {
    let b = m.nrows();
    DMatrix::from_column_slice(b, n, &m.as_slice()[gi * n * b..(gi + 1) * n * b])
}

/// Writes `part` (B, n) into columns `gi·n .. (gi+1)·n` of `m`.
fn set_columns<T: Real>(m: &mut DMatrix<T>, gi: usize, part: &DMatrix<T>) {
    let len = part.len();
    m.as_mut_slice()[gi * len..(gi + 1) * len].copy_from_slice(part.as_slice());
}

impl<T: Real> LinearMap<T> for Grouped<T> {
    fn dims(&self) -> (usize, usize) {
        self.geometry.dims()
    }

    /// Weight `(c_out, c_in/G, k, k)`, bias `(c_out)`.
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let g = &self.geometry;
        vec![("weight", vec![g.c_out, g.c_in / self.groups, g.k, g.k]), ("bias", vec![g.c_out])]
    }

    /// `z[:, group gi] = conv_gi(x[:, group gi])` for each group.
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("grouped conv forward", self.dims(), z, x);
        let (ni, no) = self.block();
        for gi in 0..self.groups {
            let p = self.group_params(params, gi);
            let xg = columns(x, gi, ni); // (B, (c_in/G)·h_in·w_in)
            let mut zg = DMatrix::zeros(x.nrows(), no); // (B, (c_out/G)·h_out·w_out)
            self.inner[gi].forward(&p, &xg, &mut zg);
            set_columns(z, gi, &zg);
        }
    }

    /// `dx[:, group gi] = conv_giᵀ dz[:, group gi]`.
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("grouped conv backward", self.dims(), dz, dx);
        let (ni, no) = self.block();
        for gi in 0..self.groups {
            let p = self.group_params(params, gi);
            let dzg = columns(dz, gi, no);
            let mut dxg = DMatrix::zeros(dz.nrows(), ni);
            self.inner[gi].backward_input(&mut dxg, &p, &dzg);
            set_columns(dx, gi, &dxg);
        }
    }

    /// Each group's weight and bias gradients accumulate into their slices of `grads`.
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("grouped conv backward", self.dims(), dz, x);
        let (ni, no) = self.block();
        let (pw, pb) = self.param_block();
        for gi in 0..self.groups {
            let mut gg = self.group_params(grads, gi);
            self.inner[gi].backward_params(&mut gg, &columns(x, gi, ni), &columns(dz, gi, no));
            grads[0].data[gi * pw..(gi + 1) * pw].copy_from_slice(&gg[0].data);
            grads[1].data[gi * pb..(gi + 1) * pb].copy_from_slice(&gg[1].data);
        }
    }

    /// The groups' multiplicities, in group order (each group's weight rows and biases are consecutive).
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let mut m = vec![Vec::new(), Vec::new()];
        for inner in &self.inner {
            for (all, part) in m.iter_mut().zip(inner.multiplicity()) {
                all.extend(part);
            }
        }
        m
    }
}
