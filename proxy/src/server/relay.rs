//! Moving bytes between a tunnel and its target with bounded buffers, an idle deadline, and
//! counters.

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use burrow_transport::tcp::Abort;
use tokio::time::Instant;

pub use super::decision::Relayed;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Copies both ways until both sides finish, either fails, or nothing moves for `idle`;
/// says how many bytes went each way (up: from `a`) and whether it idled out.
/// The end of one side's data is passed on as a half-close (a FIN, END_STREAM,
/// FINAL_DATA); a failure of either side (a TCP reset, a stream reset, a CONNECT-TCP
/// stream ended without FINAL_DATA) ends both directions at once without one, so both
/// sides are dropped, abortively (RFC 9113 §8.5, draft-ietf-httpbis-connect-tcp §5):
/// `aborts` (the TCP connections under `b` and, when it is a whole connection, `a`) are
/// armed first, so those connections end with a RST.
/// At most `buffer` bytes per direction are in flight: a slow reader on one side stops the
/// reads from the other (back-pressure), nothing queues without bound.
pub async fn relay<A, B>(
    a: A,
    b: B,
    buffer: usize,
    idle: Duration,
    stats: &Stats,
    aborts: [Option<&Abort>; 2],
) -> Relayed
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ar, mut aw) = tokio::io::split(a);
    let (mut br, mut bw) = tokio::io::split(b);
    let start = Instant::now();
    let last = AtomicU64::new(0);
    let touch = || last.store(start.elapsed().as_millis() as u64, Ordering::Relaxed);
    let (moved_up, moved_down) = (AtomicU64::new(0), AtomicU64::new(0));
    // Each future is made where it is polled and pinned in place: a future moved into
    // another is stored twice, and an idle tunnel is mostly this state.
    let transfer = async {
        let up = copy(
            &mut ar,
            &mut bw,
            buffer,
            &touch,
            [&stats.bytes_up, &moved_up],
        );
        let down = copy(
            &mut br,
            &mut aw,
            buffer,
            &touch,
            [&stats.bytes_down, &moved_down],
        );
        tokio::pin!(up, down);
        let (mut up_done, mut down_done) = (false, false);
        while !(up_done && down_done) {
            let end = tokio::select! {
                e = &mut up, if !up_done => { up_done = true; e }
                e = &mut down, if !down_done => { down_done = true; e }
            };
            if end == End::Failed {
                aborts.into_iter().flatten().for_each(Abort::arm);
                return;
            }
        }
    };
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if quiet >= idle.as_millis() as u64 {
                return;
            }
        }
    };
    tokio::pin!(transfer, watchdog);
    let idle = tokio::select! {
        _ = &mut transfer => false,
        _ = &mut watchdog => true,
    };
    Relayed {
        up: moved_up.load(Ordering::Relaxed),
        down: moved_down.load(Ordering::Relaxed),
        idle,
    }
}

/// What one direction of an idle tunnel reads into: its full buffer is taken only while
/// data flows, so an idle tunnel holds two of these and no more.
pub const IDLE_PROBE: usize = 2048;

/// How long a direction keeps its full buffer once nothing is there to read.
pub const IDLE_BUFFER_GRACE: Duration = Duration::from_millis(100);

/// How one direction of a relay ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// Its data ended, and the end was passed on.
    Finished,
    /// Reading or writing failed: the relay ends abortively.
    Failed,
}

