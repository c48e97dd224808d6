//! [`Client`] and [`ClientBuilder`].

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow_http_core::{Body, VersionPolicy};
use burrow_proxy::route::{Route, RouteOptions};
use burrow_transport::{
    Error, Result, SharedResolver, StreamConnector, TcpConfig, TcpConnector, TlsConfig,
    UdpConnector,
};
use http::header::{HeaderMap, HeaderValue, USER_AGENT};
use http::{Method, Uri};

use crate::proxy::{EnvProxies, NoProxy, Proxy, ProxyPolicy, RouteChoice};
use crate::redirect::RedirectPolicy;
use crate::request::RequestBuilder;

/// How many distinct routes (and route prefixes) a client keeps connectors and pools for;
/// past it the least recently used one is dropped (its idle connections close).
pub const MAX_ROUTES: usize = 64;

/// The `User-Agent` sent when none is set.
pub const DEFAULT_USER_AGENT: &str = concat!("burrow/", env!("CARGO_PKG_VERSION"));

/// Builds a [`Client`]; every method takes and returns the builder.
#[must_use]
pub struct ClientBuilder {
    choice: RouteChoice,
    env_proxies: bool,
    tls: TlsConfig,
    tcp: TcpConfig,
    policy: VersionPolicy,
    timeout: Option<Duration>,
    read_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    spelling: bool,
    decompress: bool,
    redirect: RedirectPolicy,
    headers: HeaderMap,
    resolver: Option<SharedResolver>,
    transport: Option<Arc<dyn StreamConnector>>,
    #[cfg(feature = "cookies")]
    jar: Option<Arc<crate::cookie::Jar>>,
    altsvc: Arc<burrow_http_core::altsvc::AltSvcCache>,
    error: Option<Error>,
}

impl ClientBuilder {
    /// Keeps cookies in a store of the client's own: `Set-Cookie` answers are stored and
    /// sent back to the sites that set them (feature `cookies`).
    #[cfg(feature = "cookies")]
    pub fn cookie_store(mut self, on: bool) -> Self {
        self.jar = on.then(Default::default);
        self
    }

    /// Keeps cookies in `jar`, which other clients may share (feature `cookies`).
    #[cfg(feature = "cookies")]
    pub fn cookie_provider(mut self, jar: Arc<crate::cookie::Jar>) -> Self {
        self.jar = Some(jar);
        self
    }

    /// Adds a hop to the route, nearest first: `.proxy(a).proxy(b)` reaches `b` through `a`.
    pub fn proxy(mut self, proxy: Proxy) -> Self {
        self.choice.proxies.push(proxy);
        self
    }

    /// Hosts reached directly (curl's `NO_PROXY` syntax, see [`NoProxy`]); repeatable.
    pub fn no_proxy(mut self, list: &str) -> Self {
        self.choice.no_proxy.extend(NoProxy::parse(list));
        self
    }

    /// Reads `http_proxy`, `HTTPS_PROXY`, `ALL_PROXY` and `NO_PROXY` as curl does when the
    /// client is built (off by default). The environment's proxy is used only when no
    /// [`proxy`](Self::proxy) is set; its `NO_PROXY` applies to every proxy unless
    /// [`no_proxy`](Self::no_proxy) was given (as curl's `--noproxy` overrides it).
    pub fn env_proxies(mut self, on: bool) -> Self {
        self.env_proxies = on;
        self
    }

    /// Decides each request's hops (nearest first; empty for direct) from its URL, instead
    /// of the proxies, `NO_PROXY` and the environment.
    pub fn proxy_policy(
        mut self,
        policy: impl Fn(&Uri) -> Vec<Proxy> + Send + Sync + 'static,
    ) -> Self {
        self.choice.policy = Some(Arc::new(policy) as ProxyPolicy);
        self
    }

