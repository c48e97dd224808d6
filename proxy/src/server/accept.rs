//! Accepting connections without spinning: when `accept()` fails (EMFILE and ENFILE when
//! the process or system is out of descriptors, ENOBUFS, ENOMEM), the listener waits before
//! trying again, doubling the wait up to a limit, as hyper's and tokio's examples advise.
//! The pending connection stays in the kernel's backlog meanwhile.

use std::future::Future;
use std::time::Duration;

use tokio::sync::Notify;

/// The first wait after a failed `accept()`.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait between attempts while `accept()` keeps failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Waits for the next connection from `accept`, backing off while it fails; `None` once
/// `stop` is notified.
pub(crate) async fn accept<T, F, Fut>(mut accept: F, stop: &Notify) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::io::Result<T>>,
{
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let r = tokio::select! {
            r = accept() => r,
            _ = stop.notified() => return None,
        };
        match r {
            Ok(x) => return Some(x),
            Err(e) => {
                tracing::warn!("accept failed, retrying in {backoff:?}: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.notified() => return None,
                }
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Out of descriptors for ten seconds: `accept()` is tried a handful of times, not
    /// millions, and the first connection after the shortage is taken.
    #[tokio::test(start_paused = true)]
    async fn emfile_backs_off_instead_of_spinning() {
        let calls = AtomicUsize::new(0);
        let t0 = tokio::time::Instant::now();
        let stop = Notify::new();
        let got = accept(
            || {
                calls.fetch_add(1, Ordering::Relaxed);
                async {
                    if t0.elapsed() < Duration::from_secs(10) {
                        Err(std::io::Error::from_raw_os_error(24)) // EMFILE
                    } else {
                        Ok(7)
                    }
                }
            },
            &stop,
        )
        .await;
        assert_eq!(got, Some(7));
        let n = calls.load(Ordering::Relaxed);
        // 10 ms, 20, 40, ... 640 ms, then 1 s apart: about 16 attempts in 10 s.
        assert!((10..=20).contains(&n), "{n} attempts");
        assert!(t0.elapsed() < Duration::from_secs(11));
    }

    #[tokio::test(start_paused = true)]
    async fn stop_ends_a_backoff() {
        let stop = std::sync::Arc::new(Notify::new());
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            s.notify_waiters();
        });
        let got: Option<()> = accept(
            || async { Err(std::io::Error::from_raw_os_error(24)) },
            &stop,
        )
        .await;
        assert_eq!(got, None);
    }
}
