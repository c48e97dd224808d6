//! The proxy server: listeners for HTTP/1.1 and HTTP/2 (plain or TLS, ALPN picks), HTTP/3,
//! and SOCKS; CONNECT and CONNECT-UDP on every HTTP version; absolute-form forwarding;
//! authentication, target rules, limits; counters.
//!
//! It fails closed: targets are judged on the address that is dialed (one lookup, every
//! answer checked), loopback, link-local, unspecified, multicast and broadcast targets and
//! the proxy's own listeners are refused unless a network rule allows them, forwarded
//! requests are normalised before anything is dialed, every wait has a deadline and every
//! client a share.

mod accept;
mod answers;
pub mod association;
pub mod builtin;
mod clients;
mod counting;
pub mod decision;
#[cfg(test)]
mod decision_tests;
mod dial;
mod forward;
pub mod hooks;
mod http;
pub mod intercept;
pub mod ipnet;
mod listen;
mod relay;
pub mod routes;
pub mod rules;
mod run;
mod socks;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use burrow_http1::Http1;
use burrow_http_core::{Client, ServerConnection};
use burrow_transport::{
    DatagramConnector, Error, SharedResolver, StreamConnector, SystemResolver, TlsConfig,
};
use tokio::sync::{Notify, Semaphore};

pub use burrow_http_core::credentials::Credentials;
pub use clients::{ClientTable, Hold};
pub use decision::CLIENT_FIRST_WAIT;
pub use dial::{Dial, Dialer, GuardedConnector, Judge, OwnAddresses};
pub use forward::{prepare, via_loops, Prepared, Refusal};
pub use hooks::{HookChain, Hooks};
pub use ipnet::{IpNetConfig, IpNetwork};
pub(crate) use listen::h1;
pub use listen::start;
pub use relay::{relay, SharedStats, Stats};
pub use routes::{Pattern, Routes, Upstream};
pub use rules::{Denied, Rules};

use crate::template::UdpTemplate;

/// Default cap on concurrent tunnels.
pub const DEFAULT_MAX_TUNNELS: usize = 4096;
/// Default cap on concurrent forwarded requests.
pub const DEFAULT_MAX_REQUESTS: usize = 4096;
/// Default cap on connections from one client address.
pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 256;
/// Default cap on tunnels and forwarded requests in flight from one client address (an
/// IPv6 client is its /64): a sixteenth of the tunnel slots.
pub const DEFAULT_MAX_TUNNELS_PER_CLIENT: usize = 256;
/// Default concurrent streams one HTTP/2 or HTTP/3 connection may open, far below the
/// tunnel cap: a client needing more opens another connection (burrow's client does).
pub const DEFAULT_MAX_STREAMS_PER_CONNECTION: u32 = 100;
/// Default bytes in flight per tunnel direction (the back-pressure window).
pub const DEFAULT_TUNNEL_BUFFER: usize = 64 * 1024;
/// Default idle time after which a tunnel is closed.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Default longest capsule accepted on a CONNECT-UDP stream.
pub const DEFAULT_MAX_CAPSULE: u64 = burrow_http_core::capsule::DEFAULT_MAX_CAPSULE;
/// Default deadline for a whole request head (HTTP/1.1; HTTP/3 per request stream), from
/// its first byte.
pub const DEFAULT_HEAD_TIMEOUT: Duration = Duration::from_secs(30);
/// Default deadline for a connection's handshakes: TLS, the HTTP/2 preface and SETTINGS,
/// the QUIC handshake and HTTP/3 SETTINGS, the SOCKS negotiation.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for reaching a target (answered 504 `connection_timeout`).
pub const DEFAULT_DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// Default deadline for an origin's response head to a forwarded request, from the start of
/// the dial (504 `http_response_timeout`).
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default time a client connection may stay open with nothing in flight.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default cap on the destinations of one SOCKS5 UDP association.
pub const DEFAULT_UDP_MAX_DESTINATIONS: usize = 64;
/// Default idle time after which a SOCKS5 UDP association forgets a destination.
pub const DEFAULT_UDP_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Default deadline for one hook call (a hook past it fails its flow with 502), and for
/// buffering a body the hooks asked for.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest body the hooks may ask to buffer (413 for a request beyond it, 502 for
/// a response).
pub const DEFAULT_MAX_HOOK_BODY: usize = 16 << 20;

