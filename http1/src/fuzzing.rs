//! Fuzz entry points, shared by the cargo-fuzz targets in `http1/fuzz` and by the
//! deterministic property tests below (so `cargo test` exercises them too).

use bytes::Bytes;
use http::Method;

use crate::proto::{Connection, Event, Limits, ProtoError, RequestHead, ResponseHead, Role};

/// What the parser made of a byte stream: events with data merged, and the error if any.
#[derive(Debug, PartialEq)]
struct Outcome {
    events: Vec<Event>,
    error: Option<ProtoError>,
}

fn push(events: &mut Vec<Event>, e: Event) {
    if let (Event::Data(new), Some(Event::Data(prev))) = (&e, events.last_mut()) {
        let mut joined = prev.to_vec();
        joined.extend_from_slice(new);
        *prev = Bytes::from(joined);
        return;
    }
    events.push(e);
}

fn run_client(method: Method, wire: &[u8], splits: &[usize], limits: &Limits) -> Outcome {
    let mut c = Connection::new(Role::Client, limits.clone());
    let mut events = Vec::new();
    let head = RequestHead::new(method, "/").header("host", "fuzz");
    if c.send_request(head).and_then(|_| c.send_end(None)).is_err() {
        return Outcome {
            events,
            error: None,
        };
    }
    let mut pos = 0;
    let mut cuts: Vec<usize> = splits.iter().map(|s| s % (wire.len() + 1)).collect();
    cuts.sort_unstable();
    cuts.push(wire.len());
    for cut in cuts {
        if cut < pos {
            continue;
        }
        c.receive(&wire[pos..cut]);
        pos = cut;
        loop {
            match c.poll_event() {
                Ok(Some(Event::Switched)) => {
                    // Everything after the head belongs to the tunnel.
                    let mut rest = c.take_leftover().to_vec();
                    rest.extend_from_slice(&wire[pos..]);
                    events.push(Event::Switched);
                    events.push(Event::Data(Bytes::from(rest)));
                    return Outcome {
                        events,
                        error: None,
                    };
                }
                Ok(Some(e)) => push(&mut events, e),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        events,
                        error: Some(e),
                    }
                }
            }
        }
    }
    c.receive_eof();
    loop {
        match c.poll_event() {
            Ok(Some(e)) => push(&mut events, e),
            Ok(None) => break,
            Err(e) => {
                return Outcome {
                    events,
                    error: Some(e),
                }
            }
        }
    }
    Outcome {
        events,
        error: None,
    }
}

/// Feeds `data` as a response to the client core, once whole and once cut at arbitrary
/// points, and panics if the two runs disagree. Never panics otherwise.
///
/// Layout: byte 0 picks the request method, byte 1 the number of cut points `k`, the next
/// `2k` bytes the cut offsets, the rest is the response bytes.
pub fn response_parser(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let method = match sel % 4 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::CONNECT,
        _ => Method::POST,
    };
    let Some((&k, rest)) = rest.split_first() else {
        return;
    };
    let k = (k as usize % 16).min(rest.len() / 2);
    let (cut_bytes, wire) = rest.split_at(k * 2);
    let splits: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        .collect();
    // Small limits so the fuzzer reaches them.
    let limits = Limits {
        max_head_bytes: 512,
        max_headers: 8,
    };
    let whole = run_client(method.clone(), wire, &[], &limits);
    let split = run_client(method, wire, &splits, &limits);
    assert_eq!(whole, split, "read splits changed the outcome");
}

/// Drives a client and a server core with an arbitrary order of operations from `data` and
/// checks they never panic and that misuse is reported, not acted on.
pub fn operations(data: &[u8]) {
    let mut client = Connection::new(Role::Client, Limits::default());
    let mut server = Connection::new(Role::Server, Limits::default());
    for &op in data {
        let r = match op % 10 {
            0 => client
                .send_request(RequestHead::new(Method::POST, "/").header("content-length", "2")),
            1 => client.send_request(
                RequestHead::new(Method::GET, "/").header("transfer-encoding", "chunked"),
            ),
            2 => client.send_data(Bytes::from_static(b"ab")),
            3 => client.send_end(None),
            4 => server.send_response(ResponseHead::new(200).header("content-length", "1")),
            5 => server.send_response(ResponseHead::new(100)),
            6 => server.send_data(Bytes::from_static(b"x")),
            7 => server.send_end(None),
            8 => {
                client.receive_eof();
                Ok(())
            }
            _ => {
                server.receive_eof();
                Ok(())
            }
        };
        let _ = r;
        while let Some(b) = client.poll_transmit() {
            server.receive(&b);
        }
        while let Some(b) = server.poll_transmit() {
            client.receive(&b);
        }
        while let Ok(Some(_)) = server.poll_event() {}
        while let Ok(Some(_)) = client.poll_event() {}
    }
}

