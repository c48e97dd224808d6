//! CONNECT-TCP's stream encoding (draft-ietf-httpbis-connect-tcp), sans-I/O: the TCP byte
//! stream carried as capsules (RFC 9297) on the request stream, in both directions.
//!
//! ```text
//! DATA capsule       { Type = codepoints.data,       Length, TCP payload }
//! FINAL_DATA capsule { Type = codepoints.final_data, Length, TCP payload }  = payload + FIN
//! any other capsule  skipped (RFC 9297 §3.2)
//! ```
//!
//! A sender ends its direction with one FINAL_DATA capsule (a TCP FIN); no DATA may follow
//! it, and the request stream itself ends only once both directions have. A stream that ends without one means the TCP connection was reset (an abortive
//! close), and is reported as such rather than as a clean end.
//!
//! [`TcpCapsuleDecoder`] takes stream bytes and gives TCP payload as it arrives: a DATA
//! capsule's payload is handed on piece by piece, never buffered whole, so no capsule
//! length limit is needed for DATA and a large capsule can be read straight into the
//! reader's buffer ([`direct_room`](TcpCapsuleDecoder::direct_room)). Unknown capsules are
//! skipped the same way, without buffering. [`encode_data_header`] and [`final_data`] are
//! the sending side. [`CapsuleStream`] runs both over
//! any byte stream.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::capsule::CapsuleType;
use crate::varint;

mod stream;
pub use stream::{CapsuleStream, CloseInner};

/// The upgrade token and `:protocol` value (draft-ietf-httpbis-connect-tcp §3).
pub const PROTOCOL: &str = "connect-tcp";

/// The default URI template: the one the draft suggests for a proxy at a well-known
/// location, in the style of RFC 9298's.
pub const DEFAULT_TCP_TEMPLATE: &str = "/.well-known/masque/tcp/{target_host}/{target_port}/";

/// The capsule types a CONNECT-TCP stream uses. They changed between revisions of the
/// draft, so they are a setting; both sides of a tunnel must agree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Codepoints {
    /// DATA: TCP payload.
    pub data: CapsuleType,
    /// FINAL_DATA: TCP payload, then the end of this direction (a TCP FIN).
    pub final_data: CapsuleType,
}

impl Codepoints {
    /// The provisional codepoints of draft -12 (July 2026), the newest revision whose IANA
    /// section could be read here (`DATA-12`, `FINAL_DATA-12`).
    pub const DRAFT_12: Codepoints = Codepoints {
        data: CapsuleType(0x2028_d7f2),
        final_data: CapsuleType(0x2028_d7f3),
    };
    /// The provisional codepoints of drafts -08 to -11 (`DATA-08`, `FINAL_DATA-08`).
    pub const DRAFT_08: Codepoints = Codepoints {
        data: CapsuleType(0x2028_d7f0),
        final_data: CapsuleType(0x2028_d7f1),
    };

    /// Parses `DATA,FINAL_DATA` (two capsule types, hexadecimal with `0x` or decimal), or a
    /// name: `draft-12`, `draft-08`.
    pub fn parse(s: &str) -> Option<Codepoints> {
        match s {
            "draft-12" => return Some(Codepoints::DRAFT_12),
            "draft-08" => return Some(Codepoints::DRAFT_08),
            _ => {}
        }
        let num = |t: &str| {
            let t = t.trim();
            let v = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
                Some(h) => u64::from_str_radix(h, 16).ok()?,
                None => t.parse().ok()?,
            };
            (v < 1 << 62).then_some(CapsuleType(v))
        };
        let (d, f) = s.split_once(',')?;
        let (data, final_data) = (num(d)?, num(f)?);
        (data != final_data).then_some(Codepoints { data, final_data })
    }
}

impl Default for Codepoints {
    fn default() -> Self {
        Codepoints::DRAFT_12
    }
}

/// Most TCP payload put in one DATA capsule we send; a larger write is split.
pub const MAX_DATA_CAPSULE: usize = 64 * 1024;

/// Longest capsule header (two 8-byte varints).
pub const MAX_HEADER: usize = 16;

/// What went wrong on a CONNECT-TCP stream.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpCapsuleError {
    /// The stream ended without a FINAL_DATA capsule: the TCP connection at the other end
    /// was reset (or the peer aborted the tunnel).
    #[error("the tunnel stream ended without FINAL_DATA: the TCP connection was reset")]
    Reset,
    /// Bytes after the FINAL_DATA capsule.
    #[error("data after the FINAL_DATA capsule")]
    AfterFinal,
}

impl From<TcpCapsuleError> for crate::Error {
    fn from(e: TcpCapsuleError) -> crate::Error {
        let kind = match e {
            TcpCapsuleError::Reset => crate::ErrorKind::Closed,
            TcpCapsuleError::AfterFinal => crate::ErrorKind::Protocol,
        };
        crate::Error::peer(kind, "connect-tcp").with_source(e)
    }
}

/// What [`TcpCapsuleDecoder::poll`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpEvent {
    /// TCP payload (a piece of a DATA or FINAL_DATA capsule).
    Data(Bytes),
    /// The peer's direction ended (its FINAL_DATA capsule was read whole).
    Fin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between capsules.
    Header,
    /// Inside a DATA (`last` false) or FINAL_DATA capsule: this many payload bytes left.
    Payload { left: u64, last: bool },
    /// Inside a capsule of another type: this many bytes to skip.
    Skip { left: u64 },
    /// An error was reported; nothing more is decoded.
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fin {
    No,
    /// FINAL_DATA was read whole; [`TcpEvent::Fin`] is still to be given.
    Read,
    Reported,
}

