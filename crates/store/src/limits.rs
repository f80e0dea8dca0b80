//! Per-tenant limits: the lookup (defaults plus per-tenant overrides,
//! swapped whole on a reload) and the ingest limits that need state — the
//! tenant's and each stream's token bucket, and the count of active
//! streams.
//!
//! The stateless checks (sizes, label counts, timestamps) are
//! `commit::validate`; this module answers "may this tenant push this many
//! bytes now, to these streams". Refusals here are rate limits: the server
//! answers them with 429 / RESOURCE_EXHAUSTED, in Loki's words.
//!
//! Buckets follow Go's `rate.Limiter` as Loki uses it: `rate` tokens (bytes)
//! a second up to `burst`; a push takes its size in tokens or is refused
//! whole and takes none; a push bigger than the burst is always refused.
//! A stream is active while it was pushed to within the last
//! [`ACTIVE_STREAM_WINDOW`] (Loki's `chunk_idle_period`); the count starts
//! from zero at process start.
//!
//! Not here: where the values come from (the CLI's config file, re-read on
//! SIGHUP), and query-side enforcement (the server reads
//! [`crate::Store::limits`]).

use crate::{PushOutcome, Rejection, StreamBatch};
use parking_lot::{Mutex, RwLock};
use skald_model::{
    BYTES_IN_MB, Entry, Limits, StreamId, TenantId, format_byte_size, format_duration,
};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a stream stays active after its last push.
pub const ACTIVE_STREAM_WINDOW: Duration = Duration::from_secs(30 * 60);

/// How often a tenant's inactive streams are forgotten.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Limits of every tenant: the defaults (`[limits]`) and the tenants that
/// override them (`[tenants.<id>]`, complete structs: the file's loader
/// merged each over the defaults).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TenantLimits {
    pub defaults: Arc<Limits>,
    pub tenants: HashMap<TenantId, Arc<Limits>>,
}

impl TenantLimits {
    pub fn new(defaults: Limits) -> Self {
        TenantLimits {
            defaults: Arc::new(defaults),
            tenants: HashMap::new(),
        }
    }

    /// The same limits for every tenant.
    pub fn unlimited() -> Self {
        Self::new(Limits::unlimited())
    }

    pub fn with_tenant(mut self, tenant: TenantId, limits: Limits) -> Self {
        self.tenants.insert(tenant, Arc::new(limits));
        self
    }

    pub fn get(&self, tenant: &TenantId) -> &Arc<Limits> {
        self.tenants.get(tenant).unwrap_or(&self.defaults)
    }

    /// Mutable defaults, for tests and tools adjusting one value.
    pub fn defaults_mut(&mut self) -> &mut Limits {
        Arc::make_mut(&mut self.defaults)
    }
}

/// A token bucket of bytes.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn full(burst: f64, now: Instant) -> Self {
        Bucket {
            tokens: burst,
            updated: now,
        }
    }

    /// Takes `n` tokens if there are that many; refills first.
    fn take(&mut self, n: f64, rate: f64, burst: f64, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.updated = now;
        if n > self.tokens {
            return false;
        }
        self.tokens -= n;
        true
    }

    fn level(&self, rate: f64, burst: f64, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        (self.tokens + elapsed * rate).min(burst)
    }
}

struct StreamState {
    last_push: Instant,
    bucket: Option<Bucket>,
}

struct TenantState {
    bucket: Option<Bucket>,
    streams: HashMap<StreamId, StreamState>,
    pruned: Instant,
    /// Bytes accepted over the last whole second, for quota reports.
    rate_window: (Instant, u64, u64),
}

impl TenantState {
    fn new(now: Instant) -> Self {
        TenantState {
            bucket: None,
            streams: HashMap::new(),
            pruned: now,
            rate_window: (now, 0, 0),
        }
    }

    fn prune(&mut self, now: Instant) {
        if now.saturating_duration_since(self.pruned) < PRUNE_EVERY {
            return;
        }
        self.pruned = now;
        self.streams
            .retain(|_, s| now.saturating_duration_since(s.last_push) < ACTIVE_STREAM_WINDOW);
    }

