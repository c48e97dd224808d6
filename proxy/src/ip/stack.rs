//! A userspace TCP/IP stack ([smoltcp]) over an [`IpFlow`](burrow_transport::IpFlow): TCP streams and UDP flows
//! through an IP tunnel, without any privilege. Its connectors
//! ([`StackConnector`](super::StackConnector)) carry burrow's own HTTP/1.1, HTTP/2 and HTTP/3 to an origin
//! reached through CONNECT-IP.
//!
//! One task per stack moves packets between the flow and the interface, and polls the
//! interface when a socket was used or its timer is due; sockets are read and written
//! under the stack's lock from the tasks that own them.

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use burrow_transport::{BoxIpFlow, DatagramFlow, Error, ErrorKind, Result};
use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{tcp, udp};
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, IpEndpoint};
use tokio::sync::Notify;

use crate::lock;

/// Largest IP packet the stack sends, when the tunnel carries larger ones (HTTP/2 and
/// HTTP/1.1 capsules carry 64 KiB): Ethernet's MTU, which the network past the proxy can
/// be expected to carry (RFC 9484 has no way to learn it).
pub const STACK_MTU: usize = 1500;
/// Each TCP socket's receive and send buffers (window scaling lets the window use all of
/// it).
pub const TCP_BUFFER: usize = 256 * 1024;
/// Each UDP socket's buffered payload, each way.
pub const UDP_BUFFER: usize = 128 * 1024;
/// Datagrams each UDP socket buffers each way.
pub const UDP_PACKETS: usize = 64;
/// Packets waiting between the flow and the interface, each way; more are dropped, as a
/// congested link drops them.
pub const PACKET_QUEUE: usize = 512;
/// How long a TCP connection may take to be established.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// A TCP connection whose peer stops answering for this long is aborted.
pub const TCP_TIMEOUT: Duration = Duration::from_secs(60);
/// An idle TCP connection sends a keep-alive this often, so that a live peer's answers
/// keep it from [`TCP_TIMEOUT`] (smoltcp counts the timeout from the peer's last packet,
/// idle or not).
pub const TCP_KEEPALIVE: Duration = Duration::from_secs(20);
/// Most sockets a stack holds at once.
pub const MAX_SOCKETS: usize = 4096;
/// Packets taken from the flow per wake-up before the interface is polled.
const RECV_BATCH: usize = 64;

/// The stack's clock: monotonic (a wall clock set back would stall every TCP timer), and
/// tokio's, so that tests drive the stack's timers in virtual time.
fn now() -> smoltcp::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    let epoch = *EPOCH.get_or_init(tokio::time::Instant::now);
    let since = tokio::time::Instant::now().saturating_duration_since(epoch);
    smoltcp::time::Instant::from_micros(i64::try_from(since.as_micros()).unwrap_or(i64::MAX))
}

/// The ephemeral port range (RFC 6335 §6) local ports come from.
pub const EPHEMERAL_PORTS: std::ops::RangeInclusive<u16> = 49_152..=65_535;

/// The next local port: one counter for every stack in the process, started at a random
/// place in [`EPHEMERAL_PORTS`] (RFC 6056 §3.3.2). A stack opened after another (a
/// tunnel reopened, the next request) so does not reuse the ports its predecessor just
/// closed: the far end may still hold those connections (TIME-WAIT) and would answer a
/// new SYN on the same four-tuple with an ACK, costing a SYN retransmission.
fn next_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(*EPHEMERAL_PORTS.end() - *EPHEMERAL_PORTS.start()) + 1;
    let mut n = NEXT.load(Ordering::Relaxed);
    if n == u32::MAX {
        // std's hasher keys are random per process: a random start without a new crate.
        let seed = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let start = (seed % u64::from(span)) as u32;
        n = match NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => start,
            Err(now) => now,
        };
    }
    loop {
        let next = (n + 1) % span;
        match NEXT.compare_exchange_weak(n, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return *EPHEMERAL_PORTS.start() + n as u16,
            Err(now) => n = now,
        }
    }
}

