//! `skald bench`: measures the server as its users see it.
//!
//! One command generates a realistic log dataset from a seed, starts
//! `skald serve` as a child process (or targets a running server with
//! `--addr`), pushes the dataset through Loki's push API with concurrent
//! clients, and reports ingest throughput, the server's peak memory, the
//! bytes on disk after a flush (against plain zstd on the same lines) and the
//! latency of two typical queries, before and after a restart. The results
//! are Markdown tables; `--write-md` appends them, with the machine and the
//! method, to a benchmarks file.
//!
//! Not a load test of many tenants or a soak test, and not a comparison
//! with Loki: one server, one dataset, the figures a user asks about first.
//!
//! Parts: [`dataset`] makes the lines, [`ingest`] encodes and pushes them,
//! [`target`] runs and observes the server, [`query`] times the queries,
//! [`report`] writes the results.

mod dataset;
mod ingest;
mod otlp;
mod query;
mod report;
mod tail;
mod target;

use anyhow::{Context, bail};
use clap::Args;
use dataset::{Dataset, Format, ID_SEARCH_TEXT, TAIL_INSTANCE, TAIL_JOB};
use query::{Expect, QuerySpec};
use report::{DatasetFigures, Machine, Results};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use target::{ChildServer, DiskUsage, MemorySample, ServerCounters};

#[derive(Args, Debug)]
#[command(after_long_help = report::METHOD)]
pub struct BenchArgs {
    /// Lines in the dataset.
    #[arg(long, default_value_t = 5_000_000, value_parser = clap::value_parser!(u64).range(10..))]
    pub lines: u64,
    /// Concurrent push clients.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub clients: u64,
    /// Lines per push request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub batch_lines: u64,
    /// Time span of the dataset, in minutes, ending when the run starts.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=24 * 60 * 6))]
    pub span_minutes: u64,
    /// Seed of the dataset generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Warm runs of each query, after the cold one.
    #[arg(long, default_value_t = 10)]
    pub warm_runs: usize,
    /// Benchmark a running server at this URL (e.g. `http://127.0.0.1:3100`)
    /// instead of starting one; memory, disk and restart are then not measured.
    #[arg(long)]
    pub addr: Option<String>,
    /// Tenant to push and query as (the `X-Scope-OrgID` header). Default:
    /// none for a child server; a new `skald-bench-<unix seconds>` with `--addr`.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Directory for the child server's data and log; must not exist or be
    /// empty, and is kept. Default: a new directory under the system's
    /// temporary directory, removed at the end unless `--keep`.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory (data and server log) after the run; a failed
    /// run always keeps it.
    #[arg(long)]
    pub keep: bool,
    /// Extra argument for the child `skald serve`, repeatable
    /// (e.g. `--server-arg=--fsync=interval`).
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    pub server_args: Vec<String>,
    /// Lines of the dataset also pushed as OpenTelemetry log records to
    /// `/otlp/v1/logs` (a tenant of their own, after everything else is
    /// measured), for the OTLP ingest rate; 0 skips it.
    #[arg(long, default_value_t = 1_000_000)]
    pub otlp_lines: u64,
    /// Append the results, with machine, date and method, to this Markdown
    /// file (created if missing).
    #[arg(long)]
    pub write_md: Option<PathBuf>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let now_ns = i64::try_from(started.as_nanos()).context("the clock is past 2262")?;
    let span = Duration::from_secs(args.span_minutes * 60);
    // A second of margin: every line is in the past when it arrives.
    let end_ns = now_ns - 1_000_000_000;
    let ds = Dataset::new(args.seed, args.lines, end_ns, span.as_nanos() as i64);
    let batch_lines = args.batch_lines as usize;
    let clients = args.clients as usize;
    if cfg!(debug_assertions) {
        eprintln!("bench: warning: a debug build; the figures are not representative");
    }

    eprintln!(
        "bench: generating and encoding {} lines",
        report::int(ds.lines)
    );
    let mut prepared = ingest::prepare(&ds, batch_lines)?;
    eprintln!(
        "bench: {} raw, {} requests of protobuf + snappy ({}) in {}",
        report::mb(prepared.raw_bytes),
        report::int(prepared.bodies.len() as u64),
        report::mb(prepared.body_bytes),
        report::secs(prepared.took)
    );

