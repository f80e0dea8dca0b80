//! The audit log: one JSON line per query, tail, export, delete, token
//! change, limit change and refused request.
//!
//! Written here, in the service layer, so no endpoint can leave it out:
//! the operations that read or change data run inside
//! [`Context::audited`](super::Context::audited), which records the
//! action, its target and parameters, the outcome and what it returned;
//! [`super::Context::authorize`] records a refused authorisation of any
//! other operation; `auth::context` records a refused authentication
//! (401) before any operation is chosen. Who and from where come from the
//! context: the token's names and ids (never the token), the tenant(s),
//! the protocol, route and remote address (`crate::observe`).
//!
//! One record:
//!
//! ```json
//! {"time":"2026-12-07T01:02:03.456789012Z","time_ns":1796..., "protocol":"http",
//!  "route":"/loki/api/v1/query_range","remote":"10.0.0.7:51234","tenant":"team-a",
//!  "subject":"grafana","token_ids":["9f3c..."],"action":"query",
//!  "target":"{app=\"api\"} |= \"error\"","params":{"start_ns":..,"end_ns":..,"limit":100},
//!  "result":"ok","code":null,"status":200,"message":null,
//!  "entries":100,"bytes":12800,"duration_ms":4.2}
//! ```
//!
//! `result` is `ok`, `refused` (the client's fault or not allowed:
//! `code` names the [`ErrorCode`], `status` its HTTP status) or `error`
//! (the server's fault). Token and limit changes have the subject
//! `tokens.json` or `config`: they are made on the server's files.
//!
//! Where: `[audit] file` (or `--audit-log`), appended with one `write`
//! per record (a crash of the process loses none; the file is fsynced at
//! most once a second, so a power loss may lose the last second), rotated
//! when it passes `max_file_bytes` to `FILE.1` … `FILE.<max_files>`.
//! `[audit] tenant` also stores each record as a log line of that tenant
//! (labels `{source="audit", action="…", result="…"}`), so audits are
//! queryable with LogQL; that copy goes through a bounded queue and is
//! shed, counted in `skald_audit_write_failures_total`, rather than slow
//! requests down.

use super::{Context, ErrorCode, ServiceError};
use serde::{Deserialize, Serialize};
use skald_model::{Entry, Label, LabelSet, TenantId, Timestamp};
use skald_store::{Store, StreamBatch};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `[audit]` of the configuration file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// The audit log file (`--audit-log` overrides it). Unset: no file.
    pub file: Option<PathBuf>,
    /// Also store every record in this tenant of Skald itself.
    pub tenant: Option<String>,
    /// Rotate the file when it grows past this many bytes.
    pub max_file_bytes: u64,
    /// Rotated files kept (`FILE.1` is the newest).
    pub max_files: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            file: None,
            tenant: None,
            max_file_bytes: 100 * 1024 * 1024,
            max_files: 10,
        }
    }
}

/// Records queued for the audit tenant before new ones are shed.
const TENANT_QUEUE: usize = 4096;
/// The file is fsynced at most this often.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// One audit record (see the module's documentation).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Record {
    pub time: String,
    pub time_ns: i64,
    pub protocol: String,
    pub route: String,
    pub remote: Option<String>,
    pub tenant: String,
    pub subject: String,
    pub token_ids: Vec<String>,
    pub action: String,
    pub target: String,
    pub params: serde_json::Value,
    pub result: String,
    pub code: Option<String>,
    pub status: u16,
    pub message: Option<String>,
    pub entries: u64,
    pub bytes: u64,
    pub duration_ms: f64,
}

/// Where records go. The default writes nothing.
#[derive(Default)]
pub struct Audit {
    file: Option<Mutex<AuditFile>>,
    tenant: Option<SyncSender<Record>>,
    /// Records that could not be written (for `/metrics`).
    pub failures: std::sync::atomic::AtomicU64,
}

struct AuditFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: usize,
    synced: Instant,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

impl AuditFile {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        if self.synced.elapsed() >= SYNC_EVERY {
            self.file.sync_data()?;
            self.synced = Instant::now();
        }
        Ok(())
    }

    /// `FILE.(n-1)` → `FILE.n` … `FILE` → `FILE.1`, then a new `FILE`.
    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.sync_all()?;
        let numbered = |n: usize| {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{n}"));
            PathBuf::from(p)
        };
        if self.max_files == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            for n in (1..self.max_files).rev() {
                match std::fs::rename(numbered(n), numbered(n + 1)) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            std::fs::rename(&self.path, numbered(1))?;
        }
        self.file = open_append(&self.path)?;
        self.size = 0;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

