//! Error groups: error lines that share a fingerprint (pattern, exception
//! type, top frame, category), with counts over time, when they were
//! first and last seen, example lines and the streams they came from.
//!
//! The pattern index counts error lines per group and bucket at ingest
//! (`errors-<day>.tsv`, see `crate::index`); [`query`] reads a range of
//! them plus a look-back before it, so a group whose first line falls in
//! the range is known to be new ("a new error type appeared") rather than
//! merely the first in the range.
//!
//! Not here: deciding what an error is (`crate::errors`), HTTP shapes.

use crate::index::{PatternIndex, subsumers};
use skald_model::{Matcher, TenantId};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Error groups of a tenant's streams over a range.
pub struct ErrorQuery<'a> {
    pub tenant: &'a TenantId,
    pub matchers: &'a [Matcher],
    /// Unix seconds, `[start, end)`.
    pub start: i64,
    pub end: i64,
    /// Width of the count samples, in seconds.
    pub step: i64,
    /// How far before `start` a group's earlier lines are looked for.
    pub lookback_secs: i64,
    /// Most example lines per group.
    pub examples: usize,
    /// Most streams listed per group.
    pub streams: usize,
}

/// One error group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ErrorGroup {
    /// 16 hex digits, stable across restarts and versions of the file.
    pub fingerprint: String,
    pub category: String,
    pub exception: Option<String>,
    pub frame: Option<String>,
    pub pattern: String,
    /// Lines in the range.
    pub count: u64,
    /// Unix seconds (bucket starts): the first line within the look-back
    /// and the range, the last line in the range.
    pub first_seen: i64,
    pub last_seen: i64,
    /// First seen inside the range: nothing of it in the look-back.
    pub new: bool,
    /// `(step start, lines)`, ascending, zero steps omitted.
    pub samples: Vec<(i64, u64)>,
    pub examples: Vec<String>,
    /// Streams (labels as Loki prints them) with their lines in the range,
    /// most first.
    pub streams: Vec<(String, u64)>,
}

#[derive(Default)]
struct Acc {
    count: u64,
    first_seen: Option<i64>,
    last_seen: Option<i64>,
    samples: BTreeMap<i64, u64>,
    examples: BTreeSet<String>,
    /// Examples from before the range, used when the range has too few
    /// (files keep examples for a key's first records only).
    earlier: BTreeSet<String>,
    streams: HashMap<String, u64>,
}

