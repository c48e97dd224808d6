//! Turning command line options into a request.

use std::path::Path;

use burrow_http_core::Body;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method};
use tokio::io::AsyncReadExt;

use super::exit::{self, Exit};
use super::Args;

/// Parses the URL the way curl does: no scheme means `http://`.
pub fn parse_url(url: &str) -> Result<http::Uri, Exit> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: http::Uri = full
        .parse()
        .map_err(|e| Exit::new(exit::URL_MALFORMAT, format!("URL rejected: {e}")))?;
    match uri.scheme_str() {
        Some("http") | Some("https") => {}
        Some(other) => {
            return Err(Exit::new(
                exit::UNSUPPORTED_PROTOCOL,
                format!("Protocol \"{other}\" not supported"),
            ))
        }
        None => return Err(Exit::new(exit::URL_MALFORMAT, "URL has no scheme")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Exit::new(exit::URL_MALFORMAT, "URL has no host"));
    }
    Ok(uri)
}

/// The method: `-X`, else HEAD with `-I`, POST with data, GET.
pub fn method(args: &Args) -> Result<Method, Exit> {
    if let Some(m) = &args.method {
        return Method::from_bytes(m.as_bytes())
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("invalid method {m:?}")));
    }
    Ok(if args.head {
        Method::HEAD
    } else if !args.data.is_empty() || args.data_binary.is_some() {
        Method::POST
    } else {
        Method::GET
    })
}

/// Headers: burrow's defaults, then `-H` lines (`Name:` with nothing removes one).
pub fn headers(args: &Args) -> Result<HeaderMap, Exit> {
    let mut h = HeaderMap::new();
    h.insert(
        USER_AGENT,
        HeaderValue::from_static(concat!("burrow/", env!("CARGO_PKG_VERSION"))),
    );
    h.insert(http::header::ACCEPT, HeaderValue::from_static("*/*"));
    if !args.data.is_empty() {
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    let mut seen: Vec<HeaderName> = Vec::new();
    for line in &args.headers {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| Exit::new(exit::FAILED_INIT, format!("bad header {line:?}")))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad header name in {line:?}")))?;
        // The first user header of a name replaces burrow's default of that name.
        if !seen.contains(&name) {
            h.remove(&name);
            seen.push(name.clone());
        }
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad header value in {line:?}")))?;
        h.append(name, value);
    }
    Ok(h)
}

/// The request body from `-d` and `--data-binary`.
pub async fn body(args: &Args) -> Result<Body, Exit> {
    if let Some(spec) = &args.data_binary {
        return match spec.strip_prefix('@') {
            Some("-") => {
                let mut buf = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| Exit::new(exit::READ_ERROR, format!("reading stdin: {e}")))?;
                Ok(Body::from(buf))
            }
            Some(path) => stream_file(Path::new(path)).await,
            None => Ok(Body::from(spec.clone())),
        };
    }
    if args.data.is_empty() {
        return Ok(Body::empty());
    }
    let mut parts = Vec::new();
    for d in &args.data {
        match d.strip_prefix('@') {
            Some(path) => {
                let raw = tokio::fs::read(path)
                    .await
                    .map_err(|e| Exit::new(exit::READ_ERROR, format!("reading {path}: {e}")))?;
                // curl -d @file strips CR and LF.
                parts.push(
                    raw.into_iter()
                        .filter(|b| *b != b'\r' && *b != b'\n')
                        .collect(),
                );
            }
            None => parts.push(d.as_bytes().to_vec()),
        }
    }
    Ok(Body::from(parts.join(&b'&')))
}

/// A file as a streamed body of known length (constant memory).
async fn stream_file(path: &Path) -> Result<Body, Exit> {
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| Exit::new(exit::READ_ERROR, format!("reading {}: {e}", path.display())))?;
    let len = f
        .metadata()
        .await
        .map_err(|e| Exit::new(exit::READ_ERROR, format!("reading {}: {e}", path.display())))?
        .len();
    let (mut tx, body) = Body::channel_with(Some(len), 4);
    tokio::spawn(async move {
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; (left.min(256 * 1024)) as usize];
            match f.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    tx.abort(burrow_transport::Error::peer(
                        burrow_transport::ErrorKind::Io,
                        "upload file shrank or could not be read",
                    ))
                    .await;
                    return;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    if tx.send_data(Bytes::from(buf)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tx.finish();
    });
    Ok(body)
}
