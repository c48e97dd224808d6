//! The proxy's decision core, sans-I/O: one [`Decision`] per request or tunnel, whichever
//! listener it came from (HTTP/1.1, HTTP/2, HTTP/3 or SOCKS). Events in — the request, the
//! replies to the commands that wait for something (a reservation, a dial, an acceptance,
//! a forwarded exchange), the client giving up, the time — and commands out: refuse,
//! reserve, dial, accept, relay, forward, respond. The listener drivers only run the
//! commands and report back, the way mitmproxy's layers yield commands whose replies come
//! back as events; a hook is one more such command (the next proxy issue adds them).
//!
//! ```text
//! Request/Socks ─► auth (407) ─► Via loop (508) ─► Reserve ─► Reserved(Err) ─► 429 / 503
//!                                                     │ Ok
//!       tunnel:  target (400/501/403) ─► Dial ─► Dialed(Err) ─► 403/502/504 + Proxy-Status
//!                                         │ Ok ─► Accept ─► Accepted(Ok) ─► Relay ─► Relayed ─► Done
//!       forward: prepare (400/501/508), rules (403) ─► Forward (deadline: 504) ─► Forwarded
//!                                         ─► Ok: Respond (Via, hop-by-hop stripped) | Err: 502/504
//! Cancelled at any wait ─► Abandon
//! ```
//!
//! Call contract: [`handle`](Decision::handle) each [`Input`] with the time, then drain
//! [`poll_command`](Decision::poll_command); a command that waits (`Reserve`, `Dial`,
//! `Accept`, `Forward`, `Relay`) is answered by exactly one `Input` of its kind.
//! [`poll_timeout`](Decision::poll_timeout) / [`handle_timeout`](Decision::handle_timeout)
//! carry the forwarding deadline. The work is over at [`Command::Done`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::credentials::Credentials;
use burrow_http_core::handshake::{self, TunnelAsk};
use burrow_transport::{Error, ErrorKind, Target};
use http::header::{HeaderValue, CONTENT_TYPE, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, VIA};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::dial::{Dial, Judge};
use super::forward::{prepare, strip_hop_by_hop, via_loops, via_protocol, Refusal};
use super::rules::Denied;
use crate::socks::wire::{Command as SocksCommand, Reply};
use crate::template::UdpTemplate;

/// What a decision knows of the proxy's configuration.
pub struct Policy {
    /// Credentials HTTP clients must present (SOCKS clients present them to the SOCKS core).
    pub auth: Option<Credentials>,
    /// This proxy's name in `Via`.
    pub pseudonym: String,
    /// The rules on targets as named.
    pub judge: Arc<Judge>,
    /// The CONNECT-UDP template served.
    pub udp_template: UdpTemplate,
    /// How long a forwarded request may take to get its response head.
    pub response_timeout: Duration,
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
    /// An HTTP answer: the head and a short text body (empty for an accepted tunnel).
    Http(ResponseHead, String),
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

/// What the drivers are told to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    /// Answer the client with this refusal; the work is over (`Done` follows).
    Refuse(Answer),
    /// Take what the work holds; answered by [`Input::Reserved`].
    Reserve(Work),
    /// Reach the target (the dialer applies the rules to every address it resolves);
    /// answered by [`Input::Dialed`].
    Dial(Target, Transport),
    /// Accept the tunnel with this answer; answered by [`Input::Accepted`].
    Accept(Answer),
    /// Relay between the client's tunnel and what was dialed until either ends or nothing
    /// moves for the idle time; answered by [`Input::Relayed`].
    Relay,
    /// Send the request on; answered by [`Input::Forwarded`].
    Forward(Box<Head>, Target),
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
    /// The outcome of [`Command::Reserve`].
    Reserved(Result<(), Full>),
    /// The outcome of [`Command::Dial`].
    Dialed(Result<(), Dial>),
    /// The outcome of [`Command::Accept`].
    Accepted(Result<(), Error>),
    /// The outcome of [`Command::Forward`]: the origin's response head.
    Forwarded(Result<ResponseHead, Error>),
    /// The relay ended.
    Relayed,
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
    Reserving(Plan),
    Dialing(Plan),
    Accepting,
    Relaying,
    Forwarding(Target, Instant, Version),
    Done,
}

/// One request's decisions (see the module docs for the flow and the call contract).
pub struct Decision {
    policy: Arc<Policy>,
    socks: bool,
    stage: Stage,
    commands: VecDeque<Command>,
}

/// An HTTP refusal: status, Proxy-Status (RFC 9209) and a short text body.
pub fn refusal(status: StatusCode, error: &str, detail: Option<&str>) -> Answer {
    let v = match detail {
        Some(d) => format!(
            "burrow; error={error}; details=\"{}\"",
            d.replace(['"', '\\'], "")
        ),
        None => format!("burrow; error={error}"),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "proxy-status",
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("burrow")),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    Answer::Http(ResponseHead { status, headers }, body)
}

