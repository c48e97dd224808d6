//! Against nginx (Debian package) on loopback. Run by `scripts/peers.sh`, which installs and
//! starts nginx and sets `BURROW_NGINX_*`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use burrow_http_core::{Body, ConnectionInfo, HttpConnection};
use burrow_transport::{
    Roots, StreamConnector, Target, TcpConnector, TlsConfig, TlsStreamConnector,
};
use http::Request;
use sha2::{Digest, Sha256};

struct Nginx {
    plain: u16,
    tls: u16,
    h2c: u16,
    ca: PathBuf,
    root: PathBuf,
}

fn nginx() -> Nginx {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run scripts/peers.sh"));
    Nginx {
        plain: var("BURROW_NGINX_PLAIN").parse().unwrap(),
        tls: var("BURROW_NGINX_TLS").parse().unwrap(),
        h2c: var("BURROW_NGINX_H2C").parse().unwrap(),
        ca: var("BURROW_NGINX_CA").into(),
        root: var("BURROW_NGINX_ROOT").into(),
    }
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

fn cli(args: &[String]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(args)
        .output()
        .unwrap()
}

/// 0 B, 1 MiB and a chunked 1 MiB response, plain and TLS, through the CLI: byte-exact.
#[test]
#[ignore = "needs nginx: run scripts/peers.sh"]
fn cli_bodies_are_byte_exact() {
    let n = nginx();
    let want_1m = sha(&std::fs::read(n.root.join("1m.bin")).unwrap());
    let cases = [
        ("0.bin", sha(b"")),
        ("1m.bin", want_1m.clone()),
        ("chunked/1m.bin", want_1m),
    ];
    for (path, want) in &cases {
        for (scheme, port, version) in [
            ("http", n.plain, "--http1.1"),
            ("https", n.tls, "--http1.1"),
            ("https", n.tls, "--http2"),
            ("http", n.h2c, "--http2-prior-knowledge"),
        ] {
            let url = format!("{scheme}://localhost:{port}/{path}");
            let out = cli(&[
                url.clone(),
                version.into(),
                "--cacert".into(),
                n.ca.display().to_string(),
                "-v".into(),
            ]);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{url} {version}: {err}");
            assert_eq!(&sha(&out.stdout), want, "{url} {version}");
            if version == "--http1.1" {
                assert!(err.contains("< HTTP/1.1 200 OK"), "{url}: {err}");
                if path.starts_with("chunked") {
                    assert!(
                        err.contains("< Transfer-Encoding: chunked"),
                        "{url} was not chunked: {err}"
                    );
                }
            } else {
                assert!(err.contains("< HTTP/2 200"), "{url} {version}: {err}");
            }
        }
    }
}

/// Ten sequential requests over one TLS connection: nginx reports the same connection
/// serial number and a request count of 1..=10.
#[tokio::test]
#[ignore = "needs nginx: run scripts/peers.sh"]
async fn ten_requests_reuse_one_connection() {
    let n = nginx();
    let mut t = TlsConfig::default();
    t.roots(Roots::None).add_root_pem_file(&n.ca).unwrap();
    let connector = TlsStreamConnector::new(
        TcpConnector::default(),
        t.client_config(&[b"http/1.1"]).unwrap(),
    );
    let target: Target = format!("localhost:{}", n.tls).parse().unwrap();
    let c = connector.connect(&target).await.unwrap();
    let conn = burrow_http1::connect(c.stream, ConnectionInfo::default(), &Default::default())
        .await
        .unwrap();
    let want = sha(&std::fs::read(n.root.join("1m.bin")).unwrap());
    let mut serials = Vec::new();
    for i in 1..=10 {
        let req = Request::get(format!("https://localhost:{}/1m.bin", n.tls))
            .body(Body::empty())
            .unwrap();
        let resp = conn.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let h = resp.headers();
        serials.push(h["x-conn"].to_str().unwrap().to_string());
        assert_eq!(h["x-conn-requests"].to_str().unwrap(), i.to_string());
        let body = resp.into_body().collect(2 << 20).await.unwrap();
        assert_eq!(sha(&body.data), want);
    }
    assert!(serials.iter().all(|s| s == &serials[0]), "{serials:?}");
}

fn client(n: &Nginx, policy: burrow_http_core::VersionPolicy) -> burrow_http_core::Client {
    let mut t = TlsConfig::default();
    t.roots(Roots::None).add_root_pem_file(&n.ca).unwrap();
    let mut b = burrow_http_core::Client::builder();
    b.protocol(std::sync::Arc::new(burrow_http1::Http1::default()))
        .protocol(std::sync::Arc::new(burrow_http2::Http2::default()))
        .tls(t)
        .version_policy(policy);
    b.build().unwrap()
}

/// HTTP/2 over TLS (ALPN) and h2c: 100 concurrent requests over one connection, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/peers.sh"]
async fn h2_hundred_concurrent_requests_one_connection() {
    use burrow_http_core::VersionPolicy;
    let n = nginx();
    let want = sha(&std::fs::read(n.root.join("1m.bin")).unwrap());
    for (policy, base) in [
        (
            VersionPolicy::PreferHttp2,
            format!("https://localhost:{}", n.tls),
        ),
        (
            VersionPolicy::Http2PriorKnowledge,
            format!("http://127.0.0.1:{}", n.h2c),
        ),
    ] {
        let c = client(&n, policy);
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let (c, url, want) = (c.clone(), format!("{base}/1m.bin"), want.clone());
            tasks.push(tokio::spawn(async move {
                let resp = c
                    .request(Request::get(url).body(Body::empty()).unwrap())
                    .await
                    .unwrap();
                assert_eq!(resp.version(), http::Version::HTTP_2);
                let conn = resp.headers()["x-conn"].to_str().unwrap().to_string();
                let body = resp.into_body().collect(2 << 20).await.unwrap();
                assert_eq!(sha(&body.data), want);
                conn
            }));
        }
        let mut serials = Vec::new();
        for t in tasks {
            serials.push(t.await.unwrap());
        }
        assert!(
            serials.iter().all(|s| s == &serials[0]),
            "{base}: {serials:?}"
        );
        let uri: http::Uri = format!("{base}/").parse().unwrap();
        assert_eq!(c.pooled_connections(&uri), 1);
    }
}

/// nginx answers an upload before reading it and resets the stream with NO_ERROR
/// (RFC 9113 §8.1): the response must still arrive intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nginx: run scripts/peers.sh"]
async fn h2_early_response_with_reset_no_error() {
    let n = nginx();
    let c = client(&n, burrow_http_core::VersionPolicy::PreferHttp2);
    let big = vec![7u8; 16 << 20];
    let req = Request::post(format!("https://localhost:{}/early", n.tls))
        .body(Body::from(big))
        .unwrap();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(20), c.request(req))
        .await
        .expect("hung")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect(1024).await.unwrap();
    assert_eq!(&body.data[..], b"early\n");
}
