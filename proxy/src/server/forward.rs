//! Forwarded requests (absolute-form on HTTP/1.1, `:authority` on HTTP/2 and HTTP/3):
//! normalised before anything is dialed, so that what the rules judged is what the origin
//! receives.
//!
//! * RFC 9112 §3.2.2: a proxy MUST ignore a received `Host` and replace it with the
//!   authority of the absolute-form target; an HTTP/1.1 request without `Host`, or with
//!   more than one, is 400 (§3.2). On HTTP/2 and HTTP/3 a `Host` naming another authority
//!   than `:authority` makes the request malformed (RFC 9113 §8.3.1, RFC 9114 §4.3.1): 400.
//! * RFC 9110 §8.6: a `Content-Length` list of equal values is forwarded as one value;
//!   unequal or invalid values are 400.
//! * RFC 9112 §6.1: a `Transfer-Encoding` other than `chunked` is 501 (the codings would
//!   be lost when the body is framed anew for the next hop).
//! * RFC 9110 §4.2.4: userinfo in the target is an error (400).
//! * RFC 9110 §7.6.3: a `Via` naming this proxy is a loop (508).

use http::header::{HeaderValue, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, StatusCode, Uri, Version};

use burrow_http_core::message::{self, BadLength};
use burrow_transport::Target;

/// A request the proxy answers itself instead of forwarding or tunnelling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The status.
    pub status: StatusCode,
    /// The Proxy-Status error type (RFC 9209 §2.3).
    pub error: &'static str,
    /// What was wrong, for the Proxy-Status `details` parameter.
    pub detail: Option<String>,
}

impl Refusal {
    /// A refusal with `status`, Proxy-Status `error` and `detail`.
    pub fn new(status: StatusCode, error: &'static str, detail: impl Into<String>) -> Refusal {
        Refusal {
            status,
            error,
            detail: Some(detail.into()),
        }
    }

    fn bad(detail: &str) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "http_request_error", detail)
    }
}

/// Removes what is never forwarded: the one list, in `burrow-http-core`.
pub use burrow_http_core::message::strip_hop_by_hop;

/// The `Via` received-protocol for a request's version (RFC 9110 §7.6.3).
pub fn via_protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "2",
        Version::HTTP_3 => "3",
        Version::HTTP_10 => "1.0",
        _ => "1.1",
    }
}

