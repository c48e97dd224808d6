//! The client side of an HTTP/1.1 connection as a [`Core`]: one request (or tunnel) at a
//! time over the [`Connection`] codec, with every decision of an exchange: the wait for
//! `100 Continue`, the interim-response limit, giving up on a body the server answered
//! early, what a reused connection's failure means for retries, how much of a refused
//! tunnel's body is read.
//!
//! ```text
//!  Idle --Request--> Exchange --(response End, body End)--> Finished{reusable} --> Idle
//!   |                   \--error / Cancel--> Failed ------------------------------> closed
//!   +--Tunnel--> Tunnelling --2xx/101--> Tunnel{..} (stream released) | refused --> closed
//!   +--bytes or EOF from the server--> closed (bytes past a response: not reusable)
//! ```
//!
//! Call contract: the [`Core`] one. Commands come one exchange at a time: a
//! [`ClientCommand::Request`] or [`ClientCommand::Tunnel`] only when
//! [`ClientCore::is_idle`], body pieces only while [`ClientCore::wants_body`]. Every request
//! or tunnel ends with exactly one [`ClientEvent::Finished`]. In order: `Response`, `Data`*,
//! `Finished`, `End`; or `Failed`, `Finished` at any point; or `Tunnel`, `Finished`.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use http::header::{CONNECTION, CONTENT_LENGTH, EXPECT, HOST, TE, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};

use burrow_http_core::driver::{Core, Finish};
use burrow_http_core::{handshake, message, TunnelRequest, MAX_INTERIM_RESPONSES};
use burrow_transport::{Error, ErrorKind};

use super::{framing, Connection, Event, Limits, RequestHead, ResponseHead, Role};

/// How long to wait for `100 Continue` before sending a body anyway (curl waits 1 s).
pub const EXPECT_CONTINUE_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest refused-tunnel body read before the connection is dropped.
pub const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// What the application asks of the connection.
#[derive(Debug)]
pub enum ClientCommand {
    /// Send a request; `body`: whether body pieces follow (else the head is all of it).
    Request {
        /// The head, as [`request_head`] builds it.
        head: RequestHead,
        /// Whether a body follows.
        body: bool,
    },
    /// A piece of the request body.
    Data(Bytes),
    /// The end of the request body, with trailers.
    End(Option<HeaderMap>),
    /// The request body failed: the request cannot be completed.
    BodyFailed(Error),
    /// The caller gave up (its request future or its response body was dropped).
    Cancel,
    /// Open a tunnel (CONNECT, or an Upgrade for extended CONNECT).
    Tunnel(TunnelRequest),
}

/// What the connection tells the application.
#[derive(Debug, PartialEq)]
pub enum ClientEvent {
    /// The final response head and its body length when known (interim heads stay here).
    Response {
        /// The head.
        head: ResponseHead,
        /// The body length: `Some(0)` for a response that has no body.
        length: Option<u64>,
    },
    /// Response body bytes.
    Data(Bytes),
    /// The exchange is over on the wire; `reusable`: the connection may take another
    /// request. Comes before the body's `End`, so a caller that sends its next request as
    /// soon as it has read a body finds the connection free.
    Finished {
        /// Whether the connection stays open for the next request.
        reusable: bool,
    },
    /// The end of the response body, with trailers.
    End(Option<HeaderMap>),
    /// The request (or tunnel) failed; the connection is closed.
    Failed(Error),
    /// The tunnel is open: the stream is released to carry it.
    Tunnel {
        /// The success status (2xx, or 101 for an Upgrade).
        status: StatusCode,
        /// The answer's header fields.
        headers: HeaderMap,
    },
}

#[derive(Debug)]
struct Exchange {
    method: Method,
    /// Waiting for `100 Continue` before sending the body, until then.
    continue_until: Option<Instant>,
    head_seen: bool,
    req_done: bool,
    interim: usize,
}

#[derive(Debug)]
struct Tunnelling {
    request: TunnelRequest,
    answer: Option<ResponseHead>,
    refusal_body: usize,
    interim: usize,
}

#[derive(Debug)]
enum Job {
    Idle,
    Exchange(Exchange),
    Tunnel(Box<Tunnelling>),
}

/// The client side of one HTTP/1.1 connection.
#[derive(Debug)]
pub struct ClientCore {
    conn: Connection,
    job: Job,
    served: u64,
    events: VecDeque<ClientEvent>,
    /// No more requests will come: close once idle.
    closing: bool,
    finish: Finish,
    connect_version: Version,
}

fn too_many_interim() -> Error {
    Error::protocol(format!(
        "HTTP/1.1: more than {MAX_INTERIM_RESPONSES} interim (1xx) responses"
    ))
}

