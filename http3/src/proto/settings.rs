//! SETTINGS (RFC 9114 §7.2.4) with the identifiers burrow uses.

use bytes::{Buf, BufMut, Bytes};

use super::error::{Code, H3Error};
use super::varint;

/// SETTINGS_QPACK_MAX_TABLE_CAPACITY (RFC 9204 §5).
pub const QPACK_MAX_TABLE_CAPACITY: u64 = 0x1;
/// SETTINGS_MAX_FIELD_SECTION_SIZE (RFC 9114 §7.2.4.1).
pub const MAX_FIELD_SECTION_SIZE: u64 = 0x6;
/// SETTINGS_QPACK_BLOCKED_STREAMS (RFC 9204 §5).
pub const QPACK_BLOCKED_STREAMS: u64 = 0x7;
/// SETTINGS_ENABLE_CONNECT_PROTOCOL (RFC 9220 §3).
pub const ENABLE_CONNECT_PROTOCOL: u64 = 0x8;
/// SETTINGS_H3_DATAGRAM (RFC 9297 §2.1.1).
pub const H3_DATAGRAM: u64 = 0x33;

/// The settings one endpoint announced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// QPACK dynamic table capacity (burrow always announces 0).
    pub qpack_max_table_capacity: u64,
    /// Largest field section the sender accepts, if it said.
    pub max_field_section_size: Option<u64>,
    /// QPACK blocked streams (burrow always announces 0).
    pub qpack_blocked_streams: u64,
    /// Extended CONNECT is allowed.
    pub enable_connect_protocol: bool,
    /// HTTP Datagrams are supported.
    pub h3_datagram: bool,
}

impl Settings {
    /// Parses a SETTINGS frame payload. Unknown identifiers are ignored; HTTP/2 ones and
    /// duplicates are errors (RFC 9114 §7.2.4.1).
    pub fn parse(mut payload: Bytes) -> Result<Settings, H3Error> {
        let mut s = Settings::default();
        let mut seen = Vec::new();
        while payload.has_remaining() {
            let (Some(id), Some(value)) =
                (varint::decode(&mut payload), varint::decode(&mut payload))
            else {
                return Err(H3Error::new(Code::FRAME_ERROR, "truncated SETTINGS"));
            };
            if seen.contains(&id) {
                return Err(H3Error::new(Code::SETTINGS_ERROR, "duplicate setting"));
            }
            seen.push(id);
            let bool_value = || match value {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(H3Error::new(
                    Code::SETTINGS_ERROR,
                    "boolean setting not 0 or 1",
                )),
            };
            match id {
                0x2..=0x5 => {
                    return Err(H3Error::new(
                        Code::SETTINGS_ERROR,
                        "HTTP/2 setting in HTTP/3",
                    ))
                }
                QPACK_MAX_TABLE_CAPACITY => s.qpack_max_table_capacity = value,
                MAX_FIELD_SECTION_SIZE => s.max_field_section_size = Some(value),
                QPACK_BLOCKED_STREAMS => s.qpack_blocked_streams = value,
                ENABLE_CONNECT_PROTOCOL => s.enable_connect_protocol = bool_value()?,
                H3_DATAGRAM => s.h3_datagram = bool_value()?,
                _ => {}
            }
        }
        Ok(s)
    }

    /// Encodes as a SETTINGS frame payload (zero-valued QPACK settings are sent explicitly).
    pub fn encode(&self, out: &mut impl BufMut) {
        let mut put = |id: u64, v: u64| {
            varint::encode(id, out);
            varint::encode(v, out);
        };
        put(QPACK_MAX_TABLE_CAPACITY, self.qpack_max_table_capacity);
        put(QPACK_BLOCKED_STREAMS, self.qpack_blocked_streams);
        if let Some(n) = self.max_field_section_size {
            put(MAX_FIELD_SECTION_SIZE, n);
        }
        if self.enable_connect_protocol {
            put(ENABLE_CONNECT_PROTOCOL, 1);
        }
        if self.h3_datagram {
            put(H3_DATAGRAM, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_unknown_ignored() {
        let s = Settings {
            max_field_section_size: Some(65536),
            enable_connect_protocol: true,
            h3_datagram: true,
            ..Settings::default()
        };
        let mut out = Vec::new();
        s.encode(&mut out);
        varint::encode(0x1f * 7 + 0x21, &mut out); // a reserved identifier
        varint::encode(99, &mut out);
        assert_eq!(Settings::parse(Bytes::from(out)).unwrap(), s);
    }

    #[test]
    fn http2_settings_and_duplicates_are_errors() {
        let mut out = Vec::new();
        varint::encode(0x4, &mut out);
        varint::encode(1, &mut out);
        assert_eq!(
            Settings::parse(Bytes::from(out)).unwrap_err().code,
            Code::SETTINGS_ERROR
        );
        let mut out = Vec::new();
        for _ in 0..2 {
            varint::encode(H3_DATAGRAM, &mut out);
            varint::encode(1, &mut out);
        }
        assert_eq!(
            Settings::parse(Bytes::from(out)).unwrap_err().code,
            Code::SETTINGS_ERROR
        );
    }
}
