//! The stack against a scripted IP flow: the packets it sends (bytes on the wire), what it
//! makes of the answers, and its limits.

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use burrow_http_core::connect_ip::packet::{checksum, parse};
use burrow_transport::{IpAssignment, IpFlow};

use super::*;

/// A flow whose sent packets are kept and whose received ones are pushed by the test.
#[derive(Default)]
struct Scripted {
    sent: Mutex<Vec<Vec<u8>>>,
    inbox: Mutex<(VecDeque<Vec<u8>>, Option<Waker>)>,
    addresses: Vec<(IpAddr, u8)>,
    mtu: usize,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Scripted::with_mtu(1400)
    }

    fn with_mtu(mtu: usize) -> Arc<Scripted> {
        Arc::new(Scripted {
            addresses: vec![(Ipv4Addr::new(10, 0, 0, 2).into(), 32)],
            mtu,
            ..Default::default()
        })
    }

    fn push(&self, p: Vec<u8>) {
        let mut i = lock(&self.inbox);
        i.0.push_back(p);
        if let Some(w) = i.1.take() {
            w.wake();
        }
    }

    async fn next_sent(&self) -> Vec<u8> {
        for _ in 0..200 {
            if let Some(p) = {
                let mut s = lock(&self.sent);
                (!s.is_empty()).then(|| s.remove(0))
            } {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the stack sent nothing")
    }
}

impl IpFlow for Scripted {
    fn poll_send(&self, _cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        lock(&self.sent).push(packet.to_vec());
        Poll::Ready(Ok(()))
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut i = lock(&self.inbox);
        match i.0.pop_front() {
            Some(p) => {
                buf[..p.len()].copy_from_slice(&p);
                Poll::Ready(Ok(p.len()))
            }
            None => {
                i.1 = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn assignment(&self) -> IpAssignment {
        IpAssignment {
            addresses: self.addresses.clone(),
            routes: Vec::new(),
        }
    }

    fn describe(&self) -> String {
        "scripted".into()
    }
}

/// An IPv4 packet from `src` to 10.0.0.2 with this transport header and payload, its
/// checksums right.
fn reply(src: Ipv4Addr, proto: u8, transport: &[u8]) -> Vec<u8> {
    let dst = Ipv4Addr::new(10, 0, 0, 2);
    let mut t = transport.to_vec();
    let mut ph = Vec::new();
    ph.extend_from_slice(&src.octets());
    ph.extend_from_slice(&dst.octets());
    ph.extend_from_slice(&[0, proto]);
    ph.extend_from_slice(&(t.len() as u16).to_be_bytes());
    let at = if proto == 6 { 16 } else { 6 };
    t[at..at + 2].copy_from_slice(&[0, 0]);
    let c = checksum(&t, u32::from(!checksum(&ph, 0)));
    t[at..at + 2].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0];
    p[2..4].copy_from_slice(&((20 + t.len()) as u16).to_be_bytes());
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p, 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&t);
    p
}

#[tokio::test]
async fn a_connect_sends_a_syn_and_a_reset_refuses_it() {
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let to: SocketAddr = "192.0.2.9:443".parse().unwrap();
    let s2 = stack.clone();
    let connecting = tokio::spawn(async move { s2.tcp(to).await.map(|_| ()) });
    let syn = flow.next_sent().await;
    let h = parse(&syn).unwrap();
    assert_eq!(
        (h.src, h.dst, h.protocol),
        (Ipv4Addr::new(10, 0, 0, 2).into(), to.ip(), 6)
    );
    let tcp = &syn[h.upper..];
    assert_eq!(u16::from_be_bytes([tcp[2], tcp[3]]), 443);
    assert_eq!(tcp[13] & 0x12, 0x02, "SYN without ACK");
    // RST+ACK for it.
    let seq = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]);
    let mut rst = vec![0u8; 20];
    rst[0..2].copy_from_slice(&443u16.to_be_bytes());
    rst[2..4].copy_from_slice(&tcp[0..2]);
    rst[8..12].copy_from_slice(&seq.wrapping_add(1).to_be_bytes());
    rst[12] = 5 << 4;
    rst[13] = 0x14;
    flow.push(reply(Ipv4Addr::new(192, 0, 2, 9), 6, &rst));
    let e = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
    assert!(e.to_string().contains("refused"), "{e}");
}

/// The local port of the SYN a fresh stack sends to `to`.
async fn first_syn_port(to: SocketAddr) -> u16 {
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let connecting = tokio::spawn(async move { stack.tcp(to).await.map(|_| ()) });
    let syn = flow.next_sent().await;
    connecting.abort();
    let tcp = &syn[parse(&syn).unwrap().upper..];
    assert_eq!(tcp[13] & 0x12, 0x02, "SYN without ACK");
    u16::from_be_bytes([tcp[0], tcp[1]])
}

