//! Which proxies a transfer uses: `-x` chains, `--preproxy`, and curl's environment
//! variables (`http_proxy` lower case only, `HTTPS_PROXY`, `ALL_PROXY`, `NO_PROXY`).

use burrow_http_core::credentials::Credentials;
use burrow_proxy::route::ProxyUrl;

use super::exit::{self, Exit};
use super::Args;

/// The hops for a URL, nearest first (empty: direct). The environment and `NO_PROXY` are
/// read by the library's [`burrow::EnvProxies`], as the library's clients read them; a bad
/// proxy variable is an error only when it would be used (no `-x`).
/// Each hop comes with the position of the `-x` it came from (`None`: `--preproxy`,
/// `--socks5…` or the environment), which per-hop options refer to.
pub fn hops(args: &Args, uri: &http::Uri) -> Result<Vec<(ProxyUrl, Option<usize>)>, Exit> {
    let bad = |e: burrow_transport::Error| Exit::new(exit::UNSUPPORTED_PROTOCOL, e.to_string());
    // --socks5, --socks5-hostname and --socks4a name the proxy as -x does, and replace it
    // (in curl they are mutually exclusive with -x, the last one winning).
    let socks = [
        ("socks5", &args.socks5),
        ("socks5h", &args.socks5_hostname),
        ("socks4a", &args.socks4a),
        ("http", &args.proxy10),
    ]
    .into_iter()
    .filter_map(|(scheme, v)| v.as_ref().map(|h| format!("{scheme}://{h}")))
    .next_back();
    let from_x = socks.is_none();
    let proxies: Vec<String> = match socks {
        Some(s) => vec![s],
        None => args.proxy.clone(),
    };
    let env = if proxies.is_empty() {
        burrow::EnvProxies::from_env().map_err(bad)?
    } else {
        burrow::EnvProxies::read(|n| {
            n.eq_ignore_ascii_case("no_proxy")
                .then(|| std::env::var(n).ok())
                .flatten()
        })
        .map_err(bad)?
    };
    // --noproxy replaces NO_PROXY, as in curl.
    let noproxy = match &args.noproxy {
        Some(list) => burrow::NoProxy::parse(list),
        None => env.no_proxy().clone(),
    };
    if noproxy.matches(uri.host().unwrap_or("")) {
        return Ok(Vec::new());
    }
    let from_env = env.proxy_for(uri).map(|p| p.proxy_url().clone());
    let bad = |e: burrow_transport::Error| Exit::new(exit::UNSUPPORTED_PROTOCOL, e.to_string());
    let mut hops: Vec<(ProxyUrl, Option<usize>)> = proxies
        .iter()
        .enumerate()
        .map(|(i, s)| {
            ProxyUrl::parse(s)
                .map(|u| (u, from_x.then_some(i)))
                .map_err(bad)
        })
        .collect::<Result<_, _>>()?;
    if hops.is_empty() {
        hops.extend(from_env.map(|u| (u, None)));
    }
    if args.proxy10.is_some() {
        if let Some((h, _)) = hops.last_mut() {
            h.http10 = true;
        }
    }
    if let (Some(user), Some((last, _))) = (&args.proxy_user, hops.last_mut()) {
        if last.credentials.is_none() {
            let (u, p) = user.split_once(':').unwrap_or((user, ""));
            last.credentials = Some(Credentials {
                user: u.into(),
                pass: p.into(),
            });
        }
    }
    if args.proxy_http3 {
        for (h, _) in hops.iter_mut() {
            if h.kind == burrow_proxy::route::ProxyKind::Https {
                h.kind = burrow_proxy::route::ProxyKind::H3;
            }
        }
    }
    if let Some(pre) = &args.preproxy {
        hops.insert(0, (ProxyUrl::parse(pre).map_err(bad)?, None));
    }
    Ok(hops)
}
