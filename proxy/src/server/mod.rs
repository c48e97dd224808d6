//! The proxy server: listeners for HTTP/1.1 and HTTP/2 (plain or TLS, ALPN picks), HTTP/3,
//! and SOCKS; CONNECT and CONNECT-UDP on every HTTP version; absolute-form forwarding;
//! authentication, target rules, limits; counters.

mod http;
mod relay;
pub mod rules;
mod socks;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use burrow_http1::io::Http1;
use burrow_http2::{Http2, Http2Config};
use burrow_http_core::{Client, ServerConnection};
use burrow_transport::rustls::ServerConfig;
use burrow_transport::{
    tcp, tls, BoxFlow, BoxStream, DatagramConnector, Error, ErrorKind, StreamConnector, Target,
    TcpConnector, TlsConfig, UdpFlow,
};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

pub use relay::{relay, SharedStats, Stats};
pub use rules::{Credentials, Denied, Rules};

use crate::template::UdpTemplate;

/// Default cap on concurrent tunnels.
pub const DEFAULT_MAX_TUNNELS: usize = 4096;
/// Default bytes in flight per tunnel direction (the back-pressure window).
pub const DEFAULT_TUNNEL_BUFFER: usize = 64 * 1024;
/// Default idle time after which a tunnel is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default longest capsule accepted on a CONNECT-UDP stream.
pub const DEFAULT_MAX_CAPSULE: u64 = burrow_http_core::capsule::DEFAULT_MAX_CAPSULE;

/// Limits that protect the proxy and everyone else using it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent tunnels; more are answered 503.
    pub max_tunnels: usize,
    /// Bytes in flight per tunnel direction.
    pub tunnel_buffer: usize,
    /// Idle time before a tunnel is closed.
    pub idle_timeout: Duration,
    /// Longest capsule on a CONNECT-UDP stream.
    pub max_capsule: u64,
    /// Largest request head (HTTP/1.1) and header list (HTTP/2).
    pub max_head_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tunnels: DEFAULT_MAX_TUNNELS,
            tunnel_buffer: DEFAULT_TUNNEL_BUFFER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_capsule: DEFAULT_MAX_CAPSULE,
            max_head_bytes: burrow_http1::proto::DEFAULT_MAX_HEAD_BYTES,
        }
    }
}

/// One listening address and what it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// HTTP/1.1 over TCP (`http://`).
    Http(SocketAddr),
    /// TLS over TCP, ALPN `h2` then `http/1.1` (`https://`).
    Https(SocketAddr),
    /// TLS over TCP, HTTP/1.1 only (`https1://`).
    Https1(SocketAddr),
    /// HTTP/3 over UDP (`h3://`).
    H3(SocketAddr),
    /// SOCKS5 (and SOCKS4a) over TCP (`socks5://`).
    Socks(SocketAddr),
}

impl Listen {
    /// Parses `http://ADDR`, `https://ADDR`, `https1://ADDR`, `h3://ADDR`, `socks5://ADDR`.
    pub fn parse(s: &str) -> Result<Listen, Error> {
        let bad = || Error::new(ErrorKind::InvalidInput, format!("bad listen address {s:?}"));
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let addr: SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| bad())?;
        Ok(match scheme {
            "http" => Listen::Http(addr),
            "https" => Listen::Https(addr),
            "https1" => Listen::Https1(addr),
            "h3" => Listen::H3(addr),
            "socks5" | "socks" | "socks4a" => Listen::Socks(addr),
            _ => return Err(bad()),
        })
    }
}

/// What the proxy does.
#[derive(Clone, Debug, Default)]
pub struct ProxyConfig {
    /// Where to listen.
    pub listeners: Vec<Listen>,
    /// Certificate chain and key (DER) for TLS and HTTP/3 listeners.
    pub identity: Option<(
        Vec<burrow_transport::rustls::pki_types::CertificateDer<'static>>,
        Arc<burrow_transport::rustls::pki_types::PrivateKeyDer<'static>>,
    )>,
    /// Credentials clients must present; `None` for an open proxy.
    pub auth: Option<Credentials>,
    /// Allowed targets.
    pub rules: Rules,
    /// Limits.
    pub limits: Limits,
    /// The CONNECT-UDP URI template served.
    pub udp_template: UdpTemplate,
    /// TLS settings for `https://` origins of forwarded requests.
    pub origin_tls: TlsConfig,
}

/// Why a target could not be reached.
pub enum Dial {
    /// The rules refused it.
    Denied(Denied),
    /// Connecting failed.
    Failed(Error),
}

/// A configured proxy: shared by every listener and connection.
pub struct Proxy {
    config: ProxyConfig,
    stats: SharedStats,
    tunnel_slots: Arc<Semaphore>,
    client: Client,
    tcp: Option<Arc<dyn StreamConnector>>,
    udp: Option<Arc<dyn DatagramConnector>>,
}

