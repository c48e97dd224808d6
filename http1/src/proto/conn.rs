//! The HTTP/1.1 connection state machine, client and server roles.
//!
//! ```text
//!  one cycle (request/response exchange), each side tracked separately:
//!
//!  write:  Idle --head--> Body --end--> Done ---+
//!                   \                           +-- both Done & keep-alive --> Idle (next cycle)
//!  read:   Head --head--> Body --end--> Done ---+   both Done & close ------> Closed
//!             \
//!              +-- 2xx to CONNECT / 101 to Upgrade --> Switched (bytes are no longer HTTP)
//! ```

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, EXPECT, UPGRADE};
use http::{HeaderValue, Method, StatusCode};

use super::body::{Decoded, Decoder, Encoder};
use super::framing::{body_framing, has_token, wants_keep_alive, Framing, Message};
use super::head::{
    encode_request, encode_response, leading_empty_lines, parse_request, parse_response, Parsed,
    RequestHead, ResponseHead,
};
use super::{Limits, ProtoError};

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any
/// HTTP/1.1 request message that lacks a Host header field and to any request message that
/// contains more than one Host header field line or a Host header field with an invalid
/// field value."
fn check_host(head: &RequestHead) -> Result<(), ProtoError> {
    let mut hosts = head.headers.get_all(http::header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProtoError::InvalidHost("has more than one Host")),
        (None, _) if head.version == http::Version::HTTP_11 => {
            Err(ProtoError::InvalidHost("has no Host"))
        }
        (Some(h), None) => {
            let v = h
                .to_str()
                .map_err(|_| ProtoError::InvalidHost("has an invalid Host"))?;
            // uri-host [ ":" port ], or empty (RFC 9112 §3.2: an empty value is allowed
            // when the target URI has no authority).
            let valid = v.is_empty()
                || v.parse::<http::uri::Authority>()
                    .is_ok_and(|a| !a.as_str().contains('@'));
            if valid {
                Ok(())
            } else {
                Err(ProtoError::InvalidHost("has an invalid Host"))
            }
        }
        (None, _) => Ok(()),
    }
}

/// Which end of the connection this core is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Sends requests, reads responses.
    Client,
    /// Reads requests, sends responses.
    Server,
}

/// Something the peer sent, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request head (server role).
    Request(RequestHead),
    /// A response head (client role); 1xx heads are interim and another head follows.
    Response(ResponseHead),
    /// Body bytes.
    Data(Bytes),
    /// The end of a body, with trailers if any were sent.
    End(Option<http::HeaderMap>),
    /// The connection stopped speaking HTTP (2xx to CONNECT, 101 to Upgrade): take the
    /// bytes already received with [`Connection::take_leftover`] and use the transport directly.
    Switched,
    /// The peer closed the connection cleanly between messages (server role).
    Closed,
}

#[derive(Debug)]
enum Read {
    /// Client: no response expected yet.
    Idle,
    Head,
    Body(Decoder),
    Done,
    Switched,
    Closed,
}

#[derive(Debug)]
enum Write {
    Idle,
    Body(Encoder),
    Done,
    Switched,
    Closed,
}

/// The sans-I/O HTTP/1.1 core.
///
/// Inputs: [`receive`](Self::receive) (or [`read_buffer`](Self::read_buffer)) and
/// [`receive_eof`](Self::receive_eof) for bytes from the peer; `send_*` calls for our own
/// messages. Outputs: [`poll_event`](Self::poll_event) for what the peer sent (call until it
/// returns `Ok(None)`, which means more bytes are needed), and
/// [`poll_transmit`](Self::poll_transmit) for bytes to write, in order. No I/O, no clocks.
/// After an error the connection must be closed.
#[derive(Debug)]
pub struct Connection {
    role: Role,
    limits: Limits,
    rbuf: BytesMut,
    scan_from: usize,
    eof: bool,
    out: VecDeque<Bytes>,
    read: Read,
    write: Write,
    keep_alive: bool,
    pending: VecDeque<Event>,
    method: Option<Method>,
    upgrade_requested: bool,
    expect_continue: bool,
    /// Server: the request is HTTP/1.0, whose client keeps a connection only when told.
    peer_http10: bool,
    /// Client: responses keep how their heads were spelled.
    spell: bool,
    failed: bool,
}

