//! Playbook tests for the HTTP/1.1 core: one per rule.

use burrow_test_support::playbook;
use burrow_test_support::playbook::SansIo;
use bytes::Bytes;
use http::{HeaderMap, Method};

use super::*;

/// Inputs to the core, as a playbook writes them.
#[derive(Debug)]
enum In {
    Req(RequestHead),
    Resp(ResponseHead),
    Data(&'static str),
    End,
    EndT(&'static str, &'static str),
    Recv(&'static [u8]),
    RecvOwned(Vec<u8>),
    Eof,
}

/// Outputs: wire bytes (joined), peer events, errors.
#[derive(Debug, PartialEq)]
enum Out {
    Tx(String),
    Ev(Event),
    Err(ProtoError),
}

struct H(Connection, Vec<Out>);

impl SansIo for H {
    type Input = In;
    type Output = Out;
    fn handle(&mut self, i: In) {
        let r = match i {
            In::Req(h) => self.0.send_request(h),
            In::Resp(h) => self.0.send_response(h),
            In::Data(d) => self.0.send_data(Bytes::from_static(d.as_bytes())),
            In::End => self.0.send_end(None),
            In::EndT(k, v) => {
                let mut t = HeaderMap::new();
                t.insert(k, v.parse().unwrap());
                self.0.send_end(Some(t))
            }
            In::Recv(b) => {
                self.0.receive(b);
                Ok(())
            }
            In::RecvOwned(b) => {
                self.0.receive(&b);
                Ok(())
            }
            In::Eof => {
                self.0.receive_eof();
                Ok(())
            }
        };
        if let Err(e) = r {
            self.1.push(Out::Err(e));
        }
        let mut tx = Vec::new();
        while let Some(b) = self.0.poll_transmit() {
            tx.extend_from_slice(&b);
        }
        if !tx.is_empty() {
            self.1
                .push(Out::Tx(String::from_utf8_lossy(&tx).into_owned()));
        }
        loop {
            match self.0.poll_event() {
                Ok(Some(e)) => self.1.push(Out::Ev(e)),
                Ok(None) => break,
                Err(e) => {
                    self.1.push(Out::Err(e));
                    break;
                }
            }
        }
    }
    fn poll_output(&mut self) -> Option<Out> {
        if self.1.is_empty() {
            None
        } else {
            Some(self.1.remove(0))
        }
    }
}

fn client() -> H {
    H(Connection::new(Role::Client, Limits::default()), Vec::new())
}

fn server() -> H {
    H(Connection::new(Role::Server, Limits::default()), Vec::new())
}

fn get(target: &str) -> RequestHead {
    RequestHead::new(Method::GET, target).header("host", "example.com")
}

fn tx(s: &str) -> Out {
    Out::Tx(s.to_string())
}

fn data(s: &'static str) -> Out {
    Out::Ev(Event::Data(Bytes::from_static(s.as_bytes())))
}

fn end() -> Out {
    Out::Ev(Event::End(None))
}

fn resp(status: u16, headers: &[(&'static str, &str)]) -> Out {
    let mut h = ResponseHead::new(status);
    h.reason = http::StatusCode::from_u16(status)
        .unwrap()
        .canonical_reason()
        .unwrap()
        .to_string();
    for (k, v) in headers {
        h = h.header(k, v);
    }
    Out::Ev(Event::Response(h))
}

fn is_err(e: ProtoError) -> Out {
    Out::Err(e)
}

#[test]
fn client_content_length_response_and_reuse() {
    let core = playbook!(client(),
        >> In::Req(get("/a")),
        << tx("GET /a HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel"),
        << resp(200, &[("content-length", "5")]),
        << data("hel"),
        >> In::Recv(b"lo"),
        << data("lo"),
        << end(),
        >> In::Req(get("/b")),
        << tx("GET /b HTTP/1.1\r\nhost: example.com\r\n\r\n"),
    );
    assert!(!core.0.must_close());
}

#[test]
fn client_status_line_split_across_reads() {
    let mut pb = burrow_test_support::playbook::Playbook::new(client());
    pb.input(In::Req(get("/")))
        .expect(tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"));
    pb.input(In::End);
    for b in b"HTTP/1.1 204 No Content\r\n\r".chunks(1) {
        pb.input(In::RecvOwned(b.to_vec()));
    }
    pb.input(In::Recv(b"\n"));
    pb.expect(resp(204, &[])).expect(end());
    pb.run();
}

#[test]
fn client_chunked_with_trailers() {
    let mut t = HeaderMap::new();
    t.insert("x-checksum", "abc".parse().unwrap());
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n"),
        << resp(200, &[("transfer-encoding", "chunked")]),
        << data("hello"),
        >> In::Recv(b"0\r\nX-Checksum: abc\r\n\r\n"),
        << Out::Ev(Event::End(Some(t))),
    );
}

#[test]
fn client_close_delimited_body_ends_at_eof() {
    let core = playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\n\r\nsome"),
        << resp(200, &[]),
        << data("some"),
        >> In::Eof,
        << end(),
    );
    assert!(core.0.must_close());
}

#[test]
fn client_no_body_for_head_204_304() {
    let head = RequestHead::new(Method::HEAD, "/").header("host", "h");
    playbook!(client(),
        >> In::Req(head),
        << tx("HEAD / HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
        << resp(200, &[("content-length", "100")]),
        << end(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n"),
        << resp(304, &[("content-length", "100")]),
        << end(),
    );
}

#[test]
fn client_interim_100_continue_then_final() {
    let req = RequestHead::new(Method::POST, "/up")
        .header("host", "h")
        .header("content-length", "3")
        .header("expect", "100-continue");
    playbook!(client(),
        >> In::Req(req),
        << tx("POST /up HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"),
        >> In::Recv(b"HTTP/1.1 100 Continue\r\n\r\n"),
        << resp(100, &[]),
        >> In::Data("abc"),
        << tx("abc"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
        << resp(201, &[("content-length", "0")]),
        << end(),
    );
}

#[test]
fn client_connect_hands_back_bytes_past_head() {
    let req =
        RequestHead::new(Method::CONNECT, "example.com:443").header("host", "example.com:443");
    let mut core = playbook!(client(),
        >> In::Req(req),
        << tx("CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01tls"),
        << ?("200 head", |o: &Out| matches!(o, Out::Ev(Event::Response(h)) if h.status == 200)),
        << Out::Ev(Event::Switched),
    );
    assert_eq!(&core.0.take_leftover()[..], b"\x16\x03\x01tls");
    assert!(core.0.is_switched());
}

#[test]
fn client_refused_connect_reads_body_and_closes() {
    let req = RequestHead::new(Method::CONNECT, "x:1").header("host", "x:1");
    let core = playbook!(client(),
        >> In::Req(req),
        << tx("CONNECT x:1 HTTP/1.1\r\nhost: x:1\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 2\r\n\r\nno"),
        << resp(407, &[("content-length", "2")]),
        << data("no"),
        << end(),
    );
    assert!(core.0.must_close());
}

#[test]
fn client_upgrade_101() {
    let req = get("/chat")
        .header("connection", "upgrade")
        .header("upgrade", "websocket");
    let mut core = playbook!(client(),
        >> In::Req(req),
        << tx("GET /chat HTTP/1.1\r\nhost: example.com\r\nconnection: upgrade\r\nupgrade: websocket\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nWS"),
        << resp(101, &[("upgrade", "websocket")]),
        << Out::Ev(Event::Switched),
    );
    assert_eq!(&core.0.take_leftover()[..], b"WS");
}

#[test]
fn client_101_without_upgrade_is_error() {
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 101 Switching Protocols\r\n\r\n"),
        << is_err(ProtoError::UnexpectedSwitch),
    );
}

#[test]
fn connection_close_prevents_reuse() {
    let core = playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"),
        << resp(200, &[("connection", "close"), ("content-length", "0")]),
        << end(),
        >> In::Req(get("/")),
        << is_err(ProtoError::Misuse("a request is already in progress")),
    );
    assert!(core.0.must_close());
}

fn bad_response(wire: &'static [u8], want: ProtoError) {
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(wire),
        << is_err(want),
    );
}

#[test]
fn rejects_content_length_with_transfer_encoding() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        ProtoError::ContentLengthWithTransferEncoding,
    );
}

#[test]
fn rejects_conflicting_content_length() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        ProtoError::InvalidContentLength,
    );
}

