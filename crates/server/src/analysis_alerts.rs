//! The analysis events the ruler's built-in rules alert on
//! (`skald_ruler::analysis`), read from the pattern index: error groups
//! first seen in the trailing window, and anomalies detected in it.
//!
//! Each event becomes one alert: its stream's labels, `tenant`, and what
//! identifies the event (`error_group` and `category`, or `kind` and
//! `pattern`); annotations say what happened, with an example line and a
//! link to the API answer that shows it (`/skald/api/v1/errors`,
//! `/skald/api/v1/anomalies`). What identifies the event overrides a
//! stream label of the same name.
//!
//! Not here: alert states, notifications, persistence (the ruler).

use skald_analysis::anomaly::{self, Range};
use skald_analysis::groups::{self, ErrorQuery};
use skald_analysis::index::{IndexConfig, PatternIndex};
use skald_model::{Label, LabelSet, TenantId, Timestamp};
use skald_ruler::analysis::{AnalysisSource, Event};
use std::collections::BTreeMap;

const SECOND_NS: i64 = 1_000_000_000;

/// Error groups whose first line is in the `window` before `at` and that
/// were not seen in the look-back before it: one event per group and
/// stream, valued by its lines in the window.
pub fn new_error_groups(
    index: &PatternIndex,
    config: &IndexConfig,
    tenant: &TenantId,
    source: &AnalysisSource,
    at: Timestamp,
) -> Result<Vec<Event>, String> {
    let end = at.0.div_euclid(SECOND_NS) + 1;
    let window = source.window.as_secs().max(1) as i64;
    let start = end - window;
    let found = groups::query(
        index,
        &ErrorQuery {
            tenant,
            matchers: &[],
            start,
            end,
            step: window,
            lookback_secs: config.error_lookback_days as i64 * 86_400,
            examples: 1,
            streams: 10,
        },
    )
    .map_err(|e| format!("reading error groups: {e}"))?;
    let mut events = Vec::new();
    for group in found.into_iter().filter(|g| g.new) {
        for (stream, lines) in &group.streams {
            let mut identity = vec![
                ("error_group", group.fingerprint.clone()),
                ("category", group.category.clone()),
            ];
            if let Some(exception) = &group.exception {
                identity.push(("exception", exception.clone()));
            }
            let mut annotations = BTreeMap::new();
            annotations.insert(
                "summary".to_string(),
                format!(
                    "new {} error in {stream}: {}",
                    group.category, group.pattern
                ),
            );
            if let Some(example) = group.examples.first() {
                annotations.insert("example".to_string(), example.clone());
                annotations.insert("description".to_string(), example.clone());
            }
            annotations.insert("pattern".to_string(), group.pattern.clone());
            annotations.insert("first_seen".to_string(), group.first_seen.to_string());
            annotations.insert(
                "link".to_string(),
                api_link("errors", stream, group.first_seen, end),
            );
            events.push(Event {
                labels: labels(tenant, stream, identity),
                value: *lines as f64,
                annotations,
            });
        }
    }
    Ok(events)
}

/// Anomalies with a window in the `window` before `at` (whole windows of
/// `anomaly_window`): one event per stream, kind and pattern (the
/// strongest), valued by its score.
pub fn anomalies(
    index: &PatternIndex,
    config: &IndexConfig,
    tenant: &TenantId,
    source: &AnalysisSource,
    at: Timestamp,
) -> Result<Vec<Event>, String> {
    let width = source.anomaly_window.as_secs().max(1) as i64;
    let end = at.0.div_euclid(SECOND_NS).div_euclid(width) * width;
    let windows = (source.window.as_secs() as i64 / width).max(1);
    let range = Range {
        start: end - windows * width,
        window_secs: width,
        windows,
    };
    let counts = index
        .window_counts(tenant, &[], range, &config.anomalies)
        .map_err(|e| format!("reading pattern counts: {e}"))?;
    let detection = anomaly::detect(&counts, range, &config.anomalies);
    // Strongest first: the first of each identity is kept.
    let mut events: BTreeMap<Vec<Label>, Event> = BTreeMap::new();
    for a in detection.anomalies {
        let mut identity = vec![("kind", a.kind.as_str().to_string())];
        if let Some(pattern) = &a.pattern {
            identity.push(("pattern", pattern.clone()));
        }
        let labels = labels(tenant, &a.labels, identity);
        if events.contains_key(&labels) {
            continue;
        }
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "summary".to_string(),
            format!("{} in {}", a.kind.as_str().replace('_', " "), a.labels),
        );
        annotations.insert("description".to_string(), a.evidence.clone());
        annotations.insert("observed".to_string(), a.observed.to_string());
        annotations.insert(
            "baseline".to_string(),
            format!("median {:.1}, MAD {:.1}", a.baseline.median, a.baseline.mad),
        );
        annotations.insert(
            "link".to_string(),
            api_link("anomalies", &a.labels, range.start, end),
        );
        events.insert(
            labels.clone(),
            Event {
                labels,
                value: a.score,
                annotations,
            },
        );
    }
    Ok(events.into_values().collect())
}

/// The stream's labels, `tenant`, then the event's identity.
fn labels(tenant: &TenantId, stream: &str, identity: Vec<(&str, String)>) -> Vec<Label> {
    let mut out: BTreeMap<String, String> = LabelSet::parse(stream)
        .map(|set| {
            set.into_labels()
                .into_iter()
                .map(|l| (l.name, l.value))
                .collect()
        })
        .unwrap_or_default();
    out.insert("tenant".to_string(), tenant.as_str().to_string());
    for (name, value) in identity {
        out.insert(name.to_string(), value);
    }
    out.into_iter().map(|(n, v)| Label::new(n, v)).collect()
}

/// `/skald/api/v1/<what>?query=<stream>&start=<s>&end=<s>`.
fn api_link(what: &str, stream: &str, start: i64, end: i64) -> String {
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("query", stream)
        .append_pair("start", &start.to_string())
        .append_pair("end", &end.to_string())
        .finish();
    format!("/skald/api/v1/{what}?{query}")
}
