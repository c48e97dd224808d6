//! Header rules: set or strip header fields on forwarded requests and their responses,
//! for every target or those matching a pattern. The syntax is curl's `-H`: `NAME: VALUE`
//! sets the field, `NAME:` strips it; `PATTERN=` in front limits the rule to matching
//! targets (`*.example.com=X-Env: test`).

use async_trait::async_trait;
use burrow_transport::Error;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;

use super::super::hooks::{Flow, HookResult, Hooks, Request, Response, Verdict};
use super::super::routes::Pattern;
use super::request_target;

/// One rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderRule {
    /// Only for targets matching this (`None`: all).
    pub host: Option<Pattern>,
    /// On responses (`false`: on requests).
    pub response: bool,
    /// The field.
    pub name: HeaderName,
    /// Its new value; `None` strips it.
    pub value: Option<HeaderValue>,
}

impl HeaderRule {
    /// Parses `[PATTERN=]NAME: VALUE` or `[PATTERN=]NAME:`.
    pub fn parse(spec: &str, response: bool) -> Result<HeaderRule, Error> {
        let bad = |why: &str| Error::invalid_input(format!("header rule {spec:?}: {why}"));
        // A header name has no '=', so one before a pattern-looking prefix is the pattern's.
        let (host, rest) = match spec.split_once('=') {
            Some((p, rest)) if rest.contains(':') => match Pattern::parse(p) {
                Ok(p) => (Some(p), rest),
                Err(_) => (None, spec),
            },
            _ => (None, spec),
        };
        let (name, value) = rest
            .split_once(':')
            .ok_or_else(|| bad("wants NAME: VALUE or NAME:"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| bad("invalid field name"))?;
        let value = value.trim();
        let value = match value.is_empty() {
            true => None,
            false => Some(HeaderValue::from_str(value).map_err(|_| bad("invalid value"))?),
        };
        Ok(HeaderRule {
            host,
            response,
            name,
            value,
        })
    }

    fn apply(&self, h: &mut HeaderMap) {
        match &self.value {
            Some(v) => {
                h.insert(self.name.clone(), v.clone());
            }
            None => {
                h.remove(&self.name);
            }
        }
    }
}

/// Header rules, applied in order.
#[derive(Clone, Debug, Default)]
pub struct HeaderRules {
    rules: Vec<HeaderRule>,
}

impl HeaderRules {
    /// These rules.
    pub fn new(rules: Vec<HeaderRule>) -> HeaderRules {
        HeaderRules { rules }
    }

    fn run(&self, r: &Request, response: bool, h: &mut HeaderMap) {
        let target = request_target(r);
        for rule in self.rules.iter().filter(|x| x.response == response) {
            let applies = match (&rule.host, &target) {
                (None, _) => true,
                (Some(p), Some(t)) => p.matches(t),
                (Some(_), None) => false,
            };
            if applies {
                rule.apply(h);
            }
        }
    }
}

#[async_trait]
impl Hooks for HeaderRules {
    fn name(&self) -> &str {
        "header-rules"
    }

    async fn request_headers(&self, _flow: &Flow, r: &mut Request) -> HookResult {
        let mut h = std::mem::take(&mut r.head.headers);
        self.run(r, false, &mut h);
        r.head.headers = h;
        Ok(Verdict::Continue)
    }

    async fn response_headers(&self, _flow: &Flow, r: &Request, resp: &mut Response) -> HookResult {
        self.run(r, true, &mut resp.head.headers);
        Ok(Verdict::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::decision::Head;

    fn req(uri: &str) -> Request {
        Request {
            head: Head {
                method: http::Method::GET,
                uri: uri.parse().unwrap(),
                version: http::Version::HTTP_11,
                headers: HeaderMap::new(),
            },
            route: None,
            buffer_body: false,
        }
    }

    #[test]
    fn rules_parse_set_strip_and_scope() {
        let set = HeaderRule::parse("X-Env: a=b", false).unwrap();
        assert_eq!(
            (set.host.clone(), set.value.clone().unwrap()),
            (None, HeaderValue::from_static("a=b"))
        );
        let strip = HeaderRule::parse("user-agent:", false).unwrap();
        assert!(strip.value.is_none());
        let scoped = HeaderRule::parse("*.example.com=X-Only: 1", false).unwrap();
        assert_eq!(scoped.host, Some(Pattern::Suffix("example.com".into())));
        let v6 = HeaderRule::parse("[::1]=X-Six: 6", false).unwrap();
        assert!(v6.host.is_some());
        for bad in ["nocolon", "bad name: 1", "X: \u{1}"] {
            assert!(HeaderRule::parse(bad, false).is_err(), "{bad:?}");
        }
        let rules = HeaderRules::new(vec![set, strip, scoped]);
        let mut r = req("http://www.example.com/");
        r.head
            .headers
            .insert("user-agent", HeaderValue::from_static("curl"));
        let mut h = std::mem::take(&mut r.head.headers);
        rules.run(&r, false, &mut h);
        assert_eq!(h["x-env"], "a=b");
        assert_eq!(h["x-only"], "1");
        assert!(!h.contains_key("user-agent"));
        let mut h = HeaderMap::new();
        rules.run(&req("http://other.test/"), false, &mut h);
        assert!(!h.contains_key("x-only"));
        // Response rules apply only to responses.
        let resp = HeaderRules::new(vec![HeaderRule::parse("Server:", true).unwrap()]);
        let mut h = HeaderMap::new();
        h.insert("server", HeaderValue::from_static("nginx"));
        resp.run(&req("http://a.test/"), false, &mut h);
        assert!(h.contains_key("server"));
        resp.run(&req("http://a.test/"), true, &mut h);
        assert!(!h.contains_key("server"));
    }
}
