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
