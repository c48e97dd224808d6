//! `burrow-proxy`: a forward proxy for HTTP/1.1, HTTP/2 and HTTP/3 (CONNECT and CONNECT-UDP)
//! and SOCKS5/4a. See `burrow-proxy --help`.

use burrow_examples::proxy_cli::{self, ArgsError};

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match proxy_cli::parse_args(&argv) {
        Ok(a) => a,
        Err(ArgsError::Clap(e)) => e.exit(),
        Err(ArgsError::Config(e)) => {
            eprintln!("burrow-proxy: {e}");
            std::process::exit(2);
        }
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    match args.workers {
        Some(0) => {
            eprintln!("burrow-proxy: --workers wants at least 1");
            std::process::exit(2);
        }
        Some(n) => {
            rt.worker_threads(n);
        }
        None => {}
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("burrow-proxy: starting the runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = rt.block_on(proxy_cli::run(args)) {
        eprintln!("burrow-proxy: {e}");
        std::process::exit(2);
    }
}
