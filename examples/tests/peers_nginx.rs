//! Against nginx (Debian package) on loopback. Run by `scripts/peers.sh`, which installs and
//! starts nginx and sets `BURROW_NGINX_*`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;
use std::process::Command;

use burrow_http1::io::handshake;
use burrow_http1::proto::Limits;
use burrow_http_core::{Body, ConnectionInfo, HttpConnection};
use burrow_transport::{
    Roots, StreamConnector, Target, TcpConnector, TlsConfig, TlsStreamConnector,
};
use http::Request;
use sha2::{Digest, Sha256};

struct Nginx {
    plain: u16,
    tls: u16,
    ca: PathBuf,
    root: PathBuf,
}

fn nginx() -> Nginx {
    let var =
        |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run scripts/peers.sh"));
    Nginx {
        plain: var("BURROW_NGINX_PLAIN").parse().unwrap(),
        tls: var("BURROW_NGINX_TLS").parse().unwrap(),
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
        for (scheme, port) in [("http", n.plain), ("https", n.tls)] {
            let url = format!("{scheme}://localhost:{port}/{path}");
            let out = cli(&[
                url.clone(),
                "--cacert".into(),
                n.ca.display().to_string(),
                "-v".into(),
            ]);
            assert!(
                out.status.success(),
                "{url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(&sha(&out.stdout), want, "{url}");
            if path.starts_with("chunked") {
                let err = String::from_utf8_lossy(&out.stderr);
                assert!(
                    err.contains("< transfer-encoding: chunked"),
                    "{url} was not chunked: {err}"
                );
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
    let conn = handshake(c.stream, ConnectionInfo::default(), Limits::default());
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
