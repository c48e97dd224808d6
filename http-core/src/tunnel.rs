//! Tunnels: what a successful CONNECT (or Upgrade, or extended CONNECT) turns into.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_transport::{BoxStream, Target};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What to ask the peer for: a classic CONNECT to a target, or an extended CONNECT (RFC
/// 8441 / RFC 9220; on HTTP/1.1 an Upgrade) for a protocol such as `connect-udp`. The
/// [`handshake`](crate::handshake) core turns it into each version's request and judges
/// the answer.
#[derive(Clone, Debug)]
pub enum TunnelRequest {
    /// Classic CONNECT (RFC 9110 §9.3.6): the stream becomes a byte tunnel to `target`.
    Connect {
        /// Where the tunnel goes.
        target: Target,
        /// Extra request headers (e.g. `Proxy-Authorization`).
        headers: HeaderMap,
    },
    /// Extended CONNECT: `protocol` spoken with the resource at `path` of `authority`.
    Extended {
        /// `:protocol` (or the HTTP/1.1 `Upgrade` token), e.g. `connect-udp`.
        protocol: String,
        /// `:scheme`: `https` (`false`: `http`).
        secure: bool,
        /// The proxy's own authority.
        authority: Target,
        /// `:path`, e.g. an expanded CONNECT-UDP URI template.
        path: String,
        /// Extra request headers (e.g. `Capsule-Protocol`).
        headers: HeaderMap,
    },
}

impl TunnelRequest {
    /// A classic CONNECT to `target`.
    pub fn connect(target: Target) -> Self {
        TunnelRequest::Connect {
            target,
            headers: HeaderMap::new(),
        }
    }

    /// An extended CONNECT for `protocol` at `path` of `authority`, over `https`.
    pub fn extended(
        protocol: impl Into<String>,
        authority: Target,
        path: impl Into<String>,
    ) -> Self {
        TunnelRequest::Extended {
            protocol: protocol.into(),
            secure: true,
            authority,
            path: path.into(),
            headers: HeaderMap::new(),
        }
    }

    /// The same request, with `:scheme` `http` when `secure` is false.
    pub fn with_secure(mut self, on: bool) -> Self {
        if let TunnelRequest::Extended { secure, .. } = &mut self {
            *secure = on;
        }
        self
    }

    /// The authority the request names (the target, or the proxy for extended CONNECT).
    pub fn authority(&self) -> &Target {
        match self {
            TunnelRequest::Connect { target, .. } => target,
            TunnelRequest::Extended { authority, .. } => authority,
        }
    }

    /// The extended CONNECT protocol, if it is one.
    pub fn protocol(&self) -> Option<&str> {
        match self {
            TunnelRequest::Connect { .. } => None,
            TunnelRequest::Extended { protocol, .. } => Some(protocol),
        }
    }

    /// The extra request headers.
    pub fn headers(&self) -> &HeaderMap {
        match self {
            TunnelRequest::Connect { headers, .. } | TunnelRequest::Extended { headers, .. } => {
                headers
            }
        }
    }

    /// The extra request headers, to add to.
    pub fn headers_mut(&mut self) -> &mut HeaderMap {
        match self {
            TunnelRequest::Connect { headers, .. } | TunnelRequest::Extended { headers, .. } => {
                headers
            }
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
    /// Receives one HTTP Datagram payload as it arrived, without copying it where the
    /// channel holds it as [`Bytes`] already (the default copies through
    /// [`poll_recv`](Self::poll_recv)).
    fn poll_recv_bytes(&self, cx: &mut Context<'_>) -> Poll<io::Result<Bytes>> {
        let mut buf = vec![0u8; u16::MAX as usize];
        let n = std::task::ready!(self.poll_recv(cx, &mut buf))?;
        buf.truncate(n);
        Poll::Ready(Ok(buf.into()))
    }
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

    /// A channel that only copies into buffers: the default `poll_recv_bytes` gives each
    /// datagram whole, the largest one an HTTP Datagram can be included.
    #[test]
    fn received_bytes_by_default_are_the_copied_datagram() {
        struct Copying(std::sync::Mutex<Vec<Vec<u8>>>);
        impl TunnelDatagrams for Copying {
            fn poll_send(&self, _: &mut Context<'_>, _: &[u8]) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_recv(&self, _: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
                let d = self.0.lock().unwrap().remove(0);
                buf[..d.len()].copy_from_slice(&d);
                Poll::Ready(Ok(d.len()))
            }
            fn max_payload(&self) -> usize {
                1200
            }
        }
        let c = Copying(std::sync::Mutex::new(vec![
            b"\0abc".to_vec(),
            vec![7u8; 65_535],
        ]));
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let Poll::Ready(Ok(b)) = c.poll_recv_bytes(&mut cx) else {
            panic!()
        };
        assert_eq!(&b[..], b"\0abc");
        let Poll::Ready(Ok(b)) = c.poll_recv_bytes(&mut cx) else {
            panic!()
        };
        assert_eq!(b.len(), 65_535);
    }
}
