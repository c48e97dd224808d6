//! An HTTP/2 stream as a byte stream: the tunnel of a CONNECT (RFC 9113 §8.5).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use h2::{RecvStream, SendStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::{from_h2_on, IoSlot};

/// Largest write handed to h2 at once.
const MAX_WRITE: usize = 16 * 1024;

/// The least a write reserves, so that small writes share an allocation.
const WRITE_CHUNK: usize = 16 * 1024;

/// Reads DATA frames and writes DATA frames on one stream. Received bytes are released to
/// the peer's flow-control window as they are read, so a slow reader slows the sender.
pub struct H2Stream {
    send: SendStream<Bytes>,
    recv: RecvStream,
    buf: Bytes,
    /// Where written bytes are copied before h2 takes them: reused while data flows (a
    /// fresh allocation per write costs page faults), let go at each flush.
    wbuf: BytesMut,
    read_eof: bool,
    write_closed: bool,
    _slot: Option<TunnelSlot>,
    io: Option<IoSlot>,
}

impl H2Stream {
    pub(crate) fn new(send: SendStream<Bytes>, recv: RecvStream) -> Self {
        H2Stream {
            send,
            recv,
            buf: Bytes::new(),
            wbuf: BytesMut::new(),
            read_eof: false,
            write_closed: false,
            _slot: None,
            io: None,
        }
    }

    /// Reports the connection's transport error for I/O failures (its hop, in a chain).
    pub(crate) fn with_io_slot(mut self, io: IoSlot) -> Self {
        self.io = Some(io);
        self
    }

    /// Holds `slot` (one of the connection's counted tunnels) until the stream is dropped.
    pub(crate) fn with_slot(mut self, slot: TunnelSlot) -> Self {
        self._slot = Some(slot);
        self
    }
}

/// One tunnel counted on a connection: counted when made, released when dropped.
pub(crate) struct TunnelSlot(Arc<AtomicUsize>);

impl TunnelSlot {
    pub(crate) fn new(count: Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        TunnelSlot(count)
    }
}

impl Drop for TunnelSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn io_err(e: h2::Error, what: &'static str, io: Option<&IoSlot>) -> io::Error {
    io::Error::from(from_h2_on(e, what, io))
}

impl AsyncRead for H2Stream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        while this.buf.is_empty() {
            if this.read_eof {
                return Poll::Ready(Ok(()));
            }
            match ready!(this.recv.poll_data(cx)) {
                Some(Ok(d)) => this.buf = d,
                Some(Err(e)) if e.reason() == Some(h2::Reason::NO_ERROR) => {
                    this.read_eof = true;
                }
                Some(Err(e)) => {
                    return Poll::Ready(Err(io_err(e, "reading a tunnel", this.io.as_ref())))
                }
                None => this.read_eof = true,
            }
        }
        let n = this.buf.len().min(out.remaining());
        out.put_slice(&this.buf[..n]);
        this.buf.advance(n);
        let _ = this.recv.flow_control().release_capacity(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for H2Stream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let this = &mut *self;
        if this.write_closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let want = buf.len().min(MAX_WRITE);
        if this.send.capacity() < want {
            this.send.reserve_capacity(want);
        }
        let n = loop {
            let have = this.send.capacity();
            if have > 0 {
                break have;
            }
            match ready!(this.send.poll_capacity(cx)) {
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    return Poll::Ready(Err(io_err(e, "writing a tunnel", this.io.as_ref())))
                }
                None => return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            }
        };
        let n = n.min(want);
        // Reclaims the last chunk's allocation when h2 has let go of it.
        this.wbuf.reserve(n.max(WRITE_CHUNK));
        this.wbuf.extend_from_slice(&buf[..n]);
        let chunk = this.wbuf.split().freeze();
        this.send
            .send_data(chunk, false)
            .map_err(|e| io_err(e, "writing a tunnel", this.io.as_ref()))?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // h2 writes queued frames as the connection task runs. A writer that flushes has
        // nothing more for now: an idle stream keeps no buffer.
        self.wbuf = BytesMut::new();
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.write_closed {
            this.write_closed = true;
            // END_STREAM: a half-close, as a TCP FIN (RFC 9113 §8.5).
            this.send
                .send_data(Bytes::new(), true)
                .map_err(|e| io_err(e, "closing a tunnel", this.io.as_ref()))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for H2Stream {
    fn drop(&mut self) {
        if !self.write_closed || !self.read_eof {
            // Abandoned: tell the peer, rather than leaving the stream half-open. The
            // stream is a TCP connection's stand-in, so this is its reset (RFC 9113 §8.5).
            self.send.send_reset(h2::Reason::CONNECT_ERROR);
        }
    }
}
