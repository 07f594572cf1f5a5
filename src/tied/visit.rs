//! The order in which the products visit the row groups of a tied matrix, and its runs.

/// The order in which the products visit the row groups of `W` (`[0]`) and `Wᵀ` (`[1]`), cut into *runs*:
/// `order[runs[k]..runs[k + 1]]` is run `k`. In a compact matrix a run is a sequence of single-row groups that
/// copy one separable weight row at different shifts ([`CompactMap::same_weight_row`](super::CompactMap::same_weight_row)), at most
/// [`Visit::MAX_RUN`] of them, which one kernel runs together; every other group is a run of its own.
#[derive(Clone, Debug)]
pub(crate) struct Visit {
    pub(super) order: [Vec<u32>; 2],
    pub(super) runs: [Vec<u32>; 2],
}

impl Visit {
    /// Most groups in one run: 12 members × 2 registers of 16 samples fill 24 accumulators.
    const MAX_RUN: usize = 12;

    /// `order`'s runs where `like(g, h)` says that consecutive groups `g`, `h` copy one weight row.
    pub(super) fn runs(order: &[u32], like: impl Fn(usize, usize) -> bool) -> Vec<u32> {
        let mut runs = vec![0u32];
        let mut start = 0;
        for k in 1..order.len() {
            if k - start >= Self::MAX_RUN || !like(order[k - 1] as usize, order[k] as usize) {
                runs.push(k as u32);
                start = k;
            }
        }
        if !order.is_empty() {
            runs.push(order.len() as u32);
        }
        runs
    }
}
