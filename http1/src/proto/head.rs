//! Message heads: parsing with httparse under limits, and encoding.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method, StatusCode, Version};

use burrow_http_core::Spelling;

use super::{Limits, ProtoError};

/// A request line and header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    /// The method.
    pub method: Method,
    /// The request target as sent: origin-form (`/a?b`), absolute-form, authority-form, `*`.
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields.
    pub headers: HeaderMap,
}

impl RequestHead {
    /// A head with no headers, HTTP/1.1.
    pub fn new(method: Method, target: impl Into<String>) -> Self {
        RequestHead {
            method,
            target: target.into(),
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
        }
    }

    /// Adds a header (panics on an invalid name or value: for tests and literals).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        self
    }
}

/// A status line and header fields.
#[derive(Clone, Debug)]
pub struct ResponseHead {
    /// The status.
    pub status: StatusCode,
    /// The reason phrase as received (or to send; empty means the canonical one).
    pub reason: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Header fields.
    pub headers: HeaderMap,
    /// How a received head spelled its reason and field names, when the connection keeps
    /// that ([`Connection::keep_spelling`](super::Connection::keep_spelling)); empty
    /// otherwise, and never sent.
    pub spelling: Spelling,
}

/// Heads are equal when they say the same: status, reason, version and fields, field
/// names compared without case (their [`spelling`](ResponseHead::spelling) is not
/// compared).
impl PartialEq for ResponseHead {
    fn eq(&self, other: &Self) -> bool {
        self.status == other.status
            && self.reason == other.reason
            && self.version == other.version
            && self.headers == other.headers
    }
}

impl Eq for ResponseHead {}

impl ResponseHead {
    /// A head with no headers, HTTP/1.1, canonical reason.
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            reason: String::new(),
            version: Version::HTTP_11,
            headers: HeaderMap::new(),
            spelling: Spelling::default(),
        }
    }

    /// Adds a header (an invalid value becomes empty: for tests and literals).
    pub fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("")),
        );
        self
    }
}

/// Finds the end of a head in `buf` (index just past the empty line), scanning from `from`
/// so that a head arriving one byte at a time costs linear time.
pub(crate) fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let start = from.saturating_sub(3);
    let mut i = start;
    while let Some(p) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + p;
        // "\n\n" or "\n\r\n"
        match buf.get(nl + 1) {
            Some(b'\n') => return Some(nl + 2),
            Some(b'\r') if buf.get(nl + 2) == Some(&b'\n') => return Some(nl + 3),
            _ => {}
        }
        i = nl + 1;
    }
    None
}

/// Rejects obs-fold and bare CR anywhere in a complete head.
fn check_line_rules(head: &[u8]) -> Result<(), ProtoError> {
    for (i, &b) in head.iter().enumerate() {
        match b {
            b'\r' if head.get(i + 1) != Some(&b'\n') => return Err(ProtoError::BareCr),
            b'\n' if matches!(head.get(i + 1), Some(b' ' | b'\t')) => {
                return Err(ProtoError::ObsFold)
            }
            _ => {}
        }
    }
    Ok(())
}

fn to_header_map(raw: &[httparse::Header<'_>]) -> Result<HeaderMap, ProtoError> {
    spelled_header_map(raw, None)
}

/// The fields, and how their names were spelled into `spelling` if given.
fn spelled_header_map(
    raw: &[httparse::Header<'_>],
    mut spelling: Option<&mut Spelling>,
) -> Result<HeaderMap, ProtoError> {
    let mut map = HeaderMap::with_capacity(raw.len());
    for h in raw {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| ProtoError::InvalidHead("invalid header name"))?;
        if let Some(s) = spelling.as_deref_mut() {
            s.spell(&name, h.name);
        }
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| ProtoError::InvalidHead("invalid header value"))?;
        map.append(name, value);
    }
    Ok(map)
}

