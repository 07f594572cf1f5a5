//! Max pooling: a data-dependent 0/1 selection over a compiled window pattern.
//!
//! The pattern is the mean-pooling matrix's (constant 1). For sample `b`, the forward pass keeps in row
//! `r` only the nonzero whose input is largest, the first in row-major window order on ties (as PyTorch):
//! `z[b, r] = x[b, win[b, r]]`; the backward pass sends `d_z[b, r]` to `win[b, r]`. See proofs/T4.

use std::sync::Arc;

use nalgebra::DMatrix;
use rayon::prelude::*;

use super::avgpool::compile_pool;
use crate::cpu::{LANES, has_avx2};
use crate::geometry::PoolGeometry;
use crate::linear_map::{LinearMap, assert_shape};
use crate::scalar::Real;
use crate::tensor::Tensor;
use crate::tied::TiedMatrix;

/// Comparisons (batch lanes × window entries) per parallel task of the forward pass: coarse enough that
/// the scheduling cost is small against the work.
const TASK_WORK: usize = 1 << 15;

/// Column `c` of a (batch, features) column-major slice: feature `c` over the batch.
#[inline]
fn column<T>(x: &[T], c: u32, batch: usize) -> &[T] {
    &x[c as usize * batch..][..batch]
}

/// `z[b] = x[b, cols[j*]]`, `w[b] = cols[j*]` with `j*` the first `j` where `x[b, cols[j]]` is largest
/// (strictly greater replaces), for every sample `b` of one output row. Blocks of [`LANES`] samples
/// keep their running maximum and winner in registers over the window (branchless selects); the last
/// samples go one by one with the same comparisons.
#[inline(always)]
fn max_row_lanes<T: Real>(x: &[T], cols: &[u32], batch: usize, zr: &mut [T], wr: &mut [u32]) {
    let c0 = cols[0];
    let mut b0 = 0;
    while b0 + LANES <= batch {
        let mut z: [T; LANES] = column(x, c0, batch)[b0..b0 + LANES].try_into().expect("LANES values");
        let mut w = [c0; LANES];
        for &c in &cols[1..] {
            let xc: &[T; LANES] = column(x, c, batch)[b0..b0 + LANES].try_into().expect("LANES values");
            for i in 0..LANES {
                let gt = xc[i] > z[i];
                z[i] = if gt { xc[i] } else { z[i] };
                w[i] = if gt { c } else { w[i] };
            }
        }
        zr[b0..b0 + LANES].copy_from_slice(&z);
        wr[b0..b0 + LANES].copy_from_slice(&w);
        b0 += LANES;
    }
    for b in b0..batch {
        let (mut z, mut w) = (x[c0 as usize * batch + b], c0);
        for &c in &cols[1..] {
            let v = x[c as usize * batch + b];
            if v > z {
                (z, w) = (v, c);
            }
        }
        (zr[b], wr[b]) = (z, w);
    }
}

/// [`max_row_lanes`] for consecutive rows: row `i` has the columns `indices[indptr[i]..indptr[i + 1]]`
/// and its outputs at `zb[i·B..]`, `wb[i·B..]`.
#[inline(always)]
fn max_rows_generic<T: Real>(x: &[T], indptr: &[u32], indices: &[u32], batch: usize, zb: &mut [T], wb: &mut [u32]) {
    for ((zr, wr), ends) in zb.chunks_exact_mut(batch).zip(wb.chunks_exact_mut(batch)).zip(indptr.windows(2)) {
        max_row_lanes(x, &indices[ends[0] as usize..ends[1] as usize], batch, zr, wr);
    }
}

// The same loops compiled for AVX2 and chosen at run time (comparisons and selects: the same bits).
/// [`max_rows_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2 (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn max_rows_avx2<T: Real>(x: &[T], indptr: &[u32], indices: &[u32], batch: usize, zb: &mut [T], wb: &mut [u32]) {
    max_rows_generic(x, indptr, indices, batch, zb, wb)
}

