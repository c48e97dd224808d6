//! Fuzz entry points for every parser of this crate that faces the network or a user,
//! shared by `proxy/fuzz` and the property tests: the SOCKS server and client cores, proxy
//! URLs, CONNECT-UDP URI templates, the capsule codec, and the proxy server's request path
//! (HTTP/1.1 request heads through the rules and the forwarding normalisation).

use crate::socks::server::{Event, SocksError, SocksServer};
use crate::socks::wire::Reply;
use burrow_http_core::credentials::Credentials;

/// Read cuts and the rest: byte 0 is the number of cuts (mod 8), then 2 bytes per cut.
fn cuts_and_rest(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let [k, rest @ ..] = data else {
        return (Vec::new(), data);
    };
    let k = (*k as usize % 8).min(rest.len() / 2);
    let (cut_bytes, wire) = rest.split_at(k * 2);
    let cuts = cut_bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        .collect();
    (cuts, wire)
}

/// `wire` as pieces ending at each cut (sorted, modulo its length), then the rest.
fn pieces<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    let mut pos = 0;
    let mut out = Vec::new();
    for e in ends {
        out.push(&wire[pos..e]);
        pos = e;
    }
    out
}

fn run(
    auth: bool,
    wire: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Option<Event>, Option<SocksError>, Vec<u8>) {
    let creds = auth.then(|| Credentials {
        user: "u".into(),
        pass: "p".into(),
    });
    let mut s = SocksServer::new(creds);
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    let (mut tx, mut pos, mut event, mut error) = (Vec::new(), 0, None, None);
    for end in ends {
        if end < pos || event.is_some() || error.is_some() {
            continue;
        }
        s.receive(&wire[pos..end]);
        pos = end;
        match s.poll_event() {
            Ok(Some(e)) => {
                event = Some(e);
                s.reply(Reply::SUCCEEDED, None);
            }
            Ok(None) => {}
            Err(e) => error = Some(e),
        }
        while let Some(b) = s.poll_transmit() {
            tx.extend_from_slice(&b);
        }
    }
    // Everything after the request belongs to the tunnel.
    let mut rest = s.take_leftover().to_vec();
    rest.extend_from_slice(&wire[pos..]);
    (tx, event, error, rest)
}

/// Feeds client bytes to the SOCKS server core whole and cut at arbitrary points; the
/// replies, the request, the error and the leftover bytes must agree. Byte 0 selects
/// authentication, byte 1 the number of cuts, then 2 bytes per cut, then the stream.
pub fn socks_server(data: &[u8]) {
    let [sel, k, rest @ ..] = data else { return };
    let k = (*k as usize % 8).min(rest.len() / 2);
    let (cut_bytes, wire) = rest.split_at(k * 2);
    let cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        .collect();
    let whole = run(sel % 2 == 1, wire, &[]);
    let split = run(sel % 2 == 1, wire, &cuts);
    assert_eq!(whole, split, "read splits changed the outcome");
}

/// What a SOCKS client run gives: the bytes sent, the outcome (the bound address, or the
/// error's kind and code), and the bytes left for the tunnel.
type ClientRun = (Vec<u8>, Result<Option<String>, ErrorCode>, Vec<u8>);
type ErrorCode = (
    burrow_transport::ErrorKind,
    Option<burrow_transport::WireCode>,
);

fn socks_client_run(sel: u8, pieces: &[&[u8]]) -> ClientRun {
    use crate::socks::client::{Dialect, SocksClient};
    use crate::socks::wire::Command;
    let dialect = match sel % 3 {
        0 => Dialect::V5(None),
        1 => Dialect::V5(Some(Credentials {
            user: "u".into(),
            pass: "p".into(),
        })),
        _ => Dialect::V4a,
    };
    let command = if sel & 4 != 0 && sel % 3 != 2 {
        Command::UdpAssociate
    } else {
        Command::Connect
    };
    let target = if sel & 8 != 0 {
        "192.0.2.1:53"
    } else {
        "example.com:443"
    };
    let Ok(mut c) = SocksClient::new(dialect, command, target.parse().expect("target")) else {
        return (Vec::new(), Ok(None), Vec::new());
    };
    let mut tx = Vec::new();
    while let Some(b) = c.poll_transmit() {
        tx.extend_from_slice(&b);
    }
    let mut outcome = Ok(None);
    let mut rest = Vec::new();
    for p in pieces {
        if !matches!(outcome, Ok(None)) {
            rest.extend_from_slice(p);
            continue;
        }
        c.receive(p);
        match c.poll_done() {
            Ok(Some(bound)) => outcome = Ok(Some(bound.to_string())),
            Ok(None) => {}
            Err(e) => outcome = Err((e.kind(), e.code())),
        }
        while let Some(b) = c.poll_transmit() {
            tx.extend_from_slice(&b);
        }
    }
    let mut leftover = c.take_leftover().to_vec();
    leftover.extend(rest);
    (tx, outcome, leftover)
}

