//! The server side of an HTTP/1.1 connection as a [`Core`]: requests one after another over
//! the [`Connection`] codec, with every decision of serving them: the idle and head
//! deadlines (and the 408), the answers to malformed requests, `100 Continue`, framing the
//! response from its length, the 500 for a handler that gave no answer, how much of an
//! unread request body is discarded, how far pipelined requests are read ahead, and a
//! client going away while its request is being handled.
//!
//! ```text
//!  Head --request--> Exchange --(request End, response End)--> Head (keep-alive) | closed
//!   | idle deadline: closed; head deadline: 408, closed; malformed: 4xx/5xx, closed
//!   +-- AcceptTunnel (2xx to CONNECT, 101 to Upgrade) --> Tunnel(..), stream released
//! ```
//!
//! Call contract: the [`Core`] one. After [`ServerEvent::Request`] the application answers
//! with exactly one of [`ServerCommand::Respond`], [`ServerCommand::AcceptTunnel`] or
//! [`ServerCommand::NoAnswer`], and gives the response body while
//! [`ServerCore::wants_body`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, Version};

use burrow_http_core::driver::{Core, Finish};
use burrow_http_core::{handshake, message};
use burrow_transport::Error;

use super::framing::{self, has_token};
use super::Role;
use super::{encode_response, Connection, Event, Limits, ProtoError, RequestHead, ResponseHead};

/// Request body bytes a server reads and discards after answering early, before it gives up
/// on the connection instead.
pub const MAX_DISCARD: usize = 1024 * 1024;
/// Bytes a server reads ahead (pipelined requests) while a handler works, watching for the
/// client closing the connection; beyond this it stops reading until the answer is sent.
pub const MAX_READ_AHEAD: usize = 64 * 1024;

/// The server's deadlines; `None`: no deadline.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Deadlines {
    /// A whole request head must arrive within this from its first byte (else 408).
    pub head: Option<Duration>,
    /// A connection waiting for its next (or first) request is closed after this.
    pub idle: Option<Duration>,
}

/// What the application tells the connection.
#[derive(Debug)]
pub enum ServerCommand {
    /// Answer the current request; `length`: the body's exact length when known.
    Respond {
        /// The head (framing fields are added when absent).
        head: ResponseHead,
        /// The body length, if known.
        length: Option<u64>,
    },
    /// A piece of the response body.
    Data(Bytes),
    /// The end of the response body, with trailers.
    End(Option<HeaderMap>),
    /// The response body failed: the connection is closed.
    BodyFailed(Error),
    /// The handler let go of the request without answering (500).
    NoAnswer,
    /// Turn the request into a tunnel with this success answer.
    AcceptTunnel {
        /// 2xx to CONNECT, 101 to an Upgrade.
        status: StatusCode,
        /// The answer's header fields.
        headers: HeaderMap,
    },
    /// Nobody reads the request body any more: discard the rest (up to [`MAX_DISCARD`]).
    StopBody,
    /// Close once the current request (if any) is answered.
    Shutdown,
}

/// What the connection tells the application.
#[derive(Debug, PartialEq)]
pub enum ServerEvent {
    /// A request head.
    Request {
        /// The head as received.
        head: RequestHead,
        /// The request target as a URI (authority-form for CONNECT).
        uri: Uri,
        /// The protocol an Upgrade asks for (as `:protocol` on HTTP/2 and HTTP/3).
        protocol: Option<String>,
        /// The body length when the framing says it (`Some(0)`: no body).
        length: Option<u64>,
    },
    /// Request body bytes.
    Data(Bytes),
    /// The end of the request body, with trailers.
    End(Option<HeaderMap>),
    /// The request body broke off (the connection is closed).
    BodyFailed(Error),
    /// The client went away while its request was being handled.
    Cancelled,
    /// The outcome of [`ServerCommand::AcceptTunnel`]; on success the stream is released.
    Tunnel(Result<(StatusCode, HeaderMap), Error>),
    /// The connection failed before a request could be read (what the client sent is not
    /// HTTP/1.1, or the stream broke); the client was answered when it could be.
    Failed(Error),
}

