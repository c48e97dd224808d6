//! `burrow-proxy --ip-pool` and `burrow -x '…?connect=ip'`, the two binaries end to end in
//! a network namespace of the test's own (skipped, saying why, where it cannot be made):
//! a download through CONNECT-IP on HTTP/3 and HTTP/2 with `-v` naming the IP tunnel in
//! the route, a proxy without a pool answering 501 named as hop 1's; and the flags' errors.
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use burrow_examples::origin::{self, Versions};
use burrow_examples::proxy_cli::{ip_network, parse_args};
use burrow_test_support::netns;

struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_ip_flags_build_the_network_or_say_what_is_wrong() {
    let net = |extra: &[&str]| {
        let mut argv: Vec<std::ffi::OsString> = vec![
            "burrow-proxy".into(),
            "--listen".into(),
            "h3://127.0.0.1:0".into(),
        ];
        argv.extend(extra.iter().map(Into::into));
        ip_network(&parse_args(&argv).map_err(|_| "parse".to_string())?).map_err(|e| e.to_string())
    };
    assert!(net(&[]).unwrap().is_none());
    let c = net(&["--ip-pool", "10.9.0.0/24", "--ip-pool", "fd00:9::/64"])
        .unwrap()
        .unwrap();
    assert_eq!((c.tun_name.as_str(), c.mtu), ("burrow0", 1500));
    assert_eq!(c.pool_v4.unwrap().len, 24);
    assert_eq!(c.pool_v6.unwrap().len, 64);
    assert!(c.routes.is_empty(), "everything by default");
    let c = net(&[
        "--ip-pool",
        "10.9.0.0/24",
        "--ip-route",
        "192.0.2.0/24",
        "--ip-route",
        "10.0.0.0/8",
        "--tun-name",
        "vpn7",
    ])
    .unwrap()
    .unwrap();
    assert_eq!(c.tun_name, "vpn7");
    let starts: Vec<String> = c.routes.iter().map(|r| r.start.to_string()).collect();
    assert_eq!(starts, ["10.0.0.0", "192.0.2.0"], "sorted");
    assert_eq!(c.routes[1].end.to_string(), "192.0.2.255");
    for (bad, says) in [
        (&["--ip-pool", "10.9.0.1/24"][..], "no host bits"),
        (&["--ip-pool", "10.9.0.0/31"][..], "too small"),
        (
            &["--ip-pool", "10.9.0.0/24", "--ip-pool", "10.8.0.0/24"][..],
            "one prefix per",
        ),
        (&["--ip-route", "10.0.0.0/8"][..], "needs --ip-pool"),
        (
            &[
                "--ip-pool",
                "10.9.0.0/24",
                "--ip-route",
                "10.0.0.0/8",
                "--ip-route",
                "10.1.0.0/16",
            ][..],
            "overlap",
        ),
        (&["--ip-pool", "fd00::/64", "--tun-mtu", "1200"][..], "1280"),
    ] {
        let e = net(bad).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burrow_through_burrow_proxy_over_connect_ip() {
    if !netns::enter("burrow_through_burrow_proxy_over_connect_ip") {
        return;
    }
    netns::sh(&["ip", "link", "set", "lo", "up"]);
    netns::sh(&["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"]);
    let o = origin::start_at([10, 77, 0, 1].into(), Versions::Http1, None, None)
        .await
        .unwrap();
    let spawn = |extra: &[&str]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
            .args([
                "--listen",
                "h3://127.0.0.1:0",
                "--listen",
                "https://127.0.0.1:0",
            ])
            .args(["--allow-net", "10.77.0.0/16"])
            .args(extra)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        (Kill(child), lines)
    };
    let (_child, mut lines) = spawn(&["--ip-pool", "10.88.0.0/24", "--tun-name", "bp0"]);
    let mut ports = Vec::new();
    while ports.len() < 2 {
        let line = lines.next().unwrap().unwrap();
        if line.contains("://") {
            ports.push(line.rsplit(':').next().unwrap().parse::<u16>().unwrap());
        } else {
            assert!(line.contains("CONNECT-IP on TUN device bp0"), "{line}");
        }
    }
    let (h3, h2) = (ports[0], ports[1]);
    let url = format!("http://10.77.0.1:{}/bytes/300000", o.addr.port());
    let burrow = |proxy: String| {
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_burrow"))
                .args([&url, "-x", &proxy, "--proxy-insecure", "-v"])
                .output()
                .unwrap()
        })
    };
    for (proxy, tag) in [
        (
            format!("h3://localhost:{h3}?connect=ip"),
            "tcp over CONNECT-IP@h3",
        ),
        (
            format!("h2://localhost:{h2}?connect=ip"),
            "tcp over CONNECT-IP@h2",
        ),
    ] {
        let out = burrow(proxy.clone()).await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{proxy}: {err}");
        assert_eq!(out.stdout, origin::pattern(0, 300_000), "{proxy}");
        assert!(err.contains(tag), "{proxy}: {err}");
    }
    // A proxy without a pool refuses CONNECT-IP with 501, named as hop 1's answer.
    let (_plain, mut lines) = spawn(&[]);
    let line = lines.next().unwrap().unwrap();
    let h3 = line.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let out = burrow(format!("h3://localhost:{h3}?connect=ip"))
        .await
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("501") && err.contains("hop 1"), "{err}");
}
