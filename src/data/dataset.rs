//! A loaded data set: images as (batch, features) rows with their labels, its train/test split, and the
//! per-channel standardisation.

use nalgebra::DMatrix;

use std::path::Path;

use super::idx::{DataError, Idx};
use crate::spec::Shape;

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
