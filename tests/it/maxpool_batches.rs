//! Compiled max pooling on batches that fill the forward pass's register blocks of samples and leave
//! tails (1, 15, 16, 17, 37, 64 samples): outputs, winners and input gradients equal, bit for bit, a
//! one-sample-at-a-time definition (the first maximum in row-major window order wins; the input gradient
//! sums `d_z` into the winner from +0, rows in order) and the direct reference. Values are small
//! integers, so ties are frequent; the residuals include −0.

use cnn_as_mlp::engines::sparse::TiedMaxPool;
use cnn_as_mlp::geometry::PoolGeometry;
use cnn_as_mlp::linear_map::LinearMap;
use oracle::Oracle;
use oracle::reference;

use crate::oracle;
use cnn_as_mlp::scalar::Real;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// `(z, winners, dx)` by the definition, one sample and one window at a time.
fn by_definition<T: Real>(g: &PoolGeometry, x: &DMatrix<T>, dz: &DMatrix<T>) -> (DMatrix<T>, Vec<u32>, DMatrix<T>) {
    let batch = x.nrows();
    let (h_out, w_out) = (g.h_out(), g.w_out());
    let mut z = DMatrix::zeros(batch, g.out_len());
    let mut win = vec![0u32; batch * g.out_len()];
    let mut dx = DMatrix::zeros(batch, g.in_len());
    for b in 0..batch {
        for c in 0..g.c {
            for oy in 0..h_out {
                for ox in 0..w_out {
                    let r = (c * h_out + oy) * w_out + ox;
                    let mut best: Option<usize> = None;
                    for col in g.window(c, oy, ox) {
                        if best.is_none_or(|w| x[(b, col)] > x[(b, w)]) {
                            best = Some(col);
                        }
                    }
                    let w = best.expect("nonempty window");
                    z[(b, r)] = x[(b, w)];
                    win[r * batch + b] = w as u32;
                    dx[(b, w)] += dz[(b, r)];
                }
            }
        }
    }
    (z, win, dx)
}

fn bits<T: Real>(m: &DMatrix<T>) -> Vec<u64> {
    m.iter().map(|v| v.as_f64().to_bits()).collect()
}

fn check<T: Real>(rng: &mut StdRng) -> usize {
    let mut cases = 0;
    for batch in [1, 15, 16, 17, 37, 64] {
        for (k, stride) in [(2, 2), (3, 2), (2, 1), (3, 3), (1, 1)] {
            let g = PoolGeometry { c: 3, h_in: 7, w_in: 9, k, stride };
            let x = DMatrix::from_fn(batch, g.in_len(), |_, _| T::of(rng.random_range(-2..=2) as f64));
            // Residuals with −0 among them.
            let dz = DMatrix::from_fn(batch, g.out_len(), |_, _| match rng.random_range(-3..=3) {
                0 => T::of(-0.0),
                v => T::of(v as f64),
            });
            let (z_ref, win_ref, dx_ref) = by_definition(&g, &x, &dz);
            let mut pool = TiedMaxPool::new(&g);
            let mut z = DMatrix::zeros(batch, g.out_len());
            LinearMap::<T>::forward(&mut pool, &[], &x, &mut z);
            let mut dx = DMatrix::from_element(batch, g.in_len(), T::of(7.0));
            LinearMap::<T>::backward_input(&pool, &mut dx, &[], &dz);
            let case = format!("{} batch {batch}, k={k} s={stride}", T::NAME);
            assert_eq!(bits(&z), bits(&z_ref), "forward, {case}");
            assert_eq!(pool.winners(), win_ref.as_slice(), "winners, {case}");
            assert_eq!(bits(&dx), bits(&dx_ref), "input gradient, {case}");
            let mut direct = Oracle(reference::MaxPool::new(&g));
            let mut z_direct = DMatrix::zeros(batch, g.out_len());
            direct.forward(&[], &x, &mut z_direct);
            let mut dx_direct = DMatrix::zeros(batch, g.in_len());
            direct.backward_input(&mut dx_direct, &[], &dz);
            assert_eq!(bits(&z), bits(&z_direct), "forward vs direct, {case}");
            assert_eq!(bits(&dx), bits(&dx_direct), "input gradient vs direct, {case}");
            cases += 1;
        }
    }
    cases
}

#[test]
fn compiled_max_pooling_equals_its_definition_on_full_and_partial_lane_blocks() {
    let mut rng = StdRng::seed_from_u64(7);
    assert_eq!(check::<f32>(&mut rng), 30);
    assert_eq!(check::<f64>(&mut rng), 30);
}
