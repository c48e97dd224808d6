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
        << Command::Relay,
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
