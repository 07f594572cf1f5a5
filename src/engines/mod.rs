//! The three engines, side by side: each owns an implementation of every layer kind behind the one
//! [`LinearMap`] interface, and [`crate::network`] trains any of them with the same routine.
//!
//! | engine | conv | local | max / mean pooling | dense |
//! |---|---|---|---|---|
//! | [`sparse`] | compiled tied matrix | compiled tied matrix | selection over a compiled pattern / compiled matrix | [`dense`] |
//! | [`direct`] | register-blocked direct convolution | direct, batch-vectorised | direct, batch-vectorised | [`dense`] |
//! | [`im2col`] | im2col + GEMM | im2col + one GEMM per position | the direct engine's pools (no GEMM lowering) | [`dense`] |
//!
//! All three compute the same maps with the same parameter names and PyTorch layouts, so a spec and its
//! parameters run on any of them. None of them uses the oracle (`tests/it/oracle/reference/`, test code outside
//! the library): the tests compare each against it.

pub mod dense;
pub mod direct;
mod engine;
pub mod grouped;
pub mod im2col;
pub mod masked;
pub mod sparse;

pub use engine::Engine;

use crate::geometry::PoolGeometry;
use crate::linear_map::LinearMap;
use crate::scalar::Real;
use crate::spec::{Layer, Shape, conv_geometry};

/// Builds the linear map of `layer` on `input` for `engine` with only the weight entries where `keep` is true
/// (a pruning mask in the weight's layout; `None` for activations and pools). The sparse engine compiles a
/// convolution without the removed taps ([`sparse::pruned_conv_layer`]), and a dense layer that keeps at
/// most [`sparse::DENSE_AS_TIED_BELOW`] of its entries into a tied sparse matrix
/// ([`sparse::pruned_dense_layer`]); the dense engines, and denser dense layers, multiply the weight by
/// the mask ([`masked::Masked`]).
///
/// # Panics
/// If the layer has no weight, or `keep` is not one flag per weight entry.
#[track_caller]
pub fn build_pruned_map<T: Real>(
    layer: &Layer,
    input: Shape,
    engine: Engine,
    keep: &[bool],
) -> Option<Box<dyn LinearMap<T>>> {
    Some(match (engine, *layer) {
        (_, Layer::Act(_) | Layer::MaxPool { .. } | Layer::AvgPool { .. }) => return None,
        (Engine::Sparse, Layer::Conv { groups, table, .. }) => {
            Box::new(sparse::pruned_conv_layer::<T>(&conv_geometry(layer, input)?, groups, table, keep))
        }
        (Engine::Sparse, Layer::Dense { n })
            if keep.len() == n * input.len()
                && keep.iter().filter(|&&k| k).count() as f64 <= sparse::DENSE_AS_TIED_BELOW * keep.len() as f64 =>
        {
            Box::new(sparse::pruned_dense_layer::<T>(input.len(), n, keep))
        }
        _ => Box::new(masked::Masked::new(build_map::<T>(layer, input, engine)?, keep.to_vec())),
    })
}

/// Builds the linear map of `layer` on `input` for `engine` (`None` for activations).
pub fn build_map<T: Real>(layer: &Layer, input: Shape, engine: Engine) -> Option<Box<dyn LinearMap<T>>> {
    let pool = |k, stride| PoolGeometry { c: input.c, h_in: input.h, w_in: input.w, k, stride };
    Some(match (engine, *layer) {
        (_, Layer::Act(_)) => return None,
        (_, Layer::Dense { n }) => Box::new(dense::Dense::new(input.len(), n)),
        (Engine::Sparse, Layer::Conv { table: Some(t), .. }) => {
            Box::new(sparse::table_conv_layer::<T>(&conv_geometry(layer, input)?, t))
        }
        (Engine::Direct | Engine::Im2col, Layer::Conv { table: Some(t), .. }) => {
            Box::new(masked::Masked::<T>::table_conv(&conv_geometry(layer, input)?, t, engine))
        }
        (Engine::Sparse, Layer::Conv { groups, .. }) => {
            Box::new(sparse::grouped_conv_layer::<T>(&conv_geometry(layer, input)?, groups))
        }
        (Engine::Direct | Engine::Im2col, Layer::Conv { groups, .. }) if groups > 1 => {
            Box::new(grouped::Grouped::<T>::new(&conv_geometry(layer, input)?, groups, engine))
        }
        (Engine::Sparse, Layer::Local { .. }) => Box::new(sparse::local_layer::<T>(&conv_geometry(layer, input)?)),
        (Engine::Sparse, Layer::MaxPool { k, stride }) => Box::new(sparse::TiedMaxPool::new(&pool(k, stride))),
        (Engine::Sparse, Layer::AvgPool { k, stride }) => Box::new(sparse::avgpool_layer::<T>(&pool(k, stride))),
        (Engine::Direct, Layer::Conv { .. }) => Box::new(direct::DirectConv::new(&conv_geometry(layer, input)?)),
        (Engine::Direct, Layer::Local { .. }) => Box::new(direct::DirectLocal::new(&conv_geometry(layer, input)?)),
        (Engine::Im2col, Layer::Conv { .. }) => Box::new(im2col::Im2colConv::new(&conv_geometry(layer, input)?)),
        (Engine::Im2col, Layer::Local { .. }) => Box::new(im2col::Im2colLocal::new(&conv_geometry(layer, input)?)),
        (Engine::Direct | Engine::Im2col, Layer::MaxPool { k, stride }) => {
            Box::new(direct::DirectMaxPool::new(&pool(k, stride)))
        }
        (Engine::Direct | Engine::Im2col, Layer::AvgPool { k, stride }) => {
            Box::new(direct::DirectAvgPool::new(&pool(k, stride)))
        }
    })
}
