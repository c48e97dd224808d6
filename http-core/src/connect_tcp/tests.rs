use super::*;
use crate::capsule::{encode, CapsuleType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CP: Codepoints = Codepoints::DRAFT_12;

fn data(payload: &[u8], out: &mut Vec<u8>) {
    encode(CP.data, payload, out);
}

fn fin(payload: &[u8], out: &mut Vec<u8>) {
    encode(CP.final_data, payload, out);
}

/// Everything the decoder gives for `wire` fed in pieces of `split` bytes, and how the
/// stream's end was judged.
fn decode(wire: &[u8], split: usize) -> (Vec<u8>, bool, Result<(), TcpCapsuleError>) {
    let mut d = TcpCapsuleDecoder::new(CP);
    let (mut got, mut fin_seen) = (Vec::new(), false);
    for piece in wire.chunks(split.max(1)) {
        d.read_buffer().extend_from_slice(piece);
        loop {
            match d.poll() {
                Ok(Some(TcpEvent::Data(b))) => got.extend_from_slice(&b),
                Ok(Some(TcpEvent::Fin)) => fin_seen = true,
                Ok(None) => break,
                Err(e) => return (got, fin_seen, Err(e)),
            }
        }
    }
    let end = d.finish();
    (got, fin_seen, end)
}

#[test]
fn payload_across_any_split_with_unknown_capsules_skipped() {
    let mut wire = Vec::new();
    data(b"hello ", &mut wire);
    encode(CapsuleType(0x17), b"an unknown capsule", &mut wire);
    data(b"", &mut wire);
    data(&[7u8; 70_000], &mut wire);
    encode(CapsuleType::DATAGRAM, b"\0not for a TCP tunnel", &mut wire);
    fin(b"world", &mut wire);
    let mut want = b"hello ".to_vec();
    want.extend_from_slice(&[7u8; 70_000]);
    want.extend_from_slice(b"world");
    for split in [1, 2, 3, 5, 17, 1000, wire.len()] {
        let (got, fin_seen, end) = decode(&wire, split);
        assert_eq!(got, want, "split {split}");
        assert!(fin_seen, "split {split}");
        assert_eq!(end, Ok(()), "split {split}");
    }
}

#[test]
fn an_end_without_final_data_is_a_reset() {
    let mut wire = Vec::new();
    data(b"partial", &mut wire);
    let (got, fin_seen, end) = decode(&wire, 4);
    assert_eq!((got.as_slice(), fin_seen), (&b"partial"[..], false));
    assert_eq!(end, Err(TcpCapsuleError::Reset));
    // Inside a capsule, and inside a header.
    assert_eq!(
        decode(&wire[..wire.len() - 2], 3).2,
        Err(TcpCapsuleError::Reset)
    );
    assert_eq!(decode(&wire[..1], 1).2, Err(TcpCapsuleError::Reset));
    // Nothing at all.
    assert_eq!(decode(&[], 1).2, Err(TcpCapsuleError::Reset));
}

#[test]
fn no_data_may_follow_final_data() {
    for split in [1, 3, 100] {
        let mut wire = Vec::new();
        fin(b"last", &mut wire);
        data(b"more", &mut wire);
        let (got, fin_seen, end) = decode(&wire, split);
        assert_eq!((got.as_slice(), fin_seen), (&b"last"[..], true));
        assert_eq!(end, Err(TcpCapsuleError::AfterFinal), "split {split}");
    }
    // Other capsules may (RFC 9297 §3.2: skipped).
    let mut wire = Vec::new();
    fin(b"last", &mut wire);
    encode(CapsuleType(0x29), b"later", &mut wire);
    assert_eq!(decode(&wire, 2), (b"last".to_vec(), true, Ok(())));
    // An empty FINAL_DATA is a plain FIN.
    let mut wire = Vec::new();
    fin(b"", &mut wire);
    assert_eq!(decode(&wire, 1), (Vec::new(), true, Ok(())));
}

#[test]
fn other_codepoints_are_just_unknown_capsules() {
    let older = Codepoints::DRAFT_08;
    let mut wire = Vec::new();
    encode(older.data, b"x", &mut wire);
    encode(older.final_data, b"", &mut wire);
    assert_eq!(
        decode(&wire, 1),
        (Vec::new(), false, Err(TcpCapsuleError::Reset))
    );
    let mut d = TcpCapsuleDecoder::new(older);
    d.read_buffer().extend_from_slice(&wire);
    assert_eq!(d.poll(), Ok(Some(TcpEvent::Data(Bytes::from_static(b"x")))));
    assert_eq!(d.poll(), Ok(Some(TcpEvent::Fin)));
}

#[test]
fn direct_room_is_offered_only_inside_a_payload_with_nothing_buffered() {
    let mut d = TcpCapsuleDecoder::new(CP);
    assert_eq!(d.direct_room(), None);
    let mut head = Vec::new();
    encode_data_header(CP, 10, false, &mut head);
    d.read_buffer().extend_from_slice(&head);
    assert_eq!(d.poll(), Ok(None));
    assert_eq!(d.direct_room(), Some(10));
    d.direct(4);
    assert_eq!(d.direct_room(), Some(6));
    d.direct(6);
    assert_eq!(d.direct_room(), None);
    let mut end = Vec::new();
    encode_data_header(CP, 0, true, &mut end);
    d.read_buffer().extend_from_slice(&end);
    assert_eq!(d.poll(), Ok(Some(TcpEvent::Fin)));
    assert_eq!(d.finish(), Ok(()));
}

#[tokio::test]
async fn stream_writes_capsules_and_a_final_data_on_shutdown() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut s = CapsuleStream::new(a, CP, CloseInner::WhenBothEnded);
    s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let big = vec![9u8; MAX_DATA_CAPSULE + 5];
    s.write_all(&big).await.unwrap();
    s.shutdown().await.unwrap();
    assert!(s.write(b"x").await.is_err(), "a write after FINAL_DATA");
    // The stream below ends only once the peer's direction has ended too.
    let mut theirs = Vec::new();
    fin(b"", &mut theirs);
    b.write_all(&theirs).await.unwrap();
    // The peer ends the stream too (END_STREAM after its FINAL_DATA): the end reads at once.
    b.shutdown().await.unwrap();
    let t0 = std::time::Instant::now();
    assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0);
    assert!(t0.elapsed() < stream::FIN_LINGER / 2);
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).await.unwrap();
    let mut want = Vec::new();
    data(b"GET / HTTP/1.1\r\n\r\n", &mut want);
    data(&big[..MAX_DATA_CAPSULE], &mut want);
    data(&big[..5], &mut want);
    fin(b"", &mut want);
    assert_eq!(wire, want);
}

