//! The OTLP gRPC logs service, `opentelemetry.proto.collector.logs.v1.
//! LogsService/Export`, over the same mapping and push path as
//! `POST /otlp/v1/logs` (see `crate::otlp`).
//!
//! A request that cannot be mapped, or whose entries the store refuses,
//! fails with INVALID_ARGUMENT and the reason (how many entries were
//! stored is in the message, as for the HTTP push).

use super::context;
use crate::AppState;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The service, ready to add to a tonic server; messages are bounded by
/// the push body limit.
pub fn otlp_logs_service(app: Arc<AppState>) -> LogsServiceServer<OtlpLogs> {
    let max = app.config.max_push_body_bytes;
    LogsServiceServer::new(OtlpLogs { app })
        .max_decoding_message_size(max)
        .max_encoding_message_size(1024 * 1024)
}

pub struct OtlpLogs {
    app: Arc<AppState>,
}

#[tonic::async_trait]
impl LogsService for OtlpLogs {
    async fn export(
        &self,
        req: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let ctx = context(&self.app, &req)?;
        let outcome =
            crate::service::push::push_otlp(&self.app, &ctx, req.into_inner(), None).await?;
        if let Some(e) = crate::service::push::refusal(&outcome) {
            return Err(e.into());
        }
        Ok(Response::new(ExportLogsServiceResponse::default()))
    }
}
