//! quinn's socket seam over any [`DatagramFlow`](burrow_transport::DatagramFlow): one endpoint per flow, a fixed peer, no
//! GSO, receive offload (GRO) when the flow has it (direct UDP), `may_fragment` (no path
//! MTU discovery inside a tunnel).

use std::fmt;
use std::io::{self, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use burrow_transport::BoxFlow;
use quinn::udp::{RecvMeta, Transmit};
use quinn::{AsyncUdpSocket, UdpPoller};

/// The address quinn is told the peer has. A flow has exactly one peer, so the value only
/// has to be stable; it is from TEST-NET-1 (RFC 5737) and never reaches a real socket.
pub const FLOW_PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 443);

/// A [`DatagramFlow`](burrow_transport::DatagramFlow) as quinn's `AsyncUdpSocket`.
pub struct FlowSocket {
    flow: BoxFlow,
    failure: Arc<Failure>,
    /// Datagrams one receive may deliver coalesced (1 without receive offload).
    segments: usize,
}

/// Why a flow stopped delivering (quinn's endpoint just stops on a receive error, so the
/// handshake would otherwise wait for its idle timeout).
#[derive(Default)]
pub struct Failure {
    error: std::sync::Mutex<Option<String>>,
    notify: tokio::sync::Notify,
}

impl Failure {
    /// The failure, if one happened.
    pub fn get(&self) -> Option<String> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the flow failed, and says why.
    pub async fn wait(&self) -> String {
        loop {
            if let Some(e) = self.error.lock().unwrap_or_else(|p| p.into_inner()).clone() {
                return e;
            }
            self.notify.notified().await;
        }
    }
}

impl FlowSocket {
    /// Wraps `flow`.
    pub fn new(flow: BoxFlow) -> Arc<Self> {
        // quinn understands coalesced receives (it splits them by stride).
        let segments = flow.enable_receive_offload().max(1);
        Arc::new(FlowSocket {
            flow,
            failure: Arc::default(),
            segments,
        })
    }

    fn fail(&self, e: &io::Error) {
        *self.failure.error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.to_string());
        self.failure.notify.notify_one();
    }

    /// The flow's failure signal.
    pub fn failure(&self) -> Arc<Failure> {
        self.failure.clone()
    }
}

impl fmt::Debug for FlowSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FlowSocket")
            .field("flow", &self.flow.describe())
            .finish()
    }
}

struct Poller(BoxFlow);

impl fmt::Debug for Poller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Poller")
    }
}

impl UdpPoller for Poller {
    fn poll_writable(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.0.poll_send_ready(cx)
    }
}

impl AsyncUdpSocket for FlowSocket {
    fn create_io_poller(self: Arc<Self>) -> Pin<Box<dyn UdpPoller>> {
        Box::pin(Poller(self.flow.clone()))
    }

    fn try_send(&self, transmit: &Transmit<'_>) -> io::Result<()> {
        let mut cx = Context::from_waker(Waker::noop());
        match self.flow.poll_send(&mut cx, transmit.contents) {
            Poll::Ready(Err(e)) => {
                self.fail(&e);
                Err(e)
            }
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn poll_recv(
        &self,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
        meta: &mut [RecvMeta],
    ) -> Poll<io::Result<usize>> {
        let (Some(buf), Some(m)) = (bufs.first_mut(), meta.first_mut()) else {
            return Poll::Ready(Ok(0));
        };
        let (n, stride) = match std::task::ready!(self.flow.poll_recv_segments(cx, buf)) {
            Ok(r) => r,
            Err(e) => {
                self.fail(&e);
                return Poll::Ready(Err(e));
            }
        };
        *m = RecvMeta {
            addr: FLOW_PEER,
            len: n,
            stride,
            ecn: None,
            dst_ip: None,
        };
        Poll::Ready(Ok(1))
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0))
    }

    fn may_fragment(&self) -> bool {
        true
    }

    fn max_receive_segments(&self) -> usize {
        self.segments
    }
}
