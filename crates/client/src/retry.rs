//! Which push failures are retried, and how long to wait before the next
//! attempt.
//!
//! Retried: network errors (no answer), `429 Too Many Requests` and `5xx`.
//! Everything else in `4xx` means the batch itself is wrong (bad labels,
//! too old, too large, unauthorised) and retrying would only repeat the
//! refusal, so it is dropped and reported.
//!
//! Delays are exponential with "full jitter": attempt `n` waits a uniform
//! random time in `[0, min(max, min_backoff * 2^n)]`, which spreads many
//! clients recovering from the same outage instead of synchronising them.
//! A server's `Retry-After` (seconds or an HTTP date) replaces the jittered
//! delay, capped by [`crate::RetryConfig::max_retry_after`].

use crate::config::RetryConfig;
use std::time::{Duration, SystemTime};

/// What to do with a push after one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Delivered.
    Done,
    /// Try again; `after` is the server's `Retry-After`, if it gave one.
    Retry { after: Option<Duration> },
    /// Give up on this batch.
    Fail,
}

/// Whether an HTTP status is worth retrying: 429 and every 5xx.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status)
}

/// Classifies an HTTP answer to a push. `retry_after` is the raw header.
pub fn classify_status(status: u16, retry_after: Option<&str>, now: SystemTime) -> Disposition {
    if (200..=299).contains(&status) {
        return Disposition::Done;
    }
    if !is_retryable_status(status) {
        return Disposition::Fail;
    }
    Disposition::Retry {
        after: retry_after.and_then(|value| parse_retry_after(value, now)),
    }
}

/// Parses `Retry-After`: delay seconds (`120`) or an HTTP date (`Wed, 21
/// Oct 2015 07:28:00 GMT`, counted from `now`; a date in the past is zero).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// Backoff state of one batch.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    max_retry_after: Duration,
    attempt: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(config: &RetryConfig) -> Backoff {
        // Seeded per batch from the std hasher's random keys, so clients
        // started together still draw different delays.
        use std::hash::{BuildHasher, RandomState};
        let seed = RandomState::new().hash_one(std::time::Instant::now()) | 1;
        Backoff {
            min: config.min_backoff,
            max: config.max_backoff,
            max_retry_after: config.max_retry_after,
            attempt: 0,
            rng: seed,
        }
    }

    /// Failed attempts so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The ceiling of the delay after failed attempt number `attempt`
    /// (0-based): `min(max, min_backoff * 2^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX);
        self.min.saturating_mul(factor).min(self.max)
    }

    /// Records a failed attempt and returns how long to wait: the server's
    /// `Retry-After` if given (capped), else a full-jitter draw.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        if let Some(after) = retry_after {
            return after.min(self.max_retry_after);
        }
        let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_random() % (nanos + 1))
    }

    /// xorshift64*: statistically fine for jitter, no dependency.
    fn next_random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified() {
        let now = SystemTime::now();
        assert_eq!(classify_status(204, None, now), Disposition::Done);
        assert_eq!(classify_status(200, None, now), Disposition::Done);
        for status in [400, 401, 403, 404, 413, 422] {
            assert_eq!(
                classify_status(status, None, now),
                Disposition::Fail,
                "{status}"
            );
        }
        assert_eq!(
            classify_status(429, Some("3"), now),
            Disposition::Retry {
                after: Some(Duration::from_secs(3))
            }
        );
        for status in [500, 502, 503, 504, 599] {
            assert_eq!(
                classify_status(status, None, now),
                Disposition::Retry { after: None }
            );
        }
        assert!(!is_retryable_status(600));
        assert!(!is_retryable_status(308));
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = httpdate::parse_http_date("Wed, 21 Oct 2015 07:28:00 GMT").unwrap();
        assert_eq!(
            parse_retry_after(" 120 ", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }

    #[test]
    fn delays_stay_under_the_growing_capped_ceiling() {
        let config = RetryConfig {
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            max_retries: None,
            max_retry_after: Duration::from_secs(10),
        };
        let mut backoff = Backoff::new(&config);
        assert_eq!(backoff.ceiling(0), Duration::from_millis(100));
        assert_eq!(backoff.ceiling(3), Duration::from_millis(800));
        assert_eq!(backoff.ceiling(40), Duration::from_secs(2));
        for attempt in 0..100 {
            let ceiling = backoff.ceiling(attempt);
            assert!(backoff.next_delay(None) <= ceiling);
        }
        assert_eq!(backoff.attempts(), 100);
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
        assert_eq!(
            backoff.next_delay(Some(Duration::from_secs(3600))),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn jitter_is_spread() {
        let mut backoff = Backoff::new(&RetryConfig {
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(1),
            ..RetryConfig::default()
        });
        let delays: std::collections::HashSet<Duration> =
            (0..50).map(|_| backoff.next_delay(None)).collect();
        assert!(
            delays.len() > 40,
            "full jitter should rarely repeat a delay"
        );
    }
}
