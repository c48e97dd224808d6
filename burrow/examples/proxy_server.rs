//! A proxy server in ten lines: HTTP CONNECT and forwarding on :3128, SOCKS5 on :1080,
//! with burrow-proxy's safe defaults (no loopback or link-local targets, loop detection).
//! `cargo run -p burrow --example proxy_server`

use burrow::server::{self, Listen, ProxyConfig, Rules};

/// Starts a proxy on `listen` (e.g. `http://127.0.0.1:3128`, `socks5://127.0.0.1:1080`).
pub async fn run(listen: &[&str], rules: Rules) -> burrow::Result<server::Running> {
    let listeners = listen
        .iter()
        .map(|l| Listen::parse(l))
        .collect::<Result<_, _>>()?;
    let config = ProxyConfig {
        listeners,
        rules,
        ..ProxyConfig::default()
    };
    server::start(server::Proxy::new(config, None, None)?).await
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let running = run(
        &["http://127.0.0.1:3128", "socks5://127.0.0.1:1080"],
        Rules::default(),
    )
    .await?;
    println!("listening on {:?}; Ctrl-C stops", running.addrs);
    let _ = tokio::signal::ctrl_c().await;
    running.shutdown(std::time::Duration::from_secs(5)).await;
    Ok(())
}
