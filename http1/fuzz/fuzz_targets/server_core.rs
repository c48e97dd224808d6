//! Arbitrary operation orders (bytes, commands, time, failures) on the HTTP/1.1 server core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let deadlines = burrow_http1::proto::server::Deadlines {
        head: Some(std::time::Duration::from_secs(1)),
        idle: Some(std::time::Duration::from_secs(2)),
    };
    let mut h = burrow_test_support::playbook::Harness::new(|now| {
        burrow_http1::proto::server::ServerCore::new(Default::default(), deadlines, now)
    });
    burrow_test_support::playbook::operations(&mut h, data, burrow_http1::fuzzing::server_command)
});
