//! A run: the client set up once, the URLs expanded and paired with their outputs, the
//! transfers made one after another or in parallel (`-Z`), `-w` after each, the cookie jar
//! written at the end. The exit code is the last failed transfer's, as curl's.

use std::sync::{Arc, Mutex};

use futures_util::StreamExt as _;

use super::exit::{self, Exit};
use super::output::{self, Trace};
use super::transfer::{self, Job, Output, Shared};
use super::{glob, proxies, request, writeout, Args, Cli};

/// The most transfers `-Z` runs at once (curl's limit).
pub const MAX_PARALLEL: usize = 300;

fn secs(s: f64, what: &str) -> Result<std::time::Duration, Exit> {
    std::time::Duration::try_from_secs_f64(s)
        .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad {what} {s}")))
}

/// The library's client, set up as the options say: the CLI has no transport code of its
/// own. With `--doh-url`, names are resolved by a DoH server reached by a second client on
/// the same route.
fn client(
    args: &Args,
    first: &http::Uri,
    jar: Option<Arc<burrow::cookie::Jar>>,
    altsvc: Option<Arc<AltSvcCache>>,
) -> Result<burrow::Client, Exit> {
    let system: burrow::SharedResolver = Arc::new(burrow::SystemResolver);
    let base = match &args.doh_url {
        Some(url) => {
            // -k is for the transfer, not for the DoH server (curl has --doh-insecure).
            let doh = builder(args, first, None, super::connect::resolver(args, system)?)?
                .danger_accept_invalid_certs(false)
                .redirect(burrow::RedirectPolicy::none())
                .decompress(false)
                .build()
                .map_err(Exit::from)?;
            let r = burrow::DohResolver::new(doh, url)
                .map_err(|e| Exit::new(exit::FAILED_INIT, format!("--doh-url: {e}")))?;
            Arc::new(r) as burrow::SharedResolver
        }
        None => system,
    };
    let resolver = super::connect::resolver(args, base)?;
    let mut b = builder(args, first, jar, resolver)?;
    if let Some(c) = altsvc {
        b = b.alt_svc_cache(c);
    }
    b.build().map_err(Exit::from)
}

type AltSvcCache = burrow_http_core::altsvc::AltSvcCache;

/// `--alt-svc FILE`: the cache as the file has it (a missing file is an empty cache, as
/// in curl).
fn load_alt_svc(args: &Args) -> Result<Option<Arc<AltSvcCache>>, Exit> {
    let Some(path) = args.alt_svc.as_ref() else {
        return Ok(None);
    };
    let cache = Arc::new(AltSvcCache::default());
    if let Some(text) = output::read_small(&path.display().to_string())? {
        cache.load_curl_file(
            &text,
            std::time::Instant::now(),
            std::time::SystemTime::now(),
        );
    }
    Ok(Some(cache))
}

/// The client's settings. Proxies are verified with `--proxy-cacert` (or the system's
/// trust), never with `--cacert`, as in curl.
fn builder(
    args: &Args,
    first: &http::Uri,
    jar: Option<Arc<burrow::cookie::Jar>>,
    resolver: burrow::SharedResolver,
) -> Result<burrow::ClientBuilder, Exit> {
    let bad_ca = |e: burrow::Error| Exit::new(exit::SSL_CACERT_BADFILE, e.to_string());
    let mut policy = if args.location || args.location_trusted {
        // The redirect past the limit is shown, then exit 47 (transfer.rs), as curl does.
        match usize::try_from(args.max_redirs) {
            Ok(0) => burrow::RedirectPolicy::none(),
            Ok(n) => burrow::RedirectPolicy::limited(n).stop_at_limit(),
            Err(_) => burrow::RedirectPolicy::limited(usize::MAX),
        }
    } else {
        burrow::RedirectPolicy::none()
    };
    for (on, s) in [
        (args.post301, 301),
        (args.post302, 302),
        (args.post303, 303),
    ] {
        if on {
            policy = policy.keep_post(s);
        }
    }
    policy = policy.trusted(args.location_trusted).referer(
        args.referer
            .as_deref()
            .is_some_and(|r| r.ends_with(";auto")),
    );
    // The request template carries the User-Agent, or none (`-A ""`, `-H 'User-Agent:'`).
    let mut b = burrow::Client::builder()
        .no_user_agent()
        // Heads are shown as they came, as curl shows them.
        .keep_spelling(true)
        .redirect(policy)
        .decompress(args.compressed)
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
    b = tls(args, b)?;
    if let Some(jar) = jar {
        b = b.cookie_provider(jar);
    }
    b = super::connect::tcp(args, b)?;
    if let Some(t) = super::connect::transport(args, &b, &resolver)? {
        b = b.transport(t);
    }
    b = b.resolver(resolver);
    for hop in hops_for(args, first)? {
        b = b.proxy(hop);
    }
    Ok(b)
}