/// Arbitrary proxy replies, whole and cut at arbitrary points, into the SOCKS client core:
/// the bytes it sends, the outcome (bound address, or error kind and code) and the bytes
/// left for the tunnel must agree, and nothing panics. Byte 0 selects the dialect, the
/// command and the target; then cuts (see [`socks_server`]) and the reply stream.
pub fn socks_client(data: &[u8]) {
    let [sel, rest @ ..] = data else { return };
    let (cuts, wire) = cuts_and_rest(rest);
    let whole = socks_client_run(*sel, &[wire]);
    let split = socks_client_run(*sel, &pieces(wire, &cuts));
    assert_eq!(whole, split, "read splits changed the outcome");
}

/// The static reasons a proxy URL is refused with (none repeats any of the input).
const PROXY_URL_REASONS: &[&str] = &[
    "unknown scheme",
    "a URI template only applies to HTTP proxies",
    "invalid MASQUE URI template",
    "connect=tcp only applies to HTTP proxies",
    "connect= takes tcp or classic",
    "bad user name encoding",
    "bad password encoding",
    "no host",
    "invalid host or port",
];

/// Arbitrary text as a proxy URL: parsing never panics; an error is one of the fixed
/// reasons (it never echoes the input, which may hold a password); a parsed URL's
/// `Display` and `Debug` never show its password, and parse again to the same hop.
pub fn proxy_url(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match crate::route::ProxyUrl::parse(s) {
        Err(e) => {
            let why = e
                .message()
                .strip_prefix("invalid proxy URL: ")
                .expect("error prefix");
            assert!(
                PROXY_URL_REASONS.contains(&why),
                "unexpected reason {why:?}"
            );
        }
        Ok(u) => {
            // What is shown is the URL with the password replaced, whatever it holds.
            let tcp = if u.connect_tcp.is_some() {
                "?connect=tcp"
            } else {
                ""
            };
            let shown = match &u.credentials {
                Some(c) => format!("{}://{}:***@{}{tcp}", u.kind.scheme(), c.user, u.target),
                None => format!("{}://{}{tcp}", u.kind.scheme(), u.target),
            };
            assert_eq!(u.to_string(), shown);
            assert_eq!(format!("{u:?}"), shown);
            let again = crate::route::ProxyUrl::parse(&u.to_string());
            if u.credentials.is_none() {
                let again = again.expect("a shown URL parses");
                assert_eq!((again.kind, &again.target), (u.kind, &u.target));
                assert_eq!(again.connect_tcp.is_some(), u.connect_tcp.is_some());
            }
        }
    }
}

/// Arbitrary text as a CONNECT-UDP URI template and as request paths: nothing panics; a
/// target expanded into a template whose variables are followed by separators that
/// cannot occur in an expansion is matched back to itself. Byte 0 splits the input into
/// the template and a path; the path also gives a target.
pub fn uri_template(data: &[u8]) {
    use crate::template::UdpTemplate;
    let [split, rest @ ..] = data else { return };
    let at = (*split as usize).min(rest.len());
    let (t, p) = rest.split_at(at);
    let (Ok(t), Ok(p)) = (std::str::from_utf8(t), std::str::from_utf8(p)) else {
        return;
    };
    let Ok(template) = UdpTemplate::parse(t) else {
        return;
    };
    let _ = template.matches(p);
    let port = p
        .bytes()
        .fold(7u16, |a, b| a.wrapping_mul(31).wrapping_add(b.into()));
    let host = p.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    let target = match burrow_transport::Host::parse(if host.is_empty() { "h" } else { host }) {
        Ok(h) => burrow_transport::Target::new(h, port.max(1)),
        Err(_) => return,
    };
    let path = template.expand(&target);
    let unambiguous = template_separators(t)
        .iter()
        .all(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '%')));
    if unambiguous {
        assert_eq!(template.matches(&path), Some(target), "{t} {path}");
    }
}

/// The first character of the literal after each variable of a template (`\0` at the end).
fn template_separators(t: &str) -> Vec<char> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find('}') {
        rest = &rest[i + 1..];
        out.push(rest.chars().next().unwrap_or('\0'));
    }
    out
}

