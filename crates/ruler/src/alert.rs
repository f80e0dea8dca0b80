//! Alerting rules' state machine, as Prometheus defines it.
//!
//! Each evaluation gives the series the rule's expression returned. A
//! series becomes an alert keyed by its labels (plus the rule's labels and
//! `alertname`): new alerts are `pending`; a pending alert whose
//! expression has held for the rule's `for` becomes `firing`; an alert
//! whose series is gone is `inactive` (resolved) at once, unless it was
//! firing and `keep_firing_for` still holds it. Pending alerts that vanish
//! are forgotten; resolved ones are kept for [`RESOLVED_RETENTION`] so
//! Alertmanager hears about the resolution more than once.
//!
//! [`needs_sending`] and [`to_notification`] are Prometheus' resend rules:
//! firing alerts go out again every `resend_delay`, a resolution right
//! away, and `endsAt` is four resend periods ahead while firing so
//! Alertmanager resolves the alert itself if the ruler goes away.
//!
//! [`restore`] is what Prometheus does with `ALERTS_FOR_STATE` after a
//! restart: a pending alert keeps the time it has spent pending (the
//! downtime is not counted against it), within the outage tolerance and
//! the grace period.
//!
//! Times are nanoseconds since the Unix epoch.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub type Labels = BTreeMap<String, String>;

/// How long a resolved alert is remembered (and resent).
pub const RESOLVED_RETENTION: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Inactive,
    Pending,
    Firing,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Inactive => "inactive",
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub labels: Labels,
    pub annotations: Labels,
    pub state: AlertState,
    pub value: f64,
    pub active_at: i64,
    #[serde(default)]
    pub fired_at: Option<i64>,
    #[serde(default)]
    pub resolved_at: Option<i64>,
    #[serde(default)]
    pub last_sent_at: Option<i64>,
    #[serde(default)]
    pub valid_until: Option<i64>,
    #[serde(default)]
    pub keep_firing_since: Option<i64>,
}

/// One alert candidate from an evaluation: labels (with the rule's and
/// `alertname`), expanded annotations, the value.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub labels: Labels,
    pub annotations: Labels,
    pub value: f64,
}

/// The rule's parameters the state machine needs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub hold: Duration,
    pub keep_firing_for: Duration,
}

fn ns(d: Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// Applies one evaluation at `ts` to the alerts of a rule. `limit` (0: no
/// limit) bounds active alerts: past it every alert is dropped and the
/// evaluation fails, as in Prometheus.
pub fn step(
    alerts: &mut BTreeMap<Labels, Alert>,
    candidates: Vec<Candidate>,
    ts: i64,
    timing: Timing,
    limit: u64,
) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for c in candidates {
        if !seen.insert(c.labels.clone()) {
            return Err(
                "vector contains metrics with the same labelset after applying alert labels"
                    .to_string(),
            );
        }
        match alerts.get_mut(&c.labels) {
            Some(a) if a.state != AlertState::Inactive => {
                a.value = c.value;
                a.annotations = c.annotations;
            }
            _ => {
                alerts.insert(
                    c.labels.clone(),
                    Alert {
                        labels: c.labels,
                        annotations: c.annotations,
                        state: AlertState::Pending,
                        value: c.value,
                        active_at: ts,
                        fired_at: None,
                        resolved_at: None,
                        last_sent_at: None,
                        valid_until: None,
                        keep_firing_since: None,
                    },
                );
            }
        }
    }
    let mut active = 0u64;
    alerts.retain(|labels, a| {
        if seen.contains(labels) {
            a.keep_firing_since = None;
        } else {
            let mut keep_firing = false;
            if a.state == AlertState::Firing && !timing.keep_firing_for.is_zero() {
                let since = *a.keep_firing_since.get_or_insert(ts);
                keep_firing = ts - since < ns(timing.keep_firing_for);
            }
            if !keep_firing {
                let expired = a
                    .resolved_at
                    .is_some_and(|r| ts - r > ns(RESOLVED_RETENTION));
                if a.state == AlertState::Pending || expired {
                    return false;
                }
                if a.state != AlertState::Inactive {
                    a.state = AlertState::Inactive;
                    a.resolved_at = Some(ts);
                }
                return true;
            }
        }
        active += 1;
        if a.state == AlertState::Pending && ts - a.active_at >= ns(timing.hold) {
            a.state = AlertState::Firing;
            a.fired_at = Some(ts);
        }
        true
    });
    if limit > 0 && active > limit {
        alerts.clear();
        return Err(format!("exceeded limit of {limit} with {active} alerts"));
    }
    Ok(())
}

