//! A SOCKS5 UDP association (RFC 1928 §7): a relay socket whose life is the TCP control
//! connection's. Who may use the relay, which destinations a datagram may go to (each
//! datagram's destination is what the rules judge; the request's address is only the
//! client's expected source), how many at once and for how long are decided by the
//! sans-I/O [`Association`]; a driver (`run`) moves the datagrams.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::driver;
use burrow_transport::{datagram, BoxFlow, BoxStream, Target};
use bytes::Bytes;
use tokio::io::AsyncReadExt;
use tokio::net::UdpSocket;

use super::dial::Judge;
use super::hooks::{End, Flow, HookChain, Summary, TunnelKind, What};
use super::{Limits, Proxy, State};
use crate::socks::wire::{decode_udp, encode_udp};

/// What to do with a datagram from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Not for us (another sender, malformed, a fragment): dropped silently.
    Ignore,
    /// Refused (the rules, a destination that failed lately, too many destinations):
    /// dropped and counted.
    Refuse,
    /// Send the payload to this destination, already reached.
    Send(Target, Bytes),
    /// Reach this new destination first, then tell [`Association::dialed`].
    Dial(Target, Bytes),
}

/// The decisions of one association.
///
/// Call contract: each datagram from the client goes to
/// [`from_client`](Self::from_client), each answer from a destination to
/// [`from_destination`](Self::from_destination); [`handle_timeout`](Self::handle_timeout)
/// at [`poll_timeout`](Self::poll_timeout). Destinations the core forgets come out of
/// [`poll_forgotten`](Self::poll_forgotten); the association is over once
/// [`is_over`](Self::is_over).
pub struct Association {
    judge: Arc<Judge>,
    client: IpAddr,
    client_port: Option<SocketAddr>,
    destinations: HashMap<Target, Instant>,
    failed: HashMap<Target, Instant>,
    forgotten: Vec<Target>,
    max_destinations: usize,
    udp_idle: Duration,
    idle: Duration,
    last_activity: Instant,
    next_sweep: Instant,
    over: bool,
}

impl Association {
    /// An association for the client at `client`, under `limits`, from `now`.
    pub fn new(judge: Arc<Judge>, client: IpAddr, limits: &Limits, now: Instant) -> Self {
        let a = Association {
            judge,
            client,
            client_port: None,
            destinations: HashMap::new(),
            failed: HashMap::new(),
            forgotten: Vec::new(),
            max_destinations: limits.udp_max_destinations,
            udp_idle: limits.udp_idle_timeout,
            idle: limits.idle_timeout,
            last_activity: now,
            next_sweep: now,
            over: false,
        };
        Association {
            next_sweep: now + a.sweep_every(),
            ..a
        }
    }

    fn sweep_every(&self) -> Duration {
        (self.udp_idle.min(self.idle) / 4).max(Duration::from_millis(1))
    }

    /// Destinations (and failures) remembered at most this many: a flood of refused ones
    /// costs one lookup each per idle period.
    fn max_failed(&self) -> usize {
        self.max_destinations.saturating_mul(4).max(16)
    }

