//! The proxy's decision core, sans-I/O: one [`Decision`] per request or tunnel, whichever
//! listener it came from (HTTP/1.1, HTTP/2, HTTP/3 or SOCKS). Events in — the request, the
//! replies to the commands that wait for something (a hook, a reservation, a dial, an
//! acceptance, a forwarded exchange), the client giving up, the time — and commands out:
//! call the hooks, refuse, reserve, dial, accept, relay, forward, respond. The listener
//! drivers only run the commands and report back, the way mitmproxy's layers yield
//! commands whose replies come back as events: a hook is a [`Command::Hook`] whose reply
//! is an [`Input::Hooked`].
//!
//! ```text
//! Request/Socks ─► auth (407) ─► Via loop (508) ─► target (400/501/403)
//!   ─► [Hook: Tunnel / Request (+ RequestBody)] ─► Respond: local answer | Failed: 502
//!   ─► Reserve ─► Reserved(Err) ─► 429 / 503
//!       tunnel:  rules (403) ─► Dial ─► Dialed(Err) ─► 403/502/504 + Proxy-Status
//!                                │ Ok ─► Accept ─► Accepted(Ok) ─► Relay ─► Relayed
//!       forward: rules (403) ─► Forward (deadline: 504) ─► Forwarded(Err) ─► 502/504
//!                                │ Ok ─► [Hook: Response (+ ResponseBody)] ─► Respond
//!   ─► [Notify: Closed(summary)] ─► Done
//! Cancelled at any wait ─► Abandon
//! ```
//!
//! Hook steps (in brackets) happen only when the policy says hooks are installed.
//!
//! Call contract: [`handle`](Decision::handle) each [`Input`] with the time, then drain
//! [`poll_command`](Decision::poll_command); a command that waits (`Hook`, `Reserve`,
//! `Dial`, `Accept`, `Forward`, `Relay`) is answered by exactly one `Input` of its kind;
//! `Notify`, `Refuse`, `Respond` and `Abandon` are not answered.
//! [`poll_timeout`](Decision::poll_timeout) / [`handle_timeout`](Decision::handle_timeout)
//! carry the forwarding deadline. The work is over at [`Command::Done`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::credentials::Credentials;
use burrow_http_core::handshake::{self, TunnelAsk};
use burrow_transport::{Error, Target};
use bytes::Bytes;
use http::header::{HeaderValue, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, VIA};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::answers::{bad, denied, proxy_status_error};
pub use super::answers::{dial_failure, dial_refusal, refusal, socks_reply};
use super::dial::{Dial, Judge};
use super::forward::{prepare, strip_hop_by_hop, via_loops, via_protocol, Refusal};
use super::hooks::{self, End, LocalResponse, Summary, TunnelKind, What};
pub use super::intercept::InterceptRules;
use super::routes::Pattern;
use crate::socks::wire::{Command as SocksCommand, Reply};
use crate::template::UdpTemplate;

/// One upstream route as the decision core knows it.
pub struct RouteEntry {
    /// Its name (in logs, and for hooks choosing it).
    pub name: String,
    /// The rules on targets reached through it.
    pub judge: Arc<Judge>,
}

/// What a decision knows of the proxy's configuration.
pub struct Policy {
    /// Credentials HTTP clients must present (SOCKS clients present them to the SOCKS core).
    pub auth: Option<Credentials>,
    /// This proxy's name in `Via`.
    pub pseudonym: String,
    /// The rules on targets as named, for the default route.
    pub judge: Arc<Judge>,
    /// The CONNECT-UDP template served.
    pub udp_template: UdpTemplate,
    /// How long a forwarded request may take to get its response head.
    pub response_timeout: Duration,
    /// The upstream routes by index; the first is the default. Empty: one route, `direct`,
    /// judged by `judge`.
    pub routes: Vec<RouteEntry>,
    /// Per-destination rules: the first whose pattern matches the target picks the route.
    pub route_rules: Vec<(Pattern, usize)>,
    /// Whether hooks are installed: the core then asks them at every step.
    pub hooks: bool,
    /// Which tunnels are intercepted (TLS interception); `None`: none.
    pub intercept: Option<InterceptRules>,
}

/// Marks a request that arrived inside an intercepted tunnel to this target (an extension
/// of its head): it is an `https://` request to the authority the client named (its
/// `Host` or `:authority`, else the tunnel's target), sent over a connection to the
/// tunnel's target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intercepted(pub Target);

/// The outcome of [`Command::Intercept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interception {
    /// The client's TLS connection was served until it ended.
    Served,
    /// The tunnel's first byte was not a TLS handshake: relay it as it is.
    NotTls,
}

