//! `burrow-proxy`'s built-in hooks from a configuration file, over loopback: the access log
//! and the metrics endpoint show the right figures after a known set of transfers, a block
//! list and header rules apply, `--route` sends one host through another proxy and the
//! rest direct, and SIGHUP applies a changed file without dropping an open tunnel.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use burrow_examples::origin::{self, Versions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn start(config: &std::path::Path) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
            .arg("--config")
            .arg(config)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { return };
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        Proc { child, lines }
    }

    fn line(&self, starts: &str) -> String {
        loop {
            let l = self.lines.recv_timeout(Duration::from_secs(20)).unwrap();
            if let Some(rest) = l.strip_prefix(starts) {
                return rest.to_string();
            }
        }
    }
}

/// Sends raw bytes, reads until the peer closes.
async fn exchange(proxy: &str, req: String) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into()
}

async fn get(proxy: &str, url: &str) -> String {
    let host = url.split('/').nth(2).unwrap();
    exchange(
        proxy,
        format!("GET {url} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"),
    )
    .await
}

/// Opens a CONNECT tunnel and reads the proxy's answer head.
async fn connect(proxy: &str, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(format!("CONNECT {target} HTTP/1.1\r\nhost: {target}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap() == 0 {
            break;
        }
        head.push(b[0]);
    }
    (s, String::from_utf8_lossy(&head).into())
}

async fn echo(s: &mut TcpStream, n: usize) {
    let data = vec![b'e'; n];
    s.write_all(&data).await.unwrap();
    let mut back = vec![0u8; n];
    s.read_exact(&mut back).await.unwrap();
    assert_eq!(back, data);
}

