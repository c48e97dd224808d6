//! Turning command line options into the request each transfer sends.

use std::path::Path;

use burrow_http_core::Body;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{HeaderMap, Method};
use tokio::io::AsyncReadExt;

use super::exit::{self, Exit};
use super::Args;

/// Bodies larger than this are sent after `Expect: 100-continue` on HTTP/1.1 (curl's
/// threshold); `-T` uploads always are.
pub const EXPECT_CONTINUE_OVER: u64 = 1 << 20;

/// The largest piece of data read from a file or standard input into memory (`-d @file`,
/// `-F name=@file`, `--json @file`); `--data-binary @file` and `-T` stream instead.
pub const MAX_DATA_BYTES: u64 = 1 << 30;

/// Which data option gave a piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// `-d`: `@file` without CR and LF.
    Ascii,
    /// `--data-binary`: `@file` as is.
    Binary,
    /// `--data-raw`: no `@`.
    Raw,
    /// `--data-urlencode`.
    UrlEncode,
    /// `--json`.
    Json,
}

/// One data option as given.
#[derive(Clone, Debug)]
pub struct Data {
    /// Which option.
    pub kind: DataKind,
    /// Its value.
    pub value: String,
}

/// Parses the URL the way curl does: no scheme means `http://`.
pub fn parse_url(url: &str) -> Result<http::Uri, Exit> {
    // The fragment is never sent.
    let url = url.split('#').next().unwrap_or("");
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

/// What curl's `--data-urlencode` and `curl_easy_escape` leave as they are.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn escape(b: &[u8]) -> String {
    percent_encoding::percent_encode(b, UNRESERVED).to_string()
}

/// `--data-urlencode`'s encoding: as [`escape`], with spaces as `+` (what curl sends).
fn form_escape(b: &[u8]) -> String {
    escape(b).replace("%20", "+")
}

fn read_err(what: &str, e: impl std::fmt::Display) -> Exit {
    Exit::new(exit::READ_ERROR, format!("reading {what}: {e}"))
}

/// A file (`-` for standard input) read whole, up to [`MAX_DATA_BYTES`].
async fn slurp(path: &str) -> Result<Vec<u8>, Exit> {
    let mut buf = Vec::new();
    if path == "-" {
        tokio::io::stdin()
            .take(MAX_DATA_BYTES + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| read_err("standard input", e))?;
    } else {
        tokio::fs::File::open(path)
            .await
            .map_err(|e| read_err(path, e))?
            .take(MAX_DATA_BYTES + 1)
            .read_to_end(&mut buf)
            .await
            .map_err(|e| read_err(path, e))?;
    }
    if buf.len() as u64 > MAX_DATA_BYTES {
        return Err(Exit::new(
            exit::READ_ERROR,
            format!("{path} is larger than {MAX_DATA_BYTES} bytes; use --data-binary @file or -T"),
        ));
    }
    Ok(buf)
}

/// One data piece's bytes.
async fn piece(d: &Data) -> Result<Vec<u8>, Exit> {
    Ok(match d.kind {
        DataKind::Raw => d.value.as_bytes().to_vec(),
        DataKind::Ascii | DataKind::Binary | DataKind::Json => match d.value.strip_prefix('@') {
            Some(path) => {
                let raw = slurp(path).await?;
                if d.kind == DataKind::Ascii {
                    raw.into_iter()
                        .filter(|b| *b != b'\r' && *b != b'\n')
                        .collect()
                } else {
                    raw
                }
            }
            None => d.value.as_bytes().to_vec(),
        },
        DataKind::UrlEncode => {
            let v = &d.value;
            if let Some(rest) = v.strip_prefix('=') {
                form_escape(rest.as_bytes()).into_bytes()
            } else if let Some(path) = v.strip_prefix('@') {
                form_escape(&slurp(path).await?).into_bytes()
            } else if let Some((name, content)) = v.split_once('=') {
                format!("{name}={}", form_escape(content.as_bytes())).into_bytes()
            } else if let Some((name, path)) = v.split_once('@') {
                format!("{name}={}", form_escape(&slurp(path).await?)).into_bytes()
            } else {
                form_escape(v.as_bytes()).into_bytes()
            }
        }
    })
}

