//! The gRPC API: `skald.v1.LogService` (proto/skald/v1/log_service.proto,
//! the contract) over the same [`AppState`] as the HTTP API.
//!
//! A thin adapter over [`crate::service`]: each RPC builds the call's
//! [`Context`] from its metadata (`authorization`, `x-scope-orgid`),
//! parses the message into the operation's typed request (naming the
//! offending field in INVALID_ARGUMENT), calls the operation and encodes
//! its answer; a `ServiceError` becomes a status through the one mapping
//! (`From<ServiceError> for Status`). Modules follow the service's
//! sections: `push`, `query` (logs, metrics, stats), `tail`, `streams`
//! (labels, streams, deletion), `export`, `monitor` (statistics, quota,
//! health), `analysis` (patterns, error groups, anomalies, the report).
//!
//! Not here: the transport (the binary adds this service, the standard
//! health service and reflection to one tonic server).

mod analysis;
mod export;
mod monitor;
mod otlp;
mod push;
pub(crate) mod query;
mod streams;
mod tail;
pub mod timeout;

use crate::AppState;
use crate::service::{Context, ServiceError};
use skald_model::{Label, LabelSet, Timestamp};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The generated messages and service.
#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("skald.v1");
    /// For the reflection service.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("skald_v1_descriptor");
}

pub use otlp::otlp_logs_service;
use proto::log_service_server::{LogService, LogServiceServer};

/// Largest gRPC message received or sent.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// The service, ready to add to a tonic server.
pub fn service(app: Arc<AppState>) -> SizeLimitStatus<LogServiceServer<Grpc>> {
    SizeLimitStatus(
        LogServiceServer::new(Grpc { app })
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES),
    )
}

/// Answers a message over the size limit with RESOURCE_EXHAUSTED, as the
/// proto promises for every limit, where tonic's decoder says OUT_OF_RANGE
/// (the check happens before any handler runs, so the status is mended on
/// the way out). Its message already names the size and the limit.
#[derive(Clone)]
pub struct SizeLimitStatus<S>(S);

impl<S: tonic::server::NamedService> tonic::server::NamedService for SizeLimitStatus<S> {
    const NAME: &'static str = S::NAME;
}

type GrpcBody = tonic::body::Body;

impl<S> tower::Service<axum::http::Request<GrpcBody>> for SizeLimitStatus<S>
where
    S: tower::Service<
            axum::http::Request<GrpcBody>,
            Response = axum::http::Response<GrpcBody>,
            Error = std::convert::Infallible,
        >,
    S::Future: Send + 'static,
{
    type Response = axum::http::Response<GrpcBody>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: axum::http::Request<GrpcBody>) -> Self::Future {
        let answer = self.0.call(req);
        Box::pin(async move {
            let mut res = answer.await?;
            let headers = res.headers_mut();
            let out_of_range = headers
                .get("grpc-status")
                .is_some_and(|v| v == (tonic::Code::OutOfRange as i32).to_string().as_str());
            let too_large = headers
                .get("grpc-message")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|m| {
                    m.contains("message%20length%20too%20large")
                        || m.contains("message length too large")
                });
            if out_of_range && too_large {
                headers.insert(
                    "grpc-status",
                    axum::http::HeaderValue::from(tonic::Code::ResourceExhausted as i32),
                );
            }
            Ok(res)
        })
    }
}

/// What reflection describes: `skald.v1` and the standard health service.
fn reflection_builder() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
}

/// The reflection service (`grpc.reflection.v1`) describing `skald.v1`,
/// for grpcurl and friends.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    reflection_builder().build_v1()
}

/// The same under its older name, `grpc.reflection.v1alpha`, which
/// grpcio's Python reflection client, older grpcurl and Evans still speak
/// (they get UNIMPLEMENTED without it).
pub fn reflection_v1alpha() -> Result<
    tonic_reflection::server::v1alpha::ServerReflectionServer<
        impl tonic_reflection::server::v1alpha::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    reflection_builder().build_v1alpha()
}

pub struct Grpc {
    app: Arc<AppState>,
}

/// INVALID_ARGUMENT naming the field.
pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Status {
    ServiceError::invalid(field, why).into()
}

/// The call's context: who is asking, for which tenant.
pub(crate) fn context<T>(app: &AppState, req: &Request<T>) -> Result<Context, Status> {
    Ok(Context::from_grpc(app, req.metadata())?)
}

/// A time range from request fields: zero means the default.
pub(crate) fn range(
    start_ns: i64,
    end_ns: i64,
    default_span_ns: Option<i64>,
) -> Result<(Timestamp, Timestamp), Status> {
    let end = if end_ns == 0 {
        Timestamp::now()
    } else {
        Timestamp(end_ns)
    };
    let start = match (start_ns, default_span_ns) {
        (0, Some(span)) => end.saturating_sub(span),
        (0, None) => Timestamp(0),
        (s, _) => Timestamp(s),
    };
    if start > end {
        return Err(invalid(
            "start_ns",
            format!("start {} is after end {}", start.0, end.0),
        ));
    }
    Ok((start, end))
}

pub(crate) fn labels_out(ls: &LabelSet) -> Vec<proto::Label> {
    ls.labels()
        .iter()
        .map(|l| proto::Label {
            name: l.name.clone(),
            value: l.value.clone(),
        })
        .collect()
}

pub(crate) fn labels_in(field: &str, labels: Vec<proto::Label>) -> Result<LabelSet, Status> {
    LabelSet::new(
        labels
            .into_iter()
            .map(|l| Label::new(l.name, l.value))
            .collect(),
    )
    .map_err(|e| invalid(field, e))
}