/// Capsule bytes, whole and cut at arbitrary points, into the capsule decoder: the same
/// capsules and the same error come out either way, their encoding decodes to them again
/// (the input may use longer varints than needed), and a DATAGRAM's context id splits off
/// without panicking.
pub fn capsules(data: &[u8]) {
    use burrow_http_core::capsule::{self, CapsuleDecoder};
    let (cuts, wire) = cuts_and_rest(data);
    let run = |pieces: &[&[u8]]| {
        let mut d = CapsuleDecoder::new(4096);
        let mut out = Vec::new();
        for p in pieces {
            d.push(p);
            loop {
                match d.poll_capsule() {
                    Ok(Some(c)) => out.push(Ok(c)),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(Err(e));
                        return (out, true);
                    }
                }
            }
        }
        let clean = d.finish().is_ok();
        (out, clean)
    };
    let whole = run(&[wire]);
    let split = run(&pieces(wire, &cuts));
    assert_eq!(whole, split, "read splits changed the capsules");
    let mut again = Vec::new();
    let decoded: Vec<_> = whole.0.iter().flatten().cloned().collect();
    for c in &decoded {
        capsule::encode(c.ty, &c.value, &mut again);
        let _ = capsule::split_context(c.value.clone());
    }
    assert!(again.len() <= wire.len(), "encoding grew");
    let (round, clean) = run(&[&again]);
    assert!(clean, "re-encoded capsules end cleanly");
    let round: Vec<_> = round.into_iter().flatten().collect();
    assert_eq!(round, decoded, "capsules did not survive a re-encoding");
}

/// CONNECT-TCP stream bytes, whole and cut at arbitrary points, into the capsule stream
/// decoder, with payload read through the decoder's buffer or straight into the reader's
/// (byte 0, after the cuts, picks which pieces go direct): the same payload, the same end
/// (FINAL_DATA, a reset, data after FINAL_DATA) either way; and the payload re-encoded as
/// DATA and FINAL_DATA capsules decodes to itself with a clean end. Capsule types 1 and 2
/// stand for DATA and FINAL_DATA, so short inputs reach them.
pub fn tcp_capsules(data: &[u8]) {
    use burrow_http_core::capsule::CapsuleType;
    use burrow_http_core::connect_tcp::{
        encode_data_header, Codepoints, TcpCapsuleDecoder, TcpCapsuleError, TcpEvent,
    };
    let cp = Codepoints {
        data: CapsuleType(1),
        final_data: CapsuleType(2),
    };
    let (cuts, rest) = cuts_and_rest(data);
    let [direct_mask, wire @ ..] = rest else {
        return;
    };
    type Outcome = (Vec<u8>, bool, Result<(), TcpCapsuleError>);
    let run = |pieces: &[&[u8]], direct: u8| -> Outcome {
        let mut d = TcpCapsuleDecoder::new(cp);
        let (mut payload, mut fin) = (Vec::new(), false);
        for (i, mut p) in pieces.iter().copied().enumerate() {
            // A piece may go straight to the reader while the decoder offers room.
            if direct & (1 << (i % 8)) != 0 {
                if let Some(room) = d.direct_room() {
                    let n = (room.min(p.len() as u64)) as usize;
                    payload.extend_from_slice(&p[..n]);
                    d.direct(n);
                    p = &p[n..];
                }
            }
            d.read_buffer().extend_from_slice(p);
            loop {
                match d.poll() {
                    Ok(Some(TcpEvent::Data(b))) => payload.extend_from_slice(&b),
                    Ok(Some(TcpEvent::Fin)) => {
                        assert!(!fin, "two ends");
                        fin = true;
                    }
                    Ok(None) => break,
                    Err(e) => return (payload, fin, Err(e)),
                }
            }
        }
        let end = d.finish();
        assert!(end.is_err() || fin, "a clean end without FINAL_DATA");
        (payload, fin, end)
    };
    let whole = run(&[wire], 0);
    let split = run(&pieces(wire, &cuts), *direct_mask);
    assert_eq!(
        whole, split,
        "read splits or direct reads changed the stream"
    );
    let mut again = Vec::new();
    let (payload, ..) = &whole;
    let half = payload.len() / 2;
    encode_data_header(cp, half, false, &mut again);
    again.extend_from_slice(&payload[..half]);
    encode_data_header(cp, payload.len() - half, true, &mut again);
    again.extend_from_slice(&payload[half..]);
    assert_eq!(run(&[&again], 0), (payload.clone(), true, Ok(())));
}

/// A CONNECT-IP control capsule (byte 0 picks ADDRESS_ASSIGN, ADDRESS_REQUEST,
/// ROUTE_ADVERTISEMENT or another type; the rest is its value): decoding never panics, what
/// decodes re-encodes to a capsule that decodes to the same thing and is no longer than
/// the input (which may use longer varints), and every decoded prefix and range keeps the
/// RFC's rules.
pub fn ip_capsules(data: &[u8]) {
    use burrow_http_core::capsule::{CapsuleDecoder, CapsuleType};
    use burrow_http_core::connect_ip::{decode, encode, IpCapsule, Prefix};
    let [sel, value @ ..] = data else { return };
    let ty = CapsuleType(u64::from(*sel % 5));
    let Ok(Some(c)) = decode(ty, value) else {
        return;
    };
    let mut wire = Vec::new();
    encode(&c, &mut wire);
    let mut d = CapsuleDecoder::new(1 << 20);
    d.push(&wire);
    let again = d.poll_capsule().expect("our capsule").expect("whole");
    assert_eq!(again.ty, ty);
    assert!(again.value.len() <= value.len(), "encoding grew");
    assert_eq!(decode(again.ty, &again.value), Ok(Some(c.clone())));
    match &c {
        IpCapsule::AddressAssign(a) | IpCapsule::AddressRequest(a) => {
            for a in a {
                assert_eq!(Prefix::new(a.prefix.addr, a.prefix.len), Some(a.prefix));
                assert!(a.prefix.contains(a.prefix.addr));
            }
        }
        IpCapsule::RouteAdvertisement(r) => {
            for r in r {
                assert!(r.covers(r.start, r.protocol) && r.covers(r.end, r.protocol));
            }
        }
    }
}

