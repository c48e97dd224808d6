//! `burrow-proxy --quic-lb-*`: the flags build a QUIC-LB configuration or say what is wrong,
//! and the HTTP/3 listener of the binary issues connection IDs that name its server ID
//! (seen by a UDP relay in front of it, decoded with the same configuration).
#![allow(clippy::unwrap_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use burrow_examples::proxy_cli::{config, parse_args};
use burrow_http3::QuicLb;
use burrow_http_core::{ConnectionInfo, HttpConnection};
use burrow_transport::{TlsConfig, UdpFlow};

const KEY_HEX: &str = "00112233445566778899aabbccddeeff";

fn key_file(name: &str, text: &str) -> std::path::PathBuf {
    let p = std::env::temp_dir().join(format!("burrow-qlb-{}-{name}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p
}

fn lb_of(extra: &[&str]) -> Result<Option<QuicLb>, String> {
    let mut argv: Vec<std::ffi::OsString> = vec![
        "burrow-proxy".into(),
        "--listen".into(),
        "h3://127.0.0.1:0".into(),
    ];
    argv.extend(extra.iter().map(Into::into));
    let args = parse_args(&argv).map_err(|_| "parse".to_string())?;
    config(&args).map(|c| c.quic_lb).map_err(|e| e.to_string())
}

#[test]
fn the_flags_make_a_configuration_or_say_what_is_wrong() {
    assert!(lb_of(&[]).unwrap().is_none());
    let lb = lb_of(&["--quic-lb-server-id", "0a0b"]).unwrap().unwrap();
    assert_eq!(lb.own_server_id(), [0x0a, 0x0b]);
    assert_eq!(lb.cid_len(), 1 + 2 + 8);
    let good = key_file("good", &format!("{KEY_HEX}\n"));
    let g = good.to_str().unwrap();
    let lb = lb_of(&["--quic-lb-server-id", "2a", "--quic-lb-key-file", g])
        .unwrap()
        .unwrap();
    assert_eq!(lb.cid_len(), 17, "the nonce fills the 16-octet block");
    let short = key_file("short", "0011");
    // A valid key followed by more than the bound allows is refused, not cut short.
    let max = burrow_examples::proxy_cli::MAX_KEY_FILE as usize;
    let big = key_file("big", &format!("{KEY_HEX}{}", " ".repeat(max)));
    for (extra, says) in [
        (vec!["--quic-lb-server-id", "xyz"], "hex digits"),
        (vec!["--quic-lb-server-id", ""], "hex digits"),
        (
            vec!["--quic-lb-server-id", &"00".repeat(16)],
            "1 to 15 octets",
        ),
        (
            vec!["--quic-lb-server-id", "01", "--quic-lb-rotation", "7"],
            "not 0 to 6",
        ),
        (
            vec!["--quic-lb-server-id", "01", "--quic-lb-nonce-len", "3"],
            "at least 4 octets",
        ),
        (
            vec![
                "--quic-lb-server-id",
                "01",
                "--quic-lb-key-file",
                short.to_str().unwrap(),
            ],
            "a QUIC-LB key is 16 octets",
        ),
        (
            vec![
                "--quic-lb-server-id",
                "01",
                "--quic-lb-nonce-len",
                "8",
                "--quic-lb-key-file",
                g,
            ],
            "four-pass algorithm is not implemented",
        ),
        (vec!["--quic-lb-key-file", g], "need --quic-lb-server-id"),
        (
            vec![
                "--quic-lb-server-id",
                "01",
                "--quic-lb-key-file",
                big.to_str().unwrap(),
            ],
            "larger than 4096 bytes",
        ),
        (
            vec![
                "--quic-lb-server-id",
                "01",
                "--quic-lb-key-file",
                "/nonexistent/k",
            ],
            "reading /nonexistent/k",
        ),
    ] {
        let e = lb_of(&extra).unwrap_err();
        assert!(e.contains(says), "{extra:?}: {e}");
    }
    let _ = std::fs::remove_file(good);
    let _ = std::fs::remove_file(short);
    let _ = std::fs::remove_file(big);
}

/// The source connection ID of a long-header QUIC packet.
fn scid(packet: &[u8]) -> Option<Vec<u8>> {
    if *packet.first()? & 0x80 == 0 {
        return None;
    }
    let at = 6 + *packet.get(5)? as usize;
    let len = *packet.get(at)? as usize;
    packet.get(at + 1..at + 1 + len).map(<[u8]>::to_vec)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_h3_listener_issues_ids_naming_its_server() {
    let key = key_file("e2e", KEY_HEX);
    let mut child = Command::new(env!("CARGO_BIN_EXE_burrow-proxy"))
        .args(["--listen", "h3://127.0.0.1:0", "--quic-lb-server-id", "2a"])
        .arg("--quic-lb-key-file")
        .arg(&key)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines.next().unwrap().unwrap();
    let port: u16 = line.rsplit(':').next().unwrap().parse().unwrap();
    let proxy: std::net::SocketAddr = ([127, 0, 0, 1], port).into();

    // A relay in front of the proxy that records the IDs the proxy chooses.
    let front = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let back = Arc::new(tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap());
    back.connect(proxy).await.unwrap();
    let seen: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let client: Arc<Mutex<Option<std::net::SocketAddr>>> = Arc::default();
    let (f, b, c) = (front.clone(), back.clone(), client.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok((n, from)) = f.recv_from(&mut buf).await {
            *c.lock().unwrap() = Some(from);
            let _ = b.send(&buf[..n]).await;
        }
    });
    let (f, b, c, s) = (front.clone(), back.clone(), client.clone(), seen.clone());
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = b.recv(&mut buf).await {
            if let Some(id) = scid(&buf[..n]) {
                s.lock().unwrap().push(id);
            }
            let to = *c.lock().unwrap();
            if let Some(to) = to {
                let _ = f.send_to(&buf[..n], to).await;
            }
        }
    });

    let flow = Arc::new(UdpFlow::connect(front.local_addr().unwrap()).await.unwrap());
    let mut tls = TlsConfig::default();
    tls.insecure(true);
    let conn = burrow_http3::connect(
        flow,
        ConnectionInfo::default(),
        &burrow_http3::Http3Config::default(),
        &tls,
        "localhost",
    )
    .await
    .unwrap();
    // A request the proxy refuses (no absolute URI) still proves the connection works.
    let req = http::Request::get("https://localhost/")
        .body(burrow_http_core::Body::empty())
        .unwrap();
    let _ = conn.send_request(req).await;
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_file(key);

    let key: [u8; 16] = (0..16)
        .map(|i| u8::from_str_radix(&KEY_HEX[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let lb = QuicLb::new(0, &[0], 15).unwrap().with_key(key).unwrap();
    let ids = seen.lock().unwrap().clone();
    assert!(!ids.is_empty(), "no long-header packets from the proxy");
    for id in ids {
        assert_eq!(id.len(), 17);
        assert_eq!(lb.server_id(&id).unwrap(), [0x2a]);
    }
}
