//! The SOCKS client core, sans-I/O: SOCKS5 (no auth or RFC 1929) and SOCKS4a CONNECT and
//! SOCKS5 UDP ASSOCIATE. The mirror of [`server`](super::server).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use burrow_http_core::driver::{Core, Finish};

use burrow_transport::code::Socks4Reply;
use burrow_transport::{Error, ErrorKind, Fault, Host, Target, WireCode, MAX_HOST_NAME_LEN};
use bytes::{Buf, Bytes, BytesMut};

use super::wire::{decode_addr, encode_addr, AddrError, Command, Reply};
use burrow_http_core::credentials::Credentials;

/// Which dialect to speak.
#[derive(Clone, Debug)]
pub enum Dialect {
    /// SOCKS5, with credentials when given.
    V5(Option<Credentials>),
    /// SOCKS4a (CONNECT only).
    V4a,
}

#[derive(Debug, PartialEq, Eq)]
enum State {
    ExpectMethod,
    ExpectAuth,
    ExpectReply5,
    ExpectReply4,
    Done,
    Failed,
}

/// What a SOCKS handshake ends with.
#[derive(Debug, PartialEq)]
pub enum Outcome {
    /// The proxy granted the request: the bound address (for UDP ASSOCIATE, the relay).
    Granted(Target),
    /// The proxy refused, broke the protocol, went away or did not answer in time.
    Failed(Error),
}

/// One SOCKS handshake from the client side.
///
/// Call contract: as a [`Core`] (no commands; one [`Outcome`] event, then the stream is
/// released on success and closed on failure), or by hand: [`poll_transmit`](Self::poll_transmit)
/// for bytes to send, [`receive`](Self::receive) with bytes read, and
/// [`poll_done`](Self::poll_done) until it returns the bound address. The deadline set
/// with [`deadline`](Self::deadline) runs from the first byte sent.
#[derive(Debug)]
pub struct SocksClient {
    dialect: Dialect,
    command: Command,
    target: Target,
    state: State,
    buf: BytesMut,
    out: VecDeque<Bytes>,
    deadline: Option<(Instant, Duration)>,
    outcome: Option<Outcome>,
    concluded: bool,
}

fn refused(r: Reply) -> Error {
    Error::proxy_refused(format!("SOCKS reply {}: {}", r.0, r.meaning())).with_code(r)
}

fn protocol(why: &'static str) -> Error {
    Error::protocol(format!("SOCKS: {why}"))
}

impl SocksClient {
    /// Prepares a handshake for `command` to `target`. A host name over 255 bytes is refused
    /// here, before anything is sent; SOCKS4a only does CONNECT.
    pub fn new(dialect: Dialect, command: Command, target: Target) -> Result<SocksClient, Error> {
        if let Host::Name(n) = &target.host {
            if n.len() > MAX_HOST_NAME_LEN {
                return Err(Error::limit_exceeded(format!(
                    "host name of {} bytes does not fit SOCKS (at most {MAX_HOST_NAME_LEN})",
                    n.len()
                ))
                .with_fault(Fault::User));
            }
        }
        if let Dialect::V4a = dialect {
            if command != Command::Connect {
                return Err(Error::unsupported("SOCKS4a carries no UDP"));
            }
            if matches!(target.host, Host::Ip(IpAddr::V6(_))) {
                return Err(Error::unsupported("SOCKS4a cannot reach IPv6 addresses"));
            }
        }
        let mut c = SocksClient {
            dialect,
            command,
            target,
            state: State::Failed,
            buf: BytesMut::new(),
            out: VecDeque::new(),
            deadline: None,
            outcome: None,
            concluded: false,
        };
        match &c.dialect {
            Dialect::V5(creds) => {
                let method = if creds.is_some() { 2 } else { 0 };
                c.out.push_back(Bytes::copy_from_slice(&[5, 1, method]));
                c.state = State::ExpectMethod;
            }
            Dialect::V4a => {
                c.queue_request4();
                c.state = State::ExpectReply4;
            }
        }
        Ok(c)
    }

