//! [`CapsuleStream`]: a CONNECT-TCP tunnel stream as a plain byte stream. It moves bytes
//! between the caller and the [`TcpCapsuleDecoder`] / capsule encoder; every rule is in the
//! codec.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{encode_data_header, final_data, Codepoints, TcpCapsuleDecoder, TcpEvent};
use super::{MAX_DATA_CAPSULE, MAX_HEADER};

/// Room made in the read buffer before a read of capsule headers or small capsules.
pub const READ_ROOM: usize = 16 * 1024;

/// How long a tunnel whose two directions have ended waits for the peer to end the request
/// stream too, before it lets go (a stream dropped before the peer's end would be reset,
/// and a reset can discard what the peer has not read yet).
pub const FIN_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// When the stream under a CONNECT-TCP tunnel is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseInner {
    /// HTTP/2 and HTTP/3: the request stream is ended (END_STREAM, a QUIC FIN) once both
    /// directions have ended, FINAL_DATA sent and received, as a TCP connection closes
    /// only then; a shutdown before that only sends FINAL_DATA.
    WhenBothEnded,
    /// HTTP/1.1: the connection cannot be half-closed without ending it, so shutting down
    /// only sends FINAL_DATA; the connection closes when the tunnel is dropped.
    OnDrop,
}

/// A CONNECT-TCP tunnel as a byte stream: what is written goes out as DATA capsules (a
/// shutdown sends FINAL_DATA), what is read is the payload of the peer's DATA and
/// FINAL_DATA capsules, with other capsules skipped. The end of the peer's direction reads
/// as an end of stream only after its FINAL_DATA; a stream that ends without one reads as
/// `ConnectionReset` (the TCP connection behind it was reset).
///
/// At most one capsule ([`MAX_DATA_CAPSULE`] of payload) waits to be written: a write
/// returns `Pending` until the one before it has gone to the stream below.
pub struct CapsuleStream<S> {
    inner: S,
    dec: TcpCapsuleDecoder,
    codepoints: Codepoints,
    /// Payload decoded but not yet read.
    pending: Bytes,
    /// Encoded capsules not yet written.
    out: BytesMut,
    sent_final: bool,
    close: CloseInner,
    inner_shut: bool,
    /// The peer ended the stream below (or we stopped waiting for it).
    inner_eof: bool,
    linger: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> std::fmt::Debug for CapsuleStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CapsuleStream")
            .field("codepoints", &self.codepoints)
            .field("unwritten", &self.out.len())
            .field("sent_final", &self.sent_final)
            .field("peer_finished", &self.dec.is_finished())
            .finish_non_exhaustive()
    }
}

impl<S> CapsuleStream<S> {
    /// Wraps a tunnel's stream (after its 2xx or 101) with these capsule types.
    pub fn new(inner: S, codepoints: Codepoints, close: CloseInner) -> Self {
        CapsuleStream {
            inner,
            dec: TcpCapsuleDecoder::new(codepoints),
            codepoints,
            pending: Bytes::new(),
            out: BytesMut::new(),
            sent_final: false,
            close,
            inner_shut: false,
            inner_eof: false,
            linger: None,
        }
    }

    /// Whether the peer's FINAL_DATA has been read.
    pub fn peer_finished(&self) -> bool {
        self.dec.is_finished()
    }

