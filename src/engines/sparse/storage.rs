//! Which index the compiled layers store: compact (the default) or classic.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::tied::{Storage, TiedMatrix};

/// The environment variable the command reads to choose the index of the compiled layers: `compact` (the
/// default) or `classic`. The library reads no environment: the choice is [`set_index_storage`]'s.
pub const STORAGE_VAR: &str = "CNN_AS_MLP_INDEX";

/// The storage chosen by [`set_index_storage`]: 0 none, 1 classic, 2 compact.
static CHOSEN: AtomicU8 = AtomicU8::new(0);

/// Chooses the index every sparse layer compiled from now on stores (`None`: back to the default, compact).
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

/// The index the sparse layers store: the one set by [`set_index_storage`], else compact. Both give the same bits; the compact one takes a fraction of a byte per nonzero of
/// a convolution instead of about 16 (proofs/T8).
pub fn index_storage() -> Storage {
    match CHOSEN.load(Ordering::Relaxed) {
        1 => Storage::Classic,
        _ => Storage::Compact,
    }
}

/// `m` in the chosen storage.
pub(crate) fn stored(m: TiedMatrix) -> TiedMatrix {
    stored_as(m, index_storage())
}

/// `m` (classic) in `storage`.
pub(crate) fn stored_as(m: TiedMatrix, storage: Storage) -> TiedMatrix {
    match storage {
        Storage::Classic => m,
        Storage::Compact => m.to_compact(),
    }
}

/// The storage named by [`STORAGE_VAR`]'s value `v` (`compact`, `classic`; empty: the default), or an error
/// naming the value and the accepted ones.
pub fn parse_storage(v: &str) -> Result<Option<Storage>, String> {
    match v.trim() {
        "" => Ok(None),
        "compact" => Ok(Some(Storage::Compact)),
        "classic" => Ok(Some(Storage::Classic)),
        other => Err(format!("{STORAGE_VAR}={other:?} is not an index; expected compact or classic")),
    }
}