/// [`max_rows_generic`], with AVX2 when the CPU has it.
fn max_rows<T: Real>(x: &[T], indptr: &[u32], indices: &[u32], batch: usize, zb: &mut [T], wb: &mut [u32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { max_rows_avx2(x, indptr, indices, batch, zb, wb) };
    }
    max_rows_generic(x, indptr, indices, batch, zb, wb)
}

/// The window pattern as the backward pass reads it.
struct Route<'a> {
    indptr: &'a [u32],
    indices: &'a [u32],
    first_touch: &'a [bool],
}

/// The input gradient of one channel, `dxc` (batch, in_plane), its inputs no window reads excepted: for
/// each of the channel's rows in order from `r0` (`dz` and `win` from that row on) and each window column
/// `col` (`base` + its index in `dxc`), `d_x[b, col] += (win[b, r] == col ? d_z[b, r] : 0)`, where `d_x`
/// is +0 at the first touch of `col` (written, not read).
#[inline(always)]
fn route_channel_generic<T: Real>(
    dxc: &mut [T],
    base: u32,
    plan: &Route<'_>,
    r0: usize,
    dz: &[T],
    win: &[u32],
    batch: usize,
) {
    let indptr = &plan.indptr[r0..];
    for ((dzr, wr), ends) in dz.chunks_exact(batch).zip(win.chunks_exact(batch)).zip(indptr.windows(2)) {
        let nz = ends[0] as usize..ends[1] as usize;
        for (&c, &first) in plan.indices[nz.clone()].iter().zip(&plan.first_touch[nz]) {
            let d = &mut dxc[(c - base) as usize * batch..][..batch];
            if first {
                for ((dv, &gv), &wv) in d.iter_mut().zip(dzr).zip(wr) {
                    *dv = T::zero() + if wv == c { gv } else { T::zero() };
                }
            } else {
                for ((dv, &gv), &wv) in d.iter_mut().zip(dzr).zip(wr) {
                    *dv += if wv == c { gv } else { T::zero() };
                }
            }
        }
    }
}

/// [`route_channel_generic`] compiled for AVX2.
///
/// # Safety
/// The CPU has AVX2 (the body is safe code; only the target feature makes the call unsafe).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn route_channel_avx2<T: Real>(
    dxc: &mut [T],
    base: u32,
    plan: &Route<'_>,
    r0: usize,
    dz: &[T],
    win: &[u32],
    batch: usize,
) {
    route_channel_generic(dxc, base, plan, r0, dz, win, batch)
}

/// [`route_channel_generic`], with AVX2 when the CPU has it (selects and the same additions: the same
/// bits).
fn route_channel<T: Real>(dxc: &mut [T], base: u32, plan: &Route<'_>, r0: usize, dz: &[T], win: &[u32], batch: usize) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        // SAFETY: the CPU has AVX2 (checked above).
        return unsafe { route_channel_avx2(dxc, base, plan, r0, dz, win, batch) };
    }
    route_channel_generic(dxc, base, plan, r0, dz, win, batch)
}

/// A max-pooling layer: the window pattern and the winners of the last forward pass.
#[derive(Clone, Debug)]
pub struct TiedMaxPool {
    pub geometry: PoolGeometry,
    /// The window pattern (every nonzero the constant 1): (c·h_out·w_out, c·h_in·w_in).
    pub pattern: Arc<TiedMatrix>,
    /// Winners of the last forward pass: input feature of row `r` for sample `b` at `[r·B + b]`, (B, out).
    winners: Vec<u32>,
    /// For each nonzero of `pattern` (CSR order), whether it is the first, in row order, to read its
    /// input: the backward pass writes there instead of adding.
    first_touch: Vec<bool>,
    /// Inputs no window reads, ascending: the backward pass sets their gradient to 0.
    untouched: Vec<u32>,
}

impl TiedMaxPool {
    /// Compiles the window pattern of `g`.
    pub fn new(g: &PoolGeometry) -> Self {
        let pattern = compile_pool(g, 1.0);
        let (_, cols) = pattern.shape();
        let mut seen = vec![false; cols];
        let first_touch =
            pattern.map().indices().iter().map(|&c| !std::mem::replace(&mut seen[c as usize], true)).collect();
        let untouched = (0..cols as u32).filter(|&c| !seen[c as usize]).collect();
        TiedMaxPool { geometry: *g, pattern: Arc::new(pattern), winners: Vec::new(), first_touch, untouched }
    }

