//! The connection pool behind [`Client`](crate::Client): keyed by (route, origin), each
//! entry knowing its version; HTTP/2 connections are shared, HTTP/1.1 ones used one at a time.
//!
//! Sans-I/O: the pool holds connection handles and decides which to use, when to open one
//! and when to wait; it opens nothing itself and reads no clock. Call contract:
//! [`checkout`](Pool::checkout) (or [`checkout_if_ready`](Pool::checkout_if_ready)) with the
//! time; after a [`Checkout::Connect`], exactly one [`finish_connect`](Pool::finish_connect);
//! [`remove`](Pool::remove) a connection that failed. Idle connections are dropped at each
//! checkout of their key, or by [`handle_timeout`](Pool::handle_timeout) at
//! [`poll_timeout`](Pool::poll_timeout).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Version;
use tokio::sync::Notify;

use crate::HttpConnection;

/// What identifies interchangeable connections: the route, the scheme and the origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PoolKey {
    /// The route's description (e.g. `tcp`, `CONNECT@h2 p:443 > tcp`).
    pub route: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host:port`.
    pub authority: String,
}

struct Entry {
    conn: Arc<dyn HttpConnection>,
    last_used: Instant,
}

#[derive(Default)]
struct Slot {
    entries: Vec<Entry>,
    /// Connections being set up. While the origin's version is unknown or multiplexed, at
    /// most one, and later requests wait for it instead of opening their own.
    connecting: usize,
    /// The version the origin spoke last time.
    known: Option<Version>,
    notify: Arc<Notify>,
}

/// What a checkout found.
pub enum Checkout {
    /// A connection to use now.
    Ready(Arc<dyn HttpConnection>),
    /// Open a new connection, then call [`Pool::finish_connect`].
    Connect,
    /// Wait for the connection being set up, then check out again.
    Wait(Arc<Notify>),
}

/// The pool.
pub struct Pool {
    slots: Mutex<HashMap<PoolKey, Slot>>,
    idle_timeout: Duration,
    max_per_origin: usize,
}

impl Pool {
    /// A pool dropping connections idle longer than `idle_timeout`, with at most
    /// `max_per_origin` HTTP/1.1 connections per key.
    pub fn new(idle_timeout: Duration, max_per_origin: usize) -> Self {
        Pool {
            slots: Mutex::new(HashMap::new()),
            idle_timeout,
            max_per_origin: max_per_origin.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Slot>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Finds a connection for `key`, or says to open or wait for one.
    pub fn checkout(&self, key: &PoolKey, now: Instant) -> Checkout {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_default();
        let idle = self.idle_timeout;
        slot.entries.retain(|e| {
            !e.conn.is_closed() && (now.duration_since(e.last_used) < idle || !e.conn.is_ready())
        });
        if let Some(e) = slot.entries.iter_mut().find(|e| e.conn.is_ready()) {
            e.last_used = now;
            return Checkout::Ready(e.conn.clone());
        }
        let one_at_a_time = slot.known.is_none_or(|v| v != Version::HTTP_11);
        if one_at_a_time {
            if slot.connecting > 0 {
                return Checkout::Wait(slot.notify.clone());
            }
            slot.connecting += 1;
            return Checkout::Connect;
        }
        if slot.entries.len() + slot.connecting < self.max_per_origin {
            slot.connecting += 1;
            return Checkout::Connect;
        }
        // At the cap: queue on the least recently used busy HTTP/1.1 connection.
        match slot.entries.iter_mut().min_by_key(|e| e.last_used) {
            Some(e) => {
                e.last_used = now;
                Checkout::Ready(e.conn.clone())
            }
            None => Checkout::Wait(slot.notify.clone()),
        }
    }

    /// Like [`checkout`](Self::checkout) but only ever returns a ready connection (or
    /// `Wait` with the slot's notifier).
    pub fn checkout_if_ready(&self, key: &PoolKey, now: Instant) -> Checkout {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_default();
        match slot
            .entries
            .iter_mut()
            .find(|e| !e.conn.is_closed() && e.conn.is_ready())
        {
            Some(e) => {
                e.last_used = now;
                Checkout::Ready(e.conn.clone())
            }
            None => Checkout::Wait(slot.notify.clone()),
        }
    }

    /// Records the outcome of a [`Checkout::Connect`] and wakes waiters.
    pub fn finish_connect(
        &self,
        key: &PoolKey,
        conn: Option<Arc<dyn HttpConnection>>,
        now: Instant,
    ) {
        let mut slots = self.lock();
        let slot = slots.entry(key.clone()).or_default();
        slot.connecting = slot.connecting.saturating_sub(1);
        if let Some(c) = conn {
            slot.known = Some(c.version());
            slot.entries.push(Entry {
                conn: c,
                last_used: now,
            });
        }
        slot.notify.notify_waiters();
    }

    /// Drops a connection that failed.
    pub fn remove(&self, key: &PoolKey, conn: &Arc<dyn HttpConnection>) {
        let mut slots = self.lock();
        if let Some(slot) = slots.get_mut(key) {
            slot.entries.retain(|e| !Arc::ptr_eq(&e.conn, conn));
        }
    }

    /// When the next idle connection expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let slots = self.lock();
        slots
            .values()
            .flat_map(|s| s.entries.iter())
            .filter(|e| e.conn.is_ready())
            .map(|e| e.last_used + self.idle_timeout)
            .min()
    }

    /// Drops the connections idle for the idle timeout at `now`, and closed ones.
    pub fn handle_timeout(&self, now: Instant) {
        let idle = self.idle_timeout;
        let mut slots = self.lock();
        for slot in slots.values_mut() {
            slot.entries.retain(|e| {
                !e.conn.is_closed()
                    && (now.duration_since(e.last_used) < idle || !e.conn.is_ready())
            });
        }
        slots.retain(|_, s| !s.entries.is_empty() || s.connecting > 0 || s.known.is_some());
    }

    /// Takes every pooled connection out of the pool (to close them).
    pub fn drain(&self) -> Vec<Arc<dyn HttpConnection>> {
        let mut slots = self.lock();
        slots
            .values_mut()
            .flat_map(|s| s.entries.drain(..).map(|e| e.conn))
            .collect()
    }

    /// Number of pooled connections for `key` (for tests and diagnostics).
    pub fn connections(&self, key: &PoolKey) -> usize {
        self.lock().get(key).map_or(0, |s| s.entries.len())
    }
}
