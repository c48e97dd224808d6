//! The `burrow-proxy` binary's programmable side with independent peers: curl (Debian) and
//! burrow through `--intercept` with a CA from `burrow-proxy ca init` get byte-exact bodies
//! from nginx over HTTP/1.1 and HTTP/2, with each side's version negotiated on its own (an
//! HTTP/2 client over nginx's HTTP/1.1-only listener and the reverse), TLS-over-TLS through
//! the HTTPS listener; `--route` sends one host through dante and another direct. Run by
//! `scripts/peers.sh`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

mod common;
use common::{start_burrow_proxy, var};

fn run(program: &str, args: &[String]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into()
}

fn lines(path: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
#[ignore = "needs curl and nginx: run scripts/peers.sh"]
fn curl_and_burrow_through_intercept_get_byte_exact_bodies_from_nginx() {
    let (nginx_ca, root) = (var("BURROW_NGINX_CA"), var("BURROW_NGINX_ROOT"));
    let (tls, tls1) = (var("BURROW_NGINX_TLS"), var("BURROW_NGINX_TLS1"));
    let want = std::fs::read(format!("{root}/1m.bin")).unwrap();
    let dir = std::env::temp_dir().join(format!("burrow-intercept-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    run(
        env!("CARGO_BIN_EXE_burrow-proxy"),
        &["ca".into(), "init".into(), "--dir".into(), d.clone()],
    );
    let (ca, log) = (format!("{d}/ca.pem"), dir.join("access.log"));
    let p = start_burrow_proxy(
        &["http", "https"],
        &[
            "--intercept",
            "--ca-cert",
            &format!("{d}/ca.pem"),
            "--ca-key",
            &format!("{d}/ca-key.pem"),
            "--origin-cacert",
            &nginx_ca,
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let (http, https) = (
        p.addrs[0].clone(),
        p.addrs[1].replace("127.0.0.1", "localhost"),
    );
    let out = format!("{d}/got");
    let mut n = 0;
    for client in ["curl", env!("CARGO_BIN_EXE_burrow")] {
        for version in ["--http1.1", "--http2"] {
            for port in [&tls, &tls1] {
                // Through the plain listener, and TLS-over-TLS through the HTTPS one.
                for proxy in [&http, &https] {
                    let url = format!("https://localhost:{port}/1m.bin");
                    let args: Vec<String> = [
                        "-sS",
                        version,
                        "-x",
                        proxy,
                        "--proxy-cacert",
                        &nginx_ca,
                        "--cacert",
                        &ca,
                        "-o",
                        &out,
                        "-w",
                        "%{http_version}",
                        &url,
                    ]
                    .map(String::from)
                    .into();
                    let v = run(client, &args);
                    let expect = if version == "--http2" { "2" } else { "1.1" };
                    assert_eq!(v, expect, "{client} {version} via {proxy} to :{port}");
                    assert!(
                        std::fs::read(&out).unwrap() == want,
                        "{client} {version} via {proxy} to :{port}: body differs"
                    );
                    n += 1;
                }
            }
        }
    }
    // One line per request inside and one per tunnel; the versions on both sides.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let l = lines(&log);
    let gets: Vec<&serde_json::Value> = l.iter().filter(|x| x["kind"] == "GET").collect();
    assert_eq!(gets.len(), n, "{l:#?}");
    let pair = |c: &str, o: &str| {
        gets.iter()
            .filter(|x| x["client_version"] == c && x["upstream_version"] == o)
            .count()
    };
    // nginx's h1-only listener: every HTTP/2 client is translated to HTTP/1.1; its h2
    // listener: every HTTP/1.1 client is translated to HTTP/2.
    assert_eq!(pair("HTTP/2", "HTTP/1.1"), n / 4, "{gets:#?}");
    assert_eq!(pair("HTTP/1.1", "HTTP/2"), n / 4, "{gets:#?}");
    for g in &gets {
        assert_eq!(
            (&g["status"], &g["bytes_down"]),
            (&serde_json::json!(200), &serde_json::json!(want.len()))
        );
    }
    assert_eq!(
        l.iter()
            .filter(|x| x["kind"] == "CONNECT" && x["route"] == "intercept")
            .count(),
        n
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
#[ignore = "needs curl, nginx and dante: run scripts/peers.sh"]
fn route_sends_one_host_through_dante_and_another_direct() {
    let (nginx_ca, root, tls) = (
        var("BURROW_NGINX_CA"),
        var("BURROW_NGINX_ROOT"),
        var("BURROW_NGINX_TLS"),
    );
    let (dante, dante_log) = (var("BURROW_DANTE"), var("BURROW_DANTE_LOG"));
    let want = std::fs::read(format!("{root}/1m.bin")).unwrap();
    let route = format!("localhost=socks5h://127.0.0.1:{dante}");
    let p = start_burrow_proxy(&["http"], &["--route", &route]);
    let through_dante = || {
        std::fs::read_to_string(&dante_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("tcp/connect") && l.ends_with(&format!(".{tls}")))
            .count()
    };
    let out = std::env::temp_dir().join(format!("burrow-route-{}", std::process::id()));
    let get = |host: &str| {
        let url = format!("https://{host}:{tls}/1m.bin");
        let args: Vec<String> = [
            "-sS",
            "-x",
            &p.addrs[0],
            "--cacert",
            &nginx_ca,
            "-o",
            out.to_str().unwrap(),
            &url,
        ]
        .map(String::from)
        .into();
        run("curl", &args);
        assert!(std::fs::read(&out).unwrap() == want, "{host}: body differs");
    };
    let before = through_dante();
    get("localhost");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        through_dante(),
        before + 1,
        "localhost did not go through dante"
    );
    get("127.0.0.1");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(through_dante(), before + 1, "127.0.0.1 went through dante");
    let _ = std::fs::remove_file(&out);
}

/// WebSockets through `--intercept` with independent peers at both ends: libcurl (curl_cffi)
/// opens `wss://` through the proxy, which answers the CONNECT, decrypts, and forwards the
/// HTTP/1.1 upgrade inside to Python's `websockets` server over TLS; binary, text and a
/// 1 MB message come back intact, and the access log tells the WebSocket apart from the
/// tunnel it came in.
#[test]
#[ignore = "needs curl_cffi and websockets: run scripts/peers.sh"]
fn a_wss_websocket_from_libcurl_reaches_pythons_websockets_through_intercept() {
    let nginx_ca = var("BURROW_NGINX_CA");
    let pki = std::path::Path::new(&nginx_ca)
        .parent()
        .unwrap()
        .to_path_buf();
    let dir = std::env::temp_dir().join(format!("burrow-intercept-ws-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let d = dir.display().to_string();
    run(
        env!("CARGO_BIN_EXE_burrow-proxy"),
        &["ca".into(), "init".into(), "--dir".into(), d.clone()],
    );
    let log = dir.join("access.log");
    let p = start_burrow_proxy(
        &["http"],
        &[
            "--intercept",
            "--ca-cert",
            &format!("{d}/ca.pem"),
            "--ca-key",
            &format!("{d}/ca-key.pem"),
            "--origin-cacert",
            &nginx_ca,
            "--access-log",
            log.to_str().unwrap(),
        ],
    );
    let script = r#"
import asyncio, sys, threading, time, ssl
from websockets.asyncio.server import serve
from curl_cffi import requests
proxy, ca, cert, key = sys.argv[1:5]
box = {}
async def echo(ws):
    box['path'] = ws.request.path
    async for m in ws:
        await ws.send(m)
async def main():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    async with serve(echo, "127.0.0.1", 0, ssl=ctx) as server:
        box['port'] = server.sockets[0].getsockname()[1]
        await asyncio.Future()
threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
for _ in range(200):
    if 'port' in box: break
    time.sleep(0.05)
ws = requests.Session().ws_connect(
    f"wss://localhost:{box['port']}/chat?x=1", proxy=proxy, verify=ca, timeout=20)
ws.send(b"\x00binary\xff")
print(ws.recv()[0] == b"\x00binary\xff")
ws.send_str("text")
print(ws.recv()[0] == b"text")
big = bytes(range(256)) * 4000
ws.send(big)
print(ws.recv()[0] == big)
print(box['path'])
ws.close()
"#;
    let out = run(
        "python3",
        &[
            "-c".into(),
            script.into(),
            p.addrs[0].clone(),
            format!("{d}/ca.pem"),
            pki.join("cert.pem").display().to_string(),
            pki.join("key.pem").display().to_string(),
        ],
    );
    assert_eq!(out, "True\nTrue\nTrue\n/chat?x=1\n", "{out}");
    // Each flow is logged as it ends: the client's close reaches the proxy soon after.
    let kinds = || -> Vec<(String, String)> {
        lines(&log)
            .iter()
            .map(|l| {
                let s = |k: &str| l[k].as_str().unwrap_or("").to_string();
                (s("kind"), s("route"))
            })
            .collect()
    };
    for _ in 0..100 {
        if kinds().iter().any(|(k, _)| k == "WebSocket") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    drop(p);
    let kinds = kinds();
    assert!(
        kinds.contains(&("CONNECT".into(), "intercept".into()))
            && kinds.iter().any(|(k, _)| k == "WebSocket"),
        "{kinds:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
