//! The composition matrix: every origin version over every path, in process, on loopback.
//!
//! Origins: HTTP/1.1 and HTTP/2 over TLS, HTTP/3 (burrow's servers, a generated CA).
//! Proxies: three burrow-proxy instances, each listening on HTTP/1.1 (plain and TLS),
//! HTTPS (HTTP/2 by ALPN), HTTP/3 and SOCKS5; hop *n* of a route always uses instance *n*, so each
//! cell can check that every hop really relayed it (the instance's tunnel counter moved).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http1::Http1;
use burrow_http2::Http2;
use burrow_http3::Http3;
use burrow_http_core::{Body, Client, VersionPolicy};
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_proxy::server::{self, Listen, Proxy, ProxyConfig, SharedStats};
use burrow_transport::{Error, ErrorKind, Roots, TlsConfig};
use http::{Request, Version};

use crate::demo::{check_pattern, Row};
use crate::origin::{self, Origin, Versions};
use crate::pki::TestPki;

/// One hop kind of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HopKind {
    /// CONNECT over HTTP/1.1 (cleartext to the proxy).
    H1,
    /// CONNECT over HTTP/1.1 with TLS to the proxy.
    H1s,
    /// CONNECT over HTTP/2 (TLS to the proxy).
    H2,
    /// CONNECT over HTTP/3 (QUIC to the proxy).
    H3,
    /// SOCKS5 (names resolved by the proxy).
    Socks5,
    /// SOCKS4a (TCP only).
    Socks4a,
    /// CONNECT-TCP over HTTP/1.1 (an Upgrade; cleartext to the proxy).
    Tcp1,
    /// CONNECT-TCP over HTTP/2 (TLS to the proxy).
    Tcp2,
    /// CONNECT-TCP over HTTP/3.
    Tcp3,
    /// TCP and UDP over one CONNECT-IP tunnel on HTTP/2 (a userspace TCP/IP stack).
    Ip2,
    /// TCP and UDP over one CONNECT-IP tunnel on HTTP/3.
    Ip3,
}

impl HopKind {
    fn name(self) -> &'static str {
        match self {
            HopKind::H1 => "h1",
            HopKind::H1s => "h1s",
            HopKind::H2 => "h2",
            HopKind::H3 => "h3",
            HopKind::Socks5 => "socks5",
            HopKind::Socks4a => "socks4a",
            HopKind::Tcp1 => "tcp@h1",
            HopKind::Tcp2 => "tcp@h2",
            HopKind::Tcp3 => "tcp@h3",
            HopKind::Ip2 => "ip@h2",
            HopKind::Ip3 => "ip@h3",
        }
    }
}

/// Which origin a cell fetches from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OriginKind {
    /// HTTP/1.1 over TLS.
    H1,
    /// HTTP/2 over TLS.
    H2,
    /// HTTP/3.
    H3,
}

impl OriginKind {
    fn name(self) -> &'static str {
        match self {
            OriginKind::H1 => "HTTP/1.1",
            OriginKind::H2 => "HTTP/2",
            OriginKind::H3 => "HTTP/3",
        }
    }
}

/// One cell: an origin version and a route.
#[derive(Clone, Debug)]
pub struct Cell {
    /// The origin.
    pub origin: OriginKind,
    /// The hops, nearest first.
    pub hops: Vec<HopKind>,
}

struct ProxyInstance {
    ports: [u16; 5],
    stats: SharedStats,
    _running: server::Running,
}

/// The running origins and proxies.
pub struct Lab {
    origins: [Origin; 3],
    proxies: Vec<ProxyInstance>,
    trust: TlsConfig,
    /// The address everything listens on, as URLs name it.
    host: String,
}

/// The address a CONNECT-IP lab's origins and proxies listen on (on the namespace's
/// loopback device, so that packets from the TUN devices reach it).
pub const IP_LAB_HOST: std::net::Ipv4Addr = std::net::Ipv4Addr::new(10, 77, 0, 1);

/// Size of every cell's body: 1 MiB.
pub const BODY: u64 = 1 << 20;
/// Deadline of one cell.
pub const CELL_DEADLINE: Duration = Duration::from_secs(30);

impl Lab {
    /// Starts three origins and three proxies on loopback.
    pub async fn start() -> Result<Lab, Error> {
        Lab::start_on(None).await
    }

    /// Starts a lab for CONNECT-IP cells inside a network namespace the caller set up
    /// ([`IP_LAB_HOST`] on its loopback device): everything listens on that address, and
    /// each proxy serves CONNECT-IP from a TUN device of its own (`bm1`..`bm3`, pools
    /// 10.91.0.0/24..10.93.0.0/24).
    pub async fn start_ip() -> Result<Lab, Error> {
        Lab::start_on(Some(IP_LAB_HOST.into())).await
    }

