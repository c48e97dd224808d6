//! Streaming bodies with back-pressure and trailers.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;
use tokio_util::sync::PollSender;

use crate::{Error, ErrorKind, Fault};

/// Frames buffered in a [`Body::channel`] before the sender waits (back-pressure).
pub const DEFAULT_CHANNEL_FRAMES: usize = 4;

type DynBody = Pin<Box<dyn http_body::Body<Data = Bytes, Error = Error> + Send + Sync + 'static>>;

/// A request or response body: empty, a full buffer, a channel fed by another task, or any
/// boxed `http_body::Body`. Frames are `Bytes` data and optional trailers.
pub struct Body {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    Channel {
        rx: mpsc::Receiver<Result<Frame<Bytes>, Error>>,
        done: Arc<AtomicBool>,
        length: Option<u64>,
    },
    Boxed(DynBody),
}

impl Body {
    /// A body with no bytes.
    pub fn empty() -> Body {
        Body { kind: Kind::Empty }
    }

    /// A body of exactly these bytes.
    pub fn full(bytes: impl Into<Bytes>) -> Body {
        let b = bytes.into();
        if b.is_empty() {
            return Body::empty();
        }
        Body {
            kind: Kind::Full(Some(b)),
        }
    }

    /// A body fed through a [`BodySender`]. `length`, when known, is reported as an exact size
    /// hint (and becomes `Content-Length` on HTTP/1.1). At most `frames` frames wait in the
    /// channel before [`BodySender::send_data`] waits for the reader.
    pub fn channel_with(length: Option<u64>, frames: usize) -> (BodySender, Body) {
        let (tx, rx) = mpsc::channel(frames.max(1));
        let done = Arc::new(AtomicBool::new(false));
        (
            BodySender {
                tx: PollSender::new(tx),
                reserved: false,
                done: done.clone(),
            },
            Body {
                kind: Kind::Channel { rx, done, length },
            },
        )
    }

    /// A body fed through a [`BodySender`], of unknown length.
    pub fn channel() -> (BodySender, Body) {
        Body::channel_with(None, DEFAULT_CHANNEL_FRAMES)
    }

    /// A copy of this body if it can be sent again (empty or full bodies), for retries.
    pub fn try_clone(&self) -> Option<Body> {
        match &self.kind {
            Kind::Empty => Some(Body::empty()),
            Kind::Full(Some(b)) => Some(Body::full(b.clone())),
            _ => None,
        }
    }

    /// Wraps any `http_body::Body`.
    pub fn wrap<B>(body: B) -> Body
    where
        B: http_body::Body<Data = Bytes, Error = Error> + Send + Sync + 'static,
    {
        Body {
            kind: Kind::Boxed(Box::pin(body)),
        }
    }

    /// Reads the next frame.
    pub async fn frame(&mut self) -> Option<Result<Frame<Bytes>, Error>> {
        std::future::poll_fn(|cx| http_body::Body::poll_frame(Pin::new(&mut *self), cx)).await
    }

    /// Reads the next data chunk, skipping trailers (see [`Body::frame`] to get them).
    pub async fn chunk(&mut self) -> Option<Result<Bytes, Error>> {
        loop {
            match self.frame().await? {
                Ok(f) => match f.into_data() {
                    Ok(d) if d.is_empty() => continue,
                    Ok(d) => return Some(Ok(d)),
                    Err(_) => continue,
                },
                Err(e) => return Some(Err(e)),
            }
        }
    }

    /// Reads the whole body into memory, failing with [`ErrorKind::LimitExceeded`] past `limit` bytes.
    pub async fn collect(mut self, limit: usize) -> Result<Collected, Error> {
        let mut data = BytesMut::new();
        let mut trailers = None;
        while let Some(f) = self.frame().await {
            let f = f?;
            match f.into_data() {
                Ok(d) => {
                    if data.len() + d.len() > limit {
                        return Err(Error::limit_exceeded(format!(
                            "body larger than {limit} bytes"
                        )));
                    }
                    data.extend_from_slice(&d);
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        trailers = Some(t);
                    }
                }
            }
        }
        Ok(Collected {
            data: data.freeze(),
            trailers,
        })
    }
}

