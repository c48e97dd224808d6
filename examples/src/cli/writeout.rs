//! `-w/--write-out`: curl's format language over what a transfer measured.
//!
//! `%{name}` is a variable, `%header{name}` a response header, `%%` a percent sign, `\n`,
//! `\r`, `\t` control characters; `%{stderr}` and `%{stdout}` switch where the rest goes;
//! `%{json}` is every variable as one JSON object; `@file` reads the format from a file
//! (`@-` standard input). Times are seconds with six decimals, from the transfer's start.
//! A variable burrow does not know is a warning, as in curl, and writes nothing.

use std::io::Write;
use std::time::Duration;

use http::HeaderMap;

/// What one transfer measured: the values `-w` can show.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// The last response's status (0: none).
    pub http_code: u16,
    /// Its HTTP version.
    pub http_version: Option<http::Version>,
    /// Body bytes received (after decoding, as written).
    pub size_download: u64,
    /// Body bytes sent.
    pub size_upload: u64,
    /// Bytes of every response head received (status lines and headers).
    pub size_header: u64,
    /// Bytes of the request head sent.
    pub size_request: u64,
    /// Name lookup done.
    pub time_namelookup: Duration,
    /// Connection to the nearest hop done.
    pub time_connect: Duration,
    /// TLS with the origin done (zero without TLS).
    pub time_appconnect: Duration,
    /// Ready to send.
    pub time_pretransfer: Duration,
    /// The first response byte arrived.
    pub time_starttransfer: Duration,
    /// Everything done.
    pub time_total: Duration,
    /// The nearest peer's address.
    pub remote: Option<std::net::SocketAddr>,
    /// Our address.
    pub local: Option<std::net::SocketAddr>,
    /// The last URL fetched.
    pub url_effective: String,
    /// The URL as given.
    pub url: String,
    /// Where a redirect that was not followed pointed.
    pub redirect_url: Option<String>,
    /// Redirects followed.
    pub num_redirects: usize,
    /// Connections made.
    pub num_connects: usize,
    /// The last response's headers.
    pub headers: HeaderMap,
    /// The method of the last request.
    pub method: String,
    /// The exit code.
    pub exitcode: i32,
    /// The error, if the transfer failed.
    pub errormsg: Option<String>,
    /// The file the body went to.
    pub filename_effective: Option<String>,
    /// This transfer's position among the URLs (from 0).
    pub urlnum: usize,
}

/// Where write-out text goes.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Stream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

fn secs(d: Duration) -> String {
    format!("{:.6}", d.as_secs_f64())
}

fn version(v: Option<http::Version>) -> &'static str {
    match v {
        Some(http::Version::HTTP_09) => "0.9",
        Some(http::Version::HTTP_10) => "1",
        Some(http::Version::HTTP_11) => "1.1",
        Some(http::Version::HTTP_2) => "2",
        Some(http::Version::HTTP_3) => "3",
        _ => "0",
    }
}

/// A variable's value, and whether JSON shows it as a number.
enum Value {
    Num(String),
    Str(Option<String>),
}

impl Stats {
    fn speed(&self, bytes: u64) -> u64 {
        let t = self.time_total.as_secs_f64();
        if t > 0.0 {
            (bytes as f64 / t) as u64
        } else {
            0
        }
    }

