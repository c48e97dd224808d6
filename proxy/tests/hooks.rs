//! burrow-proxy's hooks over loopback: requests modified, answered locally, blocked;
//! bodies rewritten; failing and panicking hooks answered 502; a slow hook holding back
//! only its own flow; tunnel summaries; back-pressure with hooks on; reloads.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, ServerConnection, TunnelRequest};
use burrow_proxy::server::hooks::{
    End, Flow, HookError, HookResult, LocalResponse, Request, Response, Summary, Tunnel,
    TunnelKind, Verdict, What,
};
use burrow_proxy::server::{self, HookChain, Hooks, Listen, Proxy, ProxyConfig, Routes, Rules};
use burrow_transport::Target;
use bytes::Bytes;
use http::{HeaderValue, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use burrow_test_support::tcp_echo;

/// An HTTP/1.1 origin answering with what it saw: `x-added` and the request body; counts
/// requests.
async fn origin() -> (SocketAddr, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let hits = Arc::new(AtomicU64::new(0));
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
                    let (parts, body) = sr.request.into_parts();
                    let added = parts
                        .headers
                        .get("x-added")
                        .map(|v| v.to_str().unwrap().to_string());
                    let body = body.collect(1 << 20).await.unwrap().data;
                    let text = format!(
                        "{} x-added={added:?} body={}",
                        parts.uri.path(),
                        String::from_utf8_lossy(&body)
                    );
                    let _ = sr
                        .respond
                        .send_response(http::Response::new(Body::from(text)))
                        .await;
                }
            });
        }
    });
    (addr, hits)
}

async fn start(hooks: Vec<Arc<dyn Hooks>>) -> (server::Running, SocketAddr) {
    start_with(hooks, |_| {}).await
}

async fn start_with(
    hooks: Vec<Arc<dyn Hooks>>,
    tweak: impl FnOnce(&mut ProxyConfig),
) -> (server::Running, SocketAddr) {
    let mut cfg = ProxyConfig {
        listeners: vec![Listen::Http("127.0.0.1:0".parse().unwrap())],
        rules: Rules::loopback(),
        hooks: HookChain::new(hooks),
        ..ProxyConfig::default()
    };
    tweak(&mut cfg);
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let addr = running.addrs[0].addr();
    (running, addr)
}

async fn h1(proxy: SocketAddr) -> Arc<dyn HttpConnection> {
    let s = TcpStream::connect(proxy).await.unwrap();
    Arc::new(
        burrow_http1::connect(Box::new(s), ConnectionInfo::default(), &Default::default())
            .await
            .unwrap(),
    )
}

/// One forwarded request on a new connection: status, a header, the body.
async fn get(
    proxy: SocketAddr,
    url: &str,
    body: &'static str,
) -> (StatusCode, http::HeaderMap, String) {
    let conn = h1(proxy).await;
    let method = if body.is_empty() { "GET" } else { "POST" };
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Body::from(body))
        .unwrap();
    req.extensions_mut().insert(burrow_http1::AbsoluteForm);
    let resp = conn.send_request(req).await.unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect(1 << 20).await.unwrap().data;
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&body).into(),
    )
}

/// Records every summary.
#[derive(Default)]
struct Recorder {
    summaries: Mutex<Vec<Summary>>,
    opened: Mutex<Vec<Target>>,
    datagram_closed: Mutex<Vec<Summary>>,
    clients: AtomicU64,
}

#[async_trait]
impl Hooks for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    async fn client_connected(&self, _c: SocketAddr) -> HookResult {
        self.clients.fetch_add(1, Ordering::Relaxed);
        Ok(Verdict::Continue)
    }
    async fn request_closed(&self, _f: &Flow, s: &Summary) {
        self.summaries.lock().unwrap().push(s.clone());
    }
    async fn tunnel_closed(&self, _f: &Flow, s: &Summary) {
        self.summaries.lock().unwrap().push(s.clone());
    }
    async fn datagram_flow_opened(&self, _f: &Flow, t: &Target) {
        self.opened.lock().unwrap().push(t.clone());
    }
    async fn datagram_flow_closed(&self, _f: &Flow, s: &Summary) {
        self.datagram_closed.lock().unwrap().push(s.clone());
    }
}

/// A small addon: rewrites a header each way, answers `/local` itself, blocks
/// `blocked.test` and port 9 tunnels.
struct Addon;

