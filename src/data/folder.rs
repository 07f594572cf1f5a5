//! Image folders, read as torchvision's `ImageFolder` reads them, into the same [`Dataset`] as IDX and
//! CIFAR-10 files.
//!
//! ```text
//! DIR/train/<class>/…/<image>.png|.jpg|.jpeg     the training set
//! DIR/test/<class>/…                             the test set (DIR/val/<class>/… when there is no DIR/test)
//! ```
//!
//! - **Classes** are the subfolders of `DIR/train`, sorted by name (byte order, as Python sorts names);
//!   label `l` is the `l`-th name, as `ImageFolder.class_to_idx`. A test class is labelled by its name's
//!   index among the training classes, so a test split that lacks a class keeps the others' labels; a test
//!   class that is not a training class is refused. At most 256 classes.
//! - **Files**: within a class folder, recursively (symbolic links followed, 16 levels at most), the files
//!   ending in `.png`, `.jpg` or `.jpeg` (any case), in torchvision's order: folders sorted by path, files
//!   sorted by name within each. Other files are skipped, as `ImageFolder` skips them; names starting with
//!   `.` are skipped too (editor and macOS side files). A class folder without an image is an error, as in
//!   torchvision.
//! - **Decoding**: the `image` crate (PNG and JPEG only; the format is told by the file's first bytes, not
//!   its name). Pixels become the model's channels as PIL's `convert` makes them: 3 channels → RGB (alpha
//!   dropped, grey repeated), 1 channel → grey (ITU-R 601 luma `L = (19595 R + 38470 G + 7471 B + 2¹⁵) >> 16`
//!   for a colour image, the grey values themselves for a grey one). 16-bit images are scaled to 8 bits. The
//!   bytes are stored as they are and batched as every other set is: `x / 255`, or standardised per channel
//!   (`train --normalize`).
//! - **Size**: an image whose size differs from the model's input is refused, naming the file and both
//!   sizes, unless [`ImageOptions::resize`] is set; then it is resized to exactly the input's height and
//!   width (aspect ratio not kept, as torchvision's `Resize((h, w))`) with a bilinear filter (the `image`
//!   crate's `Triangle`, whose support widens when shrinking, so a reduction averages every source pixel as
//!   PIL's antialiased bilinear does; the values can differ from PIL's by rounding).
//! - **Memory**: the whole set is decoded once into one buffer of `images · C·H·W` bytes, checked against
//!   [`crate::system::available`] before it is allocated; an image's header is read before its pixels, and
//!   an image that would need more than its share of the memory (and at most [`MAX_DECODE_BYTES`]) to decode
//!   is refused before decoding.
//! - **Order and speed**: the files are listed first, then decoded in parallel (rayon) straight into their
//!   fixed places in the buffer: the bytes do not depend on the number of threads. When several files are
//!   bad, the first in the listing's order is reported.

use std::io::Seek;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use super::dataset::{Dataset, Splits};
use super::idx::DataError;
use crate::spec::Shape;

/// The training split's folder name.
pub const TRAIN: &str = "train";
/// The test split's folder names, in order of preference.
pub const TEST: [&str; 2] = ["test", "val"];
/// The file extensions read (compared without regard to case).
pub const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];
/// The most classes (labels are bytes).
pub const MAX_CLASSES: usize = 256;
/// The deepest folder nesting followed inside a class folder (a symbolic link loop ends here).
pub const MAX_DEPTH: usize = 16;
/// The most bytes one image may take decoded (a 16384 × 16384 RGBA image; the decoder's own default is half).
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// What an image folder is decoded to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImageOptions {
    /// The model's input shape: channels (1 or 3), height and width. `None`: the first training image's size,
    /// with 1 channel when it is grey and 3 otherwise.
    pub shape: Option<Shape>,
    /// Resize images of another size instead of refusing them.
    pub resize: bool,
    /// Decode only the first `limit` training images of the listing (all when `None`).
    pub limit: Option<usize>,
    /// Decode only the first `test_limit` test images of the listing (all when `None`).
    pub test_limit: Option<usize>,
}

/// True when `dir` has a `train` subfolder (the image-folder layout).
pub fn is_image_folder(dir: &Path) -> bool {
    dir.join(TRAIN).is_dir()
}

/// One image to decode: its file and its label.
struct Item {
    file: PathBuf,
    label: u8,
}

