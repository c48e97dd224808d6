//! The Capsule Protocol (RFC 9297 §3): type-length-value capsules carried on a request
//! stream's data (HTTP/3 DATA frames, HTTP/2 DATA frames, or the HTTP/1.1 byte stream after
//! an Upgrade). Sans-I/O: bytes in, capsules out; capsules in, bytes out.
//!
//! ```text
//! Capsule { Type (i), Length (i), Value (..) }        i = QUIC variable-length integer
//! DATAGRAM capsule (type 0x00): Value = HTTP Datagram Payload
//!   for CONNECT-UDP (RFC 9298 §5): Context ID (i) = 0, then the UDP payload
//! ```

use std::time::Instant;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::driver::{Core, Finish};

/// A capsule type (RFC 9297 §5.4 registry).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapsuleType(pub u64);

impl CapsuleType {
    /// DATAGRAM (RFC 9297 §3.5).
    pub const DATAGRAM: CapsuleType = CapsuleType(0x00);
}

/// Largest capsule value accepted by default: 64 KiB, above any UDP payload (65,527 bytes)
/// plus its context id. A longer capsule is refused before it is buffered.
pub const DEFAULT_MAX_CAPSULE: u64 = 65_536 + 16;

/// A decoded capsule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Capsule {
    /// Its type.
    pub ty: CapsuleType,
    /// Its value.
    pub value: Bytes,
}

/// What went wrong decoding capsules (RFC 9297 §3.3: the stream must be aborted).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CapsuleError {
    /// A capsule longer than the configured limit.
    #[error("capsule of {length} bytes exceeds the limit of {limit}")]
    TooLong {
        /// Its declared length.
        length: u64,
        /// The limit.
        limit: u64,
    },
    /// The stream ended inside a capsule.
    #[error("stream ended inside a capsule")]
    Truncated,
    /// A DATAGRAM capsule whose payload does not start with a context id.
    #[error("DATAGRAM capsule without a context id")]
    BadDatagram,
}

impl From<CapsuleError> for crate::Error {
    fn from(e: CapsuleError) -> crate::Error {
        let kind = match e {
            CapsuleError::TooLong { .. } => crate::ErrorKind::LimitExceeded,
            CapsuleError::Truncated => crate::ErrorKind::Closed,
            CapsuleError::BadDatagram => crate::ErrorKind::Protocol,
        };
        crate::Error::peer(kind, "capsule protocol").with_source(e)
    }
}

/// QUIC variable-length integers, as capsules use them: the one implementation, shared with
/// HTTP/3's framing.
pub use crate::varint;

/// Decodes capsules from stream bytes as they arrive. Unknown capsule types are returned
/// too (callers skip them, RFC 9297 §3.2); only the length limit makes one an error.
#[derive(Debug)]
pub struct CapsuleDecoder {
    buf: BytesMut,
    max: u64,
}

impl Default for CapsuleDecoder {
    fn default() -> Self {
        CapsuleDecoder::new(DEFAULT_MAX_CAPSULE)
    }
}

impl CapsuleDecoder {
    /// A decoder refusing capsules longer than `max` bytes.
    pub fn new(max: u64) -> Self {
        CapsuleDecoder {
            buf: BytesMut::new(),
            max,
        }
    }

    /// Bytes received.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next capsule, `Ok(None)` when more bytes are needed.
    pub fn poll_capsule(&mut self) -> Result<Option<Capsule>, CapsuleError> {
        let Some((ty, n1)) = varint::peek(&self.buf) else {
            return Ok(None);
        };
        let Some((len, n2)) = varint::peek(&self.buf[n1..]) else {
            return Ok(None);
        };
        if len > self.max {
            return Err(CapsuleError::TooLong {
                length: len,
                limit: self.max,
            });
        }
        if self.buf.len() < n1 + n2 + len as usize {
            return Ok(None);
        }
        self.buf.advance(n1 + n2);
        let value = self.buf.split_to(len as usize).freeze();
        Ok(Some(Capsule {
            ty: CapsuleType(ty),
            value,
        }))
    }

    /// The buffer stream bytes are read into (for a [`Core`]).
    pub(crate) fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The stream ended: an error if it ended inside a capsule.
    pub fn finish(&self) -> Result<(), CapsuleError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CapsuleError::Truncated)
        }
    }
}

/// Encodes a capsule.
pub fn encode(ty: CapsuleType, value: &[u8], out: &mut impl BufMut) {
    varint::encode(ty.0, out);
    varint::encode(value.len() as u64, out);
    out.put_slice(value);
}

/// Encodes a CONNECT-UDP datagram (context id 0, RFC 9298 §5) as a DATAGRAM capsule.
pub fn encode_udp_datagram(payload: &[u8], out: &mut impl BufMut) {
    varint::encode(CapsuleType::DATAGRAM.0, out);
    varint::encode(payload.len() as u64 + 1, out);
    out.put_u8(0); // context id 0
    out.put_slice(payload);
}

/// Splits an HTTP Datagram payload into its context id and the rest (RFC 9298 §5).
pub fn split_context(mut payload: Bytes) -> Result<(u64, Bytes), CapsuleError> {
    let (id, n) = varint::peek(&payload).ok_or(CapsuleError::BadDatagram)?;
    payload.advance(n);
    Ok((id, payload))
}

