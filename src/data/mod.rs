//! Training data: image/label sets read from IDX files or CIFAR-10 binary files, batched into
//! (batch, C·H·W) column-major matrices with pixels scaled to `[0, 1]` (`x / 255`, as the PyTorch peers do).
//!
//! Sources ([`Source`]): `mnist10k` (embedded in the binary, works from any directory), `fashion`
//! (Debian's `dataset-fashion-mnist` in [`FASHION_DIR`]), `cifar10` (the CIFAR-10 binary version in
//! [`cifar10_dir`]), or a directory holding either the four standard IDX names, gzip or raw (full MNIST or
//! anything shaped like it), or the CIFAR-10 binary files ([`cifar`]); the layout is told by the files
//! present.

pub mod cifar;
pub mod idx;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use nalgebra::DMatrix;

pub use idx::{DataError, Idx, parse_idx, read_idx};

use crate::spec::Shape;

/// Where Debian's `dataset-fashion-mnist` puts its files.
pub const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// The four standard file names, without `.gz`: train images, train labels, test images, test labels.
pub const IDX_NAMES: [&str; 4] =
    ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

const MNIST10K: [&[u8]; 4] = [
    include_bytes!("../../data/mnist-10k/train-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist-10k/train-labels-idx1-ubyte.gz"),
    include_bytes!("../../data/mnist-10k/t10k-images-idx3-ubyte.gz"),
    include_bytes!("../../data/mnist-10k/t10k-labels-idx1-ubyte.gz"),
];

/// The environment variable the command reads as the folder that holds `cifar-10-batches-bin`
/// ([`set_data_root`]; the library reads no environment).
pub const DATA_ENV: &str = "CNN_AS_MLP_DATA";

/// The folder set by [`set_data_root`].
static DATA_ROOT: RwLock<Option<PathBuf>> = RwLock::new(None);

/// Sets the folder that holds `cifar-10-batches-bin` (`None`: `data`, relative to the working directory).
pub fn set_data_root(root: Option<PathBuf>) {
    *DATA_ROOT.write().unwrap_or_else(|e| e.into_inner()) = root;
}

/// Where `--data cifar10` reads from: `ROOT/cifar-10-batches-bin`, where `ROOT` is the folder set by
/// [`set_data_root`], else `data`.
pub fn cifar10_dir() -> PathBuf {
    let root = DATA_ROOT.read().unwrap_or_else(|e| e.into_inner()).clone();
    root.unwrap_or_else(|| "data".into()).join("cifar-10-batches-bin")
}

/// A data source named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The embedded 8,000 + 2,000 MNIST digits.
    Mnist10k,
    /// Fashion-MNIST from [`FASHION_DIR`].
    Fashion,
    /// CIFAR-10 (binary version) from [`cifar10_dir`].
    Cifar10,
    /// A directory of IDX files or of CIFAR-10 binary files.
    Dir(PathBuf),
}

impl Source {
    /// `mnist10k`, `fashion`, `cifar10`, or a directory path.
    pub fn from_name(s: &str) -> Self {
        match s {
            "mnist10k" => Source::Mnist10k,
            "fashion" => Source::Fashion,
            "cifar10" => Source::Cifar10,
            _ => Source::Dir(PathBuf::from(s)),
        }
    }

    /// The name [`Self::from_name`] reads back.
    pub fn name(&self) -> String {
        match self {
            Source::Mnist10k => "mnist10k".into(),
            Source::Fashion => "fashion".into(),
            Source::Cifar10 => "cifar10".into(),
            Source::Dir(d) => d.display().to_string(),
        }
    }

    /// Reads the train and test sets.
    pub fn load(&self) -> Result<Splits, DataError> {
        match self {
            Source::Mnist10k => {
                let file = |i: usize| PathBuf::from(format!("<embedded mnist10k>/{}.gz", IDX_NAMES[i]));
                let parse = |i: usize, nd| parse_idx(&file(i), MNIST10K[i], nd);
                Ok(Splits {
                    train: Dataset::from_idx(&file(0), parse(0, 3)?, &file(1), parse(1, 1)?)?,
                    test: Dataset::from_idx(&file(2), parse(2, 3)?, &file(3), parse(3, 1)?)?,
                })
            }
            Source::Fashion => {
                let dir = Path::new(FASHION_DIR);
                if !dir.is_dir() {
                    return Err(DataError::FashionMissing { dir: dir.to_path_buf() });
                }
                load_dir(dir)
            }
            Source::Cifar10 => {
                let dir = cifar10_dir();
                if !cifar::is_cifar_dir(&dir) {
                    return Err(DataError::Cifar10Missing { dir });
                }
                cifar::load_cifar_dir(&dir)
            }
            Source::Dir(d) => load_dir(d),
        }
    }
}

