//! Grouping accuracy on the repository's own labelled corpus
//! (`tests/corpus/labelled.tsv`, written by `tests/corpus/generate.py`):
//! the CI counterpart of the Loghub measurement in `docs/analysis.md`.

use skald_analysis::eval::grouping_accuracy;
use skald_analysis::{Miner, MinerConfig};

const CORPUS: &str = include_str!("corpus/labelled.tsv");

#[test]
fn grouping_accuracy_on_the_labelled_corpus() {
    let mut miner = Miner::new(MinerConfig {
        track_merges: true,
        ..MinerConfig::default()
    });
    let mut truth = Vec::new();
    let mut ids = Vec::new();
    for row in CORPUS.lines() {
        let (event, line) = row.split_once('\t').expect("event<TAB>line");
        truth.push(event);
        ids.push(miner.add(line));
    }
    let predicted: Vec<_> = ids.iter().map(|&id| miner.resolve(id)).collect();
    let ga = grouping_accuracy(&truth, &predicted);
    // On failure, say which events were split or merged.
    let mut by_event =
        std::collections::BTreeMap::<&str, std::collections::BTreeSet<String>>::new();
    for (event, id) in truth.iter().zip(&predicted) {
        let text = id
            .and_then(|id| miner.get(id))
            .map(|p| p.text())
            .unwrap_or_default();
        by_event.entry(event).or_default().insert(text);
    }
    assert!(
        ga >= 0.95,
        "GA {ga:.3} below 0.95; patterns per event: {by_event:#?}"
    );
    assert!(truth.len() > 1000);
}

#[test]
fn events_that_differ_in_one_constant_word_stay_apart() {
    let mut miner = Miner::default();
    let mut startup = Vec::new();
    let mut shutdown = Vec::new();
    for row in CORPUS.lines() {
        let (event, line) = row.split_once('\t').unwrap();
        let id = miner.add(line);
        match event {
            "E05-nginx" => startup.push(id),
            "E06-nginx" => shutdown.push(id),
            _ => {}
        }
    }
    for s in &startup {
        for d in &shutdown {
            assert_ne!(miner.resolve(*s), miner.resolve(*d));
        }
    }
}