/// Limits that protect the proxy and everyone else using it.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Concurrent tunnels; more are answered 503.
    pub max_tunnels: usize,
    /// Concurrent forwarded requests; more are answered 503.
    pub max_requests: usize,
    /// Connections from one client address; more are closed at once.
    pub max_connections_per_client: usize,
    /// Tunnels and forwarded requests in flight from one client address; more are
    /// answered 429 (SOCKS: general failure).
    pub max_tunnels_per_client: usize,
    /// Concurrent streams per HTTP/2 or HTTP/3 client connection.
    pub max_streams_per_connection: u32,
    /// Bytes in flight per tunnel direction.
    pub tunnel_buffer: usize,
    /// Idle time before a tunnel is closed.
    pub idle_timeout: Duration,
    /// Longest capsule on a CONNECT-UDP stream.
    pub max_capsule: u64,
    /// Largest request head (HTTP/1.1) and header list (HTTP/2).
    pub max_head_bytes: usize,
    /// Deadline for a whole request head.
    pub head_timeout: Duration,
    /// Deadline for TLS, HTTP/2, QUIC/HTTP/3 and SOCKS handshakes.
    pub handshake_timeout: Duration,
    /// Deadline for reaching a target.
    pub dial_timeout: Duration,
    /// Deadline for an origin's response head to a forwarded request.
    pub response_timeout: Duration,
    /// Time a client connection may stay open with nothing in flight.
    pub keepalive_timeout: Duration,
    /// Destinations one SOCKS5 UDP association may send to at once.
    pub udp_max_destinations: usize,
    /// Idle time after which a SOCKS5 UDP association forgets a destination.
    pub udp_idle_timeout: Duration,
    /// Deadline for one hook call, and for buffering a body for the hooks.
    pub hook_timeout: Duration,
    /// Largest body the hooks may ask to buffer.
    pub max_hook_body: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_tunnels: DEFAULT_MAX_TUNNELS,
            max_requests: DEFAULT_MAX_REQUESTS,
            max_connections_per_client: DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            max_tunnels_per_client: DEFAULT_MAX_TUNNELS_PER_CLIENT,
            max_streams_per_connection: DEFAULT_MAX_STREAMS_PER_CONNECTION,
            tunnel_buffer: DEFAULT_TUNNEL_BUFFER,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_capsule: DEFAULT_MAX_CAPSULE,
            max_head_bytes: burrow_http1::proto::DEFAULT_MAX_HEAD_BYTES,
            head_timeout: DEFAULT_HEAD_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            dial_timeout: DEFAULT_DIAL_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            udp_max_destinations: DEFAULT_UDP_MAX_DESTINATIONS,
            udp_idle_timeout: DEFAULT_UDP_IDLE_TIMEOUT,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
            max_hook_body: DEFAULT_MAX_HOOK_BODY,
        }
    }
}

/// One listening address and what it speaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Listen {
    /// HTTP/1.1 over TCP (`http://`).
    Http(SocketAddr),
    /// TLS over TCP, ALPN `h2` then `http/1.1` (`https://`).
    Https(SocketAddr),
    /// TLS over TCP, HTTP/1.1 only (`https1://`).
    Https1(SocketAddr),
    /// HTTP/3 over UDP (`h3://`).
    H3(SocketAddr),
    /// SOCKS5 (and SOCKS4a) over TCP (`socks5://`).
    Socks(SocketAddr),
}