/// Reads a data directory: the four standard IDX files (each `NAME` or `NAME.gz`) when any of them is
/// there, else the CIFAR-10 binary files when any of them is there ([`cifar::load_cifar_dir`]), else an
/// error naming both layouts.
pub fn load_dir(dir: &Path) -> Result<Splits, DataError> {
    let any_idx = IDX_NAMES.iter().any(|n| dir.join(n).is_file() || dir.join(format!("{n}.gz")).is_file());
    if any_idx {
        load_idx_dir(dir)
    } else if cifar::is_cifar_dir(dir) {
        cifar::load_cifar_dir(dir)
    } else {
        Err(DataError::NoLayout { dir: dir.to_path_buf() })
    }
}

/// Reads the four standard IDX files (each `NAME` or `NAME.gz`) from `dir`.
pub fn load_idx_dir(dir: &Path) -> Result<Splits, DataError> {
    let find = |name: &str| -> Result<PathBuf, DataError> {
        [dir.join(format!("{name}.gz")), dir.join(name)]
            .into_iter()
            .find(|p| p.is_file())
            .ok_or_else(|| DataError::Missing { dir: dir.to_path_buf(), name: name.to_string() })
    };
    let files = IDX_NAMES.map(find);
    let [a, b, c, d] = files;
    let (a, b, c, d) = (a?, b?, c?, d?);
    Ok(Splits {
        train: Dataset::from_idx(&a, read_idx(&a, 3)?, &b, read_idx(&b, 1)?)?,
        test: Dataset::from_idx(&c, read_idx(&c, 3)?, &d, read_idx(&d, 1)?)?,
    })
}

/// A training set and a test set.
#[derive(Clone, Debug)]
pub struct Splits {
    pub train: Dataset,
    pub test: Dataset,
}

/// Labelled images, stored as the bytes of the data files.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Shape of one image (`1 × H × W` from IDX files, `3 × 32 × 32` from CIFAR-10 files).
    pub shape: Shape,
    /// `len() · C·H·W` pixels, image after image, each in (C, H, W) order, row-major planes.
    pub pixels: Vec<u8>,
    /// One class per image.
    pub labels: Vec<u8>,
    /// The class names, when the data names them (CIFAR-10's `batches.meta.txt`); `classes[l]` names label `l`.
    pub classes: Option<Vec<String>>,
    /// Per-channel standardisation of the batches ([`Standardize`], `train --normalize`); `None`: `x / 255`.
    pub standardize: Option<Standardize>,
}

/// Per-channel standardisation: channel `c`'s pixel `p` becomes `(p / 255 − mean[c]) / std[c]`, as
/// torchvision's `Normalize(mean, std)` after `ToTensor()`. The statistics are the training set's
/// ([`Dataset::channel_stats`]); the test set and every later evaluation use the same values (stored in the
/// run's metadata, see [`Self::to_metadata`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Standardize {
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

impl Standardize {
    /// The metadata keys of the two lists.
    pub const MEAN_KEY: &'static str = "normalize_mean";
    pub const STD_KEY: &'static str = "normalize_std";

    /// `(mean, std)` as metadata values: comma-separated, each the shortest decimal that reads back to the
    /// same `f32`.
    pub fn to_metadata(&self) -> (String, String) {
        let list = |v: &[f32]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(",");
        (list(&self.mean), list(&self.std))
    }

    /// Reads [`Self::to_metadata`]'s values back: one finite mean and one finite positive std per channel.
    pub fn from_metadata(mean: &str, std: &str) -> Result<Self, String> {
        let list = |key: &str, s: &str| -> Result<Vec<f32>, String> {
            s.split(',')
                .map(|v| v.trim().parse::<f32>().map_err(|_| format!("metadata {key:?}: {v:?} is not a number")))
                .collect()
        };
        let (mean, std) = (list(Self::MEAN_KEY, mean)?, list(Self::STD_KEY, std)?);
        if mean.len() != std.len() {
            return Err(format!(
                "metadata {:?} has {} values and {:?} {}",
                Self::MEAN_KEY,
                mean.len(),
                Self::STD_KEY,
                std.len()
            ));
        }
        if let Some(v) = mean.iter().find(|v| !v.is_finite()) {
            return Err(format!("metadata {:?}: {v} is not finite", Self::MEAN_KEY));
        }
        if let Some(v) = std.iter().find(|v| !(v.is_finite() && **v > 0.0)) {
            return Err(format!("metadata {:?}: {v} is not a finite positive number", Self::STD_KEY));
        }
        Ok(Standardize { mean, std })
    }

