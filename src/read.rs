//! Reading bounded by what a file's header says it holds (checkpoints, IDX files).

use std::io::Read;

/// Reads into `buf` until it is full or the reader ends; returns the bytes read.
pub(crate) fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(k) => at += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(at)
}

/// `O_NONBLOCK` on Linux (every architecture this crate builds for): opening a FIFO that nobody writes
/// to returns at once instead of waiting for a writer.
const O_NONBLOCK: i32 = 0o4000;

/// Opens `path` for reading if it is a regular file (a symbolic link to one is followed), without
/// blocking: a FIFO, device, socket or directory is refused with [`std::io::ErrorKind::InvalidInput`] and
/// a message saying what it is. The type is read from the open handle, so a file swapped after a check
/// cannot slip through.
pub fn open_regular(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().read(true).custom_flags(O_NONBLOCK).open(path)?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is {}, not a regular file", crate::atomic::kind_of(&meta)),
        ));
    }
    Ok(f)
}

/// Whether `path` names an entry of any type (a dangling or looping link too), so that an entry that is
/// there but cannot be read is named by what is wrong with it, never called missing.
pub fn present(path: &std::path::Path) -> bool {
    path.symlink_metadata().is_ok()
}

/// The whole content of the regular file `path` ([`open_regular`]).
pub fn read_regular(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    open_regular(path)?.read_to_end(&mut bytes)?;
    Ok(bytes)
}
