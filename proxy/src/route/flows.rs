//! Datagram flows through proxies: CONNECT-UDP (RFC 9298) over HTTP/3 datagrams or over
//! DATAGRAM capsules on an HTTP/2 or HTTP/1.1 stream, and SOCKS5 UDP ASSOCIATE.

use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use burrow_http_core::capsule::{self, CapsuleDecoder, CapsuleType};
use burrow_http_core::TunnelDatagrams;
use burrow_transport::{BoxFlow, BoxStream, DatagramFlow, Target};
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::socks::wire::{decode_udp, encode_udp};

/// Datagrams queued each way before new ones are dropped (as a congested network would).
pub const FLOW_QUEUE: usize = 256;
/// Largest UDP payload.
const MAX_UDP: usize = 65_527;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// CONNECT-UDP over HTTP/3: QUIC DATAGRAM frames bound to the request stream, context id 0.
/// The stream is held (and read, skipping capsules) for the flow's life; its end ends it.
pub struct DatagramTunnelFlow {
    datagrams: Box<dyn TunnelDatagrams>,
    closed: Arc<std::sync::atomic::AtomicBool>,
    describe: String,
}

impl DatagramTunnelFlow {
    /// A flow over an HTTP/3 CONNECT-UDP tunnel.
    pub fn new(stream: BoxStream, datagrams: Box<dyn TunnelDatagrams>, describe: String) -> Self {
        let closed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let c = closed.clone();
        tokio::spawn(async move {
            let mut s = stream;
            let mut buf = vec![0u8; 4096];
            while let Ok(n) = s.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
            c.store(true, std::sync::atomic::Ordering::Release);
        });
        DatagramTunnelFlow {
            datagrams,
            closed,
            describe,
        }
    }
}

impl DatagramFlow for DatagramTunnelFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let mut b = Vec::with_capacity(datagram.len() + 1);
        b.push(0); // context id 0: UDP payload (RFC 9298 §5)
        b.extend_from_slice(datagram);
        // Too large for a QUIC DATAGRAM frame: dropped by the channel, never a capsule.
        self.datagrams.poll_send(cx, &b)
    }

    fn poll_recv(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let mut tmp = vec![0u8; buf.len() + 8];
        loop {
            let n = std::task::ready!(self.datagrams.poll_recv(cx, &mut tmp))?;
            match capsule::split_context(Bytes::copy_from_slice(&tmp[..n])) {
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
    /// A flow over a CONNECT-UDP tunnel stream.
    pub fn new(stream: BoxStream, max_capsule: u64, describe: String) -> Self {
        let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(FLOW_QUEUE);
        let (in_tx, in_rx) = mpsc::channel::<Bytes>(FLOW_QUEUE);
        let (mut rd, mut wr) = tokio::io::split(stream);
        tokio::spawn(async move {
            let mut buf = BytesMut::new();
            while let Some(d) = out_rx.recv().await {
                buf.clear();
                capsule::encode_udp_datagram(&d, &mut buf);
                if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                    return;
                }
            }
            let _ = wr.shutdown().await;
        });
        tokio::spawn(async move {
            let mut dec = CapsuleDecoder::new(max_capsule);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = match rd.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                dec.push(&buf[..n]);
                loop {
                    match dec.poll_capsule() {
                        Ok(Some(c)) if c.ty == CapsuleType::DATAGRAM => {
                            if let Ok((0, udp)) = capsule::split_context(c.value) {
                                let _ = in_tx.try_send(udp);
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return,
                    }
                }
            }
        });
        CapsuleFlow {
            tx: out_tx,
            rx: Mutex::new(in_rx),
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
    alive: Arc<std::sync::atomic::AtomicBool>,
    describe: String,
}

impl SocksUdpFlow {
    /// A flow to `target` through the relay reached by `relay`, alive while `control` is.
    pub fn new(control: BoxStream, relay: BoxFlow, target: Target, describe: String) -> Self {
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let a = alive.clone();
        tokio::spawn(async move {
            let mut c = control;
            let mut b = [0u8; 64];
            while let Ok(n) = c.read(&mut b).await {
                if n == 0 {
                    break;
                }
            }
            a.store(false, std::sync::atomic::Ordering::Release);
        });
        let mut hdr = Vec::new();
        encode_udp(&target, &[], &mut hdr);
        SocksUdpFlow {
            relay,
            target,
            header_len: hdr.len(),
            alive,
            describe,
        }
    }
}

impl DatagramFlow for SocksUdpFlow {
    fn poll_send(&self, cx: &mut Context<'_>, datagram: &[u8]) -> Poll<io::Result<()>> {
        if !self.alive.load(std::sync::atomic::Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "SOCKS control connection closed",
            )));
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
            if !self.alive.load(std::sync::atomic::Ordering::Acquire) {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "SOCKS control connection closed",
                )));
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
