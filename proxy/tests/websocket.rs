//! WebSockets through burrow-proxy: an HTTP/1.1 `Upgrade: websocket` (a `ws://` URL sent
//! to the proxy in absolute form) is forwarded to the origin's own upgrade on a connection
//! of its own; the origin's 101 (its `Sec-WebSocket-Accept`) goes back and the bytes are
//! relayed both ways; an origin that does not switch is heard as its status.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use async_trait::async_trait;
use burrow_proxy::server::hooks::{Flow, HookResult, Request, Verdict};
use burrow_proxy::server::{self, HookChain, Hooks, Listen, Proxy, ProxyConfig, Rules};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(10);

/// Reads up to the end of a head.
async fn head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut b))
            .await
            .expect("a head in time")
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {:?}", String::from_utf8_lossy(&buf));
        buf.push(b[0]);
    }
    String::from_utf8(buf).unwrap()
}

/// An origin that switches `/chat` to WebSocket (answering with an Accept made from the
/// key) and then echoes, and answers anything else 403; it reports each request head.
async fn ws_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let h = head(&mut s).await;
                let _ = tx.send(h.clone());
                let key = h
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("sec-websocket-key: ")
                            .map(str::to_string)
                    })
                    .unwrap_or_default();
                if !h.starts_with("GET /chat ") {
                    let _ = s
                        .write_all(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                }
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: accept-{key}\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
                );
                s.write_all(answer.as_bytes()).await.unwrap();
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, rx)
}

async fn proxy() -> (server::Running, SocketAddr) {
    let cfg = ProxyConfig {
        listeners: vec![Listen::Http("127.0.0.1:0".parse().unwrap())],
        rules: Rules::loopback(),
        pseudonym: Some("burrow-test".into()),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let a = running.addrs[0].addr();
    (running, a)
}

fn upgrade_request(origin: SocketAddr, path: &str) -> String {
    format!(
        "GET ws://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_forwarded_to_the_origins_upgrade_and_relayed() {
    let (origin, mut seen) = ws_origin().await;
    let (_running, p) = proxy().await;
    let mut c = TcpStream::connect(p).await.unwrap();
    c.write_all(upgrade_request(origin, "/chat").as_bytes())
        .await
        .unwrap();
    let answer = head(&mut c).await;
    let lower = answer.to_ascii_lowercase();
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    for field in [
        "upgrade: websocket\r\n",
        "sec-websocket-accept: accept-dghlihnhbxbszsbub25jzq==\r\n",
        "sec-websocket-protocol: chat\r\n",
        "via: 1.1 burrow-test\r\n",
    ] {
        assert!(lower.contains(field), "{field:?} in {answer}");
    }
    // What the origin was asked: its own upgrade, origin-form, the client's WebSocket
    // fields, none of the client's hop-by-hop ones.
    let asked = seen.recv().await.unwrap();
    let asked_lower = asked.to_ascii_lowercase();
    assert!(asked.starts_with("GET /chat HTTP/1.1\r\n"), "{asked}");
    for field in [
        "upgrade: websocket\r\n",
        "sec-websocket-key: dghlihnhbxbszsbub25jzq==\r\n",
        "sec-websocket-version: 13\r\n",
        "via: 1.1 burrow-test\r\n",
    ] {
        assert!(asked_lower.contains(field), "{field:?} in {asked}");
    }
    assert!(
        asked.contains(&format!("\r\nhost: {origin}\r\n")),
        "{asked}"
    );
    assert!(!asked_lower.contains("keep-alive"), "{asked}");
    // Frames (any bytes) both ways, in order.
    for msg in [&b"\x81\x05hello"[..], b"\x82\x03abc", &[0u8; 3000]] {
        c.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tokio::time::timeout(PATIENCE, c.read_exact(&mut got))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, msg);
    }
    // The client's close ends the origin's side too.
    drop(c);

    // An origin that does not switch is heard as its status; nothing is relayed.
    let mut c = TcpStream::connect(p).await.unwrap();
    c.write_all(upgrade_request(origin, "/elsewhere").as_bytes())
        .await
        .unwrap();
    let answer = head(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
    let len: usize = answer
        .to_ascii_lowercase()
        .lines()
        .find_map(|l| {
            l.strip_prefix("content-length: ")
                .map(|v| v.trim().parse().unwrap())
        })
        .expect("a length");
    let mut body = vec![0u8; len];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("did not switch"), "{body}");
}

/// A target the rules refuse is refused before anything is sent, as for any request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_to_a_refused_target_is_403() {
    let cfg = ProxyConfig {
        listeners: vec![Listen::Http("127.0.0.1:0".parse().unwrap())],
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let (origin, _seen) = ws_origin().await;
    let mut c = TcpStream::connect(running.addrs[0].addr()).await.unwrap();
    c.write_all(upgrade_request(origin, "/chat").as_bytes())
        .await
        .unwrap();
    let answer = head(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 403 "), "{answer}");
}

/// Adds a field to every request it sees.
struct AddField;

#[async_trait]
impl Hooks for AddField {
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        r.head
            .headers
            .insert("x-from-hook", http::HeaderValue::from_static("1"));
        Ok(Verdict::Continue)
    }
}

/// A WebSocket's handshake is a request to the hooks: what they change reaches the origin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_change_a_websockets_handshake() {
    let (origin, mut seen) = ws_origin().await;
    let cfg = ProxyConfig {
        listeners: vec![Listen::Http("127.0.0.1:0".parse().unwrap())],
        rules: Rules::loopback(),
        hooks: HookChain::new(vec![std::sync::Arc::new(AddField)]),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let mut c = TcpStream::connect(running.addrs[0].addr()).await.unwrap();
    c.write_all(upgrade_request(origin, "/chat").as_bytes())
        .await
        .unwrap();
    let answer = head(&mut c).await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    let asked = seen.recv().await.unwrap();
    assert!(
        asked
            .to_ascii_lowercase()
            .contains("\r\nx-from-hook: 1\r\n"),
        "{asked}"
    );
}
