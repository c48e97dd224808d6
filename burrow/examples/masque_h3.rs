//! HTTP/3 to the origin inside a MASQUE proxy's CONNECT-UDP tunnel (RFC 9298), the proxy
//! itself spoken to over HTTP/3.
//! `cargo run -p burrow --example masque_h3 -- h3://proxy:443 https://example.com/`

/// Fetches `url` over HTTP/3 only, through the HTTP/3 proxy `proxy`.
pub async fn run(
    proxy: &str,
    ca: Option<&str>,
    url: &str,
) -> burrow::Result<(burrow::Version, String)> {
    let mut b = burrow::Client::builder()
        .proxy(burrow::Proxy::parse(proxy)?)
        .http3_only();
    if let Some(ca) = ca {
        b = b.ca_file(ca)?;
    }
    let resp = b.build()?.get(url).send().await?;
    let v = resp.version();
    Ok((v, resp.text().await?))
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let proxy = args.first().map_or("h3://127.0.0.1:4433", String::as_str);
    let url = args.get(1).map_or("https://example.com/", String::as_str);
    let (v, body) = run(proxy, std::env::var("CA").ok().as_deref(), url).await?;
    println!("{v:?}\n{body}");
    Ok(())
}