/// The hops for `uri` as the options say (`-x` and friends, the environment, `--noproxy`),
/// each with its own TLS settings; empty for a direct transfer. Worked out per URL, as curl
/// does, so `--noproxy` and per-scheme environment proxies apply to every URL.
pub(super) fn hops_for(args: &Args, uri: &http::Uri) -> Result<Vec<burrow::Proxy>, Exit> {
    let bad_ca = |e: burrow::Error| Exit::new(exit::SSL_CACERT_BADFILE, e.to_string());
    let init = |e: burrow::Error| Exit::new(exit::FAILED_INIT, e.to_string());
    let mut hops = Vec::new();
    for (url, x) in proxies::hops(args, uri)? {
        let own_template = url.udp_template.is_some();
        let t = args.hop_tls.for_hop(x);
        let mut hop = burrow::Proxy::from(url).insecure(t.insecure);
        for ca in &t.cacert {
            hop = hop.ca_file(ca).map_err(bad_ca)?;
        }
        if let Some(cert) = &t.cert {
            hop = hop
                .client_cert(cert, t.key.as_deref())
                .map_err(|e| Exit::new(exit::SSL_CERTPROBLEM, e.to_string()))?;
        }
        for line in &args.proxy_header {
            let (n, v) = line
                .split_once(':')
                .ok_or_else(|| Exit::new(exit::FAILED_INIT, "bad --proxy-header: no `:`"))?;
            hop = hop.header(n.trim(), v.trim()).map_err(|_| {
                Exit::new(
                    exit::FAILED_INIT,
                    format!("bad --proxy-header {:?}", n.trim()),
                )
            })?;
        }
        if let (Some(t), false) = (&args.proxy_udp_template, own_template) {
            hop = hop.udp_template(t).map_err(init)?;
        }
        if let Some(c) = &args.connect_tcp_codepoints {
            let cp = burrow::Codepoints::parse(c).ok_or_else(|| {
                Exit::new(
                    exit::FAILED_INIT,
                    format!(
                        "bad --connect-tcp-codepoints {c:?}: draft-12, draft-08 or DATA,FINAL_DATA"
                    ),
                )
            })?;
            hop = hop.connect_tcp_codepoints(cp);
        }
        hops.push(hop);
    }
    if args.proxytunnel {
        if let Some(last) = hops.pop() {
            hops.push(last.tunnel(true));
        }
    }
    Ok(hops)
}

/// The TLS options for origins: versions, a client certificate, pinned keys.
fn tls(args: &Args, mut b: burrow::ClientBuilder) -> Result<burrow::ClientBuilder, Exit> {
    use burrow::transport::TlsVersion as V;
    let init = |m: String| Exit::new(exit::FAILED_INIT, m);
    let min = if args.tlsv1_3 { V::Tls13 } else { V::Tls12 };
    let max = match args.tls_max.as_deref() {
        None | Some("default") | Some("1.3") => V::Tls13,
        Some("1.2") => V::Tls12,
        Some(v @ ("1.0" | "1.1")) => {
            return Err(init(format!(
                "--tls-max {v}: burrow speaks TLS 1.2 and 1.3 only"
            )))
        }
        Some(v) => return Err(init(format!("bad --tls-max {v:?}"))),
    };
    if (min, max) != (V::Tls12, V::Tls13) {
        b = b
            .tls_versions(min, max)
            .map_err(|e| init(format!("--tlsv1.3 with --tls-max 1.2: {e}")))?;
    }
    if let Some(cert) = &args.cert {
        if !cert.exists() && cert.to_string_lossy().contains(':') {
            return Err(Exit::new(
                exit::SSL_CERTPROBLEM,
                "--cert FILE:PASSWORD: encrypted keys are not supported",
            ));
        }
        b = b
            .client_cert(cert, args.key.as_deref())
            .map_err(|e| Exit::new(exit::SSL_CERTPROBLEM, e.to_string()))?;
    }
    if let Some(pins) = &args.pinnedpubkey {
        b = b
            .pinned_public_keys(pins)
            .map_err(|e| init(e.to_string()))?;
    }
    Ok(b)
}

/// The transfers: each URL argument globbed, paired with the n-th output option.
fn jobs(cli: &Cli) -> Result<Vec<Job>, Exit> {
    let args = &cli.args;
    let mut jobs = Vec::new();
    for (i, url) in cli.urls.iter().enumerate() {
        let expanded = if args.globoff {
            vec![(url.clone(), Vec::new())]
        } else {
            glob::expand(url)?
        };
        let out = cli.outputs.get(i).cloned();
        for (u, vars) in expanded {
            let output = match &out {
                Some(Some(name)) => Output::File(glob::fill(name, &vars)),
                Some(None) => Output::Remote,
                None if args.remote_name_all => Output::Remote,
                None => Output::Stdout,
            };
            jobs.push(Job {
                url: u,
                output,
                index: jobs.len(),
            });
        }
    }
    Ok(jobs)
}

