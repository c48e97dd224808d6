//! Playbooks for the proxy's decision core: auth, every rule kind, limits, dial failures and
//! their Proxy-Status, forwarding with version translation, loops, deadlines, cancellation,
//! CONNECT-UDP and SOCKS, in the core's own vocabulary (its `Input`s and `Command`s).

use std::sync::Arc;
use std::time::{Duration, Instant};

use burrow_http_core::credentials::Credentials;
use burrow_test_support::playbook;
use burrow_test_support::playbook::{Tick, Timed, TimedCore};
use burrow_transport::{Error, ErrorKind, Target};
use http::{HeaderMap, HeaderValue, Method, Request, StatusCode, Version};

use super::decision::*;
use super::dial::{Dial, Judge, OwnAddresses};
use super::rules::{parse_network, Denied, Rules};
use crate::socks::wire::{Command as SocksCommand, Reply};

impl TimedCore for Decision {
    type Input = Input;
    type Output = Command;

    fn handle(&mut self, input: Input, now: Instant) {
        Decision::handle(self, input, now)
    }

    fn poll_output(&mut self) -> Option<Command> {
        self.poll_command()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Decision::poll_timeout(self)
    }

    fn handle_timeout(&mut self, now: Instant) {
        Decision::handle_timeout(self, now)
    }
}

#[derive(Default)]
struct Setup {
    auth: Option<Credentials>,
    rules: Rules,
    own: Vec<&'static str>,
    upstream: bool,
}

impl Setup {
    fn policy(self) -> Arc<Policy> {
        let own = Arc::new(OwnAddresses::default());
        own.set(self.own.iter().map(|a| a.parse().unwrap()).collect());
        Arc::new(Policy::new(
            self.auth,
            "burrow-test".into(),
            Arc::new(Judge::new(self.rules, own, self.upstream)),
            crate::template::UdpTemplate::default(),
            Duration::from_secs(60),
        ))
    }

    fn http(self) -> Timed<Decision> {
        let p = self.policy();
        Timed::new(|_| Decision::new(p, false))
    }

    fn socks(self) -> Timed<Decision> {
        let p = self.policy();
        Timed::new(|_| Decision::new(p, true))
    }
}

fn open() -> Timed<Decision> {
    Setup::default().http()
}

fn request(
    method: Method,
    uri: &str,
    version: Version,
    headers: &[(&'static str, &str)],
) -> Tick<Input> {
    let mut b = Request::builder().method(method).uri(uri).version(version);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let (head, ()) = b.body(()).unwrap().into_parts();
    Tick::In(Input::Request {
        head,
        protocol: None,
    })
}

fn connect(authority: &str) -> Tick<Input> {
    request(Method::CONNECT, authority, Version::HTTP_11, &[])
}

fn target(t: &str) -> Target {
    t.parse().unwrap()
}

fn ok_200() -> Answer {
    Answer::Http(
        ResponseHead {
            status: StatusCode::OK,
            headers: HeaderMap::new(),
        },
        bytes::Bytes::new(),
    )
}

fn refuse(status: StatusCode, error: &str, detail: &str) -> Command {
    Command::Refuse(refusal(status, error, Some(detail)))
}

fn tunnel_to_the_end(pb: Timed<Decision>, first: Tick<Input>, t: &str) {
    playbook!(pb,
        >> first,
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target(t), Transport::Tcp, 0),
        >> Tick::In(Input::Dialed(Ok(()))),
        << Command::Accept(ok_200()),
        >> Tick::In(Input::Accepted(Ok(()))),
        << Command::Relay(Framing::Raw),
        >> Tick::In(Input::Relayed(Default::default())),
        << Command::Done,
    );
}

#[test]
fn connect_is_reserved_dialed_accepted_and_relayed() {
    tunnel_to_the_end(open(), connect("example.com:443"), "example.com:443");
}

#[test]
fn auth_407_without_credentials_200_with_them() {
    let creds = || Setup {
        auth: Some(Credentials {
            user: "u".into(),
            pass: "pw".into(),
        }),
        ..Setup::default()
    };
    let mut want = refusal(
        StatusCode::PROXY_AUTHENTICATION_REQUIRED,
        "http_request_denied",
        Some("authentication required"),
    );
    if let Answer::Http(h, _) = &mut want {
        h.headers.insert(
            "proxy-authenticate",
            HeaderValue::from_static("Basic realm=\"burrow\""),
        );
    }
    playbook!(creds().http(),
        >> connect("example.com:443"),
        << Command::Refuse(want.clone()),
        << Command::Done,
    );
    playbook!(creds().http(),
        >> request(Method::CONNECT, "example.com:443", Version::HTTP_11, &[("proxy-authorization", "Basic dTpubw==")]),
        << Command::Refuse(want),
        << Command::Done,
    );
    // "u:pw"
    let authorized = request(
        Method::CONNECT,
        "example.com:443",
        Version::HTTP_11,
        &[("proxy-authorization", "Basic dTpwdw==")],
    );
    tunnel_to_the_end(creds().http(), authorized, "example.com:443");
}

#[test]
fn every_rule_kind_refuses_with_its_proxy_status() {
    let cases: Vec<(Setup, &str, Denied)> = vec![
        (
            Setup {
                rules: Rules {
                    hosts: vec!["*.allowed.example".into()],
                    ..Rules::default()
                },
                ..Setup::default()
            },
            "other.example:443",
            Denied::Host,
        ),
        (
            Setup {
                rules: Rules {
                    ports: vec![(443, 443)],
                    ..Rules::default()
                },
                ..Setup::default()
            },
            "example.com:25",
            Denied::Port,
        ),
        (
            Setup {
                rules: Rules {
                    networks: vec![parse_network("192.0.2.0/24").unwrap()],
                    ..Rules::default()
                },
                ..Setup::default()
            },
            "198.51.100.1:443",
            Denied::Address,
        ),
        (
            Setup::default(),
            "127.0.0.1:22",
            Denied::Special("loopback"),
        ),
        (
            Setup::default(),
            "[fe80::1]:22",
            Denied::Special("link-local"),
        ),
        (
            Setup {
                own: vec!["192.0.2.10:3128"],
                ..Setup::default()
            },
            "192.0.2.10:3128",
            Denied::OwnAddress,
        ),
        (
            Setup {
                rules: Rules {
                    networks: vec![parse_network("192.0.2.0/24").unwrap()],
                    ..Rules::default()
                },
                upstream: true,
                ..Setup::default()
            },
            "name.example:443",
            Denied::Unverifiable,
        ),
    ];
    for (setup, t, d) in cases {
        let status_error = d.proxy_status();
        playbook!(setup.http(),
            >> connect(t),
            << Command::Reserve(Work::Tunnel),
            >> Tick::In(Input::Reserved(Ok(()))),
            << refuse(StatusCode::FORBIDDEN, status_error, &d.to_string()),
            << Command::Done,
        );
    }
    // Host rules are judged on forwarded requests too, before anything is dialed.
    let hosts = Setup {
        rules: Rules {
            hosts: vec!["allowed.example".into()],
            ..Rules::default()
        },
        ..Setup::default()
    };
    playbook!(hosts.http(),
        >> request(Method::GET, "http://other.example/", Version::HTTP_11, &[("host", "other.example")]),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << refuse(StatusCode::FORBIDDEN, "http_request_denied", "host not allowed"),
        << Command::Done,
    );
}

#[test]
fn limits_answer_429_for_a_client_and_503_for_the_proxy() {
    playbook!(open(),
        >> connect("example.com:443"),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Err(Full::Client))),
        << refuse(StatusCode::TOO_MANY_REQUESTS, "proxy_internal_error", "too many requests or tunnels from this client"),
        << Command::Done,
    );
    playbook!(open(),
        >> request(Method::GET, "http://a.example/", Version::HTTP_11, &[("host", "a.example")]),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Err(Full::Proxy))),
        << refuse(StatusCode::SERVICE_UNAVAILABLE, "proxy_internal_error", "too many requests or tunnels"),
        << Command::Done,
    );
}