    /// Winners of the last forward pass, (B, out) column-major.
    pub fn winners(&self) -> &[u32] {
        &self.winners
    }
}

impl<T: Real> LinearMap<T> for TiedMaxPool {
    fn dims(&self) -> (usize, usize) {
        self.pattern.shape()
    }

    fn forward(&mut self, _params: &[Tensor<T>], x: &DMatrix<T>, z: &mut DMatrix<T>) {
        let (rows, cols) = self.pattern.shape();
        let batch = x.nrows();
        assert_shape("maxpool forward x", x, batch, cols);
        assert_shape("maxpool forward z", z, batch, rows);
        self.winners.resize(batch * rows, 0);
        if batch == 0 || rows == 0 {
            return;
        }
        let map = self.pattern.map();
        let (indptr, indices) = (map.indptr(), map.indices());
        let indptr = indptr.raw_storage();
        let x = x.as_slice();
        // Blocks of rows in parallel (each output is computed by one task, so any split gives the same
        // bits): z[b, r] = max over the row's columns, first maximum wins (strictly greater replaces).
        // Within a row, one branchless pass over the batch lanes per window column.
        let window = (self.pattern.nnz() / rows).max(1);
        let rows_per_task = (TASK_WORK / (batch * window)).clamp(1, rows);
        z.as_mut_slice()
            .par_chunks_mut(batch * rows_per_task)
            .zip(self.winners.par_chunks_mut(batch * rows_per_task))
            .enumerate()
            .for_each(|(t, (zb, wb))| {
                let r0 = t * rows_per_task;
                max_rows(x, &indptr[r0..r0 + zb.len() / batch + 1], indices, batch, zb, wb);
            });
    }

    fn backward_input(&self, dx: &mut DMatrix<T>, _params: &[Tensor<T>], dz: &DMatrix<T>) {
        let g = self.geometry;
        let (rows, cols) = self.pattern.shape();
        let batch = dz.nrows();
        assert_shape("maxpool backward dz", dz, batch, rows);
        assert_shape("maxpool backward dx", dx, batch, cols);
        assert_eq!(self.winners.len(), batch * rows, "maxpool backward: no forward pass at batch {batch}");
        if batch == 0 || cols == 0 {
            return;
        }
        let (in_plane, out_plane) = (g.h_in * g.w_in, g.h_out() * g.w_out());
        let map = self.pattern.map();
        let (indptr, indices) = (map.indptr(), map.indices());
        let indptr = indptr.raw_storage();
        let (dz, winners) = (dz.as_slice(), self.winners.as_slice());
        let plan = Route { indptr, indices, first_touch: &self.first_touch };
        // Channels in parallel: channel c's rows select only channel c's inputs. Within a channel, rows
        // in order, each window column of the row in one branchless pass over the batch:
        // d_x[b, col] += (win[b, r] == col ? d_z[b, r] : 0), i.e. d_x[b, win[b, r]] += d_z[b, r], the
        // first touch of a column writing `0 + …` instead. The added zeros change no bits (a sum that
        // starts at +0 is never −0). Inputs no window reads get 0.
        dx.as_mut_slice().par_chunks_mut(batch * in_plane).enumerate().for_each(|(ch, dxc)| {
            let rows = ch * out_plane..(ch + 1) * out_plane;
            let base = (ch * in_plane) as u32;
            let untouched = &self.untouched[self.untouched.partition_point(|&c| c < base)..];
            let untouched = &untouched[..untouched.partition_point(|&c| c < base + in_plane as u32)];
            for &c in untouched {
                dxc[(c - base) as usize * batch..][..batch].fill(T::zero());
            }
            let (dz, win) = (&dz[rows.start * batch..rows.end * batch], &winners[rows.start * batch..rows.end * batch]);
            route_channel(dxc, base, &plan, rows.start, dz, win, batch);
        });
    }

    fn tied(&self) -> Option<&TiedMatrix> {
        Some(&self.pattern)
    }
}
