//! `burrow-proxy --tcp-template --connect-tcp-codepoints` and `burrow -x '…?connect=tcp'`,
//! the two binaries end to end on loopback: a transfer through CONNECT-TCP on HTTP/3 and
//! HTTP/1.1 with a custom template and capsule types, a client on the default template
//! refused with 400, and the flags' errors.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use burrow_examples::origin::{self, Versions};
use burrow_examples::proxy_cli::{config, parse_args};

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const TEMPLATE: &str = "/tcp?h={target_host}&p={target_port}";

#[test]
fn the_flags_set_the_template_and_codepoints_or_say_what_is_wrong() {
    let cfg_of = |extra: &[&str]| {
        let mut argv: Vec<std::ffi::OsString> = vec![
            "burrow-proxy".into(),
            "--listen".into(),
            "http://127.0.0.1:0".into(),
        ];
        argv.extend(extra.iter().map(Into::into));
        config(&parse_args(&argv).map_err(|_| "parse".to_string())?).map_err(|e| e.to_string())
    };
    let c = cfg_of(&[]).unwrap();
    assert_eq!(
        c.tcp_template.unwrap().as_str(),
        "/.well-known/masque/tcp/{target_host}/{target_port}/"
    );
    assert_eq!(
        c.tcp_codepoints,
        burrow_http_core::connect_tcp::Codepoints::DRAFT_12
    );
    let c = cfg_of(&[
        "--tcp-template",
        TEMPLATE,
        "--connect-tcp-codepoints",
        "draft-08",
    ])
    .unwrap();
    assert_eq!(c.tcp_template.unwrap().as_str(), TEMPLATE);
    assert_eq!(
        c.tcp_codepoints,
        burrow_http_core::connect_tcp::Codepoints::DRAFT_08
    );
    let e = cfg_of(&["--connect-tcp-codepoints", "7"]).unwrap_err();
    assert!(e.contains("--connect-tcp-codepoints"), "{e}");
    let e = cfg_of(&["--tcp-template", "/tcp/{target_host}"]).unwrap_err();
    assert!(e.contains("target_port"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burrow_through_burrow_proxy_over_connect_tcp() {
    let o = origin::start(Versions::Http1, None).await.unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
        .args([
            "--listen",
            "h3://127.0.0.1:0",
            "--listen",
            "http://127.0.0.1:0",
            "--allow-net",
            "127.0.0.0/8",
            "--tcp-template",
            TEMPLATE,
            "--connect-tcp-codepoints",
            "0x40,0x41",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let _child = Kill(child);
    let mut port = |scheme: &str| -> u16 {
        let line = lines.next().unwrap().unwrap();
        assert!(line.contains(&format!("{scheme}://")), "{line}");
        line.rsplit(':').next().unwrap().parse().unwrap()
    };
    let (h3, h1) = (port("h3"), port("http"));
    let url = format!("http://127.0.0.1:{}/bytes/300000", o.addr.port());
    let burrow = |proxy: String, codepoints: &str| {
        let (url, codepoints) = (url.clone(), codepoints.to_string());
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_burrow"))
                .args([&url, "-x", &proxy, "--proxy-insecure", "-v"])
                .args(["--connect-tcp-codepoints", &codepoints])
                .output()
                .unwrap()
        })
    };
    for (proxy, tag) in [
        (
            format!("h3://localhost:{h3}{TEMPLATE}&connect=tcp"),
            "CONNECT-TCP@h3",
        ),
        (
            format!("http://127.0.0.1:{h1}{TEMPLATE}&connect=tcp"),
            "CONNECT-TCP@h1",
        ),
    ] {
        let out = burrow(proxy.clone(), "0x40,0x41").await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{proxy}: {err}");
        assert_eq!(out.stdout, origin::pattern(0, 300_000), "{proxy}");
        assert!(err.contains(tag), "{proxy}: {err}");
    }
    // The default template is not the one served: 400 from hop 1.
    let out = burrow(format!("h3://localhost:{h3}?connect=tcp"), "0x40,0x41")
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("400") && err.contains("hop 1"), "{err}");
}