#[test]
fn dial_failures_have_their_status_and_proxy_status() {
    let t = "example.com:443";
    let cases = [
        (
            Dial::DnsTimeout,
            StatusCode::GATEWAY_TIMEOUT,
            "dns_timeout",
            "example.com",
        ),
        (
            Dial::Failed(Error::resolve("no such name")),
            StatusCode::BAD_GATEWAY,
            "dns_error",
            t,
        ),
        (
            Dial::Failed(Error::peer_timeout("slow")),
            StatusCode::GATEWAY_TIMEOUT,
            "connection_timeout",
            t,
        ),
        (
            Dial::Failed(Error::peer(ErrorKind::Connect, "refused")),
            StatusCode::BAD_GATEWAY,
            "connection_refused",
            t,
        ),
        (
            Dial::Denied(Denied::Special("loopback")),
            StatusCode::FORBIDDEN,
            "destination_ip_prohibited",
            "loopback address refused by default",
        ),
    ];
    for (dial, status, error, detail) in cases {
        playbook!(open(),
            >> connect(t),
            << Command::Reserve(Work::Tunnel),
            >> Tick::In(Input::Reserved(Ok(()))),
            << Command::Dial(target(t), Transport::Tcp, 0),
            >> Tick::In(Input::Dialed(Err(dial))),
            << refuse(status, error, detail),
            << Command::Done,
        );
    }
}

#[test]
fn forwarding_translates_versions_and_has_a_deadline() {
    let mut sent = HeaderMap::new();
    sent.insert("host", HeaderValue::from_static("a.example"));
    sent.insert("via", HeaderValue::from_static("2 burrow-test"));
    let head = Head {
        method: Method::GET,
        uri: "https://a.example/x?y".parse().unwrap(),
        version: Version::HTTP_11,
        headers: sent,
    };
    let mut origin = HeaderMap::new();
    origin.insert("connection", HeaderValue::from_static("close, x-hop"));
    origin.insert("x-hop", HeaderValue::from_static("1"));
    origin.insert("keep-alive", HeaderValue::from_static("timeout=5"));
    origin.insert("content-type", HeaderValue::from_static("text/plain"));
    let mut answered = HeaderMap::new();
    answered.insert("content-type", HeaderValue::from_static("text/plain"));
    answered.insert("via", HeaderValue::from_static("2 burrow-test"));
    // An HTTP/2 request goes on as HTTP/1.1; hop-by-hop fields do not come back.
    playbook!(open(),
        >> request(Method::GET, "https://a.example/x?y", Version::HTTP_2, &[("proxy-authorization", "Basic eA==")]),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Forward(Box::new(head.clone()), target("a.example:443"), 0),
        >> Tick::In(Input::Forwarded(Ok((ResponseHead { status: StatusCode::OK, headers: origin }, Version::HTTP_11)))),
        << Command::Respond(Box::new(ResponseHead { status: StatusCode::OK, headers: answered })),
        << Command::Done,
    );
    // No response head within the deadline: 504, the exchange abandoned.
    playbook!(open(),
        >> request(Method::GET, "https://a.example/x?y", Version::HTTP_2, &[]),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Forward(Box::new(head), target("a.example:443"), 0),
        >> Tick::Advance(Duration::from_secs(59)),
        >> Tick::Advance(Duration::from_secs(1)),
        << Command::Abandon,
        << refuse(StatusCode::GATEWAY_TIMEOUT, "http_response_timeout", "no response from a.example:443 within 60s"),
        << Command::Done,
    );
}

#[test]
fn malformed_forwards_and_loops_are_refused_before_anything_is_held() {
    playbook!(open(),
        >> request(Method::GET, "/relative", Version::HTTP_11, &[("host", "a")]),
        << refuse(StatusCode::BAD_REQUEST, "http_request_error", "not a proxy request: absolute URI needed"),
        << Command::Done,
    );
    playbook!(open(),
        >> request(Method::GET, "http://a.example/", Version::HTTP_11, &[("host", "a.example"), ("via", "1.1 burrow-test")]),
        << refuse(StatusCode::LOOP_DETECTED, "proxy_loop_detected", "forwarding loop (Via names this proxy)"),
        << Command::Done,
    );
    playbook!(open(),
        >> request(Method::CONNECT, "example.com", Version::HTTP_11, &[]),
        << ?("a CONNECT without a port is taken as :443", |c| matches!(c, Command::Reserve(Work::Tunnel))),
    );
}

#[test]
fn a_client_giving_up_abandons_the_dial() {
    playbook!(open(),
        >> connect("example.com:443"),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("example.com:443"), Transport::Tcp, 0),
        >> Tick::In(Input::Cancelled),
        << Command::Abandon,
        << Command::Done,
    );
}

