//! The im2col engine: convolutions and locally connected layers lowered to GEMMs (Caffe's im2col), and
//! col2im, the lowering's adjoint, for the input gradient. Pooling has no GEMM lowering: the engine runs
//! the direct engine's pools ([`super::direct::DirectMaxPool`], [`super::direct::DirectAvgPool`]).

pub mod conv;
pub mod local;

pub use conv::{Im2colConv, col2im, im2col, im2col_into};
pub use local::Im2colLocal;