impl Listen {
    /// Parses `http://ADDR`, `https://ADDR`, `https1://ADDR`, `h3://ADDR`, `socks5://ADDR`.
    pub fn parse(s: &str) -> Result<Listen, Error> {
        let bad = || Error::invalid_input(format!("bad listen address {s:?}"));
        let (scheme, rest) = s.split_once("://").ok_or_else(bad)?;
        let addr: SocketAddr = rest.trim_end_matches('/').parse().map_err(|_| bad())?;
        Ok(match scheme {
            "http" => Listen::Http(addr),
            "https" => Listen::Https(addr),
            "https1" => Listen::Https1(addr),
            "h3" => Listen::H3(addr),
            "socks5" | "socks" | "socks4a" => Listen::Socks(addr),
            _ => return Err(bad()),
        })
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        match self {
            Listen::Http(a) | Listen::Https(a) | Listen::Https1(a) | Listen::H3(a) => *a,
            Listen::Socks(a) => *a,
        }
    }
}

/// What the proxy does.
#[derive(Clone, Default)]
pub struct ProxyConfig {
    /// Where to listen.
    pub listeners: Vec<Listen>,
    /// Certificate chain and key (DER) for TLS and HTTP/3 listeners.
    pub identity: Option<(
        Vec<burrow_transport::rustls::pki_types::CertificateDer<'static>>,
        Arc<burrow_transport::rustls::pki_types::PrivateKeyDer<'static>>,
    )>,
    /// Credentials clients must present; `None` for an open proxy.
    pub auth: Option<Credentials>,
    /// Allowed targets.
    pub rules: Rules,
    /// Limits.
    pub limits: Limits,
    /// The CONNECT-UDP URI template served.
    pub udp_template: UdpTemplate,
    /// The CONNECT-TCP URI template served; `None`:
    /// [`DEFAULT_TCP_TEMPLATE`](crate::template::DEFAULT_TCP_TEMPLATE).
    pub tcp_template: Option<UdpTemplate>,
    /// The capsule types of CONNECT-TCP tunnels (both sides must agree).
    pub tcp_codepoints: burrow_http_core::connect_tcp::Codepoints,
    /// CONNECT-IP's network (its TUN device and pool); `None`: CONNECT-IP requests get
    /// 501.
    pub ip: Option<Arc<IpNetwork>>,
    /// The CONNECT-IP URI template served; `None`:
    /// [`DEFAULT_IP_TEMPLATE`](burrow_http_core::connect_ip::DEFAULT_IP_TEMPLATE).
    pub ip_template: Option<crate::template::IpTemplate>,
    /// TLS settings for `https://` origins of forwarded requests.
    pub origin_tls: TlsConfig,
    /// How target names are resolved (default: the system's resolver).
    pub resolver: Option<SharedResolver>,
    /// This proxy's name in `Via` (loop detection); default `burrow-` and a random suffix,
    /// so that two burrow proxies in a chain tell each other apart.
    pub pseudonym: Option<String>,
    /// The name of the default route given to [`Proxy::new`] in logs (default `direct`
    /// without upstream connectors, `upstream` with them).
    pub upstream_name: Option<String>,
    /// Per-destination routes.
    pub routes: Routes,
    /// Hooks, in the order they run.
    pub hooks: HookChain,
    /// TLS interception (`None`: tunnels are relayed untouched).
    pub intercept: Option<InterceptConfig>,
    /// Routable QUIC connection IDs on HTTP/3 listeners, for a QUIC-aware load balancer in
    /// front of several instances (`None`: quinn's random IDs).
    pub quic_lb: Option<burrow_http3::QuicLb>,
}

impl std::fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("listeners", &self.listeners)
            .field("auth", &self.auth)
            .field("rules", &self.rules)
            .field("limits", &self.limits)
            .field("pseudonym", &self.pseudonym)
            .field("routes", &self.routes)
            .field("hooks", &self.hooks)
            .field("quic_lb", &self.quic_lb)
            .finish_non_exhaustive()
    }
}

/// A configured proxy: shared by every listener and connection.
pub struct Proxy {
    config: ProxyConfig,
    stats: SharedStats,
    tunnel_slots: Arc<Semaphore>,
    request_slots: Arc<Semaphore>,
    clients: Arc<ClientTable>,
    own: Arc<OwnAddresses>,
    resolver: SharedResolver,
    default_route: Upstream,
    pseudonym: String,
    /// What a reload replaces; every request takes the state of its arrival.
    state: RwLock<Arc<State>>,
    next_flow: AtomicU64,
}

