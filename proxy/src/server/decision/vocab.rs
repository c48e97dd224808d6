//! The decision core's vocabulary: its configuration, commands, inputs and the values
//! they carry.

use std::sync::Arc;
use std::time::Duration;

use burrow_http_core::credentials::Credentials;
use burrow_transport::{Error, Target};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode, Uri, Version};

use super::super::dial::{Dial, Judge};
use super::super::hooks::{self, LocalResponse, Summary};
use super::super::routes::Pattern;
use super::InterceptRules;
use crate::socks::wire::{Command as SocksCommand, Reply};
use crate::template::UdpTemplate;

/// Default [`Policy::client_first_wait`].
pub const CLIENT_FIRST_WAIT: Duration = Duration::from_secs(1);

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
    /// The CONNECT-IP template served; `None`: CONNECT-IP is not enabled (no pool or TUN
    /// device), and such requests get 501.
    pub ip_template: Option<crate::template::IpTemplate>,
    /// The CONNECT-TCP template served (default
    /// [`DEFAULT_TCP_TEMPLATE`](crate::template::DEFAULT_TCP_TEMPLATE)).
    pub tcp_template: UdpTemplate,
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
    /// How long an intercepted tunnel waits for its client's first byte before taking it
    /// for a protocol where the server speaks first (SMTP, IMAP, SSH banners) and relaying
    /// it.
    pub client_first_wait: Duration,
}

/// Marks a request that arrived inside an intercepted tunnel to this target (an extension
/// of its head): it is an `https://` request to the authority the client named (its
/// `Host` or `:authority`, else the tunnel's target), sent over a connection to the
/// tunnel's target.
/// The requests inside reach the target through the tunnel's route; they were
/// authenticated with the tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intercepted {
    /// The tunnel's target.
    pub target: Target,
    /// The tunnel's route.
    pub route: usize,
}

/// The outcome of [`Command::Intercept`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interception {
    /// The client's TLS connection was served until it ended; the bytes it moved (as
    /// TLS records).
    Served {
        /// Bytes from the client.
        up: u64,
        /// Bytes to the client.
        down: u64,
    },
    /// The client's TLS handshake failed, or it went away before it.
    Failed,
}

/// The outcome of [`Command::Peek`]: the first byte the client sent in its tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peeked {
    /// This byte (kept in front of the stream for whatever reads it next).
    Byte(u8),
    /// The client closed the tunnel (or it failed) before sending anything.
    Closed,
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
            tcp_template: UdpTemplate::default_tcp(),
            ip_template: None,
            response_timeout,
            routes: Vec::new(),
            route_rules: Vec::new(),
            hooks: false,
            intercept: None,
            client_first_wait: CLIENT_FIRST_WAIT,
        }
    }

    pub(super) fn judge_of(&self, route: usize) -> &Judge {
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

    pub(super) fn named(&self, name: &str) -> Option<usize> {
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
    /// Addresses from the CONNECT-IP pool, and the proxy's TUN device, for a tunnel of
    /// this scope (its packets are judged one by one).
    Ip(burrow_transport::IpScope),
}

/// How the client's side of a relayed TCP tunnel carries the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// As they are (CONNECT, SOCKS; a datagram flow has its own framing).
    Raw,
    /// As CONNECT-TCP's DATA and FINAL_DATA capsules.
    TcpCapsules,
    /// IP packets and CONNECT-IP's capsules (RFC 9484), relayed to the TUN device.
    Ip,
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
    /// The datagram flow that was opened ended (just before `Closed`).
    DatagramClosed(Box<Summary>),
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
    /// Read the first byte of the accepted tunnel, to tell TLS from anything else, within
    /// [`poll_timeout`](super::Decision::poll_timeout) (a client that says nothing until
    /// then waits for a server that speaks first); answered by [`Input::Peeked`], or by the
    /// deadline.
    Peek,
    /// Intercept the accepted tunnel: answer the client's TLS with a minted certificate
    /// and serve the requests inside (each a decision of its own); answered by
    /// [`Input::Intercepted`]. The requests inside reach the target through the route.
    Intercept(Target, usize),
    /// Relay between the client's tunnel, framed so, and what was dialed until either ends
    /// or nothing moves for the idle time; answered by [`Input::Relayed`].
    Relay(Framing),
    /// Send the request on through the route; answered by [`Input::Forwarded`].
    Forward(Box<Head>, Target, usize),
    /// Send the request on through the route as an HTTP/1.1 `Upgrade: websocket`, on a
    /// connection of its own; answered by [`Input::Upgraded`]. Once the origin switched,
    /// the connection is what the tunnel reaches (as a dial's stream).
    Upgrade(Box<Head>, Target, usize),
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
    /// The outcome of [`Command::Peek`].
    Peeked(Peeked),
    /// The outcome of [`Command::Intercept`].
    Intercepted(Interception),
    /// The outcome of [`Command::Forward`]: the origin's response head and its version.
    Forwarded(Result<(ResponseHead, Version), Error>),
    /// The outcome of [`Command::Upgrade`]: the origin's 101 head, or the head of its
    /// answer that did not switch, or why it was not reached (an upstream proxy's
    /// refusal among them).
    Upgraded(Result<ResponseHead, Error>),
    /// The relay ended.
    Relayed(Relayed),
    /// The client gave up on the request.
    Cancelled,
}
