//! Which redirects a client follows, and how a request changes when it follows one.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};

use burrow_transport::{Error, ErrorKind, Result};

/// How many redirect heads a [`Response`](crate::Response) keeps (the last ones): a policy
/// without a limit must not grow without bound.
pub const MAX_REDIRECT_HISTORY: usize = 64;

/// The default limit on redirects in a row (reqwest's; curl's `--max-redirs` default is 50).
pub const DEFAULT_MAX_REDIRECTS: usize = 10;

/// Which redirects a client follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedirectPolicy {
    max: usize,
    /// Keep `POST` (and its body) after a 301, 302 or 303 (curl's `--post301` …).
    keep_post: [bool; 3],
    /// Send credentials to other origins too (curl's `--location-trusted`).
    trusted: bool,
    /// Add a `Referer` naming the redirected URL (curl's `-e ';auto'`).
    referer: bool,
    /// Past `max`, return the redirect rather than fail.
    stop: bool,
}

impl Default for RedirectPolicy {
    /// Up to [`DEFAULT_MAX_REDIRECTS`].
    fn default() -> Self {
        RedirectPolicy::limited(DEFAULT_MAX_REDIRECTS)
    }
}

impl RedirectPolicy {
    /// Follows up to `max` redirects in a row; one more is an error
    /// ([`ErrorKind::TooManyRedirects`]).
    pub fn limited(max: usize) -> Self {
        RedirectPolicy {
            max,
            keep_post: [false; 3],
            trusted: false,
            referer: false,
            stop: false,
        }
    }

    /// Past the limit, returns the redirect that would be one too many as the response
    /// (with the ones followed in its history) instead of failing; curl shows it, then
    /// exits 47.
    pub fn stop_at_limit(mut self) -> Self {
        self.stop = true;
        self
    }

    /// Follows none: a 3xx is returned as it is.
    pub fn none() -> Self {
        RedirectPolicy::limited(0)
    }

    /// Keeps `POST` and its body after a redirect with `status` (301, 302 or 303; others
    /// are ignored) instead of turning it into `GET`, as curl's `--post301`, `--post302`
    /// and `--post303` do.
    pub fn keep_post(mut self, status: u16) -> Self {
        if let Some(i) = [301, 302, 303].iter().position(|s| *s == status) {
            self.keep_post[i] = true;
        }
        self
    }

    /// Keeps `Authorization` and `Cookie` headers when a redirect goes to another origin
    /// (curl's `--location-trusted`). Dangerous: the other origin gets the credentials.
    pub fn trusted(mut self, on: bool) -> Self {
        self.trusted = on;
        self
    }

    /// Sends a `Referer` with the URL that redirected (without its userinfo and fragment),
    /// except from `https` to `http` (curl's `-e ';auto'`, reqwest's `referer`).
    pub fn referer(mut self, on: bool) -> Self {
        self.referer = on;
        self
    }

    fn keeps_post(&self, status: u16) -> bool {
        [301, 302, 303]
            .iter()
            .position(|s| *s == status)
            .is_some_and(|i| self.keep_post[i])
    }

    /// The error for following one redirect more than allowed, or `None` to go on.
    pub(crate) fn check(&self, followed: usize) -> Option<Error> {
        (followed >= self.max && self.max > 0).then(|| {
            Error::peer(
                ErrorKind::TooManyRedirects,
                format!("more than {} redirects in a row", self.max),
            )
        })
    }

    /// Whether a redirect after `followed` ones is followed (or else returned, or an error
    /// by [`check`](Self::check)).
    pub(crate) fn follows(&self, followed: usize) -> bool {
        self.max > 0 && !(self.stop && followed >= self.max)
    }
}

/// What following a redirect does to the request.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Next {
    pub(crate) method: Method,
    pub(crate) url: Uri,
    /// Whether the body is sent again (307 and 308 keep the method and the body).
    pub(crate) keep_body: bool,
}

/// The next request after a response with `status` and `Location: location` to a `method`
/// request for `from`; `None` when the response is not a redirect to follow.
/// 303 turns everything but `HEAD` into `GET`; 301 and 302 turn `POST` into `GET` (what
/// browsers, curl and reqwest do); 307 and 308 keep the method and the body.
pub(crate) fn next(
    policy: &RedirectPolicy,
    status: StatusCode,
    location: Option<&str>,
    method: &Method,
    from: &Uri,
) -> Result<Option<Next>> {
    let (method, keep_body) = match status.as_u16() {
        s if method == Method::POST && policy.keeps_post(s) => (Method::POST, true),
        301 | 302 if method == Method::POST => (Method::GET, false),
        301 | 302 => (method.clone(), true),
        303 if method == Method::HEAD => (Method::HEAD, false),
        303 => (Method::GET, false),
        307 | 308 => (method.clone(), true),
        _ => return Ok(None),
    };
    let Some(location) = location else {
        return Ok(None);
    };
    Ok(Some(Next {
        method,
        url: resolve(from, location)?,
        keep_body,
    }))
}

