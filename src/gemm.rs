//! Dense matrix products on strided slices: the dense layers of every engine and the whole im2col engine.
//!
//! **Kernels.** On x86-64 with AVX2 + FMA (or AVX-512F) the products run faer's own kernels, the crate
//! `private-gemm-x86` (what `faer::linalg::matmul` calls); elsewhere matrixmultiply ([`Real::gemm_raw`]).
//! `examples/gemm_compare.rs` measures them side by side with the `gemm` crate on the shapes that matter here.
//! Every call of a kernel is single-threaded: [`par_gemm`] cuts the output into blocks, one call each.
//!
//! **Bits.** Each output value is summed by one single-threaded call, in an order fixed by that call's shape:
//! the kernels add the inner dimension in slices of 512, each slice one chain of fused multiply-adds per value
//! (two interleaved chains in the smallest edge tiles). The blocks are fixed by the product's shape alone
//! ([`blocks`]), never by the number of threads, so the bits do not depend on it. They do not depend on the
//! kernel cap (`crate::cpu::set_simd_cap`) either: the cap governs this crate's own kernels, and the GEMM
//! picks its instruction set from the CPU alone. They do depend on the CPU's instruction set: the AVX-512
//! kernels tile the output differently from the AVX2 ones, so a value that falls in an edge tile on one may
//! not on the other, and a CPU without AVX2 + FMA runs matrixmultiply. (The bits are the same on every
//! machine of one instruction set: the slices and tiles do not depend on cache sizes.)
//!
//! nalgebra's `gemm` falls back to a per-column loop for dimensions up to 5, which mishandles views whose
//! row stride is not 1; calling the kernels directly avoids that path and the views altogether.

use rayon::prelude::*;

use crate::scalar::Real;

/// A read-only strided matrix: element `(i, j)` at `data[i·rs + j·cs]`.
#[derive(Clone, Copy, Debug)]
pub struct Strided<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub rs: usize,
    pub cs: usize,
}

impl<'a, T> Strided<'a, T> {
    /// A column-major (rows, cols) matrix.
    pub fn col_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Strided { data, rows, cols, rs: 1, cs: rows }
    }

    /// A row-major (rows, cols) matrix (the transpose of a column-major (cols, rows) one).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Strided { data, rows, cols, rs: cols, cs: 1 }
    }

    #[track_caller]
    fn check(&self, what: &str) {
        if self.rows > 0 && self.cols > 0 {
            let last = (self.rows - 1) * self.rs + (self.cols - 1) * self.cs;
            assert!(
                last < self.data.len(),
                "gemm: {what} ({}x{}) reaches {last} of {}",
                self.rows,
                self.cols,
                self.data.len()
            );
        }
    }
}

/// One operand of a kernel call: a start pointer and the row and column strides, in elements.
pub type Operand<T> = (*const T, isize, isize);

/// The instruction set of faer's kernels on this CPU, if it has one (AVX-512F, else AVX2 + FMA), probed once.
#[cfg(target_arch = "x86_64")]
fn faer_isa() -> Option<private_gemm_x86::InstrSet> {
    use private_gemm_x86::InstrSet;
    static ISA: std::sync::OnceLock<Option<InstrSet>> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        if std::arch::is_x86_feature_detected!("avx512f") {
            Some(InstrSet::Avx512)
        } else if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            Some(InstrSet::Avx256)
        } else {
            None
        }
    })
}

/// The name of the kernels [`gemm_serial`] runs on this CPU (for reports).
pub fn kernel_name() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    match faer_isa() {
        Some(private_gemm_x86::InstrSet::Avx512) => return "faer (private-gemm-x86) AVX-512",
        Some(private_gemm_x86::InstrSet::Avx256) => return "faer (private-gemm-x86) AVX2+FMA",
        None => {}
    }
    "matrixmultiply"
}

