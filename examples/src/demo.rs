//! The demo: starts in-process origins on loopback and fetches through a set of routes,
//! printing a table of route, version, bytes, time and whether the body was byte-exact.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http1::Http1;
use burrow_http2::Http2;
use burrow_http3::Http3;
use burrow_http_core::{Body, Client, VersionPolicy};
use burrow_transport::{Error, ErrorKind, Roots, TlsConfig};
use http::{Request, Version};

use crate::origin::{self, pattern_byte, Origin, Versions};
use crate::pki::TestPki;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// The route, outermost layer first.
    pub route: String,
    /// HTTP version used to the origin.
    pub version: String,
    /// Body bytes received.
    pub bytes: u64,
    /// Wall time of the fetch.
    pub time: Duration,
    /// `ok`, or the error.
    pub result: Result<(), String>,
}

/// Reads a body and checks it against the test pattern; returns its length.
pub async fn check_pattern(mut body: Body, expect: u64) -> Result<u64, Error> {
    let mut off = 0u64;
    while let Some(chunk) = body.chunk().await {
        let chunk = chunk?;
        for (i, b) in chunk.iter().enumerate() {
            if *b != pattern_byte(off + i as u64) {
                return Err(Error::protocol(format!(
                    "body differs at byte {}",
                    off + i as u64
                )));
            }
        }
        off += chunk.len() as u64;
    }
    if off != expect {
        return Err(Error::protocol(format!(
            "body is {off} bytes, expected {expect}"
        )));
    }
    Ok(off)
}

/// What one cell fetches: `requests` GETs of `path` (expecting `size` pattern bytes each),
/// `parallel` at a time.
struct Work {
    what: &'static str,
    path: String,
    size: u64,
    requests: usize,
    parallel: bool,
}

fn work(what: &'static str, path: &str, size: u64, requests: usize, parallel: bool) -> Work {
    Work {
        what,
        path: path.to_string(),
        size,
        requests,
        parallel,
    }
}

async fn get(client: &Client, url: &str, size: u64) -> Result<(u64, Version), Error> {
    let req = Request::get(url)
        .body(Body::empty())
        .map_err(|e| Error::invalid_input(e.to_string()))?;
    let resp = client.request(req).await?;
    if !resp.status().is_success() {
        return Err(Error::protocol(format!("status {}", resp.status())));
    }
    let v = resp.version();
    Ok((check_pattern(resp.into_body(), size).await?, v))
}

async fn fetch(client: &Client, base: &str, w: &Work) -> Result<(u64, Version), Error> {
    let url = format!("{base}{}", w.path);
    let mut total = 0;
    let mut version = Version::HTTP_11;
    if w.parallel {
        let mut tasks = Vec::new();
        for _ in 0..w.requests {
            let (c, u, n) = (client.clone(), url.clone(), w.size);
            tasks.push(tokio::spawn(async move { get(&c, &u, n).await }));
        }
        for t in tasks {
            let (n, v) = t
                .await
                .map_err(|e| Error::local(ErrorKind::Cancelled, e.to_string()))??;
            total += n;
            version = v;
        }
    } else {
        for _ in 0..w.requests {
            let (n, v) = get(client, &url, w.size).await?;
            total += n;
            version = v;
        }
    }
    Ok((total, version))
}

fn client(policy: VersionPolicy, tls: &TlsConfig) -> Result<Client, Error> {
    let mut b = Client::builder();
    b.protocol(Arc::new(Http1::default()))
        .protocol(Arc::new(Http2::default()))
        .datagram_protocol(Arc::new(Http3::default()))
        .tls(tls.clone())
        .version_policy(policy);
    b.build()
}

