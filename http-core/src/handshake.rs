//! The tunnel handshake, sans-I/O and the same for every version: what a CONNECT, an
//! extended CONNECT or an HTTP/1.1 Upgrade looks like on each version, what the peer's
//! SETTINGS must allow first, and how its answer is judged; on the server, what a request
//! asks for and how it is accepted. The version crates only put these heads on the wire.
//!
//! ```text
//!             client                                   server
//! TunnelRequest --request_head(v)--> head ~~~~~~~~> ask(method, protocol) -> TunnelAsk
//!   (settings: check_settings(v))                    accept_head(ask, v) -> 2xx / 101
//! answer <-- judge_answer(v, status) <~~~~~~~~~~~~~~ (check_accept(ask, v, status))
//! ```

use http::header::{HeaderValue, CONNECTION, HOST, UPGRADE};
use http::{HeaderMap, Method, Response, StatusCode, Version};

use crate::message::strip_connection_specific;
use crate::tunnel::refused;
use crate::{Error, TunnelRequest};

/// A tunnel request as a request head for one version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelHead {
    /// `CONNECT`, or `GET` for an HTTP/1.1 Upgrade.
    pub method: Method,
    /// The authority (`:authority`; on HTTP/1.1 the `Host` and the CONNECT target).
    pub authority: String,
    /// `:scheme` of an extended CONNECT.
    pub scheme: Option<&'static str>,
    /// `:path` of an extended CONNECT (the request target of an HTTP/1.1 Upgrade).
    pub path: Option<String>,
    /// `:protocol` of an extended CONNECT (the `Upgrade` token on HTTP/1.1).
    pub protocol: Option<String>,
    /// The header fields to send (on HTTP/1.1 with `Host`, `Connection` and `Upgrade`).
    pub headers: HeaderMap,
}

impl TunnelHead {
    /// The HTTP/1.1 request target: the authority for CONNECT (RFC 9112 §3.2.3), the path
    /// for an Upgrade.
    pub fn h1_target(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.authority)
    }

    /// The URI for HTTP/2 and HTTP/3: the authority alone for CONNECT, the absolute URI for
    /// an extended CONNECT.
    pub fn uri(&self) -> String {
        match (&self.scheme, &self.path) {
            (Some(s), Some(p)) => format!("{s}://{}{p}", self.authority),
            _ => self.authority.clone(),
        }
    }
}

fn bad(what: &str) -> Error {
    Error::invalid_input(format!("tunnel request: {what}"))
}

/// The request head `req` is on version `v`. RFC 9113 §8.5 and RFC 9114 §4.4: a CONNECT
/// carries only `:method` and `:authority`; RFC 8441 §4 and RFC 9220 §3: an extended
/// CONNECT adds `:scheme`, `:path` and `:protocol`; RFC 9112 / RFC 9298 §3.2: on HTTP/1.1
/// an extended CONNECT is a `GET` with `Connection: Upgrade` and `Upgrade: protocol`.
pub fn request_head(req: &TunnelRequest, v: Version) -> Result<TunnelHead, Error> {
    let mut headers = req.headers().clone();
    strip_connection_specific(&mut headers);
    let own_host = headers.remove(HOST);
    let authority = req.authority().to_string();
    let mut head = match req {
        TunnelRequest::Connect { .. } => TunnelHead {
            method: Method::CONNECT,
            authority,
            scheme: None,
            path: None,
            protocol: None,
            headers,
        },
        TunnelRequest::Extended {
            protocol,
            secure,
            path,
            ..
        } => TunnelHead {
            method: if v <= Version::HTTP_11 {
                Method::GET
            } else {
                Method::CONNECT
            },
            authority,
            scheme: Some(if *secure { "https" } else { "http" }),
            path: Some(path.clone()),
            protocol: Some(protocol.clone()),
            headers,
        },
    };
    if v <= Version::HTTP_11 {
        // An Upgrade keeps a Host of its caller's (a proxy passing a client's WebSocket on
        // keeps the client's, without a default port); a CONNECT's is its target.
        let host = match (&head.protocol, own_host) {
            (Some(_), Some(h)) => h,
            _ => HeaderValue::from_str(&head.authority).map_err(|_| bad("invalid authority"))?,
        };
        head.headers.insert(HOST, host);
        if let Some(p) = &head.protocol {
            let token = HeaderValue::from_str(p).map_err(|_| bad("invalid protocol"))?;
            head.headers
                .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
            head.headers.insert(UPGRADE, token);
        }
    }
    Ok(head)
}

/// What a peer's SETTINGS allow, as far as tunnels go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PeerSettings {
    /// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 8441 §3, RFC 9220 §3).
    pub extended_connect: bool,
    /// SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1), HTTP/3 only.
    pub h3_datagram: bool,
}

/// Whether `req` on version `v` must wait for the peer's SETTINGS: an extended CONNECT on
/// HTTP/2 or HTTP/3 may only be sent once they allowed it.
pub fn needs_settings(req: &TunnelRequest, v: Version) -> bool {
    req.protocol().is_some() && v >= Version::HTTP_2
}

