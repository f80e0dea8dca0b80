//! [`Ruler`]: runs the rule groups of every tenant and answers the API's
//! reads and writes.
//!
//! Each group is one task: it sleeps until the next multiple of its
//! interval, evaluates on the blocking pool, hands the alerts to the
//! receivers' queues and the series to the remote-write queue. If an
//! evaluation starts late by a whole interval or more (a stall, or the
//! server was down), the missed evaluations are counted and skipped, not
//! replayed: alerting on stale time would be noise.
//!
//! Writes through the API check the group first, store it, then bring the
//! running groups of that tenant in step with the files at once; a poll
//! does the same for every tenant every `poll_interval`, for files edited
//! on disk. A stored namespace that no longer parses keeps its running
//! groups (and an error in the log) until it is fixed.

use crate::alert::{AlertState, Labels, RestorePolicy};
use crate::client::HttpTarget;
use crate::group::{Context, Group, GroupKey, Health};
use crate::metrics::{GroupRow, family, render_groups};
use crate::notify::{Receiver, ReceiverKind};
use crate::remote_write::{RemoteWriter, WriteRequest};
use crate::rules::{CompiledGroup, RuleFile, RuleGroup, RuleKind};
use crate::status::{AlertStatus, GroupStatus, RuleStatus, go_float_e};
use crate::storage::{RuleStore, check_namespace};
use crate::{Evaluator, RulerConfig, RulerError};
use parking_lot::Mutex;
use skald_model::TenantId;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The ruler; cheap to clone.
#[derive(Clone)]
pub struct Ruler {
    inner: Arc<Inner>,
}

struct Running {
    group: Arc<Group>,
    task: JoinHandle<()>,
}

struct Inner {
    config: RulerConfig,
    store: RuleStore,
    ctx: Arc<Context>,
    receivers: Vec<Arc<Receiver>>,
    remote: Option<Arc<RemoteWriter>>,
    groups: Mutex<BTreeMap<GroupKey, Running>>,
    /// Serialises changes to the rule files and the running groups.
    writes: Mutex<()>,
    runtime: tokio::runtime::Handle,
    background: Mutex<Vec<JoinHandle<()>>>,
}

fn now_ns() -> i64 {
    skald_model::Timestamp::now().0
}

fn ns(d: Duration) -> i64 {
    d.as_nanos().clamp(1, i64::MAX as u128) as i64
}

