//! `skald export`: every entry of a log query over a time range into a
//! file, oldest first, paging through the server's query limit; resumable.
//!
//! Paging: each page asks for entries from `start` on, forward, up to the
//! page size. The next page starts at the last timestamp seen (inclusive),
//! skipping the entries at that timestamp already written: entries sharing
//! a timestamp across a page boundary are neither lost nor repeated.

use super::output::{csv_field, format_time, labels_text};
use super::{Remote, ServerArgs};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A LogQL log query.
    pub query: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// Output file.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    #[arg(long, value_enum, default_value_t = ExportFormat::Jsonl)]
    pub format: ExportFormat,
    /// Compress the file with gzip.
    #[arg(long)]
    pub gzip: bool,
    /// How far back to export, as a duration; ignored with --from.
    #[arg(long, default_value = "1h")]
    pub since: String,
    /// Start: RFC 3339 or Unix time.
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339 or Unix time; default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Entries per request.
    #[arg(long, default_value_t = 5000)]
    pub page: u64,
    /// Continue an interrupted export of the same query into the same
    /// (uncompressed JSONL) file.
    #[arg(long)]
    pub resume: bool,
}

struct Cursor {
    /// Timestamp of the last entry written.
    ts: i64,
    /// Entries at `ts` already written.
    at_ts: u64,
}

pub fn run(args: ExportArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let mut cursor = None;
    if args.resume {
        anyhow::ensure!(
            args.format == ExportFormat::Jsonl && !args.gzip,
            "--resume works on uncompressed JSONL exports"
        );
        cursor = resume_cursor(&args.output)?;
    }
    let file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(args.resume)
        .truncate(!args.resume)
        .open(&args.output)
        .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", args.output.display()))?;
    let mut sink: Box<dyn Write> = if args.gzip {
        Box::new(flate2::write::GzEncoder::new(
            std::io::BufWriter::new(file),
            flate2::Compression::default(),
        ))
    } else {
        Box::new(std::io::BufWriter::new(file))
    };
    let first = !args.resume || cursor.is_none();
    match args.format {
        ExportFormat::Csv => writeln!(sink, "timestamp,ts_ns,labels,line")?,
        ExportFormat::Json => write!(sink, "[")?,
        ExportFormat::Jsonl => {}
    }
    let progress = std::io::stderr().is_terminal();
    // The index's count of entries under the selector: an upper bound of
    // what the query returns, for the ETA (none if the server has no
    // index stats).
    let estimate = if progress {
        let mut p = vec![("query", args.query.clone())];
        match &args.from {
            Some(from) => p.push(("start", from.clone())),
            None => p.push(("since", args.since.clone())),
        }
        if let Some(to) = &args.to {
            p.push(("end", to.clone()));
        }
        remote
            .get_json("/loki/api/v1/index/stats", &p)
            .ok()
            .and_then(|v| v["entries"].as_u64())
    } else {
        None
    };
    let started = Instant::now();
    let (mut entries, mut bytes) = (0u64, 0u64);
    let mut first_json = first;
    loop {
        let mut params: Vec<(&str, String)> = vec![
            ("query", args.query.clone()),
            ("limit", args.page.to_string()),
            ("direction", "forward".into()),
        ];
        match (&cursor, &args.from) {
            (Some(c), _) => params.push(("start", c.ts.to_string())),
            (None, Some(from)) => params.push(("start", from.clone())),
            (None, None) => params.push(("since", args.since.clone())),
        }
        if let Some(to) = &args.to {
            params.push(("end", to.clone()));
        }
        let v = remote.get_json("/loki/api/v1/query_range", &params)?;
        anyhow::ensure!(
            v["data"]["resultType"] == "streams",
            "export takes a log query, not a metric query"
        );
        let mut page: Vec<(i64, &Value, &str)> = Vec::new();
        for s in v["data"]["result"].as_array().into_iter().flatten() {
            for e in s["values"].as_array().into_iter().flatten() {
                let ts = e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                page.push((ts, &s["stream"], e[1].as_str().unwrap_or_default()));
            }
        }
        page.sort_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| labels_text(a.1).cmp(&labels_text(b.1)))
                .then(a.2.cmp(b.2))
        });
        let full = page.len() as u64 >= args.page;
        let mut skip = match &cursor {
            Some(c) => page
                .iter()
                .take_while(|e| e.0 == c.ts)
                .count()
                .min(c.at_ts as usize),
            None => 0,
        };
        let mut wrote = 0;
        for (ts, labels, line) in page {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let record = match args.format {
                ExportFormat::Jsonl | ExportFormat::Json => {
                    let row = json!({
                        "timestamp": format_time(ts, true),
                        "ts_ns": ts.to_string(),
                        "labels": labels,
                        "line": line,
                    });
                    if args.format == ExportFormat::Json {
                        let sep = if first_json { "\n" } else { ",\n" };
                        first_json = false;
                        format!("{sep}{row}")
                    } else {
                        format!("{row}\n")
                    }
                }
                ExportFormat::Csv => format!(
                    "{},{ts},{},{}\n",
                    format_time(ts, true),
                    csv_field(&labels_text(labels)),
                    csv_field(line)
                ),
            };
            sink.write_all(record.as_bytes())?;
            entries += 1;
            wrote += 1;
            bytes += record.len() as u64;
            cursor = Some(match cursor {
                Some(c) if c.ts == ts => Cursor {
                    ts,
                    at_ts: c.at_ts + 1,
                },
                _ => Cursor { ts, at_ts: 1 },
            });
        }
        if progress {
            eprint!(
                "\r{}   ",
                progress_line(entries, bytes, started.elapsed(), estimate)
            );
        }
        if !full {
            break;
        }
        if wrote == 0 {
            // A whole page of one timestamp, all written: widen the page.
            anyhow::bail!(
                "more than {} entries share one timestamp; export with a larger --page",
                args.page
            );
        }
    }
    if args.format == ExportFormat::Json {
        writeln!(sink, "\n]")?;
    }
    sink.flush()?;
    drop(sink);
    if progress {
        eprintln!();
    }
    eprintln!(
        "exported {entries} entries ({bytes} bytes) to {}",
        args.output.display()
    );
    Ok(())
}

