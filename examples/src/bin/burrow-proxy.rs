//! `burrow-proxy`: a forward proxy for HTTP/1.1, HTTP/2 and HTTP/3 (CONNECT and CONNECT-UDP)
//! and SOCKS5/4a. See `burrow-proxy --help`.

use clap::Parser;

#[tokio::main]
async fn main() {
    let args = burrow_examples::proxy_cli::Args::parse();
    if let Err(e) = burrow_examples::proxy_cli::run(args).await {
        eprintln!("burrow-proxy: {e}");
        std::process::exit(2);
    }
}
