//! The gradients of a tied matrix's parameters, on the (batch, features) column-major layout: per nonzero
//! (`d_w[k] = Σ_b d_y[b, row(k)] · x[b, col(k)]`), the scatter into the shared parameters, and both at once
//! through the matrix's [`GradPlan`](super::GradPlan).
//!
//! Letters as in [`super::products`]: `B` batch size, `R` rows, `C` columns of `W`. Every parameter sums its
//! terms in an order fixed by the matrix and the batch size, whatever the number of threads.

use rayon::prelude::*;

use super::grad_plan::GradClass;
use super::kernels::{self, Tile};
use super::matrix::{Entry, TiedMatrix};
use super::members::stretch_len;
use super::segments::ScatterSegment;
use super::views::GroupSource;
use crate::cpu::TILE_MAX;
use crate::disjoint::Disjoint;
use crate::scalar::Real;

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
            kernels::dots(dwr, dyr, gcols, x, batch);
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
                Entry::Param(p) => d[p as usize - p0] += g,
                Entry::Const(_) => {}
                Entry::Sum(ids) => ids.iter().for_each(|&p| d[p as usize - p0] += g),
            }
        }
    });
}

/// `d_θ += ∂J/∂θ` for `y = W x`, `x` (B, C), `dy` (B, R): the classes of the matrix's [`GradPlan`](super::grad_plan::GradPlan) as sums
/// over positions (`class_grad`), then the groups outside every class per nonzero ([`nonzero_grad`]'s dots
/// into `scratch`, then the scatter). Every parameter sums its terms in an order fixed by the plan, whatever
/// the number of threads.
#[track_caller]
pub fn param_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dtheta: &mut [T], scratch: &mut Vec<T>, batch: usize) {
    if m.n_params() == 0 {
        return;
    }
    let (rows, cols) = m.shape();
    assert_eq!(x.len(), batch * cols, "param_grad: x has {} values, expected {batch} x {cols}", x.len());
    assert_eq!(dy.len(), batch * rows, "param_grad: dy has {} values, expected {batch} x {rows}", dy.len());
    assert_eq!(
        dtheta.len(),
        m.n_params(),
        "param_grad: dθ has {} values for {} parameters",
        dtheta.len(),
        m.n_params()
    );
    class_grad(m, x, dy, dtheta, batch, false);
    fallback_grad(m, x, dy, dtheta, scratch, batch);
}

/// [`param_grad`] on the portable loops only, never the hand-written AVX-512 tiles: for the test that checks
/// both give the same bits.
#[cfg(test)]
fn param_grad_portable<T: Real>(
    m: &TiedMatrix,
    x: &[T],
    dy: &[T],
    dtheta: &mut [T],
    scratch: &mut Vec<T>,
    batch: usize,
) {
    if m.n_params() == 0 {
        return;
    }
    class_grad(m, x, dy, dtheta, batch, true);
    fallback_grad(m, x, dy, dtheta, scratch, batch);
}

/// Most stream values (member groups × samples) one tile sums before its sums are added to `d_θ`: a whole
/// 56 × 56 layer at batch 1 up to batch 8 on 32 × 32, so that the few-instruction set-up of a stretch and of a
/// tile is paid over long streams (at 256 groups per chunk, the set-up of 80,000 tiles made the batch-1
/// gradient of c64-56 run at 5 GFLOP/s).
const POSITION_STREAM: usize = 1 << 15;

