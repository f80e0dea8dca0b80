//! Exports: a query's entries in time order, in chunks, from a cursor;
//! streamed to a gRPC client or written by a background job to a file
//! (NDJSON, JSON or CSV, optionally gzip) whose progress can be asked for.
//!
//! The cursor is `<timestamp ns>:<entries at that timestamp already
//! sent>`, so a resumed export neither repeats nor skips entries that
//! share a timestamp (entries are ordered by time, stream, line).
//!
//! Export files are written only to `<data_dir>/exports/<tenant>/`, under
//! a plain file name the client may choose ([`check_file_name`]: no `/`,
//! no `..`, not absolute), created new with `O_NOFOLLOW` so neither an
//! existing file nor a planted symbolic link is ever opened. Job status is
//! persisted beside them ([`Exports`]) and survives a restart.
//!
//! Not here: who may export (`service::export`), the query engine
//! (`skald_query`), gRPC types (`grpc`).

use crate::AppState;
use crate::service::ServiceError;
use crate::service::query::{ParsedLogQuery, plain_streams, run_logs, with_tenant_label};
use serde::{Deserialize, Serialize};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_query::Direction;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where an export resumes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    pub ts: i64,
    pub skip: u64,
}

impl Cursor {
    pub fn parse(text: &str) -> Option<Cursor> {
        let (ts, skip) = text.split_once(':')?;
        Some(Cursor {
            ts: ts.parse().ok()?,
            skip: skip.parse().ok()?,
        })
    }

    pub fn text(&self) -> String {
        format!("{}:{}", self.ts, self.skip)
    }
}

/// One chunk of an export.
pub struct Chunk {
    pub entries: Vec<(Arc<LabelSet>, Entry)>,
    pub next: Cursor,
    pub done: bool,
}