    async fn start_on(ip: Option<std::net::IpAddr>) -> Result<Lab, Error> {
        let at = ip.unwrap_or([127, 0, 0, 1].into());
        let host = match ip {
            Some(a) => a.to_string(),
            None => "localhost".to_string(),
        };
        let pki = TestPki::generate(&[&at.to_string()])
            .map_err(|e| Error::peer(ErrorKind::Tls, format!("test PKI: {e}")))?;
        let tls = |alpn: &[&[u8]]| {
            burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), alpn)
        };
        let io = |e: std::io::Error| Error::local_io("starting an origin", e);
        let o1 = origin::start_at(at, Versions::Http1, Some(tls(&[b"http/1.1"])?), None)
            .await
            .map_err(io)?;
        let o2 = origin::start_at(at, Versions::Http2, Some(tls(&[b"h2"])?), None)
            .await
            .map_err(io)?;
        let o3 = origin::start_h3_at((at, 0).into(), tls(&[b"h3"])?).await?;
        let mut proxies = Vec::new();
        for i in 0..3u8 {
            let mut rules = burrow_proxy::server::Rules::loopback();
            let net = match ip {
                Some(a) => {
                    rules.networks.push((a, 16));
                    let pool = burrow_http_core::connect_ip::Prefix::new(
                        std::net::Ipv4Addr::new(10, 91 + i, 0, 0).into(),
                        24,
                    );
                    Some(server::IpNetwork::open(&server::IpNetConfig {
                        tun_name: format!("bm{}", i + 1),
                        pool_v4: pool,
                        ..Default::default()
                    })?)
                }
                None => None,
            };
            let cfg = ProxyConfig {
                listeners: ["http", "https", "h3", "socks5", "https1"]
                    .iter()
                    .map(|s| Listen::parse(&format!("{s}://{at}:0")))
                    .collect::<Result<_, _>>()?,
                identity: Some((pki.chain_der.clone(), Arc::new(pki.key()))),
                rules,
                ip: net,
                ..ProxyConfig::default()
            };
            let running = server::start(Proxy::new(cfg, None, None)?).await?;
            let ports =
                std::array::from_fn(|i| running.addrs.get(i).map_or(0, |l| l.addr().port()));
            proxies.push(ProxyInstance {
                ports,
                stats: running.stats(),
                _running: running,
            });
        }
        let mut trust = TlsConfig::default();
        trust.roots(Roots::None).add_root_der(pki.ca_der.clone());
        Ok(Lab {
            origins: [o1, o2, o3],
            proxies,
            trust,
            host,
        })
    }

    fn url(&self, position: usize, kind: HopKind) -> String {
        let p = &self.proxies[position].ports;
        let h = &self.host;
        let a = if h == "localhost" { "127.0.0.1" } else { h };
        match kind {
            HopKind::H1 => format!("http://{a}:{}", p[0]),
            // The client offers h2 and http/1.1; this listener takes only http/1.1.
            HopKind::H1s => format!("https://{h}:{}", p[4]),
            HopKind::H2 => format!("h2://{h}:{}", p[1]),
            HopKind::H3 => format!("h3://{h}:{}", p[2]),
            HopKind::Socks5 => format!("socks5h://{a}:{}", p[3]),
            HopKind::Socks4a => format!("socks4a://{a}:{}", p[3]),
            HopKind::Tcp1 => format!("http://{a}:{}?connect=tcp", p[0]),
            HopKind::Tcp2 => format!("h2://{h}:{}?connect=tcp", p[1]),
            HopKind::Tcp3 => format!("h3://{h}:{}?connect=tcp", p[2]),
            HopKind::Ip2 => format!("h2://{h}:{}?connect=ip", p[1]),
            HopKind::Ip3 => format!("h3://{h}:{}?connect=ip", p[2]),
        }
    }

    async fn fetch(&self, cell: &Cell) -> Result<(Version, u64, String), Error> {
        let hops = cell
            .hops
            .iter()
            .enumerate()
            .map(|(i, k)| ProxyUrl::parse(&self.url(i, *k)))
            .collect::<Result<Vec<_>, _>>()?;
        let route = Route::build(
            &hops,
            &RouteOptions {
                proxy_tls: self.trust.clone(),
                ..Default::default()
            },
        );
        let mut b = Client::builder();
        b.protocol(Arc::new(Http1::default()))
            .protocol(Arc::new(Http2::default()))
            .datagram_protocol(Arc::new(Http3::default()))
            .connector(route.stream)
            .datagram_connector(route.datagram)
            .tls(self.trust.clone())
            .version_policy(match cell.origin {
                OriginKind::H1 => VersionPolicy::Http1Only,
                OriginKind::H2 => VersionPolicy::Http2PriorKnowledge,
                OriginKind::H3 => VersionPolicy::Http3Only,
            });
        let client = b.build()?;
        let o = &self.origins[cell.origin as usize];
        let uri: http::Uri = format!("https://{}:{}/bytes/{BODY}", self.host, o.addr.port())
            .parse()
            .map_err(|_| Error::invalid_input("bad URI"))?;
        let (conn, _) = client.connection_for(&uri).await?;
        let route_text = conn.info().route.clone();
        let req = Request::get(uri)
            .body(Body::empty())
            .map_err(|e| Error::invalid_input(e.to_string()))?;
        let resp = conn.send_request(req).await?;
        let v = resp.version();
        let n = check_pattern(resp.into_body(), BODY).await?;
        Ok((v, n, route_text))
    }

    /// Runs one cell under its deadline and checks that every hop relayed it.
    pub async fn run(&self, cell: &Cell) -> Row {
        let before: Vec<u64> = self
            .proxies
            .iter()
            .map(|p| p.stats.tunnels.load(Ordering::Relaxed))
            .collect();
        let t0 = Instant::now();
        let r = tokio::time::timeout(CELL_DEADLINE, self.fetch(cell))
            .await
            .unwrap_or_else(|_| Err(Error::peer_timeout("cell deadline passed")));
        let time = t0.elapsed();
        let label = if cell.hops.is_empty() {
            "direct".to_string()
        } else {
            cell.hops
                .iter()
                .map(|h| h.name())
                .collect::<Vec<_>>()
                .join(" > ")
        };
        let (version, bytes, result) = match r {
            Ok((v, n, route)) => {
                let unused: Vec<usize> = (0..cell.hops.len())
                    .filter(|i| {
                        self.proxies[*i].stats.tunnels.load(Ordering::Relaxed) <= before[*i]
                    })
                    .collect();
                let tcp = route.matches("CONNECT-TCP@").count();
                let ip = route.matches("CONNECT-IP@").count();
                let res = if !unused.is_empty() {
                    Err(format!("hops {unused:?} relayed nothing"))
                } else if ip != cell.connect_ip_levels() {
                    Err(format!(
                        "{ip} CONNECT-IP tunnels in the route, not {}: {route}",
                        cell.connect_ip_levels()
                    ))
                } else if tcp != cell.connect_tcp_levels() {
                    Err(format!(
                        "{tcp} CONNECT-TCP tunnels in the route, not {}: {route}",
                        cell.connect_tcp_levels()
                    ))
                } else {
                    Ok(())
                };
                (v, n, res)
            }
            Err(e) => (Version::HTTP_11, 0, Err(e.to_string())),
        };
        let shown = match (version, &result) {
            (Version::HTTP_3, _) => "HTTP/3",
            (Version::HTTP_2, _) => "HTTP/2",
            (_, Ok(())) => "HTTP/1.1",
            _ => "-",
        };
        Row {
            route: format!("{} origin via {label}", cell.origin.name()),
            version: shown.into(),
            bytes,
            time,
            result,
        }
    }
}