/// A client command from fuzz bytes (for operation fuzzing of [`ClientCore`] with the
/// test kit's `operations`): the first byte picks it.
///
/// [`ClientCore`]: crate::proto::client::ClientCore
pub fn client_command(data: &mut &[u8]) -> Option<crate::proto::client::ClientCommand> {
    use crate::proto::client::ClientCommand as C;
    let (&op, rest) = data.split_first()?;
    *data = rest;
    let head = |m: Method| RequestHead::new(m, "/").header("host", "fuzz");
    Some(match op % 9 {
        0 => C::Request {
            head: head(Method::GET),
            body: false,
        },
        1 => C::Request {
            head: head(Method::POST).header("content-length", "2"),
            body: true,
        },
        2 => C::Request {
            head: head(Method::PUT)
                .header("transfer-encoding", "chunked")
                .header("expect", "100-continue"),
            body: true,
        },
        3 => C::Data(Bytes::from_static(b"ab")),
        4 => C::End(None),
        5 => C::BodyFailed(burrow_transport::Error::local(
            burrow_transport::ErrorKind::Io,
            "fuzz",
        )),
        6 => C::Cancel,
        7 => C::Tunnel(burrow_http_core::TunnelRequest::connect(
            "fuzz:443".parse().ok()?,
        )),
        _ => C::Tunnel(burrow_http_core::TunnelRequest::extended(
            "connect-udp",
            "fuzz:443".parse().ok()?,
            "/.well-known/masque/udp/h/53/",
        )),
    })
}

/// A server command from fuzz bytes (see [`client_command`]).
pub fn server_command(data: &mut &[u8]) -> Option<crate::proto::server::ServerCommand> {
    use crate::proto::server::ServerCommand as S;
    let (&op, rest) = data.split_first()?;
    *data = rest;
    Some(match op % 10 {
        0 => S::Respond {
            head: ResponseHead::new(200),
            length: Some(1),
        },
        1 => S::Respond {
            head: ResponseHead::new(204),
            length: None,
        },
        2 => S::Respond {
            head: ResponseHead::new(100),
            length: None,
        },
        3 => S::Data(Bytes::from_static(b"x")),
        4 => S::End(None),
        5 => S::NoAnswer,
        6 => S::AcceptTunnel {
            status: http::StatusCode::OK,
            headers: http::HeaderMap::new(),
        },
        7 => S::AcceptTunnel {
            status: http::StatusCode::SWITCHING_PROTOCOLS,
            headers: http::HeaderMap::new(),
        },
        8 => S::StopBody,
        _ => S::Shutdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use burrow_test_support::rng;

    const SEEDS: &[&[u8]] = &[
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nx: y\r\n\r\n",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        b"HTTP/1.1 200 Connection established\r\n\r\ntunnel bytes",
        b"HTTP/1.0 200 OK\r\n\r\nclose delimited",
    ];

    #[test]
    fn splits_never_change_the_outcome() {
        let mut next = rng(0x5eed);
        for round in 0..4000 {
            let seed = SEEDS[round % SEEDS.len()];
            let mut input = vec![next(), next() % 8];
            for _ in 0..16 {
                input.push(next());
            }
            let mut wire = seed.to_vec();
            // Mutate a few bytes in most rounds.
            if round % 3 != 0 {
                for _ in 0..(next() % 4) {
                    let i = next() as usize % wire.len();
                    wire[i] = next();
                }
            }
            input.extend_from_slice(&wire);
            response_parser(&input);
        }
    }

    #[test]
    fn split_of_valid_response_is_parsed_fully() {
        // Cut the chunked seed everywhere: the events must be the same as whole.
        let wire = SEEDS[1];
        for cut in 0..wire.len() {
            let mut input = vec![0u8, 1];
            input.extend_from_slice(&(cut as u16).to_be_bytes());
            input.extend_from_slice(wire);
            response_parser(&input);
        }
    }

    #[test]
    fn random_operation_orders_do_not_panic() {
        let mut next = rng(42);
        for _ in 0..2000 {
            let ops: Vec<u8> = (0..32).map(|_| next()).collect();
            operations(&ops);
        }
    }
}