#[test]
fn rejects_invalid_chunk_size() {
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        << resp(200, &[("transfer-encoding", "chunked")]),
        << is_err(ProtoError::InvalidChunkSize),
    );
}

#[test]
fn rejects_obs_fold() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 0\r\n\r\n",
        ProtoError::ObsFold,
    );
}

#[test]
fn rejects_bare_cr() {
    bad_response(
        b"HTTP/1.1 200 OK\r\nX-A: one\rtwo\r\nContent-Length: 0\r\n\r\n",
        ProtoError::BareCr,
    );
}

#[test]
fn header_block_limit_is_enforced_before_completion() {
    let mut wire = b"HTTP/1.1 200 OK\r\nX-Big: ".to_vec();
    wire.extend(std::iter::repeat_n(b'a', DEFAULT_MAX_HEAD_BYTES));
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::RecvOwned(wire),
        << is_err(ProtoError::HeadTooLarge { limit: DEFAULT_MAX_HEAD_BYTES }),
    );
}

#[test]
fn header_count_limit_is_enforced_and_configurable() {
    let mut wire = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..=DEFAULT_MAX_HEADERS {
        wire.extend(format!("x-h{i}: v\r\n").bytes());
    }
    wire.extend(b"\r\n");
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::RecvOwned(wire.clone()),
        << is_err(ProtoError::TooManyHeaders { limit: DEFAULT_MAX_HEADERS }),
    );
    let limits = Limits {
        max_headers: 200,
        ..Limits::default()
    };
    playbook!(H(Connection::new(Role::Client, limits), Vec::new()),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::RecvOwned(wire),
        << ?("101 headers accepted", |o: &Out| matches!(o, Out::Ev(Event::Response(h)) if h.headers.len() == 101)),
    );
}

