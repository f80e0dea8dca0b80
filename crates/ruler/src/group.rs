//! One rule group at run time: its rules' state, one evaluation at a
//! time `ts`, and the alert state file that lets pending alerts survive a
//! restart.
//!
//! # Alert state file
//!
//! `<state_dir>/alerts/<tenant>/<xxh3 of namespace and group, hex>.json`,
//! replaced atomically after each evaluation that has or had alerts:
//!
//! ```json
//! {"version": 1, "namespace": "ns", "group": "g", "evaluated_at": 1700000000000000000,
//!  "rules": [{"name": "HighErrorRate", "expr": "...", "alerts": [{"labels": {...}, "state": "pending", "active_at": ...}]}]}
//! ```
//!
//! Times are nanoseconds. A newer `version` is ignored with an error in
//! the log (the alerts then start over), never misread.

use crate::alert::{
    self, Alert, AlertState, Candidate, Labels, Notification, RestorePolicy, Timing,
};
use crate::analysis::Event;
use crate::metrics::GroupMetrics;
use crate::remote_write::{STALE_NAN, TimeSeries, series};
use crate::rules::{CompiledGroup, CompiledRule, RuleKind, Source};
use crate::template::AlertData;
use crate::{Evaluator, Sample};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use skald_model::{TenantId, Timestamp};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

const STATE_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupKey {
    pub tenant: TenantId,
    pub namespace: String,
    pub name: String,
}

/// What every group's evaluation shares.
pub struct Context {
    pub evaluator: Arc<dyn Evaluator>,
    pub external_labels: Labels,
    pub external_url: String,
    pub resend_delay: Duration,
    pub restore: RestorePolicy,
    pub state_dir: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Ok,
    Err,
}

#[derive(Debug, Default)]
pub struct RuleRuntime {
    pub alerts: BTreeMap<Labels, Alert>,
    pub health: Option<Health>,
    pub last_error: Option<String>,
    /// Nanoseconds.
    pub last_eval: Option<i64>,
    pub eval_seconds: f64,
    /// Series written at the last evaluation (for staleness markers).
    written: BTreeSet<Labels>,
}

#[derive(Debug, Default)]
pub struct GroupState {
    pub rules: Vec<RuleRuntime>,
    pub last_eval: Option<i64>,
    pub last_duration: f64,
    /// The state file read at start-up, applied after the first
    /// evaluation.
    restore: Option<PersistedGroup>,
    /// Whether the state file holds any alert.
    persisted_alerts: bool,
}