    /// Trusts the CA certificates in this PEM file (besides the system's) for origins, and
    /// for proxies without their own [`Proxy::ca_file`].
    pub fn ca_file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        self.tls.add_root_pem_file(path)?;
        Ok(self)
    }

    /// Speaks only TLS versions from `min` to `max` with origins (curl's `--tlsv1.3`,
    /// `--tls-max`).
    pub fn tls_versions(
        mut self,
        min: burrow_transport::TlsVersion,
        max: burrow_transport::TlsVersion,
    ) -> Result<Self> {
        self.tls.versions(min, max)?;
        Ok(self)
    }

    /// Presents this client certificate to origins: the PEM chain in `cert`, its key in
    /// `key` (or in `cert` itself), as curl's `--cert` and `--key`.
    pub fn client_cert(mut self, cert: impl AsRef<Path>, key: Option<&Path>) -> Result<Self> {
        self.tls.client_cert_pem_files(cert, key)?;
        Ok(self)
    }

    /// Requires origins' public keys to be pinned ones: `sha256//BASE64;…` or a public key
    /// file (curl's `--pinnedpubkey`). A mismatch is [`ErrorKind::PinMismatch`](crate::ErrorKind::PinMismatch).
    pub fn pinned_public_keys(mut self, spec: &str) -> Result<Self> {
        self.tls.pinned_public_keys(spec)?;
        Ok(self)
    }

    /// Turns off certificate verification for origins and for proxies without their own
    /// TLS settings. Dangerous: anyone on the path can read and change the traffic.
    pub fn danger_accept_invalid_certs(mut self, on: bool) -> Self {
        self.tls.insecure(on);
        self
    }

    /// HTTP/1.1 only.
    pub fn http1_only(mut self) -> Self {
        self.policy = VersionPolicy::Http1Only;
        self
    }

    /// HTTP/2 without negotiation (h2c over cleartext, only `h2` offered over TLS).
    pub fn http2_prior_knowledge(mut self) -> Self {
        self.policy = VersionPolicy::Http2PriorKnowledge;
        self
    }

    /// With `true`, tries HTTP/3 first for `https` URLs and falls back to TCP when it fails
    /// (curl's `--http3`); with `false`, the default: HTTP/2 or HTTP/1.1 by ALPN, HTTP/3
    /// only where an origin advertises it with `Alt-Svc`.
    pub fn http3(mut self, on: bool) -> Self {
        self.policy = if on {
            VersionPolicy::Http3
        } else {
            VersionPolicy::PreferHttp2
        };
        self
    }

    /// HTTP/3 only for `https` URLs (curl's `--http3-only`).
    pub fn http3_only(mut self) -> Self {
        self.policy = VersionPolicy::Http3Only;
        self
    }

    /// A deadline for each request as a whole: connecting, every redirect, and reading the
    /// body through [`Response`](crate::Response)'s methods. None by default.
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = Some(d);
        self
    }

    /// A deadline for each read of a response body: the time the next piece may take to
    /// arrive (reqwest's `read_timeout`). None by default.
    pub fn read_timeout(mut self, d: Duration) -> Self {
        self.read_timeout = Some(d);
        self
    }

    /// A deadline for getting a connection: resolving, TCP, every proxy hop's tunnel, TLS
    /// and the HTTP handshake (curl's `--connect-timeout`). Without it each layer's own
    /// deadline applies (30 seconds for TCP).
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.tcp.connect_timeout(Some(d));
        self.connect_timeout = Some(d);
        self
    }

    /// Keeps how each HTTP/1.x response spelled its head, its reason phrase and the case
    /// of its field names ([`Response::spelling`](crate::Response::spelling)), to show
    /// heads as they came (curl's `-i`). Off by default: it copies each name.
    pub fn keep_spelling(mut self, on: bool) -> Self {
        self.spelling = on;
        self
    }

    /// Keeps what `Alt-Svc` answers teach (which origins speak HTTP/3, on which port) in
    /// `cache`, which may be shared or saved (curl's `--alt-svc FILE`). Every route of the
    /// client shares one cache.
    pub fn alt_svc_cache(mut self, cache: Arc<burrow_http_core::altsvc::AltSvcCache>) -> Self {
        self.altsvc = cache;
        self
    }

    /// Sets `TCP_NODELAY` on direct TCP connections (default on).
    pub fn tcp_nodelay(mut self, on: bool) -> Self {
        self.tcp.nodelay(on);
        self
    }

    /// Sets the TCP keepalive idle time, `None` to turn keepalive off (default 60 s).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp.keepalive(idle);
        self
    }

    /// Connects from this local address (curl's `--interface ADDRESS`).
    pub fn local_address(mut self, ip: Option<std::net::IpAddr>) -> Self {
        self.tcp.local_ip(ip);
        self
    }

    /// Connects through this network interface only (curl's `--interface NAME`; Linux).
    pub fn interface(mut self, name: &str) -> Self {
        self.tcp.device(Some(name.to_string()));
        self
    }

    /// Connects from the first free local port in `ports` (curl's `--local-port`).
    pub fn local_ports(mut self, ports: std::ops::RangeInclusive<u16>) -> Self {
        self.tcp.local_ports(Some(ports));
        self
    }

    /// The TCP settings direct connections use (when no [`transport`](Self::transport)
    /// replaces them): a connector of your own can start from these.
    pub fn tcp_config(&self) -> &TcpConfig {
        &self.tcp
    }

    /// Whether responses are decoded (default: yes, for the codings built in). Off, no
    /// `Accept-Encoding` is added and bodies arrive as sent (curl without `--compressed`).
    pub fn decompress(mut self, on: bool) -> Self {
        self.decompress = on;
        self
    }

    /// Which redirects are followed (default: up to 10).
    pub fn redirect(mut self, policy: RedirectPolicy) -> Self {
        self.redirect = policy;
        self
    }

    /// The `User-Agent` of every request that does not set its own (default
    /// [`DEFAULT_USER_AGENT`]).
    pub fn user_agent(mut self, value: impl TryInto<HeaderValue>) -> Self {
        match value.try_into() {
            Ok(v) => {
                self.headers.insert(USER_AGENT, v);
            }
            Err(_) => {
                self.error.get_or_insert(Error::invalid_input(
                    "the user agent is not a valid header value",
                ));
            }
        }
        self
    }

    /// Sends no `User-Agent` unless a request sets its own (curl's `-A ""`).
    pub fn no_user_agent(mut self) -> Self {
        self.headers.remove(USER_AGENT);
        self
    }

    /// Headers sent with every request that does not set them itself.
    pub fn default_headers(mut self, headers: HeaderMap) -> Self {
        for (n, v) in &headers {
            self.headers.insert(n.clone(), v.clone());
        }
        self
    }

    /// Resolves names with `resolver` (the origin's when direct, the first hop's otherwise;
    /// later hops resolve their own targets): e.g. a
    /// [`StaticResolver`](burrow_transport::StaticResolver) for curl's `--resolve`.
    pub fn resolver(mut self, resolver: SharedResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// Replaces direct TCP as the bottom of every route with `transport`: any
    /// [`StreamConnector`] returning any `ByteStream` (a Unix socket, an in-memory pipe, a
    /// tunnel of your own). The first hop, or the origin when direct, is reached through
    /// it; TLS and HTTP run on top as usual. HTTP/3 still uses UDP.
    pub fn transport(mut self, transport: Arc<dyn StreamConnector>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Builds the client; fails on an environment proxy that does not parse, or an invalid
    /// setting given earlier.
    pub fn build(self) -> Result<Client> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut choice = self.choice;
        if self.env_proxies {
            choice = choice.with_env(EnvProxies::from_env()?);
        }
        let resolver = self
            .resolver
            .unwrap_or_else(|| Arc::new(burrow_transport::SystemResolver));
        let stream: Arc<dyn StreamConnector> = match self.transport {
            Some(t) => t,
            None => Arc::new(TcpConnector::new(self.tcp.clone()).with_resolver(resolver.clone())),
        };
        let resolver_for_hops = resolver.clone();
        let direct = Route {
            stream,
            datagram: Arc::new(UdpConnector::with_resolver(resolver)),
            hops: Vec::new(),
            ip: None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                choice,
                tls: self.tls,
                options: RouteOptions {
                    tcp: self.tcp,
                    resolver: Some(resolver_for_hops),
                    ..RouteOptions::default()
                },
                policy: self.policy,
                altsvc: self.altsvc,
                timeout: self.timeout,
                read_timeout: self.read_timeout,
                connect_timeout: self.connect_timeout,
                spelling: self.spelling,
                decompress: self.decompress,
                #[cfg(feature = "cookies")]
                jar: self.jar,
                redirect: self.redirect,
                headers: self.headers,
                routes: Mutex::new(Routes {
                    direct,
                    prefixes: Vec::new(),
                    clients: Vec::new(),
                    forwarders: Vec::new(),
                }),
            }),
        })
    }
}

