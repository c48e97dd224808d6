//! Tunnel streams that say which hop they go through: an I/O error on a tunnel becomes a
//! burrow [`Error`] naming the hop (unless a nearer hop already named itself), so a killed
//! proxy is reported as that proxy, not as the origin's HTTP/2 that happened to read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use burrow_transport::{BoxStream, Error, Hop, MapIoErr};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Tags `inner`'s I/O errors with `hop` (unless a nearer hop already named itself).
pub fn tag(inner: BoxStream, hop: Hop) -> BoxStream {
    Box::new(MapIoErr::new(inner, move |e: io::Error| {
        io::Error::from(Error::from_io("the tunnel broke", e).at_hop(hop.clone()))
    }))
}

/// Counts the bytes through a tunnel and, when it is dropped, records them and how long it
/// was open as a `tunnel closed` event in `span` (the hop's span: no credentials in it).
pub fn counted(inner: BoxStream, span: tracing::Span) -> BoxStream {
    Box::new(Counted {
        inner,
        up: 0,
        down: 0,
        opened: Instant::now(),
        span,
    })
}

struct Counted {
    inner: BoxStream,
    up: u64,
    down: u64,
    opened: Instant,
    span: tracing::Span,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _in = self.span.enter();
        tracing::debug!(
            bytes_up = self.up,
            bytes_down = self.down,
            open_ms = self.opened.elapsed().as_millis() as u64,
            "tunnel closed"
        );
    }
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.down += (buf.filled().len() - before) as u64;
        r
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            self.up += n as u64;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            self.up += n as u64;
        }
        r
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

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_transport::ErrorKind;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

    struct Broken;

    impl AsyncRead for Broken {
        fn poll_read(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
        }
    }

    impl AsyncWrite for Broken {
        fn poll_write(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
            _: &[u8],
        ) -> Poll<io::Result<usize>> {
            Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    fn hop(i: usize) -> Hop {
        Hop {
            index: Some(i),
            label: format!("h3 proxy p{i}:443"),
        }
    }

    #[tokio::test]
    async fn errors_name_the_nearest_hop_that_broke() {
        let mut s = tag(Box::new(Broken), hop(0));
        let e = s.read(&mut [0u8; 4]).await.unwrap_err();
        let e = Error::from_io("reading", e);
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(e.hop(), Some(&hop(0)));
        // A tunnel through hop 1 carried over hop 0's broken tunnel: hop 0 is named.
        let mut outer = tag(tag(Box::new(Broken), hop(0)), hop(1));
        let e = Error::from_io("reading", outer.read(&mut [0u8; 4]).await.unwrap_err());
        assert_eq!(e.hop(), Some(&hop(0)));
        assert!(e.to_string().starts_with("hop 1 (h3 proxy p0:443)"), "{e}");
    }
}
