//! The analysis report of a set of lines (`skald analyze`, gRPC
//! `AnalyzeLogs`): totals, levels, error count and rate, top patterns with
//! their share and the numbers with units found in their lines (as p50,
//! p95, p99), error groups, and lines per hour.
//!
//! Lines are mined afresh here (one miner over all the lines given, so a
//! pattern is counted across streams), with the same masking, level
//! detection and error classification as at ingest. Anomalies are not
//! computed here: they need history, which the pattern index has; the
//! caller adds them ([`Report::anomalies`]).
//!
//! Numbers: `key=12ms` (named `key`), `took 1.2s` / `in 30 ms` (named
//! after the word before), `size=4KiB`; durations in milliseconds, sizes
//! in bytes. At most [`MAX_VALUES`] values per pattern and name are kept
//! (the first ones).

use crate::anomaly::Anomaly;
use crate::errors::{self, ErrorShape};
use crate::groups::{ErrorGroup, GroupLookup};
use crate::level;
use crate::miner::{Miner, MinerConfig, PatternId};
use std::collections::{BTreeMap, HashMap};

/// Values kept per pattern and number name.
pub const MAX_VALUES: usize = 10_000;

/// How much the report lists.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    pub top_patterns: usize,
    pub error_groups: usize,
    pub examples: usize,
}

impl Default for ReportConfig {
    fn default() -> Self {
        Self {
            top_patterns: 10,
            error_groups: 10,
            examples: 2,
        }
    }
}

/// Percentiles of one named number of a pattern's lines.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct NumberStats {
    pub name: String,
    /// `ms` or `bytes`.
    pub unit: String,
    pub count: u64,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PatternSummary {
    pub pattern: String,
    /// The most common level of its lines.
    pub level: String,
    pub count: u64,
    /// Of all lines, 0..1.
    pub share: f64,
    pub numbers: Vec<NumberStats>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HourCount {
    /// Unix seconds of the hour's start.
    pub start: i64,
    pub lines: u64,
    pub errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Report {
    pub lines: u64,
    pub streams: u64,
    pub patterns_total: u64,
    /// Lines per level (`unknown` when none was found).
    pub levels: BTreeMap<String, u64>,
    pub error_lines: u64,
    /// `error_lines / lines` (0 without lines).
    pub error_rate: f64,
    pub patterns: Vec<PatternSummary>,
    pub error_groups: Vec<ErrorGroup>,
    pub hourly: Vec<HourCount>,
    /// Added by the caller, strongest first.
    pub anomalies: Vec<Anomaly>,
    /// Anomalous stream windows over judged ones (0..1), from the caller.
    pub anomaly_rate: f64,
}

/// One line given to the report.
pub struct Line<'a> {
    pub labels: &'a str,
    /// Unix nanoseconds.
    pub ts: i64,
    pub line: &'a str,
    pub metadata: &'a [(&'a str, &'a str)],
}

/// What an error line of the report is grouped by: the index's group
/// when the caller gave a [`GroupLookup`] that knows the line, else the
/// report's own pattern and the line's shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum ErrorKey {
    /// The fingerprint of one of the lookup's groups.
    Known(String),
    Mined(PatternId, ErrorShape),
}

struct ErrorAcc {
    count: u64,
    first: i64,
    last: i64,
    examples: Vec<String>,
    streams: HashMap<String, u64>,
}

/// Builds a report line by line.
pub struct Builder {
    config: ReportConfig,
    miner: Miner,
    report: Report,
    per_line: Vec<PatternId>,
    levels_of: Vec<crate::level::Level>,
    numbers: HashMap<(PatternId, String, &'static str), Vec<f64>>,
    errors: HashMap<ErrorKey, ErrorAcc>,
    /// The index's error groups, matched exactly (see [`Builder::with_groups`]).
    known: Option<GroupLookup>,
    hourly: BTreeMap<i64, (u64, u64)>,
    streams: std::collections::HashSet<String>,
}

impl Builder {
    pub fn new(config: ReportConfig) -> Builder {
        Builder {
            config,
            miner: Miner::new(MinerConfig {
                track_merges: true,
                ..MinerConfig::default()
            }),
            report: Report::default(),
            per_line: Vec::new(),
            levels_of: Vec::new(),
            numbers: HashMap::new(),
            errors: HashMap::new(),
            known: None,
            hourly: BTreeMap::new(),
            streams: Default::default(),
        }
    }

