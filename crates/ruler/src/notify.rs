//! Sending alerts: to Alertmanager's v2 API (`POST /api/v2/alerts`, a
//! JSON array of alerts) and to plain webhooks (one JSON document in the
//! shape of Alertmanager's own webhook notifications, so receivers written
//! for Alertmanager accept it).
//!
//! Every receiver has its own bounded queue and sender task, so a slow or
//! unreachable one delays nobody else. A queued alert is replaced by a
//! newer notification about the same alert (same labels), so a retry
//! never sends a state older than one already known. Failed sends are
//! logged, counted and retried with a capped exponential backoff; when a
//! queue is full the oldest alert is dropped and counted (Prometheus does
//! the same with its notification queue).

use crate::alert::Notification;
use crate::client::{HttpTarget, error_chain};
use parking_lot::Mutex;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Alerts per request.
const MAX_BATCH: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiverKind {
    Alertmanager,
    Webhook,
}

#[derive(Default)]
pub struct ReceiverMetrics {
    pub sent: AtomicU64,
    pub errors: AtomicU64,
    pub dropped: AtomicU64,
}

pub struct Receiver {
    pub kind: ReceiverKind,
    target: HttpTarget,
    /// The URL requests go to.
    pub url: String,
    capacity: usize,
    queue: Mutex<VecDeque<Notification>>,
    wake: tokio::sync::Notify,
    pub metrics: ReceiverMetrics,
    external_url: String,
}

impl Receiver {
    /// `url` is Alertmanager's base URL (`/api/v2/alerts` is added unless
    /// present) or the webhook's full URL.
    pub fn new(
        kind: ReceiverKind,
        target: HttpTarget,
        capacity: usize,
        external_url: &str,
    ) -> Arc<Receiver> {
        let url = match kind {
            ReceiverKind::Alertmanager if !target.url.ends_with("/api/v2/alerts") => {
                format!("{}/api/v2/alerts", target.url.trim_end_matches('/'))
            }
            _ => target.url.clone(),
        };
        Arc::new(Receiver {
            kind,
            target,
            url,
            capacity: capacity.max(1),
            queue: Mutex::new(VecDeque::new()),
            wake: tokio::sync::Notify::new(),
            metrics: ReceiverMetrics::default(),
            external_url: external_url.to_string(),
        })
    }

    pub fn queue_len(&self) -> usize {
        self.queue.lock().len()
    }

