//! The IDX file format (LeCun's MNIST format), gzip-compressed or raw.
//!
//! ```text
//! magic     0x00 0x00 TYPE NDIM       TYPE 0x08 = unsigned byte (the only type read here)
//! dims      NDIM big-endian u32       e.g. (N, H, W) for images, (N) for labels
//! data      prod(dims) bytes, row-major
//! ```
//!
//! A file starting with the gzip magic `1f 8b` is decompressed first, whatever its name.

use std::io::Read;
use std::path::{Path, PathBuf};

use crate::read::read_up_to;

/// Why a data file or directory could not be read. Every message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", file.display())]
    Io { file: PathBuf, source: std::io::Error },
    #[error("{}: not a valid gzip stream: {source}", file.display())]
    Gzip { file: PathBuf, source: std::io::Error },
    #[error("{}: truncated: {what} needs {need} bytes, the file has {have}", file.display())]
    Truncated { file: PathBuf, what: String, need: usize, have: usize },
    #[error("{}: wrong magic number {found:02x?}, expected {expected:02x?} (an IDX file of {ndim} dimensions of unsigned bytes)", file.display())]
    Magic { file: PathBuf, found: [u8; 4], expected: [u8; 4], ndim: u8 },
    #[error("{}: {images} images but {}: {labels} labels", images_file.display(), labels_file.display())]
    CountMismatch { images_file: PathBuf, labels_file: PathBuf, images: usize, labels: usize },
    #[error("{}: no IDX file {name}[.gz] in this directory", dir.display())]
    Missing { dir: PathBuf, name: String },
    #[error("{}: Fashion-MNIST is not installed; install it with `apt-get install dataset-fashion-mnist`", dir.display())]
    FashionMissing { dir: PathBuf },
    #[error("{}: has {extra} bytes after the {need} its header announces (counted up to 1 MiB)", file.display())]
    Trailing { file: PathBuf, need: usize, extra: usize },
    #[error("{}: its header announces dimensions {dims:?}, {need} bytes, more than the {available} bytes available ({from})", file.display())]
    TooLarge { file: PathBuf, dims: Vec<usize>, need: usize, available: u128, from: String },
    #[error("{}: {have} bytes, more than the {max} the format allows", file.display())]
    TooBig { file: PathBuf, max: usize, have: u64 },
    #[error("{}: record {record} (byte {offset}) has label {label}, expected {expected}", file.display())]
    Label { file: PathBuf, record: usize, offset: usize, label: u8, expected: String },
    #[error("{}: {problem}", file.display())]
    Meta { file: PathBuf, problem: String },
    #[error("{}: no data set here: expected the IDX layout (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz), the CIFAR-10 binary layout (data_batch_1.bin … data_batch_5.bin, test_batch.bin, optional batches.meta.txt) or an image folder (train/<class>/*.png|jpg and test/<class>/… or val/<class>/…)", dir.display())]
    NoLayout { dir: PathBuf },
    #[error("{}: no CIFAR-10 file {name} in this directory (the binary layout needs data_batch_1.bin … data_batch_5.bin and test_batch.bin)", dir.display())]
    MissingCifar { dir: PathBuf, name: String },
    #[error("{}: {problem}", file.display())]
    Image { file: PathBuf, problem: String },
    #[error("{}: the image is {width}x{height} (width x height) but the model's input is {want_w}x{want_h}; resize the images, or pass --resize to resize them as they are read (bilinear)", file.display())]
    ImageSize { file: PathBuf, width: u32, height: u32, want_w: usize, want_h: usize },
    #[error("{}: {problem}", dir.display())]
    ImageFolder { dir: PathBuf, problem: String },
    #[error("{}: CIFAR-10 is not there; put the binary version's cifar-10-batches-bin directory (https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz) in $CNN_AS_MLP_DATA (default: ./data), or pass --data DIR", dir.display())]
    Cifar10Missing { dir: PathBuf },
}

/// An IDX array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Idx {
    /// Dimensions, slowest first.
    pub dims: Vec<usize>,
    /// `dims.iter().product()` bytes, row-major.
    pub data: Vec<u8>,
}

/// Reads an IDX file of `ndim` dimensions of unsigned bytes (gzip or raw), reading no more than its
/// header announces (see [`parse_idx_from`]); anything but a regular file (a FIFO, device, directory) is
/// refused by what it is, without blocking ([`crate::read::open_regular`]).
pub fn read_idx(path: &Path, ndim: u8) -> Result<Idx, DataError> {
    let f = crate::read::open_regular(path).map_err(|source| DataError::Io { file: path.to_path_buf(), source })?;
    parse_idx_from(path, std::io::BufReader::new(f), ndim)
}

/// Parses IDX bytes (gzip or raw) that came from `file` (used in messages only).
pub fn parse_idx(file: &Path, bytes: &[u8], ndim: u8) -> Result<Idx, DataError> {
    parse_idx_from(file, bytes, ndim)
}

/// Parses an IDX stream (gzip or raw) from `file` (used in messages only), bounded by its header: the
/// magic number and dimensions are read first, then exactly the `prod(dims)` bytes they announce and one
/// more to detect trailing data. A stream that announces more bytes than the memory available
/// ([`crate::system::available`]) is refused before any of them is read, and a gzip stream is never
/// decompressed beyond what its header announces, so a gzip bomb costs nothing.
pub fn parse_idx_from(file: &Path, mut r: impl Read, ndim: u8) -> Result<Idx, DataError> {
    let io = |source| DataError::Io { file: file.to_path_buf(), source };
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut r, &mut magic[..2]).map_err(io)?;
    if got == 2 && magic[..2] == [0x1f, 0x8b] {
        // Every member, as gzip tools read a concatenation of gzip files (`cat a.gz b.gz`).
        let gz = flate2::read::MultiGzDecoder::new(std::io::Cursor::new([0x1f, 0x8b]).chain(r));
        return parse_raw(file, gz, ndim, true);
    }
    parse_raw(file, std::io::Cursor::new(magic[..got].to_vec()).chain(r), ndim, false)
}

