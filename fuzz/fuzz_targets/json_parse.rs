//! Arbitrary lines through the `json` parser stage (whole-line and with
//! extraction paths) and the label filters after it: no panic, no hang.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    common::run("| json", &[&line]);
    common::run(r#"| json a="a", b="b.c[0]", d="[1].x" | a != "" or b > 1"#, &[&line]);
});