/// What the body of every transfer is.
#[derive(Clone, Debug)]
pub enum BodySpec {
    /// None.
    Empty,
    /// These bytes (`-d` and friends, joined).
    Bytes(Bytes),
    /// A file streamed (`--data-binary @file` alone, `-T file`), or standard input.
    File(String),
    /// A multipart form (`-F`), rebuilt for each transfer.
    Form(Vec<FormField>),
}

/// One `-F` field.
#[derive(Clone, Debug)]
pub struct FormField {
    name: String,
    value: FormValue,
    mime: Option<String>,
    filename: Option<String>,
}

#[derive(Clone, Debug)]
enum FormValue {
    Text(String),
    /// `@file`: a file part.
    File(String),
    /// `<file`: a text field from a file's content.
    Content(String),
}

/// Parses `-F name=value[;type=T][;filename=F]`; with `literal` (`--form-string`) the
/// value is taken as it is.
pub fn form_field(spec: &str, literal: bool) -> Result<FormField, Exit> {
    let bad = || Exit::new(exit::FAILED_INIT, format!("bad form field {spec:?}"));
    let (name, rest) = spec.split_once('=').ok_or_else(bad)?;
    if literal {
        return Ok(FormField {
            name: name.into(),
            value: FormValue::Text(rest.into()),
            mime: None,
            filename: None,
        });
    }
    let (value, attrs) = match rest.strip_prefix('"') {
        Some(q) => {
            let end = q.find('"').ok_or_else(bad)?;
            (&q[..end], q[end + 1..].trim_start_matches(';'))
        }
        None => match rest.split_once(';') {
            Some((v, a)) => (v, a),
            None => (rest, ""),
        },
    };
    let mut field = FormField {
        name: name.into(),
        value: if let Some(p) = value.strip_prefix('@') {
            FormValue::File(p.into())
        } else if let Some(p) = value.strip_prefix('<') {
            FormValue::Content(p.into())
        } else {
            FormValue::Text(value.into())
        },
        mime: None,
        filename: None,
    };
    for attr in attrs.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        match attr.split_once('=') {
            Some(("type", t)) => field.mime = Some(t.into()),
            Some(("filename", f)) => field.filename = Some(f.trim_matches('"').into()),
            // curl also knows `headers=` and `encoder=`; they are not supported here.
            _ => return Err(bad()),
        }
    }
    Ok(field)
}

async fn build_form(fields: &[FormField]) -> Result<burrow::multipart::Form, Exit> {
    use burrow::multipart::{Form, Part};
    let mut form = Form::new();
    for f in fields {
        let mut part = match &f.value {
            FormValue::Text(t) => Part::text(t.clone()),
            FormValue::Content(p) => Part::bytes(slurp(p).await?),
            FormValue::File(p) => {
                let name = Path::new(p)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let part = Part::bytes(slurp(p).await?).file_name(name);
                // curl's default for files: its guess from the name, else octet-stream.
                match f.mime {
                    Some(_) => part,
                    None => part
                        .mime_str(guess_mime(p))
                        .map_err(|e| Exit::new(exit::FAILED_INIT, e.to_string()))?,
                }
            }
        };
        if let Some(name) = &f.filename {
            part = part.file_name(name.clone());
        }
        if let Some(m) = &f.mime {
            part = part
                .mime_str(m)
                .map_err(|_| Exit::new(exit::FAILED_INIT, format!("bad type {m:?}")))?;
        }
        form = form.part(f.name.clone(), part);
    }
    Ok(form)
}

/// curl's guesses for common file name endings.
fn guess_mime(path: &str) -> &'static str {
    let ext = path.rsplit('.').next().unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "gif" => "image/gif",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        "txt" => "text/plain",
        "htm" | "html" => "text/html",
        "json" => "application/json",
        "xml" => "application/xml",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// The parts of a request every transfer shares, read from the options once.
#[derive(Clone, Debug)]
pub struct Template {
    /// `-X`, or the method the options imply.
    pub method: Method,
    /// With `-X`: the method the options imply (`-d` POST, `-T` PUT, `-I` HEAD), which
    /// redirects follow while `-X`'s goes on every request, as curl's `-L` does.
    pub redirect_as: Option<Method>,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: BodySpec,
    /// `-G`: the data to add to each URL's query.
    pub query: Option<String>,
    /// `-T`: the name to add to a URL that ends in `/`.
    pub upload_name: Option<String>,
    /// Whether the body is announced with `Expect: 100-continue` on HTTP/1.1.
    pub expect_continue: bool,
}