/// `1200/5000 entries, 0.3 MB, 400 entries/s, ETA 10s`
fn progress_line(
    entries: u64,
    bytes: u64,
    took: std::time::Duration,
    estimate: Option<u64>,
) -> String {
    let rate = entries as f64 / took.as_secs_f64().max(1e-3);
    let mut line = match estimate {
        Some(total) if total >= entries => format!("{entries}/{total} entries"),
        _ => format!("{entries} entries"),
    };
    line.push_str(&format!(
        ", {:.1} MB, {rate:.0} entries/s",
        bytes as f64 / 1e6
    ));
    if let Some(total) = estimate
        && total > entries
        && rate > 0.0
    {
        line.push_str(&format!(", ETA {:.0}s", (total - entries) as f64 / rate));
    }
    line
}

/// Where an interrupted JSONL export stopped: its last complete line.
fn resume_cursor(path: &std::path::Path) -> anyhow::Result<Option<Cursor>> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    };
    let mut cursor: Option<Cursor> = None;
    let mut good_len = 0u64;
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line)?;
        if n == 0 || !line.ends_with('\n') {
            break;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a JSONL export ({e}); cannot resume",
                path.display()
            )
        })?;
        let ts: i64 = v["ts_ns"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or(0);
        cursor = Some(match cursor {
            Some(c) if c.ts == ts => Cursor {
                ts,
                at_ts: c.at_ts + 1,
            },
            _ => Cursor { ts, at_ts: 1 },
        });
        good_len += n as u64;
    }
    // Drop a torn last line.
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(good_len)?;
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn progress_shows_the_eta_when_the_total_is_known() {
        assert_eq!(
            progress_line(1000, 2_000_000, Duration::from_secs(2), Some(3000)),
            "1000/3000 entries, 2.0 MB, 500 entries/s, ETA 4s"
        );
        assert_eq!(
            progress_line(10, 1000, Duration::from_secs(1), None),
            "10 entries, 0.0 MB, 10 entries/s"
        );
        // Filters can make the estimate low; no negative ETA.
        assert_eq!(
            progress_line(10, 0, Duration::from_secs(1), Some(5)),
            "10 entries, 0.0 MB, 10 entries/s"
        );
    }
}