/// The interface's device: two queues of whole IP packets.
struct Queues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);
struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut b = vec![0u8; len];
        let r = f(&mut b);
        if self.0.len() < PACKET_QUEUE {
            self.0.push_back(b);
        }
        r
    }
}

impl Device for Queues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _t: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        let p = self.rx.pop_front()?;
        Some((Rx(p), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _t: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut c = DeviceCapabilities::default();
        c.medium = Medium::Ip;
        c.max_transmission_unit = self.mtu;
        c
    }
}

struct State {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Queues,
    /// Sockets whose handles are gone, removed once closed.
    orphans: Vec<SocketHandle>,
    /// Why the stack stopped (its flow ended).
    closed: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    max_sockets: usize,
    /// Wakes the stack's task: a socket was used.
    poke: Notify,
    flow: BoxIpFlow,
    addresses: Vec<IpAddr>,
}

/// A userspace TCP/IP stack over one IP flow (see the module docs).
#[derive(Clone)]
pub struct IpStack {
    shared: Arc<Shared>,
    pub(super) describe: String,
}

impl std::fmt::Debug for IpStack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IpStack")
            .field("addresses", &self.shared.addresses)
            .finish_non_exhaustive()
    }
}

impl IpStack {
    /// A stack with the addresses `flow` was assigned, routing everything into it; its
    /// task runs until the flow ends and every handle is gone. Fails when the flow has no
    /// address.
    pub fn new(flow: BoxIpFlow) -> Result<IpStack> {
        IpStack::with_max_sockets(flow, MAX_SOCKETS)
    }

