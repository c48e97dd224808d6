//! The proxy's answers when it refuses: statuses, `Proxy-Status` (RFC 9209) and SOCKS
//! replies for every refusal and failure the decision core knows.

use burrow_transport::{Error, ErrorKind, Target};
use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{HeaderMap, StatusCode};

use super::decision::{Answer, ResponseHead};
use super::dial::Dial;
use super::forward::Refusal;
use super::rules::Denied;
use crate::socks::wire::Reply;

/// An HTTP refusal: status, Proxy-Status (RFC 9209) and a short text body.
pub fn refusal(status: StatusCode, error: &str, detail: Option<&str>) -> Answer {
    let v = match detail {
        Some(d) => format!(
            "burrow; error={error}; details=\"{}\"",
            d.replace(['"', '\\'], "")
        ),
        None => format!("burrow; error={error}"),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        "proxy-status",
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("burrow")),
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    let body = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    Answer::Http(ResponseHead { status, headers }, Bytes::from(body))
}

impl Refusal {
    /// The answer that says it.
    pub fn answer(&self) -> Answer {
        refusal(self.status, self.error, self.detail.as_deref())
    }
}

/// The status and Proxy-Status error for a failure reaching the target (RFC 9209 §2.3).
pub fn dial_failure(e: &Error) -> (StatusCode, &'static str) {
    match e.kind() {
        // The next hop's name: the target's, or an upstream proxy's (RFC 9209 §2.3.2).
        ErrorKind::Resolve | ErrorKind::ProxyResolve => (StatusCode::BAD_GATEWAY, "dns_error"),
        ErrorKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "connection_timeout"),
        ErrorKind::ProxyRefused => (StatusCode::BAD_GATEWAY, "proxy_internal_response"),
        ErrorKind::Denied => (StatusCode::FORBIDDEN, "destination_ip_prohibited"),
        _ => (StatusCode::BAD_GATEWAY, "connection_refused"),
    }
}

pub(crate) fn denied(d: Denied) -> Answer {
    refusal(
        StatusCode::FORBIDDEN,
        d.proxy_status(),
        Some(&d.to_string()),
    )
}

/// The answer to a target that could not be reached: 403 when the rules refused it, else
/// the status and Proxy-Status error of the failure.
pub fn dial_refusal(d: &Dial, target: &Target) -> Answer {
    match d {
        Dial::Denied(d) => denied(*d),
        Dial::DnsTimeout => refusal(
            StatusCode::GATEWAY_TIMEOUT,
            "dns_timeout",
            Some(&target.host.to_string()),
        ),
        Dial::Failed(e) => {
            let (status, error) = dial_failure(e);
            refusal(status, error, Some(&target.to_string()))
        }
    }
}

/// The SOCKS reply for a target that could not be reached.
pub fn socks_reply(d: &Dial) -> Reply {
    match d {
        Dial::Denied(_) => Reply::NOT_ALLOWED,
        Dial::DnsTimeout => Reply::HOST_UNREACHABLE,
        Dial::Failed(e) => match e.kind() {
            ErrorKind::Denied => Reply::NOT_ALLOWED,
            ErrorKind::Resolve | ErrorKind::ProxyResolve | ErrorKind::Timeout => {
                Reply::HOST_UNREACHABLE
            }
            ErrorKind::Connect => Reply::CONNECTION_REFUSED,
            _ => Reply::GENERAL_FAILURE,
        },
    }
}

pub(crate) fn bad(detail: &str) -> Answer {
    refusal(StatusCode::BAD_REQUEST, "http_request_error", Some(detail))
}

/// The Proxy-Status error type of an answer this proxy made (`None` for SOCKS and for
/// answers without one).
pub fn proxy_status_error(a: &Answer) -> Option<String> {
    let Answer::Http(head, _) = a else {
        return None;
    };
    let v = head.headers.get("proxy-status")?.to_str().ok()?;
    let e = v
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("error="))?;
    Some(e.to_string())
}
