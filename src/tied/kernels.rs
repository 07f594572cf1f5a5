//! The three products of a tied matrix, on the (batch, features) column-major layout.
//!
//! Letters: `B` batch size, `R` rows of `W` (outputs), `C` columns of `W` (inputs), `G` rows in a group,
//! `n` nonzeros per row of a group. A (B, F) matrix is a slice of `B * F` values, feature `f` at
//! `[f * B, (f + 1) * B)`, so that a nonzero `(r, c, w)` is one AXPY `y[:, r] += w · x[:, c]` over the batch.
//!
//! Every kernel walks the row groups of the pattern: the `G` rows of a group share their `n` columns, so
//! each input column is loaded once and used `G` times. Groups run in parallel (rayon); each output value
//! is summed by one thread in a fixed order (columns increasing), so the bits do not depend on the number
//! of threads.

use rayon::prelude::*;

use super::{IndexMap, RowGroups, ScatterSegment, TiedMatrix};
use crate::scalar::Real;

/// A slice that parallel tasks write to at disjoint places.
///
/// The tied kernels write each output column from exactly one task (the row groups partition the rows,
/// an invariant of [`TiedMatrix::check_structure`]); this wrapper lets those tasks share the buffer.
pub(crate) struct Disjoint<T> {
    ptr: *mut T,
    len: usize,
}

unsafe impl<T: Send> Send for Disjoint<T> {}
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    pub(crate) fn new(s: &mut [T]) -> Self {
        Disjoint { ptr: s.as_mut_ptr(), len: s.len() }
    }

    /// The sub-slice `[start, start + len)`.
    ///
    /// # Safety
    /// No two live sub-slices obtained from one `Disjoint` may overlap.
    #[inline]
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "Disjoint::slice: [{start}, {}) outside {}", start + len, self.len);
        unsafe { std::slice::from_raw_parts_mut(self.ptr.add(start), len) }
    }
}

/// `y = W x + b`: `x` (B, C), `y` (B, R), overwritten. `bias`, when given, is `(values, id per row)`:
/// row `r` adds `values[ids[r]]`.
#[track_caller]
pub fn forward<T: Real>(m: &TiedMatrix, theta: &[T], bias: Option<(&[T], &[u32])>, x: &[T], y: &mut [T], batch: usize) {
    let (rows, cols) = m.shape();
    assert_eq!(theta.len(), m.n_params(), "forward: θ has {} values, the matrix reads {}", theta.len(), m.n_params());
    assert_eq!(x.len(), batch * cols, "forward: x has {} values, expected batch {batch} x {cols}", x.len());
    assert_eq!(y.len(), batch * rows, "forward: y has {} values, expected batch {batch} x {rows}", y.len());
    if let Some((b, ids)) = bias {
        assert_eq!(ids.len(), rows, "forward: {} bias ids for {rows} rows", ids.len());
        assert!(ids.iter().all(|&i| (i as usize) < b.len()), "forward: bias id out of range ({} biases)", b.len());
    }
    grouped_product(m, m.map(), m.groups(), theta, bias, x, y, batch);
}

/// `d_x = Wᵀ d_y`: `dy` (B, R), `dx` (B, C), overwritten. Uses the stored transpose: no reduction
/// crosses threads.
#[track_caller]
pub fn backward_input<T: Real>(m: &TiedMatrix, theta: &[T], dy: &[T], dx: &mut [T], batch: usize) {
    let (rows, cols) = m.shape();
    assert_eq!(
        theta.len(),
        m.n_params(),
        "backward_input: θ has {} values, the matrix reads {}",
        theta.len(),
        m.n_params()
    );
    assert_eq!(dy.len(), batch * rows, "backward_input: dy has {} values, expected {batch} x {rows}", dy.len());
    assert_eq!(dx.len(), batch * cols, "backward_input: dx has {} values, expected {batch} x {cols}", dx.len());
    grouped_product(m, m.map_t(), m.groups_t(), theta, None, dy, dx, batch);
}

/// The pattern-restricted gradient, one value per nonzero:
/// `d_w[k] = Σ_b d_y[b, row(k)] · x[b, col(k)]`, written to `dw` (nnz values, overwritten).
#[track_caller]
pub fn nonzero_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dw: &mut [T], batch: usize) {
    let (rows, cols) = m.shape();
    assert_eq!(x.len(), batch * cols, "nonzero_grad: x has {} values, expected {batch} x {cols}", x.len());
    assert_eq!(dy.len(), batch * rows, "nonzero_grad: dy has {} values, expected {batch} x {rows}", dy.len());
    assert_eq!(dw.len(), m.nnz(), "nonzero_grad: dw has {} values for {} nonzeros", dw.len(), m.nnz());
    let map = m.map();
    let indptr = map.indptr();
    let indptr = indptr.raw_storage();
    let indices = map.indices();
    let groups = m.groups();
    let out = Disjoint::new(dw);
    (0..groups.len()).into_par_iter().for_each(|g| {
        let grows = groups.group(g);
        let first = grows[0] as usize;
        let gcols = &indices[indptr[first] as usize..indptr[first + 1] as usize];
        let n = gcols.len();
        for &r in grows {
            let r = r as usize;
            let dyr = &dy[r * batch..(r + 1) * batch];
            // SAFETY: the nonzeros of row r belong to this task only (groups partition the rows).
            let dwr = unsafe { out.slice(indptr[r] as usize, n) };
            dots_dispatch(dwr, dyr, gcols, x, batch);
        }
    });
}

