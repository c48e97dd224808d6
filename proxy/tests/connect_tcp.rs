//! CONNECT-TCP (draft-ietf-httpbis-connect-tcp) through burrow-proxy over HTTP/1.1, HTTP/2
//! and HTTP/3: byte-exact both ways, half-close as FINAL_DATA, a target's reset as an
//! abortive end, the template, authentication with 401, refusals; and the client's and
//! the proxy's bytes on the wire against hand-written peers.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;

use burrow_http_core::capsule::{encode, CapsuleType};
use burrow_http_core::connect_tcp::Codepoints;
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_proxy::server::{self, Credentials, Listen, Proxy, ProxyConfig};
use burrow_test_support::Pki;
use burrow_transport::{StreamConnector, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CP: Codepoints = Codepoints::DRAFT_12;

struct P {
    http: SocketAddr,
    https: SocketAddr,
    h3: SocketAddr,
    _running: server::Running,
}

async fn proxy(pk: &Pki, auth: bool, codepoints: Codepoints) -> P {
    let cfg = ProxyConfig {
        listeners: ["http", "https", "h3"]
            .iter()
            .map(|s| Listen::parse(&format!("{s}://127.0.0.1:0")).unwrap())
            .collect(),
        identity: Some((pk.chain.clone(), Arc::new(pk.key()))),
        auth: auth.then(|| Credentials {
            user: "ann".into(),
            pass: "s3cret".into(),
        }),
        tcp_codepoints: codepoints,
        rules: burrow_proxy::server::Rules::loopback(),
        ..ProxyConfig::default()
    };
    let running = server::start(Proxy::new(cfg, None, None).unwrap())
        .await
        .unwrap();
    let find = |want: &str| {
        running
            .addrs
            .iter()
            .find_map(|l| match (l, want) {
                (Listen::Http(a), "http") | (Listen::Https(a), "https") | (Listen::H3(a), "h3") => {
                    Some(*a)
                }
                _ => None,
            })
            .unwrap()
    };
    P {
        http: find("http"),
        https: find("https"),
        h3: find("h3"),
        _running: running,
    }
}

/// The CONNECT-TCP hop URLs for every version the proxy speaks.
fn hops(p: &P, userinfo: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "h1",
            format!("http://{userinfo}127.0.0.1:{}?connect=tcp", p.http.port()),
        ),
        (
            "h2 by ALPN",
            format!("https://{userinfo}localhost:{}?connect=tcp", p.https.port()),
        ),
        (
            "h2",
            format!("h2://{userinfo}localhost:{}?connect=tcp", p.https.port()),
        ),
        (
            "h3",
            format!("h3://{userinfo}localhost:{}?connect=tcp", p.h3.port()),
        ),
    ]
}

fn route(pk: &Pki, url: &str, codepoints: Codepoints) -> Route {
    let opts = RouteOptions {
        proxy_tls: pk.trust(),
        tcp_codepoints: codepoints,
        ..Default::default()
    };
    Route::build(&[ProxyUrl::parse(url).unwrap()], &opts)
}

/// A TCP target that echoes everything until the client's FIN, then closes.
async fn echo() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let a = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    a
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_mib_each_way_byte_exact_over_every_version_with_half_close() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let target: Target = echo().await.into();
    let data = pattern(1 << 20);
    for (name, url) in hops(&p, "") {
        let r = route(&pk, &url, CP);
        let c = r
            .stream
            .connect(&target)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            c.info.layers[0].starts_with("CONNECT-TCP@"),
            "{name}: {:?}",
            c.info.layers
        );
        let (mut rd, mut wr) = tokio::io::split(c.stream);
        let send = data.clone();
        // Our FIN (FINAL_DATA) reaches the target, whose FIN comes back the same way.
        let writer = tokio::spawn(async move {
            wr.write_all(&send).await.unwrap();
            wr.shutdown().await.unwrap();
            wr
        });
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(30), rd.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{name}: no end"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        writer.await.unwrap();
        assert!(
            got == data,
            "{name}: {} bytes back, not byte-exact",
            got.len()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_targets_reset_is_an_error_not_an_end() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target: Target = l.local_addr().unwrap().into();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            s.write_all(b"partial").await.unwrap();
            // Let the bytes go, then reset: SO_LINGER 0 makes the close an RST.
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            #[allow(deprecated)] // SO_LINGER 0 does not block on drop.
            s.set_linger(Some(std::time::Duration::ZERO)).unwrap();
            drop(s);
        }
    });
    for (name, url) in hops(&p, "") {
        let r = route(&pk, &url, CP);
        let mut c = r.stream.connect(&target).await.unwrap().stream;
        let mut got = Vec::new();
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), c.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{name}: no end"));
        assert_eq!(got, b"partial", "{name}");
        assert!(end.is_err(), "{name}: a reset read as a clean end");
    }
}