/// Reads `DIR/train` and `DIR/test` (or `DIR/val`) as described in the module documentation.
pub fn load_image_folder(dir: &Path, opts: &ImageOptions) -> Result<Splits, DataError> {
    let folder_err = |problem: String| DataError::ImageFolder { dir: dir.to_path_buf(), problem };
    let train_dir = dir.join(TRAIN);
    if !train_dir.is_dir() {
        return Err(folder_err(format!(
            "no {TRAIN}/ folder (an image folder holds {TRAIN}/<class>/ and test/<class>/)"
        )));
    }
    let Some(test_dir) = TEST.iter().map(|t| dir.join(t)).find(|p| p.is_dir()) else {
        return Err(folder_err(format!(
            "has {TRAIN}/ but neither test/ nor val/ (an image folder holds {TRAIN}/<class>/ and test/<class>/ or val/<class>/)"
        )));
    };
    let classes = class_dirs(&train_dir)?;
    let names: Vec<String> = classes.iter().map(|(n, _)| n.clone()).collect();
    let mut train = list_split(&train_dir, &classes, |_, i| Ok(i))?;
    let test_classes = class_dirs(&test_dir)?;
    let mut test = list_split(&test_dir, &test_classes, |name, _| {
        names.iter().position(|n| n == name).ok_or_else(|| DataError::ImageFolder {
            dir: test_dir.join(name),
            problem: format!("class {name:?} is not a class of {} ({})", train_dir.display(), short_list(&names)),
        })
    })?;
    let shape = match opts.shape {
        Some(s) => s,
        None => first_shape(&train[0].file)?,
    };
    train.truncate(opts.limit.unwrap_or(usize::MAX));
    test.truncate(opts.test_limit.unwrap_or(usize::MAX));
    if shape.c != 1 && shape.c != 3 {
        return Err(folder_err(format!(
            "the model's input has {} channels ({shape}); images are read as 1 channel (grey) or 3 (RGB)",
            shape.c
        )));
    }
    let f = shape.len();
    let images = train.len() + test.len();
    let need = images as u128 * f as u128;
    let avail = crate::system::available();
    if need > avail.bytes {
        return Err(folder_err(format!(
            "{images} images of {shape} need {need} bytes, more than the {} bytes available ({})",
            avail.bytes, avail.source
        )));
    }
    // What one decode may hold (the decoded image and its converted or resized copy), per thread.
    let threads = rayon::current_num_threads().max(1) as u128;
    let per_image = ((avail.bytes - need) / (2 * threads)).min(MAX_DECODE_BYTES as u128) as u64;
    let decode = Decode { shape, resize: opts.resize, max_bytes: per_image };
    let set = |items: &[Item]| -> Result<Dataset, DataError> {
        Ok(Dataset {
            shape,
            pixels: decode.all(items)?,
            labels: items.iter().map(|i| i.label).collect(),
            classes: Some(names.clone()),
            standardize: None,
        })
    };
    Ok(Splits { train: set(&train)?, test: set(&test)? })
}

/// Up to five names, then how many more.
fn short_list(names: &[String]) -> String {
    let mut s = names.iter().take(5).map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s += &format!(", … {} in all", names.len());
    }
    s
}

fn io_err(file: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { file: file.to_path_buf(), source }
}

/// The entries of `dir` not starting with `.`, sorted by name (bytes): (name, path, is a folder). Symbolic
/// links are followed; a dangling one is an error naming it.
fn entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf, bool)>, DataError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        let name = e.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = e.path();
        let meta = std::fs::metadata(&path).map_err(io_err(&path))?;
        out.push((name, path, meta.is_dir()));
    }
    out.sort_by(|a, b| a.0.as_encoded_bytes().cmp(b.0.as_encoded_bytes()));
    Ok(out)
}

/// The class folders of a split folder, sorted by name: (name, path).
fn class_dirs(split: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let classes: Vec<(String, PathBuf)> = entries(split)?
        .into_iter()
        .filter(|e| e.2)
        .map(|(name, path, _)| (name.to_string_lossy().into_owned(), path))
        .collect();
    if classes.is_empty() {
        return Err(DataError::ImageFolder {
            dir: split.to_path_buf(),
            problem: "no class folders (one subfolder per class, holding its PNG or JPEG images)".into(),
        });
    }
    if classes.len() > MAX_CLASSES {
        return Err(DataError::ImageFolder {
            dir: split.to_path_buf(),
            problem: format!("{} class folders, more than the {MAX_CLASSES} labels can tell apart", classes.len()),
        });
    }
    Ok(classes)
}

