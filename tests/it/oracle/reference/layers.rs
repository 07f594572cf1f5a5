//! Convolution, locally connected layers and pooling, forward and backward, written from the definitions.
//!
//! Letters: `B` batch; one sample's input `x` is `(c_in, h_in, w_in)` and its output `y` is
//! `(c_out, h_out, w_out)`, row-major (C, H, W) like the features of a (B, F) activation; kernel `w` is
//! `(c_out, c_in, k, k)`; `s` stride, `p` padding, `d` dilation, `span = d·(k − 1) + 1`.
//!
//! The padded input `x̃ = P x` is `(c_in, h_in + 2p, w_in + 2p)` with
//! `x̃[i, py, px] = x[i, read(py − p), read(px − p)]` (0 where zero padding reads nothing). Then:
//!
//! ```text
//! forward      y[o, oy, ox]   = b[o] + Σ_{i, ky, kx} w[o, i, ky, kx] · x̃[i, oy·s + ky·d, ox·s + kx·d]      (correlation)
//! input        δx̃             = full_correlation(dilate_s(δy), rot180(dilate_d(w)))                          (convolution with the rotated kernel)
//!              δx             = Pᵀ δx̃                                                                        (fold the border back)
//! kernel       δw[o, i, ky, kx] = Σ_{oy, ox} δy[o, oy, ox] · x̃[i, ky·d + oy·s, kx·d + ox·s]                  (input correlated with the residual)
//! bias         δb[o]          = Σ_{oy, ox} δy[o, oy, ox]
//! ```
//!
//! `dilate_s` inserts `s − 1` zeros between residual values, `dilate_d` inserts `d − 1` zeros between
//! kernel taps, and `Pᵀ` is the adjoint of the padding map: the gradient that lands on a border cell of
//! `x̃` is added to the input cell that the border cell reads. None of this reads a compiled matrix: it is
//! the independent derivation the sparse layers are checked against (proofs/T1, T2, T3).
//!
//! Pooling has no padding: max pooling copies the first maximum of each window in row-major window order
//! (as PyTorch) and sends the residual back to it (proofs/T4); mean pooling is `Σ_window x / k²`, summed
//! in row-major window order, and spreads `δy / k²` over the window (proofs/T5).
//!
//! Parallel over samples (forward, input gradient) or output channels (parameter gradients, summing the
//! samples in order inside one task): the bits do not depend on the number of threads.

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::{
    Reference, check_io, checked_conv, checked_pool, for_each_reading_tap, h_out, in_len, out_len, read, w_out,
};
use cnn_as_mlp::geometry::{ConvGeometry, PoolGeometry};
use cnn_as_mlp::scalar::Real;
use cnn_as_mlp::tensor::Tensor;

/// `(h_in + 2p, w_in + 2p)`: the padded input's spatial size.
fn padded_size(g: &ConvGeometry) -> (usize, usize) {
    (g.h_in + 2 * g.pad, g.w_in + 2 * g.pad)
}

/// `x̃ = P x`: one sample `(c_in, h_in, w_in)` to its padded input `(c_in, h_in + 2p, w_in + 2p)` through
/// [`super::read`], the padding written from its definition.
pub fn pad<T: Real>(g: &ConvGeometry, x: &[T]) -> Vec<T> {
    let (hp, wp) = padded_size(g);
    let mut xp = vec![T::zero(); g.c_in * hp * wp];
    for i in 0..g.c_in {
        for py in 0..hp {
            let Some(iy) = read(g.mode, py as isize - g.pad as isize, g.h_in) else { continue };
            for px in 0..wp {
                let Some(ix) = read(g.mode, px as isize - g.pad as isize, g.w_in) else { continue };
                xp[(i * hp + py) * wp + px] = x[(i * g.h_in + iy) * g.w_in + ix];
            }
        }
    }
    xp
}

