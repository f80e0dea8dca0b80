//! Precision and recall of the anomaly detector on an injected dataset
//! built from the repository's labelled corpus (the CI counterpart of the
//! Loghub measurement in `docs/analysis.md`): every line is mined by the
//! pattern index and read back from its files.

use skald_analysis::inject::{self, InjectConfig};

const CORPUS: &str = include_str!("corpus/labelled.tsv");

#[test]
fn injected_anomalies_are_found_with_few_false_alarms() {
    // Four streams, each from its own quarter of the corpus.
    let mut sources: Vec<(String, Vec<String>)> =
        (0..4).map(|i| (format!("corpus{i}"), Vec::new())).collect();
    for (i, row) in CORPUS.lines().enumerate() {
        let (_, line) = row.split_once('\t').expect("event<TAB>line");
        sources[i % 4].1.push(line.to_owned());
    }
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
