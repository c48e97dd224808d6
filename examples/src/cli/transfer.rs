//! One transfer: the request sent, retried when curl would retry, the answer written where
//! the options say, and what was measured for `-w`.

use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, StatusCode, Version};

use super::exit::{self, Exit};
use super::output::{self, head_text, Trace};
use super::progress::{self, Meter};
use super::request::{parse_url, Template};
use super::writeout::Stats;
use super::Args;

/// The longest wait between retries without `--retry-delay` (curl's: 10 minutes).
pub const MAX_RETRY_BACKOFF: Duration = Duration::from_secs(600);

/// What every transfer of one run shares.
pub struct Shared {
    /// The options.
    pub args: Args,
    /// The library client (one pool for every transfer).
    pub client: burrow::Client,
    /// The request every transfer sends.
    pub template: Template,
    /// `--trace-ascii`.
    pub trace: Option<Mutex<Trace>>,
    /// `-D`, opened once for all transfers.
    pub dump: Option<Mutex<Box<dyn std::io::Write + Send>>>,
    /// The cookie engine (`-b FILE`, `-c`), when on.
    pub jar: Option<std::sync::Arc<burrow::cookie::Jar>>,
    /// `--max-filesize`, `--limit-rate`.
    pub max_filesize: Option<u64>,
    /// Bytes per second.
    pub limit_rate: Option<u64>,
}

/// Where one transfer's body goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// A file of this name (globs filled in), under `--output-dir`.
    File(String),
    /// `-O`: named after the URL (or the server with `-J`).
    Remote,
}

/// One transfer to make.
#[derive(Clone, Debug)]
pub struct Job {
    /// The URL (globs expanded).
    pub url: String,
    /// Where the body goes.
    pub output: Output,
    /// Its position among all the transfers.
    pub index: usize,
}

struct Verbose(bool);

impl Verbose {
    fn line(&self, prefix: &str, s: impl AsRef<str>) {
        if self.0 {
            eprintln!("{prefix} {}", s.as_ref());
        }
    }
}

/// How one attempt ended when it did not end the transfer.
enum Again {
    /// A transient HTTP status (408, 429, 500, 502, 503, 504), with any `Retry-After`.
    Status(u16, Option<Duration>),
    /// An error.
    Failed(Exit),
}

/// Runs `job` with the retries the options allow; returns its exit code and what it
/// measured (the error is printed unless `-s`).
pub async fn run(shared: &Shared, job: &Job) -> Stats {
    let args = &shared.args;
    let started = Instant::now();
    let mut left = args.retry;
    let mut backoff = Duration::from_secs(1);
    loop {
        let mut stats = Stats {
            url: job.url.clone(),
            urlnum: job.index,
            ..Stats::default()
        };
        let max_time = args
            .max_time
            .and_then(|s| Duration::try_from_secs_f64(s).ok());
        let attempt = attempt(shared, job, &mut stats, left > 0);
        let r = match max_time {
            Some(d) => tokio::time::timeout(d, attempt).await.unwrap_or_else(|_| {
                Err(Again::Failed(Exit::new(
                    exit::OPERATION_TIMEDOUT,
                    format!("Operation timed out after {} milliseconds", d.as_millis()),
                )))
            }),
            None => attempt.await,
        };
        let again = match r {
            Ok(()) => return stats,
            Err(a) => a,
        };
        let (why, retry_after, exit) = match again {
            Again::Status(code, after) => (
                "HTTP error".to_string(),
                after,
                Exit::new(0, format!("HTTP {code}")),
            ),
            Again::Failed(e) => {
                let transient = e.code == exit::OPERATION_TIMEDOUT
                    || (args.retry_connrefused && e.code == exit::COULDNT_CONNECT);
                if !(transient || args.retry_all_errors) || left == 0 {
                    stats.exitcode = e.code;
                    stats.errormsg = Some(e.message.clone());
                    report(args, &e);
                    return stats;
                }
                let why = if e.code == exit::OPERATION_TIMEDOUT {
                    "timeout"
                } else {
                    "error"
                };
                (why.to_string(), None, e)
            }
        };
        if left == 0 {
            // A transient status on the last attempt was answered and written already.
            stats.exitcode = exit.code;
            return stats;
        }
        // --retry-delay, else the server's Retry-After, else the doubling backoff.
        let delay = match (args.retry_delay, retry_after) {
            (Some(s), _) => Duration::from_secs(s),
            (None, Some(after)) => after.min(MAX_RETRY_BACKOFF),
            (None, None) => backoff,
        };
        if let Some(max) = args.retry_max_time {
            if started.elapsed().saturating_add(delay) > Duration::from_secs(max) {
                stats.exitcode = exit.code;
                if exit.code != 0 {
                    stats.errormsg = Some(exit.message.clone());
                    report(args, &exit);
                }
                return stats;
            }
        }
        if !args.silent {
            eprintln!(
                "Warning: Problem : {why}. Will retry in {} seconds. {left} retries left.",
                delay.as_secs()
            );
        }
        tokio::time::sleep(delay).await;
        backoff = (backoff * 2).min(MAX_RETRY_BACKOFF);
        left -= 1;
    }
}

