//! burrow's side of the workloads that are not a single download: a request-rate load
//! generator, a holder of idle connections and a holder of tunnels. Each prints one line
//! of `key value` pairs that the driver parses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http1::Http1;
use burrow_http2::Http2;
use burrow_http3::Http3;
use burrow_http_core::{Body, Client, ConnectionInfo, HttpConnection, VersionPolicy};
use burrow_http_core::{DatagramProtocol, StreamProtocol};
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_transport::tls::TlsStreamConnector;
use burrow_transport::{
    DatagramConnector, StreamConnector, Target, TcpConnector, TlsConfig, UdpConnector,
};
use http::{Request, Uri};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Errors of the workloads, already worded for the terminal.
pub type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Most bytes a small response may have before the rate test calls it a mistake.
const SMALL_BODY_LIMIT: usize = 1 << 20;

fn tls(cacert: Option<&std::path::Path>) -> Result<TlsConfig, Failure> {
    let mut t = TlsConfig::default();
    if let Some(ca) = cacert {
        t.add_root_pem_file(ca)?;
    }
    Ok(t)
}

/// Resident set size of a process (`self` or a pid), in KiB, from `/proc`; `comm:NAME`
/// sums every process of that name (squid's helpers, dante's children).
pub fn rss_kib(pid: &str) -> Result<u64, Failure> {
    if let Some(name) = pid.strip_prefix("comm:") {
        let mut total = 0;
        for e in std::fs::read_dir("/proc")?.flatten() {
            let p = e.file_name().to_string_lossy().to_string();
            if !p.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let comm = std::fs::read_to_string(format!("/proc/{p}/comm")).unwrap_or_default();
            if comm.trim() == name {
                total += rss_kib(&p).unwrap_or(0);
            }
        }
        return Ok(total);
    }
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| format!("no VmRSS in /proc/{pid}/status").into())
}

/// A client for `version` ("1.1", "2" or "3") with at most `connections` per origin.
fn client(version: &str, connections: usize, t: TlsConfig) -> Result<Client, Failure> {
    let policy = match version {
        "1.1" => VersionPolicy::Http1Only,
        "2" => VersionPolicy::PreferHttp2,
        "3" => VersionPolicy::Http3Only,
        v => return Err(format!("unknown HTTP version {v}").into()),
    };
    let mut b = Client::builder();
    b.protocol(Arc::new(Http1::default()))
        .protocol(Arc::new(Http2::default()));
    if version == "3" {
        // Only here: an Alt-Svc from the server must not move an HTTP/2 run to HTTP/3.
        b.datagram_protocol(Arc::new(Http3::default()));
    }
    b.tls(t)
        .version_policy(policy)
        .max_connections_per_origin(connections);
    Ok(b.build()?)
}

async fn get(client: &Client, uri: &Uri, want: http::Version) -> Result<usize, Failure> {
    let req = Request::get(uri.clone()).body(Body::empty())?;
    let resp = client.request(req).await?;
    if !resp.status().is_success() {
        return Err(format!("status {}", resp.status()).into());
    }
    if resp.version() != want {
        return Err(format!("spoke {:?}, wanted {want:?}", resp.version()).into());
    }
    let body = resp.into_body().collect(SMALL_BODY_LIMIT).await?;
    Ok(body.data.len())
}

fn version_of(v: &str) -> http::Version {
    match v {
        "3" => http::Version::HTTP_3,
        "2" => http::Version::HTTP_2,
        _ => http::Version::HTTP_11,
    }
}

/// Keeps `concurrency` GETs of `url` in flight over at most `connections` connections for
/// `duration`, then prints `requests N secs S rate R connections C`.
pub async fn rate(
    url: &str,
    version: &str,
    connections: usize,
    concurrency: usize,
    duration: Duration,
    cacert: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let uri: Uri = url.parse()?;
    let want = version_of(version);
    let c = client(version, connections, tls(cacert)?)?;
    // Open every connection before the clock starts (HTTP/1.1 needs one per worker).
    let mut warm = Vec::new();
    for _ in 0..concurrency {
        let (c, uri) = (c.clone(), uri.clone());
        warm.push(tokio::spawn(async move { get(&c, &uri, want).await }));
    }
    for w in warm {
        w.await??;
    }
    let (c2, uri2) = (c.clone(), uri.clone());
    let (n, secs) = for_duration(concurrency, duration, move || {
        let (c, uri) = (c2.clone(), uri2.clone());
        async move { get(&c, &uri, want).await.map(drop) }
    })
    .await?;
    let conns = c.pooled_connections(&uri);
    if conns > connections {
        return Err(format!("used {conns} connections, allowed {connections}").into());
    }
    println!(
        "requests {n} secs {secs:.3} rate {:.1} connections {conns}",
        n as f64 / secs
    );
    Ok(())
}