    /// Judges a datagram from `from`.
    pub fn from_client(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Verdict {
        // Only the client that asked for the association may use it.
        if from.ip() != self.client || self.client_port.is_some_and(|p| p != from) {
            return Verdict::Ignore;
        }
        self.client_port = Some(from);
        // Fragments are not supported: dropped (RFC 1928 §7 allows it).
        let Some(pkt) = decode_udp(datagram).filter(|p| p.frag == 0) else {
            return Verdict::Ignore;
        };
        if self.failed.contains_key(&pkt.addr) || self.judge.check(&pkt.addr).is_err() {
            return Verdict::Refuse;
        }
        self.last_activity = now;
        let data = Bytes::copy_from_slice(pkt.data);
        if let Some(t) = self.destinations.get_mut(&pkt.addr) {
            *t = now;
            return Verdict::Send(pkt.addr, data);
        }
        if self.destinations.len() >= self.max_destinations {
            self.forget_idle(now);
        }
        if self.destinations.len() >= self.max_destinations {
            return Verdict::Refuse;
        }
        Verdict::Dial(pkt.addr, data)
    }

    /// How reaching `target` went; `true`: send the datagram that asked for it.
    pub fn dialed(&mut self, target: &Target, ok: bool, now: Instant) -> bool {
        if ok {
            self.destinations.insert(target.clone(), now);
        } else {
            if self.failed.len() >= self.max_failed() {
                self.failed.clear();
            }
            self.failed.insert(target.clone(), now);
        }
        ok
    }

    /// An answer from `from`: where to send it, if the client has spoken yet.
    pub fn from_destination(&mut self, from: &Target, now: Instant) -> Option<SocketAddr> {
        let to = self.client_port?;
        self.last_activity = now;
        if let Some(t) = self.destinations.get_mut(from) {
            *t = now;
        }
        Some(to)
    }

    fn forget_idle(&mut self, now: Instant) {
        let idle = self.udp_idle;
        let forgotten = &mut self.forgotten;
        self.destinations.retain(|t, at| {
            let keep = now.duration_since(*at) < idle;
            if !keep {
                forgotten.push(t.clone());
            }
            keep
        });
    }

    /// When the next sweep is due.
    pub fn poll_timeout(&self) -> Instant {
        self.next_sweep
    }

    /// Forgets idle destinations and failures; ends the association when nothing was
    /// relayed for the tunnel idle time (it holds a tunnel slot).
    pub fn handle_timeout(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + self.sweep_every();
        self.forget_idle(now);
        let idle = self.udp_idle;
        self.failed.retain(|_, at| now.duration_since(*at) < idle);
        if now.duration_since(self.last_activity) >= self.idle {
            self.over = true;
        }
    }

    /// A destination no longer remembered (its flow can go).
    pub fn poll_forgotten(&mut self) -> Option<Target> {
        self.forgotten.pop()
    }

    /// Whether the association has ended.
    pub fn is_over(&self) -> bool {
        self.over
    }
}

/// One destination's flow, the task reading its answers, and what it moved since when.
struct Destination {
    flow: BoxFlow,
    reader: tokio::task::JoinHandle<()>,
    opened: Instant,
    up: u64,
    down: u64,
}

/// Whom the association asks and tells of its datagram flows (one per destination), and
/// how it reaches them: through the route a hook chose for the association, or else the
/// one the per-destination rules pick.
pub(crate) struct Tell<'a> {
    pub hooks: &'a HookChain,
    pub flow: &'a Flow,
    pub state: &'a State,
    pub chosen: Option<usize>,
}

