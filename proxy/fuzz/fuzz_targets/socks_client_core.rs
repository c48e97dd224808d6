//! Arbitrary operation orders on the SOCKS client core (with its reply deadline).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    use burrow_proxy::socks::client::{Dialect, SocksClient};
    let Ok(c) = SocksClient::new(Dialect::V5(None), burrow_proxy::socks::wire::Command::Connect, "h.example:80".parse().expect("target")) else { return };
    let mut h = burrow_test_support::playbook::Harness::new(|now| c.deadline(now, std::time::Duration::from_secs(1)));
    burrow_test_support::playbook::operations(&mut h, data, |_| None)
});
