//! Re-reading the configuration file on a running server: on SIGHUP and
//! every [`EVERY`]. What may change without a restart is the per-tenant
//! limits (`[limits]`, `[tenants.*]`) and the scrubbing rules (`[scrub]`);
//! the rest of the file is read at start only.
//!
//! A file that does not parse or check keeps the values in force and logs
//! why (at every attempt, so a broken file is noticed); a change is logged
//! key by key.

use crate::config::{FileConfig, Reloadable};
use skald_server::service::audit::Audit;
use skald_store::{Store, TenantLimits};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How often the file is re-read without a signal.
pub const EVERY: Duration = Duration::from_secs(10);

/// Starts the reload task on the current runtime. The SIGHUP handler is
/// installed before this returns, so a signal sent after it cannot kill
/// the process.
pub fn spawn(
    path: PathBuf,
    store: Arc<Store>,
    current: Reloadable,
    audit: Arc<Audit>,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        let mut current = current;
        let mut tick = tokio::time::interval(EVERY);
        tick.tick().await;
        loop {
            let why = tokio::select! {
                _ = hup.recv() => "SIGHUP",
                _ = tick.tick() => "interval",
            };
            let (path2, store2, old, audit2) =
                (path.clone(), store.clone(), current.clone(), audit.clone());
            let next =
                tokio::task::spawn_blocking(move || reload(&path2, &store2, &old, why, &audit2))
                    .await;
            if let Ok(Some(next)) = next {
                current = next;
            }
        }
    });
    Ok(())
}

/// Re-reads the file and applies what changed; returns the new values when
/// anything changed.
fn reload(
    path: &std::path::Path,
    store: &Store,
    old: &Reloadable,
    why: &str,
    audit: &Audit,
) -> Option<Reloadable> {
    let loaded = FileConfig::load(path).and_then(|cfg| cfg.reloadable());
    let new = match loaded {
        Ok(new) => new,
        Err(e) => {
            tracing::warn!(file = %path.display(), trigger = why, error = %format!("{e:#}"), "configuration not reloaded; the limits and scrub rules in force stay");
            return None;
        }
    };
    if &new == old {
        if why == "SIGHUP" {
            tracing::info!(file = %path.display(), "configuration re-read: no change to limits or scrub rules");
        }
        return None;
    }
    if new.limits != old.limits {
        for change in limit_changes(&old.limits, &new.limits) {
            tracing::info!(file = %path.display(), trigger = why, change = %change, "limit changed");
            let params = serde_json::json!({ "file": path.display().to_string(), "trigger": why });
            skald_server::service::audit::system(audit, "config", "limits.change", change, params);
        }
        store.set_limits(new.limits.clone());
    }
    if new.scrub != old.scrub {
        match crate::config::build_scrubber(&new.scrub) {
            Ok(s) => {
                tracing::info!(file = %path.display(), trigger = why, rules = s.rules().len(), "scrub rules changed");
                store.set_scrubber(s);
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "scrub rules not reloaded");
                return None;
            }
        }
    }
    Some(new)
}

/// One line per changed value: `tenant a: ingestion_rate_mb 4 -> 8`.
pub fn limit_changes(old: &TenantLimits, new: &TenantLimits) -> Vec<String> {
    let fields = |l: &skald_model::Limits| match serde_json::to_value(l) {
        Ok(serde_json::Value::Object(m)) => m,
        _ => Default::default(),
    };
    let mut who: Vec<Option<&skald_model::TenantId>> = vec![None];
    let mut tenants: Vec<&skald_model::TenantId> =
        old.tenants.keys().chain(new.tenants.keys()).collect();
    tenants.sort();
    tenants.dedup();
    who.extend(tenants.into_iter().map(Some));
    let mut out = Vec::new();
    for t in who {
        let (a, b) = match t {
            None => (&old.defaults, &new.defaults),
            Some(t) => (old.get(t), new.get(t)),
        };
        if a == b {
            continue;
        }
        let (fa, fb) = (fields(a), fields(b));
        let scope = t.map_or("defaults".to_string(), |t| format!("tenant {t}"));
        for (k, vb) in &fb {
            let va = fa.get(k).cloned().unwrap_or(serde_json::Value::Null);
            if &va != vb {
                out.push(format!("{scope}: {k} {va} -> {vb}"));
            }
        }
    }
    out
}