impl Ruler {
    /// Starts the ruler on the current tokio runtime. `rules_dir` and
    /// `state_dir` must be set (the binary defaults them under the data
    /// directory).
    pub fn start(config: RulerConfig, evaluator: Arc<dyn Evaluator>) -> Result<Ruler, RulerError> {
        config.validate().map_err(RulerError::Setup)?;
        let runtime = tokio::runtime::Handle::try_current()
            .map_err(|_| RulerError::Setup("the ruler needs a tokio runtime".into()))?;
        let rules_dir = config
            .rules_dir
            .clone()
            .ok_or_else(|| RulerError::Setup("ruler.rules_dir is not set".into()))?;
        let state_dir: PathBuf = config
            .state_dir
            .clone()
            .ok_or_else(|| RulerError::Setup("ruler.state_dir is not set".into()))?;
        std::fs::create_dir_all(&rules_dir).map_err(|e| RulerError::io(&rules_dir, e))?;
        std::fs::create_dir_all(&state_dir).map_err(|e| RulerError::io(&state_dir, e))?;
        let external_url = config
            .external_url
            .clone()
            .unwrap_or_else(|| "http://localhost:3100".to_string());
        let timeout = config.notification_timeout;
        let mut receivers = Vec::new();
        for url in &config.alertmanager_url {
            let target = HttpTarget::new(url, &config.alertmanager_client, timeout)
                .map_err(|e| RulerError::Setup(format!("ruler.alertmanager_url {url}: {e}")))?;
            receivers.push(Receiver::new(
                ReceiverKind::Alertmanager,
                target,
                config.notification_queue_capacity,
                &external_url,
            ));
        }
        if let Some(url) = &config.webhook_url {
            let target = HttpTarget::new(url, &config.webhook_client, timeout)
                .map_err(|e| RulerError::Setup(format!("ruler.webhook_url: {e}")))?;
            receivers.push(Receiver::new(
                ReceiverKind::Webhook,
                target,
                config.notification_queue_capacity,
                &external_url,
            ));
        }
        let remote = match &config.remote_write_url {
            None => None,
            Some(url) => {
                let target =
                    HttpTarget::new(url, &config.remote_write_client, Duration::from_secs(30))
                        .map_err(|e| RulerError::Setup(format!("ruler.remote_write_url: {e}")))?;
                let dir = state_dir.join("remote-write");
                Some(
                    RemoteWriter::open(dir.clone(), config.remote_write_queue_bytes, target)
                        .map_err(|e| RulerError::io(&dir, e))?,
                )
            }
        };
        let ctx = Arc::new(Context {
            evaluator,
            external_labels: config.external_labels.clone(),
            external_url,
            resend_delay: config.resend_delay,
            restore: RestorePolicy {
                outage_tolerance: config.for_outage_tolerance,
                grace_period: config.for_grace_period,
            },
            state_dir,
        });
        let inner = Arc::new(Inner {
            store: RuleStore::new(rules_dir),
            config,
            ctx,
            receivers,
            remote,
            groups: Mutex::new(BTreeMap::new()),
            writes: Mutex::new(()),
            runtime,
            background: Mutex::new(Vec::new()),
        });
        {
            let mut bg = inner.background.lock();
            for r in &inner.receivers {
                bg.push(inner.runtime.spawn(r.clone().run()));
            }
            if let Some(w) = &inner.remote {
                bg.push(inner.runtime.spawn(w.clone().run()));
            }
        }
        let ruler = Ruler { inner };
        ruler.sync_all();
        let poller = ruler.clone();
        let poll = ruler.inner.config.poll_interval;
        let task = ruler.inner.runtime.spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let r = poller.clone();
                let _ = tokio::task::spawn_blocking(move || r.sync_all()).await;
            }
        });
        ruler.inner.background.lock().push(task);
        Ok(ruler)
    }

    /// Stops every task (the alert state is already on disk).
    pub fn stop(&self) {
        for (_, r) in std::mem::take(&mut *self.inner.groups.lock()) {
            r.task.abort();
        }
        for t in self.inner.background.lock().drain(..) {
            t.abort();
        }
    }

    fn sync_all(&self) {
        match self.inner.store.tenants() {
            Ok(tenants) => {
                let running: BTreeSet<TenantId> = self
                    .inner
                    .groups
                    .lock()
                    .keys()
                    .map(|k| k.tenant.clone())
                    .collect();
                let analysis = self.inner.config.analysis_alerts.tenant_ids();
                for t in running
                    .into_iter()
                    .chain(tenants)
                    .chain(analysis)
                    .collect::<BTreeSet<_>>()
                {
                    if let Err(e) = self.sync_tenant(&t) {
                        tracing::error!(tenant = %t, error = %e, "loading rules failed");
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "listing rule tenants failed"),
        }
    }

    /// Brings the running groups of `tenant` in step with its files.
    fn sync_tenant(&self, tenant: &TenantId) -> Result<(), RulerError> {
        let _w = self.inner.writes.lock();
        let files = self.inner.store.load_tenant(tenant)?;
        let mut wanted: BTreeMap<GroupKey, CompiledGroup> = BTreeMap::new();
        let mut broken: BTreeSet<String> = BTreeSet::new();
        for (ns, parsed) in files {
            let checked = parsed.and_then(|f| {
                f.check().map_err(|errs| {
                    errs.iter()
                        .map(|e| e.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
            });
            match checked {
                Ok(groups) => {
                    for g in groups {
                        let key = GroupKey {
                            tenant: tenant.clone(),
                            namespace: ns.clone(),
                            name: g.spec.name.clone(),
                        };
                        wanted.insert(key, g);
                    }
                }
                Err(e) => {
                    tracing::error!(tenant = %tenant, namespace = %ns, error = %e, "invalid rule file; its groups keep running as they were");
                    broken.insert(ns);
                }
            }
        }
        // Analysis events as alerts: a built-in group, beside the files'.
        let analysis = &self.inner.config.analysis_alerts;
        if analysis.covers(tenant) {
            let key = GroupKey {
                tenant: tenant.clone(),
                namespace: crate::analysis::NAMESPACE.to_string(),
                name: crate::analysis::GROUP.to_string(),
            };
            broken.remove(&key.namespace);
            wanted.insert(key, analysis.group());
        }
        let mut running = self.inner.groups.lock();
        let gone: Vec<GroupKey> = running
            .keys()
            .filter(|k| {
                &k.tenant == tenant && !wanted.contains_key(*k) && !broken.contains(&k.namespace)
            })
            .cloned()
            .collect();
        for k in gone {
            if let Some(r) = running.remove(&k) {
                r.task.abort();
                r.group.remove_state(&self.inner.ctx);
                tracing::info!(tenant = %k.tenant, namespace = %k.namespace, group = %k.name, "rule group removed");
            }
        }
        for (key, compiled) in wanted {
            let previous = running.get(&key);
            if previous.is_some_and(|r| r.group.compiled.spec == compiled.spec) {
                continue;
            }
            let group = Arc::new(Group::new(
                key.clone(),
                compiled,
                self.inner.config.evaluation_interval,
                previous.map(|r| r.group.as_ref()),
                &self.inner.ctx,
            ));
            if let Some(old) = running.remove(&key) {
                old.task.abort();
            }
            tracing::info!(tenant = %key.tenant, namespace = %key.namespace, group = %key.name, interval_ms = group.interval.as_millis() as u64, "rule group loaded");
            let task = self
                .inner
                .runtime
                .spawn(run_group(self.inner.clone(), group.clone()));
            running.insert(key, Running { group, task });
        }
        Ok(())
    }

    // ---- reads and writes for the API ----

    /// Every namespace of a tenant with its groups.
    pub fn namespaces(
        &self,
        tenant: &TenantId,
    ) -> Result<BTreeMap<String, Vec<RuleGroup>>, RulerError> {
        let mut out = BTreeMap::new();
        for (ns, parsed) in self.inner.store.load_tenant(tenant)? {
            match parsed {
                Ok(f) => {
                    out.insert(ns, f.groups);
                }
                Err(e) => return Err(RulerError::Corrupt(e)),
            }
        }
        Ok(out)
    }

    pub fn namespace(&self, tenant: &TenantId, ns: &str) -> Result<Vec<RuleGroup>, RulerError> {
        match self.inner.store.namespace(tenant, ns)? {
            Some(f) => Ok(f.groups),
            None => Err(RulerError::NotFound("no rule groups found".into())),
        }
    }

    pub fn group(&self, tenant: &TenantId, ns: &str, name: &str) -> Result<RuleGroup, RulerError> {
        self.namespace(tenant, ns)?
            .into_iter()
            .find(|g| g.name == name)
            .ok_or_else(|| RulerError::NotFound("group does not exist".into()))
    }

    /// Checks and stores a group (YAML, as lokitool sends it); an invalid
    /// group never replaces a stored one.
    pub fn set_group(&self, tenant: &TenantId, ns: &str, yaml: &str) -> Result<(), RulerError> {
        check_namespace(ns)?;
        let group = RuleGroup::parse(yaml).map_err(|e| RulerError::Invalid(vec![e]))?;
        group.compile().map_err(RulerError::Invalid)?;
        {
            let _w = self.inner.writes.lock();
            self.inner.store.put_group(tenant, ns, group)?;
        }
        self.sync_tenant(tenant)
    }

    pub fn delete_group(&self, tenant: &TenantId, ns: &str, name: &str) -> Result<(), RulerError> {
        let deleted = {
            let _w = self.inner.writes.lock();
            self.inner.store.delete_group(tenant, ns, name)?
        };
        if !deleted {
            return Err(RulerError::NotFound("group does not exist".into()));
        }
        self.sync_tenant(tenant)
    }

    pub fn delete_namespace(&self, tenant: &TenantId, ns: &str) -> Result<(), RulerError> {
        let deleted = {
            let _w = self.inner.writes.lock();
            self.inner.store.delete_namespace(tenant, ns)?
        };
        if !deleted {
            return Err(RulerError::NotFound("no rule groups found".into()));
        }
        self.sync_tenant(tenant)
    }

    /// The running groups of a tenant, as Prometheus' rules API shows
    /// them.
    pub fn rule_groups(&self, tenant: &TenantId) -> Vec<GroupStatus> {
        let groups: Vec<Arc<Group>> = self
            .inner
            .groups
            .lock()
            .iter()
            .filter(|(k, _)| &k.tenant == tenant)
            .map(|(_, r)| r.group.clone())
            .collect();
        groups.iter().map(|g| group_status(g)).collect()
    }

    /// The pending and firing alerts of a tenant.
    pub fn alerts(&self, tenant: &TenantId) -> Vec<AlertStatus> {
        self.rule_groups(tenant)
            .into_iter()
            .flat_map(|g| g.rules)
            .flat_map(|r| match r {
                RuleStatus::Alerting { alerts, .. } => alerts,
                RuleStatus::Recording { .. } => Vec::new(),
            })
            .collect()
    }

    /// Appends the ruler's metrics in Prometheus' text format.
    pub fn render_metrics(&self, out: &mut String) {
        let groups: Vec<Arc<Group>> = self
            .inner
            .groups
            .lock()
            .values()
            .map(|r| r.group.clone())
            .collect();
        let rows: Vec<GroupRow<'_>> = groups
            .iter()
            .map(|g| GroupRow {
                tenant: g.key.tenant.as_str(),
                namespace: &g.key.namespace,
                group: &g.key.name,
                metrics: &g.metrics,
                rules: g.compiled.rules.len(),
            })
            .collect();
        render_groups(out, &rows);
        let kind = |r: &Receiver| match r.kind {
            ReceiverKind::Alertmanager => "alertmanager",
            ReceiverKind::Webhook => "webhook",
        };
        let rx = &self.inner.receivers;
        type Get = fn(&Receiver) -> f64;
        let families: [(&str, &str, &str, Get); 4] = [
            (
                "skald_ruler_notifications_sent_total",
                "counter",
                "Alerts delivered to the receiver.",
                |r| r.metrics.sent.load(Ordering::Relaxed) as f64,
            ),
            (
                "skald_ruler_notifications_errors_total",
                "counter",
                "Failed requests to the receiver (the alerts are retried).",
                |r| r.metrics.errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "skald_ruler_notifications_dropped_total",
                "counter",
                "Alerts dropped because the receiver's queue was full.",
                |r| r.metrics.dropped.load(Ordering::Relaxed) as f64,
            ),
            (
                "skald_ruler_notifications_queue_length",
                "gauge",
                "Alerts waiting for the receiver.",
                |r| r.queue_len() as f64,
            ),
        ];
        for (name, k, help, get) in families {
            let rows: Vec<(Vec<(&str, &str)>, f64)> = rx
                .iter()
                .map(|r| (vec![("kind", kind(r)), ("url", r.url.as_str())], get(r)))
                .collect();
            family(out, name, k, help, &rows);
        }
        if let Some(w) = &self.inner.remote {
            let m = &w.metrics;
            let url = vec![("url", w.url())];
            for (name, k, help, v) in [
                (
                    "skald_ruler_remote_write_samples_total",
                    "counter",
                    "Samples accepted by the remote-write endpoint.",
                    m.samples_sent.load(Ordering::Relaxed),
                ),
                (
                    "skald_ruler_remote_write_failed_requests_total",
                    "counter",
                    "Remote-write requests that failed and will be retried.",
                    m.requests_failed.load(Ordering::Relaxed),
                ),
                (
                    "skald_ruler_remote_write_dropped_samples_total",
                    "counter",
                    "Samples dropped: queue full or refused by the endpoint.",
                    m.samples_dropped.load(Ordering::Relaxed),
                ),
                (
                    "skald_ruler_remote_write_queue_bytes",
                    "gauge",
                    "Bytes in the on-disk remote-write queue.",
                    m.queue_bytes.load(Ordering::Relaxed),
                ),
                (
                    "skald_ruler_remote_write_queue_files",
                    "gauge",
                    "Requests in the on-disk remote-write queue.",
                    m.queue_files.load(Ordering::Relaxed),
                ),
            ] {
                family(out, name, k, help, &[(url.clone(), v as f64)]);
            }
        }
    }
}

/// Checks a rule file offline (what `lokitool rules check` does): every
/// error, each naming its group and rule.
pub fn check_file(text: &str) -> Result<RuleFile, Vec<crate::RuleError>> {
    let file = RuleFile::parse(text).map_err(|e| vec![e])?;
    file.check()?;
    Ok(file)
}

async fn run_group(inner: Arc<Inner>, group: Arc<Group>) {
    let interval = ns(group.interval);
    let mut next = (now_ns() / interval + 1) * interval;
    loop {
        let wait = next - now_ns();
        if wait > 0 {
            tokio::time::sleep(Duration::from_nanos(wait as u64)).await;
        }
        let late = now_ns() - next;
        if late >= interval {
            let missed = late / interval;
            group
                .metrics
                .missed
                .fetch_add(missed as u64, Ordering::Relaxed);
            tracing::warn!(tenant = %group.key.tenant, namespace = %group.key.namespace, group = %group.key.name, missed, "rule group evaluations missed; skipping to the current one");
            next += missed * interval;
        }
        let ts = next;
        let (g, i) = (group.clone(), inner.clone());
        let done = tokio::task::spawn_blocking(move || {
            let out = g.evaluate(&i.ctx, ts);
            for r in &i.receivers {
                r.enqueue(&out.notifications);
            }
            if let Some(w) = &i.remote
                && !out.series.is_empty()
            {
                let req = WriteRequest {
                    timeseries: out.series,
                };
                if let Err(e) = w.enqueue(&req) {
                    tracing::error!(error = %e, "queueing remote-write samples failed");
                }
            }
        })
        .await;
        if let Err(e) = done {
            tracing::error!(error = %e, "rule group evaluation panicked");
        }
        next += interval;
    }
}

fn rfc3339_or_zero(ts: Option<i64>) -> String {
    match ts {
        Some(t) => crate::alert::rfc3339(t),
        None => "0001-01-01T00:00:00Z".to_string(),
    }
}

fn health(h: Option<Health>) -> String {
    match h.unwrap_or(Health::Unknown) {
        Health::Unknown => "unknown",
        Health::Ok => "ok",
        Health::Err => "err",
    }
    .to_string()
}

fn group_status(g: &Group) -> GroupStatus {
    let st = g.state.lock();
    let rules = g
        .compiled
        .rules
        .iter()
        .zip(&st.rules)
        .map(|(rule, rt)| {
            let labels: Labels = rule.spec.labels.clone();
            match rule.kind {
                RuleKind::Alerting => {
                    let alerts: Vec<AlertStatus> = rt
                        .alerts
                        .values()
                        .filter(|a| a.state != AlertState::Inactive)
                        .map(|a| AlertStatus {
                            labels: a.labels.clone(),
                            annotations: a.annotations.clone(),
                            state: a.state.as_str().to_string(),
                            active_at: crate::alert::rfc3339(a.active_at),
                            keep_firing_since: a.keep_firing_since.map(crate::alert::rfc3339),
                            value: go_float_e(a.value),
                        })
                        .collect();
                    let state = if alerts.iter().any(|a| a.state == "firing") {
                        "firing"
                    } else if alerts.is_empty() {
                        "inactive"
                    } else {
                        "pending"
                    };
                    RuleStatus::Alerting {
                        state: state.to_string(),
                        name: rule.name.clone(),
                        query: rule.spec.expr.clone(),
                        duration: rule.hold.as_secs_f64(),
                        keep_firing_for: rule.keep_firing_for.as_secs_f64(),
                        labels,
                        annotations: rule.spec.annotations.clone(),
                        alerts,
                        health: health(rt.health),
                        last_error: rt.last_error.clone().unwrap_or_default(),
                        evaluation_time: rt.eval_seconds,
                        last_evaluation: rfc3339_or_zero(rt.last_eval),
                    }
                }
                RuleKind::Recording => RuleStatus::Recording {
                    name: rule.name.clone(),
                    query: rule.spec.expr.clone(),
                    labels,
                    health: health(rt.health),
                    last_error: rt.last_error.clone().unwrap_or_default(),
                    evaluation_time: rt.eval_seconds,
                    last_evaluation: rfc3339_or_zero(rt.last_eval),
                },
            }
        })
        .collect();
    GroupStatus {
        name: g.key.name.clone(),
        file: g.key.namespace.clone(),
        rules,
        interval: g.interval.as_secs_f64(),
        limit: g.compiled.spec.limit,
        evaluation_time: st.last_duration,
        last_evaluation: rfc3339_or_zero(st.last_eval),
    }
}
