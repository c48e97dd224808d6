//! The `burrow-proxy` binary with independent clients: curl (HTTP/1.1 proxy, HTTPS proxy,
//! SOCKS5h, absolute-form) to nginx, a Python SOCKS5 UDP ASSOCIATE client, and a clean
//! SIGTERM shutdown. Run by `scripts/peers.sh`; ignored in a plain `cargo test`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

use sha2::{Digest, Sha256};

mod common;
use common::{start_burrow_proxy, var, ProxyProcess};

fn sha(b: &[u8]) -> Vec<u8> {
    Sha256::digest(b).to_vec()
}

fn start_proxy(extra: &[&str]) -> ProxyProcess {
    start_burrow_proxy(&["http", "https", "socks5"], extra)
}

fn curl(args: &[String]) -> std::process::Output {
    Command::new("curl").args(args).output().unwrap()
}

#[test]
#[ignore = "needs curl and nginx: run scripts/peers.sh"]
fn curl_through_burrow_proxy_http_https_socks5() {
    let ca = var("BURROW_NGINX_CA");
    let root = var("BURROW_NGINX_ROOT");
    let tls = var("BURROW_NGINX_TLS");
    let plain = var("BURROW_NGINX_PLAIN");
    let want = sha(&std::fs::read(format!("{root}/1m.bin")).unwrap());
    let mut p = start_proxy(&["--auth", "u:p4ss"]);
    let (http, https, socks) = (p.addrs[0].clone(), p.addrs[1].clone(), p.addrs[2].clone());
    let https_proxy = https.replace("127.0.0.1", "localhost");
    let url = format!("https://localhost:{tls}/1m.bin");
    let cases: Vec<Vec<String>> = vec![
        vec![
            "-x".into(),
            http.clone(),
            "--proxy-user".into(),
            "u:p4ss".into(),
            url.clone(),
        ],
        vec![
            "-x".into(),
            https_proxy,
            "--proxy-cacert".into(),
            ca.clone(),
            "--proxy-user".into(),
            "u:p4ss".into(),
            url.clone(),
        ],
        vec![
            "-x".into(),
            socks.replace("socks5://", "socks5h://u:p4ss@"),
            url.clone(),
        ],
        // Absolute-form forwarding of a plain http:// URL.
        vec![
            "-x".into(),
            http.clone(),
            "--proxy-user".into(),
            "u:p4ss".into(),
            format!("http://127.0.0.1:{plain}/1m.bin"),
        ],
    ];
    for c in cases {
        let mut args = vec!["-sS".to_string(), "--cacert".into(), ca.clone()];
        args.extend(c.clone());
        let out = curl(&args);
        assert!(
            out.status.success(),
            "{c:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(sha(&out.stdout), want, "{c:?}");
    }
    // Without credentials: 407 with Proxy-Authenticate (curl exit 56 for CONNECT).
    let out = curl(&["-sS".into(), "-x".into(), http, "--cacert".into(), ca, url]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("407"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // SIGTERM: a clean exit.
    Command::new("kill")
        .args(["-TERM", &p.child.id().to_string()])
        .status()
        .unwrap();
    let status = p.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
#[ignore = "needs python3: run scripts/peers.sh"]
fn python_socks5_udp_associate_echo() {
    let mut p = start_proxy(&[]);
    let socks = p.addrs[2].trim_start_matches("socks5://").to_string();
    // An independent SOCKS5 UDP client written from RFC 1928, plus a UDP echo server.
    let script = r#"
import socket, struct, sys, threading
host, port = sys.argv[1].rsplit(":", 1)
echo = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); echo.bind(("127.0.0.1", 0))
def serve():
    while True:
        d, a = echo.recvfrom(65535); echo.sendto(d, a)
threading.Thread(target=serve, daemon=True).start()
ctl = socket.create_connection((host, int(port)))
ctl.sendall(b"\x05\x01\x00"); assert ctl.recv(2) == b"\x05\x00"
ctl.sendall(b"\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00")
r = ctl.recv(10); assert r[1] == 0, r
relay = (socket.inet_ntoa(r[4:8]), struct.unpack(">H", r[8:10])[0])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(0.5)
ok = 0
for i in range(20):
    payload = bytes([i]) * (100 + i * 50)
    pkt = b"\x00\x00\x00\x01" + socket.inet_aton("127.0.0.1") + struct.pack(">H", echo.getsockname()[1]) + payload
    for attempt in range(5):
        u.sendto(pkt, relay)
        try:
            d, _ = u.recvfrom(65535)
        except socket.timeout:
            continue
        assert d == pkt, (len(d), len(pkt)); ok += 1; break
print(ok)
"#;
    let out = Command::new("python3")
        .args(["-c", script, &socks])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "20");
    let _ = p.child.kill();
}
