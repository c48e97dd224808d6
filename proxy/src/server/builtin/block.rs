//! Block lists: targets matching a pattern are refused (403, `Proxy-Status:
//! http_request_denied`; SOCKS: not allowed), for forwarded requests and tunnels alike.

use async_trait::async_trait;
use burrow_transport::{Error, Target};
use http::StatusCode;

use super::super::hooks::{Flow, HookResult, Hooks, LocalResponse, Request, Tunnel, Verdict};
use super::super::routes::Pattern;
use super::request_target;

/// Refuses targets matching any of its patterns.
#[derive(Clone, Debug, Default)]
pub struct BlockList {
    patterns: Vec<Pattern>,
}

impl BlockList {
    /// A list of these patterns.
    pub fn new(patterns: Vec<Pattern>) -> BlockList {
        BlockList { patterns }
    }

    /// Parses a block-list file: one pattern per line; blank lines and `#` comments are
    /// skipped.
    pub fn parse_file(text: &str) -> Result<Vec<Pattern>, Error> {
        text.lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter(|l| !l.is_empty())
            .map(Pattern::parse)
            .collect()
    }

    /// Whether `t` is blocked.
    pub fn blocks(&self, t: &Target) -> bool {
        self.patterns.iter().any(|p| p.matches(t))
    }
}

fn refusal(t: &Target) -> Verdict {
    Verdict::Respond(
        LocalResponse::new(
            StatusCode::FORBIDDEN,
            format!("403 Forbidden: {t} is blocked\n"),
        )
        .header("content-type", "text/plain")
        .header(
            "proxy-status",
            "burrow; error=http_request_denied; details=\"blocked by the block list\"",
        ),
    )
}

#[async_trait]
impl Hooks for BlockList {
    fn name(&self) -> &str {
        "block-list"
    }

    async fn request_headers(&self, _flow: &Flow, r: &mut Request) -> HookResult {
        match request_target(r) {
            Some(t) if self.blocks(&t) => Ok(refusal(&t)),
            _ => Ok(Verdict::Continue),
        }
    }

    async fn tunnel_requested(&self, _flow: &Flow, t: &mut Tunnel) -> HookResult {
        if self.blocks(&t.target) {
            return Ok(refusal(&t.target));
        }
        Ok(Verdict::Continue)
    }

    async fn datagram_destination(&self, _flow: &Flow, t: &Target) -> HookResult {
        if self.blocks(t) {
            return Ok(refusal(t));
        }
        Ok(Verdict::Continue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_parse_and_patterns_block() {
        let p = BlockList::parse_file("# ads\n*.ads.example\n\n10.0.0.0/8  # private\n").unwrap();
        let b = BlockList::new(p);
        assert_eq!(b.patterns.len(), 2);
        assert!(b.blocks(&"x.ads.example:443".parse().unwrap()));
        assert!(b.blocks(&"10.1.1.1:80".parse().unwrap()));
        assert!(!b.blocks(&"ads.example:443".parse().unwrap()));
        assert!(BlockList::parse_file("not a pattern\n").is_err());
    }
}
