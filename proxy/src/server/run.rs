//! Running a [`Decision`]'s commands for any listener: the listener's side (answering its
//! client, accepting its tunnel, noticing it give up) is a [`Side`]; calling the hooks,
//! reserving, dialing, forwarding and relaying are the same for all. Nothing here decides:
//! every refusal, status and deadline comes from the decision core.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use burrow_http_core::{driver, Body};
use burrow_transport::tcp::Abort;
use burrow_transport::{BoxFlow, BoxStream, Error, ErrorKind, Target};
use bytes::Bytes;

use super::decision::Intercepted;
use super::decision::{
    Answer, Command, Decision, Framing, Full, HookCall, Hooked, Input, Interception, Notice,
    Peeked, Relayed, ResponseHead, Transport, Work,
};
use super::hooks::{self, Flow, Stopped};
use burrow_http_core::connect_tcp::{CapsuleStream, CloseInner};

use super::counting::{Counted, Counting, Moved, Way};
use super::{association, relay::relay, Limits, Proxy, State};
use crate::flows;

/// What a request holds while it is served (its connection's in-flight token, its slot,
/// its client's share): released when the work ends, which for a forwarded request is when
/// its response body has been sent or dropped.
pub(crate) type Guard = Box<dyn Send + Sync>;

/// The client's end of an accepted tunnel.
pub(crate) enum Accepted {
    /// A byte stream: a CONNECT tunnel, or a SOCKS connection past its reply.
    Stream(BoxStream),
    /// An HTTP tunnel that may carry datagrams (CONNECT-UDP).
    Tunnel(burrow_http_core::Tunnel),
}

/// What was reached for the client.
pub(crate) enum Reached {
    /// A byte stream, and what makes its close abortive when it is a direct TCP connection.
    Stream(BoxStream, Option<Abort>),
    Flow(BoxFlow),
    Relay(tokio::net::UdpSocket),
    /// Addresses on the CONNECT-IP network.
    Ip(super::ipnet::Lease),
}

/// A listener's side of a request.
#[async_trait]
pub(crate) trait Side: Send {
    /// Answers the client with a refusal.
    async fn refuse(&mut self, answer: Answer);
    /// Accepts the tunnel; `bound` is the relay's address for a SOCKS UDP association.
    async fn accept(&mut self, answer: Answer, bound: Option<Target>) -> Result<Accepted, Error>;
    /// Gives the client a forwarded response.
    async fn respond(&mut self, head: ResponseHead, body: Body);
    /// Resolves when the client gives up on the request.
    async fn cancelled(&mut self);
    /// The request body, for forwarding.
    fn take_body(&mut self) -> Body;
    /// The address the client reached the proxy at.
    fn local_addr(&self) -> Option<std::net::SocketAddr>;
}

/// A request's work in progress: what it holds, reached and accepted.
pub(crate) struct Run {
    pub proxy: Arc<Proxy>,
    state: Arc<State>,
    pub peer: std::net::SocketAddr,
    pub guards: Vec<Guard>,
    reached: Option<Reached>,
    accepted: Option<Accepted>,
    response: Option<Body>,
    tunnel: bool,
    flow: Flow,
    /// The request as the hooks left it (for the response hooks).
    request: Option<hooks::Request>,
    response_hooked: Option<hooks::Response>,
    /// A body the hooks buffered, to send instead of the stream.
    request_body: Option<Bytes>,
    moved: Arc<Moved>,
    /// Resolves when a forwarded response's body has been sent or dropped.
    body_sent: Option<tokio::sync::oneshot::Receiver<()>>,
    responded: Option<Instant>,
    /// The client of the intercepted tunnel the request came in.
    pub inside_client: Option<super::InsideClient>,
    /// The route a hook chose for a SOCKS5 UDP association.
    relay_route: Option<usize>,
    /// What an intercepted tunnel moved, from its first byte.
    tunnel_moved: Arc<Moved>,
    /// Makes the client's TCP connection end with a RST, when the tunnel is that whole
    /// connection (HTTP/1.1, SOCKS) and fails.
    pub client_abort: Option<Abort>,
}