#[async_trait]
impl Hooks for Addon {
    fn name(&self) -> &str {
        "addon"
    }
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        if r.head.uri.path() == "/local" {
            return Ok(Verdict::Respond(
                LocalResponse::new(StatusCode::OK, "answered here").header("x-local", "1"),
            ));
        }
        if r.head.uri.host() == Some("blocked.test") {
            return Ok(Verdict::Respond(LocalResponse::new(
                StatusCode::FORBIDDEN,
                "blocked",
            )));
        }
        r.head
            .headers
            .insert("x-added", HeaderValue::from_static("by-hook"));
        Ok(Verdict::Continue)
    }
    async fn response_headers(&self, _f: &Flow, _r: &Request, resp: &mut Response) -> HookResult {
        resp.head
            .headers
            .insert("x-seen", HeaderValue::from_static("yes"));
        Ok(Verdict::Continue)
    }
    async fn tunnel_requested(&self, _f: &Flow, t: &mut Tunnel) -> HookResult {
        if t.target.port == 9 {
            return Ok(Verdict::Respond(LocalResponse::new(
                StatusCode::FORBIDDEN,
                "no discard",
            )));
        }
        Ok(Verdict::Continue)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_modify_answer_locally_and_block() {
    let (origin, hits) = origin().await;
    let rec = Arc::new(Recorder::default());
    let (running, proxy) = start(vec![Arc::new(Addon), rec.clone()]).await;

    let (status, headers, body) = get(proxy, &format!("http://{origin}/x"), "").await;
    assert_eq!(status, 200);
    assert_eq!(headers["x-seen"], "yes");
    assert_eq!(body, "/x x-added=Some(\"by-hook\") body=");

    // Answered by the hook: the origin never sees it.
    let before = hits.load(Ordering::Relaxed);
    let (status, headers, body) = get(proxy, &format!("http://{origin}/local"), "").await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "answered here"));
    assert_eq!(headers["x-local"], "1");
    assert_eq!(hits.load(Ordering::Relaxed), before);

    let (status, _, body) = get(proxy, "http://blocked.test/", "").await;
    assert_eq!((status, body.as_str()), (StatusCode::FORBIDDEN, "blocked"));

    // A tunnel the hook refuses.
    let conn = h1(proxy).await;
    let e = conn
        .open_tunnel(TunnelRequest::connect("127.0.0.1:9".parse().unwrap()))
        .await
        .err()
        .unwrap();
    assert!(e.to_string().contains("403"), "{e}");

    // The summaries: what each was, its status and route, in the order they ended.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = rec.summaries.lock().unwrap().clone();
    assert_eq!(s.len(), 4, "{s:#?}");
    assert_eq!(
        (s[0].status, s[0].end, s[0].route.as_str()),
        (Some(StatusCode::OK), End::Completed, "direct")
    );
    assert_eq!(
        s[0].bytes_down,
        body_len("/x x-added=Some(\"by-hook\") body=")
    );
    assert_eq!(s[0].upstream_version, Some(http::Version::HTTP_11));
    assert_eq!((s[1].end, s[1].route.as_str()), (End::Local, "local"));
    assert_eq!(s[2].status, Some(StatusCode::FORBIDDEN));
    assert_eq!(s[3].what, What::Tunnel(TunnelKind::Connect));
    assert_eq!(
        (s[3].status, s[3].end),
        (Some(StatusCode::FORBIDDEN), End::Refused)
    );
    assert_eq!(rec.clients.load(Ordering::Relaxed), 4);
    drop(running);
}

fn body_len(s: &str) -> u64 {
    s.len() as u64
}

/// Fails on `/fail`, panics on `/panic`, sleeps past the hook deadline on `/hang`.
struct Broken;

#[async_trait]
impl Hooks for Broken {
    fn name(&self) -> &str {
        "broken"
    }
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        match r.head.uri.path() {
            "/fail" => Err(HookError::new("boom")),
            "/panic" => panic!("a hook that panics"),
            "/hang" => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                Ok(Verdict::Continue)
            }
            _ => Ok(Verdict::Continue),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_panicking_or_hanging_hook_answers_502_and_the_proxy_goes_on() {
    let (origin, _) = origin().await;
    let (_running, proxy) = start_with(vec![Arc::new(Broken)], |c| {
        c.limits.hook_timeout = Duration::from_millis(300);
    })
    .await;
    for (path, says) in [
        ("/fail", "hook broken failed in request_headers: boom"),
        ("/panic", "hook broken panicked in request_headers"),
        (
            "/hang",
            "hook broken took longer than 300ms in request_headers",
        ),
    ] {
        let (status, headers, _) = get(proxy, &format!("http://{origin}{path}"), "").await;
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{path}");
        let ps = headers["proxy-status"].to_str().unwrap();
        assert!(ps.contains("error=proxy_internal_error"), "{ps}");
        assert!(ps.contains(says), "{ps}");
    }
    let (status, _, body) = get(proxy, &format!("http://{origin}/fine"), "").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "/fine x-added=None body=")
    );
}

