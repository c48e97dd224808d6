//! burrow's HTTP/2 client against burrow's HTTP/2 server and against the h2 crate's own
//! server (an independent peer), over loopback TCP (h2c, prior knowledge).
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use burrow_http2::{serve, Http2, Http2Config};
use burrow_http_core::{
    Body, Client, ConnectProtocol, ConnectionInfo, ErrorKind, HttpConnection, ServerConnection,
    TunnelRequest, VersionPolicy,
};
use burrow_transport::code::H2Reason;
use burrow_transport::{Target, WireCode};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn body_for(path: &str) -> Vec<u8> {
    let n: usize = path.trim_start_matches('/').parse().unwrap_or(0);
    (0..n).map(|i| (i % 251) as u8).collect()
}

struct Stats {
    conns: AtomicUsize,
    active: AtomicUsize,
    peak: AtomicUsize,
}

/// burrow's HTTP/2 server: `/N` returns N pattern bytes (after `delay`), POST echoes with
/// trailers, CONNECT to `echo:1` (classic or extended) is an echo tunnel.
async fn burrow_server(config: Http2Config, delay: Duration) -> (std::net::SocketAddr, Arc<Stats>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let stats = Arc::new(Stats {
        conns: AtomicUsize::new(0),
        active: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
    });
    let st = stats.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            st.conns.fetch_add(1, Ordering::SeqCst);
            let mut srv = serve(Box::new(s), &config).await.unwrap();
            let st = st.clone();
            tokio::spawn(async move {
                while let Some(Ok(sr)) = srv.accept().await {
                    let st = st.clone();
                    tokio::spawn(async move {
                        let now = st.active.fetch_add(1, Ordering::SeqCst) + 1;
                        st.peak.fetch_max(now, Ordering::SeqCst);
                        let (parts, body) = sr.request.into_parts();
                        if parts.method == http::Method::CONNECT {
                            let proto = parts.extensions.get::<ConnectProtocol>().cloned();
                            let mut resp = Response::new(());
                            if let Some(p) = proto {
                                resp.headers_mut()
                                    .insert("x-protocol", p.0.parse().unwrap());
                            }
                            let mut t = sr.respond.accept_tunnel(resp).await.unwrap();
                            let mut buf = vec![0u8; 65536];
                            loop {
                                let n = t.read(&mut buf).await.unwrap();
                                if n == 0 {
                                    t.shutdown().await.unwrap();
                                    break;
                                }
                                t.write_all(&buf[..n]).await.unwrap();
                            }
                        } else if parts.method == http::Method::POST {
                            let got = body.collect(64 << 20).await.unwrap();
                            let (mut tx, out) = Body::channel();
                            sr.respond.send_response(Response::new(out)).await.unwrap();
                            tx.send_data(got.data).await.unwrap();
                            let mut t = got.trailers.unwrap_or_default();
                            t.insert("x-echoed", "1".parse().unwrap());
                            tx.send_trailers(t).await.unwrap();
                        } else {
                            tokio::time::sleep(delay).await;
                            let b = body_for(parts.uri.path());
                            sr.respond
                                .send_response(Response::new(Body::from(b)))
                                .await
                                .unwrap();
                        }
                        st.active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
        }
    });
    (addr, stats)
}

async fn connect(addr: std::net::SocketAddr) -> burrow_http2::Http2Connection {
    let s = TcpStream::connect(addr).await.unwrap();
    burrow_http2::connect(
        Box::new(s),
        ConnectionInfo::default(),
        &Http2Config::default(),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_requests_share_one_connection() {
    let (addr, stats) = burrow_server(Http2Config::default(), Duration::ZERO).await;
    let c = Arc::new(connect(addr).await);
    let mut tasks = Vec::new();
    for i in 0..100usize {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let n = 1000 + i * 997;
            let req = Request::get(format!("http://{addr}/{n}"))
                .body(Body::empty())
                .unwrap();
            let resp = c.send_request(req).await.unwrap();
            assert_eq!(resp.version(), http::Version::HTTP_2);
            let got = resp.into_body().collect(1 << 20).await.unwrap();
            assert_eq!(got.data, body_for(&format!("/{n}")));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(stats.conns.load(Ordering::SeqCst), 1);
    assert!(
        stats.peak.load(Ordering::SeqCst) > 1,
        "requests did not overlap"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_max_concurrent_streams_makes_requests_wait_not_fail() {
    let mut cfg = Http2Config::default();
    cfg.max_concurrent_streams(4);
    let (addr, stats) = burrow_server(cfg, Duration::from_millis(30)).await;
    let c = Arc::new(connect(addr).await);
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::get(format!("http://{addr}/10"))
                .body(Body::empty())
                .unwrap();
            c.send_request(req)
                .await
                .unwrap()
                .into_body()
                .collect(100)
                .await
                .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().data.len(), 10);
    }
    let peak = stats.peak.load(Ordering::SeqCst);
    assert!((2..=4).contains(&peak), "peak concurrency {peak}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_request_body_and_trailers_both_ways() {
    let (addr, _) = burrow_server(Http2Config::default(), Duration::ZERO).await;
    let c = connect(addr).await;
    let (mut tx, body) = Body::channel();
    let req = Request::post(format!("http://{addr}/echo"))
        .body(body)
        .unwrap();
    tokio::spawn(async move {
        for i in 0..40u8 {
            tx.send_data(Bytes::from(vec![i; 100_000])).await.unwrap();
        }
        let mut t = http::HeaderMap::new();
        t.insert("x-sent", "yes".parse().unwrap());
        tx.send_trailers(t).await.unwrap();
    });
    let resp = c.send_request(req).await.unwrap();
    let got = resp.into_body().collect(8 << 20).await.unwrap();
    assert_eq!(got.data.len(), 4_000_000);
    assert!(got
        .data
        .chunks(100_000)
        .enumerate()
        .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    let t = got.trailers.unwrap();
    assert_eq!(t["x-sent"], "yes");
    assert_eq!(t["x-echoed"], "1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_tunnel_moves_more_than_a_window_both_ways() {
    let (addr, _) = burrow_server(Http2Config::default(), Duration::ZERO).await;
    let c = connect(addr).await;
    let t = c
        .open_tunnel(TunnelRequest::connect("echo:1".parse::<Target>().unwrap()))
        .await
        .unwrap();
    assert_eq!(t.status(), StatusCode::OK);
    // 24 MiB is six stream windows: it only completes if reads release credit.
    let total = 24usize << 20;
    let (mut rd, mut wr) = tokio::io::split(t);
    let writer = tokio::spawn(async move {
        let chunk = vec![0xabu8; 1 << 20];
        for _ in 0..24 {
            wr.write_all(&chunk).await.unwrap();
        }
        wr.shutdown().await.unwrap();
    });
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), rd.read(&mut buf))
            .await
            .expect("tunnel stalled")
            .unwrap();
        if n == 0 {
            break;
        }
        assert!(buf[..n].iter().all(|&b| b == 0xab));
        got += n;
    }
    writer.await.unwrap();
    assert_eq!(got, total);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_after_settings_with_protocol() {
    let (addr, _) = burrow_server(Http2Config::default(), Duration::ZERO).await;
    let c = connect(addr).await;
    let req = TunnelRequest::extended(
        "connect-udp",
        "echo:1".parse::<Target>().unwrap(),
        "/.well-known/masque/udp/192.0.2.1/443/",
    );
    let mut t = c.open_tunnel(req).await.unwrap();
    assert_eq!(t.headers()["x-protocol"], "connect-udp");
    t.write_all(b"capsules").await.unwrap();
    let mut b = [0u8; 8];
    t.read_exact(&mut b).await.unwrap();
    assert_eq!(&b, b"capsules");
}

/// The h2 crate's own server, independent of burrow's server code.
async fn h2_server<F, Fut>(handler: F) -> (std::net::SocketAddr, Arc<AtomicUsize>)
where
    F: Fn(
            usize,
            Request<h2::RecvStream>,
            h2::server::SendResponse<Bytes>,
            Arc<tokio::sync::Notify>,
        ) -> Fut
        + Send
        + Sync
        + Clone
        + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let cs = conns.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            let n = cs.fetch_add(1, Ordering::SeqCst);
            let h = handler.clone();
            tokio::spawn(async move {
                let mut conn = h2::server::handshake(s).await.unwrap();
                let goaway = Arc::new(tokio::sync::Notify::new());
                loop {
                    tokio::select! {
                        r = conn.accept() => match r {
                            Some(Ok((req, resp))) => { tokio::spawn(h(n, req, resp, goaway.clone())); }
                            _ => break,
                        },
                        _ = goaway.notified() => conn.graceful_shutdown(),
                    }
                }
            });
        }
    });
    (addr, conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extended_connect_refused_cleanly_when_peer_did_not_enable_it() {
    let (addr, _) = h2_server(|_, _req, mut resp, _| async move {
        let _ = resp.send_response(Response::new(()), true);
    })
    .await;
    let c = connect(addr).await;
    let req = TunnelRequest::extended("connect-udp", "x:1".parse::<Target>().unwrap(), "/");
    let e = c.open_tunnel(req).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{e}");
    assert!(
        e.to_string().contains("SETTINGS_ENABLE_CONNECT_PROTOCOL"),
        "{e}"
    );
    // The connection is still usable: nothing was reset.
    let r = c
        .send_request(
            Request::get(format!("http://{addr}/"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_connect_sends_only_method_and_authority() {
    let (addr, _) = h2_server(|_, req, mut resp, _| async move {
        // RFC 9113 §8.5: no :scheme, no :path.
        let ok = req.method() == http::Method::CONNECT
            && req.uri().scheme().is_none()
            && req.uri().path_and_query().is_none()
            && req.uri().authority().map(|a| a.as_str()) == Some("example.com:443");
        let status = if ok { 200 } else { 400 };
        let _ = resp.send_response(Response::builder().status(status).body(()).unwrap(), false);
        tokio::time::sleep(Duration::from_millis(200)).await;
    })
    .await;
    let c = connect(addr).await;
    let t = c
        .open_tunnel(TunnelRequest::connect(
            "example.com:443".parse::<Target>().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(t.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rst_stream_becomes_typed_error_with_code() {
    let (addr, _) = h2_server(|_, req, mut resp, _| async move {
        match req.uri().path() {
            "/refuse" => resp.send_reset(h2::Reason::REFUSED_STREAM),
            _ => resp.send_reset(h2::Reason::INTERNAL_ERROR),
        }
    })
    .await;
    let c = connect(addr).await;
    let e = c
        .send_request(
            Request::get(format!("http://{addr}/boom"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert_eq!(
        e.code(),
        Some(WireCode::H2(H2Reason::INTERNAL_ERROR)),
        "{e}"
    );
    assert!(e.to_string().contains("RST_STREAM"), "{e}");
    let e = c
        .send_request(
            Request::get(format!("http://{addr}/refuse"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotProcessed);
    assert_eq!(e.code(), Some(WireCode::H2(H2Reason::REFUSED_STREAM)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_lets_inflight_finish_and_client_reconnects() {
    let (addr, conns) = h2_server(|_, req, mut resp, goaway| async move {
        if req.uri().path() == "/slow" {
            // Announce shutdown while this stream is in flight, then finish it.
            goaway.notify_one();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut s = resp.send_response(Response::new(()), false).unwrap();
        s.send_data(Bytes::from_static(b"done"), true).unwrap();
    })
    .await;
    let mut b = Client::builder();
    b.protocol(Arc::new(Http2::default()))
        .version_policy(VersionPolicy::Http2PriorKnowledge);
    let client = b.build().unwrap();
    let slow = client
        .request(
            Request::get(format!("http://{addr}/slow"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        &slow.into_body().collect(100).await.unwrap().data[..],
        b"done"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let next = client
        .request(
            Request::get(format!("http://{addr}/next"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        &next.into_body().collect(100).await.unwrap().data[..],
        b"done"
    );
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "a new connection after GOAWAY"
    );
}

#[tokio::test]
async fn client_pools_reuses_and_expires_idle() {
    let (addr, stats) = burrow_server(Http2Config::default(), Duration::ZERO).await;
    let mut b = Client::builder();
    b.protocol(Arc::new(Http2::default()))
        .version_policy(VersionPolicy::Http2PriorKnowledge)
        .idle_timeout(Duration::from_millis(200));
    let client = b.build().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .request(
                    Request::get(format!("http://{addr}/100"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            r.into_body().collect(1000).await.unwrap().data.len()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 100);
    }
    assert_eq!(
        stats.conns.load(Ordering::SeqCst),
        1,
        "concurrent first requests share one connection"
    );
    // The pool ages on the virtual clock: no real time passes.
    tokio::time::pause();
    tokio::time::advance(Duration::from_millis(400)).await;
    tokio::time::resume();
    client
        .request(
            Request::get(format!("http://{addr}/1"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        stats.conns.load(Ordering::SeqCst),
        2,
        "idle connection expired"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_caps_http1_connections_per_origin() {
    // An HTTP/1.1 origin that answers slowly: 6 concurrent requests, cap 2.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let cs = conns.clone();
    tokio::spawn(async move {
        loop {
            let (s, _) = l.accept().await.unwrap();
            cs.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut srv = burrow_http1::serve(Box::new(s), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    sr.respond
                        .send_response(Response::new(Body::from("ok")))
                        .await
                        .unwrap();
                }
            });
        }
    });
    let mut b = Client::builder();
    b.protocol(Arc::new(burrow_http1::Http1::default()))
        .max_connections_per_origin(2);
    let client = b.build().unwrap();
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let r = client
                .request(
                    Request::get(format!("http://{addr}/"))
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            r.into_body().collect(100).await.unwrap().data
        }));
    }
    for t in tasks {
        assert_eq!(&t.await.unwrap()[..], b"ok");
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2);
}