/// Opens `n` connections to `url` with `version`, sends one request on each, holds them
/// all, and prints this process's RSS before and after (`watch`: another process's too).
pub async fn idle(
    url: &str,
    version: &str,
    n: usize,
    cacert: Option<&std::path::Path>,
    watch: Option<&str>,
) -> Result<(), Failure> {
    let uri: Uri = url.parse()?;
    let host = uri.host().ok_or("URL without host")?;
    let https = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let target = Target::new(burrow_transport::Host::parse(host)?, port);
    let t = tls(cacert)?;
    let want = version_of(version);
    let before = rss_kib("self")?;
    let watch_before = watch.map(rss_kib).transpose()?;
    let mut held: Vec<Arc<dyn HttpConnection>> = Vec::with_capacity(n);
    let alpn: &[u8] = if version == "2" { b"h2" } else { b"http/1.1" };
    let tls_config = t.client_config(&[alpn])?;
    for _ in 0..n {
        let info = |route: &str| ConnectionInfo {
            route: route.into(),
            ..ConnectionInfo::default()
        };
        let conn: Arc<dyn HttpConnection> = match (version, https) {
            ("3", _) => {
                let flow = UdpConnector::default().connect_datagram(&target).await?;
                Http3::default()
                    .handshake(flow, host, &t, info("quic > udp"))
                    .await?
            }
            (v, true) => {
                let p: Box<dyn StreamProtocol> = if v == "2" {
                    Box::new(Http2::default())
                } else {
                    Box::new(Http1::default())
                };
                let tcp = TlsStreamConnector::new(TcpConnector::default(), tls_config.clone());
                let c = tcp.connect(&target).await?;
                p.handshake(c.stream, info("tls > tcp")).await?
            }
            (v, false) => {
                let c = TcpConnector::default().connect(&target).await?;
                let p: Box<dyn StreamProtocol> = if v == "2" {
                    Box::new(Http2::default())
                } else {
                    Box::new(Http1::default())
                };
                p.handshake(c.stream, info("tcp")).await?
            }
        };
        let resp = conn
            .send_request(Request::get(uri.clone()).body(Body::empty())?)
            .await?;
        if resp.version() != want || !resp.status().is_success() {
            return Err(format!("got {:?} {}", resp.version(), resp.status()).into());
        }
        resp.into_body().collect(SMALL_BODY_LIMIT).await?;
        held.push(conn);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = held.iter().filter(|c| !c.is_closed()).count();
    let after = rss_kib("self")?;
    let mut line =
        format!("connections {open} client_kib_before {before} client_kib_after {after}");
    if let (Some(pid), Some(wb)) = (watch, watch_before) {
        line.push_str(&format!(
            " server_kib_before {wb} server_kib_after {}",
            rss_kib(pid)?
        ));
    }
    println!("{line}");
    if open != n {
        return Err(format!("only {open} of {n} connections stayed open").into());
    }
    Ok(())
}

/// A route through `proxies` and the target `HOST:PORT`.
fn route_to(
    proxies: &[String],
    target: &str,
    cacert: Option<&std::path::Path>,
) -> Result<(Route, Target), Failure> {
    let hops = proxies
        .iter()
        .map(|p| ProxyUrl::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let options = RouteOptions {
        proxy_tls: tls(cacert)?,
        ..Default::default()
    };
    let route = Route::build(&hops, &options);
    let (h, p) = target.rsplit_once(':').ok_or("target must be HOST:PORT")?;
    let target = Target::new(burrow_transport::Host::parse(h)?, p.parse()?);
    Ok((route, target))
}

/// Longest a tunnel's set-up and its one request may take before the workload fails.
const TUNNEL_DEADLINE: Duration = Duration::from_secs(30);

/// Opens a tunnel and carries one HTTP/1.1 GET of nginx's small file through it; with
/// `close`, asks the origin to close and reads to the end. All within [`TUNNEL_DEADLINE`].
async fn tunnel_get(
    route: &Route,
    target: &Target,
    close: bool,
) -> Result<burrow_transport::BoxStream, Failure> {
    tokio::time::timeout(TUNNEL_DEADLINE, tunnel_get_inner(route, target, close))
        .await
        .map_err(|_| format!("tunnel to {target} took over {TUNNEL_DEADLINE:?}"))?
}

async fn tunnel_get_inner(
    route: &Route,
    target: &Target,
    close: bool,
) -> Result<burrow_transport::BoxStream, Failure> {
    let mut s = route.stream.connect(target).await?.stream;
    let conn = if close { "Connection: close\r\n" } else { "" };
    let request = format!("GET /small.bin HTTP/1.1\r\nHost: {target}\r\n{conn}\r\n");
    s.write_all(request.as_bytes()).await?;
    let mut buf = vec![0u8; 4096];
    let mut got = s.read(&mut buf).await?;
    if !buf[..got].starts_with(b"HTTP/1.1 200") {
        return Err(format!(
            "tunnel answered {:?}",
            String::from_utf8_lossy(&buf[..got.min(40)])
        )
        .into());
    }
    if close {
        while got > 0 {
            got = s.read(&mut buf).await?;
        }
    }
    Ok(s)
}

/// Opens `n` tunnels through `proxies` to `target`, `concurrency` at a time, each carrying
/// one HTTP/1.1 request, holds them all, and prints the set-up rate and this process's RSS
/// before and after (`watch`: the proxy's too, a pid or `comm:NAME` for every process of
/// that name).
pub async fn tunnels(
    proxies: &[String],
    target: &str,
    n: usize,
    concurrency: usize,
    cacert: Option<&std::path::Path>,
    watch: Option<&str>,
) -> Result<(), Failure> {
    let (route, target) = route_to(proxies, target, cacert)?;
    let before = rss_kib("self")?;
    let watch_before = watch.map(rss_kib).transpose()?;
    let route = Arc::new(route);
    let held = Arc::new(std::sync::Mutex::new(Vec::with_capacity(n)));
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (route, target) = (route.clone(), target.clone());
        let (held, next) = (held.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < n as u64 {
                let s = tunnel_get(&route, &target, false).await?;
                held.lock().map_err(|_| "poisoned")?.push(s);
            }
            Ok::<(), Failure>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let setup = start.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = rss_kib("self")?;
    let count = held.lock().map_err(|_| "poisoned")?.len();
    let mut line = format!(
        "tunnels {count} setup_secs {setup:.3} setup_rate {:.1} client_kib_before {before} \
         client_kib_after {after}",
        count as f64 / setup
    );
    if let (Some(pid), Some(wb)) = (watch, watch_before) {
        line.push_str(&format!(
            " server_kib_before {wb} server_kib_after {}",
            rss_kib(pid)?
        ));
    }
    println!("{line}");
    Ok(())
}

/// For `duration`, `concurrency` workers each open a tunnel through `proxies` to
/// `target`, carry one GET (`Connection: close`) and drop it, again and again; prints
/// `requests N secs S rate R` (tunnel set-ups per second).
pub async fn connect_rate(
    proxies: &[String],
    target: &str,
    concurrency: usize,
    duration: Duration,
    cacert: Option<&std::path::Path>,
) -> Result<(), Failure> {
    let (route, target) = route_to(proxies, target, cacert)?;
    let route = Arc::new(route);
    // One set-up before the clock starts (an HTTP/2 or HTTP/3 proxy connection).
    drop(tunnel_get(&route, &target, true).await?);
    let (n, secs) = for_duration(concurrency, duration, move || {
        let (route, target) = (route.clone(), target.clone());
        async move { tunnel_get(&route, &target, true).await.map(drop) }
    })
    .await?;
    println!("requests {n} secs {secs:.3} rate {:.1}", n as f64 / secs);
    Ok(())
}

/// Runs `concurrency` workers (at least one), each repeating the operation `op` makes
/// until `duration` has passed; the operations completed and the seconds taken.
async fn for_duration<F, Fut>(
    concurrency: usize,
    duration: Duration,
    op: F,
) -> Result<(u64, f64), Failure>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), Failure>> + Send + 'static,
{
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let end = start + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency.max(1) {
        let (done, op) = (done.clone(), op.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < end {
                op().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<(), Failure>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((done.load(Ordering::Relaxed), start.elapsed().as_secs_f64()))
}
