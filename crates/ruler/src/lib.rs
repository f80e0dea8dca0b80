//! Skald's ruler: alerting and recording rules over LogQL, evaluated on a
//! schedule, with alerts sent to Alertmanager (or a webhook) and recorded
//! series written to Prometheus by remote write — what Loki's ruler does,
//! for the rule files teams already have.
//!
//! How the parts fit:
//!
//! - [`rules`]: Prometheus' rule-group YAML; checks a group (LogQL parses
//!   and is a metric query, names and [`template`]s are valid) before
//!   anything stores or runs it.
//! - [`storage`]: the rule files, `<rules_dir>/<tenant>/<namespace>.yaml`
//!   as Loki lays them out, replaced atomically.
//! - [`Ruler`] (`manager`): runs every group of every tenant on its own
//!   schedule (aligned to its interval; missed evaluations after a stall
//!   or downtime are skipped, not replayed), keeps the running groups in
//!   step with the files (after API changes at once, after edits on disk
//!   at the next poll), and serves what the APIs read.
//! - `group`: one evaluation of a group at a time `ts`: each rule's
//!   expression as an instant query through the [`Evaluator`] seam, the
//!   [`alert`] state machine, `ALERTS` / `ALERTS_FOR_STATE` series, and
//!   the alert state persisted (`state_dir`) so a restart in the middle of
//!   `for` does not start over.
//! - [`notify`]: Alertmanager v2 and webhook receivers, each with a
//!   bounded retrying queue.
//! - [`remote_write`]: remote-write 1.0 through a bounded on-disk queue.
//!
//! Not here: HTTP routes and tenancy checks (`skald-server`), query
//! evaluation (the server implements [`Evaluator`] over the store), the
//! configuration file (the binary reads [`RulerConfig`] from it). Not
//! supported yet: `query` in templates, per-tenant Alertmanager settings,
//! federated rules over several tenants, `query_offset`.

pub mod alert;
pub mod analysis;
pub mod client;
pub mod duration;
mod group;
mod manager;
mod metrics;
pub mod notify;
pub mod remote_write;
pub mod rules;
pub mod status;
pub mod storage;
pub mod template;

pub use client::ClientConfig;
pub use manager::{Ruler, check_file};
pub use rules::{RuleError, RuleFile, RuleGroup};

use duration::serde_duration;
use serde::{Deserialize, Serialize};
use skald_logql::Expr;
use skald_model::{Label, TenantId, Timestamp};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One series of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: Vec<Label>,
    pub value: f64,
}

/// Runs a rule's expression: an instant query for one tenant at one time.
/// The server implements it over the store; a scalar result is one sample
/// without labels.
pub trait Evaluator: Send + Sync + 'static {
    fn instant(&self, tenant: &TenantId, expr: &Expr, at: Timestamp)
    -> Result<Vec<Sample>, String>;

    /// The analysis events of `source`'s kind active at `at` (the
    /// built-in rules of [`analysis`]). Servers without log analysis keep
    /// the default, which fails the rule with a clear reason.
    fn analysis_events(
        &self,
        tenant: &TenantId,
        source: &analysis::AnalysisSource,
        at: Timestamp,
    ) -> Result<Vec<analysis::Event>, String> {
        let _ = (tenant, source, at);
        Err("log analysis is not enabled on this server".into())
    }
}