pub(crate) fn entry_out(e: &skald_model::Entry) -> proto::Entry {
    proto::Entry {
        timestamp_ns: e.ts.0,
        line: e.line.clone(),
        structured_metadata: e
            .metadata
            .iter()
            .map(|l| proto::Label {
                name: l.name.clone(),
                value: l.value.clone(),
            })
            .collect(),
    }
}

type Stream<T> = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl LogService for Grpc {
    async fn push_log(
        &self,
        req: Request<proto::PushLogRequest>,
    ) -> Result<Response<proto::PushResponse>, Status> {
        push::push_log(&self.app, req).await
    }

    async fn push_log_batch(
        &self,
        req: Request<proto::PushLogBatchRequest>,
    ) -> Result<Response<proto::PushResponse>, Status> {
        push::push_log_batch(&self.app, req).await
    }

    async fn push_log_stream(
        &self,
        req: Request<tonic::Streaming<proto::PushLogBatchRequest>>,
    ) -> Result<Response<proto::PushResponse>, Status> {
        push::push_log_stream(&self.app, req).await
    }

    async fn push_simple_log(
        &self,
        req: Request<proto::PushSimpleLogRequest>,
    ) -> Result<Response<proto::PushResponse>, Status> {
        push::push_simple_log(&self.app, req).await
    }

    async fn query_logs(
        &self,
        req: Request<proto::QueryLogsRequest>,
    ) -> Result<Response<proto::QueryLogsResponse>, Status> {
        query::query_logs(&self.app, req).await
    }

    async fn query_range(
        &self,
        req: Request<proto::QueryRangeRequest>,
    ) -> Result<Response<proto::QueryRangeResponse>, Status> {
        query::query_range(&self.app, req).await
    }

    type TailLogsStream = Stream<proto::TailLogsResponse>;

    async fn tail_logs(
        &self,
        req: Request<proto::TailLogsRequest>,
    ) -> Result<Response<Self::TailLogsStream>, Status> {
        tail::tail_logs(&self.app, req).await
    }

    async fn query_stats(
        &self,
        req: Request<proto::QueryStatsRequest>,
    ) -> Result<Response<proto::QueryStatsResponse>, Status> {
        query::query_stats(&self.app, req).await
    }

    async fn get_labels(
        &self,
        req: Request<proto::GetLabelsRequest>,
    ) -> Result<Response<proto::GetLabelsResponse>, Status> {
        streams::get_labels(&self.app, req).await
    }

    async fn get_label_values(
        &self,
        req: Request<proto::GetLabelValuesRequest>,
    ) -> Result<Response<proto::GetLabelValuesResponse>, Status> {
        streams::get_label_values(&self.app, req).await
    }

    async fn validate_labels(
        &self,
        req: Request<proto::ValidateLabelsRequest>,
    ) -> Result<Response<proto::ValidateLabelsResponse>, Status> {
        streams::validate_labels(&self.app, req).await
    }

    async fn list_streams(
        &self,
        req: Request<proto::ListStreamsRequest>,
    ) -> Result<Response<proto::ListStreamsResponse>, Status> {
        streams::list_streams(&self.app, req).await
    }

    async fn get_stream_info(
        &self,
        req: Request<proto::GetStreamInfoRequest>,
    ) -> Result<Response<proto::StreamInfo>, Status> {
        streams::get_stream_info(&self.app, req).await
    }

    async fn delete_stream(
        &self,
        req: Request<proto::DeleteStreamRequest>,
    ) -> Result<Response<proto::DeleteStreamResponse>, Status> {
        streams::delete_stream(&self.app, req).await
    }

    type ExportLogsStream = Stream<proto::ExportLogsResponse>;

    async fn export_logs(
        &self,
        req: Request<proto::ExportLogsRequest>,
    ) -> Result<Response<Self::ExportLogsStream>, Status> {
        export::export_logs(&self.app, req).await
    }

    async fn get_export_status(
        &self,
        req: Request<proto::GetExportStatusRequest>,
    ) -> Result<Response<proto::ExportStatus>, Status> {
        export::get_export_status(&self.app, req).await
    }

    async fn get_statistics(
        &self,
        req: Request<proto::GetStatisticsRequest>,
    ) -> Result<Response<proto::GetStatisticsResponse>, Status> {
        monitor::get_statistics(&self.app, req).await
    }

    async fn get_user_quota(
        &self,
        req: Request<proto::GetUserQuotaRequest>,
    ) -> Result<Response<proto::GetUserQuotaResponse>, Status> {
        monitor::get_user_quota(&self.app, req).await
    }

    async fn health_check(
        &self,
        req: Request<proto::HealthCheckRequest>,
    ) -> Result<Response<proto::HealthCheckResponse>, Status> {
        monitor::health_check(&self.app, req).await
    }

    async fn list_patterns(
        &self,
        req: Request<proto::ListPatternsRequest>,
    ) -> Result<Response<proto::ListPatternsResponse>, Status> {
        analysis::list_patterns(&self.app, req).await
    }

    async fn list_error_groups(
        &self,
        req: Request<proto::ListErrorGroupsRequest>,
    ) -> Result<Response<proto::ListErrorGroupsResponse>, Status> {
        analysis::list_error_groups(&self.app, req).await
    }

    async fn list_anomalies(
        &self,
        req: Request<proto::ListAnomaliesRequest>,
    ) -> Result<Response<proto::ListAnomaliesResponse>, Status> {
        analysis::list_anomalies(&self.app, req).await
    }

    async fn analyze_logs(
        &self,
        req: Request<proto::AnalyzeLogsRequest>,
    ) -> Result<Response<proto::AnalyzeLogsResponse>, Status> {
        analysis::analyze_logs(&self.app, req).await
    }
}
