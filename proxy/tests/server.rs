//! burrow-proxy's server side over loopback: CONNECT and CONNECT-UDP on HTTP/1.1, HTTP/2
//! and HTTP/3, forwarding, authentication, rules, limits.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use burrow_http_core::capsule::{self, CapsuleDecoder};
use burrow_http_core::{Body, ConnectionInfo, ErrorKind, HttpConnection, Tunnel, TunnelRequest};
use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig, Rules};
use burrow_proxy::template::UdpTemplate;
use burrow_transport::{Target, TlsConfig, UdpFlow};
use bytes::BytesMut;
use http::{HeaderValue, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use burrow_test_support::{tcp_echo, udp_echo, Pki};

fn pki() -> Pki {
    Pki::new()
}

fn tls(p: &Pki) -> TlsConfig {
    p.trust()
}

struct Started {
    running: server::Running,
    http: SocketAddr,
    https: SocketAddr,
    h3: SocketAddr,
}

async fn start(p: &Pki, tweak: impl FnOnce(&mut ProxyConfig)) -> Started {
    let mut cfg = ProxyConfig {
        listeners: vec![
            Listen::Http("127.0.0.1:0".parse().unwrap()),
            Listen::Https("127.0.0.1:0".parse().unwrap()),
            Listen::H3("127.0.0.1:0".parse().unwrap()),
        ],
        identity: Some((p.chain.clone(), Arc::new(p.key()))),
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    tweak(&mut cfg);
    let proxy = Proxy::new(cfg, None, None).unwrap();
    let running = server::start(proxy).await.unwrap();
    let pick = |f: fn(&Listen) -> Option<SocketAddr>| running.addrs.iter().find_map(f).unwrap();
    Started {
        http: pick(|l| match l {
            Listen::Http(a) => Some(*a),
            _ => None,
        }),
        https: pick(|l| match l {
            Listen::Https(a) => Some(*a),
            _ => None,
        }),
        h3: pick(|l| match l {
            Listen::H3(a) => Some(*a),
            _ => None,
        }),
        running,
    }
}

async fn h1(proxy: SocketAddr) -> Arc<dyn HttpConnection> {
    let s = TcpStream::connect(proxy).await.unwrap();
    Arc::new(
        burrow_http1::connect(Box::new(s), ConnectionInfo::default(), &Default::default())
            .await
            .unwrap(),
    )
}

async fn h2(p: &Pki, proxy: SocketAddr) -> Arc<dyn HttpConnection> {
    let s = TcpStream::connect(proxy).await.unwrap();
    let cfg = tls(p).client_config(&[b"h2"]).unwrap();
    let (t, alpn) = burrow_transport::tls::handshake(
        Box::new(s),
        &burrow_transport::Host::Name("localhost".into()),
        cfg,
    )
    .await
    .unwrap();
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    Arc::new(
        burrow_http2::connect(Box::new(t), ConnectionInfo::default(), &Default::default())
            .await
            .unwrap(),
    )
}

async fn h3(p: &Pki, proxy: SocketAddr) -> Arc<dyn HttpConnection> {
    let flow = Arc::new(UdpFlow::connect(proxy).await.unwrap());
    let mut cfg = burrow_http3::Http3Config::default();
    cfg.initial_mtu(burrow_http3::PROXY_INITIAL_MTU);
    Arc::new(
        burrow_http3::connect(flow, ConnectionInfo::default(), &cfg, &tls(p), "localhost")
            .await
            .unwrap(),
    )
}

async fn echo_through(mut t: Tunnel, msg: &[u8]) {
    t.write_all(msg).await.unwrap();
    let mut got = vec![0u8; msg.len()];
    t.read_exact(&mut got).await.unwrap();
    assert_eq!(got, msg);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_over_h1_h2_h3_counts_bytes() {
    let p = pki();
    let echo = tcp_echo().await;
    let s = start(&p, |_| {}).await;
    let stats = s.running.stats();
    for conn in [h1(s.http).await, h2(&p, s.https).await, h3(&p, s.h3).await] {
        let t = conn
            .open_tunnel(TunnelRequest::connect(Target::from(echo)))
            .await
            .unwrap();
        echo_through(t, &vec![0x5a; 200_000]).await;
    }
    // Relays finish as the tunnels close; bytes were counted while they ran.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(stats.tunnels.load(Ordering::Relaxed), 3);
    assert!(stats.bytes_up.load(Ordering::Relaxed) >= 600_000);
    assert!(stats.bytes_down.load(Ordering::Relaxed) >= 600_000);
}

fn udp_request(proxy: SocketAddr, target: SocketAddr) -> TunnelRequest {
    let mut r = TunnelRequest::extended(
        "connect-udp",
        Target::from(proxy),
        UdpTemplate::default().expand(&Target::from(target)),
    );
    r.headers_mut()
        .insert("capsule-protocol", HeaderValue::from_static("?1"));
    r
}

/// Sends a datagram as a DATAGRAM capsule on the stream and reads the echoed capsule.
async fn capsule_echo(t: &mut Tunnel, payload: &[u8]) {
    let mut out = BytesMut::new();
    capsule::encode_udp_datagram(payload, &mut out);
    let mut dec = CapsuleDecoder::default();
    let mut buf = vec![0u8; 70_000];
    loop {
        t.write_all(&out).await.unwrap();
        t.flush().await.unwrap();
        let r = tokio::time::timeout(Duration::from_millis(500), async {
            loop {
                if let Some(c) = dec.poll_capsule().unwrap() {
                    return c;
                }
                let n = t.read(&mut buf).await.unwrap();
                assert!(n > 0, "tunnel closed");
                dec.push(&buf[..n]);
            }
        })
        .await;
        if let Ok(c) = r {
            let (ctx, udp) = capsule::split_context(c.value).unwrap();
            assert_eq!(ctx, 0);
            assert_eq!(&udp[..], payload);
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_udp_capsules_over_h1_and_h2_datagrams_over_h3() {
    let p = pki();
    let echo = udp_echo().await;
    let s = start(&p, |_| {}).await;
    // HTTP/1.1 Upgrade and HTTP/2 extended CONNECT: DATAGRAM capsules on the stream.
    for (conn, proxy) in [(h1(s.http).await, s.http), (h2(&p, s.https).await, s.https)] {
        let mut t = conn.open_tunnel(udp_request(proxy, echo)).await.unwrap();
        assert_eq!(t.headers()["capsule-protocol"], "?1");
        assert!(t.datagrams().is_none());
        for size in [1usize, 1200, 1400, 60_000] {
            capsule_echo(&mut t, &vec![size as u8; size]).await;
        }
    }
    // HTTP/3: QUIC DATAGRAM frames bound to the stream.
    let conn = h3(&p, s.h3).await;
    let t = conn.open_tunnel(udp_request(s.h3, echo)).await.unwrap();
    let d = t.datagrams().unwrap();
    let mut buf = vec![0u8; 2000];
    for size in [1usize, 1000, 1250] {
        let mut payload = vec![0u8]; // context id 0
        payload.extend(vec![7u8; size]);
        let n = loop {
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
        assert_eq!(&buf[..n], &payload[..], "{size}");
    }
    assert!(s.running.stats().datagrams.load(Ordering::Relaxed) >= 2 * 8 + 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_407_then_ok() {
    let p = pki();
    let echo = tcp_echo().await;
    let s = start(&p, |c| {
        c.auth = Some(Credentials {
            user: "alice".into(),
            pass: "s3cret".into(),
        })
    })
    .await;
    for conn in [h1(s.http).await, h2(&p, s.https).await, h3(&p, s.h3).await] {
        let e = conn
            .open_tunnel(TunnelRequest::connect(Target::from(echo)))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ProxyRefused);
        assert_eq!(e.status().map(|s| s.as_u16()), Some(407));
    }
    let conn = h2(&p, s.https).await;
    let mut req = TunnelRequest::connect(Target::from(echo));
    // base64("alice:s3cret")
    req.headers_mut().insert(
        "proxy-authorization",
        HeaderValue::from_static("Basic YWxpY2U6czNjcmV0"),
    );
    let t = conn.open_tunnel(req).await.unwrap();
    echo_through(t, b"authorized").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_failures_answer_with_proxy_status() {
    let p = pki();
    let s = start(&p, |c| {
        c.rules = Rules {
            ports: vec![(1, 1023)],
            ..Rules::loopback()
        }
    })
    .await;
    let conn = h2(&p, s.https).await;
    let e = conn
        .open_tunnel(TunnelRequest::connect("127.0.0.1:8080".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403));
    assert_eq!(
        e.detail(),
        Some("Proxy-Status: burrow; error=destination_ip_prohibited; details=\"port not allowed\"")
    );
    // Port 9 on loopback: nobody listens (discard is not running here).
    let e = conn
        .open_tunnel(TunnelRequest::connect("127.0.0.1:9".parse().unwrap()))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(502));
    assert!(
        e.detail().unwrap().contains("error=connection_refused"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_absolute_form_with_version_translation() {
    let p = pki();
    // An HTTP/1.1 origin.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                use burrow_http_core::ServerConnection;
                let mut srv = burrow_http1::serve(Box::new(sock), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let via = sr
                        .request
                        .headers()
                        .get("via")
                        .map(|v| v.to_str().unwrap().to_string());
                    let auth = sr.request.headers().contains_key("proxy-authorization");
                    let body = format!("{} via={via:?} auth={auth}", sr.request.uri());
                    sr.respond
                        .send_response(Response::new(Body::from(body)))
                        .await
                        .unwrap();
                }
            });
        }
    });
    let s = start(&p, |c| c.pseudonym = Some("burrow".into())).await;
    let url = format!("http://{origin}/hello?x=1");
    // HTTP/1.1 absolute-form, and HTTP/2 with :scheme http (translated to HTTP/1.1).
    for (conn, via) in [
        (h1(s.http).await, "1.1 burrow"),
        (h2(&p, s.https).await, "2 burrow"),
    ] {
        let mut req = Request::get(&url).body(Body::empty()).unwrap();
        req.extensions_mut().insert(burrow_http1::AbsoluteForm);
        req.headers_mut().insert(
            "proxy-authorization",
            HeaderValue::from_static("Basic eDp5"),
        );
        let resp = conn.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect(1000).await.unwrap().data;
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(text, format!("/hello?x=1 via=Some(\"{via}\") auth=false"));
    }
    assert_eq!(s.running.stats().forwarded.load(Ordering::Relaxed), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_limit_answers_503_and_others_keep_working() {
    let p = pki();
    let echo = tcp_echo().await;
    let s = start(&p, |c| c.limits.max_tunnels = 1).await;
    let conn = h2(&p, s.https).await;
    let first = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    let e = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(503));
    echo_through(first, b"still fine").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_capsule_closes_only_that_tunnel() {
    let p = pki();
    let echo = udp_echo().await;
    let s = start(&p, |c| c.limits.max_capsule = 2000).await;
    let conn = h2(&p, s.https).await;
    let mut t = conn.open_tunnel(udp_request(s.https, echo)).await.unwrap();
    // A capsule header announcing more than the limit.
    let mut out = BytesMut::new();
    capsule::varint::encode(0, &mut out);
    capsule::varint::encode(1_000_000, &mut out);
    t.write_all(&out).await.unwrap();
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(Duration::from_secs(5), t.read(&mut buf))
        .await
        .unwrap();
    assert!(matches!(r, Ok(0) | Err(_)), "{r:?}");
    // The connection and the proxy still serve.
    let mut t = conn.open_tunnel(udp_request(s.https, echo)).await.unwrap();
    capsule_echo(&mut t, b"after").await;
}

/// The h2 crate's own client (independent of burrow's) opens CONNECT tunnels through
/// burrow-proxy over TLS: 50 tunnels multiplexed on one connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_crate_client_connects_through_burrow_proxy() {
    let p = pki();
    let echo = tcp_echo().await;
    let s = start(&p, |_| {}).await;
    let tcp = TcpStream::connect(s.https).await.unwrap();
    let cfg = tls(&p).client_config(&[b"h2"]).unwrap();
    let (t, _) = burrow_transport::tls::handshake(
        Box::new(tcp),
        &burrow_transport::Host::Name("localhost".into()),
        cfg,
    )
    .await
    .unwrap();
    let (send, conn) = h2::client::handshake(t).await.unwrap();
    tokio::spawn(conn);
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let mut send = send.clone();
        tasks.push(tokio::spawn(async move {
            send = send.ready().await.unwrap();
            let req = Request::connect(echo.to_string()).body(()).unwrap();
            let (resp, mut tx) = send.send_request(req, false).unwrap();
            let resp = resp.await.unwrap();
            assert_eq!(resp.status(), 200);
            let mut rx = resp.into_body();
            let msg = bytes::Bytes::from(vec![i; 10_000]);
            tx.send_data(msg.clone(), false).unwrap();
            let mut got = Vec::new();
            while got.len() < msg.len() {
                let d = rx.data().await.unwrap().unwrap();
                let _ = rx.flow_control().release_capacity(d.len());
                got.extend_from_slice(&d);
            }
            assert_eq!(got, msg);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.running.stats().tunnels.load(Ordering::Relaxed), 50);
}

/// The cleartext listener also takes HTTP/2 with prior knowledge (h2c).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_listener_takes_h2c_prior_knowledge() {
    let p = pki();
    let echo = tcp_echo().await;
    let s = start(&p, |_| {}).await;
    let tcp = TcpStream::connect(s.http).await.unwrap();
    let conn = burrow_http2::connect(
        Box::new(tcp),
        ConnectionInfo::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    let t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    echo_through(t, b"h2c through the plain listener").await;
}

/// A client that stops reading slows the target: the proxy buffers a bounded amount
/// (tunnel buffer plus socket buffers), not everything the target can send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_back_pressures_the_target() {
    let p = pki();
    // A target that writes as fast as it is allowed to.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let firehose = l.local_addr().unwrap();
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut sock, _) = l.accept().await.unwrap();
        let chunk = vec![0x42u8; 64 * 1024];
        while sock.write_all(&chunk).await.is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let s = start(&p, |_| {}).await;
    let conn = h1(s.http).await;
    let mut t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(firehose)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled = sent.load(Ordering::Relaxed);
    // Loopback moves gigabytes a second; without back-pressure this would be far larger.
    assert!(
        stalled < 64 << 20,
        "target pushed {stalled} bytes to a client that reads nothing"
    );
    // Reading resumes the flow.
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < 32 << 20 {
        got += t.read(&mut buf).await.unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > stalled);
}
