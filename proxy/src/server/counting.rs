//! Counting what flows move: the bodies of forwarded requests (the response's also holds
//! the request's guards and says when it is over) and the byte stream of an intercepted
//! tunnel.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use burrow_http_core::Body;
use burrow_transport::{BoxStream, Error};

use super::run::Guard;

/// Bytes a forwarded request's bodies moved, counted as they go.
#[derive(Default)]
pub(crate) struct Moved {
    pub up: AtomicU64,
    pub down: AtomicU64,
}

/// Which way a counted body goes.
#[derive(Clone, Copy)]
pub(crate) enum Way {
    /// The request's body, from the client.
    Up,
    /// The response's body, to the client.
    Down,
}

/// A body that counts what it gives; it may hold what must live as long as it does (a
/// forwarded response holds its request's guards, and a sender whose drop says the body
/// is over).
pub(crate) struct Counted {
    pub inner: Body,
    pub moved: Arc<Moved>,
    pub way: Way,
    pub _hold: Option<(tokio::sync::oneshot::Sender<()>, Vec<Guard>)>,
}

impl http_body::Body for Counted {
    type Data = bytes::Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<bytes::Bytes>, Error>>> {
        let p = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(f))) = &p {
            if let Some(d) = f.data_ref() {
                let n = match self.way {
                    Way::Up => &self.moved.up,
                    Way::Down => &self.moved.down,
                };
                n.fetch_add(d.len() as u64, Ordering::Relaxed);
            }
        }
        p
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// A byte stream that counts what it moves each way.
pub(crate) struct Counting {
    pub inner: BoxStream,
    pub moved: Arc<Moved>,
}

impl tokio::io::AsyncRead for Counting {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let p = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        self.moved.up.fetch_add(n, Ordering::Relaxed);
        p
    }
}

impl tokio::io::AsyncWrite for Counting {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let p = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &p {
            self.moved.down.fetch_add(*n as u64, Ordering::Relaxed);
        }
        p
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
