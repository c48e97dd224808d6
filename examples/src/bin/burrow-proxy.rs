//! `burrow-proxy`: a forward proxy for HTTP/1.1, HTTP/2 and HTTP/3 (CONNECT and CONNECT-UDP)
//! and SOCKS5/4a. See `burrow-proxy --help`.

use burrow_examples::proxy_cli::{self, ArgsError};

fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match proxy_cli::parse_args(&argv) {
        Ok(a) => a,
        Err(ArgsError::Clap(e)) => e.exit(),
        Err(ArgsError::Config(e)) => die(e),
    };
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    match args.workers {
        Some(0) => die("--workers wants at least 1"),
        Some(n) => {
            rt.worker_threads(n);
        }
        None => {}
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => die(format!("starting the runtime: {e}")),
    };
    if let Err(e) = rt.block_on(proxy_cli::run(args)) {
        die(e);
    }
}

/// Says why on standard error and exits with status 2.
fn die(why: impl std::fmt::Display) -> ! {
    eprintln!("burrow-proxy: {why}");
    std::process::exit(2)
}
