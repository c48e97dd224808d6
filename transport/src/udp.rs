//! Direct UDP: a connected socket as a [`DatagramFlow`].

use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use tokio::io::{Interest, ReadBuf};
use tokio::net::UdpSocket;

use crate::resolve::{resolve_target, SharedResolver, SystemResolver};
use crate::{BoxFlow, DatagramConnector, DatagramFlow, Error, ErrorKind, Result, Target};

/// Largest UDP payload over IPv4 (65535 − 20 IP − 8 UDP).
pub const MAX_UDP_PAYLOAD_V4: usize = 65_507;
/// Largest UDP payload over IPv6 without jumbograms (65535 − 8 UDP).
pub const MAX_UDP_PAYLOAD_V6: usize = 65_527;

/// A connected UDP socket.
#[derive(Debug)]
pub struct UdpFlow {
    socket: UdpSocket,
    peer: SocketAddr,
    /// Whether the peer ever answered: until it has, an ICMP port unreachable means nobody
    /// listens there (reported as `ConnectionRefused`); afterwards it is ignored as noise.
    heard: std::sync::atomic::AtomicBool,
    /// Receive offload (GRO), set up once a consumer that understands coalesced datagrams
    /// asked for it; `None` inside when the platform refused.
    offload: OnceLock<Option<quinn_udp::UdpSocketState>>,
    /// Whether an ICMP port unreachable after the peer answered ends the flow too.
    end_on_refusal: bool,
}

impl UdpFlow {
    /// Binds an ephemeral local port of the peer's family and connects it to `peer`.
    pub async fn connect(peer: SocketAddr) -> Result<UdpFlow> {
        let local: SocketAddr = if peer.is_ipv4() {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(|e| Error::local(ErrorKind::Connect, "binding a UDP socket").with_source(e))?;
        socket.connect(peer).await.map_err(|e| {
            Error::peer(ErrorKind::Connect, format!("connecting UDP to {peer}")).with_source(e)
        })?;
        Ok(UdpFlow {
            socket,
            peer,
            heard: std::sync::atomic::AtomicBool::new(false),
            offload: OnceLock::new(),
            end_on_refusal: false,
        })
    }

    /// Connects to the first of `addrs` that can be connected: the last failure when none
    /// can, `none()` when there is none.
    pub async fn connect_first(
        addrs: Vec<SocketAddr>,
        none: impl FnOnce() -> Error,
    ) -> Result<UdpFlow> {
        let mut last = None;
        for a in addrs {
            match UdpFlow::connect(a).await {
                Ok(f) => return Ok(f),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(none))
    }

    /// Makes an ICMP port unreachable end the flow even after the peer has answered: the
    /// peer's process is gone (a killed QUIC server or proxy), which a client wants to
    /// know at once rather than after an idle timeout. Off by default, where one lost
    /// target of a relay should not end it.
    pub fn ending_on_refusal(mut self) -> Self {
        self.end_on_refusal = true;
        self
    }

    /// Whether a refusal (ICMP port unreachable) now ends the flow.
    fn refusal_ends(&self) -> bool {
        self.end_on_refusal || !self.heard()
    }

    fn heard(&self) -> bool {
        self.heard.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What a read that would wait returns: `Pending`, or, while the peer has never
    /// answered, a queued ICMP port unreachable (tokio does not wake a reader for a socket
    /// error, so it is looked for here).
    fn pending<T>(&self) -> Poll<io::Result<T>> {
        if !self.refusal_ends() {
            return Poll::Pending;
        }
        match socket2::SockRef::from(&self.socket).take_error() {
            Ok(Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Poll::Ready(Err(e)),
            _ => Poll::Pending,
        }
    }

    /// The underlying socket (for QUIC on a real socket, which may use GSO/GRO).
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}

impl DatagramFlow for UdpFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        match self.socket.poll_send(cx, datagram) {
            Poll::Ready(Ok(_)) => Poll::Ready(Ok(())),
            Poll::Ready(Err(e))
                if e.kind() == io::ErrorKind::ConnectionRefused && self.refusal_ends() =>
            {
                Poll::Ready(Err(e))
            }
            // Too large for the path or refused by ICMP: a datagram is simply lost.
            Poll::Ready(Err(e))
                if e.raw_os_error() == Some(90) // EMSGSIZE
                    || e.kind() == io::ErrorKind::ConnectionRefused =>
            {
                Poll::Ready(Ok(()))
            }
            other => other.map_ok(|_| ()),
        }
    }

    fn poll_send_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.socket.poll_send_ready(cx)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            let mut rb = ReadBuf::new(buf);
            match self.socket.poll_recv(cx, &mut rb) {
                Poll::Ready(Ok(())) => {
                    self.heard.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Poll::Ready(Ok(rb.filled().len()));
                }
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.refusal_ends() {
                        return Poll::Ready(Err(e));
                    }
                    // An ICMP error after the peer has answered: not the end of the flow.
                    continue;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.pending(),
            }
        }
    }

