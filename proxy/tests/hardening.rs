//! burrow-proxy tried as an attacker would (issue 13): raw sockets against the running
//! proxy for IP literals, DNS rebinding through a resolver the test controls, smuggling
//! attempts, special ranges, slow drips, black holes, one client hogging the proxy, rapid
//! resets and UDP floods. While each abuse runs, an ordinary client is checked to be served.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, ServerConnection, TunnelRequest};
use burrow_proxy::server::{self, Listen, Proxy, ProxyConfig, Rules};
use burrow_transport::{Resolve, Target, UdpFlow};
use http::Response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};

use burrow_test_support::{tcp_echo, udp_echo, Pki};

/// The deadline every wait in these tests has: far above what the behaviour needs.
const PATIENCE: Duration = Duration::from_secs(10);

struct Started {
    running: server::Running,
    http: SocketAddr,
    https: SocketAddr,
    h3: SocketAddr,
    socks: SocketAddr,
    pki: Pki,
}

impl Started {
    fn stats(&self) -> server::SharedStats {
        self.running.stats()
    }
}

async fn start(tweak: impl FnOnce(&mut ProxyConfig)) -> Started {
    let pki = Pki::new();
    let mut cfg = ProxyConfig {
        listeners: vec![
            Listen::Http("127.0.0.1:0".parse().unwrap()),
            Listen::Https("127.0.0.1:0".parse().unwrap()),
            Listen::H3("127.0.0.1:0".parse().unwrap()),
            Listen::Socks("127.0.0.1:0".parse().unwrap()),
        ],
        identity: Some((pki.chain.clone(), Arc::new(pki.key()))),
        pseudonym: Some("burrow-test".into()),
        ..ProxyConfig::default()
    };
    tweak(&mut cfg);
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let a = running.addrs.clone();
    Started {
        http: a[0].addr(),
        https: a[1].addr(),
        h3: a[2].addr(),
        socks: a[3].addr(),
        running,
        pki,
    }
}

// ---- clients ---------------------------------------------------------------------------

/// Reads one response (head, and a body of its Content-Length) from a raw connection.
async fn read_response(s: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = tokio::time::timeout(PATIENCE, s.read(&mut tmp))
            .await
            .expect("no response")
            .unwrap();
        assert!(
            n > 0,
            "closed without a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&tmp[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    while buf.len() < head_end + len {
        let n = tokio::time::timeout(PATIENCE, s.read(&mut tmp))
            .await
            .expect("body")
            .unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&tmp[..n]);
    }
    String::from_utf8_lossy(&buf[..head_end + len]).into_owned()
}

/// Sends `req` on a new connection to `proxy` and returns the response text.
async fn raw(proxy: SocketAddr, req: &str) -> String {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    read_response(&mut s).await
}

fn status(resp: &str) -> u16 {
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn h2(p: &Pki, proxy: SocketAddr) -> Arc<dyn HttpConnection> {
    let s = TcpStream::connect(proxy).await.unwrap();
    let cfg = p.trust().client_config(&[b"h2"]).unwrap();
    let (t, _) = burrow_transport::tls::handshake(
        Box::new(s),
        &burrow_transport::Host::Name("localhost".into()),
        cfg,
    )
    .await
    .unwrap();
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
        burrow_http3::connect(
            flow,
            ConnectionInfo::default(),
            &cfg,
            &p.trust(),
            "localhost",
        )
        .await
        .unwrap(),
    )
}

/// The `h2` crate's client on the proxy's TLS listener, ready to send.
async fn h2_crate(s: &Started) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = TcpStream::connect(s.https).await.unwrap();
    let cfg = s.pki.trust().client_config(&[b"h2"]).unwrap();
    let (tls, _) = burrow_transport::tls::handshake(
        Box::new(tcp),
        &burrow_transport::Host::Name("localhost".into()),
        cfg,
    )
    .await
    .unwrap();
    let (send, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    send.ready().await.unwrap()
}

/// An ordinary client: a CONNECT over HTTP/2 to a loopback echo server, which the proxy
/// under test must allow (its rules cover 127.0.0.1) and serve while it is abused.
async fn ordinary_client_is_served(s: &Started, echo: SocketAddr) {
    let conn = h2(&s.pki, s.https).await;
    let mut t = tokio::time::timeout(
        PATIENCE,
        conn.open_tunnel(TunnelRequest::connect(Target::from(echo))),
    )
    .await
    .expect("ordinary client waited")
    .expect("ordinary client refused");
    t.write_all(b"still served").await.unwrap();
    let mut got = [0u8; 12];
    tokio::time::timeout(PATIENCE, t.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"still served");
}

async fn refused_tunnel(conn: &Arc<dyn HttpConnection>, target: &str) -> burrow_http_core::Error {
    let t: Target = target.parse().unwrap();
    tokio::time::timeout(PATIENCE, conn.open_tunnel(TunnelRequest::connect(t)))
        .await
        .expect("refusal took too long")
        .unwrap_err()
}

/// A SOCKS5 CONNECT by raw bytes; returns the reply code.
async fn socks5_connect(proxy: SocketAddr, addr: &[u8], port: u16) -> u8 {
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    s.read_exact(&mut m).await.unwrap();
    let mut req = vec![5, 1, 0];
    req.extend_from_slice(addr);
    req.extend_from_slice(&port.to_be_bytes());
    s.write_all(&req).await.unwrap();
    let mut r = [0u8; 2];
    tokio::time::timeout(PATIENCE, s.read_exact(&mut r))
        .await
        .unwrap()
        .unwrap();
    r[1]
}

/// A SOCKS5 CONNECT to 127.0.0.1:`target`'s port through `proxy`, which must succeed
/// (`what` names the case).
async fn socks5_tunnel(proxy: SocketAddr, target: SocketAddr, what: &str) -> TcpStream {
    let mut c = TcpStream::connect(proxy).await.unwrap();
    c.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    c.read_exact(&mut m).await.unwrap();
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&target.port().to_be_bytes());
    c.write_all(&req).await.unwrap();
    let mut reply = [0u8; 10];
    c.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply[1], 0, "{what}");
    c
}

// ---- origins and resolvers -----------------------------------------------------------

/// An HTTP/1.1 origin answering every request with what it saw: its own name, the `Host`
/// and `Content-Length` fields and the body length.
async fn origin_on(l: TcpListener, name: &'static str) -> Arc<AtomicUsize> {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let h = h.clone();
            tokio::spawn(async move {
                let mut srv = burrow_http1::serve(Box::new(sock), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    h.fetch_add(1, Ordering::Relaxed);
                    let headers = sr.request.headers().clone();
                    let all = |n: &str| {
                        headers
                            .get_all(n)
                            .iter()
                            .map(|v| v.to_str().unwrap().to_string())
                            .collect::<Vec<_>>()
                            .join("|")
                    };
                    let (host, cl) = (all("host"), all("content-length"));
                    let body = sr.request.into_body().collect(1 << 20).await.unwrap().data;
                    let text = format!("{name} host={host} cl={cl} body={}", body.len());
                    let _ = sr
                        .respond
                        .send_response(Response::new(Body::from(text)))
                        .await;
                }
            });
        }
    });
    hits
}