#[derive(Debug)]
struct Exchange {
    method: Method,
    /// An HTTP/1.0 request: its client cannot read chunked.
    http10: bool,
    req_done: bool,
    replied: bool,
    resp_done: bool,
    /// Request body bytes thrown away since nobody reads them.
    discarding: Option<usize>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for a head: closed quietly at `idle_until`; once it has started, answered
    /// 408 at `head_until`.
    Head {
        idle_until: Option<Instant>,
        head_until: Option<Instant>,
    },
    Exchange(Exchange),
    Done,
}

/// The server side of one HTTP/1.1 connection.
#[derive(Debug)]
pub struct ServerCore {
    conn: Connection,
    deadlines: Deadlines,
    phase: Phase,
    events: VecDeque<ServerEvent>,
    /// Answers written around the codec (to requests it could not parse).
    out: VecDeque<Bytes>,
    shutdown: bool,
    finish: Finish,
}

fn uri_of(head: &RequestHead) -> Option<Uri> {
    if head.method == Method::CONNECT {
        // authority-form (RFC 9112 §3.2.3)
        return Uri::builder().authority(head.target.as_str()).build().ok();
    }
    head.target.parse::<Uri>().ok()
}

impl ServerCore {
    /// A server connection with these limits and deadlines, its idle deadline from `now`.
    pub fn new(limits: Limits, deadlines: Deadlines, now: Instant) -> Self {
        ServerCore {
            conn: Connection::new(Role::Server, limits),
            deadlines,
            phase: Phase::Head {
                idle_until: deadlines.idle.map(|d| now + d),
                head_until: None,
            },
            events: VecDeque::new(),
            out: VecDeque::new(),
            shutdown: false,
            finish: Finish::Running,
        }
    }

    /// Whether the response still takes body pieces (a response without content takes
    /// none).
    pub fn takes_body(&self) -> bool {
        matches!(&self.phase, Phase::Exchange(x) if x.replied && !x.resp_done)
    }

    /// Whether a response body piece is wanted now (not while earlier pieces wait to be
    /// written: back-pressure).
    pub fn wants_body(&self) -> bool {
        self.takes_body() && !self.conn.has_transmit()
    }

    /// After a successful [`ServerEvent::Tunnel`]: the bytes read past the request head.
    pub fn take_leftover(&mut self) -> Bytes {
        self.conn.take_leftover()
    }

    /// Answers with a short text and closes: for requests that cannot be served.
    fn answer_and_close(&mut self, status: u16, why: &str) {
        let msg = format!("{why}\n");
        let head = ResponseHead::new(status)
            .header("content-type", "text/plain")
            .header("connection", "close")
            .header("content-length", &msg.len().to_string());
        self.out.push_back(encode_response(&head));
        self.out.push_back(Bytes::from(msg));
        self.close();
    }

    fn close(&mut self) {
        self.phase = Phase::Done;
        self.finish = Finish::Close;
    }

    fn fail(&mut self, e: Error) {
        if matches!(self.phase, Phase::Exchange(_)) {
            self.events.push_back(ServerEvent::BodyFailed(e));
        }
        self.close();
    }

    /// Turns what the codec read into events and moves between requests.
    fn process(&mut self, now: Instant) {
        loop {
            match &mut self.phase {
                Phase::Done => return,
                Phase::Head { head_until, .. } => match self.conn.poll_event() {
                    Ok(Some(Event::Request(h))) => self.request(h),
                    Ok(Some(Event::Closed)) => return self.close(),
                    Ok(Some(_)) => {
                        self.events.push_back(ServerEvent::Failed(Error::protocol(
                            "HTTP/1.1: unexpected event",
                        )));
                        return self.close();
                    }
                    Ok(None) => {
                        let started = !self.conn.read_buffer().is_empty();
                        if started && head_until.is_none() {
                            *head_until = self.deadlines.head.map(|d| now + d);
                        }
                        if self.shutdown && !started {
                            self.close();
                        }
                        return;
                    }
                    Err(p) => {
                        self.events.push_back(ServerEvent::Failed(p.clone().into()));
                        return self.answer_and_close(p.status(), &p.to_string());
                    }
                },
                Phase::Exchange(x) => {
                    if x.req_done {
                        if x.replied && x.resp_done {
                            self.next(now);
                            continue;
                        }
                        return;
                    }
                    match self.conn.poll_event() {
                        Ok(Some(Event::Data(d))) => match &mut x.discarding {
                            Some(n) => {
                                *n += d.len();
                                if *n > MAX_DISCARD {
                                    return self.close();
                                }
                            }
                            None => self.events.push_back(ServerEvent::Data(d)),
                        },
                        Ok(Some(Event::End(t))) => {
                            x.req_done = true;
                            if x.discarding.is_none() {
                                self.events.push_back(ServerEvent::End(t));
                            }
                        }
                        Ok(Some(_)) => {
                            return self.fail(Error::protocol("HTTP/1.1: unexpected event"))
                        }
                        Ok(None) => return,
                        // A body that breaks the framing before any answer: the client
                        // is told why (400), as for a bad head, and the handler sees the
                        // body fail. A client gone mid-body gets no answer.
                        Err(e) if !x.replied && !matches!(e, ProtoError::UnexpectedEof(_)) => {
                            let (status, why) =
                                (e.status(), format!("malformed request body: {e}"));
                            self.events.push_back(ServerEvent::BodyFailed(e.into()));
                            return self.answer_and_close(status, &why);
                        }
                        Err(e) => return self.fail(e.into()),
                    }
                }
            }
        }
    }