/// `[ruler]` of the configuration file. Durations are Prometheus
/// durations (`"1m"`, `"30s"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulerConfig {
    /// Rule files, `<rules_dir>/<tenant>/<namespace>.yaml` (default:
    /// `rules` in the data directory).
    pub rules_dir: Option<PathBuf>,
    /// Alert state and the remote-write queue (default: `ruler` in the
    /// data directory).
    pub state_dir: Option<PathBuf>,
    /// How often groups without their own `interval` are evaluated.
    #[serde(with = "serde_duration")]
    pub evaluation_interval: Duration,
    /// How often the rule files are re-read for changes made on disk.
    #[serde(with = "serde_duration")]
    pub poll_interval: Duration,
    /// Alertmanager base URLs (`http://am:9093`); alerts go to every one.
    pub alertmanager_url: Vec<String>,
    /// Credentials and TLS for the Alertmanagers.
    pub alertmanager_client: ClientConfig,
    /// Minimum time before a firing alert is sent again.
    #[serde(with = "serde_duration")]
    pub resend_delay: Duration,
    /// Restored alerts get at least this long before firing; rules with a
    /// shorter `for` are not restored (Prometheus' `for_grace_period`).
    #[serde(with = "serde_duration")]
    pub for_grace_period: Duration,
    /// Longest downtime after which pending alerts are restored.
    #[serde(with = "serde_duration")]
    pub for_outage_tolerance: Duration,
    /// Alerts waiting per receiver before the oldest are dropped.
    pub notification_queue_capacity: usize,
    #[serde(with = "serde_duration")]
    pub notification_timeout: Duration,
    /// A URL that receives alerts as JSON (Alertmanager's webhook shape).
    pub webhook_url: Option<String>,
    pub webhook_client: ClientConfig,
    /// Prometheus' remote-write endpoint
    /// (`http://prometheus:9090/api/v1/write`) for recording rules.
    pub remote_write_url: Option<String>,
    pub remote_write_client: ClientConfig,
    /// Bytes the remote-write queue may hold on disk.
    pub remote_write_queue_bytes: u64,
    /// Base of alerts' `generatorURL` (default: this server's HTTP address).
    pub external_url: Option<String>,
    /// Labels added to every alert and written series.
    pub external_labels: BTreeMap<String, String>,
    /// Analysis events (new error groups, anomalies) as built-in alerts.
    pub analysis_alerts: analysis::AnalysisAlertsConfig,
}

impl Default for RulerConfig {
    fn default() -> Self {
        RulerConfig {
            rules_dir: None,
            state_dir: None,
            evaluation_interval: Duration::from_secs(60),
            poll_interval: Duration::from_secs(60),
            alertmanager_url: Vec::new(),
            alertmanager_client: ClientConfig::default(),
            resend_delay: Duration::from_secs(60),
            for_grace_period: Duration::from_secs(600),
            for_outage_tolerance: Duration::from_secs(3600),
            notification_queue_capacity: 10_000,
            notification_timeout: Duration::from_secs(10),
            webhook_url: None,
            webhook_client: ClientConfig::default(),
            remote_write_url: None,
            remote_write_client: ClientConfig::default(),
            remote_write_queue_bytes: 256 * 1024 * 1024,
            external_url: None,
            external_labels: BTreeMap::new(),
            analysis_alerts: analysis::AnalysisAlertsConfig::default(),
        }
    }
}

impl RulerConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), String> {
        if self.evaluation_interval.is_zero() {
            return Err("ruler.evaluation_interval must be positive".into());
        }
        if self.poll_interval.is_zero() {
            return Err("ruler.poll_interval must be positive".into());
        }
        if self.notification_queue_capacity == 0 {
            return Err("ruler.notification_queue_capacity must be positive".into());
        }
        for (what, url) in self
            .alertmanager_url
            .iter()
            .map(|u| ("ruler.alertmanager_url", u))
            .chain(self.webhook_url.iter().map(|u| ("ruler.webhook_url", u)))
            .chain(
                self.remote_write_url
                    .iter()
                    .map(|u| ("ruler.remote_write_url", u)),
            )
        {
            let parsed = reqwest::Url::parse(url).map_err(|e| format!("{what} {url:?}: {e}"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!("{what} {url:?}: the scheme must be http or https"));
            }
        }
        self.analysis_alerts.validate()?;
        for name in self.external_labels.keys() {
            if !skald_model::is_valid_label_name(name) {
                return Err(format!(
                    "ruler.external_labels: invalid label name {name:?}"
                ));
            }
        }
        Ok(())
    }
}

/// What can go wrong in the ruler's operations.
#[derive(Debug, thiserror::Error)]
pub enum RulerError {
    /// Refused rules: each message names the group and rule.
    #[error("{}", .0.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleError>),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// A stored rule file that no longer parses.
    #[error("{0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Setup(String),
}

impl RulerError {
    pub fn io(path: &Path, source: std::io::Error) -> RulerError {
        RulerError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
