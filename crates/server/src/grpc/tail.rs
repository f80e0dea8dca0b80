//! `TailLogs`: the live tail of `crate::service::tail` as a server stream.

use super::{Stream, context, entry_out, labels_out, proto};
use crate::AppState;
use crate::service::tail::TailParams;
use skald_model::Timestamp;
use std::sync::Arc;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status};

pub(super) async fn tail_logs(
    app: &Arc<AppState>,
    req: Request<proto::TailLogsRequest>,
) -> Result<Response<Stream<proto::TailLogsResponse>>, Status> {
    let ctx = context(app, &req)?;
    let req = req.into_inner();
    let params = TailParams {
        query: req.query,
        limit: (req.limit != 0).then_some(req.limit as usize),
        start: (req.start_ns != 0).then_some(Timestamp(req.start_ns)),
        delay_secs: req.delay_for_seconds as u64,
    };
    let tail = crate::service::tail::start(app, &ctx, params).await?;
    let ended = tail.ended.clone();
    let stream = tokio_stream::wrappers::ReceiverStream::new(tail.messages).map(|m| match m {
        Ok(m) => Ok(proto::TailLogsResponse {
            streams: m
                .streams
                .iter()
                .map(|(labels, entries)| proto::Stream {
                    labels: labels_out(labels),
                    entries: entries.iter().map(entry_out).collect(),
                })
                .collect(),
            dropped_entries: m
                .dropped
                .iter()
                .map(|d| proto::DroppedEntries {
                    labels: labels_out(&d.labels),
                    timestamp_ns: d.first_ts.0,
                    count: d.count,
                })
                .collect(),
        }),
        Err(e) => Err(Status::internal(e)),
    });
    // A tail the server dropped ends with the reason, not silently.
    let reason = after_end(move || {
        ended
            .get()
            .map(|r| Err(Status::resource_exhausted(r.clone())))
    });
    Ok(Response::new(Box::pin(stream.chain(reason))))
}

/// A stream of at most one item, computed when it is first polled (after
/// the stream it is chained to has ended).
fn after_end<T>(
    f: impl FnOnce() -> Option<T> + Unpin,
) -> impl tokio_stream::Stream<Item = T> + Unpin {
    let mut f = Some(f);
    tokio_stream::iter(std::iter::from_fn(move || f.take().and_then(|f| f())))
}
