//! `ExportLogs` (streamed chunks with a cursor, or a background job) and
//! `GetExportStatus`, over `crate::export`.

use super::{Stream, context, entry_out, invalid, labels_out, proto};
use crate::AppState;
use crate::export::{Format, JobState};
use crate::service::export::{Destination, ExportRequest};
use skald_model::{LabelSet, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tonic::{Request, Response, Status};

fn group(entries: Vec<(Arc<LabelSet>, skald_model::Entry)>) -> Vec<proto::Stream> {
    let mut out: Vec<proto::Stream> = Vec::new();
    let mut last: Option<Arc<LabelSet>> = None;
    for (labels, e) in entries {
        if last.as_ref().is_none_or(|l| **l != *labels) {
            out.push(proto::Stream {
                labels: labels_out(&labels),
                entries: Vec::new(),
            });
            last = Some(labels);
        }
        if let Some(s) = out.last_mut() {
            s.entries.push(entry_out(&e));
        }
    }
    out
}

pub(super) async fn export_logs(
    app: &Arc<AppState>,
    req: Request<proto::ExportLogsRequest>,
) -> Result<Response<Stream<proto::ExportLogsResponse>>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let request = ExportRequest {
        query: req.query,
        start: Timestamp(req.start_ns),
        end: (req.end_ns != 0).then_some(Timestamp(req.end_ns)),
        chunk: (req.chunk_size != 0).then_some(req.chunk_size as usize),
        cursor: req.cursor,
    };

    if let Some(dest) = req.destination {
        let format = match proto::ExportFormat::try_from(dest.format) {
            Ok(proto::ExportFormat::Ndjson) => Format::Ndjson,
            Ok(proto::ExportFormat::Json) => Format::Json,
            Ok(proto::ExportFormat::Csv) => Format::Csv,
            Err(_) => return Err(invalid("destination.format", "unknown format")),
        };
        let destination = Destination {
            path: dest.path,
            format,
            gzip: dest.gzip,
        };
        let job = crate::service::export::start_job(app, &ctx, request, destination)?;
        let msg = proto::ExportLogsResponse {
            job_id: job.id.clone(),
            done: true,
            ..Default::default()
        };
        return Ok(Response::new(Box::pin(tokio_stream::once(Ok(msg)))));
    }

    let mut export = crate::service::export::stream(app, &ctx, request)?;
    // Checked once up front so errors arrive as the call's status.
    let first = crate::service::export::next(app, &mut export).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let app = app.clone();
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut next = Some(first);
        loop {
            let chunk = match next.take() {
                Some(c) => c,
                None => match crate::service::export::next(&app, &mut export).await {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e.into())).await;
                        return;
                    }
                },
            };
            sent += chunk.entries.len() as u64;
            let done = chunk.done;
            let msg = proto::ExportLogsResponse {
                streams: group(chunk.entries),
                cursor: chunk.next.text(),
                entries_sent: sent,
                done,
                job_id: String::new(),
            };
            if tx.send(Ok(msg)).await.is_err() || done {
                return;
            }
        }
    });
    Ok(Response::new(Box::pin(
        tokio_stream::wrappers::ReceiverStream::new(rx),
    )))
}

pub(super) async fn get_export_status(
    app: &Arc<AppState>,
    req: Request<proto::GetExportStatusRequest>,
) -> Result<Response<proto::ExportStatus>, Status> {
    use proto::export_status::State;
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let job = crate::service::export::status(app, &ctx, &req.job_id)?;
    let (state, error, finished) = job.state.lock().unwrap().clone();
    Ok(Response::new(proto::ExportStatus {
        job_id: job.id.clone(),
        state: match state {
            JobState::Pending => State::Pending,
            JobState::Running => State::Running,
            JobState::Completed => State::Completed,
            JobState::Failed => State::Failed,
        } as i32,
        entries: job.entries.load(Ordering::Relaxed),
        bytes: job.bytes.load(Ordering::Relaxed),
        percent: job.progress.load(Ordering::Relaxed) as f64 / 100.0,
        error,
        path: job.path.display().to_string(),
        started_ns: job.started.0,
        finished_ns: finished.0,
    }))
}
