//! What the system gives the process, read in one place: the memory it may use (`/proc`), under the limit the
//! command sets. Loaders check a file's announced size against it without knowing the network's budget.
//!
//! The library reads no environment: the command turns [`LIMIT_VAR`] into [`set_memory_limit`].

use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable the command reads as the memory limit, in bytes ([`parse_memory_limit`]).
pub const LIMIT_VAR: &str = "CNN_AS_MLP_MEMORY_LIMIT";

/// The limit set by [`set_memory_limit`], in bytes; 0: none.
static LIMIT: AtomicU64 = AtomicU64::new(0);

/// Caps the memory every later check allows (`None`: no cap beyond what the system reports).
pub fn set_memory_limit(bytes: Option<u64>) {
    LIMIT.store(bytes.unwrap_or(0), Ordering::Relaxed);
}

/// The limit set by [`set_memory_limit`], if any.
pub fn memory_limit() -> Option<u64> {
    Some(LIMIT.load(Ordering::Relaxed)).filter(|&b| b > 0)
}

/// The limit named by [`LIMIT_VAR`]'s value `v` (a positive number of bytes; empty: none), or an error naming
/// the value.
pub fn parse_memory_limit(v: &str) -> Result<Option<u64>, String> {
    match v.trim() {
        "" => Ok(None),
        t => match t.parse::<u64>() {
            Ok(b) if b > 0 => Ok(Some(b)),
            _ => Err(format!("{LIMIT_VAR}={t:?} is not a memory limit; expected a positive number of bytes")),
        },
    }
}

/// Memory the process may use, and where the figure comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Available {
    pub bytes: u128,
    pub source: String,
}

/// The smallest of `MemAvailable`, the address-space limit (`ulimit -v`) minus what is in use, and the limit
/// set by [`set_memory_limit`]; 8 GiB when none can be read.
pub fn available() -> Available {
    let mut best: Option<Available> = None;
    let mut offer = |bytes: Option<u128>, source: &str| {
        if let Some(bytes) = bytes
            && best.as_ref().is_none_or(|b| bytes < b.bytes)
        {
            best = Some(Available { bytes, source: source.into() });
        }
    };
    offer(memory_limit().map(u128::from), LIMIT_VAR);
    offer(mem_available(), "MemAvailable");
    offer(address_space_left(), "the address-space limit (ulimit -v) less what is in use");
    best.unwrap_or(Available { bytes: 8 << 30, source: "a default of 8 GiB".into() })
}

/// `MemAvailable` of `/proc/meminfo`, in bytes, if it can be read.
pub fn mem_available() -> Option<u128> {
    kib_field(&std::fs::read_to_string("/proc/meminfo").ok()?, "MemAvailable:")
}

/// The address-space limit (`/proc/self/limits`) less the address space in use (`VmSize` of
/// `/proc/self/status`), when there is a limit.
fn address_space_left() -> Option<u128> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let limit = limits
        .lines()
        .find(|l| l.starts_with("Max address space"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<u128>().ok())?;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let in_use = kib_field(&status, "VmSize:").unwrap_or(0);
    Some(limit.saturating_sub(in_use))
}

/// A `/proc` field given in kB, in bytes.
fn kib_field(text: &str, key: &str) -> Option<u128> {
    let line = text.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse::<u128>().ok().map(|kb| kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_bad_values_are_named() {
        assert_eq!(parse_memory_limit(" 1048576 "), Ok(Some(1 << 20)));
        assert_eq!(parse_memory_limit(""), Ok(None));
        for bad in ["0", "-5", "1e9", "lots"] {
            let e = parse_memory_limit(bad).unwrap_err();
            assert!(e.contains(LIMIT_VAR) && e.contains(bad), "{e}");
        }
    }
}