/// The images of every class of a split, class after class; `label(name, index)` gives a class's label.
fn list_split(
    split: &Path,
    classes: &[(String, PathBuf)],
    label: impl Fn(&str, usize) -> Result<usize, DataError>,
) -> Result<Vec<Item>, DataError> {
    let mut items = Vec::new();
    for (i, (name, path)) in classes.iter().enumerate() {
        let label = label(name, i)? as u8;
        let (files, skipped) = image_files(path)?;
        if files.is_empty() {
            let other = if skipped > 0 { format!("; {skipped} other file(s) skipped") } else { String::new() };
            return Err(DataError::ImageFolder {
                dir: path.clone(),
                problem: format!("class {name:?} of {} holds no .png, .jpg or .jpeg file{other}", split.display()),
            });
        }
        items.extend(files.into_iter().map(|file| Item { file, label }));
    }
    Ok(items)
}

/// The image files under `class_dir` in torchvision's order (folders by path, then files by name), and the
/// number of other files skipped.
fn image_files(class_dir: &Path) -> Result<(Vec<PathBuf>, usize), DataError> {
    // (folder, its image files sorted by name), gathered recursively, then sorted by folder path.
    let mut folders: Vec<(PathBuf, Vec<PathBuf>)> = Vec::new();
    let mut skipped = 0;
    let mut stack = vec![(class_dir.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(DataError::ImageFolder {
                dir,
                problem: format!(
                    "nested more than {MAX_DEPTH} folders deep inside its class folder (a symbolic link loop?)"
                ),
            });
        }
        let mut files = Vec::new();
        for (name, path, is_dir) in entries(&dir)? {
            if is_dir {
                stack.push((path, depth + 1));
            } else if has_image_extension(&name) {
                files.push(path);
            } else {
                skipped += 1;
            }
        }
        folders.push((dir, files));
    }
    folders.sort_by(|a, b| a.0.as_os_str().as_encoded_bytes().cmp(b.0.as_os_str().as_encoded_bytes()));
    Ok((folders.into_iter().flat_map(|(_, f)| f).collect(), skipped))
}

fn has_image_extension(name: &std::ffi::OsStr) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// The shape of the first training image when the caller gives none: its size, 1 channel if grey, else 3.
fn first_shape(file: &Path) -> Result<Shape, DataError> {
    let decoder = open(file, MAX_DECODE_BYTES)?;
    let (w, h) = image::ImageDecoder::dimensions(&decoder);
    let c = if image::ImageDecoder::color_type(&decoder).has_color() { 3 } else { 1 };
    Ok(Shape { c, h: h as usize, w: w as usize })
}

/// The PNG and JPEG signatures.
const PNG_MAGIC: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC: [u8; 3] = [0xff, 0xd8, 0xff];

/// An image error: the decoder's message, on one line.
fn image_err(file: &Path, what: &str, e: impl std::fmt::Display) -> DataError {
    let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
    DataError::Image { file: file.to_path_buf(), problem: format!("{what}: {msg}") }
}

