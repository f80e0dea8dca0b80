//! Precision and recall of the anomaly detector on an injected dataset
//! built from the repository's labelled corpus (the CI counterpart of the
//! Loghub measurement in `docs/analysis.md`): every line is mined by the
//! pattern index and read back from its files.

use skald_analysis::inject::{self, InjectConfig};

const CORPUS: &str = include_str!("corpus/labelled.tsv");

/// `n` streams, each from its own share of the corpus's lines.
fn sources(n: usize) -> Vec<(String, Vec<String>)> {
    let mut sources: Vec<(String, Vec<String>)> =
        (0..n).map(|i| (format!("corpus{i}"), Vec::new())).collect();
    for (i, row) in CORPUS.lines().enumerate() {
        let (_, line) = row.split_once('\t').expect("event<TAB>line");
        sources[i % n].1.push(line.to_owned());
    }
    sources
}

#[test]
fn injected_anomalies_are_found_with_few_false_alarms() {
    // Four streams, each from its own quarter of the corpus.
    let sources = sources(4);
    let dir = tempfile::tempdir().unwrap();
    let config = InjectConfig {
        min_rate: 10.0,
        max_rate: 30.0,
        ..InjectConfig::default()
    };
    let outcome = inject::run(&sources, &config, dir.path()).unwrap();
    assert_eq!(outcome.injected.len(), 16);
    let (p, r) = (outcome.precision(), outcome.recall());
    assert!(
        p >= 0.9 && r >= 0.9,
        "precision {p:.2} recall {r:.2}; missed {:#?}; false {:#?}",
        outcome.missed,
        outcome.false_detections
    );
}

#[test]
fn rolled_up_days_give_the_same_anomalies_and_error_groups_after_a_restart() {
    use skald_analysis::anomaly::{self, DetectConfig, Range};
    use skald_analysis::groups::{self, ErrorQuery};
    use skald_analysis::index::{IndexConfig, PatternIndex};
    use skald_model::{MatchOp, Matcher, TenantId};

    let sources = sources(2);
    let dir = tempfile::tempdir().unwrap();
    let config = InjectConfig {
        min_rate: 10.0,
        max_rate: 20.0,
        anomalies_per_stream: 3,
        ..InjectConfig::default()
    };
    inject::run(&sources, &config, dir.path()).unwrap();
    // What the dataset covers (`inject::run`): four days from a day boundary.
    let epoch = 1_700_006_400;
    let last_day = epoch + 3 * 86_400;
    let tenant = TenantId::new("eval").unwrap();
    let any = [Matcher::new("app", MatchOp::Re, ".+").unwrap()];
    let detect = DetectConfig::default();
    let files = |dir: &std::path::Path| -> (usize, usize) {
        let mut lines = 0;
        let mut rolled = 0;
        for f in std::fs::read_dir(dir.join("eval")).unwrap() {
            let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
            lines += text.lines().count();
            rolled += usize::from(text.lines().nth(1).unwrap().starts_with("#rollup"));
        }
        (lines, rolled)
    };
    let read = |index: &PatternIndex| {
        let mut found = Vec::new();
        // One day in 1-, 5- and 60-minute windows, and an hour of the
        // first day (recent windows, no seasonal history).
        for (start, window_secs, windows) in [
            (last_day, 60, 1_440),
            (last_day, 300, 288),
            (last_day, 3_600, 24),
            (epoch + 7_200, 60, 60),
        ] {
            let range = Range {
                start,
                window_secs,
                windows,
            };
            let counts = index.window_counts(&tenant, &any, range, &detect).unwrap();
            let d = anomaly::detect(&counts, range, &detect);
            found.push((d.windows_judged, d.windows_anomalous, d.anomalies));
        }
        let groups = groups::query(
            index,
            &ErrorQuery {
                tenant: &tenant,
                matchers: &any,
                start: last_day,
                end: last_day + 86_400,
                step: 3_600,
                lookback_secs: 3 * 86_400,
                examples: 3,
                streams: 5,
            },
        )
        .unwrap();
        // Rolled-up files keep minutes: first and last seen are compared
        // at that precision.
        let groups: Vec<_> = groups
            .into_iter()
            .map(|g| {
                let minute = |t: i64| t.div_euclid(60) * 60;
                (
                    g.fingerprint,
                    g.count,
                    g.new,
                    minute(g.first_seen),
                    minute(g.last_seen),
                    g.samples,
                    g.examples.len(),
                )
            })
            .collect();
        (found, groups)
    };

    let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
    let before = read(&index);
    assert!(
        before.0.iter().any(|(_, _, a)| !a.is_empty()),
        "the dataset has anomalies"
    );
    assert!(!before.1.is_empty(), "the dataset has error groups");
    let (lines_before, rolled) = files(dir.path());
    assert_eq!(rolled, 0);
    // An hour after the last day ended, every day file is due.
    let rewritten = index.roll_up(last_day + 86_400 + 3_600).unwrap();
    assert_eq!(rewritten, 8, "four days of patterns and errors files");
    assert_eq!(index.roll_up(last_day + 86_400 + 7_200).unwrap(), 0);
    drop(index);
    let (lines_after, rolled) = files(dir.path());
    assert_eq!(rolled, 8);
    // Sparse streams (10–20 lines a minute over many patterns) have few
    // lines per key and minute: the files shrink little here; busy ones
    // shrink up to twelvefold (docs/analysis.md).
    assert!(
        lines_after < lines_before,
        "{lines_before} lines before the rollup, {lines_after} after"
    );
    eprintln!("{lines_before} lines before the rollup, {lines_after} after");

    // After a restart, from the rolled-up files alone.
    let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
    let after = read(&index);
    assert_eq!(before.0, after.0);
    assert_eq!(before.1, after.1);
    assert_eq!(index.counters().records_skipped, 0);
}