impl Proxy {
    /// A proxy reaching targets directly (`upstream` = `None`) or through the given route.
    pub fn new(
        config: ProxyConfig,
        upstream_tcp: Option<Arc<dyn StreamConnector>>,
        upstream_udp: Option<Arc<dyn DatagramConnector>>,
    ) -> Result<Arc<Proxy>, Error> {
        let mut b = Client::builder();
        b.protocol(Arc::new(Http1::default()))
            .protocol(Arc::new(Http2::default()))
            .tls(config.origin_tls.clone());
        if let Some(c) = &upstream_tcp {
            b.connector(c.clone());
        }
        Ok(Arc::new(Proxy {
            tunnel_slots: Arc::new(Semaphore::new(config.limits.max_tunnels)),
            stats: Arc::default(),
            client: b.build()?,
            tcp: upstream_tcp,
            udp: upstream_udp,
            config,
        }))
    }

    /// The proxy's counters.
    pub fn stats(&self) -> SharedStats {
        self.stats.clone()
    }

    /// Resolves a direct target and keeps the addresses the rules allow.
    async fn allowed_addrs(&self, target: &Target) -> Result<Vec<SocketAddr>, Dial> {
        let addrs = tcp::resolve(target).await.map_err(Dial::Failed)?;
        let mut last = None;
        let ok: Vec<_> = addrs
            .into_iter()
            .filter(|a| match self.config.rules.check_address(a.ip()) {
                Ok(()) => true,
                Err(d) => {
                    last = Some(d);
                    false
                }
            })
            .collect();
        match (ok.is_empty(), last) {
            (true, Some(d)) => Err(Dial::Denied(d)),
            _ => Ok(ok),
        }
    }

    async fn dial_tcp(&self, target: &Target) -> Result<BoxStream, Dial> {
        if let Some(up) = &self.tcp {
            return up
                .connect(target)
                .await
                .map(|c| c.stream)
                .map_err(Dial::Failed);
        }
        let mut last = None;
        for a in self.allowed_addrs(target).await? {
            match TcpConnector::default().connect(&Target::from(a)).await {
                Ok(c) => return Ok(c.stream),
                Err(e) => last = Some(e),
            }
        }
        Err(Dial::Failed(last.unwrap_or_else(|| {
            Error::new(ErrorKind::Resolve, "no address")
        })))
    }

    async fn dial_udp(&self, target: &Target) -> Result<BoxFlow, Dial> {
        if let Some(up) = &self.udp {
            return up.connect_datagram(target).await.map_err(Dial::Failed);
        }
        let addrs = self.allowed_addrs(target).await?;
        let a = addrs
            .first()
            .copied()
            .ok_or_else(|| Dial::Failed(Error::new(ErrorKind::Resolve, "no address")))?;
        UdpFlow::connect(a)
            .await
            .map(|f| Arc::new(f) as BoxFlow)
            .map_err(Dial::Failed)
    }
}

/// A running proxy: where it listens, and how to stop it.
pub struct Running {
    /// Bound addresses, in the order of the configured listeners.
    pub addrs: Vec<Listen>,
    proxy: Arc<Proxy>,
    stop: Arc<Notify>,
}

impl Running {
    /// The proxy's counters.
    pub fn stats(&self) -> SharedStats {
        self.proxy.stats()
    }

    /// Stops accepting connections and waits up to `grace` for open tunnels to finish.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.notify_waiters();
        let deadline = tokio::time::Instant::now() + grace;
        while self.proxy.stats.active.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

async fn serve_conn(proxy: Arc<Proxy>, mut conn: Box<dyn ServerConnection>, stop: Arc<Notify>) {
    proxy.stats.connections.fetch_add(1, Ordering::Relaxed);
    loop {
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok(req)) => { tokio::spawn(http::handle(proxy.clone(), req)); }
                _ => return,
            },
            _ = stop.notified() => conn.graceful_shutdown(),
        }
    }
}

fn h1(proxy: &Proxy, io: BoxStream) -> Box<dyn ServerConnection> {
    let limits = burrow_http1::proto::Limits {
        max_head_bytes: proxy.config.limits.max_head_bytes,
        ..Default::default()
    };
    Box::new(burrow_http1::io::serve(io, limits))
}

/// Concurrent streams a client may open on one HTTP/2 or HTTP/3 connection: every stream
/// can be a tunnel, so the tunnel limit (503 beyond it), not the stream limit, should be
/// what a client meets; a client that shares one connection for all its tunnels would
/// otherwise wait for a stream slot that only a closing tunnel frees.
fn streams_per_connection(proxy: &Proxy) -> u32 {
    u32::try_from(proxy.config.limits.max_tunnels)
        .unwrap_or(u32::MAX)
        .max(burrow_http2::DEFAULT_MAX_CONCURRENT_STREAMS)
}

