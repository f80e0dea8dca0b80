//! Per-tenant limits, under Loki's names and in Loki's notation, so that a
//! Loki `limits_config` (or a runtime overrides file) carries over.
//!
//! Durations are written as Loki (Prometheus) writes them: `10m`, `1h`,
//! `720h`, `7d`, `1w`, `1h30m`, `500ms`. Sizes as Loki's byte sizes:
//! `256KB` (decimal: 256 000 bytes), `256KiB` (binary), `4MB`, `1GB`, or a
//! plain number of bytes. `ingestion_rate_mb` and `ingestion_burst_size_mb`
//! are floats in MiB, as in Loki.
//!
//! Not here: where the values come from (the CLI's config file) and how
//! they are enforced (the store's push path, the server's query path).

use crate::Matcher;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::time::Duration;

/// One MiB: Loki's unit for `ingestion_rate_mb`.
pub const BYTES_IN_MB: f64 = 1024.0 * 1024.0;

/// Limits of one tenant. Defaults follow Loki's, except that rate and
/// active-stream limits are off until configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Sustained push rate of the tenant, MiB of lines and metadata per
    /// second (token bucket refill). 0: no limit.
    pub ingestion_rate_mb: f64,
    /// Bucket size of the tenant's rate, MiB: the largest push accepted
    /// after a quiet period.
    pub ingestion_burst_size_mb: f64,
    /// Sustained rate of one stream, bytes per second. 0: no limit.
    #[serde(with = "byte_size")]
    pub per_stream_rate_limit: u64,
    /// Bucket size of one stream's rate, bytes.
    #[serde(with = "byte_size")]
    pub per_stream_rate_limit_burst: u64,
    /// Active streams (pushed to within the last 30 minutes) a tenant may
    /// have. 0: no limit.
    pub max_streams_per_user: usize,
    /// Loki's cluster-wide variant; on one node the smaller of the two
    /// non-zero values applies. 0: no limit.
    pub max_global_streams_per_user: usize,
    /// Longest line, in bytes. 0: no limit.
    #[serde(with = "byte_size")]
    pub max_line_size: u64,
    /// Cut longer lines to `max_line_size` instead of refusing them.
    pub max_line_size_truncate: bool,
    pub max_label_names_per_series: usize,
    /// Bytes.
    pub max_label_name_length: usize,
    /// Bytes.
    pub max_label_value_length: usize,
    pub reject_old_samples: bool,
    #[serde(with = "duration")]
    pub reject_old_samples_max_age: Duration,
    /// How far in the future an entry may be.
    #[serde(with = "duration")]
    pub creation_grace_period: Duration,
    /// Longest time range of a query. 0: no limit.
    #[serde(with = "duration")]
    pub max_query_length: Duration,
    /// How far back queries may look. 0: no limit.
    #[serde(with = "duration")]
    pub max_query_lookback: Duration,
    /// Largest `limit` of a log query.
    pub max_entries_limit_per_query: usize,
    /// Most series a metric query may return.
    pub max_query_series: usize,
    /// Bytes a query may read (index estimate, before it runs). 0: no
    /// limit.
    #[serde(with = "byte_size")]
    pub max_query_bytes_read: u64,
    /// Memory one query may hold for its working sets (series and their
    /// per-interval values, entries kept for the answer). 0: the server's
    /// `max_query_memory` alone.
    #[serde(with = "byte_size")]
    pub max_query_memory: u64,
    /// Longest a query may run. 0: no limit.
    #[serde(with = "duration")]
    pub query_timeout: Duration,
    /// Queries of the tenant running at once (Skald's; Loki bounds the
    /// queriers instead). 0: no limit.
    pub max_concurrent_queries: usize,
    /// Export jobs of the tenant kept at once (Skald's).
    pub max_export_jobs: usize,
    /// How long entries are kept. 0: forever.
    #[serde(with = "duration")]
    pub retention_period: Duration,
    /// Retention of the streams a selector matches; the highest priority
    /// matching rule wins, then the longest period.
    pub retention_stream: Vec<StreamRetention>,
    /// Stored (compressed) bytes a tenant may keep; the oldest segments go
    /// first. 0: no limit (Skald's).
    #[serde(with = "byte_size")]
    pub retention_max_bytes: u64,
}

