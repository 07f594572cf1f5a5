//! Compile a convolution into its tied sparse matrix and look inside: every nonzero `(row, column)` and the
//! kernel entry it copies, checked against the convolution's definition, and `W x` against the sum
//! written out. Run: `cargo run --release --example inspect_layer`; `cargo test` runs it too.
//!
//! Row `r` of `W` is output `(o, oy, ox)` and column `c` is input `(i, iy, ix)`, both flattened (C, H, W).
//! With stride `s` and zero padding `p`, `W[r, c] = θ[o, i, ky, kx]` exactly when `iy = oy·s − p + ky` and
//! `ix = ox·s − p + kx` for a tap `(ky, kx)` of the kernel, and 0 otherwise.

use cnn_as_mlp::tied::Entry;
use cnn_as_mlp::{Engine, Network, Spec};
use nalgebra::DMatrix;

/// Checks the compiled matrix of `conv(2,3,stride=2,pad=1)` on a 2×5×5 input; returns (nnz, the number
/// of kernel taps that land inside the input, counted from the definition).
fn inspect() -> (usize, usize) {
    let (c_in, n, c_out, k, s, p) = (2usize, 5usize, 2usize, 3usize, 2usize, 1usize);
    let spec = Spec::parse("2x5x5 > conv(2,3,stride=2,pad=1)").expect("a valid spec");
    let mut net = Network::<f64>::new(&spec, Engine::Sparse);
    // Give every kernel value a distinct, recognisable value: θ[o,i,ky,kx] = 1000·o + 100·i + 10·ky + kx.
    for (j, v) in net.params[0][0].data.iter_mut().enumerate() {
        let (o, i, ky, kx) = (j / (c_in * k * k), j / (k * k) % c_in, j / k % k, j % k);
        *v = (1000 * o + 100 * i + 10 * ky + kx) as f64;
    }
    let m = (n + 2 * p - k) / s + 1; // output side: 3
    let w = net.linear_map(0).expect("layer 0 is linear").tied().expect("a conv compiles to a tied matrix");
    println!("W: {:?}, {} nonzeros copying {} parameters", w.shape(), w.nnz(), w.n_params());
    assert_eq!(w.shape(), (c_out * m * m, c_in * n * n));

    // Every nonzero, from the stored CSR index: the kernel entry it copies is the one the definition says.
    for (&code, (r, c)) in w.map().iter() {
        let (r, c) = (r as usize, c as usize);
        let (o, oy, ox) = (r / (m * m), r / m % m, r % m);
        let (i, iy, ix) = (c / (n * n), c / n % n, c % n);
        let (ky, kx) = (iy + p - oy * s, ix + p - ox * s);
        let Entry::Param(theta) = w.decode(code) else { panic!("zero padding compiles no constant or sum") };
        assert_eq!(theta as usize, ((o * c_in + i) * k + ky) * k + kx, "W[{r}, {c}]");
        if r == 4 {
            println!("  W[{r}, {c}] = θ[{o},{i},{ky},{kx}] = {}", net.params[0][0].data[theta as usize]);
        }
    }
    // Taps inside the input, counted from the definition: exactly the stored nonzeros.
    let inside = |o: usize| (0..k).filter(|t| (o * s + t).checked_sub(p).is_some_and(|v| v < n)).count();
    let taps: usize = (0..m).map(inside).sum::<usize>().pow(2) * c_in * c_out;
    let nnz = w.nnz();

    // y = W x (+ bias) equals the convolution written as its sum.
    let x = DMatrix::<f64>::from_fn(1, c_in * n * n, |_, f| (f % 7) as f64 - 3.0);
    let y = net.forward(&x).clone();
    for o in 0..c_out {
        for (oy, ox) in (0..m).flat_map(|a| (0..m).map(move |b| (a, b))) {
            let mut sum = net.params[0][1].data[o];
            for (i, ky, kx) in (0..c_in).flat_map(|i| (0..k).flat_map(move |a| (0..k).map(move |b| (i, a, b)))) {
                let (iy, ix) = ((oy * s + ky).wrapping_sub(p), (ox * s + kx).wrapping_sub(p));
                if iy < n && ix < n {
                    sum += net.params[0][0].data[((o * c_in + i) * k + ky) * k + kx] * x[(0, (i * n + iy) * n + ix)];
                }
            }
            assert_eq!(y[(0, (o * m + oy) * m + ox)], sum, "output ({o}, {oy}, {ox})");
        }
    }
    println!("W x equals the convolution's sum at all {} outputs", c_out * m * m);
    (nnz, taps)
}

#[cfg_attr(test, allow(dead_code))]
fn main() {
    inspect();
}

#[cfg(test)]
mod tests {
    /// The stored nonzeros are exactly the taps inside the input (2·2 output channels·inputs, 7 per axis).
    #[test]
    fn the_matrix_is_the_convolution() {
        let (nnz, taps) = super::inspect();
        assert_eq!((nnz, taps), (4 * 7 * 7, 4 * 7 * 7));
    }
}
