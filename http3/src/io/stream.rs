//! Bodies and tunnels over HTTP/3 request streams: DATA frames in, DATA frames out.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use burrow_http_core::{Body, BodySender};
use burrow_transport::{Error, ErrorKind};
use bytes::{Buf, Bytes};
use quinn::{RecvStream, SendStream, VarInt};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::proto::error::{Code, H3Error};
use crate::proto::stream::{MessageEvent, MessageReader};
use crate::proto::{data_header, headers::trailer_fields, headers_frame};

/// Largest DATA frame burrow writes.
pub const MAX_DATA_FRAME: usize = 64 * 1024;

pub(crate) fn code(c: Code) -> VarInt {
    VarInt::from_u64(c.0).unwrap_or(VarInt::from_u32(0x102))
}

pub(crate) fn read_error(e: quinn::ReadError, what: &'static str) -> Error {
    match e {
        quinn::ReadError::Reset(c) => {
            let c = c.into_inner();
            let kind = match Code(c) {
                Code::REQUEST_REJECTED => ErrorKind::NotProcessed,
                Code::REQUEST_CANCELLED => ErrorKind::Cancelled,
                _ => ErrorKind::Protocol,
            };
            Error::peer(
                kind,
                format!(
                    "HTTP/3: {what}: stream reset with {} (0x{c:x})",
                    Code(c).rfc_name()
                ),
            )
            .with_code(Code(c))
        }
        quinn::ReadError::ConnectionLost(c) => super::conn::conn_error(c, what),
        other => Error::peer(ErrorKind::Io, format!("HTTP/3: {what}")).with_source(other),
    }
}

/// Reads the next message event, reading from `recv` as needed. Stream errors reset it.
pub(crate) async fn next_event(
    reader: &mut MessageReader,
    recv: &mut RecvStream,
    what: &'static str,
) -> Result<MessageEvent, Error> {
    loop {
        match reader.poll_event() {
            Ok(Some(e)) => return Ok(e),
            Ok(None) => {}
            Err(e) => {
                let _ = recv.stop(code(e.code));
                return Err(e.into());
            }
        }
        let deadline = reader.poll_timeout();
        let late = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = recv.read_chunk(usize::MAX, true) => match r {
                Ok(Some(c)) => reader.push(c.bytes),
                Ok(None) => reader.finish(),
                Err(e) => return Err(read_error(e, what)),
            },
            _ = late => reader.handle_timeout(burrow_http_core::driver::now()),
        }
    }
}

/// Streams the rest of a message into a [`Body`] (a task per body).
pub(crate) fn body(mut reader: MessageReader, mut recv: RecvStream, length: Option<u64>) -> Body {
    let (tx, body) = Body::channel_with(length, burrow_http_core::DEFAULT_CHANNEL_FRAMES);
    tokio::spawn(async move { pump_in(&mut reader, &mut recv, tx).await });
    body
}

async fn pump_in(reader: &mut MessageReader, recv: &mut RecvStream, mut tx: BodySender) {
    loop {
        match next_event(reader, recv, "receiving a body").await {
            Ok(MessageEvent::Data(d)) => {
                if tx.send_data(d).await.is_err() {
                    let _ = recv.stop(code(Code::REQUEST_CANCELLED));
                    return;
                }
            }
            Ok(MessageEvent::Trailers(t)) => {
                let _ = tx.send_trailers(t).await;
                return;
            }
            Ok(MessageEvent::End) => return tx.finish(),
            Ok(_) => {
                tx.abort(H3Error::new(Code::FRAME_UNEXPECTED, "second head").into())
                    .await;
                return;
            }
            Err(e) => return tx.abort(e).await,
        }
    }
}

fn write_error(e: quinn::WriteError) -> Error {
    match e {
        quinn::WriteError::Stopped(c) => Error::local(
            ErrorKind::Cancelled,
            format!(
                "HTTP/3: peer stopped reading ({})",
                Code(c.into_inner()).rfc_name()
            ),
        )
        .with_code(Code(c.into_inner())),
        quinn::WriteError::ConnectionLost(c) => super::conn::conn_error(c, "sending"),
        other => Error::peer(ErrorKind::Io, "HTTP/3: sending").with_source(other),
    }
}

