//! The stable fuzz pass: every check over its seeds, then a few thousand
//! deterministic mutations of them and some random inputs. It finds what
//! a fuzzer finds in its first seconds and keeps every target's check
//! running in CI; the long runs are cargo-fuzz's (`fuzz/`,
//! `docs/reliability.md`).
//!
//! `SKALD_FUZZ_SMOKE_RUNS` sets the mutated inputs per target (default
//! 2000). A failing input is printed in hex and can be replayed with
//! `cargo +nightly fuzz run <target> <file>`.

use skald_fuzz_checks::{Mutator, TARGETS, seeds};

fn runs() -> usize {
    std::env::var("SKALD_FUZZ_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn check(target: &str) {
    let (_, check) = TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no check named {target}"));
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "{target} has no seeds");
    // The seed is the target's name, so each target sees its own inputs
    // and a failure reproduces.
    let mut m = Mutator::new(target.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    }));
    let n = runs();
    let mut inputs = seeds.clone();
    inputs.extend((0..n).map(|_| m.mutate(&seeds)));
    inputs.extend((0..n / 10).map(|_| m.random_bytes(256)));
    for (i, input) in inputs.iter().enumerate() {
        let outcome = std::panic::catch_unwind(|| check(input));
        if outcome.is_err() {
            panic!("{target}: input {i} fails its check: {}", hex(input));
        }
    }
    skald_fuzz_checks::remove_scratch();
}

macro_rules! smoke {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                check(stringify!($name));
            }
        )*

        #[test]
        fn every_check_has_a_smoke_test_and_a_fuzz_target() {
            let tested = [$(stringify!($name)),*];
            let checks: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(tested.as_slice(), checks.as_slice());
            let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/fuzz_targets");
            let mut files: Vec<String> = std::fs::read_dir(dir)
                .expect("fuzz/fuzz_targets")
                .filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".rs").map(str::to_string)
                })
                .collect();
            files.sort();
            let mut checks = checks;
            checks.sort();
            assert_eq!(files, checks, "fuzz/fuzz_targets and TARGETS differ");
        }
    };
}

smoke!(
    push_decode,
    otlp_decode,
    logql_parse,
    template,
    pattern,
    json_parse,
    logfmt_parse,
    segment_read,
    wal_record,
    wal_file,
    delete_requests,
    export_jobs,
    tokens_file,
    pattern_files,
);

/// With `SKALD_FUZZ_CORPUS=<dir>`, writes every target's seeds to
/// `<dir>/<target>/seed-<n>`: cargo-fuzz's starting corpus
/// (`SKALD_FUZZ_CORPUS=$PWD/fuzz/corpus cargo test -p skald-fuzz-checks
/// --test smoke write_corpus`). Without it, does nothing.
#[test]
fn write_corpus() {
    let Some(root) = std::env::var_os("SKALD_FUZZ_CORPUS") else {
        return;
    };
    let root = std::path::PathBuf::from(root);
    for (target, _) in TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).expect("creating the corpus directory");
        for (i, seed) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i}")), seed).expect("writing a seed");
        }
    }
}