    fn active(&self, now: Instant) -> usize {
        self.streams
            .values()
            .filter(|s| now.saturating_duration_since(s.last_push) < ACTIVE_STREAM_WINDOW)
            .count()
    }
}

/// What a tenant uses now of its rate and stream limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitUsage {
    pub active_streams: u64,
    /// Bytes per second accepted over the last whole second.
    pub ingestion_bytes_per_second: u64,
    /// Tokens (bytes) in the tenant's bucket now.
    pub ingestion_burst_available: u64,
}

/// The live limits and the ingest state they need.
#[derive(Default)]
pub(crate) struct Limiter {
    current: RwLock<Arc<TenantLimits>>,
    tenants: Mutex<HashMap<TenantId, Arc<Mutex<TenantState>>>>,
}

impl Limiter {
    pub fn new(limits: TenantLimits) -> Self {
        Limiter {
            current: RwLock::new(Arc::new(limits)),
            tenants: Default::default(),
        }
    }

    pub fn current(&self) -> Arc<TenantLimits> {
        self.current.read().clone()
    }

    pub fn limits(&self, tenant: &TenantId) -> Arc<Limits> {
        self.current.read().get(tenant).clone()
    }

    pub fn replace(&self, limits: TenantLimits) {
        *self.current.write() = Arc::new(limits);
    }

    fn state(&self, tenant: &TenantId) -> Arc<Mutex<TenantState>> {
        let mut map = self.tenants.lock();
        if let Some(s) = map.get(tenant) {
            return s.clone();
        }
        let s = Arc::new(Mutex::new(TenantState::new(Instant::now())));
        map.insert(tenant.clone(), s.clone());
        s
    }

    pub fn usage(&self, tenant: &TenantId) -> LimitUsage {
        let limits = self.limits(tenant);
        let state = self.state(tenant);
        let st = state.lock();
        let now = Instant::now();
        let (rate, burst) = tenant_rate(&limits);
        let (start, last, current) = st.rate_window;
        let per_second = if now.saturating_duration_since(start) < Duration::from_secs(2) {
            last.max(current)
        } else {
            0
        };
        LimitUsage {
            active_streams: st.active(now) as u64,
            ingestion_bytes_per_second: per_second,
            ingestion_burst_available: match &st.bucket {
                Some(b) if rate > 0.0 => b.level(rate, burst, now) as u64,
                _ => burst as u64,
            },
        }
    }

