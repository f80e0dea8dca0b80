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

use crate::errors::ErrorShape;
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
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
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
    /// Streams the key was written for, look-back included (not folded).
    written: std::collections::HashSet<String>,
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

/// Every error group of a range, those seen only in the look-back
/// included, and the stream-and-pattern keys folded into each: what
/// [`query`] answers from and what [`GroupLookup`] matches lines against.
struct Collected {
    groups: Vec<ErrorGroup>,
    /// (stream labels, key as written) -> index in `groups`.
    members: Vec<(String, Key, usize)>,
}

fn collect(index: &PatternIndex, q: &ErrorQuery<'_>) -> std::io::Result<Collected> {
    let step = q.step.max(1);
    let mut groups: BTreeMap<Key, Acc> = BTreeMap::new();
    let from = q.start.saturating_sub(q.lookback_secs.max(0));
    index.each_error_record(q.tenant, q.matchers, from, q.end, |r| {
        let key = (
            r.category.to_owned(),
            r.exception.to_owned(),
            r.frame.to_owned(),
            r.pattern.to_owned(),
        );
        let acc = groups.entry(key).or_default();
        if !acc.written.contains(r.labels) {
            acc.written.insert(r.labels.to_owned());
        }
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
    let written: Vec<_> = accs
        .iter_mut()
        .map(|a| {
            a.as_mut()
                .map(|a| std::mem::take(&mut a.written))
                .unwrap_or_default()
        })
        .collect();
    let targets = subsumers(
        &keys.iter().map(|k| k.3.as_str()).collect::<Vec<_>>(),
        |i, j| keys[i].0 == keys[j].0 && keys[i].1 == keys[j].1 && keys[i].2 == keys[j].2,
    );
    for (i, &to) in targets.iter().enumerate() {
        if to != i
            && let Some(moved) = accs[i].take()
            && let Some(into) = accs[to].as_mut()
        {
            into.absorb(moved, q.examples);
        }
    }
    let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    // Position in `groups` of each surviving key.
    let mut position = vec![usize::MAX; keys.len()];
    let mut out = Vec::new();
    for (i, acc) in accs.into_iter().enumerate() {
        let Some(mut acc) = acc else { continue };
        let Some(first_seen) = acc.first_seen else {
            continue;
        };
        let (category, exception, frame, pattern) = &keys[i];
        let mut examples: Vec<String> = std::mem::take(&mut acc.examples).into_iter().collect();
        let wanted = q.examples.saturating_sub(examples.len());
        examples.extend(acc.earlier.into_iter().take(wanted));
        let mut streams: Vec<(String, u64)> = acc.streams.into_iter().collect();
        streams.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        streams.truncate(q.streams);
        position[i] = out.len();
        out.push(ErrorGroup {
            fingerprint: fingerprint(category, exception, frame, pattern),
            category: category.clone(),
            exception: some(exception),
            frame: some(frame),
            pattern: pattern.clone(),
            count: acc.count,
            first_seen,
            last_seen: acc.last_seen.unwrap_or(first_seen),
            new: first_seen >= q.start,
            samples: acc.samples.into_iter().collect(),
            examples,
            streams,
        });
    }
    let mut members = Vec::new();
    for (i, streams) in written.into_iter().enumerate() {
        let at = position[targets[i]];
        if at == usize::MAX {
            continue;
        }
        for labels in streams {
            members.push((labels, keys[i].clone(), at));
        }
    }
    Ok(Collected {
        groups: out,
        members,
    })
}

/// The error groups of `q`, most lines first.
pub fn query(index: &PatternIndex, q: &ErrorQuery<'_>) -> std::io::Result<Vec<ErrorGroup>> {
    let mut out: Vec<ErrorGroup> = collect(index, q)?
        .groups
        .into_iter()
        .filter(|g| g.count > 0)
        .collect();
    sort(&mut out);
    Ok(out)
}

fn sort(groups: &mut [ErrorGroup]) {
    groups.sort_by(|a, b| {
        b.count
            .cmp(&a.count)
            .then_with(|| a.fingerprint.cmp(&b.fingerprint))
    });
}

/// (stream labels, category, exception, frame): the keys a line of a
/// stream with an error shape may belong to, by pattern tokens, with the
/// group of each.
type StreamShape = (String, String, String, String);

/// Finds the error group of the index that a line of a stream belongs
/// to, so a report that mines lines afresh (`crate::report`) names the
/// very groups `/skald/api/v1/errors` lists — same fingerprint, same
/// `new` — rather than groups of its own patterns.
///
/// A line belongs to a key written for its stream with its error shape
/// whose pattern accepts the line's masked tokens (a wildcard takes any
/// token, other tokens must be equal), as the stream's miner accepted
/// it; the key's group is the one its pattern was folded into. When
/// several keys accept the line (a pattern written before the position
/// became a variable, beside the general one), they fold into the same
/// group; otherwise the group with most lines in the range wins, then
/// the smaller fingerprint, so the answer never depends on order.
pub struct GroupLookup {
    groups: Vec<ErrorGroup>,
    keys: HashMap<StreamShape, Vec<(Vec<String>, usize)>>,
    by_fingerprint: HashMap<String, usize>,
    masked: crate::mask::Masked,
}

impl GroupLookup {
    /// The groups of `q` (look-back included) and the keys of each.
    pub fn new(index: &PatternIndex, q: &ErrorQuery<'_>) -> std::io::Result<GroupLookup> {
        let collected = collect(index, q)?;
        let mut keys: HashMap<_, Vec<(Vec<String>, usize)>> = HashMap::new();
        for (labels, (category, exception, frame, pattern), at) in collected.members {
            let tokens = pattern.split(' ').map(str::to_owned).collect();
            keys.entry((labels, category, exception, frame))
                .or_default()
                .push((tokens, at));
        }
        let by_fingerprint = (collected.groups.iter().enumerate())
            .map(|(i, g)| (g.fingerprint.clone(), i))
            .collect();
        Ok(GroupLookup {
            groups: collected.groups,
            keys,
            by_fingerprint,
            masked: Default::default(),
        })
    }

    /// The group with this fingerprint.
    pub fn get(&self, fingerprint: &str) -> Option<&ErrorGroup> {
        Some(&self.groups[*self.by_fingerprint.get(fingerprint)?])
    }

    /// The index's group of an error line of stream `labels` with shape
    /// `shape`; `None` when the index never counted such a line (it was
    /// shed or sampled out, or written before the look-back).
    pub fn find(&mut self, labels: &str, shape: &ErrorShape, line: &str) -> Option<&ErrorGroup> {
        let key = (
            labels.to_owned(),
            shape.category.as_str().to_owned(),
            crate::index::field(shape.exception.as_deref()),
            crate::index::field(shape.frame.as_deref()),
        );
        let candidates = self.keys.get(&key)?;
        crate::mask::mask_into(
            line,
            crate::MinerConfig::default().max_tokens,
            &mut self.masked,
        );
        let masked = &self.masked;
        let groups = &self.groups;
        candidates
            .iter()
            .filter(|(tokens, _)| {
                tokens.len() == masked.len()
                    && tokens
                        .iter()
                        .zip(masked.tokens())
                        .all(|(p, t)| p == crate::WILDCARD || p == t)
            })
            .map(|&(_, at)| &groups[at])
            .min_by(|a, b| {
                b.count
                    .cmp(&a.count)
                    .then_with(|| a.fingerprint.cmp(&b.fingerprint))
            })
    }
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