#[test]
fn connect_udp_is_accepted_per_version() {
    let path = "https://proxy.example/.well-known/masque/udp/192.0.2.1/53/";
    for (version, status, upgrade) in [
        (Version::HTTP_11, StatusCode::SWITCHING_PROTOCOLS, true),
        (Version::HTTP_2, StatusCode::OK, false),
    ] {
        let b = Request::builder()
            .method(Method::CONNECT)
            .uri(path)
            .version(version);
        let (head, ()) = b.body(()).unwrap().into_parts();
        let input = Tick::In(Input::Request {
            head,
            protocol: Some("connect-udp".into()),
        });
        playbook!(open(),
            >> input,
            << Command::Reserve(Work::Tunnel),
            >> Tick::In(Input::Reserved(Ok(()))),
            << Command::Dial(target("192.0.2.1:53"), Transport::Udp, 0),
            >> Tick::In(Input::Dialed(Ok(()))),
            << ?("accepted with Capsule-Protocol", move |c| matches!(c,
                Command::Accept(Answer::Http(h, _)) if h.status == status
                    && h.headers["capsule-protocol"] == "?1"
                    && h.headers.contains_key("upgrade") == upgrade)),
        );
    }
    let b = Request::builder()
        .method(Method::CONNECT)
        .uri("https://proxy.example/elsewhere");
    let (head, ()) = b.body(()).unwrap().into_parts();
    playbook!(open(),
        >> Tick::In(Input::Request { head, protocol: Some("connect-udp".into()) }),
        << refuse(StatusCode::BAD_REQUEST, "http_request_error", "path does not match the CONNECT-UDP template"),
        << Command::Done,
    );
}

fn connect_tcp(version: Version, path: &str, headers: &[(&'static str, &str)]) -> Tick<Input> {
    let method = match version {
        Version::HTTP_11 => Method::GET,
        _ => Method::CONNECT,
    };
    let Tick::In(Input::Request { head, .. }) = request(method, path, version, headers) else {
        unreachable!()
    };
    Tick::In(Input::Request {
        head,
        protocol: Some("connect-tcp".into()),
    })
}

#[test]
fn connect_tcp_is_dialed_first_then_accepted_per_version_and_relayed_as_capsules() {
    let path = "https://proxy.example/.well-known/masque/tcp/2001%3Adb8%3A%3A1/443/";
    for (version, status, upgrade) in [
        (Version::HTTP_11, StatusCode::SWITCHING_PROTOCOLS, true),
        (Version::HTTP_2, StatusCode::OK, false),
        (Version::HTTP_3, StatusCode::OK, false),
    ] {
        playbook!(open(),
            >> connect_tcp(version, path, &[]),
            << Command::Reserve(Work::Tunnel),
            >> Tick::In(Input::Reserved(Ok(()))),
            << Command::Dial(target("[2001:db8::1]:443"), Transport::Tcp, 0),
            >> Tick::In(Input::Dialed(Ok(()))),
            << ?("accepted with Capsule-Protocol", move |c| matches!(c,
                Command::Accept(Answer::Http(h, _)) if h.status == status
                    && h.headers["capsule-protocol"] == "?1"
                    && h.headers.get("upgrade").is_some_and(|u| u == "connect-tcp") == upgrade)),
            >> Tick::In(Input::Accepted(Ok(()))),
            << Command::Relay(Framing::TcpCapsules),
            >> Tick::In(Input::Relayed(Default::default())),
            << Command::Done,
        );
    }
    // The token is case-insensitive.
    let Tick::In(Input::Request { head, .. }) = connect_tcp(Version::HTTP_11, path, &[]) else {
        unreachable!()
    };
    playbook!(open(),
        >> Tick::In(Input::Request { head, protocol: Some("Connect-TCP".into()) }),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("[2001:db8::1]:443"), Transport::Tcp, 0),
    );
    // A failed connect is answered before any switch, with its Proxy-Status.
    playbook!(open(),
        >> connect_tcp(Version::HTTP_11, path, &[]),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("[2001:db8::1]:443"), Transport::Tcp, 0),
        >> Tick::In(Input::Dialed(Err(Dial::Failed(Error::peer(ErrorKind::Connect, "refused"))))),
        << ?("502 connection_refused", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::BAD_GATEWAY
                && h.headers["proxy-status"].to_str().unwrap().contains("connection_refused"))),
        << Command::Done,
    );
    playbook!(open(),
        >> connect_tcp(Version::HTTP_2, "https://proxy.example/.well-known/masque/udp/h/1/", &[]),
        << refuse(StatusCode::BAD_REQUEST, "http_request_error", "path does not match the CONNECT-TCP template"),
        << Command::Done,
    );
}

#[test]
fn connect_tcp_asks_for_credentials_with_401_and_takes_either_header() {
    let setup = || Setup {
        auth: Some(Credentials {
            user: "ann".into(),
            pass: "pw".into(),
        }),
        ..Default::default()
    };
    let path = "https://proxy.example/.well-known/masque/tcp/192.0.2.1/22/";
    playbook!(setup().http(),
        >> connect_tcp(Version::HTTP_2, path, &[]),
        << ?("401 with WWW-Authenticate", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::UNAUTHORIZED
                && h.headers.contains_key("www-authenticate")
                && !h.headers.contains_key("proxy-authenticate"))),
        << Command::Done,
    );
    // "ann:pw"
    for header in ["authorization", "proxy-authorization"] {
        playbook!(setup().http(),
            >> connect_tcp(Version::HTTP_2, path, &[(header, "Basic YW5uOnB3")]),
            << Command::Reserve(Work::Tunnel),
        );
    }
    // A classic CONNECT still needs Proxy-Authorization, and hears 407.
    playbook!(setup().http(),
        >> request(Method::CONNECT, "192.0.2.1:22", Version::HTTP_11, &[("authorization", "Basic YW5uOnB3")]),
        << ?("407", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED)),
        << Command::Done,
    );
}

