//! Folding a list of hops into connectors, nearest hop first (DESIGN.md, "Composition").

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burrow_transport::{
    BoxFlow, DatagramConnector, Error, Hop, Result, StreamConnector, Target, TcpConfig,
    TcpConnector, TlsConfig, UdpConnector,
};
use http::HeaderMap;

use super::http_hop::HttpHop;
use super::socks_hop::SocksHop;
use super::url::{ProxyKind, ProxyUrl};

/// The connectors of a route.
#[derive(Clone)]
pub struct Route {
    /// Byte streams to targets through every hop.
    pub stream: Arc<dyn StreamConnector>,
    /// Datagram flows to targets through every hop.
    pub datagram: Arc<dyn DatagramConnector>,
    /// The hops, nearest first.
    pub hops: Vec<ProxyUrl>,
    /// IP tunnels through the last hop, when it is a `?connect=ip` one.
    pub ip: Option<Arc<dyn burrow_transport::IpConnector>>,
}

/// A level of the route that cannot carry UDP: every flow attempt fails naming the hop.
struct NoUdp {
    hop: Hop,
    why: &'static str,
}

#[async_trait]
impl DatagramConnector for NoUdp {
    async fn connect_datagram(&self, _target: &Target) -> Result<BoxFlow> {
        Err(Error::unsupported(self.why).at_hop(self.hop.clone()))
    }

    fn describe(&self) -> String {
        format!("no UDP through {}", self.hop.label)
    }
}

/// Default deadline for a proxy's answer to a tunnel request: the SOCKS negotiation and
/// reply, or the response to a CONNECT (the proxy dials the target meanwhile).
pub const DEFAULT_TUNNEL_TIMEOUT: Duration = Duration::from_secs(30);

/// Options shared by the hops of a route.
#[derive(Clone)]
pub struct RouteOptions {
    /// TCP settings for the first hop (or the origin when direct).
    pub tcp: TcpConfig,
    /// TLS trust for HTTPS/HTTP/2/HTTP/3 proxies (each hop verifies its own certificate).
    pub proxy_tls: TlsConfig,
    /// Extra headers for CONNECT requests (`--proxy-header`).
    pub proxy_headers: HeaderMap,
    /// The CONNECT-UDP URI template for HTTP proxies (default: RFC 9298's).
    pub udp_template: crate::template::UdpTemplate,
    /// The capsule types of CONNECT-TCP tunnels (`?connect=tcp` hops).
    pub tcp_codepoints: burrow_http_core::connect_tcp::Codepoints,
    /// How long a hop may take to answer a tunnel request (default
    /// [`DEFAULT_TUNNEL_TIMEOUT`]); the error names the hop.
    pub tunnel_timeout: Duration,
    /// The resolver for names resolved on this side: the first hop's (or the origin's when
    /// direct) and the targets of `socks5://` hops. `None`: the system's.
    pub resolver: Option<burrow_transport::SharedResolver>,
}

impl std::fmt::Debug for RouteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteOptions")
            .field("tcp", &self.tcp)
            .field(
                "proxy_headers",
                &self.proxy_headers.keys().collect::<Vec<_>>(),
            )
            .field("udp_template", &self.udp_template)
            .field("tcp_codepoints", &self.tcp_codepoints)
            .field("tunnel_timeout", &self.tunnel_timeout)
            .field(
                "resolver",
                &self.resolver.as_ref().map_or("system", |_| "custom"),
            )
            .finish_non_exhaustive()
    }
}

impl Default for RouteOptions {
    fn default() -> Self {
        RouteOptions {
            tcp: TcpConfig::default(),
            proxy_tls: TlsConfig::default(),
            proxy_headers: HeaderMap::new(),
            udp_template: Default::default(),
            tcp_codepoints: Default::default(),
            tunnel_timeout: DEFAULT_TUNNEL_TIMEOUT,
            resolver: None,
        }
    }
}

impl Route {
    /// Direct: TCP and UDP.
    pub fn direct(options: &RouteOptions) -> Route {
        Route {
            stream: Arc::new(match &options.resolver {
                Some(r) => TcpConnector::new(options.tcp.clone()).with_resolver(r.clone()),
                None => TcpConnector::new(options.tcp.clone()),
            }),
            datagram: Arc::new(match &options.resolver {
                Some(r) => UdpConnector::with_resolver(r.clone()),
                None => UdpConnector::default(),
            }),
            hops: Vec::new(),
            ip: None,
        }
    }

    /// Every hop reached through the hops before it, nearest first. Each level carries
    /// streams and datagrams: CONNECT and CONNECT-UDP for HTTP proxies, CONNECT and UDP
    /// ASSOCIATE for SOCKS5; a SOCKS4a level cannot carry UDP and says so.
    pub fn build(hops: &[ProxyUrl], options: &RouteOptions) -> Route {
        hops.iter().fold(Route::direct(options), |route, url| {
            route.then(url, options)
        })
    }

    /// This route extended by one more hop, `url`, reached through the hops so far (which
    /// it shares: tunnels through both routes use the same multiplexed proxy connections).
    /// `options` supplies the hop's TLS trust, CONNECT headers, template and deadline.
    pub fn then(&self, url: &ProxyUrl, options: &RouteOptions) -> Route {
        let mut route = self.clone();
        let i = route.hops.len();
        let hop = url.hop(i);
        route.ip = None;
        if url.kind.is_http() {
            let (lower, lower_udp) = (route.stream.clone(), route.datagram.clone());
            let h = Arc::new(HttpHop::new(url.clone(), i, lower, lower_udp, options));
            if url.connect_ip.is_some() {
                // TCP and UDP to every target share one IP tunnel, by a userspace stack.
                let ip = Arc::new(crate::ip::IpHop::new(h, hop.clone()));
                let via = Arc::new(crate::ip::StackConnector {
                    stack: ip.clone(),
                    label: format!("CONNECT-IP@{} {}", url.kind.scheme(), url.target),
                    hop: hop.clone(),
                    resolver: options
                        .resolver
                        .clone()
                        .unwrap_or_else(|| Arc::new(burrow_transport::SystemResolver)),
                });
                route.stream = via.clone();
                route.datagram = via;
                route.ip = Some(ip);
            } else {
                route.stream = h.clone();
                route.datagram = h;
            }
        } else if url.kind == ProxyKind::Socks4a {
            let lower = route.stream.clone();
            route.stream = Arc::new(SocksHop::new(url.clone(), i, lower, None, options));
            route.datagram = Arc::new(NoUdp {
                hop,
                why: "SOCKS4a cannot carry UDP",
            });
        } else {
            let (lower, lower_udp) = (route.stream.clone(), Some(route.datagram.clone()));
            let h = Arc::new(SocksHop::new(url.clone(), i, lower, lower_udp, options));
            route.stream = h.clone();
            route.datagram = h;
        }
        route.hops.push(url.clone());
        route
    }
}