#[test]
fn eof_inside_length_body_is_error() {
    playbook!(client(),
        >> In::Req(get("/")),
        << tx("GET / HTTP/1.1\r\nhost: example.com\r\n\r\n"),
        >> In::End,
        >> In::Recv(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        << resp(200, &[("content-length", "10")]),
        << data("abc"),
        >> In::Eof,
        << is_err(ProtoError::UnexpectedEof("a body with Content-Length")),
    );
}

#[test]
fn server_reads_chunked_request_and_pipelined_next() {
    let post = RequestHead::new(Method::POST, "/p")
        .header("host", "h")
        .header("transfer-encoding", "chunked");
    let mut t = HeaderMap::new();
    t.insert("x-t", "1".parse().unwrap());
    playbook!(server(),
        >> In::Recv(b"POST /p HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nx-t: 1\r\n\r\nGET /next HTTP/1.1\r\nhost: h\r\n\r\n"),
        << Out::Ev(Event::Request(post)),
        << data("abc"),
        << Out::Ev(Event::End(Some(t))),
        >> In::Resp(ResponseHead::new(200).header("transfer-encoding", "chunked")),
        << tx("HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        >> In::Data("ok"),
        << tx("2\r\nok\r\n"),
        >> In::EndT("x-done", "yes"),
        << tx("0\r\nx-done: yes\r\n\r\n"),
        << Out::Ev(Event::Request(RequestHead::new(Method::GET, "/next").header("host", "h"))),
        << end(),
    );
}

#[test]
fn server_without_length_closes_and_says_so() {
    let core = playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"),
        << Out::Ev(Event::Request(get_h("/"))),
        << end(),
        >> In::Resp(ResponseHead::new(200)),
        << tx("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"),
        >> In::Data("stream"),
        << tx("stream"),
        >> In::End,
    );
    assert!(core.0.must_close());
}

fn get_h(t: &str) -> RequestHead {
    RequestHead::new(Method::GET, t).header("host", "h")
}

#[test]
fn server_connect_switches_and_keeps_early_bytes() {
    let mut core = playbook!(server(),
        >> In::Recv(b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\nEARLY"),
        << Out::Ev(Event::Request(RequestHead::new(Method::CONNECT, "a:443").header("host", "a:443"))),
        << end(),
        >> In::Resp(ResponseHead::new(200)),
        << tx("HTTP/1.1 200 OK\r\n\r\n"),
        << Out::Ev(Event::Switched),
    );
    assert_eq!(&core.0.take_leftover()[..], b"EARLY");
}

#[test]
fn server_request_te_not_chunked_is_error() {
    playbook!(server(),
        >> In::Recv(b"POST / HTTP/1.1\r\nhost: h\r\ntransfer-encoding: gzip\r\n\r\n"),
        << is_err(ProtoError::UnsupportedTransferEncoding),
    );
}

#[test]
fn server_clean_close_between_requests() {
    playbook!(server(),
        >> In::Recv(b"\r\n"),
        >> In::Eof,
        << Out::Ev(Event::Closed),
    );
}

#[test]
fn server_head_response_has_no_body() {
    let head = RequestHead::new(Method::HEAD, "/").header("host", "h");
    playbook!(server(),
        >> In::Recv(b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n"),
        << Out::Ev(Event::Request(head)),
        << end(),
        >> In::Resp(ResponseHead::new(200).header("content-length", "10")),
        << tx("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
        >> In::Data("x"),
        << is_err(ProtoError::BodyLengthMismatch { declared: 0, sent: 1 }),
    );
}

#[test]
fn http10_client_gets_close() {
    let mut req = get_h("/");
    req.version = http::Version::HTTP_10;
    let core = playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.0\r\nhost: h\r\n\r\n"),
        << Out::Ev(Event::Request(req)),
        << end(),
        >> In::Resp(ResponseHead::new(200).header("content-length", "0")),
        << tx("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"),
        >> In::End,
    );
    assert!(core.0.must_close());
}

#[test]
fn http10_keep_alive_client_is_told_the_connection_stays() {
    let mut req = get_h("/").header("connection", "keep-alive");
    req.version = http::Version::HTTP_10;
    let core = playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.0\r\nhost: h\r\nconnection: keep-alive\r\n\r\n"),
        << Out::Ev(Event::Request(req)),
        << end(),
        >> In::Resp(ResponseHead::new(200).header("content-length", "0")),
        << tx("HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n"),
        >> In::End,
    );
    assert!(!core.0.must_close());
}

#[test]
fn server_http11_request_needs_exactly_one_valid_host() {
    playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.1\r\naccept: */*\r\n\r\n"),
        << is_err(ProtoError::InvalidHost("has no Host")),
    );
    playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"),
        << is_err(ProtoError::InvalidHost("has more than one Host")),
    );
    playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.1\r\nhost: user:pw@a\r\n\r\n"),
        << is_err(ProtoError::InvalidHost("has an invalid Host")),
    );
    playbook!(server(),
        >> In::Recv(b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n"),
        << is_err(ProtoError::InvalidHost("has an invalid Host")),
    );
    // HTTP/1.0 may omit it; 400 is the status either way.
    let mut c = Connection::new(Role::Server, Limits::default());
    c.receive(b"GET / HTTP/1.0\r\n\r\n");
    assert!(matches!(c.poll_event(), Ok(Some(Event::Request(_)))));
    assert_eq!(ProtoError::InvalidHost("has no Host").status(), 400);
}
