//! The `ByteStream` seam: an ordered, reliable byte stream, and what we know about it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Buf, Bytes};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An ordered, reliable byte stream: a TCP socket, TLS over any `ByteStream`, an HTTP/1.1
/// CONNECT tunnel, an HTTP/2 or HTTP/3 CONNECT stream, a SOCKS CONNECT.
pub trait ByteStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> ByteStream for T {}

/// A type-erased [`ByteStream`].
pub type BoxStream = Box<dyn ByteStream>;

/// What a connector learnt while establishing a stream.
#[derive(Clone, Debug, Default)]
pub struct StreamInfo {
    /// The address of the directly connected socket peer (the nearest hop).
    pub peer_addr: Option<SocketAddr>,
    /// The ALPN protocol negotiated by the outermost TLS layer, if any.
    pub alpn: Option<Vec<u8>>,
    /// Layers of the stream, outermost first, e.g. `["tls", "CONNECT@h1 proxy:3128", "tcp"]`.
    pub layers: Vec<String>,
    /// The local address of the socket under the stream, when known.
    pub local_addr: Option<SocketAddr>,
    /// When the steps of establishing the socket under the stream ended.
    pub timings: ConnectTimings,
    /// Arms an abortive close (a TCP RST) of the one TCP connection this stream is
    /// carried on alone: a TCP socket, TLS over one, an HTTP/1.1 CONNECT or a SOCKS tunnel
    /// over one. `None` when the stream shares its connection (an HTTP/2 or HTTP/3 stream,
    /// whose reset is the stream's own) or the connector gave none. A proxy arms it when
    /// the tunnel it relays the stream into fails, so the far end does not take a cut-off
    /// transfer for a complete one.
    pub abort: Option<crate::tcp::Abort>,
}

/// When the steps of establishing a connection ended (curl's `time_namelookup`,
/// `time_connect`, `time_appconnect`). Each is `None` when that step did not happen (no
/// lookup for an IP literal, no TLS over cleartext) or the layer did not report it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectTimings {
    /// When connecting began.
    pub started: Option<Instant>,
    /// When the nearest hop's name was resolved.
    pub resolved: Option<Instant>,
    /// When the socket to the nearest hop was connected.
    pub connected: Option<Instant>,
    /// When the whole route (every tunnel) was open.
    pub routed: Option<Instant>,
    /// When the TLS (or QUIC) handshake with the origin ended.
    pub secured: Option<Instant>,
}

impl StreamInfo {
    /// Renders the layers as `a > b > c`.
    pub fn route(&self) -> String {
        self.layers.join(" > ")
    }
}

/// An established byte stream with what is known about it.
pub struct Connected {
    /// The stream.
    pub stream: BoxStream,
    /// What was learnt while connecting.
    pub info: StreamInfo,
}

impl std::fmt::Debug for Connected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connected")
            .field("info", &self.info)
            .finish()
    }
}

/// A stream that first yields bytes already read past a handshake (e.g. past a CONNECT
/// response head), then reads from the inner stream. Writes go straight to the inner stream.
#[derive(Debug)]
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// Wraps `inner`, yielding `prefix` first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }

    /// The inner stream and any prefix bytes not yet read.
    pub fn into_parts(self) -> (Bytes, S) {
        (self.prefix, self.inner)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A stream whose I/O errors pass through a function on the way out (to name the hop a
/// tunnel goes through, to keep the first error a connection's transport had).
pub struct MapIoErr<S, F> {
    inner: S,
    map: F,
}

impl<S, F: Fn(io::Error) -> io::Error> MapIoErr<S, F> {
    /// Wraps `inner`, passing its errors through `map`.
    pub fn new(inner: S, map: F) -> Self {
        MapIoErr { inner, map }
    }

    fn lift<T>(&self, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(Err(e)) => Poll::Ready(Err((self.map)(e))),
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin, F: Fn(io::Error) -> io::Error + Unpin> AsyncRead for MapIoErr<S, F> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.lift(r)
    }
}

impl<S: AsyncWrite + Unpin, F: Fn(io::Error) -> io::Error + Unpin> AsyncWrite for MapIoErr<S, F> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.lift(r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.lift(r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.lift(r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.lift(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn prefix_comes_first_then_inner() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(Bytes::from_static(b"head"), a);
        b.write_all(b"tail").await.unwrap();
        drop(b);
        let mut out = Vec::new();
        p.read_to_end(&mut out).await.unwrap();
        assert_eq!(out, b"headtail");
    }

    #[tokio::test]
    async fn small_reads_drain_prefix_in_order() {
        let (a, _b) = tokio::io::duplex(64);
        let mut p = Prefixed::new(Bytes::from_static(b"abcdef"), a);
        let mut two = [0u8; 2];
        p.read_exact(&mut two).await.unwrap();
        assert_eq!(&two, b"ab");
        let (rest, _) = p.into_parts();
        assert_eq!(&rest[..], b"cdef");
    }
}
