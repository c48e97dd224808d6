//! DNS over HTTPS through the route: with a SOCKS5 hop (which resolves names on this side),
//! the client's names go to a DoH server reached through the same proxy, and the local
//! resolver, which fails every query here, is never asked.
#![cfg(feature = "doh")]
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use burrow::{Proxy, Resolve};
use burrow_proxy::server::Listen;
use tokio::net::TcpListener;

/// A local resolver that fails every query, and counts them.
#[derive(Default)]
struct Refusing(AtomicUsize);

#[async_trait]
impl Resolve for Refusing {
    async fn resolve(&self, name: &str, _: u16) -> burrow::Result<Vec<SocketAddr>> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Err(burrow::Error::peer(
            burrow::ErrorKind::Resolve,
            format!("local DNS asked for {name}"),
        ))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_resolve_over_doh_through_the_route_and_never_locally() {
    let pki = burrow_test_support::Pki::new();
    let origin = common::origin(&pki, None).await;
    let (_p, socks, stats) =
        common::proxy(&pki, Listen::parse("socks5://127.0.0.1:0").unwrap()).await;
    let doh = burrow_test_support::doh::DohServer::start().await.unwrap();
    let local = Arc::new(Refusing::default());
    let (_dir, ca) = common::pem_file(&pki);
    // socks5:// (not socks5h): names are resolved on this side, which is where DNS leaks.
    let hop = || Proxy::parse(&format!("socks5://{socks}")).unwrap();
    let doh_client = burrow::Client::builder()
        .proxy(hop())
        .resolver(local.clone())
        .build()
        .unwrap();
    let resolver = burrow::DohResolver::new(doh_client, &doh.url()).unwrap();
    let client = burrow::Client::builder()
        .proxy(hop())
        .resolver(Arc::new(resolver))
        .ca_file(&ca)
        .unwrap()
        .build()
        .unwrap();
    // The certificate names localhost; the URL names a host only the DoH server knows.
    let url = format!("https://www.burrow.test:{}/method", origin.port());
    let e = client.get(&url).send().await.unwrap_err();
    assert_eq!(e.kind(), burrow::ErrorKind::Certificate, "{e}");
    // Resolved (A and AAAA asked), tunnelled, and only TLS refused: the route worked.
    assert!(doh.count() >= 2);
    assert!(
        stats.tunnels.load(Ordering::SeqCst) >= 2,
        "DoH and origin through the proxy"
    );
    let http = format!("http://www.burrow.test:{}/", plain_origin().await.port());
    let r = client.get(&http).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "plain");
    // A name the DoH server does not know: a resolve error naming it, still not local.
    let e = client
        .get("http://nowhere.example:80/")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), burrow::ErrorKind::Resolve, "{e}");
    assert!(e.to_string().contains("nowhere.example"), "{e}");
    assert_eq!(
        local.0.load(Ordering::SeqCst),
        0,
        "the local resolver was asked"
    );
}

/// A cleartext origin answering `plain`.
async fn plain_origin() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nplain")
                    .await;
            });
        }
    });
    addr
}
