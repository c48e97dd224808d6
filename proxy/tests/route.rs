//! Client routes through burrow-proxy instances: every single hop, chains of two and three
//! mixing versions, TLS in TLS, credentials per hop, 100 tunnels on one HTTP/2 connection.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_http_core::{Body, Client, ErrorKind, ServerConnection, VersionPolicy};
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig, SharedStats};
use burrow_transport::rustls::pki_types::PrivateKeyDer;
use burrow_transport::TlsConfig;
use http::{Request, Response};
use tokio::net::TcpListener;

use burrow_test_support::Pki;

fn pki() -> Pki {
    Pki::new()
}

fn trust(p: &Pki) -> TlsConfig {
    p.trust()
}

fn key(p: &Pki) -> PrivateKeyDer<'static> {
    p.key()
}

/// An HTTPS origin (ALPN h2/http1.1) answering `path + body of N bytes`.
async fn origin(p: &Pki) -> SocketAddr {
    let cfg = burrow_transport::tls::server_config(p.chain.clone(), key(p), &[b"h2", b"http/1.1"])
        .unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok((t, alpn)) = burrow_transport::tls::accept(Box::new(s), cfg).await else {
                    return;
                };
                let mut conn: Box<dyn ServerConnection> = if alpn.as_deref() == Some(b"h2") {
                    Box::new(
                        burrow_http2::serve(Box::new(t), &Default::default())
                            .await
                            .unwrap(),
                    )
                } else {
                    Box::new(
                        burrow_http1::serve(Box::new(t), &Default::default())
                            .await
                            .unwrap(),
                    )
                };
                while let Some(Ok(sr)) = conn.accept().await {
                    let n: usize = sr.request.uri().path()[1..].parse().unwrap_or(0);
                    let body: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
                    tokio::spawn(sr.respond.send_response(Response::new(Body::from(body))));
                }
            });
        }
    });
    a
}

struct P {
    http: SocketAddr,
    https: SocketAddr,
    h3: SocketAddr,
    socks: SocketAddr,
    stats: SharedStats,
    _running: server::Running,
}