impl Default for Body {
    fn default() -> Self {
        Body::empty()
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let k = match &self.kind {
            Kind::Empty => "Empty",
            Kind::Full(_) => "Full",
            Kind::Channel { .. } => "Channel",
            Kind::Boxed(_) => "Boxed",
        };
        f.debug_tuple("Body").field(&k).finish()
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        match &mut self.get_mut().kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::Channel { rx, done, .. } => match rx.poll_recv(cx) {
                Poll::Ready(Some(f)) => Poll::Ready(Some(f)),
                Poll::Ready(None) if done.load(Ordering::Acquire) => Poll::Ready(None),
                Poll::Ready(None) => {
                    // Mark so we report the truncation once, then end.
                    done.store(true, Ordering::Release);
                    Poll::Ready(Some(Err(Error::closed(
                        "body ended before it was complete",
                    ))))
                }
                Poll::Pending => Poll::Pending,
            },
            Kind::Boxed(b) => b.as_mut().poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::Channel { length, .. } => *length == Some(0),
            Kind::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Channel {
                length: Some(n), ..
            } => SizeHint::with_exact(*n),
            Kind::Channel { .. } => SizeHint::default(),
            Kind::Boxed(b) => b.size_hint(),
        }
    }
}

impl From<Bytes> for Body {
    fn from(b: Bytes) -> Self {
        Body::full(b)
    }
}

impl From<Vec<u8>> for Body {
    fn from(b: Vec<u8>) -> Self {
        Body::full(b)
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Body::full(s)
    }
}

impl From<&'static str> for Body {
    fn from(s: &'static str) -> Self {
        Body::full(Bytes::from_static(s.as_bytes()))
    }
}

impl From<&'static [u8]> for Body {
    fn from(s: &'static [u8]) -> Self {
        Body::full(Bytes::from_static(s))
    }
}

/// A body read to its end.
#[derive(Debug, Clone)]
pub struct Collected {
    /// All data bytes.
    pub data: Bytes,
    /// Trailers, if the sender sent any.
    pub trailers: Option<HeaderMap>,
}

/// The sending half of [`Body::channel`]. Dropping it without [`finish`](Self::finish) or
/// [`send_trailers`](Self::send_trailers) makes the reader see an error, so truncation is
/// never mistaken for a complete body.
pub struct BodySender {
    tx: PollSender<Result<Frame<Bytes>, Error>>,
    /// Whether `poll_ready` reserved room that no frame has used yet.
    reserved: bool,
    done: Arc<AtomicBool>,
}

impl std::fmt::Debug for BodySender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BodySender").finish_non_exhaustive()
    }
}

impl BodySender {
    /// Sends a data chunk, waiting while the channel is full.
    pub async fn send_data(&mut self, data: Bytes) -> Result<(), Error> {
        self.ready().await?;
        self.send_now(data)
    }