/// Whether Alertmanager must hear about `a` at `ts` (Prometheus'
/// `needsSending`).
pub fn needs_sending(a: &Alert, ts: i64, resend_delay: Duration) -> bool {
    if a.state == AlertState::Pending {
        return false;
    }
    if let Some(resolved) = a.resolved_at
        && a.last_sent_at.is_none_or(|sent| resolved > sent)
    {
        return true;
    }
    match a.last_sent_at {
        None => true,
        Some(sent) => sent + ns(resend_delay) < ts,
    }
}

/// One alert as Alertmanager receives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub labels: Labels,
    pub annotations: Labels,
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// For the webhook notifier's `status`; not part of Alertmanager's
    /// schema.
    #[serde(skip)]
    pub resolved: bool,
}

pub fn rfc3339(ns: i64) -> String {
    skald_model::format_rfc3339_nanos(skald_model::Timestamp(ns))
}

/// Marks `a` sent at `ts` and gives what goes to Alertmanager: `startsAt`
/// is when it fired, `endsAt` its resolution or, while firing, four
/// resend periods (or evaluation intervals, the longer) ahead.
pub fn to_notification(
    a: &mut Alert,
    ts: i64,
    resend_delay: Duration,
    interval: Duration,
    generator_url: &str,
) -> Notification {
    a.last_sent_at = Some(ts);
    let delta = resend_delay.max(interval);
    let valid_until = ts + 4 * ns(delta);
    a.valid_until = Some(valid_until);
    let ends_at = a.resolved_at.unwrap_or(valid_until);
    Notification {
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        starts_at: rfc3339(a.fired_at.unwrap_or(a.active_at)),
        ends_at: rfc3339(ends_at),
        generator_url: generator_url.to_string(),
        resolved: a.resolved_at.is_some(),
    }
}

/// How restored alerts are treated (Prometheus' `for_outage_tolerance`
/// and `for_grace_period`).
#[derive(Debug, Clone, Copy)]
pub struct RestorePolicy {
    pub outage_tolerance: Duration,
    pub grace_period: Duration,
}

