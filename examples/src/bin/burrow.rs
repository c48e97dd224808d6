//! `burrow`: a curl-like HTTP client. See `burrow --help`.

fn main() {
    std::process::exit(burrow_examples::cli::main_with_args(std::env::args_os()));
}
