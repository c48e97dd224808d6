//! An in-process test origin built on burrow's server roles.
//!
//! Paths: `/bytes/N` returns N deterministic bytes with `Content-Length`; `/chunked/N` the
//! same bytes chunked; `/fill/N` N bytes cut from one repeated 64 KiB block (cheap to serve,
//! for benchmarks); `/echo` echoes a request body; anything else returns the path.
//! The body bytes are [`pattern`] so a client can check them without storing them.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burrow_http_core::{Body, ServerConnection, ServerRequest};
use burrow_transport::{tls, BoxStream};
use bytes::Bytes;
use http::Response;
use tokio::net::TcpListener;

/// Byte `i` of every test body.
pub fn pattern_byte(i: u64) -> u8 {
    (i.wrapping_mul(31).wrapping_add(i >> 8) % 251) as u8
}

/// The first `n` bytes of the test pattern starting at offset `from`.
pub fn pattern(from: u64, n: usize) -> Vec<u8> {
    (0..n as u64).map(|i| pattern_byte(from + i)).collect()
}

/// Counters an origin keeps, so tests can tell which route reached it.
#[derive(Debug, Default)]
pub struct OriginStats {
    /// Connections accepted.
    pub connections: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
}

/// A running origin.
pub struct Origin {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its counters.
    pub stats: Arc<OriginStats>,
}

/// Which HTTP versions an origin serves on each TCP connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versions {
    /// HTTP/1.1 only.
    Http1,
    /// HTTP/2 only (h2c with prior knowledge when there is no TLS).
    Http2,
    /// What TLS ALPN picked (`h2` or `http/1.1`); HTTP/1.1 without TLS.
    Negotiate,
}

/// ALPN ids to offer for `v`.
pub fn alpn(v: Versions) -> &'static [&'static [u8]] {
    // (h3 is negotiated on the UDP listener, whose TLS config offers b"h3".)
    match v {
        Versions::Http1 => &[b"http/1.1"],
        Versions::Http2 => &[b"h2"],
        Versions::Negotiate => &[b"h2", b"http/1.1"],
    }
}

/// Starts the server role for `versions` on `io`, given the ALPN TLS negotiated.
pub async fn serve(
    versions: Versions,
    io: BoxStream,
    alpn: Option<&[u8]>,
) -> Result<Box<dyn ServerConnection>, burrow_transport::Error> {
    let h2 = match versions {
        Versions::Http1 => false,
        Versions::Http2 => true,
        Versions::Negotiate => alpn == Some(b"h2"),
    };
    Ok(if h2 {
        Box::new(burrow_http2::serve(io, &Default::default()).await?)
    } else {
        Box::new(burrow_http1::serve(io, &Default::default()).await?)
    })
}

/// Starts an origin on `127.0.0.1:0`, plain or with TLS when `tls` is given (its ALPN list
/// should come from [`alpn`]).
pub async fn start(
    versions: Versions,
    tls: Option<Arc<burrow_transport::rustls::ServerConfig>>,
) -> std::io::Result<Origin> {
    start_with(versions, tls, None).await
}

/// Starts an HTTP/3 origin on `127.0.0.1:port` (0 for any) over UDP; `tls` must offer `h3`.
pub async fn start_h3(
    tls: Arc<burrow_transport::rustls::ServerConfig>,
    port: u16,
) -> Result<Origin, burrow_transport::Error> {
    start_h3_at(([127, 0, 0, 1], port).into(), tls).await
}

/// Like [`start_h3`], on `at`.
pub async fn start_h3_at(
    at: std::net::SocketAddr,
    tls: Arc<burrow_transport::rustls::ServerConfig>,
) -> Result<Origin, burrow_transport::Error> {
    let ep = burrow_http3::bind(at, tls, &burrow_http3::Http3Config::default())?;
    let addr = ep
        .local_addr()
        .map_err(|e| burrow_transport::Error::io("HTTP/3 origin address", e))?;
    let stats = Arc::new(OriginStats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            let st = st.clone();
            tokio::spawn(async move {
                let Ok(conn) = incoming.await else { return };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let Ok(mut srv) = burrow_http3::serve(conn, &Default::default()).await else {
                    return;
                };
                while let Some(Ok(req)) = srv.accept().await {
                    st.requests.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(answer(req, None));
                }
            });
        }
    });
    Ok(Origin { addr, stats })
}