impl Acc {
    fn absorb(&mut self, other: Acc, examples: usize) {
        self.count += other.count;
        self.first_seen = min_opt(self.first_seen, other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        for (t, c) in other.samples {
            *self.samples.entry(t).or_default() += c;
        }
        for e in other.examples {
            if self.examples.len() < examples {
                self.examples.insert(e);
            }
        }
        for e in other.earlier {
            if self.earlier.len() < examples {
                self.earlier.insert(e);
            }
        }
        for (s, c) in other.streams {
            *self.streams.entry(s).or_default() += c;
        }
    }
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The fingerprint of an error group: 16 hex digits of FNV-1a over its
/// key, so it does not change with the process or the hasher.
pub fn fingerprint(category: &str, exception: &str, frame: &str, pattern: &str) -> String {
    fnv(&format!("{category}|{exception}|{frame}|{pattern}"))
}

fn fnv(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// (category, exception, frame, pattern)
type Key = (String, String, String, String);

/// The error groups of `q`, most lines first.
pub fn query(index: &PatternIndex, q: &ErrorQuery<'_>) -> std::io::Result<Vec<ErrorGroup>> {
    let step = q.step.max(1);
    let mut groups: BTreeMap<Key, Acc> = BTreeMap::new();
    let from = q.start.saturating_sub(q.lookback_secs.max(0));
    index.each_error_record(q.tenant, q.matchers, from, q.end, |r| {
        let acc = groups
            .entry((
                r.category.to_owned(),
                r.exception.to_owned(),
                r.frame.to_owned(),
                r.pattern.to_owned(),
            ))
            .or_default();
        acc.first_seen = min_opt(acc.first_seen, Some(r.bucket));
        if r.bucket < q.start {
            if acc.earlier.len() < q.examples && !r.example.is_empty() {
                acc.earlier.insert(r.example.to_owned());
            }
            return;
        }
        acc.count += r.count;
        acc.last_seen = acc.last_seen.max(Some(r.bucket));
        let at = q.start + (r.bucket - q.start).div_euclid(step) * step;
        *acc.samples.entry(at).or_default() += r.count;
        if acc.examples.len() < q.examples && !r.example.is_empty() {
            acc.examples.insert(r.example.to_owned());
        }
        *acc.streams.entry(r.labels.to_owned()).or_default() += r.count;
    })?;
    // Fold groups written before their pattern was generalised.
    let (keys, mut accs): (Vec<Key>, Vec<Option<Acc>>) =
        groups.into_iter().map(|(k, a)| (k, Some(a))).unzip();
    let targets = subsumers(
        &keys.iter().map(|k| k.3.as_str()).collect::<Vec<_>>(),
        |i, j| keys[i].0 == keys[j].0 && keys[i].1 == keys[j].1 && keys[i].2 == keys[j].2,
    );
    for (i, to) in targets.into_iter().enumerate() {
        if to != i
            && let Some(moved) = accs[i].take()
            && let Some(into) = accs[to].as_mut()
        {
            into.absorb(moved, q.examples);
        }
    }
    let some = |s: String| (!s.is_empty()).then_some(s);
    let mut out: Vec<ErrorGroup> = keys
        .into_iter()
        .zip(accs)
        .filter_map(|((category, exception, frame, pattern), acc)| {
            let mut acc = acc.filter(|a| a.count > 0)?;
            let first_seen = acc.first_seen?;
            let mut examples: Vec<String> = std::mem::take(&mut acc.examples).into_iter().collect();
            let wanted = q.examples.saturating_sub(examples.len());
            examples.extend(acc.earlier.into_iter().take(wanted));
            let mut streams: Vec<(String, u64)> = acc.streams.into_iter().collect();
            streams.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            streams.truncate(q.streams);
            Some(ErrorGroup {
                fingerprint: fingerprint(&category, &exception, &frame, &pattern),
                category,
                exception: some(exception),
                frame: some(frame),
                pattern,
                count: acc.count,
                first_seen,
                last_seen: acc.last_seen.unwrap_or(first_seen),
                new: first_seen >= q.start,
                samples: acc.samples.into_iter().collect(),
                examples,
                streams,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexConfig;
    use crate::index::tests::group;

    fn groups(index: &PatternIndex, tenant: &TenantId, start: i64, end: i64) -> Vec<ErrorGroup> {
        let matchers = [Matcher::new("app", skald_model::MatchOp::Eq, "api").unwrap()];
        query(
            index,
            &ErrorQuery {
                tenant,
                matchers: &matchers,
                start,
                end,
                step: 100,
                lookback_secs: 10_000,
                examples: 2,
                streams: 5,
            },
        )
        .unwrap()
    }

    #[test]
    fn errors_group_by_fingerprint_with_first_seen_and_new() {
        let dir = tempfile::tempdir().unwrap();
        let index = PatternIndex::open(dir.path(), IndexConfig::default()).unwrap();
        let tenant = TenantId::new("t").unwrap();
        let mut lines: Vec<(i64, String)> = Vec::new();
        for i in 0..20 {
            lines.push((
                1_000 + i * 10,
                format!("level=info GET /items/{i} took {i}ms"),
            ));
            lines.push((
                1_000 + i * 10,
                format!("level=error upstream 10.0.0.{i}:80 connection refused"),
            ));
        }
        for i in 0..3 {
            lines.push((
                5_000 + i,
                format!("java.lang.IllegalStateException: bad state {i}"),
            ));
        }
        let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        assert!(index.offer(tenant.clone(), group(r#"{app="api"}"#, &lines)));
        assert!(index.offer(
            TenantId::new("other").unwrap(),
            group(r#"{app="api"}"#, &[(5_000, "panic: other tenant")])
        ));
        let got = groups(&index, &tenant, 4_000, 6_000);
        assert_eq!(got.len(), 1, "{got:#?}");
        let g = &got[0];
        assert_eq!(g.category, "exception");
        assert_eq!(
            g.exception.as_deref(),
            Some("java.lang.IllegalStateException")
        );
        assert_eq!(g.count, 3);
        assert!(g.new);
        assert_eq!(g.streams, [(r#"{app="api"}"#.to_owned(), 3)]);
        assert!(g.examples[0].starts_with("java.lang.IllegalStateException: bad state"));

        // The refused connections: first seen before a later range.
        let got = groups(&index, &tenant, 1_100, 6_000);
        let refused = got
            .iter()
            .find(|g| g.category == "connection_refused")
            .expect("refused group");
        assert_eq!(refused.count, 10);
        assert_eq!(refused.first_seen, 1_000);
        assert!(!refused.new);
        assert!(
            refused.pattern.contains("connection refused"),
            "{}",
            refused.pattern
        );
        assert_eq!(refused.examples.len(), 2);
        assert!(groups(&index, &tenant, 7_000, 8_000).is_empty());
    }

    #[test]
    fn fingerprints_are_stable() {
        assert_eq!(fnv(""), "cbf29ce484222325");
        assert_eq!(fnv("a"), "af63dc4c8601ec8c");
    }
}
