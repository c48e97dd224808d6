//! The version-agnostic client: picks the HTTP version, pools connections, retries requests
//! the peer provably did not process.

use std::sync::Arc;
use std::time::Duration;

use burrow_transport::{
    tls, DatagramConnector, Error, ErrorKind, Host, StreamConnector, Target, TcpConnector,
    TlsConfig, UdpConnector,
};
use http::{HeaderMap, Request, Response, Version};

use crate::altsvc::AltSvcCache;
use crate::pool::{Checkout, Pool, PoolKey};
use crate::protocol::{DatagramProtocol, StreamProtocol};
use crate::{Body, ConnectionInfo, HttpConnection};

/// Default time an unused pooled connection is kept (as reqwest and hyper-util).
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Default cap on HTTP/1.1 connections per origin (HTTP/2 multiplexes on one).
pub const DEFAULT_MAX_PER_ORIGIN: usize = 6;

/// Which versions the client may use, as curl's `--http1.1`, `--http2`,
/// `--http2-prior-knowledge`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VersionPolicy {
    /// HTTP/1.1 only (ALPN offers `http/1.1` alone).
    Http1Only,
    /// Over TLS offer `h2` then `http/1.1` and use what the server picks; cleartext HTTP/1.1.
    #[default]
    PreferHttp2,
    /// HTTP/2 without negotiation: h2c over cleartext, and only `h2` offered over TLS.
    Http2PriorKnowledge,
    /// Try HTTP/3 first for `https`, and fall back to HTTP/2 or HTTP/1.1 over TCP when it
    /// fails (curl's `--http3`).
    Http3,
    /// HTTP/3 only for `https` (curl's `--http3-only`).
    Http3Only,
}

/// How long an HTTP/3 attempt may take before the client falls back to TCP.
pub const DEFAULT_H3_FALLBACK_TIMEOUT: Duration = Duration::from_secs(3);

/// Builds a [`Client`].
pub struct ClientBuilder {
    protocols: Vec<Arc<dyn StreamProtocol>>,
    h3: Option<Arc<dyn DatagramProtocol>>,
    udp: Arc<dyn DatagramConnector>,
    connector: Arc<dyn StreamConnector>,
    tls: TlsConfig,
    policy: VersionPolicy,
    idle_timeout: Duration,
    max_per_origin: usize,
    connect_timeout: Option<Duration>,
    altsvc: Option<Arc<AltSvcCache>>,
    forward: Option<(http::Uri, HeaderMap)>,
}

impl ClientBuilder {
    /// Sends every request to the forward proxy at `proxy` (`http://host:port`, or
    /// `https://` for TLS to it, verified by this client's TLS settings) in absolute-form,
    /// with `headers` (its `Proxy-Authorization` and any others for it) added where the
    /// request has none of that name, rather than to its origin: what curl and reqwest do
    /// with `http://` URLs and an HTTP proxy. Connections are pooled per proxy and carry
    /// requests for any origin. Only HTTP/1.1 is spoken to the proxy.
    pub fn forward_proxy(&mut self, proxy: http::Uri, headers: HeaderMap) -> &mut Self {
        self.forward = Some((proxy, headers));
        self
    }

    /// Keeps what `Alt-Svc` answers teach in `cache`, shared with other clients (default:
    /// a cache of this client's own).
    pub fn alt_svc_cache(&mut self, cache: Arc<AltSvcCache>) -> &mut Self {
        self.altsvc = Some(cache);
        self
    }

    /// Adds a version (HTTP/1.1 from `burrow-http1`, HTTP/2 from `burrow-http2`).
    pub fn protocol(&mut self, p: Arc<dyn StreamProtocol>) -> &mut Self {
        self.protocols.push(p);
        self
    }

    /// Adds HTTP/3 (from `burrow-http3`), used when the policy asks for it or an origin
    /// advertised it with `Alt-Svc`.
    pub fn datagram_protocol(&mut self, p: Arc<dyn DatagramProtocol>) -> &mut Self {
        self.h3 = Some(p);
        self
    }

