//! Where bodies and heads go: files named by `-o`, the URL (`-O`) or the server (`-J`),
//! standard output, `-D` files, rate limits and `--trace-ascii`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use burrow::Spelling;
use http::{HeaderMap, StatusCode, Version};

use super::exit::{self, Exit};

/// A response head as curl prints it (`-i`, `-D`): the status line, the fields, a blank
/// line; an HTTP/1.x head as it was spelled (its reason phrase, its names' case), when
/// known; HTTP/2 and HTTP/3 have no reason phrase.
pub fn head_text(
    version: Version,
    status: StatusCode,
    headers: &HeaderMap,
    spelling: Option<&Spelling>,
) -> String {
    let v = version_str(version);
    let mut s = if version >= Version::HTTP_2 {
        format!("{v} {}\r\n", status.as_str())
    } else {
        let reason = match spelling {
            Some(sp) => sp.reason(),
            None => status.canonical_reason().unwrap_or(""),
        };
        match reason {
            "" => format!("{v} {}\r\n", status.as_str()),
            r => format!("{v} {} {r}\r\n", status.as_str()),
        }
    };
    for (k, val) in headers {
        let name = spelling.map_or(k.as_str(), |sp| sp.name(k));
        s.push_str(&format!(
            "{name}: {}\r\n",
            String::from_utf8_lossy(val.as_bytes())
        ));
    }
    s.push_str("\r\n");
    s
}

/// The version as a status line names it.
pub fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// `-O`: the last segment of the URL's path, percent-decoding left as it is (as curl).
pub fn remote_name(uri: &http::Uri) -> Result<String, Exit> {
    let name = uri.path().rsplit('/').next().unwrap_or("");
    if name.is_empty() {
        return Err(Exit::new(
            exit::WRITE_ERROR,
            "Remote file name has no length!",
        ));
    }
    Ok(name.to_string())
}

/// `-J`: the file name a `Content-Disposition` gives, without any directory part; `None`
/// when there is none (or it is unusable).
pub fn disposition_name(headers: &HeaderMap) -> Option<String> {
    let v = headers
        .get(http::header::CONTENT_DISPOSITION)?
        .to_str()
        .ok()?;
    let mut plain = None;
    for param in v.split(';').map(str::trim) {
        let Some((k, val)) = param.split_once('=') else {
            continue;
        };
        let k = k.trim().to_ascii_lowercase();
        if k == "filename" {
            plain = Some(val.trim().trim_matches('"').to_string());
        } else if k == "filename*" {
            // RFC 6266 / 8187: charset'lang'percent-encoded.
            let enc = val.trim().splitn(3, '\'').nth(2)?;
            let decoded = percent_encoding::percent_decode_str(enc)
                .decode_utf8()
                .ok()?;
            plain = Some(decoded.into_owned());
            break;
        }
    }
    let name = plain?;
    let base = name.rsplit(['/', '\\']).next()?.to_string();
    (!base.is_empty() && base != "." && base != "..").then_some(base)
}

/// Opens an output file under `dir`, making its directories with `create_dirs`, appending
/// when `append` (a resumed download); `no_clobber` refuses an existing file (`-J`).
pub fn open(
    name: &str,
    dir: Option<&Path>,
    create_dirs: bool,
    append: bool,
    no_clobber: bool,
) -> Result<(std::fs::File, PathBuf), Exit> {
    let path = match dir {
        Some(d) => d.join(name),
        None => PathBuf::from(name),
    };
    let fail = |what: &str, e: std::io::Error| {
        Exit::new(exit::WRITE_ERROR, format!("{what} {}: {e}", path.display()))
    };
    if create_dirs {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| fail("cannot create the directory of", e))?;
        }
    }
    let mut o = std::fs::OpenOptions::new();
    o.write(true);
    if append {
        o.append(true).create(true);
    } else if no_clobber {
        o.create_new(true);
    } else {
        o.create(true).truncate(true);
    }
    let f = o.open(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            Exit::new(
                exit::WRITE_ERROR,
                format!("Refusing to overwrite {}: File exists", path.display()),
            )
        } else {
            fail("cannot open", e)
        }
    })?;
    Ok((f, path))
}

/// The most bytes read from a small input file: `-w @file`, `-b FILE`, `--alt-svc FILE`.
pub const MAX_SMALL_FILE: u64 = 16 << 20;

/// A file (`-`: standard input) as text, at most [`MAX_SMALL_FILE`] bytes; `None` when it
/// cannot be opened (callers that allow a missing file say so).
pub fn read_small(path: &str) -> Result<Option<String>, Exit> {
    read_capped(path, MAX_SMALL_FILE)
}

/// A file (`-`: standard input) as text, at most `max` bytes (more is an error); `None`
/// when it cannot be opened.
pub fn read_capped(path: &str, max: u64) -> Result<Option<String>, Exit> {
    use std::io::Read;
    let fail = |e: std::io::Error| Exit::new(exit::READ_ERROR, format!("reading {path}: {e}"));
    let mut buf = Vec::new();
    let source: Box<dyn Read> = match path {
        "-" => Box::new(std::io::stdin()),
        _ => match std::fs::File::open(path) {
            Ok(f) => Box::new(f),
            Err(_) => return Ok(None),
        },
    };
    source.take(max + 1).read_to_end(&mut buf).map_err(fail)?;
    if buf.len() as u64 > max {
        return Err(Exit::new(
            exit::READ_ERROR,
            format!("{path} is larger than {max} bytes"),
        ));
    }
    Ok(Some(String::from_utf8_lossy(&buf).into_owned()))
}

