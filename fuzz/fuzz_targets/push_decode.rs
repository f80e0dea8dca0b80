//! libFuzzer over `skald_fuzz_checks::push_decode`: what it feeds and what it
//! checks is documented there, and the stable pass in
//! `crates/fuzz-checks/tests/smoke.rs` runs the same check.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| skald_fuzz_checks::push_decode(data));