    fn request(&mut self, head: RequestHead) {
        let Some(uri) = uri_of(&head) else {
            return self.answer_and_close(400, "malformed message head: invalid request target");
        };
        if self.conn.expects_continue() {
            if let Err(e) = self.conn.send_response(ResponseHead::new(100)) {
                return self.fail(e.into());
            }
        }
        let length = framing::content_length(&head.headers).ok().flatten().or(
            if head.headers.contains_key(TRANSFER_ENCODING) {
                None
            } else {
                Some(0)
            },
        );
        // An Upgrade request (e.g. CONNECT-UDP over HTTP/1.1, RFC 9298 §3.2) names its
        // protocol the way :protocol does on HTTP/2 and HTTP/3.
        let protocol = has_token(&head.headers, http::header::CONNECTION, "upgrade")
            .then(|| head.headers.get(UPGRADE))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .map(|v| v.trim().to_ascii_lowercase());
        self.phase = Phase::Exchange(Exchange {
            method: head.method.clone(),
            http10: head.version == http::Version::HTTP_10,
            req_done: false,
            replied: false,
            resp_done: false,
            discarding: None,
        });
        self.events.push_back(ServerEvent::Request {
            head,
            uri,
            protocol,
            length,
        });
    }

    /// The exchange is over: wait for the next request, or close.
    fn next(&mut self, now: Instant) {
        if self.conn.must_close() || self.shutdown && self.conn.read_buffer().is_empty() {
            return self.close();
        }
        self.phase = Phase::Head {
            idle_until: self.deadlines.idle.map(|d| now + d),
            head_until: None,
        };
    }

    fn respond(&mut self, mut head: ResponseHead, length: Option<u64>) -> Result<(), ProtoError> {
        let Phase::Exchange(x) = &mut self.phase else {
            return Err(ProtoError::Misuse("no request is waiting for a response"));
        };
        if x.replied {
            return Err(ProtoError::Misuse("the request was already answered"));
        }
        x.replied = true;
        let status = head.status;
        let (method, http10) = (x.method.clone(), x.http10);
        if message::response_announces_length(&method, status)
            && !head.headers.contains_key(CONTENT_LENGTH)
            && !head.headers.contains_key(TRANSFER_ENCODING)
        {
            match length {
                Some(n) => {
                    head.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
                }
                // HTTP/1.0 has no chunked (RFC 9112 §6.1): the body ends with the
                // connection, which the codec then closes.
                None if http10 => {}
                None => {
                    head.headers
                        .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
                }
            };
        }
        self.conn.send_response(head)?;
        if !message::response_has_content(&method, status) {
            // The handler's body is not sent (RFC 9110 §9.3.2).
            self.conn.send_end(None)?;
            if let Phase::Exchange(x) = &mut self.phase {
                x.resp_done = true;
            }
        }
        Ok(())
    }

    fn body_piece(&mut self, r: Result<(), ProtoError>, ends: bool) {
        match r {
            Err(e) => self.fail(e.into()),
            Ok(()) if ends => {
                if let Phase::Exchange(x) = &mut self.phase {
                    x.resp_done = true;
                }
            }
            Ok(()) => {}
        }
    }