fn connect_ip(version: Version, path: &str, headers: &[(&'static str, &str)]) -> Tick<Input> {
    let Tick::In(Input::Request { head, .. }) = connect_tcp(version, path, headers) else {
        unreachable!()
    };
    Tick::In(Input::Request {
        head,
        protocol: Some("connect-ip".into()),
    })
}

fn with_ip(setup: Setup) -> Timed<Decision> {
    let mut p = Arc::into_inner(setup.policy()).unwrap();
    p.ip_template = Some(crate::template::IpTemplate::default());
    let p = Arc::new(p);
    Timed::new(|_| Decision::new(p, false))
}

#[test]
fn connect_ip_takes_addresses_then_accepts_per_version_and_relays_packets() {
    let path = "https://proxy.example/.well-known/masque/ip/192.0.2.0%2F24/17/";
    let scope = burrow_transport::IpScope {
        target: Some(("192.0.2.0".parse().unwrap(), 24)),
        protocol: Some(17),
    };
    for (version, status, upgrade) in [
        (Version::HTTP_11, StatusCode::SWITCHING_PROTOCOLS, true),
        (Version::HTTP_2, StatusCode::OK, false),
        (Version::HTTP_3, StatusCode::OK, false),
    ] {
        playbook!(with_ip(Setup::default()),
            >> connect_ip(version, path, &[]),
            << Command::Reserve(Work::Tunnel),
            >> Tick::In(Input::Reserved(Ok(()))),
            << Command::Dial(target("0.0.0.0:0"), Transport::Ip(scope), 0),
            >> Tick::In(Input::Dialed(Ok(()))),
            << ?("accepted with Capsule-Protocol", move |c| matches!(c,
                Command::Accept(Answer::Http(h, _)) if h.status == status
                    && h.headers["capsule-protocol"] == "?1"
                    && h.headers.get("upgrade").is_some_and(|u| u == "connect-ip") == upgrade)),
            >> Tick::In(Input::Accepted(Ok(()))),
            << Command::Relay(Framing::Ip),
            >> Tick::In(Input::Relayed(Default::default())),
            << Command::Done,
        );
    }
    // An exhausted pool: 503 with the reason, before any switch.
    playbook!(with_ip(Setup::default()),
        >> connect_ip(Version::HTTP_3, "https://p/.well-known/masque/ip/*/*/", &[]),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("0.0.0.0:0"), Transport::Ip(Default::default()), 0),
        >> Tick::In(Input::Dialed(Err(Dial::Failed(Error::limit_exceeded("no free address in the CONNECT-IP pool"))))),
        << ?("503 naming the pool", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::SERVICE_UNAVAILABLE
                && h.headers["proxy-status"].to_str().unwrap().contains("CONNECT-IP pool"))),
        << Command::Done,
    );
    // Off the template, or a prefix with host bits set: 400.
    for bad in [
        "https://p/.well-known/masque/udp/h/1/",
        "https://p/.well-known/masque/ip/192.0.2.1%2F24/*/",
        "https://p/.well-known/masque/ip/*/tcp/",
    ] {
        playbook!(with_ip(Setup::default()),
            >> connect_ip(Version::HTTP_2, bad, &[]),
            << refuse(StatusCode::BAD_REQUEST, "http_request_error", "path does not match the CONNECT-IP template"),
            << Command::Done,
        );
    }
    // Not enabled (no pool, no TUN device): 501.
    playbook!(open(),
        >> connect_ip(Version::HTTP_2, path, &[]),
        << ?("501", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::NOT_IMPLEMENTED
                && h.headers["proxy-status"].to_str().unwrap().contains("CONNECT-IP is not enabled"))),
        << Command::Done,
    );
    // Credentials as for CONNECT-TCP: 401, then either header.
    let setup = || Setup {
        auth: Some(Credentials {
            user: "ann".into(),
            pass: "pw".into(),
        }),
        ..Default::default()
    };
    playbook!(with_ip(setup()),
        >> connect_ip(Version::HTTP_3, path, &[]),
        << ?("401 with WWW-Authenticate", |c| matches!(c,
            Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::UNAUTHORIZED
                && h.headers.contains_key("www-authenticate"))),
        << Command::Done,
    );
    playbook!(with_ip(setup()),
        >> connect_ip(Version::HTTP_3, path, &[("authorization", "Basic YW5uOnB3")]),
        << Command::Reserve(Work::Tunnel),
    );
}

#[test]
fn socks_requests_get_socks_answers() {
    playbook!(Setup::default().socks(),
        >> Tick::In(Input::Socks(SocksCommand::Connect, target("127.0.0.1:22"))),
        << Command::Refuse(Answer::Socks(Reply::NOT_ALLOWED)),
        << Command::Done,
    );
    playbook!(Setup::default().socks(),
        >> Tick::In(Input::Socks(SocksCommand::Bind, target("192.0.2.1:80"))),
        << Command::Refuse(Answer::Socks(Reply::COMMAND_NOT_SUPPORTED)),
        << Command::Done,
    );
    playbook!(Setup::default().socks(),
        >> Tick::In(Input::Socks(SocksCommand::Connect, target("192.0.2.1:80"))),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("192.0.2.1:80"), Transport::Tcp, 0),
        >> Tick::In(Input::Dialed(Err(Dial::Failed(Error::peer(ErrorKind::Connect, "refused"))))),
        << Command::Refuse(Answer::Socks(Reply::CONNECTION_REFUSED)),
        << Command::Done,
    );
    playbook!(Setup::default().socks(),
        >> Tick::In(Input::Socks(SocksCommand::UdpAssociate, target("0.0.0.0:0"))),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Err(Full::Proxy))),
        << Command::Refuse(Answer::Socks(Reply::GENERAL_FAILURE)),
        << Command::Done,
    );
}

#[test]
fn replies_out_of_turn_end_the_work() {
    playbook!(open(),
        >> connect("example.com:443"),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Relayed(Default::default())),
        << Command::Done,
    );
}

#[test]
fn survives_arbitrary_input_orders() {
    let mut next = burrow_test_support::rng(0xdec1);
    for _ in 0..3000 {
        let ops: Vec<u8> = (0..24).map(|_| next()).collect();
        crate::fuzzing::decision_operations(&ops);
    }
}

// ---- Hooks: commands whose replies come back as events ----

use super::hooks::{End, LocalResponse, Summary, TunnelKind, What};

/// A policy with hooks on and two routes: `direct` (the default) and `up`, which
/// `*.internal` targets take.
fn hooked(socks: bool) -> Timed<Decision> {
    let mut p = Policy::new(
        None,
        "burrow-test".into(),
        Arc::new(Judge::new(Rules::default(), Arc::default(), false)),
        crate::template::UdpTemplate::default(),
        Duration::from_secs(60),
    );
    p.hooks = true;
    p.routes = vec![
        RouteEntry {
            name: "direct".into(),
            judge: p.judge.clone(),
        },
        RouteEntry {
            name: "up".into(),
            judge: Arc::new(Judge::new(Rules::default(), Arc::default(), true)),
        },
    ];
    p.route_rules = vec![(super::routes::Pattern::parse("*.internal").unwrap(), 1)];
    let p = Arc::new(p);
    Timed::new(|_| Decision::new(p, socks))
}

