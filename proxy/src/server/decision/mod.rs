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
//!       intercepted: Accept ─► Peek (deadline) ─► TLS: Intercept ─► Intercepted
//!                                              └─ other byte or deadline: Dial ─► Relay
//!       forward: rules (403) ─► Forward (deadline: 504) ─► Forwarded(Err) ─► 502/504
//!                                │ Ok ─► [Hook: Response (+ ResponseBody)] ─► Respond
//!       websocket: rules (403) ─► Upgrade (deadline: 504) ─► Upgraded(Err) ─► its status
//!                                │ 101 ─► Accept (101) ─► Relay ─► Relayed             / 502/504
//!   ─► [Notify: Closed(summary)] ─► Done
//! Cancelled at any wait ─► Abandon
//! ```
//!
//! Hook steps (in brackets) happen only when the policy says hooks are installed.
//!
//! Call contract: [`handle`](Decision::handle) each [`Input`] with the time, then drain
//! [`poll_command`](Decision::poll_command); a command that waits (`Hook`, `Reserve`,
//! `Dial`, `Accept`, `Forward`, `Upgrade`, `Relay`) is answered by exactly one `Input` of
//! its kind;
//! `Notify`, `Refuse`, `Respond` and `Abandon` are not answered.
//! [`poll_timeout`](Decision::poll_timeout) / [`handle_timeout`](Decision::handle_timeout)
//! carry the forwarding (and upgrading) deadline. The work is over at [`Command::Done`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::handshake::{self, TunnelAsk};
use burrow_transport::{Error, Target};
use bytes::Bytes;
use http::header::{
    HeaderValue, AUTHORIZATION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, VIA,
    WWW_AUTHENTICATE,
};
use http::{Method, StatusCode, Uri, Version};

use super::answers::{bad, denied, proxy_status_error};
pub use super::answers::{dial_failure, dial_refusal, refusal, socks_reply};
use super::dial::Dial;
use super::forward::{only_chunked, prepare, strip_hop_by_hop, via_loops, via_protocol, Refusal};
use super::hooks::{self, End, Summary, TunnelKind, What};
pub use super::intercept::InterceptRules;
use super::intercept::TLS_HANDSHAKE;
use crate::socks::wire::Reply;

mod hooking;
mod tunnel;
mod vocab;

use hooking::set_length;

pub use vocab::*;

#[derive(Debug)]
enum Plan {
    Tcp(Target),
    /// CONNECT-TCP: a TCP target, its stream carried as capsules.
    ConnectTcp(Target, Version),
    ConnectUdp(Target, Version),
    /// CONNECT-IP: packets within this scope, relayed to the TUN device.
    ConnectIp(burrow_transport::IpScope, Version),
    SocksUdp,
    /// The head to send, where, and the version the client spoke.
    Forward(Box<Head>, Target, Version),
    /// A WebSocket: the head to send as an HTTP/1.1 Upgrade, where, and the client's
    /// version.
    Upgrade(Box<Head>, Target, Version),
}

/// The Upgrade token of a WebSocket (RFC 6455 §4.1).
const WEBSOCKET: &str = "websocket";

/// The target of the plans that have none (SOCKS UDP, CONNECT-IP): `0.0.0.0:0`.
fn no_target() -> Target {
    Target::new(burrow_transport::Host::Ip([0, 0, 0, 0].into()), 0)
}

impl Plan {
    /// The target, for the plans that have one.
    fn target(&self) -> Option<&Target> {
        match self {
            Plan::Tcp(t) | Plan::ConnectTcp(t, _) | Plan::ConnectUdp(t, _) => Some(t),
            Plan::Forward(_, t, _) | Plan::Upgrade(_, t, _) => Some(t),
            Plan::SocksUdp | Plan::ConnectIp(..) => None,
        }
    }
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
    Intercepting,
    /// Waiting for the first byte of a tunnel to intercept, until the deadline.
    Peeking(Target, Instant),
    /// Dialing for a tunnel already accepted (an intercepted one that was not TLS).
    DialingAccepted,
    Relaying,
    Forwarding(Target, Instant, Version),
    /// Waiting for the origin's answer to a WebSocket upgrade, until the deadline.
    Upgrading(Target, Instant, Version),
    /// Waiting for the response hooks (then maybe the body hooks).
    HookingResponse(Box<ResponseHead>),
    HookingResponseBody(Box<ResponseHead>),
    Done,
}