async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    buffer: usize,
    touch: &impl Fn(),
    counters: [&AtomicU64; 2],
) -> End
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut big: Vec<u8> = Vec::new();
    let mut probe = [0u8; IDLE_PROBE];
    let mut unflushed = false;
    loop {
        let use_big = !big.is_empty();
        let got = {
            let buf: &mut [u8] = if use_big { &mut big } else { &mut probe };
            let mut read = std::pin::pin!(r.read(buf));
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(r) => Some(r),
                Poll::Pending => {
                    // Nothing more to read now: what was written must not wait in a
                    // writer's buffer (TLS records, a QUIC stream's staging) until more
                    // arrives.
                    if unflushed && w.flush().await.is_err() {
                        return End::Failed;
                    }
                    match use_big {
                        // Still flowing within the grace, or gone idle (`None`).
                        true => tokio::time::timeout(IDLE_BUFFER_GRACE, read).await.ok(),
                        false => Some(read.await),
                    }
                }
            }
        };
        // Idle: the full buffer goes back; the probe waits for what comes next.
        let (n, from_probe) = match got {
            Some(r) => (r, !use_big),
            None => {
                big = Vec::new();
                (r.read(&mut probe).await, true)
            }
        };
        let n = match n {
            Ok(0) => break,
            Ok(n) => n,
            Err(_) => return End::Failed,
        };
        touch();
        let data = if from_probe { &probe[..n] } else { &big[..n] };
        if w.write_all(data).await.is_err() {
            return End::Failed;
        }
        unflushed = true;
        for c in counters {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        touch();
        // A full probe: data flows, take the full buffer.
        if from_probe && n == IDLE_PROBE {
            big = vec![0u8; buffer.max(IDLE_PROBE)];
        }
    }
    // Half-close the other side, as TCP does (FIN / END_STREAM / FINAL_DATA).
    match w.shutdown().await {
        Ok(()) => End::Finished,
        Err(_) => End::Failed,
    }
}

/// Counters a proxy keeps, so tests and operators can see what it relayed.
#[derive(Debug, Default)]
pub struct Stats {
    /// Client connections accepted (HTTP/1.1, HTTP/2, HTTP/3, SOCKS).
    pub connections: AtomicU64,
    /// Tunnels opened (CONNECT, CONNECT-UDP, SOCKS).
    pub tunnels: AtomicU64,
    /// Tunnels open right now.
    pub active: AtomicU64,
    /// Requests forwarded (absolute-form).
    pub forwarded: AtomicU64,
    /// Requests refused (auth, rules, limits, failures).
    pub refused: AtomicU64,
    /// Bytes from clients to targets.
    pub bytes_up: AtomicU64,
    /// Bytes from targets to clients.
    pub bytes_down: AtomicU64,
    /// UDP datagrams relayed, both ways.
    pub datagrams: AtomicU64,
    /// UDP datagrams dropped because the rules refused their destination (SOCKS5 UDP), or
    /// because an association had too many destinations.
    pub datagrams_refused: AtomicU64,
    /// Requests whose client gave up before they were answered (stream reset), whose work
    /// was cancelled.
    pub cancelled: AtomicU64,
}

