//! The `burrow` binary against in-process origins: outputs, options and exit codes.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::{Command, Output};

use burrow_examples::origin::{self, pattern};
use burrow_examples::pki::TestPki;
use sha2::{Digest, Sha256};

fn burrow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(args)
        .output()
        .unwrap()
}

async fn run(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
        burrow(&a)
    })
    .await
    .unwrap()
}

struct Tls {
    addr: std::net::SocketAddr,
    ca: std::path::PathBuf,
    _dir: tempdir::Dir,
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    pub fn new(tag: &str) -> Dir {
        let p = std::env::temp_dir().join(format!(
            "burrow-test-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

async fn tls_origin() -> Tls {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("tls");
    let (ca, _, _) = pki.write_to(&dir.0).unwrap();
    let cfg = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(origin::Versions::Negotiate),
    )
    .unwrap();
    let o = origin::start(origin::Versions::Negotiate, Some(cfg))
        .await
        .unwrap();
    Tls {
        addr: o.addr,
        ca,
        _dir: dir,
    }
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_are_byte_exact_to_file_and_stdout() {
    let o = origin::start(origin::Versions::Negotiate, None)
        .await
        .unwrap();
    let dir = tempdir::new("dl");
    let file = dir.0.join("out.bin");
    let out = run(vec![
        format!("http://127.0.0.1:{}/bytes/1048576", o.addr.port()),
        "-o".into(),
        file.display().to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        sha(&std::fs::read(&file).unwrap()),
        sha(&pattern(0, 1 << 20))
    );

    let out = run(vec![format!("127.0.0.1:{}/chunked/300000", o.addr.port())]).await;
    assert!(out.status.success());
    assert_eq!(sha(&out.stdout), sha(&pattern(0, 300_000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_cacert_include_and_head() {
    let t = tls_origin().await;
    let url = format!("https://localhost:{}/bytes/10", t.addr.port());
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        t.ca.display().to_string(),
        "-i".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = out.stdout;
    // ALPN picks h2, as curl would.
    assert!(
        text.starts_with(b"HTTP/2 200\r\n"),
        "{}",
        String::from_utf8_lossy(&text)
    );
    assert!(text.ends_with(&pattern(0, 10)));
    assert!(String::from_utf8_lossy(&text).contains("content-length: 10\r\n"));

    let out = run(vec![
        url,
        "--cacert".into(),
        t.ca.display().to_string(),
        "-I".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(
        s.starts_with("HTTP/2 200\r\n") && s.ends_with("\r\n\r\n"),
        "{s}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_certificate_exits_60_and_k_overrides() {
    let t = tls_origin().await;
    let url = format!("https://localhost:{}/bytes/3", t.addr.port());
    let out = run(vec![url.clone()]).await;
    assert_eq!(
        out.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(vec![url, "-k".into()]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, pattern(0, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_headers_and_data_reach_the_origin() {
    let o = origin::start(origin::Versions::Negotiate, None)
        .await
        .unwrap();
    let base = format!("http://127.0.0.1:{}", o.addr.port());
    let out = run(vec![
        format!("{base}/headers"),
        "-X".into(),
        "PUT".into(),
        "-H".into(),
        "X-Test: yes".into(),
        "-H".into(),
        "User-Agent: mine".into(),
    ])
    .await;
    let s = String::from_utf8(out.stdout).unwrap();
    assert!(s.starts_with("PUT /headers\n"), "{s}");
    assert!(s.contains("x-test: yes\n"), "{s}");
    assert!(
        s.contains("user-agent: mine\n") && !s.contains("burrow/"),
        "{s}"
    );

    let out = run(vec![
        format!("{base}/echo"),
        "-d".into(),
        "a=1".into(),
        "-d".into(),
        "b=2".into(),
    ])
    .await;
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "a=1&b=2");

    let dir = tempdir::new("up");
    let f = dir.0.join("up.bin");
    std::fs::write(&f, pattern(0, 200_000)).unwrap();
    let out = run(vec![
        format!("{base}/echo"),
        "--data-binary".into(),
        format!("@{}", f.display()),
    ])
    .await;
    assert_eq!(sha(&out.stdout), sha(&pattern(0, 200_000)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_follow_curl() {
    // 7: nobody listens.
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    let out = run(vec![format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(out.status.code(), Some(7));
    assert!(String::from_utf8_lossy(&out.stderr).contains("burrow: (7)"));
    // -s hides the message.
    let out = run(vec![format!("http://127.0.0.1:{port}/"), "-s".into()]).await;
    assert_eq!(out.status.code(), Some(7));
    assert!(out.stderr.is_empty());

    // 28: a server that accepts and never answers.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = l.accept().await {
            held.push(s);
        }
    });
    let out = run(vec![
        format!("http://127.0.0.1:{port}/"),
        "--max-time".into(),
        "0.5".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(28));

    // 8: garbage instead of HTTP.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = l.accept().await {
            let _ = s.write_all(b"SSH-2.0-OpenSSH\r\n\r\n").await;
        }
    });
    let out = run(vec![format!("http://127.0.0.1:{port}/")]).await;
    assert_eq!(
        out.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // 22 with --fail; 1 and 3 for bad URLs.
    let o = origin::start(origin::Versions::Negotiate, None)
        .await
        .unwrap();
    let out = run(vec![
        format!("http://127.0.0.1:{}/status/404", o.addr.port()),
        "-f".into(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(22));
    assert!(out.stdout.is_empty());
    assert_eq!(
        run(vec!["ftp://127.0.0.1/".into()]).await.status.code(),
        Some(1)
    );
    assert_eq!(
        run(vec!["http://[::1/".into()]).await.status.code(),
        Some(3)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbose_shows_route_and_heads_on_stderr() {
    let t = tls_origin().await;
    let out = run(vec![
        format!("https://localhost:{}/bytes/1", t.addr.port()),
        "--cacert".into(),
        t.ca.display().to_string(),
        "-v".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("* ALPN: server accepted h2"), "{err}");
    assert!(err.contains("* route: h2 > tls > tcp"), "{err}");
    assert!(err.contains("> GET /bytes/1 HTTP/2"), "{err}");
    assert!(err.contains("< HTTP/2 200"), "{err}");
    assert_eq!(out.stdout, pattern(0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_by_alpn_and_prior_knowledge_in_cleartext() {
    let t = tls_origin().await;
    let url = format!("https://localhost:{}/bytes/70000", t.addr.port());
    let ca = t.ca.display().to_string();
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        ca.clone(),
        "-v".into(),
        "-i".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("* ALPN: server accepted h2"), "{err}");
    assert!(err.contains("* route: h2 > tls > tcp"), "{err}");
    assert!(out.stdout.starts_with(b"HTTP/2 200\r\n"));
    assert!(out.stdout.ends_with(&pattern(0, 70000)));

    // --http1.1 offers only http/1.1.
    let out = run(vec![
        url,
        "--cacert".into(),
        ca,
        "-v".into(),
        "--http1.1".into(),
    ])
    .await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("* ALPN: server accepted http/1.1"));
    assert_eq!(out.stdout, pattern(0, 70000));

    let o = origin::start(origin::Versions::Http2, None).await.unwrap();
    let out = run(vec![
        format!("http://127.0.0.1:{}/chunked/100000", o.addr.port()),
        "--http2-prior-knowledge".into(),
        "-v".into(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("> GET /chunked/100000 HTTP/2"));
    assert_eq!(sha(&out.stdout), sha(&pattern(0, 100_000)));
}

struct H3Origin {
    h3: std::net::SocketAddr,
    tcp: std::net::SocketAddr,
    ca: std::path::PathBuf,
    _dir: tempdir::Dir,
}

/// An HTTP/3 origin, and a TCP origin (h2/h1) advertising it with Alt-Svc.
async fn h3_origin() -> H3Origin {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("h3");
    let (ca, _, _) = pki.write_to(&dir.0).unwrap();
    let h3_tls =
        burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), &[b"h3"]).unwrap();
    let h3 = origin::start_h3(h3_tls, 0).await.unwrap();
    let tcp_tls = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(origin::Versions::Negotiate),
    )
    .unwrap();
    let tcp = origin::start_with(
        origin::Versions::Negotiate,
        Some(tcp_tls),
        Some(h3.addr.port()),
    )
    .await
    .unwrap();
    H3Origin {
        h3: h3.addr,
        tcp: tcp.addr,
        ca,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http3_only_and_http3_with_fallback() {
    let o = h3_origin().await;
    let ca = o.ca.display().to_string();
    let out = run(vec![
        format!("https://localhost:{}/bytes/1048576", o.h3.port()),
        "--http3-only".into(),
        "--cacert".into(),
        ca.clone(),
        "-v".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("* route: h3 > quic > udp"), "{err}");
    assert!(err.contains("< HTTP/3 200"), "{err}");
    assert_eq!(sha(&out.stdout), sha(&pattern(0, 1 << 20)));

    // --http3 to a port where only TCP answers: falls back to h2.
    let out = run(vec![
        format!("https://localhost:{}/bytes/1000", o.tcp.port()),
        "--http3".into(),
        "--cacert".into(),
        ca.clone(),
        "-v".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("< HTTP/2 200"), "{err}");
    assert_eq!(out.stdout, pattern(0, 1000));

    // --http3-only there fails instead.
    let out = run(vec![
        format!("https://localhost:{}/bytes/1000", o.tcp.port()),
        "--http3-only".into(),
        "--cacert".into(),
        ca,
        "--max-time".into(),
        "20".into(),
    ])
    .await;
    // Nobody listens on UDP there: refused at once (exit 7), not a handshake timeout.
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alt_svc_h3_is_used_for_the_next_request() {
    let o = h3_origin().await;
    let mut tls = burrow_transport::TlsConfig::default();
    tls.roots(burrow_transport::Roots::None)
        .add_root_pem_file(&o.ca)
        .unwrap();
    let mut b = burrow_http_core::Client::builder();
    b.protocol(std::sync::Arc::new(burrow_http1::Http1::default()))
        .protocol(std::sync::Arc::new(burrow_http2::Http2::default()))
        .datagram_protocol(std::sync::Arc::new(burrow_http3::Http3::default()))
        .tls(tls);
    let client = b.build().unwrap();
    // The Alt-Svc names the h3 port; the TCP origin's port is different, so point the
    // second request's authority at... the same origin: Alt-Svc maps it to the h3 port.
    let url = format!("https://localhost:{}/bytes/5000", o.tcp.port());
    let first = client
        .request(
            http::Request::get(&url)
                .body(burrow_http_core::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(first.version(), http::Version::HTTP_2);
    assert!(first.headers().contains_key("alt-svc"));
    first.into_body().collect(1 << 20).await.unwrap();
    let second = client
        .request(
            http::Request::get(&url)
                .body(burrow_http_core::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(second.version(), http::Version::HTTP_3);
    let body = second.into_body().collect(1 << 20).await.unwrap();
    assert_eq!(&body.data[..], &pattern(0, 5000)[..]);
}

/// `-x` chains, `--preproxy`, `--proxy-user`, `--proxy-cacert` and the proxy environment
/// variables, through in-process burrow-proxy instances; `-v` shows the route as layers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxies_chains_and_environment() {
    use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig};
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("proxy");
    let (ca, _, _) = pki.write_to(&dir.0).unwrap();
    let cfg = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(origin::Versions::Negotiate),
    )
    .unwrap();
    let o = origin::start(origin::Versions::Negotiate, Some(cfg))
        .await
        .unwrap();
    let start = |auth: Option<Credentials>| {
        let pki = &pki;
        async move {
            let cfg = ProxyConfig {
                listeners: ["http", "https", "h3", "socks5"]
                    .iter()
                    .map(|s| Listen::parse(&format!("{s}://127.0.0.1:0")).unwrap())
                    .collect(),
                identity: Some((pki.chain_der.clone(), std::sync::Arc::new(pki.key()))),
                auth,
                rules: burrow_proxy::server::Rules::loopback(),
                ..ProxyConfig::default()
            };
            server::start(Proxy::new(cfg, None, None).unwrap())
                .await
                .unwrap()
        }
    };
    let a = start(None).await;
    let b = start(Some(Credentials {
        user: "bob".into(),
        pass: "pw".into(),
    }))
    .await;
    let port = |r: &server::Running, k: usize| match r.addrs[k] {
        Listen::Http(x)
        | Listen::Https(x)
        | Listen::Https1(x)
        | Listen::H3(x)
        | Listen::Socks(x) => x.port(),
    };
    let url = format!("https://localhost:{}/bytes/100000", o.addr.port());
    let ca = ca.display().to_string();
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        ca.clone(),
        "--proxy-cacert".into(),
        ca.clone(),
        "--preproxy".into(),
        format!("socks5h://127.0.0.1:{}", port(&a, 3)),
        "-x".into(),
        format!("h3://localhost:{}", port(&a, 2)),
        "-x".into(),
        format!("https://localhost:{}", port(&b, 1)),
        "--proxy-user".into(),
        "bob:pw".into(),
        "-v".into(),
    ])
    .await;
    // The h3 hop's QUIC rides UDP ASSOCIATE through the SOCKS5h preproxy; the https hop
    // (hop 3) is reached by CONNECT over that HTTP/3 connection.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, pattern(0, 100_000));
    assert!(
        err.contains(&format!("CONNECT@h2 localhost:{} > tls > CONNECT@h3 localhost:{} > quic > socks5h-udp@127.0.0.1:{}", port(&b, 1), port(&a, 2), port(&a, 3))),
        "{err}"
    );

    // The same three kinds of hop in an order TCP can carry: socks5h > https > h3 is not
    // possible either, but socks5h > https (h2) > http works, with credentials for hop 2.
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        ca.clone(),
        "--proxy-cacert".into(),
        ca.clone(),
        "--preproxy".into(),
        format!("socks5h://127.0.0.1:{}", port(&a, 3)),
        "-x".into(),
        format!("https://localhost:{}", port(&b, 1)),
        "-x".into(),
        format!("http://127.0.0.1:{}", port(&a, 0)),
        "-U".into(),
        "nobody:x".into(),
        "--proxy-header".into(),
        "X-Hop: test".into(),
    ])
    .await;
    // -U goes to the last -x (hop 3, open) and hop 2 (bob) has no credentials: 407 at hop 2.
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(56), "{err}");
    assert!(
        err.contains(&format!("hop 2 (https proxy localhost:{})", port(&b, 1)))
            && err.contains("407"),
        "{err}"
    );

    // A TCP-only chain with the route shown as layers.
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        ca.clone(),
        "--proxy-cacert".into(),
        ca.clone(),
        "-x".into(),
        format!("http://127.0.0.1:{}", port(&a, 0)),
        "-x".into(),
        format!("h2://bob:pw@localhost:{}", port(&b, 1)),
        "-v".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "* route: h2 > tls > CONNECT@h2 localhost:{} > tls > CONNECT@h1 127.0.0.1:{} > tcp",
            port(&b, 1),
            port(&a, 0)
        )),
        "{err}"
    );
    assert!(!err.contains("pw"), "credentials leaked into -v: {err}");
    assert_eq!(out.stdout, pattern(0, 100_000));

    // CONNECT-TCP hops chosen per hop with ?connect=tcp, credentials for hop 2 sent in
    // Authorization, and -v naming them in the route.
    let out = run(vec![
        url.clone(),
        "--cacert".into(),
        ca.clone(),
        "--proxy-cacert".into(),
        ca.clone(),
        "-x".into(),
        format!("h3://localhost:{}?connect=tcp", port(&a, 2)),
        "-x".into(),
        format!("h2://bob:pw@localhost:{}?connect=tcp", port(&b, 1)),
        "--connect-tcp-codepoints".into(),
        "0x2028d7f2,0x2028d7f3".into(),
        "-v".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "* route: h2 > tls > CONNECT-TCP@h2 localhost:{} > tls > CONNECT-TCP@h3 localhost:{} > quic > udp",
            port(&b, 1),
            port(&a, 2)
        )),
        "{err}"
    );
    // Neither the password nor its Basic encoding ("bob:pw").
    assert!(
        !err.contains("pw") && !err.contains("Ym9iOnB3"),
        "credentials leaked into -v: {err}"
    );
    assert_eq!(out.stdout, pattern(0, 100_000));
    // A SOCKS hop cannot be CONNECT-TCP (a bad proxy URL: 1, as other bad proxy URLs);
    // unknown codepoints are a usage error (2).
    for (flag, bad, code) in [
        (
            "-x",
            format!("socks5h://127.0.0.1:{}?connect=tcp", port(&a, 3)),
            1,
        ),
        ("--connect-tcp-codepoints", "draft-99".to_string(), 2),
    ] {
        let mut args = vec![url.clone(), flag.into(), bad.clone()];
        if flag != "-x" {
            args.extend([
                "-x".into(),
                format!("h3://localhost:{}?connect=tcp", port(&a, 2)),
            ]);
        }
        let out = run(args).await;
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{bad}: {err}");
        assert!(err.contains("connect"), "{bad}: {err}");
    }

    // https_proxy from the environment, and NO_PROXY overriding it.
    let envrun = |vars: Vec<(&'static str, String)>| {
        let (u, c) = (url.clone(), ca.clone());
        tokio::task::spawn_blocking(move || {
            let mut cmd = Command::new(env!("CARGO_BIN_EXE_burrow"));
            cmd.args([&u, "--cacert", &c, "--proxy-cacert", &c, "-v"]);
            for (k, v) in vars {
                cmd.env(k, v);
            }
            cmd.output().unwrap()
        })
    };
    let out = envrun(vec![(
        "https_proxy",
        format!("http://127.0.0.1:{}", port(&a, 0)),
    )])
    .await
    .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("CONNECT@h1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = envrun(vec![
        ("https_proxy", format!("http://127.0.0.1:{}", port(&a, 0))),
        ("NO_PROXY", "localhost".into()),
    ])
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !err.contains("CONNECT@"), "{err}");
}

/// `-Z`: ten transfers at once to an HTTP/2 origin use one connection; through an HTTP/2
/// proxy to that origin, one proxy connection and one tunnel carry them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_transfers_multiplex_over_one_http2_connection() {
    use burrow_proxy::server::Listen;
    use std::sync::atomic::Ordering::Relaxed;
    let pki = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("par");
    let (ca, _, _) = pki.write_to(&dir.0).unwrap();
    let tls = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(origin::Versions::Negotiate),
    )
    .unwrap();
    let o = origin::start(origin::Versions::Negotiate, Some(tls))
        .await
        .unwrap();
    let ca = ca.display().to_string();
    let out_dir = dir.0.join("out");
    let urls = format!("https://localhost:{}/bytes/[1-10]0000", o.addr.port());
    let base = vec![
        "-Z".to_string(),
        "--cacert".into(),
        ca.clone(),
        urls,
        "-o".into(),
        format!("{}/f#1", out_dir.display()),
        "--create-dirs".into(),
        "-w".into(),
        "%{http_version} ".into(),
    ];
    let out = run(base.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 ".repeat(10));
    for n in 1..=10u64 {
        let got = std::fs::read(out_dir.join(format!("f{n}"))).unwrap();
        assert_eq!(sha(&got), sha(&pattern(0, n as usize * 10_000)), "{n}");
    }
    assert_eq!(o.stats.connections.load(Relaxed), 1);
    assert_eq!(o.stats.requests.load(Relaxed), 10);

    let p = burrow_examples::pki::test_proxy(&["https://127.0.0.1:0"], Some(&pki))
        .await
        .unwrap();
    let Listen::Https(pa) = p.addrs[0] else {
        panic!("{:?}", p.addrs)
    };
    let mut args = base;
    args.extend([
        "-x".to_string(),
        format!("h2://localhost:{}", pa.port()),
        "--proxy-cacert".into(),
        ca,
    ]);
    let out = run(args.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = p.stats();
    assert_eq!(s.connections.load(Relaxed), 1, "one proxy connection");
    assert_eq!(
        s.tunnels.load(Relaxed),
        1,
        "one tunnel to the HTTP/2 origin"
    );
    assert_eq!(o.stats.requests.load(Relaxed), 20);

    // The same over HTTP/3 to the proxy: one QUIC connection, one tunnel.
    let p3 = burrow_examples::pki::test_proxy(&["h3://127.0.0.1:0"], Some(&pki))
        .await
        .unwrap();
    let mut args3: Vec<String> = args.iter().take_while(|a| *a != "-x").cloned().collect();
    args3.extend([
        "-x".to_string(),
        format!("h3://localhost:{}", p3.addrs[0].addr().port()),
        "--proxy-cacert".into(),
        args.last().cloned().unwrap(),
    ]);
    let out = run(args3).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = p3.stats();
    assert_eq!(
        s.connections.load(Relaxed),
        1,
        "one HTTP/3 proxy connection"
    );
    assert_eq!(
        s.tunnels.load(Relaxed),
        1,
        "one tunnel to the HTTP/2 origin"
    );
    assert_eq!(o.stats.requests.load(Relaxed), 30);
}

/// `--tlsv1.3`, `--tls-max`, `--cert`/`--key` and `--pinnedpubkey` against origins that
/// speak one TLS version or require a client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_versions_client_certificates_and_pinned_keys() {
    use base64::Engine as _;
    use std::sync::Arc;
    let server = TestPki::generate(&[]).unwrap();
    let client = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("tlsopts");
    let (ca, _, _) = server.write_to(&dir.0).unwrap();
    let cdir = dir.0.join("client");
    let (_, ccert, ckey) = client.write_to(&cdir).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let alpn = || vec![b"http/1.1".to_vec()];
    let start = |versions: &'static [&'static rustls::SupportedProtocolVersion],
                 client_ca: Option<rustls::pki_types::CertificateDer<'static>>| {
        let b = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)
            .unwrap();
        let b = match client_ca {
            Some(c) => {
                let mut roots = rustls::RootCertStore::empty();
                roots.add(c).unwrap();
                let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider.clone(),
                )
                .build()
                .unwrap();
                b.with_client_cert_verifier(v)
            }
            None => b.with_no_client_auth(),
        };
        let mut cfg = b
            .with_single_cert(server.chain_der.clone(), server.key())
            .unwrap();
        cfg.alpn_protocols = alpn();
        origin::start(origin::Versions::Http1, Some(Arc::new(cfg)))
    };
    let ca = ca.display().to_string();
    let get = |port: u16, extra: &[&str]| {
        let mut a = vec![
            format!("https://localhost:{port}/bytes/10"),
            "--cacert".to_string(),
            ca.clone(),
            "-s".into(),
            "-S".into(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        run(a)
    };
    static ONLY12: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS12];
    static ONLY13: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
    static BOTH: [&rustls::SupportedProtocolVersion; 2] =
        [&rustls::version::TLS13, &rustls::version::TLS12];
    let tls12 = start(&ONLY12, None).await.unwrap();
    let tls13 = start(&ONLY13, None).await.unwrap();
    assert_eq!(get(tls12.addr.port(), &[]).await.status.code(), Some(0));
    assert_eq!(
        get(tls12.addr.port(), &["--tlsv1.2"]).await.status.code(),
        Some(0)
    );
    let out = get(tls12.addr.port(), &["--tlsv1.3"]).await;
    assert_eq!(
        out.status.code(),
        Some(35),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        get(tls13.addr.port(), &["--tlsv1.3"]).await.status.code(),
        Some(0)
    );
    assert_eq!(
        get(tls13.addr.port(), &["--tls-max", "1.2"])
            .await
            .status
            .code(),
        Some(35)
    );
    assert_eq!(
        get(tls13.addr.port(), &["--tls-max", "1.0"])
            .await
            .status
            .code(),
        Some(2)
    );

    // A client certificate: refused without, accepted with; a bad file is 58.
    let mtls = start(&BOTH, Some(client.ca_der.clone())).await.unwrap();
    let out = get(mtls.addr.port(), &[]).await;
    assert_ne!(out.status.code(), Some(0), "no client certificate: refused");
    let (cc, ck) = (ccert.display().to_string(), ckey.display().to_string());
    let out = get(mtls.addr.port(), &["--cert", &cc, "--key", &ck]).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, pattern(0, 10));
    let out = get(mtls.addr.port(), &["--cert", &ca]).await;
    assert_eq!(out.status.code(), Some(58), "a CA file has no key");

    // Pinned keys: the server's own key passes, another is 90, as a hash or a key file.
    let pin = burrow_transport::pin::pin_of(&server.chain_der[0]).unwrap();
    let good = format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode(pin)
    );
    let wrong = format!(
        "sha256//{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    );
    let port = tls12.addr.port();
    assert_eq!(
        get(port, &["--pinnedpubkey", &good]).await.status.code(),
        Some(0)
    );
    let both = format!("{wrong};{good}");
    assert_eq!(
        get(port, &["--pinnedpubkey", &both]).await.status.code(),
        Some(0)
    );
    let out = get(port, &["--pinnedpubkey", &wrong]).await;
    assert_eq!(
        out.status.code(),
        Some(90),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let other_key = dir.0.join("other.pem");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().public_key_pem(),
    )
    .unwrap();
    let out = get(port, &["--pinnedpubkey", &other_key.display().to_string()]).await;
    assert_eq!(out.status.code(), Some(90));
    // Pins are for the origin: -k does not skip them.
    let out = get(port, &["-k", "--pinnedpubkey", &wrong]).await;
    assert_eq!(out.status.code(), Some(90));
}

/// `--alt-svc FILE`: the first run learns from `Alt-Svc` and saves the cache in curl's
/// format; the next run (a new process) reads it and goes to HTTP/3 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alt_svc_file_persists_the_cache_between_runs() {
    let o = h3_origin().await;
    let dir = tempdir::new("altsvc");
    let file = dir.0.join("altsvc.txt");
    let args = vec![
        format!("https://localhost:{}/bytes/10", o.tcp.port()),
        "--cacert".to_string(),
        o.ca.display().to_string(),
        "--alt-svc".into(),
        file.display().to_string(),
        "-o".into(),
        "/dev/null".into(),
        "-w".into(),
        "%{http_version}".into(),
    ];
    let out = run(args.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"2");
    let saved = std::fs::read_to_string(&file).unwrap();
    let line = format!(
        "h2 localhost {} h3 localhost {} \"",
        o.tcp.port(),
        o.h3.port()
    );
    assert!(saved.contains(&line), "{saved}");
    let out = run(args.clone()).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.stdout, b"3",
        "the saved entry took the second run to HTTP/3"
    );
    // Without the file, a new process starts over on TCP.
    let fresh: Vec<String> = args
        .iter()
        .filter(|a| *a != "--alt-svc" && **a != file.display().to_string())
        .cloned()
        .collect();
    assert_eq!(run(fresh).await.stdout, b"2");
}

/// Per-hop proxy TLS options: two HTTPS proxies with certificates from different CAs, each
/// `--proxy-cacert` after the `-x` it is for; swapped, the first hop is not trusted (60).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_tls_options_are_per_hop() {
    let o = origin::start(origin::Versions::Negotiate, None)
        .await
        .unwrap();
    let dir = tempdir::new("perhop");
    let start = |name: &str| {
        let pki = TestPki::generate(&[]).unwrap();
        let (ca, _, _) = pki.write_to(&dir.0.join(name)).unwrap();
        async move {
            let r = burrow_examples::pki::test_proxy(&["https://127.0.0.1:0"], Some(&pki))
                .await
                .unwrap();
            (r, ca.display().to_string())
        }
    };
    let (a, ca_a) = start("a").await;
    let (b, ca_b) = start("b").await;
    let url = format!("http://127.0.0.1:{}/bytes/1000", o.addr.port());
    let xa = format!("https://localhost:{}", a.addrs[0].addr().port());
    let xb = format!("https://localhost:{}", b.addrs[0].addr().port());
    let with = |ca1: &str, ca2: &str| {
        run(vec![
            url.clone(),
            "-x".into(),
            xa.clone(),
            "--proxy-cacert".into(),
            ca1.to_string(),
            "-x".into(),
            xb.clone(),
            "--proxy-cacert".into(),
            ca2.to_string(),
        ])
    };
    let out = with(&ca_a, &ca_b).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, pattern(0, 1000));
    let out = with(&ca_b, &ca_a).await;
    assert_eq!(
        out.status.code(),
        Some(60),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hop 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Before any -x: every hop's.
    let out = run(vec![
        url.clone(),
        "--proxy-cacert".into(),
        ca_a.clone(),
        "--proxy-cacert".into(),
        ca_b.clone(),
        "-x".into(),
        xa.clone(),
        "-x".into(),
        xb.clone(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `--proxy-cert`/`--proxy-key`: an HTTPS proxy that requires a client certificate lets the
/// CONNECT through only with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_client_certificates() {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = TestPki::generate(&[]).unwrap();
    let client = TestPki::generate(&[]).unwrap();
    let dir = tempdir::new("proxycert");
    let (ca, _, _) = server.write_to(&dir.0).unwrap();
    let (_, ccert, ckey) = client.write_to(&dir.0.join("client")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(client.ca_der.clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server.chain_der.clone(), server.key())
        .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let cfg = Arc::new(cfg);
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    // A proxy that answers the CONNECT and then plays the origin itself.
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let cfg = cfg.clone();
            tokio::spawn(async move {
                let Ok((mut t, _)) = burrow_transport::tls::accept(Box::new(s), cfg).await else {
                    return;
                };
                for answer in [
                    &b"HTTP/1.1 200 Connection established\r\n\r\n"[..],
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
                ] {
                    let mut buf = Vec::new();
                    let mut b = [0u8; 1];
                    while !buf.ends_with(b"\r\n\r\n") {
                        match t.read(&mut b).await {
                            Ok(1) => buf.push(b[0]),
                            _ => return,
                        }
                    }
                    if t.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    // -p: the proxy plays CONNECT, not forwarding.
    let base = vec![
        "http://origin.test/x".to_string(),
        "-p".into(),
        "-x".into(),
        format!("https://localhost:{port}"),
        "--proxy-cacert".into(),
        ca.display().to_string(),
    ];
    let out = run(base.clone()).await;
    assert_ne!(out.status.code(), Some(0), "no certificate, no tunnel");
    assert!(out.stdout.is_empty());
    let mut with = base.clone();
    with.extend([
        "--proxy-cert".to_string(),
        ccert.display().to_string(),
        "--proxy-key".into(),
        ckey.display().to_string(),
    ]);
    let out = run(with).await;
    assert_eq!(
        out.stdout,
        b"ok",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The origin's --cert is not the proxy's.
    let mut origin_cert = base;
    origin_cert.extend([
        "--cert".to_string(),
        ccert.display().to_string(),
        "--key".into(),
        ckey.display().to_string(),
    ]);
    assert_ne!(run(origin_cert).await.status.code(), Some(0));
}

/// An `http://` URL through an HTTP proxy is forwarded to it in absolute-form with the
/// hop's credentials (as curl sends it; `-v` shows the line), and `-p` tunnels it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_urls_are_forwarded_to_the_last_http_proxy_and_p_tunnels_them() {
    use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig};
    use std::sync::atomic::Ordering;
    let o = origin::start(origin::Versions::Http1, None).await.unwrap();
    let cfg = ProxyConfig {
        listeners: vec![Listen::parse("http://127.0.0.1:0").unwrap()],
        auth: Some(Credentials {
            user: "bob".into(),
            pass: "pw".into(),
        }),
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let p = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let stats = p.stats();
    let port = p.addrs[0].addr().port();
    let hop = format!("http://bob:pw@localhost:{port}");
    let url = format!("http://127.0.0.1:{}/bytes/1000", o.addr.port());
    // The URL's userinfo goes out as Authorization, never in the absolute-form line.
    let with_user = url.replace("http://", "http://carol:s3cret@");
    let out = run(vec![
        with_user,
        "-v".into(),
        "-x".into(),
        hop.clone(),
        "--proxy-header".into(),
        "X-Hop: 1".into(),
    ])
    .await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, pattern(0, 1000));
    assert!(err.contains(&format!("> GET {url} HTTP/1.1")), "{err}");
    // As curl: connected to the proxy by its name; the hop's headers shown as sent to it.
    assert!(
        err.contains(&format!("* Connected to localhost (127.0.0.1) port {port}")),
        "{err}"
    );
    assert!(err.contains("> proxy-authorization: Basic ***"), "{err}");
    assert!(err.contains("> x-hop: 1"), "{err}");
    assert!(!err.contains("pw"), "no password in -v: {err}");
    assert!(!err.contains("s3cret") && !err.contains("carol"), "{err}");
    assert_eq!(stats.forwarded.load(Ordering::Relaxed), 1);
    assert_eq!(stats.tunnels.load(Ordering::Relaxed), 0);

    let out = run(vec![url, "-v".into(), "-p".into(), "-x".into(), hop]).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(out.stdout, pattern(0, 1000));
    assert!(err.contains("> GET /bytes/1000 HTTP/1.1"), "{err}");
    assert_eq!(stats.tunnels.load(Ordering::Relaxed), 1);
    assert_eq!(stats.forwarded.load(Ordering::Relaxed), 1);
}
