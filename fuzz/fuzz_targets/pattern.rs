//! Arbitrary `pattern` expressions matched against arbitrary lines (the
//! input split at its first NUL byte): parse, match and extract must not
//! panic or hang, and what `is_match` says `extract` agrees with.

#![no_main]

use libfuzzer_sys::fuzz_target;
use skald_pipeline::pattern::Pattern;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (pattern, line) = text.split_once('\0').unwrap_or((&text, "GET /a 200 12ms"));
    let Ok(p) = Pattern::parse(pattern) else {
        return;
    };
    let mut found = 0usize;
    let matched = p.extract(line, |_, _| found += 1);
    assert_eq!(matched, p.is_match(line), "extract and is_match disagree");
    let _ = p.names().count();
});
