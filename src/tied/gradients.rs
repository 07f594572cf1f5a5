//! The gradients of a tied matrix's parameters, on the (batch, features) column-major layout: per nonzero
//! (`d_w[k] = Σ_b d_y[b, row(k)] · x[b, col(k)]`), the scatter into the shared parameters, and both at once
//! through the matrix's [`GradPlan`](super::GradPlan).
//!
//! Letters as in [`super::products`]: `B` batch size, `R` rows, `C` columns of `W`. Every parameter sums its
//! terms in an order fixed by the matrix and the batch size, whatever the number of threads.

use rayon::prelude::*;

use super::grad_plan::{self, ABSENT, GradClass, TileMembers};
use super::products::GroupSource;
use super::{ScatterSegment, TiedMatrix};
use crate::cpu::{LANES, TILE_MAX, as_f32, has_avx2, has_avx512};
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

/// One register tile of a class: rows `i0..i0 + rb` of its groups × taps `u0..u0 + cb`.
#[derive(Clone, Copy, Debug)]
struct Tile {
    class: usize,
    /// Member groups `m0..m1` of the class.
    m0: usize,
    m1: usize,
    i0: usize,
    rb: usize,
    u0: usize,
    cb: usize,
}

/// The tile shapes (rows, taps) of [`class_grad`], written once: `$kernel!(RB, CB)` for the tile's shape,
/// each expansion a kernel compiled for that shape. [`blocks`] keeps shapes to [`tile_shape`] (4 × 6 with
/// AVX-512 at 16 samples or more, 2 × 3 with AVX2 there, 4 × 3 under 16 samples) and then halves them (4
/// rows to 2 and 1; 6 taps to 3 and 1).
macro_rules! by_tile_shape {
    ($shape:expr, $kernel:ident) => {
        match $shape {
            (4, 6) => $kernel!(4, 6),
            (2, 6) => $kernel!(2, 6),
            (1, 6) => $kernel!(1, 6),
            (4, 3) => $kernel!(4, 3),
            (2, 3) => $kernel!(2, 3),
            (1, 3) => $kernel!(1, 3),
            (4, 1) => $kernel!(4, 1),
            (2, 1) => $kernel!(2, 1),
            (1, 1) => $kernel!(1, 1),
            (rb, cb) => unreachable!("tile shape {rb} x {cb}"),
        }
    };
}

/// Most member groups one tile sums before its sums are added to `d_θ`.
const MEMBER_CHUNK: usize = 256;

