//! A client for Skald and Grafana Loki over Loki's HTTP API.
//!
//! What it is for:
//!
//! - **Pushing logs** ([`Client`]): `send` queues an [`Entry`]; background
//!   threads batch entries (by count, bytes and age, whichever limit comes
//!   first), encode them as Loki's protobuf in snappy (or JSON, optionally
//!   gzipped), and push them with retries (exponential backoff, full
//!   jitter, `Retry-After`). The queue is bounded and its [`Backpressure`]
//!   mode is a choice: block, drop new, drop oldest. An optional disk queue
//!   ([`DiskQueueConfig`]) keeps batches through crashes and long outages
//!   and sends them in order when the server is back.
//! - **Logging from `tracing`** ([`LokiLayer`]).
//! - **Querying** ([`QueryClient`]): `query`, `query_range`, `labels`,
//!   `label_values`, `series`, `tail`, with typed results.
//! - **Writing LogQL** ([`LogQl`]): a builder whose output always parses.
//! - **Skald's gRPC API** ([`grpc::GrpcClient`], feature `grpc`, on by
//!   default): every operation of its `LogService`, from pushes that report
//!   what was stored to stream info, export jobs and the health check.
//!
//! Not for: running a server, or evaluating LogQL (see `skald-query`). It
//! depends on no other Skald crate, so it works against any Loki.
//!
//! How the parts fit: `entry` (labels and entries) → `push` (queue,
//! batcher, sender; see its diagram) → `encode` (bodies) and `retry`
//! (classification, backoff) → `disk` (the on-disk queue format). `layer`
//! feeds `push`; `query`, `logql` and `grpc` stand alone.
//!
//! ```no_run
//! use skald_client::{Client, Config, Entry, Labels};
//! use std::time::Duration;
//!
//! let client = Client::new(Config::new("http://127.0.0.1:3100")).unwrap();
//! let labels = Labels::new([("service", "api"), ("env", "prod")]).unwrap();
//! client.send(Entry::new(&labels, "listening on :8080")).unwrap();
//! client.close(Duration::from_secs(5)).unwrap();
//! ```
//!
//! # Labels and cardinality
//!
//! Loki indexes streams by their labels, not log contents. Every distinct
//! label set is a new stream, with its own chunks and index entries, so
//! labels should be few, low-cardinality and bounded: service, environment,
//! region, level, status class.
//!
//! Do not make labels of high-cardinality values such as request ids,
//! trace ids, user ids or unbounded paths and query strings, unless you
//! accept the stream churn and cost that brings. Keep them in the line
//! (or in structured metadata, [`Entry::with_metadata`]), where LogQL can
//! still filter on them (`| json | request_id="..."`).
//!
//! - good labels: `service`, `env`, `http_method`, `http_status`
//! - keep in the line: `request_id`, `trace_id`, `user_id`, `http_path`
//!
//! That is why [`LokiLayer`] promotes no field to a label unless it is on
//! the allow list, and why the deny list always wins.

mod config;
mod disk;
mod encode;
mod entry;
mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
mod http;
mod layer;
mod logql;
mod push;
pub mod query;
pub mod retry;

pub use config::{
    Auth, Backpressure, BatchConfig, Config, DiskQueueConfig, Encoding, Endpoint, ErrorCallback,
    QueueConfig, RetryConfig,
};
pub use encode::proto;
pub use entry::{Entry, Labels, Timestamp, is_valid_label_name, sanitize_label_name};
pub use error::{Error, GrpcCode, Result};
pub use layer::{LineFormat, LokiLayer};
pub use logql::{LabelFilter, LogQl, LogQuery, MetricQuery, NumOp, Range, StrOp};
pub use push::{Client, Stats};
pub use query::{
    Direction, InstantQuery, LabelMap, LogEntry, LogStream, Point, QueryClient, QueryResult,
    RangeQuery, Sample, Series, Tail, TailResponse, TimeRange,
};
