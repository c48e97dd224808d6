//! Against Caddy (Debian package, quic-go inside) serving HTTP/3 on loopback. Run by
//! `scripts/peers.sh`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;

use burrow_http_core::{Body, Client, VersionPolicy};
use burrow_transport::{Roots, TlsConfig};
use http::Request;
use sha2::{Digest, Sha256};

struct Caddy {
    port: u16,
    ca: PathBuf,
    root: PathBuf,
}

fn caddy() -> Caddy {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run scripts/peers.sh"));
    Caddy {
        port: var("BURROW_CADDY").parse().unwrap(),
        ca: var("BURROW_NGINX_CA").into(),
        root: var("BURROW_NGINX_ROOT").into(),
    }
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

/// The CLI with --http3-only: 0 B, 1 MiB and 64 MiB, byte-exact, over HTTP/3.
#[test]
#[ignore = "needs caddy: run scripts/peers.sh"]
fn cli_http3_only_bodies_are_byte_exact() {
    let c = caddy();
    for file in ["0.bin", "1m.bin", "64m.bin"] {
        let url = format!("https://localhost:{}/{file}", c.port);
        let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args([
                &url,
                "--http3-only",
                "--cacert",
                &c.ca.display().to_string(),
                "-v",
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{url}: {err}");
        assert!(err.contains("< HTTP/3 200"), "{url}: {err}");
        assert_eq!(
            sha(&out.stdout),
            sha(&std::fs::read(c.root.join(file)).unwrap()),
            "{url}"
        );
    }
}

fn client(c: &Caddy, policy: VersionPolicy) -> Client {
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_pem_file(&c.ca).unwrap();
    let mut b = Client::builder();
    b.protocol(Arc::new(burrow_http1::Http1::default()))
        .protocol(Arc::new(burrow_http2::Http2::default()))
        .datagram_protocol(Arc::new(burrow_http3::Http3::default()))
        .tls(tls)
        .version_policy(policy);
    b.build().unwrap()
}

/// 100 concurrent requests on one HTTP/3 connection, byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs caddy: run scripts/peers.sh"]
async fn hundred_concurrent_over_one_h3_connection() {
    let c = caddy();
    let want = sha(&std::fs::read(c.root.join("1m.bin")).unwrap());
    let client = client(&c, VersionPolicy::Http3Only);
    let url = format!("https://localhost:{}/1m.bin", c.port);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (client, url, want) = (client.clone(), url.clone(), want.clone());
        tasks.push(tokio::spawn(async move {
            let r = client
                .request(Request::get(url).body(Body::empty()).unwrap())
                .await
                .unwrap();
            assert_eq!(r.version(), http::Version::HTTP_3);
            assert_eq!(
                sha(&r.into_body().collect(2 << 20).await.unwrap().data),
                want
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

/// Caddy advertises `Alt-Svc: h3`; the client's second request goes over HTTP/3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs caddy: run scripts/peers.sh"]
async fn alt_svc_from_caddy_switches_to_h3() {
    let c = caddy();
    let client = client(&c, VersionPolicy::PreferHttp2);
    let url = format!("https://localhost:{}/1m.bin", c.port);
    let first = client
        .request(Request::get(&url).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.version(), http::Version::HTTP_2);
    assert!(first
        .headers()
        .get("alt-svc")
        .is_some_and(|v| v.to_str().unwrap().contains("h3=")));
    first.into_body().collect(2 << 20).await.unwrap();
    let second = client
        .request(Request::get(&url).body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(second.version(), http::Version::HTTP_3);
}
