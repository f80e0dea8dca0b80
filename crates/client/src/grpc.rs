//! A gRPC client for Skald's `LogService` (`proto/skald/v1/log_service.proto`):
//! all twenty-three operations, for programs that talk to Skald rather than to
//! any Loki.
//!
//! What it is for: the operations Loki's HTTP API does not have (stream
//! listing and info, label validation, query statistics, export jobs,
//! per-tenant statistics and quota, a health check with storage status), and
//! synchronous pushes whose response says how many entries were stored,
//! rejected (and why) or dropped as duplicates. Each call is one request;
//! nothing is queued or retried here.
//!
//! Not for: logging from an application that must not lose entries when the
//! server is away. Use [`crate::Client`] for that (batching, backoff, the
//! disk queue); it speaks Loki's HTTP push API and so works against Grafana
//! Loki too, which this module does not.
//!
//! # Types
//!
//! Requests and results are the messages generated from the proto by
//! `prost`, re-exported as [`pb`]: the proto is the contract and documents
//! every field (units, defaults, limits), and the generated structs follow
//! it exactly, so there is no second set of types to drift from it. Build a
//! request with struct update syntax (`..Default::default()`: every field
//! of a proto3 message has a zero default, which the proto gives a meaning)
//! and the few helpers in [`pb`] ([`pb::labels`], [`pb::Entry::new`],
//! [`pb::Stream::new`]). Timestamps are `i64` nanoseconds since the epoch,
//! as [`crate::Timestamp`]'s inner value.
//!
//! # Tenant, auth, TLS, errors
//!
//! The client takes the same [`crate::Endpoint`] as the HTTP clients: its
//! `tenant` goes out as `x-scope-orgid` metadata, `auth` as an
//! `authorization` header (bearer or basic), `headers` as further metadata,
//! `request_timeout` bounds connecting and each call until the server's
//! first answer (a tail or an export stream may then run as long as it
//! likes). `https://` URLs need the crate's `tls` feature (rustls, system
//! root certificates). A call that ends with a gRPC status other than OK is
//! [`Error::Grpc`] with its [`GrpcCode`] and the server's message, which for
//! `INVALID_ARGUMENT` names the field.
//!
//! ```no_run
//! use skald_client::Endpoint;
//! use skald_client::grpc::{GrpcClient, pb};
//!
//! # async fn run() -> skald_client::Result<()> {
//! let client = GrpcClient::connect(Endpoint::new("http://127.0.0.1:9095")).await?;
//! let pushed = client
//!     .push_log(pb::PushLogRequest {
//!         labels: pb::labels([("service", "api")]),
//!         entry: Some(pb::Entry::new(0, "listening on :8080")),
//!     })
//!     .await?;
//! assert_eq!(pushed.accepted, 1);
//! let found = client
//!     .query_logs(pb::QueryLogsRequest {
//!         query: r#"{service="api"} |= "listening""#.into(),
//!         ..Default::default()
//!     })
//!     .await?;
//! for stream in &found.streams {
//!     for entry in &stream.entries {
//!         println!("{} {}", entry.timestamp_ns, entry.line);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use crate::config::{Auth, Endpoint};
use crate::error::{Error, GrpcCode, Result};
use futures_util::Stream;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tonic::metadata::{AsciiMetadataKey, AsciiMetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// The messages of `skald.v1`, generated from the proto at build time,
/// plus a few constructors.
pub mod pb {
    #![allow(clippy::all, missing_docs)]
    tonic::include_proto!("skald.v1");

    /// A label list from `(name, value)` pairs, in the given order.
    pub fn labels<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Vec<Label>
    where
        K: Into<String>,
        V: Into<String>,
    {
        pairs
            .into_iter()
            .map(|(name, value)| Label {
                name: name.into(),
                value: value.into(),
            })
            .collect()
    }

    impl Label {
        pub fn new(name: impl Into<String>, value: impl Into<String>) -> Label {
            Label {
                name: name.into(),
                value: value.into(),
            }
        }
    }

    impl From<&crate::Labels> for Vec<Label> {
        fn from(labels: &crate::Labels) -> Vec<Label> {
            labels
                .pairs()
                .iter()
                .map(|(name, value)| Label::new(name, value))
                .collect()
        }
    }

    impl Entry {
        /// An entry without structured metadata; `timestamp_ns` zero means
        /// "now" to the server.
        pub fn new(timestamp_ns: i64, line: impl Into<String>) -> Entry {
            Entry {
                timestamp_ns,
                line: line.into(),
                structured_metadata: Vec::new(),
            }
        }

        /// Adds one structured metadata pair.
        pub fn with_metadata(mut self, name: impl Into<String>, value: impl Into<String>) -> Entry {
            self.structured_metadata.push(Label::new(name, value));
            self
        }
    }

    impl Stream {
        pub fn new(labels: Vec<Label>, entries: Vec<Entry>) -> Stream {
            Stream { labels, entries }
        }
    }
}

use pb::log_service_client::LogServiceClient;

type Service = InterceptedService<Channel, RequestMetadata>;

/// A connection to one server's `LogService`. Cheap to clone; clones share
/// the HTTP/2 connection, and calls on one client may run concurrently.
#[derive(Clone)]
pub struct GrpcClient {
    inner: LogServiceClient<Service>,
}

impl std::fmt::Debug for GrpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcClient").finish_non_exhaustive()
    }
}

