//! Field lists ↔ `http` heads, with the rules of RFC 9114 §4.3 (pseudo-header fields) and
//! §4.2 (no connection-specific fields, lowercase names).

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Uri};

use super::error::{Code, H3Error};
use super::qpack::Field;

fn malformed(reason: &'static str) -> H3Error {
    H3Error::new(Code::MESSAGE_ERROR, reason)
}

/// A request head as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// `:method`.
    pub method: Method,
    /// `:scheme` (absent for classic CONNECT).
    pub scheme: Option<String>,
    /// `:authority`.
    pub authority: Option<String>,
    /// `:path` (absent for classic CONNECT).
    pub path: Option<String>,
    /// `:protocol` for extended CONNECT (RFC 9220).
    pub protocol: Option<String>,
    /// Regular fields.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// The field list, pseudo-fields first.
    pub fn fields(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut f: Vec<(Vec<u8>, Vec<u8>)> = vec![(
            b":method".to_vec(),
            self.method.as_str().as_bytes().to_vec(),
        )];
        let mut pseudo = |n: &str, v: &Option<String>| {
            if let Some(v) = v {
                f.push((n.as_bytes().to_vec(), v.as_bytes().to_vec()));
            }
        };
        pseudo(":protocol", &self.protocol);
        pseudo(":scheme", &self.scheme);
        pseudo(":authority", &self.authority);
        pseudo(":path", &self.path);
        push_regular(&mut f, &self.headers);
        f
    }

    /// The URI: absolute when scheme and authority are known, authority-form for CONNECT.
    pub fn uri(&self) -> Result<Uri, H3Error> {
        let mut b = Uri::builder();
        if let Some(s) = &self.scheme {
            b = b.scheme(s.as_str());
        }
        if let Some(a) = &self.authority {
            b = b.authority(a.as_str());
        }
        if let Some(p) = &self.path {
            b = b.path_and_query(p.as_str());
        }
        b.build().map_err(|_| malformed("invalid request target"))
    }
}

fn push_regular(f: &mut Vec<(Vec<u8>, Vec<u8>)>, headers: &HeaderMap) {
    for (k, v) in headers {
        if is_connection_specific(k) {
            continue;
        }
        f.push((k.as_str().as_bytes().to_vec(), v.as_bytes().to_vec()));
    }
}

/// Fields that belong to one HTTP/1.1 connection and must not appear in HTTP/3.
pub fn is_connection_specific(k: &HeaderName) -> bool {
    matches!(
        k.as_str(),
        "connection" | "keep-alive" | "proxy-connection" | "transfer-encoding" | "upgrade" | "host"
    )
}

/// Splits pseudo and regular fields, enforcing order, lowercase names and no
/// connection-specific fields. Returns `(pseudo, regular)`.
fn split(
    fields: Vec<Field>,
    allow_pseudo: bool,
) -> Result<(Vec<(Bytes, Bytes)>, HeaderMap), H3Error> {
    let mut pseudo = Vec::new();
    let mut headers = HeaderMap::with_capacity(fields.len());
    for (n, v) in fields {
        if n.first() == Some(&b':') {
            if !allow_pseudo {
                return Err(malformed("pseudo-header field in trailers"));
            }
            if !headers.is_empty() {
                return Err(malformed("pseudo-header field after a regular field"));
            }
            if pseudo.iter().any(|(p, _): &(Bytes, Bytes)| p == &n) {
                return Err(malformed("duplicate pseudo-header field"));
            }
            pseudo.push((n, v));
            continue;
        }
        if n.iter().any(|b| b.is_ascii_uppercase()) {
            return Err(malformed("uppercase field name"));
        }
        let name = HeaderName::from_bytes(&n).map_err(|_| malformed("invalid field name"))?;
        if is_connection_specific(&name) && name != http::header::HOST {
            return Err(malformed("connection-specific field"));
        }
        if name == http::header::TE && v.as_ref() != b"trailers" {
            return Err(malformed("TE other than trailers"));
        }
        let value =
            HeaderValue::from_maybe_shared(v).map_err(|_| malformed("invalid field value"))?;
        headers.append(name, value);
    }
    Ok((pseudo, headers))
}

fn text(v: Bytes) -> Result<String, H3Error> {
    String::from_utf8(v.to_vec()).map_err(|_| malformed("non-UTF-8 pseudo-header value"))
}