pub struct Group {
    pub key: GroupKey,
    pub compiled: CompiledGroup,
    pub interval: Duration,
    pub state: Mutex<GroupState>,
    pub metrics: GroupMetrics,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedGroup {
    version: u32,
    namespace: String,
    group: String,
    evaluated_at: i64,
    rules: Vec<PersistedRule>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PersistedRule {
    name: String,
    expr: String,
    alerts: Vec<Alert>,
}

/// What one evaluation produced for the receivers and remote write.
#[derive(Default)]
pub struct Outputs {
    pub notifications: Vec<Notification>,
    pub series: Vec<TimeSeries>,
}

fn same_rule(a: &CompiledRule, b: &CompiledRule) -> bool {
    a.kind == b.kind
        && a.name == b.name
        && a.spec.expr == b.spec.expr
        && a.spec.labels == b.spec.labels
}

impl Group {
    /// A group about to run. `previous` is the group it replaces (its
    /// alerts carry over to identical rules); without one, the state file
    /// (if any) is restored after the first evaluation.
    pub fn new(
        key: GroupKey,
        compiled: CompiledGroup,
        default_interval: Duration,
        previous: Option<&Group>,
        ctx: &Context,
    ) -> Group {
        let interval = compiled
            .spec
            .interval
            .map(|d| d.0)
            .unwrap_or(default_interval);
        let mut rules: Vec<RuleRuntime> = compiled
            .rules
            .iter()
            .map(|_| RuleRuntime::default())
            .collect();
        let mut state = GroupState::default();
        match previous {
            Some(prev) => {
                let mut old = prev.state.lock();
                for (i, rule) in compiled.rules.iter().enumerate() {
                    if let Some(j) = prev.compiled.rules.iter().position(|r| same_rule(r, rule)) {
                        rules[i] = std::mem::take(&mut old.rules[j]);
                    }
                }
                state.last_eval = old.last_eval;
                state.persisted_alerts = old.persisted_alerts;
            }
            None => {
                state.restore = read_state(&state_path(&ctx.state_dir, &key));
                state.persisted_alerts = state.restore.is_some();
            }
        }
        state.rules = rules;
        Group {
            key,
            compiled,
            interval,
            state: Mutex::new(state),
            metrics: GroupMetrics::default(),
        }
    }

    /// Evaluates every rule at `ts` (nanoseconds, aligned by the caller).
    pub fn evaluate(&self, ctx: &Context, ts: i64) -> Outputs {
        let started = Instant::now();
        let mut out = Outputs::default();
        let mut failed = false;
        for (i, rule) in self.compiled.rules.iter().enumerate() {
            let rule_started = Instant::now();
            let result = match &rule.source {
                Source::Query(expr) => ctx
                    .evaluator
                    .instant(&self.key.tenant, expr, Timestamp(ts))
                    .map(|samples| (samples, Vec::new())),
                Source::Analysis(source) => ctx
                    .evaluator
                    .analysis_events(&self.key.tenant, source, Timestamp(ts))
                    .map(|events| from_events(events, &ctx.external_url)),
            };
            let mut st = self.state.lock();
            let restore = st.restore.take();
            let rt = &mut st.rules[i];
            let outcome = result.and_then(|(samples, annotations)| match rule.kind {
                RuleKind::Alerting => {
                    let found = Found {
                        samples,
                        annotations,
                    };
                    self.eval_alerting(ctx, rule, rt, found, ts, restore.as_ref(), &mut out)
                }
                RuleKind::Recording => self.eval_recording(ctx, rule, rt, samples, ts, &mut out),
            });
            rt.last_eval = Some(ts);
            rt.eval_seconds = rule_started.elapsed().as_secs_f64();
            match outcome {
                Ok(()) => {
                    rt.health = Some(Health::Ok);
                    rt.last_error = None;
                }
                Err(e) => {
                    failed = true;
                    tracing::warn!(tenant = %self.key.tenant, namespace = %self.key.namespace, group = %self.key.name, rule = %rule.name, error = %e, "rule evaluation failed");
                    rt.health = Some(Health::Err);
                    rt.last_error = Some(e);
                }
            }
            st.restore = restore;
        }
        let mut st = self.state.lock();
        st.restore = None;
        st.last_eval = Some(ts);
        st.last_duration = started.elapsed().as_secs_f64();
        self.metrics.record(ts, st.last_duration, failed);
        self.persist(ctx, &mut st, ts);
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn eval_alerting(
        &self,
        ctx: &Context,
        rule: &CompiledRule,
        rt: &mut RuleRuntime,
        found: Found,
        ts: i64,
        restore: Option<&PersistedGroup>,
        out: &mut Outputs,
    ) -> Result<(), String> {
        let mut candidates = Vec::with_capacity(found.samples.len());
        let mut given = found.annotations.into_iter();
        for s in found.samples {
            let mut labels: Labels = s
                .labels
                .into_iter()
                .filter(|l| l.name != "__name__")
                .map(|l| (l.name, l.value))
                .collect();
            let data = AlertData {
                labels: &labels,
                external_labels: &ctx.external_labels,
                external_url: &ctx.external_url,
                value: s.value,
                ts,
            };
            let extra: Vec<(String, String)> = rule
                .labels
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&data)))
                .collect();
            let mut annotations: Labels = rule
                .annotations
                .iter()
                .map(|(k, t)| (k.clone(), t.render(&data)))
                .collect();
            // An event's own annotations, where the rule has none.
            for (k, v) in given.next().unwrap_or_default() {
                annotations.entry(k).or_insert(v);
            }
            for (k, v) in extra {
                if v.is_empty() {
                    labels.remove(&k);
                } else {
                    labels.insert(k, v);
                }
            }
            labels.insert("alertname".to_string(), rule.name.clone());
            candidates.push(Candidate {
                labels,
                annotations,
                value: s.value,
            });
        }
        let timing = Timing {
            hold: rule.hold,
            keep_firing_for: rule.keep_firing_for,
        };
        alert::step(
            &mut rt.alerts,
            candidates,
            ts,
            timing,
            self.compiled.spec.limit,
        )?;
        if let Some(p) = restore
            && let Some(before) = p
                .rules
                .iter()
                .find(|r| r.name == rule.name && r.expr == rule.spec.expr)
        {
            let previous: BTreeMap<Labels, Alert> = before
                .alerts
                .iter()
                .map(|a| (a.labels.clone(), a.clone()))
                .collect();
            alert::restore(
                &mut rt.alerts,
                &previous,
                p.evaluated_at,
                ts,
                rule.hold,
                ctx.restore,
            );
        }
        let generator = generator_url(&ctx.external_url, &rule.spec.expr);
        let mut written = BTreeSet::new();
        for a in rt.alerts.values_mut() {
            if alert::needs_sending(a, ts, ctx.resend_delay) {
                let mut n =
                    alert::to_notification(a, ts, ctx.resend_delay, self.interval, &generator);
                add_external(&mut n.labels, &ctx.external_labels);
                out.notifications.push(n);
            }
            if a.state == AlertState::Inactive {
                continue;
            }
            let mut alerts_series = a.labels.clone();
            alerts_series.insert("__name__".into(), "ALERTS".into());
            alerts_series.insert("alertstate".into(), a.state.as_str().into());
            let mut for_state = a.labels.clone();
            for_state.insert("__name__".into(), "ALERTS_FOR_STATE".into());
            for (labels, value) in [
                (alerts_series, 1.0),
                (for_state, (a.active_at / 1_000_000_000) as f64),
            ] {
                let mut labels = labels;
                add_external(&mut labels, &ctx.external_labels);
                out.series.push(series(&labels, value, ts));
                written.insert(labels);
            }
        }
        stale(&mut rt.written, written, ts, out);
        Ok(())
    }

