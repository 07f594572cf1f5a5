//! Hand-written AVX-512 micro-kernels for `f32`, the training type, where the portable loops of
//! [`super::kernels`] leave the compiler spilling accumulators. Each computes exactly what its portable
//! twin computes, with the same fused multiply-adds in the same order, so the bits do not depend on which
//! one runs (tests/tied_matrix.rs compares them).

#![cfg(target_arch = "x86_64")]

use std::arch::x86_64::*;

use super::grad_plan::{ABSENT, GradClass};

/// Lanes of one register: the `LANES` of the portable kernels.
const W: usize = 16;

/// The 4 × 4 gradient tile of [`super::kernels`]' `tile_sums` for `f32`: rows `i0..i0 + 4`, taps
/// `u0..u0 + 4` of class `c`; returns the 16 sums row-major.
///
/// Lane `l` of pair `(i, u)` sums `d_y[b0 + l, row] · x[b0 + l, col]` over the member groups in order and,
/// within a member, over the lane blocks `b0` in order; the lanes are then added in order, then the samples
/// past the last full block (members in order, samples in order).
///
/// # Safety
/// The CPU has AVX-512F and FMA; `c` comes from a checked plan whose rows index `dy` (B, R) and columns index
/// `x` (B, C); `zeros` holds `batch` zeros; `i0 + 4 <= rows` and `u0 + 4 <= taps` of the class.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(crate) unsafe fn grad_tile_4x4(
    c: &GradClass,
    i0: usize,
    u0: usize,
    x: &[f32],
    dy: &[f32],
    zeros: &[f32],
    batch: usize,
) -> [f32; 16] {
    let (n_rows, n_taps, members) = (c.offsets.len(), c.taps.len(), c.groups.len());
    assert!(i0 + 4 <= n_rows && u0 + 4 <= n_taps && zeros.len() == batch);
    assert!(c.rows.len() == members * n_rows && c.cols.len() == members * n_taps);
    let (dy0, x0, z0) = (dy.as_ptr(), x.as_ptr(), zeros.as_ptr());
    let full = batch - batch % W;
    // Column pointers of member `mi` at sample 0: 4 rows of d_y, 4 taps of x (zeros when absent).
    macro_rules! ptrs {
        ($mi:expr) => {{
            let rows = &c.rows[$mi * n_rows + i0..][..4];
            let cols = &c.cols[$mi * n_taps + u0..][..4];
            // SAFETY (caller): the rows and columns are in bounds of d_y and x.
            unsafe {
                let col = |k: u32| if k == ABSENT { z0 } else { x0.add(k as usize * batch) };
                (
                    [
                        dy0.add(rows[0] as usize * batch),
                        dy0.add(rows[1] as usize * batch),
                        dy0.add(rows[2] as usize * batch),
                        dy0.add(rows[3] as usize * batch),
                    ],
                    [col(cols[0]), col(cols[1]), col(cols[2]), col(cols[3])],
                )
            }
        }};
    }
    let mut a = [_mm512_setzero_ps(); 16];
    for mi in 0..members {
        let (d, xs) = ptrs!(mi);
        let mut b0 = 0;
        while b0 < full {
            // SAFETY: b0 + W <= full <= batch, and each pointer starts batch readable values.
            unsafe {
                let x0v = _mm512_loadu_ps(xs[0].add(b0));
                let x1v = _mm512_loadu_ps(xs[1].add(b0));
                let x2v = _mm512_loadu_ps(xs[2].add(b0));
                let x3v = _mm512_loadu_ps(xs[3].add(b0));
                macro_rules! row {
                    ($i:literal) => {
                        let dv = _mm512_loadu_ps(d[$i].add(b0));
                        a[4 * $i] = _mm512_fmadd_ps(dv, x0v, a[4 * $i]);
                        a[4 * $i + 1] = _mm512_fmadd_ps(dv, x1v, a[4 * $i + 1]);
                        a[4 * $i + 2] = _mm512_fmadd_ps(dv, x2v, a[4 * $i + 2]);
                        a[4 * $i + 3] = _mm512_fmadd_ps(dv, x3v, a[4 * $i + 3]);
                    };
                }
                row!(0);
                row!(1);
                row!(2);
                row!(3);
            }
            b0 += W;
        }
    }
    let mut tail = [0.0f32; 16];
    if full < batch {
        for mi in 0..members {
            let (d, xs) = ptrs!(mi);
            for b in full..batch {
                for i in 0..4 {
                    for u in 0..4 {
                        // SAFETY: b < batch.
                        tail[4 * i + u] = unsafe { (*d[i].add(b)).mul_add(*xs[u].add(b), tail[4 * i + u]) };
                    }
                }
            }
        }
    }
    let mut out = [0.0f32; 16];
    for (k, v) in a.iter().enumerate() {
        let mut lanes = [0.0f32; W];
        // SAFETY: lanes holds W values.
        unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), *v) };
        out[k] = lanes.iter().fold(0.0, |s, &l| s + l) + tail[k];
    }
    out
}