    /// Like [`new`](Self::new), holding at most `max_sockets` sockets (default
    /// [`MAX_SOCKETS`]).
    pub fn with_max_sockets(flow: BoxIpFlow, max_sockets: usize) -> Result<IpStack> {
        let a = flow.assignment();
        if a.addresses.is_empty() {
            return Err(Error::peer(
                ErrorKind::Protocol,
                "the IP tunnel assigned no address",
            ));
        }
        let mtu = flow.mtu().min(STACK_MTU);
        let mut dev = Queues {
            rx: VecDeque::new(),
            tx: VecDeque::new(),
            mtu,
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        let mut iface = Interface::new(config, &mut dev, now());
        let mut addresses = Vec::new();
        // At most one address per family (smoltcp holds two).
        for v6 in [false, true] {
            let Some(&(addr, len)) = a.addresses.iter().find(|(x, _)| x.is_ipv6() == v6) else {
                continue;
            };
            addresses.push(addr);
            iface.update_ip_addrs(|list| {
                let _ = list.push(IpCidr::new(IpAddress::from(addr), len));
            });
            // On an IP medium the gateway is never looked up: any address of ours does.
            let _ = match addr {
                IpAddr::V4(v) => iface.routes_mut().add_default_ipv4_route(v).map(|_| ()),
                IpAddr::V6(v) => iface.routes_mut().add_default_ipv6_route(v).map(|_| ()),
            };
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                iface,
                sockets: SocketSet::new(Vec::new()),
                dev,
                orphans: Vec::new(),
                closed: None,
            }),
            poke: Notify::new(),
            max_sockets,
            flow: flow.clone(),
            addresses,
        });
        tokio::spawn(run(shared.clone()));
        Ok(IpStack {
            shared,
            describe: flow.describe(),
        })
    }

    /// Whether the stack stopped (its flow ended): it opens nothing more.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared.state).closed.is_some()
    }

    /// Whether the tunnel assigned the stack an address of this family.
    pub fn has_family(&self, v6: bool) -> bool {
        self.shared.addresses.iter().any(|a| a.is_ipv6() == v6)
    }

    fn source_for(&self, dst: IpAddr) -> Result<IpAddr> {
        self.shared
            .addresses
            .iter()
            .copied()
            .find(|a| a.is_ipv6() == dst.is_ipv6())
            .ok_or_else(|| {
                Error::unsupported(format!(
                    "the IP tunnel assigned no {} address",
                    if dst.is_ipv6() { "IPv6" } else { "IPv4" }
                ))
            })
    }

    /// A free local port (ephemeral range; there are more ports than [`MAX_SOCKETS`], so
    /// one is always free), from [`next_port`].
    fn port(st: &mut State) -> u16 {
        let used: std::collections::HashSet<u16> = st
            .sockets
            .iter()
            .filter_map(|(_, s)| match s {
                smoltcp::socket::Socket::Tcp(t) => t.local_endpoint().map(|e| e.port),
                smoltcp::socket::Socket::Udp(u) => Some(u.endpoint().port),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect();
        loop {
            let p = next_port();
            if !used.contains(&p) {
                return p;
            }
        }
    }

    fn check_open(&self, st: &State) -> Result<()> {
        if let Some(why) = &st.closed {
            return Err(Error::closed(format!("the IP tunnel ended: {why}")));
        }
        let max = self.shared.max_sockets;
        if st.sockets.iter().count() >= max {
            return Err(Error::limit_exceeded(format!(
                "the IP tunnel already holds {max} sockets, the most it may"
            )));
        }
        Ok(())
    }

    /// Opens a TCP connection to `to`.
    pub async fn tcp(&self, to: SocketAddr) -> Result<TcpStream> {
        let src = self.source_for(to.ip())?;
        let handle = {
            let mut st = lock(&self.shared.state);
            self.check_open(&st)?;
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
                tcp::SocketBuffer::new(vec![0u8; TCP_BUFFER]),
            );
            let ms = |d: Duration| smoltcp::time::Duration::from_millis(d.as_millis() as u64);
            s.set_timeout(Some(ms(TCP_TIMEOUT)));
            s.set_keep_alive(Some(ms(TCP_KEEPALIVE)));
            s.set_nagle_enabled(false);
            let port = Self::port(&mut st);
            let st = &mut *st;
            s.connect(
                st.iface.context(),
                IpEndpoint::new(to.ip().into(), to.port()),
                (IpAddress::from(src), port),
            )
            .map_err(|e| Error::invalid_input(format!("TCP connect to {to}: {e}")))?;
            st.sockets.add(s)
        };
        let stream = TcpStream {
            shared: self.shared.clone(),
            handle,
            eof: false,
        };
        self.shared.poke.notify_one();
        let established = std::future::poll_fn(|cx| stream.poll_established(cx));
        match tokio::time::timeout(CONNECT_TIMEOUT, established).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::peer_timeout(format!(
                "TCP connection to {to} through the IP tunnel not established within {CONNECT_TIMEOUT:?}"
            ))),
        }
    }

    /// Opens a UDP flow to `to`.
    pub fn udp(&self, to: SocketAddr) -> Result<UdpFlow> {
        let src = self.source_for(to.ip())?;
        let mut st = lock(&self.shared.state);
        self.check_open(&st)?;
        let buffer = || {
            let meta = vec![udp::PacketMetadata::EMPTY; UDP_PACKETS];
            udp::PacketBuffer::new(meta, vec![0u8; UDP_BUFFER])
        };
        let mut s = udp::Socket::new(buffer(), buffer());
        let port = Self::port(&mut st);
        s.bind((IpAddress::from(src), port))
            .map_err(|e| Error::invalid_input(format!("UDP bind: {e}")))?;
        let handle = st.sockets.add(s);
        let header = if to.is_ipv6() { 48 } else { 28 };
        Ok(UdpFlow {
            shared: self.shared.clone(),
            handle,
            to: IpEndpoint::new(to.ip().into(), to.port()),
            max: st.dev.mtu.saturating_sub(header),
            describe: format!("udp > {}", self.describe),
        })
    }
}