/// Answers names from a fixed table, counting lookups; unknown names fail, `hang.test`
/// never answers.
/// `flip.test` rebinds: its odd lookups answer 127.0.0.2, its even ones 127.0.0.1.
struct TestResolver {
    table: Vec<(&'static str, Vec<IpAddr>)>,
    lookups: AtomicUsize,
    flips: AtomicUsize,
}

#[async_trait]
impl Resolve for TestResolver {
    async fn resolve(&self, name: &str, port: u16) -> burrow_transport::Result<Vec<SocketAddr>> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        if name == "hang.test" {
            std::future::pending::<()>().await;
        }
        if name == "flip.test" {
            let n = self.flips.fetch_add(1, Ordering::Relaxed);
            let ip = if n % 2 == 0 { "127.0.0.2" } else { "127.0.0.1" };
            return Ok(vec![SocketAddr::new(ip.parse().unwrap(), port)]);
        }
        match self.table.iter().find(|(n, _)| *n == name) {
            Some((_, ips)) => Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect()),
            None => Err(burrow_transport::Error::peer(
                burrow_transport::ErrorKind::Resolve,
                format!("{name}: no such name"),
            )),
        }
    }
}

fn resolver(table: Vec<(&'static str, Vec<&str>)>) -> Arc<TestResolver> {
    Arc::new(TestResolver {
        table: table
            .into_iter()
            .map(|(n, ips)| (n, ips.into_iter().map(|i| i.parse().unwrap()).collect()))
            .collect(),
        lookups: AtomicUsize::new(0),
        flips: AtomicUsize::new(0),
    })
}

/// A TCP echo server on `addr`.
async fn echo_on(addr: &str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    a
}

/// Binds the same port on 127.0.0.2 and 127.0.0.1 (two origins a name may resolve to).
async fn twin_listeners() -> (TcpListener, TcpListener, u16) {
    loop {
        let a = TcpListener::bind("127.0.0.2:0").await.unwrap();
        let port = a.local_addr().unwrap().port();
        if let Ok(b) = TcpListener::bind(("127.0.0.1", port)).await {
            return (a, b, port);
        }
    }
}

/// A TCP port that accepts no connections and answers no SYN: a listener whose backlog
/// is full (Linux drops further SYNs), i.e. a black hole on loopback.
async fn black_hole() -> (SocketAddr, Vec<TcpStream>, std::net::TcpListener) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.listen(0).unwrap();
    let l: std::net::TcpListener = sock.into();
    let addr = l.local_addr().unwrap();
    // Fill the accept queue; connects beyond it hang.
    let mut held = Vec::new();
    for _ in 0..4 {
        match tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await {
            Ok(Ok(s)) => held.push(s),
            _ => break,
        }
    }
    (addr, held, l)
}

