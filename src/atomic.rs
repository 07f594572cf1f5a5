//! The one atomic file writer: every file the crate and its command write (checkpoints, run metadata and
//! metrics, plots, compare reports, `show` pictures, `grad` output) goes through [`write()`] or
//! [`write_with`].
//!
//! Protocol: the content goes to a temporary file `.tmp<pid>.<name>` in the target's directory (same file
//! system, so the rename is atomic); the temporary file is synced, renamed over the target, and the directory
//! is synced so the rename itself survives a crash. A reader sees the old file or the complete new one,
//! never a partial file; on any failure the temporary file is removed and the target is left as it was.
//!
//! **Only regular files are replaced.** A target that exists and is not a regular file (a directory, a
//! device such as `/dev/null`, a FIFO, a socket, or a symbolic link to one of those) is refused with
//! [`io::ErrorKind::InvalidInput`], checked before the content is produced and again just before the
//! rename: renaming over it would destroy it. A symbolic link to a regular file (or a dangling one) is
//! replaced by the new file, as `rename` does; the file it pointed to is left as it was.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The temporary file next to `path`: `.tmp<pid>.<name>` in the same directory (the name keeps its
/// extension, which an image encoder reads to choose the format).
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".tmp{}.{name}", std::process::id()))
}

/// Fails unless `path` is absent or names a regular file (or a symbolic link to one, or a dangling link):
/// the only targets the writer may replace (see the module documentation).
pub fn check_target(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let meta = if meta.file_type().is_symlink() {
        match std::fs::metadata(path) {
            Ok(m) => m,
            // A dangling link (or a loop): replacing the link itself harms nothing.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
    } else {
        meta
    };
    if meta.is_file() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("exists and is {}, not a regular file; refusing to replace it", kind_of(&meta)),
    ))
}

/// `a directory`, `a FIFO`, … : what a non-regular file is, for messages.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_file() {
        "a regular file"
    } else {
        "not a regular file"
    }
}

/// Writes `bytes` to `path` atomically (see the module documentation).
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    // `create_new`: never write through a file (or link) that appeared under the temporary name.
    let create = |tmp: &Path| std::fs::OpenOptions::new().write(true).create_new(true).open(tmp);
    let filled = write_with(path, |tmp| create(tmp)?.write_all(bytes));
    filled.map_err(|f| match f {
        Failure::Fill(e) | Failure::Io(e) => e,
    })
}

/// Why [`write_with`] failed: the caller's `fill`, or the I/O of the protocol.
#[derive(Debug)]
pub enum Failure<E> {
    Fill(E),
    Io(io::Error),
}

/// Lets `fill` write the content into a temporary path, then completes the atomic write of `path`: for
/// writers that need a path rather than bytes (a plotting backend).
pub fn write_with<E>(path: &Path, fill: impl FnOnce(&Path) -> Result<(), E>) -> Result<(), Failure<E>> {
    check_target(path).map_err(Failure::Io)?;
    let tmp = temp_path(path);
    let result = fill(&tmp).map_err(Failure::Fill).and_then(|()| finish(&tmp, path).map_err(Failure::Io));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Syncs `tmp`, renames it to `path`, and syncs the directory.
fn finish(tmp: &Path, path: &Path) -> io::Result<()> {
    File::open(tmp)?.sync_all()?;
    // Again, just before the rename: the target may have changed while the content was produced.
    check_target(path)?;
    std::fs::rename(tmp, path)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // A directory opens read-only on Unix; syncing it makes the rename durable.
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("cnn-as-mlp-atomic-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// Names in `dir`, sorted.
    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// The target holds exactly the bytes written, replaces an old file, and no temporary file remains.
    #[test]
    fn complete_target_and_no_temp_on_success() {
        let d = scratch("ok");
        let p = d.join("a.bin");
        write(&p, b"first").unwrap();
        write(&p, b"second, longer").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second, longer");
        assert_eq!(listing(&d), ["a.bin"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A fill that fails after writing part of the content: the target is absent (or, if it existed, its
    /// old content is intact), and no temporary file remains.
    #[test]
    fn failed_fill_leaves_target_absent_or_old() {
        let d = scratch("fail");
        let p = d.join("b.txt");
        let half = |tmp: &Path| -> io::Result<()> {
            std::fs::write(tmp, b"half")?;
            Err(io::Error::other("drawing failed"))
        };
        assert!(matches!(write_with(&p, half), Err(Failure::Fill(e)) if e.to_string() == "drawing failed"));
        assert!(!p.exists());
        assert_eq!(listing(&d), Vec::<String>::new());
        write(&p, b"old").unwrap();
        assert!(write_with(&p, half).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(listing(&d), ["b.txt"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A write that fails in the protocol itself (the target is a directory, so the rename fails): the error
    /// is reported, the directory is untouched, and no temporary file remains.
    #[test]
    fn failed_rename_leaves_no_temp() {
        let d = scratch("rename");
        let target = d.join("taken");
        std::fs::create_dir(&target).unwrap();
        std::fs::write(target.join("inside"), b"x").unwrap();
        assert!(write(&target, b"data").is_err());
        assert_eq!(listing(&d), ["taken"]);
        assert_eq!(listing(&target), ["inside"]);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A FIFO, a directory and a symbolic link to a FIFO at the target are refused and left as they were
    /// (no rename over them), with no temporary file; a link to a regular file is replaced by the file.
    #[test]
    fn refuses_targets_that_are_not_regular_files() {
        use std::os::unix::fs::FileTypeExt;
        let d = scratch("special");
        let fifo = d.join("pipe");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        assert!(made.success());
        let e = write(&fifo, b"x").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(e.to_string().contains("a FIFO"), "{e}");
        assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
        let link = d.join("link.png");
        std::os::unix::fs::symlink(&fifo, &link).unwrap();
        assert!(write(&link, b"x").is_err());
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        std::fs::create_dir(d.join("dir")).unwrap();
        assert!(
            write_with(&d.join("dir"), |_| -> io::Result<()> { panic!("no content for a refused target") }).is_err()
        );
        assert_eq!(listing(&d), ["dir", "link.png", "pipe"]);
        std::fs::write(d.join("real"), b"old").unwrap();
        std::os::unix::fs::symlink(d.join("real"), d.join("to-real")).unwrap();
        write(&d.join("to-real"), b"new").unwrap();
        assert_eq!(std::fs::read(d.join("real")).unwrap(), b"old");
        assert_eq!(std::fs::read(d.join("to-real")).unwrap(), b"new");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A directory that does not exist: an error, and nothing is created.
    #[test]
    fn missing_directory_is_an_error() {
        let d = scratch("missing");
        assert!(write(&d.join("no/such/dir/c.bin"), b"x").is_err());
        assert_eq!(listing(&d), Vec::<String>::new());
        std::fs::remove_dir_all(&d).unwrap();
    }
}
