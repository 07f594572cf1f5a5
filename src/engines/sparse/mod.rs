//! The sparse engine: every conv, local and pooling layer compiled to a [`crate::tied::TiedMatrix`].
//!
//! Conv, local and mean pooling compile to a [`TiedLayer`] (one file per kind: the compiler of its
//! pattern); max pooling is a data-dependent selection over a compiled window pattern ([`TiedMaxPool`]).

pub mod avgpool;
pub mod conv;
pub mod local;
pub mod maxpool;
pub mod pruned_dense;
mod storage;
pub mod tied_layer;

pub use avgpool::avgpool_layer;
pub use conv::{conv_layer, grouped_conv_layer, pruned_conv_layer, table_conv_layer};
pub use local::local_layer;
pub use maxpool::TiedMaxPool;
pub use pruned_dense::{DENSE_AS_TIED_BELOW, pruned_dense_layer};
pub use storage::{STORAGE_VAR, index_storage, parse_storage, set_index_storage};
pub use tied_layer::TiedLayer;