/// The other way round: a client's tunnel that ends without FINAL_DATA (dropped) is an
/// abortive close, and the proxy resets the target's TCP connection rather than ending it
/// with a FIN (draft-ietf-httpbis-connect-tcp §5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_abort_resets_the_target() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target: Target = l.local_addr().unwrap().into();
    for (name, url) in hops(&p, "") {
        let r = route(&pk, &url, CP);
        let mut c = r.stream.connect(&target).await.unwrap().stream;
        let (mut t, _) = l.accept().await.unwrap();
        c.write_all(b"hi").await.unwrap();
        c.flush().await.unwrap();
        let mut got = [0u8; 2];
        t.read_exact(&mut got).await.unwrap();
        drop(c);
        let mut more = [0u8; 8];
        let end = tokio::time::timeout(std::time::Duration::from_secs(10), t.read(&mut more))
            .await
            .unwrap_or_else(|_| panic!("{name}: the target's connection stayed open"));
        assert_eq!(
            end.map_err(|e| e.kind()),
            Err(std::io::ErrorKind::ConnectionReset),
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mismatched_codepoints_carry_nothing() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let target: Target = echo().await.into();
    let (_, url) = hops(&p, "").remove(3);
    let r = route(&pk, &url, Codepoints::DRAFT_08);
    let mut s = r.stream.connect(&target).await.unwrap().stream;
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    // The proxy skips our capsules as unknown; the tunnel never ends cleanly for us.
    let mut got = Vec::new();
    let r = tokio::time::timeout(std::time::Duration::from_secs(2), s.read_to_end(&mut got)).await;
    assert!(got.is_empty());
    assert!(!matches!(r, Ok(Ok(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_401_and_credentials_go_in_authorization() {
    let pk = Pki::new();
    let p = proxy(&pk, true, CP).await;
    let target: Target = echo().await.into();
    for (name, url) in hops(&p, "") {
        let e = route(&pk, &url, CP)
            .stream
            .connect(&target)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(401), "{name}: {e}");
    }
    for (name, url) in hops(&p, "ann:s3cret@") {
        let mut s = route(&pk, &url, CP)
            .stream
            .connect(&target)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"))
            .stream;
        s.write_all(b"ping").await.unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"ping", "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_a_closed_port_and_a_path_off_the_template() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target: Target = closed.local_addr().unwrap().into();
    drop(closed);
    for (name, url) in hops(&p, "") {
        let e = route(&pk, &url, CP)
            .stream
            .connect(&target)
            .await
            .unwrap_err();
        assert_eq!(e.status().map(|s| s.as_u16()), Some(502), "{name}: {e}");
        assert!(
            e.detail().unwrap_or("").contains("connection_refused"),
            "{name}: {e} {:?}",
            e.detail()
        );
    }
    let target: Target = echo().await.into();
    let off = format!(
        "h2://localhost:{}/tcp?h={{target_host}}&p={{target_port}}&connect=tcp",
        p.https.port()
    );
    let e = route(&pk, &off, CP)
        .stream
        .connect(&target)
        .await
        .unwrap_err();
    assert_eq!(e.status().map(|s| s.as_u16()), Some(400), "{e}");
}

/// Reads an HTTP/1.1 head (through the blank line) from `s`.
async fn read_head(s: &mut tokio::net::TcpStream) -> String {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "head cut short");
        head.push(b[0]);
    }
    String::from_utf8(head).unwrap().to_ascii_lowercase()
}

/// Reads exactly `want.len()` bytes and compares them.
async fn expect(s: &mut tokio::net::TcpStream, want: &[u8]) {
    let mut got = vec![0u8; want.len()];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(got, want);
}

#[tokio::test]
async fn the_clients_bytes_on_the_wire_over_http1() {
    let pk = Pki::new();
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let fake = tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let head = read_head(&mut s).await;
        s.write_all(
            b"HTTP/1.1 101 Switching Protocols\r\nconnection: upgrade\r\n\
              upgrade: connect-tcp\r\ncapsule-protocol: ?1\r\n\r\n",
        )
        .await
        .unwrap();
        let mut want = Vec::new();
        encode(CP.data, b"hello", &mut want);
        expect(&mut s, &want).await;
        let mut reply = Vec::new();
        encode(CP.data, b"wor", &mut reply);
        encode(CapsuleType(0x5a5a), b"an unknown capsule", &mut reply);
        encode(CP.final_data, b"ld", &mut reply);
        s.write_all(&reply).await.unwrap();
        // The client's end of its direction: FINAL_DATA, and the connection stays up
        // until the client drops it.
        let mut fin = Vec::new();
        encode(CP.final_data, b"", &mut fin);
        expect(&mut s, &fin).await;
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).await.unwrap();
        assert!(rest.is_empty(), "{rest:?}");
        head
    });
    let url = format!("http://ann:s3cret@127.0.0.1:{port}?connect=tcp");
    let target: Target = "[2001:db8::7]:22".parse().unwrap();
    let mut s = route(&pk, &url, CP)
        .stream
        .connect(&target)
        .await
        .unwrap()
        .stream;
    s.write_all(b"hello").await.unwrap();
    let mut got = [0u8; 5];
    s.read_exact(&mut got).await.unwrap();
    assert_eq!(&got, b"world");
    assert_eq!(
        s.read(&mut [0u8; 8]).await.unwrap(),
        0,
        "FINAL_DATA reads as the end"
    );
    s.shutdown().await.unwrap();
    drop(s);
    let head = fake.await.unwrap();
    assert!(
        head.starts_with("get /.well-known/masque/tcp/2001%3adb8%3a%3a7/22/ http/1.1\r\n"),
        "{head}"
    );
    for line in [
        "connection: upgrade\r\n",
        "upgrade: connect-tcp\r\n",
        "capsule-protocol: ?1\r\n",
        "authorization: basic ",
    ] {
        assert!(head.contains(line), "{line:?} in {head}");
    }
    assert!(!head.contains("proxy-authorization"), "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxys_bytes_on_the_wire_over_http1() {
    let pk = Pki::new();
    let p = proxy(&pk, false, CP).await;
    let target = echo().await;
    let mut s = tokio::net::TcpStream::connect(p.http).await.unwrap();
    let req = format!(
        "GET /.well-known/masque/tcp/127.0.0.1/{}/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\
         Connection: Upgrade\r\nUpgrade: connect-tcp\r\nCapsule-Protocol: ?1\r\n\r\n",
        target.port(),
        p.http.port()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let head = read_head(&mut s).await;
    assert!(head.starts_with("http/1.1 101 "), "{head}");
    assert!(head.contains("upgrade: connect-tcp\r\n"), "{head}");
    assert!(head.contains("capsule-protocol: ?1\r\n"), "{head}");
    let mut out = Vec::new();
    encode(CP.data, b"echo ", &mut out);
    encode(CapsuleType(0x17), b"skipped", &mut out);
    encode(CP.final_data, b"me", &mut out);
    s.write_all(&out).await.unwrap();
    // The target saw "echo me" then a FIN, echoed it and closed: the proxy sends the
    // bytes back as capsules, then FINAL_DATA, then closes the connection.
    let mut back = Vec::new();
    tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut back))
        .await
        .unwrap()
        .unwrap();
    let mut dec = burrow_http_core::connect_tcp::TcpCapsuleDecoder::new(CP);
    dec.read_buffer().extend_from_slice(&back);
    let mut payload = Vec::new();
    while let Some(ev) = dec.poll().unwrap() {
        if let burrow_http_core::connect_tcp::TcpEvent::Data(b) = ev {
            payload.extend_from_slice(&b);
        }
    }
    assert_eq!(payload, b"echo me");
    assert_eq!(dec.finish(), Ok(()), "FINAL_DATA last: {back:?}");
}