impl Tell<'_> {
    fn route(&self, to: &Target) -> usize {
        let r = self.chosen.unwrap_or_else(|| self.state.policy.pick(to));
        r.min(self.state.routes.len().saturating_sub(1))
    }

    async fn closed(&self, to: Target, d: &Destination, end: End) {
        if self.hooks.is_empty() {
            return;
        }
        let route = self.state.policy.route_name(self.route(&to)).to_string();
        let s = Summary {
            what: What::Tunnel(TunnelKind::SocksUdp),
            target: Some(to),
            route,
            user: self.flow.user.clone(),
            upstream_version: None,
            status: None,
            socks_reply: None,
            error: None,
            bytes_up: d.up,
            bytes_down: d.down,
            duration: driver::now().saturating_duration_since(d.opened),
            latency: None,
            end,
        };
        self.hooks.datagram_flow_closed(self.flow, &s).await;
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Relays datagrams between the client and its destinations through `relay` until the
/// control connection ends or the association idles out; tells the hooks of each
/// destination's flow; says how many bytes went up and down.
pub(crate) async fn run(
    proxy: &Proxy,
    mut control: BoxStream,
    relay: UdpSocket,
    peer: SocketAddr,
    tell: Tell<'_>,
) -> (u64, u64) {
    let stats = &proxy.stats;
    let Some(first) = tell.state.routes.first() else {
        return (0, 0);
    };
    let mut core = Association::new(
        first.dialer.judge().clone(),
        peer.ip(),
        &proxy.config.limits,
        driver::now(),
    );
    let mut flows: HashMap<Target, Destination> = HashMap::new();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Target, Vec<u8>)>(256);
    let (mut buf, mut ctl) = (vec![0u8; 65_535 + 300], [0u8; 64]);
    let (mut up, mut down) = (0u64, 0u64);
    while !core.is_over() {
        while let Some(t) = core.poll_forgotten() {
            if let Some(d) = flows.remove(&t) {
                tell.closed(t, &d, End::Idle).await;
            }
        }
        let sweep = tokio::time::Instant::from_std(core.poll_timeout());
        tokio::select! {
            r = control.read(&mut ctl) => if !matches!(r, Ok(n) if n > 0) { break },
            _ = tokio::time::sleep_until(sweep) => core.handle_timeout(driver::now()),
            r = relay.recv_from(&mut buf) => {
                let Ok((n, from)) = r else { break };
                let (to, data) = match core.from_client(from, &buf[..n], driver::now()) {
                    Verdict::Ignore => continue,
                    Verdict::Refuse => {
                        stats.datagrams_refused.fetch_add(1, Ordering::Relaxed);
                        continue;
                    }
                    Verdict::Send(to, data) => (to, data),
                    Verdict::Dial(to, data) => {
                        // The hooks may refuse the destination; the route's dialer judges it
                        // again on the addresses it resolves to.
                        let f = match tell.hooks.datagram_destination(tell.flow, &to).await {
                            Ok(()) => {
                                let dialer = &tell.state.routes[tell.route(&to)].dialer;
                                dialer.udp(&to).await.ok()
                            }
                            Err(_) => None,
                        };
                        if !core.dialed(&to, f.is_some(), driver::now()) {
                            stats.datagrams_refused.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        if let Some(f) = f {
                            flows.insert(to.clone(), read_answers(f, to.clone(), tx.clone()));
                            tell.hooks.datagram_flow_opened(tell.flow, &to).await;
                        }
                        (to, data)
                    }
                };
                let Some(d) = flows.get_mut(&to) else { continue };
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
                (d.up, up) = (d.up + data.len() as u64, up + data.len() as u64);
                let _ = datagram::send(&*d.flow, &data).await;
            }
            Some((from, data)) = rx.recv() => {
                let Some(to) = core.from_destination(&from, driver::now()) else { continue };
                if let Some(d) = flows.get_mut(&from) {
                    d.down += data.len() as u64;
                }
                down += data.len() as u64;
                let mut out = Vec::with_capacity(data.len() + 22);
                encode_udp(&from, &data, &mut out);
                stats.datagrams.fetch_add(1, Ordering::Relaxed);
                stats.bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
                let _ = relay.send_to(&out, to).await;
            }
        }
    }
    for (t, d) in flows.drain() {
        tell.closed(t, &d, End::Completed).await;
    }
    (up, down)
}

fn read_answers(
    flow: BoxFlow,
    from: Target,
    tx: tokio::sync::mpsc::Sender<(Target, Vec<u8>)>,
) -> Destination {
    let f = flow.clone();
    let reader = tokio::spawn(async move {
        let mut b = vec![0u8; 65_535];
        while let Ok(n) = datagram::recv(&*f, &mut b).await {
            if tx.send((from.clone(), b[..n].to_vec())).await.is_err() {
                return;
            }
        }
    });
    Destination {
        flow,
        reader,
        opened: driver::now(),
        up: 0,
        down: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_test_support::playbook;
    use burrow_test_support::playbook::{Tick, Timed, TimedCore};

    /// The association's vocabulary: datagrams and dial outcomes in; verdicts, where answers
    /// go, forgotten destinations and the end out.
    #[derive(Debug)]
    enum In {
        Client(&'static str, Vec<u8>),
        Dialed(&'static str, bool),
        Answer(&'static str),
    }

    #[derive(Debug, PartialEq)]
    enum Out {
        Verdict(Verdict),
        Send(bool),
        To(Option<SocketAddr>),
        Forgotten(Target),
        Over,
    }

    struct A(Association, Vec<Out>, bool);

    impl TimedCore for A {
        type Input = In;
        type Output = Out;
        fn handle(&mut self, i: In, now: Instant) {
            let o = match i {
                In::Client(from, d) => {
                    Out::Verdict(self.0.from_client(from.parse().unwrap(), &d, now))
                }
                In::Dialed(t, ok) => Out::Send(self.0.dialed(&t.parse().unwrap(), ok, now)),
                In::Answer(t) => Out::To(self.0.from_destination(&t.parse().unwrap(), now)),
            };
            self.1.push(o);
            self.collect();
        }
        fn poll_output(&mut self) -> Option<Out> {
            (!self.1.is_empty()).then(|| self.1.remove(0))
        }
        fn poll_timeout(&self) -> Option<Instant> {
            Some(self.0.poll_timeout())
        }
        fn handle_timeout(&mut self, now: Instant) {
            self.0.handle_timeout(now);
            self.collect();
        }
    }

    impl A {
        fn collect(&mut self) {
            while let Some(t) = self.0.poll_forgotten() {
                self.1.push(Out::Forgotten(t));
            }
            if self.0.is_over() && !self.2 {
                self.2 = true;
                self.1.push(Out::Over);
            }
        }
    }

    fn limits() -> Limits {
        Limits {
            udp_max_destinations: 2,
            udp_idle_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            ..Limits::default()
        }
    }

    fn association() -> Timed<A> {
        let judge = Arc::new(Judge::new(
            super::super::Rules::default(),
            Default::default(),
            false,
        ));
        Timed::new(|now| {
            A(
                Association::new(judge, "192.0.2.9".parse().unwrap(), &limits(), now),
                Vec::new(),
                false,
            )
        })
    }

    fn to(dest: &str, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        encode_udp(&dest.parse().unwrap(), payload, &mut v);
        v
    }

    fn dial(t: &str, p: &'static [u8]) -> Out {
        Out::Verdict(Verdict::Dial(t.parse().unwrap(), Bytes::from_static(p)))
    }

    #[test]
    fn only_the_client_and_only_allowed_destinations() {
        playbook!(association(),
            // Another host may not use the relay; the client's first port binds it.
            >> Tick::In(In::Client("192.0.2.99:4000", to("198.51.100.1:53", b"q"))),
            << Out::Verdict(Verdict::Ignore),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.1:53", b"q"))),
            << dial("198.51.100.1:53", b"q"),
            >> Tick::In(In::Dialed("198.51.100.1:53", true)),
            << Out::Send(true),
            >> Tick::In(In::Client("192.0.2.9:4001", to("198.51.100.1:53", b"q"))),
            << Out::Verdict(Verdict::Ignore),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.1:53", b"again"))),
            << Out::Verdict(Verdict::Send("198.51.100.1:53".parse().unwrap(), Bytes::from_static(b"again"))),
            // Each datagram's destination is judged: loopback is refused.
            >> Tick::In(In::Client("192.0.2.9:4000", to("127.0.0.1:53", b"q"))),
            << Out::Verdict(Verdict::Refuse),
            // Answers go to the client's port.
            >> Tick::In(In::Answer("198.51.100.1:53")),
            << Out::To(Some("192.0.2.9:4000".parse().unwrap())),
        );
    }

    #[test]
    fn destinations_are_capped_failures_remembered_and_idle_ones_forgotten() {
        playbook!(association(),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.1:53", b"a"))),
            << dial("198.51.100.1:53", b"a"),
            >> Tick::In(In::Dialed("198.51.100.1:53", true)),
            << Out::Send(true),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.2:53", b"b"))),
            << dial("198.51.100.2:53", b"b"),
            >> Tick::In(In::Dialed("198.51.100.2:53", false)),
            << Out::Send(false),
            // A destination that failed is not dialed again for a while.
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.2:53", b"b"))),
            << Out::Verdict(Verdict::Refuse),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.3:53", b"c"))),
            << dial("198.51.100.3:53", b"c"),
            >> Tick::In(In::Dialed("198.51.100.3:53", true)),
            << Out::Send(true),
            // Two destinations at most.
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.4:53", b"d"))),
            << Out::Verdict(Verdict::Refuse),
            // Idle for the UDP idle time: forgotten (in the order they are swept).
            >> Tick::Advance(Duration::from_secs(121)),
            << ?("forgotten", |o| matches!(o, Out::Forgotten(_))),
            << ?("forgotten", |o| matches!(o, Out::Forgotten(_))),
            >> Tick::In(In::Client("192.0.2.9:4000", to("198.51.100.2:53", b"b"))),
            << dial("198.51.100.2:53", b"b"),
        );
    }

    #[test]
    fn the_association_ends_after_the_idle_time() {
        let mut pb = playbook::Playbook::new(association());
        for _ in 0..9 {
            pb.input(Tick::Advance(Duration::from_secs(30)));
        }
        pb.input(Tick::Advance(Duration::from_secs(30)));
        pb.expect(Out::Over);
        pb.run();
    }

    #[test]
    fn survives_arbitrary_datagrams_and_orders() {
        let mut next = burrow_test_support::rng(0xa550);
        for _ in 0..2000 {
            let ops: Vec<u8> = (0..64).map(|_| next()).collect();
            crate::fuzzing::association_operations(&ops);
        }
    }
}
