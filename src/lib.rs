//! # cnn-as-mlp
//!
//! Convolutional networks trained as what they are: multilayer perceptrons with sparse, weight-tied
//! matrices. Each convolution and pooling layer is compiled into an explicit sparse matrix whose nonzeros
//! point into a shared kernel ([`tied`]); one MLP backpropagation routine ([`network`]) trains every
//! network; gradients of the nonzeros are scattered back into the kernels.
//!
//! Layout: activations are (batch, features) column-major `nalgebra::DMatrix`, features flattened as
//! (C, H, W) like PyTorch's NCHW.
//!
//! # Example
//!
//! Build a network from a spec string, run a forward pass and a loss with its gradient on a small seeded
//! random batch, and look at one compiled layer:
//!
//! ```
//! use cnn_as_mlp::init::{Init, init_params};
//! use cnn_as_mlp::loss::{Loss, Targets};
//! use cnn_as_mlp::{Engine, Network, Spec};
//! use nalgebra::DMatrix;
//! use rand::rngs::StdRng;
//! use rand::{RngExt, SeedableRng};
//!
//! let spec = Spec::parse("1x8x8 > conv(4,3,pad=1) > relu > maxpool(2) > dense(3)").unwrap();
//! let mut net = Network::<f32>::new(&spec, Engine::Sparse);
//! init_params(&mut net, Init::TorchDefault, 7);
//!
//! // A batch of 5 images: (batch, C·H·W) = (5, 64).
//! let mut rng = StdRng::seed_from_u64(1);
//! let x = DMatrix::<f32>::from_fn(5, 64, |_, _| rng.random_range(0.0..1.0));
//! let logits = net.forward(&x); // (5, 3)
//! assert_eq!((logits.nrows(), logits.ncols()), (5, 3));
//!
//! let labels = [0, 2, 1, 1, 0];
//! let mut grads = net.zero_grads();
//! let loss = net.loss_and_grad(&mut grads, &x, Targets::Labels(&labels), Loss::CrossEntropy);
//! assert!(loss.is_finite() && loss > 0.0);
//! // grads[0] = [d weight (4, 1, 3, 3), d bias (4)] of the convolution.
//! assert_eq!(grads[0][0].shape, [4, 1, 3, 3]);
//!
//! // Layer 0, compiled: a (4·8·8) × (1·8·8) matrix whose nonzeros copy the 4·1·3·3 kernel values. Along
//! // each axis 8 outputs × 3 taps, less the 2 that fall in the zero padding, read the input: 22, so
//! // 4 · 22 · 22 nonzeros.
//! let w = net.linear_map(0).unwrap().tied().unwrap();
//! assert_eq!(w.shape(), (256, 64));
//! assert_eq!(w.n_params(), 36);
//! assert_eq!(w.nnz(), 4 * 22 * 22);
//! println!("conv(4,3,pad=1) compiled: {} nonzeros", w.nnz());
//! ```
//!
//! More in `examples/`: `train_your_data` (a [`Spec`] trained on your own images with
//! [`train::Trainer`], and on your own tensors with your own loop and [`optim::Adam`]), `inspect_layer`
//! (every nonzero of a compiled convolution checked against the definition) and `gradients` (every
//! parameter's gradient against finite differences).

pub mod activation;
pub mod aligned_alloc;
pub mod atomic;
pub mod budget;
pub mod checkpoint;
pub mod compare;
pub mod cpu;
pub mod data;
mod disjoint;
pub mod distributed;
pub mod engines;
pub mod gemm;
pub mod geometry;
pub mod init;
pub mod linear_map;
pub mod loss;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod mtx;
pub mod network;
pub mod optim;
pub mod picture;
pub mod prune;
pub mod read;
pub mod run;
pub mod scalar;
pub mod spec;
pub mod system;
pub mod tables;
pub mod tensor;
pub mod tied;
pub mod train;

pub use network::{Engine, Network, Params};
pub use scalar::Real;
pub use spec::Spec;
pub use tensor::Tensor;
pub use tied::TiedMatrix;

/// The README's Rust blocks, compiled and run by `cargo test` as doc tests (only when testing docs), so the
/// README's library example cannot rot. Its other blocks carry a language (`sh`, `text`) and are not run here;
/// `tests/it/docs_commands.rs` checks their commands.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
