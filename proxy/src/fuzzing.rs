//! Fuzz entry points for the SOCKS core, shared by `proxy/fuzz` and the property tests.

use crate::server::rules::Credentials;
use crate::socks::server::{Event, SocksError, SocksServer};
use crate::socks::wire::Reply;

fn run(
    auth: bool,
    wire: &[u8],
    cuts: &[usize],
) -> (Vec<u8>, Option<Event>, Option<SocksError>, Vec<u8>) {
    let creds = auth.then(|| Credentials {
        user: "u".into(),
        pass: "p".into(),
    });
    let mut s = SocksServer::new(creds);
    let mut ends: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
    ends.sort_unstable();
    ends.push(wire.len());
    let (mut tx, mut pos, mut event, mut error) = (Vec::new(), 0, None, None);
    for end in ends {
        if end < pos || event.is_some() || error.is_some() {
            continue;
        }
        s.receive(&wire[pos..end]);
        pos = end;
        match s.poll_event() {
            Ok(Some(e)) => {
                event = Some(e);
                s.reply(Reply::SUCCEEDED, None);
            }
            Ok(None) => {}
            Err(e) => error = Some(e),
        }
        while let Some(b) = s.poll_transmit() {
            tx.extend_from_slice(&b);
        }
    }
    // Everything after the request belongs to the tunnel.
    let mut rest = s.take_leftover().to_vec();
    rest.extend_from_slice(&wire[pos..]);
    (tx, event, error, rest)
}

/// Feeds client bytes to the SOCKS server core whole and cut at arbitrary points; the
/// replies, the request, the error and the leftover bytes must agree. Byte 0 selects
/// authentication, byte 1 the number of cuts, then 2 bytes per cut, then the stream.
pub fn socks_server(data: &[u8]) {
    let [sel, k, rest @ ..] = data else { return };
    let k = (*k as usize % 8).min(rest.len() / 2);
    let (cut_bytes, wire) = rest.split_at(k * 2);
    let cuts: Vec<usize> = cut_bytes
        .chunks(2)
        .map(|c| u16::from_be_bytes([c[0], c[1]]) as usize)
        .collect();
    let whole = run(sel % 2 == 1, wire, &[]);
    let split = run(sel % 2 == 1, wire, &cuts);
    assert_eq!(whole, split, "read splits changed the outcome");
}

#[cfg(test)]
mod tests {
    use super::*;

    use burrow_test_support::rng;

    #[test]
    fn random_socks_streams_agree_across_splits() {
        let seeds: [&[u8]; 4] = [
            b"\x05\x01\x00\x05\x01\x00\x03\x0bexample.com\x01\xbbDATA",
            b"\x05\x01\x02\x01\x01u\x01p\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00",
            b"\x04\x01\x00\x50\x00\x00\x00\x01user\x00host.example\x00tail",
            b"\x05\x02\x00\x02\x05\x01\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x35",
        ];
        let mut next = rng(99);
        for round in 0..4000 {
            let mut input = vec![next(), next() % 8];
            for _ in 0..16 {
                input.push(next());
            }
            let mut wire = seeds[round % seeds.len()].to_vec();
            if round % 3 != 0 {
                for _ in 0..(next() % 4) {
                    let i = next() as usize % wire.len();
                    wire[i] = next();
                }
            }
            input.extend(wire);
            socks_server(&input);
        }
    }
}
