//! The SOCKS server core, sans-I/O: SOCKS5 (RFC 1928) with no-auth or username/password
//! (RFC 1929), and SOCKS4a. Bytes in, an [`Event::Request`] out; the driver connects and
//! answers with [`SocksServer::reply`].
//!
//! ```text
//! SOCKS5: ExpectGreeting --methods--> [ExpectAuth --user/pass-->] ExpectRequest --> Replying
//! SOCKS4a: ExpectGreeting(VN=4) --------------------------------> Replying
//! Replying --reply()--> Done (bytes after the request are the tunnel's)
//! ```

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use burrow_http_core::driver::{Core, Finish};

use burrow_transport::{Host, Target, MAX_HOST_NAME_LEN};
use bytes::{Buf, Bytes, BytesMut};

use super::wire::{decode_addr, encode_addr, AddrError, Command, Reply};
use burrow_http_core::credentials::Credentials;

/// Longest SOCKS4 user id accepted (NUL-terminated; the protocol sets no limit).
pub const MAX_SOCKS4_USERID: usize = 255;

/// Which SOCKS version the client spoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    /// SOCKS4 / SOCKS4a.
    V4,
    /// SOCKS5.
    V5,
}

/// What the client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A request to answer with [`SocksServer::reply`].
    Request {
        /// SOCKS version.
        version: Version,
        /// What to do.
        command: Command,
        /// Where to.
        target: Target,
    },
}

/// Why the exchange failed; a reply (if any) is already queued for transmission.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocksError {
    /// Neither SOCKS4 nor SOCKS5.
    BadVersion(u8),
    /// No offered authentication method is acceptable.
    NoAcceptableMethod,
    /// Wrong username or password.
    AuthFailed,
    /// The request is malformed.
    Malformed(&'static str),
    /// A SOCKS4 user id or hostname over 255 bytes.
    TooLong,
    /// Address type not supported (replied with 0x08).
    AddressType,
    /// The negotiation did not finish within its deadline.
    Timeout,
    /// The client went away (or its stream broke) before its request was complete.
    Closed,
}

impl std::fmt::Display for SocksError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SocksError::BadVersion(v) => write!(f, "not SOCKS (version byte {v})"),
            SocksError::NoAcceptableMethod => f.write_str("no acceptable authentication method"),
            SocksError::AuthFailed => f.write_str("authentication failed"),
            SocksError::Malformed(w) => write!(f, "malformed request: {w}"),
            SocksError::TooLong => f.write_str("SOCKS4 field over 255 bytes"),
            SocksError::AddressType => f.write_str("address type not supported"),
            SocksError::Timeout => f.write_str("negotiation not finished in time"),
            SocksError::Closed => f.write_str("client went away during the negotiation"),
        }
    }
}

impl std::error::Error for SocksError {}

#[derive(Debug, PartialEq, Eq)]
enum State {
    ExpectGreeting,
    ExpectAuth,
    ExpectRequest,
    Replying(Version),
    Done,
    Failed,
}

/// The answer to a request: a reply code and the bound address (the relay for UDP
/// ASSOCIATE, the local address of the outgoing connection for CONNECT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// The reply code.
    pub reply: Reply,
    /// The bound address (zeros when `None`).
    pub bound: Option<Target>,
}

/// The server side of one SOCKS exchange.
///
/// Call contract, as a [`Core`]: bytes in until one event, `Ok(Event::Request)` or
/// `Err(SocksError)` (a reply is then already queued); the core then hands the stream back
/// ([`Finish::Release`]) for the request to be decided, and the [`Answer`] command queues
/// the reply (a success releases the stream again for the tunnel, a refusal closes it). The
/// negotiation deadline set with [`deadline`](Self::deadline) runs until the request.
/// By hand: [`receive`](Self::receive), [`reply`](Self::reply);
/// [`poll_event`](Self::poll_event), [`poll_transmit`](Self::poll_transmit),
/// [`take_leftover`](Self::take_leftover).
#[derive(Debug)]
pub struct SocksServer {
    auth: Option<Credentials>,
    state: State,
    buf: BytesMut,
    out: VecDeque<Bytes>,
    deadline: Option<Instant>,
    event: Option<Result<Event, SocksError>>,
}