/// A size with curl's suffixes: `k`/`K` (1024), `m`/`M`, `g`/`G`.
pub fn size(s: &str, what: &str) -> Result<u64, Exit> {
    let bad = || Exit::new(exit::FAILED_INIT, format!("bad {what} {s:?}"));
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1u64 << 10),
        Some('m' | 'M') => (&s[..s.len() - 1], 1 << 20),
        Some('g' | 'G') => (&s[..s.len() - 1], 1 << 30),
        Some('b' | 'B') => (&s[..s.len() - 1], 1),
        _ => (s, 1),
    };
    let n: f64 = num.parse().map_err(|_| bad())?;
    if !(n.is_finite() && n >= 0.0) {
        return Err(bad());
    }
    Ok((n * mult as f64) as u64)
}

/// `--limit-rate`: how long to wait so that `done` bytes since `start` stay under `rate`
/// bytes per second.
pub fn rate_wait(start: Instant, done: u64, rate: u64) -> Option<Duration> {
    if rate == 0 {
        return None;
    }
    let due = Duration::from_secs_f64(done as f64 / rate as f64);
    due.checked_sub(start.elapsed()).filter(|d| !d.is_zero())
}

/// `--trace-ascii`: what was sent and received, in curl's layout. The heads are the ones
/// burrow sent and received, in HTTP/1.1 form for every version (curl does the same);
/// data is the body after decoding.
pub struct Trace {
    out: Box<dyn Write + Send>,
}

impl Trace {
    /// A trace to `path` (`-`: standard error).
    pub fn open(path: &str) -> Result<Trace, Exit> {
        let out: Box<dyn Write + Send> =
            if path == "-" || path == "%" {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::fs::File::create(path).map_err(|e| {
                    Exit::new(exit::WRITE_ERROR, format!("cannot create {path}: {e}"))
                })?)
            };
        Ok(Trace { out })
    }

    /// An `== Info:` line.
    pub fn info(&mut self, text: &str) {
        let _ = writeln!(self.out, "== Info: {text}");
    }

    /// A block: `=> Send header`, `<= Recv data`, …
    pub fn block(&mut self, what: &str, data: &[u8]) {
        let _ = writeln!(
            self.out,
            "{what}, {} bytes (0x{:x})",
            data.len(),
            data.len()
        );
        let mut off = 0;
        for line in data.split_inclusive(|b| *b == b'\n') {
            let shown: String = line
                .iter()
                .filter(|b| **b != b'\r' && **b != b'\n')
                .map(|b| {
                    if (0x20..0x7f).contains(b) {
                        *b as char
                    } else {
                        '.'
                    }
                })
                .collect();
            let _ = writeln!(self.out, "{off:04x}: {shown}");
            off += line.len();
        }
        let _ = self.out.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_from_urls_and_dispositions() {
        let u: http::Uri = "http://h/a/b/file.tar.gz?x=1".parse().unwrap();
        assert_eq!(remote_name(&u).unwrap(), "file.tar.gz");
        let e = remote_name(&"http://h/dir/".parse().unwrap()).unwrap_err();
        assert_eq!(e.code, exit::WRITE_ERROR);
        let mut h = HeaderMap::new();
        h.insert(
            "content-disposition",
            "attachment; filename=\"../../etc/passwd\"".parse().unwrap(),
        );
        assert_eq!(disposition_name(&h).as_deref(), Some("passwd"));
        h.insert(
            "content-disposition",
            "attachment; filename=plain.txt; filename*=UTF-8''na%C3%AFve.txt"
                .parse()
                .unwrap(),
        );
        assert_eq!(disposition_name(&h).as_deref(), Some("naïve.txt"));
        h.insert("content-disposition", "inline".parse().unwrap());
        assert_eq!(disposition_name(&h), None);
    }

    #[test]
    fn small_files_are_read_up_to_their_limit() {
        let p = std::env::temp_dir().join(format!("burrow-cap-{}", std::process::id()));
        std::fs::write(&p, vec![b'x'; 101]).unwrap();
        let path = p.display().to_string();
        assert_eq!(read_capped(&path, 101).unwrap().unwrap().len(), 101);
        let e = read_capped(&path, 100).unwrap_err();
        assert_eq!(e.code, exit::READ_ERROR);
        assert!(e.message.contains("larger than 100"), "{}", e.message);
        assert!(read_capped("/no/such/file", 10).unwrap().is_none());
        let _ = std::fs::remove_file(p);
    }

    #[test]
    fn sizes_take_curl_suffixes() {
        assert_eq!(size("100", "x").unwrap(), 100);
        assert_eq!(size("2k", "x").unwrap(), 2048);
        assert_eq!(size("1.5M", "x").unwrap(), 3 << 19);
        assert_eq!(size("1G", "x").unwrap(), 1 << 30);
        assert!(size("-1", "x").is_err());
        assert!(size("lots", "x").is_err());
    }

    #[test]
    fn rate_limits_wait_for_what_is_ahead() {
        let start = Instant::now();
        let w = rate_wait(start, 1000, 1000).unwrap();
        assert!(
            w <= Duration::from_secs(1) && w > Duration::from_millis(900),
            "{w:?}"
        );
        assert_eq!(rate_wait(start, 0, 1000), None);
        assert_eq!(rate_wait(start, 1000, 0), None);
    }
}
