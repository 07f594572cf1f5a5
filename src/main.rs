//! The `cnn-as-mlp` command: train, eval, grad, compare and show (built with the `cli` feature, on by
//! default). The library (`src/lib.rs`) compiles without clap, indicatif, plotters and png.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
