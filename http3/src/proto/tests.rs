//! Playbook tests for the request- and control-stream readers.

use burrow_test_support::playbook;
use burrow_test_support::playbook::SansIo;
use bytes::Bytes;
use http::{HeaderMap, StatusCode};

use super::error::{Code, H3Error};
use super::frame::{self, FrameType};
use super::settings::Settings;
use super::stream::{ControlEvent, ControlReader, MessageEvent, MessageReader, Reading};
use super::{data_header, headers_frame};

#[derive(Debug)]
enum In {
    Bytes(Vec<u8>),
    Fin,
    /// Virtual time since the reader was made: its head deadline may pass.
    At(std::time::Duration),
}

#[derive(Debug, PartialEq)]
#[allow(clippy::large_enum_variant)]
enum Out {
    Ev(MessageEvent),
    Err(Code),
}

struct R(MessageReader, Vec<Out>, std::time::Instant);

impl SansIo for R {
    type Input = In;
    type Output = Out;
    fn handle(&mut self, i: In) {
        match i {
            In::Bytes(b) => self.0.push(Bytes::from(b)),
            In::Fin => self.0.finish(),
            In::At(d) => self.0.handle_timeout(self.2 + d),
        }
        loop {
            match self.0.poll_event() {
                Ok(Some(e)) => self.1.push(Out::Ev(e)),
                Ok(None) => break,
                Err(e) => {
                    self.1.push(Out::Err(e.code));
                    break;
                }
            }
        }
    }
    fn poll_output(&mut self) -> Option<Out> {
        (!self.1.is_empty()).then(|| self.1.remove(0))
    }
}

fn response() -> R {
    R(
        MessageReader::new(Reading::Response),
        Vec::new(),
        std::time::Instant::now(),
    )
}

#[test]
fn a_request_head_not_complete_in_time_is_request_incomplete() {
    use std::time::{Duration, Instant};
    let t0 = Instant::now();
    let reader =
        || MessageReader::new(Reading::Request).head_deadline(t0 + Duration::from_secs(30));
    let get = hdrs(&[
        (":method", "GET"),
        (":scheme", "https"),
        (":authority", "a"),
        (":path", "/"),
    ]);
    let (first, rest) = get.split_at(3);
    playbook!(R(reader(), Vec::new(), t0),
        >> In::Bytes(first.to_vec()),
        >> In::At(Duration::from_secs(29)),
        >> In::At(Duration::from_secs(30)),
        << Out::Err(Code::REQUEST_INCOMPLETE),
    );
    // A head in time: the deadline is over, however long the body takes.
    let core = playbook!(R(reader(), Vec::new(), t0),
        >> In::Bytes(first.to_vec()),
        >> In::Bytes(rest.to_vec()),
        << ?("the request", |o| matches!(o, Out::Ev(MessageEvent::Request(_)))),
        >> In::At(Duration::from_secs(300)),
    );
    assert_eq!(core.0.poll_timeout(), None);
}

fn hdrs(fields: &[(&str, &str)]) -> Vec<u8> {
    let f: Vec<(Vec<u8>, Vec<u8>)> = fields
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    headers_frame(&f).to_vec()
}

fn data(d: &str) -> Vec<u8> {
    let mut v = data_header(d.len()).to_vec();
    v.extend_from_slice(d.as_bytes());
    v
}

fn head(status: u16, h: &[(&'static str, &'static str)]) -> Out {
    let mut m = HeaderMap::new();
    for (k, v) in h {
        m.append(*k, v.parse().unwrap());
    }
    Out::Ev(MessageEvent::Response(
        StatusCode::from_u16(status).unwrap(),
        m,
    ))
}

#[test]
fn response_interim_body_trailers_end() {
    let mut t = HeaderMap::new();
    t.insert("x-sum", "1".parse().unwrap());
    playbook!(response(),
        >> In::Bytes(hdrs(&[(":status", "103"), ("link", "</a>")])),
        << head(103, &[("link", "</a>")]),
        >> In::Bytes(hdrs(&[(":status", "200")])),
        << head(200, &[]),
        >> In::Bytes(data("hel")),
        << Out::Ev(MessageEvent::Data(Bytes::from_static(b"hel"))),
        >> In::Bytes(hdrs(&[("x-sum", "1")])),
        << Out::Ev(MessageEvent::Trailers(t)),
        >> In::Fin,
        << Out::Ev(MessageEvent::End),
    );
}