/// `δx += Pᵀ δx̃`: the adjoint of [`pad`]. Each cell of the padded gradient `(c_in, h_in + 2p, w_in + 2p)`
/// is added to the input cell it was read from; cells of the zero padding read nothing and are dropped.
pub fn pad_adjoint<T: Real>(g: &ConvGeometry, dxp: &[T], dx: &mut [T]) {
    let (hp, wp) = padded_size(g);
    for i in 0..g.c_in {
        for py in 0..hp {
            let Some(iy) = read(g.mode, py as isize - g.pad as isize, g.h_in) else { continue };
            for px in 0..wp {
                let Some(ix) = read(g.mode, px as isize - g.pad as isize, g.w_in) else { continue };
                dx[(i * g.h_in + iy) * g.w_in + ix] += dxp[(i * hp + py) * wp + px];
            }
        }
    }
}

/// Forward correlation of one sample: `y[o, oy, ox] = bias[o] + Σ_{i,ky,kx} w[o,i,ky,kx] · x̃[i, oy·s + ky·d, ox·s + kx·d]`.
/// `xp` is the padded input ([`pad`]), `y` `(c_out, h_out, w_out)` is overwritten.
pub fn conv_forward<T: Real>(g: &ConvGeometry, w: &[T], bias: &[T], xp: &[T], y: &mut [T]) {
    let (hp, wp) = padded_size(g);
    let (h_out, w_out, k, s, d) = (h_out(g), w_out(g), g.k, g.stride, g.dil);
    for o in 0..g.c_out {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let mut acc = bias[o];
                for i in 0..g.c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            let wv = w[((o * g.c_in + i) * k + ky) * k + kx];
                            acc += wv * xp[(i * hp + oy * s + ky * d) * wp + ox * s + kx * d];
                        }
                    }
                }
                y[(o * h_out + oy) * w_out + ox] = acc;
            }
        }
    }
}

/// Input gradient of one sample, as the source derives it: the residual `δy` `(c_out, h_out, w_out)`,
/// dilated by the stride, is fully correlated with the dilated kernel rotated by 180° (a full
/// convolution with the kernel), and the padded gradient is folded back through the padding map.
/// `dx` `(c_in, h_in, w_in)` is overwritten.
pub fn conv_backward_input<T: Real>(g: &ConvGeometry, dx: &mut [T], w: &[T], dy: &[T]) {
    let (h_out, w_out, k, s, d) = (h_out(g), w_out(g), g.k, g.stride, g.dil);
    let span = d * (k - 1) + 1;
    let e = span - 1;
    // 1. Residual dilated by s (s − 1 zeros between values), then zero-padded by span − 1 on every side
    //    for the full correlation: (c_out, hd + 2e, wd + 2e), hd = (h_out − 1)·s + 1.
    let (hd, wd) = ((h_out - 1) * s + 1, (w_out - 1) * s + 1);
    let (hf, wf) = (hd + 2 * e, wd + 2 * e);
    let mut dyf = vec![T::zero(); g.c_out * hf * wf];
    for o in 0..g.c_out {
        for oy in 0..h_out {
            for ox in 0..w_out {
                dyf[(o * hf + e + oy * s) * wf + e + ox * s] = dy[(o * h_out + oy) * w_out + ox];
            }
        }
    }
    // 2. Kernel dilated by d and rotated by 180°: rot[o, i, a, b] = w_d[o, i, span − 1 − a, span − 1 − b],
    //    (c_out, c_in, span, span), where w_d[o, i, ky·d, kx·d] = w[o, i, ky, kx] and 0 between taps.
    let mut rot = vec![T::zero(); g.c_out * g.c_in * span * span];
    for o in 0..g.c_out {
        for i in 0..g.c_in {
            for ky in 0..k {
                for kx in 0..k {
                    let (a, b) = (span - 1 - ky * d, span - 1 - kx * d);
                    rot[((o * g.c_in + i) * span + a) * span + b] = w[((o * g.c_in + i) * k + ky) * k + kx];
                }
            }
        }
    }
    // 3. Full correlation: δx̃[i, py, px] = Σ_{o, a, b} rot[o, i, a, b] · dyf[o, py + a, px + b], for
    //    py < hd + e = (h_out − 1)·s + span (no window reaches the padded rows and columns beyond: 0).
    let (hp, wp) = padded_size(g);
    let mut dxp = vec![T::zero(); g.c_in * hp * wp];
    for i in 0..g.c_in {
        for py in 0..hd + e {
            for px in 0..wd + e {
                let mut acc = T::zero();
                for o in 0..g.c_out {
                    for a in 0..span {
                        for b in 0..span {
                            acc += rot[((o * g.c_in + i) * span + a) * span + b] * dyf[(o * hf + py + a) * wf + px + b];
                        }
                    }
                }
                dxp[(i * hp + py) * wp + px] = acc;
            }
        }
    }
    // 4. Fold the padded gradient back onto the input: δx = Pᵀ δx̃.
    dx.iter_mut().for_each(|v| *v = T::zero());
    pad_adjoint(g, &dxp, dx);
}

