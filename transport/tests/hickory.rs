//! The hickory resolver against a tiny DNS server on loopback: answers, NXDOMAIN, and a
//! TCP connector resolving through it.
#![cfg(feature = "hickory")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use burrow_transport::{
    ErrorKind, HickoryResolver, Host, Resolve, StreamConnector, Target, TcpConfig, TcpConnector,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

/// Answers A queries for the names in `zone`, NXDOMAIN for other names, and no data for
/// other types (RFC 1035 §4.1).
async fn dns_server(zone: Vec<(&'static str, Ipv4Addr)>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf).await {
            let q = &buf[..n];
            if n < 12 {
                continue;
            }
            // The question: labels up to the root, then type and class.
            let mut i = 12;
            let mut labels = Vec::new();
            while i < n && q[i] != 0 {
                let l = usize::from(q[i]);
                labels.push(String::from_utf8_lossy(&q[i + 1..(i + 1 + l).min(n)]).to_lowercase());
                i += 1 + l;
            }
            let qend = i + 5;
            if qend > n {
                continue;
            }
            let qtype = u16::from_be_bytes([q[i + 1], q[i + 2]]);
            let name = labels.join(".");
            let ip = zone.iter().find(|(z, _)| *z == name).map(|(_, ip)| *ip);
            let mut r = Vec::from(&q[..2]);
            let rcode = if ip.is_some() { 0 } else { 3 };
            r.extend_from_slice(&[0x81, 0x80 | rcode]);
            let answers = u16::from(ip.is_some() && qtype == 1);
            r.extend_from_slice(&[0, 1]);
            r.extend_from_slice(&answers.to_be_bytes());
            r.extend_from_slice(&[0, 0, 0, 0]);
            r.extend_from_slice(&q[12..qend]);
            if let (Some(ip), 1) = (ip, answers) {
                r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
                r.extend_from_slice(&ip.octets());
            }
            let _ = sock.send_to(&r, from).await;
        }
    });
    addr
}

#[tokio::test]
async fn hickory_resolves_through_the_configured_server() {
    let dns = dns_server(vec![
        ("burrow.test", Ipv4Addr::new(127, 0, 0, 7)),
        ("echo.test", Ipv4Addr::LOCALHOST),
    ])
    .await;
    let r = HickoryResolver::with_servers(&[dns]);
    let got = r.resolve("burrow.test", 443).await.unwrap();
    assert_eq!(got, vec![SocketAddr::from(([127, 0, 0, 7], 443))]);
    let e = r.resolve("missing.test", 443).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Resolve);
    assert!(e.to_string().contains("missing.test"), "{e}");

    // The direct TCP connector resolves with it.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        s.write_all(b"via hickory").await.unwrap();
    });
    let c = TcpConnector::new(TcpConfig::default()).with_resolver(Arc::new(r));
    let mut conn = c
        .connect(&Target::new(Host::parse("echo.test").unwrap(), port))
        .await
        .unwrap();
    let mut got = Vec::new();
    conn.stream.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"via hickory");
}