    /// The datagram route to origins, for HTTP/3 (default: direct UDP).
    pub fn datagram_connector(&mut self, c: Arc<dyn DatagramConnector>) -> &mut Self {
        self.udp = c;
        self
    }

    /// The route to origins (default: direct TCP).
    pub fn connector(&mut self, c: Arc<dyn StreamConnector>) -> &mut Self {
        self.connector = c;
        self
    }

    /// TLS settings for origins.
    pub fn tls(&mut self, t: TlsConfig) -> &mut Self {
        self.tls = t;
        self
    }

    /// Which versions may be used.
    pub fn version_policy(&mut self, p: VersionPolicy) -> &mut Self {
        self.policy = p;
        self
    }

    /// How long an unused connection stays pooled (default 90 s).
    pub fn idle_timeout(&mut self, d: Duration) -> &mut Self {
        self.idle_timeout = d;
        self
    }

    /// A deadline for getting a connection: resolving, connecting, every proxy hop's
    /// tunnel, TLS and the HTTP handshake (curl's `--connect-timeout`). None by default
    /// (each layer's own deadlines still apply).
    pub fn connect_timeout(&mut self, d: Duration) -> &mut Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Most HTTP/1.1 connections per origin (default 6); more requests wait their turn.
    pub fn max_connections_per_origin(&mut self, n: usize) -> &mut Self {
        self.max_per_origin = n;
        self
    }

    /// Builds the client.
    pub fn build(&self) -> Result<Client, Error> {
        let find = |alpn: &[u8]| self.protocols.iter().find(|p| p.alpn() == alpn).cloned();
        let h1 = find(b"http/1.1");
        let h2 = find(b"h2");
        let (alpn, cleartext): (Vec<Arc<dyn StreamProtocol>>, _) = match self.policy {
            VersionPolicy::Http1Only => (h1.iter().cloned().collect(), h1.clone()),
            VersionPolicy::PreferHttp2 | VersionPolicy::Http3 | VersionPolicy::Http3Only => {
                (h2.iter().chain(h1.iter()).cloned().collect(), h1.clone())
            }
            VersionPolicy::Http2PriorKnowledge => (h2.iter().cloned().collect(), h2.clone()),
        };
        let wants_h3 = matches!(self.policy, VersionPolicy::Http3 | VersionPolicy::Http3Only);
        if wants_h3 && self.h3.is_none() {
            return Err(Error::invalid_input("HTTP/3 asked for but not registered"));
        }
        if alpn.is_empty() && !wants_h3 {
            return Err(Error::invalid_input(
                "no HTTP version registered for this version policy",
            ));
        }
        Ok(Client {
            inner: Arc::new(Inner {
                alpn,
                cleartext,
                h3: self.h3.clone(),
                udp: self.udp.clone(),
                policy: self.policy,
                tls: self.tls.clone(),
                altsvc: self.altsvc.clone().unwrap_or_default(),
                connector: self.connector.clone(),
                pool: Pool::new(self.idle_timeout, self.max_per_origin),
                connect_timeout: self.connect_timeout,
                forward: self.forward.clone(),
            }),
        })
    }
}

/// A pooled HTTP client over one route, any registered version.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    alpn: Vec<Arc<dyn StreamProtocol>>,
    cleartext: Option<Arc<dyn StreamProtocol>>,
    h3: Option<Arc<dyn DatagramProtocol>>,
    udp: Arc<dyn DatagramConnector>,
    policy: VersionPolicy,
    tls: TlsConfig,
    altsvc: Arc<AltSvcCache>,
    connector: Arc<dyn StreamConnector>,
    pool: Pool,
    connect_timeout: Option<Duration>,
    forward: Option<(http::Uri, HeaderMap)>,
}