    /// Groups error lines by the index's error groups where the index
    /// counted them: such a group keeps the index's fingerprint and
    /// pattern, and `new` and `first_seen` come from the index's history.
    /// Lines the index does not know (shed or sampled out at ingest) are
    /// grouped by the report's own patterns, never marked new.
    pub fn with_groups(mut self, known: GroupLookup) -> Builder {
        self.known = Some(known);
        self
    }

    pub fn add(&mut self, l: &Line<'_>) {
        let id = self.miner.add(l.line);
        let level = level::detect(l.line, l.metadata.iter().copied());
        self.per_line.push(id);
        self.levels_of.push(level);
        self.report.lines += 1;
        if !self.streams.contains(l.labels) {
            self.streams.insert(l.labels.to_owned());
        }
        let secs = l.ts.div_euclid(1_000_000_000);
        let hour = self.hourly.entry(secs.div_euclid(3600) * 3600).or_default();
        hour.0 += 1;
        for (name, unit, value) in numbers(l.line) {
            let values = self.numbers.entry((id, name, unit)).or_default();
            if values.len() < MAX_VALUES {
                values.push(value);
            }
        }
        if let Some(shape) = errors::classify(l.line, level) {
            hour.1 += 1;
            self.report.error_lines += 1;
            let known = self
                .known
                .as_mut()
                .and_then(|k| k.find(l.labels, &shape, l.line));
            let key = match known {
                Some(group) => ErrorKey::Known(group.fingerprint.clone()),
                None => ErrorKey::Mined(id, shape),
            };
            let acc = self.errors.entry(key).or_insert_with(|| ErrorAcc {
                count: 0,
                first: secs,
                last: secs,
                examples: Vec::new(),
                streams: HashMap::new(),
            });
            acc.count += 1;
            acc.first = acc.first.min(secs);
            acc.last = acc.last.max(secs);
            if acc.examples.len() < self.config.examples
                && !acc.examples.iter().any(|e| e == l.line)
            {
                acc.examples.push(l.line.to_owned());
            }
            *acc.streams.entry(l.labels.to_owned()).or_default() += 1;
        }
    }

