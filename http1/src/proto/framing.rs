//! How long a message body is (RFC 9112 §6.3).

use burrow_http_core::message;
use http::header::{CONNECTION, CONTENT_LENGTH, TRANSFER_ENCODING};
use http::{HeaderMap, Version};

use super::ProtoError;

/// How a body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Exactly this many bytes (0: no body).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the connection closes (responses only).
    CloseDelimited,
}

/// Parses `Content-Length` by the one rule of [`message::content_length`] (identical
/// repeats are one).
pub fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ProtoError> {
    message::content_length(headers).map_err(|_| ProtoError::InvalidContentLength)
}

/// Whether `Transfer-Encoding` is present, and if so whether chunked is the final coding.
/// Chunked anywhere but last, or twice, is an error.
fn transfer_encoding(headers: &HeaderMap) -> Result<Option<bool>, ProtoError> {
    let mut codings = Vec::new();
    for v in headers.get_all(TRANSFER_ENCODING) {
        let s = v
            .to_str()
            .map_err(|_| ProtoError::UnsupportedTransferEncoding)?;
        for c in s.split(',') {
            let c = c.trim_matches([' ', '\t']);
            if !c.is_empty() {
                codings.push(c.to_ascii_lowercase());
            }
        }
    }
    if codings.is_empty() {
        return if headers.contains_key(TRANSFER_ENCODING) {
            Err(ProtoError::UnsupportedTransferEncoding)
        } else {
            Ok(None)
        };
    }
    let chunked_count = codings.iter().filter(|c| *c == "chunked").count();
    let last_chunked = codings.last().is_some_and(|c| c == "chunked");
    if chunked_count > 1 || (chunked_count == 1 && !last_chunked) {
        return Err(ProtoError::UnsupportedTransferEncoding);
    }
    Ok(Some(last_chunked))
}

fn check_te_cl(headers: &HeaderMap, version: Version) -> Result<Option<bool>, ProtoError> {
    let te = transfer_encoding(headers)?;
    if te.is_some() {
        if headers.contains_key(CONTENT_LENGTH) {
            return Err(ProtoError::ContentLengthWithTransferEncoding);
        }
        if version == Version::HTTP_10 {
            return Err(ProtoError::TransferEncodingInHttp10);
        }
    }
    Ok(te)
}

/// A message whose body framing is asked for (h11's `_body_framing`): a request, or a
/// response with the method of the request it answers.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// A request.
    Request {
        /// Its header fields.
        headers: &'a HeaderMap,
        /// Its version.
        version: Version,
    },
    /// A response to a request with `method`.
    Response {
        /// The method of the request.
        method: &'a http::Method,
        /// The status.
        status: http::StatusCode,
        /// Its header fields.
        headers: &'a HeaderMap,
        /// Its version.
        version: Version,
    },
}

/// How a message's body is delimited (RFC 9112 §6.3), for both roles: no body for the
/// responses that have no content (HEAD, 1xx, 204, 304, 2xx to CONNECT; one rule for every
/// version, in `burrow-http-core`), else `Transfer-Encoding`, else `Content-Length`, else
/// nothing (requests) or the connection's end (responses).
pub fn body_framing(m: Message<'_>) -> Result<Framing, ProtoError> {
    match m {
        Message::Request { headers, version } => request_framing(headers, version),
        Message::Response {
            method,
            status,
            headers,
            version,
        } => {
            if burrow_http_core::message::response_has_content(method, status) {
                response_framing(headers, version)
            } else {
                Ok(Framing::Length(0))
            }
        }
    }
}

/// Framing of a request body (RFC 9112 §6.3 rules 3–6).
fn request_framing(headers: &HeaderMap, version: Version) -> Result<Framing, ProtoError> {
    match check_te_cl(headers, version)? {
        Some(true) => Ok(Framing::Chunked),
        // A request whose final coding is not chunked cannot be delimited: 501/400.
        Some(false) => Err(ProtoError::UnsupportedTransferEncoding),
        None => Ok(Framing::Length(content_length(headers)?.unwrap_or(0))),
    }
}