    fn enable_receive_offload(&self) -> usize {
        self.offload
            .get_or_init(|| quinn_udp::UdpSocketState::new((&self.socket).into()).ok())
            .as_ref()
            .map_or(1, |s| s.gro_segments())
    }

    fn poll_recv_segments(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, usize)>> {
        let Some(Some(state)) = self.offload.get() else {
            let n = std::task::ready!(self.poll_recv(cx, buf))?;
            return Poll::Ready(Ok((n, n)));
        };
        loop {
            match self.socket.poll_recv_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return self.pending(),
            }
            let mut meta = [quinn_udp::RecvMeta::default()];
            let r = self.socket.try_io(Interest::READABLE, || {
                state.recv(
                    (&self.socket).into(),
                    &mut [IoSliceMut::new(&mut *buf)],
                    &mut meta,
                )
            });
            match r {
                Ok(_) => {
                    self.heard.store(true, std::sync::atomic::Ordering::Relaxed);
                    let m = meta[0];
                    return Poll::Ready(Ok((m.len, m.stride.max(1))));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    if self.refusal_ends() {
                        return Poll::Ready(Err(e));
                    }
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
    }

    fn max_datagram_size(&self) -> usize {
        if self.peer.is_ipv4() {
            MAX_UDP_PAYLOAD_V4
        } else {
            MAX_UDP_PAYLOAD_V6
        }
    }

    fn describe(&self) -> String {
        "udp".into()
    }
}

/// Opens direct UDP flows for clients. Names are resolved with its resolver (the system's
/// by default); the first address that can be connected is used. Its flows end on an ICMP
/// port unreachable at any time ([`UdpFlow::ending_on_refusal`]): a dead QUIC peer is
/// reported at once.
#[derive(Clone)]
pub struct UdpConnector {
    resolver: SharedResolver,
}

impl Default for UdpConnector {
    fn default() -> Self {
        UdpConnector {
            resolver: Arc::new(SystemResolver),
        }
    }
}

impl std::fmt::Debug for UdpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UdpConnector")
    }
}

impl UdpConnector {
    /// Resolves names with `resolver`.
    pub fn with_resolver(resolver: SharedResolver) -> Self {
        UdpConnector { resolver }
    }
}

#[async_trait]
impl DatagramConnector for UdpConnector {
    async fn connect_datagram(&self, target: &Target) -> Result<BoxFlow> {
        let addrs = resolve_target(&*self.resolver, target).await?;
        let f = UdpFlow::connect_first(addrs, || Error::resolve("no addresses")).await?;
        Ok(Arc::new(f.ending_on_refusal()))
    }

    fn describe(&self) -> String {
        "udp".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datagram::{recv, send};

    #[tokio::test]
    async fn echoes_datagrams_over_loopback() {
        let srv = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = srv.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            for _ in 0..2 {
                let (n, from) = srv.recv_from(&mut buf).await.unwrap();
                srv.send_to(&buf[..n], from).await.unwrap();
            }
        });
        let flow = UdpConnector::default()
            .connect_datagram(&Target::from(addr))
            .await
            .unwrap();
        assert_eq!(flow.max_datagram_size(), MAX_UDP_PAYLOAD_V4);
        let payload = vec![7u8; 1200];
        send(&*flow, &payload).await.unwrap();
        let mut buf = [0u8; 2048];
        let n = recv(&*flow, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], &payload[..]);
        send(&*flow, b"x").await.unwrap();
        let n = recv(&*flow, &mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"x");
    }
}

#[cfg(test)]
mod refused_tests {
    use super::*;
    use crate::datagram::{recv, send};