/// A stack opened after another to the same target does not start from the same port
/// (the target may still hold the first connection in TIME-WAIT).
#[tokio::test]
async fn successive_stacks_take_different_ephemeral_ports() {
    let to: SocketAddr = "192.0.2.9:443".parse().unwrap();
    let mut ports = Vec::new();
    for _ in 0..4 {
        ports.push(first_syn_port(to).await);
    }
    for p in &ports {
        assert!(EPHEMERAL_PORTS.contains(p), "{ports:?}");
    }
    let distinct: std::collections::HashSet<_> = ports.iter().collect();
    assert_eq!(distinct.len(), ports.len(), "{ports:?}");
}

#[tokio::test]
async fn udp_datagrams_go_out_as_packets_and_only_the_peers_come_back() {
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let peer: SocketAddr = "192.0.2.9:53".parse().unwrap();
    let u = stack.udp(peer).unwrap();
    assert_eq!(u.max_datagram_size(), 1400 - 28);
    burrow_transport::datagram::send(&u, b"query")
        .await
        .unwrap();
    let p = flow.next_sent().await;
    let h = parse(&p).unwrap();
    assert_eq!((h.dst, h.protocol), (peer.ip(), 17));
    let udp = &p[h.upper..];
    let local = u16::from_be_bytes([udp[0], udp[1]]);
    assert_eq!(u16::from_be_bytes([udp[2], udp[3]]), 53);
    assert_eq!(&udp[8..], b"query");
    let datagram = |from_port: u16, data: &[u8]| udp_from(from_port, local, data);
    // From another port first (dropped: the flow is connected), then from the peer.
    flow.push(reply(
        Ipv4Addr::new(192, 0, 2, 9),
        17,
        &datagram(54, b"stray"),
    ));
    flow.push(reply(
        Ipv4Addr::new(192, 0, 2, 9),
        17,
        &datagram(53, b"answer"),
    ));
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        burrow_transport::datagram::recv(&u, &mut buf),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&buf[..n], b"answer");
    // Larger than the path carries: dropped, as a link drops it.
    burrow_transport::datagram::send(&u, &[0u8; 1400])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(lock(&flow.sent).is_empty());
}

#[tokio::test]
async fn a_flow_without_an_address_or_of_another_family_is_refused() {
    let none = Arc::new(Scripted::default());
    let e = IpStack::new(none).unwrap_err();
    assert!(e.to_string().contains("no address"), "{e}");
    let stack = IpStack::new(Scripted::new()).unwrap();
    let e = stack
        .udp("[2001:db8::1]:53".parse().unwrap())
        .err()
        .unwrap();
    assert!(e.to_string().contains("no IPv6 address"), "{e}");
}

#[tokio::test]
async fn sockets_are_bounded_and_the_end_of_the_flow_stops_them() {
    let flow = Scripted::new();
    let stack = IpStack::with_max_sockets(flow.clone(), 3).unwrap();
    let peer: SocketAddr = "192.0.2.9:53".parse().unwrap();
    let held: Vec<UdpFlow> = (0..3).map(|_| stack.udp(peer).unwrap()).collect();
    let e = stack.udp(peer).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::LimitExceeded, "{e}");
    assert!(e.to_string().contains("holds 3 sockets"), "{e}");
    drop(held);
    let u = stack.udp(peer).unwrap();
    // The flow ends: the stack stops, and its sockets fail rather than wait.
    let closing = Arc::new(Closing);
    let stack = IpStack::new(closing).unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(stack.is_closed());
    let e = stack.udp(peer).err().unwrap();
    assert!(e.to_string().contains("the IP tunnel ended"), "{e}");
    drop(u);
}

/// A flow that has ended.
struct Closing;

impl IpFlow for Closing {
    fn poll_send(&self, _cx: &mut Context<'_>, _p: &[u8]) -> Poll<io::Result<()>> {
        Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
    }
    fn poll_recv(&self, _cx: &mut Context<'_>, _b: &mut [u8]) -> Poll<io::Result<usize>> {
        Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
    }
    fn mtu(&self) -> usize {
        1400
    }
    fn assignment(&self) -> IpAssignment {
        IpAssignment {
            addresses: vec![(Ipv4Addr::new(10, 0, 0, 2).into(), 32)],
            routes: Vec::new(),
        }
    }
    fn describe(&self) -> String {
        "closed".into()
    }
}

