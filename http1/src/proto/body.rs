//! Body decoding and encoding: Content-Length, chunked (with trailers), close-delimited.

use std::collections::VecDeque;

use bytes::{Buf, Bytes, BytesMut};
use http::HeaderMap;

use super::framing::Framing;
use super::head::{encode_trailers, parse_trailers};
use super::{Limits, ProtoError, MAX_CHUNK_LINE};

/// What the decoder produced.
#[derive(Debug, PartialEq)]
pub(crate) enum Decoded {
    Data(Bytes),
    End(Option<HeaderMap>),
}

#[derive(Debug)]
pub(crate) enum Chunk {
    /// Reading a chunk-size line (digits, optional extensions, CRLF).
    Size,
    /// Inside chunk data with this many bytes left.
    Data(u64),
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last chunk: trailers and the final empty line.
    Trailers,
}

/// Decodes one body from a receive buffer.
#[derive(Debug)]
pub(crate) enum Decoder {
    Length(u64),
    Chunked(Chunk),
    Close,
}

impl Decoder {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => Decoder::Length(n),
            Framing::Chunked => Decoder::Chunked(Chunk::Size),
            Framing::CloseDelimited => Decoder::Close,
        }
    }

    /// Takes the next piece of the body from `buf`. `Ok(None)` means more bytes are needed.
    pub(crate) fn decode(
        &mut self,
        buf: &mut BytesMut,
        limits: &Limits,
    ) -> Result<Option<Decoded>, ProtoError> {
        match self {
            Decoder::Length(0) => Ok(Some(Decoded::End(None))),
            Decoder::Length(rem) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = (*rem).min(buf.len() as u64) as usize;
                *rem -= n as u64;
                Ok(Some(Decoded::Data(buf.split_to(n).freeze())))
            }
            Decoder::Close => {
                if buf.is_empty() {
                    return Ok(None);
                }
                Ok(Some(Decoded::Data(buf.split().freeze())))
            }
            Decoder::Chunked(state) => decode_chunked(state, buf, limits),
        }
    }

    /// The peer closed: `Ok(Some(End))` if that ends the body, an error if it cuts it short.
    pub(crate) fn eof(&self) -> Result<Decoded, ProtoError> {
        match self {
            Decoder::Close | Decoder::Length(0) => Ok(Decoded::End(None)),
            Decoder::Length(_) => Err(ProtoError::UnexpectedEof("a body with Content-Length")),
            Decoder::Chunked(_) => Err(ProtoError::UnexpectedEof("a chunked body")),
        }
    }
}

fn decode_chunked(
    state: &mut Chunk,
    buf: &mut BytesMut,
    limits: &Limits,
) -> Result<Option<Decoded>, ProtoError> {
    loop {
        match state {
            Chunk::Size => {
                let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
                    if buf.len() > MAX_CHUNK_LINE {
                        return Err(ProtoError::ChunkLineTooLong);
                    }
                    return Ok(None);
                };
                if nl > MAX_CHUNK_LINE {
                    return Err(ProtoError::ChunkLineTooLong);
                }
                let size = parse_chunk_size(&buf[..nl])?;
                buf.advance(nl + 1);
                *state = if size == 0 {
                    Chunk::Trailers
                } else {
                    Chunk::Data(size)
                };
            }
            Chunk::Data(rem) => {
                if buf.is_empty() {
                    return Ok(None);
                }
                let n = (*rem).min(buf.len() as u64) as usize;
                *rem -= n as u64;
                if *rem == 0 {
                    *state = Chunk::DataEnd;
                }
                return Ok(Some(Decoded::Data(buf.split_to(n).freeze())));
            }
            Chunk::DataEnd => {
                if buf.starts_with(b"\r\n") {
                    buf.advance(2);
                } else if buf.starts_with(b"\n") {
                    buf.advance(1);
                } else if buf.is_empty() || &buf[..] == b"\r" {
                    return Ok(None);
                } else {
                    return Err(ProtoError::MissingChunkCrlf);
                }
                *state = Chunk::Size;
            }
            Chunk::Trailers => {
                return match parse_trailers(buf, limits)? {
                    None => Ok(None),
                    Some((t, n)) => {
                        buf.advance(n);
                        Ok(Some(Decoded::End(if t.is_empty() {
                            None
                        } else {
                            Some(t)
                        })))
                    }
                };
            }
        }
    }
}

/// Parses `chunk-size [ BWS ; ext ] [CR]` (the LF already stripped).
fn parse_chunk_size(line: &[u8]) -> Result<u64, ProtoError> {
    let line = match line.split_last() {
        Some((b'\r', rest)) => rest,
        _ => line,
    };
    if line.contains(&b'\r') {
        return Err(ProtoError::BareCr);
    }
    let digits_end = line
        .iter()
        .position(|b| !b.is_ascii_hexdigit())
        .unwrap_or(line.len());
    if digits_end == 0 {
        return Err(ProtoError::InvalidChunkSize);
    }
    let rest = &line[digits_end..];
    // After the size: optional whitespace, then nothing or ';' extensions.
    let rest_trim = rest
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .map_or(&rest[rest.len()..], |p| &rest[p..]);
    if !(rest_trim.is_empty() || rest_trim[0] == b';') {
        return Err(ProtoError::InvalidChunkSize);
    }
    let digits = &line[..digits_end];
    let significant = digits
        .iter()
        .position(|&b| b != b'0')
        .map_or(&digits[digits.len()..], |p| &digits[p..]);
    if significant.len() > 16 {
        return Err(ProtoError::ChunkSizeTooLarge);
    }
    let mut n: u64 = 0;
    for &b in significant {
        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
        n = (n << 4) | d;
    }
    Ok(n)
}