/// One `retention_stream` rule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRetention {
    pub selector: String,
    #[serde(default)]
    pub priority: u32,
    #[serde(with = "duration")]
    pub period: Duration,
    /// `selector` parsed (by whoever loads the file: the model has no
    /// LogQL parser).
    #[serde(skip)]
    pub matchers: Vec<Matcher>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // Loki: 4, 6, 3MB, 15MB and 5000. Off here: one node's
            // throughput is its own until an operator shares it out.
            ingestion_rate_mb: 0.0,
            ingestion_burst_size_mb: 6.0,
            per_stream_rate_limit: 0,
            per_stream_rate_limit_burst: 15_000_000,
            max_streams_per_user: 0,
            max_global_streams_per_user: 0,
            max_line_size: 256_000,
            max_line_size_truncate: false,
            max_label_names_per_series: 15,
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            reject_old_samples: true,
            reject_old_samples_max_age: Duration::from_secs(7 * 24 * 3600),
            creation_grace_period: Duration::from_secs(600),
            max_query_length: Duration::from_secs(721 * 3600),
            max_query_lookback: Duration::ZERO,
            max_entries_limit_per_query: 5000,
            max_query_series: 500,
            max_query_bytes_read: 0,
            max_query_memory: 0,
            query_timeout: Duration::from_secs(60),
            max_concurrent_queries: 32,
            max_export_jobs: 16,
            retention_period: Duration::ZERO,
            retention_stream: Vec::new(),
            retention_max_bytes: 0,
        }
    }
}

impl Limits {
    /// Limits that refuse nothing on account of time, size or rate: for
    /// tests and tools that load arbitrary data.
    pub fn unlimited() -> Self {
        Limits {
            ingestion_rate_mb: 0.0,
            per_stream_rate_limit: 0,
            max_global_streams_per_user: 0,
            max_line_size: 0,
            reject_old_samples: false,
            creation_grace_period: Duration::from_secs(100 * 365 * 24 * 3600),
            ..Limits::default()
        }
    }

    /// The active-stream limit on one node: the smaller non-zero of the
    /// local and global values; 0 when neither is set.
    pub fn max_active_streams(&self) -> usize {
        match (self.max_streams_per_user, self.max_global_streams_per_user) {
            (0, g) => g,
            (l, 0) => l,
            (l, g) => l.min(g),
        }
    }

    /// The retention of a stream with these labels (None: kept forever).
    pub fn retention_for(&self, labels: &crate::LabelSet) -> Option<Duration> {
        let rule = self
            .retention_stream
            .iter()
            .filter(|r| r.matchers.iter().all(|m| m.matches(labels)))
            .max_by_key(|r| (r.priority, r.period));
        let period = rule.map_or(self.retention_period, |r| r.period);
        (!period.is_zero()).then_some(period)
    }

    /// Checks what a file may say but makes no sense.
    pub fn check(&self) -> Result<(), String> {
        if !(self.ingestion_rate_mb >= 0.0 && self.ingestion_rate_mb.is_finite()) {
            return Err("ingestion_rate_mb must be a non-negative number".into());
        }
        if !(self.ingestion_burst_size_mb >= 0.0 && self.ingestion_burst_size_mb.is_finite()) {
            return Err("ingestion_burst_size_mb must be a non-negative number".into());
        }
        if self.ingestion_rate_mb > 0.0 && self.ingestion_burst_size_mb <= 0.0 {
            return Err(
                "ingestion_burst_size_mb must be positive when ingestion_rate_mb is".into(),
            );
        }
        if self.per_stream_rate_limit > 0 && self.per_stream_rate_limit_burst == 0 {
            return Err(
                "per_stream_rate_limit_burst must be positive when per_stream_rate_limit is".into(),
            );
        }
        if self.max_label_names_per_series == 0 {
            return Err("max_label_names_per_series must be at least 1".into());
        }
        if self.max_entries_limit_per_query == 0 {
            return Err("max_entries_limit_per_query must be at least 1".into());
        }
        for r in &self.retention_stream {
            if r.period.is_zero() {
                return Err(format!(
                    "retention_stream {}: period must be positive",
                    r.selector
                ));
            }
        }
        Ok(())
    }
}

/// Parses a duration as Loki writes them: one or more `<number><unit>`,
/// units `ms`, `s`, `m`, `h`, `d`, `w`, `y` (also `ns`, `us`); `0` alone is
/// zero.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || format!("invalid duration {text:?}: expected e.g. 10m, 1h, 720h, 7d, 1h30m");
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if num_len == 0 {
            return Err(bad());
        }
        let n: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let secs = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 7.0 * 86400.0,
            "y" => 365.0 * 86400.0,
            _ => return Err(bad()),
        };
        total += n * secs;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|_| bad())
}

/// Writes a duration the way [`parse_duration`] reads it, in the largest
/// whole units (`720h` prints as `30d`).
pub fn format_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".into();
    }
    if d.subsec_nanos() != 0 {
        return if d.subsec_nanos().is_multiple_of(1_000_000) {
            format!("{}ms", d.as_millis())
        } else {
            format!("{}ns", d.as_nanos())
        };
    }
    let mut secs = d.as_secs();
    let mut out = String::new();
    for (unit, size) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