    /// Queues alerts; a queued alert with the same labels is replaced in
    /// place.
    pub fn enqueue(&self, alerts: &[Notification]) {
        if alerts.is_empty() {
            return;
        }
        let mut q = self.queue.lock();
        for a in alerts {
            if let Some(slot) = q.iter_mut().find(|q| q.labels == a.labels) {
                *slot = a.clone();
                continue;
            }
            if q.len() >= self.capacity {
                q.pop_front();
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
            }
            q.push_back(a.clone());
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Puts a failed batch back in front, except alerts a newer
    /// notification has replaced meanwhile.
    fn requeue(&self, batch: Vec<Notification>) {
        let mut q = self.queue.lock();
        for a in batch.into_iter().rev() {
            if q.iter().any(|q| q.labels == a.labels) {
                continue;
            }
            if q.len() >= self.capacity {
                self.metrics.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            q.push_front(a);
        }
    }

    fn body(&self, batch: &[Notification]) -> serde_json::Value {
        match self.kind {
            ReceiverKind::Alertmanager => json!(batch),
            ReceiverKind::Webhook => {
                let firing = batch.iter().any(|a| !a.resolved);
                let alerts: Vec<_> = batch
                    .iter()
                    .map(|a| {
                        json!({
                            "status": if a.resolved { "resolved" } else { "firing" },
                            "labels": a.labels,
                            "annotations": a.annotations,
                            "startsAt": a.starts_at,
                            "endsAt": a.ends_at,
                            "generatorURL": a.generator_url,
                            "fingerprint": format!("{:016x}", fingerprint(&a.labels)),
                        })
                    })
                    .collect();
                json!({
                    "version": "4",
                    "receiver": "skald",
                    "status": if firing { "firing" } else { "resolved" },
                    "alerts": alerts,
                    "groupLabels": {},
                    "commonLabels": common(batch.iter().map(|a| &a.labels)),
                    "commonAnnotations": common(batch.iter().map(|a| &a.annotations)),
                    "externalURL": self.external_url,
                })
            }
        }
    }

    /// Sends forever (spawned once per receiver).
    pub async fn run(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(500);
        loop {
            let batch: Vec<Notification> = {
                let mut q = self.queue.lock();
                let n = q.len().min(MAX_BATCH);
                q.drain(..n).collect()
            };
            if batch.is_empty() {
                self.wake.notified().await;
                continue;
            }
            let body = self.body(&batch);
            let result = self
                .target
                .request(reqwest::Method::POST, &self.url)
                .header(
                    "User-Agent",
                    concat!("skald-ruler/", env!("CARGO_PKG_VERSION")),
                )
                .json(&body)
                .send()
                .await;
            let error = match result {
                Ok(r) if r.status().is_success() => None,
                Ok(r) => {
                    let status = r.status();
                    let text = r.text().await.unwrap_or_default();
                    Some(format!("status {status}: {}", text.trim()))
                }
                Err(e) => Some(error_chain(&e)),
            };
            match error {
                None => {
                    self.metrics
                        .sent
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                }
                Some(e) => {
                    self.metrics.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(url = %self.url, alerts = batch.len(), error = %e, retry_in_ms = backoff.as_millis() as u64, "sending alerts failed; queued for retry");
                    self.requeue(batch);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

fn fingerprint(labels: &crate::alert::Labels) -> u64 {
    let mut text = String::new();
    for (k, v) in labels {
        text.push_str(k);
        text.push('\u{ff}');
        text.push_str(v);
        text.push('\u{ff}');
    }
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

fn common<'a>(mut maps: impl Iterator<Item = &'a crate::alert::Labels>) -> crate::alert::Labels {
    let Some(first) = maps.next() else {
        return Default::default();
    };
    let mut out = first.clone();
    for m in maps {
        out.retain(|k, v| m.get(k) == Some(v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Labels;

    fn n(app: &str, ends: &str) -> Notification {
        Notification {
            labels: Labels::from([("app".to_string(), app.to_string())]),
            annotations: Labels::new(),
            starts_at: "s".into(),
            ends_at: ends.into(),
            generator_url: String::new(),
            resolved: false,
        }
    }

    #[test]
    fn queue_replaces_same_alert_and_drops_oldest_when_full() {
        let r = Receiver::new(
            ReceiverKind::Alertmanager,
            HttpTarget::plain("http://127.0.0.1:9093/"),
            2,
            "",
        );
        assert_eq!(r.url, "http://127.0.0.1:9093/api/v2/alerts");
        r.enqueue(&[n("a", "1"), n("b", "1")]);
        r.enqueue(&[n("a", "2")]);
        assert_eq!(r.queue_len(), 2);
        assert_eq!(r.queue.lock()[0].ends_at, "2");
        r.enqueue(&[n("c", "1")]);
        assert_eq!(r.metrics.dropped.load(Ordering::Relaxed), 1);
        let labels: Vec<_> = r
            .queue
            .lock()
            .iter()
            .map(|a| a.labels["app"].clone())
            .collect();
        assert_eq!(labels, ["b", "c"]);
        // A failed batch goes back unless a newer copy was queued.
        let batch: Vec<_> = r.queue.lock().drain(..).collect();
        r.enqueue(&[n("b", "3")]);
        r.requeue(batch);
        let q: Vec<_> = r
            .queue
            .lock()
            .iter()
            .map(|a| (a.labels["app"].clone(), a.ends_at.clone()))
            .collect();
        assert_eq!(
            q,
            [
                ("c".to_string(), "1".to_string()),
                ("b".to_string(), "3".to_string())
            ]
        );
    }

    #[test]
    fn webhook_body_has_alertmanager_webhook_shape() {
        let r = Receiver::new(
            ReceiverKind::Webhook,
            HttpTarget::plain("http://h/hook"),
            10,
            "http://skald",
        );
        let mut resolved = n("a", "e");
        resolved.resolved = true;
        let body = r.body(&[resolved, n("b", "e")]);
        assert_eq!(body["status"], "firing");
        assert_eq!(body["alerts"][0]["status"], "resolved");
        assert_eq!(body["alerts"][1]["labels"]["app"], "b");
        assert_eq!(body["commonLabels"], json!({}));
        assert_eq!(r.url, "http://h/hook");
    }
}
