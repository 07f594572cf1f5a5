//! The direct engine: convolution, locally connected layers and pooling computed straight from the
//! geometry, fast.
//!
//! The tests' oracle (`tests/it/oracle/reference/`) writes the same layers from their definitions, one sample at
//! a time; these layers are tested against it (`tests/it/fast_direct.rs`); nothing here uses it. Here the layers
//! work in the engine's own layout, (B, F) column-major, where feature `f` of all `B` samples is the contiguous
//! batch column `[f·B, (f + 1)·B)`. Every product is then an AXPY over the batch, and the batch is the vector
//! dimension:
//!
//! ```text
//! conv forward   y[:, o, oy, ox]   = b[o] + Σ_{i, ky, kx} w[o, i, ky, kx] · x[:, i, iy(oy, ky), ix(ox, kx)]
//! conv input     δx[:, i, iy, ix]  = Σ_{o} Σ_{(ky, oy) → iy} Σ_{(kx, ox) → ix} w[o, i, ky, kx] · δy[:, o, oy, ox]
//! conv kernel    δw[o, i, ky, kx] += Σ_{oy, ox} Σ_b δy[b, o, oy, ox] · x[b, i, iy(oy, ky), ix(ox, kx)]
//! conv bias      δb[o]            += Σ_{oy, ox} Σ_b δy[b, o, oy, ox]
//! ```
//!
//! with `iy(oy, ky) = pad_map(oy·s + ky·d − p)` (the tap is skipped when zero padding reads nothing).
//! Addresses come from the geometry, through per-axis tap lists of a few hundred entries
//! (`taps::AxisTaps`), never from a stored index of the expanded matrix. The input gradient is the
//! *gather* form of `Wᵀ δy`: each input cell sums the outputs that read it, so one task sums each value
//! in a fixed order, and the tasks run in parallel without any reduction across threads. Pooling works
//! the same way ([`pool`]).
//!
//! Register blocking: a forward (or input-gradient) task keeps `R` destination channels × 16 batch lanes
//! in registers over the whole `(channel, ky, kx)` loop, each loaded input vector serving `R` channels; the
//! kernel gradient keeps `R` output channels × `T` taps × 8 lanes and reduces the lanes once, in lane
//! order, at the end. Products use `mul_add` (one rounding, exactly the same with or without an FMA
//! unit), and each kernel is also compiled for AVX2 + FMA and chosen at run time, as in
//! [`crate::tied::products`] ([`crate::cpu`] probes the CPU once for all of them). The bits depend neither on the CPU nor on the number of threads.

/// Writes out `$body` for `$r = 0, 1, …, $n − 1` (`$n` a constant at most 8), each copy under a constant
/// guard. The register blocks need their loops over channels and taps fully unrolled so that the
/// accumulators live in registers; LLVM does not always unroll a loop whose body is already unrolled over
/// the lanes.
macro_rules! unroll {
    ($r:ident < $n:expr => $body:block) => {
        unroll!(@ $r < $n => $body; 0 1 2 3 4 5 6 7)
    };
    (@ $r:ident < $n:expr => $body:block; $($i:literal)*) => {{
        const { assert!($n <= 8, "unroll! writes out at most 8 copies") };
        $(
            if $i < $n {
                let $r: usize = $i;
                $body
            }
        )*
    }};
}

pub mod conv;
mod gather;
mod kernel_grad;
pub mod local;
pub mod pool;
mod taps;

pub use conv::DirectConv;
pub use local::DirectLocal;
pub use pool::{DirectAvgPool, DirectMaxPool};
