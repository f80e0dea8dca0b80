//! Analysis events as built-in alert sources: a new error group appearing
//! and an anomaly detected, for the tenants `[ruler.analysis_alerts]`
//! names.
//!
//! Each such tenant gets one built-in group, namespace [`NAMESPACE`],
//! group [`GROUP`], with up to two alerting rules, [`NEW_ERROR_GROUP`] and
//! [`ANOMALY`]. They run exactly like rules from files — the same
//! schedule, `for`, pending → firing → resolved states, resend and
//! resolve notifications to the same Alertmanagers and webhook, the same
//! state file across restarts, `ALERTS` series, and the same read API —
//! except that their "expression" asks the server's log analysis
//! ([`crate::Evaluator::analysis_events`]) instead of running LogQL. An
//! event is active while it is inside the trailing `window`: a new error
//! group from its first line until `window` later, an anomaly while a
//! window of it overlaps the trailing `window`; then its alert resolves.
//!
//! Not here: finding the events (the server reads the pattern index of
//! `skald-analysis`), nor rule files: the group is built from the
//! configuration, so nothing a Loki or Prometheus tool reads changes.

use crate::duration::serde_duration;
use crate::rules::{CompiledGroup, CompiledRule, Rule, RuleGroup, RuleKind, Source};
use crate::template::AlertTemplate;
use serde::{Deserialize, Serialize};
use skald_model::{Label, TenantId};
use std::collections::BTreeMap;
use std::time::Duration;

/// The namespace of the built-in group (reserved: a rule file of that
/// name is shadowed for the tenants named in the configuration).
pub const NAMESPACE: &str = "skald-analysis";
/// The built-in group's name.
pub const GROUP: &str = "analysis-events";
/// Alert name of a new error group.
pub const NEW_ERROR_GROUP: &str = "NewErrorGroup";
/// Alert name of an anomaly.
pub const ANOMALY: &str = "LogAnomaly";

/// `[ruler.analysis_alerts]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisAlertsConfig {
    /// Tenants whose analysis events alert; empty: none.
    pub tenants: Vec<String>,
    /// Alert when an error group is seen for the first time.
    pub new_error_groups: bool,
    /// Alert on detected anomalies (spikes, drops, silences, error
    /// spikes, new patterns).
    pub anomalies: bool,
    /// How long an event stays active: a new error group alerts until
    /// its first line is this old, an anomaly until its last window is.
    #[serde(with = "serde_duration")]
    pub window: Duration,
    /// Width of the windows anomalies are judged in (1m, 2m, 5m, 10m,
    /// 15m, 30m, 1h …, as the anomalies API uses).
    #[serde(with = "serde_duration")]
    pub anomaly_window: Duration,
    /// Evaluation interval of the built-in group (default: the ruler's
    /// `evaluation_interval`).
    #[serde(default, with = "optional_duration")]
    pub interval: Option<Duration>,
    /// `for` of both rules.
    #[serde(rename = "for", with = "serde_duration")]
    pub for_: Duration,
    /// Labels added to both rules' alerts (`severity = "warning"`).
    pub labels: BTreeMap<String, String>,
}

impl Default for AnalysisAlertsConfig {
    fn default() -> Self {
        AnalysisAlertsConfig {
            tenants: Vec::new(),
            new_error_groups: true,
            anomalies: true,
            window: Duration::from_secs(600),
            anomaly_window: Duration::from_secs(60),
            interval: None,
            for_: Duration::ZERO,
            labels: BTreeMap::new(),
        }
    }
}

mod optional_duration {
    use crate::duration::PromDuration;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        d.map(PromDuration).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<PromDuration>::deserialize(d)?.map(|p| p.0))
    }
}