impl Policy {
    /// A policy with one route and no hooks.
    pub fn new(
        auth: Option<Credentials>,
        pseudonym: String,
        judge: Arc<Judge>,
        udp_template: UdpTemplate,
        response_timeout: Duration,
    ) -> Policy {
        Policy {
            auth,
            pseudonym,
            judge,
            udp_template,
            response_timeout,
            routes: Vec::new(),
            route_rules: Vec::new(),
            hooks: false,
            intercept: None,
        }
    }

    fn judge_of(&self, route: usize) -> &Judge {
        self.routes.get(route).map_or(&self.judge, |r| &r.judge)
    }

    /// The name of a route.
    pub fn route_name(&self, route: usize) -> &str {
        self.routes.get(route).map_or("direct", |r| r.name.as_str())
    }

    /// The route the per-destination rules pick for `t`.
    pub fn pick(&self, t: &Target) -> usize {
        self.route_rules
            .iter()
            .find(|(p, _)| p.matches(t))
            .map_or(0, |(_, r)| *r)
    }

    fn named(&self, name: &str) -> Option<usize> {
        match self.routes.iter().position(|r| r.name == name) {
            Some(i) => Some(i),
            None if self.routes.is_empty() && name == "direct" => Some(0),
            None => None,
        }
    }
}

/// A request head, as forwarded (HTTP/1.1 semantics; the forwarding client picks the
/// version to the origin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// The method.
    pub method: Method,
    /// The absolute URI.
    pub uri: Uri,
    /// The version the client spoke.
    pub version: Version,
    /// The header fields.
    pub headers: HeaderMap,
}

/// A response head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
}

/// How the client is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An HTTP answer: the head and a short body (empty for an accepted tunnel).
    Http(ResponseHead, Bytes),
    /// A SOCKS reply code (the driver fills in the bound address of a success).
    Socks(Reply),
}

/// What a piece of work holds while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// A tunnel: a tunnel slot and a share of its client.
    Tunnel,
    /// A forwarded request: a request slot and a share of its client.
    Request,
}

/// Why a reservation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Full {
    /// The client already holds its share.
    Client,
    /// The proxy has no slot left.
    Proxy,
}

/// How a target is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// A byte stream.
    Tcp,
    /// A datagram flow.
    Udp,
    /// A relay socket for a SOCKS5 UDP association (its destinations are judged per
    /// datagram).
    SocksRelay,
}

/// A hook step the drivers run through the proxy's hook chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HookCall {
    /// `request_headers` on this request; answered by `Hooked::Request` (or `Respond`,
    /// `Failed`).
    Request(Box<hooks::Request>),
    /// Buffer the request body (within `max_hook_body`) and run `request_body`; answered
    /// by `Hooked::Body` (or `Respond`, `Failed`, `TooLarge`).
    RequestBody,
    /// `response_headers` on the origin's response; answered by `Hooked::Response`.
    Response(Box<hooks::Response>),
    /// Buffer the response body and run `response_body`; answered like `RequestBody`.
    ResponseBody,
    /// `tunnel_requested`; answered by `Hooked::Tunnel`.
    Tunnel(Box<hooks::Tunnel>),
}

/// The reply to a [`Command::Hook`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hooked {
    /// The body hooks let the flow go on; the body (perhaps changed) is now this long.
    Body(u64),
    /// The request as the request hooks left it.
    Request(Box<hooks::Request>),
    /// The response as the response hooks left it.
    Response(Box<hooks::Response>),
    /// The tunnel as the tunnel hooks left it.
    Tunnel(Box<hooks::Tunnel>),
    /// A hook answered: a refusal, a local answer, or a replacement response.
    Respond(Box<LocalResponse>),
    /// A hook failed (the message names it): 502.
    Failed(String),
    /// The body was larger than hooks may buffer: 413 (request) or 502 (response).
    TooLarge,
}

/// A notification for the hooks: not answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// A datagram flow to this target was opened.
    DatagramOpened(Target),
    /// The work ended. The driver adds what it measured: the bytes of forwarded bodies and
    /// the time it took to send the response body.
    Closed(Box<Summary>),
}

/// What a relay moved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relayed {
    /// Bytes from the client.
    pub up: u64,
    /// Bytes to the client.
    pub down: u64,
    /// It ended because nothing moved for the idle time.
    pub idle: bool,
}

