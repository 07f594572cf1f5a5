//! The oracle: convolution, locally connected layers and pooling written from their definitions, one
//! sample at a time, the layers every engine is measured against.
//!
//! The backward passes are the ones the source derivation gives (the input residual is the output residual
//! convolved with the 180°-rotated kernel; the kernel gradient is the input correlated with the residual).
//!
//! **Independent by construction.** It lives with the tests, outside the library, and shares nothing with the
//! engines (`cnn_as_mlp::engines`): not the output-size formula, not the padding modes' index arithmetic, not
//! the layer trait or its shape checks. This module reads the plain fields of [`ConvGeometry`] and [`PoolGeometry`] and derives everything else
//! itself: [`out_size`] counts window positions, [`read`] writes each padding mode from its definition, and
//! [`Reference`] is its own interface. A bug in `geometry.rs` or in a compiled matrix cannot hide in a
//! shared helper. Used by the tests only; no engine can reach it.

mod layers;

use nalgebra::DMatrix;

pub use layers::{AvgPool, Conv, GroupedConv, Local, MaxPool, avgpool_backward, avgpool_forward, conv_backward_input};
pub use layers::{conv_backward_kernel, conv_forward, maxpool_backward, maxpool_forward, pad, pad_adjoint};

use cnn_as_mlp::geometry::{ConvGeometry, PaddingMode, PoolGeometry};
use cnn_as_mlp::scalar::Real;
use cnn_as_mlp::tensor::Tensor;

/// A reference layer `z = W x + b` on (batch, features) column-major activations, the same calling
/// convention as the engines' layers (gradient outputs first; parameter gradients accumulate with `+=`,
/// the input gradient is overwritten), declared here so that the oracle shares no code with them.
pub trait Reference<T: Real> {
    /// `(out_features, in_features)`.
    fn dims(&self) -> (usize, usize);

    /// Names and shapes of the parameter tensors, PyTorch layouts; none by default (pools).
    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        Vec::new()
    }

    /// `z = W x + b`: `x` (B, in), `z` (B, out), overwritten.
    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>);

    /// `d_x = Wᵀ d_z`: `dz` (B, out), `dx` (B, in), overwritten; uses the state of the last `forward`.
    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>);

    /// `grads[i] += ∂J/∂params[i]`; nothing by default (pools have no parameters).
    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let _ = (grads, x, dz);
    }

    /// Each parameter's multiplicity: how many entries of the expanded matrix copy it; none by default.
    fn multiplicity(&self) -> Vec<Vec<u32>> {
        Vec::new()
    }
}

/// Output positions of a window of `k` taps `d` apart, sliding by `s` over `n` cells padded by `p` on each
/// side, counted from the definition: position `o` exists iff its last tap `o·s + d·(k − 1)` lies inside
/// the padded input `[0, n + 2p)`.
pub fn out_size(n: usize, k: usize, s: usize, p: usize, d: usize) -> usize {
    assert!(k > 0 && s > 0 && d > 0, "out_size: k={k}, s={s}, d={d} must be positive");
    (0..).take_while(|o| o * s + d * (k - 1) < n + 2 * p).count()
}

/// The input cell that padded coordinate `i` (`-p <= i < n + p`, shifted so that 0 is the first input cell)
/// reads, or `None` for a zero, by each mode's definition:
///
/// - zeros: every cell outside `[0, n)` is 0;
/// - reflect: mirror at the first and last cell without repeating them (`-1 → 1`, `n → n − 2`);
/// - replicate: the nearest edge cell;
/// - circular: the input repeats with period `n`.
pub fn read(mode: PaddingMode, i: isize, n: usize) -> Option<usize> {
    let n = n as isize;
    let inside = |j: isize| (0 <= j && j < n).then_some(j as usize);
    match mode {
        PaddingMode::Zeros => inside(i),
        PaddingMode::Reflect => {
            // Fold at 0 and at n − 1 until inside (one fold for the paddings PyTorch allows, p < n).
            let mut j = i;
            while inside(j).is_none() {
                assert!(n > 1, "read: reflect padding of a single cell");
                j = if j < 0 { -j } else { 2 * (n - 1) - j };
            }
            inside(j)
        }
        PaddingMode::Replicate => inside(if i < 0 {
            0
        } else if i >= n {
            n - 1
        } else {
            i
        }),
        PaddingMode::Circular => {
            let mut j = i;
            while j < 0 {
                j += n;
            }
            inside(j % n)
        }
    }
}