/// [`parse_idx_from`] on the decompressed stream.
fn parse_raw(file: &Path, mut r: impl Read, ndim: u8, gzip: bool) -> Result<Idx, DataError> {
    let read_err = |source: std::io::Error| {
        if gzip {
            DataError::Gzip { file: file.to_path_buf(), source }
        } else {
            DataError::Io { file: file.to_path_buf(), source }
        }
    };
    let header = 4 + 4 * ndim as usize;
    let truncated = |what: &str, need: usize, have: usize| DataError::Truncated {
        file: file.to_path_buf(),
        what: what.to_string(),
        need,
        have,
    };
    let mut head = vec![0u8; header];
    let got = read_up_to(&mut r, &mut head[..4]).map_err(read_err)?;
    if got < 4 {
        return Err(truncated("the magic number", 4, got));
    }
    let expected = [0, 0, 0x08, ndim];
    let found = [head[0], head[1], head[2], head[3]];
    if found != expected {
        return Err(DataError::Magic { file: file.to_path_buf(), found, expected, ndim });
    }
    let got = 4 + read_up_to(&mut r, &mut head[4..]).map_err(read_err)?;
    if got < header {
        return Err(truncated("the header", header, got));
    }
    let dims: Vec<usize> = (0..ndim as usize)
        .map(|i| u32::from_be_bytes(head[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    // Dimensions whose product overflows announce more bytes than any file holds.
    let data_len = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
    let need = data_len.and_then(|n| n.checked_add(header)).unwrap_or(usize::MAX);
    let avail = crate::system::available();
    if need as u128 > avail.bytes {
        return Err(DataError::TooLarge {
            file: file.to_path_buf(),
            dims,
            need,
            available: avail.bytes,
            from: avail.source,
        });
    }
    let data_len = need - header;
    let mut data = Vec::new();
    let got = (&mut r).take(data_len as u64).read_to_end(&mut data).map_err(read_err)?;
    if got < data_len {
        return Err(truncated(&format!("the data of dimensions {dims:?}"), need, header + got));
    }
    // Count trailing bytes, but read at most 1 MiB of them.
    let extra = std::io::copy(&mut r.take(1 << 20), &mut std::io::sink()).map_err(read_err)? as usize;
    if extra > 0 {
        return Err(DataError::Trailing { file: file.to_path_buf(), need, extra });
    }
    Ok(Idx { dims, data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx1(labels: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, 1];
        b.extend((labels.len() as u32).to_be_bytes());
        b.extend(labels);
        b
    }

    #[test]
    fn raw_and_gzip_parse_alike() {
        let raw = idx1(&[3, 1, 4]);
        let mut gz = Vec::new();
        {
            use std::io::Write;
            let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
            e.write_all(&raw).unwrap();
        }
        let p = Path::new("x");
        let a = parse_idx(p, &raw, 1).unwrap();
        assert_eq!(a, Idx { dims: vec![3], data: vec![3, 1, 4] });
        assert_eq!(parse_idx(p, &gz, 1).unwrap(), a);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let p = Path::new("f.idx");
        let raw = idx1(&[3, 1, 4]);
        let e = parse_idx(p, &raw[..9], 1).unwrap_err().to_string();
        assert!(e.contains("f.idx") && e.contains("truncated"), "{e}");
        let e = parse_idx(p, &raw, 3).unwrap_err().to_string();
        assert!(e.contains("magic"), "{e}");
        let e = parse_idx(p, &[0, 0], 1).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        let huge = [0, 0, 8, 3, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 1];
        let e = parse_idx(p, &huge, 3).unwrap_err().to_string();
        assert!(e.contains("announces") && e.contains("available"), "{e}");
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut gz = Vec::new();
        let mut e = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap();
        gz
    }

    /// An endless stream is read only as far as its header says (plus 1 MiB to count trailing bytes).
    #[test]
    fn endless_streams_stop_where_the_header_says() {
        let p = Path::new("endless");
        let header = [0u8, 0, 8, 1, 0, 0, 0, 3];
        let e = parse_idx_from(p, (&header[..]).chain(std::io::repeat(7)), 1).unwrap_err();
        assert!(matches!(e, DataError::Trailing { need: 11, extra: 1_048_576, .. }), "{e}");
        let e = parse_idx_from(p, std::io::repeat(0), 1).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
    }

    /// A gzip bomb: a header announcing 2^96 bytes is refused before anything is decompressed; a valid
    /// header followed by 64 MiB of zeros fails after reading at most 1 MiB past the data.
    #[test]
    fn gzip_bombs_are_bounded_by_the_header() {
        let p = Path::new("bomb.gz");
        let mut raw = vec![0u8, 0, 8, 3];
        for _ in 0..3 {
            raw.extend(u32::MAX.to_be_bytes());
        }
        let e = parse_idx(p, &gzip(&raw), 3).unwrap_err();
        assert!(matches!(e, DataError::TooLarge { need: usize::MAX, .. }), "{e}");
        let mut raw = idx1(&[1, 2, 3]);
        raw.resize(raw.len() + (64 << 20), 0);
        let e = parse_idx(p, &gzip(&raw), 1).unwrap_err();
        assert!(matches!(e, DataError::Trailing { need: 11, extra: 1_048_576, .. }), "{e}");
    }
}
