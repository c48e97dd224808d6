//! `Alt-Svc` (RFC 7838): learning that an origin also speaks HTTP/3, and where.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Default freshness of an `Alt-Svc` entry without `ma` (RFC 7838 §3.1: 24 hours).
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(86_400);

/// Parses an `Alt-Svc` value and returns the port of the first `h3` alternative on the same
/// host with its lifetime; `Some(None)` for `clear`; `None` if it names no usable h3.
pub fn parse_h3(value: &str) -> Option<Option<(u16, Duration)>> {
    if value.trim() == "clear" {
        return Some(None);
    }
    for entry in value.split(',') {
        let mut parts = entry.split(';');
        let Some((proto, authority)) = parts.next().and_then(|a| a.split_once('=')) else {
            continue;
        };
        if proto.trim() != "h3" {
            continue;
        }
        let authority = authority.trim().trim_matches('"');
        let Some((host, port)) = authority.rsplit_once(':') else {
            continue;
        };
        // Only alternatives on the same host: another host would need its own certificate
        // check against the origin's name, which burrow does not do.
        if !host.is_empty() {
            continue;
        }
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let mut ma = DEFAULT_MAX_AGE;
        for p in parts {
            if let Some(("ma", v)) = p.trim().split_once('=') {
                if let Ok(s) = v.trim().parse::<u64>() {
                    ma = Duration::from_secs(s);
                }
            }
        }
        return Some(Some((port, ma)));
    }
    None
}

/// What the client learnt from `Alt-Svc`, per origin authority. Sans-I/O: every call that
/// depends on the time takes it; stale entries go on lookup or at
/// [`handle_timeout`](Self::handle_timeout).
#[derive(Default)]
pub struct AltSvcCache {
    map: Mutex<HashMap<String, (u16, Instant)>>,
}

impl AltSvcCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (u16, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an `Alt-Svc` header value received from `authority` at `now`.
    pub fn learn(&self, authority: &str, value: &str, now: Instant) {
        match parse_h3(value) {
            Some(Some((port, ma))) => {
                self.lock().insert(authority.to_string(), (port, now + ma));
            }
            Some(None) => {
                self.lock().remove(authority);
            }
            None => {}
        }
    }

    /// The HTTP/3 port for `authority` still fresh at `now`, if any.
    pub fn h3_port(&self, authority: &str, now: Instant) -> Option<u16> {
        let mut m = self.lock();
        match m.get(authority) {
            Some((port, until)) if *until > now => Some(*port),
            Some(_) => {
                m.remove(authority);
                None
            }
            None => None,
        }
    }

    /// Forgets `authority` (its HTTP/3 attempt failed).
    pub fn forget(&self, authority: &str) {
        self.lock().remove(authority);
    }

    /// When the next entry goes stale.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().values().map(|(_, until)| *until).min()
    }

    /// Forgets the entries stale at `now`.
    pub fn handle_timeout(&self, now: Instant) {
        self.lock().retain(|_, (_, until)| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_h3_entries() {
        assert_eq!(
            parse_h3(r#"h3=":8443"; ma=3600, h2=":443""#),
            Some(Some((8443, Duration::from_secs(3600))))
        );
        assert_eq!(
            parse_h3(r#"h2=":443", h3=":443""#),
            Some(Some((443, DEFAULT_MAX_AGE)))
        );
        assert_eq!(parse_h3("clear"), Some(None));
        assert_eq!(parse_h3(r#"h3="other.example:443""#), None);
        assert_eq!(parse_h3(r#"h3-29=":443""#), None);
        assert_eq!(parse_h3("garbage"), None);
    }

    #[test]
    fn cache_learns_expires_and_clears() {
        let c = AltSvcCache::default();
        let t0 = Instant::now();
        c.learn("a:443", r#"h3=":4433"; ma=3600"#, t0);
        assert_eq!(c.h3_port("a:443", t0), Some(4433));
        // Fresh until its max-age, on the virtual clock.
        let late = t0 + Duration::from_secs(3599);
        assert_eq!(c.h3_port("a:443", late), Some(4433));
        assert_eq!(c.poll_timeout(), Some(t0 + Duration::from_secs(3600)));
        c.handle_timeout(t0 + Duration::from_secs(3600));
        assert_eq!(c.h3_port("a:443", late), None, "stale entries go");
        c.learn("a:443", r#"h3=":4433"; ma=3600"#, t0);
        c.learn("a:443", "clear", t0);
        assert_eq!(c.h3_port("a:443", t0), None);
        c.learn("b:443", r#"h3=":1"; ma=0"#, t0);
        assert_eq!(c.h3_port("b:443", t0), None);
    }
}