    /// Applies the tenant's rate, per-stream rate and active-stream limits
    /// to a validated push; returns what may be stored. Refusals go to
    /// `outcome.rejected` and are counted in `outcome.rate_limited`.
    pub fn admit(
        &self,
        tenant: &TenantId,
        limits: &Limits,
        streams: Vec<StreamBatch>,
        outcome: &mut PushOutcome,
    ) -> Vec<StreamBatch> {
        let now = Instant::now();
        let state = self.state(tenant);
        let mut st = state.lock();
        st.prune(now);

        let size = |s: &StreamBatch| s.entries.iter().map(Entry::size).sum::<usize>() as u64;
        let total: u64 = streams.iter().map(size).sum();
        let lines: u64 = streams.iter().map(|s| s.entries.len() as u64).sum();
        let (rate, burst) = tenant_rate(limits);
        if rate > 0.0 && total > 0 {
            let bucket = st.bucket.get_or_insert_with(|| Bucket::full(burst, now));
            if !bucket.take(total as f64, rate, burst, now) {
                let reason = format!(
                    "ingestion rate limit exceeded for user {tenant} (limit: {} bytes/sec) while attempting to ingest '{lines}' lines totaling '{total}' bytes, reduce log volume or contact your Loki administrator to see if the limit can be increased (ingestion_rate_mb = {}, ingestion_burst_size_mb = {})",
                    rate as u64, limits.ingestion_rate_mb, limits.ingestion_burst_size_mb
                );
                for s in &streams {
                    refuse(outcome, s, reason.clone());
                }
                return Vec::new();
            }
        }

        let max_streams = limits.max_active_streams();
        let mut active = if max_streams > 0 { st.active(now) } else { 0 };
        let stream_rate = limits.per_stream_rate_limit as f64;
        let stream_burst = limits
            .per_stream_rate_limit_burst
            .max(limits.per_stream_rate_limit) as f64;
        let mut out = Vec::with_capacity(streams.len());
        let mut accepted_bytes = 0u64;
        for s in streams {
            if s.entries.is_empty() {
                continue;
            }
            let id = s.labels.stream_id();
            let is_active = st
                .streams
                .get(&id)
                .is_some_and(|x| now.saturating_duration_since(x.last_push) < ACTIVE_STREAM_WINDOW);
            if !is_active && max_streams > 0 && active >= max_streams {
                let reason = format!(
                    "maximum active stream limit exceeded when trying to create stream {}, reduce the number of active streams (reduce labels or reduce label values), or contact your Loki administrator to see if the limit can be increased, user: '{tenant}' (max_streams_per_user: {max_streams} active streams)",
                    s.labels
                );
                refuse(outcome, &s, reason);
                continue;
            }
            let bytes = size(&s);
            let stream = st.streams.entry(id).or_insert(StreamState {
                last_push: now,
                bucket: None,
            });
            if stream_rate > 0.0 {
                let bucket = stream
                    .bucket
                    .get_or_insert_with(|| Bucket::full(stream_burst, now));
                if !bucket.take(bytes as f64, stream_rate, stream_burst, now) {
                    let reason = format!(
                        "per stream rate limit exceeded (limit: {}/sec) while attempting to ingest for stream '{}' totaling {}B, consider splitting a stream via additional labels or contact your Loki administrator to see if the limit can be increased (per_stream_rate_limit of user '{tenant}', burst {})",
                        format_byte_size(limits.per_stream_rate_limit),
                        s.labels,
                        bytes,
                        format_byte_size(stream_burst as u64),
                    );
                    if !is_active {
                        // A stream refused at its first push is not active.
                        st.streams.remove(&id);
                    }
                    refuse(outcome, &s, reason);
                    continue;
                }
            }
            stream.last_push = now;
            if !is_active {
                active += 1;
            }
            accepted_bytes += bytes;
            out.push(s);
        }
        let window = &mut st.rate_window;
        if now.saturating_duration_since(window.0) >= Duration::from_secs(1) {
            *window = (now, window.2, 0);
        }
        window.2 += accepted_bytes;
        out
    }
}

/// The tenant bucket's (rate, burst) in bytes; rate 0: no limit.
fn tenant_rate(limits: &Limits) -> (f64, f64) {
    let rate = limits.ingestion_rate_mb * BYTES_IN_MB;
    let burst = (limits.ingestion_burst_size_mb * BYTES_IN_MB).max(rate);
    (rate, burst)
}

fn refuse(outcome: &mut PushOutcome, s: &StreamBatch, reason: String) {
    let entries = s.entries.len() as u64;
    outcome.rate_limited += entries;
    if outcome.rate_limit_reason.is_none() {
        outcome.rate_limit_reason = Some(reason.clone());
    }
    outcome.rejected.push(Rejection {
        stream: s.labels.to_string(),
        reason,
        entries,
    });
}

