//! Prometheus metrics (the text exposition format, by `prometheus-client`), served on
//! `GET /metrics`: requests and tunnels active and in total, bytes, refusals by
//! Proxy-Status reason, upstream errors, clients, and latency histograms.
//!
//! | metric | kind | labels |
//! |---|---|---|
//! | `burrow_proxy_requests_total` | counter | `status` |
//! | `burrow_proxy_tunnels_total` | counter | `kind` |
//! | `burrow_proxy_requests_active`, `burrow_proxy_tunnels_active` | gauge | |
//! | `burrow_proxy_clients_active` | gauge | |
//! | `burrow_proxy_bytes_total` | counter | `direction` (`up`, `down`) |
//! | `burrow_proxy_refusals_total` | counter | `reason` (Proxy-Status error) |
//! | `burrow_proxy_upstream_errors_total` | counter | `reason` |
//! | `burrow_proxy_request_duration_seconds` | histogram | |
//! | `burrow_proxy_upstream_latency_seconds` | histogram | (to the response head or the tunnel's acceptance) |
//! | `burrow_proxy_tunnel_duration_seconds` | histogram | |

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use burrow_http_core::{Body, ServerConnection};
use burrow_transport::Error;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::lock;

use super::super::hooks::{End, Flow, HookResult, Hooks, Request, Summary, Tunnel, Verdict, What};

type Labels = Vec<(String, String)>;

/// Most connections the metrics endpoint serves at once.
pub const MAX_METRICS_CONNECTIONS: usize = 16;

/// The proxy's metrics, as a hook.
pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    tunnels: Family<Labels, Counter>,
    requests_active: Gauge,
    tunnels_active: Gauge,
    clients_active: Gauge,
    bytes: Family<Labels, Counter>,
    refusals: Family<Labels, Counter>,
    upstream_errors: Family<Labels, Counter>,
    request_duration: Histogram,
    upstream_latency: Histogram,
    tunnel_duration: Histogram,
    /// Flows counted as active, so that each is uncounted once.
    active: Mutex<HashSet<u64>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

