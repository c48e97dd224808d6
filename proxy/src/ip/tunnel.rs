//! A CONNECT-IP tunnel's two channels as one object, for either side: IP packets (HTTP/3
//! datagrams, else DATAGRAM capsules on the stream) and the control capsules (on the
//! stream, driven by [`IpStreamCore`]).

use std::io;
use std::sync::Mutex;
use std::task::{Context, Poll};

use burrow_http_core::capsule;
use burrow_http_core::connect_ip::{IpCapsule, IpCommand, IpEvent, IpStreamCore};
use burrow_http_core::{driver, TunnelDatagrams};
use bytes::Bytes;
use tokio::sync::mpsc;

use crate::lock;

/// Commands and events queued between a tunnel and its stream's driver task.
pub const STREAM_QUEUE: usize = 256;

/// What arrived on a tunnel.
#[derive(Debug)]
pub enum Arrived {
    /// An IP packet of this length, in the caller's buffer.
    Packet(usize),
    /// A control capsule.
    Capsule(IpCapsule),
}

/// One CONNECT-IP tunnel (see the module docs). It ends when its stream does.
pub struct IpTunnel {
    datagrams: Option<Box<dyn TunnelDatagrams>>,
    tx: mpsc::Sender<IpCommand>,
    /// Packets on the stream wait for room (back-pressure, not loss).
    packets: Mutex<tokio_util::sync::PollSender<IpCommand>>,
    rx: Mutex<mpsc::Receiver<IpEvent>>,
}

/// The error once the tunnel's stream has ended.
fn ended() -> io::Error {
    io::Error::new(io::ErrorKind::BrokenPipe, "CONNECT-IP stream ended")
}

impl IpTunnel {
    /// The tunnel of an established CONNECT-IP request, its stream refusing capsules
    /// over `max_capsule` bytes.
    pub fn new(tunnel: burrow_http_core::Tunnel, max_capsule: u64) -> IpTunnel {
        let (stream, datagrams) = tunnel.into_parts();
        let (mut app, driver::Handle { commands, events }) = driver::channel(STREAM_QUEUE);
        tokio::spawn(async move {
            let mut core = IpStreamCore::new(max_capsule);
            driver::drive(stream, &mut core, &mut app).await;
        });
        IpTunnel {
            datagrams,
            packets: Mutex::new(tokio_util::sync::PollSender::new(commands.clone())),
            tx: commands,
            rx: Mutex::new(events),
        }
    }

    /// The largest IP packet one datagram carries.
    pub fn max_packet(&self) -> usize {
        match &self.datagrams {
            // The context ID takes one byte.
            Some(d) => d.max_payload().saturating_sub(1),
            None => capsule::DEFAULT_MAX_CAPSULE as usize - 16,
        }
    }

    /// Sends an IP packet: `Pending` while the stream's queue is full (HTTP/2, HTTP/1.1);
    /// an HTTP/3 datagram too large for the path is dropped.
    pub fn poll_send_packet(&self, cx: &mut Context<'_>, packet: &[u8]) -> Poll<io::Result<()>> {
        if self.tx.is_closed() {
            return Poll::Ready(Err(ended()));
        }
        match &self.datagrams {
            Some(d) => {
                let mut b = Vec::with_capacity(packet.len() + 1);
                b.push(0); // context ID 0: an IP packet (RFC 9484 §6)
                b.extend_from_slice(packet);
                d.poll_send(cx, &b)
            }
            None => {
                let mut tx = lock(&self.packets);
                if std::task::ready!(tx.poll_reserve(cx)).is_err() {
                    return Poll::Ready(Err(ended()));
                }
                let p = IpCommand::Packet(Bytes::copy_from_slice(packet));
                Poll::Ready(tx.send_item(p).map_err(|_| ended()))
            }
        }
    }

    /// Sends a capsule already encoded; waits while the stream's queue is full.
    pub async fn send_encoded(&self, c: Bytes) -> io::Result<()> {
        self.tx
            .send(IpCommand::Encoded(c))
            .await
            .map_err(|_| ended())
    }

    /// Sends a control capsule if the stream's queue has room (for answers given from a
    /// poll, which cannot wait); dropped otherwise.
    pub fn try_send_capsule(&self, c: IpCapsule) {
        let _ = self.tx.try_send(IpCommand::Capsule(c));
    }

    /// The next packet (into `buf`, truncated to it) or control capsule. An error ends the
    /// tunnel: its stream ended, or the peer broke the capsule protocol.
    pub fn poll_arrived(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<Arrived>> {
        match lock(&self.rx).poll_recv(cx) {
            Poll::Ready(Some(IpEvent::Packet(p))) => {
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p[..n]);
                return Poll::Ready(Ok(Arrived::Packet(n)));
            }
            Poll::Ready(Some(IpEvent::Capsule(c))) => return Poll::Ready(Ok(Arrived::Capsule(c))),
            Poll::Ready(Some(IpEvent::Error(e))) => {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)))
            }
            Poll::Ready(None) => return Poll::Ready(Err(ended())),
            Poll::Pending => {}
        }
        let Some(d) = &self.datagrams else {
            return Poll::Pending;
        };
        loop {
            let datagram = std::task::ready!(d.poll_recv_bytes(cx))?;
            match capsule::split_context(datagram) {
                Ok((0, p)) => {
                    let m = p.len().min(buf.len());
                    buf[..m].copy_from_slice(&p[..m]);
                    return Poll::Ready(Ok(Arrived::Packet(m)));
                }
                // Other context IDs are not ours (RFC 9484 §6): dropped.
                _ => continue,
            }
        }
    }

    /// The next packet or capsule.
    pub async fn arrived(&self, buf: &mut [u8]) -> io::Result<Arrived> {
        std::future::poll_fn(|cx| self.poll_arrived(cx, buf)).await
    }
}
