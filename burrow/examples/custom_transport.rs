//! A transport of your own under burrow's HTTP: every connection goes over a Unix socket
//! (curl's `--unix-socket`). Any `StreamConnector` returning any `AsyncRead + AsyncWrite`
//! stream works the same way: an in-memory pipe, a serial line, a tunnel of your own.
//! `cargo run -p burrow --example custom_transport -- /run/docker.sock http://localhost/version`

use std::path::PathBuf;
use std::sync::Arc;

use burrow::transport::{Connected, Error, Result, StreamConnector, StreamInfo, Target};

/// Connects every target to the same Unix socket.
pub struct UnixSocket(pub PathBuf);

#[async_trait::async_trait]
impl StreamConnector for UnixSocket {
    async fn connect(&self, _target: &Target) -> Result<Connected> {
        let s = tokio::net::UnixStream::connect(&self.0)
            .await
            .map_err(|e| Error::io(format!("connecting to {}", self.0.display()), e))?;
        Ok(Connected {
            stream: Box::new(s),
            info: StreamInfo {
                layers: vec![format!("unix:{}", self.0.display())],
                ..StreamInfo::default()
            },
        })
    }

    fn describe(&self) -> String {
        format!("unix:{}", self.0.display())
    }
}

/// Fetches `url` over the Unix socket at `path`.
pub async fn run(path: PathBuf, url: &str) -> burrow::Result<String> {
    let client = burrow::Client::builder()
        .transport(Arc::new(UnixSocket(path)))
        .build()?;
    client.get(url).send().await?.text().await
}

#[tokio::main]
async fn main() -> burrow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = args.first().map_or("/run/docker.sock", String::as_str);
    let url = args
        .get(1)
        .map_or("http://localhost/version", String::as_str);
    println!("{}", run(path.into(), url).await?);
    Ok(())
}