/// The next packet the stack sends within `within` (virtual time in paused tests).
async fn sent_within(flow: &Scripted, within: Duration) -> Option<Vec<u8>> {
    let end = tokio::time::Instant::now() + within;
    loop {
        if let Some(p) = {
            let mut s = lock(&flow.sent);
            (!s.is_empty()).then(|| s.remove(0))
        } {
            return Some(p);
        }
        if tokio::time::Instant::now() >= end {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

const PEER: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 9);

/// A TCP segment from the peer (port 443) to `port`, without options.
fn segment(port: u16, seq: u32, ack: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = vec![0u8; 20];
    t[0..2].copy_from_slice(&443u16.to_be_bytes());
    t[2..4].copy_from_slice(&port.to_be_bytes());
    t[4..8].copy_from_slice(&seq.to_be_bytes());
    t[8..12].copy_from_slice(&ack.to_be_bytes());
    t[12] = 5 << 4;
    t[13] = flags;
    t[14..16].copy_from_slice(&65_535u16.to_be_bytes());
    t.extend_from_slice(payload);
    reply(PEER, 6, &t)
}

/// The TCP header and payload of a packet the stack sent.
fn tcp_of(p: &[u8]) -> &[u8] {
    &p[parse(p).unwrap().upper..]
}

const FIN: u8 = 0x01;
const RST: u8 = 0x04;
const ACK: u8 = 0x10;
const SYN_ACK: u8 = 0x12;

/// A connection to the peer, its handshake scripted (the peer's `then` packets go in with
/// its SYN-ACK): the stream, its local port, the stack's next sequence number and the
/// peer's.
async fn connected(
    flow: &Arc<Scripted>,
    stack: &IpStack,
    then: &[(u8, &[u8])],
) -> (TcpStream, u16, u32, u32) {
    let s2 = stack.clone();
    let to = SocketAddr::new(PEER.into(), 443);
    let connecting = tokio::spawn(async move { s2.tcp(to).await });
    let syn = flow.next_sent().await;
    let tcp = tcp_of(&syn);
    let port = u16::from_be_bytes([tcp[0], tcp[1]]);
    let ours = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]).wrapping_add(1);
    let mut theirs = 7_000u32;
    flow.push(segment(port, theirs, ours, SYN_ACK, b""));
    theirs += 1;
    for (flags, data) in then {
        flow.push(segment(port, theirs, ours, *flags, data));
        theirs += data.len() as u32 + u32::from(flags & FIN);
    }
    let stream = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .expect("connected without waiting for the connect timeout")
        .unwrap()
        .unwrap();
    (stream, port, ours, theirs)
}

/// smoltcp counts its timeout from the peer's last packet even on an idle connection:
/// keep-alives make a live peer answer, so an idle connection outlives TCP_TIMEOUT.
#[tokio::test(start_paused = true)]
async fn an_idle_connection_to_a_live_peer_outlasts_the_timeout() {
    use tokio::io::AsyncWriteExt;
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let (mut stream, port, ours, theirs) = connected(&flow, &stack, &[]).await;
    let start = tokio::time::Instant::now();
    let mut probes = 0;
    while start.elapsed() < 3 * TCP_TIMEOUT {
        let p = sent_within(&flow, 2 * TCP_KEEPALIVE)
            .await
            .expect("a keep-alive while idle");
        assert_eq!(tcp_of(&p)[13] & RST, 0, "a live connection reset");
        probes += 1;
        flow.push(segment(port, theirs, ours, ACK, b""));
    }
    assert!(probes >= 6, "{probes} keep-alives in {:?}", start.elapsed());
    stream.write_all(b"ping").await.unwrap();
    let p = sent_within(&flow, Duration::from_secs(1)).await.unwrap();
    assert!(
        tcp_of(&p).ends_with(b"ping"),
        "the connection still carries data"
    );
}

/// A peer that stops answering: the connection fails after TCP_TIMEOUT (and not before),
/// its reader told.
#[tokio::test(start_paused = true)]
async fn a_connection_whose_peer_goes_silent_fails_after_the_timeout() {
    use tokio::io::AsyncReadExt;
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let (mut stream, ..) = connected(&flow, &stack, &[]).await;
    let start = tokio::time::Instant::now();
    let mut buf = [0u8; 16];
    let e = tokio::time::timeout(2 * TCP_TIMEOUT, stream.read(&mut buf))
        .await
        .expect("the connection timed out")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
    let after = start.elapsed();
    assert!(
        after >= TCP_TIMEOUT && after <= TCP_TIMEOUT + TCP_KEEPALIVE,
        "{after:?}"
    );
}