fn json_lines(path: &std::path::Path, want: usize) -> Vec<serde_json::Value> {
    for _ in 0..100 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if lines.len() >= want {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("fewer than {want} lines in {}", path.display());
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_metrics_rules_and_routes_from_a_config_file_reloaded_on_sighup() {
    let dir = std::env::temp_dir().join(format!("burrow-proxy-hooks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let origin = origin::start(Versions::Http1, None).await.unwrap().addr;
    let echo_addr = burrow_test_support::tcp_echo().await;

    // B: a SOCKS5 proxy that `localhost` targets are routed through.
    let (b_log, b_cfg) = (dir.join("b.log"), dir.join("b.toml"));
    std::fs::write(
        &b_cfg,
        format!(
            "listen = [\"socks5://127.0.0.1:0\"]\nallow-net = [\"127.0.0.0/8\"]\n\
             access-log = {b_log:?}\n"
        ),
    )
    .unwrap();
    let b = Proc::start(&b_cfg);
    let b_addr = b.line("burrow-proxy listening on socks5://");

    // A: the proxy under test.
    let (a_log, a_cfg) = (dir.join("a.log"), dir.join("a.toml"));
    let config = |extra_block: &str| {
        format!(
            "listen = [\"http://127.0.0.1:0\"]\n\
             allow_net = [\"127.0.0.0/8\"]\n\
             access-log = {a_log:?}\n\
             metrics = \"127.0.0.1:0\"\n\
             pseudonym = \"burrow-a\"\n\
             block = [\"blocked.test\"{extra_block}]\n\
             request-header = [\"X-Added: by-burrow\"]\n\
             response-header = [\"X-Response: set\"]\n\
             route = [\"localhost=socks5h://{b_addr}\"]\n"
        )
    };
    std::fs::write(&a_cfg, config("")).unwrap();
    let a = Proc::start(&a_cfg);
    let proxy = a.line("burrow-proxy listening on http://");
    let metrics_url = a.line("burrow-proxy metrics on ");

    // 1. A forwarded request: the header rules apply both ways.
    let r = get(&proxy, &format!("http://{origin}/headers")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.contains("x-added: by-burrow"), "{r}");
    assert!(r.to_ascii_lowercase().contains("x-response: set"), "{r}");
    // 2. A blocked host: 403 with Proxy-Status, nothing dialed.
    let r = get(&proxy, "http://blocked.test/").await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("error=http_request_denied"), "{r}");
    // 3. A tunnel, direct.
    let (mut t, head) = connect(&proxy, &echo_addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    echo(&mut t, 1000).await;
    drop(t);
    // 4. A tunnel to `localhost`, routed through B.
    let (mut t, head) = connect(&proxy, &format!("localhost:{}", echo_addr.port())).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    echo(&mut t, 500).await;
    drop(t);
    // 5. A download of known size.
    let r = get(&proxy, &format!("http://{origin}/bytes/1000")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");

    let lines = json_lines(&a_log, 5);
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let by_kind =
        |k: &str| -> Vec<&serde_json::Value> { lines.iter().filter(|l| l["kind"] == k).collect() };
    let gets = by_kind("GET");
    assert_eq!(gets.len(), 3);
    let headers = gets
        .iter()
        .find(|l| l["target"].as_str().unwrap().ends_with("/headers"))
        .unwrap();
    assert_eq!(
        (
            &headers["status"],
            &headers["route"],
            &headers["client_version"],
            &headers["upstream_version"]
        ),
        (
            &serde_json::json!(200),
            &serde_json::json!("direct"),
            &serde_json::json!("HTTP/1.1"),
            &serde_json::json!("HTTP/1.1")
        )
    );
    let blocked = gets
        .iter()
        .find(|l| l["target"] == "http://blocked.test/")
        .unwrap();
    assert_eq!(
        (&blocked["status"], &blocked["error"]),
        (
            &serde_json::json!(403),
            &serde_json::json!("http_request_denied")
        )
    );
    let bytes = gets
        .iter()
        .find(|l| l["target"].as_str().unwrap().ends_with("/bytes/1000"))
        .unwrap();
    assert_eq!(bytes["bytes_down"], 1000);
    let tunnels = by_kind("CONNECT");
    assert_eq!(tunnels.len(), 2);
    let direct = tunnels.iter().find(|l| l["route"] == "direct").unwrap();
    assert_eq!(
        (&direct["bytes_up"], &direct["bytes_down"]),
        (&serde_json::json!(1000), &serde_json::json!(1000))
    );
    let routed = tunnels.iter().find(|l| l["route"] != "direct").unwrap();
    assert_eq!(routed["route"], format!("socks5h://{b_addr}"));
    assert_eq!(routed["target"], format!("localhost:{}", echo_addr.port()));
    assert_eq!(
        (&routed["bytes_up"], &routed["bytes_down"]),
        (&serde_json::json!(500), &serde_json::json!(500))
    );
    for l in &lines {
        assert_eq!(
            l["client"].as_str().unwrap().split(':').next(),
            Some("127.0.0.1")
        );
        assert!(l["duration_ms"].as_f64().unwrap() >= 0.0);
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
    // B saw the routed tunnel as a SOCKS tunnel to the name, with the same bytes.
    let b_lines = json_lines(&b_log, 1);
    assert_eq!(b_lines.len(), 1, "{b_lines:#?}");
    assert_eq!(b_lines[0]["kind"], "SOCKS");
    assert_eq!(
        b_lines[0]["target"],
        format!("localhost:{}", echo_addr.port())
    );
    assert_eq!(b_lines[0]["bytes_up"], 500);

    // The metrics after these five.
    let m = get(
        metrics_url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap(),
        &metrics_url,
    )
    .await;
    let m = m.split("\r\n\r\n").nth(1).unwrap().to_string();
    assert_eq!(
        metric(&m, "burrow_proxy_tunnels_total{kind=\"CONNECT\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "burrow_proxy_requests_total{status=\"200\"}"),
        2.0
    );
    assert_eq!(
        metric(&m, "burrow_proxy_requests_total{status=\"403\"}"),
        1.0
    );
    assert_eq!(
        metric(
            &m,
            "burrow_proxy_refusals_total{reason=\"http_request_denied\"}"
        ),
        1.0
    );
    assert_eq!(
        metric(&m, "burrow_proxy_bytes_total{direction=\"up\"}"),
        1500.0
    );
    assert!(metric(&m, "burrow_proxy_bytes_total{direction=\"down\"}") >= 2500.0);
    assert_eq!(metric(&m, "burrow_proxy_tunnels_active"), 0.0);
    assert_eq!(metric(&m, "burrow_proxy_requests_active"), 0.0);
    assert_eq!(
        metric(&m, "burrow_proxy_request_duration_seconds_count"),
        2.0
    );
    assert_eq!(
        metric(&m, "burrow_proxy_tunnel_duration_seconds_count"),
        2.0
    );

    // SIGHUP with 127.0.0.1 now blocked: the open tunnel stays, new ones are refused.
    let (mut open, head) = connect(&proxy, &echo_addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    std::fs::write(&a_cfg, config(", \"127.0.0.1\"")).unwrap();
    let pid = a.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    a.line("burrow-proxy reloaded its configuration");
    echo(&mut open, 300).await;
    let (_t, head) = connect(&proxy, &echo_addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    echo(&mut open, 300).await;
    // A broken file is refused and the running configuration kept.
    std::fs::write(&a_cfg, "listen = [").unwrap();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    echo(&mut open, 10).await;
    let (_t, head) = connect(&proxy, &echo_addr.to_string()).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_configuration_files_say_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("burrow-proxy-badcfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let big = format!(
        "# {}\n",
        "x".repeat(burrow_examples::proxy_cli::MAX_CONFIG_FILE as usize)
    );
    for (text, says) in [
        (big.as_str(), "larger than 1048576 bytes"),
        ("listen = [", "a.toml"),
        (
            "no-such-option = 1",
            "unexpected argument '--no-such-option'",
        ),
        ("[table]\nx = 1", "table: not a string, number or boolean"),
        ("config = \"other.toml\"", "cannot name another"),
        (
            "listen = [\"http://127.0.0.1:0\"]\nroute = [\"nohops\"]",
            "PATTERN=HOPS",
        ),
        (
            "listen = [\"http://127.0.0.1:0\"]\nblock = [\"a b\"]",
            "bad destination pattern",
        ),
        (
            "listen = [\"http://127.0.0.1:0\"]\nrequest-header = [\"nocolon\"]",
            "NAME: VALUE",
        ),
        (
            "listen = [\"http://127.0.0.1:0\"]\naccess-log-format = \"xml\"\naccess-log = \"-\"",
            "unknown access log format",
        ),
    ] {
        let f = dir.join("a.toml");
        std::fs::write(&f, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
            .arg("--config")
            .arg(&f)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{text}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ca_init_writes_a_private_key_even_over_an_old_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("burrow-ca-init-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("ca-key.pem");
    std::fs::write(&key, "old").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // Not without --force.
    assert!(burrow_examples::proxy_cli::ca_init(Some(dir.clone()), false).is_err());
    let (cert, k) = burrow_examples::proxy_cli::ca_init(Some(dir.clone()), true).unwrap();
    assert_eq!(
        std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let ca = burrow_proxy::server::intercept::Ca::load(
        &std::fs::read_to_string(cert).unwrap(),
        &std::fs::read_to_string(k).unwrap(),
    );
    assert!(ca.is_ok());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn routes_are_named_once_and_keep_their_own_credentials() {
    use burrow_examples::proxy_cli::{parse_args, reloadable};
    let argv: Vec<std::ffi::OsString> = [
        "burrow-proxy",
        "--listen",
        "http://127.0.0.1:0",
        "--upstream",
        "socks5h://u:one@127.0.0.1:1080",
        "--route",
        "a.test=socks5h://u:one@127.0.0.1:1080",
        "--route",
        "b.test=socks5h://u:two@127.0.0.1:1080",
        "--route",
        "c.test=socks5h://u:two@127.0.0.1:1080",
        "--route",
        "d.test=direct",
    ]
    .map(Into::into)
    .into();
    let args = parse_args(&argv).map_err(|_| "parse").unwrap();
    let (_, routes, _) = reloadable(&args, &Default::default(), None).unwrap();
    let names: Vec<&str> = routes.rules.iter().map(|(_, n)| n.as_str()).collect();
    // The same hops as --upstream are the default route; other credentials, another route.
    assert_eq!(
        names,
        [
            "socks5h://u:***@127.0.0.1:1080",
            "socks5h://u:***@127.0.0.1:1080#2",
            "socks5h://u:***@127.0.0.1:1080#2",
            "direct"
        ]
    );
    assert_eq!(routes.upstreams.len(), 1);
    // Nothing in a name gives a password away.
    assert!(!names.iter().any(|n| n.contains("one") || n.contains("two")));
}

#[test]
fn config_values_starting_with_a_dash_stay_values() {
    let dir = std::env::temp_dir().join(format!("burrow-cfg-dash-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("c.toml");
    std::fs::write(
        &f,
        "listen = [\"http://127.0.0.1:0\"]\npseudonym = \"-x\"\n",
    )
    .unwrap();
    let words = burrow_examples::proxy_cli::config_words(&f).unwrap();
    assert!(words.contains(&"--pseudonym=-x".to_string()), "{words:?}");
    let argv: Vec<std::ffi::OsString> =
        vec!["burrow-proxy".into(), "--config".into(), f.clone().into()];
    let args = burrow_examples::proxy_cli::parse_args(&argv)
        .map_err(|_| "parse")
        .unwrap();
    assert_eq!(args.pseudonym.as_deref(), Some("-x"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn workers_sets_the_runtime_threads() {
    for n in [1usize, 3] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
            .args([
                "--listen",
                "http://127.0.0.1:0",
                "--workers",
                &n.to_string(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(line.starts_with("burrow-proxy listening"), "{line}");
        let count = || {
            std::fs::read_dir(format!("/proc/{}/task", child.id()))
                .unwrap()
                .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
                .filter(|c| c.starts_with("tokio-rt-worker"))
                .count()
        };
        // A worker thread names itself when it starts, which can be just after the
        // listening line: wait a little for all of them.
        let mut workers = count();
        for _ in 0..50 {
            if workers == n {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            workers = count();
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(workers, n);
    }
}

#[test]
fn a_block_file_past_its_limit_is_refused() {
    use burrow_examples::proxy_cli::{parse_args, reloadable, MAX_BLOCK_FILE};
    let dir = std::env::temp_dir().join(format!("burrow-blockfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ok, big) = (dir.join("ok.txt"), dir.join("big.txt"));
    std::fs::write(&ok, "# ads\n*.ads.example\n").unwrap();
    let line = "a.example\n";
    let n = MAX_BLOCK_FILE as usize / line.len() + 1;
    std::fs::write(&big, line.repeat(n)).unwrap();
    let run = |f: &std::path::Path| {
        let argv: Vec<std::ffi::OsString> = vec![
            "burrow-proxy".into(),
            "--listen".into(),
            "http://127.0.0.1:0".into(),
            "--block-file".into(),
            f.into(),
        ];
        let args = parse_args(&argv).map_err(|_| "parse").unwrap();
        reloadable(&args, &Default::default(), None).map(|(_, _, hooks)| hooks.len())
    };
    assert_eq!(run(&ok).unwrap(), 1);
    let e = run(&big).unwrap_err();
    assert!(e.to_string().contains("larger than"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_arguments_debug_shows_no_credentials() {
    let argv: Vec<std::ffi::OsString> = [
        "burrow-proxy",
        "--listen",
        "http://127.0.0.1:0",
        "--auth",
        "alice:s3cret",
        "--upstream",
        "socks5h://bob:hunter2@127.0.0.1:1080",
        "--route",
        "a.test=http://carol:pw9@127.0.0.1:3128",
    ]
    .map(Into::into)
    .into();
    let args = burrow_examples::proxy_cli::parse_args(&argv)
        .map_err(|_| "parse")
        .unwrap();
    let shown = format!("{args:?}");
    for secret in ["s3cret", "hunter2", "pw9", "alice", "bob", "carol"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
}