#[tokio::test]
async fn stream_reads_payload_then_end_or_reset() {
    let (a, mut b) = tokio::io::duplex(1 << 20);
    let mut s = CapsuleStream::new(a, CP, CloseInner::OnDrop);
    let mut wire = Vec::new();
    data(b"abc", &mut wire);
    encode(CapsuleType(0x4242), b"skip me", &mut wire);
    data(&[1u8; 100_000], &mut wire);
    fin(b"z", &mut wire);
    b.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got.len(), 3 + 100_000 + 1);
    assert_eq!((&got[..3], got[got.len() - 1]), (&b"abc"[..], b'z'));
    assert!(s.peer_finished());
    drop(b);

    // Without FINAL_DATA the end is a reset, after the payload that came.
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let mut s = CapsuleStream::new(a, CP, CloseInner::OnDrop);
    let mut wire = Vec::new();
    data(b"before the reset", &mut wire);
    b.write_all(&wire).await.unwrap();
    drop(b);
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).await.unwrap();
    assert_eq!(&buf[..n], b"before the reset");
    let e = s.read(&mut buf).await.unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset);
    assert!(e.to_string().contains("FINAL_DATA"), "{e}");
}

#[tokio::test]
async fn on_drop_shutdown_leaves_the_connection_open() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let mut s = CapsuleStream::new(a, CP, CloseInner::OnDrop);
    s.shutdown().await.unwrap();
    let mut first = [0u8; 64];
    let n = b.read(&mut first).await.unwrap();
    let mut want = Vec::new();
    fin(b"", &mut want);
    assert_eq!(&first[..n], &want[..]);
    // The connection is still open: our side can still read the peer's bytes.
    let mut wire = Vec::new();
    fin(b"bye", &mut wire);
    b.write_all(&wire).await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"bye");
}

#[test]
fn codepoints_parse() {
    assert_eq!(Codepoints::parse("draft-12"), Some(Codepoints::DRAFT_12));
    assert_eq!(Codepoints::parse("draft-08"), Some(Codepoints::DRAFT_08));
    assert_eq!(
        Codepoints::parse("0x2028d7f2, 0x2028d7f3"),
        Some(Codepoints::DRAFT_12)
    );
    assert_eq!(
        Codepoints::parse("4,5"),
        Some(Codepoints {
            data: CapsuleType(4),
            final_data: CapsuleType(5)
        })
    );
    for bad in [
        "",
        "4",
        "4,4",
        "x,5",
        "0x,1",
        "4611686018427387904,1",
        "draft-99",
    ] {
        assert_eq!(Codepoints::parse(bad), None, "{bad}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_peer_that_never_ends_the_stream_is_let_go_after_fin_linger() {
    let (a, mut b) = tokio::io::duplex(1 << 16);
    let mut s = CapsuleStream::new(a, CP, CloseInner::WhenBothEnded);
    s.shutdown().await.unwrap();
    let mut theirs = Vec::new();
    fin(b"", &mut theirs);
    b.write_all(&theirs).await.unwrap();
    // Both directions have ended; the peer keeps its side of the stream open.
    let t0 = tokio::time::Instant::now();
    assert_eq!(s.read(&mut [0u8; 8]).await.unwrap(), 0);
    assert_eq!(t0.elapsed(), stream::FIN_LINGER);
    // Our side of the stream was ended meanwhile: the peer reads FINAL_DATA, then the end.
    let mut wire = Vec::new();
    b.read_to_end(&mut wire).await.unwrap();
    let mut want = Vec::new();
    fin(b"", &mut want);
    assert_eq!(wire, want);
}
