//! curl's options in the `burrow` binary, against an origin that records every request as
//! it arrived: what goes on the wire, what lands in files and on the terminal, exit codes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use burrow_examples::origin::pattern;
mod recorder;
use recorder::{Recorded, Recorder};

async fn run_in(dir: Option<PathBuf>, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_burrow"));
        c.args(&args).stdin(Stdio::null());
        if let Some(d) = dir {
            c.current_dir(d);
        }
        c.output().unwrap()
    })
    .await
    .unwrap()
}

async fn run(args: &[&str]) -> Output {
    run_in(None, args.iter().map(|s| s.to_string()).collect()).await
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct Dir(PathBuf);
impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
fn tempdir(tag: &str) -> Dir {
    let p = std::env::temp_dir().join(format!("burrow-opts-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    Dir(p)
}

fn only(r: &Recorder) -> Recorded {
    let mut all = r.take();
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_follow_as_curl_does() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    // Without -L the 302 is the answer; -w tells where it pointed.
    let out = run(&[
        &format!("{b}/redirect/3"),
        "-w",
        "|%{http_code}|%{redirect_url}",
    ])
    .await;
    assert_eq!(text(&out.stdout), format!("moved\n|302|{b}/redirect/2"));
    r.take();
    // -L follows every hop; -i shows every head.
    let out = run(&[
        &format!("{b}/redirect/3"),
        "-L",
        "-i",
        "-w",
        "%{num_redirects} %{url_effective}",
    ])
    .await;
    let s = text(&out.stdout);
    assert_eq!(s.matches("HTTP/1.1 302 Found\r\n").count(), 3, "{s}");
    assert!(s.contains("HTTP/1.1 200 OK\r\n"), "{s}");
    assert!(s.ends_with(&format!("done\n3 {b}/redirect/0")), "{s}");
    assert_eq!(r.take().len(), 4);
    // --max-redirs: one more is exit 47.
    let out = run(&[&format!("{b}/redirect/3"), "-L", "--max-redirs", "2"]).await;
    assert_eq!(out.status.code(), Some(47), "{}", text(&out.stderr));
    r.take();
    // A POST redirected by 302 becomes a GET without the body, unless --post302.
    let out = run(&[&format!("{b}/to?/echo"), "-L", "-d", "x=1"]).await;
    assert!(
        text(&out.stdout).starts_with("GET /echo\n"),
        "{}",
        text(&out.stdout)
    );
    let out = run(&[&format!("{b}/to?/echo"), "-L", "-d", "x=1", "--post302"]).await;
    let s = text(&out.stdout);
    assert!(s.starts_with("POST /echo\n") && s.ends_with("\nx=1"), "{s}");
    // -X names every request's method; which redirects drop the body is the options'
    // (-d: a POST's), as curl: PUT again without the body after a 302, DELETE after 303.
    // (An empty PUT or POST says Content-Length: 0, RFC 9110 §8.6, where curl says none.)
    let bodiless = |out: &Output, method: &str| {
        let s = text(&out.stdout);
        assert!(s.starts_with(&format!("{method} /echo\n")), "{s}");
        let length = s.lines().find(|l| l.starts_with("content-length"));
        assert!(s.ends_with("\n\n"), "no body: {s}");
        assert!(matches!(length, None | Some("content-length: 0")), "{s}");
    };
    let out = run(&[&format!("{b}/to?/echo"), "-L", "-X", "PUT", "-d", "x=1"]).await;
    bodiless(&out, "PUT");
    let out = run(&[&format!("{b}/303?/echo"), "-L", "-X", "DELETE"]).await;
    bodiless(&out, "DELETE");
    let out = run(&[&format!("{b}/301?/echo"), "-L", "-X", "POST", "-d", "x=1"]).await;
    bodiless(&out, "POST");
    let out = run(&[&format!("{b}/307?/echo"), "-L", "-X", "PUT", "-d", "x=1"]).await;
    let s = text(&out.stdout);
    assert!(s.starts_with("PUT /echo\n") && s.ends_with("\nx=1"), "{s}");
    // 307 keeps method and body.
    let out = run(&[&format!("{b}/307?/echo"), "-L", "--data-raw", "@kept"]).await;
    let s = text(&out.stdout);
    assert!(
        s.starts_with("POST /echo\n") && s.ends_with("\n@kept"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_options_shape_what_is_sent() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("req");
    let data = dir.0.join("data.txt");
    std::fs::write(&data, "line1\r\nline2\n").unwrap();
    let hfile = dir.0.join("headers.txt");
    std::fs::write(&hfile, "X-From-File: 1\nX-Other: two\n").unwrap();

    let out = run(&[
        &format!("{b}/echo"),
        "-A",
        "agent/1",
        "-e",
        "http://from.example/",
        "-u",
        "user:pa ss",
        "-H",
        &format!("@{}", hfile.display()),
        "-d",
        &format!("@{}", data.display()),
        "-d",
        "b=2",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = only(&r);
    assert_eq!(q.method, "POST");
    assert_eq!(q.header("user-agent"), Some("agent/1"));
    assert_eq!(q.header("referer"), Some("http://from.example/"));
    // base64("user:pa ss")
    assert_eq!(q.header("authorization"), Some("Basic dXNlcjpwYSBzcw=="));
    assert_eq!(q.header("x-from-file"), Some("1"));
    assert_eq!(q.header("x-other"), Some("two"));
    assert_eq!(
        q.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    // -d @file loses CR and LF; pieces join with &.
    assert_eq!(q.body, b"line1line2&b=2");

    // -G moves the data to the query; --data-urlencode encodes as curl does.
    run(&[
        &format!("{b}/echo?x=0"),
        "-G",
        "-d",
        "a=1",
        "--data-urlencode",
        "q=a b&c",
        "--oauth2-bearer",
        "t0k",
    ])
    .await;
    let q = only(&r);
    assert_eq!(q.method, "GET");
    assert_eq!(q.target, "/echo?x=0&a=1&q=a+b%26c");
    assert_eq!(q.header("authorization"), Some("Bearer t0k"));
    assert!(q.body.is_empty());

    // --json sets both content type and accept.
    run(&[&format!("{b}/echo"), "--json", "{\"a\":", "--json", "1}"]).await;
    let q = only(&r);
    assert_eq!(q.header("content-type"), Some("application/json"));
    assert_eq!(q.header("accept"), Some("application/json"));
    assert_eq!(q.body, b"{\"a\":1}");

    // -I is HEAD, -X replaces the method name.
    let out = run(&[&format!("{b}/echo"), "-I"]).await;
    assert!(text(&out.stdout).starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(only(&r).method, "HEAD");
    run(&[&format!("{b}/echo"), "-X", "PATCH", "-d", "p"]).await;
    let q = only(&r);
    assert_eq!((q.method.as_str(), q.body.as_slice()), ("PATCH", &b"p"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_and_uploads() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("form");
    let up = dir.0.join("up.txt");
    std::fs::write(&up, "file body").unwrap();
    let out = run(&[
        &format!("{b}/echo"),
        "-F",
        "name=value",
        "-F",
        &format!("doc=@{};type=text/x-mine", up.display()),
        "-F",
        &format!("inline=<{}", up.display()),
        "--form-string",
        "raw=@not-a-file",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = only(&r);
    assert_eq!(q.method, "POST");
    let ct = q.header("content-type").unwrap().to_string();
    let boundary = ct.split("boundary=").nth(1).unwrap().to_string();
    assert!(ct.starts_with("multipart/form-data"), "{ct}");
    let body = text(&q.body);
    let parts: Vec<&str> = body.split(&format!("--{boundary}")).collect();
    assert_eq!(parts.len(), 6, "{body}"); // preamble, 4 parts, closing
    assert!(
        parts[1].contains("name=\"name\"\r\n\r\nvalue\r\n"),
        "{}",
        parts[1]
    );
    assert!(
        parts[2].contains("name=\"doc\"; filename=\"up.txt\"")
            && parts[2]
                .to_ascii_lowercase()
                .contains("content-type: text/x-mine")
            && parts[2].contains("\r\n\r\nfile body\r\n"),
        "{}",
        parts[2]
    );
    assert!(
        parts[3].contains("name=\"inline\"\r\n\r\nfile body\r\n") && !parts[3].contains("filename"),
        "{}",
        parts[3]
    );
    assert!(parts[4].contains("\r\n\r\n@not-a-file\r\n"), "{}", parts[4]);
    assert_eq!(parts[5], "--\r\n");

    // -T: PUT of the file; a URL ending in / gets its name.
    let out = run(&[&format!("{b}/dir/"), "-T", &up.display().to_string()]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = only(&r);
    assert_eq!(
        (q.method.as_str(), q.target.as_str()),
        ("PUT", "/dir/up.txt")
    );
    assert_eq!(q.body, b"file body");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ranges_and_resumed_downloads() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("range");
    let out = run(&[
        &format!("{b}/range/1000"),
        "-r",
        "10-19",
        "-w",
        "%{http_code}",
    ])
    .await;
    let mut want = pattern(10, 10);
    want.extend_from_slice(b"206");
    assert_eq!(out.stdout, want);
    assert_eq!(only(&r).header("range"), Some("bytes=10-19"));

    // -C - continues a partial file from its size.
    let file = dir.0.join("part.bin");
    std::fs::write(&file, pattern(0, 300)).unwrap();
    let f = file.display().to_string();
    let out = run(&[&format!("{b}/range/1000"), "-C", "-", "-o", &f]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(only(&r).header("range"), Some("bytes=300-"));
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 1000));
    // A server that ignores the range: exit 33, the file is left as it was.
    std::fs::write(&file, pattern(0, 300)).unwrap();
    let out = run(&[&format!("{b}/bytes/1000"), "-C", "300", "-o", &f]).await;
    assert_eq!(out.status.code(), Some(33), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_globs_and_output_names() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("out");
    let d = dir.0.display().to_string();
    // A glob with #1 in the name; every transfer on one reused connection.
    let out = run(&[
        &format!("{b}/bytes/[1-3]"),
        "-o",
        &format!("{d}/n_#1.bin"),
        "-w",
        "%{filename_effective} ",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for n in 1..=3 {
        assert_eq!(
            std::fs::read(dir.0.join(format!("n_{n}.bin"))).unwrap(),
            pattern(0, n)
        );
    }
    assert_eq!(
        text(&out.stdout),
        format!("{d}/n_1.bin {d}/n_2.bin {d}/n_3.bin ")
    );
    let conns: Vec<usize> = r.take().iter().map(|q| q.conn).collect();
    assert_eq!(conns.len(), 3);
    assert!(
        conns.iter().all(|c| *c == conns[0]),
        "one connection: {conns:?}"
    );

    // Outputs pair with URLs in order: -o, then -O, then standard output.
    let out = run_in(
        Some(dir.0.clone()),
        vec![
            format!("{b}/bytes/4"),
            "-o".into(),
            "first.bin".into(),
            format!("{b}/files/second.txt"),
            "-O".into(),
            "--url".into(),
            format!("{b}/bytes/5"),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(dir.0.join("first.bin")).unwrap(),
        pattern(0, 4)
    );
    assert!(text(&std::fs::read(dir.0.join("second.txt")).unwrap())
        .starts_with("GET /files/second.txt\n"));
    assert_eq!(out.stdout, pattern(0, 5));

    // --remote-name-all with --output-dir and --create-dirs; -J takes the server's name.
    let out = run(&[
        "--remote-name-all",
        "--output-dir",
        &format!("{d}/made/here"),
        "--create-dirs",
        &format!("{b}/a/one.txt"),
        &format!("{b}/a/two.txt"),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.0.join("made/here/one.txt").exists() && dir.0.join("made/here/two.txt").exists());
    let args = vec![
        "-O".to_string(),
        "-J".into(),
        format!("{b}/disposition/served.txt"),
    ];
    let out = run_in(Some(dir.0.clone()), args.clone()).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        std::fs::read(dir.0.join("served.txt")).unwrap(),
        b"disposed\n"
    );
    // -J never overwrites.
    let out = run_in(Some(dir.0.clone()), args).await;
    assert_eq!(out.status.code(), Some(23), "{}", text(&out.stderr));
    // -O with no file name in the URL.
    let out = run_in(Some(dir.0.clone()), vec!["-O".into(), format!("{b}/")]).await;
    assert_eq!(out.status.code(), Some(23));
    // The exit code is the last transfer's.
    let out = run(&["-s", &format!("{b}/bytes/1"), "http://127.0.0.1:1/"]).await;
    assert_eq!(out.status.code(), Some(7));
    let out = run(&["-s", "http://127.0.0.1:1/", &format!("{b}/bytes/1")]).await;
    assert_eq!(out.status.code(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_write_out_and_failures() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("wo");
    let heads = dir.0.join("heads.txt");
    let out = run(&[
        &format!("{b}/redirect/1"),
        "-L",
        "-D",
        &heads.display().to_string(),
        "-w",
        "\\n%{http_code} %{http_version} %{size_download} %{size_header} %{num_redirects} \
         %{content_type}|%header{x-conn}|%{remote_ip}:%{remote_port} %{local_port} %{exitcode}\
         %{stderr}to stderr %{method}",
    ])
    .await;
    let h = text(&std::fs::read(&heads).unwrap());
    assert!(
        h.starts_with("HTTP/1.1 302 Found\r\n") && h.contains("HTTP/1.1 200 OK\r\n"),
        "{h}"
    );
    let s = text(&out.stdout);
    let fields: Vec<&str> = s.strip_prefix("done\n\n").unwrap().split(' ').collect();
    assert_eq!(
        fields[..5],
        ["200", "1.1", "5", &h.len().to_string(), "1"],
        "{s}"
    );
    // No content type, no x-conn header on this answer.
    assert_eq!(fields[5], format!("||{}", r.addr), "{s}");
    assert!(fields[6].parse::<u16>().unwrap() > 0, "{s}");
    assert_eq!(fields[7], "0");
    assert_eq!(text(&out.stderr), "to stderr GET");

    // Timings are real and in order; JSON holds them.
    let out = run(&[
        &format!("{b}/bytes/100000"),
        "-o",
        "/dev/null",
        "-w",
        "%{time_namelookup} %{time_connect} %{time_appconnect} %{time_pretransfer} \
         %{time_starttransfer} %{time_total} %{speed_download}",
    ])
    .await;
    let t: Vec<f64> = text(&out.stdout)
        .split(' ')
        .map(|x| x.parse().unwrap())
        .collect();
    assert!(t[1] > 0.0, "connecting takes time: {t:?}");
    assert_eq!(t[2], 0.0, "no TLS: {t:?}");
    assert!(
        t[0] <= t[1] && t[1] <= t[3] && t[3] <= t[4] && t[4] <= t[5],
        "{t:?}"
    );
    assert!(t[6] > 0.0);
    let fmt = dir.0.join("fmt.txt");
    std::fs::write(&fmt, "%{json}").unwrap();
    let out = run(&[
        &format!("{b}/status/404"),
        "-o",
        "/dev/null",
        "-w",
        &format!("@{}", fmt.display()),
    ])
    .await;
    let j = text(&out.stdout);
    assert!(j.starts_with('{') && j.ends_with('}'), "{j}");
    for needle in [
        "\"http_code\":404",
        "\"exitcode\":0",
        "\"errormsg\":null",
        "\"num_connects\":1",
    ] {
        assert!(j.contains(needle), "{needle}: {j}");
    }

    // -f: nothing written, 22. --fail-with-body: the body, then 22.
    let out = run(&[
        &format!("{b}/status/404"),
        "-f",
        "-w",
        "%{exitcode} %{errormsg}",
    ])
    .await;
    assert_eq!(out.status.code(), Some(22));
    assert_eq!(
        text(&out.stdout),
        "22 The requested URL returned error: 404"
    );
    let out = run(&[&format!("{b}/status/404"), "--fail-with-body"]).await;
    assert_eq!(out.status.code(), Some(22));
    assert_eq!(text(&out.stdout), "status 404\n");
    // --max-filesize: refused from Content-Length before the body.
    let out = run(&[&format!("{b}/bytes/1000"), "--max-filesize", "999"]).await;
    assert_eq!(out.status.code(), Some(63));
    assert!(out.stdout.is_empty());
    let out = run(&[&format!("{b}/bytes/1000"), "--max-filesize", "1k"]).await;
    assert!(out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_of_transient_failures() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let out = run(&[
        &format!("{b}/flaky/2"),
        "--retry",
        "3",
        "--retry-delay",
        "0",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Like curl, each transient answer's body is written before the retry.
    assert_eq!(text(&out.stdout), "busy\nbusy\nok after 3\n");
    let err = text(&out.stderr);
    assert_eq!(err.matches("Will retry in 0 seconds").count(), 2, "{err}");
    assert!(
        err.contains("3 retries left") && err.contains("2 retries left"),
        "{err}"
    );
    assert_eq!(r.take().len(), 3);
    // Retries run out: the last answer is the result (no -f: exit 0). Retry-After is kept.
    let out = run(&[&format!("{b}/status/503"), "--retry", "2"]).await;
    assert_eq!(text(&out.stdout), "status 503\n".repeat(3));
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(r.take().len(), 3);
    // A 404 is not transient, unless --retry-all-errors (with -f, it is an error).
    run(&[&format!("{b}/status/404"), "--retry", "2", "-f"]).await;
    assert_eq!(r.take().len(), 1);
    let out = run(&[
        &format!("{b}/status/404"),
        "--retry",
        "2",
        "--retry-delay",
        "0",
        "-f",
        "--retry-all-errors",
    ])
    .await;
    assert_eq!(out.status.code(), Some(22));
    assert_eq!(r.take().len(), 3);
    // --retry-max-time stops the retries that would end past it.
    let out = run(&[
        &format!("{b}/flaky/5"),
        "--retry",
        "5",
        "--retry-delay",
        "30",
        "--retry-max-time",
        "10",
        "-s",
    ])
    .await;
    assert_eq!(r.take().len(), 1, "{}", text(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookies_compression_and_config_files() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("jar");
    let jar = dir.0.join("jar.txt");
    let j = jar.display().to_string();
    let out = run(&[&format!("{b}/setcookie?k=v1"), "-c", &j]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let saved = text(&std::fs::read(&jar).unwrap());
    assert!(saved.starts_with("# Netscape HTTP Cookie File"), "{saved}");
    assert!(
        saved.contains("127.0.0.1\tFALSE\t/\tFALSE\t0\tk\tv1"),
        "{saved}"
    );
    r.take();
    run(&[&format!("{b}/echo"), "-b", &j]).await;
    assert_eq!(only(&r).header("cookie"), Some("k=v1"));
    run(&[&format!("{b}/echo"), "-b", "a=1; b=2"]).await;
    assert_eq!(only(&r).header("cookie"), Some("a=1; b=2"));
    // Cookies one transfer gets are sent by the next (the engine is on with -b FILE, even
    // a missing one, as in curl).
    run(&[
        &format!("{b}/setcookie?in=chain"),
        &format!("{b}/echo"),
        "-b",
        "/nonexistent",
        "-o",
        "/dev/null",
    ])
    .await;
    let all = r.take();
    assert_eq!(all[1].header("cookie"), Some("in=chain"));

    // --compressed asks for and decodes gzip; without it the bytes arrive as sent.
    let out = run(&[&format!("{b}/gzip"), "--compressed"]).await;
    assert_eq!(text(&out.stdout), "hello gzip\n");
    assert!(only(&r).header("accept-encoding").unwrap().contains("gzip"));
    let out = run(&[&format!("{b}/gzip")]).await;
    assert_eq!(out.stdout, recorder::GZIP_HELLO);
    assert_eq!(only(&r).header("accept-encoding"), None);

    // -K: options from a file.
    let cfg = dir.0.join("opts.cfg");
    std::fs::write(
        &cfg,
        format!(
            "# options\nurl = \"{b}/echo\"\n-A \"from config\"\nwrite-out = \"%{{http_code}}\"\n"
        ),
    )
    .unwrap();
    let out = run(&["-K", &cfg.display().to_string(), "-s"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("200"));
    assert_eq!(only(&r).header("user-agent"), Some("from config"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_addresses_and_sockets() {
    let r = Recorder::start().await.unwrap();
    let port = r.addr.port();
    // --resolve: the name goes to the given address; Host names the URL.
    let url = format!("http://burrow.test:{port}/echo");
    let out = run(&[&url, "--resolve", &format!("burrow.test:{port}:127.0.0.1")]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        only(&r).header("host"),
        Some(format!("burrow.test:{port}").as_str())
    );
    // --connect-to: another host and port for the connection.
    let out = run(&[
        "http://elsewhere.test:1/echo",
        "--connect-to",
        &format!("elsewhere.test:1:127.0.0.1:{port}"),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(only(&r).header("host"), Some("elsewhere.test:1"));
    // -6 with only an IPv4 address: cannot resolve (6). -4 works.
    let resolve = format!("burrow.test:{port}:127.0.0.1");
    let out = run(&[&url, "--resolve", &resolve, "-6"]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let out = run(&[
        &url,
        "--resolve",
        &resolve,
        "-4",
        "--local-port",
        "40000-40100",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = only(&r);
    assert_eq!(q.method, "GET");
    let out = run(&[
        &url,
        "--resolve",
        &resolve,
        "--local-port",
        "40000-40100",
        "-w",
        "%{local_port}",
        "-o",
        "/dev/null",
    ])
    .await;
    let p: u16 = text(&out.stdout).parse().unwrap();
    assert!((40000..=40100).contains(&p), "{p}");
    // --interface: an address, or an interface (SO_BINDTODEVICE).
    let resolved = ["--resolve", resolve.as_str()];
    for i in ["127.0.0.1", "host!127.0.0.1", "lo", "if!lo"] {
        let mut a = vec![url.as_str(), "--interface", i, "-o", "/dev/null"];
        a.extend(resolved);
        let out = run(&a).await;
        assert!(out.status.success(), "{i}: {}", text(&out.stderr));
    }
    r.take();
    let mut a = vec![url.as_str(), "--interface", "nosuchif0"];
    a.extend(resolved);
    let out = run(&a).await;
    assert_eq!(out.status.code(), Some(7));
    assert!(
        text(&out.stderr).contains("nosuchif0"),
        "{}",
        text(&out.stderr)
    );
    assert!(r.take().is_empty());

    // --unix-socket: HTTP over a Unix domain socket.
    let dir = tempdir("unix");
    let sock = dir.0.join("s.sock");
    let l = tokio::net::UnixListener::bind(&sock).unwrap();
    let srv = tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).await.unwrap();
            buf.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nunix")
            .await
            .unwrap();
        String::from_utf8_lossy(&buf).into_owned()
    });
    let out = run(&[
        "--unix-socket",
        &sock.display().to_string(),
        "http://sock.test/x",
    ])
    .await;
    assert_eq!(text(&out.stdout), "unix", "{}", text(&out.stderr));
    let head = srv.await.unwrap();
    assert!(
        head.starts_with("GET /x HTTP/1.1\r\n")
            && head.to_lowercase().contains("host: sock.test\r\n"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meters_traces_rates_and_prompts() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("meter");
    let f = dir.0.join("o.bin").display().to_string();
    // Standard error is a pipe here: no meter is drawn into it.
    let out = run(&[&format!("{b}/bytes/200000"), "-o", &f]).await;
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
    // On a terminal (script gives one) the meter shows, and -s hides it.
    let cmd = format!("{} {b}/bytes/200000 -o {f}", env!("CARGO_BIN_EXE_burrow"));
    let tty = |c: String| {
        tokio::task::spawn_blocking(move || {
            Command::new("script")
                .args(["-qec", &c, "/dev/null"])
                .stdin(Stdio::null())
                .output()
                .unwrap()
        })
    };
    let shown = tty(cmd.clone()).await.unwrap();
    let s = text(&shown.stdout);
    assert!(s.contains("100%") && s.contains("Received"), "{s:?}");
    for quiet in ["-s", "--no-progress-meter"] {
        let hidden = tty(format!("{cmd} {quiet}")).await.unwrap();
        assert!(
            !text(&hidden.stdout).contains('%'),
            "{quiet}: {}",
            text(&hidden.stdout)
        );
    }
    let bar = tty(format!("{cmd} -#")).await.unwrap();
    assert!(
        text(&bar.stdout).contains("100.0%"),
        "{}",
        text(&bar.stdout)
    );

    // -u without a password asks on the terminal.
    r.take();
    let ask = tokio::task::spawn_blocking({
        let cmd = format!(
            "{} {b}/echo -u alice -o /dev/null",
            env!("CARGO_BIN_EXE_burrow")
        );
        move || {
            use std::io::Write as _;
            let mut c = Command::new("script")
                .args(["-qec", &cmd, "/dev/null"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(b"sekret\n").unwrap();
            c.wait_with_output().unwrap()
        }
    });
    let asked = ask.await.unwrap();
    assert!(
        text(&asked.stdout).contains("Enter host password for user 'alice':"),
        "{}",
        text(&asked.stdout)
    );
    // base64("alice:sekret")
    assert_eq!(
        only(&r).header("authorization"),
        Some("Basic YWxpY2U6c2VrcmV0")
    );
    // With no terminal at all it fails clearly.
    let out = run(&[&format!("{b}/echo"), "-u", "alice"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("no password"),
        "{}",
        text(&out.stderr)
    );

    // --trace-ascii: heads and data, offsets as curl writes them.
    let trace = dir.0.join("trace.txt");
    run(&[
        &format!("{b}/bytes/10"),
        "--trace-ascii",
        &trace.display().to_string(),
        "-o",
        "/dev/null",
    ])
    .await;
    let t = text(&std::fs::read(&trace).unwrap());
    assert!(
        t.contains("=> Send header,") && t.contains("0000: GET /bytes/10 HTTP/1.1"),
        "{t}"
    );
    assert!(
        t.contains("<= Recv header,") && t.contains("<= Recv data, 10 bytes (0xa)"),
        "{t}"
    );

    // --limit-rate: 60 KiB at 20 KiB/s takes at least two seconds.
    let t0 = std::time::Instant::now();
    let out = run(&[&format!("{b}/bytes/61440"), "--limit-rate", "20k", "-o", &f]).await;
    assert!(out.status.success());
    assert!(
        t0.elapsed() >= std::time::Duration::from_secs(2),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_transfers() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("par");
    let d = dir.0.display().to_string();
    let out = run(&[
        "-Z",
        "--parallel-max",
        "3",
        &format!("{b}/bytes/[1-8]000"),
        "-o",
        &format!("{d}/p#1.bin"),
        "-w",
        "%{http_code}\\n",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    for n in 1..=8 {
        assert_eq!(
            std::fs::read(dir.0.join(format!("p{n}.bin"))).unwrap(),
            pattern(0, n * 1000),
            "{n}"
        );
    }
    assert_eq!(text(&out.stdout), "200\n".repeat(8));
    // HTTP/1.1 cannot multiplex: up to three connections at once, never more.
    let conns: std::collections::HashSet<usize> = r.take().iter().map(|q| q.conn).collect();
    assert!((1..=3).contains(&conns.len()), "{conns:?}");
}

/// `--doh-url`: names resolved by a DoH server reached through the same SOCKS5 proxy
/// (`socks5://` resolves on this side): `.test` names exist nowhere else, so the transfer
/// working shows the local DNS was not what answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn doh_resolves_through_the_route() {
    let r = Recorder::start().await.unwrap();
    let doh = burrow_test_support::doh::DohServer::start().await.unwrap();
    let p = burrow_examples::pki::test_proxy(&["socks5://127.0.0.1:0"], None)
        .await
        .unwrap();
    let socks = p.addrs[0].addr();
    let url = format!("http://www.burrow.test:{}/echo", r.addr.port());
    // Without DoH the name does not resolve.
    let out = run(&[&url, "-x", &format!("socks5://{socks}")]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
    let out = run(&[
        &url,
        "-x",
        &format!("socks5://{socks}"),
        "--doh-url",
        &doh.url(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let q = only(&r);
    assert_eq!(
        q.header("host"),
        Some(format!("www.burrow.test:{}", r.addr.port()).as_str())
    );
    assert!(doh.count() >= 2, "A and AAAA asked: {}", doh.count());
    use std::sync::atomic::Ordering::Relaxed;
    assert!(
        p.stats().tunnels.load(Relaxed) >= 2,
        "the DoH query went through the proxy"
    );
    // A name the DoH server does not know: exit 6.
    let out = run(&["http://nowhere.example/", "--doh-url", &doh.url()]).await;
    assert_eq!(out.status.code(), Some(6), "{}", text(&out.stderr));
}

/// `--proxy1.0`: the CONNECT request line says HTTP/1.0; the rest is HTTP/1.1 as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy10_connects_in_http10() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    // A proxy that answers the CONNECT and then plays the origin itself.
    let srv = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut heads = Vec::new();
        for answer in [
            &b"HTTP/1.0 200 Connection established\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
        ] {
            let mut buf = Vec::new();
            let mut b = [0u8; 1];
            while !buf.ends_with(b"\r\n\r\n") {
                assert_eq!(s.read(&mut b).await.unwrap(), 1);
                buf.push(b[0]);
            }
            heads.push(String::from_utf8_lossy(&buf).into_owned());
            s.write_all(answer).await.unwrap();
        }
        heads
    });
    let out = run(&["--proxy1.0", &addr.to_string(), "http://origin.test:8080/x"]).await;
    assert_eq!(text(&out.stdout), "ok", "{}", text(&out.stderr));
    let heads = srv.await.unwrap();
    assert!(
        heads[0].starts_with("CONNECT origin.test:8080 HTTP/1.0\r\n"),
        "{}",
        heads[0]
    );
    assert!(heads[1].starts_with("GET /x HTTP/1.1\r\n"), "{}", heads[1]);
}

/// What a review found, each pinned by a test: resuming a complete file keeps it, `-O`
/// names come from the URL given, `--noproxy` is judged per URL, cookies and header values
/// stay out of `-v` and errors, `-T -` sends standard input to every URL, `-b` string and
/// file cookies go together.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn review_findings_stay_fixed() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    let dir = tempdir("review");
    let d = dir.0.display().to_string();
    // -C - on a complete file: 416, exit 0, the file as it was.
    let file = dir.0.join("done.bin");
    std::fs::write(&file, pattern(0, 100)).unwrap();
    let f = file.display().to_string();
    let out = run(&[&format!("{b}/range/100"), "-C", "-", "-o", &f]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 100));
    // With -f too: 416 is the file being complete, not a failure.
    let out = run(&[&format!("{b}/range/100"), "-C", "-", "-o", &f, "-f"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 100));
    // Past --max-redirs nothing is written: the output file is not opened, so not emptied.
    let out = run(&[
        &format!("{b}/redirect/3"),
        "-L",
        "--max-redirs",
        "1",
        "-o",
        &f,
    ])
    .await;
    assert_eq!(out.status.code(), Some(47), "{}", text(&out.stderr));
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 100));
    r.take();
    // A failing answer while resuming does not wipe the partial file.
    std::fs::write(&file, pattern(0, 40)).unwrap();
    run(&[&format!("{b}/status/500"), "-C", "40", "-o", &f, "-f"]).await;
    assert_eq!(std::fs::read(&file).unwrap(), pattern(0, 40));
    r.take();
    // -O -L: the name is the URL's, not the redirect target's.
    let out = run_in(
        Some(dir.0.clone()),
        vec![
            "-O".into(),
            "-L".into(),
            format!("{b}/to?/files/target.txt"),
        ],
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.0.join("to").exists() && !dir.0.join("target.txt").exists());
    r.take();
    // Set-Cookie values and bad header values never reach -v or errors.
    let out = run(&[
        &format!("{b}/setcookie?k=s3cretvalue"),
        "-v",
        "-o",
        "/dev/null",
    ])
    .await;
    assert!(
        text(&out.stderr).contains("Set-Cookie: ***"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        !text(&out.stderr).contains("s3cretvalue; Path"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[
        &format!("{b}/echo"),
        "-H",
        "Authorization: Bearer s3cret\u{1}",
    ])
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !text(&out.stderr).contains("s3cret"),
        "{}",
        text(&out.stderr)
    );
    let out = run(&[&format!("{b}/echo"), "-A", "agent s3cret\u{1}"]).await;
    assert!(
        !text(&out.stderr).contains("s3cret"),
        "{}",
        text(&out.stderr)
    );
    r.take();
    // -T - reads standard input once and sends it to every URL.
    let out = tokio::task::spawn_blocking({
        let b = b.clone();
        move || {
            use std::io::Write as _;
            let mut c = Command::new(env!("CARGO_BIN_EXE_burrow"))
                .args([
                    "-T",
                    "-",
                    &format!("{b}/u1"),
                    &format!("{b}/u2"),
                    "-o",
                    "/dev/null",
                    "-o",
                    "/dev/null",
                ])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            c.stdin.take().unwrap().write_all(b"from stdin").unwrap();
            c.wait_with_output().unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let got: Vec<Vec<u8>> = r.take().into_iter().map(|q| q.body).collect();
    assert_eq!(got, [b"from stdin".to_vec(), b"from stdin".to_vec()]);
    // -b NAME=VALUE and -b FILE together.
    let jar = dir.0.join("jar.txt");
    std::fs::write(&jar, "127.0.0.1\tFALSE\t/\tFALSE\t0\tk\tfromfile\n").unwrap();
    run(&[
        &format!("{b}/echo"),
        "-b",
        "a=1",
        "-b",
        &jar.display().to_string(),
    ])
    .await;
    assert_eq!(only(&r).header("cookie"), Some("a=1; k=fromfile"));
    // --noproxy is judged for every URL: the first goes direct, the second through the proxy.
    let p = burrow_examples::pki::test_proxy(&["socks5://127.0.0.1:0"], None)
        .await
        .unwrap();
    let out = run(&[
        "-x",
        &format!("socks5h://{}", p.addrs[0].addr()),
        "--noproxy",
        "127.0.0.1",
        &format!("{b}/direct"),
        &format!("http://localhost:{}/proxied", r.addr.port()),
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(
        p.stats().tunnels.load(Relaxed),
        1,
        "only the second URL was proxied"
    );
    assert_eq!(r.take().len(), 2);
    let _ = d;
}

/// Where burrow and curl differed (a side-by-side run of both): a removed User-Agent stays
/// removed, conflicting method options are refused, `-i -f` shows the head before
/// failing, a proxy's name that does not resolve is exit 5, content that does not decode
/// exit 61.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_side_by_side_findings() {
    let r = Recorder::start().await.unwrap();
    let b = r.base();
    for no_agent in [&["-H", "User-Agent:"][..], &["-A", ""][..]] {
        let mut args = vec![format!("{b}/echo")];
        args.extend(no_agent.iter().map(|s| s.to_string()));
        let out = run_in(None, args).await;
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(only(&r).header("user-agent"), None, "{no_agent:?}");
    }
    for both in [
        &["-I", "-d", "a=1"][..],
        &["-T", "Cargo.toml", "-d", "a=1"][..],
        &["-F", "a=1", "-d", "b=2"][..],
    ] {
        let mut args = vec![format!("{b}/echo")];
        args.extend(both.iter().map(|s| s.to_string()));
        let out = run_in(None, args).await;
        assert_eq!(out.status.code(), Some(2), "{both:?}");
        assert!(
            text(&out.stderr).contains("You can only select one HTTP request method!"),
            "{}",
            text(&out.stderr)
        );
    }
    assert!(
        r.take().is_empty(),
        "nothing sent for a refused command line"
    );
    // -G makes -d a query: with -I that is one method.
    let out = run(&[&format!("{b}/echo"), "-G", "-I", "-d", "a=1"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(only(&r).method, "HEAD");

    let out = run(&[&format!("{b}/status/404"), "-i", "-f", "-s"]).await;
    assert_eq!(out.status.code(), Some(22));
    assert!(
        text(&out.stdout).starts_with("HTTP/1.1 404"),
        "{}",
        text(&out.stdout)
    );

    let out = run(&[
        &format!("{b}/badgzip"),
        "--compressed",
        "-sS",
        "-o",
        "/dev/null",
    ])
    .await;
    assert_eq!(out.status.code(), Some(61), "{}", text(&out.stderr));
    // An HTTP/1.1 head is shown as it was spelled: reason phrase and names' case.
    let out = run(&[&format!("{b}/spelled"), "-i", "-sS"]).await;
    assert_eq!(
        text(&out.stdout),
        "HTTP/1.1 200 Fine By Me\r\nX-Mixed-CASE: 1\r\nx-lower: 2\r\nContent-Length: 3\r\n\r\nok\n"
    );
    let out = run(&[&format!("{b}/to?/spelled"), "-L", "-v", "-o", "/dev/null"]).await;
    let err = text(&out.stderr);
    for line in [
        "< HTTP/1.1 302 Found",
        "< Location: /spelled",
        "< X-Mixed-CASE: 1",
    ] {
        assert!(err.contains(line), "{line:?} in {err}");
    }
    // No content is no coding to undo: an empty gzip body, or HEAD's.
    let out = run(&[&format!("{b}/emptygzip"), "--compressed", "-sS"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    let out = run(&[&format!("{b}/gzip"), "--compressed", "-sS", "-I"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("HTTP/1.1 200"));

    for forwarded in [false, true] {
        // No DNS needed: --resolve gives the proxy's name only an IPv4 address, -6 wants v6.
        let mut args = vec![
            "-sS",
            "-x",
            "http://proxy.test:3128",
            "--resolve",
            "proxy.test:3128:127.0.0.1",
            "-6",
        ];
        if !forwarded {
            args.push("-p");
        }
        let url = format!("{b}/echo");
        args.push(&url);
        let out = run(&args).await;
        assert_eq!(out.status.code(), Some(5), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("hop 1 (http proxy"),
            "{}",
            text(&out.stderr)
        );
    }
}
