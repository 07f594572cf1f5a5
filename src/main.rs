//! The `cnn-as-mlp` command: train, eval, grad, compare and show (built with the `cli` feature, on by
//! default). The library (`src/lib.rs`) compiles without clap, indicatif, plotters and png.

mod cli;

/// Large blocks (activations, gradients, scratch) on cache-line boundaries: see [`cnn_as_mlp::aligned_alloc`].
#[global_allocator]
static ALLOC: cnn_as_mlp::aligned_alloc::LineAligned = cnn_as_mlp::aligned_alloc::LineAligned;

fn main() {
    std::process::exit(cli::main());
}