/// Reads the options into a [`Template`].
pub async fn template(args: &Args, data: &[Data]) -> Result<Template, Exit> {
    let mut headers = HeaderMap::new();
    headers.insert(
        USER_AGENT,
        HeaderValue::from_static(burrow::DEFAULT_USER_AGENT),
    );
    headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
    let init = |what: &str| Exit::new(exit::FAILED_INIT, what.to_string());
    let value = |s: &str, what: &str| {
        // The value may be a credential: the message names the option only.
        HeaderValue::from_str(s).map_err(|_| init(&format!("bad {what}: not a valid header value")))
    };
    match args.user_agent.as_deref() {
        // As curl: an empty one sends none (a blank one is `-A " "`).
        Some("") => {
            headers.remove(USER_AGENT);
        }
        Some(ua) => {
            headers.insert(USER_AGENT, value(ua, "user agent")?);
        }
        None => {}
    }
    if let Some(r) = &args.referer {
        // `URL;auto`: this Referer, and on redirects the URL redirected from.
        let url = r.strip_suffix(";auto").unwrap_or(r);
        if !url.is_empty() {
            headers.insert(http::header::REFERER, value(url, "referer")?);
        }
    }
    if let Some(token) = &args.oauth2_bearer {
        let mut v = value(&format!("Bearer {token}"), "bearer token")?;
        v.set_sensitive(true);
        headers.insert(http::header::AUTHORIZATION, v);
    }
    if let Some(user) = &args.user {
        let (u, p) = match user.split_once(':') {
            Some((u, p)) => (u.to_string(), p.to_string()),
            None => (user.clone(), ask_password(user)?),
        };
        let v = burrow_http_core::credentials::basic(&u, &p)
            .ok_or_else(|| init("bad user: not a valid header value"))?;
        headers.insert(http::header::AUTHORIZATION, v);
    }
    let cookies: Vec<&String> = args.cookie.iter().filter(|c| c.contains('=')).collect();
    if !cookies.is_empty() {
        let joined = cookies
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let mut v = value(&joined, "cookie")?;
        v.set_sensitive(true);
        headers.insert(http::header::COOKIE, v);
    }
    if let Some(r) = &args.range {
        headers.insert(http::header::RANGE, value(&format!("bytes={r}"), "range")?);
    }
    let json = data.iter().any(|d| d.kind == DataKind::Json);
    let form = !args.form.is_empty() || !args.form_string.is_empty();
    if (json || !data.is_empty()) && !args.get {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static(if json {
                "application/json"
            } else {
                "application/x-www-form-urlencoded"
            }),
        );
    }
    if json {
        headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    }
    user_headers(&mut headers, &args.headers).await?;

    // The body, then the method it implies.
    let mut query = None;
    let body = if form {
        let fields = args.form.iter().map(|f| form_field(f, false));
        let strings = args.form_string.iter().map(|f| form_field(f, true));
        BodySpec::Form(fields.chain(strings).collect::<Result<_, _>>()?)
    } else if let Some(t) = &args.upload_file {
        // Standard input is read once, so retries and several URLs send it all again.
        match t.as_str() {
            "-" => BodySpec::Bytes(Bytes::from(slurp("-").await?)),
            _ => BodySpec::File(t.clone()),
        }
    } else if let [Data {
        kind: DataKind::Binary,
        value,
    }] = data
    {
        // One --data-binary @file streams (uploads of any size in constant memory).
        match value.strip_prefix('@') {
            Some(p) if p != "-" && !args.get => BodySpec::File(p.into()),
            _ => BodySpec::Bytes(joined(data).await?),
        }
    } else if data.is_empty() {
        BodySpec::Empty
    } else {
        // --json pieces are joined as they are; the others with `&`.
        BodySpec::Bytes(joined(data).await?)
    };
    let body = if args.get {
        if let BodySpec::Bytes(b) = &body {
            query = Some(String::from_utf8_lossy(b).into_owned());
        }
        BodySpec::Empty
    } else {
        body
    };
    // As curl: -d, -F, -T and -I each choose a method; two of them conflict.
    let chosen: Vec<&str> = [
        (!data.is_empty() && !args.get, "POST (-d, --data)"),
        (form, "POST (-F, --form)"),
        (args.upload_file.is_some(), "PUT (-T, --upload-file)"),
        (args.head, "HEAD (-I, --head)"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if let [a, b, ..] = chosen[..] {
        return Err(init(&format!(
            "You can only select one HTTP request method! You asked for both {a} and {b}."
        )));
    }
    let implied = match () {
        _ if args.head => Method::HEAD,
        _ if args.get => Method::GET,
        _ if form || !data.is_empty() => Method::POST,
        _ if args.upload_file.is_some() => Method::PUT,
        _ => Method::GET,
    };
    let method = match &args.method {
        Some(m) => {
            Method::from_bytes(m.as_bytes()).map_err(|_| init(&format!("invalid method {m:?}")))?
        }
        None => implied.clone(),
    };
    let redirect_as = args.method.is_some().then_some(implied);
    let upload_name = args
        .upload_file
        .as_ref()
        .filter(|t| *t != "-")
        .and_then(|t| Path::new(t).file_name())
        .map(|n| n.to_string_lossy().into_owned());
    let expect_continue = match &body {
        _ if args.upload_file.is_some() => true,
        BodySpec::Bytes(b) => b.len() as u64 > EXPECT_CONTINUE_OVER,
        BodySpec::File(p) => std::fs::metadata(p).map_or(true, |m| m.len() > EXPECT_CONTINUE_OVER),
        _ => false,
    };
    // An `Expect` of the user's own (or `Expect:` to remove it) wins.
    let expect_continue = expect_continue
        && !args
            .headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("expect:"));
    Ok(Template {
        method,
        redirect_as,
        headers,
        body,
        query,
        upload_name,
        expect_continue,
    })
}