    pub fn finish(mut self) -> Report {
        let mut report = std::mem::take(&mut self.report);
        report.streams = self.streams.len() as u64;
        let resolve = |id: PatternId| self.miner.resolve(id).unwrap_or(id);
        // pattern -> (count, level counts)
        let mut patterns: HashMap<PatternId, (u64, HashMap<&'static str, u64>)> = HashMap::new();
        for (&id, &level) in self.per_line.iter().zip(&self.levels_of) {
            let p = patterns.entry(resolve(id)).or_default();
            p.0 += 1;
            *p.1.entry(level.as_str()).or_default() += 1;
            *report.levels.entry(level.as_str().to_owned()).or_default() += 1;
        }
        report.patterns_total = patterns.len() as u64;
        let mut numbers: HashMap<PatternId, BTreeMap<(String, &'static str), Vec<f64>>> =
            HashMap::new();
        for ((id, name, unit), values) in self.numbers.drain() {
            numbers
                .entry(resolve(id))
                .or_default()
                .entry((name, unit))
                .or_default()
                .extend(values);
        }
        let text = |id: PatternId| self.miner.get(id).map(|p| p.text()).unwrap_or_default();
        let mut top: Vec<(PatternId, u64, &'static str)> = patterns
            .iter()
            .map(|(&id, (count, levels))| {
                let level = levels
                    .iter()
                    .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
                    .map_or("unknown", |(l, _)| l);
                (id, *count, level)
            })
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| text(a.0).cmp(&text(b.0))));
        top.truncate(self.config.top_patterns);
        let lines = report.lines.max(1) as f64;
        report.patterns = top
            .into_iter()
            .map(|(id, count, level)| PatternSummary {
                pattern: text(id),
                level: level.to_owned(),
                count,
                share: count as f64 / lines,
                numbers: numbers
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|((name, unit), values)| stats(name, unit, values))
                    .collect(),
            })
            .collect();
        report.error_rate = report.error_lines as f64 / lines;
        let mut groups: HashMap<ErrorKey, ErrorAcc> = HashMap::new();
        for (key, acc) in self.errors.drain() {
            let key = match key {
                ErrorKey::Mined(id, shape) => ErrorKey::Mined(resolve(id), shape),
                known => known,
            };
            match groups.entry(key) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert(acc);
                }
                std::collections::hash_map::Entry::Occupied(mut o) => {
                    let into = o.get_mut();
                    into.count += acc.count;
                    into.first = into.first.min(acc.first);
                    into.last = into.last.max(acc.last);
                    for e in acc.examples {
                        if into.examples.len() < self.config.examples {
                            into.examples.push(e);
                        }
                    }
                    for (s, c) in acc.streams {
                        *into.streams.entry(s).or_default() += c;
                    }
                }
            }
        }
        let known = self.known.as_ref();
        let mut groups: Vec<ErrorGroup> = groups
            .into_iter()
            .map(|(key, acc)| {
                let mut streams: Vec<(String, u64)> = acc.streams.into_iter().collect();
                streams.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                let mut group = match key {
                    ErrorKey::Known(fingerprint) => {
                        let k = known
                            .and_then(|k| k.get(&fingerprint))
                            .expect("a known key names a group of the lookup");
                        ErrorGroup {
                            first_seen: k.first_seen.min(acc.first),
                            new: k.new,
                            ..k.clone()
                        }
                    }
                    ErrorKey::Mined(id, shape) => {
                        let pattern = text(id);
                        ErrorGroup {
                            fingerprint: crate::groups::fingerprint(
                                shape.category.as_str(),
                                shape.exception.as_deref().unwrap_or(""),
                                shape.frame.as_deref().unwrap_or(""),
                                &pattern,
                            ),
                            category: shape.category.as_str().to_owned(),
                            exception: shape.exception,
                            frame: shape.frame,
                            pattern,
                            first_seen: acc.first,
                            new: false,
                            ..ErrorGroup::default()
                        }
                    }
                };
                // The report's own counts, over the lines it read.
                group.count = acc.count;
                group.last_seen = acc.last;
                group.samples = Vec::new();
                group.examples = acc.examples;
                group.streams = streams;
                group
            })
            .collect();
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.fingerprint.cmp(&b.fingerprint))
        });
        groups.truncate(self.config.error_groups);
        report.error_groups = groups;
        report.hourly = self
            .hourly
            .into_iter()
            .map(|(start, (lines, errors))| HourCount {
                start,
                lines,
                errors,
            })
            .collect();
        report
    }
}

/// Nearest-rank percentiles.
fn stats(name: String, unit: &'static str, mut values: Vec<f64>) -> NumberStats {
    values.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let rank = (q * values.len() as f64).ceil() as usize;
        values[rank.clamp(1, values.len()) - 1]
    };
    NumberStats {
        name,
        unit: unit.to_owned(),
        count: values.len() as u64,
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    }
}

/// A number with a unit of time or size: `12ms`, `1.5s`, `4KiB`; the
/// value in milliseconds or bytes, and the unit it was brought to.
fn quantity(text: &str, unit: Option<&str>) -> Option<(f64, &'static str)> {
    let text = text.trim_end_matches([',', ';', ')', ']', '.', '"']);
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    if number.is_empty() || !number.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let value: f64 = number.parse().ok()?;
    let unit = match (suffix, unit) {
        ("", Some(u)) => u.trim_end_matches([',', ';', ')', ']', '.', '"']),
        ("", None) => return None,
        (s, _) => s,
    };
    let (factor, kind) = match unit {
        "ns" => (1e-6, "ms"),
        "us" | "µs" => (1e-3, "ms"),
        "ms" => (1.0, "ms"),
        "s" | "sec" | "secs" | "second" | "seconds" => (1e3, "ms"),
        "min" | "mins" | "minutes" => (60e3, "ms"),
        "h" | "hours" => (3_600e3, "ms"),
        "B" | "bytes" => (1.0, "bytes"),
        "KB" | "kB" => (1e3, "bytes"),
        "MB" => (1e6, "bytes"),
        "GB" => (1e9, "bytes"),
        "TB" => (1e12, "bytes"),
        "KiB" => (1024.0, "bytes"),
        "MiB" => (1024.0 * 1024.0, "bytes"),
        "GiB" => (1024.0 * 1024.0 * 1024.0, "bytes"),
        _ => return None,
    };
    Some((value * factor, kind))
}

