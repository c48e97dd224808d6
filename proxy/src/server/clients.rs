//! Fairness between clients: what one client address holds (connections, and tunnels or
//! forwarded requests in flight) is counted and capped, so one client cannot take every
//! slot of the proxy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::lock;

#[derive(Default, Clone, Copy)]
struct Held {
    connections: usize,
    work: usize,
}

/// The client an address belongs to: an IPv4 address (IPv4-mapped IPv6 too), or an IPv6
/// /64 (one host usually has a whole /64 and could otherwise be endless clients).
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => {
            let bits = u128::from(a) & !((1u128 << 64) - 1);
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// Per-client-address counts, shared by every listener.
pub struct ClientTable {
    held: Mutex<HashMap<IpAddr, Held>>,
    max_connections: usize,
    max_work: usize,
}

/// What a hold is of.
#[derive(Clone, Copy)]
enum Kind {
    Connection,
    Work,
}

/// One connection or one tunnel / forwarded request of a client; released when dropped.
pub struct Hold {
    table: Arc<ClientTable>,
    ip: IpAddr,
    kind: Kind,
}

impl ClientTable {
    /// A table allowing each client address `max_connections` connections and `max_work`
    /// tunnels and forwarded requests at a time.
    pub fn new(max_connections: usize, max_work: usize) -> Arc<ClientTable> {
        Arc::new(ClientTable {
            held: Mutex::new(HashMap::new()),
            max_connections,
            max_work,
        })
    }

    fn take(self: &Arc<Self>, ip: IpAddr, kind: Kind) -> Option<Hold> {
        let ip = client_key(ip);
        let mut held = lock(&self.held);
        let h = held.entry(ip).or_default();
        let (n, max) = match kind {
            Kind::Connection => (&mut h.connections, self.max_connections),
            Kind::Work => (&mut h.work, self.max_work),
        };
        if *n >= max {
            if h.connections == 0 && h.work == 0 {
                held.remove(&ip);
            }
            return None;
        }
        *n += 1;
        Some(Hold {
            table: self.clone(),
            ip,
            kind,
        })
    }

    /// A connection from `ip`, unless it already holds the most allowed.
    pub fn connection(self: &Arc<Self>, ip: IpAddr) -> Option<Hold> {
        self.take(ip, Kind::Connection)
    }

    /// A tunnel or forwarded request from `ip`, unless it already holds the most allowed.
    pub fn work(self: &Arc<Self>, ip: IpAddr) -> Option<Hold> {
        self.take(ip, Kind::Work)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut held = lock(&self.table.held);
        if let Some(h) = held.get_mut(&self.ip) {
            match self.kind {
                Kind::Connection => h.connections = h.connections.saturating_sub(1),
                Kind::Work => h.work = h.work.saturating_sub(1),
            }
            if h.connections == 0 && h.work == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_are_per_address_and_released_on_drop() {
        let t = ClientTable::new(2, 1);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        let c1 = t.connection(a).unwrap();
        let _c2 = t.connection(a).unwrap();
        assert!(t.connection(a).is_none(), "third connection of one client");
        // Another client is not affected; a mapped address is the same client.
        let _b1 = t.connection(b).unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert!(t.connection(mapped).is_none());
        // Addresses of one IPv6 /64 are one client.
        let v6a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let v6c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        let h1 = t.work(v6a).unwrap();
        assert!(t.work(v6b).is_none(), "same /64");
        let h2 = t.work(v6c).unwrap();
        drop((h1, h2));
        let w = t.work(a).unwrap();
        assert!(t.work(a).is_none());
        drop(w);
        assert!(t.work(a).is_some());
        drop(c1);
        assert!(t.connection(a).is_some());
        drop(_c2);
        drop(_b1);
        assert_eq!(lock(&t.held).len(), 0, "entries go when nothing is held");
    }
}
