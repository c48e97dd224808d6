//! A hop through a SOCKS5 or SOCKS4a proxy.

use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{
    tcp, Connected, Error, ErrorKind, Hop, Host, Prefixed, Result, StreamConnector, Target,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::url::{ProxyKind, ProxyUrl};
use crate::socks::client::{Dialect, SocksClient};
use crate::socks::wire::Command;

/// One SOCKS hop. `socks5` resolves names here (the client's resolver), `socks5h` and
/// `socks4a` hand them to the proxy.
pub struct SocksHop {
    url: ProxyUrl,
    index: usize,
    lower: Arc<dyn StreamConnector>,
}

impl SocksHop {
    /// A hop to `url` (a SOCKS kind), `index` in the route.
    pub fn new(url: ProxyUrl, index: usize, lower: Arc<dyn StreamConnector>) -> Self {
        SocksHop { url, index, lower }
    }

    fn hop(&self) -> Hop {
        Hop {
            index: Some(self.index),
            label: self.url.label(),
        }
    }

    async fn handshake(&self, target: &Target) -> Result<Connected> {
        let target = match (self.url.kind, &target.host) {
            (ProxyKind::Socks5, Host::Name(_)) => {
                let a = tcp::resolve(target).await?;
                let first = a
                    .first()
                    .copied()
                    .ok_or_else(|| Error::new(ErrorKind::Resolve, "no address"))?;
                Target::from(first)
            }
            _ => target.clone(),
        };
        let dialect = match self.url.kind {
            ProxyKind::Socks4a => Dialect::V4a,
            _ => Dialect::V5(self.url.credentials.clone()),
        };
        // Checks the 255-byte host limit before anything is sent.
        let mut core = SocksClient::new(dialect, Command::Connect, target)?;
        let Connected {
            mut stream,
            mut info,
        } = self.lower.connect(&self.url.target).await?;
        let mut buf = [0u8; 512];
        loop {
            while let Some(b) = core.poll_transmit() {
                stream
                    .write_all(&b)
                    .await
                    .map_err(|e| Error::io("SOCKS handshake", e))?;
            }
            if core.poll_done()?.is_some() {
                break;
            }
            while let Some(b) = core.poll_transmit() {
                stream
                    .write_all(&b)
                    .await
                    .map_err(|e| Error::io("SOCKS handshake", e))?;
            }
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| Error::io("SOCKS handshake", e))?;
            if n == 0 {
                return Err(Error::new(
                    ErrorKind::Closed,
                    "SOCKS proxy closed the connection during the handshake",
                ));
            }
            core.receive(&buf[..n]);
        }
        let leftover = core.take_leftover();
        info.layers
            .insert(0, format!("{}@{}", self.url.kind.scheme(), self.url.target));
        Ok(Connected {
            stream: Box::new(Prefixed::new(leftover, stream)),
            info,
        })
    }
}

#[async_trait]
impl StreamConnector for SocksHop {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        self.handshake(target)
            .await
            .map_err(|e| e.at_hop(self.hop()))
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} > {}",
            self.url.kind.scheme(),
            self.url.target,
            self.lower.describe()
        )
    }
}