/// The scatter into the shared parameters: `d_θ[p] += Σ_{k : param[k] = p} d_w[k]` (a compound entry adds
/// its `d_w[k]` to each parameter it sums; constants receive nothing). Every parameter sums its terms in
/// the order of `k`, whatever the number of threads: the parallel tasks are the scatter segments, which
/// read disjoint parameters ([`TiedMatrix::scatter_segments`]).
#[track_caller]
pub fn scatter_grad<T: Real>(m: &TiedMatrix, dw: &[T], dtheta: &mut [T]) {
    assert_eq!(dw.len(), m.nnz(), "scatter_grad: dw has {} values for {} nonzeros", dw.len(), m.nnz());
    assert_eq!(
        dtheta.len(),
        m.n_params(),
        "scatter_grad: dθ has {} values for {} parameters",
        dtheta.len(),
        m.n_params()
    );
    // Segments read disjoint parameter ranges: each gets its own slice of dθ and runs in parallel; within a
    // segment the nonzeros are visited in order, so every parameter sums its terms in nonzero order.
    let map = m.map();
    let (ip, codes) = (map.indptr(), map.data());
    let ip = ip.raw_storage();
    let mut work: Vec<(ScatterSegment, &mut [T])> = Vec::new();
    let (mut rest, mut offset) = (dtheta, 0usize);
    for &seg in m.scatter_segments() {
        if seg.params.0 == u32::MAX {
            continue;
        }
        let (p0, p1) = (seg.params.0 as usize, seg.params.1 as usize);
        let (_, tail) = std::mem::take(&mut rest).split_at_mut(p0 - offset);
        let (mine, tail) = tail.split_at_mut(p1 - p0);
        work.push((seg, mine));
        (rest, offset) = (tail, p1);
    }
    work.into_par_iter().for_each(|(seg, d)| {
        let p0 = seg.params.0 as usize;
        let ks = ip[seg.rows.0 as usize] as usize..ip[seg.rows.1 as usize] as usize;
        for (&code, &g) in codes[ks.clone()].iter().zip(&dw[ks]) {
            match m.decode(code) {
                super::Entry::Param(p) => d[p as usize - p0] += g,
                super::Entry::Const(_) => {}
                super::Entry::Sum(ids) => ids.iter().for_each(|&p| d[p as usize - p0] += g),
            }
        }
    });
}

/// `d_θ += ∂J/∂θ` for `y = W x`: [`nonzero_grad`] into `scratch` (nnz values, reused between calls), then
/// [`scatter_grad`].
pub fn param_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dtheta: &mut [T], scratch: &mut Vec<T>, batch: usize) {
    if m.n_params() == 0 {
        return;
    }
    scratch.resize(m.nnz(), T::zero());
    nonzero_grad(m, x, dy, scratch, batch);
    scatter_grad(m, scratch, dtheta);
}

/// `y[:, r] = bias(r) + Σ_{k in row r} value(code[k]) · x[:, col(k)]`, row group by row group.
#[allow(clippy::too_many_arguments)]
fn grouped_product<T: Real>(
    m: &TiedMatrix,
    map: &IndexMap,
    groups: &RowGroups,
    theta: &[T],
    bias: Option<(&[T], &[u32])>,
    x: &[T],
    y: &mut [T],
    batch: usize,
) {
    let indptr = map.indptr();
    let indptr = indptr.raw_storage();
    let indices = map.indices();
    let codes = map.data();
    let out = Disjoint::new(y);
    (0..groups.len()).into_par_iter().for_each_init(
        || (Vec::<T>::new(), Vec::<T>::new()),
        |(wblock, acc), g| {
            let grows = groups.group(g);
            let first = grows[0] as usize;
            let gcols = &indices[indptr[first] as usize..indptr[first + 1] as usize];
            let n = gcols.len();
            // wblock: (G, n) row-major, the group's values gathered from θ.
            wblock.clear();
            for &r in grows {
                let k0 = indptr[r as usize] as usize;
                wblock.extend(codes[k0..k0 + n].iter().map(|&c| m.value(theta, c)));
            }
            // acc: (G, B), one batch column per row of the group.
            acc.clear();
            for &r in grows {
                let b0 = bias.map_or(T::zero(), |(b, ids)| b[ids[r as usize] as usize]);
                acc.extend(std::iter::repeat_n(b0, batch));
            }
            accumulate_dispatch(acc, wblock, gcols, x, batch);
            for (gi, &r) in grows.iter().enumerate() {
                let r = r as usize;
                // SAFETY: row r belongs to this group only (groups partition the rows).
                let yr = unsafe { out.slice(r * batch, batch) };
                yr.copy_from_slice(&acc[gi * batch..(gi + 1) * batch]);
            }
        },
    );
}

