//! Rules about messages that every version obeys, written once: which responses carry
//! content, which carry a length, and which header fields are connection-specific.

use http::header::{HeaderName, CONNECTION, CONTENT_LENGTH, TE};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Whether a response to `method` with `status` has content (RFC 9110 §6.4.1): none for
/// HEAD (§9.3.2), 1xx (§15.2), 204 (§15.3.5), 304 (§15.4.5) or a 2xx to CONNECT, after
/// which the stream is a tunnel (§9.3.6).
pub fn response_has_content(method: &Method, status: StatusCode) -> bool {
    !(method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (method == Method::CONNECT && status.is_success()))
}

/// Whether a server should announce the length of a response's body in `Content-Length`
/// (RFC 9110 §8.6): never for 1xx, 204 or a 2xx to CONNECT; not for 304 either (it would
/// have to be the length of the content it stands for); for HEAD, the length a GET would
/// have.
pub fn response_announces_length(method: &Method, status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || (method == Method::CONNECT && status.is_success()))
}

/// Why a `Content-Length` cannot be used (RFC 9110 §8.6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadLength {
    /// A value that is not a decimal number of at most 19 digits.
    Invalid,
    /// Fields or list elements with different numbers.
    Conflicting,
}

/// The length `Content-Length` declares: every field and list element must be the same
/// number (RFC 9110 §8.6 lets a recipient take identical repeats as one).
pub fn content_length(h: &HeaderMap) -> Result<Option<u64>, BadLength> {
    let mut found: Option<u64> = None;
    for v in h.get_all(CONTENT_LENGTH) {
        let s = v.to_str().map_err(|_| BadLength::Invalid)?;
        for part in s.split(',') {
            let part = part.trim_matches([' ', '\t']);
            if part.is_empty() || part.len() > 19 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(BadLength::Invalid);
            }
            let n: u64 = part.parse().map_err(|_| BadLength::Invalid)?;
            match found {
                Some(prev) if prev != n => return Err(BadLength::Conflicting),
                _ => found = Some(n),
            }
        }
    }
    Ok(found)
}

/// One `Content-Length` field with one number where a message repeated it (`5, 5`, or
/// two fields), so what a proxy passes on is unambiguous (RFC 9110 §8.6); a bad one is
/// left for the framing to refuse.
pub fn single_content_length(h: &mut HeaderMap) {
    if let Ok(Some(n)) = content_length(h) {
        h.insert(CONTENT_LENGTH, n.into());
    }
}

/// The body length a `Content-Length` field declares, when it is one number (HTTP/2 and
/// HTTP/3, whose stacks check the field against the body; HTTP/1.1 frames by its own,
/// stricter parse).
pub fn declared_length(h: &HeaderMap) -> Option<u64> {
    h.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The body length of a response to `method`: 0 when it has no content, else what its
/// `Content-Length` declares.
pub fn response_length(method: &Method, status: StatusCode, h: &HeaderMap) -> Option<u64> {
    match response_has_content(method, status) {
        true => declared_length(h),
        false => Some(0),
    }
}

/// Announces a body of known `size` in `Content-Length`, unless the message has one.
pub fn announce_length(h: &mut HeaderMap, size: Option<u64>) {
    if let Some(n) = size {
        h.entry(CONTENT_LENGTH).or_insert_with(|| n.into());
    }
}

/// Fields that cannot be trailers (RFC 9110 §6.5.1): they frame, route, authenticate or
/// modify the request, control the response, or describe the content, and must be known
/// before the content; and the connection-specific ones.
pub const NOT_TRAILERS: [&str; 33] = [
    "age",
    "authorization",
    "cache-control",
    "connection",
    "content-encoding",
    "content-length",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "expect",
    "expires",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "keep-alive",
    "location",
    "max-forwards",
    "pragma",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "range",
    "retry-after",
    "set-cookie",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "www-authenticate",
];

/// The trailers a sender may put on the wire: `trailers` without [`NOT_TRAILERS`] (a
/// sender must not generate those, RFC 9110 §6.5.1, so a proxy does not pass them on).
pub fn sendable_trailers(mut trailers: HeaderMap) -> HeaderMap {
    // The fields a trailer `Connection` names are connection-specific too.
    strip_connection_specific(&mut trailers);
    for n in NOT_TRAILERS {
        trailers.remove(n);
    }
    trailers
}

/// A copy of a request's head (method, URI, version, header fields) without its body or
/// extensions, to send it again.
pub fn clone_head<B>(r: &http::Request<B>) -> http::Request<()> {
    let mut c = http::Request::new(());
    *c.method_mut() = r.method().clone();
    *c.uri_mut() = r.uri().clone();
    *c.version_mut() = r.version();
    *c.headers_mut() = r.headers().clone();
    c
}

/// Header fields that concern one connection only (RFC 9110 §7.6.1) and are never sent on
/// another hop, nor at all over HTTP/2 and HTTP/3 (RFC 9113 §8.2.2, RFC 9114 §4.2): besides
/// these, the fields `Connection` names, and `TE` unless it is `trailers`.
pub const CONNECTION_SPECIFIC: [&str; 5] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "transfer-encoding",
    "upgrade",
];

