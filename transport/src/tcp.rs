//! Direct TCP: resolution, happy eyeballs, socket options through socket2.

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use socket2::{SockRef, TcpKeepalive};
use tokio::net::{TcpSocket, TcpStream};

use crate::happy_eyeballs::{interleave, race, DEFAULT_ATTEMPT_DELAY};
use crate::{Connected, Error, ErrorKind, Host, Result, StreamConnector, StreamInfo, Target};

/// Resolves a target to socket addresses (IP literals are returned as they are).
pub async fn resolve(target: &Target) -> Result<Vec<SocketAddr>> {
    match &target.host {
        Host::Ip(ip) => Ok(vec![SocketAddr::new(*ip, target.port)]),
        Host::Name(name) => {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), target.port))
                .await
                .map_err(|e| {
                    Error::new(ErrorKind::Resolve, format!("could not resolve {name}"))
                        .with_source(e)
                })?
                .collect();
            if addrs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Resolve,
                    format!("{name} has no addresses"),
                ));
            }
            Ok(addrs)
        }
    }
}

/// Options for direct TCP connections.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    nodelay: bool,
    keepalive: Option<Duration>,
    attempt_delay: Duration,
    connect_timeout: Option<Duration>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            connect_timeout: None,
        }
    }
}

impl TcpConfig {
    /// Sets `TCP_NODELAY` (default on: HTTP writes whole messages, Nagle only adds latency).
    pub fn nodelay(&mut self, on: bool) -> &mut Self {
        self.nodelay = on;
        self
    }

    /// Sets the TCP keepalive idle time, or disables keepalive with `None` (default 60 s).
    pub fn keepalive(&mut self, idle: Option<Duration>) -> &mut Self {
        self.keepalive = idle;
        self
    }

    /// Sets the happy-eyeballs delay between connection attempts (default 250 ms, RFC 8305).
    pub fn attempt_delay(&mut self, d: Duration) -> &mut Self {
        self.attempt_delay = d;
        self
    }

    /// Sets a deadline for the whole connect, resolution included (default none).
    pub fn connect_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.connect_timeout = d;
        self
    }
}

/// Connects directly over TCP.
#[derive(Clone, Debug, Default)]
pub struct TcpConnector {
    config: TcpConfig,
}

impl TcpConnector {
    /// A connector with `config`.
    pub fn new(config: TcpConfig) -> Self {
        TcpConnector { config }
    }

    async fn connect_inner(&self, target: &Target) -> Result<(TcpStream, SocketAddr)> {
        let addrs = interleave(resolve(target).await?);
        let res = race(&addrs, self.config.attempt_delay, |addr| async move {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            sock.set_nodelay(self.config.nodelay)?;
            let s = sock.connect(addr).await?;
            Ok::<_, std::io::Error>((s, addr))
        })
        .await;
        let (stream, addr) = match res {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("could not connect to {target}");
                let err = Error::new(ErrorKind::Connect, msg);
                return Err(match e {
                    Some(e) => err.with_source(e),
                    None => err,
                });
            }
        };
        if let Some(idle) = self.config.keepalive {
            let ka = TcpKeepalive::new().with_time(idle);
            SockRef::from(&stream)
                .set_tcp_keepalive(&ka)
                .map_err(|e| Error::io("setting TCP keepalive", e))?;
        }
        Ok((stream, addr))
    }

    /// Connects and returns the tokio `TcpStream` itself.
    pub async fn connect_tcp(&self, target: &Target) -> Result<TcpStream> {
        let fut = self.connect_inner(target);
        let (s, _) = match self.config.connect_timeout {
            Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("connect to {target} took longer than {d:?}"),
                )
            })??,
            None => fut.await?,
        };
        Ok(s)
    }
}

#[async_trait]
impl StreamConnector for TcpConnector {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let s = self.connect_tcp(target).await?;
        let peer_addr = s.peer_addr().ok();
        Ok(Connected {
            stream: Box::new(s),
            info: StreamInfo {
                peer_addr,
                alpn: None,
                layers: vec!["tcp".into()],
            },
        })
    }

    fn describe(&self) -> String {
        "tcp".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connects_with_nodelay_and_keepalive() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let srv = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(b"hi").await.unwrap();
        });
        let mut cfg = TcpConfig::default();
        cfg.keepalive(Some(Duration::from_secs(30)));
        let c = TcpConnector::new(cfg);
        let mut s = c.connect_tcp(&Target::from(addr)).await.unwrap();
        assert!(s.nodelay().unwrap());
        assert!(SockRef::from(&s).keepalive().unwrap());
        assert_eq!(
            SockRef::from(&s).tcp_keepalive_time().unwrap(),
            Duration::from_secs(30)
        );
        let mut buf = [0; 2];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hi");
        srv.await.unwrap();
    }

    #[tokio::test]
    async fn refused_is_connect_error() {
        // Bind then drop to get a port nobody listens on.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = TcpConnector::default()
            .connect(&Target::from(addr))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect);
        assert!(e.to_string().contains(&addr.to_string()), "{e}");
    }

    #[tokio::test]
    async fn localhost_name_resolves_and_connects() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = l.accept().await;
        });
        let t = Target::new(Host::Name("localhost".into()), port);
        // localhost may resolve to ::1 first; happy eyeballs must still reach 127.0.0.1.
        let c = TcpConnector::default().connect(&t).await.unwrap();
        assert_eq!(c.info.peer_addr.unwrap().port(), port);
    }
}