/// One route's means: its dialer, and its client for forwarded requests.
pub(crate) struct RouteMeans {
    pub dialer: Arc<Dialer>,
    pub client: Client,
}

/// The clients of an intercepted tunnel, on the requests inside it (an extension): for
/// requests (HTTP/2 or HTTP/1.1, as the origin says), and HTTP/1.1 alone for WebSocket
/// upgrades.
#[derive(Clone)]
pub(crate) struct InsideClient {
    pub any: Client,
    pub h1: Client,
}

/// TLS interception: the CA that mints certificates, and which tunnels are intercepted.
#[derive(Clone, Debug)]
pub struct InterceptConfig {
    /// The certificate authority.
    pub ca: Arc<intercept::Ca>,
    /// Which targets.
    pub rules: intercept::InterceptRules,
}

/// What can change while the proxy runs: the policy (rules, routes), the routes' means and
/// the hooks. A request keeps the state it arrived under to its end, so a reload never
/// touches open tunnels.
pub(crate) struct State {
    pub policy: Arc<decision::Policy>,
    pub routes: Vec<RouteMeans>,
    pub hooks: HookChain,
}

fn random_pseudonym() -> String {
    let mut b = [0u8; 4];
    // Uniqueness, not secrecy: the clock and the process id are enough if the RNG fails.
    let rng = burrow_transport::tls::provider().secure_random;
    if rng.fill(&mut b).is_err() {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        b = (t ^ std::process::id()).to_be_bytes();
    }
    format!("burrow-{:02x}{:02x}{:02x}{:02x}", b[0], b[1], b[2], b[3])
}