/// Connectors for every route prefix used so far and an HTTP client (pool) per route.
struct Routes {
    direct: Route,
    /// Routes by their hops, most recently used last.
    prefixes: Vec<(Vec<Proxy>, Route)>,
    clients: Vec<((Vec<Proxy>, VersionPolicy), burrow_http_core::Client)>,
    /// Clients that forward to the last of their hops (`http://` URLs).
    forwarders: Vec<(Vec<Proxy>, burrow_http_core::Client)>,
}

fn touch<K: PartialEq, T: Clone>(list: &mut Vec<(K, T)>, key: &K) -> Option<T> {
    let i = list.iter().position(|(k, _)| k == key)?;
    let e = list.remove(i);
    let v = e.1.clone();
    list.push(e);
    Some(v)
}

fn remember<K, T>(list: &mut Vec<(K, T)>, key: K, v: T) {
    if list.len() >= MAX_ROUTES {
        list.remove(0);
    }
    list.push((key, v));
}

pub(crate) struct Inner {
    pub(crate) choice: RouteChoice,
    /// The client's trust for origins.
    pub(crate) tls: TlsConfig,
    options: RouteOptions,
    policy: VersionPolicy,
    altsvc: Arc<burrow_http_core::altsvc::AltSvcCache>,
    pub(crate) timeout: Option<Duration>,
    pub(crate) read_timeout: Option<Duration>,
    connect_timeout: Option<Duration>,
    spelling: bool,
    pub(crate) decompress: bool,
    #[cfg(feature = "cookies")]
    pub(crate) jar: Option<Arc<crate::cookie::Jar>>,
    pub(crate) redirect: RedirectPolicy,
    pub(crate) headers: HeaderMap,
    routes: Mutex<Routes>,
}