impl ClientCore {
    /// A client connection with these limits on what the server may send.
    pub fn new(limits: Limits) -> Self {
        ClientCore {
            conn: Connection::new(Role::Client, limits),
            job: Job::Idle,
            served: 0,
            events: VecDeque::new(),
            closing: false,
            finish: Finish::Running,
            connect_version: Version::HTTP_11,
        }
    }

    /// Whether a new request may be sent now.
    pub fn is_idle(&self) -> bool {
        matches!(self.job, Job::Idle) && self.finish == Finish::Running
    }

    /// Whether the request still takes body pieces.
    pub fn takes_body(&self) -> bool {
        matches!(&self.job, Job::Exchange(x) if !x.req_done) && self.finish == Finish::Running
    }

    /// Whether a request body piece is wanted now: not before `100 Continue` (or its
    /// deadline), and not while earlier pieces wait to be written (back-pressure).
    pub fn wants_body(&self) -> bool {
        self.takes_body()
            && matches!(&self.job, Job::Exchange(x) if x.continue_until.is_none())
            && !self.conn.has_transmit()
    }

    /// After [`ClientEvent::Tunnel`]: the bytes read past the answer (the tunnel's first).
    pub fn take_leftover(&mut self) -> Bytes {
        self.conn.take_leftover()
    }

    /// Fails the current job: a reused connection the server closed before answering (its
    /// keep-alive timeout raced our request) did not process the request.
    fn fail(&mut self, e: Error) {
        let unanswered = matches!(&self.job, Job::Exchange(x) if !x.head_seen);
        let e = if unanswered
            && self.served > 0
            && matches!(e.kind(), ErrorKind::Closed | ErrorKind::Io)
        {
            Error::peer(
                ErrorKind::NotProcessed,
                "HTTP/1.1: reused connection closed before a response",
            )
            .with_source(e)
        } else {
            e
        };
        let active = !matches!(self.job, Job::Idle);
        self.conn.abandon_body();
        self.job = Job::Idle;
        self.events.push_back(ClientEvent::Failed(e));
        if active {
            self.events
                .push_back(ClientEvent::Finished { reusable: false });
        }
        self.finish = Finish::Close;
    }

    fn start(&mut self, head: RequestHead, body: bool, now: Instant) {
        let expect = head
            .headers
            .get(EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let method = head.method.clone();
        if let Err(e) = self.conn.send_request(head) {
            // Nothing was sent: the connection stays usable.
            self.events.push_back(ClientEvent::Failed(e.into()));
            self.events
                .push_back(ClientEvent::Finished { reusable: true });
            return;
        }
        let mut x = Exchange {
            method,
            continue_until: (expect && body).then(|| now + EXPECT_CONTINUE_TIMEOUT),
            head_seen: false,
            req_done: !body,
            interim: 0,
        };
        if !body {
            // A request without a body ends with its head; otherwise a response arriving
            // before the (empty) body's end would look like an abandoned upload.
            if let Err(e) = self.conn.send_end(None) {
                self.job = Job::Exchange(x);
                return self.fail(e.into());
            }
            x.req_done = true;
        }
        self.job = Job::Exchange(x);
    }

    /// CONNECT requests go out as `version` (HTTP/1.1 by default; HTTP/1.0 for proxies
    /// that need it).
    pub fn with_connect_version(mut self, version: Version) -> Self {
        self.connect_version = version;
        self
    }

    /// Responses keep how their heads were spelled ([`Connection::keep_spelling`]).
    pub fn with_spelling(mut self, on: bool) -> Self {
        self.conn.keep_spelling(on);
        self
    }

    fn tunnel(&mut self, request: TunnelRequest) {
        let version = self.connect_version;
        let r = handshake::request_head(&request, Version::HTTP_11).and_then(|th| {
            let mut head = RequestHead::new(th.method.clone(), th.h1_target().to_string());
            head.version = version;
            head.headers = th.headers;
            self.conn.send_request(head)?;
            self.conn.send_end(None)?;
            Ok(())
        });
        self.job = Job::Tunnel(Box::new(Tunnelling {
            request,
            answer: None,
            refusal_body: 0,
            interim: 0,
        }));
        if let Err(e) = r {
            self.fail(e);
        }
    }

    fn body(&mut self, r: Result<(), super::ProtoError>, ends: bool) {
        if let Err(e) = r {
            return self.fail(e.into());
        }
        if ends {
            if let Job::Exchange(x) = &mut self.job {
                x.req_done = true;
            }
        }
    }

    /// Turns what the codec read into events.
    fn process(&mut self) {
        while self.finish == Finish::Running {
            let ev = match self.conn.poll_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return self.fail(e.into()),
            };
            match &mut self.job {
                Job::Exchange(_) => self.on_response_event(ev),
                Job::Tunnel(_) => self.on_tunnel_event(ev),
                Job::Idle => {
                    return self.fail(Error::protocol(
                        "HTTP/1.1: bytes from the server with no request outstanding",
                    ))
                }
            }
        }
        self.check_done();
    }