/// Kernel gradient of output channel `o` for one sample, the padded input correlated with the
/// stride-dilated residual: `dw_o[i, ky, kx] += Σ_{oy,ox} δy[o, oy, ox] · x̃[i, ky·d + oy·s, kx·d + ox·s]`.
/// `dw_o` is `(c_in, k, k)`.
pub fn conv_backward_kernel<T: Real>(g: &ConvGeometry, dw_o: &mut [T], o: usize, xp: &[T], dy: &[T]) {
    let (hp, wp) = padded_size(g);
    let (h_out, w_out, k, s, d) = (h_out(g), w_out(g), g.k, g.stride, g.dil);
    let dy_o = &dy[o * h_out * w_out..(o + 1) * h_out * w_out];
    for i in 0..g.c_in {
        for ky in 0..k {
            for kx in 0..k {
                let mut acc = T::zero();
                for oy in 0..h_out {
                    for ox in 0..w_out {
                        acc += dy_o[oy * w_out + ox] * xp[(i * hp + ky * d + oy * s) * wp + kx * d + ox * s];
                    }
                }
                dw_o[(i * k + ky) * k + kx] += acc;
            }
        }
    }
}

/// The batch as one sample per column: `(F, B)` column-major, sample `b` contiguous.
fn by_sample<T: Real>(m: &DMatrix<T>) -> DMatrix<T> {
    m.transpose()
}

/// Sample `b` of a [`by_sample`] matrix.
fn sample<T: Real>(m: &DMatrix<T>, b: usize) -> &[T] {
    let f = m.nrows();
    &m.as_slice()[b * f..(b + 1) * f]
}

/// `out[b, :] = f(b, input[b, :])` for every sample in parallel (each task owns one sample's output).
fn per_sample<T: Real>(input: &DMatrix<T>, out: &mut DMatrix<T>, f: impl Fn(&[T], &mut [T]) + Sync) {
    let batch = input.nrows();
    let it = by_sample(input); // (F_in, B)
    let mut ot = DMatrix::<T>::zeros(out.ncols(), batch); // (F_out, B)
    ot.as_mut_slice().par_chunks_mut(out.ncols().max(1)).enumerate().for_each(|(b, ob)| f(sample(&it, b), ob));
    out.tr_copy_from(&ot);
}

/// A convolution computed directly: weight `(c_out, c_in, k, k)`, bias `(c_out)`.
#[derive(Clone, Debug)]
pub struct Conv {
    pub geometry: ConvGeometry,
}

impl Conv {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        Conv { geometry: checked_conv("reference::Conv", g) }
    }
}

impl<T: Real> Reference<T> for Conv {
    fn dims(&self) -> (usize, usize) {
        (out_len(&self.geometry), in_len(&self.geometry))
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let g = &self.geometry;
        vec![("weight", vec![g.c_out, g.c_in, g.k, g.k]), ("bias", vec![g.c_out])]
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct conv forward", Reference::<T>::dims(self), z, x);
        let g = &self.geometry;
        let (w, b) = (&params[0].data, &params[1].data);
        per_sample(x, z, |xb, zb| conv_forward(g, w, b, &pad(g, xb), zb));
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct conv backward", Reference::<T>::dims(self), dz, dx);
        let g = &self.geometry;
        let w = &params[0].data;
        per_sample(dz, dx, |dzb, dxb| conv_backward_input(g, dxb, w, dzb));
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("direct conv backward", Reference::<T>::dims(self), dz, x);
        let g = &self.geometry;
        let batch = x.nrows();
        let (xt, dzt) = (by_sample(x), by_sample(dz));
        let xps: Vec<Vec<T>> = (0..batch).into_par_iter().map(|b| pad(g, sample(&xt, b))).collect();
        // Output channels in parallel; inside, samples in order.
        grads[0].data.par_chunks_mut(g.c_in * g.k * g.k).enumerate().for_each(|(o, dw_o)| {
            for (b, xp) in xps.iter().enumerate() {
                conv_backward_kernel(g, dw_o, o, xp, sample(&dzt, b));
            }
        });
        // δb[o] += Σ_b Σ_{oy,ox} δy[b, o, oy, ox].
        let plane = h_out(g) * w_out(g);
        for (o, db) in grads[1].data.iter_mut().enumerate() {
            for b in 0..batch {
                *db += sample(&dzt, b)[o * plane..(o + 1) * plane].iter().fold(T::zero(), |s, &v| s + v);
            }
        }
    }

