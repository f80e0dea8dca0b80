//! The label index of one tenant: every stream ever seen, with its time
//! bounds, and postings from each label name and value to the streams that
//! carry it. Selectors are resolved here, and the labels APIs answer from it.
//!
//! Rebuilt at start from segment indexes and the WAL; kept in memory (its
//! size grows with the number of streams, which labels keep small).

use skald_model::{LabelSet, MatchOp, Matcher, StreamId, Timestamp};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the index knows of one stream.
#[derive(Debug, Clone)]
pub struct StreamInfo {
    pub labels: LabelSet,
    pub id: StreamId,
    pub min_ts: Timestamp,
    pub max_ts: Timestamp,
}

#[derive(Debug, Default)]
pub struct TenantIndex {
    streams: Vec<StreamInfo>,
    by_id: HashMap<StreamId, u32>,
    /// name -> value -> stream ordinals (ascending).
    postings: BTreeMap<String, BTreeMap<String, Vec<u32>>>,
}

impl TenantIndex {
    /// Records that `labels` has entries between `min` and `max`.
    pub fn observe(&mut self, labels: &LabelSet, id: StreamId, min: Timestamp, max: Timestamp) {
        if let Some(&ord) = self.by_id.get(&id) {
            let s = &mut self.streams[ord as usize];
            s.min_ts = s.min_ts.min(min);
            s.max_ts = s.max_ts.max(max);
            return;
        }
        let ord = self.streams.len() as u32;
        for l in labels.labels() {
            self.postings
                .entry(l.name.clone())
                .or_default()
                .entry(l.value.clone())
                .or_default()
                .push(ord);
        }
        self.streams.push(StreamInfo {
            labels: labels.clone(),
            id,
            min_ts: min,
            max_ts: max,
        });
        self.by_id.insert(id, ord);
    }

    pub fn get(&self, id: StreamId) -> Option<&StreamInfo> {
        self.by_id.get(&id).map(|&o| &self.streams[o as usize])
    }

    pub fn len(&self) -> usize {
        self.streams.len()
    }

    /// Streams matching every matcher with entries in `[start, end)`.
    /// Equality matchers on a value narrow through the postings; the rest
    /// are checked against the candidates.
    pub fn select(
        &self,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<&StreamInfo> {
        let mut candidates: Option<Vec<u32>> = None;
        for m in matchers {
            if m.op != MatchOp::Eq || m.value.is_empty() {
                continue;
            }
            let list = self
                .postings
                .get(&m.name)
                .and_then(|values| values.get(&m.value))
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            candidates = Some(match candidates {
                None => list.to_vec(),
                Some(c) => intersect(&c, list),
            });
        }
        let in_range = |s: &StreamInfo| s.min_ts < end && s.max_ts >= start;
        let matches = |s: &StreamInfo| matchers.iter().all(|m| m.matches(&s.labels));
        match candidates {
            Some(c) => c
                .into_iter()
                .map(|o| &self.streams[o as usize])
                .filter(|s| in_range(s) && matches(s))
                .collect(),
            None => self
                .streams
                .iter()
                .filter(|s| in_range(s) && matches(s))
                .collect(),
        }
    }

    /// Label names of the streams with entries in `[start, end)`, sorted.
    pub fn label_names(&self, start: Timestamp, end: Timestamp) -> Vec<String> {
        self.postings
            .iter()
            .filter(|(_, values)| {
                values
                    .values()
                    .flatten()
                    .any(|&o| self.in_range(o, start, end))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Values of `name` among streams with entries in `[start, end)` that
    /// match `matchers` (all streams when empty), sorted.
    pub fn label_values(
        &self,
        name: &str,
        matchers: &[Matcher],
        start: Timestamp,
        end: Timestamp,
    ) -> Vec<String> {
        let Some(values) = self.postings.get(name) else {
            return Vec::new();
        };
        if matchers.is_empty() {
            return values
                .iter()
                .filter(|(_, ords)| ords.iter().any(|&o| self.in_range(o, start, end)))
                .map(|(v, _)| v.clone())
                .collect();
        }
        let set: BTreeSet<String> = self
            .select(matchers, start, end)
            .into_iter()
            .filter_map(|s| s.labels.get(name).map(str::to_string))
            .collect();
        set.into_iter().collect()
    }

    fn in_range(&self, ord: u32, start: Timestamp, end: Timestamp) -> bool {
        let s = &self.streams[ord as usize];
        s.min_ts < end && s.max_ts >= start
    }
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ls(s: &str) -> LabelSet {
        LabelSet::parse(s).unwrap()
    }

    #[test]
    fn selects_by_postings_and_regex_within_time() {
        let mut idx = TenantIndex::default();
        for (i, s) in [
            r#"{app="api", env="prod"}"#,
            r#"{app="api", env="dev"}"#,
            r#"{app="web", env="prod"}"#,
        ]
        .iter()
        .enumerate()
        {
            let l = ls(s);
            idx.observe(
                &l,
                l.stream_id(),
                Timestamp(i as i64 * 10),
                Timestamp(i as i64 * 10 + 5),
            );
        }
        let m = |n: &str, op, v: &str| Matcher::new(n, op, v).unwrap();
        let all = (Timestamp(0), Timestamp(100));
        assert_eq!(
            idx.select(&[m("app", MatchOp::Eq, "api")], all.0, all.1)
                .len(),
            2
        );
        assert_eq!(
            idx.select(
                &[m("app", MatchOp::Eq, "api"), m("env", MatchOp::Re, "p.*")],
                all.0,
                all.1
            )
            .len(),
            1
        );
        assert_eq!(
            idx.select(&[m("env", MatchOp::Neq, "dev")], all.0, all.1)
                .len(),
            2
        );
        assert_eq!(
            idx.select(
                &[m("app", MatchOp::Eq, "api")],
                Timestamp(10),
                Timestamp(12)
            )
            .len(),
            1
        );
        assert_eq!(idx.label_names(all.0, all.1), ["app", "env"]);
        assert_eq!(
            idx.label_values("env", &[], Timestamp(20), Timestamp(30)),
            ["prod"]
        );
        assert_eq!(
            idx.label_values("env", &[m("app", MatchOp::Eq, "api")], all.0, all.1),
            ["dev", "prod"]
        );
    }
}