#[test]
fn data_before_headers_is_frame_unexpected() {
    playbook!(response(),
        >> In::Bytes(data("x")),
        << Out::Err(Code::FRAME_UNEXPECTED),
    );
}

#[test]
fn headers_after_trailers_is_frame_unexpected() {
    playbook!(response(),
        >> In::Bytes(hdrs(&[(":status", "200")])),
        << head(200, &[]),
        >> In::Bytes(hdrs(&[("x", "1")])),
        << ?("trailers", |o: &Out| matches!(o, Out::Ev(MessageEvent::Trailers(_)))),
        >> In::Bytes(hdrs(&[("y", "1")])),
        << Out::Err(Code::FRAME_UNEXPECTED),
    );
}

#[test]
fn settings_on_request_stream_is_frame_unexpected_connection_error() {
    let mut s = Vec::new();
    frame::encode(FrameType::SETTINGS, &[], &mut s);
    let mut r = MessageReader::new(Reading::Response);
    r.push(Bytes::from(s));
    let e = r.poll_event().unwrap_err();
    assert_eq!(e.code, Code::FRAME_UNEXPECTED);
    assert!(super::stream::is_connection_error(&e));
}

#[test]
fn fin_before_head_or_inside_frame() {
    playbook!(response(),
        >> In::Fin,
        << Out::Err(Code::REQUEST_INCOMPLETE),
    );
    let mut half = data("abc");
    half.truncate(3);
    playbook!(response(),
        >> In::Bytes(hdrs(&[(":status", "200")])),
        << head(200, &[]),
        >> In::Bytes(half),
        << Out::Ev(MessageEvent::Data(Bytes::from_static(b"a"))),
        >> In::Fin,
        << Out::Err(Code::FRAME_ERROR),
    );
}

#[test]
fn unknown_frames_on_request_streams_are_ignored() {
    let mut grease = Vec::new();
    frame::encode(FrameType(0x21 + 0x1f * 3), b"ignore me", &mut grease);
    playbook!(response(),
        >> In::Bytes(grease),
        >> In::Bytes(hdrs(&[(":status", "204")])),
        << head(204, &[]),
        >> In::Fin,
        << Out::Ev(MessageEvent::End),
    );
}

#[test]
fn request_reader_parses_connect() {
    let mut r = R(
        MessageReader::new(Reading::Request),
        Vec::new(),
        std::time::Instant::now(),
    );
    r.handle(In::Bytes(hdrs(&[
        (":method", "CONNECT"),
        (":authority", "example.com:443"),
    ])));
    match r.poll_output() {
        Some(Out::Ev(MessageEvent::Request(h))) => {
            assert_eq!(h.method, http::Method::CONNECT);
            assert_eq!(h.authority.as_deref(), Some("example.com:443"));
            assert!(h.path.is_none() && h.scheme.is_none());
        }
        other => panic!("{other:?}"),
    }
}

fn control(frames: &[(FrameType, Vec<u8>)]) -> Vec<Result<ControlEvent, H3Error>> {
    let mut c = ControlReader::default();
    let mut wire = Vec::new();
    for (t, p) in frames {
        frame::encode(*t, p, &mut wire);
    }
    c.push(Bytes::from(wire));
    let mut out = Vec::new();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => out.push(Ok(e)),
            Ok(None) => break,
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

#[test]
fn control_stream_rules() {
    let mut s = Vec::new();
    Settings {
        h3_datagram: true,
        ..Settings::default()
    }
    .encode(&mut s);
    let mut goaway = Vec::new();
    super::varint::encode(8, &mut goaway);
    let got = control(&[
        (FrameType::SETTINGS, s.clone()),
        (FrameType::GOAWAY, goaway.clone()),
    ]);
    assert!(matches!(&got[0], Ok(ControlEvent::Settings(s)) if s.h3_datagram));
    assert_eq!(got[1], Ok(ControlEvent::GoAway(8)));

    let got = control(&[(FrameType::GOAWAY, goaway)]);
    assert_eq!(got[0].as_ref().unwrap_err().code, Code::MISSING_SETTINGS);
    let got = control(&[
        (FrameType::SETTINGS, s.clone()),
        (FrameType::SETTINGS, s.clone()),
    ]);
    assert_eq!(got[1].as_ref().unwrap_err().code, Code::FRAME_UNEXPECTED);
    let got = control(&[(FrameType::SETTINGS, s), (FrameType::HEADERS, vec![0, 0])]);
    assert_eq!(got[1].as_ref().unwrap_err().code, Code::FRAME_UNEXPECTED);
}
