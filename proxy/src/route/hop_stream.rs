//! Tunnel streams that say which hop they go through: an I/O error on a tunnel becomes a
//! burrow [`Error`] naming the hop (unless a nearer hop already named itself), so a killed
//! proxy is reported as that proxy, not as the origin's HTTP/2 that happened to read.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_transport::{BoxStream, Error, Hop};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A tunnel's byte stream, tagged with its hop.
pub struct HopStream {
    inner: BoxStream,
    hop: Hop,
}

impl HopStream {
    /// Tags `inner` with `hop`.
    pub fn new(inner: BoxStream, hop: Hop) -> Self {
        HopStream { inner, hop }
    }

    fn tag(&self, e: io::Error) -> io::Error {
        io::Error::from(Error::from_io("the tunnel broke", e).at_hop(self.hop.clone()))
    }
}

impl AsyncRead for HopStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.tag(e))),
            other => other,
        }
    }
}

impl AsyncWrite for HopStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.tag(e))),
            other => other,
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.tag(e))),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.tag(e))),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.tag(e))),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_transport::ErrorKind;
    use tokio::io::AsyncReadExt;

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
        let mut s = HopStream::new(Box::new(Broken), hop(0));
        let e = s.read(&mut [0u8; 4]).await.unwrap_err();
        let e = Error::from_io("reading", e);
        assert_eq!(e.kind(), ErrorKind::Closed);
        assert_eq!(e.hop(), Some(&hop(0)));
        // A tunnel through hop 1 carried over hop 0's broken tunnel: hop 0 is named.
        let mut outer = HopStream::new(Box::new(HopStream::new(Box::new(Broken), hop(0))), hop(1));
        let e = Error::from_io("reading", outer.read(&mut [0u8; 4]).await.unwrap_err());
        assert_eq!(e.hop(), Some(&hop(0)));
        assert!(e.to_string().starts_with("hop 1 (h3 proxy p0:443)"), "{e}");
    }
}
