//! Streaming a large download to a file in constant memory, with progress.
//! `cargo run -p burrow --example download -- https://example.com/big.iso big.iso`

use tokio::io::AsyncWriteExt;

/// Writes `url`'s body to `path` piece by piece, calling `progress(done, total)` after
/// each; returns the number of bytes written.
pub async fn run(
    client: &burrow::Client,
    url: &str,
    path: &std::path::Path,
    mut progress: impl FnMut(u64, Option<u64>),
) -> burrow::Result<u64> {
    let mut resp = client.get(url).send().await?.error_for_status()?;
    let total = resp
        .headers()
        .get(burrow::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let io = |e| burrow::Error::local_io("writing the download", e);
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    let mut done = 0u64;
    while let Some(piece) = resp.chunk().await? {
        file.write_all(&piece).await.map_err(io)?;
        done += piece.len() as u64;
        progress(done, total);
    }
    file.flush().await.map_err(io)?;
    Ok(done)
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let url = args.first().map_or("https://example.com/", String::as_str);
    let path = args.get(1).map_or("download.out", String::as_str);
    let client = burrow::Client::new();
    let n = run(&client, url, path.as_ref(), |done, total| match total {
        Some(t) if t > 0 => eprint!("\r{done}/{t} bytes ({}%)", done * 100 / t),
        _ => eprint!("\r{done} bytes"),
    })
    .await?;
    eprintln!("\nwrote {n} bytes to {path}");
    Ok(())
}
