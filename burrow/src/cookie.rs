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