impl Refusal {
    /// The answer that says it.
    pub fn answer(&self) -> Answer {
        refusal(self.status, self.error, self.detail.as_deref())
    }
}

/// The status and Proxy-Status error for a failure reaching the target (RFC 9209 §2.3).
pub fn dial_failure(e: &Error) -> (StatusCode, &'static str) {
    match e.kind() {
        ErrorKind::Resolve => (StatusCode::BAD_GATEWAY, "dns_error"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "connection_timeout"),
        ErrorKind::ProxyRefused => (StatusCode::BAD_GATEWAY, "proxy_internal_response"),
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "destination_ip_prohibited"),
        _ => (StatusCode::BAD_GATEWAY, "connection_refused"),
    }
}

fn denied(d: Denied) -> Answer {
    refusal(
        StatusCode::FORBIDDEN,
        d.proxy_status(),
        Some(&d.to_string()),
    )
}

/// The answer to a target that could not be reached: 403 when the rules refused it, else
/// the status and Proxy-Status error of the failure.
pub fn dial_refusal(d: &Dial, target: &Target) -> Answer {
    match d {
        Dial::Denied(d) => denied(*d),
        Dial::DnsTimeout => refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "dns_timeout",
            Some(&target.host.to_string()),
        ),
        Dial::Failed(e) => {
            let (status, error) = dial_failure(e);
            refusal(status, error, Some(&target.to_string()))
        }
    }
}

/// The SOCKS reply for a target that could not be reached.
pub fn socks_reply(d: &Dial) -> Reply {
    match d {
        Dial::Denied(_) => Reply::NOT_ALLOWED,
        Dial::DnsTimeout => Reply::HOST_UNREACHABLE,
        Dial::Failed(e) => match e.kind() {
            ErrorKind::Denied => Reply::NOT_ALLOWED,
            ErrorKind::Resolve | ErrorKind::Timeout => Reply::HOST_UNREACHABLE,
            ErrorKind::Connect => Reply::CONNECTION_REFUSED,
            _ => Reply::GENERAL_FAILURE,
        },
    }
}

fn bad(detail: &str) -> Answer {
    refusal(StatusCode::BAD_REQUEST, "http_request_error", Some(detail))
}

