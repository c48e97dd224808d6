//! The version-agnostic client: picks the HTTP version, pools connections, retries requests
//! the peer provably did not process.

use std::sync::Arc;
use std::time::Duration;

use burrow_transport::{
    tls, Error, ErrorKind, Fault, Host, StreamConnector, Target, TcpConnector, TlsConfig,
};
use http::{Request, Response, Version};

use crate::pool::{Checkout, Pool, PoolKey};
use crate::protocol::StreamProtocol;
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
}

/// Builds a [`Client`].
pub struct ClientBuilder {
    protocols: Vec<Arc<dyn StreamProtocol>>,
    connector: Arc<dyn StreamConnector>,
    tls: TlsConfig,
    policy: VersionPolicy,
    idle_timeout: Duration,
    max_per_origin: usize,
}

impl ClientBuilder {
    /// Adds a version (HTTP/1.1 from `burrow-http1`, HTTP/2 from `burrow-http2`).
    pub fn protocol(&mut self, p: Arc<dyn StreamProtocol>) -> &mut Self {
        self.protocols.push(p);
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
            VersionPolicy::PreferHttp2 => {
                (h2.iter().chain(h1.iter()).cloned().collect(), h1.clone())
            }
            VersionPolicy::Http2PriorKnowledge => (h2.iter().cloned().collect(), h2.clone()),
        };
        if alpn.is_empty() {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                "no HTTP version registered for this version policy",
            )
            .with_fault(Fault::User));
        }
        let ids: Vec<&[u8]> = alpn.iter().map(|p| p.alpn()).collect();
        let tls_config = self.tls.client_config(&ids)?;
        Ok(Client {
            inner: Arc::new(Inner {
                alpn,
                cleartext,
                connector: self.connector.clone(),
                tls_config,
                pool: Pool::new(self.idle_timeout, self.max_per_origin),
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
    connector: Arc<dyn StreamConnector>,
    tls_config: Arc<burrow_transport::rustls::ClientConfig>,
    pool: Pool,
}

impl Client {
    /// A builder with direct TCP, default TLS and no versions registered yet.
    pub fn builder() -> ClientBuilder {
        ClientBuilder {
            protocols: Vec::new(),
            connector: Arc::new(TcpConnector::default()),
            tls: TlsConfig::default(),
            policy: VersionPolicy::default(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_per_origin: DEFAULT_MAX_PER_ORIGIN,
        }
    }

    /// Sends a request with an absolute URI and returns the response.
    pub async fn request(&self, req: Request<Body>) -> Result<Response<Body>, Error> {
        let key = self.key(req.uri())?;
        let replay = replayable(&req);
        let (conn, _) = self.connection(&key, req.uri()).await?;
        match conn.send_request(req).await {
            Err(e) if e.kind() == ErrorKind::NotProcessed => {
                self.inner.pool.remove(&key, &conn);
                let Some(req) = replay else { return Err(e) };
                let (conn, _) = self.connection(&key, req.uri()).await?;
                conn.send_request(req).await
            }
            Err(e) => {
                if conn.is_closed() {
                    self.inner.pool.remove(&key, &conn);
                }
                Err(e)
            }
            ok => ok,
        }
    }

    /// A connection to the origin of `uri`, pooled or new; `true` when new.
    pub async fn connection(
        &self,
        key: &PoolKey,
        uri: &http::Uri,
    ) -> Result<(Arc<dyn HttpConnection>, bool), Error> {
        loop {
            match self.inner.pool.checkout(key) {
                Checkout::Ready(c) => return Ok((c, false)),
                Checkout::Wait(n) => {
                    let notified = n.notified();
                    // Re-check after registering, so a wake-up between is not missed.
                    if let Checkout::Ready(c) = self.inner.pool.checkout_if_ready(key) {
                        return Ok((c, false));
                    }
                    notified.await;
                }
                Checkout::Connect => {
                    let r = self.connect(uri).await;
                    self.inner
                        .pool
                        .finish_connect(key, r.as_ref().ok().cloned());
                    return r.map(|c| (c, true));
                }
            }
        }
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
        let c = self.inner.connector.connect(&target).await?;
        let mut info = ConnectionInfo {
            peer_addr: c.info.peer_addr,
            alpn: None,
            route: c.info.route(),
        };
        if scheme == "http" {
            let p = self.inner.cleartext.clone().ok_or_else(|| {
                Error::new(ErrorKind::Unsupported, "no cleartext HTTP version allowed")
            })?;
            return p.handshake(c.stream, info).await;
        }
        let (s, alpn) = tls::handshake(c.stream, &target.host, self.inner.tls_config.clone())
            .await
            .map_err(|e| e.at_hop(origin_hop(&target)))?;
        info.route = format!("tls > {}", info.route);
        info.alpn = alpn.clone();
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
            Error::new(
                ErrorKind::Unsupported,
                "the server offered no HTTP version we may use (ALPN)",
            )
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

/// The scheme and target of an absolute URI.
pub fn origin(uri: &http::Uri) -> Result<(&'static str, Target), Error> {
    let scheme = match uri.scheme_str() {
        Some("http") => "http",
        Some("https") => "https",
        Some(s) => {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("unsupported scheme {s}"),
            ))
        }
        None => {
            return Err(
                Error::new(ErrorKind::InvalidInput, "request URI is not absolute")
                    .with_fault(Fault::User),
            )
        }
    };
    let host = Host::parse(uri.host().unwrap_or_default())?;
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    Ok((scheme, Target::new(host, port)))
}

fn replayable(req: &Request<Body>) -> Option<Request<Body>> {
    let body = req.body().try_clone()?;
    let mut r = Request::new(body);
    *r.method_mut() = req.method().clone();
    *r.uri_mut() = req.uri().clone();
    *r.version_mut() = req.version();
    *r.headers_mut() = req.headers().clone();
    Some(r)
}