/// Bytes as a CONNECT-IP client's request stream, cut at arbitrary points, through
/// [`IpStreamCore`](burrow_http_core::connect_ip::IpStreamCore) into an
/// [`IpSession`](crate::connect_ip::IpSession), with packets from the network in
/// between. Nothing panics; the session's output stays bounded; every packet it sends to
/// the network comes from the client's address or from the proxy's own (its ICMP errors),
/// and every packet to the client was for the client or is an ICMP error from the proxy,
/// and a forwarded one fits the tunnel's MTU (which the input changes as it goes).
pub fn ip_session(data: &[u8]) {
    use crate::connect_ip::{IpSession, Output, MAX_OUTPUT};
    use burrow_http_core::connect_ip::packet::parse;
    use burrow_http_core::connect_ip::{IpEvent, IpStreamCore, Prefix, Range};
    use burrow_http_core::driver::Core;
    use std::net::IpAddr;
    let me: IpAddr = [10, 0, 0, 2].into();
    let gw: IpAddr = [10, 0, 0, 1].into();
    let all = Range {
        start: [0u8; 4].into(),
        end: [255u8; 4].into(),
        protocol: 0,
    };
    let Some(assigned) = Prefix::new(me, 32) else {
        return;
    };
    let mut s = IpSession::new(vec![assigned], vec![all], Some(gw), None);
    let mut core = IpStreamCore::new(4096);
    let now = std::time::Instant::now();
    let mut rest = data;
    let mut mtu = usize::MAX;
    while let [op, len, tail @ ..] = rest {
        if op % 4 == 3 {
            // The tunnel's room changes (an HTTP/3 path's MTU).
            mtu = usize::from(*len) * 8;
            s.set_client_mtu(mtu);
            rest = tail;
            continue;
        }
        let n = usize::from(*len).min(tail.len());
        let (chunk, after) = tail.split_at(n);
        rest = after;
        if op % 4 == 2 {
            // From the network (the TUN device).
            s.handle_network_packet(now, chunk.to_vec());
        } else {
            core.read_buffer().extend_from_slice(chunk);
            core.handle_read(chunk.len(), now);
            while let Some(e) = core.poll_event() {
                match e {
                    IpEvent::Packet(p) => s.handle_client_packet(now, p.to_vec()),
                    IpEvent::Capsule(c) => s.handle_ip_capsule(c),
                    IpEvent::Error(_) => return,
                }
            }
        }
        let mut count = 0;
        while let Some(o) = s.poll_output() {
            count += 1;
            match o {
                Output::ToNetwork(p) => {
                    let h = parse(&p).expect("we send IP packets");
                    assert!(h.src == me || h.src == gw, "sent from {}", h.src);
                }
                Output::ToClient(p) => {
                    let h = parse(&p).expect("we send IP packets");
                    assert!(h.dst == me || h.src == gw, "to the client from {}", h.src);
                    if h.src != gw && mtu >= 68 {
                        assert!(
                            p.len() <= mtu,
                            "{} bytes through a {mtu}-byte tunnel",
                            p.len()
                        );
                    }
                }
                Output::Capsule(_) | Output::Dropped(_) => {}
            }
        }
        assert!(count <= MAX_OUTPUT + 2, "{count} outputs for one input");
    }
}

