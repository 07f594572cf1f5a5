//! The reference implementations every compiled layer is measured against.
//!
//! - [`direct`]: convolution, locally connected layers and pooling written from their definitions, with
//!   the backward passes the source derivation gives (the input residual is the output residual convolved
//!   with the 180°-rotated kernel; the kernel gradient is the input correlated with the residual). Nothing
//!   here reads a compiled matrix.
//! - [`im2col`]: the classical lowering of a convolution to one GEMM (Caffe's im2col), and col2im, its
//!   adjoint, for the input gradient.
//!
//! Both implement [`crate::layers::LinearMap`] with the parameter names and PyTorch layouts of the
//! sparse layers, so [`crate::network::Engine::Im2col`] runs the same spec and the same parameters.
//! [`crate::network::Engine::Direct`] runs the fast direct layers of [`crate::direct`], which
//! `tests/fast_direct.rs` checks against [`direct`] (bit for bit on exact data).

pub mod direct;
pub mod im2col;

pub use direct::{DirectAvgPool, DirectConv, DirectLocal, DirectMaxPool};
pub use im2col::Im2colConv;
