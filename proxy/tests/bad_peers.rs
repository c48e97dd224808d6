//! burrow's client against scripted bad peers (issue 13): endless interim responses,
//! silent proxies, an HTTP/3 peer that never sends SETTINGS, credentials in URLs, and an
//! HTTPS proxy that picks HTTP/2 but resets every CONNECT (mitmproxy's #6090).
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use burrow_http1::Http1;
use burrow_http_core::{
    Body, Client, ConnectionInfo, ErrorKind, HttpConnection, ServerConnection, TunnelRequest,
};
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_transport::{Target, UdpFlow};
use http::{Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use burrow_test_support::{tcp_echo, Pki};

const PATIENCE: Duration = Duration::from_secs(10);

fn h1_client() -> Client {
    let mut b = Client::builder();
    b.protocol(Arc::new(Http1::default()));
    b.build().unwrap()
}

/// A TCP server that runs `script` on every connection.
async fn scripted<F, Fut>(script: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    let script = Arc::new(script);
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(script(s));
        }
    });
    a
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.unwrap_or(0) == 0 {
            break;
        }
        buf.push(b[0]);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Answers every request with `100 Continue` for ever.
async fn endless_continue(mut s: TcpStream) {
    read_head(&mut s).await;
    for _ in 0..100_000 {
        if s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endless_interim_responses_are_an_error_not_a_wait() {
    let origin = scripted(endless_continue).await;
    let req = Request::get(format!("http://{origin}/"))
        .body(Body::empty())
        .unwrap();
    let e = tokio::time::timeout(PATIENCE, h1_client().request(req))
        .await
        .expect("waited on 1xx for ever")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert!(e.to_string().contains("interim"), "{e}");
    // The same from a proxy answering CONNECT.
    let route = Route::build(
        &[ProxyUrl::parse(&format!("http://{origin}")).unwrap()],
        &RouteOptions::default(),
    );
    let e = tokio::time::timeout(
        PATIENCE,
        route.stream.connect(&"example.com:443".parse().unwrap()),
    )
    .await
    .expect("waited on 1xx for ever")
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol, "{e}");
    assert_eq!(e.hop().and_then(|h| h.index), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_proxies_time_out_naming_their_hop() {
    // Accepts, reads, never answers.
    let silent = scripted(|mut s: TcpStream| async move {
        let mut sink = [0u8; 1024];
        while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
    let opts = RouteOptions {
        tunnel_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    // TLS proxies that never finish the handshake are bounded by the same deadline.
    for scheme in ["socks5h", "socks4a", "http", "https", "h2"] {
        let route = Route::build(
            &[ProxyUrl::parse(&format!("{scheme}://{silent}")).unwrap()],
            &opts,
        );
        let t0 = tokio::time::Instant::now();
        let e = tokio::time::timeout(
            PATIENCE,
            route.stream.connect(&"example.com:80".parse().unwrap()),
        )
        .await
        .expect("no deadline on the proxy's answer")
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{scheme}: {e}");
        assert_eq!(e.hop().and_then(|h| h.index), Some(0), "{scheme}: {e}");
        assert!(t0.elapsed() < PATIENCE);
    }
    // The default deadline exists (30 s), named so a caller can rely on it.
    assert_eq!(
        RouteOptions::default().tunnel_timeout,
        burrow_proxy::route::DEFAULT_TUNNEL_TIMEOUT
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http3_peer_without_settings_fails_an_extended_connect_in_time() {
    let pki = Pki::new();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(pki.server(&[b"h3"])).unwrap();
    let ep = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        // Completes QUIC handshakes and then says nothing at all.
        while let Some(i) = ep.accept().await {
            if let Ok(c) = i.await {
                tokio::spawn(async move {
                    c.closed().await;
                });
            }
        }
    });
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let mut cfg = burrow_http3::Http3Config::default();
    cfg.handshake_timeout(Duration::from_millis(400));
    let conn = burrow_http3::connect(
        flow,
        ConnectionInfo::default(),
        &cfg,
        &pki.trust(),
        "localhost",
    )
    .await
    .unwrap();
    let req = TunnelRequest::extended(
        "connect-udp",
        Target::from(addr),
        "/.well-known/masque/udp/192.0.2.1/53/",
    );
    let e = tokio::time::timeout(PATIENCE, conn.open_tunnel(req))
        .await
        .expect("waited for SETTINGS for ever")
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.to_string().contains("SETTINGS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn userinfo_becomes_basic_authorization_and_never_reaches_host() {
    let heads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let h = heads.clone();
    let origin = scripted(move |mut s: TcpStream| {
        let h = h.clone();
        async move {
            let head = read_head(&mut s).await;
            h.lock().unwrap().push(head);
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                .await;
        }
    })
    .await;
    let url = format!("http://user:s%3Acret@{origin}/p");
    let resp = h1_client()
        .request(Request::get(&url).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let head = heads.lock().unwrap()[0].to_ascii_lowercase();
    // base64("user:s:cret")
    assert!(
        head.contains("authorization: basic dxnlcjpzomnyzxq="),
        "{head}"
    );
    assert!(head.contains(&format!("host: {origin}\r\n")), "{head}");
    assert!(!head.contains("user"), "{head}");
    assert!(head.starts_with("get /p http/1.1"), "{head}");
}

/// A TLS proxy offering h2 and http/1.1: over HTTP/2 it resets every stream with
/// `reason`; over HTTP/1.1 it accepts CONNECT and relays to `echo`. Counts its HTTP/2
/// connections.
async fn resetting_h2_proxy(pki: &Pki, echo: SocketAddr) -> (SocketAddr, Arc<AtomicUsize>) {
    resetting_h2_proxy_with(pki, echo, h2::Reason::PROTOCOL_ERROR).await
}

async fn resetting_h2_proxy_with(
    pki: &Pki,
    echo: SocketAddr,
    reason: h2::Reason,
) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let tls = pki.server(&[b"h2", b"http/1.1"]);
    let h2_conns = Arc::new(AtomicUsize::new(0));
    let count = h2_conns.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let (tls, count) = (tls.clone(), count.clone());
            tokio::spawn(async move {
                let Ok((t, alpn)) = burrow_transport::tls::accept(Box::new(s), tls).await else {
                    return;
                };
                if alpn.as_deref() == Some(b"h2") {
                    count.fetch_add(1, Ordering::Relaxed);
                    let mut c = h2::server::handshake(t).await.unwrap();
                    while let Some(Ok((_req, mut respond))) = c.accept().await {
                        respond.send_reset(reason);
                    }
                    return;
                }
                let mut srv = burrow_http1::serve(Box::new(t), &Default::default())
                    .await
                    .unwrap();
                // One CONNECT per connection: it becomes the tunnel.
                if let Some(Ok(sr)) = srv.accept().await {
                    let Ok(mut tunnel) = sr.respond.accept_tunnel(Response::new(())).await else {
                        return;
                    };
                    let mut up = TcpStream::connect(echo).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut tunnel, &mut up).await;
                }
            });
        }
    });
    (addr, h2_conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_proxy_refusing_connect_over_h2_is_retried_over_http1_and_remembered() {
    let pki = Pki::new();
    let echo = tcp_echo().await;
    let (proxy, h2_conns) = resetting_h2_proxy(&pki, echo).await;
    let opts = RouteOptions {
        proxy_tls: pki.trust(),
        ..Default::default()
    };
    let route = Route::build(
        &[ProxyUrl::parse(&format!("https://localhost:{}", proxy.port())).unwrap()],
        &opts,
    );
    for round in 0..3 {
        let mut c = route.stream.connect(&Target::from(echo)).await.unwrap();
        c.stream.write_all(b"over http/1.1").await.unwrap();
        let mut got = [0u8; 13];
        c.stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"over http/1.1", "round {round}");
    }
    // HTTP/2 was tried once; later tunnels went straight to HTTP/1.1.
    assert_eq!(h2_conns.load(Ordering::Relaxed), 1);
    // h2:// means HTTP/2 and nothing else.
    let strict = Route::build(
        &[ProxyUrl::parse(&format!("h2://localhost:{}", proxy.port())).unwrap()],
        &opts,
    );
    let e = strict
        .stream
        .connect(&Target::from(echo))
        .await
        .unwrap_err();
    assert_eq!(e.hop().and_then(|h| h.index), Some(0), "{e}");
    assert_eq!(h2_conns.load(Ordering::Relaxed), 2);
}

/// Hangs on its first connect (a black hole), connects to `to` after that.
struct FirstHangs {
    to: SocketAddr,
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl burrow_transport::StreamConnector for FirstHangs {
    async fn connect(&self, _t: &Target) -> burrow_transport::Result<burrow_transport::Connected> {
        if self.calls.fetch_add(1, Ordering::SeqCst) == 0 {
            std::future::pending::<()>().await;
        }
        burrow_transport::TcpConnector::default()
            .connect(&Target::from(self.to))
            .await
    }
    fn describe(&self) -> String {
        "first-hangs".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_given_up_mid_connect_does_not_block_the_origin_for_others() {
    let origin = scripted(|mut s: TcpStream| async move {
        read_head(&mut s).await;
        let _ = s
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            .await;
    })
    .await;
    let mut b = Client::builder();
    b.protocol(Arc::new(Http1::default()))
        .connector(Arc::new(FirstHangs {
            to: origin,
            calls: AtomicUsize::new(0),
        }));
    let client = b.build().unwrap();
    let url = format!("http://origin.test:{}/", origin.port());
    let first = tokio::time::timeout(
        Duration::from_millis(200),
        client.request(Request::get(&url).body(Body::empty()).unwrap()),
    )
    .await;
    assert!(first.is_err(), "the black hole answered");
    let second = tokio::time::timeout(
        PATIENCE,
        client.request(Request::get(&url).body(Body::empty()).unwrap()),
    )
    .await
    .expect("the next request waited for the abandoned connect")
    .unwrap();
    assert_eq!(second.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_error_from_an_h2_proxy_is_about_the_target_and_not_retried() {
    // RST_STREAM(CONNECT_ERROR) says the proxy could not reach the target (RFC 9113 §8.5):
    // no reason to speak HTTP/1.1 to it.
    let pki = Pki::new();
    let echo = tcp_echo().await;
    let (proxy, h2_conns) = resetting_h2_proxy_with(&pki, echo, h2::Reason::CONNECT_ERROR).await;
    let route = Route::build(
        &[ProxyUrl::parse(&format!("https://localhost:{}", proxy.port())).unwrap()],
        &RouteOptions {
            proxy_tls: pki.trust(),
            ..Default::default()
        },
    );
    for _ in 0..2 {
        let e = route.stream.connect(&Target::from(echo)).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(burrow_transport::WireCode::H2(
                burrow_transport::code::H2Reason::CONNECT_ERROR
            )),
            "{e}"
        );
    }
    assert_eq!(h2_conns.load(Ordering::Relaxed), 1, "HTTP/2 stayed in use");
}