/// Encodes one outgoing body, queueing wire pieces (zero-copy for data).
#[derive(Debug)]
pub(crate) enum Encoder {
    Length { declared: u64, sent: u64 },
    Chunked,
    Close,
}

impl Encoder {
    pub(crate) fn new(framing: Framing) -> Self {
        match framing {
            Framing::Length(n) => Encoder::Length {
                declared: n,
                sent: 0,
            },
            Framing::Chunked => Encoder::Chunked,
            Framing::CloseDelimited => Encoder::Close,
        }
    }

    pub(crate) fn data(
        &mut self,
        data: Bytes,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), ProtoError> {
        if data.is_empty() {
            return Ok(());
        }
        match self {
            Encoder::Length { declared, sent } => {
                let total = *sent + data.len() as u64;
                if total > *declared {
                    return Err(ProtoError::BodyLengthMismatch {
                        declared: *declared,
                        sent: total,
                    });
                }
                *sent = total;
                out.push_back(data);
            }
            Encoder::Chunked => {
                out.push_back(Bytes::from(format!("{:x}\r\n", data.len())));
                out.push_back(data);
                out.push_back(Bytes::from_static(b"\r\n"));
            }
            Encoder::Close => out.push_back(data),
        }
        Ok(())
    }

    pub(crate) fn end(
        &mut self,
        trailers: Option<HeaderMap>,
        out: &mut VecDeque<Bytes>,
    ) -> Result<(), ProtoError> {
        match self {
            Encoder::Length { declared, sent } => {
                if sent != declared {
                    return Err(ProtoError::BodyLengthMismatch {
                        declared: *declared,
                        sent: *sent,
                    });
                }
                // Trailers cannot be sent without chunked coding; they are dropped.
            }
            Encoder::Chunked => {
                out.push_back(Bytes::from_static(b"0\r\n"));
                out.push_back(encode_trailers(trailers.unwrap_or_default()));
            }
            Encoder::Close => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_lines() {
        assert_eq!(parse_chunk_size(b"1a\r"), Ok(26));
        assert_eq!(parse_chunk_size(b"1A;name=value\r"), Ok(26));
        assert_eq!(parse_chunk_size(b"10 ; x\r"), Ok(16));
        assert_eq!(parse_chunk_size(b"000000000000000000001\r"), Ok(1));
        assert_eq!(parse_chunk_size(b"ffffffffffffffff\r"), Ok(u64::MAX));
        assert_eq!(
            parse_chunk_size(b"10000000000000000\r"),
            Err(ProtoError::ChunkSizeTooLarge)
        );
        assert_eq!(parse_chunk_size(b"\r"), Err(ProtoError::InvalidChunkSize));
        assert_eq!(parse_chunk_size(b"-1\r"), Err(ProtoError::InvalidChunkSize));
        assert_eq!(
            parse_chunk_size(b"0x10\r"),
            Err(ProtoError::InvalidChunkSize)
        );
        assert_eq!(
            parse_chunk_size(b"1 2\r"),
            Err(ProtoError::InvalidChunkSize)
        );
        assert_eq!(parse_chunk_size(b"1\r;\r"), Err(ProtoError::BareCr));
    }

    #[test]
    fn chunk_line_limit() {
        let limits = Limits::default();
        let mut d = Decoder::new(Framing::Chunked);
        let mut buf = BytesMut::from(&b"1;"[..]);
        buf.extend_from_slice(&vec![b'a'; MAX_CHUNK_LINE]);
        assert_eq!(
            d.decode(&mut buf, &limits),
            Err(ProtoError::ChunkLineTooLong)
        );
    }

    #[test]
    fn chunked_encoding_round_trips() {
        let mut e = Encoder::new(Framing::Chunked);
        let mut out = VecDeque::new();
        e.data(Bytes::from_static(b"hello"), &mut out).unwrap();
        e.data(Bytes::new(), &mut out).unwrap();
        let mut t = HeaderMap::new();
        t.insert("x-t", "1".parse().unwrap());
        e.end(Some(t.clone()), &mut out).unwrap();
        let wire: Vec<u8> = out.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(wire, b"5\r\nhello\r\n0\r\nx-t: 1\r\n\r\n");
        let mut buf = BytesMut::from(&wire[..]);
        let mut d = Decoder::new(Framing::Chunked);
        let limits = Limits::default();
        assert_eq!(
            d.decode(&mut buf, &limits),
            Ok(Some(Decoded::Data(Bytes::from_static(b"hello"))))
        );
        assert_eq!(d.decode(&mut buf, &limits), Ok(Some(Decoded::End(Some(t)))));
        assert!(buf.is_empty());
    }

    #[test]
    fn length_encoder_checks_declared_length() {
        let mut e = Encoder::new(Framing::Length(3));
        let mut out = VecDeque::new();
        assert_eq!(
            e.data(Bytes::from_static(b"abcd"), &mut out),
            Err(ProtoError::BodyLengthMismatch {
                declared: 3,
                sent: 4
            })
        );
        e.data(Bytes::from_static(b"ab"), &mut out).unwrap();
        assert_eq!(
            e.end(None, &mut out),
            Err(ProtoError::BodyLengthMismatch {
                declared: 3,
                sent: 2
            })
        );
    }
}