impl SocksServer {
    /// A server requiring `auth` (SOCKS5 username/password; SOCKS4 is then refused), or none.
    pub fn new(auth: Option<Credentials>) -> Self {
        SocksServer {
            auth,
            state: State::ExpectGreeting,
            buf: BytesMut::new(),
            out: VecDeque::new(),
            deadline: None,
            event: None,
        }
    }

    /// The negotiation must be over within `timeout` of `now`.
    pub fn deadline(mut self, now: Instant, timeout: Duration) -> Self {
        self.deadline = Some(now + timeout);
        self
    }

    fn negotiating(&self) -> bool {
        matches!(
            self.state,
            State::ExpectGreeting | State::ExpectAuth | State::ExpectRequest
        )
    }

    fn conclude(&mut self, e: SocksError) {
        if self.negotiating() {
            self.state = State::Failed;
            self.event = Some(Err(e));
        }
    }

    /// Bytes from the client.
    pub fn receive(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes to send to the client.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Bytes the client sent after its request (the start of the tunnel).
    pub fn take_leftover(&mut self) -> Bytes {
        self.buf.split().freeze()
    }

    fn fail(&mut self, e: SocksError) -> Result<Option<Event>, SocksError> {
        self.state = State::Failed;
        Err(e)
    }

    /// Advances; `Ok(None)` when more bytes are needed (or the request awaits its reply).
    pub fn poll_event(&mut self) -> Result<Option<Event>, SocksError> {
        loop {
            match self.state {
                State::ExpectGreeting => {
                    let Some(&ver) = self.buf.first() else {
                        return Ok(None);
                    };
                    match ver {
                        5 => {
                            let Some(&n) = self.buf.get(1) else {
                                return Ok(None);
                            };
                            let n = n as usize;
                            if self.buf.len() < 2 + n {
                                return Ok(None);
                            }
                            let methods = self.buf[2..2 + n].to_vec();
                            self.buf.advance(2 + n);
                            let want = if self.auth.is_some() { 0x02 } else { 0x00 };
                            if !methods.contains(&want) {
                                self.out.push_back(Bytes::from_static(&[5, 0xff]));
                                return self.fail(SocksError::NoAcceptableMethod);
                            }
                            self.out.push_back(Bytes::copy_from_slice(&[5, want]));
                            self.state = if want == 0x02 {
                                State::ExpectAuth
                            } else {
                                State::ExpectRequest
                            };
                        }
                        4 => return self.socks4(),
                        v => return self.fail(SocksError::BadVersion(v)),
                    }
                }
                State::ExpectAuth => {
                    // RFC 1929: VER=1 ULEN UNAME PLEN PASSWD.
                    let b = &self.buf;
                    if b.len() < 2 {
                        return Ok(None);
                    }
                    if b[0] != 1 {
                        self.out.push_back(Bytes::from_static(&[1, 1]));
                        return self.fail(SocksError::Malformed("username/password version"));
                    }
                    let ulen = b[1] as usize;
                    let Some(&plen) = b.get(2 + ulen) else {
                        return Ok(None);
                    };
                    let total = 3 + ulen + plen as usize;
                    if b.len() < total {
                        return Ok(None);
                    }
                    let user = b[2..2 + ulen].to_vec();
                    let pass = b[3 + ulen..total].to_vec();
                    self.buf.advance(total);
                    let ok = self.auth.as_ref().is_some_and(|c| {
                        c.user.as_bytes() == user.as_slice() && c.pass.as_bytes() == pass.as_slice()
                    });
                    if !ok {
                        self.out.push_back(Bytes::from_static(&[1, 1]));
                        return self.fail(SocksError::AuthFailed);
                    }
                    self.out.push_back(Bytes::from_static(&[1, 0]));
                    self.state = State::ExpectRequest;
                }
                State::ExpectRequest => {
                    if self.buf.len() < 4 {
                        return Ok(None);
                    }
                    if self.buf[0] != 5 || self.buf[2] != 0 {
                        self.queue_reply5(Reply::GENERAL_FAILURE, None);
                        return self.fail(SocksError::Malformed("request header"));
                    }
                    let cmd = self.buf[1];
                    let (target, n) = match decode_addr(&self.buf[3..]) {
                        Ok(x) => x,
                        Err(AddrError::Incomplete) => return Ok(None),
                        Err(AddrError::BadType) => {
                            self.queue_reply5(Reply::ADDRESS_TYPE_NOT_SUPPORTED, None);
                            return self.fail(SocksError::AddressType);
                        }
                        Err(AddrError::BadName) => {
                            self.queue_reply5(Reply::GENERAL_FAILURE, None);
                            return self.fail(SocksError::Malformed("host name"));
                        }
                    };
                    let command = match cmd {
                        1 => Command::Connect,
                        2 => Command::Bind,
                        3 => Command::UdpAssociate,
                        _ => {
                            self.queue_reply5(Reply::COMMAND_NOT_SUPPORTED, None);
                            return self.fail(SocksError::Malformed("unknown command"));
                        }
                    };
                    self.buf.advance(3 + n);
                    self.state = State::Replying(Version::V5);
                    return Ok(Some(Event::Request {
                        version: Version::V5,
                        command,
                        target,
                    }));
                }
                _ => return Ok(None),
            }
        }
    }

    /// SOCKS4/4a: VN=4 CD DSTPORT DSTIP USERID NUL [HOST NUL].
    fn socks4(&mut self) -> Result<Option<Event>, SocksError> {
        if self.buf.len() < 9 {
            return Ok(None);
        }
        let cd = self.buf[1];
        let port = u16::from_be_bytes([self.buf[2], self.buf[3]]);
        let ip = Ipv4Addr::new(self.buf[4], self.buf[5], self.buf[6], self.buf[7]);
        let Some(uid_end) = self.socks4_field(8, MAX_SOCKS4_USERID)? else {
            return Ok(None);
        };
        let mut used = 8 + uid_end + 1;
        let o = ip.octets();
        let host = if o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] != 0 {
            // SOCKS4a: the name follows.
            let Some(end) = self.socks4_field(used, MAX_HOST_NAME_LEN)? else {
                return Ok(None);
            };
            let name = std::str::from_utf8(&self.buf[used..used + end])
                .ok()
                .and_then(|n| Host::parse(n).ok());
            used += end + 1;
            match name {
                Some(h) => h,
                None => {
                    self.queue_reply4(false);
                    return self.fail(SocksError::Malformed("SOCKS4a host name"));
                }
            }
        } else {
            Host::Ip(IpAddr::V4(ip))
        };
        if self.auth.is_some() {
            // SOCKS4 has no passwords: with authentication required, refuse it.
            self.queue_reply4(false);
            return self.fail(SocksError::AuthFailed);
        }
        let command = match cd {
            1 => Command::Connect,
            2 => Command::Bind,
            _ => {
                self.queue_reply4(false);
                return self.fail(SocksError::Malformed("SOCKS4 command"));
            }
        };
        self.buf.advance(used);
        self.state = State::Replying(Version::V4);
        Ok(Some(Event::Request {
            version: Version::V4,
            command,
            target: Target::new(host, port),
        }))
    }

