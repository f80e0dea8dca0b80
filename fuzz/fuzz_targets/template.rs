//! Arbitrary `line_format` / `label_format` templates, executed over a
//! parsed logfmt and JSON line: no panic, no hang, output bounded by the
//! template engine's own limits.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(template) = std::str::from_utf8(data) else {
        return;
    };
    let lines = [
        "level=error msg=\"quoted value\" took=12ms size=3KB n=-4.5",
        r#"{"level":"info","a":{"b":[1,2]},"msg":"x y"}"#,
    ];
    let quoted = common::quote(template);
    common::run(&format!("| logfmt | line_format {quoted}"), &lines);
    common::run(&format!("| json | label_format out={quoted}"), &lines);
});