/// A peer that answers and closes at once (its FIN in before the connecting task runs):
/// the connection is made, and its reader gets the data and the end.
#[tokio::test(start_paused = true)]
async fn a_peer_that_closes_at_once_still_connects() {
    use tokio::io::AsyncReadExt;
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let (mut stream, ..) = connected(&flow, &stack, &[(ACK, b"bye"), (FIN | ACK, b"")]).await;
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, b"bye");
}

/// Unsent data and a reset: shutdown fails at once instead of waiting for it to go out.
#[tokio::test(start_paused = true)]
async fn shutdown_after_a_reset_fails_rather_than_waits() {
    use tokio::io::AsyncWriteExt;
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let (mut stream, port, ours, theirs) = connected(&flow, &stack, &[]).await;
    stream.write_all(b"never acknowledged").await.unwrap();
    // The handshake's last ACK, then the data.
    loop {
        let p = sent_within(&flow, Duration::from_secs(1)).await.unwrap();
        if tcp_of(&p).ends_with(b"never acknowledged") {
            break;
        }
    }
    flow.push(segment(port, theirs, ours, RST, b""));
    let e = tokio::time::timeout(Duration::from_secs(5), stream.shutdown())
        .await
        .expect("shutdown returned")
        .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::ConnectionReset, "{e}");
}

/// The options of a TCP header: (kind, value) pairs.
fn tcp_options(tcp: &[u8]) -> Vec<(u8, Vec<u8>)> {
    let end = usize::from(tcp[12] >> 4) * 4;
    let (mut at, mut out) = (20, Vec::new());
    while at < end {
        match tcp[at] {
            0 => break,
            1 => at += 1,
            kind => {
                let len = usize::from(tcp[at + 1]);
                out.push((kind, tcp[at + 2..at + len].to_vec()));
                at += len;
            }
        }
    }
    out
}

/// The SYN offers the segment size the tunnel carries (never more than STACK_MTU allows)
/// and a receive window of TCP_BUFFER, which the ACK then advertises.
#[tokio::test]
async fn the_syn_offers_the_tunnels_segment_size_and_tcp_buffer_as_its_window() {
    for (mtu, mss) in [(1400, 1360), (9000, STACK_MTU - 40)] {
        let flow = Scripted::with_mtu(mtu);
        let stack = IpStack::new(flow.clone()).unwrap();
        let to = SocketAddr::new(PEER.into(), 443);
        let s2 = stack.clone();
        let connecting = tokio::spawn(async move { s2.tcp(to).await });
        let syn = flow.next_sent().await;
        let tcp = tcp_of(&syn);
        let opts = tcp_options(tcp);
        let get = |k: u8| {
            opts.iter()
                .find(|(kind, _)| *kind == k)
                .map(|(_, v)| v.clone())
        };
        let offered = get(2).expect("an MSS option");
        assert_eq!(
            usize::from(u16::from_be_bytes([offered[0], offered[1]])),
            mss,
            "mtu {mtu}"
        );
        // The smallest window scale that can say TCP_BUFFER.
        let shift = get(3).expect("a window scale option")[0];
        assert!(TCP_BUFFER >> shift <= 65_535, "{shift}");
        assert!(TCP_BUFFER >> (shift - 1) > 65_535, "{shift}");
        // A SYN-ACK that scales too (data offset 6: window scale 0, then end of options).
        let port = u16::from_be_bytes([tcp[0], tcp[1]]);
        let ours = u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]).wrapping_add(1);
        let mut t = vec![0u8; 24];
        t[0..2].copy_from_slice(&443u16.to_be_bytes());
        t[2..4].copy_from_slice(&port.to_be_bytes());
        t[4..8].copy_from_slice(&7_000u32.to_be_bytes());
        t[8..12].copy_from_slice(&ours.to_be_bytes());
        t[12] = 6 << 4;
        t[13] = SYN_ACK;
        t[14..16].copy_from_slice(&65_535u16.to_be_bytes());
        t[20..24].copy_from_slice(&[3, 3, 0, 0]);
        flow.push(reply(PEER, 6, &t));
        let ack = flow.next_sent().await;
        let a = tcp_of(&ack);
        assert_eq!(a[13] & (SYN_ACK | RST), ACK, "the handshake's ACK");
        let window = usize::from(u16::from_be_bytes([a[14], a[15]])) << shift;
        assert_eq!(window, (TCP_BUFFER >> shift) << shift);
        assert!(TCP_BUFFER - window < 1 << shift, "{window}");
        tokio::time::timeout(Duration::from_secs(5), connecting)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
}

