//! What Skald derives from pushed logs at ingest, as Loki 3 does, so that
//! Grafana's Logs Drilldown can group by it: a `service_name` stream label
//! (Loki's `discover_service_name`) and a `detected_level` structured
//! metadata pair on every entry (Loki's `discover_log_levels`).
//!
//! The functions here are pure: they look at one stream's labels, or one
//! entry's line and metadata, and say what to add. [`apply`] runs them over
//! a push's batches; every push path (Loki push, gRPC push, OTLP) calls it
//! once, just before the store.
//!
//! The settings are per tenant ([`IngestConfig::for_tenant`]): a tenant's
//! entry under `[ingest.tenants.NAME]` overrides the defaults key by key.
//!
//! Not here: label and line limits (the store validates those after
//! discovery, so a discovered label counts against them as in Loki).

use crate::otlp::OtlpConfig;
use serde::{Deserialize, Serialize};
use skald_model::{Label, LabelSet, TenantId};
use skald_store::StreamBatch;
use std::collections::BTreeMap;

/// The stream label Drilldown groups services by.
pub const SERVICE_NAME: &str = "service_name";
/// Its value when no source label is present.
pub const UNKNOWN_SERVICE: &str = "unknown_service";
/// The structured-metadata name of the discovered level.
pub const DETECTED_LEVEL: &str = "detected_level";
/// Its value when nothing in the entry names a level.
pub const UNKNOWN_LEVEL: &str = "unknown";

/// The metadata name the OTLP mapping stores a record's severity number
/// under; discovery reads the level from it.
pub(crate) const SEVERITY_NUMBER: &str = "severity_number";

/// How pushes are enriched and mapped, with per-tenant overrides. The
/// defaults are Loki 3's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Stream labels whose value becomes `service_name` when a stream has
    /// none, first present wins; none present gives `unknown_service`.
    /// Empty turns the discovery off.
    pub discover_service_name: Vec<String>,
    /// Add `detected_level` structured metadata to every entry that lacks
    /// it, from a level label or field, the OTLP severity, or the line.
    pub discover_log_levels: bool,
    /// Field and label names that hold a level, in order of preference.
    pub log_level_fields: Vec<String>,
    /// How OTLP attributes become labels and metadata (Loki's
    /// `otlp_config`).
    pub otlp_config: OtlpConfig,
    /// Per-tenant overrides of the settings above.
    pub tenants: BTreeMap<String, TenantIngestConfig>,
}

/// One tenant's overrides; unset keys keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantIngestConfig {
    pub discover_service_name: Option<Vec<String>>,
    pub discover_log_levels: Option<bool>,
    pub log_level_fields: Option<Vec<String>>,
    pub otlp_config: Option<OtlpConfig>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
        IngestConfig {
            discover_service_name: strings(&[
                "service",
                "app",
                "application",
                "app_name",
                "name",
                "app_kubernetes_io_name",
                "container",
                "container_name",
                "k8s_container_name",
                "component",
                "workload",
                "job",
                "k8s_job_name",
            ]),
            discover_log_levels: true,
            log_level_fields: strings(&[
                "level",
                "LEVEL",
                "Level",
                "log.level",
                "severity",
                "SEVERITY",
                "Severity",
                "SeverityText",
                "lvl",
                "LVL",
                "Lvl",
                "severity_text",
                "Severity_Text",
                "SEVERITY_TEXT",
            ]),
            otlp_config: OtlpConfig::default(),
            tenants: BTreeMap::new(),
        }
    }
}

/// The settings in force for one tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantIngest {
    pub discover_service_name: Vec<String>,
    pub discover_log_levels: bool,
    pub log_level_fields: Vec<String>,
    pub otlp_config: OtlpConfig,
}

impl IngestConfig {
    /// Checks what cannot be checked by types (OTLP regexes and actions),
    /// naming the offending key.
    pub fn validate(&self) -> Result<(), String> {
        self.otlp_config
            .rules()
            .map_err(|e| format!("ingest.otlp_config: {e}"))?;
        for (name, t) in &self.tenants {
            TenantId::new(name).map_err(|e| format!("ingest.tenants.{name}: {e}"))?;
            if let Some(otlp) = &t.otlp_config {
                otlp.rules()
                    .map_err(|e| format!("ingest.tenants.{name}.otlp_config: {e}"))?;
            }
        }
        Ok(())
    }