/// Framing of a response body that may have one.
fn response_framing(headers: &HeaderMap, version: Version) -> Result<Framing, ProtoError> {
    match check_te_cl(headers, version)? {
        Some(true) => Ok(Framing::Chunked),
        Some(false) => Ok(Framing::CloseDelimited),
        None => Ok(match content_length(headers)? {
            Some(n) => Framing::Length(n),
            None => Framing::CloseDelimited,
        }),
    }
}

/// Whether a header list contains a token (case-insensitive), e.g. `Connection: close`.
pub fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    })
}

/// Whether a message allows the connection to stay open afterwards (RFC 9112 §9.3).
pub fn wants_keep_alive(headers: &HeaderMap, version: Version) -> bool {
    if has_token(headers, CONNECTION, "close") {
        return false;
    }
    version != Version::HTTP_10 || has_token(headers, CONNECTION, "keep-alive")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(*k, v.parse().unwrap());
        }
        m
    }

    #[test]
    fn content_length_rules() {
        assert_eq!(content_length(&h(&[])), Ok(None));
        assert_eq!(
            content_length(&h(&[("content-length", "42")])),
            Ok(Some(42))
        );
        assert_eq!(
            content_length(&h(&[("content-length", "42"), ("content-length", "42")])),
            Ok(Some(42))
        );
        assert_eq!(
            content_length(&h(&[("content-length", "42, 42")])),
            Ok(Some(42))
        );
        assert_eq!(
            content_length(&h(&[("content-length", "42"), ("content-length", "43")])),
            Err(ProtoError::InvalidContentLength)
        );
        for bad in ["-1", "+1", "0x10", "", "1 2", "99999999999999999999"] {
            assert_eq!(
                content_length(&h(&[("content-length", bad)])),
                Err(ProtoError::InvalidContentLength),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn transfer_encoding_rules() {
        let v = Version::HTTP_11;
        assert_eq!(
            request_framing(&h(&[("transfer-encoding", "chunked")]), v),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            request_framing(&h(&[("transfer-encoding", "gzip, chunked")]), v),
            Ok(Framing::Chunked)
        );
        assert_eq!(
            request_framing(&h(&[("transfer-encoding", "chunked, gzip")]), v),
            Err(ProtoError::UnsupportedTransferEncoding)
        );
        assert_eq!(
            response_framing(&h(&[("transfer-encoding", "gzip")]), v),
            Ok(Framing::CloseDelimited)
        );
        assert_eq!(
            request_framing(&h(&[("transfer-encoding", "chunked, chunked")]), v),
            Err(ProtoError::UnsupportedTransferEncoding)
        );
        assert_eq!(
            response_framing(
                &h(&[("transfer-encoding", "chunked"), ("content-length", "3")]),
                v
            ),
            Err(ProtoError::ContentLengthWithTransferEncoding)
        );
        assert_eq!(
            response_framing(&h(&[("transfer-encoding", "chunked")]), Version::HTTP_10),
            Err(ProtoError::TransferEncodingInHttp10)
        );
        assert_eq!(request_framing(&h(&[]), v), Ok(Framing::Length(0)));
        assert_eq!(response_framing(&h(&[]), v), Ok(Framing::CloseDelimited));
    }

    #[test]
    fn keep_alive_rules() {
        assert!(wants_keep_alive(&h(&[]), Version::HTTP_11));
        assert!(!wants_keep_alive(
            &h(&[("connection", "Close")]),
            Version::HTTP_11
        ));
        assert!(!wants_keep_alive(&h(&[]), Version::HTTP_10));
        assert!(wants_keep_alive(
            &h(&[("connection", "keep-alive")]),
            Version::HTTP_10
        ));
    }
}
