//! The online pattern miner: a Drain-family parse tree over masked tokens.
//!
//! Lines are masked ([`crate::mask`]) and routed to a leaf by their token
//! count. In the leaf, a pattern takes the line when every constant token
//! of the pattern equals the line's token at that position (wildcards take
//! anything). Otherwise the patterns that differ from the line in exactly
//! one position are its *siblings*: when siblings differing at the same
//! position show at least `min_distinct` distinct values there (counting
//! the line's), that position is a variable, and those siblings merge into
//! one pattern with a wildcard there. Below that evidence the line starts
//! its own pattern: two values (`startup`/`shutdown`) are more often two
//! events than one variable. Patterns that become equal merge too.
//!
//! Drain decides with a similarity share, which merges events differing in
//! one word of a short line and splits a variable word in a long one; the
//! distinct-values test measures the evidence instead (see
//! `docs/analysis.md` for the figures on Loghub).
//!
//! Memory is bounded: past `max_patterns`, the rarest patterns are evicted
//! (counted in [`MinerStats`]). Pattern ids are never reused, so a caller
//! holding an id of an evicted pattern gets `None`, never another pattern.
//!
//! Not for: persistence or time buckets (the ingest side keeps counts per
//! pattern text), nor what a line means (errors, anomalies).

use crate::mask::{Masked, WILDCARD, mask_into};

/// A position generalised by the miner: it accepts any token. Masked
/// values (`<_>` from [`crate::mask`]) only match other masked values,
/// so a word and a number at one position count as two shapes until the
/// position has shown enough distinct values. A control character cannot
/// come from a masked line token, so the marker never collides.
const VARIABLE: &str = "\u{1}";
use foldhash::HashMap;

/// Tuning of the miner. The defaults are the one configuration measured
/// on Loghub (see `docs/analysis.md`).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinerConfig {
    /// Distinct values seen at one position (patterns otherwise equal)
    /// before that position is taken for a variable.
    pub min_distinct: usize,
    /// Most patterns kept; past it the rarest are evicted.
    pub max_patterns: usize,
    /// Lines longer than this many tokens are cut (the rest is one
    /// wildcard), bounding the work and memory a line can cost.
    pub max_tokens: usize,
    /// Remember where merged patterns went, so ids handed out earlier
    /// resolve to the pattern that absorbed them (used by `skald patterns
    /// mine`; the ingest path does not need it).
    pub track_merges: bool,
}

impl Default for MinerConfig {
    fn default() -> Self {
        Self {
            min_distinct: 4,
            max_patterns: 2_000,
            max_tokens: 64,
            track_merges: false,
        }
    }
}

/// Identifies a pattern within one miner; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatternId(pub u32);

/// A mined pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    tokens: Vec<Box<str>>,
    /// Lines assigned to it (including those of patterns merged into it).
    pub count: u64,
    leaf: LeafKey,
}

impl Pattern {
    /// The template, tokens joined by single spaces (tab-free).
    pub fn text(&self) -> String {
        let mut text = String::new();
        for (i, t) in self.tokens().enumerate() {
            if i > 0 {
                text.push(' ');
            }
            text.push_str(t);
        }
        text
    }

    /// Template tokens; variables are [`WILDCARD`].
    pub fn tokens(&self) -> impl Iterator<Item = &str> {
        self.tokens
            .iter()
            .map(|t| if &**t == VARIABLE { WILDCARD } else { &**t })
    }
}

/// Counters for what the bounds cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MinerStats {
    pub lines: u64,
    pub patterns_created: u64,
    pub patterns_merged: u64,
    pub patterns_evicted: u64,
    /// Lines that had been counted in evicted patterns.
    pub lines_evicted: u64,
}

/// Leaves are keyed by token count and first token (hashed: a collision
/// only puts two leaves' patterns in one list, compared token by token).
type LeafKey = u64;

fn leaf_key(masked: &Masked) -> LeafKey {
    use std::hash::{BuildHasher, Hasher};
    let mut h = foldhash::fast::FixedState::with_seed(0x5ca1d).build_hasher();
    h.write_usize(masked.len());
    h.write(masked.tokens().next().unwrap_or("").as_bytes());
    h.finish()
}

/// An online pattern miner for one stream of lines.
#[derive(Debug)]
pub struct Miner {
    config: MinerConfig,
    patterns: HashMap<u32, Pattern>,
    leaves: HashMap<LeafKey, Vec<u32>>,
    forward: HashMap<u32, u32>,
    next_id: u32,
    stats: MinerStats,
    masked: Masked,
}

impl Default for Miner {
    fn default() -> Self {
        Self::new(MinerConfig::default())
    }
}

impl Miner {
    pub fn new(config: MinerConfig) -> Self {
        Self {
            config,
            patterns: HashMap::default(),
            leaves: HashMap::default(),
            forward: HashMap::default(),
            next_id: 0,
            stats: MinerStats::default(),
            masked: Masked::default(),
        }
    }