    fn eval_recording(
        &self,
        ctx: &Context,
        rule: &CompiledRule,
        rt: &mut RuleRuntime,
        samples: Vec<Sample>,
        ts: i64,
        out: &mut Outputs,
    ) -> Result<(), String> {
        let limit = self.compiled.spec.limit;
        if limit > 0 && samples.len() as u64 > limit {
            return Err(format!(
                "exceeded limit of {limit} with {} series",
                samples.len()
            ));
        }
        let mut written = BTreeSet::new();
        let mut batch = Vec::with_capacity(samples.len());
        for s in samples {
            let mut labels: Labels = s.labels.into_iter().map(|l| (l.name, l.value)).collect();
            for (k, t) in &rule.labels {
                if t.source().is_empty() {
                    labels.remove(k);
                } else {
                    labels.insert(k.clone(), t.source().to_string());
                }
            }
            labels.insert("__name__".into(), rule.name.clone());
            add_external(&mut labels, &ctx.external_labels);
            if !written.insert(labels.clone()) {
                return Err(
                    "vector contains metrics with the same labelset after applying rule labels"
                        .into(),
                );
            }
            batch.push(series(&labels, s.value, ts));
        }
        out.series.extend(batch);
        stale(&mut rt.written, written, ts, out);
        Ok(())
    }