/// Bytes as an HTTP/1.1 request on a proxy's listener, through the server's request path:
/// the codec, the request target, the rules and the forwarding normalisation. Nothing
/// panics, and a request that is forwarded carries exactly one `Host` (the target's
/// authority), at most one `Content-Length`, no hop-by-hop field and this proxy's `Via`.
pub fn request_path(data: &[u8]) {
    use burrow_http1::proto::{Connection, Event as H1Event, Limits, Role};
    let mut c = Connection::new(Role::Server, Limits::default());
    c.receive(data);
    c.receive_eof();
    let Ok(Some(H1Event::Request(head))) = c.poll_event() else {
        return;
    };
    let rules = crate::server::Rules {
        hosts: vec!["*.example".into(), "10.0.0.1".into()],
        networks: vec![(std::net::Ipv4Addr::new(10, 0, 0, 0).into(), 8)],
        ports: vec![(1, 1023)],
    };
    if head.method == http::Method::CONNECT {
        if let Ok(t) = burrow_transport::Target::parse_with_default(&head.target, 443) {
            let _ = rules.check_target(&t);
        }
        return;
    }
    let Ok(uri) = head.target.parse::<http::Uri>() else {
        return;
    };
    let mut b = http::Request::builder()
        .method(head.method.clone())
        .uri(uri)
        .version(head.version);
    for (k, v) in &head.headers {
        b = b.header(k, v);
    }
    let Ok(req) = b.body(()) else { return };
    let (parts, ()) = req.into_parts();
    let Ok(p) = crate::server::prepare(parts, "burrow-fuzz") else {
        return;
    };
    let _ = rules.check_target(&p.target);
    let h = &p.parts.headers;
    assert_eq!(h.get_all(http::header::HOST).iter().count(), 1);
    let host = h[http::header::HOST].to_str().expect("host");
    assert_eq!(Some(host), p.parts.uri.authority().map(|a| a.as_str()));
    assert!(h.get_all(http::header::CONTENT_LENGTH).iter().count() <= 1);
    for n in burrow_http_core::message::CONNECTION_SPECIFIC
        .iter()
        .chain(&["proxy-authorization", "proxy-authenticate"])
    {
        assert!(!h.contains_key(*n), "{n} forwarded");
    }
    assert!(
        h.get_all(http::header::TE).iter().all(|v| v == "trailers"),
        "TE other than trailers forwarded"
    );
    assert!(crate::server::via_loops(h, "burrow-fuzz"), "no Via");
}

/// A SOCKS server answer from fuzz bytes (operation fuzzing of the server core with the
/// test kit's `operations`).
pub fn socks_answer(data: &mut &[u8]) -> Option<crate::socks::server::Answer> {
    let (&r, rest) = data.split_first()?;
    *data = rest;
    Some(crate::socks::server::Answer {
        reply: Reply(r % 10),
        bound: (r & 0x80 != 0).then(|| {
            burrow_transport::Target::new(burrow_transport::Host::Ip([10, 0, 0, 1].into()), 53)
        }),
    })
}