/// Whether a `Via` field names `pseudonym` as a proxy the message already passed.
pub fn via_loops(headers: &HeaderMap, pseudonym: &str) -> bool {
    headers
        .get_all(http::header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .any(|entry| {
            // received-protocol SP received-by [ SP comment ]
            let mut parts = entry.split_whitespace();
            let _protocol = parts.next();
            parts.next() == Some(pseudonym)
        })
}

/// A request ready to forward: its target and the head to send.
#[derive(Debug)]
pub struct Prepared {
    /// Where it goes.
    pub target: Target,
    /// The head to send on (HTTP/1.1 semantics; the client picks the version).
    pub parts: http::request::Parts,
}

fn content_length(headers: &HeaderMap) -> Result<Option<u64>, Refusal> {
    message::content_length(headers).map_err(|e| {
        Refusal::bad(match e {
            BadLength::Invalid => "invalid Content-Length",
            BadLength::Conflicting => "conflicting Content-Length values",
        })
    })
}

/// Whether a message's transfer codings are none or chunked alone: chunked is the only
/// coding a proxy decodes and frames anew, so a message with another cannot be passed on
/// without changing what its content is (RFC 9112 §6.1).
pub(crate) fn only_chunked(headers: &HeaderMap) -> bool {
    let mut codings = headers.get_all(TRANSFER_ENCODING).iter().flat_map(|v| {
        v.to_str()
            .unwrap_or("\u{0}")
            .split(',')
            .map(|c| c.trim().to_ascii_lowercase())
            .filter(|c| !c.is_empty())
            .collect::<Vec<_>>()
    });
    match codings.next() {
        None => !headers.contains_key(TRANSFER_ENCODING),
        Some(first) => first == "chunked" && codings.next().is_none(),
    }
}

/// Normalises a request for forwarding, or says how to refuse it. `pseudonym` is this
/// proxy's name in `Via`.
pub fn prepare(mut parts: http::request::Parts, pseudonym: &str) -> Result<Prepared, Refusal> {
    if via_loops(&parts.headers, pseudonym) {
        return Err(Refusal::new(
            StatusCode::LOOP_DETECTED,
            "proxy_loop_detected",
            "forwarding loop (Via names this proxy)",
        ));
    }
    let uri = parts.uri.clone();
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err(Refusal::bad("not a proxy request: absolute URI needed"));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme != "http" && scheme != "https" {
        return Err(Refusal::bad("only http and https URIs are forwarded"));
    }
    if authority.as_str().contains('@') {
        return Err(Refusal::bad("userinfo in the request target"));
    }
    let default_port = scheme_port(Some(&scheme));
    let target = Target::parse_with_default(authority.as_str(), default_port)
        .map_err(|_| Refusal::bad("invalid authority in the request target"))?;
    let hosts: Vec<&HeaderValue> = parts.headers.get_all(HOST).iter().collect();
    let h1 = parts.version <= Version::HTTP_11;
    match (h1, hosts.as_slice()) {
        (_, [_, _, ..]) => return Err(Refusal::bad("more than one Host")),
        (true, []) if parts.version == Version::HTTP_11 => {
            return Err(Refusal::bad("HTTP/1.1 request without Host"))
        }
        (false, [h]) if !same_authority(h, authority.as_str(), default_port) => {
            return Err(Refusal::bad("Host differs from :authority"))
        }
        _ => {}
    }
    if !only_chunked(&parts.headers) {
        return Err(Refusal::new(
            StatusCode::NOT_IMPLEMENTED,
            "http_request_error",
            "only Transfer-Encoding: chunked is forwarded",
        ));
    }
    let length = content_length(&parts.headers)?;
    if length.is_some() && parts.headers.contains_key(TRANSFER_ENCODING) {
        return Err(Refusal::bad("both Content-Length and Transfer-Encoding"));
    }
    strip_hop_by_hop(&mut parts.headers);
    if let Some(n) = length {
        parts.headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }
    // The authority of the target, without userinfo (there is none, checked above).
    let host = HeaderValue::from_str(authority.as_str())
        .map_err(|_| Refusal::bad("invalid authority in the request target"))?;
    parts.headers.insert(HOST, host);
    let via = format!("{} {pseudonym}", via_protocol(parts.version));
    let via = HeaderValue::from_str(&via).map_err(|_| {
        Refusal::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "proxy_internal_error",
            "invalid pseudonym",
        )
    })?;
    parts.headers.append(http::header::VIA, via);
    let normalised: Uri = format!(
        "{scheme}://{}{}",
        authority.as_str(),
        uri.path_and_query().map_or("/", |p| p.as_str())
    )
    .parse()
    .map_err(|_| Refusal::bad("invalid request target"))?;
    parts.uri = normalised;
    parts.version = Version::HTTP_11;
    Ok(Prepared { target, parts })
}

/// The port a URI of `scheme` defaults to: 443 for `https`, 80 otherwise.
pub(crate) fn scheme_port(scheme: Option<&str>) -> u16 {
    if scheme == Some("https") {
        443
    } else {
        80
    }
}

