//! Moving bytes between the core and a split byte stream.

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};

use burrow_transport::{BoxStream, Error};

use crate::proto::Connection;

/// Pieces smaller than this are copied together before a write; larger ones go straight out.
const COALESCE: usize = 16 * 1024;
/// How much room to make in the receive buffer before each read.
const READ_CHUNK: usize = 256 * 1024;

/// Writes everything the core has queued, coalescing small pieces, then flushes.
pub(crate) async fn flush(
    conn: &mut Connection,
    wr: &mut WriteHalf<BoxStream>,
) -> Result<(), Error> {
    let mut small = BytesMut::new();
    while let Some(b) = conn.poll_transmit() {
        if b.len() < COALESCE {
            small.extend_from_slice(&b);
            if small.len() >= COALESCE {
                write(wr, &small.split().freeze()).await?;
            }
        } else {
            if !small.is_empty() {
                write(wr, &small.split().freeze()).await?;
            }
            write(wr, &b).await?;
        }
    }
    if !small.is_empty() {
        write(wr, &small.freeze()).await?;
    }
    wr.flush()
        .await
        .map_err(|e| Error::from_io("HTTP/1.1: writing to the connection", e))
}

async fn write(wr: &mut WriteHalf<BoxStream>, b: &Bytes) -> Result<(), Error> {
    wr.write_all(b)
        .await
        .map_err(|e| Error::from_io("HTTP/1.1: writing to the connection", e))
}

/// Reads once into the core's buffer; end of stream becomes `receive_eof`.
/// Cancel safe: a read that loses a `select!` has read nothing.
pub(crate) async fn read_more(
    conn: &mut Connection,
    rd: &mut ReadHalf<BoxStream>,
) -> Result<(), Error> {
    let buf = conn.read_buffer();
    buf.reserve(READ_CHUNK);
    let n = rd
        .read_buf(buf)
        .await
        .map_err(|e| Error::from_io("HTTP/1.1: reading from the connection", e))?;
    if n == 0 {
        conn.receive_eof();
    }
    Ok(())
}

/// Waits until `tx` has room; with no sender it never resolves (a `select!` branch whose
/// guard already excluded that case), so no `expect` is needed.
pub(crate) async fn sender_ready(
    tx: Option<&mut burrow_http_core::BodySender>,
) -> Result<(), Error> {
    match tx {
        Some(t) => t.ready().await,
        None => std::future::pending().await,
    }
}

/// The next frame of `body`; with no body it never resolves (see [`sender_ready`]).
pub(crate) async fn next_frame(
    body: Option<&mut burrow_http_core::Body>,
) -> Option<Result<http_body::Frame<Bytes>, Error>> {
    match body {
        Some(b) => b.frame().await,
        None => std::future::pending().await,
    }
}
