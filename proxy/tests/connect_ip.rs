//! CONNECT-IP (RFC 9484) through burrow-proxy's TUN device, inside a network namespace
//! each test creates (skipped, saying why, where it cannot: not root, no TUN):
//! - a ping (ICMP echo) from the client's assigned address to an address in the
//!   namespace over HTTP/3, HTTP/2 and HTTP/1.1, the reply's TTL decremented by the
//!   proxy; a spoofed source answered with ICMP code 5, a destination the rules refuse
//!   with code 13, the assignment and routes as advertised;
//! - TCP (1 MiB each way, byte-exact, half-close) and UDP through the userspace stack
//!   over one tunnel, on h3 and h2 proxies;
//! - the pool: a second client gets another address, and a freed one comes back;
//! - a packet too big for an HTTP/3 tunnel: the sender's kernel learns the MTU from the
//!   proxy's Packet Too Big (both families) and its fragments arrive byte-exact.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use burrow_http_core::connect_ip::packet::checksum;
use burrow_http_core::connect_ip::Prefix;
use burrow_proxy::route::{ProxyUrl, Route, RouteOptions};
use burrow_proxy::server::{self, IpNetConfig, IpNetwork, Listen, Proxy, ProxyConfig};
use burrow_test_support::netns;
use burrow_test_support::Pki;
use burrow_transport::{ip, IpFlow, IpScope, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The namespace's "server": an address on its loopback device.
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// Its IPv6 address.
const SERVER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1);

struct P {
    https: SocketAddr,
    http: SocketAddr,
    h3: SocketAddr,
    _running: server::Running,
}

/// Inside the namespace: loopback up with SERVER on it, and a proxy serving CONNECT-IP
/// from 10.89.0.0/24 that may reach 10.77.0.0/16 only.
async fn setup(pk: &Pki, tun: &str) -> P {
    setup_with(pk, tun, false).await
}

/// With `v6`, an IPv6 pool (fd00:89::/64) and SERVER6 on loopback too.
async fn setup_with(pk: &Pki, tun: &str, v6: bool) -> P {
    netns::sh(&["ip", "link", "set", "lo", "up"]);
    netns::sh(&["ip", "addr", "add", &format!("{SERVER}/32"), "dev", "lo"]);
    if v6 {
        // No duplicate address detection: the device's address is usable at once.
        for f in ["all", "default"] {
            std::fs::write(format!("/proc/sys/net/ipv6/conf/{f}/accept_dad"), "0").unwrap();
        }
        netns::sh(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{SERVER6}/128"),
            "dev",
            "lo",
        ]);
    }
    let net = IpNetwork::open(&IpNetConfig {
        tun_name: tun.into(),
        pool_v4: Prefix::new("10.89.0.0".parse().unwrap(), 24),
        pool_v6: v6
            .then(|| Prefix::new("fd00:89::".parse().unwrap(), 64))
            .flatten(),
        ..Default::default()
    })
    .unwrap();
    let mut rules = server::Rules::loopback();
    rules.networks.push(("10.77.0.0".parse().unwrap(), 16));
    rules.networks.push(("fd00:77::".parse().unwrap(), 64));
    let cfg = ProxyConfig {
        listeners: ["http", "https", "h3"]
            .iter()
            .map(|s| Listen::parse(&format!("{s}://127.0.0.1:0")).unwrap())
            .collect(),
        identity: Some((pk.chain.clone(), Arc::new(pk.key()))),
        rules,
        ip: Some(net),
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

fn route(pk: &Pki, url: &str) -> Route {
    let opts = RouteOptions {
        proxy_tls: pk.trust(),
        ..Default::default()
    };
    Route::build(&[ProxyUrl::parse(url).unwrap()], &opts)
}

/// A CONNECT-IP tunnel through the proxy at `url` (a `?connect=ip` hop), unscoped.
async fn open_ip(pk: &Pki, url: &str) -> Arc<dyn IpFlow> {
    route(pk, url)
        .ip
        .as_ref()
        .expect("a connect=ip hop")
        .connect_ip(&IpScope::default())
        .await
        .unwrap()
}

fn v4(src: Ipv4Addr, dst: Ipv4Addr, proto: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, proto, 0, 0];
    let len = (20 + payload.len()) as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p, 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn echo_request(id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![8, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = checksum(&m, 0);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// The next ICMP packet on the flow, within 5 s: (TTL, source, ICMP message).
async fn next_icmp(flow: &dyn IpFlow) -> (u8, Ipv4Addr, Vec<u8>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), ip::recv(flow, &mut buf))
            .await
            .expect("no packet within 5 s")
            .unwrap();
        let p = &buf[..n];
        if p[0] >> 4 == 4 && p[9] == 1 {
            let ihl = usize::from(p[0] & 15) * 4;
            let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
            return (p[8], src, p[ihl..].to_vec());
        }
    }
}

