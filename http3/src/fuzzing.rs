//! Fuzz entry points for the HTTP/3 core, shared by `http3/fuzz` and the property tests.

use bytes::Bytes;

use crate::proto::stream::{ControlReader, MessageEvent, MessageReader, Reading};
use crate::proto::{qpack, settings::Settings};

fn read_all(reading: Reading, wire: &[u8], cuts: &[usize]) -> (Vec<MessageEvent>, Option<u64>) {
    let mut r = MessageReader::new(reading);
    let mut events: Vec<MessageEvent> = Vec::new();
    let mut pos = 0;
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    for end in ends {
        if end < pos {
            continue;
        }
        r.push(Bytes::copy_from_slice(&wire[pos..end]));
        pos = end;
        if end == wire.len() {
            r.finish();
        }
        loop {
            match r.poll_event() {
                Ok(Some(MessageEvent::Data(d))) => match events.last_mut() {
                    Some(MessageEvent::Data(prev)) => {
                        let mut v = prev.to_vec();
                        v.extend_from_slice(&d);
                        *prev = Bytes::from(v);
                    }
                    _ => events.push(MessageEvent::Data(d)),
                },
                Ok(Some(e)) => events.push(e),
                Ok(None) => break,
                Err(e) => return (events, Some(e.code.0)),
            }
        }
    }
    (events, None)
}

/// Feeds bytes to a request-stream reader whole and cut at arbitrary points; the outcomes
/// must agree. Byte 0 picks request or response, byte 1 the number of cuts, then 2 bytes per
/// cut, then the stream bytes.
pub fn message_reader(data: &[u8]) {
    let [sel, k, rest @ ..] = data else { return };
    let reading = if sel % 2 == 0 {
        Reading::Request
    } else {
        Reading::Response
    };
    let k = (*k as usize % 8).min(rest.len() / 2);
    let (cut_bytes, wire) = rest.split_at(k * 2);
    let cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        .collect();
    let whole = read_all(reading, wire, &[]);
    let split = read_all(reading, wire, &cuts);
    assert_eq!(whole, split, "read splits changed the outcome");
}

/// QPACK field sections, SETTINGS payloads, control streams and capsules from arbitrary
/// bytes: never a
/// panic, and whatever decodes re-encodes to the same fields.
pub fn qpack_and_control(data: &[u8]) {
    if let Ok(fields) = qpack::decode(Bytes::copy_from_slice(data)) {
        let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let mut wire = Vec::new();
        qpack::encode(&refs, &mut wire);
        let again = qpack::decode(Bytes::from(wire)).expect("re-encoded section decodes");
        assert_eq!(again, fields);
    }
    let _ = Settings::parse(Bytes::copy_from_slice(data));
    let _ = qpack::check_encoder_stream(Bytes::copy_from_slice(data));
    let mut c = ControlReader::default();
    c.push(Bytes::copy_from_slice(data));
    while let Ok(Some(_)) = c.poll_event() {}
    // Capsules travel in request-stream DATA: decode whatever comes, never panic.
    let mut caps = burrow_http_core::capsule::CapsuleDecoder::new(4096);
    caps.push(data);
    while let Ok(Some(cap)) = caps.poll_capsule() {
        let _ = burrow_http_core::capsule::split_context(cap.value);
    }
}

