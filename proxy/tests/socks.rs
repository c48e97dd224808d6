//! burrow-proxy's SOCKS listener with hand-written SOCKS5/SOCKS4a clients.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use burrow_test_support::{tcp_echo, udp_echo};

async fn socks(auth: Option<Credentials>) -> (SocketAddr, server::Running) {
    let cfg = ProxyConfig {
        listeners: vec![Listen::Socks("127.0.0.1:0".parse().unwrap())],
        auth,
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let a = match running.addrs[0] {
        Listen::Socks(a) => a,
        _ => unreachable!(),
    };
    (a, running)
}

async fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    s.read_exact(&mut b).await.unwrap();
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_connect_by_name_with_early_data() {
    let echo = tcp_echo().await;
    let (proxy, running) = socks(None).await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 0]).await.unwrap();
    assert_eq!(read_n(&mut s, 2).await, [5, 0]);
    // CONNECT localhost:port, with application bytes right behind the request.
    let mut req = vec![5, 1, 0, 3, 9];
    req.extend_from_slice(b"localhost");
    req.extend_from_slice(&echo.port().to_be_bytes());
    req.extend_from_slice(b"early!");
    s.write_all(&req).await.unwrap();
    let head = read_n(&mut s, 10).await;
    assert_eq!(&head[..4], &[5, 0, 0, 1]);
    assert_eq!(read_n(&mut s, 6).await, b"early!");
    s.write_all(b"more").await.unwrap();
    assert_eq!(read_n(&mut s, 4).await, b"more");
    assert_eq!(running.stats().tunnels.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_auth_and_refusals() {
    let echo = tcp_echo().await;
    let (proxy, _r) = socks(Some(Credentials {
        user: "bob".into(),
        pass: "pw".into(),
    }))
    .await;
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 2, 1, 3, b'b', b'o', b'b', 2, b'p', b'w'])
        .await
        .unwrap();
    assert_eq!(read_n(&mut s, 4).await, [5, 2, 1, 0]);
    let mut req = vec![5, 1, 0, 1, 127, 0, 0, 1];
    req.extend_from_slice(&echo.port().to_be_bytes());
    s.write_all(&req).await.unwrap();
    assert_eq!(read_n(&mut s, 10).await[1], 0);

    let mut bad = TcpStream::connect(proxy).await.unwrap();
    bad.write_all(&[5, 1, 2, 1, 3, b'b', b'o', b'b', 2, b'n', b'o'])
        .await
        .unwrap();
    assert_eq!(read_n(&mut bad, 4).await, [5, 2, 1, 1]);
    let mut rest = Vec::new();
    bad.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty(), "closed after failed auth");

    // Nobody listens on port 9: connection refused (reply 5).
    let mut s = TcpStream::connect(proxy).await.unwrap();
    s.write_all(&[5, 1, 2, 1, 3, b'b', b'o', b'b', 2, b'p', b'w'])
        .await
        .unwrap();
    read_n(&mut s, 4).await;
    s.write_all(&[5, 1, 0, 1, 127, 0, 0, 1, 0, 9])
        .await
        .unwrap();
    assert_eq!(read_n(&mut s, 10).await[1], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks4a_connect_and_garbage_does_not_hurt_others() {
    let echo = tcp_echo().await;
    let (proxy, _r) = socks(None).await;
    let mut junk = TcpStream::connect(proxy).await.unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut s = TcpStream::connect(proxy).await.unwrap();
    let mut req = vec![4, 1];
    req.extend_from_slice(&echo.port().to_be_bytes());
    req.extend_from_slice(&[0, 0, 0, 1]);
    req.extend_from_slice(b"me\0localhost\0");
    s.write_all(&req).await.unwrap();
    assert_eq!(read_n(&mut s, 8).await[1], 90);
    s.write_all(b"v4a").await.unwrap();
    assert_eq!(read_n(&mut s, 3).await, b"v4a");
    let mut rest = Vec::new();
    let _ = junk.read_to_end(&mut rest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socks5_udp_associate_relays_and_ends_with_control() {
    let echo = udp_echo().await;
    let (proxy, running) = socks(None).await;
    let mut ctl = TcpStream::connect(proxy).await.unwrap();
    ctl.write_all(&[5, 1, 0]).await.unwrap();
    read_n(&mut ctl, 2).await;
    ctl.write_all(&[5, 3, 0, 1, 0, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let r = read_n(&mut ctl, 10).await;
    assert_eq!(&r[..4], &[5, 0, 0, 1]);
    let relay = SocketAddr::from(([r[4], r[5], r[6], r[7]], u16::from_be_bytes([r[8], r[9]])));
    let u = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut pkt = vec![0, 0, 0, 1, 127, 0, 0, 1];
    pkt.extend_from_slice(&echo.port().to_be_bytes());
    pkt.extend_from_slice(b"ping over socks udp");
    let mut buf = vec![0u8; 2048];
    let n = loop {
        u.send_to(&pkt, relay).await.unwrap();
        if let Ok(r) = tokio::time::timeout(Duration::from_millis(300), u.recv_from(&mut buf)).await
        {
            break r.unwrap().0;
        }
    };
    // Same header (source = the echo server), same payload.
    assert_eq!(&buf[..n], &pkt[..]);
    // A fragment is dropped.
    let mut frag = pkt.clone();
    frag[2] = 1;
    u.send_to(&frag, relay).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(300), u.recv_from(&mut buf))
            .await
            .is_err()
    );
    // Closing the control connection ends the association.
    drop(ctl);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(running.stats().active.load(Ordering::Relaxed), 0);
}