impl Cell {
    /// How many hops carry the level above them over CONNECT-IP (TCP and UDP alike).
    fn connect_ip_levels(&self) -> usize {
        self.hops
            .iter()
            .filter(|h| matches!(h, HopKind::Ip2 | HopKind::Ip3))
            .count()
    }

    /// How many hops carry the level above them as CONNECT-TCP: a CONNECT-TCP hop whose
    /// next hop (or origin) is reached over TCP; one reached over UDP takes CONNECT-UDP.
    fn connect_tcp_levels(&self) -> usize {
        use HopKind::*;
        (0..self.hops.len())
            .filter(|&i| matches!(self.hops[i], Tcp1 | Tcp2 | Tcp3))
            .filter(|&i| match self.hops.get(i + 1) {
                Some(next) => !matches!(next, H3 | Tcp3),
                None => self.origin != OriginKind::H3,
            })
            .count()
    }
}

fn cell(origin: OriginKind, hops: &[HopKind]) -> Cell {
    Cell {
        origin,
        hops: hops.to_vec(),
    }
}

/// The full matrix: direct and every single hop per origin (SOCKS4a for TCP origins), every
/// two-hop chain of {h1, h2, h3, SOCKS5} per origin, three-hop chains mixing all kinds, and
/// CONNECT-TCP over each version as every origin's single hop (an HTTP/3 origin's UDP then
/// takes CONNECT-UDP on the same proxy) and inside chains at every level.
pub fn full() -> Vec<Cell> {
    use HopKind::*;
    let kinds = [H1, H2, H3, Socks5];
    let mut cells = Vec::new();
    for o in [OriginKind::H1, OriginKind::H2, OriginKind::H3] {
        cells.push(cell(o, &[]));
        for k in kinds {
            cells.push(cell(o, &[k]));
        }
        cells.push(cell(o, &[H1s]));
        if o != OriginKind::H3 {
            cells.push(cell(o, &[Socks4a]));
        }
        for a in kinds {
            for b in kinds {
                cells.push(cell(o, &[a, b]));
            }
        }
    }
    for (o, hops) in [
        (OriginKind::H3, vec![H3, H3, H3]),
        (OriginKind::H3, vec![Socks5, H2, H3]),
        (OriginKind::H3, vec![H1, Socks5, H2]),
        (OriginKind::H2, vec![H3, H2, Socks5]),
        (OriginKind::H2, vec![Socks5, H1, H3]),
        (OriginKind::H1, vec![H2, Socks4a, H1]),
        (OriginKind::H1, vec![H3, H1, Socks5]),
        (OriginKind::H3, vec![H1s, H3, Socks5]),
    ] {
        cells.push(cell(o, &hops));
    }
    for o in [OriginKind::H1, OriginKind::H2, OriginKind::H3] {
        for k in [Tcp1, Tcp2, Tcp3] {
            cells.push(cell(o, &[k]));
        }
    }
    for (o, hops) in [
        (OriginKind::H2, vec![Tcp1, Tcp3]),
        (OriginKind::H1, vec![Tcp3, Tcp2]),
        (OriginKind::H2, vec![H2, Tcp1]),
        (OriginKind::H2, vec![Tcp2, Socks5]),
        (OriginKind::H1, vec![Socks5, Tcp3]),
        (OriginKind::H3, vec![Tcp3, H3]),
        (OriginKind::H2, vec![Tcp3, Tcp2, Tcp1]),
        (OriginKind::H1, vec![Socks5, Tcp3, H1]),
        (OriginKind::H3, vec![H3, Tcp2, H2]),
    ] {
        cells.push(cell(o, &hops));
    }
    cells
}

