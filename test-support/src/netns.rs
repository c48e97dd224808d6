//! Tests that need a network namespace of their own (a TUN device, addresses of their
//! choosing): the test re-runs itself inside a namespace it creates with `ip netns`, and
//! is skipped, saying why, where that is not possible (not root, no `/dev/net/tun`, no
//! `ip`).

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Set in the environment of a test re-run inside its namespace.
pub const INSIDE: &str = "BURROW_TEST_IN_NETNS";

static NEXT: AtomicUsize = AtomicUsize::new(0);

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Whether the caller is inside its namespace and should run its body. Outside, it runs
/// `test` (the test function's full name) again inside a fresh namespace, asserts that it
/// passed, removes the namespace and returns `false`; or, when namespaces cannot be made
/// here, prints why the test is skipped and returns `false`.
pub fn enter(test: &str) -> bool {
    if std::env::var_os(INSIDE).is_some() {
        return true;
    }
    let skip = |why: &str| eprintln!("SKIPPED {test}: {why}");
    if !is_root() {
        skip("needs root for a network namespace and a TUN device");
        return false;
    }
    if !std::path::Path::new("/dev/net/tun").exists() {
        skip("no /dev/net/tun");
        return false;
    }
    let name = format!(
        "burrow-t{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    match Command::new("ip").args(["netns", "add", &name]).status() {
        Ok(s) if s.success() => {}
        Ok(_) => {
            skip("`ip netns add` failed (no permission for network namespaces)");
            return false;
        }
        Err(e) => {
            skip(&format!("cannot run `ip` (install iproute2): {e}"));
            return false;
        }
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let status = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(exe)
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .status();
    let _ = Command::new("ip").args(["netns", "del", &name]).status();
    let status = status.expect("running the test inside its namespace");
    assert!(
        status.success(),
        "{test} failed inside its network namespace"
    );
    false
}

/// Runs a command (inside the namespace: `ip link set lo up`, addresses) and asserts it
/// worked.
pub fn sh(args: &[&str]) {
    let s = Command::new(args[0])
        .args(&args[1..])
        .status()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(s.success(), "{args:?} failed");
}
