//! Folding a list of hops into connectors, nearest hop first (DESIGN.md, "Composition").

use std::sync::Arc;

use async_trait::async_trait;
use burrow_transport::{
    BoxFlow, DatagramConnector, Error, ErrorKind, Hop, Result, StreamConnector, Target, TcpConfig,
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
}

/// A level of the route that cannot carry UDP: every flow attempt fails naming the hop.
struct NoUdp {
    hop: Hop,
    why: &'static str,
}

#[async_trait]
impl DatagramConnector for NoUdp {
    async fn connect_datagram(&self, _target: &Target) -> Result<BoxFlow> {
        Err(Error::new(ErrorKind::Unsupported, self.why).at_hop(self.hop.clone()))
    }

    fn describe(&self) -> String {
        format!("no UDP through {}", self.hop.label)
    }
}

/// Options shared by the hops of a route.
#[derive(Clone, Debug, Default)]
pub struct RouteOptions {
    /// TCP settings for the first hop (or the origin when direct).
    pub tcp: TcpConfig,
    /// TLS trust for HTTPS/HTTP/2/HTTP/3 proxies (each hop verifies its own certificate).
    pub proxy_tls: TlsConfig,
    /// Extra headers for CONNECT requests (`--proxy-header`).
    pub proxy_headers: HeaderMap,
}

impl Route {
    /// Direct: TCP and UDP.
    pub fn direct(options: &RouteOptions) -> Route {
        Route {
            stream: Arc::new(TcpConnector::new(options.tcp.clone())),
            datagram: Arc::new(UdpConnector),
            hops: Vec::new(),
        }
    }

    /// Every hop reached through the hops before it, nearest first.
    pub fn build(hops: &[ProxyUrl], options: &RouteOptions) -> Route {
        let mut route = Route::direct(options);
        for (i, url) in hops.iter().enumerate() {
            let hop = Hop {
                index: Some(i),
                label: url.label(),
            };
            let (stream, why): (Arc<dyn StreamConnector>, &'static str) = if url.kind.is_http() {
                (
                    Arc::new(HttpHop::new(
                        url.clone(),
                        i,
                        route.stream.clone(),
                        route.datagram.clone(),
                        options.proxy_tls.clone(),
                        options.proxy_headers.clone(),
                    )),
                    "UDP (CONNECT-UDP) through this HTTP proxy is not supported yet",
                )
            } else {
                let why = if url.kind == ProxyKind::Socks4a {
                    "SOCKS4a cannot carry UDP"
                } else {
                    "UDP through SOCKS5 (UDP ASSOCIATE) is not supported yet"
                };
                (
                    Arc::new(SocksHop::new(url.clone(), i, route.stream.clone())),
                    why,
                )
            };
            route.stream = stream;
            route.datagram = Arc::new(NoUdp { hop, why });
            route.hops.push(url.clone());
        }
        route
    }
}
