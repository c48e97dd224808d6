//! QPACK (RFC 9204) with the static table and Huffman coding, and no dynamic table: burrow
//! announces `SETTINGS_QPACK_MAX_TABLE_CAPACITY = 0`, so a field section referring to a
//! dynamic entry is an error, and burrow's own encoder never refers to one.

mod table;

use bytes::{Buf, Bytes};

use super::error::{Code, H3Error};

pub use table::STATIC;

/// Largest decoded field section accepted (names + values + 32 per field, RFC 9114 §4.2.2).
pub const MAX_FIELD_SECTION_SIZE: u64 = 64 * 1024;
/// Most field lines accepted in one section.
pub const MAX_FIELDS: usize = 256;

/// One field line: name and value bytes.
pub type Field = (Bytes, Bytes);

fn fail(reason: &'static str) -> H3Error {
    // RFC 9204 §6: a decoding failure is a connection error.
    H3Error::connection(Code::QPACK_DECOMPRESSION_FAILED, reason)
}

/// Encodes a prefixed integer (RFC 7541 §5.1) with `flags` in the bits above the prefix.
fn put_int(out: &mut Vec<u8>, flags: u8, prefix: u8, mut v: u64) {
    let max = (1u64 << prefix) - 1;
    if v < max {
        out.push(flags | v as u8);
        return;
    }
    out.push(flags | max as u8);
    v -= max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// Decodes a prefixed integer from `buf`; the first byte's bits above `prefix` are ignored.
fn get_int(buf: &mut Bytes, prefix: u8) -> Result<u64, H3Error> {
    if !buf.has_remaining() {
        return Err(fail("truncated integer"));
    }
    let max = (1u64 << prefix) - 1;
    let mut v = u64::from(buf.get_u8()) & max;
    if v < max {
        return Ok(v);
    }
    let mut shift = 0u32;
    loop {
        if !buf.has_remaining() {
            return Err(fail("truncated integer"));
        }
        let b = buf.get_u8();
        if shift > 56 {
            return Err(fail("integer overflow"));
        }
        v = v
            .checked_add(u64::from(b & 0x7f) << shift)
            .ok_or(fail("integer overflow"))?;
        shift += 7;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
}

/// Encodes a string literal with an H bit at `prefix` (Huffman when shorter).
fn put_str(out: &mut Vec<u8>, flags: u8, prefix: u8, s: &[u8]) {
    let mut huff = Vec::new();
    if httlib_huffman::encode(s, &mut huff).is_ok() && huff.len() < s.len() {
        put_int(out, flags | (1 << prefix), prefix, huff.len() as u64);
        out.extend_from_slice(&huff);
    } else {
        put_int(out, flags, prefix, s.len() as u64);
        out.extend_from_slice(s);
    }
}

fn get_str(buf: &mut Bytes, prefix: u8) -> Result<Bytes, H3Error> {
    let huffman = buf.first().is_some_and(|b| b & (1 << prefix) != 0);
    let len = get_int(buf, prefix)?;
    if len > MAX_FIELD_SECTION_SIZE || len as usize > buf.len() {
        return Err(fail("string longer than the field section"));
    }
    let raw = buf.split_to(len as usize);
    if !huffman {
        return Ok(raw);
    }
    let mut out = Vec::with_capacity(raw.len() * 8 / 5);
    httlib_huffman::decode(&raw, &mut out, httlib_huffman::DecoderSpeed::FourBits)
        .map_err(|_| fail("invalid Huffman string"))?;
    Ok(Bytes::from(out))
}

/// Encodes a field section (names must be lowercase, pseudo-fields first).
pub fn encode(fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) {
    // Required Insert Count 0, Delta Base 0: no dynamic table (RFC 9204 §4.5.1).
    out.extend_from_slice(&[0, 0]);
    for (name, value) in fields {
        match table::find(name, value) {
            // Indexed field line, static (T=1): 1 T index(6).
            Some((i, true)) => put_int(out, 0b1100_0000, 6, i as u64),
            // Literal with static name reference: 01 N T index(4), then the value.
            Some((i, false)) => {
                put_int(out, 0b0101_0000, 4, i as u64);
                put_str(out, 0, 7, value);
            }
            // Literal with literal name: 001 N H len(3) name, then the value.
            None => {
                put_str(out, 0b0010_0000, 3, name);
                put_str(out, 0, 7, value);
            }
        }
    }
}

/// Decodes a field section. Dynamic-table references, oversized sections and malformed
/// representations are `QPACK_DECOMPRESSION_FAILED` (or `H3_EXCESSIVE_LOAD` for size).
pub fn decode(mut buf: Bytes) -> Result<Vec<Field>, H3Error> {
    let ric = get_int(&mut buf, 8)?;
    if ric != 0 {
        return Err(fail("dynamic table reference, but our table capacity is 0"));
    }
    let _delta_base = get_int(&mut buf, 7)?;
    let mut fields = Vec::new();
    let mut size = 0u64;
    while buf.has_remaining() {
        let b = buf[0];
        let field = if b & 0x80 != 0 {
            if b & 0x40 == 0 {
                return Err(fail("dynamic table reference"));
            }
            let i = get_int(&mut buf, 6)? as usize;
            let (n, v) = STATIC.get(i).ok_or(fail("static index out of range"))?;
            (
                Bytes::from_static(n.as_bytes()),
                Bytes::from_static(v.as_bytes()),
            )
        } else if b & 0x40 != 0 {
            if b & 0x10 == 0 {
                return Err(fail("dynamic table name reference"));
            }
            let i = get_int(&mut buf, 4)? as usize;
            let (n, _) = STATIC.get(i).ok_or(fail("static index out of range"))?;
            (Bytes::from_static(n.as_bytes()), get_str(&mut buf, 7)?)
        } else if b & 0x20 != 0 {
            let name = get_str(&mut buf, 3)?;
            (name, get_str(&mut buf, 7)?)
        } else {
            // Post-base forms (0001xxxx, 0000xxxx) only refer to the dynamic table.
            return Err(fail("post-base dynamic table reference"));
        };
        size += field.0.len() as u64 + field.1.len() as u64 + 32;
        if size > MAX_FIELD_SECTION_SIZE || fields.len() >= MAX_FIELDS {
            return Err(H3Error::new(
                Code::EXCESSIVE_LOAD,
                "field section too large",
            ));
        }
        fields.push(field);
    }
    Ok(fields)
}

/// Checks bytes received on the peer's QPACK encoder stream: with our capacity at 0 the only
/// valid instruction is Set Dynamic Table Capacity 0 (RFC 9204 §4.3.1).
pub fn check_encoder_stream(mut buf: Bytes) -> Result<(), H3Error> {
    while buf.has_remaining() {
        if buf[0] & 0xe0 != 0x20 {
            return Err(H3Error::connection(
                Code::QPACK_ENCODER_STREAM_ERROR,
                "insert into a dynamic table of capacity 0",
            ));
        }
        let cap = get_int(&mut buf, 5).map_err(|_| {
            H3Error::connection(Code::QPACK_ENCODER_STREAM_ERROR, "truncated instruction")
        })?;
        if cap != 0 {
            return Err(H3Error::connection(
                Code::QPACK_ENCODER_STREAM_ERROR,
                "dynamic table capacity above the 0 we allowed",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
/// Encodes a prefixed integer with `flags` above a `prefix`-bit field (for tests).
pub fn encode_int_for_test(flags: u8, prefix: u8, v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    put_int(&mut out, flags, prefix, v);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(wire: &[u8]) -> Result<Vec<(String, String)>, H3Error> {
        Ok(decode(Bytes::copy_from_slice(wire))?
            .into_iter()
            .map(|(n, v)| {
                (
                    String::from_utf8(n.to_vec()).unwrap(),
                    String::from_utf8(v.to_vec()).unwrap(),
                )
            })
            .collect())
    }

    #[test]
    fn prefix_integers_rfc7541_examples() {
        // RFC 7541 §C.1: 10 with 5-bit prefix, 1337 with 5-bit prefix, 42 with 8-bit prefix.
        assert_eq!(encode_int_for_test(0, 5, 10), [0x0a]);
        assert_eq!(encode_int_for_test(0, 5, 1337), [0x1f, 0x9a, 0x0a]);
        assert_eq!(encode_int_for_test(0, 8, 42), [0x2a]);
        let mut b = Bytes::from_static(&[0x1f, 0x9a, 0x0a]);
        assert_eq!(get_int(&mut b, 5).unwrap(), 1337);
    }

    #[test]
    fn rfc9204_appendix_b1_literal_with_name_reference() {
        // RFC 9204 §B.1: ":path: /index.html" as a literal with static name reference.
        let wire = [
            0x00, 0x00, 0x51, 0x0b, 0x2f, 0x69, 0x6e, 0x64, 0x65, 0x78, 0x2e, 0x68, 0x74, 0x6d,
            0x6c,
        ];
        assert_eq!(
            dec(&wire).unwrap(),
            vec![(":path".into(), "/index.html".into())]
        );
    }

    #[test]
    fn round_trip_indexed_named_literal_and_huffman() {
        let fields: Vec<(&[u8], &[u8])> = vec![
            (b":method", b"GET"),
            (b":scheme", b"https"),
            (b":authority", b"www.example.com"),
            (b":path", b"/sample/path"),
            (b"x-custom", b"a value that huffman codes shorter"),
            (b"accept", b"*/*"),
        ];
        let mut wire = Vec::new();
        encode(&fields, &mut wire);
        // :method GET is static index 17: one byte 0xd1.
        assert_eq!(wire[2], 0xc0 | 17);
        let got = decode(Bytes::from(wire)).unwrap();
        let want: Vec<Field> = fields
            .iter()
            .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn dynamic_references_are_errors() {
        assert_eq!(
            dec(&[0x01, 0x00]).unwrap_err().code,
            Code::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            dec(&[0x00, 0x00, 0x80]).unwrap_err().code,
            Code::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            dec(&[0x00, 0x00, 0x10]).unwrap_err().code,
            Code::QPACK_DECOMPRESSION_FAILED
        );
        assert_eq!(
            dec(&[0x00, 0x00, 0x41, 0x00]).unwrap_err().code,
            Code::QPACK_DECOMPRESSION_FAILED
        );
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for wire in [
            &[][..],
            &[0x00],
            &[0x00, 0x00, 0xff],
            &[0x00, 0x00, 0x5f, 0xff, 0xff],
            &[0x00, 0x00, 0x27, 0x05, b'a'],
        ] {
            assert!(dec(wire).is_err(), "{wire:?}");
        }
        // Static index out of range: 99.
        let mut w = vec![0, 0];
        w.extend(encode_int_for_test(0xc0, 6, 99));
        assert!(dec(&w).is_err());
    }

    #[test]
    fn field_section_size_limit() {
        let big = vec![b'a'; MAX_FIELD_SECTION_SIZE as usize];
        let fields: Vec<(&[u8], &[u8])> = vec![(b"x-big", &big)];
        let mut wire = Vec::new();
        encode(&fields, &mut wire);
        assert_eq!(
            decode(Bytes::from(wire)).unwrap_err().code,
            Code::EXCESSIVE_LOAD
        );
    }

    #[test]
    fn encoder_stream_only_capacity_zero() {
        assert!(check_encoder_stream(Bytes::from_static(&[0x20])).is_ok());
        assert_eq!(
            check_encoder_stream(Bytes::from_static(&[0x3f, 0x01]))
                .unwrap_err()
                .code,
            Code::QPACK_ENCODER_STREAM_ERROR
        );
        assert_eq!(
            check_encoder_stream(Bytes::from_static(&[0xc0, 0x00]))
                .unwrap_err()
                .code,
            Code::QPACK_ENCODER_STREAM_ERROR
        );
    }
}