/// `C ← A B` (`accumulate`: `C ← C + A B`) on the calling thread, for `A` (m, k), `B` (k, n), `C` (m, n) with
/// element `(i, j)` of a matrix at `ptr[i·rs + j·cs]`. Without `accumulate`, `C` is not read.
///
/// # Safety
/// Every element addressed through the shapes and strides lies inside its buffer, `C` aliases neither `A`
/// nor `B`, and no other thread touches the elements of `C` during the call.
#[allow(clippy::too_many_arguments)]
pub unsafe fn gemm_serial<T: Real>(
    m: usize,
    k: usize,
    n: usize,
    a: Operand<T>,
    b: Operand<T>,
    accumulate: bool,
    c: (*mut T, isize, isize),
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for j in 0..n as isize {
                for i in 0..m as isize {
                    // SAFETY: (i, j) is inside C by the caller's contract.
                    unsafe { *c.0.offset(i * c.1 + j * c.2) = T::zero() };
                }
            }
        }
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = faer_isa() {
        use private_gemm_x86 as pg;
        use std::any::TypeId;
        let dtype = if TypeId::of::<T>() == TypeId::of::<f32>() {
            Some(pg::DType::F32)
        } else if TypeId::of::<T>() == TypeId::of::<f64>() {
            Some(pg::DType::F64)
        } else {
            None
        };
        if let Some(dtype) = dtype {
            let one = T::one();
            let accum = if accumulate { pg::Accum::Add } else { pg::Accum::Replace };
            // SAFETY: T is the f32 or f64 that `dtype` names; the CPU has the instruction set `isa` (probed);
            // every element addressed through the shapes and strides is inside its buffer and C aliases
            // neither operand (the caller's contract); `alpha` points at a T; no index lists, no diagonal;
            // one thread.
            unsafe {
                pg::gemm(
                    dtype,
                    pg::IType::U64,
                    isa,
                    m,
                    n,
                    k,
                    c.0.cast(),
                    c.1,
                    c.2,
                    std::ptr::null(),
                    std::ptr::null(),
                    pg::DstKind::Full,
                    accum,
                    a.0.cast(),
                    a.1,
                    a.2,
                    false,
                    std::ptr::null(),
                    0,
                    b.0.cast(),
                    b.1,
                    b.2,
                    false,
                    (&raw const one).cast(),
                    1,
                )
            };
            return;
        }
    }
    let beta = if accumulate { T::one() } else { T::zero() };
    // SAFETY: the caller's contract is `gemm_raw`'s (elements inside their buffers, C aliasing neither operand).
    unsafe { T::gemm_raw(m, k, n, T::one(), a, b, beta, c) }
}

/// Multiply-adds below which a product runs as one block: a block costs a rayon task and a packing of the
/// operand it shares with the other blocks.
const MIN_BLOCK_MACS: usize = 1 << 19;

/// At most this many blocks per product (enough to balance 2 to 8 threads; each block packs the shared operand
/// again).
const MAX_BLOCKS: usize = 8;

/// How [`par_gemm`] cuts an `(m, n)` output with inner dimension `k`: `(by_rows, len)`, blocks of `len` rows
/// (`by_rows`) or columns, the last one shorter. The longer side is cut, into at most `MAX_BLOCKS` blocks of
/// at least `MIN_BLOCK_MACS` multiply-adds; row blocks are a multiple of 96 rows (a whole number of the
/// kernels' register tiles, f32 or f64, AVX2 or AVX-512), column blocks a multiple of 16. Depends on the shape
/// alone.
pub fn blocks(m: usize, n: usize, k: usize) -> (bool, usize) {
    let by_rows = m >= n;
    let (len, unit) = if by_rows { (m, 96) } else { (n, 16) };
    let macs = m.saturating_mul(n).saturating_mul(k.max(1));
    let count = (macs / MIN_BLOCK_MACS).clamp(1, MAX_BLOCKS);
    let size = len.div_ceil(count).next_multiple_of(unit).min(len.max(1));
    (by_rows, size)
}

/// A raw pointer that may cross threads: the blocks of [`par_gemm`] write disjoint elements through it.
#[derive(Clone, Copy)]
struct SendPtr<T>(*mut T);
// SAFETY: used only to write disjoint elements of one output from several threads (see `par_gemm`).
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above; the pointer itself is only copied.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that a closure captures the whole `SendPtr`, not its field).
    fn get(self) -> *mut T {
        self.0
    }
}