/// The separable classes of the plan: for each class and each (row `i`, tap `u`),
/// `d_θ[U[u] + o_i] += Σ_{g ∈ class} Σ_b d_y[b, R_g[i]] · x[b, col_g(U[u])]`. The member groups are cut into
/// fixed chunks of at most [`MEMBER_CHUNK`]; a tile is (chunk, row block, tap block). In a tile each (row,
/// tap) pair sums in [`LANES`] lanes (lane `l` takes samples `b ≡ l`; a batch of 8 to 15 fills lanes 0..8
/// with its first 8, see [`lane_blocks`]) over the chunk's groups in order and, within a group, the lane
/// blocks in order; the lanes are then added in order, then the tail samples (groups in order, samples in
/// order). Tiles run in parallel and are added to `d_θ` in tile order, so
/// no order depends on the number of threads.
fn class_grad<T: Real>(m: &TiedMatrix, x: &[T], dy: &[T], dtheta: &mut [T], batch: usize, portable: bool) {
    let plan = m.grad_plan();
    if plan.classes.is_empty() {
        return;
    }
    let (rb_max, cb_max) = tile_shape(batch);
    let mut tiles = Vec::new();
    for (class, c) in plan.classes.iter().enumerate() {
        let row_blocks = blocks(c.offsets.len(), rb_max);
        // Members in a fixed number of chunks (never the thread count), so that a class with few tiles
        // still splits over threads.
        let n_chunks = c.groups.len().div_ceil(MEMBER_CHUNK);
        let chunk = c.groups.len().div_ceil(n_chunks.max(1)).max(1);
        for m0 in (0..c.groups.len()).step_by(chunk) {
            let m1 = (m0 + chunk).min(c.groups.len());
            for &(i0, rb) in &row_blocks {
                for (u0, cb) in blocks(c.taps.len(), cb_max) {
                    tiles.push(Tile { class, m0, m1, i0, rb, u0, cb });
                }
            }
        }
    }
    let zeros = vec![T::zero(); batch];
    // Tiles run chunk by chunk across the classes (the classes of a pruned convolution, one per output
    // channel, meet the same positions in the same chunk, so one input window serves all of them); their sums
    // are still added in tile order below, so the order they run in changes no bit. The hand-written `f32`
    // kernels read the class in place; otherwise (the portable loops, `f64`) each tile is written out (its
    // members' rows and columns) into a buffer of its task, then summed as a class of its own: members, rows
    // and taps from 0, in the same order.
    let mut run: Vec<usize> = (0..tiles.len()).collect();
    run.sort_by_key(|&t| (tiles[t].m0, tiles[t].class));
    let mut sums = vec![[T::zero(); TILE_MAX]; tiles.len()];
    let out = Disjoint::new(&mut sums);
    run.par_iter().for_each_init(GradClass::default, |view, &t| {
        let tile = tiles[t];
        // SAFETY: each tile index appears once in `run`, so sums[t] is written by this task only.
        let slot = unsafe { out.slice(t, 1) };
        #[cfg(target_arch = "x86_64")]
        if !portable && has_avx2() {
            // The AVX-512 and AVX2 kernels read the class in place: no tile is written out.
            if let Some(s) = tile_in_place(&plan.classes[tile.class], tile, x, dy, &zeros, batch) {
                slot[0] = s;
                return;
            }
        }
        plan.classes[tile.class].write_tile((tile.m0, tile.m1), (tile.i0, tile.rb), (tile.u0, tile.cb), view);
        let local = Tile { m0: 0, m1: tile.m1 - tile.m0, i0: 0, u0: 0, ..tile };
        slot[0] = tile_dispatch(view, local, x, dy, &zeros, batch);
    });
    for (t, s) in tiles.iter().zip(&sums) {
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
            dots_dispatch(dwr, &dy[r * batch..(r + 1) * batch], gcols, xs, batch);
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
                    super::Entry::Param(p) => dtheta[p as usize] += v,
                    super::Entry::Const(_) => {}
                    super::Entry::Sum(ids) => ids.iter().for_each(|&p| dtheta[p as usize] += v),
                }
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
unsafe fn dots_avx2<T: Real>(dw: &mut [T], dy: &[T], cols: &[u32], x: &[T], batch: usize) {
    dots(dw, dy, cols, x, batch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile_avx512<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    tile_any(c, t, x, dy, zeros, batch)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    tile_any(c, t, x, dy, zeros, batch)
}

/// The portable tile loop compiled for the CPU's vector width (the same bits on every ISA).
#[inline]
fn tile_dispatch<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // (For f32 `class_grad` runs the AVX-512 kernel on the class in place: `tile_in_place`.)
        // SAFETY: the CPU has AVX-512F, AVX2 and FMA (checked above).
        return unsafe { tile_avx512(c, t, x, dy, zeros, batch) };
    } else if has_avx2() {
        // (For f32 `class_grad` runs the AVX2 kernel on the class in place: `tile_in_place`.)
        // SAFETY: the CPU has AVX2 and FMA (checked above).
        return unsafe { tile_avx2(c, t, x, dy, zeros, batch) };
    }
    tile_any(c, t, x, dy, zeros, batch)
}

