//! The results of a run, as Markdown: tables for the terminal, and a
//! section (machine, date, method, dataset, results) for a benchmarks file.
//!
//! Units: MB is 10^6 bytes; times are wall-clock times seen by the client.

use super::dataset::Format;
use super::ingest::PushOutcome;
use super::query::{QueryRun, percentile};
use super::target::{DiskUsage, MemorySample, ServerCounters};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Everything a run measured.
pub struct Results {
    pub command: String,
    pub date: String,
    pub machine: Machine,
    pub release_build: bool,
    /// "a child `skald serve` ..." or the address of the server.
    pub target: String,
    pub dataset: DatasetFigures,
    pub clients: usize,
    pub push: PushOutcome,
    /// The child's counters after ingest.
    pub counters: Option<ServerCounters>,
    /// The child's memory over the ingest run.
    pub memory_ingest: Option<MemorySample>,
    /// The child's memory from start to SIGTERM (ingest and queries).
    pub memory_before_stop: Option<MemorySample>,
    /// The child's memory until it exited (the shutdown flush included).
    pub memory_shutdown: Option<MemorySample>,
    /// The restarted child's memory after its queries.
    pub memory_after_restart: Option<MemorySample>,
    pub disk_before_flush: Option<DiskUsage>,
    pub disk_after_flush: Option<DiskUsage>,
    pub disk_after_compaction: Option<DiskUsage>,
    /// From ready after the restart until no compaction was pending.
    pub compaction_took: Option<std::time::Duration>,
    pub tail_latency: Option<super::tail::TailLatency>,
    pub shutdown: Option<Duration>,
    pub restart_ready: Option<Duration>,
    pub queries: Vec<QueryRun>,
    /// The OTLP push run, unless skipped.
    pub otlp: Option<OtlpFigures>,
}

/// What pushing part of the dataset as OTLP log records took.
pub struct OtlpFigures {
    pub lines: u64,
    pub raw_bytes: u64,
    pub body_bytes: u64,
    pub push: PushOutcome,
}

pub struct DatasetFigures {
    pub lines: u64,
    pub streams: usize,
    pub raw_bytes: u64,
    pub lines_per_format: [u64; 3],
    pub bytes_per_format: [u64; 3],
    pub span: Duration,
    pub needle: String,
    pub needles: usize,
    pub batch_lines: usize,
    pub batches: usize,
    pub body_bytes: u64,
    pub zstd_reference_bytes: u64,
    pub prepare_took: Duration,
    pub seed: u64,
}

/// The machine the run happened on.
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_bytes: u64,
    pub kernel: String,
}

impl Machine {
    pub fn this() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_else(|| "unknown CPU".to_string());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_bytes = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap_or(0)
            * 1024;
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_string());
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_bytes,
            kernel,
        }
    }
}

/// How the benchmark measures; shown by `--help` and in the report.
pub const METHOD: &str = "\
The dataset is generated from a seed: about a hundred streams (web servers \
writing the Apache combined log format, services writing JSON, background \
jobs writing logfmt; labels job, instance, env, region, and namespace for the \
services), timestamps increasing over the time span and ending now, and a \
needle token in exactly 10 lines. Each push request is a batch of consecutive \
lines grouped per stream, Loki's push.proto in protobuf compressed with \
snappy, as shippers send them; every body is encoded before the clock starts, \
so the ingest figures are about the server. The clients push the batches in \
order, each taking the next one, and every answer must be 204; they run on \
the same machine as the server and share its CPUs.

