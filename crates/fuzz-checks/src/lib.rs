//! What each fuzz target checks, as a plain function of the input bytes.
//!
//! Every decoder of untrusted bytes (push bodies, OTLP bodies, LogQL,
//! templates, pattern expressions, log lines through the parsers) and of
//! on-disk bytes (segments, WAL files and records, the delete request
//! list, export job records, the token file, the pattern and error files
//! of the analysis index) has one check here. A check feeds the bytes to
//! the real decoder, through the same public entry point the server uses,
//! and panics when an oracle fails: a panic inside the decoder, a round
//! trip that does not hold, a bound that is not kept. Bytes the decoder
//! refuses are fine; refusing is its job.
//!
//! Two runners share these checks, so they cannot drift apart:
//! - `fuzz/` (cargo-fuzz, nightly): one libFuzzer target per check, for
//!   the long runs documented in `docs/reliability.md`;
//! - `tests/smoke.rs` (stable, part of `cargo test`): every check over its
//!   seeds ([`seeds`]) and a few thousand deterministic mutations of them,
//!   a short pass that keeps the checks and the decoders honest in CI,
//!   and that writes the seeds out as cargo-fuzz's starting corpus.
//!
//! Not here: the fuzzing engine, and the on-disk formats themselves
//! (documented beside the code that writes them).

mod files;
mod mutate;
mod pipeline;
mod seeds;
mod wire;

pub use files::{
    delete_requests, export_jobs, pattern_files, remove_scratch, segment_read, tokens_file,
    wal_file, wal_record,
};
pub use mutate::Mutator;
pub use pipeline::{json_parse, logfmt_parse, logql_parse, pattern, template};
pub use seeds::seeds;
pub use wire::{otlp_decode, push_decode};

/// A check: feeds the input to one decoder and panics when an oracle fails.
pub type Check = fn(&[u8]);

/// Every check, by its fuzz target's name.
pub const TARGETS: &[(&str, Check)] = &[
    ("push_decode", push_decode),
    ("otlp_decode", otlp_decode),
    ("logql_parse", logql_parse),
    ("template", template),
    ("pattern", pattern),
    ("json_parse", json_parse),
    ("logfmt_parse", logfmt_parse),
    ("segment_read", segment_read),
    ("wal_record", wal_record),
    ("wal_file", wal_file),
    ("delete_requests", delete_requests),
    ("export_jobs", export_jobs),
    ("tokens_file", tokens_file),
    ("pattern_files", pattern_files),
];