    /// Taps per kernel entry that read an input value (`for_each_reading_tap`); `h_out·w_out` per
    /// bias.
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let g = &self.geometry;
        let mut m = vec![0u32; g.c_out * g.c_in * g.k * g.k];
        for_each_reading_tap(g, |[o, _, _, i, ky, kx]| m[((o * g.c_in + i) * g.k + ky) * g.k + kx] += 1);
        vec![m, vec![(h_out(g) * w_out(g)) as u32; g.c_out]]
    }
}

/// A grouped convolution by its definition: the plain convolution with the block-diagonal kernel
/// `w_full[o, i] = w[o, i − grp(o)·(c_in/G)]` when input channel `i` is in output channel `o`'s group
/// (`grp(o) = o / (c_out/G)`, `i / (c_in/G) = grp(o)`), and 0 otherwise. The kernel gradient is the
/// full kernel's gradient read back at the entries that exist. Weight `(c_out, c_in/G, k, k)`, bias
/// `(c_out)`, as PyTorch's `nn.Conv2d(groups=G)`.
#[derive(Clone, Debug)]
pub struct GroupedConv {
    pub full: Conv,
    pub groups: usize,
}

impl GroupedConv {
    /// # Panics
    /// If the geometry does not apply or `groups` does not divide `c_in` and `c_out`.
    #[track_caller]
    pub fn new(g: &ConvGeometry, groups: usize) -> Self {
        assert!(
            groups > 0 && g.c_in.is_multiple_of(groups) && g.c_out.is_multiple_of(groups),
            "reference::GroupedConv: groups={groups} must divide c_in={} and c_out={}",
            g.c_in,
            g.c_out
        );
        GroupedConv { full: Conv::new(g), groups }
    }

    /// For each entry `(o, j, ky, kx)` of the grouped kernel, its index in the full `(c_out, c_in, k, k)`
    /// kernel.
    fn full_index(&self) -> Vec<usize> {
        let g = &self.full.geometry;
        let (cig, cog, k) = (g.c_in / self.groups, g.c_out / self.groups, g.k);
        let mut idx = Vec::with_capacity(g.c_out * cig * k * k);
        for o in 0..g.c_out {
            for j in 0..cig {
                let i = (o / cog) * cig + j;
                for t in 0..k * k {
                    idx.push((o * g.c_in + i) * k * k + t);
                }
            }
        }
        idx
    }

    /// The full kernel and the bias: zeros outside the groups.
    fn expand<T: Real>(&self, params: &[Tensor<T>]) -> Vec<Tensor<T>> {
        let g = &self.full.geometry;
        let mut w = Tensor::zeros(&[g.c_out, g.c_in, g.k, g.k]);
        for (e, f) in self.full_index().into_iter().enumerate() {
            w.data[f] = params[0].data[e];
        }
        vec![w, params[1].clone()]
    }
}

