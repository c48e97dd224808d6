//! burrow's HTTP/3 client against burrow's HTTP/3 server over loopback UDP.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use burrow_http3::{bind, connect, serve, Http3Config};
use burrow_http_core::{
    Body, ConnectProtocol, ConnectionInfo, ErrorKind, HttpConnection, ServerConnection,
    TunnelRequest,
};
use burrow_transport::{Roots, Target, TlsConfig, UdpFlow};
use bytes::Bytes;
use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use burrow_test_support::Pki;

/// A test PKI whose server configuration offers `h3`.
struct H3Pki {
    ca: burrow_transport::rustls::pki_types::CertificateDer<'static>,
    server: Arc<burrow_transport::rustls::ServerConfig>,
}

fn pki() -> H3Pki {
    let p = Pki::new();
    H3Pki {
        server: p.server(&[b"h3"]),
        ca: p.ca,
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// `/N` → N pattern bytes; POST echoes with a trailer; CONNECT echoes bytes (and datagrams
/// for extended CONNECT).
async fn server(p: &H3Pki) -> std::net::SocketAddr {
    let ep = bind(
        "127.0.0.1:0".parse().unwrap(),
        p.server.clone(),
        &Http3Config::default(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let conn = incoming.await.unwrap();
                let mut srv = serve(conn, &Default::default()).await.unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    tokio::spawn(async move {
                        let (parts, body) = sr.request.into_parts();
                        if parts.method == http::Method::CONNECT {
                            let proto = parts.extensions.get::<ConnectProtocol>().cloned();
                            let t = sr.respond.accept_tunnel(Response::new(())).await.unwrap();
                            let (stream, dgrams) = t.into_parts();
                            if let (Some(_), Some(d)) = (proto, dgrams) {
                                let d = Arc::new(d);
                                let mut buf = vec![0u8; 2000];
                                for _ in 0..3 {
                                    let n = std::future::poll_fn(|cx| d.poll_recv(cx, &mut buf))
                                        .await
                                        .unwrap();
                                    let payload = buf[..n].to_vec();
                                    std::future::poll_fn(|cx| d.poll_send(cx, &payload))
                                        .await
                                        .unwrap();
                                }
                            }
                            let (mut rd, mut wr) = tokio::io::split(stream);
                            let _ = tokio::io::copy(&mut rd, &mut wr).await;
                            let _ = wr.shutdown().await;
                        } else if parts.method == http::Method::POST {
                            let got = body.collect(64 << 20).await.unwrap();
                            let (mut tx, out) = Body::channel();
                            sr.respond.send_response(Response::new(out)).await.unwrap();
                            tx.send_data(got.data).await.unwrap();
                            let mut t = got.trailers.unwrap_or_default();
                            t.insert("x-echoed", "1".parse().unwrap());
                            tx.send_trailers(t).await.unwrap();
                        } else {
                            let n: usize = parts.uri.path()[1..].parse().unwrap_or(0);
                            sr.respond
                                .send_response(Response::new(Body::from(pattern(n))))
                                .await
                                .unwrap();
                        }
                    });
                }
            });
        }
    });
    addr
}