fn get(uri: &str) -> Tick<Input> {
    let host = uri.split('/').nth(2).unwrap_or("").to_string();
    let mut b = Request::builder().method(Method::GET).uri(uri);
    b = b.header("host", host);
    Tick::In(Input::Request {
        head: b.body(()).unwrap().into_parts().0,
        protocol: None,
    })
}

fn closed(f: impl Fn(&Summary) -> bool + 'static) -> impl Fn(&Command) -> bool {
    move |c| matches!(c, Command::Notify(Notice::Closed(s)) if f(s))
}

fn origin_ok() -> Tick<Input> {
    let mut h = HeaderMap::new();
    h.insert("content-length", HeaderValue::from_static("5"));
    Tick::In(Input::Forwarded(Ok((
        ResponseHead {
            status: StatusCode::OK,
            headers: h,
        },
        Version::HTTP_11,
    ))))
}

#[test]
fn hooks_intercept_modify_and_resume_a_forwarded_request() {
    playbook!(hooked(false),
        >> get("http://a.example/x"),
        << ?("the request hook", |c| matches!(c,
            Command::Hook(HookCall::Request(r)) if r.head.uri == "http://a.example/x"
                && r.head.headers["via"] == "1.1 burrow-test" && r.route.is_none())),
        // The hook adds a header and resumes.
        >> reply(|c| {
            let Command::Hook(HookCall::Request(r)) = c else { unreachable!() };
            let mut r = r.clone();
            r.head.headers.insert("x-added", HeaderValue::from_static("1"));
            Tick::In(Input::Hooked(Hooked::Request(r)))
        }),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << ?("the modified request forwarded direct", |c| matches!(c,
            Command::Forward(h, t, 0) if h.headers["x-added"] == "1" && t.to_string() == "a.example:80")),
        >> origin_ok(),
        << ?("the response hook", |c| matches!(c,
            Command::Hook(HookCall::Response(r)) if r.head.headers["via"] == "1.1 burrow-test")),
        >> reply(|c| {
            let Command::Hook(HookCall::Response(r)) = c else { unreachable!() };
            let mut r = r.clone();
            r.head.headers.insert("x-seen", HeaderValue::from_static("yes"));
            Tick::In(Input::Hooked(Hooked::Response(r)))
        }),
        << ?("the modified response", |c| matches!(c,
            Command::Respond(h) if h.headers["x-seen"] == "yes" && h.status == StatusCode::OK)),
        << ?("the summary", closed(|s| s.end == End::Completed && s.route == "direct"
            && s.status == Some(StatusCode::OK) && s.upstream_version == Some(Version::HTTP_11)
            && matches!(&s.what, What::Request { method, .. } if method == Method::GET))),
        << Command::Done,
    );
}

#[test]
fn a_locally_answered_request_never_dials() {
    let local = LocalResponse::new(StatusCode::OK, "from the hook").header("x-local", "1");
    let mut h = HeaderMap::new();
    h.insert("x-local", HeaderValue::from_static("1"));
    let answer = Answer::Http(
        ResponseHead {
            status: StatusCode::OK,
            headers: h,
        },
        bytes::Bytes::from_static(b"from the hook"),
    );
    playbook!(hooked(false),
        >> get("http://a.example/local"),
        << ?("the request hook", |c| matches!(c, Command::Hook(HookCall::Request(_)))),
        >> Tick::In(Input::Hooked(Hooked::Respond(Box::new(local)))),
        << Command::Refuse(answer),
        << ?("a local answer", closed(|s| s.end == End::Local && s.route == "local"
            && s.status == Some(StatusCode::OK))),
        << Command::Done,
    );
}

#[test]
fn a_rerouted_tunnel_goes_to_the_new_target_through_the_chosen_route() {
    playbook!(hooked(false),
        >> connect("a.example:443"),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(t))
            if t.kind == TunnelKind::Connect && t.target.to_string() == "a.example:443")),
        >> reply(|c| {
            let Command::Hook(HookCall::Tunnel(t)) = c else { unreachable!() };
            let mut t = t.clone();
            t.target = "b.example:8443".parse().unwrap();
            t.route = Some("up".into());
            Tick::In(Input::Hooked(Hooked::Tunnel(t)))
        }),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("b.example:8443"), Transport::Tcp, 1),
        >> Tick::In(Input::Dialed(Ok(()))),
        << Command::Accept(ok_200()),
        >> Tick::In(Input::Accepted(Ok(()))),
        << Command::Relay(Framing::Raw),
        >> Tick::Advance(Duration::from_secs(3)),
        >> Tick::In(Input::Relayed(Relayed { up: 5, down: 7, idle: false })),
        << ?("the summary", closed(|s| s.end == End::Completed && s.route == "up"
            && s.bytes_up == 5 && s.bytes_down == 7 && s.duration == Duration::from_secs(3)
            && s.target == Some("b.example:8443".parse().unwrap()))),
        << Command::Done,
    );
}

#[test]
fn route_rules_pick_the_route_and_its_rules_judge() {
    // `*.internal` goes through `up`, whose rules cannot see names resolved upstream.
    playbook!(hooked(false),
        >> connect("db.internal:5432"),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(_)))),
        >> reply(|c| {
            let Command::Hook(HookCall::Tunnel(t)) = c else { unreachable!() };
            Tick::In(Input::Hooked(Hooked::Tunnel(t.clone())))
        }),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("db.internal:5432"), Transport::Tcp, 1),
    );
    // An unknown route named by a hook fails the flow, closed.
    playbook!(hooked(false),
        >> connect("a.example:443"),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(_)))),
        >> reply(|c| {
            let Command::Hook(HookCall::Tunnel(t)) = c else { unreachable!() };
            let mut t = t.clone();
            t.route = Some("nowhere".into());
            Tick::In(Input::Hooked(Hooked::Tunnel(t)))
        }),
        << refuse(StatusCode::BAD_GATEWAY, "proxy_internal_error", "a hook chose the unknown route nowhere"),
        << ?("failed", closed(|s| s.end == End::Failed)),
        << Command::Done,
    );
}

