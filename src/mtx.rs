//! A compiled layer in the user's own tools: the explicit matrix `W` in Matrix Market format (written by
//! `sprs`'s writer, read by `scipy.io.mmread`, Julia's `MatrixMarket.mmread`, MATLAB's `mmread`), and beside it
//! which parameter each nonzero copies, as CSV.
//!
//! `W.mtx`: `%%MatrixMarket matrix coordinate real general`, one line `row col value` per nonzero, 1-based as the
//! format requires, rows in order and columns increasing within a row; the value is the nonzero's current
//! weight in f32, printed so that parsing it as f32 gives the same bits. `W` is the layer's linear map without
//! its bias: `z = W x + b` with `x` the input flattened as (C, H, W), row-major within a channel, as PyTorch
//! flattens NCHW.
//!
//! `W.params.csv` ([`write_sources`]): a header `row,col,tensor,index`, then one line per nonzero in the same
//! order as `W.mtx`, rows and columns **0-based** (as `scipy.io.mmread(...).tocoo()` gives them):
//!
//! - a nonzero that copies one parameter: `tensor` is its PyTorch name (`3.weight`) and `index` its flat index
//!   in that tensor (`weight.flatten()[index]`, row-major);
//! - a nonzero that adds several (a padded border under reflect, replicate or circular padding reading the same
//!   input twice): the same name and the indices joined by `+` (`12+14`);
//! - a fixed entry (mean pooling's `1/k²`, max pooling's window pattern of 1s): tensor `const`, index empty.
//!
//! Checking `W·x` against a convolution of one's own, here LeNet-5's first layer (`conv(6,5,pad=2)` on
//! `1x28x28`) with numpy and scipy: the kernel is rebuilt from the two files, then the largest difference is
//! printed (about `1e-15`; checked with scipy 1.17 and numpy 2.4):
//!
//! ```text
//! cnn-as-mlp show --model lenet5 --layer 0 --export W.mtx
//! python3 -c "
//! import numpy as np, scipy.io, scipy.signal as sg
//! W = scipy.io.mmread('W.mtx').tocsr()
//! r, c, _, i = np.loadtxt('W.params.csv', delimiter=',', skiprows=1, dtype=str).T
//! w = np.zeros(6 * 1 * 5 * 5); w[i.astype(int)] = np.asarray(W[r.astype(int), c.astype(int)]).ravel(); w = w.reshape(6, 1, 5, 5)
//! x = np.random.rand(1, 28, 28)
//! y = np.stack([sum(sg.correlate2d(np.pad(x[k], 2), w[o, k], mode='valid') for k in range(1)) for o in range(6)])
//! print(abs(W @ x.ravel() - y.ravel()).max())"
//! ```

use std::io::{self, Write};

use sprs::CsMatI;

use crate::tied::{Entry, TiedMatrix};

/// Most nonzeros [`write_mtx`]'s callers should write: about 2 GB of text and 0.5 GB of memory.
pub const MAX_EXPORT_NNZ: usize = 1 << 26;

/// `W` as a CSR matrix of f32 values under the weights `theta` (one value per nonzero, [`TiedMatrix::value`]).
pub fn to_csmat(t: &TiedMatrix, theta: &[f32]) -> CsMatI<f32, u32> {
    let (rows, cols) = t.shape();
    let mut indptr = Vec::with_capacity(rows + 1);
    let mut indices = Vec::with_capacity(t.nnz());
    let mut data = Vec::with_capacity(t.nnz());
    indptr.push(0u32);
    t.for_each_row(|_, cs, codes| {
        indices.extend_from_slice(cs);
        data.extend(codes.iter().map(|&c| t.value(theta, c)));
        indptr.push(indices.len() as u32);
    });
    CsMatI::new((rows, cols), indptr, indices, data)
}

/// Writes `W` under `theta` in Matrix Market format with `sprs::io::write_matrix_market_to_bufwrite`.
///
/// # Panics
/// If the matrix has `2³²` nonzeros or more (its row pointers are `u32`).
pub fn write_mtx(w: &mut impl Write, t: &TiedMatrix, theta: &[f32]) -> io::Result<()> {
    assert!(u32::try_from(t.nnz()).is_ok(), "write_mtx: {} nonzeros do not fit u32 row pointers", t.nnz());
    let m = to_csmat(t, theta);
    sprs::io::write_matrix_market_to_bufwrite(w, &m)
}

/// What entry code `c` copies, as the `tensor,index` fields of `W.params.csv` (see the module documentation).
pub fn source_fields(t: &TiedMatrix, c: u32, tensor: &str) -> (String, String) {
    match t.decode(c) {
        Entry::Param(p) => (tensor.to_string(), p.to_string()),
        Entry::Const(_) => ("const".to_string(), String::new()),
        Entry::Sum(ids) => (tensor.to_string(), ids.iter().map(u32::to_string).collect::<Vec<_>>().join("+")),
    }
}

/// Writes `W.params.csv`: which parameter of `tensor` (a PyTorch name such as `3.weight`) each nonzero copies,
/// in the order of [`write_mtx`] (see the module documentation).
pub fn write_sources(w: &mut impl Write, t: &TiedMatrix, tensor: &str) -> io::Result<()> {
    writeln!(w, "row,col,tensor,index")?;
    let mut result = Ok(());
    t.for_each_row(|r, cs, codes| {
        if result.is_err() {
            return;
        }
        for (&c, &code) in cs.iter().zip(codes) {
            let (name, index) = source_fields(t, code, tensor);
            if let Err(e) = writeln!(w, "{r},{c},{name},{index}") {
                result = Err(e);
                return;
            }
        }
    });
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{Init, init_params};
    use crate::network::{Engine, Network};
    use crate::spec::Spec;

    /// A reflect-padded convolution has compound entries; its export lists them with `+`, and the values of
    /// the matrix are the sums.
    #[test]
    fn compounds_and_constants_are_named() {
        let spec = Spec::parse("1x4x4 > conv(2,3,pad=1,mode=replicate) > avgpool(2)").unwrap();
        let mut net = Network::<f32>::new(&spec, Engine::Sparse);
        init_params(&mut net, Init::TorchDefault, 3);
        let t = net.linear_map(0).and_then(|m| m.tied()).unwrap();
        let mut csv = Vec::new();
        write_sources(&mut csv, t, "0.weight").unwrap();
        let csv = String::from_utf8(csv).unwrap();
        assert_eq!(csv.lines().count(), 1 + t.nnz());
        let sums: Vec<&str> = csv.lines().filter(|l| l.contains('+')).collect();
        assert!(!sums.is_empty(), "replicate padding adds taps:\n{csv}");
        let theta = &net.params[0][0].data;
        let m = to_csmat(t, theta);
        let line: Vec<&str> = sums[0].split(',').collect();
        let (r, c): (usize, usize) = (line[0].parse().unwrap(), line[1].parse().unwrap());
        let want = line[3].split('+').map(|i| theta[i.parse::<usize>().unwrap()]).fold(0.0f32, |a, v| a + v);
        assert_eq!(m.get(r, c).copied().map(f32::to_bits), Some(want.to_bits()));
        let pool = net.linear_map(1).and_then(|m| m.tied()).unwrap();
        let mut csv = Vec::new();
        write_sources(&mut csv, pool, "1.weight").unwrap();
        assert!(String::from_utf8(csv).unwrap().lines().skip(1).all(|l| l.ends_with(",const,")));
    }
}
