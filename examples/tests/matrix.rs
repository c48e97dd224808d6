//! The composition matrix, self-contained: every origin version over every path through
//! in-process proxies, 1 MiB byte-exact per cell, each hop checked to have relayed it.
#![allow(clippy::unwrap_used, missing_docs)]

use burrow_examples::demo::table;
use burrow_examples::matrix::{full, Lab};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_origin_version_over_every_path() {
    let lab = Lab::start().await.unwrap();
    let cells = full();
    let mut rows = Vec::new();
    for c in &cells {
        rows.push(lab.run(c).await);
    }
    let t = table(&rows);
    println!("{t}");
    let failed: Vec<_> = rows.iter().filter(|r| r.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cells failed:\n{t}",
        failed.len(),
        rows.len()
    );
    assert!(rows.len() >= 3 * (1 + 5 + 16) + 2 + 6 + 9 + 9);
}

/// The CONNECT-IP rows: TCP and UDP over CONNECT-IP tunnels on HTTP/2 and HTTP/3 proxies,
/// alone and in chains, inside a network namespace of the test's own (each proxy owns a
/// TUN device there); skipped, saying why, where that cannot be made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_origin_version_over_connect_ip() {
    use burrow_test_support::netns;
    if !netns::enter("every_origin_version_over_connect_ip") {
        return;
    }
    netns::sh(&["ip", "link", "set", "lo", "up"]);
    let host = format!("{}/32", burrow_examples::matrix::IP_LAB_HOST);
    netns::sh(&["ip", "addr", "add", &host, "dev", "lo"]);
    let lab = Lab::start_ip().await.unwrap();
    let cells = burrow_examples::matrix::connect_ip();
    let mut rows = Vec::new();
    for c in &cells {
        rows.push(lab.run(c).await);
    }
    let t = table(&rows);
    println!("{t}");
    let failed: Vec<_> = rows.iter().filter(|r| r.result.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {} cells failed:\n{t}",
        failed.len(),
        rows.len()
    );
    assert_eq!(rows.len(), 12);
}
