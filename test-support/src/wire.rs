//! Reading HTTP/1.1 requests off a stream in test servers that look at raw bytes (the
//! recording origin, the DoH server): the head as text and a `Content-Length` body.

use tokio::io::{AsyncRead, AsyncReadExt};

/// The largest request a test server reads (head and body).
pub const MAX_TEST_REQUEST: usize = 64 << 20;

/// The next request on `s` (bytes past it stay in `buf` for the next call): its head
/// without the blank line, and its body. `None` at the end of the stream, on an error, or
/// past [`MAX_TEST_REQUEST`].
pub async fn read_request<S: AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut Vec<u8>,
) -> Option<(String, Vec<u8>)> {
    let mut tmp = vec![0u8; 64 * 1024];
    let end = loop {
        if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break e;
        }
        fill(s, buf, &mut tmp).await?;
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end + 4);
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < len {
        fill(s, buf, &mut tmp).await?;
    }
    Some((head, buf.drain(..len).collect()))
}

async fn fill<S: AsyncRead + Unpin>(s: &mut S, buf: &mut Vec<u8>, tmp: &mut [u8]) -> Option<()> {
    match s.read(tmp).await {
        Ok(0) | Err(_) => None,
        Ok(_) if buf.len() > MAX_TEST_REQUEST => None,
        Ok(n) => {
            buf.extend_from_slice(&tmp[..n]);
            Some(())
        }
    }
}