impl Inner {
    fn route(&self, routes: &mut Routes, hops: &[Proxy]) -> Route {
        let Some((last, before)) = hops.split_last() else {
            return routes.direct.clone();
        };
        let key = hops.to_vec();
        if let Some(r) = touch(&mut routes.prefixes, &key) {
            return r;
        }
        let lower = self.route(routes, before);
        let options = RouteOptions {
            proxy_tls: self.hop_tls(last),
            proxy_headers: last.headers.clone(),
            tcp_codepoints: last.tcp_codepoints.unwrap_or(self.options.tcp_codepoints),
            ..self.options.clone()
        };
        let r = lower.then(&last.url, &options);
        remember(&mut routes.prefixes, key, r.clone());
        r
    }

    /// A hop's TLS settings: its own, else what origins are trusted with, but never the
    /// origins' client certificate or pins.
    fn hop_tls(&self, hop: &Proxy) -> TlsConfig {
        hop.tls
            .clone()
            .unwrap_or_else(|| self.tls.without_identity())
    }

    /// The HTTP client for a route (and a version, when a request asks for one): one pool
    /// per route, built on connectors shared with every route that starts with the same
    /// hops (so their HTTP/2 and HTTP/3 proxy connections are shared too).
    pub(crate) fn client_for(
        &self,
        hops: &[Proxy],
        version: Option<http::Version>,
    ) -> Result<burrow_http_core::Client> {
        let policy = match version {
            None => self.policy,
            Some(http::Version::HTTP_2) => VersionPolicy::Http2PriorKnowledge,
            Some(http::Version::HTTP_3) => VersionPolicy::Http3Only,
            Some(_) => VersionPolicy::Http1Only,
        };
        let key = (hops.to_vec(), policy);
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = touch(&mut routes.clients, &key) {
            return Ok(c);
        }
        let route = self.route(&mut routes, hops);
        let mut b = burrow_http_core::Client::builder();
        b.protocol(Arc::new(self.http1()))
            .protocol(Arc::new(burrow_http2::Http2::default()))
            .datagram_protocol(Arc::new(burrow_http3::Http3::default()))
            .connector(route.stream)
            .datagram_connector(route.datagram)
            .tls(self.tls.clone())
            .alt_svc_cache(self.altsvc.clone())
            .version_policy(policy);
        if let Some(d) = self.connect_timeout {
            b.connect_timeout(d);
        }
        let c = b.build()?;
        remember(&mut routes.clients, key, c.clone());
        Ok(c)
    }

    fn http1(&self) -> burrow_http1::Http1 {
        let mut config = burrow_http1::Http1Config::default();
        config.keep_spelling(self.spelling);
        burrow_http1::Http1 { config }
    }