/// The next `size` entries at or after `from`, before `end`.
pub async fn next_chunk(
    app: &Arc<AppState>,
    tenants: &[TenantId],
    labelled: bool,
    query: &ParsedLogQuery,
    from: Cursor,
    end: Timestamp,
    size: usize,
) -> Result<Chunk, ServiceError> {
    let limit = size.saturating_add(from.skip as usize);
    // Several tenants (`a|b`; `labelled`, even when the selector's
    // `__tenant_id__` kept one): each stream gains `__tenant_id__`, as in
    // a multi-tenant query, and the chunk is cut from all of them merged;
    // the export is done once every tenant's part is.
    let mut all: Vec<(Arc<LabelSet>, Entry)> = Vec::new();
    let mut got = 0;
    for tenant in tenants {
        let result = run_logs(
            app,
            tenant.clone(),
            query,
            Timestamp(from.ts),
            end,
            limit,
            Direction::Forward,
            0,
            false,
            None,
        )
        .await?;
        let before = all.len();
        for (labels, entries) in plain_streams(result) {
            let labels = Arc::new(if labelled {
                with_tenant_label(&labels, tenant)
            } else {
                labels
            });
            all.extend(entries.into_iter().map(|e| (labels.clone(), e)));
        }
        got = got.max(all.len() - before);
    }
    let got = all.len();
    all.sort_by(|a, b| (a.1.ts, &*a.0, &a.1.line).cmp(&(b.1.ts, &*b.0, &b.1.line)));
    let mut skip = from.skip;
    all.retain(|(_, e)| {
        if skip > 0 && e.ts.0 == from.ts {
            skip -= 1;
            return false;
        }
        true
    });
    all.truncate(size);
    let next = match all.last() {
        None => from,
        Some((_, last)) => {
            let same = all.iter().filter(|(_, e)| e.ts == last.ts).count() as u64;
            let carried = if last.ts.0 == from.ts { from.skip } else { 0 };
            Cursor {
                ts: last.ts.0,
                skip: same + carried,
            }
        }
    };
    Ok(Chunk {
        entries: all,
        next,
        done: got < limit,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Ndjson,
    Json,
    Csv,
}

impl Format {
    fn ext(self) -> &'static str {
        match self {
            Format::Ndjson => "ndjson",
            Format::Json => "json",
            Format::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
}

impl JobState {
    fn finished(self) -> bool {
        matches!(self, JobState::Completed | JobState::Failed)
    }
}

/// A background export and its progress.
pub struct Job {
    pub id: String,
    pub tenant: TenantId,
    pub path: PathBuf,
    pub started: Timestamp,
    pub entries: AtomicU64,
    pub bytes: Arc<AtomicU64>,
    /// Percent times 100.
    pub progress: AtomicU64,
    pub state: Mutex<(JobState, String, Timestamp)>,
}

/// A job as persisted in `<data_dir>/export_jobs/<tenant>/<id>.json`
/// (JSON, replaced atomically: temporary file, fsync, rename). Written
/// when a job starts and when it ends; a job found `pending` or `running`
/// when the server opens was cut short by a restart and becomes `failed`.
/// Over a shared catalog the same record is also written there, so every
/// node answers the job's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct JobRecord {
    id: String,
    tenant: String,
    path: PathBuf,
    started_ns: i64,
    state: JobState,
    error: String,
    finished_ns: i64,
    entries: u64,
    bytes: u64,
    /// Percent times 100.
    progress: u64,
}

impl Job {
    fn record(&self) -> JobRecord {
        let (state, error, finished) = self.state.lock().unwrap().clone();
        JobRecord {
            id: self.id.clone(),
            tenant: self.tenant.to_string(),
            path: self.path.clone(),
            started_ns: self.started.0,
            state,
            error,
            finished_ns: finished.0,
            entries: self.entries.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            progress: self.progress.load(Ordering::Relaxed),
        }
    }

    /// The job another node recorded in the shared catalog, as that node
    /// described it (its file is on that node's disk); None unless it is
    /// `tenant`'s job `id`.
    fn from_catalog(r: JobRecord, tenant: &TenantId, id: &str) -> Option<Job> {
        if r.tenant != tenant.as_str() || r.id != id {
            return None;
        }
        Some(Job {
            tenant: tenant.clone(),
            id: r.id,
            path: r.path,
            started: Timestamp(r.started_ns),
            entries: AtomicU64::new(r.entries),
            bytes: Arc::new(AtomicU64::new(r.bytes)),
            progress: AtomicU64::new(r.progress),
            state: Mutex::new((r.state, r.error, Timestamp(r.finished_ns))),
        })
    }

    /// The job of a record read from `<records>/<dir_tenant>/`, or None
    /// when the record does not describe a job this server could have
    /// written: its tenant is not the directory's, its id is not 16 hex
    /// digits, or its file name breaks [`check_file_name`]. A record is
    /// data, never trusted with a path: expiring a job removes its file
    /// and rewrites its record, so only the file's name is kept and the
    /// file is looked for in `<files>/<tenant>/` (which also follows a
    /// data directory that was moved or restored elsewhere).
    fn from_record(r: JobRecord, dir_tenant: &str, files: &std::path::Path) -> Option<Job> {
        if r.tenant != dir_tenant
            || r.id.len() != 16
            || !r.id.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let tenant = TenantId::new(&r.tenant).ok()?;
        let name = r.path.file_name()?.to_str()?;
        check_file_name(name).ok()?;
        let path = files.join(tenant.as_str()).join(name);
        Some(Job {
            tenant,
            id: r.id,
            path,
            started: Timestamp(r.started_ns),
            entries: AtomicU64::new(r.entries),
            bytes: Arc::new(AtomicU64::new(r.bytes)),
            progress: AtomicU64::new(r.progress),
            state: Mutex::new((r.state, r.error, Timestamp(r.finished_ns))),
        })
    }
}

/// Why an export job could not start.
#[derive(Debug)]
pub enum ExportError {
    /// `destination.path` breaks a rule (the message names it).
    InvalidPath(String),
    /// The tenant already runs its most jobs at once.
    TooManyJobs(String),
    /// The file system refused; the message is for the server's log.
    Io(String),
}

/// The background export jobs of a data directory.
///
/// Files go only to `<data_dir>/exports/<tenant>/`, under a plain file
/// name ([`check_file_name`]), created new and never through a symbolic
/// link; a tenant's jobs are found only with that tenant. Finished jobs
/// are kept for `retention`, then their record and file are removed.
pub struct Exports {
    /// `<data_dir>/exports`: one directory per tenant holds its files.
    files: PathBuf,
    /// `<data_dir>/export_jobs`: one directory per tenant holds its records.
    records: PathBuf,
    retention_ns: i64,
    jobs: Mutex<HashMap<(TenantId, String), Arc<Job>>>,
    /// The catalog shared by the nodes of a cluster, which keeps a copy of
    /// every record (see [`Exports::share_through`]).
    shared: Option<Arc<dyn skald_store::CatalogStore>>,
}

/// The rules a client-chosen export file name must follow, so that a job
/// can only ever create a new file in its tenant's export directory.
pub fn check_file_name(name: &str) -> Result<(), String> {
    let rule = if name.starts_with('/') || name.starts_with('\\') {
        "must be a file name, not an absolute path"
    } else if name.contains('/') || name.contains('\\') {
        "must be a file name without '/' (files are written to the tenant's export directory)"
    } else if name.contains("..") {
        "must not contain '..'"
    } else if name.starts_with('.') {
        "must not start with '.'"
    } else if name.len() > 200 {
        "must be at most 200 bytes long"
    } else if name.chars().any(char::is_control) {
        "must not contain control characters"
    } else {
        return Ok(());
    };
    Err(format!("destination.path {name:?} {rule}"))
}

/// Creates `path` as a new file, never following a symbolic link: an
/// existing file or link of that name is refused, not truncated.
fn create_new(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_NOFOLLOW)
        .mode(0o640)
        .open(path)
}

/// Makes `dir` (and its parents) a real directory, refusing one that is a
/// symbolic link.
fn real_dir(dir: &std::path::Path) -> Result<(), ExportError> {
    std::fs::create_dir_all(dir).map_err(|e| ExportError::Io(format!("{}: {e}", dir.display())))?;
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| ExportError::Io(format!("{}: {e}", dir.display())))?;
    if !meta.is_dir() {
        return Err(ExportError::InvalidPath(
            "the tenant's export directory is a symbolic link; the server does not follow it"
                .into(),
        ));
    }
    Ok(())
}

