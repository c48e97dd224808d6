//! The HTTP/1.1 drivers, client against server, over real loopback TCP.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use burrow_http1::{connect, serve};

use burrow_http_core::{
    Body, ConnectionInfo, ErrorKind, HttpConnection, ServerConnection, TunnelRequest,
};
use burrow_transport::{BoxStream, Target};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A test server: echoes POST bodies (streaming, with trailers), answers GET with the path,
/// accepts CONNECT to "ok:1" as an echo tunnel and refuses others with 407.
async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let c = conns.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut srv = serve(Box::new(s), &Default::default()).await.unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let (parts, mut body) = sr.request.into_parts();
                    if parts.method == http::Method::CONNECT {
                        if parts.uri.authority().unwrap().as_str() == "ok:1" {
                            let mut t = sr.respond.accept_tunnel(Response::new(())).await.unwrap();
                            let mut buf = vec![0u8; 4096];
                            loop {
                                let n = t.read(&mut buf).await.unwrap();
                                if n == 0 {
                                    break;
                                }
                                t.write_all(&buf[..n]).await.unwrap();
                            }
                        } else {
                            let resp = Response::builder()
                                .status(407)
                                .header("proxy-status", "test; error=http_request_denied")
                                .body(Body::from("denied"))
                                .unwrap();
                            sr.respond.send_response(resp).await.unwrap();
                        }
                        continue;
                    }
                    if parts.method == http::Method::POST {
                        let (mut tx, out) = Body::channel();
                        sr.respond.send_response(Response::new(out)).await.unwrap();
                        loop {
                            match body.frame().await {
                                Some(f) => match f.unwrap().into_data() {
                                    Ok(d) => tx.send_data(d).await.unwrap(),
                                    Err(f) => {
                                        let t = f.into_trailers().unwrap();
                                        tx.send_trailers(t).await.unwrap();
                                        break;
                                    }
                                },
                                None => {
                                    tx.finish();
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    let resp = Response::new(Body::from(parts.uri.path().to_string()));
                    sr.respond.send_response(resp).await.unwrap();
                }
            });
        }
    });
    (addr, conns)
}