impl Audit {
    /// Opens the file (created if missing, appended to) and starts the
    /// writer of the audit tenant.
    pub fn open(config: &AuditConfig, store: &Arc<Store>) -> Result<Audit, String> {
        let file = match &config.file {
            None => None,
            Some(path) => {
                let file = open_append(path).map_err(|e| format!("{}: {e}", path.display()))?;
                let size = file.metadata().map(|m| m.len()).unwrap_or(0);
                Some(Mutex::new(AuditFile {
                    path: path.clone(),
                    file,
                    size,
                    max_bytes: config.max_file_bytes.max(1024),
                    max_files: config.max_files,
                    synced: Instant::now(),
                }))
            }
        };
        let tenant = match &config.tenant {
            None => None,
            Some(t) => {
                let tenant = TenantId::new(t).map_err(|e| format!("[audit] tenant: {e}"))?;
                let (tx, rx) = std::sync::mpsc::sync_channel(TENANT_QUEUE);
                let store = store.clone();
                std::thread::Builder::new()
                    .name("skald-audit".into())
                    .spawn(move || store_records(&store, &tenant, rx))
                    .map_err(|e| format!("starting the audit writer: {e}"))?;
                Some(tx)
            }
        };
        Ok(Audit {
            file,
            tenant,
            failures: Default::default(),
        })
    }

    pub fn enabled(&self) -> bool {
        self.file.is_some() || self.tenant.is_some()
    }

    /// Writes one record; a failure is logged and counted, never the
    /// request's failure.
    fn write(&self, record: Record) {
        if let Some(file) = &self.file {
            let mut line = match serde_json::to_vec(&record) {
                Ok(l) => l,
                Err(e) => {
                    tracing::error!(error = %e, "encoding an audit record");
                    return;
                }
            };
            line.push(b'\n');
            let written = file.lock().unwrap_or_else(|e| e.into_inner()).write(&line);
            if let Err(e) = written {
                self.failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "writing the audit log");
            }
        }
        if let Some(tx) = &self.tenant {
            match tx.try_send(record) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The audit tenant's writer: records in batches of what is queued.
fn store_records(store: &Store, tenant: &TenantId, rx: Receiver<Record>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < 512 {
            match rx.try_recv() {
                Ok(r) => batch.push(r),
                Err(_) => break,
            }
        }
        let mut streams: Vec<StreamBatch> = Vec::new();
        for r in batch {
            let labels = LabelSet::new(vec![
                Label::new("source", "audit"),
                Label::new("action", r.action.as_str()),
                Label::new("result", r.result.as_str()),
            ]);
            let Ok(labels) = labels else {
                continue;
            };
            let Ok(line) = serde_json::to_string(&r) else {
                continue;
            };
            let entry = Entry::new(Timestamp(r.time_ns), line);
            match streams.iter_mut().find(|s| s.labels == labels) {
                Some(s) => s.entries.push(entry),
                None => streams.push(StreamBatch {
                    labels,
                    entries: vec![entry],
                }),
            }
        }
        if let Err(e) = store.push(tenant, streams) {
            tracing::warn!(error = %e, "storing audit records in the audit tenant");
        }
    }
}

/// What an audited operation returned: entries and bytes.
pub trait Returned {
    fn returned(&self) -> (u64, u64) {
        (0, 0)
    }
}

impl Returned for () {}
impl Returned for crate::tail::Tail {}
impl Returned for crate::delete::DeleteRequest {}
impl Returned for Arc<crate::export::Job> {}
impl Returned for super::export::Export {}

impl Returned for skald_query::LogResult {
    fn returned(&self) -> (u64, u64) {
        let mut entries = 0u64;
        let mut bytes = 0u64;
        for s in &self.streams {
            entries += s.entries.len() as u64;
            bytes += s.entries.iter().map(|e| e.line.len() as u64).sum::<u64>();
        }
        (entries, bytes)
    }
}

impl Returned for skald_query::MetricResult {
    /// Entries: the points returned.
    fn returned(&self) -> (u64, u64) {
        let points = match &self.output {
            skald_query::MetricOutput::Scalar(p) => p.len() as u64,
            skald_query::MetricOutput::Matrix(s) => s.iter().map(|s| s.points.len() as u64).sum(),
        };
        (points, 0)
    }
}

/// The result and code of an outcome.
fn outcome(err: Option<&ServiceError>) -> (&'static str, Option<String>, u16, Option<String>) {
    match err {
        None => ("ok", None, 200, None),
        Some(e) => {
            let result = match e.code {
                ErrorCode::Internal => "error",
                _ => "refused",
            };
            (
                result,
                Some(format!("{:?}", e.code)),
                e.code.http_status().as_u16(),
                Some(e.message.clone()),
            )
        }
    }
}

/// The context's part of a record: who, from where, which tenant.
pub(crate) struct Who<'a> {
    pub protocol: &'a str,
    pub route: &'a str,
    pub remote: Option<std::net::SocketAddr>,
    pub tenant: String,
    pub subject: String,
    pub token_ids: Vec<String>,
}

impl Who<'_> {
    fn of(ctx: &Context) -> Who<'_> {
        let (subject, token_ids) = match &ctx.principal {
            super::Principal::Anonymous => ("anonymous".to_string(), Vec::new()),
            super::Principal::Tokens(t) => (
                ctx.principal.subject(),
                t.iter().map(|r| r.id.clone()).collect(),
            ),
        };
        Who {
            protocol: ctx.request.protocol,
            route: &ctx.request.route,
            remote: ctx.request.remote,
            tenant: tenants_text(&ctx.tenants),
            subject,
            token_ids,
        }
    }
}

