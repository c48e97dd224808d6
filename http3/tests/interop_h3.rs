//! Interop with the `h3` crate (with `h3-quinn`), an HTTP/3 implementation independent of
//! burrow's: burrow's client against an h3 server, and an h3 client against burrow's server.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use burrow_http3::{bind, connect, serve, Http3Config};
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, ServerConnection};
use burrow_transport::{Roots, TlsConfig, UdpFlow};
use bytes::{Buf, Bytes};
use http::{Request, Response};

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

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

/// An HTTP/3 origin written with the h3 crate: `/N` returns N pattern bytes.
async fn h3_origin(p: &H3Pki) -> std::net::SocketAddr {
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(p.server.clone()).unwrap();
    let ep = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let conn = incoming.await.unwrap();
                let mut h3c: h3::server::Connection<h3_quinn::Connection, Bytes> =
                    h3::server::Connection::new(h3_quinn::Connection::new(conn))
                        .await
                        .unwrap();
                while let Ok(Some(resolver)) = h3c.accept().await {
                    tokio::spawn(async move {
                        let (req, mut stream) = resolver.resolve_request().await.unwrap();
                        let n: usize = req.uri().path()[1..].parse().unwrap_or(0);
                        let resp = Response::builder()
                            .header("content-length", n)
                            .body(())
                            .unwrap();
                        stream.send_response(resp).await.unwrap();
                        let body = Bytes::from(pattern(n));
                        let mut off = 0;
                        while off < n {
                            let end = (off + 256 * 1024).min(n);
                            stream.send_data(body.slice(off..end)).await.unwrap();
                            off = end;
                        }
                        stream.finish().await.unwrap();
                    });
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burrow_client_against_h3_crate_server() {
    let p = pki();
    let addr = h3_origin(&p).await;
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    let c = Arc::new(
        connect(
            flow,
            ConnectionInfo::default(),
            &Http3Config::default(),
            &tls,
            "localhost",
        )
        .await
        .unwrap(),
    );
    for n in [0usize, 1 << 20, 64 << 20] {
        let req = Request::get(format!("https://localhost:{}/{n}", addr.port()))
            .body(Body::empty())
            .unwrap();
        let resp = c.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let got = resp.into_body().collect(65 << 20).await.unwrap();
        assert!(got.data == pattern(n), "{n} bytes differ");
    }
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let n = 500 + i * 613;
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
async fn h3_crate_client_against_burrow_server() {
    let p = pki();
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
                let mut srv = serve(incoming.await.unwrap(), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let n: usize = sr.request.uri().path()[1..].parse().unwrap_or(0);
                    tokio::spawn(
                        sr.respond
                            .send_response(Response::new(Body::from(pattern(n)))),
                    );
                }
            });
        }
    });
    // The h3 crate's client over its own quinn endpoint.
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    let crypto =
        quinn::crypto::rustls::QuicClientConfig::try_from(tls.client_config(&[b"h3"]).unwrap())
            .unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let conn = ep.connect(addr, "localhost").unwrap().await.unwrap();
    let (mut driver, mut send) = h3::client::new(h3_quinn::Connection::new(conn))
        .await
        .unwrap();
    tokio::spawn(async move { std::future::poll_fn(|cx| driver.poll_close(cx)).await });
    for n in [0usize, 1 << 20, 64 << 20] {
        let req = Request::get(format!("https://localhost:{}/{n}", addr.port()))
            .body(())
            .unwrap();
        let mut stream = send.send_request(req).await.unwrap();
        stream.finish().await.unwrap();
        let resp = stream.recv_response().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["content-length"], n.to_string().as_str());
        let mut got = Vec::with_capacity(n);
        while let Some(mut chunk) = stream.recv_data().await.unwrap() {
            while chunk.has_remaining() {
                let c = chunk.chunk();
                got.extend_from_slice(c);
                let l = c.len();
                chunk.advance(l);
            }
        }
        assert!(got == pattern(n), "{n} bytes differ");
    }
}

/// The h3 crate's server does not enable extended CONNECT: burrow refuses to send one,
/// with a clear error, after reading the server's SETTINGS (no stream is reset).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_refused_when_peer_settings_do_not_allow_it() {
    let p = pki();
    let addr = h3_origin(&p).await;
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    let c = connect(
        flow,
        ConnectionInfo::default(),
        &Http3Config::default(),
        &tls,
        "localhost",
    )
    .await
    .unwrap();
    let req = burrow_http_core::TunnelRequest::extended(
        "websocket",
        format!("localhost:{}", addr.port()).parse().unwrap(),
        "/",
    );
    let e = c.open_tunnel(req).await.unwrap_err();
    assert_eq!(e.kind(), burrow_http_core::ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string().contains("SETTINGS_ENABLE_CONNECT_PROTOCOL"),
        "{e}"
    );
    // The connection still serves requests.
    let r = c
        .send_request(
            Request::get(format!("https://localhost:{}/10", addr.port()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.into_body().collect(100).await.unwrap().data, pattern(10));
}

/// The h3 crate's server announces no HTTP Datagrams: CONNECT-UDP is refused up front with
/// a clear error instead of a tunnel whose datagrams vanish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_udp_refused_without_h3_datagram_setting() {
    let p = pki();
    let addr = h3_origin(&p).await;
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    let c = connect(
        flow,
        ConnectionInfo::default(),
        &Http3Config::default(),
        &tls,
        "localhost",
    )
    .await
    .unwrap();
    let req = burrow_http_core::TunnelRequest::extended(
        "connect-udp",
        format!("localhost:{}", addr.port()).parse().unwrap(),
        "/",
    );
    let e = c.open_tunnel(req).await.unwrap_err();
    assert_eq!(e.kind(), burrow_http_core::ErrorKind::Unsupported, "{e}");
    assert!(e.to_string().contains("SETTINGS_H3_DATAGRAM"), "{e}");
}