    fn accept_tunnel(&mut self, status: StatusCode, headers: HeaderMap) {
        let r = handshake::check_accept(status == 101, Version::HTTP_11, status).and_then(|()| {
            let mut head = ResponseHead::new(status.as_u16());
            head.headers = headers.clone();
            self.conn.send_response(head)?;
            if self.conn.is_switched() {
                Ok(())
            } else {
                Err(Error::invalid_input("request cannot become a tunnel"))
            }
        });
        self.phase = Phase::Done;
        self.finish = if r.is_ok() {
            Finish::Release
        } else {
            Finish::Close
        };
        self.events
            .push_back(ServerEvent::Tunnel(r.map(|()| (status, headers))));
    }
}

impl Core for ServerCore {
    type Command = ServerCommand;
    type Event = ServerEvent;

    fn read_buffer(&mut self) -> &mut BytesMut {
        self.conn.read_buffer()
    }

    fn handle_read(&mut self, n: usize, now: Instant) {
        if n == 0 {
            self.conn.receive_eof();
            if let Phase::Exchange(x) = &self.phase {
                if x.req_done && !x.replied {
                    // Gone while the handler works: its work is cancelled.
                    self.events.push_back(ServerEvent::Cancelled);
                    return self.close();
                }
            }
        }
        self.process(now);
    }

    fn handle_command(&mut self, command: ServerCommand, now: Instant) {
        if self.finish != Finish::Running {
            return;
        }
        let r = match command {
            ServerCommand::Respond { head, length } => self.respond(head, length),
            ServerCommand::NoAnswer => self.respond(
                ResponseHead::new(500).header("content-length", "0"),
                Some(0),
            ),
            ServerCommand::Data(d) if self.takes_body() => {
                let r = self.conn.send_data(d);
                self.body_piece(r, false);
                Ok(())
            }
            ServerCommand::End(t) if self.takes_body() => {
                let r = self.conn.send_end(t);
                self.body_piece(r, true);
                Ok(())
            }
            ServerCommand::Data(_) | ServerCommand::End(_) => Ok(()),
            ServerCommand::BodyFailed(_) => {
                self.close();
                Ok(())
            }
            ServerCommand::AcceptTunnel { status, headers } => {
                self.accept_tunnel(status, headers);
                Ok(())
            }
            ServerCommand::StopBody => {
                if let Phase::Exchange(x) = &mut self.phase {
                    x.discarding.get_or_insert(0);
                }
                Ok(())
            }
            ServerCommand::Shutdown => {
                self.shutdown = true;
                Ok(())
            }
        };
        if let Err(e) = r {
            self.fail(e.into());
        }
        self.process(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Phase::Head {
            idle_until,
            head_until,
        } = &self.phase
        {
            if head_until.is_some_and(|t| t <= now) {
                self.answer_and_close(408, "request head not received in time");
            } else if head_until.is_none() && idle_until.is_some_and(|t| t <= now) {
                self.close();
            }
        }
    }

    fn handle_io_error(&mut self, error: Error, _now: Instant) {
        match &self.phase {
            Phase::Exchange(x) if x.req_done && !x.replied => {
                self.events.push_back(ServerEvent::Cancelled);
                self.close();
            }
            Phase::Exchange(_) => self.fail(error),
            _ => {
                self.events.push_back(ServerEvent::Failed(error));
                self.close();
            }
        }
    }

    fn handle_app_closed(&mut self, _now: Instant) {
        // Nobody takes requests or answers them any more.
        self.close();
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit().or_else(|| self.out.pop_front())
    }

    fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.phase {
            Phase::Head {
                idle_until,
                head_until,
            } => head_until.or(*idle_until),
            _ => None,
        }
    }

    fn wants_read(&self) -> bool {
        match &self.phase {
            Phase::Head { .. } => true,
            // The request body; or, once it is read and while the handler works, a watch
            // for the client going away (pipelined bytes wait in the buffer, up to a bound).
            Phase::Exchange(x) => {
                !x.req_done
                    || (!x.replied
                        && !self.conn.peer_closed()
                        && self.conn.buffered() < MAX_READ_AHEAD)
            }
            Phase::Done => false,
        }
    }

    fn finish(&self) -> Finish {
        self.finish
    }
}
