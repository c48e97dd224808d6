//! Operation fuzzers for http-core's cores, shared by the fuzz targets and the property
//! tests (they live here because they need the playbook kit): the capsule flow, the
//! connection pool, and the tunnel handshake's judgements.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use burrow_http_core::capsule::CapsuleFlowCore;
use burrow_http_core::handshake::{self, PeerSettings};
use burrow_http_core::pool::{Checkout, Pool, PoolKey};
use burrow_http_core::{Body, ConnectionInfo, HttpConnection, Tunnel, TunnelRequest};
use burrow_transport::{Error, ErrorKind, Host, Target};
use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode, Version};

use crate::playbook::{operations, Harness};

/// Arbitrary orders of stream bytes, datagrams to send, EOF, failures and the user leaving
/// for a CONNECT-UDP capsule flow.
pub fn capsule_flow_operations(data: &[u8]) {
    let mut h = Harness::new(|_| CapsuleFlowCore::new(256));
    operations(&mut h, data, |d| {
        let (&n, rest) = d.split_first()?;
        let n = (n as usize % 8).min(rest.len());
        let (p, rest) = rest.split_at(n);
        *d = rest;
        Some(Bytes::copy_from_slice(p))
    });
}

/// A connection whose readiness the fuzzer flips.
pub struct FakeConnection {
    version: Version,
    /// Whether it takes another request now.
    pub ready: AtomicBool,
    /// Whether it is closed.
    pub closed: AtomicBool,
    info: ConnectionInfo,
}

impl FakeConnection {
    /// A fake connection of `version`, ready and open.
    pub fn new(version: Version) -> Arc<FakeConnection> {
        Arc::new(FakeConnection {
            version,
            ready: AtomicBool::new(true),
            closed: AtomicBool::new(false),
            info: ConnectionInfo::default(),
        })
    }
}

#[async_trait]
impl HttpConnection for FakeConnection {
    async fn send_request(&self, _: Request<Body>) -> Result<Response<Body>, Error> {
        Err(Error::local(ErrorKind::Unsupported, "fake connection"))
    }
    async fn open_tunnel(&self, _: TunnelRequest) -> Result<Tunnel, Error> {
        Err(Error::local(ErrorKind::Unsupported, "fake connection"))
    }
    fn version(&self) -> Version {
        self.version
    }
    fn info(&self) -> &ConnectionInfo {
        &self.info
    }
    fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Relaxed)
    }
}

/// Arbitrary checkouts, connect outcomes, state changes, removals and time for the pool:
/// it never hands out a closed connection, never holds more connections for a key than
/// were made for it, nor more HTTP/1.1 connections than its cap, and never a `Connect`
/// while another connect to a key of unknown version runs.
pub fn pool_operations(data: &[u8]) {
    const CAP: usize = 3;
    let pool = Pool::new(Duration::from_secs(10), CAP);
    let keys: Vec<PoolKey> = (0..2)
        .map(|i| PoolKey {
            route: "tcp".into(),
            scheme: "https".into(),
            authority: format!("k{i}:443"),
        })
        .collect();
    let mut now = Instant::now();
    // Connections made, with the key each was pooled under.
    let mut conns: Vec<(usize, Arc<FakeConnection>)> = Vec::new();
    let mut connecting = [0usize; 2];
    for &op in data {
        let k = usize::from(op & 1);
        let key = &keys[k];
        match (op >> 1) % 7 {
            0 | 1 => match pool.checkout(key, now) {
                Checkout::Ready(c) => assert!(!c.is_closed(), "a closed connection handed out"),
                Checkout::Connect => connecting[k] += 1,
                Checkout::Wait(_) => {}
            },
            2 if connecting[k] > 0 => {
                connecting[k] -= 1;
                let v = if op & 0x80 != 0 {
                    Version::HTTP_2
                } else {
                    Version::HTTP_11
                };
                let c = FakeConnection::new(v);
                conns.push((k, c.clone()));
                pool.finish_connect(key, Some(c), now);
            }
            3 if connecting[k] > 0 => {
                connecting[k] -= 1;
                pool.finish_connect(key, None, now);
            }
            4 => {
                if let Some((_, c)) = conns.get(usize::from(op >> 4) % conns.len().max(1)) {
                    c.ready.store(op & 0x10 == 0, Ordering::Relaxed);
                    c.closed.store(op & 0x20 != 0, Ordering::Relaxed);
                }
            }
            5 => {
                now += Duration::from_secs(u64::from(op >> 4));
                if pool.poll_timeout().is_some_and(|t| t <= now) {
                    pool.handle_timeout(now);
                }
            }
            _ => {
                // The caller removes a connection under the key it was pooled with.
                if let Some((owner, c)) = conns.pop() {
                    let c: Arc<dyn HttpConnection> = c;
                    pool.remove(&keys[owner], &c);
                }
            }
        }
        for (i, key) in keys.iter().enumerate() {
            let made = conns.iter().filter(|(owner, _)| *owner == i).count();
            let pooled = pool.connections(key);
            assert!(pooled <= made, "more pooled connections than were made");
            // The cap is on HTTP/1.1 connections. A multiplexed connection that is not
            // ready is draining (GOAWAY) and is replaced, one connect at a time.
            let all_h1 = conns
                .iter()
                .filter(|(owner, _)| *owner == i)
                .all(|(_, c)| c.version == Version::HTTP_11);
            assert!(
                !all_h1 || pooled <= CAP,
                "more HTTP/1.1 connections than the cap"
            );
        }
    }
}

/// Arbitrary tunnel requests, versions, SETTINGS and answers for the handshake core: it
/// never panics, accepts exactly 101 for an HTTP/1.1 Upgrade and 2xx otherwise, and asks
/// for SETTINGS only where extended CONNECT needs them.
pub fn handshake_answers(data: &[u8]) {
    let [sel, s1, s2, rest @ ..] = data else {
        return;
    };
    let v = [Version::HTTP_11, Version::HTTP_2, Version::HTTP_3][usize::from(*sel % 3)];
    let name = String::from_utf8_lossy(rest).into_owned();
    let target = Target::new(Host::Name(name.clone()), u16::from(*s2));
    let req = match sel % 4 {
        0 => TunnelRequest::connect(target),
        1 => TunnelRequest::extended("connect-udp", target, "/.well-known/masque/udp/h/53/"),
        2 => TunnelRequest::extended(name, target, "/"),
        _ => TunnelRequest::extended("websocket", target, "/chat").with_secure(false),
    };
    let _ = handshake::request_head(&req, v);
    let settings = PeerSettings {
        extended_connect: s1 & 1 != 0,
        h3_datagram: s1 & 2 != 0,
    };
    let allowed = handshake::check_settings(&req, v, &settings).is_ok();
    if req.protocol().is_none() {
        assert!(allowed && !handshake::needs_settings(&req, v));
    }
    let status = StatusCode::from_u16(100 + u16::from(*s2) % 500).unwrap_or(StatusCode::OK);
    let ok = handshake::judge_answer(&req, v, status, &HeaderMap::new()).is_ok();
    let upgrade = v == Version::HTTP_11 && req.protocol().is_some();
    let want = if upgrade {
        status == StatusCode::SWITCHING_PROTOCOLS
    } else {
        status.is_success()
    };
    assert_eq!(ok, want, "{status} on {v:?} for {req:?}");
}
