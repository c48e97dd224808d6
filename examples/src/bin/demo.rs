//! The burrow demo: in-process origins on loopback, fetched through a set of routes.
//! Needs no network beyond loopback. Exits non-zero if any row failed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("burrow demo: in-process origins on 127.0.0.1, bodies checked byte by byte\n");
    match burrow_examples::demo::run().await {
        Ok(rows) => {
            print!("{}", burrow_examples::demo::table(&rows));
            let failed = rows.iter().filter(|r| r.result.is_err()).count();
            println!(
                "\n{} routes, {} ok, {} failed",
                rows.len(),
                rows.len() - failed,
                failed
            );
            if failed > 0 {
                std::process::exit(1);
            }
        }
        Err(e) => {
            eprintln!("demo could not start: {e}");
            std::process::exit(2);
        }
    }
}