impl Run {
    /// Work for a request from `peer` (`version`: the HTTP version it speaks, `None` for
    /// SOCKS), holding `guards` until it ends.
    pub fn new(
        proxy: Arc<Proxy>,
        state: Arc<State>,
        peer: std::net::SocketAddr,
        version: Option<http::Version>,
        guards: Vec<Guard>,
    ) -> Self {
        let flow = Flow {
            id: proxy.next_flow.fetch_add(1, Ordering::Relaxed),
            client: peer,
            // Known once the decision has checked the credentials.
            user: None,
            version,
        };
        Run {
            proxy,
            state,
            peer,
            guards,
            reached: None,
            accepted: None,
            response: None,
            tunnel: false,
            flow,
            request: None,
            response_hooked: None,
            request_body: None,
            moved: Arc::default(),
            body_sent: None,
            responded: None,
            inside_client: None,
            relay_route: None,
            tunnel_moved: Arc::default(),
            client_abort: None,
        }
    }

    /// Runs the decision's commands until it is done. Every step but the relay is boxed:
    /// a tunnel's task holds, for its whole life, the largest state among its awaits, and
    /// the relay's is the small one.
    pub async fn execute(mut self, d: &mut Decision, side: &mut impl Side) {
        let proxy = self.proxy.clone();
        let stats = &proxy.stats;
        while let Some(c) = d.poll_command() {
            let input = match c {
                Command::Hook(call) => match Box::pin(self.hook(call, side)).await {
                    Some(i) => i,
                    None => Input::Cancelled,
                },
                Command::Notify(n) => {
                    Box::pin(self.notify(n)).await;
                    continue;
                }
                Command::Refuse(a) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    // A response the hooks replaced is not given.
                    self.response = None;
                    side.refuse(a).await;
                    continue;
                }
                Command::Reserve(w) => Input::Reserved(self.reserve(w)),
                Command::Dial(t, how, route) => {
                    if how == Transport::SocksRelay && route != 0 {
                        self.relay_route = Some(route);
                    }
                    match Box::pin(self.wait(d, Wait::Dial(t, how, route), side)).await {
                        Some(i) => i,
                        None => continue,
                    }
                }
                Command::Forward(head, _, route) => {
                    match Box::pin(self.wait(d, Wait::Forward(head, route), side)).await {
                        Some(i) => i,
                        None => continue,
                    }
                }
                Command::Upgrade(head, _, route) => {
                    match Box::pin(self.wait(d, Wait::Upgrade(head, route), side)).await {
                        Some(i) => i,
                        None => continue,
                    }
                }
                Command::Accept(a) => Input::Accepted(Box::pin(self.accept(a, side)).await),
                Command::Peek => match Box::pin(self.peek(d)).await {
                    Some(i) => i,
                    None => continue,
                },
                Command::Intercept(t, route) => {
                    Input::Intercepted(Box::pin(self.intercept(t, route)).await)
                }
                Command::Relay(framing) => Input::Relayed(self.relay(framing).await),
                Command::Respond(head) => {
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    if !self.state.hooks.is_empty() {
                        self.body_sent = Some(rx);
                        self.responded = Some(driver::now());
                    }
                    let body = Body::wrap(Counted {
                        inner: self.response.take().unwrap_or_default(),
                        moved: self.moved.clone(),
                        way: Way::Down,
                        _hold: Some((tx, std::mem::take(&mut self.guards))),
                    });
                    side.respond(*head, body).await;
                    continue;
                }
                // The work that waited was dropped when the wait ended.
                Command::Abandon => continue,
                Command::Done => break,
            };
            d.handle(input, driver::now());
        }
        if self.tunnel {
            stats.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Runs a hook step, unless the client gives up first (`None`).
    async fn hook(&mut self, call: HookCall, side: &mut impl Side) -> Option<Input> {
        // Hooks are asked only once the client passed authentication.
        self.flow.user = self.state.policy.auth.as_ref().map(|c| c.user.clone());
        let (state, proxy) = (self.state.clone(), self.proxy.clone());
        let limits = &proxy.config.limits;
        let chain = &state.hooks;
        let flow = self.flow.clone();
        let request_body = matches!(call, HookCall::RequestBody).then(|| side.take_body());
        let out_of_turn = || Hooked::Failed("a hook step came out of turn".into());
        let step = async {
            let r = match call {
                HookCall::Request(mut r) => {
                    let s = chain.request_headers(&flow, &mut r).await;
                    s.map(|()| {
                        self.request = Some((*r).clone());
                        Hooked::Request(r)
                    })
                }
                HookCall::RequestBody => {
                    let body = request_body.unwrap_or_default();
                    let mut data = match collect_for_hooks(body, limits, "request").await {
                        Ok(data) => data,
                        Err(h) => return h,
                    };
                    let Some(req) = self.request.clone() else {
                        return out_of_turn();
                    };
                    let s = chain.request_body(&flow, &req, &mut data).await;
                    s.map(|()| {
                        let n = data.len() as u64;
                        self.request_body = Some(data);
                        Hooked::Body(n)
                    })
                }
                HookCall::Response(mut r) => {
                    let Some(req) = self.request.clone() else {
                        return out_of_turn();
                    };
                    let s = chain.response_headers(&flow, &req, &mut r).await;
                    s.map(|()| {
                        self.response_hooked = Some((*r).clone());
                        Hooked::Response(r)
                    })
                }
                HookCall::ResponseBody => {
                    let body = self.response.take().unwrap_or_default();
                    let mut data = match collect_for_hooks(body, limits, "response").await {
                        Ok(data) => data,
                        Err(h) => return h,
                    };
                    let (Some(req), Some(resp)) =
                        (self.request.clone(), self.response_hooked.clone())
                    else {
                        return out_of_turn();
                    };
                    let s = chain.response_body(&flow, &req, &resp, &mut data).await;
                    s.map(|()| {
                        let n = data.len() as u64;
                        self.response = Some(Body::from(data));
                        Hooked::Body(n)
                    })
                }
                HookCall::Tunnel(mut t) => {
                    let s = chain.tunnel_requested(&flow, &mut t).await;
                    s.map(|()| Hooked::Tunnel(t))
                }
            };
            match r {
                Ok(h) => h,
                Err(Stopped::Respond(r)) => Hooked::Respond(Box::new(r)),
                Err(Stopped::Failed(m)) => {
                    tracing::warn!(flow = flow.id, "{m}");
                    Hooked::Failed(m)
                }
            }
        };
        tokio::select! {
            h = step => Some(Input::Hooked(h)),
            _ = side.cancelled() => {
                proxy.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    async fn notify(&mut self, n: Notice) {
        let hooks = &self.state.hooks;
        match n {
            Notice::DatagramOpened(t) => hooks.datagram_flow_opened(&self.flow, &t).await,
            Notice::DatagramClosed(s) => hooks.datagram_flow_closed(&self.flow, &s).await,
            Notice::Closed(mut s) => {
                self.flow.user = s.user.clone();
                // A forwarded response is over when its body has been sent.
                if let Some(rx) = self.body_sent.take() {
                    let _ = rx.await;
                    if let Some(at) = self.responded {
                        s.duration += driver::now().saturating_duration_since(at);
                    }
                }
                if matches!(s.what, hooks::What::Request { .. }) {
                    s.bytes_up = self.moved.up.load(Ordering::Relaxed);
                    s.bytes_down = self.moved.down.load(Ordering::Relaxed);
                }
                hooks.closed(&self.flow, &s).await;
            }
        }
    }

    fn reserve(&mut self, w: Work) -> Result<(), Full> {
        let p = self.proxy.clone();
        let share = p.clients.work(self.peer.ip()).ok_or(Full::Client)?;
        let slots = match w {
            Work::Tunnel => &p.tunnel_slots,
            Work::Request => &p.request_slots,
        };
        let slot = slots.clone().try_acquire_owned().map_err(|_| Full::Proxy)?;
        self.guards.push(Box::new(share));
        self.guards.push(Box::new(slot));
        if w == Work::Tunnel {
            self.tunnel = true;
            p.stats.tunnels.fetch_add(1, Ordering::Relaxed);
            p.stats.active.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Runs a command that waits (a dial, a forwarded exchange) unless the client gives up
    /// or the decision's deadline passes first; `None` when the deadline passed (the
    /// decision was told).
    async fn wait(&mut self, d: &mut Decision, w: Wait, side: &mut impl Side) -> Option<Input> {
        let body = match (&w, self.request_body.take()) {
            (Wait::Forward(..), Some(b)) => Some(Body::from(b)),
            (Wait::Forward(..), None) => Some(side.take_body()),
            _ => None,
        };
        // Counted only when hooks are there to be told.
        let body = match body {
            Some(b) if !self.state.hooks.is_empty() => Some(Body::wrap(Counted {
                inner: b,
                moved: self.moved.clone(),
                way: Way::Up,
                _hold: None,
            })),
            b => b,
        };
        let local = side.local_addr();
        let until = d.poll_timeout();
        let deadline = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let step = tokio::select! {
            s = start(&self.state, w, body, local, self.inside_client.as_ref(), self.proxy.config.ip.as_ref()) => s,
            _ = side.cancelled() => {
                self.proxy.stats.cancelled.fetch_add(1, Ordering::Relaxed);
                return Some(Input::Cancelled);
            }
            _ = deadline => {
                d.handle_timeout(until.map_or_else(driver::now, |t| t.max(driver::now())));
                return None;
            }
        };
        Some(match step {
            Step::Dialed(r) => Input::Dialed(r.map(|x| self.reached = Some(x))),
            Step::Upgraded(r) => Input::Upgraded(r.map(|(head, stream)| {
                // Once switched the origin's connection is the tunnel's far side.
                if let Some(s) = stream {
                    self.reached = Some(Reached::Stream(s, None));
                }
                head
            })),
            Step::Forwarded(r) => Input::Forwarded(r.map(|resp| {
                let (parts, body) = resp.into_parts();
                self.response = Some(body);
                let head = ResponseHead {
                    status: parts.status,
                    headers: parts.headers,
                };
                (head, parts.version)
            })),
        })
    }

    async fn accept(&mut self, a: Answer, side: &mut impl Side) -> Result<(), Error> {
        let bound = match &self.reached {
            Some(Reached::Relay(s)) => s.local_addr().ok().map(Target::from),
            _ => None,
        };
        self.accepted = Some(side.accept(a, bound).await?);
        Ok(())
    }

    /// Reads the first byte of the accepted tunnel (counting what it moves from now on)
    /// and keeps it in front of the stream; `None` when the decision's deadline passed
    /// first (the decision was told).
    async fn peek(&mut self, d: &mut Decision) -> Option<Input> {
        use tokio::io::AsyncReadExt;
        let io: BoxStream = match self.accepted.take() {
            Some(Accepted::Stream(s)) => s,
            Some(Accepted::Tunnel(t)) => Box::new(t),
            None => return Some(Input::Peeked(Peeked::Closed)),
        };
        let mut io = Counting {
            inner: io,
            moved: self.tunnel_moved.clone(),
        };
        let until = d.poll_timeout().unwrap_or_else(driver::now);
        let mut first = [0u8; 1];
        let got = tokio::select! {
            r = io.read(&mut first) => Some(r),
            _ = tokio::time::sleep_until(until.into()) => None,
        };
        match got {
            Some(Ok(1)) => {
                let io = burrow_transport::Prefixed::new(Bytes::copy_from_slice(&first), io);
                self.accepted = Some(Accepted::Stream(Box::new(io)));
                Some(Input::Peeked(Peeked::Byte(first[0])))
            }
            Some(_) => Some(Input::Peeked(Peeked::Closed)),
            None => {
                self.accepted = Some(Accepted::Stream(Box::new(io)));
                d.handle_timeout(until.max(driver::now()));
                None
            }
        }
    }

    /// Serves an intercepted tunnel whose first byte was a TLS handshake: TLS with a
    /// minted certificate, then its requests, each as a request of its own.
    async fn intercept(&mut self, target: Target, route: usize) -> Interception {
        let p = self.proxy.clone();
        let Some(ic) = &p.config.intercept else {
            return Interception::Failed;
        };
        let Some(Accepted::Stream(io)) = self.accepted.take() else {
            return Interception::Failed;
        };
        let cfg = match ic.ca.server_config(&target) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!("intercepting {target}: {e}");
                return Interception::Failed;
            }
        };
        let deadline = p.config.limits.handshake_timeout;
        let accepted = tokio::time::timeout(deadline, burrow_transport::tls::accept(io, cfg)).await;
        // Over HTTP/1.1 inside, a tunnel (a WebSocket) takes the whole decrypted connection,
        // which is the client's own (its TCP connection, when it came on one): one that
        // fails resets it, as a tunnel outside would. Over HTTP/2 each stream resets alone.
        let mut inner_abort = None;
        let conn = match accepted {
            // No extended CONNECT inside: a browser's WebSocket then comes as an HTTP/1.1
            // Upgrade on a connection of its own, which is forwarded.
            Ok(Ok((tls, alpn))) if alpn.as_deref() == Some(b"h2") => {
                super::listen::h2_with(&p, Box::new(tls), false).await
            }
            Ok(Ok((tls, _))) => {
                inner_abort = self.client_abort.clone();
                super::h1(&p, Box::new(tls)).await
            }
            Ok(Err(e)) => {
                tracing::info!("intercepting {target}: the client's TLS failed: {e}");
                return Interception::Failed;
            }
            Err(_) => return Interception::Failed,
        };
        let Ok(conn) = conn else {
            return Interception::Failed;
        };
        // The requests inside go to the tunnel's target, whatever authority they name,
        // over connections of this tunnel's own (HTTP/2 or HTTP/1.1, as the origin says).
        let state = self.state.clone();
        let Some(means) = state.routes.get(route) else {
            return Interception::Failed;
        };
        let build = |h2: bool| {
            let mut b = burrow_http_core::Client::builder();
            if h2 {
                b.protocol(Arc::new(burrow_http2::Http2::default()));
            }
            b.protocol(Arc::new(burrow_http1::Http1::default()))
                .tls(p.config.origin_tls.clone())
                .connector(Arc::new(super::dial::GuardedConnector {
                    dialer: means.dialer.clone(),
                    fixed: Some(target.clone()),
                }))
                .max_connections_per_origin(p.config.limits.max_requests.max(1));
            b.build()
        };
        // WebSocket upgrades inside go over HTTP/1.1 connections of their own.
        let client = match (build(true), build(false)) {
            (Ok(any), Ok(h1)) => super::InsideClient { any, h1 },
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("intercepting {target}: {e}");
                return Interception::Failed;
            }
        };
        let peer = super::Peer {
            addr: self.peer,
            abort: inner_abort,
        };
        let stop = Arc::new(tokio::sync::Notify::new());
        let inside = Intercepted { target, route };
        super::serve_inside(p.clone(), conn, stop, peer, inside, client).await;
        Interception::Served {
            up: self.tunnel_moved.up.load(Ordering::Relaxed),
            down: self.tunnel_moved.down.load(Ordering::Relaxed),
        }
    }

    async fn relay(&mut self, framing: Framing) -> Relayed {
        let p = self.proxy.clone();
        let limits = &p.config.limits;
        let (buffer, idle, stats) = (limits.tunnel_buffer, limits.idle_timeout, &p.stats);
        let client_abort = self.client_abort.take();
        let client = client_abort.as_ref();
        match (self.accepted.take(), self.reached.take()) {
            (Some(Accepted::Tunnel(t)), Some(Reached::Stream(s, abort)))
                if framing == Framing::TcpCapsules =>
            {
                // HTTP/1.1 cannot half-close the connection the tunnel is.
                let close = match self.flow.version {
                    Some(http::Version::HTTP_2 | http::Version::HTTP_3) => {
                        CloseInner::WhenBothEnded
                    }
                    _ => CloseInner::OnDrop,
                };
                let c = CapsuleStream::new(t, p.config.tcp_codepoints, close);
                relay(c, s, buffer, idle, stats, [abort.as_ref(), client]).await
            }
            (Some(Accepted::Tunnel(t)), Some(Reached::Stream(s, abort))) => {
                relay(t, s, buffer, idle, stats, [abort.as_ref(), client]).await
            }
            (Some(Accepted::Tunnel(t)), Some(Reached::Ip(lease))) => {
                let judge = self.state.policy.judge.clone();
                let serving = super::ipnet::serve(t, lease, judge, limits.max_capsule, idle, stats);
                let (up, down, idle) = Box::pin(serving).await;
                Relayed { up, down, idle }
            }
            (Some(Accepted::Stream(c)), Some(Reached::Stream(s, abort))) => {
                relay(c, s, buffer, idle, stats, [abort.as_ref(), client]).await
            }
            (Some(Accepted::Tunnel(t)), Some(Reached::Flow(f))) => {
                // The client's side as a datagram flow, exactly as burrow's client sees it.
                let c = flows::tunnel_flow(t, limits.max_capsule, "CONNECT-UDP client".into());
                let moved = Moved::default();
                let idle = Box::pin(flows::relay_datagrams(&*c, &*f, idle, |up, n| {
                    stats.datagrams.fetch_add(1, Ordering::Relaxed);
                    let (bytes, mine) = if up {
                        (&stats.bytes_up, &moved.up)
                    } else {
                        (&stats.bytes_down, &moved.down)
                    };
                    bytes.fetch_add(n as u64, Ordering::Relaxed);
                    mine.fetch_add(n as u64, Ordering::Relaxed);
                }))
                .await;
                Relayed {
                    up: moved.up.load(Ordering::Relaxed),
                    down: moved.down.load(Ordering::Relaxed),
                    idle,
                }
            }
            (Some(Accepted::Stream(control)), Some(Reached::Relay(sock))) => {
                let state = self.state.clone();
                let tell = association::Tell {
                    hooks: &state.hooks,
                    flow: &self.flow,
                    state: &state,
                    chosen: self.relay_route,
                };
                let (up, down) =
                    Box::pin(association::run(&p, control, sock, self.peer, tell)).await;
                Relayed {
                    up,
                    down,
                    idle: false,
                }
            }
            _ => Relayed::default(),
        }
    }
}

/// A command that waits.
pub(crate) enum Wait {
    Dial(Target, Transport, usize),
    Forward(Box<super::decision::Head>, usize),
    Upgrade(Box<super::decision::Head>, usize),
}

enum Step {
    Dialed(Result<Reached, super::Dial>),
    Forwarded(Result<http::Response<Body>, Error>),
    Upgraded(Result<(ResponseHead, Option<BoxStream>), Error>),
}

/// A WebSocket upgrade on a connection of `client`'s own (HTTP/1.1 only), which it takes
/// over: the origin's 101 head and the stream, or the status of the origin's refusal (no
/// stream), or why the origin was not reached (an upstream proxy's refusal among them).
async fn upgrade(
    client: &burrow_http_core::Client,
    head: super::decision::Head,
) -> Result<(ResponseHead, Option<BoxStream>), Error> {
    let (scheme, target) = burrow_http_core::origin(&head.uri)?;
    let key = client.key(&head.uri)?;
    let (conn, _) = client.connection(&key, &head.uri).await?;
    let path = head.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut req = burrow_http_core::TunnelRequest::extended("websocket", target, path)
        .with_secure(scheme == "https");
    *req.headers_mut() = head.headers;
    match conn.open_tunnel(req).await {
        Ok(tunnel) => {
            let head = ResponseHead {
                status: tunnel.status(),
                headers: tunnel.headers().clone(),
            };
            Ok((head, Some(tunnel.into_stream())))
        }
        // The origin answered without switching.
        Err(e) if e.kind() == ErrorKind::ProxyRefused && e.status().is_some() => {
            let status = e.status().unwrap_or(http::StatusCode::BAD_GATEWAY);
            let headers = http::HeaderMap::new();
            Ok((ResponseHead { status, headers }, None))
        }
        Err(e) => Err(e),
    }
}

/// Reads a body for the hooks, within their deadline and size limit; when it cannot,
/// the step's outcome (too large, or reading the `what` body failed).
async fn collect_for_hooks(body: Body, limits: &Limits, what: &str) -> Result<Bytes, Hooked> {
    match tokio::time::timeout(limits.hook_timeout, body.collect(limits.max_hook_body)).await {
        Ok(Ok(c)) => Ok(c.data),
        Ok(Err(e)) if e.kind() == ErrorKind::LimitExceeded => Err(Hooked::TooLarge),
        _ => Err(Hooked::Failed(format!("reading the {what} body failed"))),
    }
}

async fn start(
    state: &State,
    w: Wait,
    body: Option<Body>,
    local: Option<std::net::SocketAddr>,
    inside: Option<&super::InsideClient>,
    ip: Option<&Arc<super::IpNetwork>>,
) -> Step {
    use super::Dial;
    let route = |r: usize| &state.routes[r.min(state.routes.len() - 1)];
    match w {
        Wait::Dial(t, Transport::Tcp, r) => Step::Dialed(
            route(r)
                .dialer
                .tcp(&t)
                .await
                .map(|(s, a)| Reached::Stream(s, a)),
        ),
        Wait::Dial(t, Transport::Udp, r) => {
            Step::Dialed(route(r).dialer.udp(&t).await.map(Reached::Flow))
        }
        Wait::Dial(_, Transport::Ip(scope), _) => Step::Dialed(match ip {
            Some(net) => net.lease(scope).map(Reached::Ip).map_err(Dial::Failed),
            None => Err(Dial::Failed(Error::unsupported(
                "CONNECT-IP is not enabled on this proxy",
            ))),
        }),
        // The relay listens on the address the client reached us at (RFC 1928 §7).
        Wait::Dial(_, Transport::SocksRelay, _) => Step::Dialed(match local {
            Some(l) => tokio::net::UdpSocket::bind(std::net::SocketAddr::new(l.ip(), 0))
                .await
                .map(Reached::Relay)
                .map_err(|e| Dial::Failed(Error::local_io("binding the UDP relay", e))),
            None => Err(Dial::Failed(Error::local(
                burrow_transport::ErrorKind::Io,
                "no local address for the UDP relay",
            ))),
        }),
        Wait::Forward(head, r) => {
            let mut req = http::Request::new(body.unwrap_or_default());
            *req.method_mut() = head.method;
            *req.uri_mut() = head.uri;
            *req.version_mut() = head.version;
            *req.headers_mut() = head.headers;
            // Inside an intercepted tunnel, the tunnel's own client.
            let client = inside.map_or(&route(r).client, |i| &i.any);
            Step::Forwarded(client.request(req).await)
        }
        // The route's forwarding client speaks HTTP/1.1 only, as an upgrade needs.
        Wait::Upgrade(head, r) => {
            let client = inside.map_or(&route(r).client, |i| &i.h1);
            Step::Upgraded(upgrade(client, *head).await)
        }
    }
}
