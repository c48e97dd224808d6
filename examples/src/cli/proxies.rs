//! Which proxies a transfer uses: `-x` chains, `--preproxy`, and curl's environment
//! variables (`http_proxy` lower case only, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).

use burrow_http_core::credentials::Credentials;
use burrow_proxy::route::ProxyUrl;

use super::exit::{self, Exit};
use super::Args;

fn env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.trim().is_empty()))
}

/// Whether `host` is excluded by a NO_PROXY-style list (curl's rules: `*`, exact names,
/// domain suffixes with or without a leading dot, IP literals).
pub fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase();
    list.split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty())
        .any(|e| {
            if e == "*" {
                return true;
            }
            let e = e.trim_start_matches('.').to_ascii_lowercase();
            host == e || host.ends_with(&format!(".{e}"))
        })
}

/// The hops for a URL, nearest first (empty: direct).
pub fn hops(args: &Args, uri: &http::Uri) -> Result<Vec<ProxyUrl>, Exit> {
    let host = uri.host().unwrap_or("");
    let noproxy = args
        .noproxy
        .clone()
        .or_else(|| env(&["NO_PROXY", "no_proxy"]));
    if noproxy
        .as_deref()
        .is_some_and(|l| no_proxy_matches(l, host))
    {
        return Ok(Vec::new());
    }
    let mut specs = args.proxy.clone();
    if specs.is_empty() {
        // curl reads http_proxy only in lower case (HTTP_PROXY can be set by a CGI client).
        let from_env = match uri.scheme_str() {
            Some("https") => env(&["https_proxy", "HTTPS_PROXY"]),
            _ => env(&["http_proxy"]),
        }
        .or_else(|| env(&["ALL_PROXY", "all_proxy"]));
        specs.extend(from_env);
    }
    let bad = |e: burrow_transport::Error| Exit::new(exit::UNSUPPORTED_PROTOCOL, e.to_string());
    let mut hops: Vec<ProxyUrl> = specs
        .iter()
        .map(|s| ProxyUrl::parse(s).map_err(bad))
        .collect::<Result<_, _>>()?;
    if let (Some(user), Some(last)) = (&args.proxy_user, hops.last_mut()) {
        if last.credentials.is_none() {
            let (u, p) = user.split_once(':').unwrap_or((user, ""));
            last.credentials = Some(Credentials {
                user: u.into(),
                pass: p.into(),
            });
        }
    }
    if args.proxy_http3 {
        for h in hops.iter_mut() {
            if h.kind == burrow_proxy::route::ProxyKind::Https {
                h.kind = burrow_proxy::route::ProxyKind::H3;
            }
        }
    }
    if let Some(pre) = &args.preproxy {
        hops.insert(0, ProxyUrl::parse(pre).map_err(bad)?);
    }
    Ok(hops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_rules() {
        assert!(no_proxy_matches("*", "anything"));
        assert!(no_proxy_matches("example.com", "example.com"));
        assert!(no_proxy_matches("example.com", "www.example.com"));
        assert!(no_proxy_matches(".example.com", "www.example.com"));
        assert!(!no_proxy_matches("example.com", "badexample.com"));
        assert!(no_proxy_matches("localhost, 127.0.0.1", "127.0.0.1"));
        assert!(no_proxy_matches("::1", "[::1]"));
        assert!(!no_proxy_matches("", "x"));
    }
}