impl<T: Real> Reference<T> for GroupedConv {
    fn dims(&self) -> (usize, usize) {
        Reference::<T>::dims(&self.full)
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let g = &self.full.geometry;
        vec![("weight", vec![g.c_out, g.c_in / self.groups, g.k, g.k]), ("bias", vec![g.c_out])]
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let full = self.expand(params);
        self.full.forward(&full, x, z);
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        self.full.backward_input(dx, &self.expand(params), dz);
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let g = &self.full.geometry;
        let mut full = vec![Tensor::zeros(&[g.c_out, g.c_in, g.k, g.k]), Tensor::zeros(&[g.c_out])];
        self.full.backward_params(&mut full, x, dz);
        for (e, f) in self.full_index().into_iter().enumerate() {
            grads[0].data[e] += full[0].data[f];
        }
        for (d, v) in grads[1].data.iter_mut().zip(&full[1].data) {
            *d += *v;
        }
    }

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let m = Reference::<T>::multiplicity(&self.full);
        vec![self.full_index().into_iter().map(|f| m[0][f]).collect(), m[1].clone()]
    }
}

/// A locally connected layer computed directly: the convolution's windows with untied weights
/// `(c_out, h_out, w_out, c_in, k, k)` and biases `(c_out, h_out, w_out)`.
///
/// ```text
/// forward   y[o, oy, ox] = b[o, oy, ox] + Σ_{i,ky,kx} w[o, oy, ox, i, ky, kx] · x̃[i, oy·s + ky·d, ox·s + kx·d]
/// input     δx̃[i, oy·s + ky·d, ox·s + kx·d] += w[o, oy, ox, i, ky, kx] · δy[o, oy, ox],   δx = Pᵀ δx̃
/// kernel    δw[o, oy, ox, i, ky, kx] += δy[o, oy, ox] · x̃[i, oy·s + ky·d, ox·s + kx·d]
/// ```
///
/// (Untied, the transpose has no single kernel to rotate: each output sends its residual back along its
/// own weights.)
#[derive(Clone, Debug)]
pub struct Local {
    pub geometry: ConvGeometry,
}

impl Local {
    /// # Panics
    /// If the geometry does not apply ([`ConvGeometry::check`]).
    #[track_caller]
    pub fn new(g: &ConvGeometry) -> Self {
        Local { geometry: checked_conv("reference::Local", g) }
    }

    /// Weights per output position: `c_in·k·k`.
    fn taps(&self) -> usize {
        self.geometry.c_in * self.geometry.k * self.geometry.k
    }

    /// Calls `f(row, tap, xp_index)` for every output `row = (o, oy, ox)` of channel `o`, weight
    /// `tap = (i, ky, kx)` and the padded-input cell it reads.
    fn for_each_weight_of(&self, o: usize, mut f: impl FnMut(usize, usize, usize)) {
        let g = &self.geometry;
        let (hp, wp) = padded_size(g);
        let (h_out, w_out, k, s, d) = (h_out(g), w_out(g), g.k, g.stride, g.dil);
        for oy in 0..h_out {
            for ox in 0..w_out {
                let row = (o * h_out + oy) * w_out + ox;
                for i in 0..g.c_in {
                    for ky in 0..k {
                        for kx in 0..k {
                            f(row, (i * k + ky) * k + kx, (i * hp + oy * s + ky * d) * wp + ox * s + kx * d);
                        }
                    }
                }
            }
        }
    }

    /// [`Self::for_each_weight_of`] over every output channel, in order.
    fn for_each_weight(&self, mut f: impl FnMut(usize, usize, usize)) {
        for o in 0..self.geometry.c_out {
            self.for_each_weight_of(o, &mut f);
        }
    }
}