/// The hand-written gradient tile for the CPU ([`super::simd::grad_tile`] with AVX-512,
/// [`super::simd_avx2::grad_tile_avx2`] or its half-block twin with AVX2) on the tile `t` of class `c` read in
/// place (no tile written out), for `f32`; `None` for another type.
///
/// The caller checked AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
fn tile_in_place<T: Real>(
    c: &grad_plan::CompactClass,
    t: Tile,
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> Option<[T; TILE_MAX]> {
    use grad_plan::CompactClass;
    let (Some(x), Some(dy), Some(zeros)) = (as_f32(x), as_f32(dy), as_f32(zeros)) else {
        return None;
    };
    type Kernel =
        unsafe fn(&CompactClass, (usize, usize), usize, usize, &[f32], &[f32], &[f32], usize) -> [f32; TILE_MAX];
    // A batch under 16 has no full 16-lane block: one 256-bit register per pair holds its half block (with
    // AVX-512 too, where a 512-bit register would leave half its lanes idle).
    let f = if has_avx512() && batch >= LANES {
        macro_rules! avx512 {
            ($rb:literal, $cb:literal) => {
                super::simd::grad_tile::<$rb, $cb, CompactClass> as Kernel
            };
        }
        by_tile_shape!((t.rb, t.cb), avx512)
    } else {
        macro_rules! avx2 {
            ($rb:literal, $cb:literal) => {
                if batch < LANES {
                    super::simd_avx2::grad_tile_avx2_half::<$rb, $cb, CompactClass> as Kernel
                } else {
                    super::simd_avx2::grad_tile_avx2::<$rb, $cb, CompactClass> as Kernel
                }
            };
        }
        by_tile_shape!((t.rb, t.cb), avx2)
    };
    // SAFETY: the caller checked AVX2 and FMA, and `has_avx512()` AVX-512F for that kernel; the class comes
    // from the plan of a checked map, so its rows and columns index d_y and x; the tile lies inside the class.
    let s = unsafe { f(c, (t.m0, t.m1), t.i0, t.u0, x, dy, zeros, batch) };
    Some(std::array::from_fn(|k| T::of(s[k] as f64)))
}

/// The largest gradient tile (rows, taps) whose accumulators fit the registers: 24 pairs of one 512-bit
/// register with AVX-512 (4 × 6: 24 accumulators, 6 taps and one row loaded, 31 of the 32 registers), 6 pairs
/// of two 256-bit registers with AVX2, or, on either, 12 pairs of one 256-bit register when the batch has
/// fewer than 16 samples (12 accumulators, 3 taps and one row loaded: 16 registers).
/// The shape never changes the bits: each pair's sum is the same in any tile.
fn tile_shape(batch: usize) -> (usize, usize) {
    if has_avx512() && batch >= LANES {
        (4, 6)
    } else if batch < LANES {
        // One 256-bit register per pair (a batch of 8 to 15 fills lanes 0..8 only): 12 accumulators, 3 taps
        // and one row loaded.
        (4, 3)
    } else {
        (2, 3)
    }
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

/// The sums of one tile (row-major `rb × cb` in the first values); see [`class_grad`].
#[inline(always)]
#[allow(clippy::needless_range_loop)] // the index loops are the register tile
fn tile_sums<T: Real, const RB: usize, const CB: usize>(
    c: &GradClass,
    t: Tile,
    x: &[T],
    dy: &[T],
    zeros: &[T],
    batch: usize,
) -> [T; TILE_MAX] {
    let (n_rows, n_taps) = (c.offsets.len(), c.taps.len());
    let (full, half) = lane_blocks(batch);
    let (dy0, x0, z0) = (dy.as_ptr(), x.as_ptr(), zeros.as_ptr());
    assert!(t.i0 + RB <= n_rows && t.u0 + CB <= n_taps && zeros.len() == batch);
    assert!(c.rows.len() == c.groups.len() * n_rows && c.cols.len() == c.groups.len() * n_taps);
    let (mut d, mut xs) = ([dy0; RB], [x0; CB]);
    // Lane l of pair (i, u) sums samples b0 + l over the member groups in order, and within a member over
    // the lane blocks b0 in order.
    let mut acc = [[[T::zero(); LANES]; CB]; RB];
    for mi in t.m0..t.m1 {
        member_ptrs(c, mi, t, (dy0, x0, z0), batch, 0, &mut d, &mut xs);
        let mut b0 = 0;
        while b0 < full {
            let mut xv = [[T::zero(); LANES]; CB];
            for u in 0..CB {
                for l in 0..LANES {
                    // SAFETY: the pointer starts `batch` readable values and b0 + l < full <= batch.
                    xv[u][l] = unsafe { *xs[u].add(b0 + l) };
                }
            }
            for i in 0..RB {
                for l in 0..LANES {
                    // SAFETY: as above.
                    let dv = unsafe { *d[i].add(b0 + l) };
                    for u in 0..CB {
                        acc[i][u][l] = dv.mul_add(xv[u][l], acc[i][u][l]);
                    }
                }
            }
            b0 += LANES;
        }
        // A half block: samples full..full + 8 in lanes 0..8.
        for i in 0..RB {
            for l in 0..half - full {
                // SAFETY: as above, full + l < half <= batch.
                let dv = unsafe { *d[i].add(full + l) };
                for u in 0..CB {
                    // SAFETY: as above.
                    acc[i][u][l] = dv.mul_add(unsafe { *xs[u].add(full + l) }, acc[i][u][l]);
                }
            }
        }
    }
    // The tail samples: member groups in order, samples in order.
    let mut tail = [[T::zero(); CB]; RB];
    if half < batch {
        for mi in t.m0..t.m1 {
            member_ptrs(c, mi, t, (dy0, x0, z0), batch, half, &mut d, &mut xs);
            for b in 0..batch - half {
                for i in 0..RB {
                    for u in 0..CB {
                        // SAFETY: the pointers start `batch - half` readable values.
                        tail[i][u] = unsafe { (*d[i].add(b)).mul_add(*xs[u].add(b), tail[i][u]) };
                    }
                }
            }
        }
    }
    let mut out = [T::zero(); TILE_MAX];
    for i in 0..RB {
        for u in 0..CB {
            let mut s = T::zero();
            for l in 0..LANES {
                s += acc[i][u][l];
            }
            out[i * CB + u] = s + tail[i][u];
        }
    }
    out
}

/// Where a gradient tile's lane blocks end: `(full, half)`, the samples `0..full` in blocks of [`LANES`] (lane
/// `l` takes samples `b ≡ l`), then `full..half` in lanes 0..8, then the tail `half..batch`, one sample at a
/// time. The half block is the first 8 samples of a batch of 8 to 15 (vgg16's batch of 8, a short last shard),
/// which would otherwise run entirely one sample at a time; a batch of 16 or more keeps its tail of up to 15
/// samples, so that its sums, and the bytes of every run at such batches (the main job's included), are the
/// ones they were before the half block existed.
#[inline(always)]
pub(crate) fn lane_blocks(batch: usize) -> (usize, usize) {
    let full = batch - batch % LANES;
    (full, if full == 0 { batch - batch % (LANES / 2) } else { full })
}

/// The end of the hand-written gradient tiles (AVX-512 and AVX2): the tail samples `half..batch` (members in order, samples in order), then
/// each pair's 16 lanes added in order, plus its tail.
#[inline(always)]
pub(super) fn finish_tile<const RB: usize, const CB: usize, C: TileMembers>(
    c: &C,
    (m0, m1): (usize, usize),
    (i0, u0): (usize, usize),
    x: &[f32],
    dy: &[f32],
    (half, batch): (usize, usize),
    lanes: &[[f32; LANES]; TILE_MAX],
) -> [f32; TILE_MAX] {
    let mut tail = [0.0f32; TILE_MAX];
    if half < batch {
        for mi in m0..m1 {
            let (rows, cols) = c.member::<RB, CB>(mi, i0, u0);
            for b in half..batch {
                for i in 0..RB {
                    let dv = dy[rows[i] as usize * batch + b];
                    for u in 0..CB {
                        let xv = if cols[u] == ABSENT { 0.0 } else { x[cols[u] as usize * batch + b] };
                        tail[i * CB + u] = dv.mul_add(xv, tail[i * CB + u]);
                    }
                }
            }
        }
    }
    std::array::from_fn(|k| if k < RB * CB { lanes[k].iter().fold(0.0, |s, &l| s + l) + tail[k] } else { 0.0 })
}

/// Member `mi`'s pointers for a tile, each at sample `start` of a (B, ·) column: its `RB` rows of `d_y` and
/// `CB` columns of `x` (the zeros for an absent tap). Each starts `batch - start` readable values.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn member_ptrs<T: Real, const RB: usize, const CB: usize>(
    c: &GradClass,
    mi: usize,
    t: Tile,
    (dy0, x0, z0): (*const T, *const T, *const T),
    batch: usize,
    start: usize,
    d: &mut [*const T; RB],
    xs: &mut [*const T; CB],
) {
    let rows = &c.rows[mi * c.offsets.len() + t.i0..][..RB];
    let cols = &c.cols[mi * c.taps.len() + t.u0..][..CB];
    for i in 0..RB {
        // SAFETY: rows are < R (the plan comes from the checked map), so the column of d_y (B, R) is in
        // bounds; start < batch.
        d[i] = unsafe { dy0.add(rows[i] as usize * batch + start) };
    }
    for u in 0..CB {
        // SAFETY: columns are < C, so the column of x (B, C) is in bounds; the zeros hold batch values.
        xs[u] = unsafe {
            match cols[u] {
                grad_plan::ABSENT => z0.add(start),
                col => x0.add(col as usize * batch + start),
            }
        };
    }
}

/// [`tile_sums`] for the tile's shape, which [`blocks`] keeps to powers of two up to the ISA's shape.
#[inline(always)]
fn tile_any<T: Real>(c: &GradClass, t: Tile, x: &[T], dy: &[T], zeros: &[T], batch: usize) -> [T; TILE_MAX] {
    macro_rules! portable {
        ($rb:literal, $cb:literal) => {
            tile_sums::<T, $rb, $cb>(c, t, x, dy, zeros, batch)
        };
    }
    by_tile_shape!((t.rb, t.cb), portable)
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
        // so consecutive members' shifts step by more than one column (`MemberPtrs::seek`).
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
}
