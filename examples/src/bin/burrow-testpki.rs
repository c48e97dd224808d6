//! `burrow-testpki DIR [NAME...]`: writes a throwaway CA (`ca.pem`) and a leaf certificate
//! chain (`cert.pem`, `key.pem`) for localhost, 127.0.0.1, ::1 and any extra NAMEs into DIR.
//! Used by the peer scripts to give nginx, Caddy and squid a certificate burrow trusts.

fn main() {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next() else {
        eprintln!("usage: burrow-testpki DIR [NAME...]");
        std::process::exit(2);
    };
    let names: Vec<String> = args.collect();
    let names: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
    let pki = match burrow_examples::pki::TestPki::generate(&names) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("burrow-testpki: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = pki.write_to(std::path::Path::new(&dir)) {
        eprintln!("burrow-testpki: writing {dir}: {e}");
        std::process::exit(1);
    }
}
