//! QUIC-LB connection IDs on real endpoints: two burrow HTTP/3 servers with server IDs 0x0a
//! and 0x0b behind a load balancer that routes by destination connection ID. The balancer
//! here is the draft's "load balancer actions" in a few lines (Debian ships no QUIC-LB
//! balancer): it decodes each client packet's DCID with the shared configuration, and only
//! a client's first Initial (whose DCID the client chose) falls back to its address. After
//! the handshakes the balancer forgets every address, so everything that follows is routed
//! by connection ID alone, as after a client's NAT rebinding.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use burrow_http3::{bind, connect, serve, Http3Config, QuicLb};
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, ServerConnection};
use burrow_test_support::Pki;
use burrow_transport::{Roots, TlsConfig, UdpFlow};
use http::{Request, Response};
use tokio::net::UdpSocket;

const KEY: [u8; 16] = *b"burrow quic-lb k";

fn config(server_id: u8) -> QuicLb {
    // One-octet server ID and a 15-octet nonce: the single-pass encrypted case.
    QuicLb::new(1, &[server_id], 15)
        .unwrap()
        .with_key(KEY)
        .unwrap()
}

/// A server answering every request with its name; `lb`: its QUIC-LB configuration
/// (`None`: quinn's own connection IDs).
fn server(p: &Pki, lb: Option<QuicLb>, name: &'static str) -> SocketAddr {
    let mut cfg = Http3Config::default();
    cfg.quic_lb(lb);
    let ep = bind("127.0.0.1:0".parse().unwrap(), p.server(&[b"h3"]), &cfg).unwrap();
    let addr = ep.local_addr().unwrap();
    tokio::spawn(async move {
        while let Some(incoming) = ep.accept().await {
            tokio::spawn(async move {
                let mut srv = serve(incoming.await.unwrap(), &Default::default())
                    .await
                    .unwrap();
                while let Some(Ok(sr)) = srv.accept().await {
                    let resp = Response::new(Body::from(name.as_bytes().to_vec()));
                    sr.respond.send_response(resp).await.unwrap();
                }
            });
        }
    });
    addr
}

/// An HTTP/3 connection through the balancer at `addr`, trusting the test CA.
async fn client(p: &Pki, addr: SocketAddr) -> burrow_http3::Http3Connection {
    let mut tls = TlsConfig::default();
    tls.roots(Roots::None).add_root_der(p.ca.clone());
    let flow = Arc::new(UdpFlow::connect(addr).await.unwrap());
    let cfg = Http3Config::default();
    connect(flow, ConnectionInfo::default(), &cfg, &tls, "localhost")
        .await
        .unwrap()
}

/// What the balancer saw.
#[derive(Default)]
struct Seen {
    /// Short-header packets routed by their connection ID.
    by_cid: AtomicUsize,
    /// Short-header packets whose connection ID did not name a server.
    unroutable_short: AtomicUsize,
    /// Packets routed by the client's address (a first Initial).
    by_address: AtomicUsize,
    /// The source connection IDs of the servers' long-header packets.
    server_cids: Mutex<Vec<Vec<u8>>>,
}

struct Balancer {
    addr: SocketAddr,
    seen: Arc<Seen>,
    sticky: Arc<Mutex<HashMap<SocketAddr, usize>>>,
}

/// The destination connection ID of a QUIC packet: after the first octet in a short header
/// (its length known from the configuration), after version and length in a long one.
fn dcid(packet: &[u8], cid_len: usize) -> Option<&[u8]> {
    let first = *packet.first()?;
    if first & 0x80 == 0 {
        packet.get(1..1 + cid_len)
    } else {
        let len = *packet.get(5)? as usize;
        packet.get(6..6 + len)
    }
}

/// The source connection ID of a long-header packet.
fn scid(packet: &[u8]) -> Option<&[u8]> {
    if *packet.first()? & 0x80 == 0 {
        return None;
    }
    let at = 6 + *packet.get(5)? as usize;
    let len = *packet.get(at)? as usize;
    packet.get(at + 1..at + 1 + len)
}