    let client = ingest::http_client()?;
    let mut work = None;
    let mut server = None;
    let base_url = match &args.addr {
        Some(addr) => addr.trim_end_matches('/').to_string(),
        None => {
            let dir = WorkDir::create(args.work_dir.clone(), args.keep)?;
            let mut child = ChildServer::new(
                dir.path.join("data"),
                dir.path.join("server.log"),
                args.server_args.clone(),
            )?;
            eprintln!("bench: starting the server in {}", dir.path.display());
            child.start(&client)?;
            let url = child.base_url();
            work = Some(dir);
            server = Some(child);
            url
        }
    };
    // A running server may hold an earlier run's streams, whose newer
    // entries would make this run's too old to accept: a tenant of its own.
    let tenant = match (&args.tenant, &args.addr) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(_)) => Some(format!("skald-bench-{}", started.as_secs())),
        (None, None) => None,
    };
    let tenant = tenant.as_deref();

    eprintln!("bench: pushing with {clients} clients");
    let push_url = format!("{base_url}/loki/api/v1/push");
    let stop_sampling = AtomicBool::new(false);
    let pid = server.as_ref().and_then(ChildServer::pid);
    let stop = &stop_sampling;
    let (push, memory_ingest) = std::thread::scope(|scope| {
        let sampler = pid.map(|pid| scope.spawn(move || target::sample_memory(pid, stop)));
        let push = ingest::push_all(&push_url, tenant, &prepared.bodies, clients);
        stop_sampling.store(true, Ordering::Relaxed);
        let memory = sampler.map(|s| s.join().expect("memory sampler panicked"));
        (push, memory)
    });
    let push = push?;
    push.fail_on_errors("push")?;
    eprintln!(
        "bench: pushed in {} ({} lines/s)",
        report::secs(push.wall),
        report::int((ds.lines as f64 / push.wall.as_secs_f64().max(1e-9)) as u64)
    );
    // The bodies are done with: give their memory back before the queries.
    prepared.bodies = Vec::new();

    let disk_before_flush = match &server {
        Some(s) => Some(DiskUsage::measure(&s.data_dir)?),
        None => None,
    };
    // Only a server of our own has no other data in its counters.
    let counters = server
        .as_ref()
        .map(|_| ServerCounters::read(&client, &base_url));
    let specs = query_specs(&ds, &prepared, args.warm_runs);
    let mut queries = Vec::new();
    eprintln!("bench: querying");
    for spec in &specs {
        queries.push(query::run(
            &client,
            &base_url,
            tenant,
            spec,
            "after ingest",
            server.as_ref().and_then(|s| s.pid()),
        )?);
    }

    let mut memory_before_stop = None;
    let mut memory_shutdown = None;
    let mut memory_after_restart = None;
    let mut disk_after_flush = None;
    let mut disk_after_compaction = None;
    let mut compaction_took = None;
    let mut tail_latency = None;
    let mut shutdown = None;
    let mut restart_ready = None;
    if let Some(child) = server.as_mut() {
        // Each query reset the peak: the overall one is the largest seen.
        memory_before_stop = queries
            .iter()
            .filter_map(|q| q.memory_before)
            .chain(child.pid().and_then(MemorySample::read))
            .reduce(MemorySample::max);
        eprintln!("bench: stopping the server (it flushes)");
        let (took, memory) = child.stop()?;
        shutdown = Some(took);
        memory_shutdown = Some(memory);
        disk_after_flush = Some(DiskUsage::measure(&child.data_dir)?);
        eprintln!("bench: restarting the server");
        restart_ready = Some(child.start(&client)?);
        eprintln!("bench: waiting for compactions");
        compaction_took = Some(wait_for_compactions(&client, &base_url)?);
        disk_after_compaction = Some(DiskUsage::measure(&child.data_dir)?);
        for spec in &specs {
            queries.push(query::run(
                &client,
                &base_url,
                tenant,
                spec,
                "after restart",
                child.pid(),
            )?);
        }
        eprintln!("bench: measuring live tail latency");
        tail_latency = Some(tail::measure(&child.grpc_url(), tenant, 200)?);
        memory_after_restart = queries
            .iter()
            .filter(|q| q.phase == "after restart")
            .filter_map(|q| q.memory_before)
            .chain(child.pid().and_then(MemorySample::read))
            .reduce(MemorySample::max);
    }

    let otlp = match args.otlp_lines {
        0 => None,
        n => Some(otlp_run(
            &client,
            &base_url,
            tenant,
            &ds,
            n,
            batch_lines,
            clients,
        )?),
    };
    if let Some(child) = server.as_mut() {
        child.stop()?;
    }

    let results = Results {
        command: command_line(),
        date: date(now_ns),
        machine: Machine::this(),
        release_build: !cfg!(debug_assertions),
        target: match &args.addr {
            Some(addr) => format!(
                "already running at {addr}, tenant {}",
                tenant.unwrap_or("(none)")
            ),
            None if args.server_args.is_empty() => {
                "a child `skald serve` (this binary), default configuration".to_string()
            }
            None => format!(
                "a child `skald serve` (this binary) with `{}`",
                args.server_args.join(" ")
            ),
        },
        dataset: DatasetFigures {
            lines: ds.lines,
            streams: ds.streams.len(),
            raw_bytes: prepared.raw_bytes,
            lines_per_format: prepared.lines_per_format,
            bytes_per_format: prepared.bytes_per_format,
            span,
            needle: ds.needle.clone(),
            needles: dataset::NEEDLES,
            batch_lines,
            batches: push.requests,
            body_bytes: prepared.body_bytes,
            zstd_reference_bytes: prepared.zstd_reference_bytes,
            prepare_took: prepared.took,
            seed: ds.seed,
        },
        clients,
        push,
        counters,
        memory_ingest,
        memory_before_stop,
        memory_shutdown,
        memory_after_restart,
        disk_before_flush,
        disk_after_flush,
        disk_after_compaction,
        compaction_took,
        tail_latency,
        shutdown,
        restart_ready,
        queries,
        otlp,
    };
    println!("{}", results.tables());
    if let Some(path) = &args.write_md {
        report::append_section(path, &results.section())?;
        eprintln!("bench: results appended to {}", path.display());
    }
    drop(server);

    let mut wrong: Vec<String> = results
        .queries
        .iter()
        .filter_map(|q| {
            q.problem
                .as_ref()
                .map(|p| format!("{} ({}): {p}", q.name, q.phase))
        })
        .collect();
    if let Some(ingested) = counters.and_then(|c| c.ingested_entries)
        && ingested != ds.lines
    {
        wrong.push(format!(
            "the server counted {ingested} ingested entries, {} were pushed",
            ds.lines
        ));
    }
    if !wrong.is_empty() {
        bail!("wrong answers: {}", wrong.join("; "));
    }
    if let Some(w) = work.as_mut() {
        w.succeeded = true;
    }
    Ok(())
}

