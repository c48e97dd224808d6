//! QPACK encoding and decoding of a typical request and response field section.
#![allow(missing_docs, clippy::unwrap_used)]

use burrow_http3::proto::qpack;
use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion};

fn fields() -> Vec<(&'static [u8], &'static [u8])> {
    vec![
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"www.example.com:8443"),
        (b":path", b"/assets/app.js?v=1234567890"),
        (b"user-agent", b"burrow/0.1.0"),
        (b"accept", b"*/*"),
        (b"accept-encoding", b"gzip, deflate, br"),
        (
            b"cookie",
            b"session=0123456789abcdef0123456789abcdef; theme=dark",
        ),
        (b"x-request-id", b"4f2c9b1e-8c3d-4a5e-9f6a-7b8c9d0e1f2a"),
    ]
}

fn qpack_bench(c: &mut Criterion) {
    let f = fields();
    let mut wire = Vec::new();
    qpack::encode(&f, &mut wire);
    let wire = Bytes::from(wire);
    c.bench_function("qpack/encode_request_9_fields", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(256);
            qpack::encode(&f, &mut out);
            out
        })
    });
    c.bench_function("qpack/decode_request_9_fields", |b| {
        b.iter(|| qpack::decode(wire.clone()).unwrap())
    });
}

criterion_group!(benches, qpack_bench);
criterion_main!(benches);
