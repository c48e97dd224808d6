//! Connecting, sending, and streaming the answer out.

use std::io::Write as _;
use std::time::Duration;

use std::sync::Arc;

use burrow_http1::Http1;
use burrow_http2::Http2;
use burrow_http3::Http3;
use burrow_http_core::{Client, VersionPolicy};
use burrow_proxy::route::{Route, RouteOptions};
use burrow_transport::{TcpConfig, TlsConfig};
use http::{Request, Response, Version};

use super::exit::{self, Exit};
use super::request::{body, headers, method, parse_url};
use super::Args;

fn secs(s: f64, what: &str) -> Result<Duration, Exit> {
    Duration::try_from_secs_f64(s)
        .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad {what} {s}")))
}

/// Runs one transfer as described by `args`.
pub async fn run(args: Args) -> Result<(), Exit> {
    let max_time = args.max_time.map(|s| secs(s, "--max-time")).transpose()?;
    let fut = transfer(&args);
    match max_time {
        Some(d) => tokio::time::timeout(d, fut).await.map_err(|_| {
            Exit::new(
                exit::OPERATION_TIMEDOUT,
                format!("Operation timed out after {} milliseconds", d.as_millis()),
            )
        })?,
        None => fut.await,
    }
}

struct Verbose(bool);

impl Verbose {
    fn line(&self, prefix: &str, s: impl AsRef<str>) {
        if self.0 {
            eprintln!("{prefix} {}", s.as_ref());
        }
    }
}

fn client(args: &Args, uri: &http::Uri) -> Result<Client, Exit> {
    let mut tcp = TcpConfig::default();
    // Without --connect-timeout, TcpConfig's default deadline applies (a black-holed
    // address fails in 30 s, not whenever the kernel gives up).
    if let Some(s) = args.connect_timeout {
        tcp.connect_timeout(Some(secs(s, "--connect-timeout")?));
    }
    let mut t = TlsConfig::default();
    t.insecure(args.insecure);
    if let Some(ca) = &args.cacert {
        t.add_root_pem_file(ca)
            .map_err(|e| Exit::new(exit::SSL_CACERT_BADFILE, e.to_string()))?;
    }
    let policy = if args.http3_only {
        VersionPolicy::Http3Only
    } else if args.http3 {
        VersionPolicy::Http3
    } else if args.http1_1 {
        VersionPolicy::Http1Only
    } else if args.http2_prior_knowledge {
        VersionPolicy::Http2PriorKnowledge
    } else {
        // `--http2` asks for what is already the default: h2 over TLS when the server agrees.
        VersionPolicy::PreferHttp2
    };
    let mut proxy_tls = TlsConfig::default();
    proxy_tls.insecure(args.proxy_insecure);
    if let Some(ca) = &args.proxy_cacert {
        proxy_tls
            .add_root_pem_file(ca)
            .map_err(|e| Exit::new(exit::SSL_CACERT_BADFILE, e.to_string()))?;
    }
    let mut proxy_headers = http::HeaderMap::new();
    for line in &args.proxy_header {
        let (n, v) = line
            .split_once(':')
            .ok_or_else(|| Exit::new(exit::FAILED_INIT, format!("bad proxy header {line:?}")))?;
        let n = http::HeaderName::from_bytes(n.trim().as_bytes())
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad proxy header {line:?}")))?;
        let v = http::HeaderValue::from_str(v.trim())
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad proxy header {line:?}")))?;
        proxy_headers.append(n, v);
    }
    let udp_template = match &args.proxy_udp_template {
        Some(t) => burrow_proxy::template::UdpTemplate::parse(t)
            .map_err(|e| Exit::new(exit::FAILED_INIT, e.to_string()))?,
        None => Default::default(),
    };
    let options = RouteOptions {
        tcp,
        proxy_tls,
        proxy_headers,
        udp_template,
        ..RouteOptions::default()
    };
    let hops = super::proxies::hops(args, uri)?;
    let route = Route::build(&hops, &options);
    let mut b = Client::builder();
    b.protocol(Arc::new(Http1::default()))
        .protocol(Arc::new(Http2::default()))
        .datagram_protocol(Arc::new(Http3::default()))
        .connector(route.stream)
        .datagram_connector(route.datagram)
        .tls(t)
        .version_policy(policy);
    b.build().map_err(Exit::from)
}

fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

