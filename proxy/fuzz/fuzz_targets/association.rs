//! Arbitrary datagrams, dial outcomes and time for a SOCKS5 UDP association's core.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| burrow_proxy::fuzzing::association_operations(data));