The server is a child `skald serve` on a fresh data directory, with its \
default configuration unless --server-arg says otherwise. Its memory is read \
from /proc/<pid>/status (VmHWM: the peak resident set) every 50 ms. After \
ingest the queries run against what the server has (head, WAL and any \
segments flushed so far); then the server gets SIGTERM, which flushes \
everything into segments, the bytes under the data directory are counted \
(segments, WAL, markers), and the server is started again on the same \
directory. There it finishes the compactions its policy asks for (a merge \
cut short by the stop is redone); once /metrics shows none pending, the \
bytes are counted again (\"after compaction\": the steady state) and the \
same queries run, now all from segments.

The physical reference for the bytes on disk is each stream's lines, each \
followed by a newline, compressed with plain zstd at level 3 (each stream on \
its own, sizes summed): what the same bytes take with no index, no \
timestamps and no framing.

Log queries, over the whole time range with limit 100: the needle search \
`{job=~\".+\"} |= \"<needle>\"`, which must return exactly the 10 needle lines; \
a search for an id, `{job=~\".+\"} |= \"424242\"`, whose trigrams are in \
almost every chunk, so that the server reads everything (a full scan; it \
must return the lines that contain it, up to the limit); the newest 100 lines of one busy stream \
(direction backward), whose first must be that stream's newest line; and two \
parse-and-filter queries (`| json | level=\"error\" | latency_ms > 1000`, \
`| logfmt | level=\"error\" | duration > 1s`), whose lines must all be errors. \
Metric queries, over the whole range: the lines of the logfmt and of the JSON \
streams counted by level (`sum by (level) (count_over_time(... [5m]))` with a \
5-minute step, so that windows tile time and the counts must add up to the \
lines of that format), the ten busiest Apache paths per minute (`topk` over a \
`pattern` parse), and each JSON service's 99th percentile latency \
(`quantile_over_time` over an `unwrap`). Latencies are client-side (request \
sent to answer received); the first run after ingest or restart is reported \
as `cold` (the page cache is warm all the same), then the warm runs. The \
chunk figures are the server's own statistics (`data.stats.querier`).

The OTLP ingest rate comes last, when nothing else is measured: the \
dataset's first lines (--otlp-lines) as OpenTelemetry log records, one \
resource per stream (job as service.name, instance as service.instance.id, \
namespace, region and env as Loki's default label attributes, the level \
label as severity, a trace and span id on each record), in \
ExportLogsServiceRequest protobuf bodies of the same batch size, pushed to \
/otlp/v1/logs in a tenant of their own by the same number of clients; every \
answer must be 200 and a count over the tenant must find every record.";

impl Results {
    /// Results tables, for the terminal.
    pub fn tables(&self) -> String {
        let mut out = String::new();
        self.dataset_table(&mut out);
        out.push('\n');
        self.results_table(&mut out);
        out.push('\n');
        self.queries_table(&mut out);
        out
    }

    /// A section for a benchmarks file.
    pub fn section(&self) -> String {
        let m = &self.machine;
        let mut out = String::new();
        writeln!(
            out,
            "## {}: {} lines, {} clients\n",
            self.date,
            int(self.dataset.lines),
            self.clients
        )
        .unwrap();
        writeln!(out, "### Machine\n").unwrap();
        writeln!(
            out,
            "{} CPUs ({}), {:.1} GiB memory, {}. Build: {}. Command: `{}`.\n",
            m.cpus,
            m.cpu_model,
            m.memory_bytes as f64 / (1u64 << 30) as f64,
            m.kernel,
            if self.release_build {
                "release"
            } else {
                "debug (figures not representative)"
            },
            self.command
        )
        .unwrap();
        writeln!(out, "### Method\n\n{METHOD}\n").unwrap();
        writeln!(out, "Server: {}.\n", self.target).unwrap();
        writeln!(out, "### Dataset\n").unwrap();
        self.dataset_table(&mut out);
        writeln!(out, "\n### Results\n").unwrap();
        self.results_table(&mut out);
        writeln!(out, "\n### Queries\n").unwrap();
        self.queries_table(&mut out);
        out
    }

