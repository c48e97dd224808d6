//! The `burrow` binary against Debian's curl, one command line at a time: both run with the
//! same options against an origin that records every request as it arrived, and must send
//! the same requests (method, target, headers, body), write the same output and exit with
//! the same code. Run by `scripts/peers.sh`, which installs curl; ignored otherwise.
//!
//! What is normalised, and why: `User-Agent` (each names itself) unless `-A` sets it;
//! header order (HTTP does not order different fields); multipart boundaries (random);
//! header-name case in `-i` output (burrow's `http` types lower-case names; curl prints
//! them as received); the order of `Accept-Encoding`'s list (no q-values: all equal);
//! the case of percent-escapes (equivalent, RFC 3986 §2.1; curl mixes both).
//!
//! Known and kept: `-X POST` with no data sends `Content-Length: 0` (RFC 9110 §8.6 says a
//! client should), where curl sends no length.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Output, Stdio};

use burrow_examples::recorder::{Recorded, Recorder};

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

/// Output as compared: header lines (of `-i` heads and of echoed requests) with names
/// lower-cased and in order, the user agent dropped unless asked for.
fn normal_output(b: &[u8], keep_ua: bool) -> String {
    let mut lines: Vec<String> = String::from_utf8_lossy(b)
        .split('\n')
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| keep_ua || !l.to_ascii_lowercase().starts_with("user-agent:"))
        .map(|l| match l.split_once(": ") {
            Some((n, v)) if !n.contains(' ') => format!("{}: {v}", n.to_ascii_lowercase()),
            _ => upper_escapes(l),
        })
        .collect();
    lines.sort();
    lines.join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl: run scripts/peers.sh"]
async fn burrow_sends_and_writes_what_curl_does() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = std::env::temp_dir().join(format!("burrow-vs-curl-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.txt"), "one\r\ntwo\n").unwrap();
    std::fs::write(dir.join("up.txt"), "uploaded").unwrap();
    let wo = "%{http_code} %{http_version} %{size_download} %{num_redirects} \
              [%{redirect_url}] [%{content_type}] %{exitcode} %{url_effective} \
              %header{content-length} %{method}";
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
        vec!["-C", "5", "B/bytes/100"],
        vec!["--max-filesize", "10", "B/bytes/100"],
        vec!["-O", "B/"],
        vec!["http://127.0.0.1:1/"],
        vec!["nosuchproto://example.invalid/"],
        vec!["--compressed", "B/gzip"],
        vec!["-D", "-", "B/bytes/3"],
        vec!["-G", "--data-urlencode", "a@data.txt", "B/echo"],
        vec!["-d", "", "B/echo"],
        vec!["--url", "B/echo", "B/{a,b}/x"],
        vec!["-H", "X-Empty;", "-H", "User-Agent:", "B/echo"],
        vec!["-e", "http://r/", "-L", "B/redirect/1"],
        vec!["-u", "u:p", "-L", "B/to?http://localhost:PORT/echo"],
    ]
    .iter()
    .map(|c| {
        c.iter()
            .map(|a| {
                a.replace("B/", &format!("{b}/"))
                    .replace("PORT", &r.addr.port().to_string())
            })
            .collect()
    })
    .collect();
    let mut failures = Vec::new();
    for args in cases {
        let keep_ua = args.iter().any(|a| a == "-A");
        let mut full = vec!["-s".to_string()];
        full.extend(args.clone());
        let c = exec("curl", full.clone(), dir.clone()).await;
        let c_reqs: Vec<String> = r.take().iter().map(|q| normal(q, keep_ua)).collect();
        let o = exec(env!("CARGO_BIN_EXE_burrow"), full, dir.clone()).await;
        let o_reqs: Vec<String> = r.take().iter().map(|q| normal(q, keep_ua)).collect();
        let mut diffs = Vec::new();
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
