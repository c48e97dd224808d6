//! The examples in `burrow/examples/`, run against loopback peers: each example's `run` is
//! the code a reader copies, called here as the example's `main` would call it.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::sync::atomic::Ordering;

use burrow::server::{Listen, Rules};
use burrow::{StatusCode, Version};
use burrow_test_support::Pki;

mod common;
use common::{origin, origin_h3, pem_file, proxy};

#[path = "../examples/addon.rs"]
mod addon;
#[path = "../examples/custom_transport.rs"]
mod custom_transport;
#[path = "../examples/download.rs"]
mod download;
#[path = "../examples/get.rs"]
mod get;
#[path = "../examples/masque_h3.rs"]
mod masque_h3;
#[path = "../examples/proxy_chain.rs"]
mod proxy_chain;
#[path = "../examples/proxy_server.rs"]
mod proxy_server;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_a_two_hop_chain() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let ca = ca.to_str().unwrap();
    let o = origin(&p, None).await;
    let url = format!("https://localhost:{}/", o.port());
    let (status, body) = get::run(&url, Some(ca)).await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "hello over HTTP/2.0")
    );

    let (_s, socks, _) = proxy(&p, Listen::Socks("127.0.0.1:0".parse().unwrap())).await;
    let (_h, h2, h2_stats) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;
    let hops = [
        format!("socks5h://127.0.0.1:{}", socks.port()),
        format!("h2://localhost:{}", h2.port()),
    ];
    let hops: Vec<&str> = hops.iter().map(String::as_str).collect();
    let out = proxy_chain::run(&hops, Some(ca), &url).await.unwrap();
    assert_eq!(
        out,
        format!(
            "200 OK HTTP/2.0 via socks5h://127.0.0.1:{} > h2://localhost:{}\nhello over HTTP/2.0",
            socks.port(),
            h2.port()
        )
    );
    assert_eq!(h2_stats.tunnels.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_through_a_masque_proxy() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin_h3(&p).await;
    let (_h3, h3, stats) = proxy(&p, Listen::H3("127.0.0.1:0".parse().unwrap())).await;
    let (v, body) = masque_h3::run(
        &format!("h3://localhost:{}", h3.port()),
        Some(ca.to_str().unwrap()),
        &format!("https://localhost:{}/", o.port()),
    )
    .await
    .unwrap();
    assert_eq!((v, body.as_str()), (Version::HTTP_3, "hello over HTTP/3.0"));
    assert!(
        stats.datagrams.load(Ordering::Relaxed) > 0,
        "QUIC went through CONNECT-UDP"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_to_a_file_with_progress() {
    let p = Pki::new();
    let (dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let client = burrow::Client::builder()
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let path = dir.0.join("big.out");
    let mut seen = Vec::new();
    let n = download::run(
        &client,
        &format!("https://localhost:{}/big", o.port()),
        &path,
        |d, t| seen.push((d, t)),
    )
    .await
    .unwrap();
    assert_eq!(n as usize, common::BIG);
    let data = std::fs::read(&path).unwrap();
    assert_eq!(data.len(), common::BIG);
    assert!(data
        .chunks(65536)
        .enumerate()
        .all(|(i, c)| c.iter().all(|b| *b == (i % 251) as u8)));
    assert!(
        seen.len() > 1 && seen.windows(2).all(|w| w[0].0 < w[1].0),
        "progress grows"
    );
    assert_eq!(
        seen.last(),
        Some(&(common::BIG as u64, Some(common::BIG as u64)))
    );
    let e = download::run(
        &client,
        &format!("https://localhost:{}/404", o.port()),
        &path,
        |_, _| {},
    )
    .await
    .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::NOT_FOUND));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxy_server_in_ten_lines() {
    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let running = proxy_server::run(
        &["http://127.0.0.1:0", "socks5://127.0.0.1:0"],
        Rules::loopback(),
    )
    .await
    .unwrap();
    for l in running.addrs.clone() {
        let scheme = match l {
            Listen::Http(_) => "http",
            _ => "socks5h",
        };
        let client = burrow::Client::builder()
            .proxy(burrow::Proxy::parse(&format!("{scheme}://{}", l.addr())).unwrap())
            .ca_file(&ca)
            .unwrap()
            .build()
            .unwrap();
        let r = client
            .get(format!("https://localhost:{}/", o.port()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.text().await.unwrap(), "hello over HTTP/2.0", "{scheme}");
    }
    assert_eq!(running.stats().tunnels.load(Ordering::Relaxed), 2);
    // The defaults fail closed: without the loopback rule the same request is refused.
    let closed = proxy_server::run(&["http://127.0.0.1:0"], Rules::default())
        .await
        .unwrap();
    let client = burrow::Client::builder()
        .proxy(burrow::Proxy::parse(&format!("http://{}", closed.addrs[0].addr())).unwrap())
        .build()
        .unwrap();
    let e = client
        .get(format!("https://localhost:{}/", o.port()))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(StatusCode::FORBIDDEN), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_over_a_unix_socket() {
    let dir = common::tempdir::Dir::new();
    let path = dir.0.join("origin.sock");
    let l = tokio::net::UnixListener::bind(&path).unwrap();
    let l = std::sync::Arc::new(l);
    common::serve_h1(move || {
        let l = l.clone();
        async move { l.accept().await.ok().map(|(s, _)| s) }
    });
    let body = custom_transport::run(path, "http://localhost/")
        .await
        .unwrap();
    assert_eq!(body, "hello over HTTP/1.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_addon_logs_rewrites_answers_locally_and_blocks() {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o = l.local_addr().unwrap();
    let l = std::sync::Arc::new(l);
    common::serve_h1(move || {
        let l = l.clone();
        async move { l.accept().await.ok().map(|(s, _)| s) }
    });
    let (running, addon) = addon::run(
        "127.0.0.1:0".parse().unwrap(),
        Rules::loopback(),
        "blocked.example",
    )
    .await
    .unwrap();
    // Forwarded requests, as curl sends them for http:// URLs (absolute-form).
    let proxy = running.addrs[0].addr();
    let get = |url: String| async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let host = url.split('/').nth(2).unwrap().to_string();
        let mut s = tokio::net::TcpStream::connect(proxy).await.unwrap();
        let req = format!(
            "GET {url} HTTP/1.1\r\nhost: {host}\r\nuser-agent: curl/8\r\nconnection: close\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        (head.to_string(), body.to_string())
    };
    // The header is rewritten on the way.
    let (head, body) = get(format!("http://{o}/ua")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "burrow-addon/1.0");
    // One path is answered by the addon, whatever the host.
    let (head, body) = get("http://nowhere.invalid/burrow/hello".into()).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, "hello from the addon\n");
    // One host is blocked, forwarded or tunnelled.
    let (head, _) = get("http://blocked.example/".into()).await;
    assert!(head.starts_with("HTTP/1.1 403"), "{head}");
    let client = burrow::Client::builder()
        .proxy(burrow::Proxy::parse(&format!("http://{proxy}")).unwrap())
        .build()
        .unwrap();
    let e = client
        .get("https://blocked.example/")
        .send()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("403"), "{e}");
    // Every request and tunnel was logged, with its outcome.
    let log = addon.log.lock().unwrap().clone();
    let lines = log.iter().filter(|l| !l.starts_with("  -> ")).count();
    assert_eq!(lines, 4, "{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.ends_with(&format!("GET http://{o}/ua"))),
        "{log:#?}"
    );
    assert!(
        log.iter()
            .any(|l| l.contains("CONNECT blocked.example:443")),
        "{log:#?}"
    );
    assert!(log.iter().any(|l| l.starts_with("  -> 200")), "{log:#?}");
    assert!(log.iter().any(|l| l.starts_with("  -> 403")), "{log:#?}");
}