/// The separable classes of the plan: for each class and each (row `i`, tap `u`),
/// `d_θ[U[u] + o_i] += Σ_{g ∈ class} Σ_b d_y[b, R_g[i]] · x[b, col_g(U[u])]`. The member groups are cut into
/// fixed chunks of at most [`POSITION_STREAM`] values; a tile is (chunk, row block, tap block). In a tile
/// each (row, tap) pair sums positions in the lanes: the chunk's groups are cut into stretches (consecutive
/// positions of an image row, [`stretch_len`](super::members::stretch_len)), each stretch one stream of `n·B`
/// values per row and column, consecutive in memory; lane `l` of
/// [`POSITION_LANES`](crate::cpu::POSITION_LANES) takes the stream values `q ≡ l (mod 8)` in order, stretch
/// after stretch; the lanes are then added in order.
///
/// This layout fills the lanes at any batch, and its streams are long: on c64-56 with AVX2 it ran the
/// gradient 2.0-2.3× faster than sums with samples in the lanes at batch 16, 32 and 64, and LeNet-5's
/// training about 1.3× faster at batch 64 (`dev/lanes_time grad`, `train`); a batch under 8 fills the lanes
/// from positions that the samples layout left empty.
///
/// Tiles run in parallel and are added to `d_θ` in tile order, so no order depends on the number of threads
/// (nor on the instruction set: every kernel sums the same products in the same order).
fn class_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dtheta: &mut [T], batch: usize, portable: bool) {
    let plan = m.grad_plan();
    if plan.classes.is_empty() {
        return;
    }
    let (rb_max, cb_max) = kernels::positions_tile_shape();
    let mut tiles = Vec::new();
    // The stretches of each (class, chunk), found once: every tile of a chunk cuts it alike.
    let mut stretches: Vec<Vec<u32>> = Vec::new();
    for (class, c) in plan.classes.iter().enumerate() {
        let row_blocks = blocks(c.offsets.len(), rb_max);
        // Members in a fixed number of chunks (never the thread count), so that a class with few tiles
        // still splits over threads.
        let member_chunk = (POSITION_STREAM / batch).max(1);
        let n_chunks = c.groups.len().div_ceil(member_chunk);
        let chunk = c.groups.len().div_ceil(n_chunks.max(1)).max(1);
        for m0 in (0..c.groups.len()).step_by(chunk) {
            let m1 = (m0 + chunk).min(c.groups.len());
            let (mut v, mut mi) = (Vec::new(), m0);
            while mi < m1 {
                let n = stretch_len(c, mi, m1);
                v.push(n as u32);
                mi += n;
            }
            let s = stretches.len();
            stretches.push(v);
            for &(i0, rb) in &row_blocks {
                for (u0, cb) in blocks(c.taps.len(), cb_max) {
                    tiles.push((Tile { class, m0, m1, i0, rb, u0, cb }, s));
                }
            }
        }
    }
    // The zeros an absent tap reads: the stream of a chunk.
    let longest = tiles.iter().map(|(t, _)| t.m1 - t.m0).max().unwrap_or(0);
    let zeros = vec![T::zero(); longest * batch];
    // Tiles run chunk by chunk across the classes (the classes of a pruned convolution, one per output
    // channel, meet the same positions in the same chunk, so one input window serves all of them), and
    // within a chunk of a class tap block by tap block (the few input columns of a tap block stay in the
    // first-level cache while every row block reads them); their sums are still added in tile order below,
    // so the order they run in changes no bit. The hand-written `f32` kernel reads the class in place;
    // otherwise (the portable loops, `f64`) each tile is written out (its members' rows and columns) into a
    // buffer of its task, then summed as a class of its own: members, rows and taps from 0, in the same order.
    let mut run: Vec<usize> = (0..tiles.len()).collect();
    run.sort_by_key(|&t| (tiles[t].0.m0, tiles[t].0.class, tiles[t].0.u0, tiles[t].0.i0));
    let mut sums = vec![[T::zero(); TILE_MAX]; tiles.len()];
    let out = Disjoint::new(&mut sums);
    run.par_iter().for_each_init(GradClass::default, |view, &t| {
        let (tile, s) = tiles[t];
        let class = &plan.classes[tile.class];
        let stretches = &stretches[s];
        // SAFETY: each tile index appears once in `run`, so sums[t] is written by this task only.
        let slot = unsafe { out.slice(t, 1) };
        #[cfg(target_arch = "x86_64")]
        if !portable && kernels::avx2() {
            // The AVX2 kernel reads the class in place: no tile is written out.
            if let Some(s) = kernels::stream_in_place(class, tile, stretches, x, dy, &zeros, batch) {
                slot[0] = s;
                return;
            }
        }
        class.write_tile((tile.m0, tile.m1), (tile.i0, tile.rb), (tile.u0, tile.cb), view);
        let local = Tile { m0: 0, m1: tile.m1 - tile.m0, i0: 0, u0: 0, ..tile };
        // The stretches were found on the class itself: the written-out tile holds only its rows and taps.
        slot[0] = kernels::stream(view, local, stretches, x, dy, &zeros, batch);
    });
    for ((t, _), s) in tiles.iter().zip(&sums) {
        let c = &plan.classes[t.class];
        for i in 0..t.rb {
            for u in 0..t.cb {
                dtheta[c.param(t.i0 + i, t.u0 + u)] += s[i * t.cb + u];
            }
        }
    }
}

