//! The client's configuration: one typed tree with documented defaults.
//!
//! `Config::new(url)` gives a working configuration; change fields with
//! struct update syntax or by assignment, then hand it to
//! [`crate::Client::new`], which validates it once.

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Called from the client's background threads with every asynchronous
/// error. Keep it quick: it runs on the delivery path.
pub type ErrorCallback = Arc<dyn Fn(&Error) + Send + Sync>;

/// Where the server is and who we are to it; shared by push and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Base URL, e.g. `http://127.0.0.1:3100` (no path; `/loki/api/v1/...`
    /// is appended).
    pub url: String,
    /// Sent as `X-Scope-OrgID` when set. Default: none.
    pub tenant: Option<String>,
    /// Default: none.
    pub auth: Option<Auth>,
    /// Extra headers for every request. Default: none.
    pub headers: Vec<(String, String)>,
    /// Timeout of one HTTP request. Default: 30 s.
    pub request_timeout: Duration,
}

impl Endpoint {
    pub fn new(url: impl Into<String>) -> Endpoint {
        Endpoint {
            url: url.into().trim_end_matches('/').to_string(),
            tenant: None,
            auth: None,
            headers: Vec::new(),
            request_timeout: Duration::from_secs(30),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(Error::Config(format!(
                "url {:?} must start with http:// or https://",
                self.url
            )));
        }
        let mut values: Vec<&str> = self.headers.iter().map(|(_, v)| v.as_str()).collect();
        values.extend(self.tenant.as_deref());
        for value in values {
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(Error::Config(format!(
                    "{value:?} is not a valid header value"
                )));
            }
        }
        for (name, _) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(Error::Config(format!(
                    "{name:?} is not a valid header name"
                )));
            }
        }
        Ok(())
    }

    pub(crate) fn path(&self, path: &str) -> String {
        format!("{}{}", self.url, path)
    }
}

/// HTTP authentication.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `Authorization: Basic ...` (Grafana Cloud: user id and API token).
    Basic { user: String, password: String },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Bearer(_) => f.write_str("Bearer(<redacted>)"),
            Auth::Basic { user, .. } => write!(f, "Basic({user}, <redacted>)"),
        }
    }
}

/// How push bodies are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Loki's protobuf `PushRequest` in a snappy block
    /// (`Content-Type: application/x-protobuf`). The default: smallest and
    /// cheapest to build.
    #[default]
    Protobuf,
    /// Loki's JSON push body, uncompressed.
    Json,
    /// Loki's JSON push body with `Content-Encoding: gzip`.
    JsonGzip,
}

/// What `send` does when the queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backpressure {
    /// Wait for room (the default: nothing is lost, callers slow down).
    #[default]
    Block,
    /// Refuse the new entry (`send` returns [`Error::QueueFull`]).
    DropNew,
    /// Make room by discarding the oldest queued entries.
    DropOldest,
}

/// When a batch is sealed and sent: whichever limit is reached first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchConfig {
    /// Default: 8192 entries.
    pub max_entries: usize,
    /// Sum of [`crate::Entry::size`]. Default: 1 MiB.
    pub max_bytes: usize,
    /// Longest an entry waits in a partial batch. Default: 1 s.
    pub max_wait: Duration,
}

impl Default for BatchConfig {
    fn default() -> BatchConfig {
        BatchConfig {
            max_entries: 8192,
            max_bytes: 1 << 20,
            max_wait: Duration::from_secs(1),
        }
    }
}

/// The in-memory queue between `send` and the background worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    /// Default: 100 000 entries.
    pub max_entries: usize,
    /// Default: 64 MiB.
    pub max_bytes: usize,
    /// Default: [`Backpressure::Block`].
    pub backpressure: Backpressure,
    /// Encoded batches waiting for the sender when there is no disk queue.
    /// Default: 2 (one being sent, one ready).
    pub max_pending_batches: usize,
}

impl Default for QueueConfig {
    fn default() -> QueueConfig {
        QueueConfig {
            max_entries: 100_000,
            max_bytes: 64 << 20,
            backpressure: Backpressure::Block,
            max_pending_batches: 2,
        }
    }
}

