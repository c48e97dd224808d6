//! Arbitrary operation orders (bytes, commands, time, failures) on the HTTP/1.1 client core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut h = burrow_test_support::playbook::Harness::new(|_| {
        burrow_http1::proto::client::ClientCore::new(Default::default())
    });
    burrow_test_support::playbook::operations(&mut h, data, burrow_http1::fuzzing::client_command)
});
