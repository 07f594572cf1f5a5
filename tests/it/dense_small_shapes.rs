//! Dense layers on shapes small enough that nalgebra's `gemm` leaves matrixmultiply for its own
//! column-by-column fallback (any dimension <= 5).

use cnn_as_mlp::Tensor;
use cnn_as_mlp::engines::dense::Dense;
use cnn_as_mlp::linear_map::LinearMap;
use nalgebra::DMatrix;

/// The weight gradient `δW[o, i] = Σ_b δz[b, o] · x[b, i]` and the other two products equal their
/// definitions (small integers: exact) for batches and widths on both sides of nalgebra's small-matrix
/// threshold. Regression: the fallback mis-handled the strided view `xᵀ` and wrote out of bounds.
#[test]
fn dense_products_match_definitions_on_small_shapes() {
    let val = |a: usize, b: usize| ((a * 7 + b * 3) % 7) as f64 - 3.0;
    for batch in [1, 2, 5, 6, 9] {
        for n_in in [1, 3, 6, 17] {
            for n_out in [1, 4, 6, 20, 37] {
                let mut layer = Dense::new(n_in, n_out);
                let w = Tensor::from_vec(&[n_out, n_in], (0..n_out * n_in).map(|j| val(j, 1)).collect());
                let b = Tensor::from_vec(&[n_out], (0..n_out).map(|j| val(j, 2)).collect());
                let params = [w.clone(), b.clone()];
                let x = DMatrix::from_fn(batch, n_in, |r, c| val(r, c + 5));
                let dz = DMatrix::from_fn(batch, n_out, |r, c| val(r + 3, c));
                let mut z = DMatrix::zeros(batch, n_out);
                layer.forward(&params, &x, &mut z);
                let mut dx = DMatrix::zeros(batch, n_in);
                layer.backward_input(&mut dx, &params, &dz);
                let mut grads = vec![Tensor::zeros(&[n_out, n_in]), Tensor::zeros(&[n_out])];
                layer.backward_params(&mut grads, &x, &dz);
                let at = |o: usize, i: usize| w.data[o * n_in + i];
                let z_ref = DMatrix::from_fn(batch, n_out, |r, o| {
                    b.data[o] + (0..n_in).map(|i| at(o, i) * x[(r, i)]).sum::<f64>()
                });
                let dx_ref =
                    DMatrix::from_fn(batch, n_in, |r, i| (0..n_out).map(|o| at(o, i) * dz[(r, o)]).sum::<f64>());
                let dw_ref: Vec<f64> =
                    (0..n_out * n_in).map(|j| (0..batch).map(|r| dz[(r, j / n_in)] * x[(r, j % n_in)]).sum()).collect();
                let case = format!("batch {batch}, {n_in} -> {n_out}");
                assert_eq!(z, z_ref, "forward, {case}");
                assert_eq!(dx, dx_ref, "input gradient, {case}");
                assert_eq!(grads[0].data, dw_ref, "weight gradient, {case}");
            }
        }
    }
}
