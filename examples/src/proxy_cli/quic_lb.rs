//! `--quic-lb-*`: the QUIC-LB configuration of the HTTP/3 listeners.

use burrow_http3::quic_lb::{QuicLb, SINGLE_PASS_LEN};
use burrow_transport::Error;

use super::{bad, Args};

/// Longest key file read: 32 hex digits and some white space.
pub const MAX_KEY_FILE: u64 = 4096;

fn unhex(s: &str, what: &str) -> Result<Vec<u8>, Error> {
    let s = s.trim();
    let ok = s.len() % 2 == 0 && !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        return Err(bad(format!("{what} wants an even number of hex digits")));
    }
    Ok((0..s.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect())
}

/// The configuration, or `None` without `--quic-lb-server-id`.
pub(super) fn config(args: &Args) -> Result<Option<QuicLb>, Error> {
    let Some(sid) = &args.quic_lb_server_id else {
        if args.quic_lb_key_file.is_some() || args.quic_lb_nonce_len.is_some() {
            return Err(bad("--quic-lb-key-file and --quic-lb-nonce-len need \
                            --quic-lb-server-id"
                .into()));
        }
        return Ok(None);
    };
    let sid = unhex(sid, "--quic-lb-server-id")?;
    let key = match &args.quic_lb_key_file {
        None => None,
        Some(path) => {
            use std::io::Read;
            let mut text = String::new();
            std::fs::File::open(path)
                .and_then(|f| f.take(MAX_KEY_FILE + 1).read_to_string(&mut text))
                .map_err(|e| bad(format!("reading {}: {e}", path.display())))?;
            if text.len() as u64 > MAX_KEY_FILE {
                return Err(bad(format!(
                    "{} is larger than {MAX_KEY_FILE} bytes: not a QUIC-LB key",
                    path.display()
                )));
            }
            let key: [u8; 16] = unhex(&text, "the QUIC-LB key file")?
                .try_into()
                .map_err(|_| bad(format!("{}: a QUIC-LB key is 16 octets", path.display())))?;
            Some(key)
        }
    };
    let default_nonce = match key {
        Some(_) => SINGLE_PASS_LEN.saturating_sub(sid.len()),
        None => 8,
    };
    let nonce = args.quic_lb_nonce_len.unwrap_or(default_nonce);
    let lb = QuicLb::new(args.quic_lb_rotation, &sid, nonce)?;
    Ok(Some(match key {
        Some(k) => lb.with_key(k)?,
        None => lb,
    }))
}

/// What a reload compares (the key file by name).
pub(super) fn summary(a: &Args) -> String {
    format!(
        "{:?} {} {:?} {:?}",
        a.quic_lb_server_id, a.quic_lb_rotation, a.quic_lb_nonce_len, a.quic_lb_key_file
    )
}