fn v6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(payload);
    p
}

/// The ICMPv6 checksum's pseudo-header sum (RFC 8200 §8.1).
fn pseudo6(src: Ipv6Addr, dst: Ipv6Addr, len: usize) -> u32 {
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&(len as u32).to_be_bytes());
    ph.extend_from_slice(&[0, 0, 0, 58]);
    u32::from(!checksum(&ph, 0))
}

fn echo6(src: Ipv6Addr, dst: Ipv6Addr, data: &[u8]) -> Vec<u8> {
    let mut m = vec![128, 0, 0, 0, 0x66, 0x06, 0, 1];
    m.extend_from_slice(data);
    let c = checksum(&m, pseudo6(src, dst, m.len()));
    m[2..4].copy_from_slice(&c.to_be_bytes());
    v6(src, dst, 58, &m)
}

/// The next ICMPv6 packet on the flow, within 5 s: (hop limit, source, message).
async fn next_icmp6(flow: &dyn IpFlow) -> (u8, Ipv6Addr, Vec<u8>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), ip::recv(flow, &mut buf))
            .await
            .expect("no packet within 5 s")
            .unwrap();
        let p = &buf[..n];
        if p[0] >> 4 == 6 && p[6] == 58 {
            let src: [u8; 16] = p[8..24].try_into().unwrap();
            return (p[7], src.into(), p[40..].to_vec());
        }
    }
}