/// Metadata added to every call: tenant, authorization, extra headers.
#[derive(Clone, Debug)]
struct RequestMetadata {
    entries: Arc<Vec<(AsciiMetadataKey, AsciiMetadataValue)>>,
}

impl RequestMetadata {
    fn new(endpoint: &Endpoint) -> Result<RequestMetadata> {
        let mut entries = Vec::new();
        let mut add = |name: &str, value: &str, sensitive: bool| -> Result<()> {
            let key = AsciiMetadataKey::from_bytes(name.to_ascii_lowercase().as_bytes())
                .map_err(|_| Error::Config(format!("{name:?} is not a valid metadata name")))?;
            let mut value = AsciiMetadataValue::try_from(value).map_err(|_| {
                Error::Config(format!("the value of {name:?} is not valid metadata"))
            })?;
            value.set_sensitive(sensitive);
            entries.push((key, value));
            Ok(())
        };
        for (name, value) in &endpoint.headers {
            add(name, value, false)?;
        }
        if let Some(tenant) = &endpoint.tenant {
            add("x-scope-orgid", tenant, false)?;
        }
        match &endpoint.auth {
            None => {}
            Some(Auth::Bearer(token)) => add("authorization", &format!("Bearer {token}"), true)?,
            Some(Auth::Basic { user, password }) => {
                use base64::Engine;
                let encoded =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                add("authorization", &format!("Basic {encoded}"), true)?;
            }
        }
        Ok(RequestMetadata {
            entries: Arc::new(entries),
        })
    }
}

impl Interceptor for RequestMetadata {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        for (key, value) in self.entries.iter() {
            request.metadata_mut().insert(key.clone(), value.clone());
        }
        Ok(request)
    }
}

fn transport_endpoint(endpoint: &Endpoint) -> Result<tonic::transport::Endpoint> {
    endpoint.validate()?;
    let mut transport = tonic::transport::Endpoint::from_shared(endpoint.url.clone())
        .map_err(|e| Error::Config(format!("url {:?}: {e}", endpoint.url)))?
        .connect_timeout(endpoint.request_timeout)
        .timeout(endpoint.request_timeout)
        .user_agent(concat!("skald-client/", env!("CARGO_PKG_VERSION")))
        .map_err(|e| Error::Config(format!("user agent: {e}")))?;
    if endpoint.url.starts_with("https://") {
        transport = with_tls(transport, &endpoint.url)?;
    }
    Ok(transport)
}

#[cfg(feature = "tls")]
fn with_tls(
    transport: tonic::transport::Endpoint,
    _url: &str,
) -> Result<tonic::transport::Endpoint> {
    let tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
    transport
        .tls_config(tls)
        .map_err(|e| Error::Config(format!("tls: {}", crate::http::error_chain(&e))))
}

#[cfg(not(feature = "tls"))]
fn with_tls(
    _transport: tonic::transport::Endpoint,
    url: &str,
) -> Result<tonic::transport::Endpoint> {
    Err(Error::Config(format!(
        "url {url:?} needs TLS: build skald-client with the `tls` feature"
    )))
}