    fn on_response_event(&mut self, ev: Event) {
        let Job::Exchange(x) = &mut self.job else {
            return;
        };
        match ev {
            Event::Response(h) if h.status.is_informational() => {
                x.interim += 1;
                if x.interim > MAX_INTERIM_RESPONSES {
                    return self.fail(too_many_interim());
                }
                if h.status == StatusCode::CONTINUE {
                    x.continue_until = None;
                }
            }
            Event::Response(head) => {
                x.continue_until = None;
                x.head_seen = true;
                let length = if !message::response_has_content(&x.method, head.status) {
                    Some(0)
                } else {
                    framing::content_length(&head.headers).ok().flatten()
                };
                self.events
                    .push_back(ClientEvent::Response { head, length });
            }
            Event::Data(d) => self.events.push_back(ClientEvent::Data(d)),
            Event::End(t) => {
                if !x.req_done {
                    // The final response came before we finished the body: stop sending.
                    self.conn.abandon_body();
                }
                self.job = Job::Idle;
                self.served += 1;
                // Bytes past the response are no response of anything (RFC 9112 §6.3):
                // the connection is not reused.
                let reusable =
                    !self.conn.must_close() && !self.closing && self.conn.buffered() == 0;
                self.events.push_back(ClientEvent::Finished { reusable });
                self.events.push_back(ClientEvent::End(t));
                if !reusable {
                    self.finish = Finish::Close;
                }
            }
            Event::Switched | Event::Request(_) | Event::Closed => {
                self.fail(Error::protocol("HTTP/1.1: unexpected switch"))
            }
        }
    }

    fn on_tunnel_event(&mut self, ev: Event) {
        let Job::Tunnel(t) = &mut self.job else {
            return;
        };
        match ev {
            Event::Response(h) if h.status.is_informational() && h.status != 101 => {
                t.interim += 1;
                if t.interim > MAX_INTERIM_RESPONSES {
                    self.fail(too_many_interim());
                }
            }
            // A success is followed by Switched; anything else by its body.
            Event::Response(h) => t.answer = Some(h),
            Event::Switched => {
                let Some(h) = t.answer.take() else {
                    return self.fail(Error::protocol("HTTP/1.1: switch without response"));
                };
                match handshake::judge_answer(&t.request, Version::HTTP_11, h.status, &h.headers) {
                    Ok(()) => {
                        self.job = Job::Idle;
                        self.events.push_back(ClientEvent::Tunnel {
                            status: h.status,
                            headers: h.headers,
                        });
                        self.events
                            .push_back(ClientEvent::Finished { reusable: false });
                        self.finish = Finish::Release;
                    }
                    Err(e) => self.fail(e),
                }
            }
            Event::Data(d) => {
                t.refusal_body += d.len();
                if t.refusal_body > MAX_REFUSAL_BODY {
                    self.refused();
                }
            }
            Event::End(_) => self.refused(),
            Event::Request(_) | Event::Closed => {
                self.fail(Error::protocol("HTTP/1.1: unexpected event"))
            }
        }
    }

    fn refused(&mut self) {
        let e = match &self.job {
            Job::Tunnel(t) if t.answer.is_some() => t
                .answer
                .as_ref()
                .map(|h| burrow_http_core::refused(h.status, &h.headers)),
            _ => None,
        };
        self.fail(e.unwrap_or_else(|| Error::protocol("HTTP/1.1: no response to tunnel request")));
    }

    fn check_done(&mut self) {
        if self.finish == Finish::Running && matches!(self.job, Job::Idle) && self.closing {
            self.finish = Finish::Close;
        }
    }
}

impl Core for ClientCore {
    type Command = ClientCommand;
    type Event = ClientEvent;

    fn read_buffer(&mut self) -> &mut BytesMut {
        self.conn.read_buffer()
    }

    fn handle_read(&mut self, n: usize, _now: Instant) {
        if n == 0 {
            self.conn.receive_eof();
        }
        if self.is_idle() {
            // Between exchanges the server has nothing to say. Its close ends the
            // connection, so it is not reused; bytes from it answer no request and must
            // not be taken for the next one's response (RFC 9112 §6.3), so they close it
            // too.
            self.finish = Finish::Close;
            return;
        }
        self.process();
    }