    fn queue_reply5(&mut self, r: Reply, bound: Option<&Target>) {
        let mut v = vec![5, r.0, 0];
        let zero = Target::new(Host::Ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);
        encode_addr(bound.unwrap_or(&zero), &mut v);
        self.out.push_back(Bytes::from(v));
    }

    /// The length of the NUL-terminated SOCKS4 field at `at`, `None` until its NUL has
    /// arrived; one longer than `max` fails the request.
    fn socks4_field(&mut self, at: usize, max: usize) -> Result<Option<usize>, SocksError> {
        let field = &self.buf[at..];
        match field.iter().position(|&b| b == 0) {
            Some(end) if end <= max => Ok(Some(end)),
            None if field.len() <= max => Ok(None),
            _ => {
                self.queue_reply4(false);
                self.fail(SocksError::TooLong).map(|_| None)
            }
        }
    }

    fn queue_reply4(&mut self, granted: bool) {
        self.out.push_back(Bytes::copy_from_slice(&[
            0,
            if granted { 90 } else { 91 },
            0,
            0,
            0,
            0,
            0,
            0,
        ]));
    }

    /// Answers the request: `bound` is the relay address for UDP ASSOCIATE (or the local
    /// address of the outgoing connection). A non-success reply ends the exchange.
    pub fn reply(&mut self, reply: Reply, bound: Option<&Target>) {
        let State::Replying(v) = self.state else {
            return;
        };
        match v {
            Version::V5 => self.queue_reply5(reply, bound),
            Version::V4 => self.queue_reply4(reply == Reply::SUCCEEDED),
        }
        self.state = if reply == Reply::SUCCEEDED {
            State::Done
        } else {
            State::Failed
        };
    }
}

