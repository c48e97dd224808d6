//! The access log: a line per request and per tunnel when it ends, as JSON lines or in the
//! common log format (with burrow's fields after the seven of CLF).
//!
//! Fields: the time it arrived, the client's address, the user, the method or tunnel
//! kind, the target (a request's URI), the versions on both sides, the route taken, the
//! status (a SOCKS reply for SOCKS), the Proxy-Status error of a refusal, bytes up and
//! down, the duration, and how it ended.

use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use async_trait::async_trait;
use burrow_transport::Error;

use super::super::hooks::{Flow, Hooks, Summary, What};

/// How lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// The common log format, then `"upstream-version" "route" bytes-up duration-ms end`.
    Common,
}

impl LogFormat {
    /// Parses `json` or `common` (`clf`).
    pub fn parse(s: &str) -> Result<LogFormat, Error> {
        match s {
            "json" => Ok(LogFormat::Json),
            "common" | "clf" => Ok(LogFormat::Common),
            _ => Err(Error::invalid_input(format!(
                "unknown access log format {s:?} (json or common)"
            ))),
        }
    }
}

/// Most lines waiting for the writer; past it lines are dropped (and counted), so a log
/// nobody reads (a full pipe on `-`) never holds back a flow.
pub const MAX_ACCESS_LOG_BACKLOG: usize = 4096;

/// Writes the access log, on a thread of its own.
pub struct AccessLog {
    tx: Mutex<std::sync::mpsc::SyncSender<String>>,
    format: LogFormat,
    dropped: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog")
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

fn version(v: Option<http::Version>) -> &'static str {
    match v {
        Some(http::Version::HTTP_10) => "HTTP/1.0",
        Some(http::Version::HTTP_11) => "HTTP/1.1",
        Some(http::Version::HTTP_2) => "HTTP/2",
        Some(http::Version::HTTP_3) => "HTTP/3",
        Some(_) => "HTTP/0.9",
        None => "-",
    }
}

/// Escapes `"` and `\` (and control bytes) as Apache's log does, so a request cannot forge
/// fields of its line.
fn clf_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

