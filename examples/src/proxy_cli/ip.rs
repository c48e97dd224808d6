//! `--ip-pool`, `--ip-route`, `--tun-name`, `--tun-mtu`: the network CONNECT-IP clients
//! are given.

use burrow_proxy::server;
use burrow_transport::Error;

use super::Args;

/// `--ip-pool`, `--ip-route`, `--tun-name` and `--tun-mtu`: CONNECT-IP's network, or
/// `None` without a pool.
pub fn ip_network(args: &Args) -> Result<Option<server::IpNetConfig>, Error> {
    use burrow_http_core::connect_ip::{Prefix, Range};
    if args.ip_pool.is_empty() {
        if !args.ip_route.is_empty() {
            return Err(Error::invalid_input("--ip-route needs --ip-pool"));
        }
        return Ok(None);
    }
    let prefix = |flag: &str, s: &str| -> Result<Prefix, Error> {
        let bad = || {
            Error::invalid_input(format!(
                "{flag} {s:?}: wants ADDR/LEN with no host bits set"
            ))
        };
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let a: std::net::IpAddr = a.parse().map_err(|_| bad())?;
        let l: u8 = l.parse().map_err(|_| bad())?;
        Prefix::new(a, l).ok_or_else(bad)
    };
    let mut cfg = server::IpNetConfig {
        tun_name: args.tun_name.clone(),
        mtu: args.tun_mtu,
        ..Default::default()
    };
    for s in &args.ip_pool {
        let p = prefix("--ip-pool", s)?;
        let slot = if p.addr.is_ipv6() {
            &mut cfg.pool_v6
        } else {
            &mut cfg.pool_v4
        };
        if slot.replace(p).is_some() {
            return Err(Error::invalid_input(
                "--ip-pool: one prefix per address family",
            ));
        }
        // The device's address, at least one client's, and (IPv4) the broadcast address.
        let room = if p.addr.is_ipv6() { 126 } else { 30 };
        if p.len > room {
            return Err(Error::invalid_input(format!(
                "--ip-pool {s:?}: too small for any client"
            )));
        }
    }
    if usize::from(args.tun_mtu) < burrow_transport::ip::IPV6_MIN_MTU && cfg.pool_v6.is_some() {
        return Err(Error::invalid_input(
            "--tun-mtu below 1280 cannot carry IPv6",
        ));
    }
    for s in &args.ip_route {
        let p = prefix("--ip-route", s)?;
        let (start, end) = burrow_proxy::connect_ip::prefix_bounds(p.addr, p.len);
        cfg.routes.push(Range {
            start,
            end,
            protocol: 0,
        });
    }
    cfg.routes.sort_by_key(|r| (r.start.is_ipv6(), r.start));
    if cfg
        .routes
        .windows(2)
        .any(|w| w[0].start.is_ipv6() == w[1].start.is_ipv6() && w[1].start <= w[0].end)
    {
        return Err(Error::invalid_input("--ip-route: routes overlap"));
    }
    Ok(Some(cfg))
}
