//! Two hops: a SOCKS5 proxy, then an HTTP/2 proxy reached through it, then the origin.
//! `cargo run -p burrow --example proxy_chain -- socks5h://127.0.0.1:1080 h2://proxy:443 https://example.com/`

/// Fetches `url` through `hops` (nearest first), trusting `ca` for every TLS peer.
pub async fn run(hops: &[&str], ca: Option<&str>, url: &str) -> burrow::Result<String> {
    let mut b = burrow::Client::builder();
    for hop in hops {
        b = b.proxy(burrow::Proxy::parse(hop)?);
    }
    if let Some(ca) = ca {
        b = b.ca_file(ca)?;
    }
    let resp = b.build()?.get(url).send().await?;
    // The route is what was taken: "socks5h://127.0.0.1:1080 > h2://proxy:443".
    let line = format!(
        "{} {:?} via {}",
        resp.status(),
        resp.version(),
        resp.route()
    );
    let body = resp.text().await?;
    Ok(format!("{line}\n{body}"))
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (url, hops) = match args.split_last() {
        Some((url, hops)) => (
            url.clone(),
            hops.iter().map(String::as_str).collect::<Vec<_>>(),
        ),
        None => ("https://example.com/".into(), Vec::new()),
    };
    println!(
        "{}",
        run(&hops, std::env::var("CA").ok().as_deref(), &url).await?
    );
    Ok(())
}
