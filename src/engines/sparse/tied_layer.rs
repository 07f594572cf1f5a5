//! A layer whose weight matrix is a compiled [`TiedMatrix`], with an optional bias tied per row.

use std::sync::Arc;

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::linear_map::{LinearMap, assert_shape};
use crate::scalar::Real;
use crate::tensor::Tensor;
use crate::tied::{TiedMatrix, gradients, products};

/// `z = W x + b` with `W` a tied sparse matrix over the weight tensor and `b[r] = bias[bias_ids[r]]`.
#[derive(Clone, Debug)]
pub struct TiedLayer<T> {
    /// `W`: (out, in), nonzeros copy entries of the flattened weight tensor; shared by the layer's replicas.
    pub matrix: Arc<TiedMatrix>,
    /// Shape of the weight tensor (`matrix.n_params()` elements); empty when `W` is fixed (mean pooling).
    pub weight_shape: Vec<usize>,
    /// For each row, the bias element it adds, with the bias tensor's shape; `None` without bias.
    pub bias: Option<(Vec<u32>, Vec<usize>)>,
    /// Scratch: one gradient per nonzero, (nnz).
    dw: Vec<T>,
    /// Runs of rows with the same bias element (empty without bias).
    bias_plan: BiasPlan,
    /// Scratch for the bias gradient: one sum per run, then `batch` lanes per task.
    bias_sums: Vec<T>,
    bias_lanes: Vec<T>,
}

impl<T: Real> TiedLayer<T> {
    /// A layer from its compiled matrix, weight shape and per-row bias ids.
    #[track_caller]
    pub fn new(matrix: TiedMatrix, weight_shape: Vec<usize>, bias: Option<(Vec<u32>, Vec<usize>)>) -> Self {
        let n: usize = weight_shape.iter().product();
        assert!(
            n == matrix.n_params() || (weight_shape.is_empty() && matrix.n_params() == 0),
            "TiedLayer: weight shape {weight_shape:?} has {n} values, the matrix reads {}",
            matrix.n_params()
        );
        if let Some((ids, _)) = &bias {
            assert_eq!(ids.len(), matrix.shape().0, "TiedLayer: {} bias ids for {} rows", ids.len(), matrix.shape().0);
        }
        let bias_plan = bias.as_ref().map_or_else(BiasPlan::default, |(ids, _)| BiasPlan::new(ids));
        TiedLayer {
            matrix: Arc::new(matrix),
            weight_shape,
            bias,
            dw: Vec::new(),
            bias_plan,
            bias_sums: Vec::new(),
            bias_lanes: Vec::new(),
        }
    }

    fn has_weight(&self) -> bool {
        !self.weight_shape.is_empty()
    }

    /// The weight values θ (empty for a fixed matrix).
    fn theta<'a>(&self, params: &'a [Tensor<T>]) -> &'a [T] {
        if self.has_weight() { &params[0].data } else { &[] }
    }
}

impl<T: Real> LinearMap<T> for TiedLayer<T> {
    fn dims(&self) -> (usize, usize) {
        self.matrix.shape()
    }

    fn param_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        let mut v = Vec::new();
        if self.has_weight() {
            v.push(("weight", self.weight_shape.clone()));
        }
        if let Some((_, shape)) = &self.bias {
            v.push(("bias", shape.clone()));
        }
        v
    }

    fn forward(&mut self, params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let (rows, cols) = self.dims();
        let batch = x.nrows();
        assert_shape("tied forward x", x, batch, cols);
        assert_shape("tied forward z", z, batch, rows);
        let bias = self.bias.as_ref().map(|(ids, _)| (params[params.len() - 1].data.as_slice(), ids.as_slice()));
        products::forward(&self.matrix, self.theta(params), bias, x.as_slice(), z.as_mut_slice(), batch);
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, params: &[Tensor<T>], dz: &DMatrix<T>) {
        let (rows, cols) = self.dims();
        let batch = dz.nrows();
        assert_shape("tied backward dz", dz, batch, rows);
        assert_shape("tied backward dx", dx, batch, cols);
        products::backward_input(&self.matrix, self.theta(params), dz.as_slice(), dx.as_mut_slice(), batch);
    }

    fn backward_params(&mut self, grads: &mut [Tensor<T>], x: &DMatrix<T>, dz: &DMatrix<T>) {
        let batch = x.nrows();
        if self.has_weight() {
            gradients::param_grad(&self.matrix, x.as_slice(), dz.as_slice(), &mut grads[0].data, &mut self.dw, batch);
        }
        if let Some((ids, _)) = &self.bias {
            let db = &mut grads[grads.len() - 1].data;
            let scratch = (&mut self.bias_sums, &mut self.bias_lanes);
            bias_grad(ids, &self.bias_plan, dz.as_slice(), batch, scratch, db);
        }
    }

    fn multiplicity(&self) -> Vec<Vec<u32>> {
        let mut v = Vec::new();
        if self.has_weight() {
            v.push(self.matrix.multiplicity());
        }
        if let Some((ids, shape)) = &self.bias {
            let mut m = vec![0u32; shape.iter().product()];
            ids.iter().for_each(|&i| m[i as usize] += 1);
            v.push(m);
        }
        v
    }

    fn tied(&self) -> Option<&TiedMatrix> {
        Some(&self.matrix)
    }
}

