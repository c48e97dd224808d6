//! Direct TCP: resolution, happy eyeballs, socket options through socket2.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::happy_eyeballs::{interleave, race, DEFAULT_ATTEMPT_DELAY};
use crate::resolve::{resolve_target, SharedResolver, SystemResolver};
use crate::{
    ConnectTimings, Connected, Error, ErrorKind, Result, StreamConnector, StreamInfo, Target,
};

/// Default deadline for a whole direct connect, name lookup included (curl has 300 s;
/// a dial that takes longer than this is to a black hole).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs a connect to `target` under deadline `d`: a timeout is an [`ErrorKind::Timeout`]
/// that names the target.
pub async fn connect_within<T>(
    d: Duration,
    target: &Target,
    fut: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::time::timeout(d, fut)
        .await
        .map_err(|_| Error::peer_timeout(format!("connect to {target} took longer than {d:?}")))?
}

/// Options for direct TCP connections.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    nodelay: bool,
    keepalive: Option<Duration>,
    attempt_delay: Duration,
    connect_timeout: Option<Duration>,
    local_ip: Option<IpAddr>,
    local_ports: Option<RangeInclusive<u16>>,
    device: Option<String>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            nodelay: true,
            keepalive: Some(Duration::from_secs(60)),
            attempt_delay: DEFAULT_ATTEMPT_DELAY,
            connect_timeout: Some(DEFAULT_CONNECT_TIMEOUT),
            local_ip: None,
            local_ports: None,
            device: None,
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

    /// Sets a deadline for the whole connect, resolution included (default
    /// [`DEFAULT_CONNECT_TIMEOUT`]; `None`: wait as long as the operating system does).
    pub fn connect_timeout(&mut self, d: Option<Duration>) -> &mut Self {
        self.connect_timeout = d;
        self
    }

    /// Connects from this local address (curl's `--interface` with an address); only
    /// peers of its family are tried.
    pub fn local_ip(&mut self, ip: Option<IpAddr>) -> &mut Self {
        self.local_ip = ip;
        self
    }

    /// Connects from a local port in `ports`, the first one free (curl's `--local-port`).
    pub fn local_ports(&mut self, ports: Option<RangeInclusive<u16>>) -> &mut Self {
        self.local_ports = ports;
        self
    }

    /// Connects through this network interface only (curl's `--interface NAME`; Linux
    /// `SO_BINDTODEVICE`, which needs `CAP_NET_RAW` for most names).
    pub fn device(&mut self, name: Option<String>) -> &mut Self {
        self.device = name;
        self
    }

    /// Binds `sock` as the local address, port and device settings say.
    fn bind(&self, sock: &TcpSocket, peer: SocketAddr) -> std::io::Result<()> {
        if let Some(d) = &self.device {
            bind_device(sock, d)?;
        }
        let ip = match self.local_ip {
            Some(ip) if ip.is_ipv4() != peer.is_ipv4() => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::AddrNotAvailable,
                    format!("local address {ip} cannot reach {peer}"),
                ))
            }
            Some(ip) => ip,
            None if self.local_ports.is_none() => return Ok(()),
            None if peer.is_ipv4() => IpAddr::from([0u8; 4]),
            None => IpAddr::from([0u16; 8]),
        };
        let Some(ports) = self.local_ports.clone() else {
            return sock.bind(SocketAddr::new(ip, 0));
        };
        let mut last = None;
        for port in ports {
            match sock.bind(SocketAddr::new(ip, port)) {
                Ok(()) => return Ok(()),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::AddrInUse, "empty local port range")
        }))
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_device(sock: &TcpSocket, name: &str) -> std::io::Result<()> {
    SockRef::from(sock)
        .bind_device(Some(name.as_bytes()))
        .map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot bind to interface {name:?}: {e}"))
        })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_device(_: &TcpSocket, name: &str) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        format!("binding to interface {name:?} needs Linux"),
    ))
}

/// Connects directly over TCP, resolving names with its [`Resolve`](crate::Resolve)r
/// (the system's by default).
#[derive(Clone)]
pub struct TcpConnector {
    config: TcpConfig,
    resolver: SharedResolver,
}

impl Default for TcpConnector {
    fn default() -> Self {
        TcpConnector::new(TcpConfig::default())
    }
}

impl std::fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl TcpConnector {
    /// A connector with `config` and the system resolver.
    pub fn new(config: TcpConfig) -> Self {
        TcpConnector {
            config,
            resolver: std::sync::Arc::new(SystemResolver),
        }
    }

    /// Resolves names with `resolver` instead of the system's.
    pub fn with_resolver(mut self, resolver: SharedResolver) -> Self {
        self.resolver = resolver;
        self
    }

    async fn connect_inner(
        &self,
        target: &Target,
        timings: &mut ConnectTimings,
    ) -> Result<(TcpStream, SocketAddr)> {
        let addrs = resolve_target(&*self.resolver, target).await?;
        if target.socket_addr().is_none() {
            timings.resolved = Some(Instant::now());
        }
        let r = self.race_addrs(addrs, target).await?;
        timings.connected = Some(Instant::now());
        Ok(r)
    }

