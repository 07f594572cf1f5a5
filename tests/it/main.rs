//! The integration tests, in one binary (one link of the crate instead of one per file): a module per
//! subject, the shared helpers in `common`, and the oracle (layers from their definitions, sharing no code
//! with the engines) in `oracle`.
//!
//! Before any test runs, the kernel cap of `CNN_AS_MLP_SIMD` is applied as the command applies it, so that
//! `CNN_AS_MLP_SIMD=avx2 cargo test` runs the library's tests on the AVX2 kernels too (the library itself reads
//! no environment).

mod common;
mod oracle;

mod adam;
mod cifar_data;
mod cli_compare;
mod cli_errors;
mod cli_grad_eval;
mod cli_plot;
mod cli_prune;
mod cli_show;
mod cli_sweep;
mod cli_train;
mod compact;
mod dense_small_shapes;
mod determinism;
mod docs_commands;
mod equivalence_exhaustive;
mod equivalence_networks;
mod equivalence_random;
mod fast_direct;
mod gradcheck;
mod groups;
mod hostile;
mod image_folder;
mod import_graph;
mod maxpool_batches;
mod proofs_coq;
mod proofs_index;
mod pruning;
mod pytorch_fixtures;
mod readme;
mod run_safety;
mod shards;
mod smoke_mnist;
mod spec;
mod spec_limits;
mod tables;
mod theorems_extra;
mod tied_matrix;
mod weight_decay;

/// Applies `CNN_AS_MLP_SIMD` before `main` (an unknown value stops the tests: a cap that silently does
/// nothing would let the capped runs of `.ci/run` test the wrong kernels).
#[ctor::ctor(unsafe)]
fn cap_kernels_from_env() {
    if let Ok(v) = std::env::var(cnn_as_mlp::cpu::SIMD_VAR) {
        let cap = cnn_as_mlp::cpu::parse_simd_cap(&v).unwrap_or_else(|e| panic!("{e}"));
        cnn_as_mlp::cpu::set_simd_cap(cap);
    }
}

/// The cap of `CNN_AS_MLP_SIMD` is in force in this binary (the constructor above ran): the kernels run at
/// the named level or lower, so `.ci/run`'s capped suites test the capped kernels.
#[test]
fn the_suite_runs_under_the_environments_cap() {
    let named =
        std::env::var(cnn_as_mlp::cpu::SIMD_VAR).ok().and_then(|v| cnn_as_mlp::cpu::parse_simd_cap(&v).unwrap());
    assert_eq!(cnn_as_mlp::cpu::simd_cap(), named);
    if let Some(cap) = named {
        assert!(cnn_as_mlp::cpu::simd_level() <= cap);
    }
}