fn label(k: &str, v: impl Into<String>) -> Labels {
    vec![(k.to_string(), v.into())]
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Fresh metrics, all zero.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("burrow_proxy");
        let m = Metrics {
            requests: Family::default(),
            tunnels: Family::default(),
            requests_active: Gauge::default(),
            tunnels_active: Gauge::default(),
            clients_active: Gauge::default(),
            bytes: Family::default(),
            refusals: Family::default(),
            upstream_errors: Family::default(),
            // 1 ms to about 65 s.
            request_duration: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            upstream_latency: Histogram::new(exponential_buckets(0.001, 2.0, 17)),
            tunnel_duration: Histogram::new(exponential_buckets(0.01, 2.0, 17)),
            active: Mutex::default(),
            registry: Registry::default(),
        };
        let r = &mut registry;
        r.register(
            "requests",
            "Requests that ended, by status",
            m.requests.clone(),
        );
        r.register("tunnels", "Tunnels that ended, by kind", m.tunnels.clone());
        r.register(
            "requests_active",
            "Requests in progress",
            m.requests_active.clone(),
        );
        r.register("tunnels_active", "Tunnels open", m.tunnels_active.clone());
        r.register(
            "clients_active",
            "Client connections open",
            m.clients_active.clone(),
        );
        r.register("bytes", "Bytes relayed, by direction", m.bytes.clone());
        r.register(
            "refusals",
            "Refusals, by Proxy-Status error",
            m.refusals.clone(),
        );
        r.register(
            "upstream_errors",
            "Targets or origins that failed, by Proxy-Status error",
            m.upstream_errors.clone(),
        );
        r.register(
            "request_duration_seconds",
            "Forwarded requests, arrival to the end of the response",
            m.request_duration.clone(),
        );
        r.register(
            "upstream_latency_seconds",
            "Arrival to the origin's response head or the tunnel's acceptance",
            m.upstream_latency.clone(),
        );
        r.register(
            "tunnel_duration_seconds",
            "Tunnels, arrival to close",
            m.tunnel_duration.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }

    /// Serves `GET /metrics` on `addr` (HTTP/1.1) until the task is dropped; returns the
    /// bound address.
    pub async fn serve(
        self: Arc<Self>,
        addr: SocketAddr,
    ) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), Error> {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::local_io(format!("binding the metrics endpoint {addr}"), e))?;
        let bound = l
            .local_addr()
            .map_err(|e| Error::local_io("local address", e))?;
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_METRICS_CONNECTIONS));
        let task = tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                let m = self.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let mut c = burrow_http1::Http1Config::default();
                    c.head_timeout(Some(std::time::Duration::from_secs(10)))
                        .idle_timeout(Some(std::time::Duration::from_secs(30)));
                    let Ok(mut srv) = burrow_http1::serve(Box::new(s), &c).await else {
                        return;
                    };
                    while let Some(Ok(sr)) = srv.accept().await {
                        let ok = sr.request.method() == http::Method::GET
                            && sr.request.uri().path() == "/metrics";
                        let mut resp = match ok {
                            true => http::Response::new(Body::from(m.render())),
                            false => {
                                let mut r = http::Response::new(Body::from("not found\n"));
                                *r.status_mut() = http::StatusCode::NOT_FOUND;
                                r
                            }
                        };
                        resp.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "text/plain; version=0.0.4; charset=utf-8",
                            ),
                        );
                        if sr.respond.send_response(resp).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok((bound, task))
    }

    fn start(&self, flow: &Flow, g: &Gauge) {
        if lock(&self.active).insert(flow.id) {
            g.inc();
        }
    }

    fn end(&self, flow: &Flow, s: &Summary) {
        let tunnel = matches!(s.what, What::Tunnel(_));
        if lock(&self.active).remove(&flow.id) {
            match tunnel {
                true => self.tunnels_active.dec(),
                false => self.requests_active.dec(),
            };
        }
        self.bytes
            .get_or_create(&label("direction", "up"))
            .inc_by(s.bytes_up);
        self.bytes
            .get_or_create(&label("direction", "down"))
            .inc_by(s.bytes_down);
        let reason = s.error.clone().unwrap_or_else(|| "none".into());
        match s.end {
            End::Refused => {
                self.refusals.get_or_create(&label("reason", reason)).inc();
            }
            End::Failed => {
                self.upstream_errors
                    .get_or_create(&label("reason", reason))
                    .inc();
            }
            _ => {}
        }
        if let Some(l) = s.latency {
            self.upstream_latency.observe(l.as_secs_f64());
        }
        match &s.what {
            What::Tunnel(k) => {
                self.tunnels.get_or_create(&label("kind", k.as_str())).inc();
                self.tunnel_duration.observe(s.duration.as_secs_f64());
            }
            What::Request { .. } => {
                let status = match s.status {
                    Some(c) => c.as_u16().to_string(),
                    None => "none".into(),
                };
                self.requests.get_or_create(&label("status", status)).inc();
                if s.end == End::Completed {
                    self.request_duration.observe(s.duration.as_secs_f64());
                }
            }
        }
    }
}

#[async_trait]
impl Hooks for Metrics {
    fn name(&self) -> &str {
        "metrics"
    }

    async fn client_connected(&self, _client: SocketAddr) -> HookResult {
        self.clients_active.inc();
        Ok(Verdict::Continue)
    }

    async fn client_closed(&self, _client: SocketAddr) {
        self.clients_active.dec();
    }

    async fn request_headers(&self, flow: &Flow, _r: &mut Request) -> HookResult {
        self.start(flow, &self.requests_active);
        Ok(Verdict::Continue)
    }

    async fn tunnel_requested(&self, flow: &Flow, _t: &mut Tunnel) -> HookResult {
        self.start(flow, &self.tunnels_active);
        Ok(Verdict::Continue)
    }

