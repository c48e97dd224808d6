//! Arbitrary operation orders on the SOCKS server core (with its negotiation deadline).
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut h = burrow_test_support::playbook::Harness::new(|now| {
        burrow_proxy::socks::server::SocksServer::new(None).deadline(now, std::time::Duration::from_secs(1))
    });
    burrow_test_support::playbook::operations(&mut h, data, burrow_proxy::fuzzing::socks_answer)
});
