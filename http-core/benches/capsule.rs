//! DATAGRAM capsule encoding and decoding (the CONNECT-UDP path over HTTP/2 and HTTP/1.1).
#![allow(missing_docs, clippy::unwrap_used)]

use burrow_http_core::capsule::{encode_udp_datagram, CapsuleDecoder};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn capsules(c: &mut Criterion) {
    let payload = vec![0xabu8; 1350];
    let mut wire = Vec::new();
    for _ in 0..64 {
        encode_udp_datagram(&payload, &mut wire);
    }
    let mut g = c.benchmark_group("capsule");
    g.throughput(Throughput::Elements(64));
    g.bench_function("encode_64_datagrams_1350b", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(wire.len());
            for _ in 0..64 {
                encode_udp_datagram(&payload, &mut out);
            }
            out
        })
    });
    g.bench_function("decode_64_datagrams_1350b", |b| {
        b.iter(|| {
            let mut d = CapsuleDecoder::default();
            d.push(&wire);
            let mut n = 0;
            while let Some(_c) = d.poll_capsule().unwrap() {
                n += 1;
            }
            assert_eq!(n, 64);
        })
    });
    g.finish();
}

criterion_group!(benches, capsules);
criterion_main!(benches);
