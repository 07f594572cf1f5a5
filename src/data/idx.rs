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
    #[error("{}: has {extra} bytes after the {need} its header announces", file.display())]
    Trailing { file: PathBuf, need: usize, extra: usize },
    #[error("{}: {have} bytes, more than the {max} the format allows", file.display())]
    TooBig { file: PathBuf, max: usize, have: u64 },
    #[error("{}: record {record} (byte {offset}) has label {label}, expected {expected}", file.display())]
    Label { file: PathBuf, record: usize, offset: usize, label: u8, expected: String },
    #[error("{}: {problem}", file.display())]
    Meta { file: PathBuf, problem: String },
    #[error("{}: no data set here: expected either the IDX layout (train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each raw or .gz) or the CIFAR-10 binary layout (data_batch_1.bin … data_batch_5.bin, test_batch.bin, optional batches.meta.txt)", dir.display())]
    NoLayout { dir: PathBuf },
    #[error("{}: no CIFAR-10 file {name} in this directory (the binary layout needs data_batch_1.bin … data_batch_5.bin and test_batch.bin)", dir.display())]
    MissingCifar { dir: PathBuf, name: String },
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

/// Reads an IDX file of `ndim` dimensions of unsigned bytes (gzip or raw).
pub fn read_idx(path: &Path, ndim: u8) -> Result<Idx, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io { file: path.to_path_buf(), source })?;
    parse_idx(path, &bytes, ndim)
}

/// Parses IDX bytes (gzip or raw) that came from `file` (used in messages only).
pub fn parse_idx(file: &Path, bytes: &[u8], ndim: u8) -> Result<Idx, DataError> {
    let raw;
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip { file: file.to_path_buf(), source })?;
        raw = out;
        &raw[..]
    } else {
        bytes
    };
    let header = 4 + 4 * ndim as usize;
    let truncated = |what: &str, need: usize| DataError::Truncated {
        file: file.to_path_buf(),
        what: what.to_string(),
        need,
        have: bytes.len(),
    };
    if bytes.len() < 4 {
        return Err(truncated("the magic number", 4));
    }
    let expected = [0, 0, 0x08, ndim];
    let found = [bytes[0], bytes[1], bytes[2], bytes[3]];
    if found != expected {
        return Err(DataError::Magic { file: file.to_path_buf(), found, expected, ndim });
    }
    if bytes.len() < header {
        return Err(truncated("the header", header));
    }
    let dims: Vec<usize> = (0..ndim as usize)
        .map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize)
        .collect();
    // Dimensions whose product overflows announce more bytes than any file holds.
    let need = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)).and_then(|n| n.checked_add(header));
    let need = need.unwrap_or(usize::MAX);
    if bytes.len() < need {
        return Err(truncated(&format!("the data of dimensions {dims:?}"), need));
    }
    if bytes.len() > need {
        return Err(DataError::Trailing { file: file.to_path_buf(), need, extra: bytes.len() - need });
    }
    Ok(Idx { dims, data: bytes[header..].to_vec() })
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
        assert!(e.contains("truncated"), "{e}");
    }
}