/// Everything a run needs before the first transfer.
/// What a run keeps besides its transfers: the cookie jar and the Alt-Svc cache to save.
struct Kept {
    jar: Option<Arc<burrow::cookie::Jar>>,
    altsvc: Option<Arc<AltSvcCache>>,
}

async fn prepare(cli: &Cli) -> Result<(Arc<Shared>, Vec<Job>, Kept), Exit> {
    let args = &cli.args;
    if cli.urls.is_empty() {
        return Err(Exit::new(exit::FAILED_INIT, "no URL specified"));
    }
    let jobs = jobs(cli)?;
    let first = request::parse_url(&jobs.first().map(|j| j.url.clone()).unwrap_or_default())?;
    let files: Vec<&String> = args.cookie.iter().filter(|c| !c.contains('=')).collect();
    let jar = if files.is_empty() && args.cookie_jar.is_none() {
        None
    } else {
        let jar = Arc::new(burrow::cookie::Jar::default());
        for f in files {
            // curl reads a missing file as no cookies.
            if let Some(text) = output::read_small(f)? {
                jar.load_netscape(&text);
            }
        }
        Some(jar)
    };
    let altsvc = load_alt_svc(args)?;
    let client = client(args, &first, jar.clone(), altsvc.clone())?;
    let template = request::template(args, &cli.data).await?;
    let dump: Option<Box<dyn std::io::Write + Send>> = match args.dump_header.as_deref() {
        None => None,
        Some("-") => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(std::fs::File::create(p).map_err(|e| {
            Exit::new(exit::WRITE_ERROR, format!("cannot create {p}: {e}"))
        })?)),
    };
    let shared = Shared {
        client,
        jar: jar.clone(),
        template,
        trace: args
            .trace_ascii
            .as_deref()
            .map(Trace::open)
            .transpose()?
            .map(Mutex::new),
        dump: dump.map(Mutex::new),
        max_filesize: args
            .max_filesize
            .as_deref()
            .map(|s| output::size(s, "--max-filesize"))
            .transpose()?,
        limit_rate: args
            .limit_rate
            .as_deref()
            .map(|s| output::size(s, "--limit-rate"))
            .transpose()?,
        args: args.clone(),
    };
    Ok((Arc::new(shared), jobs, Kept { jar, altsvc }))
}

/// The `-w` format: as given, or read from `@file` (`@-` standard input).
fn write_out_format(args: &Args) -> Result<Option<String>, Exit> {
    let Some(w) = &args.write_out else {
        return Ok(None);
    };
    match w.strip_prefix('@') {
        Some(p) => output::read_small(p)?
            .map(Some)
            .ok_or_else(|| Exit::new(exit::READ_ERROR, format!("cannot open {p}"))),
        None => Ok(Some(w.clone())),
    }
}

/// Runs every transfer; returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let args = cli.args.clone();
    let quiet = args.silent && !args.show_error;
    let say = |e: &Exit| {
        if !quiet {
            eprintln!("burrow: ({}) {}", e.code, e.message);
        }
        e.code
    };
    let format = match write_out_format(&args) {
        Ok(f) => f,
        Err(e) => return say(&e),
    };
    let (shared, jobs, kept) = match prepare(&cli).await {
        Ok(p) => p,
        Err(e) => return say(&e),
    };
    let mut code = 0;
    let finish = |stats: &writeout::Stats| {
        if let Some(f) = &format {
            writeout::write(f, stats);
        }
    };
    // One at a time (in order) unless -Z.
    let n = match args.parallel {
        true => args.parallel_max.clamp(1, MAX_PARALLEL),
        false => 1,
    };
    let mut results = futures_util::stream::iter(jobs.iter())
        .map(|job| {
            let shared = shared.clone();
            async move { transfer::run(&shared, job).await }
        })
        .buffer_unordered(n);
    while let Some(stats) = results.next().await {
        let failed = stats.exitcode != 0;
        finish(&stats);
        // curl's result is the last transfer's; with -Z, the last failed one's.
        if failed || !args.parallel {
            code = stats.exitcode;
        }
        if failed && args.fail_early {
            break;
        }
    }
    if let (Some(path), Some(cache)) = (&args.alt_svc, &kept.altsvc) {
        let text = cache.to_curl_file(std::time::Instant::now(), std::time::SystemTime::now());
        if let Err(e) = std::fs::write(path, text) {
            code = say(&Exit::new(
                exit::WRITE_ERROR,
                format!("cannot write the Alt-Svc cache {}: {e}", path.display()),
            ));
        }
    }
    if let (Some(path), Some(jar)) = (&args.cookie_jar, &kept.jar) {
        let text = jar.to_netscape();
        let r = if path.as_os_str() == "-" {
            std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        if let Err(e) = r {
            code = say(&Exit::new(
                exit::WRITE_ERROR,
                format!("cannot write the cookie jar {}: {e}", path.display()),
            ));
        }
    }
    // Tell the servers (or the proxies carrying the connections) we are done, as curl
    // does, rather than leaving them to time the connections out after we exit.
    shared.client.shutdown().await;
    code
}