/// Retrying failed pushes: exponential backoff with full jitter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryConfig {
    /// Upper bound of the first delay. Default: 250 ms.
    pub min_backoff: Duration,
    /// Cap on every delay. Default: 30 s.
    pub max_backoff: Duration,
    /// Attempts after the first before the batch is dropped; `None` retries
    /// forever. Ignored with a disk queue, which retries forever: the disk
    /// is the buffer for outages. Default: `Some(10)`.
    pub max_retries: Option<u32>,
    /// Cap on a server's `Retry-After`. Default: 5 min.
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            min_backoff: Duration::from_millis(250),
            max_backoff: Duration::from_secs(30),
            max_retries: Some(10),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// A disk-backed queue of encoded batches (see [`crate::disk`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskQueueConfig {
    /// Directory owned by one client at a time (an exclusive lock file
    /// enforces it: a second client fails to start with [`Error::Disk`]).
    pub dir: PathBuf,
    /// Bytes of unsent batches kept. When full, with
    /// [`Backpressure::DropOldest`] the oldest segments are deleted to make
    /// room (counted in [`crate::Stats::dropped_oldest`]); otherwise the
    /// worker waits and the in-memory queue's backpressure applies.
    /// Default: 1 GiB.
    pub max_bytes: u64,
    /// Size at which a new segment file is started. Default: 16 MiB.
    pub segment_bytes: u64,
    /// `fsync` each batch (survives power loss, not only a crash of this
    /// process). Default: true.
    pub fsync: bool,
}

impl DiskQueueConfig {
    pub fn new(dir: impl Into<PathBuf>) -> DiskQueueConfig {
        DiskQueueConfig {
            dir: dir.into(),
            max_bytes: 1 << 30,
            segment_bytes: 16 << 20,
            fsync: true,
        }
    }
}

/// Everything [`crate::Client`] needs.
#[derive(Clone)]
pub struct Config {
    pub endpoint: Endpoint,
    /// Default: [`Encoding::Protobuf`].
    pub encoding: Encoding,
    pub batch: BatchConfig,
    pub queue: QueueConfig,
    pub retry: RetryConfig,
    /// Default: none (batches are only in memory).
    pub disk_queue: Option<DiskQueueConfig>,
    /// How long dropping the client waits to deliver what is queued.
    /// Default: 5 s.
    pub drop_timeout: Duration,
    /// Default: none.
    pub on_error: Option<ErrorCallback>,
}

impl Config {
    /// Defaults for a server at `url`.
    pub fn new(url: impl Into<String>) -> Config {
        Config {
            endpoint: Endpoint::new(url),
            encoding: Encoding::default(),
            batch: BatchConfig::default(),
            queue: QueueConfig::default(),
            retry: RetryConfig::default(),
            disk_queue: None,
            drop_timeout: Duration::from_secs(5),
            on_error: None,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.endpoint.validate()?;
        let positive = [
            ("batch.max_entries", self.batch.max_entries),
            ("batch.max_bytes", self.batch.max_bytes),
            ("queue.max_entries", self.queue.max_entries),
            ("queue.max_bytes", self.queue.max_bytes),
            ("queue.max_pending_batches", self.queue.max_pending_batches),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(Error::Config(format!("{name} must be positive")));
            }
        }
        if self.retry.min_backoff > self.retry.max_backoff {
            return Err(Error::Config(
                "retry.min_backoff must not exceed retry.max_backoff".into(),
            ));
        }
        if let Some(disk) = &self.disk_queue
            && (disk.segment_bytes == 0 || disk.max_bytes < disk.segment_bytes)
        {
            return Err(Error::Config(
                "disk_queue.segment_bytes must be positive and at most disk_queue.max_bytes".into(),
            ));
        }
        Ok(())
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("endpoint", &self.endpoint)
            .field("encoding", &self.encoding)
            .field("batch", &self.batch)
            .field("queue", &self.queue)
            .field("retry", &self.retry)
            .field("disk_queue", &self.disk_queue)
            .field("drop_timeout", &self.drop_timeout)
            .field("on_error", &self.on_error.as_ref().map(|_| "<callback>"))
            .finish()
    }
}