    async fn request_closed(&self, flow: &Flow, s: &Summary) {
        self.end(flow, s);
    }

    async fn tunnel_closed(&self, flow: &Flow, s: &Summary) {
        self.end(flow, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hooks::TunnelKind;
    use std::time::Duration;

    fn flow(id: u64) -> Flow {
        Flow {
            id,
            client: "127.0.0.1:1".parse().unwrap(),
            user: None,
            version: Some(http::Version::HTTP_11),
        }
    }

    fn summary(what: What, end: End, error: Option<&str>) -> Summary {
        Summary {
            what,
            target: None,
            route: "direct".into(),
            user: None,
            upstream_version: None,
            status: Some(http::StatusCode::OK),
            socks_reply: None,
            error: error.map(String::from),
            bytes_up: 10,
            bytes_down: 100,
            duration: Duration::from_millis(5),
            latency: Some(Duration::from_millis(2)),
            end,
        }
    }

    #[tokio::test]
    async fn figures_follow_the_flows() {
        let m = Metrics::new();
        let get = What::Request {
            method: http::Method::GET,
            uri: "http://a/".parse().unwrap(),
        };
        let tunnel = What::Tunnel(TunnelKind::Connect);
        let mut t = Tunnel {
            kind: TunnelKind::Connect,
            target: "a:1".parse().unwrap(),
            route: None,
        };
        m.tunnel_requested(&flow(1), &mut t).await.unwrap();
        m.tunnel_requested(&flow(2), &mut t).await.unwrap();
        let text = m.render();
        assert!(text.contains("burrow_proxy_tunnels_active 2\n"), "{text}");
        m.tunnel_closed(&flow(1), &summary(tunnel.clone(), End::Completed, None))
            .await;
        m.request_closed(&flow(3), &summary(get, End::Completed, None))
            .await;
        let mut refused = summary(tunnel, End::Refused, Some("destination_ip_prohibited"));
        refused.bytes_up = 0;
        refused.bytes_down = 0;
        m.tunnel_closed(&flow(2), &refused).await;
        // A flow closed twice (or never counted) does not take the gauge below zero.
        m.tunnel_closed(&flow(2), &refused).await;
        let text = m.render();
        for want in [
            "burrow_proxy_tunnels_active 0\n",
            "burrow_proxy_tunnels_total{kind=\"CONNECT\"} 3\n",
            "burrow_proxy_requests_total{status=\"200\"} 1\n",
            "burrow_proxy_bytes_total{direction=\"up\"} 20\n",
            "burrow_proxy_bytes_total{direction=\"down\"} 200\n",
            "burrow_proxy_refusals_total{reason=\"destination_ip_prohibited\"} 2\n",
            "burrow_proxy_request_duration_seconds_count 1\n",
            "burrow_proxy_upstream_latency_seconds_count 4\n",
        ] {
            assert!(text.contains(want), "{want:?} not in\n{text}");
        }
    }

    #[tokio::test]
    async fn the_endpoint_serves_metrics_and_nothing_else() {
        let m = Arc::new(Metrics::new());
        let (addr, _task) = m
            .clone()
            .serve("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            let req = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        let ok = get("/metrics").await;
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        assert!(
            ok.contains("# TYPE burrow_proxy_tunnels_active gauge"),
            "{ok}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
    }

    #[tokio::test]
    async fn the_endpoint_serves_at_most_max_metrics_connections_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let m = Arc::new(Metrics::new());
        let (addr, _task) = m.serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut idle = Vec::new();
        for _ in 0..MAX_METRICS_CONNECTIONS {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        // Held connections are not served yet; let the accept loop take them all.
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut over = tokio::net::TcpStream::connect(addr).await.unwrap();
        let _ = over
            .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
            .await;
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(std::time::Duration::from_secs(5), over.read(&mut b))
            .await
            .unwrap();
        assert!(matches!(n, Ok(0) | Err(_)), "served past the cap");
        // One closes: the next is served.
        drop(idle.pop());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    }
}