impl Client {
    /// A builder with direct TCP, default TLS and no versions registered yet.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            protocols: Vec::new(),
            h3: None,
            udp: Arc::new(UdpConnector::default()),
            connector: Arc::new(TcpConnector::default()),
            tls: TlsConfig::default(),
            policy: VersionPolicy::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_per_origin: DEFAULT_MAX_PER_ORIGIN,
            connect_timeout: None,
            altsvc: None,
            forward: None,
        }
    }

    /// Sends a request with an absolute URI and returns the response. HTTP/3 is tried first
    /// when the policy asks for it or the origin advertised it (`Alt-Svc`); otherwise, or
    /// when that fails and fallback is allowed, HTTP/2 or HTTP/1.1 over TCP.
    ///
    /// Userinfo in the URI becomes `Authorization: Basic` (as curl does) and is never sent
    /// in `Host` or `:authority`. The response carries the connection's [`ConnectionInfo`]
    /// as an extension.
    pub async fn request(&self, mut req: Request<Body>) -> Result<Response<Body>, Error> {
        crate::target::userinfo_to_authorization(&mut req);
        if let Some((_, headers)) = &self.inner.forward {
            origin(req.uri())?;
            for (name, value) in headers {
                if !req.headers().contains_key(name) {
                    req.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
        let (conn, key) = self.connect_within(req.uri()).await?;
        self.send_on(conn, key, req).await
    }

    /// Where a request for `uri` is sent: its origin, or the forward proxy.
    fn peer<'a>(&'a self, uri: &'a http::Uri) -> &'a http::Uri {
        self.inner.forward.as_ref().map_or(uri, |(p, _)| p)
    }

    /// [`connection_for`](Self::connection_for) under the connect timeout, if one is set.
    async fn connect_within(
        &self,
        uri: &http::Uri,
    ) -> Result<(Arc<dyn HttpConnection>, PoolKey), Error> {
        let uri = self.peer(uri);
        let Some(d) = self.inner.connect_timeout else {
            return self.connection_for(uri).await;
        };
        tokio::time::timeout(d, self.connection_for(uri))
            .await
            .map_err(|_| {
                Error::local(
                    ErrorKind::Timeout,
                    format!("Connection timed out after {} milliseconds", d.as_millis()),
                )
            })?
    }

    /// Closes every pooled connection, telling each peer (HTTP/2 GOAWAY, HTTP/3
    /// CONNECTION_CLOSE, the stream's end), as curl does when it exits; requests in flight
    /// fail. The client stays usable: later requests open new connections.
    pub async fn shutdown(&self) {
        for conn in self.inner.pool.drain() {
            conn.shutdown().await;
        }
    }

    /// The connection a request to `uri` would use now (pooled or new), with its pool key:
    /// HTTP/3 when the policy or `Alt-Svc` says so (falling back to TCP when allowed).
    pub async fn connection_for(
        &self,
        uri: &http::Uri,
    ) -> Result<(Arc<dyn HttpConnection>, PoolKey), Error> {
        let (scheme, target) = origin(uri)?;
        let authority = target.to_string();
        let h3_port = match self.inner.policy {
            VersionPolicy::Http3 | VersionPolicy::Http3Only => Some(target.port),
            _ => self.inner.altsvc.h3_port(&authority, crate::driver::now()),
        };
        if let (Some(port), "https", Some(_)) = (h3_port, scheme, &self.inner.h3) {
            let h3_target = Target::new(target.host.clone(), port);
            let key = PoolKey {
                route: self.inner.udp.describe(),
                scheme: "h3".into(),
                authority: h3_target.to_string(),
            };
            let only = self.inner.policy == VersionPolicy::Http3Only;
            let attempt = self.connection_with(&key, || self.connect_h3(&h3_target));
            let r = if only {
                attempt.await
            } else {
                tokio::time::timeout(DEFAULT_H3_FALLBACK_TIMEOUT, attempt)
                    .await
                    .unwrap_or_else(|_| Err(Error::peer_timeout("HTTP/3 attempt timed out")))
            };
            match r {
                Ok((c, _)) => return Ok((c, key)),
                Err(e) if only => return Err(e),
                Err(e) => {
                    tracing::debug!("HTTP/3 to {h3_target} failed, falling back to TCP: {e}");
                    self.inner.altsvc.forget(&authority);
                }
            }
        }
        let key = self.key(uri)?;
        let (c, _) = self.connection(&key, uri).await?;
        Ok((c, key))
    }

    async fn send_on(
        &self,
        conn: Arc<dyn HttpConnection>,
        key: PoolKey,
        req: Request<Body>,
    ) -> Result<Response<Body>, Error> {
        let replay = replayable(&req);
        let authority = key.authority.clone();
        let origin = burrow_transport::Hop {
            index: None,
            label: authority.clone(),
        };
        // What a forward proxy passes on from the origins is not the proxy's to advertise.
        let tcp = key.scheme != "h3" && self.inner.forward.is_none();
        let absolute = |mut req: Request<Body>| {
            if self.inner.forward.is_some() {
                req.extensions_mut().insert(crate::AbsoluteForm);
            }
            req
        };
        let r = match conn.send_request(absolute(req)).await {
            Err(e) if e.kind() == ErrorKind::NotProcessed => {
                self.inner.pool.remove(&key, &conn);
                let Some(req) = replay.map(absolute) else {
                    return Err(e);
                };
                let (conn, _) = self.connect_within(req.uri()).await?;
                let info = conn.info().clone();
                conn.send_request(req).await.map(|mut r| {
                    r.extensions_mut().insert(info);
                    r
                })
            }
            Err(e) => {
                if conn.is_closed() {
                    self.inner.pool.remove(&key, &conn);
                }
                Err(e)
            }
            Ok(mut r) => {
                r.extensions_mut().insert(conn.info().clone());
                Ok(r)
            }
        };
        // A failure no hop of the route claimed is the origin's.
        let r = r.map_err(|e| e.at_hop(origin));
        if let (Ok(resp), true) = (&r, tcp) {
            if let Some(v) = resp
                .headers()
                .get(http::header::ALT_SVC)
                .and_then(|v| v.to_str().ok())
            {
                self.inner.altsvc.learn(&authority, v, crate::driver::now());
            }
        }
        r
    }

    async fn connect_h3(&self, target: &Target) -> Result<Arc<dyn HttpConnection>, Error> {
        let h3 = self
            .inner
            .h3
            .clone()
            .ok_or_else(|| Error::unsupported("HTTP/3 is not registered"))?;
        let started = std::time::Instant::now();
        let flow = self.inner.udp.connect_datagram(target).await?;
        let connected = Some(std::time::Instant::now());
        let info = ConnectionInfo {
            peer_addr: target.socket_addr(),
            alpn: None,
            route: format!("quic > {}", flow.describe()),
            local_addr: None,
            timings: burrow_transport::ConnectTimings {
                started: Some(started),
                connected,
                routed: connected,
                ..Default::default()
            },
        };
        let c = h3
            .handshake(flow, &target.host_str(), &self.inner.tls, info)
            .await
            .map_err(|e| e.at_hop(origin_hop(target)))?;
        Ok(c)
    }

    async fn connection_with<F, Fut>(
        &self,
        key: &PoolKey,
        connect: F,
    ) -> Result<(Arc<dyn HttpConnection>, bool), Error>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Arc<dyn HttpConnection>, Error>>,
    {
        let mut connect = Some(connect);
        loop {
            match self.inner.pool.checkout(key, crate::driver::now()) {
                Checkout::Ready(c) => return Ok((c, false)),
                Checkout::Wait(n) => {
                    let notified = n.notified();
                    if let Checkout::Ready(c) =
                        self.inner.pool.checkout_if_ready(key, crate::driver::now())
                    {
                        return Ok((c, false));
                    }
                    notified.await;
                }
                Checkout::Connect => {
                    let f = connect.take().ok_or_else(|| {
                        Error::local(ErrorKind::Closed, "connection attempt already used")
                    })?;
                    // Whatever happens to this future (it may be dropped mid-connect when
                    // its caller gives up), the pool hears how the attempt ended, or
                    // every later request to the origin would wait for it.
                    let mut attempt = ConnectAttempt {
                        pool: &self.inner.pool,
                        key,
                        done: false,
                    };
                    let r = f().await;
                    attempt.finish(r.as_ref().ok().cloned());
                    return r.map(|c| (c, true));
                }
            }
        }
    }

    /// A TCP connection to the origin of `uri`, pooled or new; `true` when new.
    pub async fn connection(
        &self,
        key: &PoolKey,
        uri: &http::Uri,
    ) -> Result<(Arc<dyn HttpConnection>, bool), Error> {
        self.connection_with(key, || self.connect(uri)).await
    }

    /// The pool key for `uri` on this client's route.
    pub fn key(&self, uri: &http::Uri) -> Result<PoolKey, Error> {
        let (scheme, target) = origin(uri)?;
        Ok(PoolKey {
            route: self.inner.connector.describe(),
            scheme: scheme.into(),
            authority: target.to_string(),
        })
    }

    /// Number of pooled connections to the origin of `uri`.
    pub fn pooled_connections(&self, uri: &http::Uri) -> usize {
        self.key(uri)
            .map(|k| self.inner.pool.connections(&k))
            .unwrap_or(0)
    }

    async fn connect(&self, uri: &http::Uri) -> Result<Arc<dyn HttpConnection>, Error> {
        let (scheme, target) = origin(uri)?;
        let started = std::time::Instant::now();
        let c = self.inner.connector.connect(&target).await?;
        let mut info = ConnectionInfo {
            peer_addr: c.info.peer_addr,
            alpn: None,
            route: c.info.route(),
            local_addr: c.info.local_addr,
            timings: burrow_transport::ConnectTimings {
                started: Some(started),
                routed: Some(std::time::Instant::now()),
                ..c.info.timings
            },
        };
        if scheme == "http" {
            let p = self
                .inner
                .cleartext
                .clone()
                .ok_or_else(|| Error::unsupported("no cleartext HTTP version allowed"))?;
            return p.handshake(c.stream, info).await;
        }
        // Built on first use (plain-HTTP clients never load the root store) and kept by
        // the TlsConfig for every later connection.
        let ids: Vec<&[u8]> = self.inner.alpn.iter().map(|p| p.alpn()).collect();
        let config = self.inner.tls.client_config(&ids)?;
        let (s, alpn) = tls::handshake(c.stream, &target.host, config)
            .await
            .map_err(|e| e.at_hop(origin_hop(&target)))?;
        info.route = format!("tls > {}", info.route);
        info.alpn = alpn.clone();
        info.timings.secured = Some(std::time::Instant::now());
        let p = match &alpn {
            Some(id) => self.inner.alpn.iter().find(|p| p.alpn() == id.as_slice()),
            // No ALPN: the server speaks HTTP/1.1 (if we may).
            None => self
                .inner
                .alpn
                .iter()
                .find(|p| p.version() == Version::HTTP_11),
        }
        .cloned()
        .ok_or_else(|| {
            Error::unsupported("the server offered no HTTP version we may use (ALPN)")
                .at_hop(origin_hop(&target))
        })?;
        p.handshake(Box::new(s), info).await
    }
}

fn origin_hop(t: &Target) -> burrow_transport::Hop {
    burrow_transport::Hop {
        index: None,
        label: t.to_string(),
    }
}

/// A connection attempt the pool was told about: finished with its outcome, or as failed
/// when dropped unfinished.
struct ConnectAttempt<'a> {
    pool: &'a Pool,
    key: &'a PoolKey,
    done: bool,
}

impl ConnectAttempt<'_> {
    fn finish(&mut self, conn: Option<std::sync::Arc<dyn HttpConnection>>) {
        self.done = true;
        self.pool
            .finish_connect(self.key, conn, crate::driver::now());
    }
}

impl Drop for ConnectAttempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.pool
                .finish_connect(self.key, None, crate::driver::now());
        }
    }
}

/// The scheme and target of an absolute URI.
pub fn origin(uri: &http::Uri) -> Result<(&'static str, Target), Error> {
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        Some(s) => return Err(Error::unsupported(format!("unsupported scheme {s}"))),
        None => return Err(Error::invalid_input("request URI is not absolute")),
    };
    let host = Host::parse(uri.host().unwrap_or_default())?;
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Ok((scheme, Target::new(host, port)))
}

fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    let body = req.body().try_clone()?;
    Some(crate::message::clone_head(req).map(|()| body))
}
