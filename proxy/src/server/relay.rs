//! Moving bytes between a tunnel and its target with bounded buffers, an idle deadline, and
//! counters.

use std::future::Future as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

pub use super::decision::Relayed;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Copies both ways until both sides finish, either fails, or nothing moves for `idle`;
/// says how many bytes went each way (up: from `a`) and whether it idled out.
/// At most `buffer` bytes per direction are in flight: a slow reader on one side stops the
/// reads from the other (back-pressure), nothing queues without bound.
pub async fn relay<A, B>(a: A, b: B, buffer: usize, idle: Duration, stats: &Stats) -> Relayed
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
    let watchdog = async {
        loop {
            tokio::time::sleep(idle / 4).await;
            let quiet = start.elapsed().as_millis() as u64 - last.load(Ordering::Relaxed);
            if quiet >= idle.as_millis() as u64 {
                return;
            }
        }
    };
    let idle = tokio::select! {
        _ = async { tokio::join!(up, down) } => false,
        _ = watchdog => true,
    };
    Relayed {
        up: moved_up.load(Ordering::Relaxed),
        down: moved_down.load(Ordering::Relaxed),
        idle,
    }
}

async fn copy<R, W>(
    r: &mut R,
    w: &mut W,
    buffer: usize,
    touch: &impl Fn(),
    counters: [&AtomicU64; 2],
) where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; buffer.max(1024)];
    let mut unflushed = false;
    loop {
        let n = {
            let mut read = std::pin::pin!(r.read(&mut buf));
            let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
            match first {
                Poll::Ready(r) => r,
                // Nothing more to read now: what was written must not wait in a writer's
                // buffer (TLS records, a QUIC stream's staging) until more arrives.
                Poll::Pending if unflushed => {
                    if w.flush().await.is_err() {
                        break;
                    }
                    read.await
                }
                Poll::Pending => read.await,
            }
        };
        let n = match n {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        touch();
        if w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        unflushed = true;
        for c in counters {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
        touch();
    }
    // Half-close the other side, as TCP does (FIN / END_STREAM).
    let _ = w.shutdown().await;
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
            let r = relay(proxy_side, target_side, 4096, Duration::from_secs(5), &s).await;
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
            relay(buffered, target_side, 4096, Duration::from_secs(60), &st).await;
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
        let r = relay(proxy_side, target_side, 64, Duration::from_secs(8), &s).await;
        // What moved before the tunnel went quiet is still counted.
        assert_eq!((r.up, r.down, r.idle), (3, 0, true));
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(8) && waited <= Duration::from_secs(11),
            "{waited:?}"
        );
    }
}
