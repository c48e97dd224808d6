//! Tracing: a span per request and per hop, with the version, the hop, bytes and timings,
//! and never a credential (proxy password, bearer token, secrets in the query).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burrow::Proxy;
use burrow_proxy::server::Listen;
use burrow_test_support::Pki;

mod common;
use common::{origin, pem_file, proxy};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_per_request_and_hop_without_credentials() {
    let out = Captured::default();
    let w = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let p = Pki::new();
    let (_dir, ca) = pem_file(&p);
    let o = origin(&p, None).await;
    let (_s, socks, _) = proxy(&p, Listen::Socks("127.0.0.1:0".parse().unwrap())).await;
    let (_h, h2, _) = proxy(&p, Listen::Https("127.0.0.1:0".parse().unwrap())).await;
    let client = burrow::Client::builder()
        .proxy(Proxy::parse(&format!("socks5h://127.0.0.1:{}", socks.port())).unwrap())
        .proxy(Proxy::parse(&format!("h2://alice:pr0xy-s3cret@localhost:{}", h2.port())).unwrap())
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    let r = client
        .get(format!(
            "https://localhost:{}/auth?key=qu3ry-s3cret",
            o.port()
        ))
        .bearer_auth("t0ken-s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.text().await.unwrap(), "Bearer t0ken-s3cret");
    drop(client);
    // The tunnels close when the pooled connections do.
    let want_closed = 2;
    for _ in 0..100 {
        let s = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
        if s.matches("tunnel closed").count() >= want_closed {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = String::from_utf8_lossy(&out.0.lock().unwrap()).into_owned();
    let request = format!(
        "request{{method=GET url=https://localhost:{}/auth}}",
        o.port()
    );
    for want in [
        // Hop 2's tunnel is opened through hop 1's, so its span holds hop 1's.
        format!(
            "{request}:hop{{n=2 proxy=h2 proxy localhost:{} target=localhost:{}}}:hop{{n=1 proxy=socks5h proxy 127.0.0.1:{} target=localhost:{}}}",
            h2.port(),
            o.port(),
            socks.port(),
            h2.port()
        ),
        "tunnel open".into(),
        "version=\"h2\"".into(),
        "status=200".into(),
        "head_ms=".into(),
        "bytes_down=".into(),
    ] {
        assert!(logs.contains(&want), "missing {want:?} in\n{logs}");
    }
    assert!(
        logs.matches("tunnel closed").count() >= want_closed,
        "{logs}"
    );
    for secret in ["s3cret", "alice", "t0ken"] {
        assert!(!logs.contains(secret), "{secret} leaked in\n{logs}");
    }
}
