//! A hop through an HTTP proxy: CONNECT over HTTP/1.1, HTTP/2 or HTTP/3. HTTP/2 and HTTP/3
//! proxy connections carry many tunnels and are reused; an HTTP/1.1 one becomes the tunnel.

use std::sync::Arc;

use async_trait::async_trait;
use burrow_http_core::connect_tcp::{CapsuleStream, CloseInner, Codepoints};
use burrow_http_core::{ConnectionInfo, HttpConnection, TunnelRequest};
use burrow_transport::{
    tcp::Abort, tls, Connected, DatagramConnector, Error, Result, StreamConnector, StreamInfo,
    Target, TlsConfig,
};
use http::{HeaderMap, HeaderValue, Version};
use tokio::sync::Mutex;

use super::url::{ProxyKind, ProxyUrl};
use super::RouteOptions;

/// Basic credentials as a `Proxy-Authorization` value (RFC 7617).
pub use burrow_http_core::credentials::basic;

struct Shared {
    conn: Arc<dyn HttpConnection>,
    layers: Vec<String>,
}

/// An opened tunnel, the proxy connection it is on, that connection's layers, and the
/// abortive close of the TCP connection under it when the tunnel has it to itself
/// (HTTP/1.1).
type Opened = (
    burrow_http_core::Tunnel,
    Arc<dyn HttpConnection>,
    Vec<String>,
    Option<Abort>,
);

/// A connection to the proxy, its layers, and the abortive close of the TCP connection
/// under it when nothing else shares that (HTTP/1.1).
type Opening = (Arc<dyn HttpConnection>, Vec<String>, Option<Abort>);

/// One HTTP proxy hop, reached through the connectors of the hops before it.
pub struct HttpHop {
    url: ProxyUrl,
    index: usize,
    lower: Arc<dyn StreamConnector>,
    lower_udp: Arc<dyn DatagramConnector>,
    tls: TlsConfig,
    headers: HeaderMap,
    template: crate::template::UdpTemplate,
    /// The capsule types of CONNECT-TCP tunnels through this hop.
    codepoints: Codepoints,
    timeout: std::time::Duration,
    /// Multiplexed (HTTP/2, HTTP/3) connections to the proxy, shared by all tunnels; a new
    /// one is opened only when none can start another tunnel at once.
    shared: Mutex<Vec<Shared>>,
    /// An `https://` proxy that negotiated HTTP/2 but refused tunnels over it: it is
    /// spoken to over HTTP/1.1 from then on.
    h1_only: std::sync::atomic::AtomicBool,
}