/// Removes the connection-specific fields: those [`CONNECTION_SPECIFIC`] lists, those
/// `Connection` names, and `TE` other than `trailers`.
pub fn strip_connection_specific(h: &mut HeaderMap) {
    let named: Vec<HeaderName> = h
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in CONNECTION_SPECIFIC {
        h.remove(n);
    }
    // Of TE only `trailers` may stay (RFC 9113 §8.2.2), in lowercase, once, whatever
    // lines and codings came with it.
    let trailers = accepts_trailers(h);
    h.remove(TE);
    if trailers {
        h.insert(TE, HeaderValue::from_static("trailers"));
    }
}

/// Whether `TE` (any of its lines) names `trailers`: the sender accepts trailers.
pub fn accepts_trailers(h: &HeaderMap) -> bool {
    h.get_all(TE).iter().any(|v| {
        v.to_str().is_ok_and(|s| {
            s.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("trailers"))
        })
    })
}

/// Removes what a proxy must not forward (RFC 9110 §7.6.1, §11.7): the connection-specific
/// fields (so `TE` other than `trailers`) and the proxy's own credentials
/// (`Proxy-Authorization`, `Proxy-Authenticate`). `TE: trailers` goes on, as Envoy
/// passes it: a proxy that passes trailers back may say it accepts them, and gRPC
/// servers refuse requests without it. `Trailer` is end-to-end (RFC 9110 §6.6.2).
pub fn strip_hop_by_hop(h: &mut HeaderMap) {
    // Said for this hop only (an HTTP/1.1 sender names TE in Connection), but the proxy
    // passes trailers back, so it says the same on its own hop.
    let trailers = accepts_trailers(h);
    strip_connection_specific(h);
    for n in ["proxy-authorization", "proxy-authenticate"] {
        h.remove(n);
    }
    if trailers {
        h.insert(TE, HeaderValue::from_static("trailers"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_content_lengths_become_one_and_conflicts_are_refused() {
        let h = |vals: &[&str]| {
            let mut m = HeaderMap::new();
            for v in vals {
                m.append(CONTENT_LENGTH, v.parse().unwrap());
            }
            m
        };
        assert_eq!(content_length(&h(&[])), Ok(None));
        assert_eq!(content_length(&h(&["5", "5"])), Ok(Some(5)));
        assert_eq!(content_length(&h(&["5, 5"])), Ok(Some(5)));
        assert_eq!(content_length(&h(&["5", "6"])), Err(BadLength::Conflicting));
        for bad in ["", "+5", "5,", "0x5", "12345678901234567890"] {
            assert_eq!(
                content_length(&h(&[bad])),
                Err(BadLength::Invalid),
                "{bad:?}"
            );
        }
        let mut m = h(&["5, 5", "005"]);
        single_content_length(&mut m);
        assert_eq!(m.get_all(CONTENT_LENGTH).iter().collect::<Vec<_>>(), ["5"]);
        let mut m = h(&["5", "6"]);
        single_content_length(&mut m);
        assert_eq!(
            m.get_all(CONTENT_LENGTH).iter().count(),
            2,
            "left for the framing"
        );
    }

    #[test]
    fn framing_routing_and_credentials_are_never_sent_as_trailers() {
        let mut t = HeaderMap::new();
        for n in [
            "content-length",
            "transfer-encoding",
            "host",
            "authorization",
            "set-cookie",
            "upgrade",
            "x-hop",
        ] {
            t.insert(HeaderName::from_static(n), "x".parse().unwrap());
        }
        // What a trailer Connection names is this hop's only.
        t.insert("connection", "x-hop".parse().unwrap());
        t.insert("grpc-status", "0".parse().unwrap());
        t.insert("x-checksum", "abc".parse().unwrap());
        let sent = sendable_trailers(t);
        let mut names: Vec<_> = sent.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["grpc-status", "x-checksum"]);
        let mut sorted = NOT_TRAILERS;
        sorted.sort();
        assert_eq!(sorted, NOT_TRAILERS, "kept sorted, once each");
    }

    #[test]
    fn which_responses_have_content_and_a_length() {
        let get = Method::GET;
        for (m, s, content, length) in [
            (&get, 200, true, true),
            (&Method::HEAD, 200, false, true),
            (&get, 101, false, false),
            (&get, 103, false, false),
            (&get, 204, false, false),
            (&get, 304, false, false),
            (&Method::CONNECT, 200, false, false),
            (&Method::CONNECT, 407, true, true),
        ] {
            let s = StatusCode::from_u16(s).unwrap();
            assert_eq!(response_has_content(m, s), content, "{m} {s}");
            assert_eq!(response_announces_length(m, s), length, "{m} {s}");
        }
    }

    #[test]
    fn connection_specific_fields_go() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("connection", "x-a, close"),
            ("x-a", "1"),
            ("keep-alive", "5"),
            ("te", "trailers"),
            ("x-keep", "1"),
            ("proxy-authorization", "Basic eA=="),
        ] {
            h.append(k, v.parse().unwrap());
        }
        let mut direct = h.clone();
        strip_connection_specific(&mut direct);
        assert!(direct.contains_key("te") && direct.contains_key("proxy-authorization"));
        assert!(!direct.contains_key("x-a") && !direct.contains_key("keep-alive"));
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort();
        assert_eq!(left, ["te", "x-keep"], "TE: trailers goes on");
        let mut gz = HeaderMap::new();
        gz.insert("te", "gzip".parse().unwrap());
        strip_connection_specific(&mut gz);
        assert!(gz.is_empty());
        // Only `trailers` stays, lowercase and once, whatever else came.
        let mut mixed = HeaderMap::new();
        mixed.append("te", "Trailers".parse().unwrap());
        mixed.append("te", "gzip, deflate;q=0.5".parse().unwrap());
        strip_connection_specific(&mut mixed);
        let te: Vec<_> = mixed.get_all("te").iter().collect();
        assert_eq!(te, ["trailers"]);
        // An HTTP/1.1 sender names TE in Connection; a proxy still says it takes trailers.
        let mut h1 = HeaderMap::new();
        h1.insert("te", "trailers".parse().unwrap());
        h1.insert("connection", "TE".parse().unwrap());
        let mut direct = h1.clone();
        strip_connection_specific(&mut direct);
        assert!(direct.is_empty(), "{direct:?}");
        strip_hop_by_hop(&mut h1);
        let te: Vec<_> = h1.get_all("te").iter().collect();
        assert_eq!(te, ["trailers"]);
    }
}
