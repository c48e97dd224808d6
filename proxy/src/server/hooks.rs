//! Hooks: code of the proxy's user that looks at, changes, answers or refuses requests,
//! tunnels and datagram flows, the way mitmproxy's addons do.
//!
//! A hook is a [`Hooks`] implementation; every method has a default that lets the flow go
//! on untouched, so an addon overrides only what it cares about. Several hooks run in the
//! order they were added ([`HookChain`]): each sees what the ones before it changed, and the
//! first that answers (a [`Verdict::Respond`]) ends the chain for that step.
//!
//! The decision core decides when a hook is called (a [`HookCall`](super::decision::HookCall)
//! command) and what its reply does (a [`Hooked`](super::decision::Hooked) input); the
//! drivers only call the chain. A hook runs on its flow's own task: a slow hook holds back
//! its flow and nothing else. A hook that fails, panics or takes longer than the proxy's
//! `hook_timeout` fails only its flow: the client is answered 502 with a `Proxy-Status`
//! naming the hook, and the failure is logged.
//!
//! Bodies are streamed through the proxy unless a hook asks for them: a request hook that
//! sets [`Request::buffer_body`] (or a response hook that sets [`Response::buffer_body`])
//! gets the whole body in [`Hooks::request_body`] ([`Hooks::response_body`]), bounded by
//! the proxy's `max_hook_body` (413 for a request beyond it, 502 for a response).

use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

/// The attribute a [`Hooks`] implementation wears (`#[async_trait]`), re-exported so that
/// an addon needs no other dependency.
pub use async_trait::async_trait;
use burrow_transport::Target;
use bytes::Bytes;
use futures_util::FutureExt;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri, Version};

pub use super::decision::{Head, ResponseHead};

/// What kind of tunnel a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TunnelKind {
    /// HTTP CONNECT (any version).
    Connect,
    /// CONNECT-UDP (RFC 9298), any version.
    ConnectUdp,
    /// CONNECT-TCP (draft-ietf-httpbis-connect-tcp), any version.
    ConnectTcp,
    /// CONNECT-IP (RFC 9484), any version.
    ConnectIp,
    /// A SOCKS5 or SOCKS4a CONNECT.
    Socks,
    /// A SOCKS5 UDP association.
    SocksUdp,
    /// A WebSocket (an HTTP/1.1 `Upgrade: websocket`), forwarded to its origin's own
    /// upgrade.
    WebSocket,
}

impl TunnelKind {
    /// The name used in logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Connect => "CONNECT",
            TunnelKind::ConnectUdp => "CONNECT-UDP",
            TunnelKind::ConnectTcp => "CONNECT-TCP",
            TunnelKind::ConnectIp => "CONNECT-IP",
            TunnelKind::Socks => "SOCKS",
            TunnelKind::SocksUdp => "SOCKS-UDP",
            TunnelKind::WebSocket => "WebSocket",
        }
    }
}

/// One request or tunnel, as hooks see it.
#[derive(Clone, Debug)]
pub struct Flow {
    /// Unique within this proxy process.
    pub id: u64,
    /// The client's address.
    pub client: SocketAddr,
    /// The user the client authenticated as, when the proxy asks for credentials.
    pub user: Option<String>,
    /// The HTTP version the client speaks to the proxy (`None` for SOCKS).
    pub version: Option<Version>,
}

/// A request about to be forwarded: hooks may change its head, choose its route and ask
/// for its body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The head as it will be sent (absolute URI, hop-by-hop fields gone, `Via` added).
    /// Changing the URI's authority changes where the request goes (the target rules
    /// judge the new target).
    pub head: Head,
    /// The upstream route by name (see the proxy's routes); `None`: the route the
    /// per-destination rules pick.
    pub route: Option<String>,
    /// Deliver the whole body to [`Hooks::request_body`] before forwarding.
    pub buffer_body: bool,
}

/// An origin's response about to be given to the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// The head as it will be sent (hop-by-hop fields gone, `Via` added).
    pub head: ResponseHead,
    /// Deliver the whole body to [`Hooks::response_body`] before answering.
    pub buffer_body: bool,
}

/// A tunnel a client asked for: hooks may change its target (reroute) and its route.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunnel {
    /// What kind.
    pub kind: TunnelKind,
    /// Where to; the target rules judge it after the hooks.
    pub target: Target,
    /// The upstream route by name; `None`: the route the per-destination rules pick.
    pub route: Option<String>,
}

