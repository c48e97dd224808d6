//! The burrow demo: in-process origins on loopback, fetched through a set of routes.
//! Needs no network beyond loopback. Exits non-zero if any row failed.

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    println!("burrow demo: in-process origins on 127.0.0.1, bodies checked byte by byte\n");
    let direct = burrow_examples::demo::run().await;
    let proxied = async {
        let lab = burrow_examples::matrix::Lab::start().await?;
        let mut rows = Vec::new();
        for c in burrow_examples::matrix::representative() {
            rows.push(lab.run(&c).await);
        }
        Ok::<_, burrow_transport::Error>(rows)
    }
    .await;
    match direct.and_then(|mut d| {
        println!("direct, every version and body shape:\n{}", burrow_examples::demo::table(&d));
        let p = proxied?;
        println!("through in-process proxies (1 MiB each; h1 = CONNECT over HTTP/1.1, h2/h3 = CONNECT or CONNECT-UDP over HTTP/2/HTTP/3, socks = SOCKS5h/SOCKS4a):\n{}", burrow_examples::demo::table(&p));
        d.extend(p);
        Ok(d)
    }) {
        Ok(rows) => {
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