/// `location` (absolute, scheme-relative, absolute-path or relative) against `base`,
/// without its fragment (RFC 9110 §10.2.2, RFC 3986 §5.2 with dot segments removed).
pub(crate) fn resolve(base: &Uri, location: &str) -> Result<Uri> {
    let bad = || {
        Error::protocol("the redirect's Location is not a URL")
            .with_detail(location.chars().take(200).collect::<String>())
    };
    let location = location.split('#').next().unwrap_or("").trim();
    let scheme = base.scheme_str().unwrap_or("http");
    let authority = base.authority().map(|a| a.as_str()).unwrap_or("");
    let s = if location.contains("://") {
        location.to_owned()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else {
        let (path, query) = match location.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (location, None),
        };
        let path = if path.is_empty() {
            base.path().to_owned()
        } else if path.starts_with('/') {
            path.to_owned()
        } else {
            let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
            format!("{dir}/{path}")
        };
        let query = match query.or(base.query().filter(|_| location.is_empty())) {
            Some(q) => format!("?{q}"),
            None => String::new(),
        };
        format!("{scheme}://{authority}{}{query}", remove_dots(&path))
    };
    let uri: Uri = s.parse().map_err(|_| bad())?;
    match uri.scheme_str() {
        Some("http") | Some("https") if uri.host().is_some() => Ok(uri),
        _ => Err(bad()),
    }
}

