//! QUIC variable-length integers (RFC 9000 §16), for capsules (RFC 9297) and HTTP/3 (RFC
//! 9114) alike.

use bytes::{Buf, BufMut};

/// Largest value a varint can hold: 2^62 − 1.
pub const MAX: u64 = (1 << 62) - 1;

/// Bytes needed to encode `v`.
pub fn size(v: u64) -> usize {
    match v {
        0..=63 => 1,
        64..=16_383 => 2,
        16_384..=1_073_741_823 => 4,
        _ => 8,
    }
}

/// Appends `v` (which must be at most [`MAX`]; larger values are clamped).
pub fn encode(v: u64, out: &mut impl BufMut) {
    let v = v.min(MAX);
    match size(v) {
        1 => out.put_u8(v as u8),
        2 => out.put_u16(0x4000 | v as u16),
        4 => out.put_u32(0x8000_0000 | v as u32),
        _ => out.put_u64(0xc000_0000_0000_0000 | v),
    }
}

/// Decodes a varint from the front of `buf` without consuming: `(value, length)`, or `None`
/// if more bytes are needed.
pub fn peek(buf: &[u8]) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = 1usize << (first >> 6);
    if buf.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

/// Decodes and consumes a varint from `buf`, or `None` if it is incomplete.
pub fn decode(buf: &mut impl Buf) -> Option<u64> {
    let (v, n) = peek(buf.chunk())?;
    buf.advance(n);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc9000_appendix_a_examples() {
        // RFC 9000 §A.1 sample encodings.
        for (hex, v) in [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c][..],
                151_288_809_941_952_652u64,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d][..], 494_878_333),
            (&[0x7b, 0xbd][..], 15_293),
            (&[0x25][..], 37),
            (&[0x40, 0x25][..], 37),
        ] {
            assert_eq!(peek(hex), Some((v, hex.len())));
        }
        let mut out = Vec::new();
        encode(15_293, &mut out);
        assert_eq!(out, [0x7b, 0xbd]);
    }

    #[test]
    fn round_trips_boundaries_and_needs_more() {
        for v in [0, 63, 64, 16_383, 16_384, 1_073_741_823, 1_073_741_824, MAX] {
            let mut out = Vec::new();
            encode(v, &mut out);
            assert_eq!(out.len(), size(v));
            assert_eq!(peek(&out), Some((v, out.len())));
            assert_eq!(peek(&out[..out.len() - 1]), None);
        }
    }
}