    /// The stream below.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

fn reset(e: super::TcpCapsuleError) -> io::Error {
    let kind = match e {
        super::TcpCapsuleError::Reset => io::ErrorKind::ConnectionReset,
        super::TcpCapsuleError::AfterFinal => io::ErrorKind::InvalidData,
    };
    io::Error::new(kind, crate::Error::from(e))
}

impl<S: AsyncRead + AsyncWrite + Unpin> CapsuleStream<S> {
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.out.is_empty() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out.advance(n);
        }
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> CapsuleStream<S> {
    /// Ends the stream below once both directions have ended (for
    /// [`CloseInner::WhenBothEnded`]), then waits up to [`FIN_LINGER`] for the peer to
    /// end it too, reading (and skipping) what comes meanwhile.
    fn poll_close_if_done(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let done = self.sent_final && self.dec.is_finished();
        if self.close != CloseInner::WhenBothEnded || !done {
            return Poll::Ready(Ok(()));
        }
        if !self.inner_shut {
            ready!(self.poll_drain(cx))?;
            ready!(Pin::new(&mut self.inner).poll_shutdown(cx))?;
            self.inner_shut = true;
        }
        let linger = self
            .linger
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(FIN_LINGER)));
        while !self.inner_eof {
            if linger.as_mut().poll(cx).is_ready() {
                self.inner_eof = true;
                break;
            }
            let rbuf = self.dec.read_buffer();
            rbuf.clear();
            rbuf.reserve(MAX_HEADER);
            match ready!(tokio_util::io::poll_read_buf(
                Pin::new(&mut self.inner),
                cx,
                self.dec.read_buffer()
            )) {
                Ok(0) | Err(_) => self.inner_eof = true,
                Ok(_) => {}
            }
        }
        self.dec.read_buffer().clear();
        self.linger = None;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for CapsuleStream<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                return Poll::Ready(Ok(()));
            }
            match this.dec.poll() {
                Ok(Some(TcpEvent::Data(b))) => {
                    this.pending = b;
                    continue;
                }
                Ok(Some(TcpEvent::Fin)) => return this.poll_close_if_done(cx),
                Ok(None) if this.dec.is_finished() => return this.poll_close_if_done(cx),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(reset(e))),
            }
            if buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            // A large capsule's payload goes straight into the caller's buffer.
            if let Some(room) = this.dec.direct_room() {
                let want = usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(buf.remaining());
                let dst = buf.initialize_unfilled_to(want);
                let mut rb = ReadBuf::new(dst);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                let n = rb.filled().len();
                if n == 0 {
                    return Poll::Ready(Err(reset(
                        this.dec
                            .finish()
                            .err()
                            .unwrap_or(super::TcpCapsuleError::Reset),
                    )));
                }
                this.dec.direct(n);
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            let rbuf = this.dec.read_buffer();
            if rbuf.capacity() - rbuf.len() < MAX_HEADER {
                rbuf.reserve(READ_ROOM);
            }
            let read = tokio_util::io::poll_read_buf(
                Pin::new(&mut this.inner),
                cx,
                this.dec.read_buffer(),
            );
            if read.is_pending() && this.dec.read_buffer().is_empty() {
                // Nothing waits: an idle tunnel keeps no read buffer either.
                *this.dec.read_buffer() = BytesMut::new();
            }
            let n = ready!(read)?;
            if n == 0 {
                // The end of the stream is clean only right after FINAL_DATA.
                return match this.dec.finish() {
                    Ok(()) => Poll::Ready(Ok(())),
                    Err(e) => Poll::Ready(Err(reset(e))),
                };
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for CapsuleStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.sent_final {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connect-tcp: write after FINAL_DATA",
            )));
        }
        ready!(this.poll_drain(cx))?;
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let n = buf.len().min(MAX_DATA_CAPSULE);
        this.out.reserve(MAX_HEADER + n);
        encode_data_header(this.codepoints, n, false, &mut this.out);
        this.out.extend_from_slice(&buf[..n]);
        // Start it on its way; what does not go now goes on the next write or flush.
        if let Poll::Ready(Err(e)) = this.poll_drain(cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        // Nothing waits: an idle tunnel keeps no write buffer.
        if this.out.capacity() > READ_ROOM {
            this.out = BytesMut::new();
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.sent_final {
            ready!(this.poll_drain(cx))?;
            this.out.extend_from_slice(&final_data(this.codepoints));
            this.sent_final = true;
        }
        ready!(this.poll_drain(cx))?;
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        this.poll_close_if_done(cx)
    }
}