    fn var(&self, name: &str) -> Option<Value> {
        use Value::{Num, Str};
        let content_type = self
            .headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        Some(match name {
            "http_code" | "response_code" => Num(format!("{:03}", self.http_code)),
            "http_version" => Str(Some(version(self.http_version).into())),
            "size_download" => Num(self.size_download.to_string()),
            "size_upload" => Num(self.size_upload.to_string()),
            "size_header" => Num(self.size_header.to_string()),
            "size_request" => Num(self.size_request.to_string()),
            "time_namelookup" => Num(secs(self.time_namelookup)),
            "time_connect" => Num(secs(self.time_connect)),
            "time_appconnect" => Num(secs(self.time_appconnect)),
            "time_pretransfer" => Num(secs(self.time_pretransfer)),
            "time_starttransfer" => Num(secs(self.time_starttransfer)),
            "time_total" => Num(secs(self.time_total)),
            "speed_download" => Num(self.speed(self.size_download).to_string()),
            "speed_upload" => Num(self.speed(self.size_upload).to_string()),
            "remote_ip" => Str(Some(
                self.remote.map(|a| a.ip().to_string()).unwrap_or_default(),
            )),
            "remote_port" => Num(self.remote.map_or(0, |a| a.port()).to_string()),
            "local_ip" => Str(Some(
                self.local.map(|a| a.ip().to_string()).unwrap_or_default(),
            )),
            "local_port" => Num(self.local.map_or(0, |a| a.port()).to_string()),
            "url_effective" => Str(Some(self.url_effective.clone())),
            "url" => Str(Some(self.url.clone())),
            "redirect_url" => Str(self.redirect_url.clone()),
            "num_redirects" => Num(self.num_redirects.to_string()),
            "num_connects" => Num(self.num_connects.to_string()),
            "num_headers" => Num(self.headers.len().to_string()),
            "content_type" => Str(content_type),
            "method" => Str(Some(self.method.clone())),
            "exitcode" => Num(self.exitcode.to_string()),
            "errormsg" => Str(self.errormsg.clone()),
            "filename_effective" => Str(self.filename_effective.clone()),
            "urlnum" => Num(self.urlnum.to_string()),
            "scheme" => Str(Some(
                self.url_effective
                    .split("://")
                    .next()
                    .unwrap_or("")
                    .to_ascii_uppercase(),
            )),
            _ => return None,
        })
    }

    fn text(&self, name: &str) -> Option<String> {
        Some(match self.var(name)? {
            Value::Num(n) => n,
            Value::Str(s) => s.unwrap_or_default(),
        })
    }

    /// Every variable as one JSON object (curl's `%{json}`).
    pub fn json(&self) -> String {
        const NAMES: [&str; 33] = [
            "content_type",
            "errormsg",
            "exitcode",
            "filename_effective",
            "http_code",
            "http_version",
            "local_ip",
            "local_port",
            "method",
            "num_connects",
            "num_headers",
            "num_redirects",
            "redirect_url",
            "remote_ip",
            "remote_port",
            "response_code",
            "scheme",
            "size_download",
            "size_header",
            "size_request",
            "size_upload",
            "speed_download",
            "speed_upload",
            "time_appconnect",
            "time_connect",
            "time_namelookup",
            "time_pretransfer",
            "time_starttransfer",
            "time_total",
            "url",
            "url_effective",
            "urlnum",
            "curl_version",
        ];
        let mut out = String::from("{");
        for (i, n) in NAMES.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let v = match *n {
                "curl_version" => Value::Str(Some(burrow::DEFAULT_USER_AGENT.into())),
                // http_code in JSON is a plain number, as in curl.
                "http_code" | "response_code" => Value::Num(self.http_code.to_string()),
                n => self.var(n).unwrap_or(Value::Str(None)),
            };
            out.push_str(&json_string(n));
            out.push(':');
            match v {
                Value::Num(x) => out.push_str(&x),
                Value::Str(Some(s)) => out.push_str(&json_string(&s)),
                Value::Str(None) => out.push_str("null"),
            }
        }
        out.push('}');
        out
    }

    /// The response headers as one JSON object of arrays (curl's `%{header_json}`).
    pub fn header_json(&self) -> String {
        let mut out = String::from("{");
        for (i, name) in self.headers.keys().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&json_string(name.as_str()));
            out.push_str(":[");
            let vals: Vec<String> = self
                .headers
                .get_all(name)
                .iter()
                .map(|v| json_string(&String::from_utf8_lossy(v.as_bytes())))
                .collect();
            out.push_str(&vals.join(","));
            out.push(']');
        }
        out.push('}');
        out
    }
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders `format` for `stats`: the pieces in order, each with the stream it goes to, and
/// warnings for unknown variables.
pub fn render(format: &str, stats: &Stats) -> (Vec<(Stream, String)>, Vec<String>) {
    let mut out = vec![(Stream::Stdout, String::new())];
    let mut warnings = Vec::new();
    let mut rest = format;
    let push = |out: &mut Vec<(Stream, String)>, s: &str| {
        if let Some(last) = out.last_mut() {
            last.1.push_str(s);
        }
    };
    while let Some(c) = rest.chars().next() {
        if let Some(r) = rest.strip_prefix("%%") {
            push(&mut out, "%");
            rest = r;
        } else if let Some(r) = rest.strip_prefix("%{") {
            let Some(end) = r.find('}') else {
                push(&mut out, "%{");
                rest = r;
                continue;
            };
            let name = &r[..end];
            rest = &r[end + 1..];
            match name {
                "stdout" => out.push((Stream::Stdout, String::new())),
                "stderr" => out.push((Stream::Stderr, String::new())),
                "json" => push(&mut out, &stats.json()),
                "header_json" => push(&mut out, &stats.header_json()),
                n => match stats.text(n) {
                    Some(v) => push(&mut out, &v),
                    None => warnings.push(format!("unknown --write-out variable: '{n}'")),
                },
            }
        } else if let Some(r) = rest.strip_prefix("%header{") {
            let end = r.find('}').unwrap_or(r.len());
            let name = &r[..end];
            rest = r.get(end + 1..).unwrap_or("");
            let vals: Vec<String> = stats
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            push(&mut out, &vals.join(", "));
        } else if let Some(r) = rest.strip_prefix('\\') {
            match r.chars().next() {
                Some('n') => push(&mut out, "\n"),
                Some('r') => push(&mut out, "\r"),
                Some('t') => push(&mut out, "\t"),
                Some(o) => {
                    push(&mut out, "\\");
                    push(&mut out, &o.to_string());
                }
                None => push(&mut out, "\\"),
            }
            rest = r.get(1..).unwrap_or("");
        } else {
            push(&mut out, &c.to_string());
            rest = &rest[c.len_utf8()..];
        }
    }
    (out, warnings)
}

