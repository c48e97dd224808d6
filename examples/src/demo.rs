//! The demo: starts in-process origins on loopback and fetches through a set of routes,
//! printing a table of route, version, bytes, time and whether the body was byte-exact.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http1::io::handshake;
use burrow_http1::proto::Limits;
use burrow_http_core::{Body, ConnectionInfo, HttpConnection};
use burrow_transport::{
    Error, ErrorKind, Roots, StreamConnector, Target, TcpConnector, TlsConfig, TlsStreamConnector,
};
use http::Request;

use crate::origin::{self, pattern_byte, Origin};
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
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("body differs at byte {}", off + i as u64),
                ));
            }
        }
        off += chunk.len() as u64;
    }
    if off != expect {
        return Err(Error::new(
            ErrorKind::Protocol,
            format!("body is {off} bytes, expected {expect}"),
        ));
    }
    Ok(off)
}

async fn fetch(
    connector: &dyn StreamConnector,
    target: &Target,
    scheme: &str,
    paths: &[(String, u64)],
) -> Result<(String, u64), Error> {
    let c = connector.connect(target).await?;
    let route = c.info.route();
    let info = ConnectionInfo {
        peer_addr: c.info.peer_addr,
        alpn: c.info.alpn.clone(),
        route: route.clone(),
    };
    let conn = handshake(c.stream, info, Limits::default());
    let mut total = 0;
    for (path, n) in paths {
        let req = Request::get(format!("{scheme}://{target}{path}"))
            .body(Body::empty())
            .map_err(|e| Error::new(ErrorKind::InvalidInput, e.to_string()))?;
        let resp = conn.send_request(req).await?;
        if !resp.status().is_success() {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("status {}", resp.status()),
            ));
        }
        total += check_pattern(resp.into_body(), *n).await?;
    }
    Ok((route, total))
}

/// One route to try: a label, the connector, the origin, the scheme and the paths to fetch.
type Cell<'a> = (
    &'static str,
    Arc<dyn StreamConnector>,
    &'a Origin,
    &'static str,
    Vec<(String, u64)>,
);

/// Runs the demo and returns the rows (the binary prints them).
pub async fn run() -> Result<Vec<Row>, Error> {
    let pki = TestPki::generate(&[])
        .map_err(|e| Error::new(ErrorKind::Tls, format!("generating test PKI: {e}")))?;
    let server_tls =
        burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), &[b"http/1.1"])?;
    let io = |e: std::io::Error| Error::io("starting origin", e);
    let plain: Origin = origin::start(origin::http1(), None).await.map_err(io)?;
    let tls: Origin = origin::start(origin::http1(), Some(server_tls))
        .await
        .map_err(io)?;
    let mut tls_cfg = TlsConfig::default();
    tls_cfg.roots(Roots::None).add_root_der(pki.ca_der.clone());
    let tcp: Arc<dyn StreamConnector> = Arc::new(TcpConnector::default());
    let tls_conn: Arc<dyn StreamConnector> = Arc::new(TlsStreamConnector::new(
        TcpConnector::default(),
        tls_cfg.client_config(&[b"http/1.1"])?,
    ));
    const MIB: u64 = 1 << 20;
    let ten: Vec<(String, u64)> = (0..10)
        .map(|_| (format!("/bytes/{}", 100 * 1024), 100 * 1024))
        .collect();
    let cells: Vec<Cell<'_>> = vec![
        (
            "1 MiB",
            tcp.clone(),
            &plain,
            "http",
            vec![(format!("/bytes/{MIB}"), MIB)],
        ),
        (
            "1 MiB chunked",
            tcp.clone(),
            &plain,
            "http",
            vec![(format!("/chunked/{MIB}"), MIB)],
        ),
        (
            "1 MiB",
            tls_conn.clone(),
            &tls,
            "https",
            vec![(format!("/bytes/{MIB}"), MIB)],
        ),
        (
            "1 MiB chunked",
            tls_conn.clone(),
            &tls,
            "https",
            vec![(format!("/chunked/{MIB}"), MIB)],
        ),
        (
            "0 B",
            tls_conn.clone(),
            &tls,
            "https",
            vec![("/bytes/0".into(), 0)],
        ),
        ("10 requests, 1 conn", tls_conn.clone(), &tls, "https", ten),
    ];
    let mut rows = Vec::new();
    for (what, connector, origin, scheme, paths) in cells {
        let target = Target::new(
            burrow_transport::Host::Name("localhost".into()),
            origin.addr.port(),
        );
        let before = origin.stats.connections.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let r = tokio::time::timeout(
            Duration::from_secs(20),
            fetch(&*connector, &target, scheme, &paths),
        )
        .await
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                "cell deadline (20 s) passed",
            ))
        });
        let time = t0.elapsed();
        let conns = origin.stats.connections.load(Ordering::Relaxed) - before;
        let (route, bytes, result) = match r {
            Ok((route, bytes)) if conns == 1 => (route, bytes, Ok(())),
            Ok((route, bytes)) => (route, bytes, Err(format!("used {conns} connections"))),
            Err(e) => (connector.describe(), 0, Err(e.to_string())),
        };
        rows.push(Row {
            route: format!("{what}: {route}"),
            version: "HTTP/1.1".into(),
            bytes,
            time,
            result,
        });
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
