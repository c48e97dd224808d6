//! curl (Debian) as an independent client against burrow's server roles. Run by
//! `scripts/peers.sh`, which installs curl; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use burrow_examples::origin::{self, pattern, Versions};
use burrow_examples::pki::TestPki;
use sha2::{Digest, Sha256};

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

async fn curl(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || Command::new("curl").args(&args).output().unwrap())
        .await
        .unwrap()
}

/// curl --http2 over TLS (ALPN) and --http2-prior-knowledge against burrow's HTTP/2 server:
/// byte-exact downloads, an upload echoed back, and curl reports HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl: run scripts/peers.sh"]
async fn curl_speaks_http2_to_burrow_server() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = std::env::temp_dir().join(format!("burrow-curl-{}", std::process::id()));
    let (ca, _, _) = pki.write_to(&dir).unwrap();
    let cfg = burrow_transport::tls::server_config(
        pki.chain_der.clone(),
        pki.key(),
        origin::alpn(Versions::Negotiate),
    )
    .unwrap();
    let tls = origin::start(Versions::Negotiate, Some(cfg)).await.unwrap();
    let h2c = origin::start(Versions::Http2, None).await.unwrap();
    let ca = ca.display().to_string();
    let cases = [
        vec![
            "--http2".to_string(),
            "--cacert".into(),
            ca.clone(),
            format!("https://localhost:{}/bytes/1048576", tls.addr.port()),
        ],
        vec![
            "--http2-prior-knowledge".to_string(),
            format!("http://127.0.0.1:{}/chunked/1048576", h2c.addr.port()),
        ],
    ];
    for args in cases {
        let mut a = vec!["-sS".to_string(), "-w".into(), "\n%{http_version}".into()];
        a.extend(args.clone());
        let out = curl(a).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (body, version) = out.stdout.split_at(out.stdout.len() - 2);
        assert_eq!(version, b"\n2", "{args:?}");
        assert_eq!(sha(body), sha(&pattern(0, 1 << 20)), "{args:?}");
    }
    // Upload: curl streams a file, burrow echoes it.
    let up = dir.join("up.bin");
    std::fs::write(&up, pattern(5, 3 << 20)).unwrap();
    let out = curl(vec![
        "-sS".into(),
        "--http2".into(),
        "--cacert".into(),
        ca,
        "--data-binary".into(),
        format!("@{}", up.display()),
        format!("https://localhost:{}/echo", tls.addr.port()),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha(&out.stdout), sha(&pattern(5, 3 << 20)));
    let _ = std::fs::remove_dir_all(&dir);
}

/// curl_cffi's libcurl (with HTTP/3) against burrow's HTTP/3 server: byte-exact bodies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs curl_cffi: run scripts/peers.sh"]
async fn libcurl_http3_against_burrow_server() {
    let pki = TestPki::generate(&[]).unwrap();
    let dir = std::env::temp_dir().join(format!("burrow-cffi-{}", std::process::id()));
    let (ca, _, _) = pki.write_to(&dir).unwrap();
    let cfg =
        burrow_transport::tls::server_config(pki.chain_der.clone(), pki.key(), &[b"h3"]).unwrap();
    let o = origin::start_h3(cfg, 0).await.unwrap();
    let script = r#"
import sys, hashlib
from curl_cffi import requests, CurlHttpVersion
url, ca = sys.argv[1], sys.argv[2]
r = requests.get(url, http_version=CurlHttpVersion.V3ONLY, verify=ca, timeout=30)
print(r.http_version, r.status_code, len(r.content), hashlib.sha256(r.content).hexdigest())
"#;
    for n in [0usize, 1 << 20, 64 << 20] {
        let url = format!("https://localhost:{}/bytes/{n}", o.addr.port());
        let args = vec![
            "-c".to_string(),
            script.into(),
            url.clone(),
            ca.display().to_string(),
        ];
        let out = tokio::task::spawn_blocking(move || {
            Command::new("python3").args(&args).output().unwrap()
        })
        .await
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let want = format!("{:x}", Sha256::digest(pattern(0, n)));
        // curl reports HTTP/3 as version 30.
        assert_eq!(text.trim(), format!("30 200 {n} {want}"), "{url}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
