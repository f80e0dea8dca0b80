//! Exports: a query's entries in time order, in chunks, from a cursor;
//! streamed to a gRPC client or written by a background job to a file
//! (NDJSON, JSON or CSV, optionally gzip) whose progress can be asked for.
//!
//! The cursor is `<timestamp ns>:<entries at that timestamp already
//! sent>`, so a resumed export neither repeats nor skips entries that
//! share a timestamp (entries are ordered by time, stream, line).
//!
//! Not here: the query engine (`skald_query`), gRPC types (`grpc`).

use crate::AppState;
use crate::grpc::query::{ParsedLogQuery, run_logs};
use skald_model::{Entry, LabelSet, TenantId, Timestamp};
use skald_query::Direction;
use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tonic::Status;

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
    tenant: &TenantId,
    query: &ParsedLogQuery,
    from: Cursor,
    end: Timestamp,
    size: usize,
) -> Result<Chunk, Status> {
    let limit = size.saturating_add(from.skip as usize);
    let result = run_logs(
        app.store.clone(),
        tenant.clone(),
        "query",
        query,
        Timestamp(from.ts),
        end,
        limit,
        Direction::Forward,
        None,
    )
    .await?;
    let mut all: Vec<(Arc<LabelSet>, Entry)> = Vec::new();
    for (labels, entries) in result.streams {
        let labels = Arc::new(labels);
        all.extend(entries.into_iter().map(|e| (labels.clone(), e)));
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Completed,
    Failed,
}

/// A background export and its progress.
pub struct Job {
    pub id: String,
    pub path: PathBuf,
    pub started: Timestamp,
    pub entries: AtomicU64,
    pub bytes: Arc<AtomicU64>,
    /// Percent times 100.
    pub progress: AtomicU64,
    pub state: Mutex<(JobState, String, Timestamp)>,
}

/// Background export jobs of this process.
#[derive(Default)]
pub struct Exports {
    jobs: Mutex<HashMap<String, Arc<Job>>>,
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
    /// Relative to `<data_dir>/exports`; empty: generated.
    pub path: String,
    pub format: Format,
    pub gzip: bool,
}

impl Exports {
    pub fn get(&self, id: &str) -> Option<Arc<Job>> {
        self.jobs.lock().unwrap().get(id).cloned()
    }

    /// Creates the file and starts the job.
    pub(crate) fn start(&self, app: Arc<AppState>, spec: JobSpec) -> Result<Arc<Job>, Status> {
        let started = Timestamp::now();
        let id = format!(
            "{:016x}",
            xxhash_rust::xxh3::xxh3_64(format!("{}\u{0}{}", spec.tenant, started.0).as_bytes())
        );
        let dir = app.store.config().data_dir.join("exports");
        let path = if spec.path.is_empty() {
            let gz = if spec.gzip { ".gz" } else { "" };
            dir.join(format!("{id}.{}{gz}", spec.format.ext()))
        } else {
            let p = PathBuf::from(&spec.path);
            if p.is_absolute() {
                p
            } else if p
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
            {
                return Err(crate::grpc::invalid(
                    "destination.path",
                    "a relative path may not leave the exports directory",
                ));
            } else {
                dir.join(p)
            }
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                crate::grpc::invalid("destination.path", format!("{}: {e}", parent.display()))
            })?;
        }
        let file = std::fs::File::create(&path).map_err(|e| {
            crate::grpc::invalid("destination.path", format!("{}: {e}", path.display()))
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
            path,
            started,
            entries: AtomicU64::new(0),
            bytes,
            progress: AtomicU64::new(0),
            state: Mutex::new((JobState::Pending, String::new(), Timestamp(0))),
        });
        self.jobs.lock().unwrap().insert(id, job.clone());
        let j = job.clone();
        tokio::spawn(async move {
            let result = run_job(&app, &spec, &j, sink).await;
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
        });
        Ok(job)
    }
}

async fn run_job(app: &Arc<AppState>, spec: &JobSpec, job: &Job, sink: Sink) -> Result<(), String> {
    job.state.lock().unwrap().0 = JobState::Running;
    let mut cursor = Cursor {
        ts: spec.start.0,
        skip: 0,
    };
    let mut sink = Some(sink);
    let mut first = true;
    let span = (spec.end.0 as i128 - spec.start.0 as i128).max(1);
    loop {
        let chunk = next_chunk(app, &spec.tenant, &spec.query, cursor, spec.end, spec.chunk)
            .await
            .map_err(|s| s.message().to_string())?;
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