    pub fn for_tenant(&self, tenant: &TenantId) -> TenantIngest {
        let o = self.tenants.get(tenant.as_str());
        let pick = |f: fn(&TenantIngestConfig) -> Option<&Vec<String>>, d: &Vec<String>| {
            o.and_then(f).unwrap_or(d).clone()
        };
        TenantIngest {
            discover_service_name: pick(
                |t| t.discover_service_name.as_ref(),
                &self.discover_service_name,
            ),
            discover_log_levels: o
                .and_then(|t| t.discover_log_levels)
                .unwrap_or(self.discover_log_levels),
            log_level_fields: pick(|t| t.log_level_fields.as_ref(), &self.log_level_fields),
            otlp_config: o
                .and_then(|t| t.otlp_config.clone())
                .unwrap_or_else(|| self.otlp_config.clone()),
        }
    }
}

/// Adds `service_name` to every stream and `detected_level` to every entry
/// of a push, as the tenant's settings say.
pub fn apply(cfg: &TenantIngest, batches: &mut [StreamBatch]) {
    for batch in batches {
        if let Some(service) = service_name(&batch.labels, &cfg.discover_service_name) {
            let mut labels = batch.labels.labels().to_vec();
            labels.push(Label::new(SERVICE_NAME, service));
            // Valid: the name is new to the set and well formed.
            if let Ok(with) = LabelSet::new(labels) {
                batch.labels = with;
            }
        }
        if !cfg.discover_log_levels {
            continue;
        }
        for entry in &mut batch.entries {
            if let Some(level) = detected_level(
                &batch.labels,
                &mut entry.metadata,
                &entry.line,
                &cfg.log_level_fields,
            ) {
                entry.metadata.push(Label::new(DETECTED_LEVEL, level));
            }
        }
    }
}

/// The `service_name` a stream should get: `None` when it has one already
/// or discovery is off (`sources` empty).
pub fn service_name(labels: &LabelSet, sources: &[String]) -> Option<String> {
    if sources.is_empty() || labels.get(SERVICE_NAME).is_some() {
        return None;
    }
    let found = sources
        .iter()
        .find_map(|name| labels.get(name).filter(|v| !v.is_empty()));
    Some(found.unwrap_or(UNKNOWN_SERVICE).to_string())
}

/// The `detected_level` an entry should get, or `None` when it has one
/// already (which is then normalised in place, as Loki does).
///
/// In order: a stream label named in `fields`, a metadata pair named in
/// `fields`, the OTLP `severity_number`, a field of a JSON (two levels
/// deep) or logfmt line, and finally the first level word of the line;
/// `unknown` when nothing names a level.
pub fn detected_level(
    stream: &LabelSet,
    metadata: &mut [Label],
    line: &str,
    fields: &[String],
) -> Option<String> {
    if let Some(existing) = metadata.iter_mut().find(|l| l.name == DETECTED_LEVEL) {
        let normal = normalize_level(&existing.value);
        if normal != existing.value {
            existing.value = normal;
        }
        return None;
    }
    let named = |labels: &[Label]| {
        fields
            .iter()
            .find_map(|f| labels.iter().find(|l| &l.name == f))
            .map(|l| normalize_level(&l.value))
    };
    if let Some(level) = named(stream.labels()) {
        return Some(level);
    }
    if let Some(level) = named(metadata) {
        return Some(level);
    }
    if let Some(sev) = metadata.iter().find(|l| l.name == SEVERITY_NUMBER) {
        return Some(level_of_severity_number(&sev.value).to_string());
    }
    Some(level_of_line(line, fields))
}

/// Loki's level names for the spellings it recognises (any case); other
/// values are kept as they are.
pub fn normalize_level(value: &str) -> String {
    match known_level(value) {
        Some(level) => level.to_string(),
        None => value.to_string(),
    }
}

