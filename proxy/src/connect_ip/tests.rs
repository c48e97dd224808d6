use super::*;
use burrow_http_core::connect_ip::packet::{checksum, parse};
use burrow_http_core::connect_ip::{ADDRESS_ASSIGN, ADDRESS_REQUEST, ROUTE_ADVERTISEMENT};

fn pfx(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

/// An IPv4 packet with a valid header checksum.
fn v4(src: &str, dst: &str, proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0, 0, ttl, proto, 0, 0];
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&src.parse::<std::net::Ipv4Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<std::net::Ipv4Addr>().unwrap().octets());
    let c = checksum(&p, 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(payload);
    p
}

fn v6(src: &str, dst: &str, next: u8, hops: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0, 0, 0, next, hops];
    p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
    p.extend_from_slice(&src.parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(&dst.parse::<std::net::Ipv6Addr>().unwrap().octets());
    p.extend_from_slice(payload);
    p
}

fn drain(s: &mut IpSession) -> Vec<Output> {
    std::iter::from_fn(|| s.poll_output()).collect()
}

fn decoded(o: &Output) -> IpCapsule {
    let Output::Capsule(b) = o else {
        panic!("not a capsule: {o:?}")
    };
    let mut d = burrow_http_core::capsule::CapsuleDecoder::default();
    d.push(b);
    let c = d.poll_capsule().unwrap().unwrap();
    ip::decode(c.ty, &c.value).unwrap().unwrap()
}

fn session() -> IpSession {
    let mut pool = AddressPool::new(Some(pfx("10.9.0.0/24")), Some(pfx("fd00:9::/64")));
    let assigned = vec![
        pool.take(false, None).unwrap(),
        pool.take(true, None).unwrap(),
    ];
    IpSession::new(
        assigned,
        vec![
            Range {
                start: "192.0.2.0".parse().unwrap(),
                end: "192.0.2.255".parse().unwrap(),
                protocol: 0,
            },
            Range {
                start: "198.51.100.0".parse().unwrap(),
                end: "198.51.100.255".parse().unwrap(),
                protocol: 17,
            },
            Range {
                start: "2001:db8::".parse().unwrap(),
                end: "2001:db8::ffff".parse().unwrap(),
                protocol: 0,
            },
        ],
        pool.gateway(false),
        pool.gateway(true),
    )
}

#[test]
fn the_pool_hands_out_distinct_hosts_and_takes_them_back() {
    let mut pool = AddressPool::new(Some(pfx("10.9.0.0/30")), None);
    assert_eq!(pool.gateway(false), Some("10.9.0.1".parse().unwrap()));
    // /30: .0 network, .1 the gateway, .3 broadcast: one client address.
    let a = pool.take(false, None).unwrap();
    assert_eq!(a, pfx("10.9.0.2/32"));
    assert_eq!(pool.take(false, None), None, "exhausted");
    assert_eq!(pool.take(true, None), None, "no IPv6 pool");
    pool.give_back(a.addr);
    pool.give_back("10.9.0.1".parse().unwrap());
    assert_eq!(pool.take(false, Some("10.9.0.1".parse().unwrap())), Some(a));
    let mut pool = AddressPool::new(None, Some(pfx("fd00::/64")));
    let want = "fd00::99".parse().unwrap();
    assert_eq!(pool.take(true, Some(want)), Some(pfx("fd00::99/128")));
    assert_eq!(
        pool.take(true, Some(want)),
        Some(pfx("fd00::2/128")),
        "taken: another"
    );
    // A pool too large to walk is walked only MAX_POOL_SCAN far.
    let mut pool = AddressPool::new(Some(pfx("10.0.0.0/8")), None);
    assert!(pool.take(false, None).is_some());
}

