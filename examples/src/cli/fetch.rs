//! Connecting, sending, and streaming the answer out.

use std::io::Write as _;
use std::time::Duration;

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

/// The library's client, set up as the options say: the CLI has no transport code of its
/// own. Proxies are verified with `--proxy-cacert` (or the system's trust), never with
/// `--cacert`, as in curl; redirects are not followed and bodies arrive as sent.
fn client(args: &Args, uri: &http::Uri) -> Result<burrow::Client, Exit> {
    let bad_ca = |e: burrow::Error| Exit::new(exit::SSL_CACERT_BADFILE, e.to_string());
    let init = |e: burrow::Error| Exit::new(exit::FAILED_INIT, e.to_string());
    let mut b = burrow::Client::builder()
        .redirect(burrow::RedirectPolicy::none())
        .decompress(false)
        .danger_accept_invalid_certs(args.insecure);
    b = if args.http3_only {
        b.http3_only()
    } else if args.http3 {
        b.http3(true)
    } else if args.http1_1 {
        b.http1_only()
    } else if args.http2_prior_knowledge {
        b.http2_prior_knowledge()
    } else {
        // `--http2` asks for what is already the default: h2 over TLS when the server agrees.
        b
    };
    // Without --connect-timeout, each layer's own deadline applies (a black-holed address
    // fails in 30 s, not whenever the kernel gives up).
    if let Some(s) = args.connect_timeout {
        b = b.connect_timeout(secs(s, "--connect-timeout")?);
    }
    if let Some(ca) = &args.cacert {
        b = b.ca_file(ca).map_err(bad_ca)?;
    }
    for url in super::proxies::hops(args, uri)? {
        let own_template = url.udp_template.is_some();
        let mut hop = burrow::Proxy::from(url).insecure(args.proxy_insecure);
        if let Some(ca) = &args.proxy_cacert {
            hop = hop.ca_file(ca).map_err(bad_ca)?;
        }
        for line in &args.proxy_header {
            let (n, v) = line.split_once(':').ok_or_else(|| {
                Exit::new(exit::FAILED_INIT, format!("bad proxy header {line:?}"))
            })?;
            hop = hop
                .header(n.trim(), v.trim())
                .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad proxy header {line:?}")))?;
        }
        if let (Some(t), false) = (&args.proxy_udp_template, own_template) {
            hop = hop.udp_template(t).map_err(init)?;
        }
        b = b.proxy(hop);
    }
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
    // What -v shows of the request: the headers as sent (userinfo becomes Authorization,
    // shown redacted), the client adds none (it has its own User-Agent from `headers`).
    let mut shown_req = Request::new(());
    *shown_req.uri_mut() = uri.clone();
    *shown_req.headers_mut() = headers.clone();
    burrow_http_core::target::userinfo_to_authorization(&mut shown_req);
    let resp = client
        .request(method.clone(), uri.to_string())
        .headers(headers)
        .body(body)
        .send()
        .await
        .map_err(Exit::from)?;
    if v.0 {
        if let Some(info) = resp.connection_info() {
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
            let proto = match resp.version() {
                Version::HTTP_3 => "h3",
                Version::HTTP_2 => "h2",
                _ => "http/1.1",
            };
            v.line("*", format!("route: {proto} > {}", info.route));
        }
        let pq = uri.path_and_query().map_or("/", |p| p.as_str());
        v.line(
            ">",
            format!("{method} {pq} {}", version_str(resp.version())),
        );
        if let Some(a) = burrow_http_core::target::host_header(&uri) {
            v.line(">", format!("host: {a}"));
        }
        for (k, val) in shown_req.headers() {
            v.line(">", format!("{k}: {}", shown(k, val)));
        }
        v.line(">", "");
    }
    let origin = burrow_transport::Hop {
        index: None,
        label: burrow_http_core::target::authority(&uri).unwrap_or_default(),
    };
    output(args, &v, resp.into_http(), origin).await?;
    // Tell the server (or the proxy carrying the connection) we are done, as curl does,
    // rather than leaving it to time the connection out after we exit.
    client.shutdown().await;
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