#[test]
fn a_failing_hook_is_502_with_proxy_status_and_a_tunnel_refused_by_a_hook_is_403() {
    playbook!(hooked(false),
        >> get("http://a.example/"),
        << ?("the request hook", |c| matches!(c, Command::Hook(HookCall::Request(_)))),
        >> Tick::In(Input::Hooked(Hooked::Failed("hook x failed in request_headers: boom".into()))),
        << refuse(StatusCode::BAD_GATEWAY, "proxy_internal_error", "hook x failed in request_headers: boom"),
        << ?("failed", closed(|s| s.end == End::Failed
            && s.error.as_deref() == Some("proxy_internal_error"))),
        << Command::Done,
    );
    // A tunnel "answered" 200 by a hook is a refusal: 403.
    let mut h = HeaderMap::new();
    h.insert("x-why", HeaderValue::from_static("blocked"));
    playbook!(hooked(false),
        >> connect("a.example:443"),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(_)))),
        >> Tick::In(Input::Hooked(Hooked::Respond(Box::new(
            LocalResponse::new(StatusCode::OK, "").header("x-why", "blocked"))))),
        << Command::Refuse(Answer::Http(ResponseHead { status: StatusCode::FORBIDDEN, headers: h }, bytes::Bytes::new())),
        << ?("refused", closed(|s| s.end == End::Refused)),
        << Command::Done,
    );
    // SOCKS: a hook's refusal is "not allowed", its failure "general failure".
    let socks = || Tick::In(Input::Socks(SocksCommand::Connect, target("192.0.2.1:80")));
    playbook!(hooked(true),
        >> socks(),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(t)) if t.kind == TunnelKind::Socks)),
        >> Tick::In(Input::Hooked(Hooked::Respond(Box::new(LocalResponse::new(StatusCode::FORBIDDEN, ""))))),
        << Command::Refuse(Answer::Socks(Reply::NOT_ALLOWED)),
        << ?("refused", closed(|s| s.socks_reply == Some(Reply::NOT_ALLOWED.0))),
        << Command::Done,
    );
    playbook!(hooked(true),
        >> socks(),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(_)))),
        >> Tick::In(Input::Hooked(Hooked::Failed("boom".into()))),
        << Command::Refuse(Answer::Socks(Reply::GENERAL_FAILURE)),
        << ?("failed", closed(|s| s.end == End::Failed)),
        << Command::Done,
    );
}

#[test]
fn buffered_bodies_are_sent_with_their_new_length() {
    let buffer = |c: &Command| {
        let Command::Hook(HookCall::Request(r)) = c else {
            unreachable!()
        };
        let mut r = r.clone();
        r.buffer_body = true;
        Tick::In(Input::Hooked(Hooked::Request(r)))
    };
    playbook!(hooked(false),
        >> get("http://a.example/up"),
        << ?("the request hook", |c| matches!(c, Command::Hook(HookCall::Request(_)))),
        >> reply(buffer),
        // Buffered only once the request holds its share.
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Hook(HookCall::RequestBody),
        >> Tick::In(Input::Hooked(Hooked::Body(3))),
        << ?("forwarded with Content-Length 3", |c| matches!(c,
            Command::Forward(h, ..) if h.headers["content-length"] == "3")),
        >> origin_ok(),
        << ?("the response hook", |c| matches!(c, Command::Hook(HookCall::Response(_)))),
        >> reply(|c| {
            let Command::Hook(HookCall::Response(r)) = c else { unreachable!() };
            let mut r = r.clone();
            r.buffer_body = true;
            Tick::In(Input::Hooked(Hooked::Response(r)))
        }),
        << Command::Hook(HookCall::ResponseBody),
        >> Tick::In(Input::Hooked(Hooked::Body(11))),
        << ?("answered with Content-Length 11", |c| matches!(c,
            Command::Respond(h) if h.headers["content-length"] == "11")),
        << ?("completed", closed(|s| s.end == End::Completed)),
        << Command::Done,
    );
    // Beyond what hooks may buffer: 413 for a request.
    playbook!(hooked(false),
        >> get("http://a.example/big"),
        << ?("the request hook", |c| matches!(c, Command::Hook(HookCall::Request(_)))),
        >> reply(buffer),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Hook(HookCall::RequestBody),
        >> Tick::In(Input::Hooked(Hooked::TooLarge)),
        << refuse(StatusCode::PAYLOAD_TOO_LARGE, "http_request_error", "request body larger than hooks may buffer"),
        << ?("refused", closed(|s| s.end == End::Refused)),
        << Command::Done,
    );
}

#[test]
fn a_client_giving_up_while_a_hook_runs_abandons_the_flow() {
    playbook!(hooked(false),
        >> connect("a.example:443"),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(_)))),
        >> Tick::In(Input::Cancelled),
        << Command::Abandon,
        << ?("client gone", closed(|s| s.end == End::ClientGone)),
        << Command::Done,
    );
}

#[test]
fn connect_udp_tells_the_hooks_of_its_datagram_flow() {
    let mut p = Request::builder()
        .method(Method::CONNECT)
        .uri("https://p.example/.well-known/masque/udp/192.0.2.1/53/")
        .version(Version::HTTP_2)
        .body(())
        .unwrap()
        .into_parts()
        .0;
    p.headers
        .insert("capsule-protocol", HeaderValue::from_static("?1"));
    playbook!(hooked(false),
        >> Tick::In(Input::Request { head: p, protocol: Some("connect-udp".into()) }),
        << ?("the tunnel hook", |c| matches!(c, Command::Hook(HookCall::Tunnel(t)) if t.kind == TunnelKind::ConnectUdp)),
        >> reply(|c| {
            let Command::Hook(HookCall::Tunnel(t)) = c else { unreachable!() };
            Tick::In(Input::Hooked(Hooked::Tunnel(t.clone())))
        }),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Dial(target("192.0.2.1:53"), Transport::Udp, 0),
        >> Tick::In(Input::Dialed(Ok(()))),
        << ?("accepted", |c| matches!(c, Command::Accept(_))),
        >> Tick::In(Input::Accepted(Ok(()))),
        << Command::Notify(Notice::DatagramOpened(target("192.0.2.1:53"))),
        << Command::Relay(Framing::Raw),
        >> Tick::In(Input::Relayed(Relayed { up: 10, down: 20, idle: true })),
        << ?("the flow's end", |c| matches!(c, Command::Notify(Notice::DatagramClosed(s)) if s.bytes_up == 10)),
        << ?("idle", closed(|s| s.end == End::Idle && s.what == What::Tunnel(TunnelKind::ConnectUdp))),
        << Command::Done,
    );
}