/// The crate's error for a gRPC status.
pub(crate) fn status_error(status: tonic::Status) -> Error {
    let code = match status.code() {
        // OK never comes as an error; treat it as the unknown it is.
        tonic::Code::Ok | tonic::Code::Unknown => GrpcCode::Unknown,
        tonic::Code::Cancelled => GrpcCode::Cancelled,
        tonic::Code::InvalidArgument => GrpcCode::InvalidArgument,
        tonic::Code::DeadlineExceeded => GrpcCode::DeadlineExceeded,
        tonic::Code::NotFound => GrpcCode::NotFound,
        tonic::Code::AlreadyExists => GrpcCode::AlreadyExists,
        tonic::Code::PermissionDenied => GrpcCode::PermissionDenied,
        tonic::Code::ResourceExhausted => GrpcCode::ResourceExhausted,
        tonic::Code::FailedPrecondition => GrpcCode::FailedPrecondition,
        tonic::Code::Aborted => GrpcCode::Aborted,
        tonic::Code::OutOfRange => GrpcCode::OutOfRange,
        tonic::Code::Unimplemented => GrpcCode::Unimplemented,
        tonic::Code::Internal => GrpcCode::Internal,
        tonic::Code::Unavailable => GrpcCode::Unavailable,
        tonic::Code::DataLoss => GrpcCode::DataLoss,
        tonic::Code::Unauthenticated => GrpcCode::Unauthenticated,
    };
    let mut message = status.message().to_string();
    if message.is_empty()
        && let Some(source) = std::error::Error::source(&status)
    {
        message = crate::http::error_chain(source);
    }
    Error::Grpc { code, message }
}

/// A server stream (`tail_logs`, `export_logs`): read it with
/// [`GrpcStream::message`], or as a [`Stream`] of results. It ends with
/// `None` when the server closes it; an error ends it too.
pub struct GrpcStream<T> {
    inner: tonic::Streaming<T>,
}

impl<T> std::fmt::Debug for GrpcStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcStream").finish_non_exhaustive()
    }
}

impl<T> GrpcStream<T> {
    /// The next message; `None` at the end of the stream.
    pub async fn message(&mut self) -> Result<Option<T>> {
        self.inner.message().await.map_err(status_error)
    }
}

impl<T> Stream for GrpcStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<T>>> {
        Pin::new(&mut self.inner)
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(status_error)))
    }
}

fn unary<T>(result: std::result::Result<tonic::Response<T>, tonic::Status>) -> Result<T> {
    result
        .map(tonic::Response::into_inner)
        .map_err(status_error)
}

impl GrpcClient {
    /// Connects now: fails with [`Error::Network`] if the server cannot be
    /// reached, [`Error::Config`] if the endpoint is unusable.
    pub async fn connect(endpoint: Endpoint) -> Result<GrpcClient> {
        let metadata = RequestMetadata::new(&endpoint)?;
        let channel = transport_endpoint(&endpoint)?
            .connect()
            .await
            .map_err(|e| {
                Error::Network(format!(
                    "{}: {}",
                    endpoint.url,
                    crate::http::error_chain(&e)
                ))
            })?;
        Ok(GrpcClient::with_channel(channel, metadata))
    }

    /// Connects on the first call (and reconnects after a broken
    /// connection); an unreachable server shows up as `UNAVAILABLE` from
    /// that call. Must be called inside a Tokio runtime.
    pub fn connect_lazy(endpoint: Endpoint) -> Result<GrpcClient> {
        let metadata = RequestMetadata::new(&endpoint)?;
        let channel = transport_endpoint(&endpoint)?.connect_lazy();
        Ok(GrpcClient::with_channel(channel, metadata))
    }

    fn with_channel(channel: Channel, metadata: RequestMetadata) -> GrpcClient {
        let inner = LogServiceClient::with_interceptor(channel, metadata)
            // The server's limits apply; a large query or export chunk must
            // not fail on tonic's 4 MiB default.
            .max_decoding_message_size(usize::MAX)
            .max_encoding_message_size(usize::MAX);
        GrpcClient { inner }
    }

    // --- Pushing ---------------------------------------------------------

    /// Stores one entry (`PushLog`).
    pub async fn push_log(&self, request: pb::PushLogRequest) -> Result<pb::PushResponse> {
        unary(self.inner.clone().push_log(request).await)
    }

    /// Stores many streams at once (`PushLogBatch`).
    pub async fn push_log_batch(
        &self,
        request: pb::PushLogBatchRequest,
    ) -> Result<pb::PushResponse> {
        unary(self.inner.clone().push_log_batch(request).await)
    }

    /// Streams batches to the server (`PushLogStream`) and returns its
    /// totals once `messages` ends. Every message the server received
    /// before an error is stored.
    pub async fn push_log_stream<S>(&self, messages: S) -> Result<pb::PushResponse>
    where
        S: Stream<Item = pb::PushLogBatchRequest> + Send + 'static,
    {
        unary(self.inner.clone().push_log_stream(messages).await)
    }