    pub fn config(&self) -> &MinerConfig {
        &self.config
    }

    pub fn stats(&self) -> MinerStats {
        self.stats
    }

    /// Number of live patterns.
    pub fn len(&self) -> usize {
        self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// The pattern `id` names now: itself, or (with `track_merges`) the
    /// pattern it was merged into; `None` once evicted.
    pub fn resolve(&self, mut id: PatternId) -> Option<PatternId> {
        while let Some(&to) = self.forward.get(&id.0) {
            id = PatternId(to);
        }
        self.patterns.contains_key(&id.0).then_some(id)
    }

    pub fn get(&self, id: PatternId) -> Option<&Pattern> {
        self.patterns.get(&self.resolve(id)?.0)
    }

    /// Live patterns, in no particular order.
    pub fn patterns(&self) -> impl Iterator<Item = (PatternId, &Pattern)> {
        self.patterns.iter().map(|(&id, p)| (PatternId(id), p))
    }

    /// Forgets where merged patterns went (ids handed out before now may
    /// then resolve to `None`): callers that resolved their ids call it
    /// to keep the history bounded.
    pub fn clear_merge_history(&mut self) {
        self.forward.clear();
    }

    /// Assigns `line` a pattern, updating the pattern's template and count.
    pub fn add(&mut self, line: &str) -> PatternId {
        self.stats.lines += 1;
        let mut masked = std::mem::take(&mut self.masked);
        mask_into(line, self.config.max_tokens, &mut masked);
        let id = self.add_masked(&masked);
        self.masked = masked;
        id
    }

    fn add_masked(&mut self, masked: &Masked) -> PatternId {
        let key = leaf_key(masked);
        // One pass over the leaf: a pattern that accepts the line as it
        // is, or else the patterns that differ from it in one position.
        let mut siblings: Vec<(usize, u32)> = Vec::new();
        if let Some(ids) = self.leaves.get(&key) {
            'patterns: for &id in ids {
                let pattern = &self.patterns[&id];
                if pattern.tokens.len() != masked.len() {
                    continue;
                }
                let mut differs_at = None;
                for (i, t) in pattern.tokens.iter().enumerate() {
                    if &**t == VARIABLE || **t == *masked.get(i) {
                        continue;
                    }
                    if differs_at.is_some() {
                        continue 'patterns;
                    }
                    differs_at = Some(i);
                }
                let Some(at) = differs_at else {
                    self.patterns.get_mut(&id).expect("leaf ids are live").count += 1;
                    return PatternId(id);
                };
                // The first token names the event (Drain's first level):
                // it is never generalised.
                if at > 0 {
                    siblings.push((at, id));
                }
            }
        }
        if let Some(id) = self.generalise(&mut siblings, masked) {
            return PatternId(id);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.stats.patterns_created += 1;
        let tokens = masked.tokens().map(Box::from).collect();
        self.patterns.insert(
            id,
            Pattern {
                tokens,
                count: 1,
                leaf: key,
            },
        );
        self.leaves.entry(key).or_default().push(id);
        if self.patterns.len() > self.config.max_patterns {
            self.evict(id);
        }
        PatternId(id)
    }

    /// Turns the position where most siblings differ from the line into a
    /// variable when it has shown `min_distinct` values, folding those
    /// siblings into one pattern that takes the line. Returns its id.
    fn generalise(&mut self, siblings: &mut [(usize, u32)], masked: &Masked) -> Option<u32> {
        if siblings.is_empty() {
            return None;
        }
        siblings.sort_unstable();
        // The position shared by most siblings.
        let mut best: &[(usize, u32)] = &[];
        for run in siblings.chunk_by(|a, b| a.0 == b.0) {
            if run.len() > best.len() {
                best = run;
            }
        }
        let at = best[0].0;
        let mut values: Vec<&str> = best
            .iter()
            .map(|&(_, id)| &*self.patterns[&id].tokens[at])
            .collect();
        values.push(masked.get(at));
        values.sort_unstable();
        values.dedup();
        // A masked value beside a word is already a sign of a variable
        // (`lo` / `eth<_>`, `LOCAL(<_>),` / `<_>`): two values suffice.
        let masked_value = values.contains(&WILDCARD);
        let needed = if masked_value {
            2
        } else {
            self.config.min_distinct
        };
        if values.len() < needed {
            return None;
        }
        let ids: Vec<u32> = best.iter().map(|&(_, id)| id).collect();
        let keep = *ids
            .iter()
            .max_by_key(|&&id| (self.patterns[&id].count, std::cmp::Reverse(id)))
            .expect("non-empty");
        for &gone in ids.iter().filter(|&&id| id != keep) {
            self.fold(gone, keep);
        }
        let pattern = self.patterns.get_mut(&keep).expect("live");
        pattern.count += 1;
        pattern.tokens[at] = VARIABLE.into();
        // Each folded sibling may carry wildcards the survivor lacks.
        Some(self.merge_equal(keep))
    }

    /// Moves `gone`'s lines and wildcards into `keep` and forgets `gone`.
    fn fold(&mut self, gone: u32, keep: u32) {
        let gone_pattern = self.patterns.remove(&gone).expect("live");
        let keep_pattern = self.patterns.get_mut(&keep).expect("live");
        keep_pattern.count += gone_pattern.count;
        for (k, g) in keep_pattern.tokens.iter_mut().zip(&gone_pattern.tokens) {
            if &**g == VARIABLE {
                *k = VARIABLE.into();
            }
        }
        if let Some(ids) = self.leaves.get_mut(&gone_pattern.leaf) {
            ids.retain(|&x| x != gone);
        }
        if self.config.track_merges {
            self.forward.insert(gone, keep);
        }
        self.stats.patterns_merged += 1;
    }

    /// After `id`'s template gained wildcards: patterns of its leaf that
    /// it now accepts fold into it (they are the same event). Returns the
    /// surviving id.
    fn merge_equal(&mut self, id: u32) -> u32 {
        let pattern = &self.patterns[&id];
        let accepted: Vec<u32> = self.leaves[&pattern.leaf]
            .iter()
            .copied()
            .filter(|&other| {
                other != id
                    && pattern
                        .tokens
                        .iter()
                        .zip(&self.patterns[&other].tokens)
                        .all(|(a, b)| &**a == VARIABLE || a == b)
            })
            .collect();
        for other in accepted {
            self.fold(other, id);
        }
        id
    }

    /// Evicts the rarest patterns down to 90% of the cap, sparing `keep`
    /// (the pattern just created), so eviction runs once per many lines.
    fn evict(&mut self, keep: u32) {
        let target = self.config.max_patterns * 9 / 10;
        let mut by_count: Vec<(u64, u32)> = self
            .patterns
            .iter()
            .filter(|&(&id, _)| id != keep)
            .map(|(&id, p)| (p.count, id))
            .collect();
        by_count.sort_unstable();
        let excess = self.patterns.len().saturating_sub(target);
        for &(count, id) in by_count.iter().take(excess) {
            let pattern = self.patterns.remove(&id).expect("live");
            if let Some(ids) = self.leaves.get_mut(&pattern.leaf) {
                ids.retain(|&x| x != id);
                if ids.is_empty() {
                    self.leaves.remove(&pattern.leaf);
                }
            }
            self.stats.patterns_evicted += 1;
            self.stats.lines_evicted += count;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_values_share_a_pattern() {
        let mut m = Miner::default();
        let a = m.add("user 17 logged in from 10.0.0.1");
        let b = m.add("user 18 logged in from 10.0.0.2");
        assert_eq!(a, b);
        assert_eq!(m.get(a).unwrap().text(), "user <_> logged in from <_>");
        assert_eq!(m.get(a).unwrap().count, 2);
        let c = m.add("disk full on /dev/sda1");
        assert_ne!(a, c);
    }

    #[test]
    fn a_word_becomes_a_variable_after_enough_distinct_values() {
        let mut m = Miner::new(MinerConfig {
            track_merges: true,
            ..MinerConfig::default()
        });
        let start = m.add("cupsd startup succeeded");
        let stop = m.add("cupsd shutdown succeeded");
        assert_ne!(start, stop, "two values are two events");
        let users = ["alice", "bob", "carol"].map(|u| m.add(&format!("session opened for {u}")));
        assert_eq!(m.len(), 5, "three values are not yet a variable");
        let dave = m.add("session opened for dave");
        let merged = m.resolve(dave).unwrap();
        for user in users {
            assert_eq!(m.resolve(user), Some(merged));
        }
        assert_eq!(m.get(merged).unwrap().text(), "session opened for <_>");
        assert_eq!(m.get(merged).unwrap().count, 4);
        let erin = m.add("session opened for erin");
        assert_eq!(m.resolve(erin), Some(merged));
        assert_eq!(m.len(), 3);
        // A masked value beside a word is evidence enough.
        let lo = m.add("device lo up");
        let eth0 = m.add("device eth0 up");
        assert_eq!(m.resolve(eth0), m.resolve(lo));
    }

    #[test]
    fn memory_is_bounded_and_evictions_counted() {
        let mut m = Miner::new(MinerConfig {
            max_patterns: 50,
            ..MinerConfig::default()
        });
        for i in 0..1000 {
            // Distinct first words: each line is its own pattern.
            let word: String = (0..6)
                .map(|k| (b'a' + ((i / 26usize.pow(k)) % 26) as u8) as char)
                .collect();
            m.add(&format!("{word} happened"));
        }
        assert!(m.len() <= 50);
        let stats = m.stats();
        assert_eq!(stats.lines, 1000);
        assert!(stats.patterns_evicted >= 950);
        assert_eq!(
            stats.lines_evicted + m.patterns().map(|(_, p)| p.count).sum::<u64>(),
            1000
        );
    }
}
