//! Playbooks for the connection cores (`ClientCore`, `ServerCore`) in the one vocabulary of
//! the kit's `Harness`: bytes, commands and virtual time in; bytes, events and the end of
//! the stream out.

use std::time::Duration;

use burrow_http_core::driver::{Core, Finish};
use burrow_http_core::TunnelRequest;
use burrow_test_support::playbook;
use burrow_test_support::playbook::{recv, tx, Harness, Io, Out};
use burrow_transport::{Error, ErrorKind};
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use super::client::{ClientCommand as C, ClientCore, ClientEvent as E, EXPECT_CONTINUE_TIMEOUT};
use super::server::{Deadlines, ServerCommand as S, ServerCore, ServerEvent as V};
use super::server::{MAX_DISCARD, MAX_READ_AHEAD};
use super::{Limits, RequestHead, ResponseHead};

fn client() -> Harness<ClientCore> {
    Harness::new(|_| ClientCore::new(Limits::default()))
}

fn get(path: &str) -> Io<C> {
    Io::Cmd(C::Request {
        head: RequestHead::new(Method::GET, path).header("host", "h"),
        body: false,
    })
}

fn response(status: u16, headers: &[(&'static str, &str)], length: Option<u64>) -> Out<E> {
    let mut head = ResponseHead::new(status);
    head.reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
        .to_string();
    for (k, v) in headers {
        head = head.header(k, v);
    }
    Out::Ev(E::Response { head, length })
}

fn data(s: &'static str) -> Out<E> {
    Out::Ev(E::Data(Bytes::from_static(s.as_bytes())))
}

fn finished(reusable: bool) -> Out<E> {
    Out::Ev(E::Finished { reusable })
}

#[test]
fn client_keep_alive_exchange_frees_the_connection_before_the_body_ends() {
    let core = playbook!(client(),
        >> get("/a"),
        << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> recv(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"),
        << response(200, &[("content-length", "2")], Some(2)),
        << data("hi"),
        << finished(true),
        << Out::Ev(E::End(None)),
        >> get("/b"),
        << tx(b"GET /b HTTP/1.1\r\nhost: h\r\n\r\n"),
    );
    assert!(!core.core.is_idle(), "the second request is in progress");
}

#[test]
fn client_waits_for_100_continue_until_its_deadline() {
    let upload = RequestHead::new(Method::POST, "/up")
        .header("host", "h")
        .header("content-length", "3")
        .header("expect", "100-continue");
    let core = playbook!(client(),
        >> Io::Cmd(C::Request { head: upload, body: true }),
        << tx(b"POST /up HTTP/1.1\r\nhost: h\r\ncontent-length: 3\r\nexpect: 100-continue\r\n\r\n"),
        >> Io::Advance(EXPECT_CONTINUE_TIMEOUT - Duration::from_millis(1)),
    );
    assert!(!core.core.wants_body(), "the body waits for 100 Continue");
    let mut pb = burrow_test_support::playbook::Playbook::new(core);
    pb.input(Io::Advance(Duration::from_millis(1)));
    let core = pb.run();
    assert!(
        core.core.wants_body(),
        "no answer in time: the body goes anyway"
    );
    playbook!(core,
        >> Io::Cmd(C::Data(Bytes::from_static(b"abc"))),
        << tx(b"abc"),
        >> Io::Cmd(C::End(None)),
        >> recv(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
        << response(204, &[], Some(0)),
        << finished(true),
        << Out::Ev(E::End(None)),
    );
}

#[test]
fn client_early_final_response_abandons_the_body_and_the_connection() {
    let upload = RequestHead::new(Method::POST, "/")
        .header("host", "h")
        .header("content-length", "100");
    playbook!(client(),
        >> Io::Cmd(C::Request { head: upload, body: true }),
        << tx(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 100\r\n\r\n"),
        >> Io::Cmd(C::Data(Bytes::from_static(b"part"))),
        << tx(b"part"),
        >> recv(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"),
        << response(413, &[("content-length", "0")], Some(0)),
        << finished(false),
        << Out::Ev(E::End(None)),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_answer_before_the_body_end_keeps_a_fully_written_body_reusable() {
    // Every declared byte is on the wire; the application had not yet told the end when
    // the answer came. The body is complete, so the connection is reused (and the late
    // end is ignored), where a half-sent body closes it (the test above).
    let upload = RequestHead::new(Method::POST, "/")
        .header("host", "h")
        .header("content-length", "4");
    let core = playbook!(client(),
        >> Io::Cmd(C::Request { head: upload, body: true }),
        << tx(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 4\r\n\r\n"),
        >> Io::Cmd(C::Data(Bytes::from_static(b"full"))),
        << tx(b"full"),
        >> recv(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
        << response(200, &[("content-length", "0")], Some(0)),
        << finished(true),
        << Out::Ev(E::End(None)),
        >> Io::Cmd(C::End(None)),
        >> get("/next"),
        << tx(b"GET /next HTTP/1.1\r\nhost: h\r\n\r\n"),
    );
    assert!(!core.core.is_idle());
}

#[test]
fn client_reused_connection_closed_unanswered_is_not_processed() {
    playbook!(client(),
        >> get("/a"),
        << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> recv(b"HTTP/1.1 204 No Content\r\n\r\n"),
        << response(204, &[], Some(0)),
        << finished(true),
        << Out::Ev(E::End(None)),
        >> get("/b"),
        << tx(b"GET /b HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> Io::Eof,
        << ?("NotProcessed, retryable", |o| matches!(o, Out::Ev(E::Failed(e)) if e.kind() == ErrorKind::NotProcessed)),
        << finished(false),
        << Out::Finish(Finish::Close),
    );
    // On a fresh connection the same is a plain closed connection: not retried.
    playbook!(client(),
        >> get("/a"),
        << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> Io::Eof,
        << ?("Closed", |o| matches!(o, Out::Ev(E::Failed(e)) if e.kind() == ErrorKind::Closed)),
        << finished(false),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_bytes_past_a_response_close_the_connection() {
    // A second response in the same read answers nothing: the next request must not take
    // it for its own (RFC 9112 §6.3), so the connection is not reused.
    playbook!(client(),
        >> get("/a"),
        << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> recv(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"),
        << response(200, &[("content-length", "2")], Some(2)),
        << data("ok"),
        << finished(false),
        << Out::Ev(E::End(None)),
        << Out::Finish(Finish::Close),
    );
    // The same for a body a 204 should not have had.
    playbook!(client(),
        >> get("/a"),
        << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> recv(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello"),
        << response(204, &[("content-length", "5")], Some(0)),
        << finished(false),
        << Out::Ev(E::End(None)),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_idle_connection_ends_on_the_servers_close_or_stray_bytes() {
    let exchanged = || {
        playbook!(client(),
            >> get("/a"),
            << tx(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
            >> recv(b"HTTP/1.1 204 No Content\r\n\r\n"),
            << response(204, &[], Some(0)),
            << finished(true),
            << Out::Ev(E::End(None)),
        )
    };
    // The server's keep-alive timeout closed it: seen at once, so it is not reused.
    let core = exchanged();
    assert!(core.core.wants_read(), "an idle connection is read");
    let core = playbook!(core,
        >> Io::Eof,
        << Out::Finish(Finish::Close),
    );
    assert!(!core.core.is_idle());
    // A request that comes anyway was never sent: another connection may take it.
    playbook!(core,
        >> get("/b"),
        << ?("NotProcessed", |o| matches!(o, Out::Ev(E::Failed(e)) if e.kind() == ErrorKind::NotProcessed)),
        << finished(false),
    );
    // A late response (or a 408 before a close) answers no request: closed, not kept for
    // the next request to read as its own.
    playbook!(exchanged(),
        >> recv(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate"),
        << Out::Finish(Finish::Close),
    );
    // Before the first request too.
    playbook!(client(),
        >> recv(b"HTTP/1.1 408 Request Timeout\r\n\r\n"),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_endless_interim_responses_are_an_error() {
    let flood =
        b"HTTP/1.1 103 Early Hints\r\n\r\n".repeat(burrow_http_core::MAX_INTERIM_RESPONSES + 1);
    playbook!(client(),
        >> get("/"),
        << tx(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> Io::Recv(Bytes::from(flood)),
        << Out::Ev(E::Failed(Error::protocol(format!("HTTP/1.1: more than {} interim (1xx) responses", burrow_http_core::MAX_INTERIM_RESPONSES),
        ))),
        << finished(false),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_cancel_closes_the_connection() {
    playbook!(client(),
        >> get("/"),
        << tx(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"),
        >> Io::Cmd(C::Cancel),
        << Out::Ev(E::Failed(Error::local(ErrorKind::Cancelled, "request abandoned by its caller"))),
        << finished(false),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn client_tunnel_keeps_the_bytes_after_the_answer() {
    let mut core = playbook!(client(),
        >> Io::Cmd(C::Tunnel(TunnelRequest::connect("example.com:443".parse().unwrap()))),
        << tx(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"),
        >> recv(b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03tls"),
        << Out::Ev(E::Tunnel { status: StatusCode::OK, headers: HeaderMap::new() }),
        << finished(false),
        << Out::Finish(Finish::Release),
    );
    assert_eq!(&core.core.take_leftover()[..], b"\x16\x03tls");
}

#[test]
fn client_tunnel_in_http10_for_old_proxies() {
    let h10 = Harness::new(|_| {
        ClientCore::new(Limits::default()).with_connect_version(http::Version::HTTP_10)
    });
    let mut core = playbook!(h10,
        >> Io::Cmd(C::Tunnel(TunnelRequest::connect("example.com:443".parse().unwrap()))),
        << tx(b"CONNECT example.com:443 HTTP/1.0\r\nhost: example.com:443\r\n\r\n"),
        >> recv(b"HTTP/1.0 200 Connection established\r\n\r\nbytes"),
        << Out::Ev(E::Tunnel { status: StatusCode::OK, headers: HeaderMap::new() }),
        << finished(false),
        << Out::Finish(Finish::Release),
    );
    assert_eq!(&core.core.take_leftover()[..], b"bytes");
}

#[test]
fn client_refused_tunnel_is_a_typed_error() {
    playbook!(client(),
        >> Io::Cmd(C::Tunnel(TunnelRequest::connect("example.com:443".parse().unwrap()))),
        << tx(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n"),
        >> recv(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\nauth"),
        << ?("ProxyRefused with 407", |o| matches!(o, Out::Ev(E::Failed(e))
            if e.kind() == ErrorKind::ProxyRefused && e.status() == Some(StatusCode::PROXY_AUTHENTICATION_REQUIRED))),
        << finished(false),
        << Out::Finish(Finish::Close),
    );
}

fn server(deadlines: Deadlines) -> Harness<ServerCore> {
    Harness::new(|now| ServerCore::new(Limits::default(), deadlines, now))
}

fn deadlines() -> Deadlines {
    Deadlines {
        head: Some(Duration::from_secs(30)),
        idle: Some(Duration::from_secs(60)),
    }
}

fn request(
    method: Method,
    target: &str,
    headers: &[(&'static str, &str)],
    length: Option<u64>,
) -> Out<V> {
    let mut head = RequestHead::new(method, target);
    for (k, v) in headers {
        head = head.header(k, v);
    }
    let uri = target.parse().unwrap();
    Out::Ev(V::Request {
        head,
        uri,
        protocol: None,
        length,
    })
}

fn respond(status: u16, length: Option<u64>) -> Io<S> {
    Io::Cmd(S::Respond {
        head: ResponseHead::new(status),
        length,
    })
}

#[test]
fn server_idle_and_head_deadlines() {
    // Nothing comes: closed quietly at the idle deadline.
    playbook!(server(deadlines()),
        >> Io::Advance(Duration::from_secs(59)),
        >> Io::Advance(Duration::from_secs(1)),
        << Out::Finish(Finish::Close),
    );
    // A head that started but does not finish: 408 at the head deadline, however long
    // the idle deadline is.
    playbook!(server(deadlines()),
        >> recv(b"GET / HTTP/1.1\r\nHo"),
        >> Io::Advance(Duration::from_secs(30)),
        << tx(b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 34\r\n\r\nrequest head not received in time\n"),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn server_frames_answers_from_their_length_and_keeps_alive() {
    playbook!(server(deadlines()),
        >> recv(b"GET /a HTTP/1.1\r\nhost: h\r\n\r\n"),
        << request(Method::GET, "/a", &[("host", "h")], Some(0)),
        << Out::Ev(V::End(None)),
        >> respond(200, Some(2)),
        << tx(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"),
        >> Io::Cmd(S::Data(Bytes::from_static(b"hi"))),
        << tx(b"hi"),
        >> Io::Cmd(S::End(None)),
        // Unknown length: chunked.
        >> recv(b"GET /b HTTP/1.1\r\nhost: h\r\n\r\n"),
        << request(Method::GET, "/b", &[("host", "h")], Some(0)),
        << Out::Ev(V::End(None)),
        >> respond(200, None),
        << tx(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
        >> Io::Cmd(S::End(None)),
        << tx(b"0\r\n\r\n"),
    );
}

#[test]
fn server_answers_http10_of_unknown_length_by_closing_not_chunked() {
    playbook!(server(deadlines()),
        >> recv(b"GET /old HTTP/1.0\r\n\r\n"),
        << ?("the request", |o| matches!(o, Out::Ev(V::Request { .. }))),
        << Out::Ev(V::End(None)),
        >> respond(200, None),
        << tx(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n"),
        >> Io::Cmd(S::Data(Bytes::from_static(b"hi"))),
        << tx(b"hi"),
        >> Io::Cmd(S::End(None)),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn server_head_requests_get_no_body_and_a_dropped_handler_gets_500() {
    playbook!(server(deadlines()),
        >> recv(b"HEAD / HTTP/1.1\r\nhost: h\r\n\r\n"),
        << request(Method::HEAD, "/", &[("host", "h")], Some(0)),
        << Out::Ev(V::End(None)),
        >> respond(200, Some(10)),
        << tx(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n"),
        >> recv(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"),
        << request(Method::GET, "/", &[("host", "h")], Some(0)),
        << Out::Ev(V::End(None)),
        >> Io::Cmd(S::NoAnswer),
        << tx(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n"),
    );
}

#[test]
fn server_malformed_request_is_answered_and_reported() {
    playbook!(server(deadlines()),
        >> recv(b"GET / HTTP/1.1\r\n\r\n"),
        << tx(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 20\r\n\r\nrequest has no Host\n"),
        << ?("Failed(Protocol)", |o| matches!(o, Out::Ev(V::Failed(e)) if e.kind() == ErrorKind::Protocol)),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn server_answers_a_malformed_request_body_with_400_until_it_has_replied() {
    let chunked = [("host", "h"), ("transfer-encoding", "chunked")];
    playbook!(server(deadlines()),
        >> recv(b"POST /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"),
        << request(Method::POST, "/up", &chunked, None),
        >> recv(b"2\r\nok\r\nzz\r\n"),
        << tx(b"HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\ncontent-length: 43\r\n\r\nmalformed request body: invalid chunk size\n"),
        << Out::Ev(V::Data(Bytes::from_static(b"ok"))),
        << ?("BodyFailed(Protocol)", |o| matches!(o, Out::Ev(V::BodyFailed(e)) if e.kind() == ErrorKind::Protocol)),
        << Out::Finish(Finish::Close),
    );
    // Once the answer has begun, a bad body can only end the connection.
    playbook!(server(deadlines()),
        >> recv(b"POST /up HTTP/1.1\r\nhost: h\r\ntransfer-encoding: chunked\r\n\r\n"),
        << request(Method::POST, "/up", &chunked, None),
        >> respond(200, Some(0)),
        << tx(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
        >> recv(b"zz\r\n"),
        << ?("BodyFailed(Protocol)", |o| matches!(o, Out::Ev(V::BodyFailed(e)) if e.kind() == ErrorKind::Protocol)),
        << Out::Finish(Finish::Close),
    );
    // A client gone mid-body is not answered.
    playbook!(server(deadlines()),
        >> recv(b"POST /up HTTP/1.1\r\nhost: h\r\ncontent-length: 5\r\n\r\nab"),
        << request(Method::POST, "/up", &[("host", "h"), ("content-length", "5")], Some(5)),
        << Out::Ev(V::Data(Bytes::from_static(b"ab"))),
        >> Io::Eof,
        << ?("a failure, no answer", |o| matches!(o, Out::Ev(V::BodyFailed(_) | V::Cancelled))),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn server_sends_100_continue_and_cancels_work_whose_client_left() {
    playbook!(server(deadlines()),
        >> recv(b"POST / HTTP/1.1\r\nhost: h\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"),
        << tx(b"HTTP/1.1 100 Continue\r\n\r\n"),
        << request(Method::POST, "/", &[("host", "h"), ("content-length", "2"), ("expect", "100-continue")], Some(2)),
        >> recv(b"ok"),
        << Out::Ev(V::Data(Bytes::from_static(b"ok"))),
        << Out::Ev(V::End(None)),
        >> Io::Eof,
        << Out::Ev(V::Cancelled),
        << Out::Finish(Finish::Close),
    );
}

#[test]
fn server_discards_an_unread_body_up_to_its_limit() {
    let big = format!(
        "POST / HTTP/1.1\r\nhost: h\r\ncontent-length: {}\r\n\r\n",
        MAX_DISCARD * 2
    );
    let mut h = server(deadlines());
    h.step(Io::Recv(Bytes::from(big)));
    h.step(Io::Cmd(S::StopBody));
    h.step(Io::Recv(Bytes::from(vec![b'x'; MAX_DISCARD])));
    assert_eq!(
        h.core.finish(),
        Finish::Running,
        "discarded, within the limit"
    );
    h.step(Io::Recv(Bytes::from_static(b"x")));
    assert_eq!(
        h.core.finish(),
        Finish::Close,
        "past the limit the connection goes"
    );
}

#[test]
fn server_reads_ahead_only_so_far_while_a_handler_works() {
    let mut h = server(deadlines());
    h.step(recv(b"GET / HTTP/1.1\r\nhost: h\r\n\r\n"));
    assert!(h.core.wants_read(), "watching for the client going away");
    h.step(Io::Recv(Bytes::from(vec![b'G'; MAX_READ_AHEAD])));
    assert!(!h.core.wants_read(), "pipelined bytes wait, up to a bound");
}

#[test]
fn server_accepts_a_tunnel_and_releases_the_stream() {
    let mut core = playbook!(server(deadlines()),
        >> recv(b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n\x16\x03"),
        << ?("the CONNECT", |o| matches!(o, Out::Ev(V::Request { head, .. }) if head.method == Method::CONNECT)),
        << Out::Ev(V::End(None)),
        >> Io::Cmd(S::AcceptTunnel { status: StatusCode::OK, headers: HeaderMap::new() }),
        << tx(b"HTTP/1.1 200 OK\r\n\r\n"),
        << Out::Ev(V::Tunnel(Ok((StatusCode::OK, HeaderMap::new())))),
        << Out::Finish(Finish::Release),
    );
    assert_eq!(&core.core.take_leftover()[..], b"\x16\x03");
}

#[test]
fn cores_survive_arbitrary_operation_orders() {
    use burrow_test_support::playbook::operations;
    let mut next = burrow_test_support::rng(0xc0de);
    for _ in 0..3000 {
        let ops: Vec<u8> = (0..48).map(|_| next()).collect();
        operations(&mut client(), &ops, crate::fuzzing::client_command);
        operations(
            &mut server(deadlines()),
            &ops,
            crate::fuzzing::server_command,
        );
    }
}

#[test]
fn a_request_with_te_names_it_in_connection() {
    let req = http::Request::builder()
        .uri("http://h/x")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let head = super::client::request_head(&parts, Some(0), false).unwrap();
    let conn: Vec<_> = head.headers.get_all("connection").iter().collect();
    assert_eq!(conn, ["te"]);
    // Already named (in any case): not twice.
    let req = http::Request::builder()
        .uri("http://h/x")
        .header("te", "trailers")
        .header("connection", "keep-alive, TE")
        .body(())
        .unwrap();
    let (parts, ()) = req.into_parts();
    let head = super::client::request_head(&parts, Some(0), false).unwrap();
    let conn: Vec<_> = head.headers.get_all("connection").iter().collect();
    assert_eq!(conn, ["keep-alive, TE"]);
    // No TE, no change.
    let req = http::Request::builder().uri("http://h/x").body(()).unwrap();
    let (parts, ()) = req.into_parts();
    let head = super::client::request_head(&parts, Some(0), false).unwrap();
    assert!(!head.headers.contains_key("connection"));
}
