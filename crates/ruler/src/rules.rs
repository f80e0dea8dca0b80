//! Rule files: Prometheus' rule-group YAML with LogQL expressions, as
//! Loki, lokitool and cortextool read and write them.
//!
//! ```yaml
//! groups:
//!   - name: errors
//!     interval: 1m            # optional; the ruler's evaluation_interval
//!     limit: 0                # optional; most alerts or series per rule
//!     rules:
//!       - alert: HighErrorRate
//!         expr: sum(rate({app="x"} |= "error" [1m])) > 1
//!         for: 5m
//!         keep_firing_for: 0s
//!         labels: {severity: page}
//!         annotations: {summary: "{{ $labels.app }}: {{ $value }} errors/s"}
//!       - record: app:errors:rate1m
//!         expr: sum by (app) (rate({app="x"} |= "error" [1m]))
//! ```
//!
//! [`RuleFile::parse`] reads the text; [`RuleGroup::compile`] checks one
//! group (LogQL parses and is a metric query, names and templates are
//! valid) and gives the form the evaluator runs. Every error names the
//! group and rule it is about.

use crate::duration::PromDuration;
use crate::template::AlertTemplate;
use serde::{Deserialize, Serialize};
use skald_logql::Expr;
use std::collections::{BTreeMap, BTreeSet};

/// A rule file: the groups of one namespace. cortextool's files may name
/// their namespace at the top.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<PromDuration>,
    /// Most alerts (alerting rules) or series (recording rules) one rule
    /// may produce; 0: no limit. Past it, the evaluation fails.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub limit: u64,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// YAML of anything serialisable here (a namespace map, a group).
