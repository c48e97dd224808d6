//! HTTP/3 through proxies with real peers: Caddy (HTTP/3 origin) through the burrow-proxy
//! binary over HTTP/1.1, HTTP/2 and HTTP/3 (CONNECT-UDP), through dante's SOCKS5 UDP
//! ASSOCIATE, and through two-hop chains. Run by `scripts/peers.sh`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use sha2::{Digest, Sha256};

mod common;
use common::{start_burrow_proxy, var};

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

struct Bp {
    _p: common::ProxyProcess,
    http: String,
    https: String,
    h3: String,
}

fn burrow_proxy() -> Bp {
    let p = start_burrow_proxy(&["http", "https", "h3"], &[]);
    Bp {
        http: format!("http://127.0.0.1:{}", p.port(0)),
        https: format!("h2://localhost:{}", p.port(1)),
        h3: format!("h3://localhost:{}", p.port(2)),
        _p: p,
    }
}

#[test]
#[ignore = "needs caddy, dante: run scripts/peers.sh"]
fn http3_origin_through_every_udp_path() {
    let ca = var("BURROW_NGINX_CA");
    let url = format!("https://localhost:{}/1m.bin", var("BURROW_CADDY"));
    let want = sha(&std::fs::read(format!("{}/1m.bin", var("BURROW_NGINX_ROOT"))).unwrap());
    let dante = format!("socks5h://127.0.0.1:{}", var("BURROW_DANTE"));
    let (a, b) = (burrow_proxy(), burrow_proxy());
    let routes: Vec<(Vec<&str>, &str)> = vec![
        (vec![&a.h3], "CONNECT-UDP@h3"),
        (vec![&a.https], "CONNECT-UDP@h2"),
        (vec![&a.http], "CONNECT-UDP@h1"),
        (vec![&dante], "socks5h-udp@"),
        (vec![&a.h3, &b.h3], "CONNECT-UDP@h3"),
        (vec![&dante, &a.https], "CONNECT-UDP@h2"),
        (vec![&a.https, &b.h3], "CONNECT-UDP@h3"),
    ];
    for (hops, layer) in routes {
        let mut args = vec![
            url.clone(),
            "--http3-only".into(),
            "--cacert".into(),
            ca.clone(),
            "--proxy-cacert".into(),
            ca.clone(),
            "-v".into(),
        ];
        for h in &hops {
            args.push("-x".into());
            args.push(h.to_string());
        }
        let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{hops:?}: {err}");
        assert!(
            err.contains("< HTTP/3 200") && err.contains(layer),
            "{hops:?}: {err}"
        );
        assert_eq!(sha(&out.stdout), want, "{hops:?}");
    }
}