/// `C = A B + β C` (β is 0 or 1) with `C` (m, n) column-major in `c`: `[m, k] @ [k, n] -> [m, n]`. The output
/// is cut into fixed blocks of rows or columns ([`blocks`]) computed in parallel, one single-threaded kernel
/// call each over the whole `k`, so no sum crosses blocks and the bits do not depend on the number of threads.
///
/// # Panics
/// If the shapes do not agree, an operand's strides reach outside its slice, or β is neither 0 nor 1.
#[track_caller]
pub fn par_gemm<T: Real>(c: &mut [T], a: Strided<T>, b: Strided<T>, beta: T) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert_eq!(b.rows, k, "gemm: inner dimensions {k} and {} differ", b.rows);
    assert_eq!(c.len(), m * n, "gemm: output has {} values, expected {m} x {n}", c.len());
    assert!(beta == T::zero() || beta == T::one(), "gemm: beta is {beta:?}, not 0 or 1");
    a.check("A");
    b.check("B");
    if m == 0 || n == 0 {
        return;
    }
    let accumulate = beta == T::one();
    let (by_rows, size) = blocks(m, n, k);
    let (ad, bd) = (a.data, b.data);
    let (ars, acs, brs, bcs) = (a.rs as isize, a.cs as isize, b.rs as isize, b.cs as isize);
    if by_rows {
        let count = m.div_ceil(size);
        let out = SendPtr(c.as_mut_ptr());
        (0..count).into_par_iter().for_each(|t| {
            let (i0, mi) = (t * size, size.min(m - t * size));
            // SAFETY: A's rows i0..i0+mi and all of B were bounds-checked above; C is (m, n) column-major and
            // block t alone writes its rows i0..i0+mi (in every column), while `c` stays borrowed.
            unsafe {
                gemm_serial(
                    mi,
                    k,
                    n,
                    (ad.as_ptr().add(i0 * a.rs), ars, acs),
                    (bd.as_ptr(), brs, bcs),
                    accumulate,
                    (out.get().add(i0), 1, m as isize),
                )
            }
        });
    } else {
        c.par_chunks_mut(m * size).enumerate().for_each(|(t, block)| {
            let (j0, nj) = (t * size, block.len() / m);
            // SAFETY: A and B's columns j0..j0+nj were bounds-checked above; `block` is an exclusive (m, nj)
            // column-major slice.
            unsafe {
                gemm_serial(
                    m,
                    k,
                    nj,
                    (ad.as_ptr(), ars, acs),
                    (bd.as_ptr().add(j0 * b.cs), brs, bcs),
                    accumulate,
                    (block.as_mut_ptr(), 1, m as isize),
                )
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic values in [-0.5, 0.5).
    fn values<T: Real>(len: usize, seed: u32) -> Vec<T> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                T::of(f64::from(x >> 8) / f64::from(1u32 << 24) - 0.5)
            })
            .collect()
    }

    /// `par_gemm` on every layout the engines use, `A` read column- or row-major and `B` likewise.
    fn product<T: Real>(m: usize, k: usize, n: usize, a_rm: bool, b_rm: bool, beta: T) -> Vec<T> {
        let (a, b) = (values::<T>(m * k, 7), values::<T>(k * n, 11));
        let mut c = values::<T>(m * n, 13);
        let sa = if a_rm { Strided::row_major(&a, m, k) } else { Strided::col_major(&a, m, k) };
        let sb = if b_rm { Strided::row_major(&b, k, n) } else { Strided::col_major(&b, k, n) };
        par_gemm(&mut c, sa, sb, beta);
        c
    }

    fn bits<T: Real>(v: &[T]) -> Vec<u64> {
        v.iter().map(|x| x.as_f64().to_bits()).collect()
    }

    /// Odd shapes, both cut directions, edge tiles, `k` over one slice of 512, in f32 and f64: the bits are
    /// the same on 1, 2 and 4 rayon threads, and the values are within rounding of an f64 sum.
    /// Fails when a block's extent or a sum's order depends on the thread count, or a block is lost.
    #[test]
    fn par_gemm_bits_do_not_depend_on_the_thread_count() {
        let shapes = [(1013, 577, 67), (67, 577, 1013), (3, 1031, 5), (250, 33, 3), (777, 2, 129), (97, 1100, 95)];
        let pools: Vec<_> =
            [1, 2, 4].iter().map(|&t| rayon::ThreadPoolBuilder::new().num_threads(t).build().unwrap()).collect();
        for &(m, k, n) in &shapes {
            for (a_rm, b_rm) in [(false, false), (true, false), (false, true)] {
                for beta in [0.0, 1.0] {
                    let f32s: Vec<_> =
                        pools.iter().map(|p| p.install(|| bits(&product::<f32>(m, k, n, a_rm, b_rm, beta)))).collect();
                    let f64s: Vec<_> = pools
                        .iter()
                        .map(|p| p.install(|| bits(&product::<f64>(m, k, n, a_rm, b_rm, f64::from(beta)))))
                        .collect();
                    let what = format!("{m}x{k}x{n} a_rm={a_rm} b_rm={b_rm} beta={beta}");
                    assert!(f32s.iter().all(|v| *v == f32s[0]), "f32 {what}: bits differ across thread counts");
                    assert!(f64s.iter().all(|v| *v == f64s[0]), "f64 {what}: bits differ across thread counts");
                    // The values: against a plain f64 sum of the f32 operands.
                    let got = product::<f32>(m, k, n, a_rm, b_rm, beta);
                    let (a, b, c0) = (values::<f32>(m * k, 7), values::<f32>(k * n, 11), values::<f32>(m * n, 13));
                    for j in 0..n {
                        for i in 0..m {
                            let s: f64 = (0..k)
                                .map(|p| {
                                    let av = if a_rm { a[i * k + p] } else { a[i + p * m] };
                                    let bv = if b_rm { b[p * n + j] } else { b[p + j * k] };
                                    f64::from(av) * f64::from(bv)
                                })
                                .sum::<f64>()
                                + f64::from(beta) * f64::from(c0[i + j * m]);
                            let e = (f64::from(got[i + j * m]) - s).abs();
                            assert!(
                                e <= 1e-5 * (k as f64).sqrt() * 4.0,
                                "{what}: ({i}, {j}) is {} not {s}",
                                got[i + j * m]
                            );
                        }
                    }
                }
            }
        }
    }

    /// β = 0 overwrites whatever the output held (NaN included); `k = 0` gives β·C.
    #[test]
    fn beta_zero_never_reads_the_output_and_empty_sums_are_zero() {
        let (a, b) = (values::<f32>(200 * 70, 3), values::<f32>(70 * 9, 5));
        let mut c = vec![f32::NAN; 200 * 9];
        par_gemm(&mut c, Strided::col_major(&a, 200, 70), Strided::col_major(&b, 70, 9), 0.0);
        assert!(c.iter().all(|v| v.is_finite()));
        let mut c = vec![f32::NAN; 6];
        par_gemm(&mut c, Strided::col_major(&[], 2, 0), Strided::col_major(&[], 0, 3), 0.0);
        assert_eq!(c, vec![0.0; 6]);
        let mut c = vec![2.5f64; 6];
        par_gemm(&mut c, Strided::col_major(&[], 2, 0), Strided::col_major(&[], 0, 3), 1.0);
        assert_eq!(c, vec![2.5; 6]);
    }

    #[test]
    fn blocks_depend_on_the_shape_and_cover_it() {
        assert_eq!(blocks(64, 120, 400), (false, 32));
        assert_eq!(blocks(10, 10, 10), (true, 10));
        let (by_rows, size) = blocks(100_352, 64, 576);
        assert!(by_rows && size % 96 == 0 && 100_352usize.div_ceil(size) <= MAX_BLOCKS, "{size}");
    }
}
