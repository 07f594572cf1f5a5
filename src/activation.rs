//! Element-wise activations `a = f(z)` and their backward pass `δ_z = δ_a ⊙ f'(z)`.
//!
//! The derivative is read from the output where that is cheaper: `σ' = a(1 − a)`, `tanh' = 1 − a²`,
//! `relu' = [z > 0]`.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::scalar::Real;
use crate::spec::Activation;

/// Values per parallel task (the work is element-wise: any split gives the same bits).
const CHUNK: usize = 1 << 14;

/// `a = f(z)`, element-wise; `a` is overwritten.
pub fn forward<T: Real>(f: Activation, a: &mut DMatrix<T>, z: &DMatrix<T>) {
    let apply = |v: T| match f {
        Activation::Relu => {
            if v > T::zero() {
                v
            } else {
                T::zero()
            }
        }
        Activation::Sigmoid => T::one() / (T::one() + (-v).exp()),
        Activation::Tanh => v.tanh(),
    };
    a.as_mut_slice().par_chunks_mut(CHUNK).zip(z.as_slice().par_chunks(CHUNK)).for_each(|(ac, zc)| {
        for (av, &zv) in ac.iter_mut().zip(zc) {
            *av = apply(zv);
        }
    });
}

/// `δ_z = δ_a ⊙ f'(z)` given `z` and `a = f(z)`; `dz` is overwritten.
pub fn backward<T: Real>(f: Activation, dz: &mut DMatrix<T>, da: &DMatrix<T>, z: &DMatrix<T>, a: &DMatrix<T>) {
    let slope = |zv: T, av: T| match f {
        Activation::Relu => {
            if zv > T::zero() {
                T::one()
            } else {
                T::zero()
            }
        }
        Activation::Sigmoid => av * (T::one() - av),
        Activation::Tanh => T::one() - av * av,
    };
    dz.as_mut_slice()
        .par_chunks_mut(CHUNK)
        .zip(da.as_slice().par_chunks(CHUNK))
        .zip(z.as_slice().par_chunks(CHUNK).zip(a.as_slice().par_chunks(CHUNK)))
        .for_each(|((dzc, dac), (zc, ac))| {
            for i in 0..dzc.len() {
                dzc[i] = dac[i] * slope(zc[i], ac[i]);
            }
        });
}