impl AnalysisAlertsConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        for t in &self.tenants {
            TenantId::new(t).map_err(|e| format!("ruler.analysis_alerts.tenants: {t:?}: {e}"))?;
        }
        if self.window.as_secs() == 0 {
            return Err("ruler.analysis_alerts.window must be at least 1s".into());
        }
        if self.anomalies
            && (self.anomaly_window.as_secs() == 0 || self.anomaly_window > self.window)
        {
            return Err(
                "ruler.analysis_alerts.anomaly_window must be at least 1s and at most window"
                    .into(),
            );
        }
        if self.interval.is_some_and(|i| i.is_zero()) {
            return Err("ruler.analysis_alerts.interval must be positive".into());
        }
        for name in self.labels.keys() {
            if !skald_model::is_valid_label_name(name) || name.starts_with("__") {
                return Err(format!(
                    "ruler.analysis_alerts.labels: invalid label name {name:?}"
                ));
            }
        }
        Ok(())
    }

    /// Whether `tenant` gets the built-in group.
    pub fn covers(&self, tenant: &TenantId) -> bool {
        (self.new_error_groups || self.anomalies)
            && self.tenants.iter().any(|t| t == tenant.as_str())
    }

    /// The tenants named, parsed (invalid names were refused at start).
    pub fn tenant_ids(&self) -> Vec<TenantId> {
        self.tenants
            .iter()
            .filter_map(|t| TenantId::new(t).ok())
            .collect()
    }

    /// The built-in group for a tenant this configuration covers.
    pub fn group(&self) -> CompiledGroup {
        let mut rules = Vec::new();
        let mut specs = Vec::new();
        let kinds = [
            (self.new_error_groups, EventKind::NewErrorGroup),
            (self.anomalies, EventKind::Anomaly),
        ];
        for (on, kind) in kinds {
            if !on {
                continue;
            }
            let spec = Rule {
                record: None,
                alert: Some(kind.alert_name().to_string()),
                expr: kind.expr().to_string(),
                for_: (!self.for_.is_zero()).then_some(crate::duration::PromDuration(self.for_)),
                keep_firing_for: None,
                labels: self.labels.clone(),
                annotations: BTreeMap::new(),
            };
            rules.push(CompiledRule {
                kind: RuleKind::Alerting,
                name: kind.alert_name().to_string(),
                source: Source::Analysis(AnalysisSource {
                    kind,
                    window: self.window,
                    anomaly_window: self.anomaly_window,
                }),
                hold: self.for_,
                keep_firing_for: Duration::ZERO,
                labels: self
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), AlertTemplate::plain(v)))
                    .collect(),
                annotations: Vec::new(),
                spec: spec.clone(),
            });
            specs.push(spec);
        }
        CompiledGroup {
            spec: RuleGroup {
                name: GROUP.to_string(),
                interval: self.interval.map(crate::duration::PromDuration),
                limit: 0,
                rules: specs,
            },
            rules,
        }
    }
}

/// Which analysis events a built-in rule alerts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    NewErrorGroup,
    Anomaly,
}

impl EventKind {
    pub fn alert_name(self) -> &'static str {
        match self {
            EventKind::NewErrorGroup => NEW_ERROR_GROUP,
            EventKind::Anomaly => ANOMALY,
        }
    }

    /// What the rule shows as its query in the rules API (not LogQL: the
    /// server's analysis answers it).
    pub fn expr(self) -> &'static str {
        match self {
            EventKind::NewErrorGroup => "skald:new_error_groups",
            EventKind::Anomaly => "skald:anomalies",
        }
    }
}

/// What a built-in rule asks the server for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnalysisSource {
    pub kind: EventKind,
    /// Events active in `(at - window, at]`.
    pub window: Duration,
    pub anomaly_window: Duration,
}

/// One active analysis event: an alert's labels (stream labels, `tenant`,
/// and what identifies the event: `error_group`, `category`, `kind`,
/// `pattern`), its value (lines, or the anomaly's score) and its
/// annotations (`summary`, `description`, an example line, `link`: a
/// path of the server's API, made absolute with the ruler's
/// `external_url`).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub labels: Vec<Label>,
    pub value: f64,
    pub annotations: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_group_follows_the_configuration() {
        let config = AnalysisAlertsConfig {
            tenants: vec!["team-a".into()],
            anomalies: false,
            for_: Duration::from_secs(30),
            labels: [("severity".to_string(), "warning".to_string())].into(),
            ..AnalysisAlertsConfig::default()
        };
        config.validate().unwrap();
        assert!(config.covers(&TenantId::new("team-a").unwrap()));
        assert!(!config.covers(&TenantId::new("team-b").unwrap()));
        let group = config.group();
        assert_eq!(group.spec.name, GROUP);
        assert_eq!(group.rules.len(), 1);
        assert_eq!(group.rules[0].name, NEW_ERROR_GROUP);
        assert_eq!(group.rules[0].hold, Duration::from_secs(30));
        assert_eq!(group.spec.rules[0].labels["severity"], "warning");
        // The spec is what the rules API shows: valid Prometheus YAML.
        let yaml = group.spec.to_yaml();
        assert!(yaml.contains("alert: NewErrorGroup"), "{yaml}");
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = |f: fn(&mut AnalysisAlertsConfig)| {
            let mut c = AnalysisAlertsConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.tenants = vec!["a/b".into()]).contains("tenants"));
        assert!(bad(|c| c.window = Duration::ZERO).contains("window"));
        assert!(bad(|c| c.anomaly_window = Duration::from_secs(3600)).contains("anomaly_window"));
        assert!(bad(|c| c.labels = [("__x".into(), "y".into())].into()).contains("labels"));
    }
}
