//! Element-wise activations `a = f(z)` and their backward pass `δ_z = δ_a ⊙ f'(z)`.
//!
//! The derivative is read from the output where that is cheaper: `σ' = a(1 − a)`, `tanh' = 1 − a²`,
//! `relu' = [z > 0]`, which is `[a > 0]`: the in-place versions the engine uses read `a` alone, so that
//! `z`'s buffer can hold `a`.

use nalgebra::DMatrix;
use rayon::prelude::*;

use crate::scalar::Real;
use crate::spec::Activation;

/// Values per parallel task (the work is element-wise: any split gives the same bits).
const CHUNK: usize = 1 << 14;

/// `a = f(z)`, element-wise; `a` is overwritten.
pub fn forward<T: Real>(f: Activation, a: &mut DMatrix<T>, z: &DMatrix<T>) {
    a.as_mut_slice().par_chunks_mut(CHUNK).zip(z.as_slice().par_chunks(CHUNK)).for_each(|(ac, zc)| {
        // One loop per activation, so that each vectorises.
        match f {
            Activation::Relu => {
                ac.iter_mut().zip(zc).for_each(|(a, &z)| *a = if z > T::zero() { z } else { T::zero() })
            }
            Activation::Sigmoid => ac.iter_mut().zip(zc).for_each(|(a, &z)| *a = T::one() / (T::one() + (-z).exp())),
            Activation::Tanh => ac.iter_mut().zip(zc).for_each(|(a, &z)| *a = z.tanh()),
        }
    });
}

/// `m ← f(m)`, element-wise in place: the same values as [`forward`].
pub fn forward_in_place<T: Real>(f: Activation, m: &mut DMatrix<T>) {
    m.as_mut_slice().par_chunks_mut(CHUNK).for_each(|c| match f {
        Activation::Relu => c.iter_mut().for_each(|v| *v = if *v > T::zero() { *v } else { T::zero() }),
        Activation::Sigmoid => c.iter_mut().for_each(|v| *v = T::one() / (T::one() + (-*v).exp())),
        Activation::Tanh => c.iter_mut().for_each(|v| *v = v.tanh()),
    });
}

/// `δ_z = δ_a ⊙ f'(z)` given `z` and `a = f(z)`; `dz` is overwritten.
pub fn backward<T: Real>(f: Activation, dz: &mut DMatrix<T>, da: &DMatrix<T>, z: &DMatrix<T>, a: &DMatrix<T>) {
    dz.as_mut_slice()
        .par_chunks_mut(CHUNK)
        .zip(da.as_slice().par_chunks(CHUNK))
        .zip(z.as_slice().par_chunks(CHUNK).zip(a.as_slice().par_chunks(CHUNK)))
        .for_each(|((dzc, dac), (zc, ac))| match f {
            Activation::Relu => {
                for ((d, &g), &z) in dzc.iter_mut().zip(dac).zip(zc) {
                    *d = if z > T::zero() { g } else { T::zero() };
                }
            }
            Activation::Sigmoid => {
                for ((d, &g), &a) in dzc.iter_mut().zip(dac).zip(ac) {
                    *d = g * (a * (T::one() - a));
                }
            }
            Activation::Tanh => {
                for ((d, &g), &a) in dzc.iter_mut().zip(dac).zip(ac) {
                    *d = g * (T::one() - a * a);
                }
            }
        });
}

/// `δ ← δ ⊙ f'(z)` in place, from the output `a = f(z)` alone (`relu' = [a > 0]`, the same as `[z > 0]`):
/// the same values as [`backward`] without a third buffer.
pub fn backward_in_place<T: Real>(f: Activation, d: &mut DMatrix<T>, a: &DMatrix<T>) {
    d.as_mut_slice().par_chunks_mut(CHUNK).zip(a.as_slice().par_chunks(CHUNK)).for_each(|(dc, ac)| match f {
        Activation::Relu => {
            for (d, &a) in dc.iter_mut().zip(ac) {
                *d = if a > T::zero() { *d } else { T::zero() };
            }
        }
        Activation::Sigmoid => {
            for (d, &a) in dc.iter_mut().zip(ac) {
                *d *= a * (T::one() - a);
            }
        }
        Activation::Tanh => {
            for (d, &a) in dc.iter_mut().zip(ac) {
                *d *= T::one() - a * a;
            }
        }
    });
}
