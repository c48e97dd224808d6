//! `-K FILE` / `--config FILE`: options read from a file, as curl reads them.
//!
//! One option per line, its leading dashes optional (`url = "http://x"`, `-o out`,
//! `silent`); the value follows after spaces, `=` or `:`; a value in double quotes may hold
//! spaces and the escapes `\\`, `\"`, `\t`, `\n`, `\r`, `\v`; lines starting with `#` are
//! comments. A config file may name another (`config = FILE`), up to [`MAX_DEPTH`] deep.

use std::ffi::OsString;

use clap::CommandFactory;

use super::exit::{self, Exit};
use super::Args;

/// How deep config files may include each other.
pub const MAX_DEPTH: usize = 8;

/// The largest config file read.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// `argv` with every `-K`/`--config` replaced by the options its file holds.
/// `depth`: how many config files deep `argv` comes from (0 for the command line).
pub fn expand(argv: Vec<OsString>, depth: usize) -> Result<Vec<OsString>, Exit> {
    let mut out = Vec::with_capacity(argv.len());
    let mut it = argv.into_iter();
    if let Some(prog) = it.next() {
        out.push(prog);
    }
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        let file = if s == "-K" || s == "--config" {
            match it.next() {
                Some(f) => f.to_string_lossy().into_owned(),
                None => return Err(Exit::new(exit::FAILED_INIT, format!("{s} needs a file"))),
            }
        } else if let Some(f) = s.strip_prefix("--config=") {
            f.to_string()
        } else if let (Some(f), false) = (s.strip_prefix("-K"), s.starts_with("--")) {
            f.to_string()
        } else {
            if s == "--" {
                out.push(a);
                out.extend(it);
                return Ok(out);
            }
            out.push(a);
            continue;
        };
        if depth >= MAX_DEPTH {
            return Err(Exit::new(
                exit::FAILED_INIT,
                format!("config files nested deeper than {MAX_DEPTH}"),
            ));
        }
        let text = read(&file)?;
        let mut inner = vec![OsString::from("burrow")];
        inner.extend(parse(&text, &file)?.into_iter().map(OsString::from));
        let inner = expand(inner, depth + 1)?;
        out.extend(inner.into_iter().skip(1));
    }
    Ok(out)
}

fn read(file: &str) -> Result<String, Exit> {
    super::output::read_capped(file, MAX_CONFIG_BYTES)?
        .ok_or_else(|| Exit::new(exit::READ_ERROR, format!("cannot open {file}")))
}

/// Whether an option takes a value (`-O`-like flags are values of their own, with none).
fn takes(a: &clap::Arg) -> bool {
    a.get_action().takes_values() && a.get_num_args().is_none_or(|r| r.max_values() > 0)
}

/// Whether the option `word` (`-c` or `--name`) takes a value; `None` when there is no such
/// option.
fn takes_value(word: &str) -> Option<bool> {
    if word == "-K" || word == "--config" {
        return Some(true);
    }
    let long = word.strip_prefix("--");
    let short = word.strip_prefix('-').and_then(|c| c.chars().next());
    Args::command()
        .get_arguments()
        .find(|a| match long {
            Some(l) => {
                a.get_long() == Some(l) || a.get_visible_aliases().is_some_and(|v| v.contains(&l))
            }
            None => a.get_short() == short,
        })
        .map(takes)
}

/// The command-line words a config file's text stands for; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<String>, Exit> {
    let mut words = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| Exit::new(exit::FAILED_INIT, format!("{file}:{}: {why}", n + 1));
        let name_end = line
            .find(|c: char| c.is_whitespace() || c == '=' || c == ':')
            .unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        let rest = rest
            .trim_start()
            .strip_prefix(['=', ':'])
            .unwrap_or(rest.trim_start())
            .trim_start();
        // `name` as given for a short option; without its dashes for a long one.
        let (word, shown) = if let Some(c) = name.strip_prefix('-').filter(|s| !s.starts_with('-'))
        {
            if c.chars().count() != 1 {
                return Err(bad(&format!("unknown option {name:?}")));
            }
            (name.to_string(), name)
        } else {
            let long = name.trim_start_matches('-');
            (format!("--{long}"), long)
        };
        let needs = takes_value(&word).ok_or_else(|| bad(&format!("unknown option {shown:?}")))?;
        words.push(word);
        if !needs {
            continue;
        }
        if rest.is_empty() {
            return Err(bad(&format!("{name} needs a value")));
        }
        words.push(value(rest).map_err(bad)?);
    }
    Ok(words)
}

/// A value: quoted with escapes, or up to the first space.
fn value(s: &str) -> Result<String, &'static str> {
    let Some(q) = s.strip_prefix('"') else {
        return Ok(s.split_whitespace().next().unwrap_or("").to_string());
    };
    let mut out = String::new();
    let mut chars = q.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return Ok(out),
            '\\' => match chars.next() {
                Some('t') => out.push('\t'),
                Some('n') => out.push('\n'),
                Some('r') => out.push('\r'),
                Some('v') => out.push('\u{b}'),
                Some(other) => out.push(other),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines_become_options() {
        let text = "# a comment\n\
                    url = \"http://example.com/a b\"\n\
                    -o out.bin\n\
                    silent\n\
                    remote-name\n\
                    --header: \"X-Tab: a\\tb\"\n\
                    max-time 5\n\
                    \n\
                    user-agent=\"quoted \\\"agent\\\"\"\n";
        assert_eq!(
            parse(text, "f").unwrap(),
            [
                "--url",
                "http://example.com/a b",
                "-o",
                "out.bin",
                "--silent",
                "--remote-name",
                "--header",
                "X-Tab: a\tb",
                "--max-time",
                "5",
                "--user-agent",
                "quoted \"agent\"",
            ]
        );
    }

    #[test]
    fn config_errors_name_the_line() {
        let e = parse("silent\nno-such-option 1\n", "my.cfg").unwrap_err();
        assert_eq!(e.code, exit::FAILED_INIT);
        assert!(e.message.contains("my.cfg:2"), "{}", e.message);
        let e = parse("url\n", "f").unwrap_err();
        assert!(e.message.contains("needs a value"), "{}", e.message);
        let e = parse("url = \"open\n", "f").unwrap_err();
        assert!(e.message.contains("unterminated"), "{}", e.message);
    }

    #[test]
    fn config_files_nest_up_to_the_limit() {
        let dir = std::env::temp_dir().join(format!("burrow-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = dir.join("a.cfg");
        let b = dir.join("b.cfg");
        std::fs::write(&a, format!("silent\nconfig = \"{}\"\n", b.display())).unwrap();
        std::fs::write(&b, "url = http://x/\n").unwrap();
        let argv = ["burrow", "-v", "-K", a.to_str().unwrap(), "-i"]
            .map(OsString::from)
            .to_vec();
        let got = expand(argv, 0).unwrap();
        assert_eq!(
            got,
            ["burrow", "-v", "--silent", "--url", "http://x/", "-i"].map(OsString::from)
        );
        // A file that includes itself stops at the depth limit.
        std::fs::write(&b, format!("config = \"{}\"\n", b.display())).unwrap();
        let e = expand(
            ["burrow", "-K", b.to_str().unwrap()]
                .map(OsString::from)
                .to_vec(),
            0,
        )
        .unwrap_err();
        assert!(e.message.contains("deeper"), "{}", e.message);
        let _ = std::fs::remove_dir_all(dir);
    }
}
