//! The listeners: binding every configured address, accepting connections (TCP for
//! HTTP/1.1, HTTP/2 and SOCKS; QUIC for HTTP/3), the TLS handshake or the h2c sniff, and
//! handing each connection to the request loop.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use burrow_http1::Http1Config;
use burrow_http2::Http2Config;
use burrow_http_core::ServerConnection;
use burrow_transport::rustls::ServerConfig;
use burrow_transport::tcp::AbortableTcp;
use burrow_transport::{tls, BoxStream, Error};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use super::{accept, serve_conn, socks, Hold, Listen, Peer, Proxy, Running};

pub(crate) async fn h1(proxy: &Proxy, io: BoxStream) -> Result<Box<dyn ServerConnection>, Error> {
    let l = &proxy.config.limits;
    let mut c = Http1Config::default();
    c.max_head_bytes(l.max_head_bytes)
        .head_timeout(Some(l.head_timeout))
        .idle_timeout(Some(l.keepalive_timeout));
    Ok(Box::new(burrow_http1::serve(io, &c).await?))
}

pub(crate) async fn h2(proxy: &Proxy, io: BoxStream) -> Result<Box<dyn ServerConnection>, Error> {
    h2_with(proxy, io, true).await
}

/// HTTP/2 served on `io`; `extended_connect`: whether clients may send extended CONNECTs
/// (not inside an intercepted tunnel, where a WebSocket must come as an HTTP/1.1 Upgrade).
pub(crate) async fn h2_with(
    proxy: &Proxy,
    io: BoxStream,
    extended_connect: bool,
) -> Result<Box<dyn ServerConnection>, Error> {
    let l = &proxy.config.limits;
    let mut c = Http2Config::default();
    c.max_header_list_size(l.max_head_bytes as u32)
        .max_concurrent_streams(l.max_streams_per_connection)
        .handshake_timeout(l.handshake_timeout)
        .extended_connect(extended_connect);
    Ok(Box::new(burrow_http2::serve(io, &c).await?))
}

/// Binds every listener and starts serving.
pub async fn start(proxy: Arc<Proxy>) -> Result<Running, Error> {
    let stop = Arc::new(Notify::new());
    let mut addrs = Vec::new();
    for l in proxy.config.listeners.clone() {
        match l {
            Listen::Http(a) | Listen::Https(a) | Listen::Https1(a) | Listen::Socks(a) => {
                let tls = match l {
                    Listen::Https(_) => Some(tls_config(&proxy, &[b"h2", b"http/1.1"])?),
                    Listen::Https1(_) => Some(tls_config(&proxy, &[b"http/1.1"])?),
                    _ => None,
                };
                let listener = TcpListener::bind(a)
                    .await
                    .map_err(|e| Error::local_io(format!("binding {a}"), e))?;
                let bound = listener
                    .local_addr()
                    .map_err(|e| Error::local_io("local address", e))?;
                let is_socks = matches!(l, Listen::Socks(_));
                addrs.push(match l {
                    Listen::Https(_) => Listen::Https(bound),
                    Listen::Https1(_) => Listen::Https1(bound),
                    Listen::Socks(_) => Listen::Socks(bound),
                    _ => Listen::Http(bound),
                });
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    while let Some((s, from)) = accept::accept(|| listener.accept(), &stop).await {
                        let Some(hold) = proxy.clients.connection(from.ip()) else {
                            proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        };
                        let _ = s.set_nodelay(true);
                        if is_socks {
                            tokio::spawn(socks::serve(proxy.clone(), s, from, hold));
                            continue;
                        }
                        let (proxy, stop, tls) = (proxy.clone(), stop.clone(), tls.clone());
                        tokio::spawn(serve_tcp(proxy, s, from, tls, stop, hold));
                    }
                });
            }
            Listen::H3(a) => {
                let cfg = tls_config(&proxy, &[b"h3"])?;
                let limits = &proxy.config.limits;
                let mut h3 = burrow_http3::Http3Config::default();
                h3.max_concurrent_streams(limits.max_streams_per_connection)
                    .handshake_timeout(limits.handshake_timeout)
                    .request_head_timeout(limits.head_timeout)
                    .quic_lb(proxy.config.quic_lb.clone());
                let ep = burrow_http3::bind(a, cfg, &h3)?;
                addrs.push(Listen::H3(
                    ep.local_addr()
                        .map_err(|e| Error::local_io("local address", e))?,
                ));
                let (proxy, stop) = (proxy.clone(), stop.clone());
                tokio::spawn(async move {
                    loop {
                        let incoming = tokio::select! {
                            r = ep.accept() => match r { Some(i) => i, None => return },
                            _ = stop.notified() => { ep.close(0u32.into(), b"shutdown"); return; }
                        };
                        let from = incoming.remote_address();
                        let (proxy, stop, h3) = (proxy.clone(), stop.clone(), h3.clone());
                        tokio::spawn(async move {
                            let deadline = proxy.config.limits.handshake_timeout;
                            let set_up = async {
                                let c = incoming.await.ok()?;
                                burrow_http3::serve(c, &h3).await.ok()
                            };
                            // The whole set-up within the deadline: QUIC, then our control
                            // stream (which a client allowing no streams would block).
                            let Ok(Some(srv)) = tokio::time::timeout(deadline, set_up).await else {
                                return;
                            };
                            // Counted only now: a completed handshake proves the address
                            // (spoofed Initials cannot use up somebody else's share).
                            let Some(hold) = proxy.clients.connection(from.ip()) else {
                                proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
                                let mut srv = srv;
                                srv.close();
                                return;
                            };
                            let peer = Peer {
                                addr: from,
                                abort: None,
                            };
                            serve_conn(proxy, Box::new(srv), stop, peer, hold).await;
                        });
                    }
                });
            }
        }
    }
    proxy.own.set(addrs.iter().map(Listen::addr).collect());
    warn_if_open(&proxy, &addrs);
    Ok(Running { addrs, proxy, stop })
}