/// What the drivers are told to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Run a hook step; answered by [`Input::Hooked`].
    Hook(HookCall),
    /// Tell the hooks; not answered.
    Notify(Notice),
    /// Answer the client with this refusal (or local answer); the work is over (`Done`
    /// follows).
    Refuse(Answer),
    /// Take what the work holds; answered by [`Input::Reserved`].
    Reserve(Work),
    /// Reach the target through the route (by index; the dialer applies the rules to every
    /// address it resolves); answered by [`Input::Dialed`].
    Dial(Target, Transport, usize),
    /// Accept the tunnel with this answer; answered by [`Input::Accepted`].
    Accept(Answer),
    /// Intercept the accepted tunnel: answer the client's TLS with a minted certificate
    /// and serve the requests inside (each a decision of its own); answered by
    /// [`Input::Intercepted`]. The requests inside reach the target through the route.
    Intercept(Target, usize),
    /// Relay between the client's tunnel and what was dialed until either ends or nothing
    /// moves for the idle time; answered by [`Input::Relayed`].
    Relay,
    /// Send the request on through the route; answered by [`Input::Forwarded`].
    Forward(Box<Head>, Target, usize),
    /// Give the client the origin's response head (its body follows as it comes).
    Respond(Box<ResponseHead>),
    /// Stop the work that waits (the client gave up, or its deadline passed).
    Abandon,
    /// The work is over.
    Done,
}

/// What happens to a decision.
#[derive(Debug)]
pub enum Input {
    /// A request from an HTTP listener; `protocol` is its `:protocol` (or Upgrade token).
    Request {
        /// The head as received.
        head: http::request::Parts,
        /// The extended CONNECT protocol, if any.
        protocol: Option<String>,
    },
    /// A request from the SOCKS listener, after its negotiation.
    Socks(SocksCommand, Target),
    /// The outcome of [`Command::Hook`].
    Hooked(Hooked),
    /// The outcome of [`Command::Reserve`].
    Reserved(Result<(), Full>),
    /// The outcome of [`Command::Dial`].
    Dialed(Result<(), Dial>),
    /// The outcome of [`Command::Accept`].
    Accepted(Result<(), Error>),
    /// The outcome of [`Command::Intercept`].
    Intercepted(Interception),
    /// The outcome of [`Command::Forward`]: the origin's response head and its version.
    Forwarded(Result<(ResponseHead, Version), Error>),
    /// The relay ended.
    Relayed(Relayed),
    /// The client gave up on the request.
    Cancelled,
}

#[derive(Debug)]
enum Plan {
    Tcp(Target),
    ConnectUdp(Target, Version),
    SocksUdp,
    /// The head to send, where, and the version the client spoke.
    Forward(Box<Head>, Target, Version),
}

#[derive(Debug)]
enum Stage {
    Arriving,
    /// Waiting for the tunnel or request hooks.
    Hooking(Plan),
    /// Waiting for the request body hooks.
    HookingBody(Plan),
    Reserving(Plan),
    Dialing(Plan),
    Accepting,
    /// Serving an intercepted tunnel's requests.
    Intercepting(Target),
    /// Dialing for a tunnel already accepted (an intercepted one that was not TLS).
    DialingAccepted,
    Relaying,
    Forwarding(Target, Instant, Version),
    /// Waiting for the response hooks (then maybe the body hooks).
    HookingResponse(Box<ResponseHead>),
    HookingResponseBody(Box<ResponseHead>),
    Done,
}

/// One request's decisions (see the module docs for the flow and the call contract).
pub struct Decision {
    policy: Arc<Policy>,
    socks: bool,
    stage: Stage,
    commands: VecDeque<Command>,
    route: usize,
    arrived: Option<Instant>,
    summary: Summary,
    /// A tunnel to intercept, once accepted.
    intercept: Option<Target>,
    /// The intercepted tunnel a request came in.
    inside: Option<Target>,
}

impl Decision {
    /// A decision under `policy`; `socks`: the request comes from the SOCKS listener.
    pub fn new(policy: Arc<Policy>, socks: bool) -> Self {
        Decision {
            policy,
            socks,
            stage: Stage::Arriving,
            commands: VecDeque::new(),
            route: 0,
            arrived: None,
            summary: Summary {
                what: What::Tunnel(TunnelKind::Socks),
                target: None,
                route: "-".into(),
                upstream_version: None,
                status: None,
                socks_reply: None,
                error: None,
                bytes_up: 0,
                bytes_down: 0,
                duration: Duration::ZERO,
                latency: None,
                end: End::Refused,
            },
            intercept: None,
            inside: None,
        }
    }

