//! The `DatagramFlow` seam: a connected, unreliable datagram flow to one peer.

use std::io;
use std::task::{Context, Poll};

/// Smallest datagram payload a flow must carry for QUIC to run inside it (RFC 9000 §14.1).
pub const QUIC_MIN_DATAGRAM: usize = 1200;

/// A connected, unreliable datagram flow to one peer: a connected UDP socket, a CONNECT-UDP
/// tunnel (QUIC DATAGRAM frames or DATAGRAM capsules), a SOCKS5 UDP ASSOCIATE relay.
///
/// Poll-based so QUIC (quinn's `AsyncUdpSocket`) can drive it without extra tasks.
/// Datagrams larger than [`max_datagram_size`](Self::max_datagram_size) are dropped by
/// `poll_send` (it still returns `Ok`), as a real network would drop them.
pub trait DatagramFlow: Send + Sync + 'static {
    /// Sends one datagram. `Pending` applies back-pressure.
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>>;

    /// Waits until a send is likely to succeed without `Pending` (default: always ready).
    fn poll_send_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Receives one datagram into `buf`, returning its length (truncated to `buf.len()`).
    /// An error ends the flow (e.g. the tunnel's stream closed).
    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>>;

    /// Asks the flow to deliver several datagrams per receive where it can (UDP generic
    /// receive offload, GRO) and returns how many one
    /// [`poll_recv_segments`](Self::poll_recv_segments) may deliver: 1, the default, when it
    /// cannot. A consumer that calls this receives with `poll_recv_segments` only.
    fn enable_receive_offload(&self) -> usize {
        1
    }

    /// Receives one or more datagrams from the peer into `buf`: returns the bytes received
    /// and the length of each datagram in them (every one but the last is exactly that
    /// long). Without receive offload, one datagram.
    fn poll_recv_segments(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<(usize, usize)>> {
        let n = std::task::ready!(self.poll_recv(cx, buf))?;
        Poll::Ready(Ok((n, n)))
    }

    /// The largest datagram payload this flow can carry.
    fn max_datagram_size(&self) -> usize;

    /// Short description of the flow's layers, outermost first (e.g. `udp`, `CONNECT-UDP@h3 p:443 > udp`).
    fn describe(&self) -> String;
}

/// A type-erased [`DatagramFlow`].
pub type BoxFlow = std::sync::Arc<dyn DatagramFlow>;

/// Sends one datagram on a type-erased flow.
pub async fn send(flow: &dyn DatagramFlow, datagram: &[u8]) -> io::Result<()> {
    std::future::poll_fn(|cx| flow.poll_send(cx, datagram)).await
}

/// Receives one datagram from a type-erased flow.
pub async fn recv(flow: &dyn DatagramFlow, buf: &mut [u8]) -> io::Result<usize> {
    std::future::poll_fn(|cx| flow.poll_recv(cx, buf)).await
}