/// Pushes the dataset's first `lines` lines as OTLP records to a tenant of
/// their own and checks the server stored them all.
fn otlp_run(
    client: &reqwest::blocking::Client,
    base_url: &str,
    tenant: Option<&str>,
    ds: &Dataset,
    lines: u64,
    batch_lines: usize,
    clients: usize,
) -> anyhow::Result<report::OtlpFigures> {
    let prepared = otlp::prepare(ds, lines, batch_lines)?;
    eprintln!(
        "bench: {} lines as {} OTLP requests ({}), pushing with {clients} clients",
        report::int(prepared.lines),
        report::int(prepared.bodies.len() as u64),
        report::mb(prepared.body_bytes)
    );
    let otlp_tenant = format!("{}-otlp", tenant.unwrap_or("skald-bench"));
    let push = ingest::push_all(
        &format!("{base_url}/otlp/v1/logs"),
        Some(&otlp_tenant),
        &prepared.bodies,
        clients,
    )?;
    push.fail_on_errors("OTLP")?;
    otlp::check_stored(client, base_url, &otlp_tenant, ds, prepared.lines)?;
    eprintln!(
        "bench: OTLP pushed in {} ({} lines/s)",
        report::secs(push.wall),
        report::int((prepared.lines as f64 / push.wall.as_secs_f64().max(1e-9)) as u64)
    );
    Ok(report::OtlpFigures {
        lines: prepared.lines,
        raw_bytes: prepared.raw_bytes,
        body_bytes: prepared.body_bytes,
        push,
    })
}