async fn balancer(backends: Vec<(u8, SocketAddr)>) -> Balancer {
    let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
    let addr = front.local_addr().unwrap();
    let seen = Arc::new(Seen::default());
    let sticky: Arc<Mutex<HashMap<SocketAddr, usize>>> = Arc::default();
    let lb = config(0); // the balancer holds the configuration, not a server ID of its own
    let (s, st) = (seen.clone(), sticky.clone());
    tokio::spawn(async move {
        // One socket towards the backends per client, so that replies find their client.
        let mut upstream: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
        let mut next = 0usize;
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = front.recv_from(&mut buf).await.unwrap();
            let packet = &buf[..n];
            let short = packet.first().is_some_and(|b| b & 0x80 == 0);
            let routed = dcid(packet, lb.cid_len())
                .and_then(|c| lb.server_id(c))
                .and_then(|sid| backends.iter().position(|(id, _)| [*id] == sid[..]));
            let backend = match routed {
                Some(i) => {
                    if short {
                        s.by_cid.fetch_add(1, Ordering::Relaxed);
                    }
                    i
                }
                None => {
                    if short {
                        s.unroutable_short.fetch_add(1, Ordering::Relaxed);
                    }
                    s.by_address.fetch_add(1, Ordering::Relaxed);
                    *st.lock().unwrap().entry(from).or_insert_with(|| {
                        next += 1;
                        (next - 1) % backends.len()
                    })
                }
            };
            let up = match upstream.get(&from) {
                Some(u) => u.clone(),
                None => {
                    let u = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
                    let (u2, front, s) = (u.clone(), front.clone(), s.clone());
                    tokio::spawn(async move {
                        let mut b = vec![0u8; 65536];
                        while let Ok(n) = u2.recv(&mut b).await {
                            if let Some(scid) = scid(&b[..n]) {
                                s.server_cids.lock().unwrap().push(scid.to_vec());
                            }
                            let _ = front.send_to(&b[..n], from).await;
                        }
                    });
                    upstream.insert(from, u.clone());
                    u
                }
            };
            let _ = up.send_to(packet, backends[backend].1).await;
        }
    });
    Balancer { addr, seen, sticky }
}

async fn get(c: &burrow_http3::Http3Connection) -> String {
    let req = Request::get("https://localhost/")
        .body(Body::empty())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    let body = resp.into_body().collect(1024).await.unwrap();
    String::from_utf8(body.data.to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cid_routing_balancer_keeps_each_connection_on_its_server() {
    let p = Pki::new();
    let a = server(&p, Some(config(0x0a)), "A");
    let b = server(&p, Some(config(0x0b)), "B");
    let lb = balancer(vec![(0x0a, a), (0x0b, b)]).await;
    let conns = [client(&p, lb.addr).await, client(&p, lb.addr).await];
    // Round robin put the two connections on different servers (which one first depends
    // on whose first Initial the balancer saw first).
    let first = [get(&conns[0]).await, get(&conns[1]).await];
    let mut both = first.clone();
    both.sort();
    assert_eq!(both, ["A", "B"]);
    // Forget every client address: from here on only connection IDs route.
    lb.sticky.lock().unwrap().clear();
    let before = lb.seen.by_address.load(Ordering::Relaxed);
    for _ in 0..20 {
        assert_eq!(get(&conns[0]).await, first[0]);
        assert_eq!(get(&conns[1]).await, first[1]);
    }
    assert_eq!(lb.seen.by_address.load(Ordering::Relaxed), before);
    assert_eq!(lb.seen.unroutable_short.load(Ordering::Relaxed), 0);
    assert!(lb.seen.by_cid.load(Ordering::Relaxed) >= 40);
    // Every ID the servers chose names its server: A's are 0x0a's, B's 0x0b's.
    let cids = lb.seen.server_cids.lock().unwrap().clone();
    assert!(!cids.is_empty());
    let lbc = config(0);
    for cid in &cids {
        assert_eq!(cid.len(), 17);
        let sid = lbc.server_id(cid).unwrap();
        assert!(sid == [0x0a] || sid == [0x0b], "{sid:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quic_lb_the_ids_do_not_name_a_server() {
    // The control: quinn's random IDs are not routable by the balancer's configuration.
    let p = Pki::new();
    let addr = server(&p, None, "plain");
    let lb = balancer(vec![(0x0a, addr)]).await;
    let c = client(&p, lb.addr).await;
    for _ in 0..5 {
        assert_eq!(get(&c).await, "plain");
    }
    // quinn's own IDs are 8 random octets: no first octet, server ID or nonce.
    let cids = lb.seen.server_cids.lock().unwrap().clone();
    assert!(!cids.is_empty());
    assert!(cids.iter().all(|c| c.len() == 8), "{cids:?}");
}