/// Whether the peer's SETTINGS allow `req` on version `v`: extended CONNECT needs
/// SETTINGS_ENABLE_CONNECT_PROTOCOL; CONNECT-UDP over HTTP/3 also SETTINGS_H3_DATAGRAM
/// (RFC 9298 §5: datagrams are how it carries UDP).
pub fn check_settings(req: &TunnelRequest, v: Version, s: &PeerSettings) -> Result<(), Error> {
    let Some(p) = req.protocol() else {
        return Ok(());
    };
    let name = if v == Version::HTTP_3 {
        "HTTP/3"
    } else {
        "HTTP/2"
    };
    if v == Version::HTTP_3 && p.eq_ignore_ascii_case("connect-udp") && !s.h3_datagram {
        return Err(Error::unsupported(
            "HTTP/3 peer did not enable HTTP Datagrams (SETTINGS_H3_DATAGRAM), needed for \
             CONNECT-UDP",
        ));
    }
    if v >= Version::HTTP_2 && !s.extended_connect {
        return Err(Error::unsupported(format!(
            "{name} peer did not enable extended CONNECT \
                 (SETTINGS_ENABLE_CONNECT_PROTOCOL), needed for :protocol {p}"
        )));
    }
    Ok(())
}

/// Judges the final answer to `req` on version `v`: an extended CONNECT over HTTP/1.1
/// succeeds with 101 only, anything else with any 2xx; every other status is the peer's
/// refusal ([`refused`]: kind `ProxyRefused`, the status, `Proxy-Status`).
pub fn judge_answer(
    req: &TunnelRequest,
    v: Version,
    status: StatusCode,
    headers: &HeaderMap,
) -> Result<(), Error> {
    let upgrade = v <= Version::HTTP_11 && req.protocol().is_some();
    let ok = if upgrade {
        status == StatusCode::SWITCHING_PROTOCOLS
    } else {
        status.is_success()
    };
    if ok {
        Ok(())
    } else {
        Err(refused(status, headers))
    }
}

/// What a request received by a server asks for, if it is a tunnel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelAsk {
    /// Classic CONNECT to the request's authority.
    Connect,
    /// Extended CONNECT (or an HTTP/1.1 Upgrade) for this protocol, lower-cased.
    Extended(String),
}

/// Whether a request with `method` and extended-CONNECT `protocol` (the `:protocol`, or
/// the HTTP/1.1 `Upgrade` token of an upgrade request) asks for a tunnel.
pub fn ask(method: &Method, protocol: Option<&str>) -> Option<TunnelAsk> {
    match protocol {
        Some(p) => Some(TunnelAsk::Extended(p.trim().to_ascii_lowercase())),
        None if method == Method::CONNECT => Some(TunnelAsk::Connect),
        None => None,
    }
}

/// The answer that accepts `ask` on version `v`: 101 with `Upgrade` for an HTTP/1.1
/// upgrade (RFC 9110 §7.8), 200 otherwise.
pub fn accept_head(ask: &TunnelAsk, v: Version) -> Response<()> {
    let mut r = Response::new(());
    if let (TunnelAsk::Extended(p), true) = (ask, v <= Version::HTTP_11) {
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        if let Ok(token) = HeaderValue::from_str(p) {
            r.headers_mut().insert(UPGRADE, token);
        }
        r.headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    }
    r
}

