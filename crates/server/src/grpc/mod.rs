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
//! health).
//!
//! Not here: the transport (the binary adds this service, the standard
//! health service and reflection to one tonic server).

mod export;
mod monitor;
mod push;
pub(crate) mod query;
mod streams;
mod tail;

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

use proto::log_service_server::{LogService, LogServiceServer};

/// The service, ready to add to a tonic server.
pub fn service(app: Arc<AppState>) -> LogServiceServer<Grpc> {
    LogServiceServer::new(Grpc { app })
        .max_decoding_message_size(64 * 1024 * 1024)
        .max_encoding_message_size(64 * 1024 * 1024)
}

/// The reflection service describing `skald.v1` (for grpcurl and friends).
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
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
}