/// An answer a hook gives instead of the proxy's: a refusal, or a local answer to a
/// request that is then never forwarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalResponse {
    /// The status. A tunnel refused with a status below 400 is answered 403.
    pub status: StatusCode,
    /// The header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl LocalResponse {
    /// A response with `status` and `body`.
    pub fn new(status: StatusCode, body: impl Into<Bytes>) -> LocalResponse {
        LocalResponse {
            status,
            headers: HeaderMap::new(),
            body: body.into(),
        }
    }

    /// Adds a header field (an invalid name or value is skipped).
    pub fn header(mut self, name: &str, value: &str) -> LocalResponse {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            self.headers.append(n, v);
        }
        self
    }
}

/// What a hook says about a flow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (with whatever the hook changed).
    Continue,
    /// Answer with this instead: a refusal, a local answer, or (on a response) a
    /// replacement.
    Respond(LocalResponse),
}

/// A hook's failure: the flow is answered 502 and the message logged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookError(pub String);

impl HookError {
    /// A failure saying `msg`.
    pub fn new(msg: impl Into<String>) -> HookError {
        HookError(msg.into())
    }
}

impl std::fmt::Display for HookError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HookError {}

/// What a hook returns.
pub type HookResult = Result<Verdict, HookError>;

/// What a flow was, in its summary.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum What {
    /// A request (forwarded, answered locally or refused).
    Request {
        /// Its method.
        method: Method,
        /// Its URI.
        uri: Uri,
    },
    /// A tunnel.
    Tunnel(TunnelKind),
}

/// How a flow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Forwarded and answered, or relayed until both sides finished.
    Completed,
    /// Refused by the proxy's rules or limits, or a hook's answer.
    Refused,
    /// Answered by a hook without being forwarded.
    Local,
    /// The target could not be reached, or the origin failed.
    Failed,
    /// The client went away before it was answered, or while its response was sent.
    ClientGone,
    /// Closed after the idle time with nothing moving.
    Idle,
}

impl End {
    /// The name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            End::Completed => "completed",
            End::Refused => "refused",
            End::Local => "local",
            End::Failed => "failed",
            End::ClientGone => "client_gone",
            End::Idle => "idle",
        }
    }
}

/// A closed request or tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Summary {
    /// What it was.
    pub what: What,
    /// Where to (`None` when it was refused before a target was known).
    pub target: Option<Target>,
    /// The route taken by name (`direct`, an upstream's name), `local` for a local
    /// answer, `intercept` for an intercepted tunnel, `-` when nothing was dialed.
    pub route: String,
    /// The user the client authenticated as (`None` without `--auth`, or when it did not).
    pub user: Option<String>,
    /// The HTTP version spoken to the origin of a forwarded request.
    pub upstream_version: Option<Version>,
    /// The HTTP status the client was given (a tunnel's acceptance or refusal); `None`
    /// for SOCKS.
    pub status: Option<StatusCode>,
    /// The SOCKS reply code the client was given.
    pub socks_reply: Option<u8>,
    /// The Proxy-Status error type of a refusal or failure (RFC 9209).
    pub error: Option<String>,
    /// Bytes from the client (request body, tunnel upload).
    pub bytes_up: u64,
    /// Bytes to the client (response body, tunnel download).
    pub bytes_down: u64,
    /// From the request's arrival to its end.
    pub duration: Duration,
    /// From the request's arrival to the origin's response head (forwarded requests) or
    /// the tunnel's acceptance.
    pub latency: Option<Duration>,
    /// How it ended.
    pub end: End,
}

/// A proxy user's code, called at each step of every flow (see the module docs). Every
/// method defaults to letting the flow go on.
#[async_trait]
pub trait Hooks: Send + Sync + 'static {
    /// The name used in errors and logs.
    fn name(&self) -> &str {
        "hook"
    }

    /// A client connected; `Respond` closes its connection at once.
    async fn client_connected(&self, _client: SocketAddr) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// A client's connection closed.
    async fn client_closed(&self, _client: SocketAddr) {}

    /// A request's head, before anything is dialed: change it, choose its route, ask for
    /// its body, refuse it, or answer it locally.
    async fn request_headers(&self, _flow: &Flow, _request: &mut Request) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// The whole request body, when a request hook asked for it.
    async fn request_body(
        &self,
        _flow: &Flow,
        _request: &Request,
        _body: &mut Bytes,
    ) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// The origin's response head: change it, ask for its body, or replace the response.
    async fn response_headers(
        &self,
        _flow: &Flow,
        _request: &Request,
        _response: &mut Response,
    ) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// The whole response body, when a response hook asked for it.
    async fn response_body(
        &self,
        _flow: &Flow,
        _request: &Request,
        _response: &Response,
        _body: &mut Bytes,
    ) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// A request ended (forwarded, answered locally or refused).
    async fn request_closed(&self, _flow: &Flow, _summary: &Summary) {}

    /// A tunnel was asked for: allow it (perhaps elsewhere: change its target or route) or
    /// refuse it.
    async fn tunnel_requested(&self, _flow: &Flow, _tunnel: &mut Tunnel) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// A tunnel ended (or was refused): bytes each way, how long, why.
    async fn tunnel_closed(&self, _flow: &Flow, _summary: &Summary) {}

    /// A SOCKS5 UDP association is about to send to a destination it has not sent to:
    /// `Respond` refuses it (its datagrams are dropped). A CONNECT-UDP tunnel's one
    /// destination is judged by [`tunnel_requested`](Hooks::tunnel_requested).
    async fn datagram_destination(&self, _flow: &Flow, _target: &Target) -> HookResult {
        Ok(Verdict::Continue)
    }

    /// A datagram flow was opened: a CONNECT-UDP tunnel, or one destination of a SOCKS5 UDP
    /// association.
    async fn datagram_flow_opened(&self, _flow: &Flow, _target: &Target) {}

    /// A datagram flow ended.
    async fn datagram_flow_closed(&self, _flow: &Flow, _summary: &Summary) {}
}