#[test]
fn it_starts_with_the_assignment_and_routes_and_answers_requests() {
    let mut s = session();
    let out = drain(&mut s);
    assert_eq!(out.len(), 2);
    let IpCapsule::AddressAssign(a) = decoded(&out[0]) else {
        panic!()
    };
    assert_eq!(
        a.iter()
            .map(|a| (a.request_id, a.prefix))
            .collect::<Vec<_>>(),
        vec![(0, pfx("10.9.0.2/32")), (0, pfx("fd00:9::2/128"))]
    );
    let IpCapsule::RouteAdvertisement(r) = decoded(&out[1]) else {
        panic!()
    };
    assert_eq!(r.len(), 3);
    // A request for any IPv4 address (ID 7) is answered with the client's.
    let mut req = Vec::new();
    ip::encode(
        &IpCapsule::AddressRequest(vec![Address {
            request_id: 7,
            prefix: Prefix::rejection(false),
        }]),
        &mut req,
    );
    s.handle_capsule(ADDRESS_REQUEST, &req[2..]).unwrap();
    let IpCapsule::AddressAssign(a) = decoded(&drain(&mut s)[0]) else {
        panic!()
    };
    assert!(a
        .iter()
        .any(|a| a.request_id == 7 && a.prefix == pfx("10.9.0.2/32")));
    // A broken capsule aborts; unknown ones and the client's own routes are skipped.
    assert!(s.handle_capsule(ADDRESS_REQUEST, &[]).is_err());
    assert!(s.handle_capsule(CapsuleType(0x77), b"x").is_ok());
    assert!(s.handle_capsule(ROUTE_ADVERTISEMENT, &[]).is_ok());
    assert!(s.handle_capsule(ADDRESS_ASSIGN, &[]).is_ok());
    assert!(drain(&mut s).is_empty());
}