fn write_atomically(path: &std::path::Path, body: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Counts bytes on their way to the file.
struct Counting<W> {
    inner: W,
    bytes: Arc<AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn labels_map(ls: &LabelSet) -> serde_json::Map<String, serde_json::Value> {
    ls.labels()
        .iter()
        .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
        .collect()
}

/// One entry as a JSON object (NDJSON lines, JSON array items).
pub fn entry_json(labels: &LabelSet, e: &Entry) -> serde_json::Value {
    let mut o = serde_json::json!({
        "timestamp_ns": e.ts.0,
        "labels": labels_map(labels),
        "line": e.line,
    });
    if !e.metadata.is_empty() {
        o["structured_metadata"] = e
            .metadata
            .iter()
            .map(|l| (l.name.clone(), serde_json::Value::String(l.value.clone())))
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    o
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

type Sink = Box<dyn Write + Send>;

fn write_chunk(
    out: &mut Sink,
    format: Format,
    first: &mut bool,
    entries: &[(Arc<LabelSet>, Entry)],
) -> std::io::Result<()> {
    for (labels, e) in entries {
        match format {
            Format::Ndjson => {
                serde_json::to_writer(&mut *out, &entry_json(labels, e))?;
                out.write_all(b"\n")?;
            }
            Format::Json => {
                out.write_all(if *first { b"[\n" } else { b",\n" })?;
                serde_json::to_writer(&mut *out, &entry_json(labels, e))?;
            }
            Format::Csv => {
                if *first {
                    out.write_all(b"timestamp_ns,labels,line\n")?;
                }
                writeln!(
                    out,
                    "{},{},{}",
                    e.ts.0,
                    csv_field(&labels.to_string()),
                    csv_field(&e.line)
                )?;
            }
        }
        *first = false;
    }
    Ok(())
}

fn finish(mut out: Sink, format: Format, first: bool) -> std::io::Result<()> {
    match format {
        Format::Json if first => out.write_all(b"[]\n")?,
        Format::Json => out.write_all(b"\n]\n")?,
        Format::Csv if first => out.write_all(b"timestamp_ns,labels,line\n")?,
        _ => {}
    }
    out.flush()
}

/// What a background export is asked to do.
pub(crate) struct JobSpec {
    pub tenant: TenantId,
    pub query: ParsedLogQuery,
    pub start: Timestamp,
    pub end: Timestamp,
    pub chunk: usize,
    /// A file name in `<data_dir>/exports/<tenant>/` ([`check_file_name`]);
    /// empty: generated from the job id.
    pub path: String,
    pub format: Format,
    pub gzip: bool,
}

impl Exports {
    /// Loads the jobs recorded under `data_dir`: those cut short by a
    /// restart are marked failed, those finished longer than `retention`
    /// ago are removed with their files.
    pub fn open(data_dir: &std::path::Path, retention: Duration) -> Result<Exports, String> {
        let exports = Exports {
            files: data_dir.join("exports"),
            records: data_dir.join("export_jobs"),
            retention_ns: retention.as_nanos().min(i64::MAX as u128) as i64,
            jobs: Mutex::new(HashMap::new()),
            shared: None,
        };
        let tenants = match std::fs::read_dir(&exports.records) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(exports),
            Err(e) => return Err(format!("{}: {e}", exports.records.display())),
        };
        let mut loaded = HashMap::new();
        for dir in tenants {
            let dir = dir.map_err(|e| e.to_string())?.path();
            let dir_tenant = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let files = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for f in files {
                let f = f.map_err(|e| e.to_string())?.path();
                if f.extension().is_none_or(|x| x != "json") {
                    continue;
                }
                let record: Option<JobRecord> = std::fs::read(&f)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok());
                let Some(job) =
                    record.and_then(|r| Job::from_record(r, dir_tenant, &exports.files))
                else {
                    tracing::warn!(file = %f.display(), "ignoring an unreadable export job record");
                    continue;
                };
                let job = Arc::new(job);
                let interrupted = !job.state.lock().unwrap().0.finished();
                if interrupted {
                    *job.state.lock().unwrap() = (
                        JobState::Failed,
                        "interrupted by a server restart".into(),
                        Timestamp::now(),
                    );
                    exports.persist(&job);
                }
                loaded.insert((job.tenant.clone(), job.id.clone()), job);
            }
        }
        *exports.jobs.lock().unwrap() = loaded;
        exports.expire(Timestamp::now());
        Ok(exports)
    }

    /// Keeps a copy of every job record in `catalog` when it is shared by
    /// several nodes, so a job started on one is found on all (its file
    /// stays on the node that writes it). The records loaded at open are
    /// copied there now.
    pub fn share_through(mut self, catalog: &Arc<dyn skald_store::CatalogStore>) -> Exports {
        if catalog.shared() {
            self.shared = Some(catalog.clone());
            let jobs: Vec<Arc<Job>> = self.jobs.lock().unwrap().values().cloned().collect();
            for job in jobs {
                self.persist_shared(&job);
            }
        }
        self
    }

    /// The tenant's job `id`, this node's or (over a shared catalog)
    /// another node's; another tenant's job is not found either.
    pub fn get(&self, tenant: &TenantId, id: &str) -> Option<Arc<Job>> {
        let local = self
            .jobs
            .lock()
            .unwrap()
            .get(&(tenant.clone(), id.to_string()))
            .cloned();
        if local.is_some() {
            return local;
        }
        let catalog = self.shared.as_ref()?;
        let record = match catalog.export_job(tenant, id) {
            Ok(record) => record?,
            Err(e) => {
                tracing::warn!(job = %id, error = %e, "reading an export job from the catalog");
                return None;
            }
        };
        let record: JobRecord = serde_json::from_str(&record).ok()?;
        Job::from_catalog(record, tenant, id).map(Arc::new)
    }

    /// Copies the job's record into the shared catalog, if any; a failure
    /// is logged (the job goes on; other nodes see an older status).
    fn persist_shared(&self, job: &Job) {
        let Some(catalog) = &self.shared else {
            return;
        };
        let stored = serde_json::to_string(&job.record())
            .map_err(|e| e.to_string())
            .and_then(|r| {
                catalog
                    .put_export_job(&job.tenant, &job.id, &r)
                    .map_err(|e| e.to_string())
            });
        if let Err(e) = stored {
            tracing::warn!(job = %job.id, error = %e, "writing the export job record to the catalog");
        }
    }

    fn record_path(&self, tenant: &TenantId, id: &str) -> PathBuf {
        self.records
            .join(tenant.as_str())
            .join(format!("{id}.json"))
    }

    /// Writes the job's record; a failure is logged (the job itself goes
    /// on, its status is only lost across a restart).
    fn persist(&self, job: &Job) {
        let path = self.record_path(&job.tenant, &job.id);
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| {
                let body =
                    serde_json::to_vec_pretty(&job.record()).map_err(std::io::Error::other)?;
                write_atomically(&path, &body)
            });
        if let Err(e) = result {
            tracing::error!(job = %job.id, file = %path.display(), error = %e, "writing the export job record");
        }
        self.persist_shared(job);
    }

    /// Removes jobs finished more than the retention ago, with their files.
    fn expire(&self, now: Timestamp) {
        let mut jobs = self.jobs.lock().unwrap();
        let expired: Vec<(TenantId, String)> = jobs
            .iter()
            .filter(|(_, j)| {
                let (state, _, finished) = &*j.state.lock().unwrap();
                state.finished() && finished.0.saturating_add(self.retention_ns) < now.0
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            let Some(job) = jobs.remove(&key) else {
                continue;
            };
            if let Some(catalog) = &self.shared
                && let Err(e) = catalog.remove_export_job(&job.tenant, &job.id)
            {
                tracing::warn!(job = %job.id, error = %e, "removing an expired export job from the catalog");
            }
            for file in [job.path.clone(), self.record_path(&job.tenant, &job.id)] {
                match std::fs::remove_file(&file) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        tracing::warn!(file = %file.display(), error = %e, "removing an expired export")
                    }
                }
            }
            tracing::info!(job = %job.id, tenant = %job.tenant, "export job expired");
        }
    }

    /// Creates the file and starts the job, unless the tenant already runs
    /// `max_running` jobs.
    pub(crate) fn start(
        &self,
        app: Arc<AppState>,
        spec: JobSpec,
        max_running: usize,
    ) -> Result<Arc<Job>, ExportError> {
        let started = Timestamp::now();
        self.expire(started);
        let running = self
            .jobs
            .lock()
            .unwrap()
            .values()
            .filter(|j| j.tenant == spec.tenant && !j.state.lock().unwrap().0.finished())
            .count();
        if running >= max_running {
            return Err(ExportError::TooManyJobs(format!(
                "tenant {} already has {running} export jobs running (max_export_jobs: {max_running}); wait for one to finish",
                spec.tenant
            )));
        }
        let id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(
                format!("{}\u{0}{}\u{0}{}", spec.tenant, started.0, spec.path).as_bytes()
            )
        );
        let name = if spec.path.is_empty() {
            let gz = if spec.gzip { ".gz" } else { "" };
            format!("{id}.{}{gz}", spec.format.ext())
        } else {
            check_file_name(&spec.path).map_err(ExportError::InvalidPath)?;
            spec.path.clone()
        };
        let dir = self.files.join(spec.tenant.as_str());
        real_dir(&dir)?;
        let path = dir.join(&name);
        let file = create_new(&path).map_err(|e| {
            let is_link =
                std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink());
            if is_link || e.raw_os_error() == Some(libc::ELOOP) {
                ExportError::InvalidPath(format!(
                    "destination.path {name:?} is a symbolic link; the server does not follow it"
                ))
            } else if e.kind() == std::io::ErrorKind::AlreadyExists {
                ExportError::InvalidPath(format!(
                    "destination.path {name:?} already exists; export files are never overwritten"
                ))
            } else {
                ExportError::Io(format!("{}: {e}", path.display()))
            }
        })?;
        let bytes = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: std::io::BufWriter::new(file),
            bytes: bytes.clone(),
        };
        let sink: Sink = if spec.gzip {
            Box::new(flate2::write::GzEncoder::new(
                counted,
                flate2::Compression::default(),
            ))
        } else {
            Box::new(counted)
        };
        let job = Arc::new(Job {
            id: id.clone(),
            tenant: spec.tenant.clone(),
            path,
            started,
            entries: AtomicU64::new(0),
            bytes,
            progress: AtomicU64::new(0),
            state: Mutex::new((JobState::Pending, String::new(), Timestamp(0))),
        });
        self.persist(&job);
        self.jobs
            .lock()
            .unwrap()
            .insert((spec.tenant.clone(), id), job.clone());
        let j = job.clone();
        tokio::spawn(async move {
            let result = run_job(&app, &spec, &j, sink).await;
            {
                let mut st = j.state.lock().unwrap();
                match result {
                    Ok(()) => {
                        j.progress.store(10_000, Ordering::Relaxed);
                        *st = (JobState::Completed, String::new(), Timestamp::now());
                    }
                    Err(e) => {
                        tracing::warn!(job = %j.id, error = %e, "export failed");
                        *st = (JobState::Failed, e, Timestamp::now());
                    }
                }
            }
            app.exports.persist(&j);
        });
        Ok(job)
    }
}

