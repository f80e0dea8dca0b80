//! Exports: a query's entries in time order, streamed to the caller in
//! chunks from a cursor (role `read`), or written by a background job to a
//! file on the server (role `admin`); a job's status is the tenant's alone.
//! The mechanics are `crate::export`.

use super::query::{ParsedLogQuery, entry_limit, parse_log_query, pick_tenants};
use super::{Context, ErrorCode, Role, ServiceError, limits_for};
use crate::AppState;
use crate::export::{Chunk, Cursor, ExportError, Format, Job, JobSpec};
use skald_model::{TenantId, Timestamp};
use std::sync::Arc;

/// Entries per chunk when the request names no size.
const DEFAULT_CHUNK: usize = 1000;

/// An export, checked and ready to run.
pub struct Export {
    /// One tenant, or several for a streamed export (`a|b`, each
    /// authorised): their streams then carry `__tenant_id__`.
    tenants: Vec<TenantId>,
    /// The request named several tenants: streams carry `__tenant_id__`.
    labelled: bool,
    query: ParsedLogQuery,
    end: Timestamp,
    chunk: usize,
    /// Where the next chunk starts.
    pub cursor: Cursor,
}

/// What an export asks for, as the adapters parse it.
pub struct ExportRequest {
    pub query: String,
    pub start: Timestamp,
    /// `None`: now.
    pub end: Option<Timestamp>,
    /// `None`: the default chunk size.
    pub chunk: Option<usize>,
    /// Empty: from `start`.
    pub cursor: String,
}

/// Where a background job writes.
pub struct Destination {
    /// A file name in the tenant's export directory; empty: generated.
    pub path: String,
    pub format: Format,
    pub gzip: bool,
}

fn prepare(
    app: &AppState,
    ctx: &Context,
    role: Role,
    req: ExportRequest,
) -> Result<Export, ServiceError> {
    // A job writes one tenant's file; a streamed export may read several.
    let tenants = match role {
        Role::Read => ctx.tenants_for(role)?,
        _ => vec![ctx.tenant_for(role)?],
    };
    let labelled = tenants.len() > 1;
    let mut query = parse_log_query("query", &req.query)?;
    let (tenants, selector) = pick_tenants(&tenants, &query.selector);
    query.selector = selector;
    let end = req
        .end
        .unwrap_or_else(|| Timestamp::now().saturating_add(1));
    if req.start > end {
        return Err(ServiceError::invalid("start_ns", "after end_ns"));
    }
    // The strictest of the tenants' limits applies to the merged chunk.
    let mut chunk = usize::MAX;
    for tenant in &tenants {
        let default = DEFAULT_CHUNK.min(limits_for(app, tenant).max_entries);
        chunk = chunk.min(entry_limit(
            app,
            tenant,
            Some(req.chunk.unwrap_or(default)),
        )?);
    }
    let chunk = if tenants.is_empty() {
        DEFAULT_CHUNK
    } else {
        chunk
    };
    let cursor = if req.cursor.is_empty() {
        Cursor {
            ts: req.start.0,
            skip: 0,
        }
    } else {
        Cursor::parse(&req.cursor)
            .ok_or_else(|| ServiceError::invalid("cursor", "not a cursor this server issued"))?
    };
    Ok(Export {
        tenants,
        labelled,
        query,
        end,
        chunk,
        cursor,
    })
}

/// Checks an export streamed to the caller (role `read`).
pub fn stream(app: &AppState, ctx: &Context, req: ExportRequest) -> Result<Export, ServiceError> {
    ctx.audited_now(
        "export",
        req.query.clone(),
        export_params(&req, None),
        || prepare(app, ctx, Role::Read, req),
    )
}

/// An export's parameters for its audit record.
fn export_params(req: &ExportRequest, dest: Option<&Destination>) -> serde_json::Value {
    serde_json::json!({
        "start_ns": req.start.0,
        "end_ns": req.end.map(|t| t.0),
        "chunk": req.chunk,
        "cursor": req.cursor,
        "destination": dest.map(|d| d.path.clone()),
    })
}

/// The next chunk of a streamed export; advances its cursor.
pub async fn next(app: &Arc<AppState>, export: &mut Export) -> Result<Chunk, ServiceError> {
    let chunk = crate::export::next_chunk(
        app,
        &export.tenants,
        export.labelled,
        &export.query,
        export.cursor,
        export.end,
        export.chunk,
    )
    .await?;
    export.cursor = chunk.next;
    Ok(chunk)
}

/// Starts a background job writing a file on the server (role `admin`).
pub fn start_job(
    app: &Arc<AppState>,
    ctx: &Context,
    req: ExportRequest,
    dest: Destination,
) -> Result<Arc<Job>, ServiceError> {
    let params = export_params(&req, Some(&dest));
    ctx.audited_now("export.job", req.query.clone(), params, || {
        start_job_audited(app, ctx, req, dest)
    })
}

fn start_job_audited(
    app: &Arc<AppState>,
    ctx: &Context,
    req: ExportRequest,
    dest: Destination,
) -> Result<Arc<Job>, ServiceError> {
    let export = prepare(app, ctx, Role::Admin, req)?;
    // `prepare` gave a job its one tenant (`tenant_for`).
    let [tenant] = <[TenantId; 1]>::try_from(export.tenants)
        .map_err(|_| ServiceError::bad_request("an export job writes a single tenant's file"))?;
    let max_running = limits_for(app, &tenant).max_export_jobs;
    let spec = JobSpec {
        tenant,
        query: export.query,
        start: Timestamp(export.cursor.ts),
        end: export.end,
        chunk: export.chunk,
        path: dest.path,
        format: dest.format,
        gzip: dest.gzip,
    };
    app.exports
        .start(app.clone(), spec, max_running)
        .map_err(|e| match e {
            ExportError::InvalidPath(m) => ServiceError::new(ErrorCode::InvalidArgument, m),
            ExportError::TooManyJobs(m) => ServiceError::new(ErrorCode::RateLimited, m),
            ExportError::Io(m) => {
                tracing::error!(error = %m, "starting an export job");
                ServiceError::internal("the server could not create the export file; see its log")
            }
        })
}

/// One of the tenant's jobs (role `read`); another tenant's is not found.
pub fn status(app: &AppState, ctx: &Context, id: &str) -> Result<Arc<Job>, ServiceError> {
    let tenant = ctx.tenant_for(Role::Read)?;
    if id.is_empty() {
        return Err(ServiceError::invalid("job_id", "required"));
    }
    app.exports
        .get(&tenant, id)
        .ok_or_else(|| ServiceError::not_found(format!("no export job {id:?}")))
}