/// The numbers with units of a line, named (see the module doc).
pub fn numbers(line: &str) -> Vec<(String, &'static str, f64)> {
    let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let token = tokens[i];
        let next = tokens.get(i + 1).copied();
        if let Some((key, value)) = token.split_once('=') {
            let key = key.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '_');
            if !key.is_empty()
                && let Some((v, unit)) = quantity(value.trim_matches('"'), None)
            {
                out.push((key.to_owned(), unit, v));
            }
            i += 1;
            continue;
        }
        let before = i
            .checked_sub(1)
            .map(|j| tokens[j].trim_matches(|c: char| !c.is_ascii_alphanumeric()))
            .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_alphabetic()));
        if let Some((v, unit)) = quantity(token, None) {
            let name = before.map_or(if unit == "ms" { "duration" } else { "size" }, |w| w);
            out.push((name.to_ascii_lowercase(), unit, v));
        } else if let Some((v, unit)) = quantity(token, next) {
            let name = before.map_or(if unit == "ms" { "duration" } else { "size" }, |w| w);
            out.push((name.to_ascii_lowercase(), unit, v));
            i += 1;
        }
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_units_are_named_and_normalised() {
        assert_eq!(
            numbers("GET /a duration=12ms size=4KiB status=200"),
            [
                ("duration".to_owned(), "ms", 12.0),
                ("size".to_owned(), "bytes", 4096.0)
            ]
        );
        assert_eq!(
            numbers("request took 1.5s"),
            [("took".to_owned(), "ms", 1500.0)]
        );
        assert_eq!(
            numbers("sent 30 MB in 250 ms"),
            [
                ("sent".to_owned(), "bytes", 30e6),
                ("in".to_owned(), "ms", 250.0)
            ]
        );
        assert!(numbers("user 42 logged in at 10.0.0.1").is_empty());
    }

    #[test]
    fn a_report_counts_patterns_errors_numbers_and_hours() {
        let mut b = Builder::new(ReportConfig::default());
        let mut lines = Vec::new();
        for i in 0..100i64 {
            lines.push((
                i * 60,
                format!("level=info GET /items/{i} took {}ms", i + 1),
            ));
        }
        for i in 0..20i64 {
            lines.push((
                i * 300,
                format!("level=error db 10.0.0.{i}:5432 connection refused"),
            ));
        }
        for (ts, line) in &lines {
            b.add(&Line {
                labels: r#"{app="api"}"#,
                ts: ts * 1_000_000_000,
                line,
                metadata: &[],
            });
        }
        let r = b.finish();
        assert_eq!((r.lines, r.streams, r.error_lines), (120, 1, 20));
        assert!((r.error_rate - 20.0 / 120.0).abs() < 1e-9);
        assert_eq!(r.patterns[0].pattern, "level=<_> GET <_> took <_>");
        assert_eq!(r.patterns[0].count, 100);
        let took = &r.patterns[0].numbers[0];
        assert_eq!((took.name.as_str(), took.unit.as_str()), ("took", "ms"));
        assert_eq!((took.p50, took.p95, took.p99), (50.0, 95.0, 99.0));
        assert_eq!(r.error_groups.len(), 1);
        assert_eq!(r.error_groups[0].category, "connection_refused");
        assert_eq!(r.error_groups[0].count, 20);
        assert_eq!(r.levels["error"], 20);
        assert_eq!(
            r.hourly
                .iter()
                .map(|h| (h.start, h.lines, h.errors))
                .collect::<Vec<_>>(),
            [(0, 72, 12), (3600, 48, 8)]
        );
    }
}