/// `0..n` cut into blocks of `max`, then the remainder as blocks of decreasing powers of two.
fn blocks(n: usize, max: usize) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut start = 0;
    let mut size = max;
    while start < n {
        while size > n - start {
            size /= 2;
        }
        v.push((start, size));
        start += size;
    }
    v
}

/// The groups outside every class: dots per nonzero into `scratch`, groups in parallel, then the scatter
/// of those nonzeros in group order.
fn fallback_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dtheta: &mut [T], scratch: &mut Vec<T>, batch: usize) {
    if m.grad_plan().fallback.is_empty() {
        return;
    }
    match m.compact() {
        Some((w, _)) => fallback_grad_of(m, w, x, dy, dtheta, scratch, batch),
        None => fallback_grad_of(m, &m.classic_w(), x, dy, dtheta, scratch, batch),
    }
}

/// [`fallback_grad`] on the groups of `src` (the classic or the compact form of `W`).
fn fallback_grad_of<T: Real, S: GroupSource>(
    m: &TiedMatrix,
    src: &S,
    x: &[T],
    dy: &[T],
    dtheta: &mut [T],
    scratch: &mut Vec<T>,
    batch: usize,
) {
    let fallback = &m.grad_plan().fallback;
    // start[f]: where fallback group f's nonzeros begin in scratch.
    let mut start = Vec::with_capacity(fallback.len() + 1);
    start.push(0usize);
    for &g in fallback {
        let n = src.cols(g as usize).0.len();
        start.push(start.last().expect("starts at 0") + src.rows(g as usize).len() * n);
    }
    scratch.resize(*start.last().expect("starts at 0"), T::zero());
    let out = Disjoint::new(scratch);
    // The dots run in the products' visit order when the matrix has one (each dot is its own sum, so the
    // order changes no bit; it keeps one input window in cache, see `TiedMatrix::with_visit_order`).
    let order: Vec<u32> = match m.visit_order(0) {
        Some(visit) => {
            let mut f_of = vec![u32::MAX; src.n_groups()];
            for (f, &g) in fallback.iter().enumerate() {
                f_of[g as usize] = f as u32;
            }
            visit.iter().map(|&g| f_of[g as usize]).filter(|&f| f != u32::MAX).collect()
        }
        None => (0..fallback.len() as u32).collect(),
    };
    order.par_iter().for_each(|&f| {
        let (f, g) = (f as usize, fallback[f as usize]);
        let rows = src.rows(g as usize);
        let (gcols, shift) = src.cols(g as usize);
        // x from column `shift` on.
        let xs = &x[shift as usize * batch..];
        let n = gcols.len();
        for (i, &r) in rows.iter().enumerate() {
            let r = r as usize;
            // SAFETY: fallback group f owns scratch[start[f]..start[f + 1]].
            let dwr = unsafe { out.slice(start[f] + i * n, n) };
            kernels::dots(dwr, &dy[r * batch..(r + 1) * batch], gcols, xs, batch);
        }
    });
    for (f, &g) in fallback.iter().enumerate() {
        let n = src.cols(g as usize).0.len();
        let mut k = start[f];
        for i in 0..src.rows(g as usize).len() {
            for j in 0..n {
                let v = scratch[k];
                k += 1;
                match m.decode(src.code(g as usize, i, j)) {
                    Entry::Param(p) => dtheta[p as usize] += v,
                    Entry::Const(_) => {}
                    Entry::Sum(ids) => ids.iter().for_each(|&p| dtheta[p as usize] += v),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    use super::*;
    use crate::engines::sparse::conv::compile_conv;
    use crate::geometry::{ConvGeometry, PaddingMode};

    /// Checks proofs/T3 (the sum regrouped over positions): the hand-written AVX-512 or AVX2 gradient tiles
    /// (whichever the CPU has; without either both calls run the portable loops) give the same `f32` bits as
    /// the portable loops, on random values where the order of the sums shows: LeNet-5's two convolutions
    /// (the first padded, so its border positions have absent taps) and three others, at batches that reach
    /// full 16-lane blocks, the half block of 8, the samples past them, and each combination.
    #[test]
    fn param_grad_simd_tiles_match_portable_bits() {
        let mut rng = StdRng::seed_from_u64(5);
        // The third: an odd number of rows and of taps (7 and 50), so tiles of one row and one tap run too;
        // the fourth: 75 taps, so a block of 3 taps follows the blocks of 6; the fifth: stride 2 and dilation 2,
        // so consecutive members' shifts step by more than one column (stretches of one member).
        for (c_in, h, c_out, pad, stride, dil) in
            [(1, 28, 6, 2, 1, 1), (6, 14, 16, 0, 1, 1), (2, 9, 7, 1, 1, 1), (3, 9, 5, 1, 1, 1), (2, 17, 4, 3, 2, 2)]
        {
            let g = ConvGeometry { c_in, h_in: h, w_in: h, c_out, k: 5, stride, pad, dil, mode: PaddingMode::Zeros };
            let m = compile_conv(&g);
            for batch in [1, 7, 8, 12, 16, 24, 28, 33, 60, 64, 70, 100] {
                let x: Vec<f32> = (0..batch * g.in_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let dy: Vec<f32> = (0..batch * g.out_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
                let mut fast = vec![0.0f32; m.n_params()];
                param_grad(&m, &x, &dy, &mut fast, &mut Vec::new(), batch);
                let mut portable = vec![0.0f32; m.n_params()];
                param_grad_portable(&m, &x, &dy, &mut portable, &mut Vec::new(), batch);
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&fast), bits(&portable), "{g:?} batch {batch}");
                // And both are the gradient: within f32 rounding of the per-nonzero path.
                let mut dw = vec![0.0f32; m.nnz()];
                nonzero_grad(&m, &x, &dy, &mut dw, batch);
                let mut reference = vec![0.0f32; m.n_params()];
                scatter_grad(&m, &dw, &mut reference);
                for (a, b) in fast.iter().zip(&reference) {
                    assert!((a - b).abs() <= 1e-3 * (1.0 + b.abs()), "{a} vs {b}");
                }
            }
        }
    }
    /// The positions layout sums in an order fixed by the geometry and the batch: 1, 2 and 4 threads give the
    /// same bits (at batch 300 the 156 positions are cut into two chunks, so tiles of one class run apart), and the gradient agrees with the f64 definition `Σ_b d_y · x` per parameter
    /// within 1e-4 relative (f32 sums of up to 3·10³ products of values in [−1, 1]).
    #[test]
    fn positions_layout_is_thread_count_independent_and_near_the_f64_gradient() {
        let mut rng = StdRng::seed_from_u64(9);
        let g = ConvGeometry {
            c_in: 5,
            h_in: 13,
            w_in: 12,
            c_out: 20,
            k: 3,
            stride: 1,
            pad: 1,
            dil: 1,
            mode: PaddingMode::Zeros,
        };
        let m = crate::engines::sparse::conv::compile_conv_compact(&g);
        for batch in [1, 3, 8, 15, 16, 40, 300] {
            let x: Vec<f32> = (0..batch * g.in_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let dy: Vec<f32> = (0..batch * g.out_len()).map(|_| rng.random_range(-1.0..1.0)).collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                let mut d = vec![0.0f32; m.n_params()];
                pool.install(|| param_grad(&m, &x, &dy, &mut d, &mut Vec::new(), batch));
                d
            };
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            let one = run(1);
            assert_eq!(bits(&one), bits(&run(2)), "batch {batch}: 1 and 2 threads");
            assert_eq!(bits(&one), bits(&run(4)), "batch {batch}: 1 and 4 threads");
            let mut want = vec![0.0f64; m.n_params()];
            let mut mag = vec![0.0f64; m.n_params()];
            m.for_each_row(|r, cols, codes| {
                for (&c, &code) in cols.iter().zip(codes) {
                    for b in 0..batch {
                        let p = dy[r * batch + b] as f64 * x[c as usize * batch + b] as f64;
                        want[code as usize] += p;
                        mag[code as usize] += p.abs();
                    }
                }
            });
            for ((a, w), s) in one.iter().zip(&want).zip(&mag) {
                assert!((*a as f64 - w).abs() <= 1e-4 * (1.0 + s), "batch {batch}: {a} vs {w}");
            }
        }
    }
}