impl Proxy {
    /// A proxy reaching targets directly (`upstream` = `None`) or through the given route.
    pub fn new(
        config: ProxyConfig,
        upstream_tcp: Option<Arc<dyn StreamConnector>>,
        upstream_udp: Option<Arc<dyn DatagramConnector>>,
    ) -> Result<Arc<Proxy>, Error> {
        let own = Arc::new(OwnAddresses::default());
        let limits = &config.limits;
        let resolver = config
            .resolver
            .clone()
            .unwrap_or_else(|| Arc::new(SystemResolver));
        let direct = upstream_tcp.is_none() && upstream_udp.is_none();
        let default_route = Upstream {
            name: config
                .upstream_name
                .clone()
                .unwrap_or_else(|| if direct { "direct" } else { "upstream" }.into()),
            tcp: upstream_tcp,
            udp: upstream_udp,
        };
        let pseudonym = config.pseudonym.clone().unwrap_or_else(random_pseudonym);
        // A Via received-by is a token (RFC 9110 §7.6.3): anything else would not be
        // recognised when it comes back, and loops would go unnoticed.
        if pseudonym.is_empty()
            || !pseudonym
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(Error::invalid_input(
                "the pseudonym must be letters, digits, '-', '.' or '_'",
            ));
        }
        let proxy = Proxy {
            tunnel_slots: Arc::new(Semaphore::new(limits.max_tunnels)),
            request_slots: Arc::new(Semaphore::new(limits.max_requests)),
            clients: ClientTable::new(
                limits.max_connections_per_client,
                limits.max_tunnels_per_client,
            ),
            stats: Arc::default(),
            own,
            resolver,
            default_route,
            pseudonym,
            state: RwLock::new(Arc::new(State {
                policy: Arc::new(decision::Policy::new(
                    None,
                    String::new(),
                    Arc::new(Judge::new(Rules::default(), Arc::default(), false)),
                    UdpTemplate::default(),
                    limits.response_timeout,
                )),
                routes: Vec::new(),
                hooks: HookChain::default(),
            })),
            next_flow: AtomicU64::new(1),
            config,
        };
        let (rules, routes, hooks) = (
            proxy.config.rules.clone(),
            proxy.config.routes.clone(),
            proxy.config.hooks.clone(),
        );
        proxy.reload(rules, routes, hooks)?;
        Ok(Arc::new(proxy))
    }

    /// Replaces the target rules, the routes and the hooks for requests that arrive from
    /// now on; open tunnels and requests in flight keep what they started with.
    pub fn reload(&self, rules: Rules, routes: Routes, hooks: HookChain) -> Result<(), Error> {
        let limits = &self.config.limits;
        let mut ups = vec![self.default_route.clone()];
        if self.default_route.name != "direct" {
            ups.push(Upstream::direct());
        }
        for u in &routes.upstreams {
            if ups.iter().any(|x| x.name == u.name) {
                return Err(Error::invalid_input(format!(
                    "two routes named {:?}",
                    u.name
                )));
            }
            ups.push(u.clone());
        }
        let mut route_rules = Vec::new();
        for (p, name) in &routes.rules {
            let i = ups.iter().position(|u| &u.name == name).ok_or_else(|| {
                Error::invalid_input(format!("a route rule names the unknown route {name:?}"))
            })?;
            route_rules.push((p.clone(), i));
        }
        let mut means = Vec::new();
        let mut entries = Vec::new();
        for u in &ups {
            let dialer = Arc::new(Dialer::new(
                rules.clone(),
                self.own.clone(),
                self.resolver.clone(),
                limits.dial_timeout,
                u.tcp.clone(),
                u.udp.clone(),
            ));
            // HTTP/1.1 to origins, as squid and mitmproxy speak: one connection per
            // request in flight, so a user who never reads an answer stalls only their own
            // (on a shared HTTP/2 connection a few unread bodies would fill its window for
            // everyone).
            let mut b = Client::builder();
            b.protocol(Arc::new(Http1::default()))
                .tls(self.config.origin_tls.clone())
                .connector(Arc::new(GuardedConnector {
                    dialer: dialer.clone(),
                    fixed: None,
                }))
                // Every forwarded request holds a request slot, so at this cap no request
                // ever queues behind another user's (who may never read its answer).
                .max_connections_per_origin(limits.max_requests.max(1));
            entries.push(decision::RouteEntry {
                name: u.name.clone(),
                judge: dialer.judge().clone(),
            });
            means.push(RouteMeans {
                client: b.build()?,
                dialer,
            });
        }
        let mut policy = decision::Policy::new(
            self.config.auth.clone(),
            self.pseudonym.clone(),
            entries[0].judge.clone(),
            self.config.udp_template.clone(),
            limits.response_timeout,
        );
        if let Some(t) = &self.config.tcp_template {
            policy.tcp_template = t.clone();
        }
        if self.config.ip.is_some() {
            policy.ip_template = Some(self.config.ip_template.clone().unwrap_or_default());
        }
        policy.routes = entries;
        policy.route_rules = route_rules;
        policy.hooks = !hooks.is_empty();
        policy.intercept = self.config.intercept.as_ref().map(|i| i.rules.clone());
        let state = State {
            policy: Arc::new(policy),
            routes: means,
            hooks: hooks.with_timeout(limits.hook_timeout),
        };
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(state);
        Ok(())
    }

    /// The state new requests take.
    pub(crate) fn state(&self) -> Arc<State> {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The proxy's counters.
    pub fn stats(&self) -> SharedStats {
        self.stats.clone()
    }
}

/// A running proxy: where it listens, and how to stop it.
pub struct Running {
    /// Bound addresses, in the order of the configured listeners.
    pub addrs: Vec<Listen>,
    proxy: Arc<Proxy>,
    stop: Arc<Notify>,
}

impl Running {
    /// The proxy's counters.
    pub fn stats(&self) -> SharedStats {
        self.proxy.stats()
    }

    /// The proxy.
    pub fn proxy(&self) -> &Arc<Proxy> {
        &self.proxy
    }