fn h2(proxy: &Proxy, io: BoxStream) -> Box<dyn ServerConnection> {
    let mut c = Http2Config::default();
    c.max_header_list_size(proxy.config.limits.max_head_bytes as u32)
        .max_concurrent_streams(streams_per_connection(proxy));
    Box::new(burrow_http2::serve(io, &c))
}

/// Binds every listener and starts serving.
pub async fn start(proxy: Arc<Proxy>) -> Result<Running, Error> {
    let stop = Arc::new(Notify::new());
    let mut addrs = Vec::new();
    for l in proxy.config.listeners.clone() {
        match l {
            Listen::Http(a) | Listen::Https(a) | Listen::Https1(a) => {
                let tls = match l {
                    Listen::Https(_) => Some(tls_config(&proxy, &[b"h2", b"http/1.1"])?),
                    Listen::Https1(_) => Some(tls_config(&proxy, &[b"http/1.1"])?),
                    _ => None,
                };
                let listener = TcpListener::bind(a)
                    .await
                    .map_err(|e| Error::io(format!("binding {a}"), e))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::io("local address", e))?;
                addrs.push(match l {
                    Listen::Https(_) => Listen::Https(bound),
                    Listen::Https1(_) => Listen::Https1(bound),
                    _ => Listen::Http(bound),
                });
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let (s, _) = tokio::select! {
                            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                            _ = stop.notified() => return,
                        };
                        let _ = s.set_nodelay(true);
                        let (proxy, stop, tls) = (proxy.clone(), stop.clone(), tls.clone());
                        tokio::spawn(async move {
                            let conn = match tls {
                                None => match sniff_h2c(s).await {
                                    Some((true, io)) => h2(&proxy, io),
                                    Some((false, io)) => h1(&proxy, io),
                                    None => return,
                                },
                                Some(cfg) => match tls::accept(Box::new(s), cfg).await {
                                    Ok((t, alpn)) if alpn.as_deref() == Some(b"h2") => {
                                        h2(&proxy, Box::new(t))
                                    }
                                    Ok((t, _)) => h1(&proxy, Box::new(t)),
                                    Err(_) => return,
                                },
                            };
                            serve_conn(proxy, conn, stop).await;
                        });
                    }
                });
            }
            Listen::Socks(a) => {
                let listener = TcpListener::bind(a)
                    .await
                    .map_err(|e| Error::io(format!("binding {a}"), e))?;
                addrs.push(Listen::Socks(
                    listener
                        .local_addr()
                        .map_err(|e| Error::io("local address", e))?,
                ));
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let (s, _) = tokio::select! {
                            r = listener.accept() => match r { Ok(x) => x, Err(_) => continue },
                            _ = stop.notified() => return,
                        };
                        let _ = s.set_nodelay(true);
                        tokio::spawn(socks::serve(proxy.clone(), s));
                    }
                });
            }
            Listen::H3(a) => {
                let cfg = tls_config(&proxy, &[b"h3"])?;
                let mut h3 = burrow_http3::Http3Config::default();
                h3.max_concurrent_streams(streams_per_connection(&proxy));
                let ep = burrow_http3::bind(a, cfg, &h3)?;
                addrs.push(Listen::H3(
                    ep.local_addr().map_err(|e| Error::io("local address", e))?,
                ));
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let incoming = tokio::select! {
                            r = ep.accept() => match r { Some(i) => i, None => return },
                            _ = stop.notified() => { ep.close(0u32.into(), b"shutdown"); return; }
                        };
                        let (proxy, stop) = (proxy.clone(), stop.clone());
                        tokio::spawn(async move {
                            let Ok(c) = incoming.await else { return };
                            let Ok(srv) = burrow_http3::serve(c).await else {
                                return;
                            };
                            serve_conn(proxy, Box::new(srv), stop).await;
                        });
                    }
                });
            }
        }
    }
    Ok(Running { addrs, proxy, stop })
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells HTTP/2 with prior knowledge (h2c) from HTTP/1.1 on a cleartext listener by the
/// first bytes, which are handed back in front of the stream. `None`: the client went away
/// or sent nothing for 30 s.
async fn sniff_h2c(mut s: tokio::net::TcpStream) -> Option<(bool, BoxStream)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    let mut tmp = [0u8; 24];
    while buf.len() < H2_PREFACE.len() {
        let want = H2_PREFACE.len() - buf.len();
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut tmp[..want]))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&tmp[..n]);
        if !H2_PREFACE.starts_with(&buf) {
            break;
        }
    }
    if buf.is_empty() {
        return None;
    }
    let h2 = buf == H2_PREFACE;
    Some((
        h2,
        Box::new(burrow_transport::Prefixed::new(bytes::Bytes::from(buf), s)),
    ))
}

fn tls_config(proxy: &Proxy, alpn: &[&[u8]]) -> Result<Arc<ServerConfig>, Error> {
    let (chain, key) = proxy.config.identity.clone().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidInput,
            "a TLS or HTTP/3 listener needs a certificate",
        )
    })?;
    tls::server_config(chain, key.clone_key(), alpn)
}