pub fn to_yaml<T: Serialize>(value: &T) -> String {
    serde_saphyr::to_string(value).unwrap_or_default()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
    pub expr: String,
    #[serde(rename = "for", default, skip_serializing_if = "Option::is_none")]
    pub for_: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Why a rule file or group is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct RuleError {
    pub message: String,
}

fn err(message: impl Into<String>) -> RuleError {
    RuleError {
        message: message.into(),
    }
}

impl RuleFile {
    /// Reads a rule file (YAML). Syntax errors say where.
    pub fn parse(text: &str) -> Result<RuleFile, RuleError> {
        if text.trim().is_empty() {
            return Ok(RuleFile::default());
        }
        serde_saphyr::from_str(text).map_err(|e| err(format!("invalid rule file: {e}")))
    }

    /// Every group checked, and group names unique; all errors at once.
    pub fn check(&self) -> Result<Vec<CompiledGroup>, Vec<RuleError>> {
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        let mut names = BTreeSet::new();
        for g in &self.groups {
            if !names.insert(g.name.as_str()) {
                errors.push(err(format!(
                    "group {:?}: repeated in the same file",
                    g.name
                )));
            }
            match g.compile() {
                Ok(c) => compiled.push(c),
                Err(e) => errors.extend(e),
            }
        }
        if errors.is_empty() {
            Ok(compiled)
        } else {
            Err(errors)
        }
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }
}

impl RuleGroup {
    /// Reads one group (the body lokitool and cortextool POST).
    pub fn parse(text: &str) -> Result<RuleGroup, RuleError> {
        serde_saphyr::from_str(text).map_err(|e| err(format!("invalid rule group: {e}")))
    }

    pub fn to_yaml(&self) -> String {
        serde_saphyr::to_string(self).unwrap_or_default()
    }

    /// Checks every rule; all errors at once.
    pub fn compile(&self) -> Result<CompiledGroup, Vec<RuleError>> {
        let mut errors = Vec::new();
        if self.name.trim().is_empty() {
            errors.push(err("a rule group needs a name"));
        }
        if let Some(i) = self.interval
            && i.0.is_zero()
        {
            errors.push(err(format!(
                "group {:?}: interval must be positive",
                self.name
            )));
        }
        if self.rules.is_empty() {
            errors.push(err(format!("group {:?}: no rules", self.name)));
        }
        let mut rules = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            match r.compile() {
                Ok(c) => rules.push(c),
                Err(messages) => {
                    let name = r.alert.as_deref().or(r.record.as_deref()).unwrap_or("");
                    for m in messages {
                        errors.push(err(format!(
                            "group {:?}, rule {} ({name:?}): {m}",
                            self.name,
                            i + 1
                        )));
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CompiledGroup {
            spec: self.clone(),
            rules,
        })
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

impl Rule {
    fn compile(&self) -> Result<CompiledRule, Vec<String>> {
        let mut errors = Vec::new();
        let kind = match (&self.alert, &self.record) {
            (Some(_), Some(_)) => {
                errors.push("only one of 'record' and 'alert' may be set".to_string());
                None
            }
            (None, None) => {
                errors.push("one of 'record' or 'alert' must be set".to_string());
                None
            }
            (Some(a), None) => {
                if a.trim().is_empty() {
                    errors.push("'alert' must not be empty".to_string());
                }
                Some(RuleKind::Alerting)
            }
            (None, Some(r)) => {
                if !valid_metric_name(r) {
                    errors.push(format!("invalid recording rule name: {r:?}"));
                }
                if self.for_.is_some() {
                    errors.push("invalid field 'for' in recording rule".to_string());
                }
                if self.keep_firing_for.is_some() {
                    errors.push("invalid field 'keep_firing_for' in recording rule".to_string());
                }
                if !self.annotations.is_empty() {
                    errors.push("invalid field 'annotations' in recording rule".to_string());
                }
                Some(RuleKind::Recording)
            }
        };
        let expr = match skald_logql::parse_expr(&self.expr) {
            Ok(Expr::Log(_)) => {
                errors.push(format!(
                    "{:?} is a log query; rules need a metric query (rate, count_over_time, sum ...)",
                    self.expr
                ));
                None
            }
            Ok(e) => Some(e),
            Err(e) => {
                errors.push(format!("could not parse expression: {e}"));
                None
            }
        };
        for name in self.labels.keys() {
            if !skald_model::is_valid_label_name(name) || name.starts_with("__") {
                errors.push(format!("invalid label name: {name:?}"));
            }
        }
        let mut labels = Vec::new();
        let mut annotations = Vec::new();
        for (map, out, what) in [
            (&self.labels, &mut labels, "label"),
            (&self.annotations, &mut annotations, "annotation"),
        ] {
            for (k, v) in map {
                // Recording rules' labels are plain values (Prometheus does
                // not expand them).
                if kind == Some(RuleKind::Recording) {
                    out.push((k.clone(), AlertTemplate::plain(v)));
                    continue;
                }
                match AlertTemplate::parse(v) {
                    Ok(t) => out.push((k.clone(), t)),
                    Err(e) => errors.push(format!("{what} {k:?}: {e}")),
                }
            }
        }
        let (Some(kind), Some(expr), true) = (kind, expr, errors.is_empty()) else {
            return Err(errors);
        };
        Ok(CompiledRule {
            kind,
            name: self
                .alert
                .clone()
                .or_else(|| self.record.clone())
                .unwrap_or_default(),
            source: Source::Query(expr),
            hold: self.for_.map(|d| d.0).unwrap_or_default(),
            keep_firing_for: self.keep_firing_for.map(|d| d.0).unwrap_or_default(),
            labels,
            annotations,
            spec: self.clone(),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleKind {
    Alerting,
    Recording,
}

/// What a rule evaluates.
#[derive(Debug)]
pub enum Source {
    /// A LogQL metric query (rule files).
    Query(Expr),
    /// The server's analysis events (the built-in group of
    /// [`crate::analysis`]).
    Analysis(crate::analysis::AnalysisSource),
}

/// A checked rule, ready to evaluate.
#[derive(Debug)]
pub struct CompiledRule {
    pub kind: RuleKind,
    /// The alert name or the recorded metric name.
    pub name: String,
    pub source: Source,
    /// `for`.
    pub hold: std::time::Duration,
    pub keep_firing_for: std::time::Duration,
    pub labels: Vec<(String, AlertTemplate)>,
    pub annotations: Vec<(String, AlertTemplate)>,
    pub spec: Rule,
}

/// A checked group.
#[derive(Debug)]
pub struct CompiledGroup {
    pub spec: RuleGroup,
    pub rules: Vec<CompiledRule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
groups:
  - name: errors
    interval: 30s
    rules:
      - alert: HighErrorRate
        expr: sum(rate({app="x"} |= "error" [1m])) > 1
        for: 30s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.app }} has {{ $value }} errors/s"
      - record: app:errors:rate1m
        expr: sum by (app) (rate({app="x"} |= "error" [1m]))
        labels:
          team: core
"#;

    #[test]
    fn a_loki_rule_file_loads_and_round_trips() {
        let f = RuleFile::parse(GOOD).unwrap();
        let groups = f.check().unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].rules.len(), 2);
        assert_eq!(groups[0].rules[0].hold.as_secs(), 30);
        assert_eq!(groups[0].rules[1].kind, RuleKind::Recording);
        let again = RuleFile::parse(&f.to_yaml()).unwrap();
        assert_eq!(again, f);
        let g = RuleGroup::parse(&f.groups[0].to_yaml()).unwrap();
        assert_eq!(g, f.groups[0]);
    }

    fn errors_of(yaml: &str) -> String {
        let f = match RuleFile::parse(yaml) {
            Ok(f) => f,
            Err(e) => return e.message,
        };
        f.check()
            .unwrap_err()
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn invalid_rules_are_refused_with_the_rule_and_the_reason() {
        let cases = [
            (
                "groups: [{name: g, rules: [{alert: A, expr: 'sum(rate({app=\"x\"}[1m]'}]}]",
                "group \"g\", rule 1 (\"A\"): could not parse expression",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: '{app=\"x\"} |= \"error\"'}]}]",
                "is a log query",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: 'count_over_time({a=\"b\"}[1m])', annotations: {s: '{{ $labels.x '}}]}]",
                "annotation \"s\": template",
            ),
            (
                "groups: [{name: g, rules: [{alert: A, expr: 'count_over_time({a=\"b\"}[1m])', labels: {s: '{{ nope }}'}}]}]",
                "label \"s\"",
            ),
            (
                "groups: [{name: g, rules: [{record: 'bad name', expr: 'count_over_time({a=\"b\"}[1m])'}]}]",
                "invalid recording rule name",
            ),
            (
                "groups: [{name: g, rules: [{record: r, alert: a, expr: 'count_over_time({a=\"b\"}[1m])'}]}]",
                "only one of",
            ),
            (
                "groups: [{name: g, rules: [{record: r, for: 1m, expr: 'count_over_time({a=\"b\"}[1m])'}]}]",
                "invalid field 'for'",
            ),
            (
                "groups: [{name: g, rules: [{alert: a, expr: 'count_over_time({a=\"b\"}[1m])', for: 5x}]}]",
                "not a valid duration",
            ),
            (
                "groups: [{name: g, rules: [{alert: a, expr: 'count_over_time({a=\"b\"}[1m])', unknown: 1}]}]",
                "unknown",
            ),
            (
                "groups: [{name: g, rules: [{alert: a, expr: 'vector(1)'}]}, {name: g, rules: [{alert: a, expr: 'vector(1)'}]}]",
                "repeated",
            ),
            ("groups: [{name: g, rules: []}]", "no rules"),
        ];
        for (yaml, want) in cases {
            let got = errors_of(yaml);
            assert!(got.contains(want), "{yaml}\n  got: {got}\n  want: {want}");
        }
    }
}