/// The CONNECT-IP cells, for a lab from [`Lab::start_ip`]: every origin over an IP tunnel
/// on HTTP/2 and on HTTP/3 (TCP for HTTP/1.1 and HTTP/2 origins, UDP for HTTP/3), and
/// CONNECT-IP inside chains.
pub fn connect_ip() -> Vec<Cell> {
    use HopKind::*;
    let mut cells = Vec::new();
    for o in [OriginKind::H1, OriginKind::H2, OriginKind::H3] {
        for k in [Ip2, Ip3] {
            cells.push(cell(o, &[k]));
        }
    }
    for (o, hops) in [
        (OriginKind::H2, vec![H2, Ip3]),
        (OriginKind::H3, vec![Socks5, Ip2]),
        (OriginKind::H1, vec![Ip3, H2]),
        (OriginKind::H3, vec![Ip2, H3]),
        (OriginKind::H2, vec![Tcp3, Ip2]),
        (OriginKind::H1, vec![Ip3, Ip2]),
    ] {
        cells.push(cell(o, &hops));
    }
    cells
}

/// A representative subset for the demo: every origin version direct and over every hop
/// kind, some two-hop chains, and three-hop chains.
pub fn representative() -> Vec<Cell> {
    use HopKind::*;
    let mut cells = Vec::new();
    for o in [OriginKind::H1, OriginKind::H2, OriginKind::H3] {
        for hops in [vec![], vec![H1], vec![H2], vec![H3], vec![Socks5]] {
            cells.push(cell(o, &hops));
        }
    }
    cells.push(cell(OriginKind::H1, &[Socks4a]));
    cells.push(cell(OriginKind::H2, &[H1s]));
    cells.push(cell(OriginKind::H2, &[H3, H1]));
    cells.push(cell(OriginKind::H3, &[H2, Socks5]));
    cells.push(cell(OriginKind::H3, &[H3, H3, H3]));
    cells.push(cell(OriginKind::H2, &[Socks5, H2, H3]));
    cells.push(cell(OriginKind::H1, &[H3, H1, Socks5]));
    cells.push(cell(OriginKind::H2, &[Tcp3]));
    cells.push(cell(OriginKind::H1, &[Tcp2, Tcp1]));
    cells
}