#[cfg(test)]
mod known_groups {
    use super::*;
    use crate::groups::{self, ErrorQuery, GroupLookup};
    use crate::index::tests::group;
    use crate::index::{IndexConfig, PatternIndex};
    use skald_model::{MatchOp, Matcher, TenantId};

    /// A report over a few lines mines patterns of its own (`user bob`
    /// where the index, having seen more users, has `user <_>`); its
    /// error groups must still be the index's, with the index's
    /// fingerprint and `new`, also when another group of the same shape
    /// (level error, no exception, no frame) is new and larger.
    #[test]
    fn report_error_groups_carry_the_index_fingerprint_and_new_flag() {
        let dir = tempfile::tempdir().unwrap();
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        let tenant = TenantId::new("t").unwrap();
        let labels = r#"{app="pay"}"#;
        let mut lines: Vec<(i64, String)> = ["alice", "carol", "dave", "erin"]
            .iter()
            .enumerate()
            .map(|(i, u)| {
                (
                    1_000 + i as i64,
                    format!("level=error payment declined for user {u}"),
                )
            })
            .collect();
        let in_range: Vec<(i64, String)> = std::iter::once((
            5_000,
            "level=error payment declined for user bob".to_owned(),
        ))
        .chain((0..5).map(|i| {
            (
                5_001 + i,
                format!("level=error disk quota exceeded on volume {i}"),
            )
        }))
        .collect();
        lines.extend(in_range.iter().cloned());
        let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        index.offer_waiting(tenant.clone(), group(labels, &lines));
        let matchers = [Matcher::new("app", MatchOp::Eq, "pay").unwrap()];
        let q = ErrorQuery {
            tenant: &tenant,
            matchers: &matchers,
            start: 4_000,
            end: 6_000,
            step: 100,
            lookback_secs: 10_000,
            examples: 1,
            streams: 5,
        };
        let listed = groups::query(&index, &q).unwrap();
        let listed_payment = listed
            .iter()
            .find(|g| g.pattern.contains("payment"))
            .unwrap();
        assert_eq!(
            listed_payment.pattern,
            "level=<_> payment declined for user <_>"
        );
        assert!(!listed_payment.new);
        let listed_disk = listed.iter().find(|g| g.pattern.contains("disk")).unwrap();
        assert!(listed_disk.new);
        assert!(listed_disk.count > listed_payment.count);

        let mut b = Builder::new(ReportConfig::default())
            .with_groups(GroupLookup::new(&index, &q).unwrap());
        for (t, line) in &in_range {
            b.add(&Line {
                labels,
                ts: t * 1_000_000_000,
                line,
                metadata: &[],
            });
        }
        let report = b.finish();
        assert_eq!(report.error_groups.len(), 2, "{:#?}", report.error_groups);
        let named = |word: &str| {
            let found = report
                .error_groups
                .iter()
                .find(|g| g.pattern.contains(word));
            found.expect("a group of the report").clone()
        };
        let payment = named("payment");
        assert_eq!(payment.fingerprint, listed_payment.fingerprint);
        assert_eq!(payment.pattern, listed_payment.pattern);
        assert!(!payment.new, "seen before the range");
        assert_eq!(payment.first_seen, 1_000);
        assert_eq!(payment.count, 1);
        let disk = named("disk");
        assert_eq!(disk.fingerprint, listed_disk.fingerprint);
        assert!(disk.new);
        assert_eq!(disk.count, 5);

        // A line the index never counted (another stream) is grouped by
        // the report's own pattern and is never called new.
        let mut b = Builder::new(ReportConfig::default())
            .with_groups(GroupLookup::new(&index, &q).unwrap());
        b.add(&Line {
            labels: r#"{app="other"}"#,
            ts: 5_000_000_000_000,
            line: "level=error disk quota exceeded on volume 9",
            metadata: &[],
        });
        let report = b.finish();
        assert_eq!(report.error_groups.len(), 1);
        assert!(!report.error_groups[0].new);
    }
}
