//! How an HTTP/1.x response head was spelled on the wire.

use http::HeaderName;

/// How an HTTP/1.x response head was spelled on the wire: its reason phrase and the case
/// of its field names, which `http`'s types do not keep (HTTP/2 and HTTP/3 have neither:
/// no reason phrase, and names in lowercase). The HTTP/1.1 client puts one on each
/// response it receives as an extension, so that a tool can show a head as it came, as
/// curl's `-i` does (hyper keeps the reason as its `ReasonPhrase` extension).
///
/// It holds at most one spelling per field name, and only for names not already in
/// lowercase: its size is bounded by the head's, which the parser limits.
///
/// ```
/// use burrow_http_core::Spelling;
/// use http::header::CONTENT_TYPE;
///
/// let mut s = Spelling::new("Okay");
/// s.spell(&CONTENT_TYPE, "Content-Type");
/// assert_eq!(s.reason(), "Okay");
/// assert_eq!(s.name(&CONTENT_TYPE), "Content-Type");
/// assert_eq!(s.name(&http::header::DATE), "date");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Spelling {
    reason: String,
    /// (the name, as received), first spelling of each name not received in lowercase.
    names: Vec<(HeaderName, String)>,
}

impl Spelling {
    /// A head whose status line said `reason`, with no field names spelled yet.
    pub fn new(reason: impl Into<String>) -> Self {
        Spelling {
            reason: reason.into(),
            names: Vec::new(),
        }
    }

    /// Records that `name` came as `wire` (the same name in any case); the first
    /// spelling of a name is kept, and a lowercase one takes no room.
    pub fn spell(&mut self, name: &HeaderName, wire: &str) {
        if wire != name.as_str()
            && wire.eq_ignore_ascii_case(name.as_str())
            && !self.names.iter().any(|(n, _)| n == name)
        {
            self.names.push((name.clone(), wire.to_string()));
        }
    }

    /// The reason phrase as received (possibly empty).
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// `name` as it was spelled, or in lowercase if it was not received.
    pub fn name<'a>(&'a self, name: &'a HeaderName) -> &'a str {
        self.names
            .iter()
            .find(|(n, _)| n == name)
            .map_or(name.as_str(), |(_, w)| w.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_spelling_and_only_of_the_same_name() {
        let mut s = Spelling::new("");
        let x = HeaderName::from_static("x-trace");
        s.spell(&x, "X-Trace");
        s.spell(&x, "x-TRACE");
        s.spell(&x, "X-Other");
        assert_eq!(s.name(&x), "X-Trace");
        s.spell(&http::header::DATE, "date");
        assert!(s.names.len() == 1, "lowercase takes no room: {s:?}");
        assert_eq!(s.name(&http::header::DATE), "date");
        assert_eq!(s.reason(), "");
    }
}