    /// [`GrpcClient::push_log_stream`] from an iterator.
    pub async fn push_log_stream_iter<I>(&self, messages: I) -> Result<pb::PushResponse>
    where
        I: IntoIterator<Item = pb::PushLogBatchRequest>,
        I::IntoIter: Send + 'static,
    {
        self.push_log_stream(futures_util::stream::iter(messages))
            .await
    }

    /// One message with `service`, `level` and further labels
    /// (`PushSimpleLog`).
    pub async fn push_simple_log(
        &self,
        request: pb::PushSimpleLogRequest,
    ) -> Result<pb::PushResponse> {
        unary(self.inner.clone().push_simple_log(request).await)
    }

    // --- Querying --------------------------------------------------------

    /// A LogQL log query (`QueryLogs`).
    pub async fn query_logs(&self, request: pb::QueryLogsRequest) -> Result<pb::QueryLogsResponse> {
        unary(self.inner.clone().query_logs(request).await)
    }

    /// A LogQL metric query over a range (`QueryRange`).
    pub async fn query_range(
        &self,
        request: pb::QueryRangeRequest,
    ) -> Result<pb::QueryRangeResponse> {
        unary(self.inner.clone().query_range(request).await)
    }

    /// Live tail (`TailLogs`): historical entries first, then new ones as
    /// they are stored, until the stream is dropped.
    pub async fn tail_logs(
        &self,
        request: pb::TailLogsRequest,
    ) -> Result<GrpcStream<pb::TailLogsResponse>> {
        let inner = unary(self.inner.clone().tail_logs(request).await)?;
        Ok(GrpcStream { inner })
    }

    /// What a query would touch, and optionally what running it did
    /// (`QueryStats`).
    pub async fn query_stats(
        &self,
        request: pb::QueryStatsRequest,
    ) -> Result<pb::QueryStatsResponse> {
        unary(self.inner.clone().query_stats(request).await)
    }

    // --- Labels ----------------------------------------------------------

    pub async fn get_labels(&self, request: pb::GetLabelsRequest) -> Result<pb::GetLabelsResponse> {
        unary(self.inner.clone().get_labels(request).await)
    }

    pub async fn get_label_values(
        &self,
        request: pb::GetLabelValuesRequest,
    ) -> Result<pb::GetLabelValuesResponse> {
        unary(self.inner.clone().get_label_values(request).await)
    }

    /// Checks a label set without storing anything (`ValidateLabels`).
    pub async fn validate_labels(
        &self,
        request: pb::ValidateLabelsRequest,
    ) -> Result<pb::ValidateLabelsResponse> {
        unary(self.inner.clone().validate_labels(request).await)
    }

    // --- Streams ---------------------------------------------------------

    /// One page of streams (`ListStreams`); pass `next_page_token` back
    /// for the next.
    pub async fn list_streams(
        &self,
        request: pb::ListStreamsRequest,
    ) -> Result<pb::ListStreamsResponse> {
        unary(self.inner.clone().list_streams(request).await)
    }

    /// One stream by exact labels or id (`GetStreamInfo`); `NOT_FOUND`
    /// when there is none.
    pub async fn get_stream_info(
        &self,
        request: pb::GetStreamInfoRequest,
    ) -> Result<pb::StreamInfo> {
        unary(self.inner.clone().get_stream_info(request).await)
    }

    /// Creates a delete request (`DeleteStream`).
    pub async fn delete_stream(
        &self,
        request: pb::DeleteStreamRequest,
    ) -> Result<pb::DeleteStreamResponse> {
        unary(self.inner.clone().delete_stream(request).await)
    }

    // --- Export ----------------------------------------------------------

    /// Streams a query's entries in chunks, or with a destination starts
    /// a background job and sends its id (`ExportLogs`).
    pub async fn export_logs(
        &self,
        request: pb::ExportLogsRequest,
    ) -> Result<GrpcStream<pb::ExportLogsResponse>> {
        let inner = unary(self.inner.clone().export_logs(request).await)?;
        Ok(GrpcStream { inner })
    }

    /// The state of a background export (`GetExportStatus`).
    pub async fn get_export_status(
        &self,
        request: pb::GetExportStatusRequest,
    ) -> Result<pb::ExportStatus> {
        unary(self.inner.clone().get_export_status(request).await)
    }

    // --- Monitoring ------------------------------------------------------

    pub async fn get_statistics(
        &self,
        request: pb::GetStatisticsRequest,
    ) -> Result<pb::GetStatisticsResponse> {
        unary(self.inner.clone().get_statistics(request).await)
    }

    /// The calling tenant's limits and usage (`GetUserQuota`).
    pub async fn get_user_quota(&self) -> Result<pb::GetUserQuotaResponse> {
        unary(
            self.inner
                .clone()
                .get_user_quota(pb::GetUserQuotaRequest {})
                .await,
        )
    }