fn report(args: &Args, e: &Exit) {
    if !args.silent || args.show_error {
        eprintln!("burrow: ({}) {}", e.code, e.message);
    }
}

fn since(t0: Instant, t: Option<Instant>) -> Duration {
    t.map(|t| t.saturating_duration_since(t0))
        .unwrap_or_default()
}

/// The request head as it goes out, for `-v`, `--trace-ascii` and `size_request`: the
/// target in absolute-form when it was `forwarded` to an HTTP proxy.
fn request_head(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    v: Version,
    forwarded: bool,
) -> String {
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    let authority = burrow_http_core::target::authority(uri);
    let target = match (forwarded, uri.scheme_str(), authority) {
        (true, Some(scheme), Some(a)) => format!("{scheme}://{a}{pq}"),
        _ => pq.to_string(),
    };
    let mut s = format!("{method} {target} {}\r\n", output::version_str(v));
    if let Some(a) = burrow_http_core::target::host_header(uri) {
        s.push_str(&format!("host: {a}\r\n"));
    }
    for (k, val) in headers {
        s.push_str(&format!("{k}: {}\r\n", shown(k, val)));
    }
    s.push_str("\r\n");
    s
}

/// A header value as `-v` and traces show it: credentials are redacted to their scheme.
fn shown(name: &http::HeaderName, value: &http::HeaderValue) -> String {
    let text = String::from_utf8_lossy(value.as_bytes());
    if name == http::header::AUTHORIZATION
        || name == http::header::PROXY_AUTHORIZATION
        || name == http::header::COOKIE
    {
        let scheme = match name == http::header::COOKIE {
            true => "",
            false => text.split_whitespace().next().unwrap_or(""),
        };
        return format!("{scheme} ***").trim_start().to_string();
    }
    text.into_owned()
}

/// `h` with every `Set-Cookie` value replaced by `***`.
fn redacted(h: &HeaderMap) -> HeaderMap {
    let mut out = h.clone();
    if out.contains_key(http::header::SET_COOKIE) {
        let n = out.get_all(http::header::SET_COOKIE).iter().count();
        out.remove(http::header::SET_COOKIE);
        for _ in 0..n {
            out.append(
                http::header::SET_COOKIE,
                http::HeaderValue::from_static("***"),
            );
        }
    }
    out
}

