//! The sparse engine: every conv, local and pooling layer compiled to a [`crate::tied::TiedMatrix`].
//!
//! Conv, local and mean pooling compile to a [`TiedLayer`] (one file per kind: the compiler of its
//! pattern); max pooling is a data-dependent selection over a compiled window pattern ([`TiedMaxPool`]).

pub mod avgpool;
pub mod conv;
pub mod local;
pub mod maxpool;
pub mod pruned_dense;
pub mod tied_layer;

pub use avgpool::avgpool_layer;
pub use conv::{conv_layer, grouped_conv_layer, pruned_conv_layer, table_conv_layer};
pub use local::local_layer;
pub use maxpool::TiedMaxPool;
pub use pruned_dense::{DENSE_AS_TIED_BELOW, pruned_dense_layer};
pub use tied_layer::TiedLayer;

use std::sync::atomic::{AtomicU8, Ordering};

use crate::tied::{Storage, TiedMatrix};

/// Environment variable that chooses the index of the compiled layers: `compact` (the default) or `classic`.
pub const STORAGE_VAR: &str = "CNN_AS_MLP_INDEX";

/// The storage chosen by [`set_index_storage`]: 0 none, 1 classic, 2 compact.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Chooses the index every sparse layer compiled from now on stores (`None`: back to [`STORAGE_VAR`] or the
/// default, compact).
pub fn set_index_storage(s: Option<Storage>) {
    CHOSEN.store(
        match s {
            None => 0,
            Some(Storage::Classic) => 1,
            Some(Storage::Compact) => 2,
        },
        Ordering::Relaxed,
    );
}

/// The index the sparse layers store: the one set by [`set_index_storage`], else [`STORAGE_VAR`] (`classic` or
/// `compact`), else compact. Both give the same bits; the compact one takes a fraction of a byte per nonzero of
/// a convolution instead of about 16 (proofs/T8).
pub fn index_storage() -> Storage {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Storage::Classic,
        2 => Storage::Compact,
        _ => match std::env::var(STORAGE_VAR).as_deref() {
            Ok("classic") => Storage::Classic,
            _ => Storage::Compact,
        },
    }
}

/// `m` in the chosen storage.
pub(crate) fn stored(m: TiedMatrix) -> TiedMatrix {
    match index_storage() {
        Storage::Classic => m,
        Storage::Compact => m.to_compact(),
    }
}
