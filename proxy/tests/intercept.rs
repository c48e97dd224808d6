//! TLS interception over loopback: certificates minted per name by the proxy's CA, ALPN
//! negotiated separately on each side (an HTTP/2 client over an HTTP/1.1 origin and the
//! reverse), TLS-over-TLS through the HTTPS listener, hooks seeing decrypted requests, the
//! origin's certificate verified, Alt-Svc dropped, ignored hosts and non-TLS tunnels
//! relayed as they are.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, ServerConnection, TunnelRequest};
use burrow_proxy::server::hooks::{Flow, HookResult, Request, Verdict};
use burrow_proxy::server::intercept::{Ca, InterceptRules};
use burrow_proxy::server::{
    self, HookChain, Hooks, InterceptConfig, Listen, Pattern, Proxy, ProxyConfig, Rules,
};
use burrow_transport::rustls::pki_types::CertificateDer;
use burrow_transport::{BoxStream, Host, Roots, Target, TlsConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use burrow_test_support::{tcp_echo, Pki};

/// A TLS origin speaking `alpn` (h1 or h2); answers with its version, path and Host, and an
/// Alt-Svc.
async fn origin(p: &Pki, alpn: &'static [u8]) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let cfg = p.server(&[alpn]);
    tokio::spawn(async move {
        while let Ok((sock, _)) = l.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok((tls, _)) = burrow_transport::tls::accept(Box::new(sock), cfg).await else {
                    return;
                };
                let mut srv: Box<dyn ServerConnection> = if alpn == b"h2" {
                    Box::new(
                        burrow_http2::serve(Box::new(tls), &Default::default())
                            .await
                            .unwrap(),
                    )
                } else {
                    Box::new(
                        burrow_http1::serve(Box::new(tls), &Default::default())
                            .await
                            .unwrap(),
                    )
                };
                while let Some(Ok(sr)) = srv.accept().await {
                    let r = &sr.request;
                    let host = r
                        .headers()
                        .get("host")
                        .map(|h| h.to_str().unwrap().to_string())
                        .or_else(|| r.uri().authority().map(|a| a.to_string()));
                    let text = format!("{:?} {} host={host:?}", r.version(), r.uri().path());
                    let mut resp = http::Response::new(Body::from(text));
                    resp.headers_mut()
                        .insert("alt-svc", http::HeaderValue::from_static("h3=\":443\""));
                    let _ = sr.respond.send_response(resp).await;
                }
            });
        }
    });
    addr
}

/// Records the URIs of decrypted requests.
#[derive(Default)]
struct Seen(Mutex<Vec<String>>);

#[async_trait]
impl Hooks for Seen {
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        self.0.lock().unwrap().push(r.head.uri.to_string());
        Ok(Verdict::Continue)
    }
}

struct Setup {
    _running: server::Running,
    http: SocketAddr,
    https: SocketAddr,
    h3: SocketAddr,
    socks: SocketAddr,
    ca: CertificateDer<'static>,
    seen: Arc<Seen>,
    proxy_pki: Pki,
}

async fn start(origin_pki: &Pki, rules: InterceptRules) -> Setup {
    let (cert, key) = Ca::generate().unwrap();
    let ca = Arc::new(Ca::load(&cert, &key).unwrap());
    let proxy_pki = Pki::new();
    let seen = Arc::new(Seen::default());
    let cfg = ProxyConfig {
        listeners: vec![
            Listen::Http("127.0.0.1:0".parse().unwrap()),
            Listen::Https("127.0.0.1:0".parse().unwrap()),
            Listen::H3("127.0.0.1:0".parse().unwrap()),
            Listen::Socks("127.0.0.1:0".parse().unwrap()),
        ],
        identity: Some((proxy_pki.chain.clone(), Arc::new(proxy_pki.key()))),
        rules: Rules::loopback(),
        origin_tls: origin_pki.trust(),
        hooks: HookChain::new(vec![seen.clone()]),
        intercept: Some(InterceptConfig {
            ca: ca.clone(),
            rules,
        }),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let addr = |i: usize| running.addrs[i].addr();
    Setup {
        http: addr(0),
        https: addr(1),
        h3: addr(2),
        socks: addr(3),
        _running: running,
        ca: ca.certificate().clone(),
        seen,
        proxy_pki,
    }
}

fn trusting(ca: &CertificateDer<'static>) -> TlsConfig {
    let mut t = TlsConfig::default();
    t.roots(Roots::None).add_root_der(ca.clone());
    t
}

/// A CONNECT tunnel to `target` through the plain listener.
async fn tunnel(proxy: SocketAddr, target: SocketAddr) -> BoxStream {
    let s = TcpStream::connect(proxy).await.unwrap();
    let conn = burrow_http1::connect(Box::new(s), ConnectionInfo::default(), &Default::default())
        .await
        .unwrap();
    let t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(target)))
        .await
        .unwrap();
    Box::new(t)
}