async fn client(p: &H3Pki, addr: std::net::SocketAddr) -> burrow_http3::Http3Connection {
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    connect(
        flow,
        ConnectionInfo::default(),
        &Http3Config::default(),
        &tls,
        "localhost",
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_0_1mib_64mib_byte_exact() {
    let p = pki();
    let addr = server(&p).await;
    let c = client(&p, addr).await;
    for n in [0usize, 1 << 20, 64 << 20] {
        let req = Request::get(format!("https://localhost:{}/{n}", addr.port()))
            .body(Body::empty())
            .unwrap();
        let resp = c.send_request(req).await.unwrap();
        assert_eq!(resp.version(), http::Version::HTTP_3);
        assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
        let got = resp.into_body().collect(65 << 20).await.unwrap();
        assert!(got.data == pattern(n), "body of {n} bytes differs");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_requests_one_connection() {
    let p = pki();
    let addr = server(&p).await;
    let c = Arc::new(client(&p, addr).await);
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let n = 1000 + i * 331;
            let req = Request::get(format!("https://localhost:{}/{n}", addr.port()))
                .body(Body::empty())
                .unwrap();
            let got = c
                .send_request(req)
                .await
                .unwrap()
                .into_body()
                .collect(1 << 20)
                .await
                .unwrap();
            assert_eq!(got.data, pattern(n));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_with_trailers_both_ways() {
    let p = pki();
    let addr = server(&p).await;
    let c = client(&p, addr).await;
    let (mut tx, b) = Body::channel();
    tokio::spawn(async move {
        for i in 0..20u8 {
            tx.send_data(Bytes::from(vec![i; 50_000])).await.unwrap();
        }
        let mut t = http::HeaderMap::new();
        t.insert("x-sent", "yes".parse().unwrap());
        tx.send_trailers(t).await.unwrap();
    });
    let req = Request::post(format!("https://localhost:{}/echo", addr.port()))
        .body(b)
        .unwrap();
    let got = c
        .send_request(req)
        .await
        .unwrap()
        .into_body()
        .collect(4 << 20)
        .await
        .unwrap();
    assert_eq!(got.data.len(), 1_000_000);
    let t = got.trailers.unwrap();
    assert_eq!(t["x-sent"], "yes");
    assert_eq!(t["x-echoed"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_extended_connect_with_datagrams() {
    let p = pki();
    let addr = server(&p).await;
    let c = client(&p, addr).await;
    let mut t = c
        .open_tunnel(TunnelRequest::connect(
            "example.com:443".parse::<Target>().unwrap(),
        ))
        .await
        .unwrap();
    t.write_all(b"through h3").await.unwrap();
    let mut b = [0u8; 10];
    t.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"through h3");

    let req = TunnelRequest::extended(
        "connect-udp",
        format!("localhost:{}", addr.port())
            .parse::<Target>()
            .unwrap(),
        "/.well-known/masque/udp/192.0.2.9/53/",
    );
    let t = c.open_tunnel(req).await.unwrap();
    let d = t.datagrams().unwrap();
    assert!(d.max_payload() >= 1100, "{}", d.max_payload());
    let mut buf = vec![0u8; 2000];
    for i in 0..3u8 {
        let payload = vec![i; 1000];
        // Datagrams are unreliable: resend until the echo arrives.
        let got = loop {
            std::future::poll_fn(|cx| d.poll_send(cx, &payload))
                .await
                .unwrap();
            let r = tokio::time::timeout(
                Duration::from_millis(300),
                std::future::poll_fn(|cx| d.poll_recv(cx, &mut buf)),
            )
            .await;
            if let Ok(n) = r {
                break n.unwrap();
            }
        };
        assert_eq!(&buf[..got], &payload[..]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_server_certificate_is_certificate_error() {
    let p = pki();
    let addr = server(&p).await;
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None);
    let e = connect(
        flow,
        ConnectionInfo::default(),
        &Http3Config::default(),
        &tls,
        "localhost",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Certificate, "{e}");
}

/// A flow that can only carry small datagrams, like a tunnel through an outer QUIC
/// connection started at 1200 bytes.
struct SmallFlow(UdpFlow);

impl burrow_transport::DatagramFlow for SmallFlow {
    fn poll_send(
        &self,
        cx: &mut std::task::Context<'_>,
        d: &[u8],
    ) -> std::task::Poll<std::io::Result<()>> {
        self.0.poll_send(cx, d)
    }
    fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
        b: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.0.poll_recv(cx, b)
    }
    fn max_datagram_size(&self) -> usize {
        1162
    }
    fn describe(&self) -> String {
        "small".into()
    }
}

#[tokio::test]
async fn flow_too_small_for_quic_is_a_clear_error_not_a_timeout() {
    let flow = Arc::new(SmallFlow(
        UdpFlow::connect("127.0.0.1:9".parse().unwrap())
            .await
            .unwrap(),
    ));
    let e = connect(
        flow,
        ConnectionInfo::default(),
        &Http3Config::default(),
        &TlsConfig::default(),
        "localhost",
    )
    .await
    .err()
    .unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.to_string()
            .contains("at most 1162 bytes; QUIC needs 1200"),
        "{e}"
    );
}

/// `shutdown` tells the server at once (CONNECTION_CLOSE), so it need not wait for the idle
/// timeout (30 s) to free the connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_connection_at_the_server_promptly() {
    let p = pki();
    let (addr, closed) = server_noticing_close(&p);
    let c = client(&p, addr).await;
    c.shutdown().await;
    // `c` is still alive: only the close itself can end the server's loop this early.
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the server did not learn of the close")
        .unwrap();
    drop(c);
}

/// As the CLI runs: a one-thread runtime that ends right after `shutdown` returns (its
/// tasks never run again), so the close must have left during `shutdown` itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_sends_the_close_before_a_one_thread_runtime_ends() {
    let p = Arc::new(pki());
    let (addr, closed) = server_noticing_close(&p);
    let pc = p.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let c = client(&pc, addr).await;
            c.shutdown().await;
        });
        drop(rt);
    })
    .join()
    .unwrap();
    tokio::time::timeout(Duration::from_secs(5), closed)
        .await
        .expect("the close never left the client")
        .unwrap();
}

/// A server that reports when its one connection ends: while it opens its control stream
/// (an error from `serve`) or while it waits for requests (the end of `accept`).
fn server_noticing_close(p: &H3Pki) -> (std::net::SocketAddr, tokio::sync::oneshot::Receiver<()>) {
    let ep = bind(
        "127.0.0.1:0".parse().unwrap(),
        p.server.clone(),
        &Http3Config::default(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let conn = ep.accept().await.unwrap().await.unwrap();
        if let Ok(mut srv) = serve(conn, &Default::default()).await {
            let _ = srv.accept().await;
        }
        let _ = tx.send(());
    });
    (addr, rx)
}