/// Arbitrary orders of peer streams, control-stream bytes, QPACK encoder bytes and time for
/// the connection state: it never panics, closes at most once and says nothing after.
pub fn conn_state_operations(data: &[u8]) {
    use crate::proto::conn::{ConnEvent, ConnState, Side};
    use std::time::{Duration, Instant};
    let [sel, rest @ ..] = data else { return };
    let side = if sel & 1 == 0 {
        Side::Client
    } else {
        Side::Server
    };
    let mut now = Instant::now();
    let mut s = ConnState::new(side, now, Duration::from_secs(1));
    let mut rest = rest;
    let mut closed = 0;
    while let [op, tail @ ..] = rest {
        rest = tail;
        match op % 5 {
            0 => {
                let _ = s.handle_uni_stream(u64::from(op / 5) % 6);
            }
            1 | 2 => {
                let n = (rest.first().copied().unwrap_or(0) as usize % 16).min(rest.len());
                let (b, t) = rest.split_at(n);
                rest = t;
                if op % 5 == 1 {
                    s.handle_control(bytes::Bytes::copy_from_slice(b));
                } else {
                    s.handle_qpack_encoder(bytes::Bytes::copy_from_slice(b));
                }
            }
            3 => s.handle_control_end(),
            _ => {
                now += Duration::from_millis(u64::from(*op) * 10);
                s.handle_timeout(now);
            }
        }
        while let Some(e) = s.poll_event() {
            assert_eq!(closed, 0, "an event after Close: {e:?}");
            if matches!(e, ConnEvent::Close(_)) {
                closed += 1;
            }
        }
    }
}

/// QUIC-LB: bytes pick a configuration (byte 0: rotation, server ID length and whether it is
/// keyed; byte 1: nonce length), then a server ID, a key and a nonce, and the rest is a
/// destination connection ID from the network. Decoding that ID never panics; an ID made
/// from the nonce decodes to the server ID.
pub fn quic_lb(data: &[u8]) {
    use crate::quic_lb::{QuicLb, MAX_SERVER_ID_LEN, SINGLE_PASS_LEN};
    let (Some(&a), Some(&b)) = (data.first(), data.get(1)) else {
        return;
    };
    let keyed = a & 0x80 != 0;
    let sid_len = 1 + usize::from(a & 0x0f) % MAX_SERVER_ID_LEN;
    let nonce_len = if keyed {
        SINGLE_PASS_LEN.saturating_sub(sid_len)
    } else {
        usize::from(b % 20)
    };
    let rest = &data[2..];
    let need = sid_len + 16 + nonce_len;
    if rest.len() < need {
        return;
    }
    let (sid, rest) = rest.split_at(sid_len);
    let (key, rest) = rest.split_at(16);
    let (nonce, cid) = rest.split_at(nonce_len);
    let Ok(mut lb) = QuicLb::new((a >> 4) & 0x07, sid, nonce_len) else {
        return;
    };
    if keyed {
        let Ok(k) = key.try_into() else { return };
        lb = match lb.with_key(k) {
            Ok(lb) => lb,
            Err(_) => return,
        };
    }
    let _ = lb.server_id(cid);
    if let Ok(own) = lb.encode(nonce) {
        assert_eq!(own.len(), lb.cid_len());
        assert_eq!(lb.server_id(&own).as_deref(), Some(sid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use burrow_test_support::rng;

    #[test]
    fn random_streams_agree_across_splits_and_never_panic() {
        let mut seed_stream = Vec::new();
        let f = |fields: &[(&str, &str)]| {
            let f: Vec<(Vec<u8>, Vec<u8>)> = fields
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect();
            crate::proto::headers_frame(&f).to_vec()
        };
        seed_stream.extend(f(&[(":status", "200"), ("content-type", "text/plain")]));
        seed_stream.extend(crate::proto::data_header(5).to_vec());
        seed_stream.extend(b"hello");
        seed_stream.extend(f(&[("x-t", "1")]));
        let mut next = rng(7);
        for round in 0..3000 {
            let mut input = vec![next(), next() % 8];
            for _ in 0..16 {
                input.push(next());
            }
            let mut wire = seed_stream.clone();
            if round % 3 != 0 {
                for _ in 0..(next() % 4) {
                    let i = next() as usize % wire.len();
                    wire[i] = next();
                }
            }
            input.extend(&wire);
            message_reader(&input);
            qpack_and_control(&wire);
            qpack_and_control(&wire[wire.len() / 2..]);
        }
    }
}