#[test]
fn client_packets_need_their_own_source_and_a_route() {
    let mut s = session();
    drain(&mut s);
    let ok = v4("10.9.0.2", "192.0.2.9", 6, 64, b"tcp");
    s.handle_client_packet(Instant::now(), ok.clone());
    assert_eq!(drain(&mut s), vec![Output::ToNetwork(ok)]);
    // UDP is routed to 198.51.100.0/24, TCP is not, ICMP is (any route).
    let udp = v4("10.9.0.2", "198.51.100.1", 17, 64, b"udp");
    s.handle_client_packet(Instant::now(), udp.clone());
    assert_eq!(drain(&mut s), vec![Output::ToNetwork(udp)]);
    let echo = v4("10.9.0.2", "198.51.100.1", 1, 64, &[8, 0, 0, 0, 0, 0, 0, 0]);
    s.handle_client_packet(Instant::now(), echo.clone());
    assert_eq!(drain(&mut s), vec![Output::ToNetwork(echo)]);
    let tcp = v4("10.9.0.2", "198.51.100.1", 6, 64, b"tcp");
    s.handle_client_packet(Instant::now(), tcp.clone());
    let out = drain(&mut s);
    let Output::ToClient(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    let h = parse(icmp).unwrap();
    assert_eq!(
        (h.src, h.dst, h.protocol),
        ("10.9.0.1".parse().unwrap(), "10.9.0.2".parse().unwrap(), 1)
    );
    // Destination Unreachable, administratively prohibited; it quotes the packet.
    assert_eq!(&icmp[20..22], &[3, 13]);
    assert_eq!(&icmp[28..], &tcp[..]);
    assert_eq!(checksum(&icmp[..20], 0), 0, "IPv4 header checksum");
    assert_eq!(checksum(&icmp[20..], 0), 0, "ICMP checksum");
    assert_eq!(out[1], Output::Dropped("destination not allowed"));
    // A spoofed source: Destination Unreachable code 5.
    let spoofed = v4("10.9.0.77", "192.0.2.9", 6, 64, b"x");
    s.handle_client_packet(Instant::now(), spoofed);
    let out = drain(&mut s);
    let Output::ToClient(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(&icmp[20..22], &[3, 5]);
    assert_eq!(out[1], Output::Dropped("source address not assigned"));
    // IPv6: an ICMPv6 error about an ICMPv6 error is never sent.
    let err6 = v6(
        "fd00:9::2",
        "2001:db9::1",
        58,
        64,
        &[1, 0, 0, 0, 0, 0, 0, 0],
    );
    s.handle_client_packet(Instant::now(), err6);
    assert_eq!(
        drain(&mut s),
        vec![Output::Dropped("destination not allowed")]
    );
    s.handle_client_packet(Instant::now(), b"\x45garbage".to_vec());
    assert_eq!(drain(&mut s), vec![Output::Dropped("not an IP packet")]);
}

#[test]
fn network_packets_go_to_their_client_one_hop_older() {
    let mut s = session();
    drain(&mut s);
    let p = v4("192.0.2.9", "10.9.0.2", 17, 64, b"reply");
    s.handle_network_packet(Instant::now(), p);
    let out = drain(&mut s);
    let Output::ToClient(got) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(got[8], 63);
    assert_eq!(checksum(&got[..20], 0), 0, "checksum updated with the TTL");
    let p6 = v6("2001:db8::1", "fd00:9::2", 17, 1, b"last hop");
    s.handle_network_packet(Instant::now(), p6.clone());
    let out = drain(&mut s);
    let Output::ToNetwork(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    // Time Exceeded back to the sender, from the gateway, with a valid checksum.
    let h = parse(icmp).unwrap();
    assert_eq!(
        (h.src, h.dst, h.protocol),
        (
            "fd00:9::1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
            58
        )
    );
    assert_eq!(&icmp[40..42], &[3, 0]);
    assert_eq!(&icmp[48..], &p6[..]);
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&icmp[8..40]);
    pseudo.extend_from_slice(&((icmp.len() - 40) as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    pseudo.extend_from_slice(&icmp[40..]);
    assert_eq!(checksum(&pseudo, 0), 0, "ICMPv6 checksum");
    s.handle_network_packet(Instant::now(), v4("192.0.2.9", "10.9.0.3", 17, 64, b"x"));
    assert_eq!(drain(&mut s), vec![Output::Dropped("not for this client")]);
}

#[test]
fn output_is_bounded() {
    let mut s = session();
    drain(&mut s);
    for _ in 0..MAX_OUTPUT + 10 {
        s.handle_network_packet(Instant::now(), v4("192.0.2.9", "10.9.0.2", 17, 64, b"x"));
    }
    assert_eq!(drain(&mut s).len(), MAX_OUTPUT);
}

#[test]
fn a_filter_refuses_with_administratively_prohibited() {
    let all = Range {
        start: "0.0.0.0".parse().unwrap(),
        end: "255.255.255.255".parse().unwrap(),
        protocol: 0,
    };
    let gw: IpAddr = "10.0.0.1".parse().unwrap();
    // The filter sees the destination port of TCP and UDP.
    let only_https: Filter =
        std::sync::Arc::new(|_dst, proto, port| proto == 6 && port == Some(443));
    let mut s =
        IpSession::new(vec![pfx("10.0.0.2/32")], vec![all], Some(gw), None).with_filter(only_https);
    drain(&mut s);
    let ports = |to: u16| [&12_345u16.to_be_bytes()[..], &to.to_be_bytes()[..]].concat();
    s.handle_client_packet(
        Instant::now(),
        v4("10.0.0.2", "192.0.2.9", 6, 64, &ports(443)),
    );
    assert!(matches!(&drain(&mut s)[..], [Output::ToNetwork(_)]));
    for (proto, to) in [(6, 80), (17, 443)] {
        s.handle_client_packet(
            Instant::now(),
            v4("10.0.0.2", "192.0.2.9", proto, 64, &ports(to)),
        );
        let out = drain(&mut s);
        let Output::ToClient(icmp) = &out[0] else {
            panic!("{out:?}")
        };
        let h = parse(icmp).unwrap();
        assert_eq!((h.src, icmp[h.upper], icmp[h.upper + 1]), (gw, 3, 13));
        assert_eq!(out[1], Output::Dropped("destination not allowed"));
    }
}

#[test]
fn a_scope_narrows_the_routes() {
    let r = |a: &str, b: &str, p: u8| Range {
        start: a.parse().unwrap(),
        end: b.parse().unwrap(),
        protocol: p,
    };
    let routes = [
        r("0.0.0.0", "255.255.255.255", 0),
        r("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 0),
    ];
    let scope = |t: Option<(&str, u8)>, p: Option<u8>| burrow_transport::IpScope {
        target: t.map(|(a, l)| (a.parse().unwrap(), l)),
        protocol: p,
    };
    assert_eq!(scoped(&routes, &scope(None, None)), routes.to_vec());
    assert_eq!(
        scoped(&routes, &scope(Some(("192.0.2.0", 24)), Some(6))),
        vec![r("192.0.2.0", "192.0.2.255", 6)]
    );
    assert_eq!(
        scoped(&routes, &scope(Some(("2001:db8::", 32)), None)),
        vec![r("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", 0)]
    );
    // Outside every route, or another protocol than the route's: nothing.
    let narrow = [r("10.0.0.0", "10.0.0.255", 17)];
    assert!(scoped(&narrow, &scope(Some(("192.0.2.0", 24)), None)).is_empty());
    assert!(scoped(&narrow, &scope(None, Some(6))).is_empty());
    assert_eq!(scoped(&narrow, &scope(None, Some(17))), narrow.to_vec());
    assert_eq!(
        prefix_bounds("10.1.2.3".parse().unwrap(), 0).1,
        IpAddr::from([255u8; 4])
    );
}

/// ICMP errors are paced: a burst, then ICMP_ERRORS_PER_SEC; the packets past that are
/// still dropped (and counted), without an error each.
#[test]
fn icmp_errors_are_paced() {
    let all = Range {
        start: "0.0.0.0".parse().unwrap(),
        end: "255.255.255.255".parse().unwrap(),
        protocol: 0,
    };
    let gw: IpAddr = "10.0.0.1".parse().unwrap();
    let mut s = IpSession::new(vec![pfx("10.0.0.2/32")], vec![all], Some(gw), None);
    drain(&mut s);
    let spoofed = || v4("10.0.0.99", "192.0.2.9", 17, 64, b"x");
    let errors = |s: &mut IpSession| {
        drain(s)
            .iter()
            .filter(|o| matches!(o, Output::ToClient(_)))
            .count() as u32
    };
    let t = Instant::now();
    for _ in 0..3 * ICMP_ERROR_BURST {
        s.handle_client_packet(t, spoofed());
    }
    assert_eq!(errors(&mut s), ICMP_ERROR_BURST);
    // Half a second earns half a second's worth.
    let t1 = t + Duration::from_millis(500);
    for _ in 0..ICMP_ERROR_BURST {
        s.handle_client_packet(t1, spoofed());
    }
    assert_eq!(errors(&mut s), ICMP_ERRORS_PER_SEC / 2);
    // A long quiet refills the burst, no more.
    let t2 = t1 + Duration::from_secs(60);
    for _ in 0..3 * ICMP_ERROR_BURST {
        s.handle_client_packet(t2, spoofed());
    }
    let out = drain(&mut s);
    let icmp = out
        .iter()
        .filter(|o| matches!(o, Output::ToClient(_)))
        .count() as u32;
    assert_eq!(icmp, ICMP_ERROR_BURST);
    let dropped = out
        .iter()
        .filter(|o| **o == Output::Dropped("source address not assigned"))
        .count() as u32;
    assert_eq!(dropped, 3 * ICMP_ERROR_BURST, "every packet still dropped");
}

#[test]
fn network_packets_too_big_for_the_tunnel_get_packet_too_big_or_are_fragmented() {
    let mut s = session();
    drain(&mut s);
    s.set_client_mtu(1300);
    // A packet that fits goes through whole.
    s.handle_network_packet(
        Instant::now(),
        v4("192.0.2.9", "10.9.0.2", 17, 64, &[1; 1280]),
    );
    assert!(matches!(&drain(&mut s)[..], [Output::ToClient(p)] if p.len() == 1300));

    // IPv4 with Don't Fragment: Fragmentation Needed to the sender, with the MTU.
    let mut df = v4("192.0.2.9", "10.9.0.2", 17, 64, &[2; 1400]);
    df[6] = 0x40;
    df[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&df[..20], 0);
    df[10..12].copy_from_slice(&c.to_be_bytes());
    s.handle_network_packet(Instant::now(), df.clone());
    let out = drain(&mut s);
    let Output::ToNetwork(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    let h = parse(icmp).unwrap();
    assert_eq!(
        (h.src, h.dst),
        ("10.9.0.1".parse().unwrap(), "192.0.2.9".parse().unwrap())
    );
    assert_eq!(&icmp[20..22], &[3, 4]);
    assert_eq!(u16::from_be_bytes([icmp[26], icmp[27]]), 1300);
    assert_eq!(
        &icmp[28..48],
        &df[..20],
        "the packet as it arrived is quoted"
    );
    assert_eq!(out[1], Output::Dropped("too big for the tunnel"));

    // IPv6: Packet Too Big, never fragmented by a router.
    let big6 = v6("2001:db8::1", "fd00:9::2", 17, 64, &[3; 1400]);
    s.handle_network_packet(Instant::now(), big6);
    let out = drain(&mut s);
    let Output::ToNetwork(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(&icmp[40..42], &[2, 0]);
    assert_eq!(
        u32::from_be_bytes([icmp[44], icmp[45], icmp[46], icmp[47]]),
        1300
    );

    // IPv4 without Don't Fragment: fragments that fit, one hop older.
    s.handle_network_packet(
        Instant::now(),
        v4("192.0.2.9", "10.9.0.2", 17, 64, &[4; 2000]),
    );
    let out = drain(&mut s);
    assert_eq!(out.len(), 2, "{out:?}");
    for o in &out {
        let Output::ToClient(f) = o else {
            panic!("{o:?}")
        };
        assert!(f.len() <= 1300);
        assert_eq!(f[8], 63);
        assert_eq!(checksum(&f[..20], 0), 0);
    }

    // The last hop: Time Exceeded wins over the size.
    s.handle_network_packet(
        Instant::now(),
        v4("192.0.2.9", "10.9.0.2", 17, 1, &[5; 2000]),
    );
    let out = drain(&mut s);
    let Output::ToNetwork(icmp) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(&icmp[20..22], &[11, 0]);
}