fn tenants_text(t: &[TenantId]) -> String {
    t.iter().map(TenantId::as_str).collect::<Vec<_>>().join("|")
}

/// One record, written.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write(
    audit: &Audit,
    who: Who<'_>,
    action: &str,
    target: String,
    params: serde_json::Value,
    err: Option<&ServiceError>,
    returned: (u64, u64),
    started: Option<Instant>,
) {
    if !audit.enabled() {
        return;
    }
    let now = Timestamp::now();
    let (result, code, status, message) = outcome(err);
    audit.write(Record {
        time: skald_model::format_rfc3339_nanos(now),
        time_ns: now.0,
        protocol: who.protocol.to_string(),
        route: who.route.to_string(),
        remote: who.remote.map(|a| a.to_string()),
        tenant: who.tenant,
        subject: who.subject,
        token_ids: who.token_ids,
        action: action.to_string(),
        target,
        params,
        result: result.to_string(),
        code,
        status,
        message,
        entries: returned.0,
        bytes: returned.1,
        duration_ms: started.map_or(0.0, |s| s.elapsed().as_secs_f64() * 1e3),
    });
}

/// A refused authentication (no, unknown or expired token): before any
/// operation, so the record names the route.
pub(crate) fn refused_authentication(
    request: &super::RequestMeta,
    org_id: Option<&str>,
    err: &ServiceError,
) {
    let who = Who {
        protocol: request.protocol,
        route: &request.route,
        remote: request.remote,
        tenant: org_id.unwrap_or_default().to_string(),
        subject: String::new(),
        token_ids: Vec::new(),
    };
    write(
        &request.audit,
        who,
        "authenticate",
        request.route.clone(),
        serde_json::Value::Null,
        Some(err),
        (0, 0),
        None,
    );
}

/// A refused authorisation of an operation that is not audited itself.
pub(crate) fn refused_authorization(ctx: &Context, err: &ServiceError) {
    write(
        &ctx.request.audit,
        Who::of(ctx),
        "authorize",
        ctx.request.route.clone(),
        serde_json::Value::Null,
        Some(err),
        (0, 0),
        None,
    );
}

/// A change made on the server's files: tokens (`tokens.json`) or limits
/// (the configuration file).
pub fn system(
    audit: &Audit,
    subject: &str,
    action: &str,
    target: String,
    params: serde_json::Value,
) {
    let who = Who {
        protocol: "",
        route: "",
        remote: None,
        tenant: String::new(),
        subject: subject.to_string(),
        token_ids: Vec::new(),
    };
    write(audit, who, action, target, params, None, (0, 0), None);
}

impl Context {
    /// Runs an operation and writes its audit record: `action`, its
    /// `target` (query text, selector, job id), `params` (range, limit,
    /// destination …), the outcome and what it returned. An authorisation
    /// refused inside is recorded here, once, with the action.
    pub async fn audited<T: Returned>(
        &self,
        action: &str,
        target: impl Into<String>,
        params: serde_json::Value,
        op: impl std::future::Future<Output = Result<T, ServiceError>>,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        self.request.audited.store(true, Ordering::Relaxed);
        let result = op.await;
        self.record(action, target.into(), params, started, &result);
        result
    }

    /// [`Context::audited`] for an operation that does not wait.
    pub fn audited_now<T: Returned>(
        &self,
        action: &str,
        target: impl Into<String>,
        params: serde_json::Value,
        op: impl FnOnce() -> Result<T, ServiceError>,
    ) -> Result<T, ServiceError> {
        let started = Instant::now();
        self.request.audited.store(true, Ordering::Relaxed);
        let result = op();
        self.record(action, target.into(), params, started, &result);
        result
    }

    fn record<T: Returned>(
        &self,
        action: &str,
        target: String,
        params: serde_json::Value,
        started: Instant,
        result: &Result<T, ServiceError>,
    ) {
        let returned = result.as_ref().map_or((0, 0), Returned::returned);
        write(
            &self.request.audit,
            Who::of(self),
            action,
            target,
            params,
            result.as_ref().err(),
            returned,
            Some(started),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_past_its_size_keeping_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let mut f = AuditFile {
            path: path.clone(),
            file: open_append(&path).unwrap(),
            size: 0,
            max_bytes: 100,
            max_files: 2,
            synced: Instant::now(),
        };
        let line = [b'x'; 60];
        for _ in 0..5 {
            f.write(&line).unwrap();
        }
        let len = |p: &str| std::fs::metadata(dir.path().join(p)).map(|m| m.len()).ok();
        assert_eq!(len("audit.log"), Some(60));
        assert_eq!(len("audit.log.1"), Some(60));
        assert_eq!(len("audit.log.2"), Some(60));
        assert_eq!(
            len("audit.log.3"),
            None,
            "only max_files rotated files are kept"
        );
    }
}