    /// Connects to one of `addrs` (already resolved and, for a proxy, already checked),
    /// racing them as RFC 8305 says, under the configured deadline. `target` names the
    /// destination in errors.
    pub async fn connect_addrs(
        &self,
        addrs: Vec<SocketAddr>,
        target: &Target,
    ) -> Result<TcpStream> {
        self.deadline(target, self.race_addrs(addrs, target))
            .await
            .map(|(s, _)| s)
    }

    async fn deadline<T>(
        &self,
        target: &Target,
        fut: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        match self.config.connect_timeout {
            Some(d) => connect_within(d, target, fut).await,
            None => fut.await,
        }
    }

    async fn race_addrs(
        &self,
        addrs: Vec<SocketAddr>,
        target: &Target,
    ) -> Result<(TcpStream, SocketAddr)> {
        let addrs = interleave(addrs);
        let res = race(&addrs, self.config.attempt_delay, |addr| async move {
            let sock = if addr.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }?;
            sock.set_nodelay(self.config.nodelay)?;
            self.config.bind(&sock, addr)?;
            let s = sock.connect(addr).await?;
            Ok::<_, std::io::Error>((s, addr))
        })
        .await;
        let (stream, addr) = match res {
            Ok(v) => v,
            Err(e) => {
                let msg = format!("could not connect to {target}");
                let err = Error::peer(ErrorKind::Connect, msg);
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
                .map_err(|e| Error::local_io("setting TCP keepalive", e))?;
        }
        Ok((stream, addr))
    }

    /// Connects and returns the tokio `TcpStream` itself.
    pub async fn connect_tcp(&self, target: &Target) -> Result<TcpStream> {
        self.connect_timed(target).await.map(|(s, _)| s)
    }

    async fn connect_timed(&self, target: &Target) -> Result<(TcpStream, ConnectTimings)> {
        let mut timings = ConnectTimings {
            started: Some(Instant::now()),
            ..ConnectTimings::default()
        };
        let (s, _) = self
            .deadline(target, self.connect_inner(target, &mut timings))
            .await?;
        timings.routed = timings.connected;
        Ok((s, timings))
    }
}

#[async_trait]
impl StreamConnector for TcpConnector {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let (s, timings) = self.connect_timed(target).await?;
        let (peer_addr, local_addr) = (s.peer_addr().ok(), s.local_addr().ok());
        let (s, abort) = AbortableTcp::new(s);
        Ok(Connected {
            info: StreamInfo {
                peer_addr,
                local_addr,
                alpn: None,
                layers: vec!["tcp".into()],
                timings,
                abort: Some(abort),
            },
            stream: Box::new(s),
        })
    }

    fn describe(&self) -> String {
        "tcp".into()
    }
}

/// Arms an abortive close of an [`AbortableTcp`]: once armed, dropping the stream sends a
/// TCP RST instead of a FIN. A proxy arms it when the tunnel a connection is relayed into
/// fails (RFC 9113 §8.5, RFC 9114 §4.4: the target must not take a cut-off transfer for a
/// complete one).
#[derive(Clone, Debug, Default)]
pub struct Abort(Arc<AtomicBool>);

impl Abort {
    /// Makes the next drop of the stream abortive.
    pub fn arm(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// A TCP stream that closes with a RST (`SO_LINGER` 0) when dropped after its [`Abort`]
/// was armed, and with a FIN otherwise.
#[derive(Debug)]
pub struct AbortableTcp {
    stream: TcpStream,
    abort: Abort,
}

impl AbortableTcp {
    /// `stream`, and the handle that arms its abortive close.
    pub fn new(stream: TcpStream) -> (AbortableTcp, Abort) {
        let abort = Abort::default();
        let s = AbortableTcp {
            stream,
            abort: abort.clone(),
        };
        (s, abort)
    }
}

impl Drop for AbortableTcp {
    fn drop(&mut self) {
        if self.abort.0.load(Ordering::Relaxed) {
            // A zero linger time makes close() send a RST and never block.
            let _ = SockRef::from(&self.stream).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for AbortableTcp {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for AbortableTcp {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Host, Resolve};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A resolver that never answers (a black-holed DNS server).
    struct Silent;

    #[async_trait]
    impl Resolve for Silent {
        async fn resolve(&self, _: &str, _: u16) -> Result<Vec<SocketAddr>> {
            std::future::pending().await
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_default_deadline_covers_a_lookup_that_never_ends() {
        let c = TcpConnector::default().with_resolver(std::sync::Arc::new(Silent));
        let t0 = tokio::time::Instant::now();
        let e = c
            .connect(&"black.hole:80".parse().unwrap())
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(t0.elapsed(), DEFAULT_CONNECT_TIMEOUT);
        assert!(e.to_string().contains("black.hole:80"), "{e}");
    }

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
