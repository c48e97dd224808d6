//! Bodies over h2 streams: receiving with flow-control release as data is consumed, and
//! sending with back-pressure from the peer's window.

use std::pin::Pin;
use std::task::{Context, Poll};

use burrow_http_core::Body;
use burrow_transport::Error;
use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http_body::{Frame, SizeHint};

use crate::error::{from_h2, from_h2_on, IoSlot};

/// A received body. Each data frame handed to the reader releases its bytes back to the
/// peer's window, so a slow reader slows the sender.
pub(crate) struct RecvBody {
    recv: RecvStream,
    length: Option<u64>,
    data_done: bool,
    slot: Option<IoSlot>,
}

impl RecvBody {
    pub(crate) fn new(recv: RecvStream, length: Option<u64>) -> Self {
        RecvBody {
            recv,
            length,
            data_done: false,
            slot: None,
        }
    }

    /// Reports the connection's transport error (recorded in `slot`) for I/O failures.
    pub(crate) fn with_slot(mut self, slot: IoSlot) -> Self {
        self.slot = Some(slot);
        self
    }
}

impl http_body::Body for RecvBody {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        if !this.data_done {
            match this.recv.poll_data(cx) {
                Poll::Ready(Some(Ok(d))) => {
                    let _ = this.recv.flow_control().release_capacity(d.len());
                    return Poll::Ready(Some(Ok(Frame::data(d))));
                }
                Poll::Ready(Some(Err(e))) => {
                    return Poll::Ready(Some(Err(from_h2_on(
                        e,
                        "receiving a body",
                        this.slot.as_ref(),
                    ))))
                }
                Poll::Ready(None) => this.data_done = true,
                Poll::Pending => return Poll::Pending,
            }
        }
        match this.recv.poll_trailers(cx) {
            Poll::Ready(Ok(Some(t))) => Poll::Ready(Some(Ok(Frame::trailers(t)))),
            Poll::Ready(Ok(None)) => Poll::Ready(None),
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(from_h2_on(
                e,
                "receiving trailers",
                this.slot.as_ref(),
            )))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.recv.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match self.length {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}

/// Largest piece handed to h2 at once; it splits it into frames.
const SEND_PIECE: usize = 256 * 1024;

/// Sends `data` on `send`, waiting for window capacity (back-pressure).
pub(crate) async fn send_data(send: &mut SendStream<Bytes>, mut data: Bytes) -> Result<(), Error> {
    while !data.is_empty() {
        send.reserve_capacity(data.len().min(SEND_PIECE));
        let n = match std::future::poll_fn(|cx| send.poll_capacity(cx)).await {
            Some(Ok(n)) => n,
            Some(Err(e)) => return Err(from_h2(e, "sending a body")),
            None => return Err(from_h2(h2::Reason::STREAM_CLOSED.into(), "sending a body")),
        };
        let piece = data.split_to(n.min(data.len()));
        send.send_data(piece, false)
            .map_err(|e| from_h2(e, "sending a body"))?;
    }
    Ok(())
}

/// Streams `body` into `send`, ending the stream (with trailers if the body has them).
/// On a body error the stream is reset with `CANCEL`.
pub(crate) async fn pump(mut send: SendStream<Bytes>, mut body: Body) -> Result<(), Error> {
    loop {
        match body.frame().await {
            Some(Ok(f)) => match f.into_data() {
                Ok(d) => send_data(&mut send, d).await?,
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        return send
                            .send_trailers(burrow_http_core::message::sendable_trailers(t))
                            .map_err(|e| from_h2(e, "sending trailers"));
                    }
                }
            },
            None => {
                return send
                    .send_data(Bytes::new(), true)
                    .map_err(|e| from_h2(e, "ending a body"))
            }
            Some(Err(e)) => {
                send.send_reset(h2::Reason::CANCEL);
                return Err(e);
            }
        }
    }
}
