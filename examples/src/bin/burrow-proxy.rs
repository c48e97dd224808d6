//! `burrow-proxy`: a forward proxy for HTTP/1.1, HTTP/2 and HTTP/3 (CONNECT and CONNECT-UDP)
//! and SOCKS5/4a. See `burrow-proxy --help`.

use burrow_examples::proxy_cli::{self, ArgsError};

#[tokio::main]
async fn main() {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let args = match proxy_cli::parse_args(&argv) {
        Ok(a) => a,
        Err(ArgsError::Clap(e)) => e.exit(),
        Err(ArgsError::Config(e)) => {
            eprintln!("burrow-proxy: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = proxy_cli::run(args).await {
        eprintln!("burrow-proxy: {e}");
        std::process::exit(2);
    }
}