fn remove_dots(path: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    for (i, s) in segs.iter().enumerate() {
        match *s {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if matches!(*s, "." | "..") && i + 1 == segs.len() {
            out.push("");
        }
    }
    format!("/{}", out.join("/"))
}

/// Same scheme, host as written (case aside: `a.test.` is another host, as in curl) and
/// port: credentials follow a redirect only there.
fn same_origin(a: &Uri, b: &Uri) -> bool {
    let port = |u: &Uri| {
        u.port_u16().unwrap_or(match u.scheme_str() {
            Some("https") => 443,
            _ => 80,
        })
    };
    a.scheme() == b.scheme()
        && a.host().map(str::to_ascii_lowercase) == b.host().map(str::to_ascii_lowercase)
        && port(a) == port(b)
}

/// Removes what must not follow a redirect: credentials and cookies when it leaves the
/// origin (reqwest's and curl's rule), the body's description when the body is dropped.
pub(crate) fn strip(
    policy: &RedirectPolicy,
    headers: &mut HeaderMap,
    from: &Uri,
    to: &Uri,
    keep_body: bool,
) {
    if policy.referer {
        let downgrade = from.scheme_str() == Some("https") && to.scheme_str() != Some("https");
        match (downgrade, referer_of(from)) {
            (false, Some(v)) => {
                headers.insert(header::REFERER, v);
            }
            _ => {
                headers.remove(header::REFERER);
            }
        }
    }
    if !same_origin(from, to) && !policy.trusted {
        for h in [
            header::AUTHORIZATION,
            header::COOKIE,
            header::PROXY_AUTHORIZATION,
            header::WWW_AUTHENTICATE,
        ] {
            headers.remove(h);
        }
    }
    if !keep_body {
        for h in [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::CONTENT_ENCODING,
            header::TRANSFER_ENCODING,
        ] {
            headers.remove(h);
        }
    }
    headers.remove(header::HOST);
}

/// `u` as a `Referer`: no userinfo, no fragment.
fn referer_of(u: &Uri) -> Option<http::HeaderValue> {
    let authority = burrow_http_core::target::authority(u)?;
    let pq = u.path_and_query().map_or("/", |p| p.as_str());
    http::HeaderValue::from_str(&format!("{}://{authority}{pq}", u.scheme_str()?)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_redirects_keep_credentials_and_referers_follow() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        let (a, b) = (u("https://u:p@a.test/one?q"), u("https://b.test/two"));
        let p = RedirectPolicy::default().referer(true);
        strip(&p, &mut h, &a, &b, false);
        assert!(h.get(header::AUTHORIZATION).is_none());
        assert_eq!(h[header::REFERER], "https://a.test/one?q");
        h.insert(header::AUTHORIZATION, "Basic x".parse().unwrap());
        strip(&p.trusted(true), &mut h, &a, &b, false);
        assert_eq!(h[header::AUTHORIZATION], "Basic x");
        // No Referer from https to http.
        strip(&p, &mut h, &b, &u("http://c.test/"), false);
        assert!(h.get(header::REFERER).is_none());
    }

    fn u(s: &str) -> Uri {
        s.parse().unwrap()
    }

    #[test]
    fn credentials_stay_only_with_the_host_as_written() {
        assert!(same_origin(
            &u("https://A.test/x"),
            &u("https://a.test:443/y")
        ));
        assert!(same_origin(&u("http://a.test/"), &u("http://a.test:80/")));
        for other in ["https://a.test./", "http://a.test/", "https://a.test:8443/"] {
            assert!(!same_origin(&u("https://a.test/"), &u(other)), "{other}");
        }
        assert!(!same_origin(&u("http://[::1]/"), &u("http://[0:0::1]/")));
    }

    #[test]
    fn locations_resolve_against_the_request() {
        let base = u("https://a.test:8443/dir/page?x=1");
        for (loc, want) in [
            ("https://b.test/p", "https://b.test/p"),
            ("//c.test/q?z", "https://c.test/q?z"),
            ("/root", "https://a.test:8443/root"),
            ("other", "https://a.test:8443/dir/other"),
            ("../up?k=v#frag", "https://a.test:8443/up?k=v"),
            ("./", "https://a.test:8443/dir/"),
            ("?only=query", "https://a.test:8443/dir/page?only=query"),
        ] {
            assert_eq!(resolve(&base, loc).unwrap(), u(want), "{loc}");
        }
        for bad in ["ftp://x/", "http://", "javascript:alert(1)x y"] {
            let e = resolve(&base, bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Protocol, "{bad}");
        }
    }

    #[test]
    fn methods_change_as_browsers_and_curl_do() {
        let from = u("http://a.test/");
        let go = |s: u16, m: Method| {
            next(
                &RedirectPolicy::default(),
                StatusCode::from_u16(s).unwrap(),
                Some("/n"),
                &m,
                &from,
            )
            .unwrap()
            .map(|n| (n.method, n.keep_body))
        };
        assert_eq!(go(301, Method::POST), Some((Method::GET, false)));
        assert_eq!(go(302, Method::PUT), Some((Method::PUT, true)));
        assert_eq!(go(303, Method::PUT), Some((Method::GET, false)));
        assert_eq!(go(303, Method::HEAD), Some((Method::HEAD, false)));
        assert_eq!(go(307, Method::POST), Some((Method::POST, true)));
        assert_eq!(go(308, Method::DELETE), Some((Method::DELETE, true)));
        assert_eq!(go(304, Method::GET), None);
        assert_eq!(go(200, Method::GET), None);
        let d = RedirectPolicy::default();
        assert_eq!(
            next(&d, StatusCode::FOUND, None, &Method::GET, &from).unwrap(),
            None
        );
        let keep = RedirectPolicy::default().keep_post(301).keep_post(303);
        for (s, want) in [(301, Method::POST), (302, Method::GET), (303, Method::POST)] {
            let n = next(
                &keep,
                StatusCode::from_u16(s).unwrap(),
                Some("/n"),
                &Method::POST,
                &from,
            );
            assert_eq!(n.unwrap().unwrap().method, want, "{s}");
        }
    }

    #[test]
    fn credentials_stay_with_their_origin() {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer t".parse().unwrap());
        h.insert(header::COOKIE, "s=1".parse().unwrap());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let mut same = h.clone();
        let p = RedirectPolicy::default();
        strip(
            &p,
            &mut same,
            &u("https://a.test/x"),
            &u("https://A.test:443/y"),
            true,
        );
        assert!(same.contains_key(header::AUTHORIZATION) && same.contains_key(header::COOKIE));
        strip(
            &p,
            &mut h,
            &u("https://a.test/x"),
            &u("http://a.test/y"),
            false,
        );
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn the_limit_counts_redirects_in_a_row() {
        let p = RedirectPolicy::limited(2);
        assert!(p.check(0).is_none() && p.check(1).is_none());
        assert_eq!(p.check(2).unwrap().kind(), ErrorKind::TooManyRedirects);
        assert!(!RedirectPolicy::none().follows(0));
        // Past the limit: an error, or with stop_at_limit the redirect is returned.
        let p = RedirectPolicy::limited(2);
        assert!(p.follows(2) && p.check(2).is_some());
        let p = p.stop_at_limit();
        assert!(p.follows(1) && !p.follows(2));
    }
}
