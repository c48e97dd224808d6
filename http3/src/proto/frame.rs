//! HTTP/3 frames (RFC 9114 §7): types, encoding, and an incremental decoder that streams
//! DATA payloads without buffering them and ignores unknown and reserved types.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{Code, H3Error};
use super::varint;

/// An HTTP/3 frame type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FrameType(pub u64);

impl FrameType {
    /// DATA.
    pub const DATA: FrameType = FrameType(0x0);
    /// HEADERS.
    pub const HEADERS: FrameType = FrameType(0x1);
    /// CANCEL_PUSH.
    pub const CANCEL_PUSH: FrameType = FrameType(0x3);
    /// SETTINGS.
    pub const SETTINGS: FrameType = FrameType(0x4);
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: FrameType = FrameType(0x5);
    /// GOAWAY.
    pub const GOAWAY: FrameType = FrameType(0x7);
    /// MAX_PUSH_ID.
    pub const MAX_PUSH_ID: FrameType = FrameType(0xd);

    /// HTTP/2 frame types that are reserved and must not appear in HTTP/3 (RFC 9114 §7.2.8).
    pub fn is_http2_only(self) -> bool {
        matches!(self.0, 0x2 | 0x6 | 0x8 | 0x9)
    }
}

/// Largest HEADERS or control frame payload accepted: 64 KiB (a field section limit).
pub const MAX_FRAME_PAYLOAD: u64 = 64 * 1024;

/// A decoded frame, except DATA payloads which arrive as [`Decoded::Data`] pieces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A non-DATA frame with its whole payload.
    Frame(FrameType, Bytes),
    /// A piece of a DATA frame's payload.
    Data(Bytes),
}

#[derive(Debug, Default)]
enum State {
    #[default]
    Header,
    Data(u64),
    Skip(u64),
}

/// Decodes frames from a stream's bytes as they arrive.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: BytesMut,
    state: State,
}

impl FrameDecoder {
    /// Bytes received on the stream.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received on the stream, without copying when the buffer is empty.
    pub fn push_bytes(&mut self, data: Bytes) {
        if self.buf.is_empty() {
            self.buf = BytesMut::from(data);
        } else {
            self.buf.extend_from_slice(&data);
        }
    }

    /// Whether the decoder stopped at a frame boundary (so a FIN here is clean).
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Header) && self.buf.is_empty()
    }

    /// The next frame or DATA piece; `Ok(None)` when more bytes are needed.
    pub fn poll_frame(&mut self) -> Result<Option<Decoded>, H3Error> {
        loop {
            match self.state {
                State::Header => {
                    let Some((ty, n1)) = varint::peek(&self.buf) else {
                        return Ok(None);
                    };
                    let Some((len, n2)) = varint::peek(&self.buf[n1..]) else {
                        return Ok(None);
                    };
                    let ty = FrameType(ty);
                    if ty.is_http2_only() {
                        return Err(H3Error::new(
                            Code::FRAME_UNEXPECTED,
                            "HTTP/2 frame type on an HTTP/3 stream",
                        ));
                    }
                    if ty == FrameType::DATA {
                        self.buf.advance(n1 + n2);
                        self.state = State::Data(len);
                        continue;
                    }
                    let known = matches!(ty.0, 0x1 | 0x3 | 0x4 | 0x5 | 0x7 | 0xd);
                    if !known {
                        // RFC 9114 §9: unknown and reserved frame types are ignored.
                        self.buf.advance(n1 + n2);
                        self.state = State::Skip(len);
                        continue;
                    }
                    if len > MAX_FRAME_PAYLOAD {
                        return Err(H3Error::new(
                            Code::EXCESSIVE_LOAD,
                            "frame payload too large",
                        ));
                    }
                    let total = n1 + n2 + len as usize;
                    if self.buf.len() < total {
                        return Ok(None);
                    }
                    self.buf.advance(n1 + n2);
                    let payload = self.buf.split_to(len as usize).freeze();
                    return Ok(Some(Decoded::Frame(ty, payload)));
                }
                State::Data(0) => {
                    self.state = State::Header;
                }
                State::Data(rem) => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = rem.min(self.buf.len() as u64) as usize;
                    self.state = State::Data(rem - n as u64);
                    return Ok(Some(Decoded::Data(self.buf.split_to(n).freeze())));
                }
                State::Skip(rem) => {
                    let n = rem.min(self.buf.len() as u64) as usize;
                    self.buf.advance(n);
                    if rem > n as u64 {
                        self.state = State::Skip(rem - n as u64);
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
            }
        }
    }
}

/// Encodes a frame header (type and length); the payload follows.
pub fn encode_header(ty: FrameType, len: u64, out: &mut impl BufMut) {
    varint::encode(ty.0, out);
    varint::encode(len, out);
}

/// Encodes a whole frame.
pub fn encode(ty: FrameType, payload: &[u8], out: &mut impl BufMut) {
    encode_header(ty, payload.len() as u64, out);
    out.put_slice(payload);
}

/// A GOAWAY frame payload: the stream (or push) id.
pub fn parse_goaway(mut payload: Bytes) -> Result<u64, H3Error> {
    let id =
        varint::decode(&mut payload).ok_or(H3Error::new(Code::FRAME_ERROR, "truncated GOAWAY"))?;
    if payload.has_remaining() {
        return Err(H3Error::new(Code::FRAME_ERROR, "trailing bytes in GOAWAY"));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(wire: &[u8], split: usize) -> Result<Vec<Decoded>, H3Error> {
        let mut d = FrameDecoder::default();
        let mut out = Vec::new();
        for piece in wire.chunks(split.max(1)) {
            d.push(piece);
            while let Some(f) = d.poll_frame()? {
                out.push(f);
            }
        }
        Ok(out)
    }

    #[test]
    fn data_streams_and_unknown_frames_are_skipped() {
        let mut wire = Vec::new();
        encode(FrameType::HEADERS, b"hdr", &mut wire);
        encode(FrameType(0x21), b"reserved grease", &mut wire); // 0x1f*0+0x21
        encode(FrameType::DATA, b"hello", &mut wire);
        encode(FrameType::DATA, b"", &mut wire);
        for split in [1, 2, 3, 100] {
            let got = frames(&wire, split).unwrap();
            let data: Vec<u8> = got
                .iter()
                .filter_map(|f| match f {
                    Decoded::Data(d) => Some(d.to_vec()),
                    _ => None,
                })
                .flatten()
                .collect();
            assert_eq!(
                got[0],
                Decoded::Frame(FrameType::HEADERS, Bytes::from_static(b"hdr"))
            );
            assert_eq!(data, b"hello", "split {split}");
        }
    }

    #[test]
    fn http2_frame_types_are_errors() {
        let mut wire = Vec::new();
        encode(FrameType(0x2), b"", &mut wire);
        assert_eq!(frames(&wire, 10).unwrap_err().code, Code::FRAME_UNEXPECTED);
    }

    #[test]
    fn oversized_headers_frame_is_excessive_load() {
        let mut wire = Vec::new();
        encode_header(FrameType::HEADERS, MAX_FRAME_PAYLOAD + 1, &mut wire);
        assert_eq!(frames(&wire, 10).unwrap_err().code, Code::EXCESSIVE_LOAD);
    }
}