/// Shared counters.
pub type SharedStats = Arc<Stats>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn relays_both_ways_and_counts() {
        let (client, proxy_side) = tokio::io::duplex(1024);
        let (target_side, target) = tokio::io::duplex(1024);
        let h = tokio::spawn(async move {
            let (mut tr, mut tw) = tokio::io::split(target);
            let mut buf = vec![0u8; 5];
            tr.read_exact(&mut buf).await.unwrap();
            tw.write_all(b"world!").await.unwrap();
            tw.shutdown().await.unwrap();
            let mut rest = Vec::new();
            tr.read_to_end(&mut rest).await.unwrap();
            buf
        });
        let relay = tokio::spawn(async move {
            let s = Stats::default();
            let r = relay(
                proxy_side,
                target_side,
                4096,
                Duration::from_secs(5),
                &s,
                [None, None],
            )
            .await;
            ((r.up, r.down, r.idle), s.bytes_up.load(Ordering::Relaxed))
        });
        let (mut cr, mut cw) = tokio::io::split(client);
        cw.write_all(b"hello").await.unwrap();
        cw.shutdown().await.unwrap();
        let mut got = Vec::new();
        cr.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"world!");
        assert_eq!(h.await.unwrap(), b"hello");
        let ((up, down, idle), counted) = relay.await.unwrap();
        assert_eq!((up, down, idle, counted), (5, 6, false, 5));
    }

    /// A writer that buffers (as TLS and QUIC stream writers do) must be flushed when the
    /// other side goes quiet, or the tail of a response waits until the target closes.
    #[tokio::test(start_paused = true)]
    async fn buffered_writes_are_flushed_when_the_reader_goes_quiet() {
        let (client, proxy_side) = tokio::io::duplex(1 << 16);
        let (target_side, mut target) = tokio::io::duplex(1 << 16);
        let s = Arc::new(Stats::default());
        let st = s.clone();
        let buffered = tokio::io::BufWriter::with_capacity(8192, proxy_side);
        tokio::spawn(async move {
            relay(
                buffered,
                target_side,
                4096,
                Duration::from_secs(60),
                &st,
                [None, None],
            )
            .await;
        });
        // The target answers and then keeps its connection open (keep-alive).
        target.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        let mut cr = client;
        let mut got = [0u8; 19];
        tokio::time::timeout(Duration::from_secs(5), cr.read_exact(&mut got))
            .await
            .expect("the answer stayed in the relay's writer")
            .unwrap();
        assert_eq!(&got, b"HTTP/1.1 200 OK\r\n\r\n");
        drop(target);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_tunnel_is_closed() {
        let (mut client, proxy_side) = tokio::io::duplex(64);
        let (target_side, _target) = tokio::io::duplex(64);
        let s = Stats::default();
        let t0 = tokio::time::Instant::now();
        client.write_all(b"abc").await.unwrap();
        let r = relay(
            proxy_side,
            target_side,
            64,
            Duration::from_secs(8),
            &s,
            [None, None],
        )
        .await;
        // What moved before the tunnel went quiet is still counted.
        assert_eq!((r.up, r.down, r.idle), (3, 0, true));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(8) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
    }

    /// What an idle tunnel holds: its relay's state, with no full buffer taken (a guard on
    /// the layout: futures moved into futures are stored twice).
    #[test]
    fn an_idle_relay_is_small() {
        let s = Stats::default();
        let (a, b) = (tokio::io::duplex(1).0, tokio::io::duplex(1).0);
        let f = relay(
            a,
            b,
            crate::server::DEFAULT_TUNNEL_BUFFER,
            Duration::from_secs(1),
            &s,
            [None, None],
        );
        let size = std::mem::size_of_val(&f);
        assert!(size <= 2 * IDLE_PROBE + 2048, "{size} bytes");
    }

    /// More than the probe takes the full buffer; going quiet past the grace gives it back;
    /// every byte arrives either way.
    #[tokio::test(start_paused = true)]
    async fn bytes_flow_through_the_probe_and_the_full_buffer() {
        let (mut client, proxy_side) = tokio::io::duplex(1 << 20);
        let (target_side, mut target) = tokio::io::duplex(1 << 20);
        let s = Arc::new(Stats::default());
        let st = s.clone();
        let h = tokio::spawn(async move {
            relay(
                proxy_side,
                target_side,
                64 * 1024,
                Duration::from_secs(60),
                &st,
                [None, None],
            )
            .await
        });
        let burst: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        client.write_all(&burst).await.unwrap();
        let mut got = vec![0u8; burst.len()];
        target.read_exact(&mut got).await.unwrap();
        assert!(got == burst);
        // Quiet past the grace, then a little and a lot again.
        tokio::time::sleep(IDLE_BUFFER_GRACE * 3).await;
        client.write_all(b"x").await.unwrap();
        let mut one = [0u8; 1];
        target.read_exact(&mut one).await.unwrap();
        client.write_all(&burst).await.unwrap();
        target.read_exact(&mut got).await.unwrap();
        assert!(got == burst);
        drop(client);
        drop(target);
        let r = h.await.unwrap();
        assert_eq!(r.up, 2 * burst.len() as u64 + 1);
    }
}