    /// Nobody listens: the ICMP port unreachable surfaces as `ConnectionRefused` while the
    /// peer has never answered, so QUIC can fail fast instead of waiting for a timeout.
    #[tokio::test]
    async fn closed_port_is_refused_before_any_answer() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = s.local_addr().unwrap();
        drop(s);
        let flow = UdpFlow::connect(addr).await.unwrap();
        send(&flow, b"hello").await.unwrap();
        let mut buf = [0u8; 16];
        // The error is found on the next receive attempt or send, whichever comes first.
        let r = tokio::time::timeout(std::time::Duration::from_millis(100), recv(&flow, &mut buf))
            .await;
        let e = match r {
            Ok(r) => r.unwrap_err(),
            Err(_) => send(&flow, b"again").await.unwrap_err(),
        };
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    async fn recv_segments(flow: &UdpFlow, buf: &mut [u8]) -> io::Result<(usize, usize)> {
        std::future::poll_fn(|cx| flow.poll_recv_segments(cx, buf)).await
    }

    #[tokio::test]
    async fn offloaded_receive_keeps_datagram_boundaries() {
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let flow = UdpFlow::connect(sender.local_addr().unwrap())
            .await
            .unwrap();
        let segments = flow.enable_receive_offload();
        assert!(segments >= 1);
        let to = flow.socket().local_addr().unwrap();
        let datagrams: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i + 1; 1000]).collect();
        // One GSO send of three segments where the kernel allows it (the receiver may get
        // them coalesced), three sends otherwise.
        let state = quinn_udp::UdpSocketState::new((&sender).into()).unwrap();
        let all = datagrams.concat();
        if state.max_gso_segments() >= 3 {
            let t = quinn_udp::Transmit {
                destination: to,
                ecn: None,
                contents: &all,
                segment_size: Some(1000),
                src_ip: None,
            };
            state.send((&sender).into(), &t).unwrap();
        } else {
            for d in &datagrams {
                sender.send_to(d, to).unwrap();
            }
        }
        let mut got = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while got.len() < 3 {
            let (n, stride) = recv_segments(&flow, &mut buf).await.unwrap();
            got.extend(buf[..n].chunks(stride).map(<[u8]>::to_vec));
        }
        assert_eq!(got, datagrams);
    }

    #[tokio::test]
    async fn refusal_surfaces_with_receive_offload() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        let flow = UdpFlow::connect(addr).await.unwrap();
        flow.enable_receive_offload();
        send(&flow, b"anyone?").await.unwrap();
        let mut buf = [0u8; 2048];
        // As above: found by the next receive attempt or send, whichever comes first.
        let r = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            recv_segments(&flow, &mut buf),
        )
        .await;
        let e = match r {
            Ok(r) => r.unwrap_err(),
            Err(_) => send(&flow, b"again").await.unwrap_err(),
        };
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
    }

    /// The peer answered once, then its process went away: a client's flow (from
    /// `UdpConnector`) ends on the next ICMP port unreachable; a relay's flow does not.
    #[tokio::test]
    async fn refusal_after_an_answer_ends_only_a_client_flow() {
        for ending in [true, false] {
            let peer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = peer.local_addr().unwrap();
            let flow = UdpFlow::connect(addr).await.unwrap();
            let flow = if ending {
                flow.ending_on_refusal()
            } else {
                flow
            };
            send(&flow, b"hi").await.unwrap();
            let mut buf = [0u8; 16];
            let (n, from) = peer.recv_from(&mut buf).await.unwrap();
            peer.send_to(&buf[..n], from).await.unwrap();
            assert_eq!(recv(&flow, &mut buf).await.unwrap(), 2);
            drop(peer);
            let mut failed = None;
            for _ in 0..5 {
                if let Err(e) = send(&flow, b"still there?").await {
                    failed = Some(e);
                    break;
                }
                let r = tokio::time::timeout(
                    std::time::Duration::from_millis(50),
                    recv(&flow, &mut buf),
                )
                .await;
                if let Ok(Err(e)) = r {
                    failed = Some(e);
                    break;
                }
            }
            match (ending, failed) {
                (true, Some(e)) => assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused),
                (false, None) => {}
                (e, f) => panic!("ending={e}: {f:?}"),
            }
        }
    }
}
