//! Where a request goes, derived once for every version: the authority written in `Host`
//! (HTTP/1.1) or `:authority` (HTTP/2, HTTP/3), never with userinfo in it, and userinfo
//! turned into `Authorization: Basic` as curl does.
//!
//! RFC 9110 §4.2.4: "A sender MUST NOT generate the userinfo subcomponent (and its "@"
//! delimiter) when an "http" or "https" URI reference is generated within a message as a
//! target URI or field value."

use http::header::AUTHORIZATION;
use http::uri::{Authority, Uri};
use http::Request;

/// The authority of `uri` without userinfo: `host[:port]` as written (IPv6 in brackets).
pub fn authority(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    Some(match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

/// The value of `Host` for `uri`: its authority without userinfo, and without the port
/// when it is the scheme's default.
pub fn host_header(uri: &Uri) -> Option<String> {
    let host = uri.host()?;
    Some(match (uri.scheme_str(), uri.port_u16()) {
        (Some("http"), Some(80)) | (Some("https"), Some(443)) | (_, None) => host.to_string(),
        (_, Some(p)) => format!("{host}:{p}"),
    })
}

/// The user name and password in `uri`'s userinfo, percent-decoded (`None` without one).
/// A user name without `:` has an empty password.
pub fn userinfo(uri: &Uri) -> Option<(String, String)> {
    let a = uri.authority()?.as_str();
    let (info, _) = a.rsplit_once('@')?;
    let (user, pass) = info.split_once(':').unwrap_or((info, ""));
    Some((percent_decode(user), percent_decode(pass)))
}

/// The absolute URI a request is for, as HTTP/2 and HTTP/3 send it (`:scheme`,
/// `:authority`, `:path`): its own URI without userinfo when absolute, else `scheme` with
/// its `Host` field and its path.
pub fn absolute_uri(parts: &http::request::Parts, scheme: &str) -> Result<Uri, crate::Error> {
    use crate::Error;
    let uri = &parts.uri;
    if uri.scheme().is_some() && uri.authority().is_some() {
        return Ok(without_userinfo(uri));
    }
    let host = parts
        .headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| Error::invalid_input("request has no authority nor Host"))?;
    let pq = uri.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{host}{pq}")
        .parse()
        .map_err(|_| Error::invalid_input("invalid request URI"))
}

/// `uri` without its userinfo.
pub fn without_userinfo(uri: &Uri) -> Uri {
    let Some(a) = uri.authority() else {
        return uri.clone();
    };
    let Some((_, hostport)) = a.as_str().rsplit_once('@') else {
        return uri.clone();
    };
    let mut parts = uri.clone().into_parts();
    parts.authority = hostport.parse::<Authority>().ok();
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}

/// Moves userinfo out of the request URI: the URI loses it, and unless the request has
/// an `Authorization` already, it gains `Authorization: Basic` with those credentials
/// (marked sensitive, so HPACK and QPACK never index it).
pub fn userinfo_to_authorization<B>(req: &mut Request<B>) {
    let Some((user, pass)) = userinfo(req.uri()) else {
        return;
    };
    *req.uri_mut() = without_userinfo(req.uri());
    if req.headers().contains_key(AUTHORIZATION) {
        return;
    }
    if let Some(v) = crate::credentials::basic(&user, &pass) {
        req.headers_mut().insert(AUTHORIZATION, v);
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_never_carries_userinfo() {
        let u: Uri = "http://user:pw@example.com:8080/x".parse().unwrap();
        assert_eq!(authority(&u).unwrap(), "example.com:8080");
        assert_eq!(host_header(&u).unwrap(), "example.com:8080");
        let u: Uri = "https://u@[::1]:443/".parse().unwrap();
        assert_eq!(authority(&u).unwrap(), "[::1]:443");
        assert_eq!(host_header(&u).unwrap(), "[::1]");
        assert_eq!(without_userinfo(&u), "https://[::1]:443/");
    }

    #[test]
    fn userinfo_becomes_basic_authorization() {
        let mut r = Request::get("http://al%40ice:p%3As@h.test/p?q")
            .body(())
            .unwrap();
        userinfo_to_authorization(&mut r);
        assert_eq!(r.uri(), "http://h.test/p?q");
        // base64("al@ice:p:s")
        assert_eq!(r.headers()[AUTHORIZATION], "Basic YWxAaWNlOnA6cw==");
        assert!(r.headers()[AUTHORIZATION].is_sensitive());
        // An explicit Authorization wins; the URI still loses its userinfo.
        let mut r = Request::get("http://u:p@h.test/")
            .header(AUTHORIZATION, "Bearer t")
            .body(())
            .unwrap();
        userinfo_to_authorization(&mut r);
        assert_eq!(r.uri(), "http://h.test/");
        assert_eq!(r.headers()[AUTHORIZATION], "Bearer t");
        // No userinfo: nothing changes.
        let mut r = Request::get("http://h.test/").body(()).unwrap();
        userinfo_to_authorization(&mut r);
        assert!(!r.headers().contains_key(AUTHORIZATION));
    }
}