impl AccessLog {
    /// A log writing to `out`.
    pub fn new(mut out: Box<dyn Write + Send>, format: LogFormat) -> AccessLog {
        let (tx, rx) = std::sync::mpsc::sync_channel::<String>(MAX_ACCESS_LOG_BACKLOG);
        // Ends when the log is dropped (a reload) and what was queued is written.
        let spawned = std::thread::Builder::new()
            .name("burrow-access-log".into())
            .spawn(move || {
                for line in rx {
                    if let Err(e) = out.write_all(line.as_bytes()).and_then(|_| out.flush()) {
                        tracing::warn!("writing the access log: {e}");
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("no access log writer: {e}");
        }
        AccessLog {
            tx: Mutex::new(tx),
            format,
            dropped: Default::default(),
        }
    }

    /// Lines dropped because the writer fell behind by `MAX_ACCESS_LOG_BACKLOG` lines.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// A log appending to the file at `path` (created if need be), or writing to standard
    /// output for `-`.
    pub fn open(path: &Path, format: LogFormat) -> Result<AccessLog, Error> {
        if path == Path::new("-") {
            return Ok(AccessLog::new(Box::new(std::io::stdout()), format));
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| {
                Error::local_io(format!("opening the access log {}", path.display()), e)
            })?;
        Ok(AccessLog::new(Box::new(f), format))
    }

    /// The line for a flow that ended at `ended`.
    pub fn line(&self, flow: &Flow, s: &Summary, ended: SystemTime) -> String {
        let started = ended.checked_sub(s.duration).unwrap_or(ended);
        let at = time::OffsetDateTime::from(started);
        let (kind, target) = match &s.what {
            What::Request { method, uri } => (method.to_string(), uri.to_string()),
            What::Tunnel(k) => (
                k.as_str().to_string(),
                s.target.as_ref().map_or("-".into(), |t| t.to_string()),
            ),
        };
        let ms = s.duration.as_secs_f64() * 1000.0;
        match self.format {
            LogFormat::Json => {
                let when = at
                    .format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default();
                serde_json::json!({
                    "time": when,
                    "flow": flow.id,
                    "client": flow.client.to_string(),
                    "user": s.user,
                    "kind": kind,
                    "target": target,
                    "client_version": version(flow.version),
                    "upstream_version": s.upstream_version.map(|v| version(Some(v))),
                    "route": s.route,
                    "status": s.status.map(|c| c.as_u16()),
                    "socks_reply": s.socks_reply,
                    "error": s.error,
                    "bytes_up": s.bytes_up,
                    "bytes_down": s.bytes_down,
                    "duration_ms": (ms * 1000.0).round() / 1000.0,
                    "latency_ms": s.latency.map(|l| (l.as_secs_f64() * 1e6).round() / 1000.0),
                    "end": s.end.as_str(),
                })
                .to_string()
            }
            LogFormat::Common => {
                let fmt = time::format_description::parse_borrowed::<2>(
                    "[day]/[month repr:short]/[year]:[hour]:[minute]:[second] +0000",
                );
                let when = fmt
                    .ok()
                    .and_then(|f| at.format(&f).ok())
                    .unwrap_or_default();
                let user = s
                    .user
                    .as_deref()
                    .map_or("-".to_string(), |u| u.replace([' ', '"', '\\'], "_"));
                let status = match (s.status, s.socks_reply) {
                    (Some(c), _) => c.as_u16().to_string(),
                    (None, Some(r)) => format!("socks:{r}"),
                    _ => "-".into(),
                };
                format!(
                    "{} - {user} [{when}] \"{kind} {} {}\" {status} {} \"{}\" \"{}\" {} {ms:.3} {}",
                    flow.client.ip(),
                    clf_escape(&target),
                    version(flow.version),
                    s.bytes_down,
                    version(s.upstream_version),
                    clf_escape(&s.route),
                    s.bytes_up,
                    s.end.as_str(),
                )
            }
        }
    }

    fn write(&self, flow: &Flow, s: &Summary) {
        let mut line = self.line(flow, s, SystemTime::now());
        line.push('\n');
        let tx = crate::lock(&self.tx);
        if tx.try_send(line).is_err()
            && self
                .dropped
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                .is_power_of_two()
        {
            tracing::warn!("the access log falls behind: lines dropped");
        }
    }
}

#[async_trait]
impl Hooks for AccessLog {
    fn name(&self) -> &str {
        "access-log"
    }

    async fn request_closed(&self, flow: &Flow, s: &Summary) {
        self.write(flow, s);
    }

    async fn tunnel_closed(&self, flow: &Flow, s: &Summary) {
        self.write(flow, s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::hooks::{End, TunnelKind};
    use std::time::Duration;

    fn flow() -> Flow {
        Flow {
            id: 7,
            client: "192.0.2.9:5555".parse().unwrap(),
            user: Some("alice".into()),
            version: Some(http::Version::HTTP_2),
        }
    }

    fn summary(what: What) -> Summary {
        Summary {
            what,
            target: Some("example.com:443".parse().unwrap()),
            route: "socks5h://127.0.0.1:9050".into(),
            user: Some("alice".into()),
            upstream_version: Some(http::Version::HTTP_11),
            status: Some(http::StatusCode::OK),
            socks_reply: None,
            error: None,
            bytes_up: 12,
            bytes_down: 3456,
            duration: Duration::from_millis(1500),
            latency: Some(Duration::from_millis(20)),
            end: End::Completed,
        }
    }

    #[test]
    fn json_lines_carry_every_field() {
        let log = AccessLog::new(Box::new(std::io::sink()), LogFormat::Json);
        let ended = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_657_601);
        let what = What::Request {
            method: http::Method::GET,
            uri: "https://example.com/x".parse().unwrap(),
        };
        let v: serde_json::Value =
            serde_json::from_str(&log.line(&flow(), &summary(what), ended)).unwrap();
        assert_eq!(v["time"], "2025-12-02T06:39:59.5Z");
        assert_eq!(v["client"], "192.0.2.9:5555");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["kind"], "GET");
        assert_eq!(v["target"], "https://example.com/x");
        assert_eq!(v["client_version"], "HTTP/2");
        assert_eq!(v["upstream_version"], "HTTP/1.1");
        assert_eq!(v["route"], "socks5h://127.0.0.1:9050");
        assert_eq!(v["status"], 200);
        assert_eq!(
            (v["bytes_up"].as_u64(), v["bytes_down"].as_u64()),
            (Some(12), Some(3456))
        );
        assert_eq!(v["duration_ms"], 1500.0);
        assert_eq!(v["end"], "completed");
    }

    /// Blocks every write until told.
    struct Stuck(std::sync::Arc<std::sync::Barrier>);

    impl Write for Stuck {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.wait();
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_writer_that_never_finishes_costs_lines_not_flows() {
        let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
        let log = AccessLog::new(Box::new(Stuck(gate.clone())), LogFormat::Json);
        let s = summary(What::Tunnel(TunnelKind::Connect));
        // The writer holds one line; the backlog takes MAX_ACCESS_LOG_BACKLOG; the rest go.
        for _ in 0..MAX_ACCESS_LOG_BACKLOG + 10 {
            log.write(&flow(), &s);
        }
        assert!(log.dropped() >= 9, "{}", log.dropped());
        assert!(log.dropped() <= 10, "{}", log.dropped());
        // Let the writer go through what was taken; dropping the log ends it.
        let taken = MAX_ACCESS_LOG_BACKLOG + 10 - log.dropped() as usize;
        drop(log);
        for _ in 0..taken {
            gate.wait();
        }
    }

    #[test]
    fn common_log_format_starts_with_the_seven_fields() {
        let log = AccessLog::new(Box::new(std::io::sink()), LogFormat::Common);
        let ended = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_657_601);
        let line = log.line(&flow(), &summary(What::Tunnel(TunnelKind::Connect)), ended);
        assert_eq!(
            line,
            "192.0.2.9 - alice [02/Dec/2025:06:39:59 +0000] \"CONNECT example.com:443 HTTP/2\" 200 3456 \
             \"HTTP/1.1\" \"socks5h://127.0.0.1:9050\" 12 1500.000 completed"
        );
        assert!(LogFormat::parse("xml").is_err());
        // A request cannot forge fields of its line.
        let forged = What::Request {
            method: http::Method::GET,
            uri: "/a\"%20b".parse().unwrap(),
        };
        let line = log.line(&flow(), &summary(forged), ended);
        assert!(line.contains("\"GET /a\\\"%20b HTTP/2\""), "{line}");
    }
}
