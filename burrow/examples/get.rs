//! A GET: `cargo run -p burrow --example get -- https://example.com/`
//! (add `--ca ca.pem` for an origin signed by your own CA).

/// Fetches `url` and returns the status line and the body.
pub async fn run(url: &str, ca: Option<&str>) -> burrow::Result<(burrow::StatusCode, String)> {
    let mut b = burrow::Client::builder();
    if let Some(ca) = ca {
        b = b.ca_file(ca)?;
    }
    let resp = b.build()?.get(url).send().await?;
    let status = resp.status();
    Ok((status, resp.text().await?))
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().map_or("https://example.com/", String::as_str);
    let ca = args
        .iter()
        .position(|a| a == "--ca")
        .and_then(|i| args.get(i + 1));
    let (status, body) = run(url, ca.map(String::as_str)).await?;
    println!("{status}\n{body}");
    Ok(())
}