async fn run_job(app: &Arc<AppState>, spec: &JobSpec, job: &Job, sink: Sink) -> Result<(), String> {
    job.state.lock().unwrap().0 = JobState::Running;
    app.exports.persist(job);
    let mut cursor = Cursor {
        ts: spec.start.0,
        skip: 0,
    };
    let mut sink = Some(sink);
    let mut first = true;
    let span = (spec.end.0 as i128 - spec.start.0 as i128).max(1);
    loop {
        let chunk = next_chunk(
            app,
            std::slice::from_ref(&spec.tenant),
            false,
            &spec.query,
            cursor,
            spec.end,
            spec.chunk,
        )
        .await
        .map_err(|e| e.message)?;
        let n = chunk.entries.len() as u64;
        let mut out = sink.take().expect("sink");
        let format = spec.format;
        let (out, f) = tokio::task::spawn_blocking(move || {
            let mut first = first;
            let r = write_chunk(&mut out, format, &mut first, &chunk.entries);
            (out, r.map(|_| first))
        })
        .await
        .map_err(|e| e.to_string())?;
        first = f.map_err(|e| format!("writing the export: {e}"))?;
        sink = Some(out);
        job.entries.fetch_add(n, Ordering::Relaxed);
        let covered = (chunk.next.ts as i128 - spec.start.0 as i128).clamp(0, span);
        job.progress
            .store((covered * 10_000 / span) as u64, Ordering::Relaxed);
        cursor = chunk.next;
        if chunk.done {
            break;
        }
    }
    let out = sink.take().expect("sink");
    let format = spec.format;
    tokio::task::spawn_blocking(move || finish(out, format, first))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("writing the export: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_file_names_are_plain_names() {
        for ok in ["out.ndjson", "a-b_c.csv.gz", "x"] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for (bad, rule) in [
            ("/etc/passwd", "absolute"),
            ("../x", "'/'"),
            ("a/b", "'/'"),
            ("a\\b", "'/'"),
            ("..", "'..'"),
            ("x..y", "'..'"),
            (".hidden", "'.'"),
            ("a\u{0}b", "control"),
        ] {
            let e = check_file_name(bad).unwrap_err();
            assert!(
                e.contains("destination.path") && e.contains(rule),
                "{bad}: {e}"
            );
        }
        assert!(check_file_name(&"x".repeat(201)).is_err());
    }

    /// A record naming a file outside the tenant's export directory (or
    /// another tenant, or an id that is a path) is ignored at open, and
    /// expiring it removes nothing outside the data directory.
    #[test]
    fn job_records_never_name_files_outside_the_export_directory() {
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let data = tempfile::tempdir().unwrap();
        let records = data.path().join("export_jobs").join("a");
        std::fs::create_dir_all(&records).unwrap();
        let now = Timestamp::now().0;
        let record = |id: &str, tenant: &str, path: &std::path::Path| {
            serde_json::json!({
                "id": id, "tenant": tenant, "path": path, "started_ns": now,
                "state": "completed", "error": "", "finished_ns": now,
                "entries": 0, "bytes": 0, "progress": 10000,
            })
            .to_string()
        };
        let kept = data.path().join("exports/a/out.ndjson");
        for (file, body) in [
            ("1.json", record("00000000000000aa", "a", &victim)),
            ("2.json", record("00000000000000bb", "b", &kept)),
            ("3.json", record("../../../x", "a", &kept)),
            (
                "4.json",
                record("00000000000000cc", "a", &outside.path().join("..")),
            ),
            (
                "5.json",
                record("00000000000000dd", "a", &data.path().join("x/ok.csv")),
            ),
        ] {
            std::fs::write(records.join(file), body).unwrap();
        }
        let exports = Exports::open(data.path(), Duration::from_secs(3600)).unwrap();
        let a = TenantId::new("a").unwrap();
        assert!(exports.get(&a, "00000000000000aa").is_some());
        assert_eq!(
            exports.get(&a, "00000000000000aa").unwrap().path,
            data.path().join("exports/a/victim")
        );
        assert!(
            exports
                .get(&TenantId::new("b").unwrap(), "00000000000000bb")
                .is_none()
        );
        assert!(exports.get(&a, "../../../x").is_none());
        assert!(exports.get(&a, "00000000000000cc").is_none());
        assert_eq!(
            exports.get(&a, "00000000000000dd").unwrap().path,
            data.path().join("exports/a/ok.csv")
        );

        // Retention 0: every loaded job expires and its file is removed.
        drop(exports);
        Exports::open(data.path(), Duration::ZERO).unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep");
    }

    #[test]
    fn create_new_refuses_existing_files_and_links() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(create_new(&link).is_err());
        assert!(create_new(&target).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(create_new(&dir.path().join("new")).is_ok());
    }
}