/// Arbitrary orders of inputs to the proxy's decision core (requests of every kind, replies
/// in and out of turn, hook replies of every kind in any order, cancellations, time): it
/// never panics, says `Done` once and nothing after it, and with hooks on tells them of
/// the end exactly once, just before `Done`.
pub fn decision_operations(data: &[u8]) {
    use crate::server::decision::{
        Command, Decision, Full, Hooked, Input, Notice, Policy, ResponseHead, RouteEntry,
    };
    use crate::server::hooks::{LocalResponse, Request, Response, Tunnel, TunnelKind};
    use crate::server::{Dial, Judge, Pattern, Rules};
    use std::sync::Arc;
    use std::time::{Duration, Instant};
    let [sel, ops @ ..] = data else { return };
    let judge = |up| Arc::new(Judge::new(Rules::default(), Default::default(), up));
    let mut policy = Policy::new(
        (sel & 1 != 0).then(|| Credentials {
            user: "u".into(),
            pass: "p".into(),
        }),
        "burrow-fuzz".into(),
        judge(sel & 2 != 0),
        crate::template::UdpTemplate::default(),
        Duration::from_secs(1),
    );
    policy.hooks = sel & 8 != 0;
    if sel & 16 != 0 {
        policy.routes = vec![
            RouteEntry {
                name: "direct".into(),
                judge: judge(false),
            },
            RouteEntry {
                name: "up".into(),
                judge: judge(true),
            },
        ];
        policy.route_rules = vec![(Pattern::Suffix("example".into()), 1)];
    }
    if sel & 32 != 0 {
        policy.intercept = Some(crate::server::intercept::InterceptRules::default());
    }
    let hooks = policy.hooks;
    let mut d = Decision::new(Arc::new(policy), sel & 4 != 0);
    let head = || {
        let (parts, ()) = http::Request::builder()
            .uri("http://b.example/y")
            .header("host", "b.example")
            .body(())
            .unwrap_or_default()
            .into_parts();
        crate::server::decision::Head {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        }
    };
    let (mut closed, mut closed_before_done) = (0, 0);
    let (mut opened, mut datagram_closed) = (0, 0);
    let mut now = Instant::now();
    let (mut done, mut after_done) = (0, 0);
    let requests = [
        ("CONNECT", "example.com:443", None),
        ("CONNECT", "127.0.0.1:22", None),
        ("GET", "http://a.example/x", None),
        ("GET", "/relative", None),
        (
            "CONNECT",
            "https://p.example/.well-known/masque/udp/192.0.2.1/53/",
            Some("connect-udp"),
        ),
        ("CONNECT", "https://p.example/x", Some("websocket")),
        ("GET", "http://a.example/chat", Some("websocket")),
    ];
    for &op in ops {
        let input = match op % 15 {
            0 | 1 => {
                let (m, uri, p) = requests[(op as usize / 12) % requests.len()];
                let Ok(req) = http::Request::builder()
                    .method(m)
                    .uri(uri)
                    .header("host", "a.example")
                    .body(())
                else {
                    continue;
                };
                Input::Request {
                    head: req.into_parts().0,
                    protocol: p.map(String::from),
                }
            }
            2 => Input::Socks(
                crate::socks::wire::Command::Connect,
                burrow_transport::Target::new(
                    burrow_transport::Host::Ip([192, 0, 2, 1].into()),
                    80,
                ),
            ),
            3 => Input::Reserved(Ok(())),
            4 => Input::Reserved(Err(if op & 16 != 0 {
                Full::Client
            } else {
                Full::Proxy
            })),
            5 => Input::Dialed(Ok(())),
            6 => Input::Dialed(Err(Dial::DnsTimeout)),
            7 => Input::Accepted(Ok(())),
            8 if op & 16 != 0 => Input::Upgraded(match (op / 15) % 3 {
                0 => Ok(ResponseHead {
                    status: http::StatusCode::SWITCHING_PROTOCOLS,
                    headers: http::HeaderMap::new(),
                }),
                1 => Ok(ResponseHead {
                    status: http::StatusCode::FORBIDDEN,
                    headers: http::HeaderMap::new(),
                }),
                _ => Err(burrow_http_core::refused(
                    http::StatusCode::UNAUTHORIZED,
                    &http::HeaderMap::new(),
                )),
            }),
            8 => Input::Forwarded(Ok((
                ResponseHead {
                    status: http::StatusCode::OK,
                    headers: http::HeaderMap::new(),
                },
                http::Version::HTTP_11,
            ))),
            9 => Input::Relayed(Default::default()),
            10 => Input::Cancelled,
            12 => Input::Intercepted(match op % 3 {
                0 => crate::server::decision::Interception::Served {
                    up: u64::from(op),
                    down: 0,
                },
                _ => crate::server::decision::Interception::Failed,
            }),
            13 => Input::Peeked(match op % 3 {
                0 => crate::server::decision::Peeked::Byte(0x16),
                1 => crate::server::decision::Peeked::Byte(op),
                _ => crate::server::decision::Peeked::Closed,
            }),
            11 => Input::Hooked(match (op / 15) % 8 {
                0 => Hooked::Body(u64::from(op)),
                1 => Hooked::Request(Box::new(Request {
                    head: head(),
                    route: (op & 1 != 0).then(|| "up".into()),
                    buffer_body: op & 2 != 0,
                })),
                2 => Hooked::Response(Box::new(Response {
                    head: ResponseHead {
                        status: http::StatusCode::NO_CONTENT,
                        headers: http::HeaderMap::new(),
                    },
                    buffer_body: op & 1 != 0,
                })),
                3 => Hooked::Tunnel(Box::new(Tunnel {
                    kind: TunnelKind::Connect,
                    target: burrow_transport::Target::new(
                        burrow_transport::Host::Name("c.example".into()),
                        443,
                    ),
                    route: (op & 1 != 0).then(|| "nowhere".into()),
                })),
                4 => Hooked::Respond(Box::new(LocalResponse::new(http::StatusCode::OK, "local"))),
                5 => Hooked::Failed("fuzz".into()),
                6 => Hooked::TooLarge,
                _ => Hooked::Body(0),
            }),
            _ => {
                now += Duration::from_millis(u64::from(op) * 10);
                d.handle_timeout(now);
                continue;
            }
        };
        d.handle(input, now);
        let mut last = None;
        while let Some(c) = d.poll_command() {
            if done > 0 {
                after_done += 1;
            }
            if c == Command::Done {
                done += 1;
                closed_before_done +=
                    usize::from(matches!(last, Some(Command::Notify(Notice::Closed(_)))));
            }
            if let Command::Notify(Notice::Closed(_)) = &c {
                closed += 1;
            }
            if let Command::Notify(Notice::DatagramOpened(_)) = &c {
                opened += 1;
            }
            if let Command::Notify(Notice::DatagramClosed(_)) = &c {
                datagram_closed += 1;
            }
            last = Some(c);
        }
        assert!(done <= 1 && after_done == 0, "commands after Done");
        assert!(closed <= 1, "the end told twice");
        assert!(opened <= 1, "a flow opened twice");
        if done > 0 {
            assert_eq!(
                opened, datagram_closed,
                "a datagram flow opened and closed unpaired"
            );
        }
        if hooks {
            assert_eq!(closed, done, "hooks not told of the end");
            assert_eq!(
                closed_before_done, done,
                "the end not told just before Done"
            );
        } else {
            assert_eq!(closed, 0, "hooks told without hooks");
        }
    }
}

