//! Training data: image/label sets read from IDX files, CIFAR-10 binary files or image folders, batched into
//! (batch, C·H·W) column-major matrices with pixels scaled to `[0, 1]` (`x / 255`, as the PyTorch peers do).
//!
//! Sources ([`Source`]): `mnist10k` (embedded in the binary, works from any directory), `fashion`
//! (Debian's `dataset-fashion-mnist` in [`FASHION_DIR`]), `cifar10` (the CIFAR-10 binary version in
//! [`cifar10_dir`]), or a directory holding either the four standard IDX names, gzip or raw (full MNIST or
//! anything shaped like it), the CIFAR-10 binary files ([`cifar`]), or an image folder as torchvision's
//! `ImageFolder` reads it, `train/<class>/*.png|jpg` and `test/<class>/…` (or `val/<class>/…`) ([`folder`]);
//! the layout is told by the files present.

pub mod cifar;
mod dataset;
pub mod folder;
pub mod idx;

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use crate::read;

pub use dataset::{Dataset, Splits, Standardize};
pub use folder::ImageOptions;
pub use idx::{DataError, Idx, parse_idx, read_idx};

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
    /// A directory of IDX files, of CIFAR-10 binary files, or an image folder.
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

    /// Reads the train and test sets (an image folder at the size of its first training image).
    pub fn load(&self) -> Result<Splits, DataError> {
        self.load_with(&ImageOptions::default())
    }

    /// Reads the train and test sets; an image folder is decoded as `images` says (the other sources
    /// have one shape and ignore it).
    pub fn load_with(&self, images: &ImageOptions) -> Result<Splits, DataError> {
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
            Source::Dir(d) => load_dir_with(d, images),
        }
    }
}

/// Reads a data directory: the four standard IDX files (each `NAME` or `NAME.gz`) when any of them is
/// there, else the CIFAR-10 binary files when any of them is there ([`cifar::load_cifar_dir`]), else an
/// image folder when there is a `train` subfolder ([`folder::load_image_folder`], at the size of its first
/// training image), else an error naming the three layouts.
pub fn load_dir(dir: &Path) -> Result<Splits, DataError> {
    load_dir_with(dir, &ImageOptions::default())
}

/// [`load_dir`], with an image folder decoded as `images` says.
pub fn load_dir_with(dir: &Path, images: &ImageOptions) -> Result<Splits, DataError> {
    let any_idx = IDX_NAMES.iter().any(|n| read::present(&dir.join(n)) || read::present(&dir.join(format!("{n}.gz"))));
    if any_idx {
        load_idx_dir(dir)
    } else if cifar::is_cifar_dir(dir) {
        cifar::load_cifar_dir(dir)
    } else if folder::is_image_folder(dir) {
        folder::load_image_folder(dir, images)
    } else {
        Err(DataError::NoLayout { dir: dir.to_path_buf() })
    }
}

/// Reads the four standard IDX files (each `NAME` or `NAME.gz`) from `dir`. An entry that is not a regular
/// file (a directory, FIFO, device, link loop) is refused by what it is ([`read_idx`]).
pub fn load_idx_dir(dir: &Path) -> Result<Splits, DataError> {
    let find = |name: &str| -> Result<PathBuf, DataError> {
        [dir.join(format!("{name}.gz")), dir.join(name)]
            .into_iter()
            .find(|p| read::present(p))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Shape;

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