    fn handle_command(&mut self, command: ClientCommand, now: Instant) {
        if self.finish != Finish::Running {
            if let ClientCommand::Request { .. } | ClientCommand::Tunnel(_) = command {
                // Never sent: the caller may send it on another connection.
                self.events.push_back(ClientEvent::Failed(Error::peer(
                    ErrorKind::NotProcessed,
                    "HTTP/1.1: the connection closed before the request was sent",
                )));
                self.events
                    .push_back(ClientEvent::Finished { reusable: false });
            }
            return;
        }
        match command {
            ClientCommand::Request { head, body } if self.is_idle() => self.start(head, body, now),
            ClientCommand::Tunnel(t) if self.is_idle() => self.tunnel(t),
            ClientCommand::Request { .. } | ClientCommand::Tunnel(_) => {
                self.events
                    .push_back(ClientEvent::Failed(Error::invalid_input(
                        "HTTP/1.1: a request is already in progress",
                    )));
                self.events
                    .push_back(ClientEvent::Finished { reusable: true });
            }
            ClientCommand::Data(d) if self.takes_body() => {
                let r = self.conn.send_data(d);
                self.body(r, false);
            }
            ClientCommand::End(t) if self.takes_body() => {
                let r = self.conn.send_end(t);
                self.body(r, true);
            }
            ClientCommand::Data(_) | ClientCommand::End(_) => {}
            ClientCommand::BodyFailed(e) => self.fail(e),
            ClientCommand::Cancel => {
                if !matches!(self.job, Job::Idle) {
                    self.fail(Error::local(
                        ErrorKind::Cancelled,
                        "request abandoned by its caller",
                    ));
                }
            }
        }
        self.process();
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Job::Exchange(x) = &mut self.job {
            if x.continue_until.is_some_and(|t| t <= now) {
                // No `100 Continue` in time: send the body anyway (RFC 9110 §10.1.1).
                x.continue_until = None;
            }
        }
    }

    fn handle_io_error(&mut self, error: Error, _now: Instant) {
        if matches!(self.job, Job::Idle) {
            self.finish = Finish::Close;
        } else {
            self.fail(error);
        }
    }

    fn handle_app_closed(&mut self, _now: Instant) {
        self.closing = true;
        self.check_done();
    }

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.conn.poll_transmit()
    }

    fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match &self.job {
            Job::Exchange(x) => x.continue_until,
            _ => None,
        }
    }

    /// Always while running, idle too: a server's close or stray bytes between exchanges
    /// are seen when they come, not when the next request is sent.
    fn wants_read(&self) -> bool {
        self.finish == Finish::Running
    }

    fn finish(&self) -> Finish {
        self.finish
    }
}

/// The wire head for a request: the target form (absolute-form to a proxy when
/// `absolute_form`, authority-form for CONNECT, else origin-form), `Host` from the URI when
/// absent, framing from the body length when the caller set none.
pub fn request_head(
    parts: &http::request::Parts,
    body_length: Option<u64>,
    absolute_form: bool,
) -> Result<RequestHead, Error> {
    let uri = &parts.uri;
    let target = if absolute_form && uri.scheme().is_some() {
        burrow_http_core::target::without_userinfo(uri).to_string()
    } else if parts.method == Method::CONNECT {
        burrow_http_core::target::authority(uri)
            .ok_or_else(|| Error::invalid_input("CONNECT needs an authority"))?
    } else {
        uri.path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "/".into())
    };
    let mut head = RequestHead::new(parts.method.clone(), target);
    head.version = if parts.version == Version::HTTP_10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    if !parts.headers.contains_key(HOST) {
        let value = burrow_http_core::target::host_header(uri)
            .ok_or_else(|| Error::invalid_input("request has no Host header nor authority"))?;
        head.headers.insert(
            HOST,
            HeaderValue::from_str(&value).map_err(|_| Error::invalid_input("invalid Host"))?,
        );
    }
    for (k, v) in &parts.headers {
        head.headers.append(k, v.clone());
    }
    // Connection-specific fields are ours to write (RFC 9110 §7.6.1); keep the user's others.
    if !head.headers.contains_key(CONTENT_LENGTH) && !head.headers.contains_key(TRANSFER_ENCODING) {
        match body_length {
            Some(0)
                if matches!(
                    parts.method,
                    Method::GET | Method::HEAD | Method::DELETE | Method::OPTIONS | Method::CONNECT
                ) => {}
            Some(n) => {
                head.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
            }
            None => {
                head.headers
                    .insert(TRANSFER_ENCODING, HeaderValue::from_static("chunked"));
            }
        }
    }
    // A sender of TE names it in Connection too (RFC 9110 §10.1.4): it is for this hop.
    if head.headers.contains_key(TE) && !framing::has_token(&head.headers, CONNECTION, "te") {
        head.headers
            .append(CONNECTION, HeaderValue::from_static("te"));
    }
    Ok(head)
}