/// Datagrams a [`CapsuleFlowCore`] holds for writing before it drops new ones.
pub const MAX_DATAGRAM_BACKLOG: usize = 64;

/// A CONNECT-UDP flow over a stream (HTTP/2, HTTP/1.1) as a [`Core`]: each command is a
/// UDP payload sent as a DATAGRAM capsule with context id 0, each event a payload received
/// that way. Other capsule types and context ids are skipped (RFC 9297 §3.2, RFC 9298 §5);
/// a capsule over the limit, or a stream ending inside one, ends the flow (RFC 9297 §3.3).
///
/// Call contract: the [`Core`] one. It has no timer; it ends when the peer ends the stream,
/// on a capsule error, or once the application is gone and what it sent is written.
#[derive(Debug)]
pub struct CapsuleFlowCore {
    dec: CapsuleDecoder,
    out: std::collections::VecDeque<Bytes>,
    closing: bool,
    ended: bool,
}

impl CapsuleFlowCore {
    /// A flow refusing capsules longer than `max` bytes.
    pub fn new(max: u64) -> Self {
        CapsuleFlowCore {
            dec: CapsuleDecoder::new(max),
            out: Default::default(),
            closing: false,
            ended: false,
        }
    }
}

impl Core for CapsuleFlowCore {
    type Command = Bytes;
    type Event = Bytes;

    fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.dec.buf
    }

    fn handle_read(&mut self, n: usize, _now: Instant) {
        if n == 0 {
            // Whatever is left, or a truncated capsule, ends here.
            self.ended = true;
        }
    }

    fn handle_command(&mut self, payload: Bytes, _now: Instant) {
        // A stream that does not take our datagrams fast enough drops them, as a congested
        // network would: they are not queued without bound.
        if self.out.len() >= MAX_DATAGRAM_BACKLOG {
            return;
        }
        let mut b = BytesMut::with_capacity(payload.len() + 10);
        encode_udp_datagram(&payload, &mut b);
        self.out.push_back(b.freeze());
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn handle_io_error(&mut self, _error: crate::Error, _now: Instant) {
        self.ended = true;
    }

    fn handle_app_closed(&mut self, _now: Instant) {
        self.closing = true;
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<Bytes> {
        while !self.ended {
            match self.dec.poll_capsule() {
                Ok(Some(c)) if c.ty == CapsuleType::DATAGRAM => match split_context(c.value) {
                    Ok((0, udp)) => return Some(udp),
                    _ => continue,
                },
                Ok(Some(_)) => continue,
                Ok(None) => return None,
                Err(_) => self.ended = true,
            }
        }
        None
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn wants_read(&self) -> bool {
        !self.ended
    }

    fn finish(&self) -> Finish {
        if self.ended || self.closing {
            Finish::Close
        } else {
            Finish::Running
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_across_any_split() {
        let mut wire = Vec::new();
        encode_udp_datagram(b"dns query", &mut wire);
        encode(
            CapsuleType(0x2c7c_f000),
            b"unknown, skipped by callers",
            &mut wire,
        );
        encode_udp_datagram(&[7u8; 1500], &mut wire);
        for split in [1, 2, 3, 7, 1000, wire.len()] {
            let mut d = CapsuleDecoder::default();
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                d.push(piece);
                while let Some(c) = d.poll_capsule().unwrap() {
                    got.push(c);
                }
            }
            d.finish().unwrap();
            assert_eq!(got.len(), 3, "split {split}");
            assert_eq!(got[0].ty, CapsuleType::DATAGRAM);
            let (ctx, udp) = split_context(got[0].value.clone()).unwrap();
            assert_eq!((ctx, &udp[..]), (0, &b"dns query"[..]));
            assert_eq!(got[1].ty, CapsuleType(0x2c7c_f000));
            assert_eq!(split_context(got[2].value.clone()).unwrap().1.len(), 1500);
        }
    }

    #[test]
    fn length_limit_refuses_before_buffering() {
        let mut d = CapsuleDecoder::new(100);
        let mut wire = Vec::new();
        varint::encode(0, &mut wire);
        varint::encode(101, &mut wire);
        d.push(&wire);
        assert_eq!(
            d.poll_capsule(),
            Err(CapsuleError::TooLong {
                length: 101,
                limit: 100
            })
        );
        // Exactly at the limit is fine.
        let mut d = CapsuleDecoder::new(100);
        let mut wire = Vec::new();
        encode(CapsuleType::DATAGRAM, &[0u8; 100], &mut wire);
        d.push(&wire);
        assert_eq!(d.poll_capsule().unwrap().unwrap().value.len(), 100);
    }

    #[test]
    fn truncation_and_empty_datagram() {
        let mut d = CapsuleDecoder::default();
        let mut wire = Vec::new();
        encode_udp_datagram(b"abc", &mut wire);
        d.push(&wire[..wire.len() - 1]);
        assert_eq!(d.poll_capsule(), Ok(None));
        assert_eq!(d.finish(), Err(CapsuleError::Truncated));
        assert_eq!(split_context(Bytes::new()), Err(CapsuleError::BadDatagram));
    }
}