async fn ping_on(pk: &Pki, url: &str) {
    let flow = open_ip(pk, url).await;
    let a = flow.assignment();
    assert_eq!(a.addresses.len(), 1, "{url}: {a:?}");
    let (IpAddr::V4(me), 32) = a.addresses[0] else {
        panic!("{url}: assigned {:?}", a.addresses)
    };
    assert!(
        Prefix::new("10.89.0.0".parse().unwrap(), 24)
            .unwrap()
            .contains(me.into()),
        "{url}: {me}"
    );
    assert_ne!(
        me,
        Ipv4Addr::new(10, 89, 0, 1),
        "the gateway is not handed out"
    );
    // Everything IPv4, as the pool has only IPv4.
    assert_eq!(a.routes.len(), 1, "{url}: {:?}", a.routes);
    assert_eq!(a.routes[0].start, IpAddr::V4(0.into()));

    // The echo, and its reply from the kernel in the namespace: the proxy took one off
    // the reply's TTL on its way into the tunnel (RFC 9484 §4.3).
    let req = echo_request(0x4242, 7, b"burrow ping");
    ip::send(&*flow, &v4(me, SERVER, 1, &req)).await.unwrap();
    let (ttl, src, reply) = next_icmp(&*flow).await;
    assert_eq!(src, SERVER, "{url}");
    assert_eq!(reply[0], 0, "{url}: an echo reply");
    assert_eq!(
        &reply[4..8],
        &[0x42, 0x42, 0, 7],
        "{url}: its id and sequence"
    );
    assert_eq!(&reply[8..], b"burrow ping", "{url}");
    assert_eq!(checksum(&reply, 0), 0, "{url}: the ICMP checksum");
    assert_eq!(ttl, 63, "{url}: the kernel's 64, less the proxy's hop");

    // A source that is not ours: Destination Unreachable, code 5 (source route failed,
    // RFC 9484 §4.7.1), from the proxy's address.
    let spoofed = Ipv4Addr::new(10, 89, 0, 200);
    ip::send(&*flow, &v4(spoofed, SERVER, 1, &req))
        .await
        .unwrap();
    let (_, from, err) = next_icmp(&*flow).await;
    assert_eq!((err[0], err[1]), (3, 5), "{url}: {err:?}");
    assert_eq!(from, Ipv4Addr::new(10, 89, 0, 1), "{url}");
    // A destination the rules refuse (not in --allow-net): code 13, and nothing leaves.
    let elsewhere = Ipv4Addr::new(10, 99, 0, 1);
    ip::send(&*flow, &v4(me, elsewhere, 1, &req)).await.unwrap();
    let (_, _, err) = next_icmp(&*flow).await;
    assert_eq!((err[0], err[1]), (3, 13), "{url}: {err:?}");
    // Nor may a client reach the proxy's own address on the device.
    let gw = Ipv4Addr::new(10, 89, 0, 1);
    ip::send(&*flow, &v4(me, gw, 1, &req)).await.unwrap();
    let (_, _, err) = next_icmp(&*flow).await;
    assert_eq!((err[0], err[1]), (3, 13), "{url}: the gateway: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping6_through_connect_ip_with_both_families() {
    if !netns::enter("ping6_through_connect_ip_with_both_families") {
        return;
    }
    let pk = Pki::new();
    let p = setup_with(&pk, "bt3", true).await;
    let flow = open_ip(&pk, &format!("h3://localhost:{}?connect=ip", p.h3.port())).await;
    let a = flow.assignment();
    // One address per family, and a route for each.
    assert_eq!(a.addresses.len(), 2, "{a:?}");
    let Some(&(IpAddr::V6(me), 128)) = a.addresses.iter().find(|(x, _)| x.is_ipv6()) else {
        panic!("{a:?}")
    };
    assert!(Prefix::new("fd00:89::".parse().unwrap(), 64)
        .unwrap()
        .contains(me.into()));
    assert_eq!(a.routes.len(), 2, "{:?}", a.routes);
    ip::send(&*flow, &echo6(me, SERVER6, b"burrow ping6"))
        .await
        .unwrap();
    let (hops, src, reply) = next_icmp6(&*flow).await;
    assert_eq!(src, SERVER6);
    assert_eq!(reply[0], 129, "an echo reply: {reply:?}");
    assert_eq!(&reply[4..8], &[0x66, 0x06, 0, 1]);
    assert_eq!(&reply[8..], b"burrow ping6");
    assert_eq!(
        checksum(&reply, pseudo6(src, me, reply.len())),
        0,
        "the ICMPv6 checksum"
    );
    assert_eq!(hops, 63, "the kernel's 64, less the proxy's hop");
    // A spoofed IPv6 source: Destination Unreachable code 5 from the proxy's address.
    let spoofed: Ipv6Addr = "fd00:89::dead".parse().unwrap();
    ip::send(&*flow, &echo6(spoofed, SERVER6, b"x"))
        .await
        .unwrap();
    let (_, from, err) = next_icmp6(&*flow).await;
    assert_eq!((err[0], err[1]), (1, 5), "{err:?}");
    assert_eq!(from, "fd00:89::1".parse::<Ipv6Addr>().unwrap());
    // And IPv4 still works on the same tunnel.
    let Some(&(IpAddr::V4(me4), _)) = a.addresses.iter().find(|(x, _)| x.is_ipv4()) else {
        panic!("{a:?}")
    };
    let req = echo_request(1, 1, b"v4 too");
    ip::send(&*flow, &v4(me4, SERVER, 1, &req)).await.unwrap();
    let (_, src4, reply4) = next_icmp(&*flow).await;
    assert_eq!((src4, reply4[0]), (SERVER, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_through_connect_ip_over_every_version() {
    if !netns::enter("ping_through_connect_ip_over_every_version") {
        return;
    }
    let pk = Pki::new();
    let p = setup(&pk, "bt0").await;
    for url in [
        format!("h3://localhost:{}?connect=ip", p.h3.port()),
        format!("h2://localhost:{}?connect=ip", p.https.port()),
        format!("http://127.0.0.1:{}?connect=ip", p.http.port()),
    ] {
        ping_on(&pk, &url).await;
    }
}

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_through_the_userspace_stack_byte_exact() {
    if !netns::enter("tcp_and_udp_through_the_userspace_stack_byte_exact") {
        return;
    }
    let pk = Pki::new();
    let p = setup(&pk, "bt1").await;
    // An echo server in the namespace, on SERVER (reached only through the tunnel).
    let l = tokio::net::TcpListener::bind((SERVER, 0)).await.unwrap();
    let tcp_at = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
                let _ = w.shutdown().await;
            });
        }
    });
    let u = tokio::net::UdpSocket::bind((SERVER, 0)).await.unwrap();
    let udp_at = u.local_addr().unwrap();
    tokio::spawn(async move {
        let mut b = vec![0u8; 65_536];
        while let Ok((n, from)) = u.recv_from(&mut b).await {
            let _ = u.send_to(&b[..n], from).await;
        }
    });
    let data = pattern(1 << 20);
    for url in [
        format!("h3://localhost:{}?connect=ip", p.h3.port()),
        format!("h2://localhost:{}?connect=ip", p.https.port()),
    ] {
        // The echo server by a name the route's resolver knows, its IPv6 address first:
        // the tunnel assigned only IPv4, so the IPv4 one is used.
        let mut names =
            burrow_transport::StaticResolver::new(Arc::new(burrow_transport::SystemResolver));
        names.insert("echo.test", None, vec![SERVER6.into(), SERVER.into()]);
        let opts = RouteOptions {
            proxy_tls: pk.trust(),
            resolver: Some(Arc::new(names)),
            ..Default::default()
        };
        let r = Route::build(&[ProxyUrl::parse(&url).unwrap()], &opts);
        let echo = Target::parse_with_default(&format!("echo.test:{}", tcp_at.port()), 0).unwrap();
        let c = r
            .stream
            .connect(&echo)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(c.info.peer_addr, Some(tcp_at), "{url}");
        // A closed port: refused, the error put down to the CONNECT-IP hop.
        let closed = std::net::TcpListener::bind((SERVER, 0)).unwrap();
        let closed_at = closed.local_addr().unwrap();
        drop(closed);
        let e = r
            .stream
            .connect(&Target::from(closed_at))
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("refused"), "{url}: {e}");
        assert!(e.hop().is_some(), "{url}: no hop named in {e}");
        assert!(
            c.info.layers[0].starts_with("tcp over CONNECT-IP@"),
            "{url}: {:?}",
            c.info.layers
        );
        let (mut rd, mut wr) = tokio::io::split(c.stream);
        let up = data.clone();
        let writer = tokio::spawn(async move {
            wr.write_all(&up).await.unwrap();
            wr.shutdown().await.unwrap();
            wr
        });
        let mut got = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), rd.read_to_end(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{url}: 1 MiB not echoed within 60 s"))
            .unwrap();
        let _ = writer.await.unwrap();
        assert_eq!(got.len(), data.len(), "{url}");
        assert!(got == data, "{url}: the bytes differ");

        // UDP on the same tunnel.
        let f = r
            .datagram
            .connect_datagram(&Target::from(udp_at))
            .await
            .unwrap();
        for size in [1, 512, 1200] {
            let d = pattern(size);
            let mut back = vec![0u8; 2048];
            let mut echoed = None;
            // UDP may be lost: a few tries.
            for _ in 0..5 {
                burrow_transport::datagram::send(&*f, &d).await.unwrap();
                if let Ok(Ok(n)) = tokio::time::timeout(
                    Duration::from_secs(1),
                    burrow_transport::datagram::recv(&*f, &mut back),
                )
                .await
                {
                    echoed = Some(n);
                    break;
                }
            }
            let n = echoed.unwrap_or_else(|| panic!("{url}: no UDP echo of {size}"));
            assert_eq!(&back[..n], &d[..], "{url}: UDP {size}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_gets_its_own_address_and_a_freed_one_returns() {
    if !netns::enter("each_client_gets_its_own_address_and_a_freed_one_returns") {
        return;
    }
    let pk = Pki::new();
    let p = setup(&pk, "bt2").await;
    let url = format!("h3://localhost:{}?connect=ip", p.h3.port());
    let r = route(&pk, &url);
    let c = r.ip.clone().unwrap();
    let a = c.connect_ip(&IpScope::default()).await.unwrap();
    let b = c.connect_ip(&IpScope::default()).await.unwrap();
    let (x, y) = (a.assignment().addresses[0], b.assignment().addresses[0]);
    assert_ne!(x, y);
    // A scope narrows the routes to it (RFC 9484 §4.6).
    let scoped = c
        .connect_ip(&IpScope {
            target: Some((SERVER.into(), 32)),
            protocol: Some(17),
        })
        .await
        .unwrap();
    let routes = scoped.assignment().routes;
    assert_eq!(routes.len(), 1);
    assert_eq!(
        (routes[0].start, routes[0].end, routes[0].protocol),
        (SERVER.into(), SERVER.into(), 17)
    );
    drop(a);
    // The freed address is handed out again once the proxy saw the tunnel end.
    let mut again = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let d = c.connect_ip(&IpScope::default()).await.unwrap();
        if d.assignment().addresses[0] == x {
            again = true;
            break;
        }
    }
    assert!(again, "{x:?} never came back");
}

/// The route cache's MTU for `to`, as `ip route get` reports it once the kernel learnt one.
fn learnt_mtu(to: IpAddr) -> Option<usize> {
    let out = std::process::Command::new("ip")
        .args(["route", "get", &to.to_string()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut words = text.split_whitespace();
    while let Some(w) = words.next() {
        if w == "mtu" {
            return words.next().and_then(|m| m.parse().ok());
        }
    }
    None
}

/// A UDP datagram from the namespace's server that the device takes but the tunnel
/// cannot: the kernel sends it with Don't Fragment (path MTU discovery; IPv6 routers never
/// fragment), the proxy answers with Fragmentation Needed / Packet Too Big, and the
/// kernel's route to the client learns the MTU. Sent again, the datagram leaves the kernel
/// in fragments that fit and reach the client: nothing is lost for good.
async fn too_big_on(flow: &dyn IpFlow, from: IpAddr, me: IpAddr) {
    let header = if me.is_ipv6() { 40 } else { 20 };
    // The tunnel is an HTTP/3 datagram: it carries less than the device's 1500 bytes
    // (each way its own sender's room; the proxy's is not the client's).
    let room = flow.mtu();
    assert!((1200..1450).contains(&room), "{room}");
    assert_eq!(learnt_mtu(me), None, "nothing learnt yet");
    let sock = std::net::UdpSocket::bind((from, 0)).unwrap();
    let big = pattern(1450);
    sock.send_to(&big, (me, 9)).unwrap();
    let mut learnt = None;
    for _ in 0..50 {
        learnt = learnt_mtu(me);
        if learnt.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let learnt = learnt.unwrap_or_else(|| panic!("the kernel learnt no MTU for {me}"));
    let whole = 1450 + 8 + header;
    assert!(
        (1200..whole).contains(&learnt),
        "learnt {learnt} for {whole} bytes"
    );
    sock.send_to(&big, (me, 9)).unwrap();
    let mut buf = vec![0u8; 65_536];
    let mut payload = Vec::new();
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), ip::recv(flow, &mut buf))
            .await
            .expect("the fragments within 5 s")
            .unwrap();
        let f = &buf[..n];
        assert!(n <= learnt, "a {n}-byte fragment, {learnt} learnt");
        let more = if me.is_ipv6() {
            // The fragment header follows the fixed header (next header 44).
            if f[6] != 44 {
                continue;
            }
            payload.extend_from_slice(&f[48..]);
            f[43] & 1 != 0
        } else {
            if f[9] != 17 {
                continue;
            }
            payload.extend_from_slice(&f[20..]);
            u16::from_be_bytes([f[6], f[7]]) & 0x2000 != 0
        };
        if !more {
            break;
        }
    }
    // The UDP header, then the datagram, byte-exact.
    assert_eq!(&payload[8..], &big[..], "{me}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_packet_too_big_for_the_tunnel_teaches_its_sender_the_mtu() {
    if !netns::enter("a_packet_too_big_for_the_tunnel_teaches_its_sender_the_mtu") {
        return;
    }
    let pk = Pki::new();
    let p = setup_with(&pk, "bt4", true).await;
    let flow = open_ip(&pk, &format!("h3://localhost:{}?connect=ip", p.h3.port())).await;
    let a = flow.assignment().addresses;
    let find = |v6: bool| a.iter().find(|(x, _)| x.is_ipv6() == v6).unwrap().0;
    too_big_on(&*flow, SERVER.into(), find(false)).await;
    too_big_on(&*flow, SERVER6.into(), find(true)).await;
}