    /// The next command.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Forwarding(_, until, _) => Some(*until),
            _ => None,
        }
    }

    /// The deadline has passed: a forwarded request still without its response is 504.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Stage::Forwarding(target, until, _) = &self.stage {
            if *until <= now {
                let r = Refusal::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "http_response_timeout",
                    format!(
                        "no response from {target} within {:?}",
                        self.policy.response_timeout
                    ),
                );
                self.commands.push_back(Command::Abandon);
                self.summary.end = End::Failed;
                self.refuse(r.answer(), now);
            }
        }
    }

    fn refuse(&mut self, a: Answer, now: Instant) {
        self.answered(&a);
        if let Some(e) = proxy_status_error(&a) {
            self.summary.error = Some(e);
        }
        self.commands.push_back(Command::Refuse(a));
        self.done(now);
    }

    fn answered(&mut self, a: &Answer) {
        match a {
            Answer::Http(h, _) => self.summary.status = Some(h.status),
            Answer::Socks(r) => self.summary.socks_reply = Some(r.0),
        }
    }

    fn done(&mut self, now: Instant) {
        self.stage = Stage::Done;
        if self.policy.hooks {
            let mut s = self.summary.clone();
            s.duration = self.arrived.map_or(Duration::ZERO, |a| now - a);
            self.commands
                .push_back(Command::Notify(Notice::Closed(Box::new(s))));
        }
        self.commands.push_back(Command::Done);
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        match (stage, input) {
            (Stage::Arriving, Input::Request { head, protocol }) => {
                self.arrived = Some(now);
                self.request(head, protocol, now)
            }
            (Stage::Arriving, Input::Socks(c, t)) => {
                self.arrived = Some(now);
                self.socks(c, t, now)
            }
            (Stage::Hooking(_) | Stage::HookingBody(_), Input::Hooked(Hooked::Respond(r))) => {
                // An answer of 400 or more, or any answer to a tunnel, is a refusal.
                let request = matches!(self.summary.what, What::Request { .. });
                if request && r.status.as_u16() < 400 {
                    self.summary.end = End::Local;
                    self.summary.route = "local".into();
                }
                let a = self.local_answer(*r);
                self.refuse(a, now)
            }
            (Stage::Hooking(plan), Input::Hooked(h)) => self.hooked(plan, h, now),
            (Stage::HookingBody(mut plan), Input::Hooked(Hooked::Body(n))) => {
                if let Plan::Forward(head, ..) = &mut plan {
                    set_length(&mut head.headers, n);
                }
                self.reserve(plan)
            }
            (Stage::HookingBody(_), Input::Hooked(Hooked::TooLarge)) => {
                let a = refusal(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "http_request_error",
                    Some("request body larger than hooks may buffer"),
                );
                self.refuse(a, now)
            }
            (Stage::Reserving(_), Input::Reserved(Err(full))) => self.full(full, now),
            (Stage::Reserving(plan), Input::Reserved(Ok(()))) => self.reserved(plan, now),
            (Stage::Dialing(plan), Input::Dialed(r)) => self.dialed(plan, r, now),
            (Stage::Accepting, Input::Accepted(Ok(()))) => {
                self.summary.latency = self.arrived.map(|a| now - a);
                if let (true, Some(t)) = (self.datagrams(), &self.summary.target) {
                    let n = Notice::DatagramOpened(t.clone());
                    self.commands.push_back(Command::Notify(n));
                }
                match self.intercept.take() {
                    Some(t) => {
                        self.summary.route = "intercept".into();
                        self.stage = Stage::Intercepting(t.clone());
                        self.commands.push_back(Command::Intercept(t, self.route));
                    }
                    None => {
                        self.stage = Stage::Relaying;
                        self.commands.push_back(Command::Relay);
                    }
                }
            }
            (Stage::Intercepting(_), Input::Intercepted(Interception::Served)) => {
                self.summary.end = End::Completed;
                self.done(now)
            }
            (Stage::Intercepting(t), Input::Intercepted(Interception::NotTls)) => {
                self.summary.route = self.policy.route_name(self.route).to_string();
                self.stage = Stage::DialingAccepted;
                self.commands
                    .push_back(Command::Dial(t, Transport::Tcp, self.route));
            }
            (Stage::DialingAccepted, Input::Dialed(Ok(()))) => {
                self.stage = Stage::Relaying;
                self.commands.push_back(Command::Relay);
            }
            (Stage::DialingAccepted, Input::Dialed(Err(_))) => {
                self.summary.end = End::Failed;
                self.done(now)
            }
            (Stage::Accepting, Input::Accepted(Err(_))) => {
                self.summary.end = End::ClientGone;
                self.done(now)
            }
            (Stage::Relaying, Input::Relayed(r)) => {
                self.summary.bytes_up = r.up;
                self.summary.bytes_down = r.down;
                self.summary.end = if r.idle { End::Idle } else { End::Completed };
                self.done(now)
            }
            (Stage::Forwarding(target, _, v), Input::Forwarded(r)) => {
                self.forwarded(r, &target, v, now)
            }
            (Stage::HookingResponse(head), Input::Hooked(Hooked::Response(r))) => {
                let mut head = head;
                *head = r.head;
                if r.buffer_body {
                    self.stage = Stage::HookingResponseBody(head);
                    self.commands
                        .push_back(Command::Hook(HookCall::ResponseBody));
                } else {
                    self.respond(head, now);
                }
            }
            (Stage::HookingResponseBody(mut head), Input::Hooked(Hooked::Body(n))) => {
                // A HEAD, 1xx, 204 or 304 answer keeps the length it announced.
                let method = match &self.summary.what {
                    What::Request { method, .. } => method.clone(),
                    What::Tunnel(_) => Method::GET,
                };
                if burrow_http_core::message::response_has_content(&method, head.status) {
                    set_length(&mut head.headers, n);
                }
                self.respond(head, now)
            }
            (
                Stage::HookingResponse(_) | Stage::HookingResponseBody(_),
                Input::Hooked(Hooked::Respond(r)),
            ) => {
                // A replacement: the origin's body is dropped.
                self.summary.end = End::Completed;
                let a = self.local_answer(*r);
                self.answered(&a);
                self.commands.push_back(Command::Refuse(a));
                self.done(now);
            }
            (Stage::HookingResponseBody(_), Input::Hooked(Hooked::TooLarge)) => {
                self.summary.end = End::Failed;
                let a = refusal(
                    StatusCode::BAD_GATEWAY,
                    "proxy_internal_error",
                    Some("response body larger than hooks may buffer"),
                );
                self.refuse(a, now)
            }
            (
                Stage::HookingResponse(_) | Stage::HookingResponseBody(_),
                Input::Hooked(Hooked::Failed(m)),
            ) => self.hook_failed(&m, now),
            (
                Stage::Dialing(_)
                | Stage::Forwarding(..)
                | Stage::Hooking(_)
                | Stage::HookingBody(_)
                | Stage::HookingResponse(_)
                | Stage::HookingResponseBody(_),
                Input::Cancelled,
            ) => {
                self.commands.push_back(Command::Abandon);
                self.summary.end = End::ClientGone;
                self.done(now);
            }
            (Stage::Done, _) => {}
            // A reply to a command that was not given: the driver broke the contract.
            // Fail closed: the work ends.
            (_, Input::Hooked(Hooked::Failed(m))) => self.hook_failed(&m, now),
            (_, _) => {
                self.summary.end = End::Failed;
                self.done(now)
            }
        }
    }

    fn datagrams(&self) -> bool {
        matches!(
            self.summary.what,
            What::Tunnel(TunnelKind::ConnectUdp | TunnelKind::SocksUdp)
        )
    }

    fn hook_failed(&mut self, m: &str, now: Instant) {
        self.summary.end = End::Failed;
        let a = if self.socks {
            Answer::Socks(Reply::GENERAL_FAILURE)
        } else {
            refusal(StatusCode::BAD_GATEWAY, "proxy_internal_error", Some(m))
        };
        self.refuse(a, now)
    }

    /// A hook's answer as this client's answer: a SOCKS client gets "not allowed", a
    /// tunnel refused with a success status is 403.
    fn local_answer(&self, r: LocalResponse) -> Answer {
        if self.socks {
            return Answer::Socks(Reply::NOT_ALLOWED);
        }
        let tunnel = !matches!(self.summary.what, What::Request { .. });
        let status = if tunnel && r.status.as_u16() < 400 {
            StatusCode::FORBIDDEN
        } else {
            r.status
        };
        let head = ResponseHead {
            status,
            headers: r.headers,
        };
        Answer::Http(head, r.body)
    }

    fn full(&mut self, full: Full, now: Instant) {
        if self.socks {
            return self.refuse(Answer::Socks(Reply::GENERAL_FAILURE), now);
        }
        let what = "requests or tunnels";
        let r = match full {
            Full::Client => Refusal::new(
                StatusCode::TOO_MANY_REQUESTS,
                "proxy_internal_error",
                format!("too many {what} from this client"),
            ),
            Full::Proxy => Refusal::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "proxy_internal_error",
                format!("too many {what}"),
            ),
        };
        self.refuse(r.answer(), now);
    }

    fn request(&mut self, mut head: http::request::Parts, protocol: Option<String>, now: Instant) {
        self.inside = head.extensions.get::<Intercepted>().map(|i| i.0.clone());
        // Inside an intercepted tunnel: an https:// request to the authority the client
        // named (the connection goes to the tunnel's target).
        if let (Some(t), false) = (&self.inside, head.method == Method::CONNECT) {
            let named = head
                .headers
                .get(HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
                .or_else(|| head.uri.authority().map(|a| a.to_string()))
                .unwrap_or_else(|| t.to_string());
            let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
            match (
                format!("https://{named}{path}").parse::<Uri>(),
                HeaderValue::from_str(&named),
            ) {
                (Ok(u), Ok(h)) if !named.contains('@') => {
                    head.uri = u;
                    head.headers.insert(HOST, h);
                }
                _ => return self.refuse(bad("invalid Host in an intercepted tunnel"), now),
            }
        }
        self.summary.what = match head.method {
            Method::CONNECT if protocol.as_deref() == Some("connect-udp") => {
                What::Tunnel(TunnelKind::ConnectUdp)
            }
            Method::CONNECT => What::Tunnel(TunnelKind::Connect),
            _ => What::Request {
                method: head.method.clone(),
                uri: head.uri.clone(),
            },
        };
        if let Some(creds) = &self.policy.auth {
            let header = head.headers.get(PROXY_AUTHORIZATION);
            if !creds.check_basic(header.map(|h| h.as_bytes())) {
                let mut a = refusal(
                    StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                    "http_request_denied",
                    Some("authentication required"),
                );
                if let Answer::Http(h, _) = &mut a {
                    h.headers.insert(
                        PROXY_AUTHENTICATE,
                        HeaderValue::from_static("Basic realm=\"burrow\""),
                    );
                }
                return self.refuse(a, now);
            }
        }
        if via_loops(&head.headers, &self.policy.pseudonym) {
            let r = Refusal::new(
                StatusCode::LOOP_DETECTED,
                "proxy_loop_detected",
                "forwarding loop (Via names this proxy)",
            );
            return self.refuse(r.answer(), now);
        }
        let version = head.version;
        let plan = match handshake::ask(&head.method, protocol.as_deref()) {
            None => match prepare(head, &self.policy.pseudonym) {
                Ok(p) => Plan::Forward(
                    Box::new(Head {
                        method: p.parts.method,
                        uri: p.parts.uri,
                        version: p.parts.version,
                        headers: p.parts.headers,
                    }),
                    p.target,
                    version,
                ),
                Err(r) => return self.refuse(r.answer(), now),
            },
            Some(TunnelAsk::Extended(p)) if p == "connect-udp" => {
                let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
                match self.policy.udp_template.matches(path) {
                    Some(t) => Plan::ConnectUdp(t, version),
                    None => {
                        let a = bad("path does not match the CONNECT-UDP template");
                        return self.refuse(a, now);
                    }
                }
            }
            Some(TunnelAsk::Extended(p)) => {
                let msg = format!("unsupported :protocol {p}");
                let a = refusal(
                    StatusCode::NOT_IMPLEMENTED,
                    "proxy_internal_error",
                    Some(&msg),
                );
                return self.refuse(a, now);
            }
            Some(_) => match head
                .uri
                .authority()
                .filter(|a| !a.as_str().contains('@'))
                .and_then(|a| Target::parse_with_default(a.as_str(), 443).ok())
            {
                Some(t) => Plan::Tcp(t),
                None => return self.refuse(bad("CONNECT needs host:port"), now),
            },
        };
        self.planned(plan);
    }

    /// The plan is known: its target picks the route; the hooks see it, or it goes on.
    fn planned(&mut self, plan: Plan) {
        let target = match &plan {
            Plan::Tcp(t) | Plan::ConnectUdp(t, _) | Plan::Forward(_, t, _) => Some(t.clone()),
            Plan::SocksUdp => None,
        };
        if let Some(t) = &target {
            self.route = self.policy.pick(t);
        }
        self.summary.target = target.clone();
        if !self.policy.hooks {
            return self.reserve(plan);
        }
        let call = match &plan {
            Plan::Forward(head, ..) => HookCall::Request(Box::new(hooks::Request {
                head: (**head).clone(),
                route: None,
                buffer_body: false,
            })),
            _ => {
                let kind = match self.summary.what {
                    What::Tunnel(k) => k,
                    What::Request { .. } => TunnelKind::Connect,
                };
                let target = target.unwrap_or_else(|| {
                    Target::new(burrow_transport::Host::Ip([0, 0, 0, 0].into()), 0)
                });
                HookCall::Tunnel(Box::new(hooks::Tunnel {
                    kind,
                    target,
                    route: None,
                }))
            }
        };
        self.stage = Stage::Hooking(plan);
        self.commands.push_back(Command::Hook(call));
    }

    /// The request or tunnel hooks replied.
    fn hooked(&mut self, plan: Plan, h: Hooked, now: Instant) {
        let (plan, route, buffer) = match (plan, h) {
            (Plan::Forward(_, old, v), Hooked::Request(r)) => {
                let hooks::Request {
                    mut head,
                    route,
                    buffer_body,
                } = *r;
                // A new authority is a new target, and the Host that names it.
                let target = match head.uri.authority() {
                    Some(a) if a.as_str() != old.to_string() => {
                        let port = if head.uri.scheme_str() == Some("https") {
                            443
                        } else {
                            80
                        };
                        match Target::parse_with_default(a.as_str(), port) {
                            Ok(t) if !a.as_str().contains('@') => {
                                if let Ok(h) = HeaderValue::from_str(a.as_str()) {
                                    head.headers.insert(HOST, h);
                                }
                                t
                            }
                            _ => return self.hook_failed("a hook set an invalid URI", now),
                        }
                    }
                    Some(_) => old,
                    None => return self.hook_failed("a hook set a URI without authority", now),
                };
                (Plan::Forward(Box::new(head), target, v), route, buffer_body)
            }
            (plan @ (Plan::Tcp(_) | Plan::ConnectUdp(..) | Plan::SocksUdp), Hooked::Tunnel(t)) => {
                let plan = match plan {
                    Plan::Tcp(_) => Plan::Tcp(t.target.clone()),
                    Plan::ConnectUdp(_, v) => Plan::ConnectUdp(t.target.clone(), v),
                    other => other,
                };
                (plan, t.route, false)
            }
            (_, Hooked::Failed(m)) => return self.hook_failed(&m, now),
            // A reply of another kind: fail closed.
            _ => return self.hook_failed("hooks replied out of turn", now),
        };
        if let Plan::Tcp(t) | Plan::ConnectUdp(t, _) | Plan::Forward(_, t, _) = &plan {
            self.summary.target = Some(t.clone());
            self.route = self.policy.pick(t);
        }
        if let Some(name) = route {
            match self.policy.named(&name) {
                Some(r) => self.route = r,
                None => {
                    let m = format!("a hook chose the unknown route {name:?}");
                    return self.hook_failed(&m, now);
                }
            }
        }
        if buffer {
            self.stage = Stage::HookingBody(plan);
            self.commands
                .push_back(Command::Hook(HookCall::RequestBody));
        } else {
            self.reserve(plan);
        }
    }

    fn reserve(&mut self, plan: Plan) {
        let work = match plan {
            Plan::Forward(..) => Work::Request,
            _ => Work::Tunnel,
        };
        self.stage = Stage::Reserving(plan);
        self.commands.push_back(Command::Reserve(work));
    }

    fn socks(&mut self, command: SocksCommand, target: Target, now: Instant) {
        self.summary.what = What::Tunnel(TunnelKind::Socks);
        self.summary.target = Some(target.clone());
        let plan = match command {
            SocksCommand::Connect => match self.policy.judge.check(&target) {
                Ok(()) => Plan::Tcp(target),
                Err(d) => {
                    self.summary.error = Some(d.proxy_status().into());
                    return self.refuse(Answer::Socks(Reply::NOT_ALLOWED), now);
                }
            },
            // Each datagram's destination is judged, not the client's expected source
            // in the request (RFC 1928 §7).
            SocksCommand::UdpAssociate => {
                self.summary.what = What::Tunnel(TunnelKind::SocksUdp);
                Plan::SocksUdp
            }
            SocksCommand::Bind => {
                return self.refuse(Answer::Socks(Reply::COMMAND_NOT_SUPPORTED), now)
            }
        };
        self.planned(plan);
    }

    fn reserved(&mut self, plan: Plan, now: Instant) {
        let route = self.route;
        self.summary.route = self.policy.route_name(route).to_string();
        let judge = self.policy.judge_of(route);
        let dial = match &plan {
            Plan::Forward(head, target, version) => {
                // Host and port rules before anything is dialed; addresses are judged by
                // the forwarding client's connector on the very addresses it dials.
                if let Err(d) = judge.check(target) {
                    return self.refuse(denied(d), now);
                }
                let until = now + self.policy.response_timeout;
                self.commands
                    .push_back(Command::Forward(head.clone(), target.clone(), route));
                self.stage = Stage::Forwarding(target.clone(), until, *version);
                return;
            }
            Plan::Tcp(t) | Plan::ConnectUdp(t, _) => {
                // The rules on the target as named before anything is dialed (the dialer
                // judges every address again).
                if let Err(d) = judge.check(t) {
                    self.summary.error = Some(d.proxy_status().into());
                    let a = match self.socks {
                        true => Answer::Socks(Reply::NOT_ALLOWED),
                        false => denied(d),
                    };
                    return self.refuse(a, now);
                }
                let wants = |r: &InterceptRules| r.wants(t);
                if let (Plan::Tcp(t), Some(true)) =
                    (&plan, self.policy.intercept.as_ref().map(wants))
                {
                    // Accepted at once; the origin is reached for each request inside.
                    self.intercept = Some(t.clone());
                    let a = match self.socks {
                        true => Answer::Socks(Reply::SUCCEEDED),
                        false => Answer::Http(
                            ResponseHead {
                                status: StatusCode::OK,
                                headers: HeaderMap::new(),
                            },
                            Bytes::new(),
                        ),
                    };
                    self.answered(&a);
                    self.summary.end = End::ClientGone;
                    self.stage = Stage::Accepting;
                    self.commands.push_back(Command::Accept(a));
                    return;
                }
                let how = match plan {
                    Plan::Tcp(_) => Transport::Tcp,
                    _ => Transport::Udp,
                };
                Command::Dial(t.clone(), how, route)
            }
            Plan::SocksUdp => Command::Dial(
                Target::new(burrow_transport::Host::Ip([0, 0, 0, 0].into()), 0),
                Transport::SocksRelay,
                route,
            ),
        };
        self.commands.push_back(dial);
        self.stage = Stage::Dialing(plan);
    }

    fn dialed(&mut self, plan: Plan, r: Result<(), Dial>, now: Instant) {
        if let Err(d) = r {
            self.summary.end = match d {
                Dial::Denied(_) => End::Refused,
                _ => End::Failed,
            };
            let a = match (&plan, self.socks) {
                (_, true) => Answer::Socks(socks_reply(&d)),
                (Plan::Tcp(t) | Plan::ConnectUdp(t, _), false) => dial_refusal(&d, t),
                _ => refusal(StatusCode::BAD_GATEWAY, "proxy_internal_error", None),
            };
            return self.refuse(a, now);
        }
        let accept = match plan {
            _ if self.socks => Answer::Socks(Reply::SUCCEEDED),
            // RFC 9298 §3.3 (HTTP/1.1: 101 with Upgrade), §3.4/3.5 (HTTP/2 and HTTP/3:
            // 2xx); Capsule-Protocol: ?1 either way (RFC 9297 §3.4).
            Plan::ConnectUdp(_, version) => {
                let ask = TunnelAsk::Extended("connect-udp".into());
                let (parts, ()) = handshake::accept_head(&ask, version).into_parts();
                let mut headers = parts.headers;
                headers.insert("capsule-protocol", HeaderValue::from_static("?1"));
                let head = ResponseHead {
                    status: parts.status,
                    headers,
                };
                Answer::Http(head, Bytes::new())
            }
            _ => {
                let head = ResponseHead {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                };
                Answer::Http(head, Bytes::new())
            }
        };
        self.answered(&accept);
        self.summary.end = End::ClientGone;
        self.stage = Stage::Accepting;
        self.commands.push_back(Command::Accept(accept));
    }

    fn forwarded(
        &mut self,
        r: Result<(ResponseHead, Version), Error>,
        target: &Target,
        version: Version,
        now: Instant,
    ) {
        match r {
            Ok((mut head, upstream)) => {
                self.summary.upstream_version = Some(upstream);
                self.summary.latency = self.arrived.map(|a| now - a);
                strip_hop_by_hop(&mut head.headers);
                if self.inside.is_some() {
                    // QUIC is not intercepted: the client must stay on this connection.
                    head.headers.remove(http::header::ALT_SVC);
                }
                let via = format!("{} {}", via_protocol(version), self.policy.pseudonym);
                if let Ok(v) = HeaderValue::from_str(&via) {
                    head.headers.append(VIA, v);
                }
                if self.policy.hooks {
                    let call = HookCall::Response(Box::new(hooks::Response {
                        head: head.clone(),
                        buffer_body: false,
                    }));
                    self.stage = Stage::HookingResponse(Box::new(head));
                    self.commands.push_back(Command::Hook(call));
                } else {
                    self.respond(Box::new(head), now);
                }
            }
            Err(e) => {
                self.summary.end = End::Failed;
                self.refuse(dial_refusal(&Dial::Failed(e), target), now)
            }
        }
    }

    fn respond(&mut self, head: Box<ResponseHead>, now: Instant) {
        self.summary.status = Some(head.status);
        self.summary.end = End::Completed;
        self.commands.push_back(Command::Respond(head));
        self.done(now);
    }
}

/// A buffered body is sent with its length (it may have changed), not chunked.
fn set_length(headers: &mut HeaderMap, n: u64) {
    headers.remove(http::header::TRANSFER_ENCODING);
    headers.insert(http::header::CONTENT_LENGTH, HeaderValue::from(n));
}
