use super::*;

fn p(s: &str) -> Prefix {
    let (a, l) = s.split_once('/').unwrap();
    Prefix::new(a.parse().unwrap(), l.parse().unwrap()).unwrap()
}

fn round_trip(c: &IpCapsule) -> Vec<u8> {
    let mut wire = Vec::new();
    encode(c, &mut wire);
    let mut d = crate::capsule::CapsuleDecoder::default();
    d.push(&wire);
    let cap = d.poll_capsule().unwrap().unwrap();
    assert_eq!(decode(cap.ty, &cap.value).unwrap().as_ref(), Some(c));
    wire
}

#[test]
fn address_assign_bytes_and_round_trip() {
    let c = IpCapsule::AddressAssign(vec![
        Address {
            request_id: 0,
            prefix: p("192.0.2.7/32"),
        },
        Address {
            request_id: 9,
            prefix: p("2001:db8:1::/48"),
        },
    ]);
    let wire = round_trip(&c);
    // Type 1, length 1+1+4+1 + 1+1+16+1 = 26, then the entries.
    assert_eq!(&wire[..2], &[0x01, 26]);
    assert_eq!(&wire[2..9], &[0, 4, 192, 0, 2, 7, 32]);
    assert_eq!(wire[9..11], [9, 6]);
    assert_eq!(wire[wire.len() - 1], 48);
    // An empty ADDRESS_ASSIGN takes every address away.
    round_trip(&IpCapsule::AddressAssign(vec![]));
}

#[test]
fn address_request_needs_entries_with_nonzero_ids() {
    round_trip(&IpCapsule::AddressRequest(vec![Address {
        request_id: 1,
        prefix: Prefix::rejection(false),
    }]));
    assert_eq!(
        decode(ADDRESS_REQUEST, &[]),
        Err(IpCapsuleError::BadRequest)
    );
    assert_eq!(
        decode(ADDRESS_REQUEST, &[0, 4, 0, 0, 0, 0, 32]),
        Err(IpCapsuleError::BadRequest)
    );
}

#[test]
fn malformed_entries_are_refused() {
    for (value, want) in [
        (&[1, 5, 0, 0, 0, 0, 0][..], IpCapsuleError::BadVersion(5)),
        (&[1, 4, 10, 0, 0][..], IpCapsuleError::Truncated),
        (&[1, 4, 10, 0, 0, 1][..], IpCapsuleError::Truncated),
        // /33 for IPv4, and a host bit set below /24.
        (&[1, 4, 10, 0, 0, 0, 33][..], IpCapsuleError::BadPrefix),
        (&[1, 4, 10, 0, 0, 1, 24][..], IpCapsuleError::BadPrefix),
    ] {
        assert_eq!(
            decode(ADDRESS_ASSIGN, value),
            Err(want.clone()),
            "{value:?}"
        );
    }
    assert_eq!(decode(CapsuleType(0x42), b"anything"), Ok(None));
    let mut many = Vec::new();
    for _ in 0..=MAX_ENTRIES {
        many.extend_from_slice(&[0, 4, 10, 0, 0, 1, 32]);
    }
    assert_eq!(decode(ADDRESS_ASSIGN, &many), Err(IpCapsuleError::TooMany));
    assert!(
        decode(ADDRESS_ASSIGN, &many[7..]).is_ok(),
        "exactly the limit"
    );
}

fn range(start: &str, end: &str, protocol: u8) -> Range {
    Range {
        start: start.parse().unwrap(),
        end: end.parse().unwrap(),
        protocol,
    }
}

fn routes(r: &[Range]) -> Result<Option<IpCapsule>, IpCapsuleError> {
    let mut wire = Vec::new();
    encode(&IpCapsule::RouteAdvertisement(r.to_vec()), &mut wire);
    // Skip the type and the (one- or two-byte) length.
    let (_, n1) = varint::peek(&wire).unwrap();
    let (_, n2) = varint::peek(&wire[n1..]).unwrap();
    decode(ROUTE_ADVERTISEMENT, &wire[n1 + n2..])
}