#[test]
fn intercepted_tunnels_are_accepted_at_once_and_their_requests_go_to_the_target() {
    let mut p = Policy::new(
        None,
        "burrow-test".into(),
        Arc::new(Judge::new(Rules::default(), Arc::default(), false)),
        crate::template::UdpTemplate::default(),
        Duration::from_secs(60),
    );
    p.intercept = Some(super::intercept::InterceptRules {
        hosts: vec![],
        ignore: vec![super::routes::Pattern::parse("bank.example").unwrap()],
    });
    let p = Arc::new(p);
    let pb = |p: &Arc<Policy>| {
        let p = p.clone();
        Timed::new(|_| Decision::new(p, false))
    };
    let accepted = |pb: Timed<Decision>| {
        let mut pb = playbook::Playbook::new(pb);
        pb.input(connect("a.example:443"))
            .expect(Command::Reserve(Work::Tunnel))
            .input(Tick::In(Input::Reserved(Ok(()))))
            .expect(Command::Accept(ok_200()))
            .input(Tick::In(Input::Accepted(Ok(()))))
            .expect(Command::Peek);
        pb
    };
    // Intercepted: accepted without a dial; a TLS handshake is served.
    let mut pb1 = accepted(pb(&p));
    pb1.input(Tick::In(Input::Peeked(Peeked::Byte(0x16))))
        .expect(Command::Intercept(target("a.example:443"), 0))
        .input(Tick::In(Input::Intercepted(Interception::Served {
            up: 5,
            down: 7,
        })))
        .expect(Command::Done);
    pb1.run();
    // Another first byte: dialed and relayed after all.
    let mut pb2 = accepted(pb(&p));
    pb2.input(Tick::In(Input::Peeked(Peeked::Byte(b'G'))))
        .expect(Command::Dial(target("a.example:443"), Transport::Tcp, 0))
        .input(Tick::In(Input::Dialed(Ok(()))))
        .expect(Command::Relay(Framing::Raw))
        .input(Tick::In(Input::Relayed(Default::default())))
        .expect(Command::Done);
    pb2.run();
    // Nothing from the client within the wait: a server that speaks first, relayed.
    let mut pb3 = accepted(pb(&p));
    pb3.input(Tick::Advance(CLIENT_FIRST_WAIT - Duration::from_millis(1)))
        .input(Tick::Advance(Duration::from_millis(1)))
        .expect(Command::Dial(target("a.example:443"), Transport::Tcp, 0));
    pb3.run();
    // The client goes away first.
    let mut pb4 = accepted(pb(&p));
    pb4.input(Tick::In(Input::Peeked(Peeked::Closed)))
        .expect(Command::Done);
    pb4.run();
    // Ignored: a plain tunnel.
    tunnel_to_the_end(pb(&p), connect("bank.example:443"), "bank.example:443");
    // A request inside: https:// to the authority it names, Host as sent; Alt-Svc dropped.
    let mut head = Request::builder()
        .method(Method::GET)
        .uri("/inside?q")
        .header("host", "www.a.example")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    head.extensions.insert(Intercepted {
        target: target("a.example:443"),
        route: 0,
    });
    let mut origin = HeaderMap::new();
    origin.insert("alt-svc", HeaderValue::from_static("h3=\":443\""));
    playbook!(pb(&p),
        >> Tick::In(Input::Request { head, protocol: None }),
        << Command::Reserve(Work::Request),
        >> Tick::In(Input::Reserved(Ok(()))),
        << ?("https to the named authority", |c| matches!(c, Command::Forward(h, t, 0)
            if h.uri == "https://www.a.example/inside?q" && h.headers["host"] == "www.a.example"
                && t.to_string() == "www.a.example:443")),
        >> Tick::In(Input::Forwarded(Ok((ResponseHead { status: StatusCode::OK, headers: origin }, Version::HTTP_2)))),
        << ?("no Alt-Svc", |c| matches!(c, Command::Respond(h) if !h.headers.contains_key("alt-svc"))),
        << Command::Done,
    );
}

#[test]
fn the_summary_of_a_refused_request_never_carries_its_userinfo() {
    playbook!(hooked(false),
        >> request(Method::GET, "http://user:secret@a.example/x", Version::HTTP_11, &[("host", "a.example")]),
        << refuse(StatusCode::BAD_REQUEST, "http_request_error", "userinfo in the request target"),
        << ?("no userinfo", closed(|s| matches!(&s.what,
            What::Request { uri, .. } if uri == "http://a.example/x"))),
        << Command::Done,
    );
}

fn websocket(uri: &str, version: Version) -> Tick<Input> {
    let (head, ()) = Request::builder()
        .method(Method::GET)
        .uri(uri)
        .version(version)
        .header("host", "ws.example")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .header("sec-websocket-version", "13")
        .body(())
        .unwrap()
        .into_parts();
    Tick::In(Input::Request {
        head,
        protocol: Some("WebSocket".into()),
    })
}

