//! The demo's routes all succeed (the same code the README's main command runs).
#![allow(clippy::unwrap_used, missing_docs)]

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_demo_route_is_byte_exact() {
    let rows = burrow_examples::demo::run().await.unwrap();
    let table = burrow_examples::demo::table(&rows);
    println!("{table}");
    assert!(rows.len() >= 6);
    for r in &rows {
        assert!(r.result.is_ok(), "{table}");
    }
}
