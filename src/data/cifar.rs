//! The CIFAR-10 binary format (`cifar-10-batches-bin`), read into the same [`Dataset`] as IDX files.
//!
//! ```text
//! data_batch_1.bin … data_batch_5.bin    training records        test_batch.bin    test records
//! record    1 label byte (0..=9), then 3,072 pixel bytes:
//!           the red 32×32 plane row-major, then green, then blue   = one (3, 32, 32) image in C, H, W order
//! batches.meta.txt                       one class name per line (optional here; blank lines ignored)
//! ```
//!
//! The record's pixel bytes are already the (C, H, W) order features flatten in, so they are stored as
//! they come. A file holds whole records only, and at most [`MAX_RECORDS`] of them (CIFAR-10 has 10,000
//! per file): a shorter tail is a truncated file, a longer file is refused before it is read.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::dataset::{Dataset, Splits};
use super::idx::DataError;
use crate::read;
use crate::spec::Shape;

/// Shape of one image.
pub const SHAPE: Shape = Shape { c: 3, h: 32, w: 32 };
/// Bytes of one record: a label byte and `3·32·32` pixels.
pub const RECORD: usize = 1 + 3 * 32 * 32;
/// The most records one file may hold (CIFAR-10's files hold exactly this many).
pub const MAX_RECORDS: usize = 10_000;
/// Number of classes; labels are `0..CLASSES`.
pub const CLASSES: usize = 10;
/// The training files, in the order their records are concatenated.
pub const TRAIN_FILES: [&str; 5] =
    ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"];
/// The test file.
pub const TEST_FILE: &str = "test_batch.bin";
/// The class names file.
pub const META_FILE: &str = "batches.meta.txt";

/// True when `dir` holds at least one of the CIFAR-10 record files (the layout is then CIFAR's, and any
/// missing file is reported by name).
pub fn is_cifar_dir(dir: &Path) -> bool {
    TRAIN_FILES.iter().chain([&TEST_FILE]).any(|f| read::present(&dir.join(f)))
}

/// Reads `data_batch_1.bin` … `data_batch_5.bin` (training set), `test_batch.bin` (test set) and, when
/// present, `batches.meta.txt` (class names, kept in both sets).
pub fn load_cifar_dir(dir: &Path) -> Result<Splits, DataError> {
    let file = |name: &str| -> Result<PathBuf, DataError> {
        let p = dir.join(name);
        // Any entry of that name: one that is not a regular file is refused by what it is (`read_limited`).
        if read::present(&p) {
            Ok(p)
        } else {
            Err(DataError::MissingCifar { dir: dir.to_path_buf(), name: name.to_string() })
        }
    };
    let train_files = TRAIN_FILES.iter().map(|f| file(f)).collect::<Result<Vec<_>, _>>()?;
    let test_file = file(TEST_FILE)?;
    let classes = read_meta(dir)?;
    let mut train =
        Dataset { shape: SHAPE, pixels: Vec::new(), labels: Vec::new(), classes: classes.clone(), standardize: None };
    for f in &train_files {
        append_records(f, &read_bounded(f)?, &mut train, classes.as_deref())?;
    }
    let mut test =
        Dataset { shape: SHAPE, pixels: Vec::new(), labels: Vec::new(), classes: classes.clone(), standardize: None };
    append_records(&test_file, &read_bounded(&test_file)?, &mut test, classes.as_deref())?;
    Ok(Splits { train, test })
}

/// The class names of `batches.meta.txt` (non-blank lines, trimmed), or `None` when there is no such entry
/// (one that is there but not a regular file is refused by what it is).
fn read_meta(dir: &Path) -> Result<Option<Vec<String>>, DataError> {
    let p = dir.join(META_FILE);
    if !read::present(&p) {
        return Ok(None);
    }
    // Ten short names: a file past 64 KiB is not a class list.
    let bytes = read_limited(&p, 1 << 16)?;
    let text =
        String::from_utf8(bytes).map_err(|_| DataError::Meta { file: p.clone(), problem: "not UTF-8 text".into() })?;
    let names: Vec<String> = text.lines().map(str::trim).filter(|l| !l.is_empty()).map(String::from).collect();
    if names.len() != CLASSES {
        return Err(DataError::Meta {
            file: p,
            problem: format!("names {} classes, expected {CLASSES} (one per line)", names.len()),
        });
    }
    Ok(Some(names))
}

