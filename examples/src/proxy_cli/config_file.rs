//! `--config FILE`: a TOML file's settings as command-line words, read before the
//! command line's own.

use burrow_transport::Error;
use clap::Parser;

use super::{bad, Args};

/// Largest configuration file read.
pub const MAX_CONFIG_FILE: u64 = 1 << 20;

/// A UTF-8 file of at most `max` bytes (read through the bound, not after a size check).
pub(super) fn read_bounded(path: &std::path::Path, max: u64) -> Result<String, Error> {
    use std::io::Read;
    let name = path.display();
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut buf))
        .map_err(|e| Error::local_io(format!("reading {name}"), e))?;
    if buf.len() as u64 > max {
        return Err(bad(format!("{name} is larger than {max} bytes")));
    }
    String::from_utf8(buf).map_err(|_| bad(format!("{name} is not UTF-8")))
}

/// Why the command line could not be read.
#[derive(Debug)]
pub enum ArgsError {
    /// clap's own (including --help and --version, which it prints).
    Clap(clap::Error),
    /// The configuration file.
    Config(Error),
}

/// The options a TOML configuration file stands for, as command-line words: keys are long
/// option names, values strings, numbers, booleans (a flag) or arrays of them.
pub fn config_words(path: &std::path::Path) -> Result<Vec<String>, Error> {
    let name = path.display();
    let text = read_bounded(path, MAX_CONFIG_FILE)?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| bad(format!("{name}: {}", e.message())))?;
    let mut words = Vec::new();
    for (k, v) in table {
        let key = k.replace('_', "-");
        if key == "config" {
            return Err(bad(format!(
                "{name}: a configuration file cannot name another"
            )));
        }
        let flag = format!("--{key}");
        let scalar = |v: &toml::Value| -> Result<Option<String>, Error> {
            Ok(match v {
                toml::Value::String(s) => Some(s.clone()),
                toml::Value::Integer(i) => Some(i.to_string()),
                toml::Value::Float(f) => Some(f.to_string()),
                toml::Value::Boolean(_) => None,
                _ => return Err(bad(format!("{name}: {k}: not a string, number or boolean"))),
            })
        };
        match &v {
            toml::Value::Boolean(true) => words.push(flag),
            toml::Value::Boolean(false) => {}
            toml::Value::Array(items) => {
                for i in items {
                    let Some(x) = scalar(i)? else {
                        return Err(bad(format!("{name}: {k}: an array of booleans")));
                    };
                    // One word, so that a value starting with '-' stays a value.
                    words.push(format!("{flag}={x}"));
                }
            }
            other => {
                if let Some(x) = scalar(other)? {
                    words.push(format!("{flag}={x}"));
                }
            }
        }
    }
    Ok(words)
}

/// The first line of a clap error, without its `error: `.
pub(super) fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("");
    first.trim_start_matches("error: ").to_string()
}

/// Reads the command line, with the settings of `--config FILE` before its own.
pub fn parse_args(argv: &[std::ffi::OsString]) -> Result<Args, ArgsError> {
    let first = Args::try_parse_from(argv).map_err(ArgsError::Clap)?;
    let mut args = match &first.config {
        None => first,
        Some(path) => {
            let words = config_words(path).map_err(ArgsError::Config)?;
            let mut all: Vec<std::ffi::OsString> = argv.iter().take(1).cloned().collect();
            all.extend(words.into_iter().map(Into::into));
            all.extend(argv.iter().skip(1).cloned());
            Args::try_parse_from(&all).map_err(|e| {
                ArgsError::Config(bad(format!("{}: {}", path.display(), clap_message(&e))))
            })?
        }
    };
    args.argv = argv.to_vec();
    Ok(args)
}
