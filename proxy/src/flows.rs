//! Datagram flows over tunnels: CONNECT-UDP (RFC 9298) over HTTP/3 datagrams or over
//! DATAGRAM capsules on an HTTP/2 or HTTP/1.1 stream, and SOCKS5 UDP ASSOCIATE. The client's
//! hops and the proxy server bridge CONNECT-UDP with the same flows ([`tunnel_flow`]), and
//! the server relays between two flows with [`relay_datagrams`].

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use burrow_http_core::capsule::{self, CapsuleFlowCore};
use burrow_http_core::driver;
use burrow_http_core::TunnelDatagrams;
use burrow_transport::{BoxFlow, BoxStream, DatagramFlow, Target};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use crate::lock;
use crate::socks::wire::{decode_udp, encode_udp};

/// Datagrams queued each way before new ones are dropped (as a congested network would).
pub const FLOW_QUEUE: usize = 256;
/// Largest UDP payload.
const MAX_UDP: usize = 65_527;

/// Set when what keeps a flow alive (a control connection, a request stream) ends; wakes a
/// receiver waiting for a datagram so it sees the end at once.
#[derive(Default)]
struct Closed {
    flag: std::sync::atomic::AtomicBool,
    waker: Mutex<Option<std::task::Waker>>,
}

impl Closed {
    fn close(&self) {
        self.flag.store(true, std::sync::atomic::Ordering::Release);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }

    fn is_closed(&self) -> bool {
        self.flag.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Registers the receiver's waker, then reports whether the flow is already closed.
    fn check(&self, cx: &Context<'_>) -> bool {
        *lock(&self.waker) = Some(cx.waker().clone());
        self.is_closed()
    }
}

/// Watches `stream` until it ends, then marks the flow closed.
fn watch_end(stream: BoxStream, closed: Arc<Closed>) {
    tokio::spawn(async move {
        let mut s = stream;
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        closed.close();
    });
}

/// The datagram flow of an established CONNECT-UDP tunnel, either side: HTTP/3 datagrams
/// when the version has them, DATAGRAM capsules on the stream otherwise.
pub fn tunnel_flow(
    tunnel: burrow_http_core::Tunnel,
    max_capsule: u64,
    describe: String,
) -> BoxFlow {
    let (stream, datagrams) = tunnel.into_parts();
    match datagrams {
        Some(d) => Arc::new(DatagramTunnelFlow::new(stream, d, describe)),
        None => Arc::new(CapsuleFlow::new(stream, max_capsule, describe)),
    }
}

/// Relays datagrams both ways between two flows until either ends or nothing moves for
/// `idle` (then `true`); `count` sees each datagram as it goes (`true`: from `a` to `b`).
pub async fn relay_datagrams(
    a: &dyn DatagramFlow,
    b: &dyn DatagramFlow,
    idle: std::time::Duration,
    count: impl Fn(bool, usize),
) -> bool {
    let last = std::sync::atomic::AtomicU64::new(0);
    let start = tokio::time::Instant::now();
    let touch = || {
        last.store(
            start.elapsed().as_millis() as u64,
            std::sync::atomic::Ordering::Relaxed,
        )
    };
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = start.elapsed().as_millis() as u64
                - last.load(std::sync::atomic::Ordering::Relaxed);
            if quiet >= idle.as_millis() as u64 {
                return;
            }
        }
    };
    tokio::select! {
        _ = pump(a, b, true, &touch, &count) => false,
        _ = pump(b, a, false, &touch, &count) => false,
        _ = watchdog => true,
    }
}

/// Moves datagrams from `from` to `to` until either fails.
async fn pump(
    from: &dyn DatagramFlow,
    to: &dyn DatagramFlow,
    up: bool,
    touch: &impl Fn(),
    count: &impl Fn(bool, usize),
) {
    let mut buf = vec![0u8; MAX_UDP + 16];
    while let Ok(n) = burrow_transport::datagram::recv(from, &mut buf).await {
        touch();
        count(up, n);
        if burrow_transport::datagram::send(to, &buf[..n])
            .await
            .is_err()
        {
            return;
        }
    }
}

/// CONNECT-UDP over HTTP/3: QUIC DATAGRAM frames bound to the request stream, context id 0.
/// The stream is held (and read, skipping capsules) for the flow's life; its end ends it.
pub struct DatagramTunnelFlow {
    datagrams: Box<dyn TunnelDatagrams>,
    closed: Arc<Closed>,
    describe: String,
}

impl DatagramTunnelFlow {
    /// A flow over an HTTP/3 CONNECT-UDP tunnel.
    pub fn new(stream: BoxStream, datagrams: Box<dyn TunnelDatagrams>, describe: String) -> Self {
        let closed = Arc::new(Closed::default());
        watch_end(stream, closed.clone());
        DatagramTunnelFlow {
            datagrams,
            closed,
            describe,
        }
    }
}