/// Holds `/slow` until released.
struct Gate(tokio::sync::Semaphore);

#[async_trait]
impl Hooks for Gate {
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        if r.head.uri.path() == "/slow" {
            let _p = self.0.acquire().await;
        }
        Ok(Verdict::Continue)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_hook_holds_back_only_its_own_flow() {
    let (origin, _) = origin().await;
    let gate = Arc::new(Gate(tokio::sync::Semaphore::new(0)));
    let (_running, proxy) = start(vec![gate.clone()]).await;
    let slow = tokio::spawn(async move { get(proxy, &format!("http://{origin}/slow"), "").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Other requests (and tunnels) go on while the slow hook holds its flow.
    for _ in 0..5 {
        let (status, _, _) = get(proxy, &format!("http://{origin}/fast"), "").await;
        assert_eq!(status, 200);
    }
    let echo = tcp_echo().await;
    let conn = h1(proxy).await;
    let mut t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    t.write_all(b"ping").await.unwrap();
    let mut b = [0u8; 4];
    t.read_exact(&mut b).await.unwrap();
    assert!(!slow.is_finished());
    gate.0.add_permits(1);
    let (status, _, body) = slow.await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "/slow x-added=None body=")
    );
}

/// Asks for both bodies and rewrites them.
struct Bodies;

#[async_trait]
impl Hooks for Bodies {
    async fn request_headers(&self, _f: &Flow, r: &mut Request) -> HookResult {
        r.buffer_body = true;
        Ok(Verdict::Continue)
    }
    async fn request_body(&self, _f: &Flow, _r: &Request, body: &mut Bytes) -> HookResult {
        *body = Bytes::from(body.to_ascii_uppercase());
        Ok(Verdict::Continue)
    }
    async fn response_headers(&self, _f: &Flow, _r: &Request, resp: &mut Response) -> HookResult {
        resp.buffer_body = true;
        Ok(Verdict::Continue)
    }
    async fn response_body(
        &self,
        _f: &Flow,
        _r: &Request,
        _resp: &Response,
        body: &mut Bytes,
    ) -> HookResult {
        let mut b = body.to_vec();
        b.extend_from_slice(b" (and some more, from the hook)");
        *body = Bytes::from(b);
        Ok(Verdict::Continue)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_bodies_are_rewritten_with_correct_framing() {
    let (origin, _) = origin().await;
    let (_running, proxy) = start_with(vec![Arc::new(Bodies)], |c| {
        c.limits.max_hook_body = 64;
    })
    .await;
    let (status, headers, body) = get(proxy, &format!("http://{origin}/up"), "hello").await;
    assert_eq!(status, 200);
    let want = "/up x-added=None body=HELLO (and some more, from the hook)";
    assert_eq!(body, want);
    assert_eq!(headers["content-length"], want.len().to_string().as_str());
    // Beyond max_hook_body: 413, before anything is dialed.
    let big: &'static str = Box::leak("x".repeat(65).into_boxed_str());
    let (status, _, _) = get(proxy, &format!("http://{origin}/up"), big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_and_datagram_summaries_have_bytes_each_way() {
    let echo = tcp_echo().await;
    let rec = Arc::new(Recorder::default());
    let (_running, proxy) = start(vec![rec.clone()]).await;
    let conn = h1(proxy).await;
    let mut t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    t.write_all(b"hello world").await.unwrap();
    let mut b = [0u8; 11];
    t.read_exact(&mut b).await.unwrap();
    t.shutdown().await.unwrap();
    let mut rest = Vec::new();
    let _ = t.read_to_end(&mut rest).await;
    drop(t);
    for _ in 0..50 {
        if !rec.summaries.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = rec.summaries.lock().unwrap()[0].clone();
    assert_eq!(s.what, What::Tunnel(TunnelKind::Connect));
    assert_eq!((s.bytes_up, s.bytes_down, s.end), (11, 11, End::Completed));
    assert_eq!(s.target, Some(Target::from(echo)));
    assert!(s.latency.is_some() && s.duration >= s.latency.unwrap());
}

/// Counts calls and does nothing else: hooks on, no work.
#[derive(Default)]
struct Idle(AtomicU64);

#[async_trait]
impl Hooks for Idle {
    async fn tunnel_requested(&self, _f: &Flow, _t: &mut Tunnel) -> HookResult {
        self.0.fetch_add(1, Ordering::Relaxed);
        Ok(Verdict::Continue)
    }
}

/// With hooks on, a client that stops reading still slows the target: the proxy buffers a
/// bounded amount.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_holds_with_hooks_on() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let firehose = l.local_addr().unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let (mut sock, _) = l.accept().await.unwrap();
        let chunk = vec![0x42u8; 64 * 1024];
        while sock.write_all(&chunk).await.is_ok() {
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let idle = Arc::new(Idle::default());
    let (_running, proxy) = start(vec![idle.clone(), Arc::new(Recorder::default())]).await;
    let conn = h1(proxy).await;
    let mut t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(firehose)))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let stalled = sent.load(Ordering::Relaxed);
    assert!(
        stalled < 64 << 20,
        "target pushed {stalled} bytes to a client that reads nothing"
    );
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < 32 << 20 {
        got += t.read(&mut buf).await.unwrap();
    }
    assert!(sent.load(Ordering::Relaxed) > stalled);
    assert_eq!(idle.0.load(Ordering::Relaxed), 1);
}

/// Refuses every client.
struct Door;

#[async_trait]
impl Hooks for Door {
    async fn client_connected(&self, _c: SocketAddr) -> HookResult {
        Ok(Verdict::Respond(LocalResponse::new(
            StatusCode::FORBIDDEN,
            "",
        )))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_refused_on_connect_is_closed_and_a_reload_keeps_open_tunnels() {
    let echo = tcp_echo().await;
    let (running, proxy) = start(vec![]).await;
    let conn = h1(proxy).await;
    let mut t = conn
        .open_tunnel(TunnelRequest::connect(Target::from(echo)))
        .await
        .unwrap();
    // From now on every client is refused; the open tunnel is not touched.
    running
        .proxy()
        .reload(
            Rules::loopback(),
            Routes::default(),
            HookChain::new(vec![Arc::new(Door)]),
        )
        .unwrap();
    t.write_all(b"still here").await.unwrap();
    let mut b = [0u8; 10];
    t.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"still here");
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(b"GET http://127.0.0.1/ HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
        .await
        .ok();
    let mut got = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut got))
        .await
        .unwrap();
    assert!(matches!(n, Ok(0)) || n.is_err(), "{got:?}");
}

/// A SOCKS5 UDP association: one datagram flow per destination, told when opened and when
/// the association ends, with its bytes; the tunnel's summary has the association's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks_udp_destinations_are_datagram_flows() {
    let (e1, e2) = (
        burrow_test_support::udp_echo().await,
        burrow_test_support::udp_echo().await,
    );
    let rec = Arc::new(Recorder::default());
    let (_running, proxy) = start_with(vec![rec.clone()], |c| {
        c.listeners = vec![Listen::Socks("127.0.0.1:0".parse().unwrap())];
    })
    .await;
    let (ctl, relay) = associate(proxy).await;
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut buf = vec![0u8; 2048];
    for (echo, payload) in [(e1, &b"to one"[..]), (e2, &b"to the other"[..])] {
        let mut pkt = vec![0, 0, 0, 1, 127, 0, 0, 1];
        pkt.extend_from_slice(&echo.port().to_be_bytes());
        pkt.extend_from_slice(payload);
        loop {
            u.send_to(&pkt, relay).await.unwrap();
            let got = tokio::time::timeout(Duration::from_millis(300), u.recv_from(&mut buf));
            if let Ok(r) = got.await {
                assert_eq!(&buf[..r.unwrap().0], &pkt[..]);
                break;
            }
        }
    }
    drop(ctl);
    for _ in 0..100 {
        if !rec.summaries.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let opened = rec.opened.lock().unwrap().clone();
    assert_eq!(opened, vec![Target::from(e1), Target::from(e2)]);
    let mut closed = rec.datagram_closed.lock().unwrap().clone();
    closed.sort_by_key(|s| s.bytes_up);
    assert_eq!(closed.len(), 2, "{closed:#?}");
    assert_eq!(
        (closed[0].target.clone(), closed[0].bytes_up),
        (Some(Target::from(e1)), 6)
    );
    assert!(closed[0].bytes_down >= 6);
    assert_eq!(
        (closed[1].target.clone(), closed[1].bytes_up),
        (Some(Target::from(e2)), 12)
    );
    let tunnel = rec.summaries.lock().unwrap()[0].clone();
    assert_eq!(tunnel.what, What::Tunnel(TunnelKind::SocksUdp));
    assert!(tunnel.bytes_up >= 18, "{tunnel:?}");
}

/// CONNECT-UDP (capsules over HTTP/1.1): the hooks see the tunnel asked for, its datagram
/// flow opened and closed with its bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_udp_is_a_datagram_flow_for_the_hooks() {
    use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
    let echo = burrow_test_support::udp_echo().await;
    let rec = Arc::new(Recorder::default());
    let (_running, proxy) = start(vec![rec.clone()]).await;
    let hops = [ProxyUrl::parse(&format!("http://{proxy}")).unwrap()];
    let route = Route::build(&hops, &RouteOptions::default());
    let flow = route
        .datagram
        .connect_datagram(&Target::from(echo))
        .await
        .unwrap();
    burrow_transport::datagram::send(&*flow, b"over capsules")
        .await
        .unwrap();
    let mut b = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        burrow_transport::datagram::recv(&*flow, &mut b),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&b[..n], b"over capsules");
    drop(flow);
    drop(route);
    for _ in 0..100 {
        if !rec.datagram_closed.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rec.opened.lock().unwrap().clone(), vec![Target::from(echo)]);
    let closed = rec.datagram_closed.lock().unwrap().clone();
    assert_eq!(closed.len(), 1, "{closed:#?}");
    assert_eq!(closed[0].what, What::Tunnel(TunnelKind::ConnectUdp));
    assert_eq!((closed[0].bytes_up, closed[0].bytes_down), (13, 13));
}

/// A block list refuses SOCKS5 UDP destinations too: datagrams to a blocked one are
/// dropped, the others go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_list_refuses_socks_udp_destinations() {
    use burrow_proxy::server::builtin::BlockList;
    use burrow_proxy::server::Pattern;
    let open = burrow_test_support::udp_echo().await;
    let rec = Arc::new(Recorder::default());
    // Patterns match addresses, not ports: the blocked destination listens on a second
    // loopback address.
    let blocked = {
        let s = tokio::net::UdpSocket::bind("127.0.0.2:0").await.unwrap();
        let a = s.local_addr().unwrap();
        tokio::spawn(async move {
            let mut b = [0u8; 2048];
            while let Ok((n, from)) = s.recv_from(&mut b).await {
                let _ = s.send_to(&b[..n], from).await;
            }
        });
        a
    };
    let block = Arc::new(BlockList::new(vec![Pattern::parse("127.0.0.2").unwrap()]));
    let (_running, proxy) = start_with(vec![block, rec.clone()], |c| {
        c.listeners = vec![Listen::Socks("127.0.0.1:0".parse().unwrap())];
    })
    .await;
    let (_ctl, relay) = associate(proxy).await;
    let u = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let packet = |to: SocketAddr| {
        let ip = match to.ip() {
            std::net::IpAddr::V4(v) => v.octets(),
            _ => unreachable!(),
        };
        let mut pkt = vec![0, 0, 0, 1];
        pkt.extend_from_slice(&ip);
        pkt.extend_from_slice(&to.port().to_be_bytes());
        pkt.extend_from_slice(b"hello");
        pkt
    };
    let mut buf = vec![0u8; 2048];
    // The blocked destination never answers.
    for _ in 0..3 {
        u.send_to(&packet(blocked), relay).await.unwrap();
    }
    let got = tokio::time::timeout(Duration::from_millis(500), u.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a blocked destination answered");
    // The other one does.
    loop {
        u.send_to(&packet(open), relay).await.unwrap();
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), u.recv_from(&mut buf)).await
        {
            assert_eq!(&buf[..r.unwrap().0], &packet(open)[..]);
            break;
        }
    }
    assert_eq!(rec.opened.lock().unwrap().clone(), vec![Target::from(open)]);
}

/// A SOCKS5 UDP ASSOCIATE (no auth): the control connection and the relay's address.
async fn associate(proxy: SocketAddr) -> (TcpStream, SocketAddr) {
    let mut ctl = TcpStream::connect(proxy).await.unwrap();
    ctl.write_all(&[5, 1, 0]).await.unwrap();
    let mut b2 = [0u8; 2];
    ctl.read_exact(&mut b2).await.unwrap();
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let mut r = [0u8; 10];
    ctl.read_exact(&mut r).await.unwrap();
    assert_eq!(&r[..4], &[5, 0, 0, 1]);
    let relay = SocketAddr::from(([r[4], r[5], r[6], r[7]], u16::from_be_bytes([r[8], r[9]])));
    (ctl, relay)
}
