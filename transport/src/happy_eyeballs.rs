//! Dual-stack connection racing (RFC 8305, "Happy Eyeballs v2"), independent of sockets.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};

/// Default delay before starting the next connection attempt (RFC 8305 §5: 250 ms).
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Orders resolved addresses as RFC 8305 §4 says: interleave the address families, starting
/// with the family of the first address the resolver returned (First Address Family Count 1).
pub fn interleave(addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
    let Some(first) = addrs.first() else {
        return addrs;
    };
    let first_v6 = first.is_ipv6();
    let (mut a, mut b): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|x| x.is_ipv6() == first_v6);
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut ai, mut bi) = (a.drain(..), b.drain(..));
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => break,
            (x, y) => out.extend(x.into_iter().chain(y)),
        }
    }
    out
}

/// Races connection attempts to `addrs` (already ordered), starting a new attempt every
/// `delay` or as soon as the previous one fails, and returns the first success. When every
/// attempt fails, returns the last error.
pub async fn race<T, E, F, Fut>(
    addrs: &[SocketAddr],
    delay: Duration,
    mut attempt: F,
) -> Result<T, Option<E>>
where
    F: FnMut(SocketAddr) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut pending = FuturesUnordered::new();
    let mut next = addrs.iter().copied();
    let mut last_err = None;
    if let Some(a) = next.next() {
        pending.push(Box::pin(attempt(a)) as Pin<Box<Fut>>);
    }
    while !pending.is_empty() {
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        tokio::select! {
            biased;
            done = pending.next() => match done {
                Some(Ok(v)) => return Ok(v),
                Some(Err(e)) => {
                    last_err = Some(e);
                    if let Some(a) = next.next() {
                        pending.push(Box::pin(attempt(a)));
                    }
                }
                None => break,
            },
            _ = &mut timer, if next.len() > 0 => {
                if let Some(a) = next.next() {
                    pending.push(Box::pin(attempt(a)));
                }
            }
        }
    }
    Err(last_err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tokio::time::Instant;

    fn a(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn interleaves_starting_with_first_family() {
        let v = interleave(vec![
            a("[::1]:1"),
            a("[::2]:1"),
            a("127.0.0.1:1"),
            a("127.0.0.2:1"),
            a("127.0.0.3:1"),
        ]);
        assert_eq!(
            v,
            vec![
                a("[::1]:1"),
                a("127.0.0.1:1"),
                a("[::2]:1"),
                a("127.0.0.2:1"),
                a("127.0.0.3:1")
            ]
        );
        let v = interleave(vec![a("127.0.0.1:1"), a("[::1]:1")]);
        assert_eq!(v, vec![a("127.0.0.1:1"), a("[::1]:1")]);
    }

    /// The first address hangs; the second starts after `delay` and wins.
    #[tokio::test(start_paused = true)]
    async fn slow_first_attempt_is_overtaken_after_delay() {
        let started = Arc::new(Mutex::new(Vec::new()));
        let t0 = Instant::now();
        let s = started.clone();
        let addrs = [a("[::1]:1"), a("127.0.0.1:1")];
        let r: Result<SocketAddr, Option<()>> = race(&addrs, Duration::from_millis(250), |addr| {
            let s = s.clone();
            async move {
                s.lock().unwrap().push((addr, t0.elapsed()));
                if addr.is_ipv6() {
                    std::future::pending::<()>().await;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
                Ok(addr)
            }
        })
        .await;
        assert_eq!(r, Ok(a("127.0.0.1:1")));
        let started = started.lock().unwrap().clone();
        assert_eq!(started.len(), 2);
        assert_eq!(started[1].1, Duration::from_millis(250));
    }

    /// A failing attempt starts the next one at once, without waiting for the delay.
    #[tokio::test(start_paused = true)]
    async fn failure_starts_next_immediately() {
        let t0 = Instant::now();
        let addrs = [a("[::1]:1"), a("127.0.0.1:1")];
        let r: Result<(SocketAddr, Duration), Option<&str>> =
            race(&addrs, Duration::from_secs(5), |addr| async move {
                if addr.is_ipv6() {
                    Err("refused")
                } else {
                    Ok((addr, t0.elapsed()))
                }
            })
            .await;
        assert_eq!(r, Ok((a("127.0.0.1:1"), Duration::ZERO)));
    }

    #[tokio::test(start_paused = true)]
    async fn all_failing_returns_last_error() {
        let addrs = [a("[::1]:1"), a("127.0.0.1:1")];
        let r: Result<(), Option<SocketAddr>> =
            race(&addrs, Duration::from_millis(250), |addr| async move {
                Err(addr)
            })
            .await;
        assert_eq!(r, Err(Some(a("127.0.0.1:1"))));
        let r: Result<(), Option<SocketAddr>> = race(
            &[],
            Duration::from_millis(250),
            |addr| async move { Err(addr) },
        )
        .await;
        assert_eq!(r, Err(None));
    }
}
