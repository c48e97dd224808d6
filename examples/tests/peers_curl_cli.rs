//! The `burrow` binary against Debian's curl, one command line at a time: both run with the
//! same options against an origin that records every request as it arrived, and must send
//! the same requests (method, target, headers, body), write the same output and exit with
//! the same code. Run by `scripts/peers.sh`, which installs curl; ignored otherwise.
//!
//! What is normalised, and why: `User-Agent` (each names itself) unless `-A` sets it;
//! header order (HTTP does not order different fields); multipart boundaries (random);
//! header-name case in echoed requests (burrow sends names in lowercase, as hyper does;
//! curl capitalises its own); the order of `Accept-Encoding`'s list (no q-values: all equal);
//! the case of percent-escapes (equivalent, RFC 3986 §2.1; curl mixes both).
//!
//! Known and kept: `-X POST` with no data sends `Content-Length: 0` (RFC 9110 §8.6 says a
//! client should), where curl sends no length.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Output, Stdio};

mod recorder;
use recorder::{Recorded, Recorder};

/// The files a run left in `dir` (inputs excluded), path and content; cookie jars without
/// their comment lines (each client signs its own).
fn files(dir: &std::path::Path, inputs: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if inputs.contains(&rel.as_str()) {
                continue;
            }
            let mut body = std::fs::read(&p).unwrap();
            if body.starts_with(b"# Netscape HTTP Cookie File") {
                body = String::from_utf8_lossy(&body)
                    .lines()
                    .filter(|l| !l.starts_with("# ") && !l.is_empty())
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
                    .into_bytes();
            }
            // Text (heads, echoed requests) compared as the output is.
            if let Ok(t) = std::str::from_utf8(&body) {
                body = normal_output(t.as_bytes(), false).into_bytes();
            }
            out.push((rel, body));
        }
    }
    out.sort();
    out
}

/// A fresh directory holding the inputs the command lines name.
fn workdir(root: &std::path::Path, name: &str, base: &str) -> std::path::PathBuf {
    let d = root.join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join("data.txt"), "one\r\ntwo\n").unwrap();
    std::fs::write(d.join("up.txt"), "uploaded").unwrap();
    std::fs::write(d.join("part.bin"), burrow_examples::origin::pattern(0, 40)).unwrap();
    std::fs::write(
        d.join("opts.cfg"),
        format!("# options\nurl = \"{base}/echo\"\n-H \"X-Cfg: yes\"\nsilent\n"),
    )
    .unwrap();
    d
}

const INPUTS: [&str; 4] = ["data.txt", "up.txt", "part.bin", "opts.cfg"];

