//! Arbitrary lines through the `logfmt` parser stage (lenient and
//! `--strict`) and a numeric label filter: no panic, no hang.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    common::run("| logfmt", &[&line]);
    common::run("| logfmt --strict --keep-empty | duration > 1s", &[&line]);
});