/// An open proxy reachable from other machines is everybody's proxy: say so at start.
fn warn_if_open(proxy: &Proxy, addrs: &[Listen]) {
    if proxy.config.auth.is_some() {
        return;
    }
    for l in addrs {
        let ip = l.addr().ip();
        if !ip.is_loopback() {
            tracing::warn!(
                "burrow-proxy listens on {} without --auth: anyone who can reach it may use it",
                l.addr()
            );
            eprintln!(
                "burrow-proxy: warning: listening on {} without --auth: anyone who can reach \
                 it may use it",
                l.addr()
            );
        }
    }
}

/// One TCP client connection of an HTTP listener: TLS (within the handshake deadline) or
/// the h2c sniff, then HTTP/1.1 or HTTP/2.
async fn serve_tcp(
    proxy: Arc<Proxy>,
    s: tokio::net::TcpStream,
    from: SocketAddr,
    tls: Option<Arc<ServerConfig>>,
    stop: Arc<Notify>,
    hold: Hold,
) {
    let deadline = proxy.config.limits.handshake_timeout;
    // An HTTP/1.1 connection that becomes a tunnel ends with a RST when the tunnel fails;
    // HTTP/2 resets just the tunnel's stream.
    let (s, abort) = AbortableTcp::new(s);
    let (conn, abort) = match tls {
        None => match sniff_h2c(s, deadline).await {
            Some((true, io)) => (h2(&proxy, io).await, None),
            Some((false, io)) => (h1(&proxy, io).await, Some(abort)),
            None => return,
        },
        Some(cfg) => match tokio::time::timeout(deadline, tls::accept(Box::new(s), cfg)).await {
            Ok(Ok((t, alpn))) if alpn.as_deref() == Some(b"h2") => {
                (h2(&proxy, Box::new(t)).await, None)
            }
            Ok(Ok((t, _))) => (h1(&proxy, Box::new(t)).await, Some(abort)),
            _ => return,
        },
    };
    let Ok(conn) = conn else { return };
    let peer = Peer { addr: from, abort };
    serve_conn(proxy, conn, stop, peer, hold).await;
}

/// The HTTP/2 connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells HTTP/2 with prior knowledge (h2c) from HTTP/1.1 on a cleartext listener by the
/// first bytes, which are handed back in front of the stream. `None`: the client went away
/// or did not send enough to tell within `deadline`.
async fn sniff_h2c(mut s: AbortableTcp, deadline: Duration) -> Option<(bool, BoxStream)> {
    use tokio::io::AsyncReadExt;
    let mut buf = Vec::with_capacity(H2_PREFACE.len());
    let mut tmp = [0u8; 24];
    let until = tokio::time::Instant::now() + deadline;
    while buf.len() < H2_PREFACE.len() {
        let want = H2_PREFACE.len() - buf.len();
        let n = tokio::time::timeout_at(until, s.read(&mut tmp[..want]))
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
    let (chain, key) = proxy
        .config
        .identity
        .clone()
        .ok_or_else(|| Error::invalid_input("a TLS or HTTP/3 listener needs a certificate"))?;
    tls::server_config(chain, key.clone_key(), alpn)
}