/// TLS inside the tunnel as `localhost`, then one GET of `/x` in the negotiated version.
async fn get_inside(io: BoxStream, trust: &TlsConfig, alpn: &[u8], port: u16) -> String {
    get_inside_with(io, trust, alpn, port, true).await
}

async fn get_inside_with(
    io: BoxStream,
    trust: &TlsConfig,
    alpn: &[u8],
    port: u16,
    intercepted: bool,
) -> String {
    let cfg = trust.client_config(&[alpn]).unwrap();
    let (tls, got) = burrow_transport::tls::handshake(io, &Host::Name("localhost".into()), cfg)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some(alpn));
    let conn: Arc<dyn HttpConnection> = if alpn == b"h2" {
        Arc::new(
            burrow_http2::connect(
                Box::new(tls),
                ConnectionInfo::default(),
                &Default::default(),
            )
            .await
            .unwrap(),
        )
    } else {
        Arc::new(
            burrow_http1::connect(
                Box::new(tls),
                ConnectionInfo::default(),
                &Default::default(),
            )
            .await
            .unwrap(),
        )
    };
    let req = http::Request::get(format!("https://localhost:{port}/x"))
        .body(Body::empty())
        .unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers().get("alt-svc").is_none(),
        intercepted,
        "Alt-Svc passed through an intercepted tunnel, or dropped from one that was not"
    );
    let body = resp.into_body().collect(1 << 16).await.unwrap().data;
    String::from_utf8(body.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_are_negotiated_independently_on_each_side() {
    let opki = Pki::new();
    let (h1_origin, h2_origin) = (origin(&opki, b"http/1.1").await, origin(&opki, b"h2").await);
    let s = start(&opki, InterceptRules::default()).await;
    let trust = trusting(&s.ca);
    // An HTTP/2 client over an HTTP/1.1 origin.
    let io = tunnel(s.http, h1_origin).await;
    let text = get_inside(io, &trust, b"h2", h1_origin.port()).await;
    assert_eq!(
        text,
        format!("HTTP/1.1 /x host=Some(\"localhost:{}\")", h1_origin.port())
    );
    // An HTTP/1.1 client over an HTTP/2 origin.
    let io = tunnel(s.http, h2_origin).await;
    let text = get_inside(io, &trust, b"http/1.1", h2_origin.port()).await;
    assert_eq!(
        text,
        format!("HTTP/2.0 /x host=Some(\"localhost:{}\")", h2_origin.port())
    );
    // The hooks saw both decrypted, as https:// requests to the tunnel's target.
    let seen = s.seen.0.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![
            format!("https://localhost:{}/x", h1_origin.port()),
            format!("https://localhost:{}/x", h2_origin.port()),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_tls_through_the_https_listener() {
    let opki = Pki::new();
    let o = origin(&opki, b"http/1.1").await;
    let s = start(&opki, InterceptRules::default()).await;
    // HTTP/2 over TLS to the proxy; CONNECT; TLS to the minted certificate inside.
    let tcp = TcpStream::connect(s.https).await.unwrap();
    let cfg = s.proxy_pki.trust().client_config(&[b"h2"]).unwrap();
    let (outer, _) =
        burrow_transport::tls::handshake(Box::new(tcp), &Host::Name("localhost".into()), cfg)
            .await
            .unwrap();
    let conn = burrow_http2::connect(
        Box::new(outer),
        ConnectionInfo::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    let t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(o)))
        .await
        .unwrap();
    let text = get_inside(Box::new(t), &trusting(&s.ca), b"h2", o.port()).await;
    assert!(text.starts_with("HTTP/1.1 /x"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_with_an_untrusted_certificate_is_502() {
    let opki = Pki::new();
    let o = origin(&opki, b"http/1.1").await;
    // The proxy trusts another CA for origins.
    let s = start(&Pki::new(), InterceptRules::default()).await;
    let io = tunnel(s.http, o).await;
    let cfg = trusting(&s.ca).client_config(&[b"http/1.1"]).unwrap();
    let (tls, _) = burrow_transport::tls::handshake(io, &Host::Name("localhost".into()), cfg)
        .await
        .unwrap();
    let conn = burrow_http1::connect(
        Box::new(tls),
        ConnectionInfo::default(),
        &Default::default(),
    )
    .await
    .unwrap();
    let req = http::Request::get("https://localhost/x")
        .body(Body::empty())
        .unwrap();
    let resp = conn.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 502);
    let ps = resp.headers()["proxy-status"].to_str().unwrap().to_string();
    assert!(ps.contains("error="), "{ps}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignored_hosts_and_non_tls_tunnels_are_relayed_as_they_are() {
    let opki = Pki::new();
    let o = origin(&opki, b"http/1.1").await;
    let rules = InterceptRules {
        hosts: vec![],
        ignore: vec![Pattern::parse("127.0.0.1").unwrap()],
    };
    let s = start(&opki, rules).await;
    // Ignored: the client sees the origin's own certificate.
    let io = tunnel(s.http, o).await;
    let text = get_inside_with(io, &opki.trust(), b"http/1.1", o.port(), false).await;
    assert!(text.starts_with("HTTP/1.1 /x"), "{text}");
    assert!(s.seen.0.lock().unwrap().is_empty());
    // Not TLS: relayed to the target once the first byte shows it.
    let opki2 = Pki::new();
    let s = start(&opki2, InterceptRules::default()).await;
    let echo = tcp_echo().await;
    let mut io = tunnel(s.http, echo).await;
    io.write_all(b"plain bytes").await.unwrap();
    let mut back = [0u8; 11];
    io.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"plain bytes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnels_over_http3_and_socks5_are_intercepted_too() {
    use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
    let opki = Pki::new();
    let o = origin(&opki, b"http/1.1").await;
    let s = start(&opki, InterceptRules::default()).await;
    for hop in [
        format!("h3://localhost:{}", s.h3.port()),
        format!("socks5h://127.0.0.1:{}", s.socks.port()),
    ] {
        let opts = RouteOptions {
            proxy_tls: s.proxy_pki.trust(),
            ..Default::default()
        };
        let route = Route::build(&[ProxyUrl::parse(&hop).unwrap()], &opts);
        let c = route.stream.connect(&Target::from(o)).await.unwrap();
        let text = get_inside(c.stream, &trusting(&s.ca), b"h2", o.port()).await;
        assert!(text.starts_with("HTTP/1.1 /x"), "{hop}: {text}");
    }
    assert_eq!(s.seen.0.lock().unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_speaks_first_is_relayed_after_a_short_wait() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let banner = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                s.write_all(b"220 smtp.test ESMTP\r\n").await.unwrap();
                let mut b = [0u8; 64];
                while let Ok(n) = s.read(&mut b).await {
                    if n == 0 || s.write_all(&b[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    let s = start(&Pki::new(), InterceptRules::default()).await;
    let mut io = tunnel(s.http, banner).await;
    let mut got = [0u8; 21];
    let t0 = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(10), io.read_exact(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&got, b"220 smtp.test ESMTP\r\n");
    assert!(t0.elapsed() >= burrow_proxy::server::CLIENT_FIRST_WAIT / 2);
    io.write_all(b"EHLO me\r\n").await.unwrap();
    let mut back = [0u8; 9];
    io.read_exact(&mut back).await.unwrap();
    assert_eq!(&back, b"EHLO me\r\n");
}

/// Rewrites where requests go.
struct Elsewhere;

#[async_trait]
impl Hooks for Elsewhere {
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        r.head.uri = "https://elsewhere.test/".parse().unwrap();
        Ok(Verdict::Continue)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_the_requests_inside_need_none_and_cannot_be_sent_elsewhere() {
    let opki = Pki::new();
    let o = origin(&opki, b"http/1.1").await;
    let (cert, key) = Ca::generate().unwrap();
    let ca = Arc::new(Ca::load(&cert, &key).unwrap());
    let run = |hooks: Vec<Arc<dyn Hooks>>| {
        let ca = ca.clone();
        let trust = opki.trust();
        async move {
            let cfg = ProxyConfig {
                listeners: vec![Listen::Http("127.0.0.1:0".parse().unwrap())],
                rules: Rules::loopback(),
                origin_tls: trust,
                auth: Some(burrow_proxy::server::Credentials {
                    user: "u".into(),
                    pass: "p".into(),
                }),
                hooks: HookChain::new(hooks),
                intercept: Some(InterceptConfig {
                    ca,
                    rules: InterceptRules::default(),
                }),
                ..ProxyConfig::default()
            };
            server::start(Proxy::new(cfg, None, None).unwrap())
                .await
                .unwrap()
        }
    };
    for (hooks, status) in [
        (vec![], 200u16),
        (vec![Arc::new(Elsewhere) as Arc<dyn Hooks>], 502),
    ] {
        let running = run(hooks).await;
        let mut s = TcpStream::connect(running.addrs[0].addr()).await.unwrap();
        // Basic u:p
        let req =
            format!("CONNECT {o} HTTP/1.1\r\nhost: {o}\r\nproxy-authorization: Basic dTpw\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        let cfg = trusting(ca.certificate())
            .client_config(&[b"http/1.1"])
            .unwrap();
        let (tls, _) =
            burrow_transport::tls::handshake(Box::new(s), &Host::Name("localhost".into()), cfg)
                .await
                .unwrap();
        let conn = burrow_http1::connect(
            Box::new(tls),
            ConnectionInfo::default(),
            &Default::default(),
        )
        .await
        .unwrap();
        let req = http::Request::get(format!("https://localhost:{}/x", o.port()))
            .body(Body::empty())
            .unwrap();
        let resp = conn.send_request(req).await.unwrap();
        assert_eq!(resp.status().as_u16(), status);
    }
}

/// A TLS origin (HTTP/1.1 only) that switches any request to WebSocket, answering with an
/// Accept made from the key, then echoes.
async fn wss_origin(p: &Pki) -> SocketAddr {
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
                let h = read_head(&mut tls).await;
                let key = h
                    .to_ascii_lowercase()
                    .lines()
                    .find_map(|l| l.strip_prefix("sec-websocket-key: ").map(str::to_string))
                    .unwrap_or_default();
                let answer = format!(
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: accept-{key}\r\n\r\n"
                );
                tls.write_all(answer.as_bytes()).await.unwrap();
                let mut buf = [0u8; 4096];
                while let Ok(n) = tls.read(&mut buf).await {
                    if n == 0 || tls.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

async fn read_head(s: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read(&mut b))
            .await
            .expect("a head in time")
            .unwrap();
        assert_eq!(n, 1, "closed mid-head: {:?}", String::from_utf8_lossy(&buf));
        buf.push(b[0]);
    }
    String::from_utf8(buf).unwrap()
}

/// A wss:// WebSocket inside an intercepted tunnel (an HTTP/1.1 Upgrade in the decrypted
/// connection) is forwarded to the origin's own upgrade and relayed; and an intercepted
/// HTTP/2 connection does not offer extended CONNECT, so a browser opens its WebSocket
/// over HTTP/1.1 there (the proxy's own HTTP/2 listener does offer it, for MASQUE).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_inside_an_intercepted_tunnel_are_forwarded() {
    let opki = Pki::new();
    let o = wss_origin(&opki).await;
    let s = start(&opki, InterceptRules::default()).await;
    let trust = trusting(&s.ca);
    let io = tunnel(s.http, o).await;
    let cfg = trust.client_config(&[b"http/1.1"]).unwrap();
    let (mut tls, _) = burrow_transport::tls::handshake(io, &Host::Name("localhost".into()), cfg)
        .await
        .unwrap();
    let req = format!(
        "GET /chat HTTP/1.1\r\nHost: localhost:{}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o.port()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    let answer = read_head(&mut tls).await;
    assert!(answer.starts_with("HTTP/1.1 101 "), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("sec-websocket-accept: accept-a2v5\r\n"),
        "{answer}"
    );
    for msg in [&b"\x81\x02hi"[..], &[7u8; 5000]] {
        tls.write_all(msg).await.unwrap();
        let mut got = vec![0u8; msg.len()];
        tls.read_exact(&mut got).await.unwrap();
        assert_eq!(got, msg);
    }
    // The hooks saw the handshake, decrypted, as a request.
    let seen = s.seen.0.lock().unwrap().clone();
    assert_eq!(seen, vec![format!("https://localhost:{}/chat", o.port())]);

    // Extended CONNECT: not offered inside, offered on the listener.
    let h2_settings = |io: BoxStream, name: &'static str, trust: TlsConfig| async move {
        let cfg = trust.client_config(&[b"h2"]).unwrap();
        let (tls, _) = burrow_transport::tls::handshake(io, &Host::Name(name.into()), cfg)
            .await
            .unwrap();
        let c = burrow_http2::connect(
            Box::new(tls),
            ConnectionInfo::default(),
            &Default::default(),
        )
        .await
        .unwrap();
        c.settings_received().await.unwrap();
        c.extended_connect_enabled()
    };
    let io = tunnel(s.http, o).await;
    assert!(!h2_settings(io, "localhost", trust).await, "offered inside");
    let tcp = TcpStream::connect(s.https).await.unwrap();
    assert!(h2_settings(Box::new(tcp), "localhost", s.proxy_pki.trust()).await);
}

/// A WebSocket inside an intercepted HTTP/1.1 connection whose origin resets resets the
/// client's connection too (the decrypted connection is its whole TCP connection), so the
/// client does not take a cut-off stream for an ended one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_whose_origin_resets_resets_the_intercepted_client() {
    let opki = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let o = l.local_addr().unwrap();
    let cfg = opki.server(&[b"http/1.1"]);
    tokio::spawn(async move {
        let (sock, _) = l.accept().await.unwrap();
        #[allow(deprecated)] // SO_LINGER 0: the close is a RST.
        sock.set_linger(Some(std::time::Duration::ZERO)).unwrap();
        let (mut tls, _) = burrow_transport::tls::accept(Box::new(sock), cfg)
            .await
            .unwrap();
        read_head(&mut tls).await;
        let answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\nfirst";
        tls.write_all(answer.as_bytes()).await.unwrap();
        let mut b = [0u8; 1];
        let _ = tls.read(&mut b).await;
        // Dropped without close_notify, with a RST.
    });
    let s = start(&opki, InterceptRules::default()).await;
    let mut c = TcpStream::connect(s.http).await.unwrap();
    c.write_all(format!("CONNECT {o} HTTP/1.1\r\nHost: {o}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let connected = read_head(&mut c).await;
    assert!(connected.starts_with("HTTP/1.1 200"), "{connected}");
    let cfg = trusting(&s.ca).client_config(&[b"http/1.1"]).unwrap();
    let (mut tls, _) =
        burrow_transport::tls::handshake(Box::new(c), &Host::Name("localhost".into()), cfg)
            .await
            .unwrap();
    let req = format!(
        "GET /chat HTTP/1.1\r\nHost: localhost:{}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a2V5\r\nSec-WebSocket-Version: 13\r\n\r\n",
        o.port()
    );
    tls.write_all(req.as_bytes()).await.unwrap();
    assert!(read_head(&mut tls).await.starts_with("HTTP/1.1 101 "));
    let mut first = [0u8; 5];
    tls.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"first");
    tls.write_all(b"!").await.unwrap();
    let mut more = [0u8; 16];
    let end = tokio::time::timeout(std::time::Duration::from_secs(10), tls.read(&mut more))
        .await
        .expect("the client's connection stayed open");
    assert_eq!(
        end.map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionReset),
        "a reset, not an end"
    );
}