impl Decision {
    /// A decision under `policy`; `socks`: the request comes from the SOCKS listener.
    pub fn new(policy: Arc<Policy>, socks: bool) -> Self {
        Decision {
            policy,
            socks,
            stage: Stage::Arriving,
            commands: VecDeque::new(),
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
                self.refuse(r.answer());
            }
        }
    }

    fn refuse(&mut self, a: Answer) {
        self.commands.push_back(Command::Refuse(a));
        self.done();
    }

    fn done(&mut self) {
        self.stage = Stage::Done;
        self.commands.push_back(Command::Done);
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input, now: Instant) {
        let stage = std::mem::replace(&mut self.stage, Stage::Done);
        match (stage, input) {
            (Stage::Arriving, Input::Request { head, protocol }) => self.request(head, protocol),
            (Stage::Arriving, Input::Socks(c, t)) => self.socks(c, t),
            (Stage::Reserving(_), Input::Reserved(Err(full))) => {
                let what = if self.socks {
                    return self.refuse(Answer::Socks(Reply::GENERAL_FAILURE));
                } else {
                    "requests or tunnels"
                };
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
                self.refuse(r.answer());
            }
            (Stage::Reserving(plan), Input::Reserved(Ok(()))) => self.reserved(plan, now),
            (Stage::Dialing(plan), Input::Dialed(r)) => self.dialed(plan, r),
            (Stage::Accepting, Input::Accepted(Ok(()))) => {
                self.stage = Stage::Relaying;
                self.commands.push_back(Command::Relay);
            }
            (Stage::Accepting | Stage::Relaying, Input::Accepted(Err(_)) | Input::Relayed) => {
                self.done()
            }
            (Stage::Forwarding(target, _, v), Input::Forwarded(r)) => self.forwarded(r, &target, v),
            (Stage::Dialing(_) | Stage::Forwarding(..), Input::Cancelled) => {
                self.commands.push_back(Command::Abandon);
                self.done();
            }
            (Stage::Done, _) => {}
            // A reply to a command that was not given: the driver broke the contract.
            // Fail closed: the work ends.
            (_, _) => self.done(),
        }
    }

    fn request(&mut self, head: http::request::Parts, protocol: Option<String>) {
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
                return self.refuse(a);
            }
        }
        if via_loops(&head.headers, &self.policy.pseudonym) {
            let r = Refusal::new(
                StatusCode::LOOP_DETECTED,
                "proxy_loop_detected",
                "forwarding loop (Via names this proxy)",
            );
            return self.refuse(r.answer());
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
                Err(r) => return self.refuse(r.answer()),
            },
            Some(TunnelAsk::Extended(p)) if p == "connect-udp" => {
                let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
                match self.policy.udp_template.matches(path) {
                    Some(t) => Plan::ConnectUdp(t, version),
                    None => {
                        let a = bad("path does not match the CONNECT-UDP template");
                        return self.refuse(a);
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
                return self.refuse(a);
            }
            Some(_) => match head
                .uri
                .authority()
                .filter(|a| !a.as_str().contains('@'))
                .and_then(|a| Target::parse_with_default(a.as_str(), 443).ok())
            {
                Some(t) => Plan::Tcp(t),
                None => return self.refuse(bad("CONNECT needs host:port")),
            },
        };
        let work = match plan {
            Plan::Forward(..) => Work::Request,
            _ => Work::Tunnel,
        };
        self.stage = Stage::Reserving(plan);
        self.commands.push_back(Command::Reserve(work));
    }

    fn socks(&mut self, command: SocksCommand, target: Target) {
        let plan = match command {
            SocksCommand::Connect => match self.policy.judge.check(&target) {
                Ok(()) => Plan::Tcp(target),
                Err(_) => return self.refuse(Answer::Socks(Reply::NOT_ALLOWED)),
            },
            // Each datagram's destination is judged, not the client's expected source
            // in the request (RFC 1928 §7).
            SocksCommand::UdpAssociate => Plan::SocksUdp,
            SocksCommand::Bind => return self.refuse(Answer::Socks(Reply::COMMAND_NOT_SUPPORTED)),
        };
        self.stage = Stage::Reserving(plan);
        self.commands.push_back(Command::Reserve(Work::Tunnel));
    }

    fn reserved(&mut self, plan: Plan, now: Instant) {
        let dial = match &plan {
            Plan::Forward(head, target, version) => {
                // Host and port rules before anything is dialed; addresses are judged by
                // the forwarding client's connector on the very addresses it dials.
                if let Err(d) = self.policy.judge.check(target) {
                    return self.refuse(denied(d));
                }
                let until = now + self.policy.response_timeout;
                self.commands
                    .push_back(Command::Forward(head.clone(), target.clone()));
                self.stage = Stage::Forwarding(target.clone(), until, *version);
                return;
            }
            Plan::Tcp(t) | Plan::ConnectUdp(t, _) => {
                // The rules on the target as named before anything is dialed (a SOCKS
                // target was judged on arrival; the dialer judges every address again).
                if let (false, Err(d)) = (self.socks, self.policy.judge.check(t)) {
                    return self.refuse(denied(d));
                }
                let how = match plan {
                    Plan::Tcp(_) => Transport::Tcp,
                    _ => Transport::Udp,
                };
                Command::Dial(t.clone(), how)
            }
            Plan::SocksUdp => Command::Dial(
                Target::new(burrow_transport::Host::Ip([0, 0, 0, 0].into()), 0),
                Transport::SocksRelay,
            ),
        };
        self.commands.push_back(dial);
        self.stage = Stage::Dialing(plan);
    }

    fn dialed(&mut self, plan: Plan, r: Result<(), Dial>) {
        if let Err(d) = r {
            let a = match (&plan, self.socks) {
                (_, true) => Answer::Socks(socks_reply(&d)),
                (Plan::Tcp(t) | Plan::ConnectUdp(t, _), false) => dial_refusal(&d, t),
                _ => refusal(StatusCode::BAD_GATEWAY, "proxy_internal_error", None),
            };
            return self.refuse(a);
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
                Answer::Http(
                    ResponseHead {
                        status: parts.status,
                        headers,
                    },
                    String::new(),
                )
            }
            _ => Answer::Http(
                ResponseHead {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                },
                String::new(),
            ),
        };
        self.stage = Stage::Accepting;
        self.commands.push_back(Command::Accept(accept));
    }

    fn forwarded(&mut self, r: Result<ResponseHead, Error>, target: &Target, version: Version) {
        match r {
            Ok(mut head) => {
                strip_hop_by_hop(&mut head.headers);
                let via = format!("{} {}", via_protocol(version), self.policy.pseudonym);
                if let Ok(v) = HeaderValue::from_str(&via) {
                    head.headers.append(VIA, v);
                }
                self.commands.push_back(Command::Respond(Box::new(head)));
                self.done();
            }
            Err(e) => self.refuse(dial_refusal(&Dial::Failed(e), target)),
        }
    }
}
