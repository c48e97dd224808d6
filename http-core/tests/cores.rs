//! Playbooks for http-core's own cores: the capsule flow (on the kit's `Harness`), the
//! connection pool and the Alt-Svc cache (on virtual time), and operation fuzzing of the
//! capsule flow.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::capsule::{self, CapsuleFlowCore, CapsuleType, MAX_DATAGRAM_BACKLOG};
use burrow_http_core::driver::{Core, Finish};
use burrow_http_core::pool::{Checkout, Pool, PoolKey};
use burrow_test_support::fuzz::FakeConnection;
use burrow_test_support::playbook;
use burrow_test_support::playbook::{tx, Harness, Io, Out, Tick, Timed, TimedCore};
use bytes::Bytes;
use http::Version;

fn flow() -> Harness<CapsuleFlowCore> {
    Harness::new(|_| CapsuleFlowCore::new(100))
}

fn datagram(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    capsule::encode_udp_datagram(payload, &mut v);
    v
}

#[test]
fn capsule_flow_carries_datagrams_and_skips_the_rest() {
    let mut wire = datagram(b"dns");
    capsule::encode(CapsuleType(0x2c7c_f000), b"unknown", &mut wire);
    wire.extend_from_slice(&[0x00, 0x03, 0x05, b'x', b'y']); // context id 5: not ours
    wire.extend_from_slice(&datagram(b"second"));
    let split = wire.len() - 3;
    playbook!(flow(),
        >> Io::Cmd(Bytes::from_static(b"out")),
        << tx(&datagram(b"out")),
        >> Io::Recv(Bytes::copy_from_slice(&wire[..split])),
        << Out::Ev(Bytes::from_static(b"dns")),
        >> Io::Recv(Bytes::copy_from_slice(&wire[split..])),
        << Out::Ev(Bytes::from_static(b"second")),
        >> Io::Eof,
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn capsule_flow_ends_on_an_oversized_capsule_and_when_its_user_leaves() {
    let mut long = Vec::new();
    capsule::encode(CapsuleType::DATAGRAM, &[0u8; 101], &mut long);
    playbook!(flow(),
        >> Io::Recv(Bytes::from(long)),
        << Out::Finish(Finish::Close),
    );
    playbook!(flow(),
        >> Io::AppClosed,
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn capsule_flow_drops_datagrams_past_its_backlog() {
    let mut h = flow();
    for _ in 0..MAX_DATAGRAM_BACKLOG + 10 {
        h.core.handle_command(Bytes::from_static(b"d"), h.now());
    }
    let mut n = 0;
    while h.core.poll_transmit().is_some() {
        n += 1;
    }
    assert_eq!(n, MAX_DATAGRAM_BACKLOG);
}

#[test]
fn cores_survive_arbitrary_operation_orders() {
    use burrow_test_support::fuzz;
    let mut next = burrow_test_support::rng(0xcab5);
    for _ in 0..3000 {
        let ops: Vec<u8> = (0..64).map(|_| next()).collect();
        fuzz::capsule_flow_operations(&ops);
        fuzz::pool_operations(&ops);
        fuzz::handshake_answers(&ops);
    }
}

/// The pool's vocabulary: checkouts, connect outcomes and removals in; what each checkout
/// found out (by the connection's name) and how many are pooled.
#[derive(Debug)]
enum P {
    Checkout,
    Connected(&'static str, Version),
    Failed,
    Busy(&'static str),
    Count,
}

#[derive(Debug, PartialEq)]
enum Found {
    Ready(&'static str),
    Connect,
    Wait,
    Pooled(usize),
}

struct PoolCore {
    pool: Pool,
    conns: Vec<(&'static str, Arc<FakeConnection>)>,
    out: Vec<Found>,
}

fn key() -> PoolKey {
    PoolKey {
        route: "tcp".into(),
        scheme: "https".into(),
        authority: "a.example:443".into(),
    }
}

impl TimedCore for PoolCore {
    type Input = P;
    type Output = Found;
    fn handle(&mut self, i: P, now: Instant) {
        match i {
            P::Checkout => {
                let found = match self.pool.checkout(&key(), now) {
                    Checkout::Ready(c) => {
                        let name = self
                            .conns
                            .iter()
                            .find(|(_, f)| std::ptr::addr_eq(Arc::as_ptr(f), Arc::as_ptr(&c)))
                            .map_or("?", |(n, _)| *n);
                        Found::Ready(name)
                    }
                    Checkout::Connect => Found::Connect,
                    Checkout::Wait(_) => Found::Wait,
                };
                self.out.push(found);
            }
            P::Connected(name, v) => {
                let f = FakeConnection::new(v);
                self.conns.push((name, f.clone()));
                self.pool.finish_connect(&key(), Some(f), now);
            }
            P::Failed => self.pool.finish_connect(&key(), None, now),
            P::Busy(name) => {
                if let Some((_, f)) = self.conns.iter().find(|(n, _)| *n == name) {
                    f.ready.store(false, Ordering::Relaxed);
                }
            }
            P::Count => self.out.push(Found::Pooled(self.pool.connections(&key()))),
        }
    }
    fn poll_output(&mut self) -> Option<Found> {
        (!self.out.is_empty()).then(|| self.out.remove(0))
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.pool.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.pool.handle_timeout(now);
    }
}

fn pool(max_per_origin: usize) -> Timed<PoolCore> {
    Timed::new(|_| PoolCore {
        pool: Pool::new(Duration::from_secs(90), max_per_origin),
        conns: Vec::new(),
        out: Vec::new(),
    })
}

#[test]
fn pool_opens_one_connection_while_the_version_is_unknown_and_shares_http2() {
    playbook!(pool(4),
        >> Tick::In(P::Checkout),
        << Found::Connect,
        >> Tick::In(P::Checkout),
        << Found::Wait,
        >> Tick::In(P::Connected("h2", Version::HTTP_2)),
        >> Tick::In(P::Checkout),
        << Found::Ready("h2"),
        >> Tick::In(P::Checkout),
        << Found::Ready("h2"),
    );
}

#[test]
fn pool_caps_http1_connections_and_expires_idle_ones_on_virtual_time() {
    playbook!(pool(2),
        >> Tick::In(P::Checkout),
        << Found::Connect,
        >> Tick::In(P::Connected("a", Version::HTTP_11)),
        >> Tick::In(P::Busy("a")),
        >> Tick::In(P::Checkout),
        << Found::Connect,
        >> Tick::In(P::Failed),
        >> Tick::In(P::Checkout),
        << Found::Connect,
        >> Tick::In(P::Connected("b", Version::HTTP_11)),
        >> Tick::In(P::Busy("b")),
        // At the cap: queue on the least recently used busy connection.
        >> Tick::In(P::Checkout),
        << Found::Ready("a"),
        >> Tick::In(P::Count),
        << Found::Pooled(2),
        // Busy connections never expire; a fresh pool's idle one does, after 90 s.
    );
    playbook!(pool(2),
        >> Tick::In(P::Checkout),
        << Found::Connect,
        >> Tick::In(P::Connected("a", Version::HTTP_11)),
        >> Tick::Advance(Duration::from_secs(89)),
        >> Tick::In(P::Count),
        << Found::Pooled(1),
        >> Tick::Advance(Duration::from_secs(1)),
        >> Tick::In(P::Count),
        << Found::Pooled(0),
        >> Tick::In(P::Checkout),
        << Found::Connect,
    );
}
