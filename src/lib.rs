//! # cnn-as-mlp
//!
//! Convolutional networks trained as what they are: multilayer perceptrons with sparse, weight-tied
//! matrices. Each convolution and pooling layer is compiled into an explicit sparse matrix whose nonzeros
//! point into a shared kernel ([`tied`]); one MLP backpropagation routine ([`network`]) trains every
//! network; gradients of the nonzeros are scattered back into the kernels.
//!
//! Layout: activations are (batch, features) column-major `nalgebra::DMatrix`, features flattened as
//! (C, H, W) like PyTorch's NCHW.

pub mod activation;
pub mod atomic;
pub mod checkpoint;
pub mod compare;
pub mod data;
pub mod direct;
pub mod gemm;
pub mod geometry;
pub mod init;
pub mod layers;
pub mod loss;
pub mod network;
pub mod optim;
pub mod picture;
pub mod reference;
pub mod run;
pub mod scalar;
pub mod spec;
pub mod tensor;
pub mod tied;
pub mod train;

pub use network::{Engine, Network, Params};
pub use scalar::Real;
pub use spec::Spec;
pub use tensor::Tensor;
pub use tied::TiedMatrix;