impl DatagramFlow for DatagramTunnelFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        if self.closed.is_closed() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut b = Vec::with_capacity(datagram.len() + 1);
        b.push(0); // context id 0: UDP payload (RFC 9298 §5)
        b.extend_from_slice(datagram);
        // Too large for a QUIC DATAGRAM frame: dropped by the channel, never a capsule.
        self.datagrams.poll_send(cx, &b)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            if self.closed.check(cx) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "CONNECT-UDP stream ended",
                )));
            }
            let datagram = std::task::ready!(self.datagrams.poll_recv_bytes(cx))?;
            match capsule::split_context(datagram) {
                Ok((0, udp)) => {
                    let m = udp.len().min(buf.len());
                    buf[..m].copy_from_slice(&udp[..m]);
                    return Poll::Ready(Ok(m));
                }
                // Other context ids are not ours: dropped.
                _ => continue,
            }
        }
    }

    fn max_datagram_size(&self) -> usize {
        self.datagrams.max_payload().saturating_sub(1)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// CONNECT-UDP over HTTP/2 or HTTP/1.1: DATAGRAM capsules on the tunnel's byte stream.
pub struct CapsuleFlow {
    tx: mpsc::Sender<Bytes>,
    rx: Mutex<mpsc::Receiver<Bytes>>,
    describe: String,
}

impl CapsuleFlow {
    /// A flow over a CONNECT-UDP tunnel stream: the [`CapsuleFlowCore`] on the generic
    /// driver, in a task of its own.
    pub fn new(stream: BoxStream, max_capsule: u64, describe: String) -> Self {
        let (mut app, driver::Handle { commands, events }) = driver::channel(FLOW_QUEUE);
        tokio::spawn(async move {
            let mut core = CapsuleFlowCore::new(max_capsule);
            driver::drive(stream, &mut core, &mut app).await;
        });
        CapsuleFlow {
            tx: commands,
            rx: Mutex::new(events),
            describe,
        }
    }
}

impl DatagramFlow for CapsuleFlow {
    fn poll_send(&self, _cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        match self.tx.try_send(Bytes::copy_from_slice(datagram)) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Poll::Ready(Ok(())),
            Err(mpsc::error::TrySendError::Closed(_)) => {
                Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()))
            }
        }
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match lock(&self.rx).poll_recv(cx) {
            Poll::Ready(Some(d)) => {
                let n = d.len().min(buf.len());
                buf[..n].copy_from_slice(&d[..n]);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(None) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn max_datagram_size(&self) -> usize {
        MAX_UDP
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// SOCKS5 UDP ASSOCIATE: datagrams wrapped in the RFC 1928 §7 header to the relay, over the
/// level below; the TCP control connection is held for the association's life.
pub struct SocksUdpFlow {
    relay: BoxFlow,
    target: Target,
    header_len: usize,
    closed: Arc<Closed>,
    describe: String,
}

impl SocksUdpFlow {
    /// A flow to `target` through the relay reached by `relay`, alive while `control` is.
    pub fn new(control: BoxStream, relay: BoxFlow, target: Target, describe: String) -> Self {
        let closed = Arc::new(Closed::default());
        watch_end(control, closed.clone());
        let mut hdr = Vec::new();
        encode_udp(&target, &[], &mut hdr);
        SocksUdpFlow {
            relay,
            target,
            header_len: hdr.len(),
            closed,
            describe,
        }
    }
}

fn control_closed() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "SOCKS control connection closed")
}

impl DatagramFlow for SocksUdpFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        if self.closed.is_closed() {
            return Poll::Ready(Err(control_closed()));
        }
        let mut out = Vec::with_capacity(datagram.len() + self.header_len);
        encode_udp(&self.target, datagram, &mut out);
        self.relay.poll_send(cx, &out)
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.relay.poll_send_ready(cx)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut tmp = vec![0u8; buf.len() + 300];
        loop {
            if self.closed.check(cx) {
                return Poll::Ready(Err(control_closed()));
            }
            let n = std::task::ready!(self.relay.poll_recv(cx, &mut tmp))?;
            // Fragments and malformed datagrams are dropped.
            if let Some(p) = decode_udp(&tmp[..n]).filter(|p| p.frag == 0) {
                let m = p.data.len().min(buf.len());
                buf[..m].copy_from_slice(&p.data[..m]);
                return Poll::Ready(Ok(m));
            }
        }
    }

    fn max_datagram_size(&self) -> usize {
        self.relay
            .max_datagram_size()
            .saturating_sub(self.header_len)
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1928 §7: the association ends with its TCP control connection; a receiver that
    /// is waiting for a datagram learns it at once, not at the next datagram.
    #[tokio::test]
    async fn socks_flow_ends_when_control_closes() {
        let (ours, theirs) = tokio::io::duplex(64);
        let relay_sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let relay: BoxFlow = Arc::new(
            burrow_transport::UdpFlow::connect(relay_sock.local_addr().unwrap())
                .await
                .unwrap(),
        );
        let flow = SocksUdpFlow::new(
            Box::new(ours),
            relay,
            "192.0.2.1:53".parse().unwrap(),
            "t".into(),
        );
        let waiting = tokio::spawn(async move {
            let mut buf = [0u8; 64];
            burrow_transport::datagram::recv(&flow, &mut buf).await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        drop(theirs);
        let r = tokio::time::timeout(std::time::Duration::from_secs(2), waiting)
            .await
            .expect("receiver was not woken")
            .unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