/// `s` cut to at most `max` bytes (on a character boundary), marked when
/// cut: messages quote what a client sent, but not without bound.
pub(crate) fn shorten(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

/// A duration for messages, as limits are written.
pub(crate) fn show(d: Duration) -> String {
    format_duration(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skald_model::{LabelSet, Timestamp};

    fn batch(labels: &str, lines: usize, bytes: usize) -> StreamBatch {
        StreamBatch {
            labels: LabelSet::parse(labels).unwrap(),
            entries: (0..lines)
                .map(|i| Entry::new(Timestamp(i as i64), "x".repeat(bytes)))
                .collect(),
        }
    }

    #[test]
    fn bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::full(100.0, t0);
        assert!(b.take(60.0, 10.0, 100.0, t0));
        assert!(!b.take(60.0, 10.0, 100.0, t0), "40 left");
        assert!(b.take(60.0, 10.0, 100.0, t0 + Duration::from_secs(2)));
        // Never above the burst, and a push bigger than it never passes.
        let later = t0 + Duration::from_secs(3600);
        assert!(!b.take(101.0, 10.0, 100.0, later));
        assert!(b.take(100.0, 10.0, 100.0, later));
    }

    #[test]
    fn tenant_rate_refuses_the_whole_push_and_names_tenant_and_limit() {
        let limiter = Limiter::default();
        let tenant = TenantId::new("noisy").unwrap();
        let limits = Limits {
            ingestion_rate_mb: 0.001,
            ingestion_burst_size_mb: 0.001,
            ..Limits::default()
        };
        let mut outcome = PushOutcome::default();
        let ok = limiter.admit(
            &tenant,
            &limits,
            vec![batch(r#"{a="1"}"#, 2, 100)],
            &mut outcome,
        );
        assert_eq!(ok.len(), 1);
        assert!(outcome.rejected.is_empty());
        let two = vec![batch(r#"{a="1"}"#, 5, 100), batch(r#"{a="2"}"#, 5, 100)];
        let ok = limiter.admit(&tenant, &limits, two, &mut outcome);
        assert!(ok.is_empty());
        assert_eq!(outcome.rate_limited, 10);
        let reason = &outcome.rejected[0].reason;
        assert!(
            reason.starts_with(
                "ingestion rate limit exceeded for user noisy (limit: 1048 bytes/sec)"
            ),
            "{reason}"
        );
        assert!(reason.contains("ingestion_rate_mb"), "{reason}");
    }

    #[test]
    fn stream_limit_counts_active_streams_and_lets_known_ones_through() {
        let limiter = Limiter::default();
        let tenant = TenantId::new("t").unwrap();
        let limits = Limits {
            max_streams_per_user: 2,
            ..Limits::default()
        };
        let mut outcome = PushOutcome::default();
        let three = vec![
            batch(r#"{a="1"}"#, 1, 10),
            batch(r#"{a="2"}"#, 1, 10),
            batch(r#"{a="3"}"#, 1, 10),
        ];
        let ok = limiter.admit(&tenant, &limits, three, &mut outcome);
        assert_eq!(ok.len(), 2);
        assert_eq!(outcome.rate_limited, 1);
        assert!(outcome.rejected[0].reason.starts_with(
            "maximum active stream limit exceeded when trying to create stream {a=\"3\"}"
        ));
        let mut outcome = PushOutcome::default();
        let ok = limiter.admit(
            &tenant,
            &limits,
            vec![batch(r#"{a="1"}"#, 1, 10)],
            &mut outcome,
        );
        assert_eq!(ok.len(), 1);
        assert_eq!(limiter.usage(&tenant).active_streams, 2);
    }

    #[test]
    fn per_stream_rate_refuses_only_that_stream() {
        let limiter = Limiter::default();
        let tenant = TenantId::new("t").unwrap();
        let limits = Limits {
            per_stream_rate_limit: 1000,
            per_stream_rate_limit_burst: 1000,
            ..Limits::default()
        };
        let mut outcome = PushOutcome::default();
        let two = vec![
            batch(r#"{a="big"}"#, 3, 500),
            batch(r#"{a="small"}"#, 1, 10),
        ];
        let ok = limiter.admit(&tenant, &limits, two, &mut outcome);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].labels.get("a"), Some("small"));
        assert!(
            outcome.rejected[0]
                .reason
                .starts_with("per stream rate limit exceeded (limit: 1KB/sec)")
        );
        // The refused stream did not become active.
        assert_eq!(limiter.usage(&tenant).active_streams, 1);
    }
}