/// Decodes a CONNECT-TCP stream (see the module docs).
///
/// Call contract: append what the stream gave to [`read_buffer`](Self::read_buffer) (or,
/// while [`direct_room`](Self::direct_room) is `Some(n)`, read up to `n` payload bytes
/// elsewhere and report them with [`direct`](Self::direct)); then call
/// [`poll`](Self::poll) until it gives `Ok(None)`. When the stream ends, call
/// [`finish`](Self::finish): it says whether the end was clean. After an error nothing
/// more comes out; after [`TcpEvent::Fin`] only an error can (DATA after FINAL_DATA).
#[derive(Debug)]
pub struct TcpCapsuleDecoder {
    buf: BytesMut,
    state: State,
    fin: Fin,
    codepoints: Codepoints,
}

impl TcpCapsuleDecoder {
    /// A decoder for these capsule types.
    pub fn new(codepoints: Codepoints) -> Self {
        TcpCapsuleDecoder {
            buf: BytesMut::new(),
            state: State::Header,
            fin: Fin::No,
            codepoints,
        }
    }

    /// Where stream bytes go.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// `Some(n)`: nothing is buffered and the next `n` stream bytes are TCP payload, so
    /// they may be read straight where the payload goes (then call [`direct`](Self::direct)).
    pub fn direct_room(&self) -> Option<u64> {
        match self.state {
            State::Payload { left, .. } if left > 0 && self.buf.is_empty() => Some(left),
            _ => None,
        }
    }

    /// `n` payload bytes were read directly (at most [`direct_room`](Self::direct_room)).
    pub fn direct(&mut self, n: usize) {
        if let State::Payload { left, last } = self.state {
            let left = left.saturating_sub(n as u64);
            self.state = match left {
                0 => {
                    if last {
                        self.fin = Fin::Read;
                    }
                    State::Header
                }
                _ => State::Payload { left, last },
            };
        }
    }

    /// Whether the peer's FINAL_DATA has been read whole.
    pub fn is_finished(&self) -> bool {
        self.fin != Fin::No
    }

    /// The next piece of payload, the end, `Ok(None)` when more bytes are needed.
    pub fn poll(&mut self) -> Result<Option<TcpEvent>, TcpCapsuleError> {
        loop {
            if self.fin == Fin::Read {
                self.fin = Fin::Reported;
                return Ok(Some(TcpEvent::Fin));
            }
            match self.state {
                State::Failed => return Ok(None),
                State::Header => {
                    let Some((ty, n1)) = varint::peek(&self.buf) else {
                        return Ok(None);
                    };
                    let Some((len, n2)) = varint::peek(&self.buf[n1..]) else {
                        return Ok(None);
                    };
                    let ty = CapsuleType(ty);
                    let ours = ty == self.codepoints.data || ty == self.codepoints.final_data;
                    if ours && self.fin != Fin::No {
                        self.state = State::Failed;
                        return Err(TcpCapsuleError::AfterFinal);
                    }
                    self.buf.advance(n1 + n2);
                    self.state = match ours {
                        true => State::Payload {
                            left: len,
                            last: ty == self.codepoints.final_data,
                        },
                        false => State::Skip { left: len },
                    };
                    // An empty capsule ends at once.
                    self.direct(0);
                }
                State::Skip { left } => {
                    let n = left.min(self.buf.len() as u64);
                    self.buf.advance(n as usize);
                    if n < left {
                        self.state = State::Skip { left: left - n };
                        return Ok(None);
                    }
                    self.state = State::Header;
                }
                State::Payload { left, .. } => {
                    if self.buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(self.buf.len() as u64) as usize;
                    let piece = self.buf.split_to(n).freeze();
                    self.direct(n);
                    return Ok(Some(TcpEvent::Data(piece)));
                }
            }
        }
    }

    /// The stream ended: `Ok` if the peer's FINAL_DATA came, else the TCP connection
    /// behind it was reset (or the stream ended inside a capsule).
    pub fn finish(&mut self) -> Result<(), TcpCapsuleError> {
        if self.state == State::Header && self.buf.is_empty() && self.fin != Fin::No {
            Ok(())
        } else {
            self.state = State::Failed;
            Err(TcpCapsuleError::Reset)
        }
    }
}

/// Writes the header of a DATA capsule (or, `last`, FINAL_DATA) of `len` payload bytes.
pub fn encode_data_header(codepoints: Codepoints, len: usize, last: bool, out: &mut impl BufMut) {
    let ty = if last {
        codepoints.final_data
    } else {
        codepoints.data
    };
    varint::encode(ty.0, out);
    varint::encode(len as u64, out);
}

/// An empty FINAL_DATA capsule: the end of this direction.
pub fn final_data(codepoints: Codepoints) -> Bytes {
    let mut b = BytesMut::with_capacity(MAX_HEADER);
    encode_data_header(codepoints, 0, true, &mut b);
    b.freeze()
}

#[cfg(test)]
mod tests;