/// Whether a server may accept a tunnel with `status` on version `v` (`upgrade`: it is an
/// HTTP/1.1 upgrade): 101 for an upgrade, a 2xx otherwise. Anything else is the caller's
/// misuse.
pub fn check_accept(upgrade: bool, v: Version, status: StatusCode) -> Result<(), Error> {
    let ok = if upgrade && v <= Version::HTTP_11 {
        status == StatusCode::SWITCHING_PROTOCOLS
    } else {
        status.is_success()
    };
    if ok {
        Ok(())
    } else {
        Err(Error::invalid_input(format!(
            "a tunnel is accepted with 101 (HTTP/1.1 upgrade) or a 2xx, not {status}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_transport::Target;

    fn udp() -> TunnelRequest {
        let mut r = TunnelRequest::extended(
            "connect-udp",
            "proxy.test:443".parse::<Target>().unwrap(),
            "/.well-known/masque/udp/192.0.2.1/53/",
        );
        r.headers_mut()
            .insert("capsule-protocol", HeaderValue::from_static("?1"));
        r.headers_mut()
            .insert("connection", HeaderValue::from_static("close"));
        r
    }

    #[test]
    fn heads_per_version() {
        let c = TunnelRequest::connect("example.com:443".parse().unwrap());
        let h2 = request_head(&c, Version::HTTP_2).unwrap();
        assert_eq!(
            (h2.method.clone(), h2.uri()),
            (Method::CONNECT, "example.com:443".into())
        );
        assert!(h2.headers.is_empty() && h2.scheme.is_none() && h2.path.is_none());
        let h1 = request_head(&c, Version::HTTP_11).unwrap();
        assert_eq!(h1.h1_target(), "example.com:443");
        assert_eq!(h1.headers[HOST], "example.com:443");

        let u = udp();
        let h3 = request_head(&u, Version::HTTP_3).unwrap();
        assert_eq!(h3.method, Method::CONNECT);
        assert_eq!(
            h3.uri(),
            "https://proxy.test:443/.well-known/masque/udp/192.0.2.1/53/"
        );
        assert_eq!(h3.protocol.as_deref(), Some("connect-udp"));
        // The user's connection-specific fields never go out.
        assert!(!h3.headers.contains_key(CONNECTION));
        let h1 = request_head(&u, Version::HTTP_11).unwrap();
        assert_eq!(h1.method, Method::GET);
        assert_eq!(h1.h1_target(), "/.well-known/masque/udp/192.0.2.1/53/");
        assert_eq!(h1.headers[UPGRADE], "connect-udp");
        assert_eq!(h1.headers[CONNECTION], "Upgrade");
        assert_eq!(h1.headers["capsule-protocol"], "?1");
        let plain = request_head(&u.clone().with_secure(false), Version::HTTP_2).unwrap();
        assert!(plain.uri().starts_with("http://"));
    }

    #[test]
    fn an_upgrade_keeps_its_callers_host_a_connect_names_its_target() {
        let target: Target = "example.com:80".parse().unwrap();
        let mut ws = TunnelRequest::extended("websocket", target.clone(), "/chat");
        ws.headers_mut()
            .insert(HOST, HeaderValue::from_static("example.com"));
        let h = request_head(&ws, Version::HTTP_11).unwrap();
        assert_eq!(h.headers[HOST], "example.com");
        let mut c = TunnelRequest::connect(target);
        c.headers_mut()
            .insert(HOST, HeaderValue::from_static("elsewhere.example"));
        let h = request_head(&c, Version::HTTP_11).unwrap();
        assert_eq!(h.headers[HOST], "example.com:80");
    }

    #[test]
    fn settings_needed_and_checked() {
        let c = TunnelRequest::connect("example.com:443".parse().unwrap());
        assert!(!needs_settings(&c, Version::HTTP_2));
        assert!(needs_settings(&udp(), Version::HTTP_3));
        assert!(!needs_settings(&udp(), Version::HTTP_11));
        let none = PeerSettings::default();
        assert!(check_settings(&c, Version::HTTP_3, &none).is_ok());
        let e = check_settings(&udp(), Version::HTTP_2, &none).unwrap_err();
        assert!(
            e.to_string().contains("SETTINGS_ENABLE_CONNECT_PROTOCOL"),
            "{e}"
        );
        let ext = PeerSettings {
            extended_connect: true,
            h3_datagram: false,
        };
        assert!(check_settings(&udp(), Version::HTTP_2, &ext).is_ok());
        let e = check_settings(&udp(), Version::HTTP_3, &ext).unwrap_err();
        assert!(e.to_string().contains("SETTINGS_H3_DATAGRAM"), "{e}");
    }

    #[test]
    fn answers_are_judged_per_version() {
        let c = TunnelRequest::connect("example.com:443".parse().unwrap());
        let h = HeaderMap::new();
        assert!(judge_answer(&c, Version::HTTP_2, StatusCode::OK, &h).is_ok());
        assert!(judge_answer(&c, Version::HTTP_11, StatusCode::from_u16(299).unwrap(), &h).is_ok());
        let e = judge_answer(&c, Version::HTTP_3, StatusCode::FORBIDDEN, &h).unwrap_err();
        assert_eq!(e.status(), Some(StatusCode::FORBIDDEN));
        // An Upgrade answered 200 did not switch.
        assert!(judge_answer(&udp(), Version::HTTP_11, StatusCode::OK, &h).is_err());
        assert!(judge_answer(
            &udp(),
            Version::HTTP_11,
            StatusCode::SWITCHING_PROTOCOLS,
            &h
        )
        .is_ok());
        assert!(
            judge_answer(&udp(), Version::HTTP_3, StatusCode::SWITCHING_PROTOCOLS, &h).is_err()
        );
    }

    #[test]
    fn servers_ask_and_accept() {
        assert_eq!(ask(&Method::CONNECT, None), Some(TunnelAsk::Connect));
        assert_eq!(ask(&Method::GET, None), None);
        let a = ask(&Method::GET, Some(" Connect-UDP")).unwrap();
        assert_eq!(a, TunnelAsk::Extended("connect-udp".into()));
        let r = accept_head(&a, Version::HTTP_11);
        assert_eq!(r.status(), StatusCode::SWITCHING_PROTOCOLS);
        assert_eq!(r.headers()[UPGRADE], "connect-udp");
        assert_eq!(accept_head(&a, Version::HTTP_2).status(), StatusCode::OK);
        assert!(check_accept(true, Version::HTTP_11, StatusCode::OK).is_err());
        assert!(check_accept(false, Version::HTTP_2, StatusCode::OK).is_ok());
        assert!(check_accept(false, Version::HTTP_3, StatusCode::FORBIDDEN).is_err());
    }
}