    fn queue_request4(&mut self) {
        let mut v = vec![4, 1];
        v.extend_from_slice(&self.target.port.to_be_bytes());
        match &self.target.host {
            Host::Ip(IpAddr::V4(a)) => {
                v.extend_from_slice(&a.octets());
                v.push(0);
            }
            Host::Name(n) => {
                v.extend_from_slice(&[0, 0, 0, 1, 0]);
                v.extend_from_slice(n.as_bytes());
                v.push(0);
            }
            Host::Ip(IpAddr::V6(_)) => {}
        }
        self.out.push_back(Bytes::from(v));
    }

    fn queue_request5(&mut self) {
        let cmd = match self.command {
            Command::Connect => 1,
            Command::Bind => 2,
            Command::UdpAssociate => 3,
        };
        let mut v = vec![5, cmd, 0];
        encode_addr(&self.target, &mut v);
        self.out.push_back(Bytes::from(v));
    }

    /// The proxy must have granted or refused within `timeout` of `now`.
    pub fn deadline(mut self, now: Instant, timeout: Duration) -> Self {
        self.deadline = Some((now + timeout, timeout));
        self
    }

    /// Records how the handshake ended, once.
    fn conclude(&mut self, outcome: Outcome) {
        if self.concluded {
            return;
        }
        self.concluded = true;
        self.state = match outcome {
            Outcome::Granted(_) => State::Done,
            Outcome::Failed(_) => State::Failed,
        };
        self.outcome = Some(outcome);
    }

    fn negotiating(&self) -> bool {
        !self.concluded
    }

    /// Bytes to send.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Bytes received from the proxy.
    pub fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received past the final reply (the tunnel's first bytes).
    pub fn take_leftover(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn fail(&mut self, e: Error) -> Result<Option<Target>, Error> {
        self.state = State::Failed;
        Err(e)
    }

    /// Advances: `Ok(Some(bound))` when the proxy granted the request, `Ok(None)` when more
    /// bytes are needed.
    pub fn poll_done(&mut self) -> Result<Option<Target>, Error> {
        loop {
            match self.state {
                State::ExpectMethod => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    let (v, m) = (self.buf[0], self.buf[1]);
                    self.buf.advance(2);
                    if v != 5 {
                        return self.fail(protocol("not a SOCKS5 server"));
                    }
                    // Only the one method we offered may be chosen (RFC 1928 §3): a server
                    // answering "no authentication" when credentials were offered is
                    // refused too, rather than going on unauthenticated.
                    match (m, &self.dialect) {
                        (0, Dialect::V5(None)) => {
                            self.queue_request5();
                            self.state = State::ExpectReply5;
                        }
                        (2, Dialect::V5(Some(c))) => {
                            let (u, p) = (c.user.as_bytes(), c.pass.as_bytes());
                            if u.len() > 255 || p.len() > 255 {
                                return self.fail(Error::user(
                                    ErrorKind::LimitExceeded,
                                    "SOCKS credentials over 255 bytes",
                                ));
                            }
                            let mut v = vec![1, u.len() as u8];
                            v.extend_from_slice(u);
                            v.push(p.len() as u8);
                            v.extend_from_slice(p);
                            self.out.push_back(Bytes::from(v));
                            self.state = State::ExpectAuth;
                        }
                        (0xff, _) => return self.fail(
                            Error::proxy_refused(
                                "SOCKS5: no acceptable authentication method (credentials needed?)",
                            )
                            .with_code(WireCode::SocksNoMethod),
                        ),
                        _ => return self.fail(protocol("server chose a method we did not offer")),
                    }
                }
                State::ExpectAuth => {
                    if self.buf.len() < 2 {
                        return Ok(None);
                    }
                    let (version, status) = (self.buf[0], self.buf[1]);
                    self.buf.advance(2);
                    // RFC 1929 §2: the reply's VER is the sub-negotiation version, 1.
                    if version != 1 {
                        return self.fail(protocol("bad username/password reply version"));
                    }
                    if status != 0 {
                        return self.fail(
                            Error::proxy_refused("SOCKS5: username/password rejected")
                                .with_code(WireCode::SocksAuth(status)),
                        );
                    }
                    self.queue_request5();
                    self.state = State::ExpectReply5;
                }
                State::ExpectReply5 => {
                    if self.buf.len() < 4 {
                        return Ok(None);
                    }
                    if self.buf[0] != 5 {
                        return self.fail(protocol("bad reply version"));
                    }
                    let reply = Reply(self.buf[1]);
                    let (bound, n) = match decode_addr(&self.buf[3..]) {
                        Ok(x) => x,
                        Err(AddrError::Incomplete) => return Ok(None),
                        Err(_) if reply != Reply::SUCCEEDED => return self.fail(refused(reply)),
                        Err(_) => return self.fail(protocol("bad bound address")),
                    };
                    self.buf.advance(3 + n);
                    if reply != Reply::SUCCEEDED {
                        return self.fail(refused(reply));
                    }
                    self.state = State::Done;
                    return Ok(Some(bound));
                }
                State::ExpectReply4 => {
                    if self.buf.len() < 8 {
                        return Ok(None);
                    }
                    let code = self.buf[1];
                    self.buf.advance(8);
                    if code != 90 {
                        return self.fail(
                            Error::proxy_refused(format!("SOCKS4a request rejected ({code})"))
                                .with_code(Socks4Reply(code)),
                        );
                    }
                    self.state = State::Done;
                    return Ok(Some(self.target.clone()));
                }
                State::Done | State::Failed => return Ok(None),
            }
        }
    }
}

impl Core for SocksClient {
    type Command = std::convert::Infallible;
    type Event = Outcome;

    fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn handle_read(&mut self, n: usize, _now: Instant) {
        if self.concluded {
            return;
        }
        match self.poll_done() {
            Ok(Some(bound)) => self.conclude(Outcome::Granted(bound)),
            Err(e) => self.conclude(Outcome::Failed(e)),
            Ok(None) if n == 0 => self.conclude(Outcome::Failed(Error::closed(
                "SOCKS proxy closed the connection during the handshake",
            ))),
            Ok(None) => {}
        }
    }

    fn handle_command(&mut self, command: Self::Command, _now: Instant) {
        match command {}
    }

    fn handle_timeout(&mut self, now: Instant) {
        if let Some((until, timeout)) = self.deadline {
            if self.negotiating() && until <= now {
                self.conclude(Outcome::Failed(Error::peer_timeout(format!(
                    "no SOCKS reply within {timeout:?}"
                ))));
            }
        }
    }

    fn handle_io_error(&mut self, error: Error, _now: Instant) {
        self.conclude(Outcome::Failed(error));
    }

    fn handle_app_closed(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Bytes> {
        SocksClient::poll_transmit(self)
    }

    fn poll_event(&mut self) -> Option<Outcome> {
        self.outcome.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
            .filter(|_| self.negotiating())
            .map(|(until, _)| until)
    }

    fn wants_read(&self) -> bool {
        self.negotiating()
    }

    fn finish(&self) -> Finish {
        match self.state {
            _ if !self.concluded => Finish::Running,
            State::Done => Finish::Release,
            _ => Finish::Close,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(c: &mut SocksClient) -> Vec<u8> {
        let mut v = Vec::new();
        while let Some(b) = c.poll_transmit() {
            v.extend_from_slice(&b);
        }
        v
    }

    #[test]
    fn socks5h_with_auth_mirrors_the_server_core() {
        use crate::socks::server::{Event, SocksServer};
        let creds = Credentials {
            user: "u".into(),
            pass: "pw".into(),
        };
        let target: Target = "example.com:443".parse().unwrap();
        let mut c = SocksClient::new(
            Dialect::V5(Some(creds.clone())),
            Command::Connect,
            target.clone(),
        )
        .unwrap();
        let mut s = SocksServer::new(Some(creds));
        // Pump bytes between the two cores until the server sees the request.
        let mut event = None;
        for _ in 0..5 {
            s.receive(&drain(&mut c));
            if let Ok(Some(e)) = s.poll_event() {
                event = Some(e);
                s.reply(Reply::SUCCEEDED, Some(&"10.1.2.3:4567".parse().unwrap()));
            }
            let mut back = Vec::new();
            while let Some(b) = s.poll_transmit() {
                back.extend_from_slice(&b);
            }
            if event.is_some() {
                // The tunnel's first bytes ride right behind the final reply.
                back.extend_from_slice(b"tunnel");
            }
            c.receive(&back);
            if let Some(bound) = c.poll_done().unwrap() {
                assert_eq!(bound, "10.1.2.3:4567".parse().unwrap());
                assert_eq!(&c.take_leftover()[..], b"tunnel");
                let Some(Event::Request { target: t, .. }) = event else {
                    panic!()
                };
                assert_eq!(t, target);
                return;
            }
        }
        panic!("handshake did not finish");
    }

    #[test]
    fn reply_codes_become_errors_with_the_code() {
        let mut c = SocksClient::new(
            Dialect::V5(None),
            Command::Connect,
            "10.0.0.1:80".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(drain(&mut c), [5, 1, 0]);
        c.receive(&[5, 0]);
        assert_eq!(c.poll_done().unwrap(), None);
        assert_eq!(drain(&mut c), [5, 1, 0, 1, 10, 0, 0, 1, 0, 80]);
        c.receive(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]);
        let e = c.poll_done().unwrap_err();
        assert_eq!(
            (e.kind(), e.code()),
            (ErrorKind::ProxyRefused, Some(WireCode::Socks(Reply(5))))
        );
        assert!(e.to_string().contains("connection refused"), "{e}");
    }

    #[test]
    fn long_names_are_refused_before_sending() {
        let name = "a".repeat(MAX_HOST_NAME_LEN);
        let ok = Target::new(Host::Name(name.clone()), 1);
        assert!(SocksClient::new(Dialect::V5(None), Command::Connect, ok).is_ok());
        let long = Target::new(Host::Name(format!("{name}a")), 1);
        let e = SocksClient::new(Dialect::V5(None), Command::Connect, long).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::LimitExceeded);
        let e = SocksClient::new(Dialect::V4a, Command::UdpAssociate, "h:1".parse().unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
    }

    use burrow_http_core::driver::Finish;
    use burrow_test_support::playbook::{operations, recv, tx, Harness, Io, Out};

    fn harness(c: SocksClient) -> Harness<SocksClient> {
        Harness::new(|now| c.deadline(now, std::time::Duration::from_secs(10)))
    }

    /// The outcome is a refusal of this kind and wire code.
    fn refused(kind: ErrorKind, code: Option<WireCode>) -> impl Fn(&Out<Outcome>) -> bool {
        move |o| matches!(o, Out::Ev(Outcome::Failed(e)) if e.kind() == kind && e.code() == code)
    }

    #[test]
    fn playbook_socks5_username_password_connect_ipv6() {
        use burrow_test_support::playbook;
        let creds = Credentials {
            user: "ann".into(),
            pass: "pw".into(),
        };
        let c = SocksClient::new(
            Dialect::V5(Some(creds)),
            Command::Connect,
            "[2001:db8::1]:443".parse().unwrap(),
        )
        .unwrap();
        let mut req = vec![5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8];
        req.extend_from_slice(&[0; 11]);
        req.extend_from_slice(&[1, 0x01, 0xbb]);
        playbook!(harness(c),
            << tx(&[5, 1, 2]),
            >> recv(&[5, 2]),
            << tx(&[1, 3, b'a', b'n', b'n', 2, b'p', b'w']),
            >> recv(&[1, 0]),
            << tx(&req),
            >> recv(&[5, 0, 0, 1, 192, 0, 2, 7]),
            >> recv(&[0x1f, 0x90]),
            << Out::Ev(Outcome::Granted("192.0.2.7:8080".parse().unwrap())),
            << Out::Finish(Finish::Release),
        );
    }

    #[test]
    fn playbook_socks5_refusals() {
        use burrow_test_support::playbook;
        let c = SocksClient::new(
            Dialect::V5(None),
            Command::Connect,
            "h.example:80".parse().unwrap(),
        )
        .unwrap();
        let mut req = vec![5, 1, 0, 3, 9];
        req.extend_from_slice(b"h.example");
        req.extend_from_slice(&[0, 80]);
        playbook!(harness(c),
            << tx(&[5, 1, 0]),
            >> recv(&[5, 0]),
            << tx(&req),
            >> recv(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]),
            << ?("refused", refused(ErrorKind::ProxyRefused, Some(WireCode::Socks(Reply::NOT_ALLOWED)))),
            << Out::Finish(Finish::Close),
        );
        let c = SocksClient::new(
            Dialect::V5(None),
            Command::Connect,
            "h.example:80".parse().unwrap(),
        )
        .unwrap();
        playbook!(harness(c),
            << tx(&[5, 1, 0]),
            >> recv(&[5, 0xff]),
            << ?("refused", refused(ErrorKind::ProxyRefused, Some(WireCode::SocksNoMethod))),
            << Out::Finish(Finish::Close),
        );
    }

    fn creds() -> Dialect {
        Dialect::V5(Some(Credentials {
            user: "u".into(),
            pass: "pw".into(),
        }))
    }

    #[test]
    fn a_method_we_did_not_offer_is_refused() {
        use burrow_test_support::playbook;
        // We offered username/password only; "no authentication" is not ours to accept.
        let c =
            SocksClient::new(creds(), Command::Connect, "h.example:80".parse().unwrap()).unwrap();
        playbook!(harness(c),
            << tx(&[5, 1, 2]),
            >> recv(&[5, 0]),
            << ?("refused", refused(ErrorKind::Protocol, None)),
            << Out::Finish(Finish::Close),
        );
        // We offered none; username/password is not acceptable either.
        let c = SocksClient::new(
            Dialect::V5(None),
            Command::Connect,
            "h.example:80".parse().unwrap(),
        )
        .unwrap();
        playbook!(harness(c),
            << tx(&[5, 1, 0]),
            >> recv(&[5, 2]),
            << ?("refused", refused(ErrorKind::Protocol, None)),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn the_auth_reply_version_is_checked() {
        use burrow_test_support::playbook;
        let c =
            SocksClient::new(creds(), Command::Connect, "h.example:80".parse().unwrap()).unwrap();
        playbook!(harness(c),
            << tx(&[5, 1, 2]),
            >> recv(&[5, 2]),
            << tx(&[1, 1, b'u', 2, b'p', b'w']),
            // VER 5 is not RFC 1929's sub-negotiation version (1), even with status 0.
            >> recv(&[5, 0]),
            << ?("refused", refused(ErrorKind::Protocol, None)),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn socks4a_by_name() {
        let mut c = SocksClient::new(
            Dialect::V4a,
            Command::Connect,
            "example.org:80".parse().unwrap(),
        )
        .unwrap();
        assert_eq!(
            drain(&mut c),
            b"\x04\x01\x00\x50\x00\x00\x00\x01\x00example.org\x00"
        );
        c.receive(&[0, 91, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            c.poll_done().unwrap_err().code(),
            Some(WireCode::Socks4(Socks4Reply::REJECTED))
        );
    }

    #[test]
    fn a_proxy_that_does_not_answer_in_time_is_a_timeout() {
        use burrow_test_support::playbook;
        let c = SocksClient::new(
            Dialect::V5(None),
            Command::Connect,
            "h.example:80".parse().unwrap(),
        )
        .unwrap();
        playbook!(harness(c),
            << tx(&[5, 1, 0]),
            >> recv(&[5]),
            >> Io::Advance(std::time::Duration::from_secs(10)),
            << Out::Ev(Outcome::Failed(Error::peer_timeout("no SOCKS reply within 10s"))),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn survives_arbitrary_operation_orders() {
        let mut next = burrow_test_support::rng(0x50c6);
        for round in 0..3000u32 {
            let ops: Vec<u8> = (0..48).map(|_| next()).collect();
            let dialect = if round % 2 == 0 {
                Dialect::V5(None)
            } else {
                creds()
            };
            let c = SocksClient::new(dialect, Command::Connect, "h.example:80".parse().unwrap())
                .unwrap();
            operations(&mut harness(c), &ops, |_| None);
        }
    }
}