fn known_level(value: &str) -> Option<&'static str> {
    const SPELLINGS: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("trc", "trace"),
        ("debug", "debug"),
        ("dbg", "debug"),
        ("info", "info"),
        ("inf", "info"),
        ("information", "info"),
        ("warn", "warn"),
        ("wrn", "warn"),
        ("warning", "warn"),
        ("error", "error"),
        ("err", "error"),
        ("critical", "critical"),
        ("fatal", "fatal"),
    ];
    SPELLINGS
        .iter()
        .find(|(s, _)| s.eq_ignore_ascii_case(value))
        .map(|(_, level)| *level)
}

/// OpenTelemetry's severity ranges (1-4 trace, 5-8 debug, 9-12 info,
/// 13-16 warn, 17-20 error, 21-24 fatal).
pub fn level_of_severity_number(value: &str) -> &'static str {
    match value.trim().parse::<i64>() {
        Err(_) => "info",
        Ok(1..=4) => "trace",
        Ok(5..=8) => "debug",
        Ok(9..=12) => "info",
        Ok(13..=16) => "warn",
        Ok(17..=20) => "error",
        Ok(21..=24) => "fatal",
        Ok(_) => UNKNOWN_LEVEL,
    }
}

/// The level a line states: a level field of a JSON or logfmt line, else
/// the first level word in it, else `unknown`.
pub fn level_of_line(line: &str, fields: &[String]) -> String {
    let trimmed = line.trim();
    let field = if trimmed.starts_with('{') && trimmed.ends_with('}') {
        json_level_field(trimmed, fields)
    } else {
        logfmt_field(line, fields)
    };
    if let Some(level) = field.as_deref().and_then(known_level) {
        return level.to_string();
    }
    level_word(line).unwrap_or(UNKNOWN_LEVEL).to_string()
}

/// The first of `fields` found in the top two levels of a JSON object.
fn json_level_field(line: &str, fields: &[String]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(line).ok()?;
    let top = value.as_object()?;
    let as_text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    for f in fields {
        if let Some(v) = top.get(f).and_then(as_text) {
            return Some(v);
        }
    }
    for f in fields {
        for nested in top.values().filter_map(|v| v.as_object()) {
            if let Some(v) = nested.get(f).and_then(as_text) {
                return Some(v);
            }
        }
    }
    None
}

