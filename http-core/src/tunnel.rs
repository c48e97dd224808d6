//! Tunnels: what a successful CONNECT (or Upgrade, or extended CONNECT) turns into.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_transport::{BoxStream, Target};
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What to ask the peer for: a classic CONNECT to an authority, or an extended CONNECT
/// (RFC 8441 / RFC 9220; on HTTP/1.1 an Upgrade) with a `:protocol` such as `connect-udp`.
#[derive(Clone, Debug)]
pub struct TunnelRequest {
    /// The authority: the target for classic CONNECT, the proxy's own authority otherwise.
    pub authority: Target,
    /// `:protocol` for extended CONNECT (e.g. `connect-udp`); `None` for classic CONNECT.
    pub protocol: Option<String>,
    /// `:path` for extended CONNECT (e.g. the expanded CONNECT-UDP URI template).
    pub path: Option<String>,
    /// `:scheme` for extended CONNECT (`https` or `http`).
    pub scheme: Option<String>,
    /// Extra request headers (e.g. `Proxy-Authorization`, `Capsule-Protocol`).
    pub headers: HeaderMap,
}

impl TunnelRequest {
    /// A classic CONNECT to `target`.
    pub fn connect(target: Target) -> Self {
        TunnelRequest {
            authority: target,
            protocol: None,
            path: None,
            scheme: None,
            headers: HeaderMap::new(),
        }
    }
}

/// Request extension naming the `:protocol` of an extended CONNECT (RFC 8441, RFC 9220) as
/// a server received it (on HTTP/1.1: the `Upgrade` token of a tunnel request).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectProtocol(pub String);

/// The HTTP Datagram channel bound to a tunnel's stream (HTTP/3 only; RFC 9297 §2.1).
pub trait TunnelDatagrams: Send + Sync + 'static {
    /// Sends one HTTP Datagram payload (context id 0 is the caller's to add).
    fn poll_send(&self, cx: &mut Context<'_>, payload: &[u8]) -> Poll<io::Result<()>>;
    /// Receives one HTTP Datagram payload for this stream.
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;
    /// Largest payload that fits one QUIC DATAGRAM frame now.
    fn max_payload(&self) -> usize;
}

/// An established tunnel: a [`ByteStream`](burrow_transport::ByteStream) plus the response
/// head that opened it, and on HTTP/3 the HTTP Datagram channel bound to it. Bytes the peer
/// sent right after the response head are the first bytes read from it.
pub struct Tunnel {
    stream: BoxStream,
    status: StatusCode,
    headers: HeaderMap,
    datagrams: Option<Box<dyn TunnelDatagrams>>,
}

impl Tunnel {
    /// A tunnel over `stream`, opened with the response `status` and `headers`.
    pub fn new(stream: BoxStream, status: StatusCode, headers: HeaderMap) -> Self {
        Tunnel {
            stream,
            status,
            headers,
            datagrams: None,
        }
    }

    /// Attaches an HTTP Datagram channel.
    pub fn with_datagrams(mut self, d: Box<dyn TunnelDatagrams>) -> Self {
        self.datagrams = Some(d);
        self
    }

    /// The status of the response that opened the tunnel (2xx, or 101 for an Upgrade).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers of the response that opened the tunnel.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The HTTP Datagram channel, if the version has one.
    pub fn datagrams(&self) -> Option<&dyn TunnelDatagrams> {
        self.datagrams.as_deref()
    }

    /// Splits into the stream and the datagram channel.
    pub fn into_parts(self) -> (BoxStream, Option<Box<dyn TunnelDatagrams>>) {
        (self.stream, self.datagrams)
    }

    /// The byte stream alone.
    pub fn into_stream(self) -> BoxStream {
        self.stream
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("status", &self.status)
            .field("datagrams", &self.datagrams.is_some())
            .finish()
    }
}

impl AsyncRead for Tunnel {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Tunnel {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The error for a tunnel request answered with a non-success `status`: kind
/// [`ErrorKind::ProxyRefused`](crate::ErrorKind::ProxyRefused), the status as its code, and the
/// `Proxy-Status` header (RFC 9209) as detail. A 407 says that authentication is needed.
pub fn refused(status: StatusCode, headers: &HeaderMap) -> crate::Error {
    let reason = status.canonical_reason().unwrap_or("");
    let mut msg = format!("tunnel answered {} {reason}", status.as_u16());
    if status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
        msg.push_str(" (the proxy needs credentials, or refused the ones given)");
    }
    let mut e = crate::Error::peer(crate::ErrorKind::ProxyRefused, msg).with_code(status);
    if let Some(ps) = headers.get("proxy-status").and_then(|v| v.to_str().ok()) {
        e = e.with_detail(format!("Proxy-Status: {ps}"));
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusal_carries_status_and_proxy_status() {
        let mut h = HeaderMap::new();
        h.insert(
            "proxy-status",
            "burrow; error=destination_ip_prohibited".parse().unwrap(),
        );
        let e = refused(StatusCode::FORBIDDEN, &h);
        assert_eq!(e.kind(), crate::ErrorKind::ProxyRefused);
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            e.detail(),
            Some("Proxy-Status: burrow; error=destination_ip_prohibited")
        );
        let e = refused(StatusCode::PROXY_AUTHENTICATION_REQUIRED, &HeaderMap::new());
        assert!(e.message().contains("credentials"));
    }
}
