//! The per-axis taps of a convolution: `F(o)`, the taps of output coordinate `o` that read a value, and its
//! inverse `G(i)`, the outputs that read input coordinate `i` (see [`super::conv`]).

use crate::geometry::{ConvGeometry, PaddingMode, tap_coord};

/// One axis of a convolution: `n_in` input and `n_out` output coordinates, `k` taps.
#[derive(Clone, Copy, Debug)]
pub(super) struct Axis {
    pub(super) n_in: usize,
    pub(super) n_out: usize,
    pub(super) k: usize,
    pub(super) s: usize,
    pub(super) p: usize,
    pub(super) d: usize,
    pub(super) mode: PaddingMode,
}

impl Axis {
    pub(super) fn rows(g: &ConvGeometry) -> Self {
        Axis { n_in: g.h_in, n_out: g.h_out(), k: g.k, s: g.stride, p: g.pad, d: g.dil, mode: g.mode }
    }

    pub(super) fn cols(g: &ConvGeometry) -> Self {
        Axis { n_in: g.w_in, n_out: g.w_out(), k: g.k, s: g.stride, p: g.pad, d: g.dil, mode: g.mode }
    }

    /// `src(o, κ) = pad_map(o·s + κ·d − p)`: the input coordinate that output `o` reads through tap `κ`.
    #[inline]
    pub(super) fn src(&self, o: usize, kappa: usize) -> Option<usize> {
        self.mode.source(tap_coord(o, kappa, self.s, self.d, self.p), self.n_in)
    }
}

/// `((F_h, F_w), (G_h, G_w))` of a geometry: the taps per output row and column, and their inverses per input
/// row and column ([`AxisTaps`]).
pub(super) fn axis_taps(g: &ConvGeometry) -> ((AxisTaps, AxisTaps), (AxisTaps, AxisTaps)) {
    let (ay, ax) = (Axis::rows(g), Axis::cols(g));
    ((AxisTaps::forward(&ay), AxisTaps::forward(&ax)), (AxisTaps::backward(&ay), AxisTaps::backward(&ax)))
}

/// For each coordinate `t` along one axis, a list of `(tap, coordinate on the other side)` pairs.
#[derive(Clone, Debug, Default)]
pub struct AxisTaps {
    /// Coordinate `t`'s pairs are `taps[start[t]..start[t + 1]]`.
    pub(super) start: Vec<u32>,
    pub(super) taps: Vec<(u32, u32)>,
    /// The shift runs: maximal ranges `[a, e)` of coordinates, covering `0..n` in order, over which each
    /// coordinate's list is its predecessor's with every other-side coordinate plus one (the same taps, in the
    /// same order). Over a run the other-side coordinates of list entry `j` are consecutive, so in the (B, F)
    /// layout the `(e − a)·B` values `(t, sample)` of one row are contiguous on both sides (see
    /// [`super::gather::Gather`]). With stride 1 the interior of a row is one run; a border coordinate whose
    /// list differs is a run of its own.
    pub(super) runs: Vec<(u32, u32)>,
}

impl AxisTaps {
    /// `F(o)` for every output coordinate: the taps `(κ, src(o, κ))` that read a value, `κ` increasing.
    pub(super) fn forward(a: &Axis) -> Self {
        let lists: Vec<Vec<(u32, u32)>> = (0..a.n_out)
            .map(|o| (0..a.k).filter_map(|kappa| a.src(o, kappa).map(|i| (kappa as u32, i as u32))).collect())
            .collect();
        Self::from_lists(lists)
    }

    /// `G(i)` for every input coordinate: the pairs `(κ, o)` with `src(o, κ) = i`, `o` then `κ` increasing.
    pub(super) fn backward(a: &Axis) -> Self {
        let mut lists = vec![Vec::new(); a.n_in];
        for o in 0..a.n_out {
            for kappa in 0..a.k {
                if let Some(i) = a.src(o, kappa) {
                    lists[i].push((kappa as u32, o as u32));
                }
            }
        }
        Self::from_lists(lists)
    }

    pub(super) fn from_lists(lists: Vec<Vec<(u32, u32)>>) -> Self {
        let mut start = vec![0u32];
        let mut taps = Vec::new();
        for l in lists {
            taps.extend(l);
            start.push(taps.len() as u32);
        }
        let mut at = AxisTaps { start, taps, runs: Vec::new() };
        let n = at.start.len() - 1;
        let mut a = 0;
        for t in 1..=n {
            let shifted = t < n && {
                let (prev, cur) = (at.of(t - 1), at.of(t));
                prev.len() == cur.len() && prev.iter().zip(cur).all(|(p, c)| c.0 == p.0 && c.1 == p.1 + 1)
            };
            if !shifted {
                at.runs.push((a as u32, t as u32));
                a = t;
            }
        }
        at
    }

    /// The pairs of coordinate `t`.
    #[inline]
    pub fn of(&self, t: usize) -> &[(u32, u32)] {
        &self.taps[self.start[t] as usize..self.start[t + 1] as usize]
    }
}

/// Marks a tap that reads nothing in `KernelGrad`'s source tables.
pub(super) const NONE: u32 = u32::MAX;
