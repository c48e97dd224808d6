//! The composition matrix with independent peers: origins nginx (HTTP/1.1 and HTTP/2 over
//! TLS) and Caddy (HTTP/3); proxies squid (HTTP/1.1, HTTPS), nghttpx (HTTP/2), dante
//! (SOCKS5) and, where no installed proxy relays UDP, the burrow-proxy binary. Every single
//! hop and every two-hop chain they allow, through the `burrow` CLI; prints a table and
//! fails on any broken cell. Run by `scripts/peers.sh`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;
use std::time::Instant;

use sha2::{Digest, Sha256};

mod common;
use common::{start_burrow_proxy, var};

#[test]
#[ignore = "needs every peer: run scripts/peers.sh"]
fn matrix_with_real_peers() {
    let ca = var("BURROW_NGINX_CA");
    let root = var("BURROW_NGINX_ROOT");
    let want = Sha256::digest(std::fs::read(format!("{root}/1m.bin")).unwrap()).to_vec();
    let bp = start_burrow_proxy(&["http", "https", "h3"], &[]);
    let (bp_h1, bp_h2, bp_h3) = (
        format!("http://127.0.0.1:{}", bp.port(0)),
        format!("h2://localhost:{}", bp.port(1)),
        format!("h3://localhost:{}", bp.port(2)),
    );
    let tcp_proxies: Vec<(&str, String)> = vec![
        ("squid", format!("http://127.0.0.1:{}", var("BURROW_SQUID"))),
        (
            "squid-https",
            format!("https://localhost:{}", var("BURROW_SQUID_TLS")),
        ),
        (
            "nghttpx",
            format!("h2://localhost:{}", var("BURROW_NGHTTPX")),
        ),
        (
            "dante",
            format!("socks5h://127.0.0.1:{}", var("BURROW_DANTE")),
        ),
    ];
    let udp_proxies: Vec<(&str, String)> = vec![
        ("burrow-h1", bp_h1),
        ("burrow-h2", bp_h2),
        ("burrow-h3", bp_h3),
        (
            "dante",
            format!("socks5h://127.0.0.1:{}", var("BURROW_DANTE")),
        ),
    ];
    let origins = [
        (
            "nginx h1",
            format!("https://localhost:{}/1m.bin", var("BURROW_NGINX_TLS")),
            "--http1.1",
            &tcp_proxies,
        ),
        (
            "nginx h2",
            format!("https://localhost:{}/1m.bin", var("BURROW_NGINX_TLS")),
            "--http2",
            &tcp_proxies,
        ),
        (
            "caddy h3",
            format!("https://localhost:{}/1m.bin", var("BURROW_CADDY")),
            "--http3-only",
            &udp_proxies,
        ),
    ];
    let mut rows = Vec::new();
    for (oname, url, flag, proxies) in origins {
        let mut routes: Vec<Vec<&(&str, String)>> = vec![vec![]];
        for p in proxies.iter() {
            routes.push(vec![p]);
        }
        for a in proxies.iter() {
            for b in proxies.iter() {
                // dante refuses to connect to its own listener (reply 2, its loop guard):
                // a chain that peer does not allow.
                if a.0 == "dante" && b.0 == "dante" {
                    continue;
                }
                routes.push(vec![a, b]);
            }
        }
        for route in routes {
            let mut args = vec![
                url.clone(),
                flag.to_string(),
                "--cacert".into(),
                ca.clone(),
                "--proxy-cacert".into(),
                ca.clone(),
                "--max-time".into(),
                "60".into(),
            ];
            for (_, u) in &route {
                args.push("-x".into());
                args.push(u.clone());
            }
            let t0 = Instant::now();
            let out = Command::new(env!("CARGO_BIN_EXE_burrow"))
                .args(&args)
                .output()
                .unwrap();
            let ms = t0.elapsed().as_millis();
            let ok = out.status.success() && Sha256::digest(&out.stdout).to_vec() == want;
            let label = if route.is_empty() {
                "direct".to_string()
            } else {
                route
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(" > ")
            };
            let err = String::from_utf8_lossy(&out.stderr).trim().to_string();
            rows.push((
                format!("{oname} via {label}"),
                ms,
                if ok {
                    "ok".to_string()
                } else {
                    format!("FAILED: {err}")
                },
            ));
        }
    }
    let w = rows.iter().map(|r| r.0.len()).max().unwrap();
    let mut table = String::new();
    for (r, ms, res) in &rows {
        table.push_str(&format!("{r:<w$}  {ms:>6} ms  {res}\n"));
    }
    println!("{table}");
    let failed = rows.iter().filter(|r| r.2 != "ok").count();
    assert_eq!(
        failed,
        0,
        "{failed} of {} cells failed:\n{table}",
        rows.len()
    );
}