#[test]
fn route_ranges_are_ordered_by_version_protocol_then_address_without_overlap() {
    let good = [
        range("10.0.0.0", "10.255.255.255", 0),
        range("192.0.2.0", "192.0.2.255", 0),
        range("10.0.0.0", "10.0.0.255", 6),
        range("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 17),
    ];
    assert!(routes(&good).is_ok());
    // Adjacent ranges are fine; sharing an end is overlap.
    assert!(routes(&[
        range("10.0.0.0", "10.0.0.9", 0),
        range("10.0.0.10", "10.0.0.20", 0)
    ])
    .is_ok());
    for bad in [
        vec![
            range("10.0.0.0", "10.0.0.9", 0),
            range("10.0.0.9", "10.0.0.20", 0),
        ],
        vec![
            range("192.0.2.0", "192.0.2.255", 0),
            range("10.0.0.0", "10.0.0.1", 0),
        ],
        vec![
            range("10.0.0.0", "10.0.0.1", 6),
            range("10.0.0.5", "10.0.0.6", 0),
        ],
        vec![range("::1", "::1", 0), range("10.0.0.0", "10.0.0.1", 0)],
    ] {
        assert_eq!(routes(&bad), Err(IpCapsuleError::Unordered), "{bad:?}");
    }
    assert_eq!(
        routes(&[range("10.0.0.9", "10.0.0.1", 0)]),
        Err(IpCapsuleError::BadRange)
    );
}

#[test]
fn prefixes_and_ranges_contain_what_they_should() {
    let net = p("10.1.0.0/16");
    assert!(net.contains("10.1.200.3".parse().unwrap()));
    assert!(!net.contains("10.2.0.1".parse().unwrap()));
    assert!(!net.contains("::1".parse().unwrap()));
    assert!(p("0.0.0.0/0").contains("203.0.113.9".parse().unwrap()));
    assert!(p("::/0").contains("2001:db8::1".parse().unwrap()));
    assert!(Prefix::new("::1".parse().unwrap(), 129).is_none());
    let r = range("192.0.2.0", "192.0.2.255", 1);
    assert!(r.covers("192.0.2.77".parse().unwrap(), 1));
    assert!(!r.covers("192.0.2.77".parse().unwrap(), 6));
    assert!(range("192.0.2.0", "192.0.2.255", 0).covers("192.0.2.1".parse().unwrap(), 6));
}

mod stream {
    use super::super::{IpCommand, IpEvent, IpStreamCore};
    use super::*;
    use crate::capsule::{encode_udp_datagram, MAX_DATAGRAM_BACKLOG};
    use crate::driver::{Core, Finish};
    use bytes::Bytes;

    fn feed(core: &mut IpStreamCore, bytes: &[u8]) -> Vec<IpEvent> {
        let now = std::time::Instant::now();
        core.read_buffer().extend_from_slice(bytes);
        core.handle_read(bytes.len(), now);
        std::iter::from_fn(|| core.poll_event()).collect()
    }

    #[test]
    fn packets_and_control_capsules_in_any_split() {
        let assign = IpCapsule::AddressAssign(vec![Address {
            request_id: 0,
            prefix: p("192.0.2.7/32"),
        }]);
        let mut wire = Vec::new();
        encode(&assign, &mut wire);
        encode_udp_datagram(b"\x45packet", &mut wire);
        // Another context ID and an unknown capsule are skipped.
        crate::capsule::encode(CapsuleType::DATAGRAM, b"\x05other", &mut wire);
        crate::capsule::encode(CapsuleType(0x4f), b"unknown", &mut wire);
        encode_udp_datagram(b"\x60second", &mut wire);
        for split in [1, 2, 5, wire.len()] {
            let mut core = IpStreamCore::new(2048);
            let mut got = Vec::new();
            for piece in wire.chunks(split) {
                got.extend(feed(&mut core, piece));
            }
            assert_eq!(
                got,
                vec![
                    IpEvent::Capsule(assign.clone()),
                    IpEvent::Packet(Bytes::from_static(b"\x45packet")),
                    IpEvent::Packet(Bytes::from_static(b"\x60second")),
                ],
                "split {split}"
            );
        }
    }

    #[test]
    fn a_malformed_capsule_or_a_truncated_stream_ends_it_with_an_error() {
        let mut core = IpStreamCore::new(2048);
        // ADDRESS_REQUEST with request ID 0.
        let mut wire = Vec::new();
        crate::capsule::encode(ADDRESS_REQUEST, &[0, 4, 192, 0, 2, 1, 32], &mut wire);
        encode_udp_datagram(b"after", &mut wire);
        let got = feed(&mut core, &wire);
        assert!(
            matches!(&got[..], [IpEvent::Error(e)] if e.contains("request ID 0")),
            "{got:?}"
        );
        assert_eq!(core.finish(), Finish::Close);
        assert!(!core.wants_read());
        // Too long.
        let mut core = IpStreamCore::new(16);
        let mut wire = Vec::new();
        encode_udp_datagram(&[0u8; 64], &mut wire);
        assert!(matches!(&feed(&mut core, &wire)[..], [IpEvent::Error(_)]));
        // The stream ends inside a capsule.
        let mut core = IpStreamCore::new(2048);
        let mut wire = Vec::new();
        encode_udp_datagram(b"abcdef", &mut wire);
        assert!(feed(&mut core, &wire[..4]).is_empty());
        let got = feed(&mut core, &[]);
        assert!(
            matches!(&got[..], [IpEvent::Error(e)] if e.contains("inside a capsule")),
            "{got:?}"
        );
    }

    #[test]
    fn commands_become_capsules_and_waiting_packets_are_bounded() {
        let now = std::time::Instant::now();
        let mut core = IpStreamCore::new(2048);
        core.handle_command(IpCommand::Packet(Bytes::from_static(b"pkt")), now);
        core.handle_command(
            IpCommand::Capsule(IpCapsule::RouteAdvertisement(Vec::new())),
            now,
        );
        core.handle_command(IpCommand::Encoded(Bytes::from_static(b"\x01\x00")), now);
        let out: Vec<Bytes> = std::iter::from_fn(|| core.poll_transmit()).collect();
        assert_eq!(
            out,
            vec![
                Bytes::from_static(b"\x00\x04\x00pkt"),
                Bytes::from_static(b"\x03\x00"),
                Bytes::from_static(b"\x01\x00"),
            ]
        );
        // At MAX_DATAGRAM_BACKLOG waiting the core takes no more commands (back-pressure);
        // packets given anyway are dropped, capsules never are.
        assert!(core.wants_command());
        for _ in 0..MAX_DATAGRAM_BACKLOG {
            core.handle_command(IpCommand::Packet(Bytes::from_static(b"p")), now);
        }
        assert!(!core.wants_command());
        for _ in 0..5 {
            core.handle_command(IpCommand::Packet(Bytes::from_static(b"p")), now);
        }
        core.handle_command(
            IpCommand::Capsule(IpCapsule::RouteAdvertisement(Vec::new())),
            now,
        );
        let out: Vec<Bytes> = std::iter::from_fn(|| core.poll_transmit()).collect();
        assert_eq!(out.len(), MAX_DATAGRAM_BACKLOG + 1);
        assert_eq!(out.last().unwrap(), &Bytes::from_static(b"\x03\x00"));
        // Once written, packets may wait again.
        core.handle_command(IpCommand::Packet(Bytes::from_static(b"p")), now);
        assert!(core.poll_transmit().is_some());
        core.handle_app_closed(now);
        assert_eq!(core.finish(), Finish::Close);
    }
}

mod packet_rules {
    use super::super::packet::*;
    use std::net::IpAddr;

    fn v4(df: bool, ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 0, 0x12, 0x34, 0, 0, ttl, 17, 0, 0];
        p[2..4].copy_from_slice(&((20 + payload.len()) as u16).to_be_bytes());
        if df {
            p[6] = 0x40;
        }
        p.extend_from_slice(&[192, 0, 2, 9, 10, 9, 0, 2]);
        let c = checksum(&p, 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    fn v6(next: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p[4..6].copy_from_slice(&(payload.len() as u16).to_be_bytes());
        p.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        p.extend_from_slice(&"fd00:9::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn packet_too_big_carries_the_mtu_for_each_family() {
        let gw4: IpAddr = "10.9.0.1".parse().unwrap();
        let big = v4(true, 64, &[7u8; 1400]);
        let e = icmp_error(&big, gw4, Unreachable::TooBig { mtu: 1300 }).unwrap();
        // Destination Unreachable, fragmentation needed, next-hop MTU in bytes 6..8.
        assert_eq!(&e[20..22], &[3, 4]);
        assert_eq!(&e[24..28], &[0, 0, 0x05, 0x14]);
        assert_eq!(checksum(&e[20..], 0), 0, "ICMP checksum");
        assert_eq!(&e[28..48], &big[..20], "the offending header is quoted");
        assert_eq!(e.len(), 576, "the quote stops at 576 bytes");

        let gw6: IpAddr = "fd00:9::1".parse().unwrap();
        let big6 = v6(17, &[7u8; 1400]);
        let e = icmp_error(&big6, gw6, Unreachable::TooBig { mtu: 1300 }).unwrap();
        // Packet Too Big: type 2 code 0, the MTU in the whole second word.
        assert_eq!(&e[40..48], &[2, 0, e[42], e[43], 0, 0, 0x05, 0x14]);
        assert_eq!(e.len(), 1280, "the quote stops at the IPv6 minimum MTU");
        let mut pseudo = e[8..40].to_vec();
        pseudo.extend_from_slice(&((e.len() - 40) as u32).to_be_bytes());
        pseudo.extend_from_slice(&[0, 0, 0, ICMPV6]);
        pseudo.extend_from_slice(&e[40..]);
        assert_eq!(checksum(&pseudo, 0), 0, "ICMPv6 checksum");
    }

    #[test]
    fn ipv4_fragments_reassemble_to_the_packet_and_fit_the_mtu() {
        let payload: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
        let p = v4(false, 63, &payload);
        let frags = fragment_v4(&p, 1300).unwrap();
        assert_eq!(frags.len(), 3);
        let mut joined = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert!(f.len() <= 1300, "fragment {i} is {} bytes", f.len());
            assert_eq!(checksum(&f[..20], 0), 0, "fragment {i}'s header checksum");
            assert_eq!(&f[4..6], &[0x12, 0x34], "the identification is kept");
            assert_eq!(f[8], 63, "the TTL is kept");
            let word = u16::from_be_bytes([f[6], f[7]]);
            assert_eq!(
                usize::from(word & 0x1fff) * 8,
                joined.len(),
                "fragment {i}'s offset"
            );
            assert_eq!(
                word & 0x2000 != 0,
                i < 2,
                "more fragments on all but the last"
            );
            assert_eq!(usize::from(u16::from_be_bytes([f[2], f[3]])), f.len());
            joined.extend_from_slice(&f[20..]);
        }
        assert_eq!(joined, payload);
        // Don't Fragment, IPv6, an MTU under 68 or a packet that fits: not split.
        assert!(fragment_v4(&v4(true, 63, &payload), 1300).is_none());
        assert!(dont_fragment(&v4(true, 63, b"x")) && !dont_fragment(&p));
        assert!(fragment_v4(&v6(17, &payload), 1300).is_none());
        assert!(fragment_v4(&p, 60).is_none());
        assert!(fragment_v4(&p, 4000).is_none());
    }

    #[test]
    fn a_fragment_of_a_fragment_keeps_its_offset_and_more_flag() {
        let mut p = v4(false, 63, &[1u8; 2000]);
        // Already the middle fragment at offset 800 with more to come.
        p[6..8].copy_from_slice(&(0x2000u16 | 100).to_be_bytes());
        p[10..12].copy_from_slice(&[0, 0]);
        let c = checksum(&p[..20], 0);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let frags = fragment_v4(&p, 1020).unwrap();
        let words: Vec<u16> = frags
            .iter()
            .map(|f| u16::from_be_bytes([f[6], f[7]]))
            .collect();
        assert_eq!(words, vec![0x2000 | 100, 0x2000 | 225]);
    }

    #[test]
    fn extension_headers_past_the_limit_are_malformed() {
        // Hop-by-hop options headers (next header 0), each 8 bytes, then UDP.
        let chain = |n: usize| {
            let mut ext = Vec::new();
            for i in 0..n {
                let next = if i + 1 == n { 17 } else { 0 };
                ext.extend_from_slice(&[next, 0, 0, 0, 0, 0, 0, 0]);
            }
            ext.extend_from_slice(&[0u8; 8]);
            v6(if n == 0 { 17 } else { 0 }, &ext)
        };
        let ok = parse(&chain(MAX_EXTENSION_HEADERS)).unwrap();
        assert_eq!(
            (ok.protocol, ok.upper),
            (17, 40 + 8 * MAX_EXTENSION_HEADERS)
        );
        assert!(parse(&chain(MAX_EXTENSION_HEADERS + 1)).is_none());
    }
}
