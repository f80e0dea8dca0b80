//! What rolling up past days saves an anomaly query: copies the analysis
//! directory of a data directory, reads one day of anomaly windows (and
//! the history its baselines need) from it, rolls every day up, and reads
//! again, printing the files' records and bytes and the query's time
//! before and after, and whether the anomalies are the same.
//!
//! Usage: `cargo run --release -p skald-analysis --example rollup --
//! DATA_DIR/analysis TENANT` (the directory is copied, never changed).

use skald_analysis::anomaly::{self, DetectConfig, Range};
use skald_analysis::index::{IndexConfig, PatternIndex};
use skald_model::{MatchOp, Matcher, TenantId};
use std::path::Path;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(from), Some(tenant)) = (args.next(), args.next()) else {
        panic!("usage: rollup ANALYSIS_DIR TENANT");
    };
    let dir = std::env::temp_dir().join(format!("skald-rollup-{}", std::process::id()));
    copy(Path::new(&from), &dir);
    let tenant = TenantId::new(&tenant).expect("valid tenant");
    let any = [Matcher::new("__name__", MatchOp::Re, ".*").expect("matcher")];
    let config = DetectConfig::default();
    // The newest day with counts, judged in five-minute windows.
    let newest = std::fs::read_dir(dir.join(tenant.as_str()))
        .expect("tenant directory")
        .filter_map(|f| {
            let name = f.ok()?.file_name().into_string().ok()?;
            name.strip_prefix("patterns-")?
                .strip_suffix(".v2.tsv")?
                .parse::<i64>()
                .ok()
        })
        .max()
        .expect("a patterns file");
    let range = Range {
        start: newest * 86_400,
        window_secs: 300,
        windows: 288,
    };
    let read = |index: &PatternIndex| {
        let started = Instant::now();
        let counts = index
            .window_counts(&tenant, &any, range, &config)
            .expect("counts");
        let found = anomaly::detect(&counts, range, &config);
        (started.elapsed(), found.windows_judged, found.anomalies)
    };
    let index = PatternIndex::open(&dir, IndexConfig::default()).expect("index");
    let _ = read(&index); // warm the page cache
    let before = read(&index);
    let (records, bytes) = size(&dir.join(tenant.as_str()));
    println!(
        "before: {records} lines, {bytes} bytes; query {:?}",
        before.0
    );
    let rolled = index.roll_up(i64::MAX / 4).expect("rollup");
    drop(index);
    let index = PatternIndex::open(&dir, IndexConfig::default()).expect("index");
    let _ = read(&index);
    let after = read(&index);
    let (records, bytes) = size(&dir.join(tenant.as_str()));
    println!(
        "after:  {records} lines, {bytes} bytes; query {:?} ({rolled} files rolled up)",
        after.0
    );
    println!(
        "windows judged {} / {}, anomalies {} / {}, same: {}",
        before.1,
        after.1,
        before.2.len(),
        after.2.len(),
        before.1 == after.1 && before.2 == after.2
    );
    drop(index);
    let _ = std::fs::remove_dir_all(&dir);
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("copy directory");
    for entry in std::fs::read_dir(from).expect("analysis directory") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy file");
        }
    }
}

fn size(dir: &Path) -> (usize, u64) {
    let mut lines = 0;
    let mut bytes = 0;
    for entry in std::fs::read_dir(dir).expect("tenant directory") {
        let text = std::fs::read_to_string(entry.expect("entry").path()).expect("file");
        lines += text.lines().count();
        bytes += text.len() as u64;
    }
    (lines, bytes)
}