    /// The client that sends requests to the last of `hops`, an HTTP/1.1 forward proxy, in
    /// absolute-form, over the route through the hops before it: one pool per proxy,
    /// shared by every origin.
    pub(crate) fn forwarder_for(&self, hops: &[Proxy]) -> Result<burrow_http_core::Client> {
        let Some((last, before)) = hops.split_last() else {
            return Err(Error::invalid_input("forwarding needs a proxy"));
        };
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        let key = hops.to_vec();
        if let Some(c) = touch(&mut routes.forwarders, &key) {
            return Ok(c);
        }
        let route = self.route(&mut routes, before);
        let (proxy, headers) = last.forward_to()?;
        let mut b = burrow_http_core::Client::builder();
        b.protocol(Arc::new(self.http1()))
            .connector(route.stream)
            // The proxy is verified as its CONNECT hop would be.
            .tls(self.hop_tls(last))
            .version_policy(VersionPolicy::Http1Only)
            .forward_proxy(proxy, headers);
        if let Some(d) = self.connect_timeout {
            b.connect_timeout(d);
        }
        let c = b.build()?;
        remember(&mut routes.forwarders, key, c.clone());
        Ok(c)
    }

    /// The connectors of the route through `hops` (shared with every user of it).
    #[cfg_attr(not(feature = "hyper"), allow(dead_code))]
    pub(crate) fn route_for(&self, hops: &[Proxy]) -> Route {
        let mut routes = self.routes.lock().unwrap_or_else(|p| p.into_inner());
        self.route(&mut routes, hops)
    }
}

/// An HTTP client: HTTP/1.1, HTTP/2 or HTTP/3 to origins, directly or through any chain of
/// proxies, chosen per request. Cheap to clone (clones share connections); build one and
/// reuse it.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("proxies", &self.inner.choice.proxies)
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl Default for Client {
    /// A client with the default settings (direct, system trust, HTTP/2 or HTTP/1.1).
    fn default() -> Self {
        Client::new()
    }
}

impl Client {
    /// A builder with the defaults: direct, system trust, HTTP/2 or HTTP/1.1 by ALPN,
    /// up to 10 redirects, no overall timeout, environment proxies ignored.
    pub fn builder() -> ClientBuilder {
        let mut headers = HeaderMap::new();
        headers.insert(USER_AGENT, HeaderValue::from_static(DEFAULT_USER_AGENT));
        ClientBuilder {
            choice: RouteChoice::default(),
            env_proxies: false,
            tls: TlsConfig::default(),
            tcp: TcpConfig::default(),
            policy: VersionPolicy::PreferHttp2,
            timeout: None,
            read_timeout: None,
            connect_timeout: None,
            spelling: false,
            decompress: true,
            redirect: RedirectPolicy::default(),
            headers,
            resolver: None,
            transport: None,
            altsvc: Arc::default(),
            #[cfg(feature = "cookies")]
            jar: None,
            error: None,
        }
    }

    /// A client with the default settings.
    pub fn new() -> Client {
        match Client::builder().build() {
            Ok(c) => c,
            // Only the environment or an invalid setting can fail a build, and the default
            // builder reads and sets neither.
            Err(e) => unreachable!("the default client always builds: {e}"),
        }
    }

    /// A `GET` request.
    pub fn get(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::GET, url)
    }

    /// A `POST` request.
    pub fn post(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::POST, url)
    }

    /// A `PUT` request.
    pub fn put(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::PUT, url)
    }

    /// A `DELETE` request.
    pub fn delete(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::DELETE, url)
    }

    /// A `HEAD` request.
    pub fn head(&self, url: impl AsRef<str>) -> RequestBuilder {
        self.request(Method::HEAD, url)
    }

    /// A request with any method.
    pub fn request(&self, method: Method, url: impl AsRef<str>) -> RequestBuilder {
        RequestBuilder::new(self.clone(), method, url.as_ref())
    }

    /// Closes every pooled connection of every route, telling each peer (HTTP/2 GOAWAY,
    /// HTTP/3 CONNECTION_CLOSE), as curl does when it exits. Later requests connect anew.
    pub async fn shutdown(&self) {
        let clients: Vec<_> = {
            let routes = self.inner.routes.lock().unwrap_or_else(|p| p.into_inner());
            let forwarders = routes.forwarders.iter().map(|(_, c)| c.clone());
            let clients = routes.clients.iter().map(|(_, c)| c.clone());
            clients.chain(forwarders).collect()
        };
        for c in clients {
            c.shutdown().await;
        }
    }

    /// Sends an `http::Request` (absolute URI) as [`RequestBuilder::send`] would.
    pub async fn execute(&self, request: http::Request<Body>) -> Result<crate::Response> {
        RequestBuilder::from_request(self.clone(), request)
            .send()
            .await
    }
}