/// Writes `body` as DATA frames (and trailers as HEADERS), then finishes the stream.
pub(crate) async fn write_body(send: &mut SendStream, mut body: Body) -> Result<(), Error> {
    loop {
        match body.frame().await {
            Some(Ok(f)) => match f.into_data() {
                Ok(mut d) => {
                    while !d.is_empty() {
                        let piece = d.split_to(d.len().min(MAX_DATA_FRAME * 4));
                        let mut chunks = [data_header(piece.len()), piece];
                        send.write_all_chunks(&mut chunks)
                            .await
                            .map_err(write_error)?;
                    }
                }
                Err(f) => {
                    if let Ok(t) = f.into_trailers() {
                        let frame = headers_frame(&trailer_fields(t));
                        send.write_all(&frame).await.map_err(write_error)?;
                    }
                }
            },
            None => break,
            Some(Err(e)) => {
                let _ = send.reset(code(Code::REQUEST_CANCELLED));
                return Err(e);
            }
        }
    }
    let _ = send.finish();
    Ok(())
}

/// A request stream as a byte stream: reads return DATA payloads, writes become DATA frames.
/// The tunnel of a CONNECT, and the capsule stream of a CONNECT-UDP.
pub struct H3Stream {
    reader: MessageReader,
    recv: RecvStream,
    send: SendStream,
    rbuf: Bytes,
    scratch: Vec<u8>,
    read_eof: bool,
    wbuf: Bytes,
    finished: bool,
}

impl H3Stream {
    pub(crate) fn new(reader: MessageReader, recv: RecvStream, send: SendStream) -> Self {
        H3Stream {
            reader,
            recv,
            send,
            rbuf: Bytes::new(),
            scratch: vec![0; 64 * 1024],
            read_eof: false,
            wbuf: Bytes::new(),
            finished: false,
        }
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.wbuf.is_empty() {
            let n = ready!(Pin::new(&mut self.send).poll_write(cx, &self.wbuf))?;
            self.wbuf.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncRead for H3Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.rbuf.is_empty() {
                let n = this.rbuf.len().min(out.remaining());
                out.put_slice(&this.rbuf[..n]);
                this.rbuf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            match this.reader.poll_event() {
                Ok(Some(MessageEvent::Data(d))) => this.rbuf = d,
                Ok(Some(MessageEvent::End)) => this.read_eof = true,
                Ok(Some(_)) => {}
                Ok(None) => {
                    let mut rb = ReadBuf::new(&mut this.scratch);
                    ready!(this.recv.poll_read_buf(cx, &mut rb))
                        .map_err(|e| io::Error::from(read_error(e, "reading a tunnel")))?;
                    if rb.filled().is_empty() {
                        this.reader.finish();
                    } else {
                        let b = Bytes::copy_from_slice(rb.filled());
                        this.reader.push(b);
                    }
                }
                Err(e) => {
                    let _ = this.recv.stop(code(e.code));
                    return Poll::Ready(Err(io::Error::from(Error::from(e))));
                }
            }
        }
    }
}

impl AsyncWrite for H3Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_DATA_FRAME);
        let mut framed = data_header(n).to_vec();
        framed.extend_from_slice(&buf[..n]);
        this.wbuf = Bytes::from(framed);
        // The frame is accepted now; it drains on the next write, flush or shutdown.
        let _ = this.poll_drain(cx)?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        if !self.finished {
            self.finished = true;
            let _ = self.send.finish();
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H3Stream {
    fn drop(&mut self) {
        // Abandoned: the stream is a TCP connection's stand-in, so this is its reset
        // (RFC 9114 §4.4).
        if !self.finished {
            let _ = self.send.reset(code(Code::CONNECT_ERROR));
        }
        if !self.read_eof {
            let _ = self.recv.stop(code(Code::CONNECT_ERROR));
        }
    }
}
