//! The environment the command reads, in one place, turned into the library's settings before any command
//! runs: the library itself reads no environment variable. A value the command cannot use is refused with
//! one error line naming the variable and the value.

use std::time::Duration;

use cnn_as_mlp::cpu::{SIMD_VAR, parse_simd_cap, set_simd_cap};
use cnn_as_mlp::data::{DATA_ENV, set_data_root};
use cnn_as_mlp::engines::sparse::{STORAGE_VAR, parse_storage, set_index_storage};
use cnn_as_mlp::system::{LIMIT_VAR, parse_memory_limit, set_memory_limit};

/// The variable that bounds how long an MPI rank waits in an all-gather, in seconds (default 120).
pub const MPI_TIMEOUT_VAR: &str = "CNN_AS_MLP_MPI_TIMEOUT";

/// `name`'s value, `None` when unset; a value that is not Unicode is an error naming the variable.
fn var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(v)) => Err(format!("{name}={v:?} is not valid Unicode")),
    }
}

/// Reads the kernel cap, the index format, the memory limit and the data root, and sets them.
pub fn apply() -> Result<(), String> {
    if let Some(v) = var(SIMD_VAR)? {
        set_simd_cap(parse_simd_cap(&v)?);
    }
    if let Some(v) = var(STORAGE_VAR)? {
        set_index_storage(parse_storage(&v)?);
    }
    if let Some(v) = var(LIMIT_VAR)? {
        set_memory_limit(parse_memory_limit(&v)?);
    }
    if let Some(v) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        set_data_root(Some(v.into()));
    }
    if let Some(v) = var(MPI_TIMEOUT_VAR)? {
        mpi_timeout_of(&v)?;
    }
    Ok(())
}

/// How long an MPI rank may wait in an all-gather ([`MPI_TIMEOUT_VAR`], checked by [`apply`]).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn mpi_timeout() -> Duration {
    var(MPI_TIMEOUT_VAR).ok().flatten().and_then(|v| mpi_timeout_of(&v).ok()).unwrap_or(Duration::from_secs(120))
}

/// The timeout named by `v`: a positive whole number of seconds.
fn mpi_timeout_of(v: &str) -> Result<Duration, String> {
    match v.trim().parse::<u64>() {
        Ok(s) if s > 0 => Ok(Duration::from_secs(s)),
        _ => Err(format!("{MPI_TIMEOUT_VAR}={v:?} is not a timeout; expected a positive number of seconds")),
    }
}

/// Whether this process was started by `mpirun` (OpenMPI, MPICH or a PMI launcher).
#[cfg_attr(not(feature = "mpi"), allow(dead_code))]
pub fn launched_by_mpirun() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|k| std::env::var_os(k).is_some())
}