/// The value of the first of `fields` (any case) among a logfmt line's
/// `key=value` pairs.
fn logfmt_field(line: &str, fields: &[String]) -> Option<String> {
    let mut best: Option<(usize, String)> = None;
    let mut rest = line;
    while let Some(eq) = rest.find('=') {
        let key_start = rest[..eq].rfind(' ').map_or(0, |i| i + 1);
        let key = &rest[key_start..eq];
        let after = &rest[eq + 1..];
        let (value, consumed) = match after.strip_prefix('"') {
            Some(quoted) => match quoted.find('"') {
                Some(end) => (&quoted[..end], end + 2),
                None => (quoted, after.len()),
            },
            None => {
                let end = after.find(' ').unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        if let Some(rank) = fields.iter().position(|f| f.eq_ignore_ascii_case(key))
            && best.as_ref().is_none_or(|(r, _)| rank < *r)
        {
            best = Some((rank, value.to_string()));
        }
        rest = &after[consumed.min(after.len())..];
    }
    best.map(|(_, v)| v)
}

/// The first word of the line that names a level (`ERROR`, `warn`,
/// `Fatal`, `err`...), as a whole word.
fn level_word(line: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("trace", "trace"),
        ("debug", "debug"),
        ("fatal", "fatal"),
        ("critical", "critical"),
        ("error", "error"),
        ("err", "error"),
        ("warning", "warn"),
        ("warn", "warn"),
        ("info", "info"),
    ];
    line.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| (3..=8).contains(&w.len()))
        .find_map(|w| {
            WORDS
                .iter()
                .find(|(word, _)| word.eq_ignore_ascii_case(w))
                .map(|(_, level)| *level)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{Entry, Timestamp};

    fn fields() -> Vec<String> {
        IngestConfig::default().log_level_fields
    }

    fn level(stream: &str, line: &str, metadata: &[(&str, &str)]) -> Option<String> {
        let stream = LabelSet::parse(stream).unwrap();
        let mut md: Vec<Label> = metadata.iter().map(|(n, v)| Label::new(*n, *v)).collect();
        detected_level(&stream, &mut md, line, &fields())
    }

    #[test]
    fn service_name_comes_from_the_first_source_label_present() {
        let sources = IngestConfig::default().discover_service_name;
        let ls = |s: &str| LabelSet::parse(s).unwrap();
        assert_eq!(
            service_name(&ls(r#"{job="j", app="a"}"#), &sources).as_deref(),
            Some("a")
        );
        assert_eq!(
            service_name(&ls(r#"{job="varlogs"}"#), &sources).as_deref(),
            Some("varlogs")
        );
        assert_eq!(
            service_name(&ls(r#"{foo="bar"}"#), &sources).as_deref(),
            Some(UNKNOWN_SERVICE)
        );
        assert_eq!(
            service_name(&ls(r#"{service_name="s", app="a"}"#), &sources),
            None
        );
        assert_eq!(service_name(&ls(r#"{app="a"}"#), &[]), None);
    }

    #[test]
    fn levels_come_from_labels_metadata_severity_and_lines() {
        assert_eq!(
            level(r#"{a="b"}"#, "plain", &[]).as_deref(),
            Some("unknown")
        );
        assert_eq!(
            level(r#"{level="WARNING"}"#, "x", &[]).as_deref(),
            Some("warn")
        );
        assert_eq!(
            level(r#"{a="b"}"#, "x", &[("lvl", "Err")]).as_deref(),
            Some("error")
        );
        assert_eq!(
            level(r#"{a="b"}"#, "x", &[("severity_number", "17")]).as_deref(),
            Some("error")
        );
        assert_eq!(
            level(r#"{a="b"}"#, "x", &[("severity_number", "0")]).as_deref(),
            Some("unknown")
        );
        assert_eq!(
            level(r#"{a="b"}"#, r#"{"msg":"error in x","level":"debug"}"#, &[]).as_deref(),
            Some("debug")
        );
        assert_eq!(
            level(r#"{a="b"}"#, r#"{"log":{"severity":"FATAL"},"m":1}"#, &[]).as_deref(),
            Some("fatal")
        );
        assert_eq!(
            level(r#"{a="b"}"#, r#"ts=1 msg="an error" level=info"#, &[]).as_deref(),
            Some("info")
        );
        assert_eq!(
            level(r#"{a="b"}"#, "2024-01-01 WARN disk almost full", &[]).as_deref(),
            Some("warn")
        );
        assert_eq!(
            level(r#"{a="b"}"#, "Traceback: errors happened", &[]).as_deref(),
            Some("unknown")
        );
        // Already there: normalised, nothing added.
        let stream = LabelSet::parse(r#"{a="b"}"#).unwrap();
        let mut md = vec![Label::new(DETECTED_LEVEL, "ERR")];
        assert_eq!(detected_level(&stream, &mut md, "info", &fields()), None);
        assert_eq!(md[0].value, "error");
    }

    #[test]
    fn apply_adds_service_name_and_levels_per_tenant_settings() {
        let batch = || StreamBatch {
            labels: LabelSet::parse(r#"{app="api"}"#).unwrap(),
            entries: vec![Entry::new(Timestamp(1), "level=error boom")],
        };
        let mut cfg = IngestConfig::default();
        cfg.tenants.insert(
            "quiet".into(),
            TenantIngestConfig {
                discover_service_name: Some(vec![]),
                discover_log_levels: Some(false),
                ..Default::default()
            },
        );
        let mut on = vec![batch()];
        apply(&cfg.for_tenant(&TenantId::new("loud").unwrap()), &mut on);
        assert_eq!(on[0].labels.get(SERVICE_NAME), Some("api"));
        assert_eq!(
            on[0].entries[0].metadata,
            vec![Label::new(DETECTED_LEVEL, "error")]
        );
        let mut off = vec![batch()];
        apply(&cfg.for_tenant(&TenantId::new("quiet").unwrap()), &mut off);
        assert_eq!(off[0].labels.get(SERVICE_NAME), None);
        assert!(off[0].entries[0].metadata.is_empty());
    }
}