/// Batch values per register block of the micro-kernels.
const LANES: usize = 16;

/// `acc[g, :] += Σ_j w[g, j] · x[:, cols[j]]` for the rows `g` of a group: `acc` (G, B) row by row, `w` (G, n)
/// row-major. Register blocks of `R` rows × [`LANES`] samples stay in registers over all `n` columns, and
/// each loaded input block serves the `R` rows. Every value is summed in column order, starting from `acc`.
#[inline(always)]
fn accumulate<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    let g_total = acc.len() / batch;
    let mut g0 = 0;
    while g0 + 4 <= g_total {
        accumulate_rows::<T, 4>(acc, w, cols, x, batch, g0);
        g0 += 4;
    }
    while g0 < g_total {
        accumulate_rows::<T, 1>(acc, w, cols, x, batch, g0);
        g0 += 1;
    }
}

/// [`accumulate`] for rows `g0..g0 + R`.
#[inline(always)]
fn accumulate_rows<T: Real, const R: usize>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize, g0: usize) {
    let n = cols.len();
    let w = &w[g0 * n..(g0 + R) * n];
    let mut b0 = 0;
    while b0 + LANES <= batch {
        let mut a = [[T::zero(); LANES]; R];
        for (r, ar) in a.iter_mut().enumerate() {
            ar.copy_from_slice(&acc[(g0 + r) * batch + b0..][..LANES]);
        }
        for (j, &c) in cols.iter().enumerate() {
            let xv: &[T; LANES] = x[c as usize * batch + b0..][..LANES].try_into().expect("LANES values");
            for (r, ar) in a.iter_mut().enumerate() {
                let wv = w[r * n + j];
                for l in 0..LANES {
                    ar[l] = wv.mul_add(xv[l], ar[l]);
                }
            }
        }
        for (r, ar) in a.iter().enumerate() {
            acc[(g0 + r) * batch + b0..][..LANES].copy_from_slice(ar);
        }
        b0 += LANES;
    }
    if b0 < batch {
        for (j, &c) in cols.iter().enumerate() {
            let xc = &x[c as usize * batch + b0..(c as usize + 1) * batch];
            for r in 0..R {
                axpy(w[r * n + j], xc, &mut acc[(g0 + r) * batch + b0..(g0 + r + 1) * batch]);
            }
        }
    }
}

/// `dw[j] = d_y · x[:, cols[j]]` for one row.
#[inline(always)]
fn dots<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    for (d, &c) in dw.iter_mut().zip(cols) {
        let c = c as usize;
        *d = dot(dy, &x[c * batch..(c + 1) * batch]);
    }
}

// The same loops compiled for AVX2 + FMA and chosen at run time. Products are accumulated with `mul_add`, a
// fused multiply-add rounded once: one instruction with FMA, an exact library call without, so both versions
// give the same bits; the lanes of `dot` are fixed.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn accumulate_avx2<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    accumulate(acc, w, cols, x, batch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dots_avx2<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    dots(dw, dy, cols, x, batch)
}

#[inline]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[inline]
fn accumulate_dispatch<T: Real>(acc: &mut [T], w: &[T], cols: &[u32], x: &[T], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { accumulate_avx2(acc, w, cols, x, batch) };
    }
    accumulate(acc, w, cols, x, batch)
}

#[inline]
fn dots_dispatch<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { dots_avx2(dw, dy, cols, x, batch) };
    }
    dots(dw, dy, cols, x, batch)
}

/// `y += a · x`.
#[inline(always)]
fn axpy<T: Real>(a: T, x: &[T], y: &mut [T]) {
    for (yv, &xv) in y.iter_mut().zip(x) {
        *yv = a.mul_add(xv, *yv);
    }
}

/// `Σ_b a[b] · b[b]`, summed in 8 interleaved lanes then lane by lane (a fixed order, so the same bits on
/// every run and every thread count; the lanes let the compiler vectorise).
#[inline(always)]
pub(crate) fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut lanes = [T::zero(); 8];
    let (a8, a_rest) = a.split_at(a.len() - a.len() % 8);
    let (b8, b_rest) = b.split_at(a8.len());
    for (ca, cb) in a8.chunks_exact(8).zip(b8.chunks_exact(8)) {
        for l in 0..8 {
            lanes[l] = ca[l].mul_add(cb[l], lanes[l]);
        }
    }
    let mut s = T::zero();
    for l in lanes {
        s += l;
    }
    for (&x, &y) in a_rest.iter().zip(b_rest) {
        s = x.mul_add(y, s);
    }
    s
}
