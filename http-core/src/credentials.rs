//! Credentials, for clients sending them and servers checking them: a user name and a
//! password that never appear in `Debug`, and Basic authentication (RFC 7617).

use http::header::HeaderValue;

/// Username and password a client must present (Basic for HTTP, RFC 1929 for SOCKS5).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub user: String,
    /// Password.
    pub pass: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the password.
        write!(f, "Credentials({}:***)", self.user)
    }
}

impl Credentials {
    /// Whether a `Proxy-Authorization` value carries these credentials (Basic, RFC 7617).
    pub fn check_basic(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header.and_then(|h| std::str::from_utf8(h).ok()) else {
            return false;
        };
        let Some((scheme, b64)) = h.trim().split_once(' ') else {
            return false;
        };
        if !scheme.eq_ignore_ascii_case("basic") {
            return false;
        }
        use base64::Engine;
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
            return false;
        };
        let expected = format!("{}:{}", self.user, self.pass);
        // Constant-time in the length of the expected value.
        raw.len() == expected.len()
            && raw
                .iter()
                .zip(expected.as_bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }
}

/// Basic credentials as a header value (RFC 7617), marked sensitive.
pub fn basic(user: &str, pass: &str) -> Option<HeaderValue> {
    use base64::Engine;
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"));
    let mut h = HeaderValue::from_str(&format!("Basic {v}")).ok()?;
    h.set_sensitive(true);
    Some(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_round_trip_and_never_shown() {
        let c = Credentials {
            user: "alice".into(),
            pass: "s3cret".into(),
        };
        // base64("alice:s3cret")
        assert!(c.check_basic(Some(b"Basic YWxpY2U6czNjcmV0")));
        assert!(c.check_basic(Some(b"basic YWxpY2U6czNjcmV0")));
        assert!(!c.check_basic(Some(b"Basic YWxpY2U6d3Jvbmc=")));
        assert!(!c.check_basic(Some(b"Bearer x")));
        assert!(!c.check_basic(None));
        assert!(!format!("{c:?}").contains("s3cret"));
        let v = basic(&c.user, &c.pass).unwrap();
        assert!(v.is_sensitive());
        assert!(c.check_basic(Some(v.as_bytes())));
    }
}