async fn joined(data: &[Data]) -> Result<Bytes, Exit> {
    let mut out = Vec::new();
    for (i, d) in data.iter().enumerate() {
        let p = piece(d).await?;
        let glue = d.kind != DataKind::Json && i > 0;
        if glue {
            out.push(b'&');
        }
        out.extend_from_slice(&p);
    }
    Ok(Bytes::from(out))
}

/// `-H` lines (and `-H @file`) over the defaults: a name given replaces the default of that
/// name, `Name:` removes it, `Name;` sends it empty.
async fn user_headers(h: &mut HeaderMap, lines: &[String]) -> Result<(), Exit> {
    let mut all = Vec::new();
    for line in lines {
        match line.strip_prefix('@') {
            Some(path) => {
                let text = String::from_utf8_lossy(&slurp(path).await?).into_owned();
                all.extend(
                    text.lines()
                        .map(str::trim_end)
                        .filter(|l| !l.is_empty())
                        .map(String::from),
                );
            }
            None => all.push(line.clone()),
        }
    }
    let mut seen: Vec<HeaderName> = Vec::new();
    for line in &all {
        let bad = |what: &str| {
            Exit::new(
                exit::FAILED_INIT,
                format!("bad header {what} in -H {:?}…", header_name_of(line)),
            )
        };
        let (name, value, empty) = match line.split_once(':') {
            Some((n, v)) => (n, v.trim(), false),
            None => match line.strip_suffix(';') {
                Some(n) => (n, "", true),
                None => return Err(bad("line")),
            },
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad("name"))?;
        // The first user header of a name replaces burrow's default of that name.
        if !seen.contains(&name) {
            h.remove(&name);
            seen.push(name.clone());
        }
        if value.is_empty() && !empty {
            continue;
        }
        h.append(
            name,
            HeaderValue::from_str(value).map_err(|_| bad("value"))?,
        );
    }
    Ok(())
}

/// The name part of a `-H` line, for messages (the value may be a credential).
fn header_name_of(line: &str) -> &str {
    line.split([':', ';']).next().unwrap_or("")
}

/// Asks for `user`'s password on the terminal, as curl does for `-u user`.
fn ask_password(user: &str) -> Result<String, Exit> {
    rpassword::prompt_password(format!("Enter host password for user '{user}':")).map_err(|e| {
        Exit::new(
            exit::FAILED_INIT,
            format!("-u {user} has no password and none could be asked for: {e}"),
        )
    })
}