/// Reads a record file, refusing one longer than [`MAX_RECORDS`] records before reading it.
fn read_bounded(file: &Path) -> Result<Vec<u8>, DataError> {
    read_limited(file, MAX_RECORDS * RECORD)
}

/// Reads at most `max` bytes of `file`; a file with more is [`DataError::TooBig`] (checked on its size
/// first, and again on what is read, in case it grew).
fn read_limited(file: &Path, max: usize) -> Result<Vec<u8>, DataError> {
    let io = |source| DataError::Io { file: file.to_path_buf(), source };
    let f = crate::read::open_regular(file).map_err(io)?;
    let len = f.metadata().map_err(io)?.len();
    let too_big = |have: u64| DataError::TooBig { file: file.to_path_buf(), max, have };
    if len > max as u64 {
        return Err(too_big(len));
    }
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(max as u64 + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}

/// Checks `bytes` (the contents of `file`) as whole records with labels below [`CLASSES`] and appends
/// them to `set`.
pub fn append_records(
    file: &Path,
    bytes: &[u8],
    set: &mut Dataset,
    classes: Option<&[String]>,
) -> Result<(), DataError> {
    let n = bytes.len().div_ceil(RECORD);
    if !bytes.len().is_multiple_of(RECORD) {
        return Err(DataError::Truncated {
            file: file.to_path_buf(),
            what: format!("record {n} (1 label byte + 3,072 pixel bytes each)"),
            need: n * RECORD,
            have: bytes.len(),
        });
    }
    if n > MAX_RECORDS {
        return Err(DataError::TooBig {
            file: file.to_path_buf(),
            max: MAX_RECORDS * RECORD,
            have: bytes.len() as u64,
        });
    }
    set.labels.reserve(n);
    set.pixels.reserve(n * (RECORD - 1));
    for (i, rec) in bytes.chunks_exact(RECORD).enumerate() {
        let label = rec[0];
        if label as usize >= CLASSES {
            let names = classes.map_or(String::new(), |c| format!(" ({})", c.join(", ")));
            return Err(DataError::Label {
                file: file.to_path_buf(),
                record: i,
                offset: i * RECORD,
                label,
                expected: format!("0..={}{names}", CLASSES - 1),
            });
        }
        set.labels.push(label);
        set.pixels.extend_from_slice(&rec[1..]);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(label: u8, seed: u8) -> Vec<u8> {
        let mut r = vec![label];
        r.extend((0..RECORD - 1).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)));
        r
    }

    fn empty() -> Dataset {
        Dataset { shape: SHAPE, pixels: vec![], labels: vec![], classes: None, standardize: None }
    }

    #[test]
    fn records_keep_planes_in_chw_order() {
        let bytes = [record(3, 1), record(9, 2)].concat();
        let mut d = empty();
        append_records(Path::new("b.bin"), &bytes, &mut d, None).unwrap();
        assert_eq!(d.labels, [3, 9]);
        assert_eq!(d.len(), 2);
        let x = d.batch_x(&[1]);
        assert_eq!(x.shape(), (1, 3072));
        // Green (c = 1), row 5, column 7 of image 1 is byte 1 + 1024 + 5·32 + 7 of its record.
        let j = 1024 + 5 * 32 + 7;
        assert_eq!(x[(0, j)], bytes[RECORD + 1 + j] as f32 / 255.0);
    }

    #[test]
    fn a_partial_record_or_a_bad_label_is_named() {
        let mut bytes = [record(1, 0), record(2, 0)].concat();
        bytes.pop();
        let e = append_records(Path::new("b.bin"), &bytes, &mut empty(), None).unwrap_err().to_string();
        assert!(e.contains("b.bin") && e.contains("truncated") && e.contains(&format!("{}", 2 * RECORD)), "{e}");
        let bytes = [record(1, 0), record(10, 0)].concat();
        let e = append_records(Path::new("b.bin"), &bytes, &mut empty(), None).unwrap_err().to_string();
        assert!(e.contains("b.bin") && e.contains("record 1") && e.contains("label 10"), "{e}");
    }
}
