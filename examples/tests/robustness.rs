//! The `burrow` CLI and the `burrow-proxy` binary when things go wrong (issue 13):
//! credentials in URLs never shown, and a killed HTTP/3 proxy reported within seconds as
//! the hop that died.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burrow_examples::origin;
use burrow_examples::pki::TestPki;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("burrow-robust-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_urls_are_sent_as_authorization_and_never_shown() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let s2 = seen.clone();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = Vec::new();
        let mut b = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") && s.read(&mut b).await.unwrap() == 1 {
            buf.push(b[0]);
        }
        *s2.lock().unwrap() = String::from_utf8_lossy(&buf).to_ascii_lowercase();
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await
            .unwrap();
    });
    let url = format!("http://user:s3cr3t@{addr}/x");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args(["-v", &url])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, b"ok");
    // base64("user:s3cr3t") = dXNlcjpzM2NyM3Q=
    for secret in ["s3cr3t", "dXNlcjpzM2NyM3Q", "user:"] {
        assert!(!err.contains(secret), "-v shows {secret}: {err}");
    }
    assert!(err.contains(&format!("> host: {addr}")), "{err}");
    assert!(err.contains("> authorization: Basic ***"), "{err}");
    let head = seen.lock().unwrap().clone();
    assert!(
        head.contains("authorization: basic dxnlcjpzm2nym3q="),
        "{head}"
    );
    assert!(head.contains(&format!("host: {addr}\r\n")), "{head}");

    // A proxy URL that does not parse: the error repeats none of it.
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args([
            "-x",
            "http://user:hunter2#x@proxy:notaport",
            "http://127.0.0.1:9/",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("invalid proxy URL"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");
}

/// A `burrow-proxy` process listening on HTTP/3 (self-signed), killed on drop.
struct ProxyProcess(std::process::Child, u16);

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_h3_proxy() -> ProxyProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
        .args(["--listen", "h3://127.0.0.1:0", "--allow-net", "127.0.0.0/8"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let line = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .next()
        .unwrap()
        .unwrap();
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    ProxyProcess(child, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_http3_proxy_is_reported_within_seconds_naming_the_hop() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = temp_dir("dead-hop");
    let (ca, _, _) = pki.write_to(&dir).unwrap();
    let cfg = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(origin::Versions::Http2),
    )
    .unwrap();
    let o = origin::start(origin::Versions::Http2, Some(cfg))
        .await
        .unwrap();
    let mut proxy = start_h3_proxy();
    let hop = format!("h3://127.0.0.1:{}", proxy.1);
    // Far more than can arrive before the kill.
    let url = format!("https://localhost:{}/fill/100000000000", o.addr.port());
    let mut cli = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(["--cacert", &ca.display().to_string(), "--proxy-insecure"])
        .args(["-x", &hop, &url, "-o", "/dev/null"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let the transfer run, then kill the proxy as an operator's kill -9 would.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        cli.try_wait().unwrap().is_none(),
        "the transfer ended before the kill"
    );
    proxy.0.kill().unwrap();
    proxy.0.wait().unwrap();
    let killed = Instant::now();
    let status = loop {
        if let Some(s) = cli.try_wait().unwrap() {
            break s;
        }
        if killed.elapsed() > Duration::from_secs(20) {
            let _ = cli.kill();
            panic!("the CLI did not notice the dead proxy in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let noticed = killed.elapsed();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut cli.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(
        err.contains(&format!("hop 1 (h3 proxy 127.0.0.1:{})", proxy.1)),
        "the error does not name the dead hop: {err}"
    );
    // ICMP port unreachable ends it at once; without ICMP the keep-alive/idle timeout
    // (3 s / 10 s) would. Either way a few seconds, not QUIC's old 30 s.
    assert!(
        noticed < Duration::from_secs(12),
        "noticed after {noticed:?}: {err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_open_proxy_on_a_public_address_warns_and_socks5_upstreams_are_refused() {
    let run = |args: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // The listening line comes after the warning.
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = child.kill();
        let o = child.wait_with_output().unwrap();
        (
            line,
            String::from_utf8_lossy(&o.stderr).into_owned(),
            o.status,
        )
    };
    let (line, err, _) = run(&["--listen", "http://0.0.0.0:0"]);
    assert!(
        line.starts_with("burrow-proxy listening on http://0.0.0.0:"),
        "{line}"
    );
    assert!(err.contains("warning: listening on 0.0.0.0:"), "{err}");
    assert!(err.contains("without --auth"), "{err}");
    let (_, err, _) = run(&["--listen", "http://0.0.0.0:0", "--auth", "u:p"]);
    assert!(!err.contains("warning"), "{err}");
    let (_, err, _) = run(&["--listen", "http://127.0.0.1:0"]);
    assert!(!err.contains("warning"), "{err}");
    let o = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
        .args([
            "--listen",
            "http://127.0.0.1:0",
            "--upstream",
            "socks5://127.0.0.1:1080",
        ])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("socks5h://"));
}
