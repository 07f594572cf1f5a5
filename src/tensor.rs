//! A named, shaped parameter tensor, laid out as PyTorch lays it out (row-major).

/// A dense tensor in row-major (C) order, as PyTorch stores parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor<T> {
    /// Dimensions, slowest first, e.g. `[c_out, c_in, k, k]`.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<T>,
}

impl<T: Copy + Default> Tensor<T> {
    /// A tensor of zeros with the given shape.
    pub fn zeros(shape: &[usize]) -> Self {
        let n = shape.iter().product();
        Tensor { shape: shape.to_vec(), data: vec![T::default(); n] }
    }

    /// Builds a tensor from its shape and data.
    ///
    /// # Panics
    /// If `data.len()` is not the product of `shape` (a caller's bug).
    #[track_caller]
    pub fn from_vec(shape: &[usize], data: Vec<T>) -> Self {
        let n: usize = shape.iter().product();
        assert_eq!(data.len(), n, "Tensor::from_vec: shape {shape:?} needs {n} values, got {}", data.len());
        Tensor { shape: shape.to_vec(), data }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Sets every element to zero.
    pub fn fill_zero(&mut self) {
        self.data.iter_mut().for_each(|v| *v = T::default());
    }
}