/// Runs the demo and returns the rows (the binary prints them).
pub async fn run() -> Result<Vec<Row>, Error> {
    let pki = TestPki::generate(&[])
        .map_err(|e| Error::peer(ErrorKind::Tls, format!("generating test PKI: {e}")))?;
    let server_tls = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(Versions::Negotiate),
    )?;
    let io = |e: std::io::Error| Error::local_io("starting origin", e);
    let plain1 = origin::start(Versions::Http1, None).await.map_err(io)?;
    let plain2 = origin::start(Versions::Http2, None).await.map_err(io)?;
    let tls = origin::start(Versions::Negotiate, Some(server_tls))
        .await
        .map_err(io)?;
    let h3_tls = burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), &[b"h3"])?;
    let h3 = origin::start_h3(h3_tls, 0).await?;
    let mut tls_cfg = TlsConfig::default();
    tls_cfg.roots(Roots::None).add_root_der(pki.ca_der.clone());
    const MIB: u64 = 1 << 20;
    let works = || {
        vec![
            work("1 MiB", &format!("/bytes/{MIB}"), MIB, 1, false),
            work("1 MiB chunked", &format!("/chunked/{MIB}"), MIB, 1, false),
            work("0 B", "/bytes/0", 0, 1, false),
            work("10 sequential", "/bytes/102400", 100 * 1024, 10, false),
        ]
    };
    let mut rows = Vec::new();
    let routes: Vec<(VersionPolicy, &Origin, &str, &str)> = vec![
        (VersionPolicy::Http1Only, &plain1, "http", "tcp"),
        (VersionPolicy::Http1Only, &tls, "https", "tls > tcp"),
        (VersionPolicy::Http2PriorKnowledge, &plain2, "http", "tcp"),
        (VersionPolicy::PreferHttp2, &tls, "https", "tls > tcp"),
        (VersionPolicy::Http3Only, &h3, "https", "quic > udp"),
    ];
    for (policy, origin, scheme, route) in routes {
        let mut ws = works();
        if policy == VersionPolicy::Http3Only {
            // An HTTP/3 body has no chunked form; show a larger transfer instead.
            ws.retain(|w| w.what != "1 MiB chunked");
            ws.push(work(
                "16 MiB",
                &format!("/bytes/{}", 16 * MIB),
                16 * MIB,
                1,
                false,
            ));
        }
        if policy != VersionPolicy::Http1Only {
            ws.push(work("100 concurrent", "/bytes/65536", 65536, 100, true));
        }
        for w in ws {
            // A fresh client per cell, so each cell shows its own connection count.
            let c = client(policy, &tls_cfg)?;
            let base = format!("{scheme}://localhost:{}", origin.addr.port());
            let before = origin.stats.connections.load(Ordering::Relaxed);
            let t0 = Instant::now();
            let r = tokio::time::timeout(Duration::from_secs(20), fetch(&c, &base, &w))
                .await
                .unwrap_or_else(|_| Err(Error::peer_timeout("cell deadline (20 s) passed")));
            let time = t0.elapsed();
            let conns = origin.stats.connections.load(Ordering::Relaxed) - before;
            let (bytes, version, result) = match r {
                Ok((b, v)) if conns == 1 => (b, v, Ok(())),
                Ok((b, v)) => (b, v, Err(format!("used {conns} connections, expected 1"))),
                Err(e) => (0, Version::HTTP_11, Err(e.to_string())),
            };
            rows.push(Row {
                route: format!("{}: {route}", w.what),
                version: match version {
                    Version::HTTP_2 => "HTTP/2",
                    Version::HTTP_3 => "HTTP/3",
                    _ => "HTTP/1.1",
                }
                .into(),
                bytes,
                time,
                result,
            });
        }
    }
    Ok(rows)
}

/// Renders rows as a text table.
pub fn table(rows: &[Row]) -> String {
    let w = rows.iter().map(|r| r.route.len()).max().unwrap_or(5).max(5);
    let mut s = format!(
        "{:<w$}  {:<8}  {:>10}  {:>9}  {}\n",
        "route", "version", "bytes", "time", "ok"
    );
    s.push_str(&format!("{}\n", "-".repeat(w + 40)));
    for r in rows {
        let ok = match &r.result {
            Ok(()) => "ok".to_string(),
            Err(e) => format!("FAILED: {e}"),
        };
        s.push_str(&format!(
            "{:<w$}  {:<8}  {:>10}  {:>7.1}ms  {}\n",
            r.route,
            r.version,
            r.bytes,
            r.time.as_secs_f64() * 1000.0,
            ok
        ));
    }
    s
}
