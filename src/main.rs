fn main() {
    std::process::exit(cnn_as_mlp::cli::main());
}