// ---- 1. rules fail closed ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_rules_restrict_ip_literals() {
    let echo = tcp_echo().await;
    let s = start(|c| {
        c.rules = Rules {
            hosts: vec!["localhost".into(), "example.com".into()],
            ..Rules::loopback()
        }
    })
    .await;
    let r = raw(
        s.http,
        "CONNECT 127.0.0.1:6379 HTTP/1.1\r\nHost: 127.0.0.1:6379\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("error=http_request_denied"), "{r}");
    assert_eq!(
        socks5_connect(s.socks, &[1, 127, 0, 0, 1], echo.port()).await,
        2
    );
    // The listed name works (and resolves to loopback, which the rules cover).
    let r = raw(
        s.http,
        &format!(
            "CONNECT localhost:{0} HTTP/1.1\r\nHost: localhost:{0}\r\n\r\n",
            echo.port()
        ),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_rebinding_cannot_reach_what_the_rules_refuse() {
    let (public, internal, port) = twin_listeners().await;
    let public_hits = origin_on(public, "public").await;
    let internal_hits = origin_on(internal, "internal").await;
    let r = resolver(vec![
        // Half of each answer is allowed (127.0.0.2), half is not (127.0.0.1).
        ("rebind.test", vec!["127.0.0.1", "127.0.0.2"]),
        ("inside.test", vec!["127.0.0.1"]),
    ]);
    // The ordinary client's echo server, on an address the rules allow.
    let echo = echo_on("127.0.0.3:0").await;
    let res = r.clone();
    let s = start(move |c| {
        c.resolver = Some(res);
        c.rules = Rules {
            networks: vec![
                burrow_proxy::server::rules::parse_network("127.0.0.2/32").unwrap(),
                burrow_proxy::server::rules::parse_network(&echo.ip().to_string()).unwrap(),
            ],
            ..Rules::default()
        };
    })
    .await;
    for i in 0..6 {
        // Forwarded requests (a new connection each: no pooling hides the lookup) and
        // tunnels: every dial goes to the allowed answer only, after one lookup.
        let before = r.lookups.load(Ordering::Relaxed);
        let resp = raw(
            s.http,
            &format!("GET http://rebind.test:{port}/{i} HTTP/1.1\r\nHost: rebind.test:{port}\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert_eq!(status(&resp), 200, "{resp}");
        assert!(resp.contains("public host="), "{resp}");
        let conn = h2(&s.pki, s.https).await;
        let t = conn
            .open_tunnel(TunnelRequest::connect(
                format!("rebind.test:{port}").parse().unwrap(),
            ))
            .await
            .unwrap();
        drop(t);
        let lookups = r.lookups.load(Ordering::Relaxed) - before;
        assert!(
            lookups <= 2,
            "{lookups} lookups for one request and one tunnel"
        );
    }
    assert_eq!(
        internal_hits.load(Ordering::Relaxed),
        0,
        "an internal origin was reached"
    );
    assert!(public_hits.load(Ordering::Relaxed) >= 6);
    // A name that rebinds between lookups: what was checked is what is dialed, so each
    // tunnel gets the answer of its one lookup (allowed, then refused, ...), never the check
    // of one answer and the dial of the next.
    let conn = h2(&s.pki, s.https).await;
    for i in 0..6 {
        let t = conn
            .open_tunnel(TunnelRequest::connect(
                format!("flip.test:{port}").parse().unwrap(),
            ))
            .await;
        match (i % 2, t) {
            (0, Ok(_)) => {}
            (1, Err(e)) => assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}"),
            (_, t) => panic!("tunnel {i}: {t:?}"),
        }
    }
    // A forwarded request to it (the forwarding client pools the checked connection).
    let resp = raw(
        s.http,
        &format!("GET http://flip.test:{port}/ HTTP/1.1\r\nHost: flip.test\r\n\r\n"),
    )
    .await;
    assert!(resp.contains("public host="), "{resp}");
    assert_eq!(
        internal_hits.load(Ordering::Relaxed),
        0,
        "rebinding reached loopback"
    );
    // A name whose every answer is refused: 403, never dialed.
    let resp = raw(
        s.http,
        &format!("GET http://inside.test:{port}/ HTTP/1.1\r\nHost: inside.test\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&resp), 403, "{resp}");
    assert!(resp.contains("destination_ip_prohibited"), "{resp}");
    // A failed lookup is 502 dns_error, for forwarded requests and tunnels alike.
    let resp = raw(
        s.http,
        "GET http://nowhere.test/ HTTP/1.1\r\nHost: nowhere.test\r\n\r\n",
    )
    .await;
    assert_eq!(status(&resp), 502, "{resp}");
    assert!(resp.contains("dns_error"), "{resp}");
    let conn = h2(&s.pki, s.https).await;
    let e = refused_tunnel(&conn, "nowhere.test:443").await;
    assert_eq!(e.status().map(|s| s.as_u16()), Some(502));
    assert!(e.detail().unwrap().contains("dns_error"), "{e}");
    assert_eq!(internal_hits.load(Ordering::Relaxed), 0);
    ordinary_client_is_served(&s, echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn special_ranges_and_own_listeners_are_refused_by_default() {
    let echo = tcp_echo().await;
    let hole = udp_echo().await;
    let s = start(|_| {}).await;
    let conn = h2(&s.pki, s.https).await;
    for t in [
        format!("127.0.0.1:{}", echo.port()),
        format!("[::ffff:127.0.0.1]:{}", echo.port()),
        format!("localhost:{}", echo.port()),
        "[::1]:22".into(),
        "169.254.169.254:80".into(),
        "0.0.0.0:80".into(),
        "224.0.0.1:80".into(),
        "255.255.255.255:80".into(),
        s.http.to_string(),
    ] {
        let e = refused_tunnel(&conn, &t).await;
        assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{t}: {e}");
        assert!(
            e.detail()
                .unwrap()
                .contains("error=destination_ip_prohibited"),
            "{t}: {e}"
        );
    }
    assert_eq!(
        socks5_connect(s.socks, &[1, 169, 254, 169, 254], 80).await,
        2
    );
    let r = raw(
        s.http,
        &format!(
            "GET http://127.0.0.1:{}/ HTTP/1.1\r\nHost: x\r\n\r\n",
            echo.port()
        ),
    )
    .await;
    assert_eq!(status(&r), 403, "{r}");
    // CONNECT-UDP to loopback over HTTP/3.
    let c3 = h3(&s.pki, s.h3).await;
    let req = TunnelRequest::extended(
        "connect-udp",
        Target::from(s.h3),
        format!("/.well-known/masque/udp/127.0.0.1/{}/", hole.port()),
    );
    let e = c3.open_tunnel(req).await.unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(403), "{e}");
    // A forwarding loop: Via names this proxy.
    let r = raw(
        s.http,
        "GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nVia: 1.1 burrow-test\r\n\r\n",
    )
    .await;
    assert_eq!(status(&r), 508, "{r}");
    assert!(r.contains("error=proxy_loop_detected"), "{r}");
    // An explicit rule unlocks loopback.
    let open = start(|c| c.rules = Rules::loopback()).await;
    ordinary_client_is_served(&open, echo).await;
}

/// This machine's address on its default route, if it has one that is not loopback.
fn non_loopback_local_ip() -> Option<IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    // No packet is sent: connecting a UDP socket only picks the route and source address.
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_own_listeners_are_refused_on_every_local_address() {
    let Some(ip) = non_loopback_local_ip() else {
        eprintln!("skipped: this machine has no non-loopback address to listen on");
        return;
    };
    let pki = Pki::new();
    let cfg = ProxyConfig {
        listeners: vec![Listen::Http("0.0.0.0:0".parse().unwrap())],
        identity: Some((pki.chain.clone(), Arc::new(pki.key()))),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let port = running.addrs[0].addr().port();
    let me = SocketAddr::new(ip, port);
    // CONNECT to itself through its public address: a loop, refused without a lookup.
    let r = raw(me, &format!("CONNECT {me} HTTP/1.1\r\nHost: {me}\r\n\r\n")).await;
    assert_eq!(status(&r), 403, "{r}");
    assert!(r.contains("proxy's own address"), "{r}");
}

// ---- 3. normalisation ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_requests_are_normalised_before_dialing() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits = origin_on(l, "origin").await;
    let echo = tcp_echo().await;
    let r = resolver(vec![("allowed.test", vec!["127.0.0.1"])]);
    let s = start(move |c| {
        c.resolver = Some(r);
        c.rules = Rules::loopback();
    })
    .await;
    let url = format!("http://allowed.test:{port}/");
    // Host is replaced by the target's authority.
    let resp = raw(
        s.http,
        &format!("GET {url} HTTP/1.1\r\nHost: internal.test\r\n\r\n"),
    )
    .await;
    assert!(
        resp.contains(&format!("host=allowed.test:{port} ")),
        "{resp}"
    );
    // An equal Content-Length list is forwarded as one value.
    let resp = raw(
        s.http,
        &format!("POST {url} HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5, 5\r\n\r\nhello"),
    )
    .await;
    assert!(resp.contains(" cl=5 body=5"), "{resp}");
    let before = hits.load(Ordering::Relaxed);
    for (req, want) in [
        // Two Host lines.
        (format!("GET {url} HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"), 400),
        // No Host at all.
        (format!("GET {url} HTTP/1.1\r\n\r\n"), 400),
        // Unequal lengths.
        (format!("POST {url} HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello"), 400),
        // Codings other than chunked.
        (format!("POST {url} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"), 501),
        (format!("POST {url} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n"), 501),
        // Both framings (the smuggling classic).
        (format!("POST {url} HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 400),
        // Userinfo in the target.
        (format!("GET http://u:p@allowed.test:{port}/ HTTP/1.1\r\nHost: a\r\n\r\n"), 400),
    ] {
        let resp = raw(s.http, &req).await;
        assert_eq!(status(&resp), want, "{req:?} -> {resp}");
    }
    assert_eq!(
        hits.load(Ordering::Relaxed),
        before,
        "a refused request reached the origin"
    );
    ordinary_client_is_served(&s, echo).await;
}

// ---- 4. deadlines -------------------------------------------------------------------

/// Reads until the proxy closes the connection (or `PATIENCE` runs out: a failure).
async fn closed_by_proxy(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let mut tmp = [0u8; 1024];
    loop {
        match tokio::time::timeout(PATIENCE, s.read(&mut tmp)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return all,
            Ok(Ok(n)) => all.extend_from_slice(&tmp[..n]),
            Err(_) => panic!("the proxy kept a stalled connection open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_silent_clients_are_cut_off_while_others_are_served() {
    let echo = tcp_echo().await;
    let s = Arc::new(
        start(|c| {
            c.rules = Rules::loopback();
            c.limits.head_timeout = Duration::from_millis(800);
            c.limits.handshake_timeout = Duration::from_millis(800);
            c.limits.keepalive_timeout = Duration::from_millis(800);
        })
        .await,
    );
    // A request head dripped one byte at a time: 408 once the head deadline passes,
    // however regularly the bytes come.
    let drip = {
        let s = s.clone();
        tokio::spawn(async move {
            let mut c = TcpStream::connect(s.http).await.unwrap();
            let head = b"GET http://localhost/ HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
            let t0 = tokio::time::Instant::now();
            for b in head {
                if c.write_all(&[*b]).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                if t0.elapsed() > PATIENCE {
                    panic!("still dripping after {PATIENCE:?}");
                }
            }
            let got = closed_by_proxy(&mut c).await;
            String::from_utf8_lossy(&got).into_owned()
        })
    };
    ordinary_client_is_served(&s, echo).await;
    let got = drip.await.unwrap();
    assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
    // TLS: a client that connects and never says hello.
    let mut c = TcpStream::connect(s.https).await.unwrap();
    closed_by_proxy(&mut c).await;
    // h2c: the preface and then nothing (no SETTINGS).
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    closed_by_proxy(&mut c).await;
    // SOCKS: a greeting that never ends.
    let mut c = TcpStream::connect(s.socks).await.unwrap();
    c.write_all(&[5]).await.unwrap();
    closed_by_proxy(&mut c).await;
    // An idle keep-alive connection after one answered request.
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(b"GET /x HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    let r = read_response(&mut c).await;
    assert_eq!(status(&r), 400, "{r}");
    closed_by_proxy(&mut c).await;
    ordinary_client_is_served(&s, echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_without_settings_or_with_a_stalled_head_is_cut_off() {
    let s = start(|c| {
        c.limits.handshake_timeout = Duration::from_millis(800);
        c.limits.head_timeout = Duration::from_millis(800);
        c.limits.keepalive_timeout = Duration::from_millis(800);
    })
    .await;
    // An idle HTTP/3 connection (its client's keep-alives do not count as use) is told to
    // go away and then closed.
    let idle = h3(&s.pki, s.h3).await;
    let t0 = tokio::time::Instant::now();
    while !idle.is_closed() {
        assert!(
            t0.elapsed() < PATIENCE,
            "an idle HTTP/3 connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A QUIC client that completes the handshake but opens no control stream.
    let mut crypto = (*s.pki.trust().client_config(&[b"h3"]).unwrap()).clone();
    crypto.alpn_protocols = vec![b"h3".to_vec()];
    let qc = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(crypto)).unwrap();
    let mut ep = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    ep.set_default_client_config(quinn::ClientConfig::new(Arc::new(qc)));
    let conn = ep.connect(s.h3, "localhost").unwrap().await.unwrap();
    let why = tokio::time::timeout(PATIENCE, conn.closed()).await.unwrap();
    match why {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(c.error_code.into_inner(), 0x10a, "H3_MISSING_SETTINGS")
        }
        other => panic!("{other:?}"),
    }
    // A proper client whose request stream stalls inside its head: the stream is reset
    // with H3_REQUEST_INCOMPLETE; the connection lives on.
    // burrow's client hides its streams: a raw quinn connection that does send SETTINGS
    // (a control stream with an empty SETTINGS frame), then a request stream.
    let conn = ep.connect(s.h3, "localhost").unwrap().await.unwrap();
    let mut ctl = conn.open_uni().await.unwrap();
    ctl.write_all(&[0x00, 0x04, 0x00]).await.unwrap();
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    // A HEADERS frame (type 1) announcing 100 bytes, of which only 3 come.
    send.write_all(&[0x01, 0x40, 0x64, 0, 0, 0xd1])
        .await
        .unwrap();
    let r = tokio::time::timeout(PATIENCE, recv.read_to_end(1024))
        .await
        .unwrap();
    match r {
        Err(quinn::ReadToEndError::Read(quinn::ReadError::Reset(code))) => {
            assert_eq!(code.into_inner(), 0x10d, "H3_REQUEST_INCOMPLETE")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dials_to_black_holes_answer_504() {
    let (hole, _held, _l) = black_hole().await;
    let echo = tcp_echo().await;
    let r = resolver(vec![]);
    let s = start(move |c| {
        c.rules = Rules::loopback();
        c.resolver = Some(r);
        c.limits.dial_timeout = Duration::from_millis(700);
    })
    .await;
    let conn = h2(&s.pki, s.https).await;
    let e = refused_tunnel(&conn, &hole.to_string()).await;
    assert_eq!(e.status().map(|s| s.as_u16()), Some(504), "{e}");
    assert!(e.detail().unwrap().contains("connection_timeout"), "{e}");
    let e = refused_tunnel(&conn, "hang.test:80").await;
    assert_eq!(e.status().map(|s| s.as_u16()), Some(504), "{e}");
    assert!(e.detail().unwrap().contains("dns_timeout"), "{e}");
    let r = raw(
        s.http,
        &format!("GET http://{hole}/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&r), 504, "{r}");
    ordinary_client_is_served(&s, echo).await;
}

// ---- 5. fairness --------------------------------------------------------------------

async fn connect_from(src: &str, to: SocketAddr) -> TcpStream {
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
    sock.connect(to).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_address_cannot_take_every_slot() {
    let echo = tcp_echo().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.max_connections_per_client = 3;
        c.limits.max_tunnels_per_client = 2;
    })
    .await;
    // Two tunnels held by 127.0.0.1 over one connection; the third is 429.
    let conn = h2(&s.pki, s.https).await;
    let _t1 = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    let _t2 = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    let e = refused_tunnel(&conn, &echo.to_string()).await;
    assert_eq!(e.status().map(|s| s.as_u16()), Some(429), "{e}");
    // Connections: this one and two more are allowed, the fourth is closed at once.
    let _c2 = TcpStream::connect(s.http).await.unwrap();
    let _c3 = TcpStream::connect(s.http).await.unwrap();
    let mut c4 = TcpStream::connect(s.http).await.unwrap();
    let _ = c4
        .write_all(b"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n")
        .await;
    assert!(closed_by_proxy(&mut c4).await.is_empty());
    // Another client address is served normally meanwhile.
    let mut other = connect_from("127.0.0.2", s.http).await;
    other
        .write_all(format!("CONNECT {echo} HTTP/1.1\r\nHost: {echo}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let r = read_response(&mut other).await;
    assert_eq!(status(&r), 200, "{r}");
    other.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    other.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"ping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_per_connection_are_capped_and_the_client_opens_more_connections() {
    let echo = tcp_echo().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.max_streams_per_connection = 3;
    })
    .await;
    // What the proxy announces (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS), seen by the h2 crate.
    let mut send = h2_crate(&s).await;
    // After one round trip the server's SETTINGS are in.
    let (resp, _) = send
        .send_request(
            http::Request::get("https://localhost/").body(()).unwrap(),
            true,
        )
        .unwrap();
    let _ = resp.await;
    assert_eq!(send.current_max_send_streams(), 3);
    // burrow's route opens a second connection for the 4th..6th tunnel instead of waiting.
    let route = burrow_proxy::route::Route::build(
        &[
            burrow_proxy::route::ProxyUrl::parse(&format!("h2://localhost:{}", s.https.port()))
                .unwrap(),
        ],
        &burrow_proxy::route::RouteOptions {
            proxy_tls: s.pki.trust(),
            ..Default::default()
        },
    );
    let before = s.stats().connections.load(Ordering::Relaxed);
    let mut held = Vec::new();
    for _ in 0..6 {
        let c = tokio::time::timeout(PATIENCE, route.stream.connect(&Target::from(echo)))
            .await
            .expect("a tunnel waited for a stream")
            .unwrap();
        held.push(c);
    }
    assert_eq!(s.stats().connections.load(Ordering::Relaxed) - before, 2);
    // The same over HTTP/3 (QUIC's MAX_STREAMS).
    let route = burrow_proxy::route::Route::build(
        &[
            burrow_proxy::route::ProxyUrl::parse(&format!("h3://localhost:{}", s.h3.port()))
                .unwrap(),
        ],
        &burrow_proxy::route::RouteOptions {
            proxy_tls: s.pki.trust(),
            ..Default::default()
        },
    );
    let before = s.stats().connections.load(Ordering::Relaxed);
    for _ in 0..6 {
        let c = tokio::time::timeout(PATIENCE, route.stream.connect(&Target::from(echo)))
            .await
            .expect("an HTTP/3 tunnel waited for a stream")
            .unwrap();
        held.push(c);
    }
    assert_eq!(s.stats().connections.load(Ordering::Relaxed) - before, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_who_never_reads_does_not_block_forwarding_for_others() {
    // An origin with a large answer at /big and a small one elsewhere.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut srv = burrow_http1::serve(Box::new(sock), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let body = if sr.request.uri().path() == "/big" {
                        Body::from(vec![7u8; 32 << 20])
                    } else {
                        Body::from("small")
                    };
                    let _ = sr.respond.send_response(Response::new(body)).await;
                }
            });
        }
    });
    let s = start(|c| c.rules = Rules::loopback()).await;
    // More users than a client's usual per-origin connection cap (6) ask for the big
    // answer and never read it.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut c = TcpStream::connect(s.http).await.unwrap();
        c.write_all(format!("GET http://{origin}/big HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        stalled.push(c);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Others still get answers from the same origin, at once.
    for _ in 0..3 {
        let r = tokio::time::timeout(
            PATIENCE,
            raw(
                s.http,
                &format!("GET http://{origin}/s HTTP/1.1\r\nHost: x\r\n\r\n"),
            ),
        )
        .await
        .expect("a forwarded request waited behind a user who never reads");
        assert!(r.ends_with("small"), "{r}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_resets_cancel_their_dials_and_free_their_slots() {
    let (hole, _held, _l) = black_hole().await;
    let echo = tcp_echo().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.max_tunnels = 4;
        c.limits.max_requests = 4;
        // Long enough that an uncancelled dial would hold its slot through the test.
        c.limits.dial_timeout = Duration::from_secs(60);
    })
    .await;
    // HTTP/2 with the h2 crate: HEADERS, then RST_STREAM right away, 40 times for CONNECT
    // and 40 for forwarded requests, all to a black hole.
    let mut send = h2_crate(&s).await;
    for i in 0..80 {
        let req = if i % 2 == 0 {
            http::Request::connect(hole.to_string()).body(()).unwrap()
        } else {
            http::Request::get(format!("http://{hole}/"))
                .body(())
                .unwrap()
        };
        send = send.ready().await.unwrap();
        let (resp, mut stream) = send.send_request(req, false).unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        stream.send_reset(h2::Reason::CANCEL);
        drop(resp);
    }
    // The work was dropped (a dial that was not would hold its slot for a minute): no
    // tunnel is left in progress, and the slots serve an ordinary client again.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while s.stats().active.load(Ordering::Relaxed) > 0
        || s.stats().cancelled.load(Ordering::Relaxed) == 0
    {
        assert!(tokio::time::Instant::now() < deadline, "{:?}", s.stats());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ordinary_client_is_served(&s, echo).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    origin_on(l, "origin").await;
    let r = raw(
        s.http,
        &format!("GET http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
    // HTTP/3: a tunnel request given up at once (the stream is stopped), 10 times.
    let c3 = h3(&s.pki, s.h3).await;
    let before = s.stats().cancelled.load(Ordering::Relaxed);
    for _ in 0..10 {
        let r = tokio::time::timeout(
            Duration::from_millis(30),
            c3.open_tunnel(TunnelRequest::connect(Target::from(hole))),
        )
        .await;
        assert!(r.is_err(), "the black hole answered");
    }
    while s.stats().active.load(Ordering::Relaxed) > 0
        || s.stats().cancelled.load(Ordering::Relaxed) == before
    {
        assert!(
            tokio::time::Instant::now() < deadline + PATIENCE,
            "{:?}",
            s.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t = tokio::time::timeout(
        PATIENCE,
        c3.open_tunnel(TunnelRequest::connect(Target::from(echo))),
    )
    .await
    .unwrap();
    assert!(t.is_ok(), "{t:?}");
}

// ---- SOCKS5 UDP ---------------------------------------------------------------------

/// An association: the control connection, the relay's address and our UDP socket.
async fn associate(proxy: SocketAddr) -> (TcpStream, SocketAddr, UdpSocket) {
    let mut ctl = TcpStream::connect(proxy).await.unwrap();
    ctl.write_all(&[5, 1, 0]).await.unwrap();
    let mut m = [0u8; 2];
    ctl.read_exact(&mut m).await.unwrap();
    // The address field is the client's expected source: unknown, all zeros (RFC 1928 §7).
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut r = [0u8; 10];
    ctl.read_exact(&mut r).await.unwrap();
    assert_eq!(r[1], 0, "UDP ASSOCIATE refused");
    let relay = SocketAddr::from(([r[4], r[5], r[6], r[7]], u16::from_be_bytes([r[8], r[9]])));
    (ctl, relay, UdpSocket::bind("127.0.0.1:0").await.unwrap())
}

fn udp_packet(to: SocketAddr, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    burrow_proxy::socks::wire::encode_udp(&Target::from(to), data, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_udp_judges_each_datagram_and_caps_destinations() {
    let echo = tcp_echo().await;
    let s = start(|c| {
        // Any network rule at all used to refuse every ASSOCIATE (its 0.0.0.0:0 field).
        c.rules = Rules::loopback();
        c.limits.udp_max_destinations = 4;
    })
    .await;
    let (_ctl, relay, u) = associate(s.socks).await;
    let mut echoes = Vec::new();
    for _ in 0..12 {
        echoes.push(udp_echo().await);
    }
    let mut answered = std::collections::HashSet::new();
    let mut buf = [0u8; 2048];
    for round in 0..3 {
        for (i, e) in echoes.iter().enumerate() {
            u.send_to(&udp_packet(*e, format!("{round}:{i}").as_bytes()), relay)
                .await
                .unwrap();
        }
        // A refused destination: dropped and counted.
        u.send_to(
            &udp_packet("169.254.169.254:53".parse().unwrap(), b"meta"),
            relay,
        )
        .await
        .unwrap();
        while let Ok(Ok((n, _))) =
            tokio::time::timeout(Duration::from_millis(300), u.recv_from(&mut buf)).await
        {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            let i: usize = text.rsplit(':').next().unwrap().parse().unwrap();
            answered.insert(i);
        }
    }
    assert_eq!(answered.len(), 4, "destinations served: {answered:?}");
    let refused = s.stats().datagrams_refused.load(Ordering::Relaxed);
    // 3 rounds × (8 over the cap + 1 prohibited).
    assert_eq!(refused, 27, "{:?}", s.stats());
    ordinary_client_is_served(&s, echo).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_udp_destinations_expire_when_idle() {
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.udp_max_destinations = 1;
        c.limits.udp_idle_timeout = Duration::from_millis(600);
    })
    .await;
    let (_ctl, relay, u) = associate(s.socks).await;
    let (a, b) = (udp_echo().await, udp_echo().await);
    let mut buf = [0u8; 64];
    u.send_to(&udp_packet(a, b"a"), relay).await.unwrap();
    let (n, _) = u.recv_from(&mut buf).await.unwrap();
    assert!(n > 0);
    u.send_to(&udp_packet(b, b"b"), relay).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(s.stats().datagrams_refused.load(Ordering::Relaxed), 1);
    // Once `a` has been quiet for the idle time, its slot is `b`'s.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    u.send_to(&udp_packet(b, b"b"), relay).await.unwrap();
    let (n, _) = tokio::time::timeout(PATIENCE, u.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).ends_with('b'));
}

/// An origin whose `/slow` answer trickles 10 pieces 250 ms apart, `/big` is 32 MiB, `/hang`
/// never answers, anything else is `small`.
async fn paced_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut srv = burrow_http1::serve(Box::new(sock), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let body = match sr.request.uri().path() {
                        "/big" => Body::from(vec![7u8; 32 << 20]),
                        "/hang" => {
                            std::future::pending::<()>().await;
                            unreachable!()
                        }
                        "/slow" => {
                            let (mut tx, body) = Body::channel_with(Some(10), 1);
                            tokio::spawn(async move {
                                for _ in 0..10 {
                                    tokio::time::sleep(Duration::from_millis(250)).await;
                                    if tx.send_data("x".into()).await.is_err() {
                                        return;
                                    }
                                }
                                tx.finish();
                            });
                            body
                        }
                        _ => Body::from("small"),
                    };
                    let _ = sr.respond.send_response(Response::new(body)).await;
                }
            });
        }
    });
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_holds_its_slot_until_its_body_is_sent() {
    let origin = paced_origin().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.max_requests = 1;
    })
    .await;
    // A reads the head of a 32 MiB answer and then stops: its slot stays taken.
    let mut a = TcpStream::connect(s.http).await.unwrap();
    a.write_all(format!("GET http://{origin}/big HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut head = [0u8; 64];
    a.read_exact(&mut head).await.unwrap();
    assert!(head.starts_with(b"HTTP/1.1 200"));
    let r = raw(
        s.http,
        &format!("GET http://{origin}/s HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(
        status(&r),
        503,
        "the slot was free while A's body was unsent: {r}"
    );
    // A goes away: the body is dropped, the slot comes back.
    drop(a);
    let t0 = tokio::time::Instant::now();
    loop {
        let r = raw(
            s.http,
            &format!("GET http://{origin}/s HTTP/1.1\r\nHost: x\r\n\r\n"),
        )
        .await;
        if status(&r) == 200 {
            break;
        }
        assert!(t0.elapsed() < PATIENCE, "the slot never came back: {r}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_has_a_response_deadline_and_a_closed_client_cancels_it() {
    let origin = paced_origin().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.response_timeout = Duration::from_millis(700);
    })
    .await;
    let r = raw(
        s.http,
        &format!("GET http://{origin}/hang HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&r), 504, "{r}");
    assert!(r.contains("http_response_timeout"), "{r}");
    // An HTTP/1.1 client that closes its connection while the origin thinks: cancelled.
    let long = start(|c| {
        c.rules = Rules::loopback();
        c.limits.max_requests = 1;
    })
    .await;
    let mut c = TcpStream::connect(long.http).await.unwrap();
    c.write_all(format!("GET http://{origin}/hang HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(c);
    let t0 = tokio::time::Instant::now();
    while long.stats().cancelled.load(Ordering::Relaxed) == 0 {
        assert!(
            t0.elapsed() < PATIENCE,
            "closing the connection cancelled nothing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = raw(
        long.http,
        &format!("GET http://{origin}/s HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    .await;
    assert_eq!(status(&r), 200, "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_answer_is_not_cut_off_by_the_idle_deadline() {
    let origin = paced_origin().await;
    let s = start(|c| {
        c.rules = Rules::loopback();
        c.limits.keepalive_timeout = Duration::from_millis(500);
    })
    .await;
    for v in [2, 3] {
        let conn = if v == 2 {
            h2(&s.pki, s.https).await
        } else {
            h3(&s.pki, s.h3).await
        };
        let req = http::Request::get(format!("http://{origin}/slow"))
            .body(Body::empty())
            .unwrap();
        let resp = conn.send_request(req).await.unwrap();
        let body = tokio::time::timeout(PATIENCE, resp.into_body().collect(1024))
            .await
            .unwrap()
            .expect("the answer was cut off");
        assert_eq!(&body.data[..], b"xxxxxxxxxx");
    }
}

/// RFC 9113 §8.5: when the client's CONNECT stream fails (RST_STREAM), the proxy closes the
/// target's TCP connection with a RST, not a FIN, so the target cannot take a cut-off
/// transfer for a complete one; a tunnel the client ends cleanly still ends with a FIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_connect_stream_resets_the_target_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap();
    let s = start(|c| c.rules = Rules::loopback()).await;
    let mut send = h2_crate(&s).await;
    for reset in [true, false] {
        send = send.ready().await.unwrap();
        let req = http::Request::connect(target.to_string()).body(()).unwrap();
        let (resp, mut stream) = send.send_request(req, false).unwrap();
        let (mut t, _) = tokio::time::timeout(PATIENCE, l.accept())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
        stream
            .send_data(bytes::Bytes::from_static(b"hello"), !reset)
            .unwrap();
        let mut got = [0u8; 5];
        t.read_exact(&mut got).await.unwrap();
        if reset {
            stream.send_reset(h2::Reason::CANCEL);
        }
        sees_its_end(&mut t, reset).await;
    }
}

/// The same for SOCKS5: a client whose connection resets makes the proxy reset the
/// target's; one that closes with a FIN gets a FIN passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socks_clients_reset_resets_the_target_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap();
    let s = start(|c| c.rules = Rules::loopback()).await;
    for reset in [true, false] {
        let mut c = socks5_tunnel(s.socks, target, "SOCKS5 CONNECT refused").await;
        let (mut t, _) = l.accept().await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut got = [0u8; 5];
        t.read_exact(&mut got).await.unwrap();
        if reset {
            #[allow(deprecated)] // SO_LINGER 0 does not block on drop.
            c.set_linger(Some(Duration::ZERO)).unwrap();
        }
        drop(c);
        sees_its_end(&mut t, reset).await;
    }
}

/// A connection through the proxy ends with a RST (`reset`) or a FIN, promptly.
async fn sees_its_end(t: &mut TcpStream, reset: bool) {
    let mut more = [0u8; 16];
    let end = tokio::time::timeout(PATIENCE, t.read(&mut more))
        .await
        .expect("the connection stayed open");
    match reset {
        true => assert_eq!(
            end.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset)
        ),
        false => assert_eq!(end.unwrap(), 0, "a FIN after a clean end"),
    }
}

/// The other way: a target whose connection resets makes the proxy reset the client's
/// tunnel (its TCP connection for HTTP/1.1 CONNECT and SOCKS5, the stream with
/// CONNECT_ERROR for HTTP/2), so a cut-off download is not taken for a complete one; a
/// target's FIN stays a FIN (EOF, END_STREAM).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targets_reset_resets_the_clients_tunnel() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap();
    let s = start(|c| c.rules = Rules::loopback()).await;
    let end_target = |mut t: TcpStream, reset: bool| async move {
        t.write_all(b"hello").await.unwrap();
        // The client has the data before the end comes.
        let mut ack = [0u8; 1];
        t.read_exact(&mut ack).await.unwrap();
        if reset {
            #[allow(deprecated)] // SO_LINGER 0 does not block on drop.
            t.set_linger(Some(Duration::ZERO)).unwrap();
        }
    };
    for reset in [true, false] {
        // HTTP/1.1 CONNECT.
        let mut c = TcpStream::connect(s.http).await.unwrap();
        let req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n");
        c.write_all(req.as_bytes()).await.unwrap();
        let (t, _) = l.accept().await.unwrap();
        assert_eq!(status(&read_response(&mut c).await), 200);
        let ended = tokio::spawn(end_target(t, reset));
        let mut got = [0u8; 5];
        c.read_exact(&mut got).await.unwrap();
        c.write_all(b"!").await.unwrap();
        ended.await.unwrap();
        sees_its_end(&mut c, reset).await;

        // SOCKS5.
        let mut c = socks5_tunnel(s.socks, target, "SOCKS5 CONNECT refused").await;
        let (t, _) = l.accept().await.unwrap();
        let ended = tokio::spawn(end_target(t, reset));
        c.read_exact(&mut got).await.unwrap();
        c.write_all(b"!").await.unwrap();
        ended.await.unwrap();
        sees_its_end(&mut c, reset).await;

        // HTTP/2 CONNECT.
        let mut send = h2_crate(&s).await.ready().await.unwrap();
        let req = http::Request::connect(target.to_string()).body(()).unwrap();
        let (resp, mut stream) = send.send_request(req, false).unwrap();
        let (t, _) = l.accept().await.unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let ended = tokio::spawn(end_target(t, reset));
        let mut body = resp.into_body();
        let data = tokio::time::timeout(PATIENCE, body.data()).await.unwrap();
        assert_eq!(&data.unwrap().unwrap()[..], b"hello");
        stream
            .send_data(bytes::Bytes::from_static(b"!"), false)
            .unwrap();
        ended.await.unwrap();
        // What comes after the data: an empty DATA frame may carry END_STREAM.
        let end = loop {
            match tokio::time::timeout(PATIENCE, body.data()).await {
                Ok(Some(Ok(d))) if d.is_empty() => continue,
                Ok(end) => break end,
                Err(_) => panic!("the stream stayed open"),
            }
        };
        match reset {
            true => assert_eq!(
                end.and_then(|r| r.err()).and_then(|e| e.reason()),
                Some(h2::Reason::CONNECT_ERROR)
            ),
            false => assert!(end.is_none(), "END_STREAM after the target's FIN: {end:?}"),
        }

        // HTTP/3 CONNECT.
        let conn = h3(&s.pki, s.h3).await;
        let open = conn.open_tunnel(TunnelRequest::connect(Target::from(target)));
        let (c, t) = tokio::time::timeout(PATIENCE, async { tokio::join!(open, l.accept()) })
            .await
            .unwrap();
        let (mut c, (t, _)) = (c.unwrap(), t.unwrap());
        let ended = tokio::spawn(end_target(t, reset));
        c.read_exact(&mut got).await.unwrap();
        c.write_all(b"!").await.unwrap();
        c.flush().await.unwrap();
        ended.await.unwrap();
        let mut more = [0u8; 16];
        let end = tokio::time::timeout(PATIENCE, c.read(&mut more))
            .await
            .expect("the stream stayed open");
        match reset {
            true => {
                let e = end.unwrap_err();
                assert!(e.to_string().contains("H3_CONNECT_ERROR (0x10f)"), "{e}");
            }
            false => assert_eq!(end.unwrap(), 0, "a FIN after the target's FIN"),
        }
    }
}

/// An origin that reads one request at a time and answers by path: `/extra` with a
/// second, unasked-for response in the same write, `/late` with one 100 ms later,
/// `/bye` by closing the connection after its answer, `/gzip` with a transfer coding
/// other than chunked, `/twice` with Content-Length repeated, `/trailers` with trailers
/// of which two may not be, anything else `hello`. Each
/// `/late` and `/bye` is reported once done.
async fn talkative_origin() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<()>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (done, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let done = done.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    // One request: its head, and a body of its Content-Length.
                    let (path, end) = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse().unwrap());
                            if buf.len() >= i + 4 + len {
                                let path = head.split_whitespace().nth(1).unwrap().to_string();
                                break (path, i + 4 + len);
                            }
                        }
                        match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    buf.drain(..end);
                    let ok = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                    let smuggled =
                        "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: yes\r\n\r\nsmuggled";
                    match path.as_str() {
                        "/extra" => s
                            .write_all(format!("{ok}{smuggled}").as_bytes())
                            .await
                            .unwrap(),
                        "/late" => {
                            s.write_all(ok.as_bytes()).await.unwrap();
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            s.write_all(smuggled.as_bytes()).await.unwrap();
                            let _ = done.send(());
                        }
                        "/gzip" => {
                            let _ = s
                                .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n\x1f\x8b")
                                .await;
                            return;
                        }
                        "/twice" => s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\nhello")
                            .await
                            .unwrap(),
                        "/trailers" => s
                            .write_all(
                                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\
                                  X-Checksum: abc\r\nContent-Length: 99\r\nSet-Cookie: a=b\r\n\r\n",
                            )
                            .await
                            .unwrap(),
                        "/bye" => {
                            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye")
                                .await
                                .unwrap();
                            let _ = done.send(());
                            return;
                        }
                        _ => s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
                            .await
                            .unwrap(),
                    }
                }
            });
        }
    });
    (addr, rx)
}

/// An origin that says more than it was asked cannot make the proxy hand those bytes to
/// the next client as its answer (RFC 9112 §6.3): a pooled origin connection with bytes
/// past a response, or with bytes or a close while idle, is not reused. A request with a
/// body after the origin closed an idle connection goes over a new one (no 502).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origins_extra_bytes_never_answer_another_client() {
    let (origin, mut done) = talkative_origin().await;
    let s = start(|c| c.rules = Rules::loopback()).await;
    let get = |path: &str| format!("GET http://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let body_of = |r: &str| r.split("\r\n\r\n").nth(1).unwrap().to_string();
    // Each client on its own connection to the proxy; the proxy pools its origin side.
    let r = raw(s.http, &get("/extra")).await;
    assert_eq!((status(&r), body_of(&r)), (200, "ok".into()));
    let r = raw(s.http, &get("/next")).await;
    assert_eq!((status(&r), body_of(&r)), (200, "hello".into()), "{r}");

    let r = raw(s.http, &get("/late")).await;
    assert_eq!(body_of(&r), "ok");
    done.recv().await.unwrap();
    // The late bytes reach the proxy while the connection idles in its pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = raw(s.http, &get("/next")).await;
    assert_eq!((status(&r), body_of(&r)), (200, "hello".into()), "{r}");

    let r = raw(s.http, &get("/bye")).await;
    assert_eq!(body_of(&r), "bye");
    done.recv().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let post = format!(
        "POST http://{origin}/up HTTP/1.1\r\nHost: {origin}\r\nContent-Length: 4\r\n\r\ndata"
    );
    let r = raw(s.http, &post).await;
    assert_eq!((status(&r), body_of(&r)), (200, "hello".into()), "{r}");
}

/// What a proxy cannot pass on faithfully it refuses or leaves out: a response with a
/// transfer coding other than chunked is a 502 (`http_response_transfer_coding`; its
/// content would be the coded bytes), a repeated Content-Length goes on as one field, and
/// trailers that may not be trailers (RFC 9110 §6.5.1) are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_are_passed_on_faithfully_or_refused() {
    let (origin, _done) = talkative_origin().await;
    let s = start(|c| c.rules = Rules::loopback()).await;
    let get = |path: &str| format!("GET http://{origin}{path} HTTP/1.1\r\nHost: {origin}\r\n\r\n");
    let r = raw(s.http, &get("/gzip")).await.to_ascii_lowercase();
    assert_eq!(status(&r), 502, "{r}");
    assert!(r.contains("http_response_transfer_coding"), "{r}");

    let r = raw(s.http, &get("/twice")).await.to_ascii_lowercase();
    assert_eq!(status(&r), 200);
    assert_eq!(r.matches("content-length").count(), 1, "{r}");
    assert!(
        r.contains("content-length: 5\r\n") && r.ends_with("hello"),
        "{r}"
    );

    let mut c = TcpStream::connect(s.http).await.unwrap();
    let req = format!(
        "GET http://{origin}/trailers HTTP/1.1\r\nHost: {origin}\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    );
    c.write_all(req.as_bytes()).await.unwrap();
    let mut all = Vec::new();
    tokio::time::timeout(PATIENCE, c.read_to_end(&mut all))
        .await
        .unwrap()
        .unwrap();
    let r = String::from_utf8_lossy(&all).to_ascii_lowercase();
    let trailers = r.rsplit("\r\n0\r\n").next().unwrap();
    assert_eq!(trailers, "x-checksum: abc\r\n\r\n", "{r}");
}

/// A request body that breaks its framing is answered 400 (as a bad head is), while no
/// answer has begun; the origin never sees the body end as if it were whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_request_body_is_answered_400_and_never_ends_cleanly_upstream() {
    // An origin that reads the request and never answers: only the proxy can.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = l.local_addr().unwrap();
    let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (mut c, _) = l.accept().await.unwrap();
        let _ = seen_tx.send(None);
        let mut got = Vec::new();
        let mut b = [0u8; 1024];
        let how = loop {
            match c.read(&mut b).await {
                Ok(0) => break "fin",
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(_) => break "reset",
            }
        };
        let _ = seen_tx.send(Some((String::from_utf8_lossy(&got).into_owned(), how)));
    });
    let s = start(|c| c.rules = Rules::loopback()).await;
    let r = raw(
        s.http,
        &format!(
            "POST http://{origin}/up HTTP/1.1\r\nHost: {origin}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
        ),
    )
    .await;
    assert_eq!(status(&r), 400, "{r}");
    assert!(r.contains("invalid chunk size"), "{r}");
    // The failure can come before the dial; if the origin was reached, its connection is
    // given up (not pooled half-sent) and never carried a whole body.
    if let Ok(Some(None)) = tokio::time::timeout(Duration::from_secs(1), seen.recv()).await {
        let (got, how) = tokio::time::timeout(PATIENCE, seen.recv())
            .await
            .expect("the origin's connection is given up")
            .unwrap()
            .unwrap();
        assert!(
            got.is_empty() || got.starts_with("POST /up HTTP/1.1\r\n"),
            "{got}"
        );
        assert!(
            !got.ends_with("0\r\n\r\n"),
            "the body must not end cleanly: {got:?} ({how})"
        );
    }
}

/// A TLS front for `behind` that offers only HTTP/1.1 by ALPN, and passes a reset on as
/// a reset.
async fn h1_tls_front(p: &Pki, behind: SocketAddr) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = p.server(&[b"http/1.1"]);
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok((mut tls, _)) = burrow_transport::tls::accept(Box::new(sock), cfg).await
                else {
                    return;
                };
                let mut back = TcpStream::connect(behind).await.unwrap();
                // Only a reset is passed on as one (a TLS stream cut without close_notify
                // is an error too, but the TCP connection under it ended with a FIN).
                let copied = tokio::io::copy_bidirectional(&mut tls, &mut back).await;
                if copied.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset) {
                    #[allow(deprecated)] // SO_LINGER 0 does not block on drop.
                    back.set_linger(Some(Duration::ZERO)).unwrap();
                }
            });
        }
    });
    addr
}

/// Through an upstream route too: a client's reset reaches the target as a reset, hop by
/// hop. Proxy A's tunnel to proxy B is a TCP connection of its own over HTTP/1.1 CONNECT
/// (plain, or over TLS where only HTTP/1.1 is offered) and SOCKS5, which A resets; over
/// HTTP/2 it is a stream, which A resets with RST_STREAM. B then resets the target. A FIN
/// stays a FIN all the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_reset_crosses_the_upstream_route_to_the_target() {
    use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap();
    let b = start(|c| c.rules = Rules::loopback()).await;
    let front = h1_tls_front(&b.pki, b.http).await;
    for up in [
        format!("http://127.0.0.1:{}", b.http.port()),
        format!("https://localhost:{}", front.port()),
        format!("socks5://127.0.0.1:{}", b.socks.port()),
        format!("h2://localhost:{}", b.https.port()),
    ] {
        let route = Route::build(
            &[ProxyUrl::parse(&up).unwrap()],
            &RouteOptions {
                proxy_tls: b.pki.trust(),
                ..Default::default()
            },
        );
        let cfg = ProxyConfig {
            listeners: vec![Listen::Socks("127.0.0.1:0".parse().unwrap())],
            rules: Rules::loopback(),
            ..ProxyConfig::default()
        };
        let a = server::start(Proxy::new(cfg, Some(route.stream), Some(route.datagram)).unwrap())
            .await
            .unwrap();
        let a_socks = a.addrs[0].addr();
        for reset in [true, false] {
            let mut c =
                socks5_tunnel(a_socks, target, &format!("{up}: SOCKS5 CONNECT refused")).await;
            let (mut t, _) = tokio::time::timeout(PATIENCE, l.accept())
                .await
                .unwrap()
                .unwrap();
            c.write_all(b"hello").await.unwrap();
            let mut got = [0u8; 5];
            t.read_exact(&mut got).await.unwrap();
            if reset {
                #[allow(deprecated)] // SO_LINGER 0 does not block on drop.
                c.set_linger(Some(Duration::ZERO)).unwrap();
            }
            drop(c);
            let mut more = [0u8; 16];
            let end = tokio::time::timeout(PATIENCE, t.read(&mut more))
                .await
                .unwrap_or_else(|_| panic!("{up}: the target's connection stayed open"));
            match reset {
                true => assert_eq!(
                    end.map_err(|e| e.kind()),
                    Err(std::io::ErrorKind::ConnectionReset),
                    "{up}: a reset"
                ),
                false => assert_eq!(end.unwrap(), 0, "{up}: a FIN after a clean end"),
            }
        }
    }
}
