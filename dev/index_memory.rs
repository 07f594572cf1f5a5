//! Prints, for each layer of a model, the compiled matrix's shape, nonzeros, parameters and the bytes of its
//! index structure. Run: `cargo run --release --example index_memory [-- SPEC]` (default `lenet5`).

#[path = "common/env.rs"]
mod env;

use cnn_as_mlp::network::{Engine, Network};
use cnn_as_mlp::spec::Spec;

fn main() {
    env::apply();
    let arg = std::env::args().nth(1).unwrap_or_else(|| "lenet5".into());
    let spec = match Spec::parse(&arg) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let net = Network::<f32>::new(&spec, Engine::Sparse);
    println!(
        "| layer | kind | W shape | nnz | params | classic CSR W + Wᵀ (bytes) | index as built (bytes) | bytes/nnz |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut total = 0;
    for (i, layer) in spec.layers.iter().enumerate() {
        let Some(map) = net.linear_map(i) else { continue };
        let params: usize = net.params[i].iter().map(|t| t.len()).sum();
        match map.tied() {
            Some(m) => {
                let (r, c) = m.shape();
                let csr = |rows: usize| 4 * (rows + 1) + 8 * m.nnz();
                let (w, wt) = (csr(r), csr(c));
                let bytes = m.index_bytes();
                total += bytes;
                println!(
                    "| {i} | `{layer}` | {r}x{c} | {} | {params} | {} | {bytes} | {:.2} |",
                    m.nnz(),
                    w + wt,
                    bytes as f64 / m.nnz() as f64
                );
            }
            None => {
                let (r, c) = map.dims();
                println!("| {i} | `{layer}` | {r}x{c} | {} (dense GEMM) | {params} | - | 0 | - |", r * c);
            }
        }
    }
    println!("\ntotal index bytes: {total}; parameters: {} ({} bytes as f32)", net.n_params(), 4 * net.n_params());
}