/// The URI without userinfo, for logs (it is refused anyway).
fn without_userinfo(u: &Uri) -> Uri {
    match u.authority().map(|a| a.as_str()) {
        Some(a) if a.contains('@') => {
            let host = a.rsplit('@').next().unwrap_or("");
            let mut parts = u.clone().into_parts();
            parts.authority = host.parse().ok();
            Uri::from_parts(parts).unwrap_or_default()
        }
        _ => u.clone(),
    }
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
    inside: Option<Intercepted>,
    /// The request hooks asked for the body: buffered once the request is reserved.
    buffer_body: bool,
    /// A datagram flow was opened (its end is told).
    opened: bool,
    /// How the client's side of the tunnel carries TCP.
    framing: Framing,
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
                user: None,
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
            buffer_body: false,
            opened: false,
            framing: Framing::Raw,
        }
    }

    /// The next command.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.stage {
            Stage::Forwarding(_, until, _)
            | Stage::Upgrading(_, until, _)
            | Stage::Peeking(_, until) => Some(*until),
            _ => None,
        }
    }

    /// The deadline has passed: a forwarded request still without its response is 504; a
    /// tunnel to intercept whose client said nothing is relayed as it is (the server
    /// speaks first).
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Stage::Peeking(t, until) = &self.stage {
            if *until <= now {
                let t = t.clone();
                self.relay_as_is(t);
            }
            return;
        }
        if let Stage::Forwarding(target, until, _) | Stage::Upgrading(target, until, _) =
            &self.stage
        {
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

    /// Ends the work as `end`.
    fn finish(&mut self, end: End, now: Instant) {
        self.summary.end = end;
        self.done(now)
    }

    fn done(&mut self, now: Instant) {
        self.stage = Stage::Done;
        if self.policy.hooks {
            let mut s = self.summary.clone();
            s.duration = self.arrived.map_or(Duration::ZERO, |a| now - a);
            if self.opened {
                let n = Notice::DatagramClosed(Box::new(s.clone()));
                self.commands.push_back(Command::Notify(n));
            }
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
                self.send_on(plan, now)
            }
            (Stage::HookingBody(_), Input::Hooked(Hooked::Failed(m))) => self.hook_failed(&m, now),
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
                // A SOCKS5 UDP association tells of its destinations itself.
                let connect_udp = self.summary.what == What::Tunnel(TunnelKind::ConnectUdp);
                if let (true, true, Some(t)) =
                    (self.policy.hooks, connect_udp, &self.summary.target)
                {
                    let n = Notice::DatagramOpened(t.clone());
                    self.commands.push_back(Command::Notify(n));
                    self.opened = true;
                }
                match self.intercept.take() {
                    Some(t) => {
                        let until = now + self.policy.client_first_wait;
                        self.stage = Stage::Peeking(t, until);
                        self.commands.push_back(Command::Peek);
                    }
                    None => {
                        self.stage = Stage::Relaying;
                        self.commands.push_back(Command::Relay(self.framing));
                    }
                }
            }
            (Stage::Intercepting, Input::Intercepted(Interception::Served { up, down })) => {
                (self.summary.bytes_up, self.summary.bytes_down) = (up, down);
                self.finish(End::Completed, now)
            }
            (Stage::Intercepting, Input::Intercepted(Interception::Failed)) => {
                self.finish(End::Failed, now)
            }
            (Stage::Peeking(t, _), Input::Peeked(Peeked::Byte(TLS_HANDSHAKE))) => {
                self.summary.route = "intercept".into();
                self.stage = Stage::Intercepting;
                self.commands.push_back(Command::Intercept(t, self.route));
            }
            // Not TLS: relayed as it is.
            (Stage::Peeking(t, _), Input::Peeked(Peeked::Byte(_))) => self.relay_as_is(t),
            (Stage::Peeking(..), Input::Peeked(Peeked::Closed)) => {
                self.finish(End::ClientGone, now)
            }
            (Stage::DialingAccepted, Input::Dialed(Ok(()))) => {
                self.stage = Stage::Relaying;
                self.commands.push_back(Command::Relay(self.framing));
            }
            (Stage::DialingAccepted, Input::Dialed(Err(_))) => self.finish(End::Failed, now),
            (Stage::Accepting, Input::Accepted(Err(_))) => self.finish(End::ClientGone, now),
            (Stage::Relaying, Input::Relayed(r)) => {
                self.summary.bytes_up = r.up;
                self.summary.bytes_down = r.down;
                self.finish(if r.idle { End::Idle } else { End::Completed }, now)
            }
            (Stage::Forwarding(target, _, v), Input::Forwarded(r)) => {
                self.forwarded(r, &target, v, now)
            }
            (Stage::Upgrading(target, _, v), Input::Upgraded(r)) => {
                self.upgraded(r, &target, v, now)
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
                let a = self.local_answer(*r);
                self.answered(&a);
                self.commands.push_back(Command::Refuse(a));
                self.finish(End::Completed, now);
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
                | Stage::Upgrading(..)
                | Stage::Hooking(_)
                | Stage::HookingBody(_)
                | Stage::HookingResponse(_)
                | Stage::HookingResponseBody(_),
                Input::Cancelled,
            ) => {
                self.commands.push_back(Command::Abandon);
                self.finish(End::ClientGone, now);
            }
            (Stage::Done, _) => {}
            // A reply to a command that was not given: the driver broke the contract.
            // Fail closed: the work ends (the client may have been answered already).
            (_, _) => self.finish(End::Failed, now),
        }
    }

    /// An accepted tunnel that is not intercepted after all: dial its target and relay.
    fn relay_as_is(&mut self, t: Target) {
        self.summary.route = self.policy.route_name(self.route).to_string();
        self.stage = Stage::DialingAccepted;
        self.commands
            .push_back(Command::Dial(t, Transport::Tcp, self.route));
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
        self.inside = head.extensions.get::<Intercepted>().cloned();
        // Inside an intercepted tunnel: an https:// request to the authority the client
        // named (the connection goes to the tunnel's target).
        if let (Some(Intercepted { target: t, .. }), false) =
            (&self.inside, head.method == Method::CONNECT)
        {
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
        // CONNECT-UDP is an extended CONNECT (HTTP/2, HTTP/3) or an Upgrade (HTTP/1.1).
        // Upgrade tokens are case-insensitive (RFC 9110 §7.8).
        let lower = protocol.as_deref().map(str::to_ascii_lowercase);
        self.summary.what = match (&head.method, lower.as_deref()) {
            (_, Some("connect-udp")) => What::Tunnel(TunnelKind::ConnectUdp),
            (_, Some(burrow_http_core::connect_tcp::PROTOCOL)) => {
                What::Tunnel(TunnelKind::ConnectTcp)
            }
            (_, Some(burrow_http_core::connect_ip::PROTOCOL)) => {
                What::Tunnel(TunnelKind::ConnectIp)
            }
            (_, Some(WEBSOCKET)) => What::Tunnel(TunnelKind::WebSocket),
            (&Method::CONNECT, None) => What::Tunnel(TunnelKind::Connect),
            _ => What::Request {
                method: head.method.clone(),
                uri: without_userinfo(&head.uri),
            },
        };
        // Inside an intercepted tunnel the client authenticated with its CONNECT.
        // CONNECT-TCP's resources are the proxy's own: it asks with 401 and takes
        // `Authorization` (draft-ietf-httpbis-connect-tcp §7), and `Proxy-Authorization`
        // too, as a CONNECT would carry.
        // CONNECT-IP's too (RFC 9484 §3: a template of the proxy's).
        let origin_auth = matches!(
            self.summary.what,
            What::Tunnel(TunnelKind::ConnectTcp | TunnelKind::ConnectIp)
        );
        if let (Some(creds), None) = (&self.policy.auth, &self.inside) {
            let check = |name| creds.check_basic(head.headers.get(name).map(|h| h.as_bytes()));
            let ok = check(PROXY_AUTHORIZATION) || (origin_auth && check(AUTHORIZATION));
            if !ok {
                let (status, challenge) = match origin_auth {
                    true => (StatusCode::UNAUTHORIZED, WWW_AUTHENTICATE),
                    false => (
                        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
                        PROXY_AUTHENTICATE,
                    ),
                };
                let mut a = refusal(
                    status,
                    "http_request_denied",
                    Some("authentication required"),
                );
                if let Answer::Http(h, _) = &mut a {
                    h.headers.insert(
                        challenge,
                        HeaderValue::from_static("Basic realm=\"burrow\""),
                    );
                }
                return self.refuse(a, now);
            }
        }
        self.summary.user = self.policy.auth.as_ref().map(|c| c.user.clone());
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
            Some(TunnelAsk::Extended(p)) if p == burrow_http_core::connect_tcp::PROTOCOL => {
                let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
                match self.policy.tcp_template.matches(path) {
                    Some(t) => Plan::ConnectTcp(t, version),
                    None => {
                        let a = bad("path does not match the CONNECT-TCP template");
                        return self.refuse(a, now);
                    }
                }
            }
            Some(TunnelAsk::Extended(p)) if p == burrow_http_core::connect_ip::PROTOCOL => {
                let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
                let Some(template) = &self.policy.ip_template else {
                    let a = refusal(
                        StatusCode::NOT_IMPLEMENTED,
                        "proxy_internal_error",
                        Some("CONNECT-IP is not enabled on this proxy"),
                    );
                    return self.refuse(a, now);
                };
                match template.matches(path) {
                    Some(scope) => Plan::ConnectIp(scope, version),
                    None => {
                        let a = bad("path does not match the CONNECT-IP template");
                        return self.refuse(a, now);
                    }
                }
            }
            // RFC 6455 §4.1: an HTTP/1.1 GET with `Upgrade: websocket`, forwarded to the
            // origin's own upgrade (RFC 9110 §7.8). Over HTTP/2 and HTTP/3 (RFC 8441,
            // RFC 9220) it would need translating to the origin's HTTP/1.1 handshake.
            Some(TunnelAsk::Extended(p))
                if p.eq_ignore_ascii_case(WEBSOCKET)
                    && head.method == Method::GET
                    && version <= Version::HTTP_11 =>
            {
                // The handshake is a GET without content (RFC 6455 §4.1): one with a body
                // would have it dropped by the switch, so it is refused.
                let length = burrow_http_core::message::declared_length(&head.headers);
                if head.headers.contains_key(http::header::TRANSFER_ENCODING)
                    || length.is_some_and(|n| n > 0)
                {
                    return self.refuse(bad("a WebSocket handshake has no body"), now);
                }
                let mut head = head;
                // A ws:// (wss://) URL is an http:// (https://) one (RFC 6455 §3).
                let scheme = match head.uri.scheme_str() {
                    Some(s) if s.eq_ignore_ascii_case("ws") => Some("http"),
                    Some(s) if s.eq_ignore_ascii_case("wss") => Some("https"),
                    _ => None,
                };
                if let Some(s) = scheme {
                    let mut parts = head.uri.clone().into_parts();
                    parts.scheme = s.parse().ok();
                    head.uri = Uri::from_parts(parts).unwrap_or_default();
                }
                match prepare(head, &self.policy.pseudonym) {
                    Ok(p) => Plan::Upgrade(
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

    fn reserve(&mut self, plan: Plan) {
        let work = match plan {
            Plan::Forward(..) => Work::Request,
            // A WebSocket is a tunnel once upgraded, and may last as long.
            _ => Work::Tunnel,
        };
        self.stage = Stage::Reserving(plan);
        self.commands.push_back(Command::Reserve(work));
    }

    /// Sends a reserved request (or WebSocket upgrade) on: the host and port rules first;
    /// addresses are judged by the forwarding client's connector on the very addresses it
    /// dials. The origin's answer has the response deadline.
    fn send_on(&mut self, plan: Plan, now: Instant) {
        let (Plan::Forward(_, target, version) | Plan::Upgrade(_, target, version)) = &plan else {
            return self.finish(End::Failed, now);
        };
        let (target, version) = (target.clone(), *version);
        if let Err(d) = self.policy.judge_of(self.route).check(&target) {
            return self.refuse(denied(d), now);
        }
        let until = now + self.policy.response_timeout;
        let (command, stage) = match plan {
            Plan::Upgrade(head, ..) => (
                Command::Upgrade(head, target.clone(), self.route),
                Stage::Upgrading(target, until, version),
            ),
            Plan::Forward(head, ..) => (
                Command::Forward(head, target.clone(), self.route),
                Stage::Forwarding(target, until, version),
            ),
            _ => return self.finish(End::Failed, now),
        };
        self.commands.push_back(command);
        self.stage = stage;
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
                if !only_chunked(&head.headers) {
                    // Its content is what a coding we cannot decode makes of it.
                    let r = Refusal::new(
                        StatusCode::BAD_GATEWAY,
                        "http_response_transfer_coding",
                        "the response has a transfer coding other than chunked",
                    );
                    self.summary.end = End::Failed;
                    return self.refuse(r.answer(), now);
                }
                strip_hop_by_hop(&mut head.headers);
                // Identical repeats passed on as one (RFC 9110 §8.6), as for requests.
                burrow_http_core::message::single_content_length(&mut head.headers);
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

    /// The origin's answer to an upgrade: a 101 is passed on (with the origin's fields:
    /// `Sec-WebSocket-Accept`, `-Protocol`, `-Extensions`, cookies) and the tunnel
    /// relayed; a refusal is passed on as its status.
    fn upgraded(
        &mut self,
        r: Result<ResponseHead, Error>,
        target: &Target,
        version: Version,
        now: Instant,
    ) {
        let via = format!("{} {}", via_protocol(version), self.policy.pseudonym);
        let via = HeaderValue::from_str(&via).ok();
        match r {
            Ok(head) if head.status == StatusCode::SWITCHING_PROTOCOLS => {
                self.summary.upstream_version = Some(Version::HTTP_11);
                let ask = TunnelAsk::Extended(WEBSOCKET.into());
                let (parts, ()) = handshake::accept_head(&ask, version).into_parts();
                let mut fields = head.headers;
                strip_hop_by_hop(&mut fields);
                let mut headers = parts.headers;
                for (n, v) in &fields {
                    headers.append(n.clone(), v.clone());
                }
                if let Some(v) = via {
                    headers.append(VIA, v);
                }
                let head = ResponseHead {
                    status: parts.status,
                    headers,
                };
                self.accept(Answer::Http(head, Bytes::new()));
            }
            // Answered, but not switched: the client hears the origin's status.
            Ok(head) => self.upgrade_refused(head.status, via, now),
            Err(e) => {
                self.summary.end = End::Failed;
                self.refuse(dial_refusal(&Dial::Failed(e), target), now)
            }
        }
    }

    fn upgrade_refused(&mut self, status: StatusCode, via: Option<HeaderValue>, now: Instant) {
        let mut headers = http::HeaderMap::new();
        if let Some(v) = via {
            headers.append(VIA, v);
        }
        let body = format!("the origin did not switch to WebSocket: {status}\n");
        let head = ResponseHead { status, headers };
        self.summary.end = End::Completed;
        self.refuse(Answer::Http(head, Bytes::from(body)), now)
    }

    fn respond(&mut self, head: Box<ResponseHead>, now: Instant) {
        self.summary.status = Some(head.status);
        self.commands.push_back(Command::Respond(head));
        self.finish(End::Completed, now);
    }
}
