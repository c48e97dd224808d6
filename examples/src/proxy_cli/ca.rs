//! The interception CA: `burrow-proxy ca init`, and loading it for `--intercept`.

use std::path::PathBuf;
use std::sync::Arc;

use burrow_proxy::server::{self, Pattern};
use burrow_transport::Error;

use super::{bad, Args};

/// Where `ca init` puts the CA by default: `$HOME/.burrow-proxy`.
pub fn default_ca_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".burrow-proxy")
}

/// `burrow-proxy ca init`: writes a new CA; the key readable by its owner only.
pub fn ca_init(dir: Option<PathBuf>, force: bool) -> Result<(PathBuf, PathBuf), Error> {
    let dir = dir.unwrap_or_else(default_ca_dir);
    let (cert, key) = (dir.join("ca.pem"), dir.join("ca-key.pem"));
    if !force && (cert.exists() || key.exists()) {
        return Err(bad(format!(
            "{} already has a CA (--force replaces it)",
            dir.display()
        )));
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::local_io(format!("creating {}", dir.display()), e))?;
    let (cert_pem, key_pem) = burrow_proxy::server::intercept::Ca::generate()?;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let write = |path: &PathBuf, text: &str, mode: u32| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(mode)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Error::local_io(format!("writing {}", path.display()), e))
    };
    // Written anew, so that the key is created with its mode (an old file keeps its own).
    for p in [&key, &cert] {
        match std::fs::remove_file(p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(Error::local_io(format!("replacing {}", p.display()), e))
            }
            _ => {}
        }
    }
    write(&key, &key_pem, 0o600)?;
    write(&cert, &cert_pem, 0o644)?;
    Ok((cert, key))
}

pub(super) fn intercept_config(args: &Args) -> Result<Option<server::InterceptConfig>, Error> {
    if !args.intercept {
        return Ok(None);
    }
    let dir = default_ca_dir();
    let cert = args.ca_cert.clone().unwrap_or_else(|| dir.join("ca.pem"));
    let key = args
        .ca_key
        .clone()
        .unwrap_or_else(|| dir.join("ca-key.pem"));
    let read = |p: &PathBuf| {
        std::fs::read_to_string(p).map_err(|e| {
            Error::local_io(
                format!(
                    "reading the interception CA {} (make one with `burrow-proxy ca init`)",
                    p.display()
                ),
                e,
            )
        })
    };
    let ca = burrow_proxy::server::intercept::Ca::load(&read(&cert)?, &read(&key)?)?;
    let patterns = |v: &[String]| {
        v.iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(Some(server::InterceptConfig {
        ca: Arc::new(ca),
        rules: burrow_proxy::server::intercept::InterceptRules {
            hosts: patterns(&args.intercept_hosts)?,
            ignore: patterns(&args.ignore_hosts)?,
        },
    }))
}
