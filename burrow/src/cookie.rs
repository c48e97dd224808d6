//! Cookies (feature `cookies`): a [`Jar`] the client fills from `Set-Cookie` and reads for
//! each request, with the rules of RFC 6265 (domain, path, expiry, `Secure`) from the
//! `cookie_store` crate.

use std::sync::Mutex;

use http::header::{HeaderMap, HeaderValue, SET_COOKIE};
use http::Uri;

/// A cookie store shared by clients: `ClientBuilder::cookie_provider(Arc<Jar>)`, or one of
/// its own with `ClientBuilder::cookie_store(true)`.
#[derive(Default)]
pub struct Jar(Mutex<cookie_store::CookieStore>);

impl std::fmt::Debug for Jar {
    /// Cookie values are credentials: never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jar").finish_non_exhaustive()
    }
}

fn url_of(uri: &Uri) -> Option<url::Url> {
    url::Url::parse(&uri.to_string()).ok()
}

impl Jar {
    /// Adds a cookie (`Set-Cookie` syntax, e.g. `"session=abc; Path=/"`) as if `uri` had
    /// set it.
    pub fn add_cookie_str(&self, cookie: &str, uri: &Uri) {
        let (Some(url), Ok(c)) = (url_of(uri), cookie::Cookie::parse(cookie.to_owned())) else {
            return;
        };
        self.lock().store_response_cookies(std::iter::once(c), &url);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, cookie_store::CookieStore> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores the `Set-Cookie` fields of a response from `uri` (invalid ones are ignored).
    pub(crate) fn store(&self, headers: &HeaderMap, uri: &Uri) {
        let Some(url) = url_of(uri) else { return };
        let cookies = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|s| cookie::Cookie::parse(s.to_owned()).ok());
        self.lock().store_response_cookies(cookies, &url);
    }

    /// The `Cookie` value to send to `uri`, if any cookie matches.
    pub fn cookies(&self, uri: &Uri) -> Option<HeaderValue> {
        let url = url_of(uri)?;
        let s = self
            .lock()
            .get_request_values(&url)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut v = HeaderValue::from_str(&s).ok().filter(|_| !s.is_empty())?;
        v.set_sensitive(true);
        Some(v)
    }
}

/// The first line curl writes in a cookie file; readers use it to recognise the format.
pub const NETSCAPE_HEADER: &str = "# Netscape HTTP Cookie File";

fn flag(on: bool) -> &'static str {
    if on {
        "TRUE"
    } else {
        "FALSE"
    }
}

impl Jar {
    /// Adds the cookies of a cookie file in the Netscape format curl reads with `-b FILE`
    /// and writes with `-c FILE` (tab-separated: domain, subdomains, path, secure, expiry,
    /// name, value; `#HttpOnly_` before the domain). Lines that do not parse and cookies
    /// already expired are skipped. Returns how many cookies were added.
    pub fn load_netscape(&self, text: &str) -> usize {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut added = 0;
        for line in text.lines() {
            let (http_only, line) = match line.strip_prefix("#HttpOnly_") {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
            let [domain, sub, path, secure, expires, name, value] = f[..] else {
                continue;
            };
            let Ok(expires) = expires.parse::<i64>() else {
                continue;
            };
            let host = domain.trim_start_matches('.');
            let secure = secure.eq_ignore_ascii_case("TRUE");
            let mut s = format!("{name}={value}; Path={path}");
            if sub.eq_ignore_ascii_case("TRUE") {
                s.push_str(&format!("; Domain={host}"));
            }
            if secure {
                s.push_str("; Secure");
            }
            if http_only {
                s.push_str("; HttpOnly");
            }
            if expires != 0 && expires <= now {
                continue;
            }
            let scheme = if secure { "https" } else { "http" };
            let (Ok(url), Ok(mut c)) = (
                url::Url::parse(&format!("{scheme}://{host}{path}")),
                cookie::Cookie::parse(s),
            ) else {
                continue;
            };
            if expires != 0 {
                let Ok(at) = cookie::time::OffsetDateTime::from_unix_timestamp(expires) else {
                    continue;
                };
                c.set_expires(at);
            }
            if self.lock().insert_raw(&c, &url).is_ok() {
                added += 1;
            }
        }
        added
    }

    /// Every cookie that has not expired, session cookies included, as a cookie file in
    /// the Netscape format (what curl's `-c FILE` writes).
    pub fn to_netscape(&self) -> String {
        use cookie_store::{CookieDomain, CookieExpiration};
        let mut out = format!(
            "{NETSCAPE_HEADER}\n# https://curl.se/docs/http-cookies.html\n\
             # This file was generated by burrow. Edit at your own risk.\n\n"
        );
        let store = self.lock();
        for c in store.iter_unexpired() {
            let (domain, sub) = match &c.domain {
                CookieDomain::HostOnly(d) => (d.clone(), false),
                CookieDomain::Suffix(d) => (format!(".{d}"), true),
                _ => continue,
            };
            let expires = match c.expires {
                CookieExpiration::AtUtc(t) => t.unix_timestamp().max(1),
                CookieExpiration::SessionEnd => 0,
            };
            let prefix = if c.http_only().unwrap_or(false) {
                "#HttpOnly_"
            } else {
                ""
            };
            out.push_str(&format!(
                "{prefix}{domain}\t{}\t{}\t{}\t{expires}\t{}\t{}\n",
                flag(sub),
                &*c.path,
                flag(c.secure().unwrap_or(false)),
                c.name(),
                c.value()
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netscape_files_round_trip() {
        let jar = Jar::default();
        let far = 4_000_000_000i64;
        let file = format!(
            "{NETSCAPE_HEADER}\n\n\
             example.com\tFALSE\t/\tFALSE\t0\tsession\tone\n\
             .example.com\tTRUE\t/app\tTRUE\t{far}\tlasting\ttwo\n\
             #HttpOnly_example.com\tFALSE\t/\tFALSE\t0\thidden\tthree\n\
             example.com\tFALSE\t/\tFALSE\t1000\texpired\tgone\n\
             not a cookie line\n"
        );
        assert_eq!(jar.load_netscape(&file), 3);
        let app: Uri = "https://www.example.com/app/x".parse().unwrap();
        let root: Uri = "http://example.com/".parse().unwrap();
        assert_eq!(jar.cookies(&app).unwrap(), "lasting=two");
        let sent = jar.cookies(&root).unwrap();
        let mut sent: Vec<&str> = sent.to_str().unwrap().split("; ").collect();
        sent.sort_unstable();
        assert_eq!(sent, ["hidden=three", "session=one"]);

        let out = jar.to_netscape();
        assert!(out.starts_with(NETSCAPE_HEADER), "{out}");
        let mut lines: Vec<&str> = out.lines().filter(|l| l.contains('\t')).collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            [
                "#HttpOnly_example.com\tFALSE\t/\tFALSE\t0\thidden\tthree",
                format!(".example.com\tTRUE\t/app\tTRUE\t{far}\tlasting\ttwo").as_str(),
                "example.com\tFALSE\t/\tFALSE\t0\tsession\tone",
            ]
        );
        // What was written reads back the same.
        let again = Jar::default();
        assert_eq!(again.load_netscape(&out), 3);
        let written = again.to_netscape();
        let mut relines: Vec<&str> = written.lines().filter(|l| l.contains('\t')).collect();
        relines.sort_unstable();
        assert_eq!(relines, lines);
    }
}