    /// The value of each byte in each channel: `lut[c · 256 + p]`.
    fn table(&self) -> Vec<f32> {
        let mut lut = Vec::with_capacity(256 * self.mean.len());
        for (&m, &s) in self.mean.iter().zip(&self.std) {
            lut.extend((0..256).map(|p| (p as f32 / 255.0 - m) / s));
        }
        lut
    }
}

impl Dataset {
    /// Pairs an image array (N, H, W) with a label array (N); the counts must agree.
    pub fn from_idx(images_file: &Path, images: Idx, labels_file: &Path, labels: Idx) -> Result<Self, DataError> {
        if images.dims[0] != labels.dims[0] {
            return Err(DataError::CountMismatch {
                images_file: images_file.to_path_buf(),
                labels_file: labels_file.to_path_buf(),
                images: images.dims[0],
                labels: labels.dims[0],
            });
        }
        Ok(Dataset {
            shape: Shape { c: 1, h: images.dims[1], w: images.dims[2] },
            pixels: images.data,
            labels: labels.data,
            classes: None,
            standardize: None,
        })
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Keeps the first `n` images (all if there are fewer).
    pub fn truncate(&mut self, n: usize) {
        let n = n.min(self.len());
        self.labels.truncate(n);
        self.pixels.truncate(n * self.shape.len());
    }

    /// The largest label plus one.
    pub fn n_classes(&self) -> usize {
        self.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0)
    }

    /// Sets [`Self::standardize`] after checking it has one mean and one std per channel of the images.
    pub fn set_standardize(&mut self, s: Option<Standardize>) -> Result<(), String> {
        if let Some(st) = &s
            && st.mean.len() != self.shape.c
        {
            return Err(format!(
                "a standardisation of {} channels for images of {} channel(s) ({}x{}x{})",
                st.mean.len(),
                self.shape.c,
                self.shape.c,
                self.shape.h,
                self.shape.w
            ));
        }
        self.standardize = s;
        Ok(())
    }