fn map_httparse(e: httparse::Error, limits: &Limits) -> ProtoError {
    ProtoError::InvalidHead(match e {
        httparse::Error::TooManyHeaders => {
            return ProtoError::TooManyHeaders {
                limit: limits.max_headers,
            }
        }
        httparse::Error::HeaderName => "invalid header name",
        httparse::Error::HeaderValue => "invalid header value",
        httparse::Error::NewLine => "invalid line ending",
        httparse::Error::Status => "invalid status",
        httparse::Error::Token => "invalid token",
        httparse::Error::Version => "invalid HTTP version",
    })
}

fn version(v: Option<u8>) -> Version {
    if v == Some(0) {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    }
}

/// Outcome of trying to parse a head from a buffer.
pub(crate) enum Parsed<T> {
    /// A head, and how many bytes it took.
    Complete(T, usize),
    /// More bytes are needed; scanning may resume at the given offset.
    Partial(usize),
}

fn locate(buf: &[u8], scan_from: usize, limits: &Limits) -> Result<Option<usize>, ProtoError> {
    // Tolerate empty lines before a request or response line (RFC 9112 §2.2).
    match find_head_end(buf, scan_from) {
        Some(end) if end > limits.max_head_bytes => Err(ProtoError::HeadTooLarge {
            limit: limits.max_head_bytes,
        }),
        Some(end) => {
            check_line_rules(&buf[..end])?;
            Ok(Some(end))
        }
        None if buf.len() > limits.max_head_bytes => Err(ProtoError::HeadTooLarge {
            limit: limits.max_head_bytes,
        }),
        None => Ok(None),
    }
}

/// Number of leading empty lines (CRLF or LF) to skip before a start line.
pub(crate) fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// Parses a request head from the start of `buf`.
pub(crate) fn parse_request(
    buf: &[u8],
    scan_from: usize,
    limits: &Limits,
) -> Result<Parsed<RequestHead>, ProtoError> {
    let Some(end) = locate(buf, scan_from, limits)? else {
        return Ok(Parsed::Partial(buf.len()));
    };
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) => {
            let method = Method::from_bytes(req.method.unwrap_or("").as_bytes())
                .map_err(|_| ProtoError::InvalidHead("invalid method"))?;
            let head = RequestHead {
                method,
                target: req.path.unwrap_or("").to_string(),
                version: version(req.version),
                headers: to_header_map(req.headers)?,
            };
            Ok(Parsed::Complete(head, n))
        }
        Ok(httparse::Status::Partial) => Err(ProtoError::InvalidHead("incomplete request line")),
        Err(e) => Err(map_httparse(e, limits)),
    }
}

/// Parses a response head from the start of `buf`.
pub(crate) fn parse_response(
    buf: &[u8],
    scan_from: usize,
    limits: &Limits,
    spell: bool,
) -> Result<Parsed<ResponseHead>, ProtoError> {
    let Some(end) = locate(buf, scan_from, limits)? else {
        return Ok(Parsed::Partial(buf.len()));
    };
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut res = httparse::Response::new(&mut headers);
    match res.parse(&buf[..end]) {
        Ok(httparse::Status::Complete(n)) => {
            let status = StatusCode::from_u16(res.code.unwrap_or(0))
                .map_err(|_| ProtoError::InvalidHead("invalid status code"))?;
            let reason = res.reason.unwrap_or("").to_string();
            // How the head was spelled, when asked for (it costs a copy of each name).
            let mut spelling = match spell {
                true => Spelling::new(reason.clone()),
                false => Spelling::default(),
            };
            let headers = spelled_header_map(res.headers, spell.then_some(&mut spelling))?;
            let head = ResponseHead {
                status,
                reason,
                version: version(res.version),
                headers,
                spelling,
            };
            Ok(Parsed::Complete(head, n))
        }
        Ok(httparse::Status::Partial) => Err(ProtoError::InvalidHead("incomplete status line")),
        Err(e) => Err(map_httparse(e, limits)),
    }
}

