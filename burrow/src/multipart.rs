//! `multipart/form-data` bodies (feature `multipart`; RFC 7578), built in memory so they
//! have a length and can be sent again after a 307 or 308.

use bytes::{BufMut, Bytes, BytesMut};
use http::HeaderValue;

use burrow_transport::{Error, Result};

/// A form: named text fields and parts.
#[derive(Debug)]
pub struct Form {
    boundary: String,
    parts: Vec<(String, Part)>,
}

/// One part of a [`Form`]: bytes with an optional file name and media type.
#[derive(Debug, Clone)]
pub struct Part {
    data: Bytes,
    file_name: Option<String>,
    mime: Option<HeaderValue>,
}

impl Part {
    /// A part holding `data`.
    pub fn bytes(data: impl Into<Bytes>) -> Part {
        Part {
            data: data.into(),
            file_name: None,
            mime: None,
        }
    }

    /// A text part.
    pub fn text(text: impl Into<String>) -> Part {
        Part::bytes(text.into())
    }

    /// The file name sent in `Content-Disposition`.
    pub fn file_name(mut self, name: impl Into<String>) -> Part {
        self.file_name = Some(name.into());
        self
    }

    /// The part's `Content-Type`, e.g. `image/png`.
    pub fn mime_str(mut self, mime: &str) -> Result<Part> {
        let ok = mime.contains('/') && !mime.contains(['\r', '\n']);
        self.mime = Some(
            HeaderValue::from_str(mime)
                .ok()
                .filter(|_| ok)
                .ok_or_else(|| Error::invalid_input("not a media type"))?,
        );
        Ok(self)
    }
}

/// Names and file names go in quoted strings: `"`, CR and LF are percent-encoded, as the
/// HTML standard's form encoding does.
fn quoted(s: &str) -> String {
    s.replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

impl Default for Form {
    fn default() -> Self {
        Form::new()
    }
}

impl Form {
    /// An empty form with a random boundary.
    pub fn new() -> Form {
        let mut b = [0u8; 12];
        // Uniqueness only: a boundary that happens to occur in a part is checked in `body`.
        let _ = burrow_transport::tls::provider().secure_random.fill(&mut b);
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        Form {
            boundary: format!("burrow-{hex}"),
            parts: Vec::new(),
        }
    }

    /// Adds a text field.
    pub fn text(self, name: impl Into<String>, value: impl Into<String>) -> Form {
        self.part(name, Part::text(value))
    }

    /// Adds a part.
    pub fn part(mut self, name: impl Into<String>, part: Part) -> Form {
        self.parts.push((name.into(), part));
        self
    }

    /// The boundary between parts.
    pub fn boundary(&self) -> &str {
        &self.boundary
    }

    /// The `Content-Type` of the body.
    pub(crate) fn content_type(&self) -> HeaderValue {
        HeaderValue::from_str(&format!("multipart/form-data; boundary={}", self.boundary))
            .unwrap_or_else(|_| HeaderValue::from_static("multipart/form-data"))
    }

    /// The encoded body; fails if a part contains the boundary (practically never: it is
    /// 96 random bits).
    pub(crate) fn body(&self) -> Result<Bytes> {
        let delimiter = format!("--{}", self.boundary);
        let mut out = BytesMut::new();
        for (name, part) in &self.parts {
            if part
                .data
                .windows(delimiter.len())
                .any(|w| w == delimiter.as_bytes())
            {
                return Err(Error::invalid_input("a part contains the boundary"));
            }
            out.put_slice(
                format!(
                    "{delimiter}\r\nContent-Disposition: form-data; name=\"{}\"",
                    quoted(name)
                )
                .as_bytes(),
            );
            if let Some(f) = &part.file_name {
                out.put_slice(format!("; filename=\"{}\"", quoted(f)).as_bytes());
            }
            out.put_slice(b"\r\n");
            if let Some(m) = &part.mime {
                out.put_slice(b"Content-Type: ");
                out.put_slice(m.as_bytes());
                out.put_slice(b"\r\n");
            }
            out.put_slice(b"\r\n");
            out.put_slice(&part.data);
            out.put_slice(b"\r\n");
        }
        out.put_slice(format!("{delimiter}--\r\n").as_bytes());
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_rfc_7578_says() {
        let f = Form::new().text("title", "a \"b\"\r\nc").part(
            "file",
            Part::bytes(&b"\x00\x01"[..])
                .file_name("x.bin")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
        let b = f.boundary().to_owned();
        let body = f.body().unwrap();
        let want = format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\na \"b\"\r\nc\r\n\
             --{b}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.bin\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n\x00\x01\r\n--{b}--\r\n"
        );
        assert_eq!(body, want.as_bytes());
        assert_eq!(
            f.content_type(),
            format!("multipart/form-data; boundary={b}").as_str()
        );
        assert!(Form::new().boundary() != b, "boundaries are random");
        let named = Form::new().text("a\"\n", "v").body().unwrap();
        assert!(String::from_utf8_lossy(&named).contains("name=\"a%22%0A\""));
        assert!(Part::text("x").mime_str("nonsense").is_err());
        let sneaky = Form::new();
        let d = format!("--{}", sneaky.boundary());
        assert!(sneaky.text("x", d).body().is_err());
    }
}