/// Arbitrary user input to the built-in hooks' parsers (destination patterns, `--route`
/// rules, header rules, block-list files): they never panic, and a pattern that parses
/// judges any target without panicking, the same way twice.
pub fn patterns(data: &[u8]) {
    use crate::server::builtin::{BlockList, HeaderRule};
    use crate::server::{Pattern, Routes};
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let targets: Vec<burrow_transport::Target> =
        ["a.example:1", "10.1.2.3:80", "[::1]:443", "localhost:8"]
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
    for line in text.lines().take(64) {
        if let Ok(p) = Pattern::parse(line) {
            for t in &targets {
                assert_eq!(p.matches(t), p.matches(t));
            }
            assert_eq!(Pattern::parse(line).ok(), Some(p));
        }
        let _ = Routes::parse_rule(line);
        let _ = HeaderRule::parse(line, line.len() % 2 == 0);
    }
    if let Ok(list) = BlockList::parse_file(text) {
        let b = BlockList::new(list);
        for t in &targets {
            let _ = b.blocks(t);
        }
    }
}

/// Arbitrary datagrams, dial outcomes, answers and time for a SOCKS5 UDP association's
/// core: it never panics and never lets another sender's datagram through.
pub fn association_operations(data: &[u8]) {
    use crate::server::association::{Association, Verdict};
    use std::time::{Duration, Instant};
    let limits = crate::server::Limits {
        udp_max_destinations: 3,
        ..Default::default()
    };
    let judge = std::sync::Arc::new(crate::server::Judge::new(
        Default::default(),
        Default::default(),
        false,
    ));
    let mut now = Instant::now();
    let client = std::net::IpAddr::from([192, 0, 2, 9]);
    let mut a = Association::new(judge, client, &limits, now);
    let mut rest = data;
    while let [op, tail @ ..] = rest {
        let op = *op;
        rest = tail;
        let port = 4000 + u16::from(op % 2);
        let host = if op & 4 != 0 {
            [192, 0, 2, 9]
        } else {
            [192, 0, 2, 8]
        };
        let from = std::net::SocketAddr::from((host, port));
        let t = burrow_transport::Target::new(
            burrow_transport::Host::Ip([198, 51, 100, op % 5].into()),
            53,
        );
        match op % 6 {
            0 | 1 => {
                let n = (rest.first().copied().unwrap_or(0) as usize % 24).min(rest.len());
                let (d, tl) = rest.split_at(n);
                rest = tl;
                let mut v = Vec::new();
                crate::socks::wire::encode_udp(&t, d, &mut v);
                let datagram = if op & 8 != 0 { d } else { &v[..] };
                let verdict = a.from_client(from, datagram, now);
                if from.ip() != client {
                    assert_eq!(verdict, Verdict::Ignore, "another sender's datagram");
                }
                if let Verdict::Dial(t, _) = verdict {
                    a.dialed(&t, op & 16 != 0, now);
                }
            }
            2 => {
                let _ = a.from_destination(&t, now);
            }
            _ => {
                now += Duration::from_secs(u64::from(op));
                a.handle_timeout(now);
            }
        }
        while a.poll_forgotten().is_some() {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use burrow_test_support::rng;

    /// Random inputs around seeds, for each entry point (the fuzz targets run far more).
    fn around(seeds: &[&[u8]], rounds: usize, seed: u64, f: impl Fn(&[u8])) {
        let mut next = rng(seed);
        for round in 0..rounds {
            let mut input = seeds[round % seeds.len()].to_vec();
            if round % 3 != 0 && !input.is_empty() {
                for _ in 0..(next() % 4) {
                    let i = next() as usize % input.len();
                    input[i] = next();
                }
            }
            if round % 5 == 0 {
                input.truncate(next() as usize % (input.len() + 1));
            }
            f(&input);
        }
    }

    #[test]
    fn socks_client_replies_agree_across_splits() {
        around(
            &[
                b"\x00\x02\x00\x03\x00\x09\x05\x00\x05\x00\x00\x01\x0a\x00\x00\x01\x1f\x90tail",
                b"\x01\x01\x00\x02\x05\x02\x01\x00\x05\x00\x00\x03\x04host\x00\x50",
                b"\x02\x00\x00\x5a\x00\x00\x00\x00\x00\x00x",
                b"\x04\x00\x05\x00\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x35",
            ],
            3000,
            7,
            socks_client,
        );
    }

    #[test]
    fn proxy_urls_never_echo_and_round_trip() {
        around(
            &[
                b"https://al%40ice:p%3As@proxy:8443/",
                b"h3://u:pa#ss@p.example/masque?h={target_host}&p={target_port}",
                b"socks5h://[::1]:1080",
                b"127.0.0.1:3128",
                b"ftp://x",
            ],
            3000,
            8,
            proxy_url,
        );
    }

    #[test]
    fn uri_templates_match_their_expansions() {
        around(
            &[
                b"\x33/.well-known/masque/udp/{target_host}/{target_port}/example.com",
                b"\x28/masque?h={target_host}&p={target_port}2001:db8::1",
                b"\x1c/a/{target_port}/b/{target_host}/c",
            ],
            3000,
            9,
            uri_template,
        );
    }

    #[test]
    fn capsules_agree_across_splits_and_re_encode() {
        around(
            &[
                b"\x02\x00\x03\x00\x07\x00\x05\x00hello\x17\x02ab",
                b"\x00\x40\x00\x03\x00xy\x00\x44\x00\x00",
                b"\x01\x00\x01\x00\x80\x00\x10\x00",
            ],
            3000,
            10,
            capsules,
        );
    }

    #[test]
    fn tcp_capsules_agree_across_splits_and_direct_reads() {
        around(
            &[
                b"\x02\x00\x03\x00\x07\xff\x01\x05hello\x17\x02ab\x02\x01!",
                b"\x00\x00\x01\x40\x03xyz\x01\x00\x02\x00\x01\x01z",
                b"\x01\x00\x02\x55\x01\x10abcdefghijklmnop",
            ],
            3000,
            14,
            tcp_capsules,
        );
    }

    #[test]
    fn ip_capsules_re_encode_to_themselves() {
        around(
            &[
                b"\x01\x00\x04\xc0\x00\x02\x07\x20\x09\x06\x20\x01\x0d\xb8\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x30",
                b"\x02\x01\x04\x00\x00\x00\x00\x20",
                b"\x03\x04\x0a\x00\x00\x00\x0a\xff\xff\xff\x00\x04\xc0\x00\x02\x00\xc0\x00\x02\xff\x06",
            ],
            3000,
            15,
            ip_capsules,
        );
    }

    #[test]
    fn ip_session_sends_only_what_it_may() {
        around(
            &[
                // A DATAGRAM capsule with a UDP packet from the client's address.
                b"\x00\x1b\x00\x19\x00\x45\x00\x00\x18\x00\x00\x00\x00\x40\x11\x00\x00\x0a\x00\x00\x02\xc0\x00\x02\x01abcd",
                // From the network, for the client, with TTL 1 (Time Exceeded).
                b"\x02\x18\x45\x00\x00\x18\x00\x00\x00\x00\x01\x11\x00\x00\xc0\x00\x02\x01\x0a\x00\x00\x02abcd",
                // ADDRESS_REQUEST, then a spoofed source.
                b"\x00\x0a\x02\x08\x01\x04\x00\x00\x00\x00\x20\x00\x00\x1b\x00\x19\x00\x45\x00\x00\x18\x00\x00\x00\x00\x40\x11\x00\x00\x0a\x00\x00\x09\xc0\x00\x02\x01abcd",
                // A 72-byte tunnel, then 100 bytes from the network (fragmented), then
                // the same with Don't Fragment (Packet Too Big).
                b"\x03\x09\x02\x64\x45\x00\x00\x64\x00\x00\x00\x00\x40\x11\x00\x00\xc0\x00\x02\x01\x0a\x00\x00\x02abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzab\x02\x64\x45\x00\x00\x64\x00\x00\x40\x00\x40\x11\x00\x00\xc0\x00\x02\x01\x0a\x00\x00\x02abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzab",
            ],
            3000,
            16,
            ip_session,
        );
    }

    #[test]
    fn patterns_never_panic() {
        around(
            &[
                b"*\n*.internal\n10.0.0.0/8\n[::1]\nexample.com\n",
                b"*.internal=direct\n*=socks5h://127.0.0.1:9050\n",
                b"X-Env: a=b\n[::1]=X: 1\nuser-agent:\n",
            ],
            4000,
            13,
            patterns,
        );
    }

    #[test]
    fn request_path_normalises_whatever_it_forwards() {
        around(
            &[
                b"GET http://a.example/x HTTP/1.1\r\nHost: internal\r\nContent-Length: 0, 0\r\nConnection: x-a\r\nx-a: 1\r\n\r\n",
                b"POST http://10.0.0.1:80/ HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nVia: 1.1 other\r\n\r\n0\r\n\r\n",
                b"CONNECT b.example:443 HTTP/1.1\r\nHost: b.example:443\r\n\r\n",
                b"GET http://[::ffff:10.0.0.1]:8/ HTTP/1.0\r\n\r\n",
            ],
            4000,
            11,
            request_path,
        );
    }

    #[test]
    fn random_socks_streams_agree_across_splits() {
        let seeds: [&[u8]; 4] = [
            b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbbDATA",
            b"\x05\x01\x02\x01\x01u\x01p\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00",
            b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00host.example\x00tail",
            b"\x05\x02\x00\x02\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x35",
        ];
        let mut next = rng(99);
        for round in 0..4000 {
            let mut input = vec![next(), next() % 8];
            for _ in 0..16 {
                input.push(next());
            }
            let mut wire = seeds[round % seeds.len()].to_vec();
            if round % 3 != 0 {
                for _ in 0..(next() % 4) {
                    let i = next() as usize % wire.len();
                    wire[i] = next();
                }
            }
            input.extend(wire);
            socks_server(&input);
        }
    }
}