fn retry_after(h: &HeaderMap) -> Option<Duration> {
    let v = h.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The offset to resume at: `-C N`, or `-C -` from the output file's size.
fn resume_offset(args: &Args, job: &Job) -> Result<u64, Exit> {
    let Some(c) = &args.continue_at else {
        return Ok(0);
    };
    if c != "-" {
        return c
            .parse()
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad --continue-at {c:?}")));
    }
    let name = match &job.output {
        Output::File(n) => n.clone(),
        Output::Remote if !args.remote_header_name => output::remote_name(&parse_url(&job.url)?)?,
        _ => {
            return Err(Exit::new(
                exit::FAILED_INIT,
                "-C - needs an output file named before the transfer (-o or -O)",
            ))
        }
    };
    let path = match &args.output_dir {
        Some(d) => d.join(&name),
        None => name.into(),
    };
    Ok(std::fs::metadata(path).map(|m| m.len()).unwrap_or(0))
}

async fn attempt(
    shared: &Shared,
    job: &Job,
    stats: &mut Stats,
    may_retry: bool,
) -> Result<(), Again> {
    let args = &shared.args;
    let t = &shared.template;
    let v = Verbose(args.verbose);
    let t0 = Instant::now();
    let uri = parse_url(&t.url(&job.url)).map_err(Again::Failed)?;
    stats.url_effective = uri.to_string();
    stats.method = t.method.to_string();
    if job.output == Output::Remote && !args.remote_header_name {
        // curl refuses before connecting.
        output::remote_name(&uri).map_err(Again::Failed)?;
    }
    let offset = resume_offset(args, job).map_err(Again::Failed)?;
    let mut headers = t.headers.clone();
    // curl announces big bodies and uploads on HTTP/1.1 only: cleartext URLs (which speak
    // HTTP/1.1 unless told otherwise) and --http1.1.
    let h1 = args.http1_1 || (uri.scheme_str() == Some("http") && !args.http2_prior_knowledge);
    if t.expect_continue && h1 {
        headers.insert(
            http::header::EXPECT,
            http::HeaderValue::from_static("100-continue"),
        );
    }
    if offset > 0 {
        headers.insert(
            http::header::RANGE,
            http::HeaderValue::from_str(&format!("bytes={offset}-"))
                .map_err(|_| Again::Failed(Exit::new(exit::FAILED_INIT, "bad offset")))?,
        );
    }
    // `-b NAME=VALUE` and the engine's cookies go together, as in curl (the library lets a
    // caller's own Cookie header win, as reqwest does).
    if let (Some(own), Some(jar)) = (headers.get(http::header::COOKIE), &shared.jar) {
        if let Some(more) = jar.cookies(&uri) {
            let mut b = own.as_bytes().to_vec();
            b.extend_from_slice(b"; ");
            b.extend_from_slice(more.as_bytes());
            if let Ok(mut v) = http::HeaderValue::from_bytes(&b) {
                v.set_sensitive(true);
                headers.insert(http::header::COOKIE, v);
            }
        }
    }
    let hops = super::plan::hops_for(args, &uri).map_err(Again::Failed)?;
    // What -v shows as sent to the nearest hop and, for a forwarded request, what the last
    // hop's request carries besides the caller's headers (credentials redacted).
    let nearest = hops.first().map(|h| h.proxy_url().target.host_str());
    let mut forward_extra = HeaderMap::new();
    if let Some(last) = hops.last() {
        if last.proxy_url().credentials.is_some() {
            forward_extra.insert(
                http::header::PROXY_AUTHORIZATION,
                http::HeaderValue::from_static("Basic"),
            );
        }
        for (n, v) in args.proxy_header.iter().filter_map(|l| l.split_once(':')) {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(n.trim().as_bytes()),
                http::HeaderValue::from_str(v.trim()),
            ) {
                forward_extra.append(n, v);
            }
        }
    }
    let mut req = shared
        .client
        .request(t.method.clone(), uri.to_string())
        .headers(headers.clone())
        .route(hops);
    if let Some(semantic) = &t.redirect_as {
        // -X names the method of every request; redirects go as the options imply.
        req = req.redirect_as(semantic.clone());
    }
    let mut upload = 0u64;
    match t.form().await.map_err(Again::Failed)? {
        Some(form) => req = req.multipart(form),
        None => {
            let body = t.body().await.map_err(Again::Failed)?;
            use http_body::Body as _;
            upload = body.size_hint().exact().unwrap_or(0);
            req = req.body(body);
        }
    }
    let resp = req.send().await.map_err(|e| Again::Failed(Exit::from(e)))?;
    let head_at = Instant::now();

    // What the connection and the answer tell.
    let info = resp.connection_info().cloned().unwrap_or_default();
    let tm = info.timings;
    let fresh = tm.started.is_some_and(|s| s >= t0);
    if fresh {
        stats.num_connects = 1;
        stats.time_namelookup = since(t0, tm.resolved.or(tm.started));
        stats.time_connect = since(t0, tm.connected);
        stats.time_appconnect = since(t0, tm.secured);
        stats.time_pretransfer = since(t0, tm.secured.or(tm.routed));
    }
    stats.time_starttransfer = head_at - t0;
    stats.remote = info.peer_addr;
    stats.local = info.local_addr;
    stats.http_code = resp.status().as_u16();
    stats.http_version = Some(resp.version());
    // The head as it came: what content decoding took away is shown (curl shows both
    // fields with --compressed), and the encoded bytes are what was downloaded.
    let decoded = resp.decoded().cloned();
    stats.headers = resp.headers().clone();
    if let Some(d) = &decoded {
        for (k, v) in d.headers() {
            stats.headers.append(k, v.clone());
        }
    }
    stats.url_effective = resp.url().to_string();
    stats.num_redirects = resp.redirects();
    stats.size_upload = upload;
    // What -v shows of the request: the headers as sent (userinfo becomes Authorization,
    // shown redacted).
    let mut shown_req = http::Request::new(());
    *shown_req.uri_mut() = uri.clone();
    *shown_req.headers_mut() = headers.clone();
    burrow_http_core::target::userinfo_to_authorization(&mut shown_req);
    if resp.route().is_forwarded() {
        shown_req.headers_mut().extend(forward_extra);
    }
    let request_version = match resp.version() {
        Version::HTTP_2 | Version::HTTP_3 => resp.version(),
        _ => Version::HTTP_11,
    };
    let sent = request_head(
        &t.method,
        resp.url(),
        shown_req.headers(),
        request_version,
        resp.route().is_forwarded(),
    );
    stats.size_request = sent.len() as u64;

    if v.0 {
        if let Some(a) = info.peer_addr {
            v.line(
                "*",
                format!(
                    "Connected to {} ({}) port {}",
                    nearest
                        .as_deref()
                        .unwrap_or(resp.url().host().unwrap_or("")),
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
        for line in sent.trim_end().split("\r\n") {
            v.line(">", line);
        }
        v.line(">", "");
    }
    if let Some(tr) = &shared.trace {
        let mut tr = tr.lock().unwrap_or_else(|p| p.into_inner());
        tr.info(&format!("route: {}", info.route));
        tr.block("=> Send header", sent.as_bytes());
    }

    // Every head: the redirects followed, then the answer.
    let all: Vec<_> = resp
        .history()
        .iter()
        .map(|r| (r.version, r.status, &r.headers, r.spelling.as_ref()))
        .chain([(
            resp.version(),
            resp.status(),
            &stats.headers,
            resp.spelling(),
        )])
        .collect();
    let heads: Vec<String> = all
        .iter()
        .map(|(ver, st, h, sp)| head_text(*ver, *st, h, *sp))
        .collect();
    stats.size_header = heads.iter().map(|h| h.len() as u64).sum();
    // What -v and traces show: the heads with cookie values hidden (-i and -D get them whole).
    for (ver, st, h, sp) in &all {
        let h = head_text(*ver, *st, &redacted(h), *sp);
        if v.0 {
            for line in h.trim_end().split("\r\n") {
                v.line("<", line);
            }
            v.line("<", "");
        }
        if let Some(tr) = &shared.trace {
            tr.lock()
                .unwrap_or_else(|p| p.into_inner())
                .block("<= Recv header", h.as_bytes());
        }
    }
    let status = resp.status();
    let location = resp
        .headers()
        .get(http::header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    // A redirect past --max-redirs: its head is shown, then exit 47, as curl does.
    let mut over_limit = None;
    if status.is_redirection() {
        if let Some(l) = &location {
            stats.redirect_url = resolve(resp.url(), l);
            if (args.location || args.location_trusted)
                && stats.redirect_url.is_some()
                && i64::try_from(resp.redirects()).is_ok_and(|n| n == args.max_redirs)
            {
                over_limit = Some(Exit::new(
                    exit::TOO_MANY_REDIRECTS,
                    format!("Maximum ({}) redirects followed", args.max_redirs),
                ));
            }
        }
    }
    // A transient answer is retried; like curl, its body is written first (or, with -f,
    // not at all).
    let transient = (may_retry && matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504))
        .then(|| (status.as_u16(), retry_after(resp.headers())));
    if let (Some((s, after)), true) = (transient, args.fail) {
        return Err(Again::Status(s, after));
    }
    if let Some(d) = &shared.dump {
        let mut d = d.lock().unwrap_or_else(|p| p.into_inner());
        for h in &heads {
            d.write_all(h.as_bytes())
                .map_err(|e| Again::Failed(write_err(e)))?;
        }
        let _ = d.flush();
    }
    if offset > 0 && status == StatusCode::RANGE_NOT_SATISFIABLE {
        // Nothing past the end of what we have: the file is complete, as curl takes it
        // (with -f too).
        stats.time_total = t0.elapsed();
        return Ok(());
    }
    let shows_head = args.include || args.head;
    if args.fail && status.as_u16() >= 400 && !shows_head {
        return Err(http_error(status));
    }
    // Nothing to write: no output file is opened (or truncated).
    if let Some(e) = over_limit.take_if(|_| !shows_head) {
        return Err(Again::Failed(e));
    }
    if offset > 0 && status == StatusCode::OK {
        return Err(Again::Failed(Exit::new(
            exit::RANGE_ERROR,
            "HTTP server doesn't seem to support byte ranges. Cannot resume.",
        )));
    }
    let length = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|l| l.to_str().ok())
        .and_then(|l| l.parse::<u64>().ok());
    if let (Some(max), Some(len)) = (shared.max_filesize, length) {
        if len > max {
            return Err(Again::Failed(too_big(max)));
        }
    }

    // Where the body goes.
    let (mut out, to_stdout): (Box<dyn std::io::Write + Send>, bool) = match &job.output {
        Output::Stdout => (Box::new(std::io::stdout()), true),
        Output::File(name) if name == "-" => (Box::new(std::io::stdout()), true),
        o => {
            let (name, no_clobber) = match o {
                Output::File(n) => (n.clone(), false),
                _ => match args
                    .remote_header_name
                    .then(|| output::disposition_name(resp.headers()))
                    .flatten()
                {
                    Some(n) => (n, true),
                    // The URL as given, not where redirects led (curl's rule; a redirect
                    // must not choose which local file is written).
                    None => (output::remote_name(&uri).map_err(Again::Failed)?, false),
                },
            };
            let (f, path) = output::open(
                &name,
                args.output_dir.as_deref(),
                args.create_dirs,
                // Resuming appends, whatever the answer: a partial file is never wiped.
                offset > 0,
                no_clobber,
            )
            .map_err(Again::Failed)?;
            stats.filename_effective = Some(path.display().to_string());
            (
                Box::new(std::io::BufWriter::with_capacity(256 * 1024, f)),
                false,
            )
        }
    };
    if shows_head {
        for h in &heads {
            out.write_all(h.as_bytes())
                .map_err(|e| Again::Failed(write_err(e)))?;
        }
        // With -f, as curl: the head is shown, then the failure.
        if args.fail && status.as_u16() >= 400 {
            out.flush().map_err(|e| Again::Failed(write_err(e)))?;
            return Err(http_error(status));
        }
    }
    if let Some(e) = over_limit {
        out.flush().map_err(|e| Again::Failed(write_err(e)))?;
        return Err(Again::Failed(e));
    }
    let meter = Meter::new(
        progress::wanted(args, to_stdout) && t.method != Method::HEAD,
        args.progress_bar,
        length,
    );
    let origin = burrow_transport::Hop {
        index: None,
        label: burrow_http_core::target::authority(resp.url()).unwrap_or_default(),
    };
    let mut body = resp;
    let body_start = Instant::now();
    let mut total = 0u64;
    let r: Result<(), Exit> = async {
        while let Some(chunk) = body.chunk().await.map_err(|e| {
            // A failure no hop claimed is the origin's.
            let mut x = Exit::from(e.at_hop(origin.clone()));
            x.message = format!("{} after {total} bytes", x.message);
            x
        })? {
            total += chunk.len() as u64;
            if shared.max_filesize.is_some_and(|m| total > m) {
                return Err(too_big(shared.max_filesize.unwrap_or_default()));
            }
            out.write_all(&chunk).map_err(write_err)?;
            meter.inc(chunk.len() as u64);
            if let Some(tr) = &shared.trace {
                tr.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .block("<= Recv data", &chunk);
            }
            if let Some(wait) = shared
                .limit_rate
                .and_then(|rate| output::rate_wait(body_start, total, rate))
            {
                out.flush().map_err(write_err)?;
                tokio::time::sleep(wait).await;
            }
        }
        out.flush().map_err(write_err)
    }
    .await;
    meter.finish();
    stats.size_download = decoded.map_or(total, |d| d.encoded_bytes());
    stats.time_total = t0.elapsed();
    r.map_err(Again::Failed)?;
    if v.0 {
        v.line("*", format!("received {total} body bytes"));
        let _ = std::io::stderr().flush();
    }
    if let Some((s, after)) = transient {
        return Err(Again::Status(s, after));
    }
    if args.fail_with_body && status.as_u16() >= 400 {
        return Err(http_error(status));
    }
    Ok(())
}

/// `-f`'s failure.
fn http_error(status: StatusCode) -> Again {
    Again::Failed(Exit::new(
        exit::HTTP_RETURNED_ERROR,
        format!("The requested URL returned error: {}", status.as_u16()),
    ))
}

fn too_big(max: u64) -> Exit {
    Exit::new(
        exit::FILESIZE_EXCEEDED,
        format!("Exceeded the maximum allowed file size ({max})"),
    )
}

fn write_err(e: std::io::Error) -> Exit {
    Exit::new(exit::WRITE_ERROR, format!("write failed: {e}"))
}

/// A `Location` against the URL it came with, as `%{redirect_url}` shows it.
fn resolve(base: &http::Uri, location: &str) -> Option<String> {
    if location.contains("://") {
        return Some(location.to_string());
    }
    let scheme = base.scheme_str().unwrap_or("http");
    let auth = base.authority()?.as_str();
    if let Some(rest) = location.strip_prefix("//") {
        return Some(format!("{scheme}://{rest}"));
    }
    if location.starts_with('/') {
        return Some(format!("{scheme}://{auth}{location}"));
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    Some(format!("{scheme}://{auth}{dir}/{location}"))
}
