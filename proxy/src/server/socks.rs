//! The SOCKS listener's driver: runs the sans-I/O core, then CONNECT relays or UDP
//! ASSOCIATE (RFC 1928 §7: a relay socket whose life is the TCP control connection's).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_transport::{datagram, ErrorKind, Prefixed, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::relay::relay;
use super::{Dial, Proxy};
use crate::socks::server::{Event, SocksServer};
use crate::socks::wire::{decode_udp, encode_udp, Command, Reply};

fn reply_for(d: &Dial) -> Reply {
    match d {
        Dial::Denied(_) => Reply::NOT_ALLOWED,
        Dial::Failed(e) => match e.kind() {
            ErrorKind::Resolve | ErrorKind::Timeout => Reply::HOST_UNREACHABLE,
            ErrorKind::Connect => Reply::CONNECTION_REFUSED,
            _ => Reply::GENERAL_FAILURE,
        },
    }
}

async fn flush(core: &mut SocksServer, s: &mut TcpStream) -> bool {
    while let Some(b) = core.poll_transmit() {
        if s.write_all(&b).await.is_err() {
            return false;
        }
    }
    true
}

/// Serves one SOCKS client connection.
pub(crate) async fn serve(proxy: Arc<Proxy>, mut s: TcpStream) {
    proxy.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut core = SocksServer::new(proxy.config.auth.clone());
    let mut buf = vec![0u8; 4096];
    let timeout = std::time::Duration::from_secs(30);
    let (command, target) = loop {
        match core.poll_event() {
            Ok(Some(Event::Request {
                command, target, ..
            })) => break (command, target),
            Ok(None) => {}
            Err(_) => {
                proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
                let _ = flush(&mut core, &mut s).await;
                return;
            }
        }
        if !flush(&mut core, &mut s).await {
            return;
        }
        match tokio::time::timeout(timeout, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => core.receive(&buf[..n]),
            _ => return,
        }
    };
    if let Err(d) = proxy.config.rules.check_target(&target) {
        proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
        core.reply(reply_for(&Dial::Denied(d)), None);
        let _ = flush(&mut core, &mut s).await;
        return;
    }
    let Some(_permit) = proxy.tunnel_slots.clone().try_acquire_owned().ok() else {
        core.reply(Reply::GENERAL_FAILURE, None);
        let _ = flush(&mut core, &mut s).await;
        return;
    };
    proxy.stats.tunnels.fetch_add(1, Ordering::Relaxed);
    proxy.stats.active.fetch_add(1, Ordering::Relaxed);
    match command {
        Command::Connect => connect(&proxy, core, s, target).await,
        Command::UdpAssociate => associate(&proxy, core, s).await,
        Command::Bind => {
            core.reply(Reply::COMMAND_NOT_SUPPORTED, None);
            let _ = flush(&mut core, &mut s).await;
        }
    }
    proxy.stats.active.fetch_sub(1, Ordering::Relaxed);
}

async fn connect(proxy: &Proxy, mut core: SocksServer, mut s: TcpStream, target: Target) {
    let upstream = match proxy.dial_tcp(&target).await {
        Ok(u) => u,
        Err(d) => {
            proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
            core.reply(reply_for(&d), None);
            let _ = flush(&mut core, &mut s).await;
            return;
        }
    };
    let local = s.local_addr().ok().map(Target::from);
    core.reply(Reply::SUCCEEDED, local.as_ref());
    if !flush(&mut core, &mut s).await {
        return;
    }
    let leftover = core.take_leftover();
    let limits = &proxy.config.limits;
    relay(
        Prefixed::new(leftover, s),
        upstream,
        limits.tunnel_buffer,
        limits.idle_timeout,
        &proxy.stats,
    )
    .await;
}

async fn associate(proxy: &Proxy, mut core: SocksServer, mut control: TcpStream) {
    let (Ok(local), Ok(client)) = (control.local_addr(), control.peer_addr()) else {
        return;
    };
    let relay_sock = match UdpSocket::bind(SocketAddr::new(local.ip(), 0)).await {
        Ok(u) => u,
        Err(_) => {
            core.reply(Reply::GENERAL_FAILURE, None);
            let _ = flush(&mut core, &mut control).await;
            return;
        }
    };
    let Ok(bound) = relay_sock.local_addr() else {
        return;
    };
    core.reply(Reply::SUCCEEDED, Some(&Target::from(bound)));
    if !flush(&mut core, &mut control).await {
        return;
    }
    let stats = &proxy.stats;
    let mut client_port: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65_535 + 300];
    let mut flows: std::collections::HashMap<Target, burrow_transport::BoxFlow> =
        Default::default();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Target, Vec<u8>)>(256);
    let mut ctl = [0u8; 64];
    loop {
        tokio::select! {
            // The association lives as long as its TCP control connection.
            r = control.read(&mut ctl) => if !matches!(r, Ok(n) if n > 0) { return },
            r = relay_sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { return };
                // Only the client that asked for the association may use it.
                if from.ip() != client.ip() || client_port.is_some_and(|p| p != from) {
                    continue;
                }
                client_port = Some(from);
                let Some(pkt) = decode_udp(&buf[..n]) else { continue };
                // Fragments are not supported: dropped (RFC 1928 §7 allows it).
                if pkt.frag != 0 || proxy.config.rules.check_target(&pkt.addr).is_err() {
                    continue;
                }
                let flow = match flows.get(&pkt.addr) {
                    Some(f) => f.clone(),
                    None => {
                        let Ok(f) = proxy.dial_udp(&pkt.addr).await else { continue };
                        let (f2, tx, from_addr) = (f.clone(), tx.clone(), pkt.addr.clone());
                        tokio::spawn(async move {
                            let mut b = vec![0u8; 65_535];
                            while let Ok(n) = datagram::recv(&*f2, &mut b).await {
                                if tx.send((from_addr.clone(), b[..n].to_vec())).await.is_err() {
                                    return;
                                }
                            }
                        });
                        flows.insert(pkt.addr.clone(), f.clone());
                        f
                    }
                };
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_up.fetch_add(pkt.data.len() as u64, Ordering::Relaxed);
                let _ = datagram::send(&*flow, pkt.data).await;
            }
            Some((from, data)) = rx.recv() => {
                let Some(to) = client_port else { continue };
                let mut out = Vec::with_capacity(data.len() + 22);
                encode_udp(&from, &data, &mut out);
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                let _ = relay_sock.send_to(&out, to).await;
            }
        }
    }
}
