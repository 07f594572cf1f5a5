//! What the profiling examples share: the library reads no environment, so they apply the command's kernel cap
//! and index format themselves, and `CNN_AS_MLP_SIMD=avx2` or `CNN_AS_MLP_INDEX=classic` time those paths.

/// Applies `CNN_AS_MLP_SIMD` and `CNN_AS_MLP_INDEX`; a value that names nothing stops the program.
pub fn apply() {
    if let Ok(v) = std::env::var(cnn_as_mlp::cpu::SIMD_VAR) {
        cnn_as_mlp::cpu::set_simd_cap(cnn_as_mlp::cpu::parse_simd_cap(&v).unwrap_or_else(|e| panic!("{e}")));
    }
    if let Ok(v) = std::env::var(cnn_as_mlp::engines::sparse::STORAGE_VAR) {
        let storage = cnn_as_mlp::engines::sparse::parse_storage(&v).unwrap_or_else(|e| panic!("{e}"));
        cnn_as_mlp::engines::sparse::set_index_storage(storage);
    }
}