    /// Waits until the reader has room for another frame (or is gone).
    pub async fn ready(&mut self) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await
    }

    /// Whether the reader has room for another frame; when it has not, `cx` is woken once
    /// it has. After `Ready(Ok)`, one frame may be sent with the `*_now` calls.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let r = ready!(self.tx.poll_reserve(cx)).map_err(|_| receiver_gone());
        self.reserved = r.is_ok();
        Poll::Ready(r)
    }

    /// Puts a frame into the reserved room, or into free room without a reservation.
    fn put(&mut self, frame: Result<Frame<Bytes>, Error>) -> Result<(), Error> {
        if std::mem::take(&mut self.reserved) {
            return self.tx.send_item(frame).map_err(|_| receiver_gone());
        }
        match self.tx.get_ref().map(|s| s.try_send(frame)) {
            Some(Ok(())) => Ok(()),
            Some(Err(mpsc::error::TrySendError::Full(_))) => Err(Error::local(
                ErrorKind::InvalidInput,
                "body frame sent without room (poll_ready first)",
            )),
            _ => Err(receiver_gone()),
        }
    }

    /// Sends a data chunk into the room [`poll_ready`](Self::poll_ready) made.
    pub fn send_now(&mut self, data: Bytes) -> Result<(), Error> {
        self.put(Ok(Frame::data(data)))
    }

    /// Sends trailers into the room [`poll_ready`](Self::poll_ready) made, ending the body.
    pub fn trailers_now(mut self, trailers: HeaderMap) -> Result<(), Error> {
        self.done.store(true, Ordering::Release);
        self.put(Ok(Frame::trailers(trailers)))
    }

    /// Ends the body with an error into the room [`poll_ready`](Self::poll_ready) made;
    /// without room the reader still sees the body end early (an error too).
    pub fn abort_now(mut self, err: Error) {
        let _ = self.put(Err(err));
        self.done.store(true, Ordering::Release);
    }

    /// Sends trailers and ends the body.
    pub async fn send_trailers(mut self, trailers: HeaderMap) -> Result<(), Error> {
        self.ready().await?;
        self.trailers_now(trailers)
    }

    /// Ends the body successfully.
    pub fn finish(self) {
        self.done.store(true, Ordering::Release);
    }

    /// Ends the body with an error the reader will see.
    pub async fn abort(mut self, err: Error) {
        if self.ready().await.is_ok() {
            self.abort_now(err);
        }
    }

    /// Whether the reading side has gone away.
    pub fn is_closed(&self) -> bool {
        self.tx.get_ref().is_none_or(|s| s.is_closed())
    }
}

fn receiver_gone() -> Error {
    Error::local(ErrorKind::Cancelled, "body receiver dropped").with_fault(Fault::Local)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    #[tokio::test]
    async fn full_body_reports_exact_size() {
        let b = Body::from("hello");
        assert_eq!(b.size_hint().exact(), Some(5));
        let c = b.collect(100).await.unwrap();
        assert_eq!(&c.data[..], b"hello");
        assert!(Body::empty().is_end_stream());
    }

    #[tokio::test]
    async fn channel_carries_data_and_trailers() {
        let (mut tx, body) = Body::channel();
        tokio::spawn(async move {
            tx.send_data(Bytes::from_static(b"ab")).await.unwrap();
            tx.send_data(Bytes::from_static(b"cd")).await.unwrap();
            let mut t = HeaderMap::new();
            t.insert("x-sum", "42".parse().unwrap());
            tx.send_trailers(t).await.unwrap();
        });
        let c = body.collect(100).await.unwrap();
        assert_eq!(&c.data[..], b"abcd");
        assert_eq!(c.trailers.unwrap()["x-sum"], "42");
    }

    #[tokio::test]
    async fn dropped_sender_is_an_error_not_a_short_body() {
        let (mut tx, body) = Body::channel();
        tx.send_data(Bytes::from_static(b"ab")).await.unwrap();
        drop(tx);
        let e = body.collect(100).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Closed);
    }

    #[tokio::test]
    async fn channel_applies_back_pressure() {
        let (mut tx, _body) = Body::channel_with(None, 2);
        tx.send_data(Bytes::from_static(b"1")).await.unwrap();
        tx.send_data(Bytes::from_static(b"2")).await.unwrap();
        let third = tokio::time::timeout(
            std::time::Duration::from_millis(50),
            tx.send_data(Bytes::from_static(b"3")),
        )
        .await;
        assert!(third.is_err(), "third frame must wait for the reader");
    }

    #[tokio::test]
    async fn collect_enforces_limit() {
        let e = Body::from(vec![0u8; 11]).collect(10).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
    }
}
