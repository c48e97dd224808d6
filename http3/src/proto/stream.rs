//! Sans-I/O readers for request streams and control streams (RFC 9114 §4.1, §6.2.1).
//!
//! ```text
//! request stream (as read):  HEADERS (1xx HEADERS)* ... DATA* [HEADERS(trailers)] FIN
//!   ExpectHeaders --HEADERS--> Body --DATA--> Body --HEADERS--> Trailers --FIN--> Done
//!                  (interim 1xx keeps ExpectHeaders; FIN in Body is the end)
//! control stream:   SETTINGS first and once, then GOAWAY / MAX_PUSH_ID / CANCEL_PUSH
//! ```

use std::time::Instant;

use bytes::Bytes;
use http::HeaderMap;

use super::error::{Code, H3Error};
use super::frame::{parse_goaway, Decoded, FrameDecoder, FrameType};
use super::headers::{parse_request, parse_response, parse_trailers, RequestHead};
use super::qpack;
use super::settings::Settings;

/// Which kind of message a [`MessageReader`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reading {
    /// A request (server side).
    Request,
    /// A response (client side); interim 1xx heads may come first.
    Response,
}

/// What a request stream carried, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MessageEvent {
    /// A request head.
    Request(RequestHead),
    /// A response head (1xx ones are interim).
    Response(http::StatusCode, HeaderMap),
    /// Body bytes (DATA frame payloads).
    Data(Bytes),
    /// Trailers.
    Trailers(HeaderMap),
    /// The stream ended cleanly.
    End,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Headers,
    Body,
    AfterTrailers,
    Done,
}

/// Reads one message from a request stream: frames in, [`MessageEvent`]s out. Errors are
/// stream errors with the code to reset with (`H3_FRAME_UNEXPECTED`, `H3_MESSAGE_ERROR`,
/// `QPACK_DECOMPRESSION_FAILED`, …), except where RFC 9114 makes them connection errors
/// (frames only allowed on the control stream), which [`is_connection_error`] tells.
///
/// Call contract: [`push`](Self::push) and [`finish`](Self::finish) with the stream's bytes
/// and FIN, then [`poll_event`](Self::poll_event) until `Ok(None)`; with a
/// [`head_deadline`](Self::head_deadline), [`handle_timeout`](Self::handle_timeout) at
/// [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct MessageReader {
    reading: Reading,
    frames: FrameDecoder,
    expect: Expect,
    fin: bool,
    head_until: Option<Instant>,
    late: bool,
}

/// Whether an error found on a request stream closes the whole connection (RFC 9114 §7.2).
pub fn is_connection_error(e: &H3Error) -> bool {
    e.scope == super::error::Scope::Connection
}

impl MessageReader {
    /// A reader for one message of the given kind.
    pub fn new(reading: Reading) -> Self {
        MessageReader {
            reading,
            frames: FrameDecoder::default(),
            expect: Expect::Headers,
            fin: false,
            head_until: None,
            late: false,
        }
    }

    /// The head must be complete by `until`, or the stream fails with
    /// H3_REQUEST_INCOMPLETE (RFC 9114 §4.1.2).
    pub fn head_deadline(mut self, until: Instant) -> Self {
        self.head_until = Some(until);
        self
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due: while the head is incomplete.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.head_until
            .filter(|_| self.expect == Expect::Headers && !self.late)
    }