/// The sliding-window sizes the oracle reads from a geometry: `(h_in, w_in, k, stride, pad, dil)`.
pub(crate) trait Window {
    fn window(&self) -> (usize, usize, usize, usize, usize, usize);
    /// Channels in, channels out.
    fn channels(&self) -> (usize, usize);
}

impl Window for ConvGeometry {
    fn window(&self) -> (usize, usize, usize, usize, usize, usize) {
        (self.h_in, self.w_in, self.k, self.stride, self.pad, self.dil)
    }
    fn channels(&self) -> (usize, usize) {
        (self.c_in, self.c_out)
    }
}

impl Window for PoolGeometry {
    fn window(&self) -> (usize, usize, usize, usize, usize, usize) {
        (self.h_in, self.w_in, self.k, self.stride, 0, 1)
    }
    fn channels(&self) -> (usize, usize) {
        (self.c, self.c)
    }
}

/// Output height ([`out_size`]).
pub(crate) fn h_out(g: &impl Window) -> usize {
    let (h, _, k, s, p, d) = g.window();
    out_size(h, k, s, p, d)
}

/// Output width ([`out_size`]).
pub(crate) fn w_out(g: &impl Window) -> usize {
    let (_, w, k, s, p, d) = g.window();
    out_size(w, k, s, p, d)
}

/// Input features `c_in·h_in·w_in`.
pub(crate) fn in_len(g: &impl Window) -> usize {
    let (h, w, ..) = g.window();
    g.channels().0 * h * w
}

/// Output features `c_out·h_out·w_out`.
pub(crate) fn out_len(g: &impl Window) -> usize {
    g.channels().1 * h_out(g) * w_out(g)
}

/// Calls `f([o, oy, ox, i, ky, kx])` for every tap of a convolution that reads an input value (through
/// [`read`]), outputs, then input channels, then kernel rows and columns in order.
pub(crate) fn for_each_reading_tap(g: &ConvGeometry, mut f: impl FnMut([usize; 6])) {
    let (ho, wo) = (h_out(g), w_out(g));
    let at = |o: usize, kk: usize| (o * g.stride + kk * g.dil) as isize - g.pad as isize;
    for o in 0..g.c_out {
        for oy in 0..ho {
            for ox in 0..wo {
                for i in 0..g.c_in {
                    for ky in 0..g.k {
                        for kx in 0..g.k {
                            if read(g.mode, at(oy, ky), g.h_in).is_some() && read(g.mode, at(ox, kx), g.w_in).is_some()
                            {
                                f([o, oy, ox, i, ky, kx]);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Panics unless the convolution applies: positive sizes, at least one output position, and a padding its
/// mode can produce (reflect below the input size, circular at most the input size, as PyTorch requires).
#[track_caller]
pub(crate) fn checked_conv(what: &str, g: &ConvGeometry) -> ConvGeometry {
    let positive = [g.c_in, g.c_out, g.h_in, g.w_in, g.k, g.stride, g.dil].iter().all(|&v| v > 0);
    assert!(positive, "{what}: every size must be positive: {g:?}");
    assert!(h_out(g) > 0 && w_out(g) > 0, "{what}: the window does not fit the padded input: {g:?}");
    let small = g.h_in.min(g.w_in);
    match g.mode {
        PaddingMode::Reflect => assert!(g.pad < small, "{what}: reflect padding {} must be below {small}", g.pad),
        PaddingMode::Circular => assert!(g.pad <= small, "{what}: circular padding {} exceeds {small}", g.pad),
        _ => {}
    }
    *g
}

/// Panics unless the pooling window fits the input.
#[track_caller]
pub(crate) fn checked_pool(what: &str, g: &PoolGeometry) -> PoolGeometry {
    let positive = [g.c, g.h_in, g.w_in, g.k, g.stride].iter().all(|&v| v > 0);
    assert!(positive, "{what}: every size must be positive: {g:?}");
    assert!(g.k <= g.h_in && g.k <= g.w_in, "{what}: window {} larger than the input: {g:?}", g.k);
    *g
}

/// Panics unless `out_side` is (B, out) and `in_side` is (B, in), `dims = (out, in)`.
#[track_caller]
pub(crate) fn check_io<T: Real>(what: &str, dims: (usize, usize), out_side: &DMatrix<T>, in_side: &DMatrix<T>) {
    let b = out_side.nrows();
    assert!(
        out_side.shape() == (b, dims.0) && in_side.shape() == (b, dims.1),
        "{what}: expected ({b}, {}) and ({b}, {}), got {:?} and {:?}",
        dims.0,
        dims.1,
        out_side.shape(),
        in_side.shape()
    );
}
