//! `ExportLogs` (streamed chunks with a cursor, or a background job) and
//! `GetExportStatus`, over `crate::export`.

use super::{Stream, entry_out, invalid, labels_out, proto, tenant};
use crate::AppState;
use crate::export::{Cursor, ExportError, Format, JobSpec, JobState};
use skald_model::{LabelSet, Timestamp};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tonic::{Request, Response, Status};

const DEFAULT_CHUNK: u32 = 1000;

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
    let tenant = tenant(&req)?;
    let req = req.into_inner();
    let query = super::query::parse_log_query("query", &req.query)?;
    // Reject what the engine cannot run before anything starts.
    let start = Timestamp(req.start_ns);
    let end = if req.end_ns == 0 {
        Timestamp::now().saturating_add(1)
    } else {
        Timestamp(req.end_ns)
    };
    if start > end {
        return Err(invalid("start_ns", "after end_ns"));
    }
    let chunk = super::query::check_limit(
        app,
        "chunk_size",
        if req.chunk_size == 0 {
            DEFAULT_CHUNK.min(app.config.max_query_limit as u32)
        } else {
            req.chunk_size
        },
    )?;
    let mut cursor = if req.cursor.is_empty() {
        Cursor {
            ts: start.0,
            skip: 0,
        }
    } else {
        Cursor::parse(&req.cursor)
            .ok_or_else(|| invalid("cursor", "not a cursor this server issued"))?
    };

    if let Some(dest) = req.destination {
        let format = match proto::ExportFormat::try_from(dest.format) {
            Ok(proto::ExportFormat::Ndjson) => Format::Ndjson,
            Ok(proto::ExportFormat::Json) => Format::Json,
            Ok(proto::ExportFormat::Csv) => Format::Csv,
            Err(_) => return Err(invalid("destination.format", "unknown format")),
        };
        let job = app
            .exports
            .start(
                app.clone(),
                JobSpec {
                    tenant,
                    query,
                    start: Timestamp(cursor.ts),
                    end,
                    chunk,
                    path: dest.path,
                    format,
                    gzip: dest.gzip,
                },
                app.config.max_export_jobs,
            )
            .map_err(|e| match e {
                ExportError::InvalidPath(m) => Status::invalid_argument(m),
                ExportError::TooManyJobs(m) => Status::resource_exhausted(m),
                ExportError::Io(m) => {
                    tracing::error!(error = %m, "starting an export job");
                    Status::internal("the server could not create the export file; see its log")
                }
            })?;
        let msg = proto::ExportLogsResponse {
            job_id: job.id.clone(),
            done: true,
            ..Default::default()
        };
        return Ok(Response::new(Box::pin(tokio_stream::once(Ok(msg)))));
    }

    // Checked once up front so errors arrive as the call's status.
    let first = crate::export::next_chunk(app, &tenant, &query, cursor, end, chunk).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let app = app.clone();
    tokio::spawn(async move {
        let mut sent = 0u64;
        let mut next = Some(first);
        loop {
            let chunk = match next.take() {
                Some(c) => c,
                None => match crate::export::next_chunk(&app, &tenant, &query, cursor, end, chunk)
                    .await
                {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                },
            };
            sent += chunk.entries.len() as u64;
            cursor = chunk.next;
            let done = chunk.done;
            let msg = proto::ExportLogsResponse {
                streams: group(chunk.entries),
                cursor: cursor.text(),
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
    let tenant = tenant(&req)?;
    let req = req.into_inner();
    if req.job_id.is_empty() {
        return Err(invalid("job_id", "required"));
    }
    let job = app
        .exports
        .get(&tenant, &req.job_id)
        .ok_or_else(|| Status::not_found(format!("no export job {:?}", req.job_id)))?;
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