/// Writes `format` for `stats` to standard output and error.
pub fn write(format: &str, stats: &Stats) {
    let (pieces, warnings) = render(format, stats);
    for w in warnings {
        eprintln!("burrow: {w}");
    }
    for (stream, text) in pieces {
        let _ = match stream {
            Stream::Stdout => std::io::stdout().write_all(text.as_bytes()),
            Stream::Stderr => std::io::stderr().write_all(text.as_bytes()),
        };
    }
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stats {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", "text/plain".parse().unwrap());
        headers.append("x-many", "a".parse().unwrap());
        headers.append("x-many", "b".parse().unwrap());
        Stats {
            http_code: 200,
            http_version: Some(http::Version::HTTP_2),
            size_download: 1000,
            time_total: Duration::from_millis(500),
            time_connect: Duration::from_micros(1234),
            remote: Some("127.0.0.1:8443".parse().unwrap()),
            url_effective: "https://h/x".into(),
            headers,
            ..Stats::default()
        }
    }

    fn text(format: &str, s: &Stats) -> String {
        let (pieces, _) = render(format, s);
        pieces.into_iter().map(|(_, t)| t).collect()
    }

    #[test]
    fn variables_render_as_curl_prints_them() {
        let s = sample();
        assert_eq!(
            text(
                "%{http_code} %{http_version} %{size_download} %{speed_download}\\n",
                &s
            ),
            "200 2 1000 2000\n"
        );
        assert_eq!(
            text("%{time_connect} %{time_total}", &s),
            "0.001234 0.500000"
        );
        assert_eq!(
            text("%{remote_ip}:%{remote_port} 100%%", &s),
            "127.0.0.1:8443 100%"
        );
        assert_eq!(text("[%{redirect_url}] [%{errormsg}]", &s), "[] []");
        assert_eq!(
            text("%header{X-Many}|%{content_type}", &s),
            "a, b|text/plain"
        );
        assert_eq!(text("%{http_code}", &Stats::default()), "000");
    }

    #[test]
    fn streams_switch_and_unknown_variables_warn() {
        let s = sample();
        let (pieces, warnings) = render("a%{stderr}b%{nope}%{stdout}c", &s);
        assert_eq!(
            pieces,
            [
                (Stream::Stdout, "a".to_string()),
                (Stream::Stderr, "b".to_string()),
                (Stream::Stdout, "c".to_string())
            ]
        );
        assert_eq!(warnings, ["unknown --write-out variable: 'nope'"]);
    }

    #[test]
    fn json_holds_every_variable() {
        let j = sample().json();
        for needle in [
            "\"http_code\":200",
            "\"http_version\":\"2\"",
            "\"errormsg\":null",
            "\"redirect_url\":null",
            "\"remote_port\":8443",
            "\"time_total\":0.500000",
            "\"content_type\":\"text/plain\"",
        ] {
            assert!(j.contains(needle), "{needle} in {j}");
        }
        assert_eq!(
            sample().header_json(),
            r#"{"content-type":["text/plain"],"x-many":["a","b"]}"#
        );
    }
}