/// Opens `file` as a PNG or JPEG (told by its first bytes) and reads its header; decoding may allocate at
/// most `max_bytes`.
fn open(file: &Path, max_bytes: u64) -> Result<impl image::ImageDecoder, DataError> {
    // A FIFO, device or directory is refused by what it is, without blocking.
    let f = crate::read::open_regular(file).map_err(io_err(file))?;
    let mut r = std::io::BufReader::new(f);
    let mut head = [0u8; 8];
    let got = crate::read::read_up_to(&mut r, &mut head).map_err(io_err(file))?;
    if got == 0 {
        return Err(DataError::Image {
            file: file.to_path_buf(),
            problem: "empty file (0 bytes), not an image".into(),
        });
    }
    let format = if head[..got] == PNG_MAGIC {
        image::ImageFormat::Png
    } else if head[..got].starts_with(&JPEG_MAGIC) {
        image::ImageFormat::Jpeg
    } else {
        return Err(DataError::Image {
            file: file.to_path_buf(),
            problem: format!(
                "not a PNG or JPEG image (it starts with bytes {:02x?}; a PNG starts with {:02x?}, a JPEG with {:02x?})",
                &head[..got.min(4)],
                &PNG_MAGIC[..4],
                JPEG_MAGIC
            ),
        });
    };
    r.seek(std::io::SeekFrom::Start(0)).map_err(io_err(file))?;
    let mut reader = image::ImageReader::with_format(r, format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    reader.into_decoder().map_err(|e| image_err(file, "cannot read its header", e))
}

/// How to decode every image of a set.
struct Decode {
    shape: Shape,
    resize: bool,
    /// The most bytes one decoded image may take.
    max_bytes: u64,
}

impl Decode {
    /// Decodes `items` in parallel into one buffer, image `i` at `i · C·H·W`; the first bad file in
    /// `items`' order is reported, whatever the thread count.
    fn all(&self, items: &[Item]) -> Result<Vec<u8>, DataError> {
        let f = self.shape.len();
        let mut pixels = vec![0u8; items.len() * f];
        let first_bad = AtomicUsize::new(usize::MAX);
        let errors = Mutex::new(Vec::new());
        pixels.par_chunks_mut(f).zip(items.par_iter()).enumerate().for_each(|(i, (out, item))| {
            // Files after a known bad one need not be decoded: the one reported comes before them.
            if i > first_bad.load(Ordering::Relaxed) {
                return;
            }
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.one(&item.file, out)))
                .unwrap_or_else(|_| {
                    Err(DataError::Image { file: item.file.clone(), problem: "the image decoder failed on it".into() })
                });
            if let Err(e) = r {
                first_bad.fetch_min(i, Ordering::Relaxed);
                errors.lock().unwrap_or_else(|e| e.into_inner()).push((i, e));
            }
        });
        let errors = errors.into_inner().unwrap_or_else(|e| e.into_inner());
        match errors.into_iter().min_by_key(|(i, _)| *i) {
            Some((_, e)) => Err(e),
            None => Ok(pixels),
        }
    }

    /// Decodes `file` into `out` (C·H·W bytes, planes in C, H, W order).
    fn one(&self, file: &Path, out: &mut [u8]) -> Result<(), DataError> {
        let decoder = open(file, self.max_bytes)?;
        let (w, h) = image::ImageDecoder::dimensions(&decoder);
        let Shape { c, h: want_h, w: want_w } = self.shape;
        let same = (h as usize, w as usize) == (want_h, want_w);
        if !same && !self.resize {
            return Err(DataError::ImageSize { file: file.to_path_buf(), width: w, height: h, want_w, want_h });
        }
        let need = image::ImageDecoder::total_bytes(&decoder);
        if need > self.max_bytes {
            return Err(DataError::Image {
                file: file.to_path_buf(),
                problem: format!(
                    "a {w}x{h} image (width x height) needs {need} bytes to decode, more than the {} bytes each decoding thread may use",
                    self.max_bytes
                ),
            });
        }
        let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| image_err(file, "cannot decode", e))?;
        if !same {
            img = img.resize_exact(want_w as u32, want_h as u32, image::imageops::FilterType::Triangle);
        }
        let plane = want_h * want_w;
        if c == 3 {
            let rgb = img.into_rgb8();
            for (i, px) in rgb.pixels().enumerate() {
                out[i] = px[0];
                out[plane + i] = px[1];
                out[2 * plane + i] = px[2];
            }
        } else if !img.color().has_color() {
            out.copy_from_slice(img.into_luma8().as_raw());
        } else {
            let rgb = img.into_rgb8();
            for (o, px) in out.iter_mut().zip(rgb.pixels()) {
                *o = ((19595 * px[0] as u32 + 38470 * px[1] as u32 + 7471 * px[2] as u32 + 0x8000) >> 16) as u8;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// PIL's luma of white is 255 and of pure red, green, blue 76, 150, 29.
    #[test]
    fn luma_weights_are_pils() {
        let l = |r: u32, g: u32, b: u32| (19595 * r + 38470 * g + 7471 * b + 0x8000) >> 16;
        assert_eq!((l(255, 255, 255), l(255, 0, 0), l(0, 255, 0), l(0, 0, 255)), (255, 76, 150, 29));
    }
}
