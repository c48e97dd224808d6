//! burrow's client through proxies nobody here wrote: squid (HTTP/1.1 proxy and HTTPS
//! proxy), nghttpx (HTTP/2 CONNECT proxy), dante (SOCKS5), alone and in chains, to nginx
//! over HTTP/1.1 and HTTP/2. Run by `scripts/peers.sh`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::sync::Arc;

use burrow_http_core::{Body, Client, VersionPolicy};
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_transport::{Roots, TlsConfig};
use http::Request;
use sha2::{Digest, Sha256};

fn var(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set: run scripts/peers.sh"))
}

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

struct Peers {
    squid: String,
    squid_tls: String,
    nghttpx: String,
    dante: String,
    nginx_tls: String,
    ca: String,
    want: Vec<u8>,
}

fn peers() -> Peers {
    Peers {
        squid: format!("http://127.0.0.1:{}", var("BURROW_SQUID")),
        squid_tls: format!("https://localhost:{}", var("BURROW_SQUID_TLS")),
        nghttpx: format!("h2://localhost:{}", var("BURROW_NGHTTPX")),
        dante: format!("socks5h://127.0.0.1:{}", var("BURROW_DANTE")),
        nginx_tls: var("BURROW_NGINX_TLS"),
        ca: var("BURROW_NGINX_CA"),
        want: sha(&std::fs::read(format!("{}/1m.bin", var("BURROW_NGINX_ROOT"))).unwrap()),
    }
}

fn cli(p: &Peers, proxies: &[&str], version: &str) -> (bool, Vec<u8>, String) {
    let mut args = vec![
        format!("https://localhost:{}/1m.bin", p.nginx_tls),
        "--cacert".into(),
        p.ca.clone(),
        "--proxy-cacert".into(),
        p.ca.clone(),
        version.into(),
        "-v".into(),
    ];
    for x in proxies {
        args.push("-x".into());
        args.push(x.to_string());
    }
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .args(&args)
        .output()
        .unwrap();
    (
        out.status.success(),
        out.stdout,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
#[ignore = "needs squid, nghttpx, dante, nginx: run scripts/peers.sh"]
fn each_real_proxy_alone_h1_and_h2_origins() {
    let p = peers();
    let cases = [
        (&p.squid, "CONNECT@h1"),
        // squid's GnuTLS https_port negotiates no ALPN: burrow falls back to HTTP/1.1.
        (&p.squid_tls, "CONNECT@h1"),
        (&p.nghttpx, "CONNECT@h2"),
        (&p.dante, "socks5h@"),
    ];
    for (proxy, layer) in cases {
        for (version, shown) in [("--http1.1", "< HTTP/1.1 200"), ("--http2", "< HTTP/2 200")] {
            let (ok, body, err) = cli(&p, &[proxy], version);
            assert!(ok, "{proxy} {version}: {err}");
            assert_eq!(sha(&body), p.want, "{proxy} {version}");
            assert!(
                err.contains(layer) && err.contains(shown),
                "{proxy} {version}: {err}"
            );
        }
    }
}

#[test]
#[ignore = "needs squid, nghttpx, dante, nginx: run scripts/peers.sh"]
fn chains_of_two_and_three_real_proxies() {
    let p = peers();
    let chains: Vec<Vec<&str>> = vec![
        vec![&p.dante, &p.squid],
        vec![&p.squid, &p.dante],
        vec![&p.nghttpx, &p.dante],
        vec![&p.squid_tls, &p.nghttpx],
        vec![&p.dante, &p.squid_tls, &p.nghttpx],
        vec![&p.nghttpx, &p.squid, &p.dante],
    ];
    for chain in chains {
        let (ok, body, err) = cli(&p, &chain, "--http2");
        assert!(ok, "{chain:?}: {err}");
        assert_eq!(sha(&body), p.want, "{chain:?}");
        let layers = err
            .lines()
            .find(|l| l.starts_with("* route:"))
            .unwrap_or("")
            .to_string();
        assert_eq!(
            layers.matches("CONNECT@").count() + layers.matches("socks5h@").count(),
            chain.len(),
            "{layers}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nghttpx, squid, nginx: run scripts/peers.sh"]
async fn hundred_concurrent_tunnels_over_one_nghttpx_connection() {
    let p = peers();
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_pem_file(&p.ca).unwrap();
    let route = Route::build(
        &[ProxyUrl::parse(&p.nghttpx).unwrap()],
        &RouteOptions {
            proxy_tls: tls.clone(),
            ..Default::default()
        },
    );
    let mut b = Client::builder();
    b.protocol(Arc::new(burrow_http1::Http1::default()))
        .connector(route.stream)
        .tls(tls)
        .version_policy(VersionPolicy::Http1Only)
        .max_connections_per_origin(100);
    let client = b.build().unwrap();
    let url = format!("https://localhost:{}/1m.bin", p.nginx_tls);
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (c, u, want) = (client.clone(), url.clone(), p.want.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .request(Request::get(u).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let route = r.headers().get("x-conn").is_some();
            assert_eq!(
                sha(&r.into_body().collect(2 << 20).await.unwrap().data),
                want
            );
            route
        }));
    }
    let mut n = 0;
    for t in tasks {
        t.await.unwrap();
        n += 1;
    }
    assert_eq!(n, 100);
}

/// squid as it ships allows CONNECT only to port 443: an `http://` URL through it works
/// because burrow forwards it in absolute-form, as curl does; tunnelled (`-p`) it is
/// refused with squid's 403.
#[test]
#[ignore = "needs squid, nginx: run scripts/peers.sh"]
fn http_urls_are_forwarded_where_squid_allows_connect_only_to_443() {
    let p = peers();
    let strict = format!("http://127.0.0.1:{}", var("BURROW_SQUID_STRICT"));
    let url = format!("http://127.0.0.1:{}/1m.bin", var("BURROW_NGINX_PLAIN"));
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_burrow"))
            .arg(&url)
            .args(["-v", "-x", &strict])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(sha(&out.stdout), p.want);
    assert!(err.contains(&format!("> GET {url} HTTP/1.1")), "{err}");
    let out = run(&["-p"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(out.stdout.is_empty());
    assert!(err.contains("403"), "{err}");
    // Forwarded over TLS to squid's HTTPS port too.
    let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
        .arg(&url)
        .args(["-v", "-x", &p.squid_tls, "--proxy-cacert", &p.ca])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(sha(&out.stdout), p.want);
    assert!(err.contains(&format!("> GET {url} HTTP/1.1")), "{err}");
}