/// The stack's task: packets in and out, the interface polled when due.
async fn run(shared: Arc<Shared>) {
    let mut buf = vec![0u8; 65_536];
    loop {
        let (out, delay) = {
            let mut st = lock(&shared.state);
            let st = &mut *st;
            st.iface.poll(now(), &mut st.dev, &mut st.sockets);
            // Sockets nobody holds go once they are closed.
            let sockets = &mut st.sockets;
            st.orphans.retain(|h| {
                let done = matches!(
                    sockets.get::<tcp::Socket>(*h).state(),
                    tcp::State::Closed | tcp::State::TimeWait
                );
                if done {
                    sockets.remove(*h);
                }
                !done
            });
            let out: Vec<Vec<u8>> = st.dev.tx.drain(..).collect();
            let delay = st.iface.poll_delay(now(), &st.sockets);
            (out, delay)
        };
        for p in out {
            if let Err(e) = burrow_transport::ip::send(&*shared.flow, &p).await {
                return stop(&shared, e.to_string());
            }
        }
        // Nobody can use the stack any more, and nothing is left to close.
        if Arc::strong_count(&shared) == 1 && lock(&shared.state).sockets.iter().count() == 0 {
            return;
        }
        let wait = delay
            .map(|d| Duration::from_micros(d.total_micros()))
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            r = burrow_transport::ip::recv(&*shared.flow, &mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) => return stop(&shared, e.to_string()),
                };
                let mut st = lock(&shared.state);
                if st.dev.rx.len() < PACKET_QUEUE {
                    st.dev.rx.push_back(buf[..n].to_vec());
                }
                // More that already arrived, without waiting.
                let waker = futures_util::task::noop_waker();
                let mut cx = Context::from_waker(&waker);
                for _ in 0..RECV_BATCH {
                    match shared.flow.poll_recv(&mut cx, &mut buf) {
                        Poll::Ready(Ok(n)) if st.dev.rx.len() < PACKET_QUEUE => {
                            st.dev.rx.push_back(buf[..n].to_vec())
                        }
                        Poll::Ready(Ok(_)) => {}
                        _ => break,
                    }
                }
            }
            _ = shared.poke.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// The flow ended: every socket is aborted, which wakes whoever waits on it.
fn stop(shared: &Shared, why: String) {
    let mut st = lock(&shared.state);
    tracing::debug!("IP stack stopped: {why}");
    st.closed = Some(why);
    for (_, s) in st.sockets.iter_mut() {
        match s {
            smoltcp::socket::Socket::Tcp(t) => t.abort(),
            smoltcp::socket::Socket::Udp(u) => u.close(),
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }
}

/// A TCP connection through an [`IpStack`].
pub struct TcpStream {
    shared: Arc<Shared>,
    handle: SocketHandle,
    eof: bool,
}

impl TcpStream {
    fn poll_established(&self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let mut st = lock(&self.shared.state);
        let closed = st.closed.clone();
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.state() {
            tcp::State::SynSent | tcp::State::SynReceived | tcp::State::Listen => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            tcp::State::Closed => Poll::Ready(Err(match closed {
                Some(why) => Error::closed(format!("the IP tunnel ended: {why}")),
                None => Error::peer(
                    ErrorKind::Connect,
                    "TCP connection refused through the IP tunnel",
                ),
            })),
            // Synchronised: established, or already closing (the peer may send its data
            // and FIN before this task runs; they are the reader's).
            _ => Poll::Ready(Ok(())),
        }
    }
}

fn reset() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionReset,
        "TCP connection reset through the IP tunnel",
    )
}

impl tokio::io::AsyncRead for TcpStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.eof {
            return Poll::Ready(Ok(()));
        }
        let shared = self.shared.clone();
        let mut st = lock(&shared.state);
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        match s.recv_slice(buf.initialize_unfilled()) {
            Ok(0) => {
                s.register_recv_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                buf.advance(n);
                drop(st);
                // The window opened: the interface may have an update to send.
                shared.poke.notify_one();
                Poll::Ready(Ok(()))
            }
            Err(tcp::RecvError::Finished) => {
                self.eof = true;
                Poll::Ready(Ok(()))
            }
            Err(tcp::RecvError::InvalidState) => Poll::Ready(Err(reset())),
        }
    }
}