    /// The head deadline passed: the next [`poll_event`](Self::poll_event) fails.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.poll_timeout().is_some_and(|t| t <= now) {
            self.late = true;
        }
    }

    /// Bytes received on the stream.
    pub fn push(&mut self, data: Bytes) {
        self.frames.push_bytes(data);
    }

    /// The stream's FIN arrived.
    pub fn finish(&mut self) {
        self.fin = true;
    }

    /// The next event; `Ok(None)` when more bytes are needed.
    pub fn poll_event(&mut self) -> Result<Option<MessageEvent>, H3Error> {
        if self.expect == Expect::Done {
            return Ok(None);
        }
        if self.late && self.expect == Expect::Headers {
            return Err(H3Error::new(
                Code::REQUEST_INCOMPLETE,
                "head not complete in time",
            ));
        }
        match self.frames.poll_frame()? {
            Some(Decoded::Data(d)) => {
                if self.expect != Expect::Body {
                    return Err(H3Error::new(Code::FRAME_UNEXPECTED, "DATA outside a body"));
                }
                Ok(Some(MessageEvent::Data(d)))
            }
            Some(Decoded::Frame(FrameType::HEADERS, payload)) => {
                let fields = qpack::decode(payload)?;
                match self.expect {
                    Expect::Headers => self.head(fields).map(Some),
                    Expect::Body => {
                        self.expect = Expect::AfterTrailers;
                        Ok(Some(MessageEvent::Trailers(parse_trailers(fields)?)))
                    }
                    _ => Err(H3Error::new(
                        Code::FRAME_UNEXPECTED,
                        "HEADERS after trailers",
                    )),
                }
            }
            Some(Decoded::Frame(FrameType::PUSH_PROMISE, _)) => Err(H3Error::new(
                Code::ID_ERROR,
                "PUSH_PROMISE, but no MAX_PUSH_ID was sent",
            )),
            // RFC 9114 §7.2.4: a control-stream frame on a request stream ends the connection.
            Some(Decoded::Frame(_, _)) => Err(H3Error::connection(
                Code::FRAME_UNEXPECTED,
                "control frame on a request stream",
            )),
            None if self.fin => {
                if !self.frames.at_boundary() {
                    return Err(H3Error::new(
                        Code::FRAME_ERROR,
                        "stream ended inside a frame",
                    ));
                }
                match self.expect {
                    Expect::Headers => Err(H3Error::new(
                        Code::REQUEST_INCOMPLETE,
                        "stream ended before a complete head",
                    )),
                    _ => {
                        self.expect = Expect::Done;
                        Ok(Some(MessageEvent::End))
                    }
                }
            }
            None => Ok(None),
        }
    }

    fn head(&mut self, fields: Vec<qpack::Field>) -> Result<MessageEvent, H3Error> {
        match self.reading {
            Reading::Request => {
                let h = parse_request(fields)?;
                self.expect = Expect::Body;
                Ok(MessageEvent::Request(h))
            }
            Reading::Response => {
                let (status, headers) = parse_response(fields)?;
                if !status.is_informational() {
                    self.expect = Expect::Body;
                } else if status == http::StatusCode::SWITCHING_PROTOCOLS {
                    return Err(H3Error::new(
                        Code::MESSAGE_ERROR,
                        "101 is not allowed in HTTP/3",
                    ));
                }
                Ok(MessageEvent::Response(status, headers))
            }
        }
    }
}

/// What the peer's control stream said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlEvent {
    /// The peer's SETTINGS (always first, exactly once).
    Settings(Settings),
    /// GOAWAY with the first stream (or push) id that will not be processed.
    GoAway(u64),
}

/// Reads the peer's control stream (after its stream type byte).
#[derive(Debug, Default)]
pub struct ControlReader {
    frames: FrameDecoder,
    got_settings: bool,
    last_goaway: Option<u64>,
}

impl ControlReader {
    /// Bytes received on the control stream.
    pub fn push(&mut self, data: Bytes) {
        self.frames.push_bytes(data);
    }

    /// The next event. Every error here is a connection error. A FIN on the control stream
    /// is `H3_CLOSED_CRITICAL_STREAM`; call [`closed`](Self::closed) for it.
    pub fn poll_event(&mut self) -> Result<Option<ControlEvent>, H3Error> {
        self.poll_event_inner().map_err(H3Error::for_connection)
    }

    fn poll_event_inner(&mut self) -> Result<Option<ControlEvent>, H3Error> {
        loop {
            let f = match self.frames.poll_frame()? {
                None => return Ok(None),
                Some(f) => f,
            };
            let (ty, payload) = match f {
                Decoded::Data(_) => {
                    return Err(H3Error::new(
                        Code::FRAME_UNEXPECTED,
                        "DATA on the control stream",
                    ))
                }
                Decoded::Frame(ty, p) => (ty, p),
            };
            if !self.got_settings {
                if ty != FrameType::SETTINGS {
                    return Err(H3Error::new(
                        Code::MISSING_SETTINGS,
                        "control stream must start with SETTINGS",
                    ));
                }
                self.got_settings = true;
                return Ok(Some(ControlEvent::Settings(Settings::parse(payload)?)));
            }
            match ty {
                FrameType::SETTINGS => {
                    return Err(H3Error::new(Code::FRAME_UNEXPECTED, "second SETTINGS"))
                }
                FrameType::GOAWAY => {
                    let id = parse_goaway(payload)?;
                    // RFC 9114 §5.2: the id must not increase.
                    if self.last_goaway.is_some_and(|prev| id > prev) {
                        return Err(H3Error::new(Code::ID_ERROR, "GOAWAY id increased"));
                    }
                    self.last_goaway = Some(id);
                    return Ok(Some(ControlEvent::GoAway(id)));
                }
                FrameType::MAX_PUSH_ID | FrameType::CANCEL_PUSH => continue,
                _ => {
                    return Err(H3Error::new(
                        Code::FRAME_UNEXPECTED,
                        "request frame on the control stream",
                    ))
                }
            }
        }
    }

    /// The control stream ended: always a connection error (RFC 9114 §6.2.1).
    pub fn closed(&self) -> H3Error {
        H3Error::connection(Code::CLOSED_CRITICAL_STREAM, "control stream closed")
    }
}

/// Unidirectional stream types (RFC 9114 §6.2, RFC 9204 §4.2).
pub mod uni {
    /// Control stream.
    pub const CONTROL: u64 = 0x00;
    /// Push stream.
    pub const PUSH: u64 = 0x01;
    /// QPACK encoder stream.
    pub const QPACK_ENCODER: u64 = 0x02;
    /// QPACK decoder stream.
    pub const QPACK_DECODER: u64 = 0x03;
}