/// A peer that never answers the SYN: the connect fails at CONNECT_TIMEOUT, saying so.
#[tokio::test(start_paused = true)]
async fn a_connect_nobody_answers_fails_at_the_connect_timeout() {
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let started = tokio::time::Instant::now();
    let e = stack
        .tcp(SocketAddr::new(PEER.into(), 443))
        .await
        .err()
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= CONNECT_TIMEOUT && took < CONNECT_TIMEOUT + Duration::from_secs(1),
        "{took:?}"
    );
    assert!(e.to_string().contains("not established within"), "{e}");
    assert!(
        lock(&flow.sent).len() > 1,
        "the SYN was sent again while it waited"
    );
}

/// Datagrams nobody reads: UDP_PACKETS are kept, later ones dropped, as a full socket
/// buffer drops them. UDP_BUFFER holds that many full-size datagrams, so the count binds
/// first.
#[tokio::test]
async fn an_unread_udp_socket_keeps_udp_packets_datagrams() {
    const { assert!(UDP_BUFFER >= UDP_PACKETS * STACK_MTU) };
    let (flow, _stack, u, local) = udp_socket().await;
    for i in 0..UDP_PACKETS + 10 {
        flow.push(reply(
            PEER,
            17,
            &udp_from(53, local, &(i as u32).to_be_bytes()),
        ));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while let Ok(r) = tokio::time::timeout(
        Duration::from_millis(100),
        burrow_transport::datagram::recv(&u, &mut buf),
    )
    .await
    {
        let n = r.unwrap();
        got.push(u32::from_be_bytes(buf[..n].try_into().unwrap()));
    }
    let first: Vec<u32> = (0..UDP_PACKETS as u32).collect();
    assert_eq!(got, first, "the first UDP_PACKETS, in order");
}

/// A burst of packets from one poll of the stack is cut at PACKET_QUEUE.
#[test]
fn the_send_queue_is_bounded() {
    use smoltcp::phy::TxToken;
    let mut q: VecDeque<Vec<u8>> = (0..PACKET_QUEUE - 1).map(|_| vec![1]).collect();
    Tx(&mut q).consume(3, |b| b.copy_from_slice(b"abc"));
    assert_eq!(q.len(), PACKET_QUEUE);
    assert_eq!(q.back().unwrap(), b"abc");
    Tx(&mut q).consume(3, |b| b.copy_from_slice(b"xyz"));
    assert_eq!(q.len(), PACKET_QUEUE, "dropped, as a full link queue drops");
}

/// A UDP datagram the proxy or its sender split into IPv4 fragments (after a Packet Too
/// Big) is reassembled for the socket.
#[tokio::test]
async fn a_fragmented_udp_datagram_is_reassembled() {
    let (flow, _stack, u, local) = udp_socket().await;
    let data: Vec<u8> = (0..1440u32).map(|i| (i % 251) as u8).collect();
    let d = udp_from(53, local, &data);
    // The whole packet with a valid UDP checksum, then cut as a router cuts it.
    let mut whole = reply(PEER, 17, &d);
    whole[6] = 0; // DF off
    whole[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&whole[..20], 0);
    whole[10..12].copy_from_slice(&c.to_be_bytes());
    for f in burrow_http_core::connect_ip::packet::fragment_v4(&whole, 1000).unwrap() {
        flow.push(f);
    }
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(
        Duration::from_secs(5),
        burrow_transport::datagram::recv(&u, &mut buf),
    )
    .await
    .expect("the reassembled datagram")
    .unwrap();
    assert_eq!(&buf[..n], &data[..]);
}

/// A UDP socket on a fresh stack, connected to the peer's port 53, and its local port as
/// the stack's first datagram shows it.
async fn udp_socket() -> (Arc<Scripted>, IpStack, UdpFlow, u16) {
    let flow = Scripted::new();
    let stack = IpStack::new(flow.clone()).unwrap();
    let u = stack.udp(SocketAddr::new(PEER.into(), 53)).unwrap();
    burrow_transport::datagram::send(&u, b"hello")
        .await
        .unwrap();
    let out = flow.next_sent().await;
    let local = u16::from_be_bytes([tcp_of(&out)[0], tcp_of(&out)[1]]);
    (flow, stack, u, local)
}

/// A UDP header and payload from the peer's `from` port to `local` (checksum left to
/// [`reply`]).
fn udp_from(from: u16, local: u16, data: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8];
    d[0..2].copy_from_slice(&from.to_be_bytes());
    d[2..4].copy_from_slice(&local.to_be_bytes());
    d[4..6].copy_from_slice(&((8 + data.len()) as u16).to_be_bytes());
    d.extend_from_slice(data);
    d
}