impl tokio::io::AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.shared.state);
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        if !s.may_send() {
            return Poll::Ready(Err(match s.state() {
                tcp::State::Closed => reset(),
                _ => io::ErrorKind::BrokenPipe.into(),
            }));
        }
        match s.send_slice(data) {
            Ok(0) => {
                s.register_send_waker(cx.waker());
                Poll::Pending
            }
            Ok(n) => {
                drop(st);
                self.shared.poke.notify_one();
                Poll::Ready(Ok(n))
            }
            Err(_) => Poll::Ready(Err(io::ErrorKind::BrokenPipe.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.shared.state);
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        // Reset, timed out or the stack stopped: what was written will never go out.
        if s.state() == tcp::State::Closed && s.send_queue() > 0 {
            return Poll::Ready(Err(reset()));
        }
        // The FIN goes once what was written is out.
        s.close();
        if s.send_queue() > 0 {
            s.register_send_waker(cx.waker());
            drop(st);
            self.shared.poke.notify_one();
            return Poll::Pending;
        }
        drop(st);
        self.shared.poke.notify_one();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        let s = st.sockets.get_mut::<tcp::Socket>(self.handle);
        // Unread data means the application gave up: reset, as a kernel does.
        if s.recv_queue() > 0 {
            s.abort();
        } else {
            s.close();
        }
        st.orphans.push(self.handle);
        drop(st);
        self.shared.poke.notify_one();
    }
}

/// A UDP flow to one peer through an [`IpStack`].
pub struct UdpFlow {
    shared: Arc<Shared>,
    handle: SocketHandle,
    to: IpEndpoint,
    max: usize,
    describe: String,
}

impl DatagramFlow for UdpFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        if datagram.len() > self.max {
            return Poll::Ready(Ok(()));
        }
        let mut st = lock(&self.shared.state);
        if st.closed.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let s = st.sockets.get_mut::<udp::Socket>(self.handle);
        match s.send_slice(datagram, self.to) {
            Ok(()) => {
                drop(st);
                self.shared.poke.notify_one();
                Poll::Ready(Ok(()))
            }
            Err(udp::SendError::BufferFull) => {
                s.register_send_waker(cx.waker());
                drop(st);
                self.shared.poke.notify_one();
                Poll::Pending
            }
            Err(udp::SendError::Unaddressable) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "UDP destination unaddressable",
            ))),
        }
    }

    /// Ready once the socket's buffer has room for two datagrams of the largest size (a
    /// ring buffer may need the second for one that wraps), so that QUIC's "writable"
    /// is followed by a send that does not block.
    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = lock(&self.shared.state);
        if st.closed.is_some() {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let s = st.sockets.get_mut::<udp::Socket>(self.handle);
        let room = s.payload_send_capacity().saturating_sub(s.send_queue());
        if s.can_send() && room >= 2 * self.max {
            return Poll::Ready(Ok(()));
        }
        s.register_send_waker(cx.waker());
        drop(st);
        self.shared.poke.notify_one();
        Poll::Pending
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut st = lock(&self.shared.state);
        if let Some(why) = &st.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                format!("the IP tunnel ended: {why}"),
            )));
        }
        let s = st.sockets.get_mut::<udp::Socket>(self.handle);
        loop {
            match s.recv() {
                // A connected flow: datagrams from elsewhere are dropped.
                Ok((d, meta)) if meta.endpoint == self.to => {
                    let n = d.len().min(buf.len());
                    buf[..n].copy_from_slice(&d[..n]);
                    return Poll::Ready(Ok(n));
                }
                Ok(_) => continue,
                Err(_) => {
                    s.register_recv_waker(cx.waker());
                    return Poll::Pending;
                }
            }
        }
    }

    fn max_datagram_size(&self) -> usize {
        self.max
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

impl Drop for UdpFlow {
    fn drop(&mut self) {
        let mut st = lock(&self.shared.state);
        st.sockets.remove(self.handle);
        drop(st);
        self.shared.poke.notify_one();
    }
}

#[cfg(test)]
#[path = "stack_tests.rs"]
mod tests;