    fn dataset_table(&self, out: &mut String) {
        let d = &self.dataset;
        let mix = Format::ALL
            .iter()
            .map(|f| {
                let i = f.index();
                format!(
                    "{} {:.1} % of lines ({} B per line)",
                    f.name(),
                    100.0 * d.lines_per_format[i] as f64 / d.lines as f64,
                    d.bytes_per_format[i]
                        .checked_div(d.lines_per_format[i])
                        .unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join(", ");
        let rows = [
            (
                "Lines",
                format!(
                    "{} in {} streams (seed {})",
                    int(d.lines),
                    d.streams,
                    d.seed
                ),
            ),
            (
                "Raw bytes",
                format!(
                    "{} ({} B per line)",
                    mb(d.raw_bytes),
                    d.raw_bytes / d.lines.max(1)
                ),
            ),
            ("Formats", mix),
            (
                "Time span",
                format!(
                    "{} minutes, ending when the run started",
                    d.span.as_secs() / 60
                ),
            ),
            ("Needle", format!("`{}` in {} lines", d.needle, d.needles)),
            (
                "Push requests",
                format!(
                    "{} of {} lines, protobuf + snappy, {} in all ({:.3} of raw); encoded before timing in {}",
                    int(d.batches as u64),
                    int(d.batch_lines as u64),
                    mb(d.body_bytes),
                    ratio(d.body_bytes, d.raw_bytes),
                    secs(d.prepare_took)
                ),
            ),
        ];
        table(out, ("Dataset", ""), &rows);
    }

    fn results_table(&self, out: &mut String) {
        let d = &self.dataset;
        let p = &self.push;
        let wall = p.wall.as_secs_f64().max(1e-9);
        let mut rows = vec![
            (
                "Ingest".to_string(),
                format!(
                    "**{} lines/s, {:.1} MB/s** of raw lines ({} clients, {})",
                    int((d.lines as f64 / wall) as u64),
                    d.raw_bytes as f64 / wall / 1e6,
                    self.clients,
                    secs(p.wall)
                ),
            ),
            (
                "Push latency".to_string(),
                format!(
                    "p50 {}, p99 {}, max {}",
                    opt_ms(percentile(&p.latencies, 50.0)),
                    opt_ms(percentile(&p.latencies, 99.0)),
                    opt_ms(p.latencies.last().copied())
                ),
            ),
            (
                "Failed pushes".to_string(),
                format!("{} of {}", p.failures, int(p.requests as u64)),
            ),
        ];
        if let Some(o) = &self.otlp {
            let wall = o.push.wall.as_secs_f64().max(1e-9);
            rows.push((
                "OTLP ingest (`/otlp/v1/logs`, protobuf)".to_string(),
                format!(
                    "**{} lines/s, {:.1} MB/s** of raw lines ({} lines, {} of requests, {}; push latency p50 {}, p99 {})",
                    int((o.lines as f64 / wall) as u64),
                    o.raw_bytes as f64 / wall / 1e6,
                    int(o.lines),
                    mb(o.body_bytes),
                    secs(o.push.wall),
                    opt_ms(percentile(&o.push.latencies, 50.0)),
                    opt_ms(percentile(&o.push.latencies, 99.0)),
                ),
            ));
        }
        if let Some(c) = self.counters {
            let figures: Vec<String> = [
                ("entries ingested", c.ingested_entries),
                ("rejected", c.rejected_entries),
                ("duplicates", c.duplicate_entries),
                ("flushes", c.flushes),
                ("WAL fsyncs", c.wal_syncs),
            ]
            .iter()
            .filter_map(|(name, v)| v.map(|v| format!("{} {name}", int(v))))
            .chain(c.head_bytes.map(|b| format!("{} raw in the head", mb(b))))
            .collect();
            if !figures.is_empty() {
                rows.push((
                    "Server counters after ingest".to_string(),
                    figures.join(", "),
                ));
            }
        }
        if let Some(m) = self.memory_ingest {
            rows.push((
                "Server peak RSS, ingest".to_string(),
                format!("**{}** (VmHWM)", mb(m.peak_rss)),
            ));
        }
        if let Some(m) = self.memory_before_stop {
            rows.push((
                "Server peak RSS, ingest and queries".to_string(),
                mb(m.peak_rss),
            ));
        }
        if let Some(m) = self.memory_shutdown {
            rows.push((
                "Server peak RSS, until exit (shutdown flush)".to_string(),
                mb(m.peak_rss),
            ));
        }
        if let Some(disk) = &self.disk_before_flush {
            rows.push((
                "Disk after ingest, before flush".to_string(),
                disk_text(disk, d.raw_bytes),
            ));
        }
        if let Some(t) = self.shutdown {
            rows.push((
                "Shutdown (SIGTERM to exit, flush included)".to_string(),
                secs(t),
            ));
        }
        if let Some(disk) = &self.disk_after_flush {
            rows.push(("Disk after flush".to_string(), disk_text(disk, d.raw_bytes)));
            rows.push((
                "Disk per raw byte".to_string(),
                format!(
                    "**{:.4}** (raw / disk = {:.1}x)",
                    ratio(disk.bytes, d.raw_bytes),
                    ratio(d.raw_bytes, disk.bytes)
                ),
            ));
        }
        rows.push((
            "zstd -3 per stream (reference)".to_string(),
            format!(
                "{}: {:.4} per raw byte ({:.1}x)",
                mb(d.zstd_reference_bytes),
                ratio(d.zstd_reference_bytes, d.raw_bytes),
                ratio(d.raw_bytes, d.zstd_reference_bytes)
            ),
        ));
        if let Some(disk) = &self.disk_after_flush {
            rows.push((
                "Disk after flush / zstd reference".to_string(),
                format!("{:.3}", ratio(disk.bytes, d.zstd_reference_bytes)),
            ));
        }
        if let Some(disk) = &self.disk_after_compaction {
            rows.push((
                "Disk after compaction".to_string(),
                format!(
                    "{}; compactions took {} after the restart",
                    disk_text(disk, d.raw_bytes),
                    self.compaction_took.map(secs).unwrap_or_default()
                ),
            ));
            rows.push((
                "Disk after compaction / zstd reference".to_string(),
                format!("**{:.3}**", ratio(disk.bytes, d.zstd_reference_bytes)),
            ));
        }
        if let Some(t) = &self.tail_latency {
            rows.push((
                "Live tail latency (gRPC push to TailLogs delivery)".to_string(),
                format!(
                    "p50 {}, **p99 {}**, max {} over {} entries",
                    ms(t.p50),
                    ms(t.p99),
                    ms(t.max),
                    t.samples
                ),
            ));
        }
        if let Some(t) = self.restart_ready {
            rows.push(("Restart to ready".to_string(), secs(t)));
        }
        if let Some(m) = self.memory_after_restart {
            rows.push((
                "Server peak RSS after restart and queries".to_string(),
                mb(m.peak_rss),
            ));
        }
        if let Some(scan) = self
            .queries
            .iter()
            .rev()
            .find(|q| q.name.starts_with("id search"))
            .map(|q| (q.phase, q.warm_percentile(50.0).unwrap_or(q.cold)))
        {
            rows.push((
                format!("Id search rate ({}, warm median)", scan.0),
                format!(
                    "{:.0} MB/s of raw lines in the range (skipped chunks included)",
                    d.raw_bytes as f64 / scan.1.as_secs_f64().max(1e-9) / 1e6
                ),
            ));
        }
        let rows: Vec<(&str, String)> = rows.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        table(out, ("Result", ""), &rows);
    }

    fn queries_table(&self, out: &mut String) {
        out.push_str(
            "| Query | Data | Cold | Warm min | Warm median | Warm p90 | Server execTime | Server peak RSS | Lines | Chunks skipped / referenced | Check |\n",
        );
        out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for q in &self.queries {
            let chunks = match (q.chunks_skipped, q.chunks_ref) {
                (None, None) => "n/a".to_string(),
                (s, r) => format!(
                    "{} / {}",
                    s.map_or("?".to_string(), |v| v.to_string()),
                    r.map_or("?".to_string(), |v| v.to_string())
                ),
            };
            writeln!(
                out,
                "| {}: `{}` | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                q.name,
                q.query.replace('|', "\\|"),
                q.phase,
                ms(q.cold),
                opt_ms(q.warm.first().copied()),
                opt_ms(q.warm_percentile(50.0)),
                opt_ms(q.warm_percentile(90.0)),
                opt_ms(q.exec_time.map(Duration::from_secs_f64)),
                q.peak_rss.map_or("n/a".to_string(), mb),
                q.lines,
                chunks,
                q.problem.as_deref().unwrap_or("ok")
            )
            .unwrap();
        }
        self.object_reads_table(out);
    }

    /// What each query fetched from the object store, when the server's
    /// segments are in one.
    fn object_reads_table(&self, out: &mut String) {
        if self.queries.iter().all(|q| q.fetched.is_none()) {
            return;
        }
        out.push_str(
            "\nObject store reads (segments in S3; warm: all warm runs together):\n\n\
             | Query | Data | Cold GETs | Cold MB fetched | Warm GETs | Warm MB fetched |\n\
             |---|---|---:|---:|---:|---:|\n",
        );
        for q in &self.queries {
            let Some([cold, warm]) = q.fetched else {
                continue;
            };
            writeln!(
                out,
                "| {} | {} | {} | {:.1} | {} | {:.1} |",
                q.name,
                q.phase,
                cold.0,
                cold.1 as f64 / 1e6,
                warm.0,
                warm.1 as f64 / 1e6
            )
            .unwrap();
        }
    }
}

/// Appends `section` to a benchmarks file, creating it with a heading.
pub fn append_section(path: &Path, section: &str) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n\n\
            Figures from `skald bench` (`cargo build --release && target/release/skald bench \
            --write-md docs/benchmarks.md`): ingest throughput, memory, bytes on disk \
            and query latency of one server, measured as its users see it. Newest run last.\n"
            .to_string(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    if !text.ends_with("\n\n") {
        text.push('\n');
    }
    text.push_str(section);
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn table(out: &mut String, header: (&str, &str), rows: &[(&str, String)]) {
    writeln!(out, "| {} | {} |\n|---|---|", header.0, header.1).unwrap();
    for (k, v) in rows {
        writeln!(out, "| {k} | {v} |").unwrap();
    }
}

fn disk_text(disk: &DiskUsage, raw: u64) -> String {
    let parts = disk
        .by_entry
        .iter()
        .map(|(name, bytes)| format!("{name} {}", mb(*bytes)))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{} in {} files ({:.4} per raw byte; {}; allocated {})",
        mb(disk.bytes),
        disk.files,
        ratio(disk.bytes, raw),
        parts,
        mb(disk.allocated)
    )
}

fn ratio(a: u64, b: u64) -> f64 {
    a as f64 / (b as f64).max(1.0)
}

/// `1,234,567`
pub fn int(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Megabytes (10^6 bytes); plain bytes below 100 kB.
pub fn mb(bytes: u64) -> String {
    if bytes < 100_000 {
        format!("{} B", int(bytes))
    } else if bytes < 10_000_000 {
        format!("{:.2} MB", bytes as f64 / 1e6)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

fn opt_ms(d: Option<Duration>) -> String {
    d.map_or("n/a".to_string(), ms)
}

pub fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(int(0), "0");
        assert_eq!(int(999), "999");
        assert_eq!(int(1000), "1,000");
        assert_eq!(int(5_000_000), "5,000,000");
        assert_eq!(mb(1_500_000), "1.50 MB");
        assert_eq!(mb(4_096), "4,096 B");
        assert_eq!(mb(123_456_789), "123.5 MB");
        assert_eq!(ms(Duration::from_micros(1500)), "1.50 ms");
    }
}