    fn persist(&self, ctx: &Context, st: &mut GroupState, ts: i64) {
        let has_alerts = st.rules.iter().any(|r| !r.alerts.is_empty());
        if !has_alerts && !st.persisted_alerts {
            return;
        }
        let doc = PersistedGroup {
            version: STATE_VERSION,
            namespace: self.key.namespace.clone(),
            group: self.key.name.clone(),
            evaluated_at: ts,
            rules: self
                .compiled
                .rules
                .iter()
                .zip(&st.rules)
                .filter(|(r, _)| r.kind == RuleKind::Alerting)
                .map(|(r, rt)| PersistedRule {
                    name: r.name.clone(),
                    expr: r.spec.expr.clone(),
                    alerts: rt.alerts.values().cloned().collect(),
                })
                .collect(),
        };
        let path = state_path(&ctx.state_dir, &self.key);
        let bytes = serde_json::to_vec(&doc).unwrap_or_default();
        match crate::storage::write_atomic(&path, &bytes) {
            Ok(()) => st.persisted_alerts = has_alerts,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "writing alert state failed")
            }
        }
    }

    /// Forgets the state file (the group was deleted).
    pub fn remove_state(&self, ctx: &Context) {
        let _ = std::fs::remove_file(state_path(&ctx.state_dir, &self.key));
    }
}

/// What a rule's source found: the series, and for analysis events the
/// annotations of each (empty for LogQL rules).
struct Found {
    samples: Vec<Sample>,
    annotations: Vec<Labels>,
}

/// Analysis events as samples and their annotations; a `link` given as a
/// path of the server's API is made absolute with `external_url`.
fn from_events(events: Vec<Event>, external_url: &str) -> (Vec<Sample>, Vec<Labels>) {
    let base = external_url.trim_end_matches('/');
    events
        .into_iter()
        .map(|e| {
            let mut annotations: Labels = e.annotations.into_iter().collect();
            if let Some(link) = annotations.get_mut("link")
                && link.starts_with('/')
            {
                *link = format!("{base}{link}");
            }
            let sample = Sample {
                labels: e.labels,
                value: e.value,
            };
            (sample, annotations)
        })
        .unzip()
}

/// Staleness markers for the series written last time but not now, so
/// Prometheus ends them at once instead of after five minutes.
fn stale(previous: &mut BTreeSet<Labels>, now: BTreeSet<Labels>, ts: i64, out: &mut Outputs) {
    for gone in previous.difference(&now) {
        out.series.push(series(gone, f64::from_bits(STALE_NAN), ts));
    }
    *previous = now;
}

fn add_external(labels: &mut Labels, external: &Labels) {
    for (k, v) in external {
        labels.entry(k.clone()).or_insert_with(|| v.clone());
    }
}

fn generator_url(base: &str, expr: &str) -> String {
    let base = base.trim_end_matches('/');
    let query: String = form_urlencoded(expr);
    format!("{base}/graph?g0.expr={query}&g0.tab=1")
}

fn form_urlencoded(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

pub fn state_path(state_dir: &std::path::Path, key: &GroupKey) -> PathBuf {
    let mut id = key.namespace.clone();
    id.push('\0');
    id.push_str(&key.name);
    state_dir
        .join("alerts")
        .join(key.tenant.as_str())
        .join(format!(
            "{:016x}.json",
            xxhash_rust::xxh3::xxh3_64(id.as_bytes())
        ))
}

fn read_state(path: &std::path::Path) -> Option<PersistedGroup> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "reading alert state failed; alerts start over");
            return None;
        }
    };
    match serde_json::from_slice::<PersistedGroup>(&bytes) {
        Ok(p) if p.version == STATE_VERSION => Some(p),
        Ok(p) => {
            tracing::error!(file = %path.display(), version = p.version, "alert state of a newer version; alerts start over");
            None
        }
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "alert state unreadable; alerts start over");
            None
        }
    }
}