async fn transfer(args: &Args) -> Result<(), Exit> {
    let uri = parse_url(&args.url)?;
    let method = method(args)?;
    let headers = headers(args)?;
    let body = body(args).await?;
    let v = Verbose(args.verbose);
    let client = client(args, &uri)?;
    let connect = client.connection_for(&uri);
    let timeout = args
        .connect_timeout
        .map(|s| secs(s, "--connect-timeout"))
        .transpose()?;
    let (conn, _key) = match timeout {
        Some(d) => tokio::time::timeout(d, connect).await.map_err(|_| {
            Exit::new(
                exit::OPERATION_TIMEDOUT,
                format!("Connection timed out after {} milliseconds", d.as_millis()),
            )
        })?,
        None => connect.await,
    }
    .map_err(Exit::from)?;
    let info = conn.info();
    if let Some(a) = info.peer_addr {
        v.line(
            "*",
            format!(
                "Connected to {} ({}) port {}",
                uri.host().unwrap_or(""),
                a.ip(),
                a.port()
            ),
        );
    }
    if let Some(alpn) = &info.alpn {
        v.line(
            "*",
            format!("ALPN: server accepted {}", String::from_utf8_lossy(alpn)),
        );
    }
    let version = version_str(conn.version());
    let proto = match conn.version() {
        Version::HTTP_3 => "h3",
        Version::HTTP_2 => "h2",
        _ => "http/1.1",
    };
    v.line("*", format!("route: {proto} > {}", info.route));
    let mut req = Request::builder()
        .method(method.clone())
        .uri(uri.clone())
        .body(body)
        .map_err(|e| Exit::new(exit::FAILED_INIT, e.to_string()))?;
    *req.headers_mut() = headers;
    // user:password@ in the URL becomes Authorization: Basic, as curl does; it is never
    // sent in Host or :authority, nor printed.
    burrow_http_core::target::userinfo_to_authorization(&mut req);
    if v.0 {
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        v.line(">", format!("{method} {pq} {version}"));
        if let Some(a) = burrow_http_core::target::host_header(&uri) {
            v.line(">", format!("host: {a}"));
        }
        for (k, val) in req.headers() {
            v.line(">", format!("{k}: {}", shown(k, val)));
        }
        v.line(">", "");
    }
    let origin = burrow_transport::Hop {
        index: None,
        label: burrow_http_core::target::authority(&uri).unwrap_or_default(),
    };
    let resp = conn
        .send_request(req)
        .await
        .map_err(|e| Exit::from(e.at_hop(origin.clone())))?;
    output(args, &v, resp, origin).await?;
    // Tell the server (or the proxy carrying the connection) we are done, as curl does,
    // rather than leaving it to time the connection out after we exit.
    conn.shutdown().await;
    Ok(())
}

/// A header value as `-v` shows it: credentials are redacted to their scheme.
fn shown(name: &http::HeaderName, value: &http::HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    if name == http::header::AUTHORIZATION || name == http::header::PROXY_AUTHORIZATION {
        let scheme = text.split_whitespace().next().unwrap_or("");
        return format!("{scheme} ***");
    }
    text.into_owned()
}

fn head_text(resp: &Response<burrow_http_core::Body>) -> String {
    let version = version_str(resp.version());
    let status = resp.status();
    // HTTP/2 and HTTP/3 have no reason phrase; curl prints none either.
    let mut s = if resp.version() >= Version::HTTP_2 {
        format!("{version} {}\r\n", status.as_str())
    } else {
        format!(
            "{version} {} {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or("")
        )
    };
    for (k, val) in resp.headers() {
        s.push_str(&format!(
            "{k}: {}\r\n",
            String::from_utf8_lossy(val.as_bytes())
        ));
    }
    s.push_str("\r\n");
    s
}

async fn output(
    args: &Args,
    v: &Verbose,
    resp: Response<burrow_http_core::Body>,
    origin: burrow_transport::Hop,
) -> Result<(), Exit> {
    let head = head_text(&resp);
    if v.0 {
        for line in head.trim_end().split("\r\n") {
            v.line("<", line);
        }
        v.line("<", "");
    }
    if args.fail && resp.status().as_u16() >= 400 {
        return Err(Exit::new(
            exit::HTTP_RETURNED_ERROR,
            format!(
                "The requested URL returned error: {}",
                resp.status().as_u16()
            ),
        ));
    }
    // Plain blocking writes: the CLI runs on a current-thread runtime with one connection, so
    // a write that blocks is the back-pressure we want; tokio's async file and stdout would
    // hand every chunk to the blocking pool instead (a thread hop per chunk).
    let mut out: Box<dyn std::io::Write + Send> = match &args.output {
        Some(p) => Box::new(std::fs::File::create(p).map_err(|e| {
            Exit::new(
                exit::WRITE_ERROR,
                format!("cannot create {}: {e}", p.display()),
            )
        })?),
        None => Box::new(std::io::stdout()),
    };
    let werr = |e: std::io::Error| Exit::new(exit::WRITE_ERROR, format!("write failed: {e}"));
    let mut write = |b: &[u8]| out.write_all(b);
    if args.include || args.head {
        write(head.as_bytes()).map_err(werr)?;
    }
    let mut body = resp.into_body();
    let mut total = 0u64;
    while let Some(chunk) = body.chunk().await {
        let chunk = chunk.map_err(|e| {
            // A failure no hop claimed is the origin's.
            let mut x = Exit::from(e.at_hop(origin.clone()));
            x.message = format!("{} after {total} bytes", x.message);
            x
        })?;
        total += chunk.len() as u64;
        write(&chunk).map_err(werr)?;
    }
    out.flush().map_err(werr)?;
    if v.0 {
        v.line("*", format!("received {total} body bytes"));
        let _ = std::io::stderr().flush();
    }
    Ok(())
}