async fn proxy(p: &Pki, auth: Option<(&str, &str)>) -> P {
    let cfg = ProxyConfig {
        listeners: ["http", "https", "h3", "socks5"]
            .iter()
            .map(|s| Listen::parse(&format!("{s}://127.0.0.1:0")).unwrap())
            .collect(),
        identity: Some((p.chain.clone(), Arc::new(key(p)))),
        auth: auth.map(|(u, pw)| Credentials {
            user: u.into(),
            pass: pw.into(),
        }),
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let find = |want: &str| {
        running
            .addrs
            .iter()
            .find_map(|l| match (l, want) {
                (Listen::Http(a), "http")
                | (Listen::Https(a), "https")
                | (Listen::H3(a), "h3")
                | (Listen::Socks(a), "socks") => Some(*a),
                _ => None,
            })
            .unwrap()
    };
    P {
        http: find("http"),
        https: find("https"),
        h3: find("h3"),
        socks: find("socks"),
        stats: running.stats(),
        _running: running,
    }
}

fn client(p: &Pki, hops: &[String]) -> Client {
    let urls: Vec<ProxyUrl> = hops.iter().map(|h| ProxyUrl::parse(h).unwrap()).collect();
    let opts = RouteOptions {
        proxy_tls: trust(p),
        ..Default::default()
    };
    let route = Route::build(&urls, &opts);
    let mut b = Client::builder();
    b.protocol(Arc::new(burrow_http1::Http1::default()))
        .protocol(Arc::new(burrow_http2::Http2::default()))
        .datagram_protocol(Arc::new(burrow_http3::Http3::default()))
        .connector(route.stream)
        .datagram_connector(route.datagram)
        .tls(trust(p));
    b.build().unwrap()
}

async fn fetch(c: &Client, origin: SocketAddr, n: usize) -> (http::Version, usize) {
    let req = Request::get(format!("https://localhost:{}/{n}", origin.port()))
        .body(Body::empty())
        .unwrap();
    let r = c.request(req).await.unwrap_or_else(|e| panic!("{e}"));
    let v = r.version();
    let body = r.into_body().collect(8 << 20).await.unwrap().data;
    assert!(body.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
    (v, body.len())
}

fn urls(p: &P) -> Vec<(&'static str, String)> {
    vec![
        ("http", format!("http://127.0.0.1:{}", p.http.port())),
        ("https", format!("https://localhost:{}", p.https.port())),
        ("h2", format!("h2://localhost:{}", p.https.port())),
        ("h3", format!("h3://localhost:{}", p.h3.port())),
        ("socks5", format!("socks5://127.0.0.1:{}", p.socks.port())),
        ("socks5h", format!("socks5h://127.0.0.1:{}", p.socks.port())),
        ("socks4a", format!("socks4a://127.0.0.1:{}", p.socks.port())),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_single_hop_reaches_an_https_origin() {
    let pk = pki();
    let o = origin(&pk).await;
    let a = proxy(&pk, None).await;
    for (name, url) in urls(&a) {
        let before = a.stats.tunnels.load(Ordering::Relaxed);
        let c = client(&pk, &[url]);
        let (v, n) = fetch(&c, o, 1 << 20).await;
        assert_eq!((v, n), (http::Version::HTTP_2, 1 << 20), "{name}");
        assert_eq!(
            a.stats.tunnels.load(Ordering::Relaxed),
            before + 1,
            "{name} took the hop"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_and_three_hop_chains_mixing_versions() {
    let pk = pki();
    let o = origin(&pk).await;
    let (a, b, c) = (
        proxy(&pk, None).await,
        proxy(&pk, None).await,
        proxy(&pk, None).await,
    );
    let (ua, ub, uc) = (urls(&a), urls(&b), urls(&c));
    let pick =
        |u: &Vec<(&str, String)>, k: &str| u.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    let chains = vec![
        vec![pick(&ua, "http"), pick(&ub, "h2")],
        vec![pick(&ua, "h3"), pick(&ub, "http")],
        vec![pick(&ua, "socks5h"), pick(&ub, "https")],
        vec![pick(&ua, "h2"), pick(&ub, "socks4a")],
        vec![pick(&ua, "h3"), pick(&ub, "h2"), pick(&uc, "socks5h")],
        vec![pick(&ua, "socks5"), pick(&ub, "http"), pick(&uc, "h2")],
    ];
    for chain in chains {
        let counts = |s: &SharedStats| s.tunnels.load(Ordering::Relaxed);
        let before = [counts(&a.stats), counts(&b.stats), counts(&c.stats)];
        let cl = client(&pk, &chain);
        let (_, n) = fetch(&cl, o, 300_000).await;
        assert_eq!(n, 300_000, "{chain:?}");
        let after = [counts(&a.stats), counts(&b.stats), counts(&c.stats)];
        for (i, _) in chain.iter().enumerate() {
            assert!(after[i] > before[i], "hop {i} of {chain:?} was not used");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_tunnels_share_one_http2_proxy_connection() {
    let pk = pki();
    let o = origin(&pk).await;
    let a = proxy(&pk, None).await;
    let url = format!("h2://localhost:{}", a.https.port());
    let hop = Route::build(
        &[ProxyUrl::parse(&url).unwrap()],
        &RouteOptions {
            proxy_tls: trust(&pk),
            ..Default::default()
        },
    );
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let s = hop.stream.clone();
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut c = s.connect(&burrow_transport::Target::from(o)).await.unwrap();
            // Speak TLS to the origin? A raw byte is enough to prove the tunnel is up:
            // the origin answers a TLS ClientHello-less stream by closing.
            c.stream.write_all(b"\x16\x03\x01\x00\x00").await.unwrap();
            let mut b = [0u8; 1];
            let _ = c.stream.read(&mut b).await;
            c.info.route()
        }));
    }
    for t in tasks {
        assert_eq!(
            t.await.unwrap(),
            format!("CONNECT@h2 localhost:{} > tls > tcp", a.https.port())
        );
    }
    assert_eq!(a.stats.tunnels.load(Ordering::Relaxed), 100);
    assert_eq!(a.stats.connections.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_go_to_their_hop_and_errors_name_the_hop() {
    let pk = pki();
    let o = origin(&pk).await;
    let a = proxy(&pk, Some(("alice", "pa55"))).await;
    let b = proxy(&pk, Some(("bob", "w0rd"))).await;
    let ok = vec![
        format!("h2://alice:pa55@localhost:{}", a.https.port()),
        format!("socks5h://bob:w0rd@127.0.0.1:{}", b.socks.port()),
    ];
    fetch(&client(&pk, &ok), o, 1000).await;
    // Swap hop 2's password: the error names hop 2 and leaks no password.
    let bad = vec![
        format!("h2://alice:pa55@localhost:{}", a.https.port()),
        format!("http://bob:WRONG@127.0.0.1:{}", b.http.port()),
    ];
    let e = client(&pk, &bad)
        .request(
            Request::get(format!("https://localhost:{}/1", o.port()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ProxyRefused);
    assert_eq!(e.status().map(|s| s.as_u16()), Some(407));
    assert_eq!(e.hop().unwrap().index, Some(1));
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("hop 2 (http proxy 127.0.0.1:{})", b.http.port())),
        "{text}"
    );
    assert!(!text.contains("WRONG") && !text.contains("pa55"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_through_socks4a_is_an_error_naming_the_hop() {
    let pk = pki();
    let a = proxy(&pk, None).await;
    let hop = format!("socks4a://127.0.0.1:{}", a.socks.port());
    let mut b = Client::builder();
    let route = Route::build(&[ProxyUrl::parse(&hop).unwrap()], &RouteOptions::default());
    b.datagram_protocol(Arc::new(burrow_http3::Http3::default()))
        .datagram_connector(route.datagram)
        .connector(route.stream)
        .version_policy(VersionPolicy::Http3Only);
    let e = b
        .build()
        .unwrap()
        .request(
            Request::get("https://localhost:4433/")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    assert!(
        e.to_string().contains(&format!(
            "hop 1 (socks4a proxy 127.0.0.1:{})",
            a.socks.port()
        )),
        "{e}"
    );
    assert!(e.to_string().contains("SOCKS4a cannot carry UDP"), "{e}");
}

/// burrow-proxy reaching its targets through another proxy (`--upstream`): a client's
/// h3 hop to proxy A, whose upstream is proxy B over HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_chains_through_its_upstream_route() {
    let pk = pki();
    let o = origin(&pk).await;
    let b = proxy(&pk, None).await;
    let upstream = Route::build(
        &[ProxyUrl::parse(&format!("h2://localhost:{}", b.https.port())).unwrap()],
        &RouteOptions {
            proxy_tls: trust(&pk),
            ..Default::default()
        },
    );
    let cfg = ProxyConfig {
        listeners: vec![Listen::parse("h3://127.0.0.1:0").unwrap()],
        identity: Some((pk.chain.clone(), Arc::new(key(&pk)))),
        // localhost is loopback wherever it is resolved, so A needs the rule too; other
        // names would go upstream unresolved (B, which dials, judges them).
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let a = server::start(Proxy::new(cfg, Some(upstream.stream), Some(upstream.datagram)).unwrap())
        .await
        .unwrap();
    let Listen::H3(a_addr) = a.addrs[0] else {
        unreachable!()
    };
    let c = client(&pk, &[format!("h3://localhost:{}", a_addr.port())]);
    let (_, n) = fetch(&c, o, 500_000).await;
    assert_eq!(n, 500_000);
    assert_eq!(a.stats().tunnels.load(Ordering::Relaxed), 1);
    assert_eq!(b.stats.tunnels.load(Ordering::Relaxed), 1);
}

/// An HTTP/3 origin (burrow's) on loopback UDP.
async fn h3_origin(p: &Pki) -> SocketAddr {
    let cfg = burrow_transport::tls::server_config(p.chain.clone(), key(p), &[b"h3"]).unwrap();
    let ep = burrow_http3::bind("127.0.0.1:0".parse().unwrap(), cfg, &Default::default()).unwrap();
    let a = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(inc) = ep.accept().await {
            tokio::spawn(async move {
                let Ok(c) = inc.await else { return };
                let Ok(mut srv) = burrow_http3::serve(c, &Default::default()).await else {
                    return;
                };
                while let Some(Ok(sr)) = srv.accept().await {
                    let n: usize = sr.request.uri().path()[1..].parse().unwrap_or(0);
                    let body: Vec<u8> = (0..n).map(|i| (i % 253) as u8).collect();
                    tokio::spawn(sr.respond.send_response(Response::new(Body::from(body))));
                }
            });
        }
    });
    a
}

fn h3_client(p: &Pki, hops: &[String]) -> Client {
    let urls: Vec<ProxyUrl> = hops.iter().map(|h| ProxyUrl::parse(h).unwrap()).collect();
    let route = Route::build(
        &urls,
        &RouteOptions {
            proxy_tls: trust(p),
            ..Default::default()
        },
    );
    let mut b = Client::builder();
    b.datagram_protocol(Arc::new(burrow_http3::Http3::default()))
        .datagram_connector(route.datagram)
        .connector(route.stream)
        .tls(trust(p))
        .version_policy(VersionPolicy::Http3Only);
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_origin_through_udp_hops_and_quic_in_quic_in_quic() {
    let pk = pki();
    let o = h3_origin(&pk).await;
    let a = proxy(&pk, None).await;
    let b = proxy(&pk, None).await;
    let ua = urls(&a);
    let ub = urls(&b);
    let pick =
        |u: &Vec<(&str, String)>, k: &str| u.iter().find(|(n, _)| *n == k).unwrap().1.clone();
    let routes = vec![
        vec![pick(&ua, "h3")],
        vec![pick(&ua, "h2")],
        vec![pick(&ua, "http")],
        vec![pick(&ua, "socks5")],
        vec![pick(&ua, "h3"), pick(&ub, "h3")],
        vec![pick(&ua, "h2"), pick(&ub, "h3")],
        vec![pick(&ua, "socks5h"), pick(&ub, "h2")],
    ];
    for hops in routes {
        let before = a.stats.tunnels.load(Ordering::Relaxed);
        let c = h3_client(&pk, &hops);
        let (v, n) =
            tokio::time::timeout(std::time::Duration::from_secs(30), fetch(&c, o, 1 << 20))
                .await
                .unwrap_or_else(|_| panic!("{hops:?} timed out"));
        assert_eq!((v, n), (http::Version::HTTP_3, 1 << 20), "{hops:?}");
        assert!(
            a.stats.tunnels.load(Ordering::Relaxed) > before,
            "{hops:?} did not use the first hop"
        );
    }
}

/// Drops every datagram its PRNG picks, each way: `per_mille` in a thousand.
struct Lossy {
    inner: burrow_transport::BoxFlow,
    per_mille: u32,
    state: std::sync::Mutex<u64>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

impl Lossy {
    fn lose(&self) -> bool {
        let mut s = self.state.lock().unwrap();
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        let hit = (*s % 1000) < u64::from(self.per_mille);
        if hit {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }
}

impl burrow_transport::DatagramFlow for Lossy {
    fn poll_send(
        &self,
        cx: &mut std::task::Context<'_>,
        d: &[u8],
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.lose() {
            return std::task::Poll::Ready(Ok(()));
        }
        self.inner.poll_send(cx, d)
    }
    fn poll_recv(
        &self,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            let n = std::task::ready!(self.inner.poll_recv(cx, buf))?;
            if !self.lose() {
                return std::task::Poll::Ready(Ok(n));
            }
        }
    }
    fn max_datagram_size(&self) -> usize {
        self.inner.max_datagram_size()
    }
    fn describe(&self) -> String {
        format!("lossy > {}", self.inner.describe())
    }
}

struct LossyConnector {
    inner: Arc<dyn burrow_transport::DatagramConnector>,
    dropped: Arc<std::sync::atomic::AtomicU64>,
}

#[async_trait::async_trait]
impl burrow_transport::DatagramConnector for LossyConnector {
    async fn connect_datagram(
        &self,
        t: &burrow_transport::Target,
    ) -> burrow_transport::Result<burrow_transport::BoxFlow> {
        let inner = self.inner.connect_datagram(t).await?;
        Ok(Arc::new(Lossy {
            inner,
            per_mille: 10,
            state: std::sync::Mutex::new(0x9e37_79b9_7f4a_7c15),
            dropped: self.dropped.clone(),
        }))
    }
    fn describe(&self) -> String {
        "lossy".into()
    }
}

/// HTTP/3 through a CONNECT-UDP flow (over an HTTP/2 proxy) that loses 1% of datagrams
/// each way: QUIC recovers and the body is byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_through_connect_udp_survives_one_percent_loss() {
    let pk = pki();
    let o = h3_origin(&pk).await;
    let a = proxy(&pk, None).await;
    let route = Route::build(
        &[ProxyUrl::parse(&format!("h2://localhost:{}", a.https.port())).unwrap()],
        &RouteOptions {
            proxy_tls: trust(&pk),
            ..Default::default()
        },
    );
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let lossy = Arc::new(LossyConnector {
        inner: route.datagram,
        dropped: dropped.clone(),
    });
    let mut b = Client::builder();
    b.datagram_protocol(Arc::new(burrow_http3::Http3::default()))
        .datagram_connector(lossy)
        .tls(trust(&pk))
        .version_policy(VersionPolicy::Http3Only);
    let c = b.build().unwrap();
    let (v, n) = tokio::time::timeout(std::time::Duration::from_secs(60), fetch(&c, o, 4 << 20))
        .await
        .expect("HTTP/3 over a lossy path stalled");
    assert_eq!((v, n), (http::Version::HTTP_3, 4 << 20));
    assert!(
        dropped.load(Ordering::Relaxed) >= 10,
        "too few losses to mean anything: {}",
        dropped.load(Ordering::Relaxed)
    );
}

/// A proxy serving a custom CONNECT-UDP template: the hop's URL path carries it; without
/// it the proxy refuses the default path (400) and the error names the hop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_hop_udp_template() {
    let pk = pki();
    let o = h3_origin(&pk).await;
    let cfg = ProxyConfig {
        listeners: vec![Listen::parse("h3://127.0.0.1:0").unwrap()],
        identity: Some((pk.chain.clone(), Arc::new(key(&pk)))),
        udp_template: burrow_proxy::template::UdpTemplate::parse(
            "/masque?h={target_host}&p={target_port}",
        )
        .unwrap(),
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let Listen::H3(addr) = running.addrs[0] else {
        unreachable!()
    };
    let with = format!(
        "h3://localhost:{}/masque?h={{target_host}}&p={{target_port}}",
        addr.port()
    );
    let (v, n) = fetch(&h3_client(&pk, &[with]), o, 100_000).await;
    assert_eq!((v, n), (http::Version::HTTP_3, 100_000));
    let without = format!("h3://localhost:{}", addr.port());
    let e = h3_client(&pk, &[without])
        .request(
            Request::get(format!("https://localhost:{}/1", o.port()))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
    assert_eq!(e.hop().unwrap().index, Some(0));
}

/// A proxy whose HTTP/2 connections allow only two concurrent streams: the route opens a
/// second and third connection for tunnels beyond that instead of waiting for a stream
/// (which long-lived tunnels never free).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_beyond_the_proxys_stream_limit_open_another_connection() {
    use std::sync::atomic::AtomicUsize;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let pk = pki();
    let cfg = burrow_transport::tls::server_config(pk.chain.clone(), key(&pk), &[b"h2"]).unwrap();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let (t, _) = burrow_transport::tls::accept(Box::new(s), cfg)
                    .await
                    .unwrap();
                let mut h2 = burrow_http2::Http2Config::default();
                h2.max_concurrent_streams(2);
                let mut conn = burrow_http2::serve(Box::new(t), &h2).await.unwrap();
                while let Some(Ok(sr)) = conn.accept().await {
                    tokio::spawn(async move {
                        // An echoing CONNECT tunnel.
                        let t = sr.respond.accept_tunnel(Response::new(())).await.unwrap();
                        let (mut r, mut w) = tokio::io::split(t);
                        let _ = tokio::io::copy(&mut r, &mut w).await;
                    });
                }
            });
        }
    });
    let route = Route::build(
        &[ProxyUrl::parse(&format!("h2://localhost:{port}")).unwrap()],
        &RouteOptions {
            proxy_tls: trust(&pk),
            ..Default::default()
        },
    );
    let target = burrow_transport::Target::from(SocketAddr::from(([127, 0, 0, 1], 9)));
    let mut held = Vec::new();
    for i in 0..5u8 {
        let mut c = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            route.stream.connect(&target),
        )
        .await
        .expect("a tunnel beyond the stream limit waited")
        .unwrap();
        c.stream.write_all(&[i; 3]).await.unwrap();
        let mut b = [0u8; 3];
        c.stream.read_exact(&mut b).await.unwrap();
        assert_eq!(b, [i; 3]);
        held.push(c);
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
    // A closed tunnel frees its stream: the next one reuses a connection.
    held.remove(0);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut c = route.stream.connect(&target).await.unwrap();
    c.stream.write_all(b"again").await.unwrap();
    let mut b = [0u8; 5];
    c.stream.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"again");
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}
