//! The SOCKS listener's driver: runs the sans-I/O core, then CONNECT relays or UDP
//! ASSOCIATE (RFC 1928 §7: a relay socket whose life is the TCP control connection's).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use burrow_transport::{datagram, BoxFlow, ErrorKind, Prefixed, Target};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::relay::relay;
use super::{Dial, Hold, Proxy};
use crate::socks::server::{Event, SocksServer};
use crate::socks::wire::{decode_udp, encode_udp, Command, Reply};

fn reply_for(d: &Dial) -> Reply {
    match d {
        Dial::Denied(_) => Reply::NOT_ALLOWED,
        Dial::DnsTimeout => Reply::HOST_UNREACHABLE,
        Dial::Failed(e) => match e.kind() {
            ErrorKind::Denied => Reply::NOT_ALLOWED,
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

/// Serves one SOCKS client connection: the negotiation within the handshake deadline, the
/// rules (on the target of a CONNECT; on each datagram's destination for UDP ASSOCIATE,
/// whose address field is only the client's expected source, RFC 1928 §7), then the relay.
pub(crate) async fn serve(proxy: Arc<Proxy>, mut s: TcpStream, from: SocketAddr, _hold: Hold) {
    proxy.stats.connections.fetch_add(1, Ordering::Relaxed);
    let mut core = SocksServer::new(proxy.config.auth.clone());
    let mut buf = vec![0u8; 4096];
    let until = tokio::time::Instant::now() + proxy.config.limits.handshake_timeout;
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
        match tokio::time::timeout_at(until, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => core.receive(&buf[..n]),
            _ => return,
        }
    };
    if command == Command::Connect {
        if let Err(d) = proxy.dialer.check_target(&target) {
            return refuse(&proxy, core, s, reply_for(&Dial::Denied(d))).await;
        }
    }
    let Some(_share) = proxy.clients.work(from.ip()) else {
        return refuse(&proxy, core, s, Reply::GENERAL_FAILURE).await;
    };
    let Ok(_permit) = proxy.tunnel_slots.clone().try_acquire_owned() else {
        return refuse(&proxy, core, s, Reply::GENERAL_FAILURE).await;
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

async fn refuse(proxy: &Proxy, mut core: SocksServer, mut s: TcpStream, reply: Reply) {
    proxy.stats.refused.fetch_add(1, Ordering::Relaxed);
    core.reply(reply, None);
    let _ = flush(&mut core, &mut s).await;
}

async fn connect(proxy: &Proxy, mut core: SocksServer, mut s: TcpStream, target: Target) {
    let upstream = match proxy.dialer.tcp(&target).await {
        Ok(u) => u,
        Err(d) => return refuse(proxy, core, s, reply_for(&d)).await,
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

/// One destination of a UDP association: its flow, the task reading answers from it, and
/// when it was last used.
struct Destination {
    flow: BoxFlow,
    reader: tokio::task::JoinHandle<()>,
    last_used: tokio::time::Instant,
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.reader.abort();
    }
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
    let limits = &proxy.config.limits;
    let mut client_port: Option<SocketAddr> = None;
    let mut buf = vec![0u8; 65_535 + 300];
    let mut flows: HashMap<Target, Destination> = HashMap::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Target, Vec<u8>)>(256);
    let mut ctl = [0u8; 64];
    let mut sweep = tokio::time::interval(limits.udp_idle_timeout.min(limits.idle_timeout) / 4);
    let refused = || stats.datagrams_refused.fetch_add(1, Ordering::Relaxed);
    // Destinations that were refused or failed, not looked up again for a while (a bounded
    // negative cache: a flood of them costs one lookup each per idle period).
    let mut failed: HashMap<Target, tokio::time::Instant> = HashMap::new();
    let max_failed = limits.udp_max_destinations.saturating_mul(4).max(16);
    let mut last_activity = tokio::time::Instant::now();
    loop {
        tokio::select! {
            // The association lives as long as its TCP control connection, and ends when
            // nothing has been relayed for the tunnel idle time (it holds a tunnel slot).
            r = control.read(&mut ctl) => if !matches!(r, Ok(n) if n > 0) { return },
            _ = sweep.tick() => {
                let idle = limits.udp_idle_timeout;
                flows.retain(|_, d| d.last_used.elapsed() < idle);
                failed.retain(|_, at| at.elapsed() < idle);
                if last_activity.elapsed() >= limits.idle_timeout {
                    return;
                }
            }
            r = relay_sock.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { return };
                // Only the client that asked for the association may use it.
                if from.ip() != client.ip() || client_port.is_some_and(|p| p != from) {
                    continue;
                }
                client_port = Some(from);
                let Some(pkt) = decode_udp(&buf[..n]) else { continue };
                // Fragments are not supported: dropped (RFC 1928 §7 allows it).
                if pkt.frag != 0 {
                    continue;
                }
                // Each datagram's destination is what the rules judge.
                if failed.contains_key(&pkt.addr) || proxy.dialer.check_target(&pkt.addr).is_err() {
                    refused();
                    continue;
                }
                let now = tokio::time::Instant::now();
                last_activity = now;
                if let Some(d) = flows.get_mut(&pkt.addr) {
                    d.last_used = now;
                } else {
                    if flows.len() >= limits.udp_max_destinations {
                        let idle = limits.udp_idle_timeout;
                        flows.retain(|_, d| d.last_used.elapsed() < idle);
                    }
                    if flows.len() >= limits.udp_max_destinations {
                        refused();
                        continue;
                    }
                    let f = match proxy.dialer.udp(&pkt.addr).await {
                        Ok(f) => f,
                        Err(_) => {
                            refused();
                            if failed.len() >= max_failed {
                                failed.clear();
                            }
                            failed.insert(pkt.addr.clone(), now);
                            continue;
                        }
                    };
                    let (f2, tx, from_addr) = (f.clone(), tx.clone(), pkt.addr.clone());
                    let reader = tokio::spawn(async move {
                        let mut b = vec![0u8; 65_535];
                        while let Ok(n) = datagram::recv(&*f2, &mut b).await {
                            if tx.send((from_addr.clone(), b[..n].to_vec())).await.is_err() {
                                return;
                            }
                        }
                    });
                    flows.insert(pkt.addr.clone(), Destination { flow: f, reader, last_used: now });
                }
                let Some(d) = flows.get(&pkt.addr) else { continue };
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_up.fetch_add(pkt.data.len() as u64, Ordering::Relaxed);
                let _ = datagram::send(&*d.flow, pkt.data).await;
            }
            Some((from, data)) = rx.recv() => {
                let Some(to) = client_port else { continue };
                last_activity = tokio::time::Instant::now();
                if let Some(d) = flows.get_mut(&from) {
                    d.last_used = last_activity;
                }
                let mut out = Vec::with_capacity(data.len() + 22);
                encode_udp(&from, &data, &mut out);
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                let _ = relay_sock.send_to(&out, to).await;
            }
        }
    }
}