/// Parses a size as Loki writes them (`256KB` = 256 000, `256KiB` =
/// 262 144, `4MB`, `1.5GB`, `100`), case-insensitive.
pub fn parse_byte_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let bad =
        || format!("invalid size {text:?}: expected e.g. 256KB, 4MB, 1GiB or a number of bytes");
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    if split == 0 {
        return Err(bad());
    }
    let n: f64 = s[..split].parse().map_err(|_| bad())?;
    let unit = s[split..].trim().to_ascii_lowercase();
    let k = 1000f64;
    let ki = 1024f64;
    let mult = match unit.as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => k,
        "ki" | "kib" => ki,
        "m" | "mb" => k * k,
        "mi" | "mib" => ki * ki,
        "g" | "gb" => k * k * k,
        "gi" | "gib" => ki * ki * ki,
        "t" | "tb" => k * k * k * k,
        "ti" | "tib" => ki * ki * ki * ki,
        _ => return Err(bad()),
    };
    let bytes = n * mult;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

/// Writes a size the way [`parse_byte_size`] reads it, exactly.
pub fn format_byte_size(n: u64) -> String {
    for (unit, size) in [
        ("GiB", 1u64 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("KB", 1000),
    ] {
        if n >= size && n.is_multiple_of(size) {
            return format!("{}{unit}", n / size);
        }
    }
    format!("{n}B")
}

/// A number or a string, for values that take both.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrText {
    Int(u64),
    Float(f64),
    Text(String),
}

mod duration {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Text(t) => parse_duration(&t).map_err(serde::de::Error::custom),
            NumOrText::Int(0) => Ok(Duration::ZERO),
            NumOrText::Int(n) => Err(serde::de::Error::custom(format!(
                "a duration needs a unit, as a string: \"{n}s\", \"10m\", \"720h\""
            ))),
            NumOrText::Float(n) => Err(serde::de::Error::custom(format!(
                "a duration needs a unit, as a string: \"{n}s\", \"10m\", \"720h\""
            ))),
        }
    }
}

mod byte_size {
    use super::*;

    pub fn serialize<S: Serializer>(n: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_byte_size(*n))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        match NumOrText::deserialize(d)? {
            NumOrText::Text(t) => parse_byte_size(&t).map_err(serde::de::Error::custom),
            NumOrText::Int(n) => Ok(n),
            NumOrText::Float(n) => Err(serde::de::Error::custom(format!(
                "a size is a whole number of bytes or a string such as \"256KB\", not {n}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_loki_writes_them() {
        let h = |n: u64| Duration::from_secs(n * 3600);
        assert_eq!(parse_duration("1h").unwrap(), h(1));
        assert_eq!(parse_duration("720h").unwrap(), h(720));
        assert_eq!(parse_duration("7d").unwrap(), h(168));
        assert_eq!(parse_duration("1w").unwrap(), h(168));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        assert_eq!(parse_duration("0s").unwrap(), Duration::ZERO);
        for bad in ["", "h", "10", "1x", "-1h", "1h-", "abc"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
        for d in [
            h(720),
            h(1),
            Duration::from_secs(90),
            Duration::from_millis(1500),
        ] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn sizes_read_as_loki_writes_them() {
        assert_eq!(parse_byte_size("256KB").unwrap(), 256_000);
        assert_eq!(parse_byte_size("256KiB").unwrap(), 262_144);
        assert_eq!(parse_byte_size("4MB").unwrap(), 4_000_000);
        assert_eq!(parse_byte_size("4mb").unwrap(), 4_000_000);
        assert_eq!(parse_byte_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_byte_size("100").unwrap(), 100);
        assert_eq!(parse_byte_size("0B").unwrap(), 0);
        for bad in ["", "MB", "4XB", "-1KB"] {
            assert!(parse_byte_size(bad).is_err(), "{bad:?}");
        }
        for n in [0, 1, 256_000, 262_144, 3_000_000, 123_457] {
            assert_eq!(parse_byte_size(&format_byte_size(n)).unwrap(), n);
        }
    }

    #[test]
    fn stream_rules_pick_the_highest_priority_then_the_longest() {
        let labels = crate::LabelSet::parse(r#"{env="dev",app="x"}"#).unwrap();
        let rule = |name: &str, value: &str, priority, hours: u64| StreamRetention {
            selector: format!("{{{name}=\"{value}\"}}"),
            priority,
            period: Duration::from_secs(hours * 3600),
            matchers: vec![Matcher::new(name, crate::MatchOp::Eq, value).unwrap()],
        };
        let mut l = Limits {
            retention_period: Duration::from_secs(720 * 3600),
            ..Limits::default()
        };
        assert_eq!(
            l.retention_for(&labels),
            Some(Duration::from_secs(720 * 3600))
        );
        l.retention_stream = vec![
            rule("env", "dev", 1, 24),
            rule("app", "x", 2, 48),
            rule("app", "x", 2, 12),
            rule("env", "prod", 9, 1),
        ];
        assert_eq!(
            l.retention_for(&labels),
            Some(Duration::from_secs(48 * 3600))
        );
        l.retention_period = Duration::ZERO;
        l.retention_stream.clear();
        assert_eq!(l.retention_for(&labels), None);
    }
}