impl Connection {
    /// A new connection core for `role`.
    pub fn new(role: Role, limits: Limits) -> Self {
        Connection {
            role,
            limits,
            rbuf: BytesMut::new(),
            scan_from: 0,
            eof: false,
            out: VecDeque::new(),
            read: match role {
                Role::Client => Read::Idle,
                Role::Server => Read::Head,
            },
            write: Write::Idle,
            keep_alive: true,
            pending: VecDeque::new(),
            method: None,
            upgrade_requested: false,
            expect_continue: false,
            peer_http10: false,
            spell: false,
            failed: false,
        }
    }

    /// Client: each response head keeps how it was spelled (its reason phrase and the
    /// case of its field names, [`ResponseHead::spelling`](super::ResponseHead::spelling)),
    /// for tools that show heads as they came; off by default (it copies names).
    pub fn keep_spelling(&mut self, on: bool) {
        self.spell = on;
    }

    // ---- inputs -------------------------------------------------------------------------

    /// Bytes received from the peer.
    pub fn receive(&mut self, data: &[u8]) {
        if !self.eof {
            self.rbuf.extend_from_slice(data);
        }
    }

    /// The receive buffer, for a driver that reads into it directly (zero copy).
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.rbuf
    }

    /// The peer closed its sending side.
    pub fn receive_eof(&mut self) {
        self.eof = true;
    }

    /// Bytes received and not yet consumed.
    pub fn buffered(&self) -> usize {
        self.rbuf.len()
    }

    /// Whether the peer has closed its sending side.
    pub fn peer_closed(&self) -> bool {
        self.eof
    }

    /// Client: starts a request. The framing comes from its headers: `Content-Length`,
    /// `Transfer-Encoding: chunked`, or neither (no body). Follow with data and
    /// [`send_end`](Self::send_end).
    pub fn send_request(&mut self, head: RequestHead) -> Result<(), ProtoError> {
        if self.role != Role::Client {
            return Err(ProtoError::Misuse("send_request on a server connection"));
        }
        if !matches!((&self.write, &self.read), (Write::Idle, Read::Idle)) {
            return Err(ProtoError::Misuse("a request is already in progress"));
        }
        let framing = match body_framing(Message::Request {
            headers: &head.headers,
            version: head.version,
        }) {
            Ok(f) => f,
            Err(_) => return Err(ProtoError::Misuse("request headers give no valid framing")),
        };
        self.keep_alive &= wants_keep_alive(&head.headers, head.version);
        self.upgrade_requested =
            head.method == Method::CONNECT || head.headers.contains_key(UPGRADE);
        self.method = Some(head.method.clone());
        self.out.push_back(encode_request(&head));
        self.write = Write::Body(Encoder::new(framing));
        self.read = Read::Head;
        Ok(())
    }

    /// Server: sends a response head. 1xx heads are interim (another head follows); a 2xx to
    /// CONNECT or a 101 to an Upgrade switches the connection. The framing comes from the
    /// headers; with neither `Content-Length` nor `Transfer-Encoding` the body is
    /// close-delimited and `Connection: close` is added.
    pub fn send_response(&mut self, mut head: ResponseHead) -> Result<(), ProtoError> {
        if self.role != Role::Server {
            return Err(ProtoError::Misuse("send_response on a client connection"));
        }
        if !matches!(self.write, Write::Idle) || matches!(self.read, Read::Head | Read::Closed) {
            return Err(ProtoError::Misuse("no request is waiting for a response"));
        }
        let status = head.status;
        let is_connect = self.method.as_ref() == Some(&Method::CONNECT);
        if status == StatusCode::SWITCHING_PROTOCOLS {
            if !self.upgrade_requested || is_connect {
                return Err(ProtoError::Misuse("101 without an Upgrade request"));
            }
            return self.switch_with(encode_response(&head));
        }
        if status.is_informational() {
            self.out.push_back(encode_response(&head));
            return Ok(());
        }
        if is_connect {
            if status.is_success() {
                return self.switch_with(encode_response(&head));
            }
            // The client may already have sent tunnel bytes: do not read them as a request.
            self.keep_alive = false;
        }
        let method = self.method.clone().unwrap_or(Method::GET);
        let framing = match body_framing(Message::Response {
            method: &method,
            status,
            headers: &head.headers,
            version: head.version,
        }) {
            Ok(f) => f,
            Err(_) => return Err(ProtoError::Misuse("response headers give no valid framing")),
        };
        if framing == Framing::CloseDelimited {
            self.keep_alive = false;
        }
        self.keep_alive &= wants_keep_alive(&head.headers, head.version);
        if !self.keep_alive && !has_token(&head.headers, CONNECTION, "close") {
            head.headers
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        if self.keep_alive
            && self.peer_http10
            && !has_token(&head.headers, CONNECTION, "keep-alive")
        {
            // Else an HTTP/1.0 client waits for the close (RFC 9112 Appendix C.2.2).
            head.headers
                .append(CONNECTION, HeaderValue::from_static("keep-alive"));
        }
        self.out.push_back(encode_response(&head));
        self.write = Write::Body(Encoder::new(framing));
        Ok(())
    }

    fn switch_with(&mut self, head: Bytes) -> Result<(), ProtoError> {
        self.out.push_back(head);
        self.switch();
        Ok(())
    }

    /// Both directions stop being HTTP (a tunnel or an upgrade).
    fn switch(&mut self) {
        self.read = Read::Switched;
        self.write = Write::Switched;
        self.pending.push_back(Event::Switched);
    }

    /// Sends body bytes of the current message.
    pub fn send_data(&mut self, data: Bytes) -> Result<(), ProtoError> {
        match &mut self.write {
            Write::Body(enc) => enc.data(data, &mut self.out),
            _ => Err(ProtoError::Misuse(
                "send_data with no message body in progress",
            )),
        }
    }

    /// Ends the current message, with trailers (sent only with chunked coding).
    pub fn send_end(&mut self, trailers: Option<http::HeaderMap>) -> Result<(), ProtoError> {
        match &mut self.write {
            Write::Body(enc) => {
                enc.end(trailers, &mut self.out)?;
                if matches!(enc, Encoder::Close) {
                    self.keep_alive = false;
                }
                self.write = Write::Done;
                self.next_cycle();
                Ok(())
            }
            _ => Err(ProtoError::Misuse("send_end with no message in progress")),
        }
    }

    /// Gives up on sending the rest of the current body (e.g. the final response came first):
    /// the connection cannot be reused, unless every byte a `Content-Length` declared is
    /// already written — then the body is complete on the wire and only its end was not yet
    /// told, so it ends normally and the connection stays reusable.
    pub fn abandon_body(&mut self) {
        if let Write::Body(Encoder::Length { declared, sent }) = &self.write {
            if declared == sent {
                let _ = self.send_end(None);
                return;
            }
        }
        if matches!(self.write, Write::Body(_)) {
            self.keep_alive = false;
            self.write = Write::Closed;
        }
    }

    // ---- outputs ------------------------------------------------------------------------

    /// The next bytes to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Whether bytes are waiting in [`poll_transmit`](Self::poll_transmit).
    pub fn has_transmit(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next thing the peer sent. `Ok(None)`: more bytes needed (or nothing is expected).
    pub fn poll_event(&mut self) -> Result<Option<Event>, ProtoError> {
        if let Some(e) = self.pending.pop_front() {
            return Ok(Some(e));
        }
        if self.failed {
            return Ok(None);
        }
        let r = self.poll_event_inner();
        if r.is_err() {
            self.failed = true;
            self.keep_alive = false;
        }
        r
    }

    fn poll_event_inner(&mut self) -> Result<Option<Event>, ProtoError> {
        match &mut self.read {
            Read::Idle | Read::Done | Read::Switched | Read::Closed => Ok(None),
            Read::Head => match self.role {
                Role::Client => self.read_response_head(),
                Role::Server => self.read_request_head(),
            },
            Read::Body(dec) => {
                let d = match dec.decode(&mut self.rbuf, &self.limits)? {
                    Some(d) => d,
                    None if self.eof => dec.eof()?,
                    None => return Ok(None),
                };
                match d {
                    Decoded::Data(b) => Ok(Some(Event::Data(b))),
                    Decoded::End(t) => {
                        if matches!(dec, Decoder::Close) {
                            self.keep_alive = false;
                        }
                        self.read = Read::Done;
                        self.next_cycle();
                        Ok(Some(Event::End(t)))
                    }
                }
            }
        }
    }

    fn skip_empty_lines(&mut self) {
        let n = leading_empty_lines(&self.rbuf);
        if n > 0 {
            let _ = self.rbuf.split_to(n);
            self.scan_from = self.scan_from.saturating_sub(n);
        }
    }

    fn read_response_head(&mut self) -> Result<Option<Event>, ProtoError> {
        self.skip_empty_lines();
        let (head, n) = match parse_response(&self.rbuf, self.scan_from, &self.limits, self.spell)?
        {
            Parsed::Complete(h, n) => (h, n),
            Parsed::Partial(scanned) => {
                self.scan_from = scanned;
                if self.eof {
                    return Err(ProtoError::UnexpectedEof(if self.rbuf.is_empty() {
                        "waiting for a response"
                    } else {
                        "a response head"
                    }));
                }
                return Ok(None);
            }
        };
        let _ = self.rbuf.split_to(n);
        self.scan_from = 0;
        let status = head.status;
        if status == StatusCode::SWITCHING_PROTOCOLS {
            if !self.upgrade_requested || self.method.as_ref() == Some(&Method::CONNECT) {
                return Err(ProtoError::UnexpectedSwitch);
            }
            self.switch();
            return Ok(Some(Event::Response(head)));
        }
        if status.is_informational() {
            return Ok(Some(Event::Response(head)));
        }
        let method = self.method.as_ref();
        if method == Some(&Method::CONNECT) && status.is_success() {
            self.switch();
            return Ok(Some(Event::Response(head)));
        }
        self.keep_alive &= wants_keep_alive(&head.headers, head.version);
        let asked = method.cloned().unwrap_or(Method::GET);
        let framing = body_framing(Message::Response {
            method: &asked,
            status,
            headers: &head.headers,
            version: head.version,
        })?;
        if method == Some(&Method::CONNECT) {
            // A refused CONNECT: its body is read, then the connection is not reused.
            self.keep_alive = false;
        }
        self.read = Read::Body(Decoder::new(framing));
        Ok(Some(Event::Response(head)))
    }

    fn read_request_head(&mut self) -> Result<Option<Event>, ProtoError> {
        self.skip_empty_lines();
        let (head, n) = match parse_request(&self.rbuf, self.scan_from, &self.limits)? {
            Parsed::Complete(h, n) => (h, n),
            Parsed::Partial(scanned) => {
                self.scan_from = scanned;
                if self.eof {
                    if self.rbuf.is_empty() {
                        self.read = Read::Closed;
                        self.keep_alive = false;
                        return Ok(Some(Event::Closed));
                    }
                    return Err(ProtoError::UnexpectedEof("a request head"));
                }
                return Ok(None);
            }
        };
        let _ = self.rbuf.split_to(n);
        self.scan_from = 0;
        check_host(&head)?;
        let framing = body_framing(Message::Request {
            headers: &head.headers,
            version: head.version,
        })?;
        self.keep_alive &= wants_keep_alive(&head.headers, head.version);
        self.peer_http10 = head.version == http::Version::HTTP_10;
        self.upgrade_requested =
            head.headers.contains_key(UPGRADE) && has_token(&head.headers, CONNECTION, "upgrade");
        self.expect_continue = head.version == http::Version::HTTP_11
            && has_token(&head.headers, EXPECT, "100-continue");
        self.method = Some(head.method.clone());
        self.read = Read::Body(Decoder::new(framing));
        Ok(Some(Event::Request(head)))
    }

    fn next_cycle(&mut self) {
        if !matches!((&self.read, &self.write), (Read::Done, Write::Done)) {
            return;
        }
        if self.keep_alive && !self.eof {
            self.read = match self.role {
                Role::Client => Read::Idle,
                Role::Server => Read::Head,
            };
            self.write = Write::Idle;
            self.method = None;
            self.upgrade_requested = false;
            self.expect_continue = false;
        } else {
            self.read = Read::Closed;
            self.write = Write::Closed;
        }
    }

    // ---- state queries ------------------------------------------------------------------

    /// After [`Event::Switched`]: the bytes received past the head, which belong to the new
    /// protocol (tunnel).
    /// They are copied out: a tunnel keeps only them, not the read buffer they arrived in
    /// (up to the driver's read chunk, which would stay allocated as long as the tunnel).
    pub fn take_leftover(&mut self) -> Bytes {
        let rest = Bytes::copy_from_slice(&self.rbuf);
        self.rbuf = BytesMut::new();
        rest
    }

    /// Whether the connection must be closed once pending bytes are written.
    pub fn must_close(&self) -> bool {
        self.failed || matches!(self.read, Read::Closed) || matches!(self.write, Write::Closed)
    }

    /// Server: whether the current request asked for `100 Continue` before its body.
    pub fn expects_continue(&self) -> bool {
        self.expect_continue
    }

    /// Whether the connection has switched protocols.
    pub fn is_switched(&self) -> bool {
        matches!(self.read, Read::Switched)
    }
}