async fn exec(prog: &'static str, args: Vec<String>, dir: std::path::PathBuf) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(prog)
            .args(&args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

/// A request as compared: boundaries replaced, user agent dropped unless asked for.
fn normal(r: &Recorded, keep_ua: bool) -> String {
    let ct = r.header("content-type").unwrap_or("").to_string();
    let boundary = ct.split("boundary=").nth(1).map(str::to_string);
    let fix = |s: &str| match &boundary {
        Some(b) => s.replace(b.as_str(), "BOUNDARY"),
        None => s.to_string(),
    };
    let mut headers: Vec<String> = r
        .headers
        .iter()
        .map(|(n, v)| {
            if n == "accept-encoding" {
                let mut list: Vec<&str> = v.split(',').map(str::trim).collect();
                list.sort_unstable();
                (n.clone(), list.join(", "))
            } else {
                (n.clone(), v.clone())
            }
        })
        .filter(|(n, _)| keep_ua || n != "user-agent")
        .map(|(n, v)| (n, upper_escapes(&v)))
        // Boundaries differ in length, so multipart bodies do too.
        .filter(|(n, _)| boundary.is_none() || n != "content-length")
        .map(|(n, v)| format!("{n}: {}", fix(&v)))
        .collect();
    headers.sort();
    format!(
        "{} {}\n{}\n\n{}",
        r.method,
        upper_escapes(&r.target),
        headers.join("\n"),
        fix(&String::from_utf8_lossy(&r.body))
    )
}

/// `%xx` escapes in upper case.
fn upper_escapes(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let esc = rest.get(i..i + 3).unwrap_or(&rest[i..]);
        out.push_str(&esc.to_ascii_uppercase());
        rest = &rest[i + esc.len()..];
    }
    out.push_str(rest);
    out
}

/// Output as compared: lines in order; `-i` heads as they are, header lines of echoed
/// requests with names lower-cased; the user agent dropped unless asked for.
fn normal_output(b: &[u8], keep_ua: bool) -> String {
    let all = String::from_utf8_lossy(b);
    let mut rest = &all[..];
    let mut lines: Vec<String> = Vec::new();
    while rest.starts_with("HTTP/") {
        let end = rest.find("\r\n\r\n").map_or(rest.len(), |e| e + 4);
        lines.extend(rest[..end].split("\r\n").map(str::to_string));
        rest = &rest[end..];
    }
    lines.extend(
        rest.split('\n')
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| keep_ua || !l.to_ascii_lowercase().starts_with("user-agent:"))
            .map(|l| match l.split_once(": ") {
                Some((n, v)) if !n.contains(' ') => format!("{}: {v}", n.to_ascii_lowercase()),
                _ => upper_escapes(l),
            }),
    );
    lines.sort();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl: run scripts/peers.sh"]
async fn burrow_sends_and_writes_what_curl_does() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = std::env::temp_dir().join(format!("burrow-vs-curl-{}", std::process::id()));
    let wo = "%{http_code} %{http_version} %{size_download} %{num_redirects} \
              [%{redirect_url}] [%{content_type}] %{exitcode} %{url_effective} \
              %header{content-length} %{method}";
    // A burrow-proxy for the proxy options (HTTP CONNECT and SOCKS on separate ports).
    let proxy =
        burrow_examples::pki::test_proxy(&["http://127.0.0.1:0", "socks5://127.0.0.1:0"], None)
            .await
            .unwrap();
    let (hp, sp) = (proxy.addrs[0].addr(), proxy.addrs[1].addr());
    // The same origin over TLS (HTTP/1.1 inside), for the TLS options.
    let pki = burrow_examples::pki::TestPki::generate(&[]).unwrap();
    let client_pki = burrow_examples::pki::TestPki::generate(&[]).unwrap();
    let keys = dir.join("keys");
    let (ca, _, _) = pki.write_to(&keys).unwrap();
    let (_, ccert, ckey) = client_pki.write_to(&keys.join("client")).unwrap();
    let tls =
        burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), &[b"http/1.1"])
            .unwrap();
    let rt = Recorder::start_with(Some(tls)).await.unwrap();
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let good_pin = format!(
        "sha256//{}",
        b64(&burrow_transport::pin::pin_of(&pki.chain_der[0]).unwrap())
    );
    let bad_pin = format!("sha256//{}", b64(&[9u8; 32]));
    let (ca, ccert, ckey) = (
        ca.display().to_string(),
        ccert.display().to_string(),
        ckey.display().to_string(),
    );
    let cases: Vec<Vec<String>> = [
        vec!["-d", "a=1", "-d", "b=2", "B/echo"],
        vec!["-d", "@data.txt", "--data-binary", "@data.txt", "B/echo"],
        vec![
            "--data-urlencode",
            "q=a b&c",
            "--data-urlencode",
            "=x/y",
            "--data-raw",
            "@r",
            "B/echo",
        ],
        vec!["-G", "-d", "a=1", "--data-urlencode", "b=c d", "B/echo?x=0"],
        vec!["--json", "{\"a\":1}", "B/echo"],
        vec![
            "-u",
            "user:pw",
            "-e",
            "http://ref.example/",
            "-A",
            "agent/9",
            "-H",
            "X-A: 1",
            "-H",
            "Accept:",
            "B/echo",
        ],
        vec!["-X", "PUT", "-d", "body", "B/echo"],
        vec!["-I", "B/bytes/5"],
        vec!["-T", "up.txt", "B/dir/"],
        vec!["-r", "0-9", "B/range/100"],
        vec!["-L", "B/redirect/2"],
        vec!["-L", "-d", "x=1", "B/to?/echo"],
        vec!["-L", "-d", "x=1", "--post302", "B/to?/echo"],
        vec!["-L", "-d", "x=1", "B/303?/echo"],
        vec!["-b", "a=1; b=2", "B/echo"],
        vec!["--oauth2-bearer", "tok", "B/echo"],
        vec![
            "-F",
            "name=value",
            "-F",
            "file=@up.txt;type=text/plain",
            "B/echo",
        ],
        vec!["-i", "B/redirect/1"],
        vec!["-i", "-L", "B/redirect/1"],
        vec!["-w", wo, "B/redirect/1"],
        vec!["-w", wo, "-L", "B/redirect/3"],
        vec!["-w", wo, "-o", "/dev/null", "B/range/100"],
        vec!["B/range/[1-3]0", "B/echo"],
        vec!["-f", "B/status/404"],
        vec!["--fail-with-body", "B/status/404"],
        vec!["-L", "--max-redirs", "1", "B/redirect/3"],
        vec!["-i", "-L", "--max-redirs", "1", "B/redirect/3"],
        vec![
            "-w",
            "%{http_code} %{num_redirects}",
            "-L",
            "--max-redirs",
            "1",
            "B/redirect/3",
        ],
        vec!["-i", "-f", "B/status/404"],
        vec!["-i", "B/spelled"],
        vec!["-L", "-X", "OPTIONS", "-d", "x=1", "B/to?/echo"],
        vec!["-L", "-X", "DELETE", "B/303?/echo"],
        vec!["-L", "-X", "PATCH", "-d", "x=1", "B/307?/echo"],
        vec!["-i", "-L", "B/to?/spelled"],
        vec!["-I", "-d", "a=1", "B/echo"],
        vec!["-A", "", "B/echo"],
        vec!["-C", "5", "B/bytes/100"],
        vec!["--max-filesize", "10", "B/bytes/100"],
        vec!["-O", "B/"],
        vec!["http://127.0.0.1:1/"],
        vec!["nosuchproto://example.invalid/"],
        vec!["--compressed", "B/gzip"],
        vec![
            "--compressed",
            "-i",
            "-w",
            "%{size_download} %header{content-encoding}",
            "B/gzip",
        ],
        vec!["-D", "-", "B/bytes/3"],
        vec!["-G", "--data-urlencode", "a@data.txt", "B/echo"],
        vec!["-d", "", "B/echo"],
        vec!["--url", "B/echo", "B/{a,b}/x"],
        vec!["-H", "X-Empty;", "-H", "User-Agent:", "B/echo"],
        vec!["-e", "http://r/", "-L", "B/redirect/1"],
        vec!["-u", "u:p", "-L", "B/to?http://localhost:PORT/echo"],
        vec![
            "-u",
            "u:p",
            "--location-trusted",
            "B/to?http://localhost:PORT/echo",
        ],
        vec!["-e", ";auto", "-L", "B/redirect/2"],
        vec!["-e", "http://first.example/;auto", "-L", "B/to?/echo"],
        // Files written.
        vec!["-o", "out.bin", "B/bytes/50"],
        vec!["-O", "B/files/name.txt"],
        vec!["--remote-name-all", "B/a/x.txt", "B/a/y.txt"],
        vec!["-O", "-J", "B/disposition/served.txt"],
        vec![
            "--output-dir",
            "sub",
            "--create-dirs",
            "-o",
            "deep/f.bin",
            "B/bytes/5",
        ],
        vec!["-L", "-D", "heads.txt", "B/redirect/1"],
        vec!["B/bytes/[1-2]0", "-o", "g_#1.bin"],
        vec!["-c", "jar.txt", "B/setcookie?k=v"],
        vec!["-C", "-", "-o", "part.bin", "B/range/100"],
        vec!["-w", "%{filename_effective}", "-O", "B/f/n.txt"],
        // Config files, names and addresses, retries, limits.
        vec!["-K", "opts.cfg"],
        vec![
            "--resolve",
            "burrow.test:PORT:127.0.0.1",
            "http://burrow.test:PORT/echo",
        ],
        vec![
            "--connect-to",
            "burrow.test:PORT:127.0.0.1:PORT",
            "http://burrow.test:PORT/echo",
        ],
        vec!["-4", "http://localhost:PORT/echo"],
        vec!["--retry", "2", "--retry-delay", "0", "B/flaky/1"],
        vec!["--retry", "1", "--retry-delay", "0", "B/flaky/3"],
        vec!["--max-filesize", "1k", "B/bytes/2000"],
        vec!["--fail-early", "-f", "B/status/404", "B/echo"],
        vec!["-f", "B/status/404", "B/echo"],
        // Proxies (curl tunnels http:// through an HTTP proxy only with -p; burrow always
        // does), transfers at once, rates, meters and traces.
        vec!["-p", "-x", "http://HP", "B/echo"],
        vec!["-p", "--proxy1.0", "HP", "B/echo"],
        vec!["-p", "--proxy", "HP", "-w", wo, "B/redirect/1"],
        vec!["--socks5-hostname", "SP", "B/echo"],
        vec!["--socks5", "SP", "http://localhost:PORT/echo"],
        vec!["--socks4a", "SP", "B/bytes/20"],
        vec!["-x", "socks5h://SP", "B/range/[1-2]0", "-o", "s_#1.bin"],
        vec!["-x", "socks5h://SP", "--noproxy", "127.0.0.1", "B/echo"],
        vec!["-Z", "B/bytes/[1-4]00", "-o", "z_#1.bin"],
        vec!["-Z", "--parallel-max", "1", "B/echo", "B/bytes/7"],
        vec!["--limit-rate", "100k", "B/bytes/2000"],
        vec!["--no-progress-meter", "-o", "m.bin", "B/bytes/300"],
        vec!["-#", "-o", "m.bin", "B/bytes/300"],
        vec![
            "--retry-connrefused",
            "--retry",
            "1",
            "--retry-delay",
            "0",
            "http://127.0.0.1:1/",
        ],
        vec!["--tlsv1.2", "--tls-max", "1.3", "B/echo"],
        vec!["--keepalive-time", "30", "--tcp-nodelay", "B/echo"],
        vec!["--no-keepalive", "B/echo"],
        vec!["--local-port", "41000-41100", "B/echo"],
        vec!["--interface", "127.0.0.1", "B/echo"],
        vec!["--basic", "-u", "a:b", "B/echo"],
        vec!["--proxy-basic", "-p", "-x", "http://u:p@HP", "B/echo"],
        vec!["--create-dirs", "-o", "a/b/c.bin", "B/bytes/3"],
        vec!["--globoff", "B/{x}"],
        vec!["-I", "-L", "B/redirect/2"],
        vec!["-s", "-S", "http://127.0.0.1:1/"],
        vec!["--url", "B/echo", "--url", "B/bytes/2"],
        vec!["-r", "-20", "B/range/100"],
        vec!["--max-time", "10", "--connect-timeout", "5", "B/echo"],
        // TLS.
        vec![
            "--cacert",
            "CA",
            "-w",
            "%{scheme} %{http_version}",
            "TB/echo",
        ],
        vec!["TB/echo"],
        vec!["-k", "TB/bytes/5"],
        vec!["--cacert", "CA", "--tlsv1.3", "TB/echo"],
        vec!["--cacert", "CA", "--tlsv1.2", "--tls-max", "1.2", "TB/echo"],
        vec!["--cacert", "CA", "--pinnedpubkey", "GOODPIN", "TB/echo"],
        vec!["--cacert", "CA", "--pinnedpubkey", "BADPIN", "TB/echo"],
        vec![
            "--cacert", "CA", "--cert", "CCERT", "--key", "CKEY", "TB/echo",
        ],
        vec!["--cacert", "CA", "--http1.1", "-i", "TB/redirect/1"],
        vec![
            "--cacert",
            "CA",
            "--resolve",
            "localhost:TPORT:127.0.0.1",
            "TB/echo",
        ],
        vec!["--cacert", "CA", "-L", "TB/to?/echo", "-d", "a=1"],
    ]
    .iter()
    .map(|c| {
        c.iter()
            .map(|a| {
                a.replace("TB/", &format!("https://localhost:{}/", rt.addr.port()))
                    .replace("B/", &format!("{b}/"))
                    .replace("TPORT", &rt.addr.port().to_string())
                    .replace("PORT", &r.addr.port().to_string())
                    .replace("GOODPIN", &good_pin)
                    .replace("BADPIN", &bad_pin)
                    .replace("CCERT", &ccert)
                    .replace("CKEY", &ckey)
                    .replace("HP", &hp.to_string())
                    .replace("SP", &sp.to_string())
                    .replace("CA", &ca)
            })
            .collect()
    })
    .collect();
    let mut failures = Vec::new();
    for args in cases {
        let keep_ua = args.iter().any(|a| a == "-A");
        let mut full = vec!["-s".to_string()];
        full.extend(args.clone());
        let (cdir, odir) = (workdir(&dir, "curl", &b), workdir(&dir, "burrow", &b));
        r.take();
        rt.take();
        let seen = |r: &Recorder, rt: &Recorder| -> Vec<String> {
            r.take()
                .iter()
                .chain(rt.take().iter())
                .map(|q| normal(q, keep_ua))
                .collect()
        };
        let c = exec("curl", full.clone(), cdir.clone()).await;
        let c_reqs = seen(&r, &rt);
        let o = exec(env!("CARGO_BIN_EXE_burrow"), full, odir.clone()).await;
        let o_reqs = seen(&r, &rt);
        // Transfers at once arrive in any order.
        let (mut c_reqs, mut o_reqs) = (c_reqs, o_reqs);
        if args.iter().any(|a| a == "-Z") {
            c_reqs.sort();
            o_reqs.sort();
        }
        let mut diffs = Vec::new();
        let (cf, of) = (files(&cdir, &INPUTS), files(&odir, &INPUTS));
        if cf != of {
            let names = |f: &[(String, Vec<u8>)]| -> Vec<String> {
                f.iter()
                    .map(|(n, b)| format!("{n}: {:?}", String::from_utf8_lossy(b)))
                    .collect()
            };
            diffs.push(format!(
                "files:\ncurl:   {:?}\nburrow: {:?}",
                names(&cf),
                names(&of)
            ));
        }
        if c_reqs != o_reqs {
            diffs.push(format!(
                "requests:\ncurl:   {c_reqs:#?}\nburrow: {o_reqs:#?}"
            ));
        }
        let (co, oo) = (
            normal_output(&c.stdout, keep_ua),
            normal_output(&o.stdout, keep_ua),
        );
        let (co, oo) = if args.iter().any(|a| a.starts_with("-F")) {
            // The echoed multipart body carries each client's own boundary.
            (String::new(), String::new())
        } else {
            (co, oo)
        };
        if co != oo {
            diffs.push(format!("output:\ncurl:   {co:?}\nburrow: {oo:?}"));
        }
        if c.status.code() != o.status.code() {
            diffs.push(format!(
                "exit: curl {:?}, burrow {:?} ({})",
                c.status.code(),
                o.status.code(),
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        if !diffs.is_empty() {
            failures.push(format!("{args:?}\n{}", diffs.join("\n")));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