/// Parses a request's field list (RFC 9114 §4.3.1, RFC 9220 §3 for `:protocol`).
pub fn parse_request(fields: Vec<Field>) -> Result<RequestHead, H3Error> {
    let (pseudo, headers) = split(fields, true)?;
    let mut head = RequestHead {
        method: Method::GET,
        scheme: None,
        authority: None,
        path: None,
        protocol: None,
        headers,
    };
    let mut method = None;
    for (n, v) in pseudo {
        match &n[..] {
            b":method" => {
                method = Some(Method::from_bytes(&v).map_err(|_| malformed("invalid :method"))?)
            }
            b":scheme" => head.scheme = Some(text(v)?),
            b":authority" => head.authority = Some(text(v)?),
            b":path" => head.path = Some(text(v)?),
            b":protocol" => head.protocol = Some(text(v)?),
            _ => return Err(malformed("unknown pseudo-header field")),
        }
    }
    head.method = method.ok_or(malformed("missing :method"))?;
    let connect = head.method == Method::CONNECT;
    if connect && head.protocol.is_none() {
        // RFC 9114 §4.4: :scheme and :path omitted, :authority present.
        if head.scheme.is_some() || head.path.is_some() || head.authority.is_none() {
            return Err(malformed("CONNECT needs :authority only"));
        }
    } else {
        if head.protocol.is_some() && !connect {
            return Err(malformed(":protocol without CONNECT"));
        }
        if head.scheme.is_none() || head.path.as_deref().is_none_or(str::is_empty) {
            return Err(malformed("missing :scheme or :path"));
        }
    }
    Ok(head)
}

/// Builds the field list of a response.
pub fn response_fields(status: StatusCode, headers: &HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut f = vec![(b":status".to_vec(), status.as_str().as_bytes().to_vec())];
    push_regular(&mut f, headers);
    f
}

/// Parses a response's field list (RFC 9114 §4.3.2).
pub fn parse_response(fields: Vec<Field>) -> Result<(StatusCode, HeaderMap), H3Error> {
    let (pseudo, headers) = split(fields, true)?;
    let mut status = None;
    for (n, v) in pseudo {
        match &n[..] {
            b":status" => {
                status = Some(StatusCode::from_bytes(&v).map_err(|_| malformed("invalid :status"))?)
            }
            _ => return Err(malformed("unknown pseudo-header field in a response")),
        }
    }
    Ok((status.ok_or(malformed("missing :status"))?, headers))
}

/// Parses a trailer section (no pseudo-header fields).
pub fn parse_trailers(fields: Vec<Field>) -> Result<HeaderMap, H3Error> {
    Ok(split(fields, false)?.1)
}

/// Field list for trailers: only fields that may be trailers.
pub fn trailer_fields(headers: HeaderMap) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut f = Vec::new();
    push_regular(
        &mut f,
        &burrow_http_core::message::sendable_trailers(headers),
    );
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fl(pairs: &[(&'static str, &'static str)]) -> Vec<Field> {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::from_static(n.as_bytes()),
                    Bytes::from_static(v.as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn classic_connect_has_authority_only() {
        let h = parse_request(fl(&[(":method", "CONNECT"), (":authority", "a:443")])).unwrap();
        assert_eq!(h.uri().unwrap().authority().unwrap().as_str(), "a:443");
        let e = parse_request(fl(&[
            (":method", "CONNECT"),
            (":scheme", "https"),
            (":path", "/"),
            (":authority", "a:443"),
        ]))
        .unwrap_err();
        assert_eq!(e.code, Code::MESSAGE_ERROR);
    }

    #[test]
    fn extended_connect_needs_scheme_and_path() {
        let h = parse_request(fl(&[
            (":method", "CONNECT"),
            (":protocol", "connect-udp"),
            (":scheme", "https"),
            (":authority", "p:443"),
            (":path", "/.well-known/masque/udp/h/1/"),
        ]))
        .unwrap();
        assert_eq!(h.protocol.as_deref(), Some("connect-udp"));
        assert!(parse_request(fl(&[
            (":method", "GET"),
            (":protocol", "x"),
            (":scheme", "https"),
            (":path", "/")
        ]))
        .is_err());
    }

    #[test]
    fn malformed_requests() {
        for bad in [
            fl(&[(":scheme", "https"), (":path", "/")]),
            fl(&[(":method", "GET"), (":path", "/")]),
            fl(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                (":bogus", "1"),
            ]),
            fl(&[
                (":method", "GET"),
                ("x", "1"),
                (":scheme", "https"),
                (":path", "/"),
            ]),
            fl(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("X-Upper", "1"),
            ]),
            fl(&[
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
                ("connection", "close"),
            ]),
            fl(&[
                (":method", "GET"),
                (":method", "GET"),
                (":scheme", "https"),
                (":path", "/"),
            ]),
        ] {
            assert_eq!(parse_request(bad).unwrap_err().code, Code::MESSAGE_ERROR);
        }
    }

    #[test]
    fn response_and_trailers() {
        let (s, h) = parse_response(fl(&[(":status", "200"), ("content-length", "3")])).unwrap();
        assert_eq!(s, 200);
        assert_eq!(h["content-length"], "3");
        assert!(parse_response(fl(&[("content-length", "3")])).is_err());
        assert!(parse_trailers(fl(&[(":status", "200")])).is_err());
    }
}