impl<T: Real> Reference<T> for Local {
    fn dims(&self) -> (usize, usize) {
        (out_len(&self.geometry), in_len(&self.geometry))
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let g = &self.geometry;
        let (h_out, w_out) = (h_out(g), w_out(g));
        vec![("weight", vec![g.c_out, h_out, w_out, g.c_in, g.k, g.k]), ("bias", vec![g.c_out, h_out, w_out])]
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct local forward", Reference::<T>::dims(self), z, x);
        let (w, b) = (&params[0].data, &params[1].data);
        let taps = self.taps();
        per_sample(x, z, |xb, zb| {
            let xp = pad(&self.geometry, xb);
            zb.copy_from_slice(b);
            self.for_each_weight(|row, tap, q| zb[row] += w[row * taps + tap] * xp[q]);
        });
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct local backward", Reference::<T>::dims(self), dz, dx);
        let g = &self.geometry;
        let w = &params[0].data;
        let taps = self.taps();
        let (hp, wp) = padded_size(g);
        per_sample(dz, dx, |dzb, dxb| {
            let mut dxp = vec![T::zero(); g.c_in * hp * wp];
            self.for_each_weight(|row, tap, q| dxp[q] += w[row * taps + tap] * dzb[row]);
            dxb.iter_mut().for_each(|v| *v = T::zero());
            pad_adjoint(g, &dxp, dxb);
        });
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        check_io("direct local backward", Reference::<T>::dims(self), dz, x);
        let g = &self.geometry;
        let batch = x.nrows();
        let (xt, dzt) = (by_sample(x), by_sample(dz));
        let xps: Vec<Vec<T>> = (0..batch).into_par_iter().map(|b| pad(g, sample(&xt, b))).collect();
        let taps = self.taps();
        let plane = h_out(g) * w_out(g);
        // Output channels in parallel; inside, samples in order.
        grads[0].data.par_chunks_mut(plane * taps).enumerate().for_each(|(o, dw_o)| {
            for (b, xp) in xps.iter().enumerate() {
                let dzb = sample(&dzt, b);
                self.for_each_weight_of(o, |row, tap, q| dw_o[(row - o * plane) * taps + tap] += dzb[row] * xp[q]);
            }
        });
        for (row, db) in grads[1].data.iter_mut().enumerate() {
            for b in 0..batch {
                *db += sample(&dzt, b)[row];
            }
        }
    }

    /// One per tap that reads an input value (zero-padding taps copy nothing); one per bias.
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let g = &self.geometry;
        let (h_out, w_out) = (h_out(g), w_out(g));
        let taps = self.taps();
        let mut m = vec![0u32; out_len(g) * taps];
        for_each_reading_tap(g, |[o, oy, ox, i, ky, kx]| {
            let row = (o * h_out + oy) * w_out + ox;
            m[row * taps + (i * g.k + ky) * g.k + kx] += 1;
        });
        vec![m, vec![1; out_len(g)]]
    }
}

/// Input feature of window `(c, oy, ox)`'s cell `(ky, kx)` within one sample.
#[inline]
fn window_cell(g: &PoolGeometry, c: usize, oy: usize, ox: usize, ky: usize, kx: usize) -> usize {
    (c * g.h_in + oy * g.stride + ky) * g.w_in + ox * g.stride + kx
}

/// Max pooling of one sample: `y[c, oy, ox] = x[win]`, `win` the first maximum of the window in
/// row-major window order; the winners are written to `win` (one input feature per output).
pub fn maxpool_forward<T: Real>(g: &PoolGeometry, x: &[T], y: &mut [T], win: &mut [u32]) {
    let (h_out, w_out) = (h_out(g), w_out(g));
    for c in 0..g.c {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let mut best = window_cell(g, c, oy, ox, 0, 0);
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        let j = window_cell(g, c, oy, ox, ky, kx);
                        // Strictly larger: on ties the earlier cell stays.
                        if x[j] > x[best] {
                            best = j;
                        }
                    }
                }
                let r = (c * h_out + oy) * w_out + ox;
                y[r] = x[best];
                win[r] = best as u32;
            }
        }
    }
}

/// Max pooling backward of one sample: `δx[win[r]] += δy[r]`, outputs in order; `dx` overwritten.
pub fn maxpool_backward<T: Real>(dx: &mut [T], win: &[u32], dy: &[T]) {
    dx.iter_mut().for_each(|v| *v = T::zero());
    for (&j, &d) in win.iter().zip(dy) {
        dx[j as usize] += d;
    }
}

/// Mean pooling of one sample: `y[c, oy, ox] = Σ_{ky,kx} (1/k²) · x[c, oy·s + ky, ox·s + kx]`, summed in
/// row-major window order.
pub fn avgpool_forward<T: Real>(g: &PoolGeometry, x: &[T], y: &mut [T]) {
    let inv = T::of(1.0 / (g.k * g.k) as f64);
    let (h_out, w_out) = (h_out(g), w_out(g));
    for c in 0..g.c {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let mut acc = T::zero();
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        acc += inv * x[window_cell(g, c, oy, ox, ky, kx)];
                    }
                }
                y[(c * h_out + oy) * w_out + ox] = acc;
            }
        }
    }
}