/// After the first evaluation following a restart: gives the active
/// alerts that were active before the restart their earlier `active_at`.
/// `down_at` is the last evaluation before the restart; `previous` the
/// alerts then. Rules whose `for` is shorter than the grace period are
/// not restored (they simply wait their `for` again), nor is anything
/// after an outage longer than the tolerance.
pub fn restore(
    alerts: &mut BTreeMap<Labels, Alert>,
    previous: &BTreeMap<Labels, Alert>,
    down_at: i64,
    ts: i64,
    hold: Duration,
    policy: RestorePolicy,
) {
    if hold < policy.grace_period || ts - down_at > ns(policy.outage_tolerance) {
        return;
    }
    for (labels, a) in alerts.iter_mut() {
        if a.state == AlertState::Inactive {
            continue;
        }
        let Some(before) = previous.get(labels) else {
            continue;
        };
        if before.state == AlertState::Inactive {
            continue;
        }
        let mut active_at = before.active_at;
        let spent = down_at - active_at;
        let remaining = ns(hold) - spent;
        if remaining <= 0 {
            // It had already fired: keep its time.
        } else if remaining < ns(policy.grace_period) {
            active_at = ts + ns(policy.grace_period) - ns(hold);
        } else {
            active_at += ts - down_at;
        }
        a.active_at = active_at;
        // Prometheus restores alerts as pending; the next evaluation fires
        // them if their `for` has passed.
        a.state = AlertState::Pending;
        a.fired_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    fn cand(app: &str, value: f64) -> Candidate {
        Candidate {
            labels: Labels::from([
                ("alertname".to_string(), "A".to_string()),
                ("app".to_string(), app.to_string()),
            ]),
            annotations: Labels::new(),
            value,
        }
    }

    fn timing(hold: u64, keep: u64) -> Timing {
        Timing {
            hold: Duration::from_secs(hold),
            keep_firing_for: Duration::from_secs(keep),
        }
    }

    fn only(alerts: &BTreeMap<Labels, Alert>) -> &Alert {
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        alerts.values().next().unwrap()
    }

    #[test]
    fn pending_then_firing_then_resolved_then_forgotten() {
        let mut alerts = BTreeMap::new();
        let t = timing(30, 0);
        step(&mut alerts, vec![cand("x", 2.0)], 100 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Pending);
        assert_eq!(only(&alerts).active_at, 100 * S);
        step(&mut alerts, vec![cand("x", 3.0)], 120 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Pending);
        assert_eq!(only(&alerts).value, 3.0);
        step(&mut alerts, vec![cand("x", 3.0)], 130 * S, t, 0).unwrap();
        let a = only(&alerts);
        assert_eq!((a.state, a.fired_at), (AlertState::Firing, Some(130 * S)));
        step(&mut alerts, vec![], 140 * S, t, 0).unwrap();
        let a = only(&alerts);
        assert_eq!(
            (a.state, a.resolved_at),
            (AlertState::Inactive, Some(140 * S))
        );
        // Kept (and resent) for 15 minutes, then forgotten.
        step(&mut alerts, vec![], 140 * S + 15 * 60 * S, t, 0).unwrap();
        assert_eq!(alerts.len(), 1);
        step(&mut alerts, vec![], 141 * S + 15 * 60 * S, t, 0).unwrap();
        assert!(alerts.is_empty());
    }

    #[test]
    fn a_pending_alert_that_vanishes_is_forgotten_and_starts_over() {
        let mut alerts = BTreeMap::new();
        let t = timing(30, 0);
        step(&mut alerts, vec![cand("x", 2.0)], 100 * S, t, 0).unwrap();
        step(&mut alerts, vec![], 110 * S, t, 0).unwrap();
        assert!(alerts.is_empty());
        step(&mut alerts, vec![cand("x", 2.0)], 120 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).active_at, 120 * S);
    }

    #[test]
    fn zero_for_fires_at_once_and_a_resolved_alert_can_fire_again() {
        let mut alerts = BTreeMap::new();
        let t = timing(0, 0);
        step(&mut alerts, vec![cand("x", 2.0)], 100 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Firing);
        step(&mut alerts, vec![], 110 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Inactive);
        step(&mut alerts, vec![cand("x", 2.0)], 120 * S, t, 0).unwrap();
        let a = only(&alerts);
        assert_eq!(
            (a.state, a.active_at, a.resolved_at),
            (AlertState::Firing, 120 * S, None)
        );
    }

    #[test]
    fn keep_firing_for_holds_a_firing_alert() {
        let mut alerts = BTreeMap::new();
        let t = timing(0, 20);
        step(&mut alerts, vec![cand("x", 2.0)], 100 * S, t, 0).unwrap();
        step(&mut alerts, vec![], 110 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Firing);
        assert_eq!(only(&alerts).keep_firing_since, Some(110 * S));
        step(&mut alerts, vec![], 125 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Firing);
        // Back before the end: the clock restarts.
        step(&mut alerts, vec![cand("x", 2.0)], 128 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).keep_firing_since, None);
        step(&mut alerts, vec![], 140 * S, t, 0).unwrap();
        step(&mut alerts, vec![], 160 * S, t, 0).unwrap();
        assert_eq!(only(&alerts).state, AlertState::Inactive);
        assert_eq!(only(&alerts).resolved_at, Some(160 * S));
    }

    #[test]
    fn limit_and_duplicate_labelsets_fail_the_evaluation() {
        let mut alerts = BTreeMap::new();
        let t = timing(0, 0);
        let err = step(&mut alerts, vec![cand("x", 1.0), cand("y", 1.0)], S, t, 1).unwrap_err();
        assert!(err.contains("exceeded limit of 1 with 2 alerts"), "{err}");
        assert!(alerts.is_empty());
        let err = step(&mut alerts, vec![cand("x", 1.0), cand("x", 2.0)], S, t, 0).unwrap_err();
        assert!(err.contains("same labelset"), "{err}");
    }

    #[test]
    fn resend_rules_and_ends_at() {
        let mut alerts = BTreeMap::new();
        let t = timing(0, 0);
        let resend = Duration::from_secs(60);
        let interval = Duration::from_secs(10);
        step(&mut alerts, vec![cand("x", 2.0)], 100 * S, t, 0).unwrap();
        let a = alerts.values_mut().next().unwrap();
        assert!(needs_sending(a, 100 * S, resend));
        let n = to_notification(a, 100 * S, resend, interval, "http://g");
        assert_eq!(n.starts_at, rfc3339(100 * S));
        assert_eq!(n.ends_at, rfc3339(340 * S));
        assert!(!n.resolved);
        assert!(!needs_sending(a, 160 * S, resend));
        assert!(needs_sending(a, 161 * S, resend));
        step(&mut alerts, vec![], 170 * S, t, 0).unwrap();
        let a = alerts.values_mut().next().unwrap();
        assert!(
            needs_sending(a, 170 * S, resend),
            "a resolution goes at once"
        );
        let n = to_notification(a, 170 * S, resend, interval, "http://g");
        assert_eq!(n.ends_at, rfc3339(170 * S));
        assert!(n.resolved);
        assert!(!needs_sending(a, 200 * S, resend));
        assert!(needs_sending(a, 231 * S, resend), "resent while retained");
        let mut pending = BTreeMap::new();
        step(
            &mut pending,
            vec![cand("x", 2.0)],
            100 * S,
            timing(30, 0),
            0,
        )
        .unwrap();
        assert!(!needs_sending(only(&pending), 100 * S, resend));
    }

    fn pending_since(active_at: i64) -> BTreeMap<Labels, Alert> {
        let mut m = BTreeMap::new();
        step(&mut m, vec![cand("x", 2.0)], active_at, timing(3600, 0), 0).unwrap();
        m
    }

    #[test]
    fn restore_keeps_the_time_spent_pending() {
        let policy = RestorePolicy {
            outage_tolerance: Duration::from_secs(3600),
            grace_period: Duration::from_secs(60),
        };
        let hold = Duration::from_secs(600);
        // Pending since 100 s, down at 300 s (200 s spent), back at 400 s.
        let before = pending_since(100 * S);
        let mut now = pending_since(400 * S);
        restore(&mut now, &before, 300 * S, 400 * S, hold, policy);
        assert_eq!(
            only(&now).active_at,
            200 * S,
            "shifted by the 100 s downtime"
        );

        // Less than the grace period left: it gets the grace period.
        let before = pending_since(100 * S);
        let mut now = pending_since(700 * S);
        restore(&mut now, &before, 680 * S, 700 * S, hold, policy);
        assert_eq!(only(&now).active_at, (700 + 60 - 600) * S);

        // Already past its `for`: it keeps its time and fires next.
        let before = pending_since(100 * S);
        let mut now = pending_since(800 * S);
        restore(&mut now, &before, 750 * S, 800 * S, hold, policy);
        assert_eq!(only(&now).active_at, 100 * S);
        step(
            &mut now,
            vec![cand("x", 2.0)],
            810 * S,
            Timing {
                hold,
                ..Timing::default()
            },
            0,
        )
        .unwrap();
        assert_eq!(only(&now).state, AlertState::Firing);

        // Outage longer than the tolerance, or `for` under the grace
        // period: starts over.
        let mut now = pending_since(5000 * S);
        restore(&mut now, &before, 300 * S, 5000 * S, hold, policy);
        assert_eq!(only(&now).active_at, 5000 * S);
        let mut now = pending_since(400 * S);
        restore(
            &mut now,
            &before,
            300 * S,
            400 * S,
            Duration::from_secs(30),
            policy,
        );
        assert_eq!(only(&now).active_at, 400 * S);
    }
}