async fn client(addr: std::net::SocketAddr) -> impl HttpConnection {
    let s = TcpStream::connect(addr).await.unwrap();
    connect(
        Box::new(s) as BoxStream,
        ConnectionInfo::default(),
        &Default::default(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn ten_sequential_requests_reuse_one_connection() {
    let (addr, conns) = server().await;
    let c = client(addr).await;
    for i in 0..10 {
        let req = Request::get(format!("http://{addr}/r{i}"))
            .body(Body::empty())
            .unwrap();
        let resp = c.send_request(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect(1 << 20).await.unwrap();
        assert_eq!(body.data, format!("/r{i}"));
        assert!(c.is_ready() || i == 9);
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streaming_echo_with_trailers_both_ways() {
    let (addr, _) = server().await;
    let c = client(addr).await;
    let (mut tx, body) = Body::channel();
    let req = Request::post(format!("http://{addr}/echo"))
        .body(body)
        .unwrap();
    let sender = tokio::spawn(async move {
        // 1 MiB in 16 KiB pieces, then trailers; the server echoes as it reads.
        for i in 0..64u8 {
            tx.send_data(Bytes::from(vec![i; 16 * 1024])).await.unwrap();
        }
        let mut t = http::HeaderMap::new();
        t.insert("x-trailer", "end".parse().unwrap());
        tx.send_trailers(t).await.unwrap();
    });
    let resp = c.send_request(req).await.unwrap();
    let got = resp.into_body().collect(2 << 20).await.unwrap();
    sender.await.unwrap();
    assert_eq!(got.data.len(), 1 << 20);
    for (i, chunk) in got.data.chunks(16 * 1024).enumerate() {
        assert!(chunk.iter().all(|&b| b == i as u8));
    }
    assert_eq!(got.trailers.unwrap()["x-trailer"], "end");
}

#[tokio::test]
async fn connect_tunnel_carries_bytes_both_ways() {
    let (addr, _) = server().await;
    let c = client(addr).await;
    let mut t = c
        .open_tunnel(TunnelRequest::connect("ok:1".parse::<Target>().unwrap()))
        .await
        .unwrap();
    assert_eq!(t.status(), StatusCode::OK);
    t.write_all(b"ping through tunnel").await.unwrap();
    let mut buf = [0u8; 19];
    t.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"ping through tunnel");
    assert!(c.is_closed(), "an HTTP/1.1 connection becomes the tunnel");
}

#[tokio::test]
async fn refused_tunnel_is_typed_error_with_status_and_proxy_status() {
    let (addr, _) = server().await;
    let c = client(addr).await;
    let e = c
        .open_tunnel(TunnelRequest::connect("no:1".parse::<Target>().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProxyRefused);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(407));
    assert_eq!(
        e.detail(),
        Some("Proxy-Status: test; error=http_request_denied")
    );
}

#[tokio::test]
async fn garbage_request_gets_400_and_server_keeps_serving() {
    let (addr, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{out}");
    // Another client is still served.
    let c = client(addr).await;
    let resp = c
        .send_request(
            Request::get(format!("http://{addr}/x"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn oversized_head_gets_431() {
    let (addr, _) = server().await;
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = b"GET / HTTP/1.1\r\nX-Big: ".to_vec();
    req.extend(std::iter::repeat_n(b'a', 70 * 1024));
    req.extend(b"\r\n\r\n");
    let _ = s.write_all(&req).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let out = String::from_utf8_lossy(&out);
    assert!(
        out.starts_with("HTTP/1.1 431 Request Header Fields Too Large\r\n"),
        "{out}"
    );
}

#[tokio::test]
async fn expect_continue_gets_interim_then_final() {
    let (addr, _) = server().await;
    let c = client(addr).await;
    let req = Request::post(format!("http://{addr}/up"))
        .header("expect", "100-continue")
        .body(Body::from("payload"))
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    let got = resp.into_body().collect(1024).await.unwrap();
    assert_eq!(&got.data[..], b"payload");
}

#[tokio::test]
async fn head_response_carries_length_but_no_body_and_connection_is_reused() {
    let (addr, conns) = server().await;
    let c = client(addr).await;
    let req = Request::head(format!("http://{addr}/abcd"))
        .body(Body::empty())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["content-length"], "5");
    assert!(resp.into_body().collect(100).await.unwrap().data.is_empty());
    let resp = c
        .send_request(
            Request::get(format!("http://{addr}/next"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        &resp.into_body().collect(100).await.unwrap().data[..],
        b"/next"
    );
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

/// Regression: a request sent the moment the previous body was read must find the
/// connection free (the driver releases it before delivering the body's end), and a GET's
/// empty body must never look like an abandoned upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reuses_one_connection_for_back_to_back_requests() {
    let (addr, conns) = server().await;
    let mut b = burrow_http_core::Client::builder();
    b.protocol(std::sync::Arc::new(burrow_http1::Http1::default()));
    let client = b.build().unwrap();
    for i in 0..50 {
        let r = client
            .request(
                Request::get(format!("http://{addr}/n{i}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(
            r.into_body().collect(100).await.unwrap().data,
            format!("/n{i}")
        );
    }
    assert_eq!(conns.load(Ordering::SeqCst), 1);
}

/// A tunnel request given up before its answer (its future dropped) closes the
/// connection, which only it could have used: the server sees the end, and the
/// connection is closed (a pool drops it).
#[tokio::test]
async fn a_tunnel_given_up_before_its_answer_closes_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        // Reads the request and never answers; returns once the client has gone.
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    });
    let c = client(addr).await;
    let req = TunnelRequest::extended("websocket", Target::from(addr), "/chat").with_secure(false);
    let given_up = tokio::time::timeout(std::time::Duration::from_millis(100), c.open_tunnel(req));
    assert!(given_up.await.is_err(), "the silent server answered");
    tokio::time::timeout(std::time::Duration::from_secs(10), silent)
        .await
        .expect("the connection stayed open after its tunnel was given up")
        .unwrap();
    assert!(c.is_closed());
}
