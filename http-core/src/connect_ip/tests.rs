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