    pub async fn health_check(&self) -> Result<pb::HealthCheckResponse> {
        unary(
            self.inner
                .clone()
                .health_check(pb::HealthCheckRequest {})
                .await,
        )
    }

    // --- Analysis --------------------------------------------------------

    /// Patterns of the selected streams with counts per step.
    pub async fn list_patterns(
        &self,
        request: pb::ListPatternsRequest,
    ) -> Result<pb::ListPatternsResponse> {
        unary(self.inner.clone().list_patterns(request).await)
    }

    /// Error groups: error lines by fingerprint, with first and last seen
    /// and whether the group is new in the range.
    pub async fn list_error_groups(
        &self,
        request: pb::ListErrorGroupsRequest,
    ) -> Result<pb::ListErrorGroupsResponse> {
        unary(self.inner.clone().list_error_groups(request).await)
    }

    /// Anomalies with their score, baseline and evidence.
    pub async fn list_anomalies(
        &self,
        request: pb::ListAnomaliesRequest,
    ) -> Result<pb::ListAnomaliesResponse> {
        unary(self.inner.clone().list_anomalies(request).await)
    }

    /// The analysis report of a log query (as `skald analyze`).
    pub async fn analyze_logs(
        &self,
        request: pb::AnalyzeLogsRequest,
    ) -> Result<pb::AnalyzeLogsResponse> {
        unary(self.inner.clone().analyze_logs(request).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metadata_of(endpoint: &Endpoint) -> Vec<(String, String)> {
        let mut interceptor = RequestMetadata::new(endpoint).unwrap();
        let request = interceptor.call(tonic::Request::new(())).unwrap();
        let mut pairs: Vec<(String, String)> = request
            .metadata()
            .iter()
            .map(|kv| match kv {
                tonic::metadata::KeyAndValueRef::Ascii(k, v) => {
                    (k.to_string(), v.to_str().unwrap().to_string())
                }
                tonic::metadata::KeyAndValueRef::Binary(k, _) => (k.to_string(), String::new()),
            })
            .collect();
        pairs.sort();
        pairs
    }

    #[test]
    fn tenant_auth_and_headers_become_metadata() {
        let mut endpoint = Endpoint::new("http://127.0.0.1:9095");
        endpoint.tenant = Some("team-a".into());
        endpoint.auth = Some(Auth::Basic {
            user: "alice".into(),
            password: "secret".into(),
        });
        endpoint.headers = vec![("X-Trace".into(), "on".into())];
        assert_eq!(
            metadata_of(&endpoint),
            [
                ("authorization".into(), "Basic YWxpY2U6c2VjcmV0".into()),
                ("x-scope-orgid".into(), "team-a".into()),
                ("x-trace".into(), "on".into()),
            ]
        );
        endpoint.auth = Some(Auth::Bearer("tok".into()));
        endpoint.tenant = None;
        endpoint.headers.clear();
        assert_eq!(
            metadata_of(&endpoint),
            [("authorization".to_string(), "Bearer tok".to_string())]
        );
    }

    #[test]
    fn unusable_endpoints_are_config_errors() {
        let mut endpoint = Endpoint::new("http://127.0.0.1:9095");
        endpoint.tenant = Some("bad\nvalue".into());
        assert!(matches!(
            RequestMetadata::new(&endpoint),
            Err(Error::Config(_))
        ));
        assert!(matches!(
            transport_endpoint(&Endpoint::new("127.0.0.1:9095")),
            Err(Error::Config(_))
        ));
        #[cfg(not(feature = "tls"))]
        assert!(matches!(
            transport_endpoint(&Endpoint::new("https://example.invalid")),
            Err(Error::Config(m)) if m.contains("tls")
        ));
    }

    #[test]
    fn statuses_map_to_codes_and_keep_the_message() {
        let error = status_error(tonic::Status::invalid_argument("query: unexpected end"));
        assert_eq!(
            error,
            Error::Grpc {
                code: GrpcCode::InvalidArgument,
                message: "query: unexpected end".into()
            }
        );
        assert_eq!(error.grpc_code(), Some(GrpcCode::InvalidArgument));
        assert_eq!(
            error.to_string(),
            "server answered INVALID_ARGUMENT: query: unexpected end"
        );
        let unavailable = status_error(tonic::Status::unavailable("shutting down"));
        assert!(unavailable.grpc_code().unwrap().is_transient());
        assert!(!GrpcCode::NotFound.is_transient());
    }
}