fn same_authority(host: &HeaderValue, authority: &str, default_port: u16) -> bool {
    let Ok(h) = host.to_str() else { return false };
    match (
        Target::parse_with_default(h.trim(), default_port),
        Target::parse_with_default(authority, default_port),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(version: Version, uri: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().uri(uri).version(version);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    fn h1(uri: &str, headers: &[(&str, &str)]) -> Result<Prepared, Refusal> {
        prepare(parts(Version::HTTP_11, uri, headers), "burrow-test")
    }

    #[test]
    fn host_is_replaced_by_the_target_authority() {
        let p = h1(
            "http://allowed.example/x?y",
            &[("host", "internal.example"), ("x-keep", "1")],
        )
        .unwrap();
        assert_eq!(p.target.to_string(), "allowed.example:80");
        assert_eq!(p.parts.headers.get_all(HOST).iter().count(), 1);
        assert_eq!(p.parts.headers[HOST], "allowed.example");
        assert_eq!(p.parts.uri, "http://allowed.example/x?y");
        assert_eq!(p.parts.headers["x-keep"], "1");
        assert_eq!(p.parts.headers["via"], "1.1 burrow-test");
    }

    #[test]
    fn missing_or_duplicate_host_is_400() {
        let e = h1("http://a.example/", &[]).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let e = h1(
            "http://a.example/",
            &[("host", "a.example"), ("host", "b.example")],
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        // HTTP/1.0 needs no Host.
        assert!(prepare(parts(Version::HTTP_10, "http://a.example/", &[]), "p").is_ok());
        // HTTP/2: a Host for another authority is malformed; the same one is fine.
        let h2 = |host: &str| {
            prepare(
                parts(Version::HTTP_2, "https://a.example/", &[("host", host)]),
                "p",
            )
        };
        assert_eq!(h2("b.example").unwrap_err().status, StatusCode::BAD_REQUEST);
        assert!(h2("a.example:443").is_ok());
    }

    #[test]
    fn content_length_lists_are_normalised_or_refused() {
        let p = h1(
            "http://a.example/",
            &[("host", "a"), ("content-length", "5, 5")],
        )
        .unwrap();
        assert_eq!(p.parts.headers.get_all(CONTENT_LENGTH).iter().count(), 1);
        assert_eq!(p.parts.headers[CONTENT_LENGTH], "5");
        let p = h1(
            "http://a.example/",
            &[
                ("host", "a"),
                ("content-length", "5"),
                ("content-length", "5"),
            ],
        )
        .unwrap();
        assert_eq!(p.parts.headers.get_all(CONTENT_LENGTH).iter().count(), 1);
        for bad in ["5, 6", "-1", "0x5", ""] {
            let e = h1(
                "http://a.example/",
                &[("host", "a"), ("content-length", bad)],
            )
            .unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }

    #[test]
    fn transfer_codings_other_than_chunked_are_501() {
        let ok = h1(
            "http://a.example/",
            &[("host", "a"), ("transfer-encoding", "Chunked")],
        )
        .unwrap();
        // Framing is the next hop's business: the field itself is hop-by-hop.
        assert!(!ok.parts.headers.contains_key(TRANSFER_ENCODING));
        for te in ["gzip", "gzip, chunked", "chunked, chunked", "identity"] {
            let e = h1(
                "http://a.example/",
                &[("host", "a"), ("transfer-encoding", te)],
            )
            .unwrap_err();
            assert_eq!(e.status, StatusCode::NOT_IMPLEMENTED, "{te}");
        }
        let e = h1(
            "http://a.example/",
            &[
                ("host", "a"),
                ("transfer-encoding", "chunked"),
                ("content-length", "3"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn loops_userinfo_and_other_schemes_are_refused() {
        let e = h1(
            "http://a.example/",
            &[("host", "a"), ("via", "1.1 other, 1.1 burrow-test (x)")],
        )
        .unwrap_err();
        assert_eq!(e.status, StatusCode::LOOP_DETECTED);
        assert!(h1(
            "http://a.example/",
            &[("host", "a"), ("via", "1.1 burrow-test2")]
        )
        .is_ok());
        assert_eq!(
            h1("http://u:p@a.example/", &[("host", "a")])
                .unwrap_err()
                .status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            h1("ftp://a.example/", &[("host", "a")]).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            h1("/relative", &[("host", "a")]).unwrap_err().status,
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn hop_by_hop_fields_go() {
        let p = h1(
            "http://a.example/",
            &[
                ("host", "a"),
                ("connection", "x-secret, keep-alive"),
                ("x-secret", "1"),
                ("proxy-authorization", "Basic eA=="),
                ("te", "trailers"),
                ("trailer", "x-checksum"),
            ],
        )
        .unwrap();
        for n in [
            "connection",
            "x-secret",
            "proxy-authorization",
            "keep-alive",
        ] {
            assert!(!p.parts.headers.contains_key(n), "{n}");
        }
        // What says trailers are welcome, and which come, goes on (gRPC needs TE).
        assert_eq!(p.parts.headers["te"], "trailers");
        assert_eq!(p.parts.headers["trailer"], "x-checksum");
        let gz = h1("http://a.example/", &[("host", "a"), ("te", "gzip")]).unwrap();
        assert!(!gz.parts.headers.contains_key("te"));
    }
}