    /// Stops accepting connections and waits up to `grace` for open tunnels to finish.
    pub async fn shutdown(self, grace: Duration) {
        self.stop.notify_waiters();
        let deadline = tokio::time::Instant::now() + grace;
        while self.proxy.stats.active.load(Ordering::Relaxed) > 0
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Who a request came from: the client's address, and for an HTTP/1.1 connection over TCP
/// what makes that connection end with a RST (a tunnel that fails is the whole connection).
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    pub addr: SocketAddr,
    pub abort: Option<burrow_transport::tcp::Abort>,
}

/// Serves the requests of one HTTP/2 or HTTP/3 connection (HTTP/1.1 keeps its own
/// deadlines): closes it after `keepalive_timeout` with nothing in flight.
async fn serve_conn(
    proxy: Arc<Proxy>,
    mut conn: Box<dyn ServerConnection>,
    stop: Arc<Notify>,
    peer: Peer,
    _hold: Hold,
) {
    proxy.stats.connections.fetch_add(1, Ordering::Relaxed);
    let hooks = proxy.state().hooks.clone();
    if hooks.client_connected(peer.addr).await.is_err() {
        conn.close();
        return;
    }
    let from = peer.addr;
    serve_requests(proxy, conn, stop, peer, None).await;
    hooks.client_closed(from).await;
}

/// [`serve_requests`] for a connection inside an intercepted tunnel, boxed: its requests
/// run [`serve_requests`]'s own handler.
pub(crate) fn serve_inside(
    proxy: Arc<Proxy>,
    conn: Box<dyn ServerConnection>,
    stop: Arc<Notify>,
    peer: Peer,
    inside: decision::Intercepted,
    client: InsideClient,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(serve_requests(
        proxy,
        conn,
        stop,
        peer,
        Some((inside, client)),
    ))
}

/// The requests of one client connection until it closes; `inside`: the connection runs
/// inside an intercepted tunnel to that target.
pub(crate) async fn serve_requests(
    proxy: Arc<Proxy>,
    mut conn: Box<dyn ServerConnection>,
    stop: Arc<Notify>,
    peer: Peer,
    inside: Option<(decision::Intercepted, InsideClient)>,
) {
    let in_flight = Arc::new(InFlight::default());
    let idle = proxy.config.limits.keepalive_timeout;
    let h1 = conn.version() == ::http::Version::HTTP_11;
    let mut stopping = false;
    loop {
        let quiet = in_flight.count.load(Ordering::Acquire) == 0;
        tokio::select! {
            r = conn.accept() => match r {
                Some(Ok(mut req)) => {
                    if let Some((t, c)) = &inside {
                        let x = req.request.extensions_mut();
                        x.insert(t.clone());
                        x.insert(c.clone());
                    }
                    let (proxy, token) = (proxy.clone(), InFlight::enter(&in_flight));
                    // The token lives as long as the request's work, which for a forwarded
                    // request includes sending its response body.
                    tokio::spawn(http::handle(proxy, req, peer.clone(), Box::new(token)));
                }
                _ => return,
            },
            _ = stop.notified() => conn.graceful_shutdown(),
            // A request ended: look again whether the connection is idle.
            _ = in_flight.done.notified() => {}
            // HTTP/1.1 keeps its own head and keep-alive deadlines.
            _ = tokio::time::sleep(idle), if quiet && !stopping && !h1 => {
                stopping = true;
                conn.graceful_shutdown();
            }
            // Told to go away and still nothing in flight: close (an HTTP/3 client's
            // keep-alives would otherwise hold it open).
            _ = tokio::time::sleep(GOAWAY_GRACE), if quiet && stopping => {
                conn.close();
                return;
            }
        }
    }
}

/// How long a connection told to go away (GOAWAY) may stay open with nothing in flight.
const GOAWAY_GRACE: Duration = Duration::from_secs(1);

/// Requests in flight on one connection.
#[derive(Default)]
struct InFlight {
    count: std::sync::atomic::AtomicUsize,
    done: Notify,
}

/// One request in flight; its end wakes the connection's loop.
struct InFlightToken(Arc<InFlight>);

impl InFlight {
    fn enter(this: &Arc<InFlight>) -> InFlightToken {
        this.count.fetch_add(1, Ordering::AcqRel);
        InFlightToken(this.clone())
    }
}

impl Drop for InFlightToken {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.done.notify_one();
    }
}