impl Core for SocksServer {
    type Command = Answer;
    type Event = Result<Event, SocksError>;

    fn read_buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    fn handle_read(&mut self, n: usize, _now: Instant) {
        if !self.negotiating() {
            return;
        }
        match self.poll_event() {
            Ok(Some(e)) => self.event = Some(Ok(e)),
            Err(e) => self.event = Some(Err(e)),
            Ok(None) if n == 0 => self.conclude(SocksError::Closed),
            Ok(None) => {}
        }
    }

    fn handle_command(&mut self, a: Answer, _now: Instant) {
        self.reply(a.reply, a.bound.as_ref());
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.deadline.is_some_and(|t| t <= now) {
            self.conclude(SocksError::Timeout);
        }
    }

    fn handle_io_error(&mut self, _error: burrow_transport::Error, _now: Instant) {
        self.conclude(SocksError::Closed);
        if matches!(self.state, State::Replying(_)) {
            self.state = State::Failed;
        }
    }

    fn handle_app_closed(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        self.event.take()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline.filter(|_| self.negotiating())
    }

    fn wants_read(&self) -> bool {
        self.negotiating()
    }

    fn finish(&self) -> Finish {
        match self.state {
            State::Replying(_) | State::Done => Finish::Release,
            State::Failed => Finish::Close,
            _ => Finish::Running,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burrow_http_core::driver::Finish;
    use burrow_test_support::playbook;
    use burrow_test_support::playbook::{operations, recv, tx, Harness, Io, Out};

    type H = Harness<SocksServer>;

    fn open() -> H {
        Harness::new(|_| SocksServer::new(None))
    }

    fn with_auth() -> H {
        Harness::new(|_| {
            SocksServer::new(Some(Credentials {
                user: "u".into(),
                pass: "pw".into(),
            }))
        })
    }

    fn connect(t: &str) -> Out<Result<Event, SocksError>> {
        Out::Ev(Ok(Event::Request {
            version: Version::V5,
            command: Command::Connect,
            target: t.parse().unwrap(),
        }))
    }

    fn reply(reply: Reply, bound: Option<&str>) -> Io<Answer> {
        Io::Cmd(Answer {
            reply,
            bound: bound.map(|b| b.parse().unwrap()),
        })
    }

    #[test]
    fn socks5_no_auth_connect_by_name_with_early_data() {
        let mut core = playbook!(open(),
            >> recv(&[5, 1, 0]),
            << tx(&[5, 0]),
            >> recv(&[5, 1, 0, 3, 11, b'e', b'x', b'a', b'm', b'p', b'l', b'e', b'.', b'c', b'o', b'm', 0x01, 0xbb, b'G', b'E']),
            << connect("example.com:443"),
            << Out::Finish(Finish::Release),
            >> reply(Reply::SUCCEEDED, Some("127.0.0.1:5000")),
            << tx(&[5, 0, 0, 1, 127, 0, 0, 1, 0x13, 0x88]),
        );
        assert_eq!(&core.core.take_leftover()[..], b"GE");
    }

    #[test]
    fn socks5_ipv6_and_udp_associate() {
        let mut req = vec![5, 3, 0, 4];
        req.extend_from_slice(&[0u8; 15]);
        req.push(1);
        req.extend_from_slice(&[0, 53]);
        let req: &'static [u8] = Box::leak(req.into_boxed_slice());
        playbook!(open(),
            >> recv(&[5, 2, 2, 0]),
            << tx(&[5, 0]),
            >> recv(req),
            << Out::Ev(Ok(Event::Request { version: Version::V5, command: Command::UdpAssociate, target: "[::1]:53".parse().unwrap() })),
            << Out::Finish(Finish::Release),
        );
    }

    #[test]
    fn socks5_username_password() {
        playbook!(with_auth(),
            >> recv(&[5, 2, 0, 2]),
            << tx(&[5, 2]),
            >> recv(&[1, 1, b'u', 2, b'p', b'w']),
            << tx(&[1, 0]),
            >> recv(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]),
            << connect("10.0.0.1:80"),
            << Out::Finish(Finish::Release),
        );
        playbook!(with_auth(),
            >> recv(&[5, 1, 2]),
            << tx(&[5, 2]),
            >> recv(&[1, 1, b'u', 2, b'n', b'o']),
            << tx(&[1, 1]),
            << Out::Ev(Err(SocksError::AuthFailed)),
            << Out::Finish(Finish::Close),
        );
        playbook!(with_auth(),
            >> recv(&[5, 1, 0]),
            << tx(&[5, 0xff]),
            << Out::Ev(Err(SocksError::NoAcceptableMethod)),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn socks5_errors_reply_with_codes() {
        playbook!(open(),
            >> recv(&[5, 1, 0, 5, 1, 0, 9, 0, 0]),
            << tx(&[5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
            << Out::Ev(Err(SocksError::AddressType)),
            << Out::Finish(Finish::Close),
        );
        playbook!(open(),
            >> recv(&[5, 1, 0, 5, 9, 0, 1, 1, 2, 3, 4, 0, 80]),
            << tx(&[5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0]),
            << Out::Ev(Err(SocksError::Malformed("unknown command"))),
            << Out::Finish(Finish::Close),
        );
        playbook!(open(),
            >> recv(&[1, 2, 3]),
            << Out::Ev(Err(SocksError::BadVersion(1))),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn socks4a_by_name_and_limits() {
        playbook!(open(),
            >> recv(b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00example.org\x00"),
            << Out::Ev(Ok(Event::Request { version: Version::V4, command: Command::Connect, target: "example.org:80".parse().unwrap() })),
            << Out::Finish(Finish::Release),
            >> reply(Reply::SUCCEEDED, None),
            << tx(&[0, 90, 0, 0, 0, 0, 0, 0]),
        );
        let mut long = b"\x04\x01\x00\x50\x00\x00\x00\x01\x00".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_HOST_NAME_LEN + 1));
        let long: &'static [u8] = Box::leak(long.into_boxed_slice());
        playbook!(open(),
            >> recv(long),
            << tx(&[0, 91, 0, 0, 0, 0, 0, 0]),
            << Out::Ev(Err(SocksError::TooLong)),
            << Out::Finish(Finish::Close),
        );
        // Exactly 255 bytes is accepted.
        let mut ok = b"\x04\x01\x00\x50\x00\x00\x00\x01\x00".to_vec();
        ok.extend(std::iter::repeat_n(b'a', MAX_HOST_NAME_LEN));
        ok.push(0);
        let mut s = SocksServer::new(None);
        s.receive(&ok);
        assert!(matches!(s.poll_event(), Ok(Some(Event::Request { .. }))));
    }

    #[test]
    fn socks4_refused_when_auth_required() {
        playbook!(with_auth(),
            >> recv(b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00"),
            << tx(&[0, 91, 0, 0, 0, 0, 0, 0]),
            << Out::Ev(Err(SocksError::AuthFailed)),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn negotiation_has_a_deadline_and_refusals_close() {
        let within_10s = |now| SocksServer::new(None).deadline(now, Duration::from_secs(10));
        playbook!(Harness::new(within_10s),
            >> recv(&[5, 1]),
            >> Io::Advance(Duration::from_secs(9)),
            >> Io::Advance(Duration::from_secs(1)),
            << Out::Ev(Err(SocksError::Timeout)),
            << Out::Finish(Finish::Close),
        );
        playbook!(Harness::new(within_10s),
            >> recv(&[5, 1, 0]),
            << tx(&[5, 0]),
            >> recv(&[5, 1, 0, 1, 10, 0, 0, 1, 0, 80]),
            << connect("10.0.0.1:80"),
            << Out::Finish(Finish::Release),
            // The deadline was the negotiation's: deciding may take longer.
            >> Io::Advance(Duration::from_secs(60)),
            >> reply(Reply::NOT_ALLOWED, None),
            << tx(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]),
            << Out::Finish(Finish::Close),
        );
        playbook!(Harness::new(within_10s),
            >> recv(&[5, 1, 0, 5]),
            << tx(&[5, 0]),
            >> Io::Eof,
            << Out::Ev(Err(SocksError::Closed)),
            << Out::Finish(Finish::Close),
        );
    }

    #[test]
    fn survives_arbitrary_operation_orders() {
        let mut next = burrow_test_support::rng(0x50c5);
        for _ in 0..3000 {
            let ops: Vec<u8> = (0..48).map(|_| next()).collect();
            let within_1s = |now| SocksServer::new(None).deadline(now, Duration::from_secs(1));
            operations(
                &mut Harness::new(within_1s),
                &ops,
                crate::fuzzing::socks_answer,
            );
        }
    }
}