impl HttpHop {
    /// A hop to `url` (an HTTP kind), `index` in the route (0 = nearest), reached through
    /// `lower` and `lower_udp`, with the TLS trust, extra CONNECT headers, CONNECT-UDP
    /// template (unless `url` has its own), CONNECT-TCP capsule types and tunnel deadline
    /// of `options`.
    pub fn new(
        url: ProxyUrl,
        index: usize,
        lower: Arc<dyn StreamConnector>,
        lower_udp: Arc<dyn DatagramConnector>,
        options: &RouteOptions,
    ) -> Self {
        HttpHop {
            template: url
                .udp_template
                .clone()
                .unwrap_or_else(|| options.udp_template.clone()),
            url,
            index,
            lower,
            lower_udp,
            tls: options.proxy_tls.clone(),
            headers: options.proxy_headers.clone(),
            codepoints: options.tcp_codepoints,
            timeout: options.tunnel_timeout,
            shared: Mutex::new(Vec::new()),
            h1_only: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Opens a tunnel, falling back to HTTP/1.1 once when an `https://` proxy that chose
    /// HTTP/2 by ALPN refuses tunnels there (mitmproxy resets CONNECT streams, its
    /// issue 6090; curl offers only HTTP/1.1 to proxies): a stream reset, a GOAWAY, 405 or
    /// 501 before any tunnel byte, or no extended CONNECT. `h2://` proxies stay strict.
    async fn tunnel(&self, req: TunnelRequest) -> Result<Opened> {
        // Reaching the proxy (TCP, TLS, the HTTP handshake) and its answer, within the
        // hop's deadline.
        tokio::time::timeout(self.timeout, self.tunnel_inner(req))
            .await
            .map_err(|_| {
                Error::peer(
                    burrow_transport::ErrorKind::Timeout,
                    format!("no answer to the tunnel request within {:?}", self.timeout),
                )
            })?
    }

    async fn tunnel_inner(&self, req: TunnelRequest) -> Result<Opened> {
        let mut fresh_tried = false;
        loop {
            let (conn, layers, abort) = self.connection().await?;
            let e = match conn.open_tunnel(req.clone()).await {
                Ok(t) => return Ok((t, conn, layers, abort)),
                Err(e) => e,
            };
            let h2_https = self.url.kind == ProxyKind::Https && conn.version() == Version::HTTP_2;
            match refusal_of_h2(&e) {
                // A graceful GOAWAY or REFUSED_STREAM: the proxy may well tunnel over
                // HTTP/2, just not on this connection; try a fresh one once.
                H2Refusal::NotHere if h2_https && !fresh_tried => {
                    fresh_tried = true;
                    self.forget(&conn).await;
                }
                H2Refusal::NotOverH2 | H2Refusal::NotHere if h2_https => {
                    tracing::debug!(
                        "{} refused a tunnel over HTTP/2 ({e}); using HTTP/1.1 with it from now on",
                        self.url.label()
                    );
                    self.h1_only
                        .store(true, std::sync::atomic::Ordering::Release);
                    self.shared.lock().await.clear();
                }
                _ => return Err(e),
            }
        }
    }

    /// Stops sharing `conn` for new tunnels.
    async fn forget(&self, conn: &Arc<dyn HttpConnection>) {
        self.shared
            .lock()
            .await
            .retain(|s| !Arc::ptr_eq(&s.conn, conn));
    }

    /// A connection to the proxy: a shared HTTP/2 or HTTP/3 one that can start a tunnel
    /// at once, or a new one (shared too unless it is HTTP/1.1, where it becomes the tunnel).
    async fn connection(&self) -> Result<Opening> {
        let mut shared = self.shared.lock().await;
        shared.retain(|s| !s.conn.is_closed());
        if let Some(s) = shared.iter().find(|s| s.conn.can_open_tunnel()) {
            return Ok((s.conn.clone(), s.layers.clone(), None));
        }
        let (conn, layers, abort) = self.open().await?;
        if conn.version() != Version::HTTP_11 {
            shared.push(Shared {
                conn: conn.clone(),
                layers: layers.clone(),
            });
        }
        Ok((conn, layers, abort))
    }

    async fn open(&self) -> Result<Opening> {
        let target = &self.url.target;
        if self.url.kind == ProxyKind::H3 {
            let flow = self
                .lower_udp
                .connect_datagram(target)
                .await
                .map_err(Error::reaching_proxy)?;
            let layers: Vec<String> = vec![flow.describe()];
            let mut cfg = burrow_http3::Http3Config::default();
            // This connection may carry QUIC (an HTTP/3 origin or proxy behind it): start as
            // large as the path allows, up to PROXY_INITIAL_MTU. Each nested level costs
            // ~40 bytes, so 1400 on a real socket leaves room for several levels above 1200.
            let fits = u16::try_from(flow.max_datagram_size()).unwrap_or(u16::MAX);
            cfg.initial_mtu(burrow_http3::PROXY_INITIAL_MTU.min(fits));
            let c = burrow_http3::connect(
                flow,
                ConnectionInfo::default(),
                &cfg,
                &self.tls,
                &target.host_str(),
            )
            .await?;
            return Ok((
                Arc::new(c),
                vec![format!("quic > {}", layers.join(" > "))],
                None,
            ));
        }
        let Connected { stream, info } = self
            .lower
            .connect(target)
            .await
            .map_err(Error::reaching_proxy)?;
        let mut layers = info.layers.clone();
        let abort = info.abort.clone();
        let cinfo = ConnectionInfo {
            peer_addr: info.peer_addr,
            alpn: None,
            route: info.route(),
            local_addr: info.local_addr,
            timings: info.timings,
        };
        if self.url.kind == ProxyKind::Http {
            let mut cfg = burrow_http1::Http1Config::default();
            cfg.connect_http10(self.url.http10);
            let c = burrow_http1::connect(stream, cinfo, &cfg).await?;
            return Ok((Arc::new(c), layers, abort));
        }
        let h1_only = self.h1_only.load(std::sync::atomic::Ordering::Acquire);
        let alpn: &[&[u8]] = match self.url.kind {
            ProxyKind::H2 => &[b"h2"],
            _ if h1_only => &[b"http/1.1"],
            _ => &[b"h2", b"http/1.1"],
        };
        let (t, negotiated) =
            tls::handshake(stream, &target.host, self.tls.client_config(alpn)?).await?;
        layers.insert(0, "tls".into());
        if negotiated.as_deref() == Some(b"h2") {
            let c = burrow_http2::connect(Box::new(t), cinfo, &Default::default()).await?;
            Ok((Arc::new(c), layers, None))
        } else if self.url.kind == ProxyKind::H2 {
            Err(Error::peer(
                burrow_transport::ErrorKind::Unsupported,
                "the proxy did not agree to HTTP/2 (ALPN)",
            ))
        } else {
            let c = burrow_http1::connect(Box::new(t), cinfo, &Default::default()).await?;
            Ok((Arc::new(c), layers, abort))
        }
    }

    async fn connect_udp(&self, target: &Target) -> Result<burrow_transport::BoxFlow> {
        let req = TunnelRequest::extended(
            "connect-udp",
            self.url.target.clone(),
            self.template.expand(target),
        )
        .with_secure(self.url.kind != ProxyKind::Http);
        let mut req = self.with_our_headers(req);
        req.headers_mut()
            .insert("capsule-protocol", HeaderValue::from_static("?1"));
        let (tunnel, conn, layers, _) = self.tunnel(req).await?;
        let describe = self.described("CONNECT-UDP", &*conn, &layers);
        Ok(crate::flows::tunnel_flow(
            tunnel,
            burrow_http_core::capsule::DEFAULT_MAX_CAPSULE,
            describe,
        ))
    }

    /// Opens a CONNECT-IP tunnel for `scope` with this hop's template and waits for the
    /// proxy's address assignment (RFC 9484 §4). Its credentials go in `Authorization`,
    /// as for CONNECT-TCP: the template's resources are the proxy's own.
    pub async fn connect_ip(
        &self,
        scope: &burrow_transport::IpScope,
    ) -> Result<crate::ip::ConnectIpFlow> {
        let template = self.url.connect_ip.clone().unwrap_or_default();
        let req = self.template_request(
            burrow_http_core::connect_ip::PROTOCOL,
            template.expand(scope),
        );
        let target = burrow_transport::Target::new(burrow_transport::Host::Name("*".into()), 0);
        let span = super::hop_span(self.index, &self.url, &target);
        let opening = async {
            let (tunnel, conn, layers, _) = self.tunnel(req).await?;
            let describe = self.described("CONNECT-IP", &*conn, &layers);
            let t =
                crate::ip::IpTunnel::new(tunnel, burrow_http_core::capsule::DEFAULT_MAX_CAPSULE);
            crate::ip::ConnectIpFlow::open(t, describe, self.timeout).await
        };
        super::open_traced(&span, self.url.hop(self.index), opening, |_| "ip").await
    }

    /// The request for a TCP tunnel to `target`: classic CONNECT, or CONNECT-TCP with the
    /// hop's template (its credentials then in `Authorization`: the proxy is the origin of
    /// the template's resources).
    fn tunnel_request(&self, target: &Target) -> TunnelRequest {
        let Some(template) = &self.url.connect_tcp else {
            return self.with_our_headers(TunnelRequest::connect(target.clone()));
        };
        self.template_request(
            burrow_http_core::connect_tcp::PROTOCOL,
            template.expand(target),
        )
    }

    /// An extended CONNECT for `protocol` to `path` of the proxy's own template: the
    /// Capsule Protocol, and its credentials in `Authorization` (the proxy is the origin
    /// of the template's resources).
    fn template_request(&self, protocol: &'static str, path: String) -> TunnelRequest {
        let req = TunnelRequest::extended(protocol, self.url.target.clone(), path)
            .with_secure(self.url.kind != ProxyKind::Http);
        let mut req = self.with_our_headers(req);
        let h = req.headers_mut();
        if let Some(v) = h.remove(http::header::PROXY_AUTHORIZATION) {
            h.insert(http::header::AUTHORIZATION, v);
        }
        h.insert("capsule-protocol", HeaderValue::from_static("?1"));
        req
    }

    /// A flow's description, outermost layer first: a `method` tunnel to this proxy on
    /// `conn`, then that connection's `layers` (`CONNECT-UDP@h3 p:443 > quic > udp`).
    fn described(&self, method: &str, conn: &dyn HttpConnection, layers: &[String]) -> String {
        let (version, target) = (version_tag(conn.version()), &self.url.target);
        format!("{method}@{version} {target} > {}", layers.join(" > "))
    }

    /// `req` with this hop's extra headers and its credentials.
    fn with_our_headers(&self, mut req: TunnelRequest) -> TunnelRequest {
        let h = req.headers_mut();
        for (k, v) in &self.headers {
            h.append(k, v.clone());
        }
        if let Some(c) = &self.url.credentials {
            if let Some(v) = basic(&c.user, &c.pass) {
                h.insert(http::header::PROXY_AUTHORIZATION, v);
            }
        }
        req
    }
}

/// Whether an HTTP/2 proxy's answer says it will not tunnel over HTTP/2 (as opposed to
/// refusing this target): the stream reset or refused, the connection going away, 405 or
/// 501, or no extended CONNECT.
enum H2Refusal {
    /// The proxy will not tunnel over HTTP/2: a stream reset (other than CONNECT_ERROR,
    /// which is about the target), 405 or 501, no extended CONNECT.
    NotOverH2,
    /// Not on this connection: a graceful GOAWAY past the stream, or REFUSED_STREAM.
    NotHere,
    /// Anything else (the target refused, the transport failed): not about HTTP/2.
    Other,
}

fn refusal_of_h2(e: &Error) -> H2Refusal {
    use burrow_transport::code::{H2Reason, StatusCode};
    use burrow_transport::ErrorKind as K;
    match e.kind() {
        K::NotProcessed => H2Refusal::NotHere,
        K::Unsupported => H2Refusal::NotOverH2,
        K::Cancelled | K::Protocol if e.code() != Some(H2Reason::CONNECT_ERROR.into()) => {
            H2Refusal::NotOverH2
        }
        K::ProxyRefused
            if matches!(
                e.status(),
                Some(StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED)
            ) =>
        {
            H2Refusal::NotOverH2
        }
        _ => H2Refusal::Other,
    }
}

fn version_tag(v: Version) -> &'static str {
    match v {
        Version::HTTP_3 => "h3",
        Version::HTTP_2 => "h2",
        _ => "h1",
    }
}

#[async_trait]
impl StreamConnector for HttpHop {
    async fn connect(&self, target: &Target) -> Result<Connected> {
        let span = super::hop_span(self.index, &self.url, target);
        let opening = self.tunnel(self.tunnel_request(target));
        let (tunnel, conn, layers, abort) =
            super::open_traced(&span, self.url.hop(self.index), opening, |(_, c, _, _)| {
                version_tag(c.version())
            })
            .await?;
        let tcp = self.url.connect_tcp.is_some();
        let mut all = vec![format!(
            "{}@{} {}",
            if tcp { "CONNECT-TCP" } else { "CONNECT" },
            version_tag(conn.version()),
            self.url.target
        )];
        all.extend(layers);
        let mut stream = tunnel.into_stream();
        if tcp {
            // HTTP/1.1 cannot half-close the connection the tunnel is.
            let close = match conn.version() {
                Version::HTTP_11 | Version::HTTP_10 => CloseInner::OnDrop,
                _ => CloseInner::WhenBothEnded,
            };
            stream = Box::new(CapsuleStream::new(stream, self.codepoints, close));
        }
        Ok(Connected {
            stream: super::hop_stream::counted(
                super::hop_stream::tag(stream, self.url.hop(self.index)),
                span,
            ),
            info: StreamInfo {
                peer_addr: conn.info().peer_addr,
                alpn: None,
                layers: all,
                local_addr: conn.info().local_addr,
                // A shared proxy connection keeps the times it was made at.
                timings: burrow_transport::ConnectTimings {
                    routed: Some(std::time::Instant::now()),
                    ..conn.info().timings
                },
                abort,
            },
        })
    }

    fn describe(&self) -> String {
        format!(
            "{}@{} {} > {}",
            match self.url.connect_tcp {
                Some(_) => "CONNECT-TCP",
                None => "CONNECT",
            },
            self.url.kind.scheme(),
            self.url.target,
            self.lower.describe()
        )
    }
}

#[async_trait]
impl DatagramConnector for HttpHop {
    async fn connect_datagram(&self, target: &Target) -> Result<burrow_transport::BoxFlow> {
        self.connect_udp(target)
            .await
            .map_err(|e| e.at_hop(self.url.hop(self.index)))
    }

    fn describe(&self) -> String {
        format!(
            "CONNECT-UDP@{} {} > {}",
            self.url.kind.scheme(),
            self.url.target,
            self.lower.describe()
        )
    }
}
