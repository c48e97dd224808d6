//! URL globbing as curl does it: `{a,b,c}` sets, `[1-100]` and `[001-100:10]` numeric
//! ranges (leading zeros pad), `[a-z]` letter ranges; `\{`, `\[` are literal; a bracket
//! holding a `:`-separated IPv6 address is literal. The leftmost pattern varies slowest.
//! `#N` in an output name is the N-th pattern's text for that URL.

use super::exit::{self, Exit};

/// The most URLs one globbed argument may expand to.
pub const MAX_GLOB_URLS: usize = 100_000;

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Choices(Vec<String>),
}

/// The URLs `pattern` stands for, each with the texts its patterns took.
pub fn expand(pattern: &str) -> Result<Vec<(String, Vec<String>)>, Exit> {
    let pieces = parse(pattern)?;
    let mut total: usize = 1;
    for p in &pieces {
        if let Piece::Choices(c) = p {
            total = total.saturating_mul(c.len());
        }
    }
    if total > MAX_GLOB_URLS {
        return Err(bad(format!(
            "{pattern:?} expands to more than {MAX_GLOB_URLS} URLs"
        )));
    }
    let mut out = vec![(String::new(), Vec::new())];
    for p in &pieces {
        match p {
            Piece::Text(t) => out.iter_mut().for_each(|(u, _)| u.push_str(t)),
            Piece::Choices(c) => {
                out = out
                    .into_iter()
                    .flat_map(|(u, vars)| {
                        c.iter().map(move |choice| {
                            let mut vars = vars.clone();
                            vars.push(choice.clone());
                            (format!("{u}{choice}"), vars)
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(out)
}

/// `name` with `#1`…`#9` replaced by the texts of the URL's patterns (`#N` past the last
/// is kept as written).
pub fn fill(name: &str, vars: &[String]) -> String {
    let mut out = String::new();
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '#' {
            if let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                if let Some(v) = vars.get((d as usize).wrapping_sub(1)) {
                    chars.next();
                    out.push_str(v);
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

fn bad(msg: String) -> Exit {
    Exit::new(exit::URL_MALFORMAT, format!("bad URL glob: {msg}"))
}

fn parse(pattern: &str) -> Result<Vec<Piece>, Exit> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = pattern.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if matches!(chars.peek(), Some((_, '{' | '}' | '[' | ']'))) => {
                if let Some((_, n)) = chars.next() {
                    text.push(n);
                }
            }
            '{' => {
                let end = pattern[i..]
                    .find('}')
                    .ok_or_else(|| bad(format!("unmatched brace at {}", i + 1)))?;
                let inner = &pattern[i + 1..i + end];
                if inner.contains(['{', '[']) {
                    return Err(bad(format!("nested braces at {}", i + 1)));
                }
                pieces.push(Piece::Text(std::mem::take(&mut text)));
                pieces.push(Piece::Choices(inner.split(',').map(String::from).collect()));
                skip_to(&mut chars, i + end);
            }
            '[' => {
                let end = pattern[i..]
                    .find(']')
                    .ok_or_else(|| bad(format!("unmatched bracket at {}", i + 1)))?;
                let inner = &pattern[i + 1..i + end];
                if inner.contains(':')
                    && inner
                        .chars()
                        .all(|c| c.is_ascii_hexdigit() || ".:%".contains(c))
                    && inner.matches(':').count() >= 2
                {
                    // An IPv6 address literal.
                    text.push_str(&pattern[i..=i + end]);
                } else {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                    pieces.push(Piece::Choices(range(inner)?));
                }
                skip_to(&mut chars, i + end);
            }
            '}' | ']' => return Err(bad(format!("unmatched {c:?} at {}", i + 1))),
            c => text.push(c),
        }
    }
    pieces.push(Piece::Text(text));
    Ok(pieces)
}

fn skip_to(chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>, end: usize) {
    while chars.peek().is_some_and(|(j, _)| *j <= end) {
        chars.next();
    }
}

/// `1-10`, `01-10`, `a-z`, with an optional `:step`.
fn range(spec: &str) -> Result<Vec<String>, Exit> {
    let wrong = || bad(format!("bad range [{spec}]"));
    let (span, step) = match spec.split_once(':') {
        Some((s, st)) => (s, st.parse::<u64>().map_err(|_| wrong())?),
        None => (spec, 1),
    };
    if step == 0 {
        return Err(wrong());
    }
    let (a, b) = span.split_once('-').ok_or_else(wrong)?;
    let step = step as usize;
    if let (Ok(x), Ok(y)) = (a.parse::<u64>(), b.parse::<u64>()) {
        if x > y {
            return Err(wrong());
        }
        if (y - x) / step as u64 >= MAX_GLOB_URLS as u64 {
            return Err(bad(format!(
                "[{spec}] has more than {MAX_GLOB_URLS} values"
            )));
        }
        let width = if a.starts_with('0') && a.len() > 1 {
            a.len()
        } else {
            0
        };
        return Ok((x..=y)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect());
    }
    let mut ca = a.chars();
    let mut cb = b.chars();
    match (ca.next(), ca.next(), cb.next(), cb.next()) {
        (Some(x), None, Some(y), None)
            if x.is_ascii_alphabetic()
                && y.is_ascii_alphabetic()
                && x <= y
                && x.is_ascii_lowercase() == y.is_ascii_lowercase() =>
        {
            Ok((x..=y).step_by(step).map(String::from).collect())
        }
        _ => Err(wrong()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(p: &str) -> Vec<String> {
        expand(p).unwrap().into_iter().map(|(u, _)| u).collect()
    }

    #[test]
    fn sets_and_ranges_expand_leftmost_slowest() {
        assert_eq!(
            urls("http://h/{a,b}/[1-2]"),
            [
                "http://h/a/1",
                "http://h/a/2",
                "http://h/b/1",
                "http://h/b/2"
            ]
        );
        assert_eq!(urls("x[08-11]"), ["x08", "x09", "x10", "x11"]);
        assert_eq!(urls("x[1-10:4]"), ["x1", "x5", "x9"]);
        assert_eq!(urls("[a-c]"), ["a", "b", "c"]);
        assert_eq!(urls("[a-e:2]"), ["a", "c", "e"]);
        assert_eq!(urls("http://h/\\{x\\}"), ["http://h/{x}"]);
        assert_eq!(urls("http://[::1]:8080/"), ["http://[::1]:8080/"]);
        assert_eq!(urls("plain"), ["plain"]);
    }

    #[test]
    fn outputs_take_the_pattern_texts() {
        let all = expand("http://h/{one,two}/[7-8].txt").unwrap();
        let names: Vec<String> = all.iter().map(|(_, v)| fill("f_#1_#2_#3", v)).collect();
        assert_eq!(
            names,
            ["f_one_7_#3", "f_one_8_#3", "f_two_7_#3", "f_two_8_#3"]
        );
    }

    #[test]
    fn bad_globs_are_url_errors() {
        for p in ["{a,b", "[1-", "x]", "[9-1]", "[a-9]", "[1-2:0]", "{a,{b}}"] {
            let e = expand(p).unwrap_err();
            assert_eq!(e.code, exit::URL_MALFORMAT, "{p}");
        }
        let e = expand("[1-100000][1-2]").unwrap_err();
        assert!(e.message.contains("more than"), "{}", e.message);
    }
}