    /// The mean and the (population) standard deviation of each channel over every image, on the scale
    /// `x / 255`, summed in `f64` in image order; a channel that is constant gets std 1 (nothing to scale).
    pub fn channel_stats(&self) -> Standardize {
        let (c, plane) = (self.shape.c, self.shape.h * self.shape.w);
        let (mut sum, mut sq) = (vec![0f64; c], vec![0f64; c]);
        for image in self.pixels.chunks_exact(c * plane) {
            for (ch, values) in image.chunks_exact(plane).enumerate() {
                for &p in values {
                    let v = p as f64 / 255.0;
                    sum[ch] += v;
                    sq[ch] += v * v;
                }
            }
        }
        let n = (self.len() * plane).max(1) as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| ((q / n - m * m).max(0.0)).sqrt())
            .map(|s| if s > 1e-6 { s } else { 1.0 });
        Standardize { mean: mean.iter().map(|&m| m as f32).collect(), std: std.map(|s| s as f32).collect() }
    }

    /// Images `idx` as a (B, C·H·W) column-major matrix, `x / 255`, or standardised per channel when
    /// [`Self::standardize`] is set.
    pub fn batch_x(&self, idx: &[usize]) -> DMatrix<f32> {
        let mut x = DMatrix::zeros(idx.len(), self.shape.len()); // (B, C·H·W)
        self.batch_x_into(idx, &mut x);
        x
    }

    /// [`Self::batch_x`] into `x`, reshaped to (B, C·H·W) only when its shape differs (a training loop
    /// reuses one buffer).
    pub fn batch_x_into(&self, idx: &[usize], x: &mut DMatrix<f32>) {
        let f = self.shape.len();
        let b = idx.len();
        if x.shape() != (b, f) {
            *x = DMatrix::zeros(b, f);
        }
        // Blocks of 16 images: 16 sequential reads, and each feature's 16 values fill one cache line of x.
        let data = x.as_mut_slice();
        let lut = self.standardize.as_ref().map(|s| {
            assert_eq!(
                s.mean.len(),
                self.shape.c,
                "Dataset: standardisation of {} channels for {}",
                s.mean.len(),
                self.shape.c
            );
            s.table()
        });
        let plane = self.shape.h * self.shape.w;
        for (k, block) in idx.chunks(16).enumerate() {
            let images: Vec<&[u8]> = block.iter().map(|&i| &self.pixels[i * f..(i + 1) * f]).collect();
            let r0 = 16 * k;
            for j in 0..f {
                let out = &mut data[j * b + r0..j * b + r0 + block.len()];
                match &lut {
                    None => {
                        for (v, img) in out.iter_mut().zip(&images) {
                            *v = img[j] as f32 / 255.0;
                        }
                    }
                    Some(lut) => {
                        let lut = &lut[(j / plane) * 256..][..256];
                        for (v, img) in out.iter_mut().zip(&images) {
                            *v = lut[img[j] as usize];
                        }
                    }
                }
            }
        }
    }

    /// Labels of images `idx`.
    pub fn batch_y(&self, idx: &[usize]) -> Vec<usize> {
        idx.iter().map(|&i| self.labels[i] as usize).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two 2-channel 1×2 images: channel 0 holds 0, 255, 255, 255 (mean 0.75, std √0.1875), channel 1 is
    /// constant 51 (mean 0.2, std 1 by convention).
    fn two_channel() -> Dataset {
        Dataset {
            shape: Shape { c: 2, h: 1, w: 2 },
            pixels: vec![0, 255, 51, 51, 255, 255, 51, 51],
            labels: vec![0, 1],
            classes: None,
            standardize: None,
        }
    }

    #[test]
    fn channel_stats_are_the_mean_and_population_std_of_each_channel() {
        let st = two_channel().channel_stats();
        assert_eq!(st.mean, vec![0.75, 0.2]);
        assert_eq!(st.std, vec![(0.1875f64).sqrt() as f32, 1.0]);
    }

    /// Standardised batches hold (p/255 − mean[c]) / std[c] for each pixel's own channel; without the
    /// standardisation they hold p/255.
    #[test]
    fn standardised_batches_use_each_pixels_channel() {
        let mut d = two_channel();
        let plain = d.batch_x(&[1, 0]);
        let st = Standardize { mean: vec![0.5, 0.25], std: vec![2.0, 0.5] };
        d.set_standardize(Some(st.clone())).unwrap();
        let x = d.batch_x(&[1, 0]); // (B, C·H·W) column-major: feature j, image b at [j·B + b]
        for j in 0..4 {
            for b in 0..2 {
                let c = j / 2;
                let want = (plain[(b, j)] - st.mean[c]) / st.std[c];
                assert_eq!(x[(b, j)], want, "feature {j} image {b}");
            }
        }
        assert_eq!(x[(0, 0)], (1.0 - 0.5) / 2.0);
        let wrong = Standardize { mean: vec![0.5], std: vec![1.0] };
        let e = d.set_standardize(Some(wrong)).unwrap_err();
        assert!(e.contains("1 channels for images of 2 channel(s)"), "{e}");
    }

    #[test]
    fn standardisation_metadata_reads_back_exactly_and_refuses_bad_values() {
        let st = Standardize { mean: vec![0.1, 1.0 / 3.0, -2.5e-7], std: vec![0.3, 7.0, 1e-3] };
        let (m, s) = st.to_metadata();
        assert_eq!(Standardize::from_metadata(&m, &s).unwrap(), st);
        for (m, s, needle) in [
            ("0.1,x", "1,1", "\"x\" is not a number"),
            ("0.1", "1,1", "1 values"),
            ("NaN", "1", "not finite"),
            ("0", "0", "not a finite positive"),
            ("0", "-1", "not a finite positive"),
            ("0", "inf", "not a finite positive"),
        ] {
            let e = Standardize::from_metadata(m, s).unwrap_err();
            assert!(e.contains(needle), "{m} / {s}: {e}");
        }
    }

    #[test]
    fn embedded_mnist10k_loads() {
        let s = Source::Mnist10k.load().unwrap();
        assert_eq!(s.train.len() + s.test.len(), 10_000);
        assert_eq!(s.train.shape, Shape { c: 1, h: 28, w: 28 });
        assert_eq!(s.train.n_classes(), 10);
        let x = s.train.batch_x(&[0, 1]);
        assert_eq!(x.shape(), (2, 784));
        assert!(x.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let i = s.train.pixels[..784].iter().position(|&p| p > 0).unwrap();
        assert_eq!(x[(0, i)], s.train.pixels[i] as f32 / 255.0);
    }
}