/// Hooks in the order they run.
#[derive(Clone, Default)]
pub struct HookChain {
    hooks: Vec<Arc<dyn Hooks>>,
    timeout: Option<Duration>,
}

impl std::fmt::Debug for HookChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.hooks.iter().map(|h| h.name()))
            .finish()
    }
}

/// Why a chain stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stopped {
    /// A hook answered.
    Respond(LocalResponse),
    /// A hook failed, panicked or ran out of time: the message names it.
    Failed(String),
}

impl HookChain {
    /// A chain of `hooks`, in order.
    pub fn new(hooks: Vec<Arc<dyn Hooks>>) -> HookChain {
        HookChain {
            hooks,
            timeout: None,
        }
    }

    /// Adds a hook at the end.
    pub fn push(&mut self, hook: Arc<dyn Hooks>) {
        self.hooks.push(hook);
    }

    /// Whether there is no hook.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// The number of hooks.
    pub fn len(&self) -> usize {
        self.hooks.len()
    }

    /// Each hook call's deadline (the proxy sets its `hook_timeout`).
    pub fn with_timeout(mut self, timeout: Duration) -> HookChain {
        self.timeout = Some(timeout);
        self
    }

    /// Runs one hook's call: a failure, a panic or a missed deadline is a `Failed` naming
    /// it.
    async fn guarded(
        &self,
        name: &str,
        step: &str,
        f: impl Future<Output = HookResult>,
    ) -> Result<(), Stopped> {
        let f = AssertUnwindSafe(f).catch_unwind();
        let r = match self.timeout {
            Some(t) => match tokio::time::timeout(t, f).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(Stopped::Failed(format!(
                        "hook {name} took longer than {t:?} in {step}"
                    )))
                }
            },
            None => f.await,
        };
        match r {
            Ok(Ok(Verdict::Continue)) => Ok(()),
            Ok(Ok(Verdict::Respond(r))) => Err(Stopped::Respond(r)),
            Ok(Err(e)) => Err(Stopped::Failed(format!(
                "hook {name} failed in {step}: {e}"
            ))),
            Err(_) => Err(Stopped::Failed(format!("hook {name} panicked in {step}"))),
        }
    }

    /// A notification: failures are logged, nothing else.
    async fn notify(&self, name: &str, step: &str, f: impl Future<Output = ()>) {
        let f = async {
            f.await;
            Ok(Verdict::Continue)
        };
        if let Err(Stopped::Failed(m)) = self.guarded(name, step, f).await {
            tracing::warn!("{m}");
        }
    }

    /// Runs `client_connected`.
    /// When a hook refuses the client, the hooks that were told of it (that one included)
    /// are told it closed.
    pub async fn client_connected(&self, client: SocketAddr) -> Result<(), Stopped> {
        for (i, h) in self.hooks.iter().enumerate() {
            let r = self.guarded(h.name(), "client_connected", h.client_connected(client));
            if let Err(e) = r.await {
                for h in &self.hooks[..=i] {
                    self.notify(h.name(), "client_closed", h.client_closed(client))
                        .await;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Runs `client_closed`.
    pub async fn client_closed(&self, client: SocketAddr) {
        for h in &self.hooks {
            self.notify(h.name(), "client_closed", h.client_closed(client))
                .await;
        }
    }

    /// Runs `request_headers`.
    pub async fn request_headers(&self, flow: &Flow, r: &mut Request) -> Result<(), Stopped> {
        for h in &self.hooks {
            self.guarded(h.name(), "request_headers", h.request_headers(flow, r))
                .await?;
        }
        Ok(())
    }

    /// Runs `request_body`.
    pub async fn request_body(
        &self,
        flow: &Flow,
        r: &Request,
        body: &mut Bytes,
    ) -> Result<(), Stopped> {
        for h in &self.hooks {
            self.guarded(h.name(), "request_body", h.request_body(flow, r, body))
                .await?;
        }
        Ok(())
    }

    /// Runs `response_headers`.
    pub async fn response_headers(
        &self,
        flow: &Flow,
        r: &Request,
        resp: &mut Response,
    ) -> Result<(), Stopped> {
        for h in &self.hooks {
            let f = h.response_headers(flow, r, resp);
            self.guarded(h.name(), "response_headers", f).await?;
        }
        Ok(())
    }

    /// Runs `response_body`.
    pub async fn response_body(
        &self,
        flow: &Flow,
        r: &Request,
        resp: &Response,
        body: &mut Bytes,
    ) -> Result<(), Stopped> {
        for h in &self.hooks {
            let f = h.response_body(flow, r, resp, body);
            self.guarded(h.name(), "response_body", f).await?;
        }
        Ok(())
    }

    /// Runs `tunnel_requested`.
    pub async fn tunnel_requested(&self, flow: &Flow, t: &mut Tunnel) -> Result<(), Stopped> {
        for h in &self.hooks {
            self.guarded(h.name(), "tunnel_requested", h.tunnel_requested(flow, t))
                .await?;
        }
        Ok(())
    }

    /// Runs the notification for a closed flow: `request_closed` or `tunnel_closed`.
    pub async fn closed(&self, flow: &Flow, s: &Summary) {
        for h in &self.hooks {
            match &s.what {
                What::Request { .. } => {
                    self.notify(h.name(), "request_closed", h.request_closed(flow, s))
                        .await
                }
                What::Tunnel(_) => {
                    self.notify(h.name(), "tunnel_closed", h.tunnel_closed(flow, s))
                        .await
                }
            }
        }
    }

    /// Runs `datagram_destination`.
    pub async fn datagram_destination(&self, flow: &Flow, t: &Target) -> Result<(), Stopped> {
        for h in &self.hooks {
            let f = h.datagram_destination(flow, t);
            self.guarded(h.name(), "datagram_destination", f).await?;
        }
        Ok(())
    }

    /// Runs `datagram_flow_closed`.
    pub async fn datagram_flow_closed(&self, flow: &Flow, s: &Summary) {
        for h in &self.hooks {
            let f = h.datagram_flow_closed(flow, s);
            self.notify(h.name(), "datagram_flow_closed", f).await;
        }
    }

    /// Runs `datagram_flow_opened`.
    pub async fn datagram_flow_opened(&self, flow: &Flow, target: &Target) {
        for h in &self.hooks {
            let f = h.datagram_flow_opened(flow, target);
            self.notify(h.name(), "datagram_flow_opened", f).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            id: 1,
            client: "127.0.0.1:1".parse().unwrap(),
            user: None,
            version: Some(Version::HTTP_11),
        }
    }

    fn request() -> Request {
        Request {
            head: Head {
                method: Method::GET,
                uri: "http://a.test/".parse().unwrap(),
                version: Version::HTTP_11,
                headers: HeaderMap::new(),
            },
            route: None,
            buffer_body: false,
        }
    }

    /// Appends its name to `x-order`; answers when told to.
    struct Step(&'static str, bool);

    #[async_trait]
    impl Hooks for Step {
        fn name(&self) -> &str {
            self.0
        }
        async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
            let before = r
                .head
                .headers
                .get("x-order")
                .map(|v| v.to_str().unwrap_or("").to_string())
                .unwrap_or_default();
            let now = format!("{before}{}", self.0);
            r.head
                .headers
                .insert("x-order", HeaderValue::from_str(&now).unwrap());
            if self.1 {
                return Ok(Verdict::Respond(LocalResponse::new(StatusCode::OK, now)));
            }
            Ok(Verdict::Continue)
        }
    }

    #[tokio::test]
    async fn hooks_run_in_order_and_the_first_answer_ends_the_chain() {
        let chain = HookChain::new(vec![
            Arc::new(Step("a", false)),
            Arc::new(Step("b", false)),
            Arc::new(Step("c", true)),
            Arc::new(Step("d", false)),
        ]);
        let mut r = request();
        let got = chain.request_headers(&flow(), &mut r).await;
        // Each saw what the ones before it did; "d" never ran.
        assert_eq!(
            got,
            Err(Stopped::Respond(LocalResponse::new(StatusCode::OK, "abc")))
        );
        assert_eq!(r.head.headers["x-order"], "abc");
        let empty = HookChain::default();
        let mut r = request();
        assert_eq!(empty.request_headers(&flow(), &mut r).await, Ok(()));
        assert!(empty.is_empty() && chain.len() == 4);
    }
}