/// Rows per parallel task of the bias gradient, about (whole runs of rows per task).
const BIAS_ROWS_PER_TASK: usize = 256;

/// How the bias gradient walks the rows: runs of consecutive rows that add the same bias element (a
/// conv channel's rows, or single rows), and how many runs one parallel task takes. Depends only on the
/// bias ids, so the order of every sum is fixed whatever the number of threads.
#[derive(Clone, Debug, Default)]
struct BiasPlan {
    /// Run starts, then the row count: run `k` is rows `runs[k]..runs[k + 1]`.
    runs: Vec<usize>,
    runs_per_task: usize,
}

impl BiasPlan {
    fn new(ids: &[u32]) -> Self {
        let rows = ids.len();
        let mut runs: Vec<usize> = Vec::with_capacity(rows + 1);
        runs.extend((0..rows).filter(|&r| r == 0 || ids[r] != ids[r - 1]));
        runs.push(rows);
        let n_runs = runs.len() - 1;
        let runs_per_task = (BIAS_ROWS_PER_TASK * n_runs).div_ceil(rows.max(1)).max(1);
        BiasPlan { runs, runs_per_task }
    }
}

/// `d_b[p] += Σ_{r : ids[r] = p} Σ_b d_z[b, r]` for `d_z` (batch, rows) column-major.
///
/// Each run of rows ([`BiasPlan`]) sums into `batch` lanes row by row (`lane[b] = Σ_r d_z[b, r]`, rows
/// in order: this vectorises), then its lanes in order into one value; the run sums are added to
/// `d_b[ids[run]]` in run order. Fixed blocks of `runs_per_task` runs are computed in parallel.
fn bias_grad<T: Real>(
    ids: &[u32],
    plan: &BiasPlan,
    dz: &[T],
    batch: usize,
    (sums, lanes): (&mut Vec<T>, &mut Vec<T>),
    db: &mut [T],
) {
    let n_runs = plan.runs.len().saturating_sub(1);
    if n_runs == 0 || batch == 0 {
        return;
    }
    let n_tasks = n_runs.div_ceil(plan.runs_per_task);
    sums.resize(n_runs, T::zero());
    lanes.resize(n_tasks * batch, T::zero());
    let runs = &plan.runs;
    sums.par_chunks_mut(plan.runs_per_task).zip(lanes.par_chunks_mut(batch)).enumerate().for_each(
        |(t, (sums, lanes))| {
            for (i, s) in sums.iter_mut().enumerate() {
                let k = t * plan.runs_per_task + i;
                let (r0, r1) = (runs[k], runs[k + 1]);
                lanes.copy_from_slice(&dz[r0 * batch..(r0 + 1) * batch]);
                for col in dz[(r0 + 1) * batch..r1 * batch].chunks_exact(batch) {
                    lanes.iter_mut().zip(col).for_each(|(l, &v)| *l += v);
                }
                *s = lanes.iter().fold(T::zero(), |a, &v| a + v);
            }
        },
    );
    for (&s, &r) in sums.iter().zip(runs) {
        db[ids[r] as usize] += s;
    }
}