impl Template {
    /// The URL with `-G` data and a `-T` file name added.
    pub fn url(&self, url: &str) -> String {
        let mut u = url.to_string();
        if let Some(name) = &self.upload_name {
            if u.ends_with('/') {
                u.push_str(&escape(name.as_bytes()));
            }
        }
        if let Some(q) = &self.query {
            let (base, frag) = match u.split_once('#') {
                Some((b, f)) => (b.to_string(), Some(f.to_string())),
                None => (u.clone(), None),
            };
            u = format!("{base}{}{q}", if base.contains('?') { '&' } else { '?' });
            if let Some(f) = frag {
                u = format!("{u}#{f}");
            }
        }
        u
    }

    /// A fresh body for one transfer (`offset`: resume an upload from there is not
    /// supported; downloads resume with `Range`).
    pub async fn body(&self) -> Result<Body, Exit> {
        match &self.body {
            BodySpec::Empty => Ok(Body::empty()),
            BodySpec::Bytes(b) => Ok(Body::from(b.clone())),
            BodySpec::File(p) if p == "-" => Ok(Body::from(slurp("-").await?)),
            BodySpec::File(p) => stream_file(Path::new(p)).await,
            BodySpec::Form(_) => Ok(Body::empty()),
        }
    }

    /// The multipart form for one transfer, when `-F` was given.
    pub async fn form(&self) -> Result<Option<burrow::multipart::Form>, Exit> {
        match &self.body {
            BodySpec::Form(fields) => Ok(Some(build_form(fields).await?)),
            _ => Ok(None),
        }
    }
}

/// A file as a streamed body of known length (constant memory).
pub async fn stream_file(path: &Path) -> Result<Body, Exit> {
    let shown = path.display().to_string();
    let mut f = tokio::fs::File::open(path)
        .await
        .map_err(|e| read_err(&shown, e))?;
    let len = f.metadata().await.map_err(|e| read_err(&shown, e))?.len();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn d(kind: DataKind, v: &str) -> Data {
        Data {
            kind,
            value: v.into(),
        }
    }

    #[tokio::test]
    async fn data_pieces_join_as_curl_joins_them() {
        let b = joined(&[
            d(DataKind::Ascii, "a=1"),
            d(DataKind::UrlEncode, "q=a b&c/é"),
            d(DataKind::UrlEncode, "=x y"),
            d(DataKind::UrlEncode, "plain text"),
            d(DataKind::Raw, "@literal"),
        ])
        .await
        .unwrap();
        assert_eq!(&b[..], b"a=1&q=a+b%26c%2F%C3%A9&x+y&plain+text&@literal");
        let j = joined(&[d(DataKind::Json, "{\"a\":"), d(DataKind::Json, "1}")])
            .await
            .unwrap();
        assert_eq!(&j[..], b"{\"a\":1}");
    }

    #[test]
    fn form_fields_parse_with_attributes() {
        let f = form_field("file=@up.txt;type=text/x-mine;filename=other.txt", false).unwrap();
        assert!(matches!(&f.value, FormValue::File(p) if p == "up.txt"));
        assert_eq!(f.mime.as_deref(), Some("text/x-mine"));
        assert_eq!(f.filename.as_deref(), Some("other.txt"));
        let f = form_field("t=<in.txt", false).unwrap();
        assert!(matches!(&f.value, FormValue::Content(p) if p == "in.txt"));
        let f = form_field("s=@not;a file", true).unwrap();
        assert!(matches!(&f.value, FormValue::Text(t) if t == "@not;a file"));
        assert_eq!(
            form_field("noequals", false).unwrap_err().code,
            exit::FAILED_INIT
        );
        assert!(form_field("a=b;unknown=1", false).is_err());
    }

    #[test]
    fn get_data_and_upload_names_go_into_the_url() {
        let t = Template {
            method: Method::GET,
            redirect_as: None,
            headers: HeaderMap::new(),
            body: BodySpec::Empty,
            query: Some("a=1&b=2".into()),
            upload_name: Some("my file.txt".into()),
            expect_continue: false,
        };
        assert_eq!(t.url("http://h/dir/"), "http://h/dir/my%20file.txt?a=1&b=2");
        assert_eq!(t.url("http://h/p?x=0#frag"), "http://h/p?x=0&a=1&b=2#frag");
    }
}