#[test]
fn a_websocket_is_forwarded_to_its_origins_upgrade_and_relayed() {
    let mut sent = HeaderMap::new();
    sent.insert("host", HeaderValue::from_static("ws.example"));
    sent.insert(
        "sec-websocket-key",
        HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
    );
    sent.insert("sec-websocket-version", HeaderValue::from_static("13"));
    sent.insert("via", HeaderValue::from_static("1.1 burrow-test"));
    let head = Head {
        method: Method::GET,
        uri: "http://ws.example/chat".parse().unwrap(),
        version: Version::HTTP_11,
        headers: sent,
    };
    let mut origin = HeaderMap::new();
    origin.insert("connection", HeaderValue::from_static("Upgrade"));
    origin.insert("upgrade", HeaderValue::from_static("websocket"));
    origin.insert(
        "sec-websocket-accept",
        HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    );
    let mut answered = HeaderMap::new();
    answered.insert("connection", HeaderValue::from_static("Upgrade"));
    answered.insert("upgrade", HeaderValue::from_static("websocket"));
    answered.insert(
        "sec-websocket-accept",
        HeaderValue::from_static("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
    );
    answered.insert("via", HeaderValue::from_static("1.1 burrow-test"));
    let switched = Answer::Http(
        ResponseHead {
            status: StatusCode::SWITCHING_PROTOCOLS,
            headers: answered,
        },
        bytes::Bytes::new(),
    );
    // The token in any case; the origin's 101 (its Accept) goes back, then the relay.
    playbook!(open(),
        >> websocket("http://ws.example/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Upgrade(Box::new(head.clone()), target("ws.example:80"), 0),
        >> Tick::In(Input::Upgraded(Ok(ResponseHead { status: StatusCode::SWITCHING_PROTOCOLS, headers: origin }))),
        << Command::Accept(switched),
        >> Tick::In(Input::Accepted(Ok(()))),
        << Command::Relay(Framing::Raw),
        >> Tick::In(Input::Relayed(Relayed::default())),
        << Command::Done,
    );
    // The origin answers without switching: the client hears its status.
    playbook!(open(),
        >> websocket("http://ws.example/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Upgrade(Box::new(head.clone()), target("ws.example:80"), 0),
        >> Tick::In(Input::Upgraded(Ok(ResponseHead { status: StatusCode::FORBIDDEN, headers: HeaderMap::new() }))),
        << ?("403 with why", |c| matches!(c, Command::Refuse(Answer::Http(h, b))
            if h.status == StatusCode::FORBIDDEN && h.headers["via"] == "1.1 burrow-test"
                && b.starts_with(b"the origin did not switch"))),
        << Command::Done,
    );
    // Not reached (an upstream proxy's refusal too): 502 with Proxy-Status, as a dial.
    playbook!(open(),
        >> websocket("ws://ws.example/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Upgrade(Box::new(head.clone()), target("ws.example:80"), 0),
        >> Tick::In(Input::Upgraded(Err(burrow_http_core::refused(StatusCode::FORBIDDEN, &HeaderMap::new())))),
        << ?("502", |c| matches!(c, Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::BAD_GATEWAY)),
        << Command::Done,
    );
    playbook!(open(),
        >> websocket("http://ws.example/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Upgrade(Box::new(head.clone()), target("ws.example:80"), 0),
        >> Tick::In(Input::Upgraded(Err(Error::peer(ErrorKind::Connect, "refused")))),
        << ?("502", |c| matches!(c, Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::BAD_GATEWAY)),
        << Command::Done,
    );
    // No answer in time: 504.
    playbook!(open(),
        >> websocket("http://ws.example/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << Command::Upgrade(Box::new(head), target("ws.example:80"), 0),
        >> Tick::Advance(Duration::from_secs(60)),
        << Command::Abandon,
        << ?("504", |c| matches!(c, Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::GATEWAY_TIMEOUT)),
        << Command::Done,
    );
    // A handshake with a body (its body would be lost in the switch): 400, nothing held.
    let Tick::In(Input::Request { mut head, protocol }) =
        websocket("http://ws.example/chat", Version::HTTP_11)
    else {
        unreachable!()
    };
    head.headers
        .insert("content-length", HeaderValue::from_static("5"));
    playbook!(open(),
        >> Tick::In(Input::Request { head, protocol }),
        << refuse(StatusCode::BAD_REQUEST, "http_request_error", "a WebSocket handshake has no body"),
        << Command::Done,
    );
    // Over HTTP/2 (RFC 8441) it is not translated: 501, nothing held.
    let (head, ()) = Request::builder()
        .method(Method::CONNECT)
        .uri("https://ws.example/chat")
        .version(Version::HTTP_2)
        .body(())
        .unwrap()
        .into_parts();
    playbook!(open(),
        >> Tick::In(Input::Request { head, protocol: Some("websocket".into()) }),
        << refuse(StatusCode::NOT_IMPLEMENTED, "proxy_internal_error", "unsupported :protocol websocket"),
        << Command::Done,
    );
    // The rules apply before anything is sent.
    let rules = Rules {
        networks: vec![parse_network("10.0.0.0/8").unwrap()],
        ..Rules::default()
    };
    playbook!(Setup { rules, ..Setup::default() }.http(),
        >> websocket("http://127.0.0.1:8080/chat", Version::HTTP_11),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << ?("403", |c| matches!(c, Command::Refuse(Answer::Http(h, _)) if h.status == StatusCode::FORBIDDEN)),
        << Command::Done,
    );
}

#[test]
fn hooks_see_a_websockets_handshake_as_a_request_and_cannot_send_it_elsewhere() {
    // The hook adds a field and picks the route; the upgrade carries both.
    playbook!(hooked(false),
        >> websocket("ws://ws.example/chat", Version::HTTP_11),
        << ?("the request hook", |c| matches!(c,
            Command::Hook(HookCall::Request(r)) if r.head.uri == "http://ws.example/chat"
                && r.head.headers["sec-websocket-key"] == "dGhlIHNhbXBsZSBub25jZQ==")),
        >> reply(|c| {
            let Command::Hook(HookCall::Request(r)) = c else { unreachable!() };
            let mut r = r.clone();
            r.head.headers.insert("x-added", HeaderValue::from_static("1"));
            r.route = Some("up".into());
            Tick::In(Input::Hooked(Hooked::Request(r)))
        }),
        << Command::Reserve(Work::Tunnel),
        >> Tick::In(Input::Reserved(Ok(()))),
        << ?("the changed upgrade, through up", |c| matches!(c,
            Command::Upgrade(h, t, 1) if h.headers["x-added"] == "1" && t.to_string() == "ws.example:80")),
    );
    // Another authority: refused (502), nothing held.
    playbook!(hooked(false),
        >> websocket("ws://ws.example/chat", Version::HTTP_11),
        << ?("the request hook", |c| matches!(c, Command::Hook(HookCall::Request(_)))),
        >> reply(|c| {
            let Command::Hook(HookCall::Request(r)) = c else { unreachable!() };
            let mut r = r.clone();
            r.head.uri = "http://elsewhere.example/chat".parse().unwrap();
            Tick::In(Input::Hooked(Hooked::Request(r)))
        }),
        << refuse(StatusCode::BAD_GATEWAY, "proxy_internal_error", "a hook cannot send a WebSocket elsewhere"),
        << ?("the summary", closed(|s| s.end == End::Failed && s.what == What::Tunnel(TunnelKind::WebSocket))),
        << Command::Done,
    );
}