/// Parses a trailer section (header fields then an empty line), as received after the last chunk.
pub(crate) fn parse_trailers(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<(HeaderMap, usize)>, ProtoError> {
    // An immediate empty line means no trailers.
    if buf.starts_with(b"\r\n") {
        return Ok(Some((HeaderMap::new(), 2)));
    }
    if buf.starts_with(b"\n") {
        return Ok(Some((HeaderMap::new(), 1)));
    }
    let Some(end) = locate(buf, 0, limits)? else {
        return Ok(None);
    };
    let mut headers = vec![httparse::EMPTY_HEADER; limits.max_headers];
    match httparse::parse_headers(&buf[..end], &mut headers) {
        Ok(httparse::Status::Complete((n, hs))) => Ok(Some((to_header_map(hs)?, n))),
        Ok(httparse::Status::Partial) => Err(ProtoError::InvalidHead("incomplete trailers")),
        Err(e) => Err(map_httparse(e, limits)),
    }
}

fn put_headers(out: &mut BytesMut, headers: &HeaderMap) {
    for (name, value) in headers {
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
}

fn version_str(v: Version) -> &'static [u8] {
    if v == Version::HTTP_10 {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    }
}

/// Encodes a request head.
pub(crate) fn encode_request(head: &RequestHead) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(head.method.as_str().as_bytes());
    out.put_u8(b' ');
    out.put_slice(head.target.as_bytes());
    out.put_u8(b' ');
    out.put_slice(version_str(head.version));
    out.put_slice(b"\r\n");
    put_headers(&mut out, &head.headers);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// Encodes a response head (the canonical reason when none is given).
pub(crate) fn encode_response(head: &ResponseHead) -> Bytes {
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(version_str(head.version));
    out.put_u8(b' ');
    out.put_slice(head.status.as_str().as_bytes());
    out.put_u8(b' ');
    let reason = if head.reason.is_empty() {
        head.status.canonical_reason().unwrap_or("")
    } else {
        &head.reason
    };
    out.put_slice(reason.as_bytes());
    out.put_slice(b"\r\n");
    put_headers(&mut out, &head.headers);
    out.put_slice(b"\r\n");
    out.freeze()
}

/// Encodes trailers followed by the final empty line.
/// The last chunk's trailer section: only fields that may be trailers.
pub(crate) fn encode_trailers(trailers: HeaderMap) -> Bytes {
    let mut out = BytesMut::new();
    put_headers(
        &mut out,
        &burrow_http_core::message::sendable_trailers(trailers),
    );
    out.put_slice(b"\r\n");
    out.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_received_head_keeps_its_spelling_which_equality_ignores() {
        let raw = b"HTTP/1.1 200 Fine By Me\r\nX-Mixed-CASE: 1\r\nx-lower: 2\r\n\r\n";
        let Ok(Parsed::Complete(head, n)) = parse_response(raw, 0, &Limits::default(), true) else {
            panic!("a complete head");
        };
        assert_eq!(n, raw.len());
        assert_eq!(head.spelling.reason(), "Fine By Me");
        let mixed = HeaderName::from_static("x-mixed-case");
        assert_eq!(head.spelling.name(&mixed), "X-Mixed-CASE");
        assert_eq!(
            head.spelling.name(&HeaderName::from_static("x-lower")),
            "x-lower"
        );
        let mut plain = ResponseHead::new(200).header("x-mixed-case", "1");
        plain = plain.header("x-lower", "2");
        plain.reason = "Fine By Me".into();
        assert_eq!(head, plain, "the same head, however spelled");
        // Not asked for: nothing kept.
        let Ok(Parsed::Complete(bare, _)) = parse_response(raw, 0, &Limits::default(), false)
        else {
            panic!("a complete head");
        };
        assert_eq!(bare.spelling, Spelling::default());
        assert_eq!(bare, head);
    }
}