/// The needle search over everything, an id search that reads everything,
/// the newest lines of one stream, parse-and-filter log queries, and the
/// metric queries users put on dashboards.
fn query_specs(ds: &Dataset, prepared: &ingest::Prepared, warm_runs: usize) -> Vec<QuerySpec> {
    let start_ns = ds.start_ns - 1_000_000_000;
    let end_ns = ds.end_ns + 1_000_000_000;
    let tail = ds
        .streams
        .iter()
        .position(|s| s.job == TAIL_JOB && s.instance == TAIL_INSTANCE)
        .expect("the dataset has the tail stream");
    let tail = &prepared.streams[tail];
    let limit = 100;
    // A log query over the whole range, newest first.
    let log = |name: &'static str, query: String, expect: Expect| QuerySpec {
        name,
        query,
        start_ns,
        end_ns,
        limit,
        direction: "backward",
        step_secs: None,
        warm_runs,
        expect,
    };
    // A metric query; each run reads everything, so fewer runs.
    let metric = |name: &'static str, query: &str, step_secs: u64, expect: Expect| QuerySpec {
        step_secs: Some(step_secs),
        warm_runs: warm_runs.min(5),
        ..log(name, query.to_string(), expect)
    };
    // Evaluation times `start_ns + k * step` whose 5-minute windows cover
    // every line exactly once.
    let step_ns = COUNT_STEP_SECS as i64 * 1_000_000_000;
    let counted_end = start_ns + (end_ns - start_ns + step_ns - 1) / step_ns * step_ns;
    let count = |name, query, format: Format| QuerySpec {
        end_ns: counted_end,
        ..metric(
            name,
            query,
            COUNT_STEP_SECS,
            Expect::Total {
                by: "level",
                total: prepared.lines_per_format[format.index()],
            },
        )
    };
    vec![
        log(
            "needle",
            format!(r#"{{job=~".+"}} |= "{}""#, ds.needle),
            Expect::LinesContaining {
                count: dataset::NEEDLES,
                text: ds.needle.clone(),
            },
        ),
        QuerySpec {
            // Each run reads everything: a few are enough.
            warm_runs: warm_runs.min(3),
            ..log(
                "id search",
                format!(r#"{{job=~".+"}} |= "{ID_SEARCH_TEXT}""#),
                Expect::LinesContaining {
                    count: (prepared.id_search_matches as usize).min(limit),
                    text: ID_SEARCH_TEXT.to_string(),
                },
            )
        },
        log(
            "newest 100",
            format!(r#"{{job="{TAIL_JOB}", instance="{TAIL_INSTANCE}"}}"#),
            Expect::Newest {
                count: (tail.lines as usize).min(limit),
                newest_ns: tail.last_ts,
            },
        ),
        // Parse-and-filter log queries: a user looking for slow failures.
        log(
            "json filter",
            r#"{namespace="shop"} | json | level="error" | latency_ms > 1000"#.into(),
            Expect::SomeLinesContaining {
                most: limit,
                text: r#""level":"error""#.into(),
            },
        ),
        log(
            "logfmt filter",
            r#"{namespace="jobs"} | logfmt | level="error" | duration > 1s"#.into(),
            Expect::SomeLinesContaining {
                most: limit,
                text: "level=error".into(),
            },
        ),
        // Metric queries over the whole range. With the step equal to the
        // range, windows tile time, so the counts add up to the lines.
        count(
            "logfmt count by level",
            r#"sum by (level) (count_over_time({namespace="jobs"} | logfmt [5m]))"#,
            Format::Logfmt,
        ),
        count(
            "json count by level",
            r#"sum by (level) (count_over_time({namespace="shop"} | json [5m]))"#,
            Format::Json,
        ),
        metric(
            "topk paths",
            r#"topk(10, sum by (path) (rate({job="apache"} | pattern "<_> <_> <_> [<_>] \"<_> <path> <_>\" <status> <_>" [1m])))"#,
            60,
            Expect::Series {
                by: "path",
                per_step: Some(10),
            },
        ),
        metric(
            "p99 latency",
            r#"quantile_over_time(0.99, {namespace="shop"} | json | unwrap latency_ms | __error__="" [5m]) by (service)"#,
            60,
            Expect::Series {
                by: "service",
                per_step: None,
            },
        ),
    ]
}

/// The step (and range) of the counting metric queries.
const COUNT_STEP_SECS: u64 = 300;

/// The command as typed, with the program shortened to `skald`.
/// Waits until the server reports no compaction running or pending twice in
/// a row, half a second apart.
fn wait_for_compactions(
    client: &reqwest::blocking::Client,
    base_url: &str,
) -> anyhow::Result<Duration> {
    let started = std::time::Instant::now();
    let mut idle = 0;
    while idle < 2 {
        match ServerCounters::read(client, base_url).compaction_pending {
            Some(0) => idle += 1,
            Some(_) => idle = 0,
            None => bail!("the server's /metrics has no skald_compaction_pending"),
        }
        if started.elapsed() > Duration::from_secs(1800) {
            bail!("compactions still pending after 30 minutes");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(started.elapsed())
}

fn command_line() -> String {
    std::iter::once("skald".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ")
}

/// `2024-05-01 12:34 UTC`
fn date(ns: i64) -> String {
    let t = dataset::Utc::from_ns(ns);
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        t.year, t.month, t.day, t.hour, t.minute
    )
}

/// The child server's directory: its data and its log. Removed at the end
/// of a successful run unless kept; a failed run keeps it for a look.
struct WorkDir {
    path: PathBuf,
    keep: bool,
    succeeded: bool,
}

impl WorkDir {
    fn create(path: Option<PathBuf>, keep: bool) -> anyhow::Result<WorkDir> {
        let (path, keep) = match path {
            Some(p) => {
                if p.exists() && std::fs::read_dir(&p)?.next().is_some() {
                    bail!("the work directory {} is not empty", p.display());
                }
                (p, true)
            }
            None => {
                let nanos = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                let p = std::env::temp_dir()
                    .join(format!("skald-bench-{}-{nanos:09}", std::process::id()));
                (p, keep)
            }
        };
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(WorkDir {
            path,
            keep,
            succeeded: false,
        })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep || !self.succeeded {
            eprintln!("bench: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