/// Like [`start`]; with `alt_svc_h3`, every response advertises HTTP/3 on that port.
pub async fn start_with(
    versions: Versions,
    tls: Option<Arc<burrow_transport::rustls::ServerConfig>>,
    alt_svc_h3: Option<u16>,
) -> std::io::Result<Origin> {
    start_at([127, 0, 0, 1].into(), versions, tls, alt_svc_h3).await
}

/// Like [`start_with`], on `ip` (any port).
pub async fn start_at(
    ip: std::net::IpAddr,
    versions: Versions,
    tls: Option<Arc<burrow_transport::rustls::ServerConfig>>,
    alt_svc_h3: Option<u16>,
) -> std::io::Result<Origin> {
    let l = TcpListener::bind((ip, 0)).await?;
    let addr = l.local_addr()?;
    let stats = Arc::new(OriginStats::default());
    let st = stats.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            st.connections.fetch_add(1, Ordering::Relaxed);
            let (tls, st) = (tls.clone(), st.clone());
            tokio::spawn(async move {
                let (io, alpn): (BoxStream, _) = match tls {
                    Some(cfg) => match tls::accept(Box::new(s), cfg).await {
                        Ok((t, alpn)) => (Box::new(t), alpn),
                        Err(_) => return,
                    },
                    None => (Box::new(s), None),
                };
                let Ok(mut conn) = serve(versions, io, alpn.as_deref()).await else {
                    return;
                };
                while let Some(Ok(req)) = conn.accept().await {
                    st.requests.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(answer(req, alt_svc_h3));
                }
            });
        }
    });
    Ok(Origin { addr, stats })
}

/// Size of the pieces a generated body is sent in.
const PIECE: usize = 64 * 1024;

/// Streams `n` bytes into a channel body, piece by piece: `piece(offset, len)` makes each.
fn generated_body(
    n: u64,
    known_length: bool,
    piece: impl Fn(u64, usize) -> Bytes + Send + 'static,
) -> Body {
    let (mut tx, body) = Body::channel_with(known_length.then_some(n), 4);
    tokio::spawn(async move {
        let mut off = 0u64;
        while off < n {
            let len = (n - off).min(PIECE as u64) as usize;
            if tx.send_data(piece(off, len)).await.is_err() {
                return;
            }
            off += len as u64;
        }
        tx.finish();
    });
    body
}

/// Streams `n` pattern bytes (each piece computed from its offset).
fn pattern_body(n: u64, known_length: bool) -> Body {
    generated_body(n, known_length, |off, len| Bytes::from(pattern(off, len)))
}

/// Streams `n` bytes cut from one shared block, so serving costs the server no copying.
fn fill_body(n: u64) -> Body {
    static BLOCK: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let block = BLOCK.get_or_init(|| Bytes::from(pattern(0, PIECE))).clone();
    generated_body(n, true, move |_, len| block.slice(..len))
}

async fn answer(sr: ServerRequest, alt_svc_h3: Option<u16>) {
    let (parts, body) = sr.request.into_parts();
    let path = parts.uri.path().to_string();
    let resp = if let Some(n) = path.strip_prefix("/bytes/") {
        let n = n.parse().unwrap_or(0);
        Response::new(pattern_body(n, true))
    } else if let Some(n) = path.strip_prefix("/fill/") {
        Response::new(fill_body(n.parse().unwrap_or(0)))
    } else if let Some(n) = path.strip_prefix("/chunked/") {
        let n = n.parse().unwrap_or(0);
        Response::new(pattern_body(n, false))
    } else if let Some(code) = path.strip_prefix("/status/") {
        let mut r = Response::new(Body::from(format!("status {code}\n")));
        *r.status_mut() = code.parse().unwrap_or(http::StatusCode::BAD_REQUEST);
        r
    } else if path == "/headers" {
        // The request head as text, so clients can see what was sent.
        let mut s = format!("{} {}\n", parts.method, parts.uri);
        for (k, v) in &parts.headers {
            s.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(v.as_bytes())));
        }
        Response::new(Body::from(s))
    } else if path == "/echo" {
        Response::new(body)
    } else {
        Response::new(Body::from(path))
    };
    let mut resp = resp;
    if let Some(port) = alt_svc_h3 {
        if let Ok(v) = http::HeaderValue::from_str(&format!("h3=\":{port}\"; ma=3600")) {
            resp.headers_mut().insert(http::header::ALT_SVC, v);
        }
    }
    let _ = sr.respond.send_response(resp).await;
}
