//! The sans-I/O HTTP/3 core: varints, frames, SETTINGS, QPACK (static table + Huffman),
//! header validation, and the request- and control-stream readers. No sockets, no clocks.

pub mod conn;
pub mod error;
pub mod frame;
pub mod headers;
pub mod qpack;
pub mod settings;
pub mod stream;
#[cfg(test)]
mod tests;
/// QUIC variable-length integers (the one implementation, in `burrow-http-core`).
pub use burrow_http_core::varint;

use bytes::Bytes;

/// Encodes a HEADERS frame carrying `fields`.
pub fn headers_frame(fields: &[(Vec<u8>, Vec<u8>)]) -> Bytes {
    let refs: Vec<(&[u8], &[u8])> = fields.iter().map(|(n, v)| (&n[..], &v[..])).collect();
    let mut block = Vec::with_capacity(64 + fields.len() * 16);
    qpack::encode(&refs, &mut block);
    let mut out = Vec::with_capacity(block.len() + 8);
    frame::encode(frame::FrameType::HEADERS, &block, &mut out);
    Bytes::from(out)
}

/// Encodes a DATA frame header for `len` payload bytes.
pub fn data_header(len: usize) -> Bytes {
    let mut out = Vec::with_capacity(9);
    frame::encode_header(frame::FrameType::DATA, len as u64, &mut out);
    Bytes::from(out)
}