/// Mean pooling backward of one sample: each output spreads `δy / k²` over its window, outputs in order;
/// `dx` overwritten.
pub fn avgpool_backward<T: Real>(g: &PoolGeometry, dx: &mut [T], dy: &[T]) {
    let inv = T::of(1.0 / (g.k * g.k) as f64);
    let (h_out, w_out) = (h_out(g), w_out(g));
    dx.iter_mut().for_each(|v| *v = T::zero());
    for c in 0..g.c {
        for oy in 0..h_out {
            for ox in 0..w_out {
                let d = dy[(c * h_out + oy) * w_out + ox];
                for ky in 0..g.k {
                    for kx in 0..g.k {
                        dx[window_cell(g, c, oy, ox, ky, kx)] += inv * d;
                    }
                }
            }
        }
    }
}

/// Max pooling computed directly; remembers the winners of the last forward pass.
#[derive(Clone, Debug)]
pub struct MaxPool {
    pub geometry: PoolGeometry,
    /// Winners of the last forward pass: sample `b`'s at `[b·out, (b + 1)·out)`, input features of the sample.
    winners: Vec<u32>,
}

impl MaxPool {
    /// # Panics
    /// If the window does not fit ([`PoolGeometry::check`]).
    #[track_caller]
    pub fn new(g: &PoolGeometry) -> Self {
        MaxPool { geometry: checked_pool("reference::MaxPool", g), winners: Vec::new() }
    }
}

impl<T: Real> Reference<T> for MaxPool {
    fn dims(&self) -> (usize, usize) {
        (out_len(&self.geometry), in_len(&self.geometry))
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct maxpool forward", Reference::<T>::dims(self), z, x);
        let g = self.geometry;
        let (batch, out) = (x.nrows(), out_len(&g));
        self.winners.resize(batch * out, 0);
        let xt = by_sample(x);
        let mut zt = DMatrix::<T>::zeros(out, batch);
        zt.as_mut_slice()
            .par_chunks_mut(out)
            .zip(self.winners.par_chunks_mut(out))
            .enumerate()
            .for_each(|(b, (zb, wb))| maxpool_forward(&g, sample(&xt, b), zb, wb));
        z.tr_copy_from(&zt);
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct maxpool backward", Reference::<T>::dims(self), dz, dx);
        let (batch, out) = (dz.nrows(), out_len(&self.geometry));
        assert_eq!(self.winners.len(), batch * out, "direct maxpool backward: no forward pass at batch {batch}");
        let dzt = by_sample(dz);
        let mut dxt = DMatrix::<T>::zeros(in_len(&self.geometry), batch);
        dxt.as_mut_slice()
            .par_chunks_mut(in_len(&self.geometry))
            .enumerate()
            .for_each(|(b, dxb)| maxpool_backward(dxb, &self.winners[b * out..(b + 1) * out], sample(&dzt, b)));
        dx.tr_copy_from(&dxt);
    }
}

/// Mean pooling computed directly.
#[derive(Clone, Debug)]
pub struct AvgPool {
    pub geometry: PoolGeometry,
}

impl AvgPool {
    /// # Panics
    /// If the window does not fit ([`PoolGeometry::check`]).
    #[track_caller]
    pub fn new(g: &PoolGeometry) -> Self {
        AvgPool { geometry: checked_pool("reference::AvgPool", g) }
    }
}

impl<T: Real> Reference<T> for AvgPool {
    fn dims(&self) -> (usize, usize) {
        (out_len(&self.geometry), in_len(&self.geometry))
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        check_io("direct avgpool forward", Reference::<T>::dims(self), z, x);
        let g = self.geometry;
        per_sample(x, z, |xb, zb| avgpool_forward(&g, xb, zb));
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        check_io("direct avgpool backward", Reference::<T>::dims(self), dz, dx);
        let g = self.geometry;
        per_sample(dz, dx, |dzb, dxb| avgpool_backward(&g, dxb, dzb));
    }
}
