//! `skald analyze QUERY --since 24h`: the analysis report of a log query
//! from a running server (`GET /skald/api/v1/analyze`): totals, levels,
//! error count and rate, anomaly count and rate, top patterns with their
//! share and the numbers found in their lines (p50/p95/p99), error groups,
//! anomalies and lines per hour as a terminal chart. `-o json` prints the
//! server's JSON answer for machines.
//!
//! Exit codes are those of the other client commands (`remote`).

use crate::remote::output::format_time;
use crate::remote::{Remote, ServerArgs};
use clap::{Args, ValueEnum};
use serde_json::Value;
use std::fmt::Write as _;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportFormat {
    /// A report for people.
    Text,
    /// The server's JSON answer.
    Json,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// A stream selector or log query (`{app="api"}`, `{app="api"} |= "GET"`).
    pub query: String,
    #[command(flatten)]
    pub server: ServerArgs,
    /// How far back to look, as a duration (`24h`, `30m`); ignored with --from.
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Start: RFC 3339 or Unix time (seconds or nanoseconds).
    #[arg(long)]
    pub from: Option<String>,
    /// End: RFC 3339 or Unix time; default now.
    #[arg(long)]
    pub to: Option<String>,
    /// Most lines read (the newest); the server's limit by default.
    #[arg(long)]
    pub max_lines: Option<u64>,
    /// Patterns listed.
    #[arg(long, default_value_t = 10)]
    pub top: u32,
    #[arg(long, short = 'o', value_enum, default_value_t = ReportFormat::Text)]
    pub output: ReportFormat,
}

pub fn run(args: AnalyzeArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let mut params = vec![("query", args.query.clone()), ("top", args.top.to_string())];
    match &args.from {
        Some(from) => params.push(("start", from.clone())),
        None => params.push(("since", args.since.clone())),
    }
    if let Some(to) = &args.to {
        params.push(("end", to.clone()));
    }
    if let Some(n) = args.max_lines {
        params.push(("max_lines", n.to_string()));
    }
    let answer = remote.get_json("/skald/api/v1/analyze", &params)?;
    let text = match args.output {
        ReportFormat::Json => format!("{}\n", answer["data"]),
        ReportFormat::Text => render(&args.query, &answer["data"]),
    };
    crate::remote::print(&text)
}

fn count(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn percent(v: &Value) -> String {
    format!("{:.2}%", v.as_f64().unwrap_or(0.0) * 100.0)
}

/// `12.5ms`, `1.20s`, `4.0KiB`.
fn quantity(value: f64, unit: &str) -> String {
    match unit {
        "ms" if value >= 1000.0 => format!("{:.2}s", value / 1000.0),
        "ms" => format!("{value:.1}ms"),
        "bytes" => {
            let mut v = value;
            let mut i = 0;
            let units = ["B", "KiB", "MiB", "GiB", "TiB"];
            while v >= 1024.0 && i + 1 < units.len() {
                v /= 1024.0;
                i += 1;
            }
            format!("{v:.1}{}", units[i])
        }
        _ => format!("{value}"),
    }
}

fn time(secs: &Value) -> String {
    format_time(secs.as_i64().unwrap_or(0) * 1_000_000_000, true)
}

/// The report as text.
fn render(query: &str, d: &Value) -> String {
    let mut out = String::new();
    let lines = count(&d["lines"]);
    let _ = writeln!(out, "Analysis of {query}");
    let _ = writeln!(
        out,
        "from {} to {} (UTC)\n",
        time(&d["start"]),
        time(&d["end"])
    );
    let truncated = if d["truncated"].as_bool() == Some(true) {
        " (the newest only: more lines matched)"
    } else {
        ""
    };
    let _ = writeln!(
        out,
        "lines       {lines} in {} streams{truncated}",
        count(&d["streams"])
    );
    let _ = writeln!(
        out,
        "errors      {} ({})",
        count(&d["errorLines"]),
        percent(&d["errorRate"])
    );
    let _ = writeln!(
        out,
        "anomalies   {} ({} of {}s windows)",
        count(&d["anomalyCount"]),
        percent(&d["anomalyRate"]),
        count(&d["anomalyWindow"])
    );
    let _ = writeln!(out, "patterns    {}", count(&d["patternsTotal"]));
    if let Some(levels) = d["levels"].as_object() {
        let text: Vec<String> = levels
            .iter()
            .map(|(level, n)| format!("{level} {}", count(n)))
            .collect();
        let _ = writeln!(out, "levels      {}", text.join(", "));
    }
    let _ = writeln!(out, "\nTop patterns (lines, share)");
    for p in d["patterns"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:>8} {:>7}  [{}] {}",
            count(&p["count"]),
            percent(&p["share"]),
            p["level"].as_str().unwrap_or(""),
            p["pattern"].as_str().unwrap_or("")
        );
        for n in p["numbers"].as_array().into_iter().flatten() {
            let unit = n["unit"].as_str().unwrap_or("");
            let q = |k: &str| quantity(n[k].as_f64().unwrap_or(0.0), unit);
            let _ = writeln!(
                out,
                "{:>20}{} p50 {}  p95 {}  p99 {}  ({} values)",
                "",
                n["name"].as_str().unwrap_or(""),
                q("p50"),
                q("p95"),
                q("p99"),
                count(&n["count"])
            );
        }
    }
    let groups = d["errorGroups"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\nError groups ({})", groups.len());
    for g in &groups {
        let new = if g["new"].as_bool() == Some(true) {
            "NEW "
        } else {
            ""
        };
        let exception = g["exception"]
            .as_str()
            .map_or(String::new(), |e| format!(" {e}"));
        let _ = writeln!(
            out,
            "  {new}{}{exception}: {} lines, first {}, last {}",
            g["category"].as_str().unwrap_or(""),
            count(&g["count"]),
            time(&g["firstSeen"]),
            time(&g["lastSeen"])
        );
        let _ = writeln!(out, "      {}", g["pattern"].as_str().unwrap_or(""));
        for e in g["examples"].as_array().into_iter().flatten().take(1) {
            let _ = writeln!(out, "      e.g. {}", e.as_str().unwrap_or(""));
        }
    }
    let anomalies = d["anomalies"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\nAnomalies ({})", anomalies.len());
    for a in anomalies.iter().take(20) {
        let pattern = a["pattern"]
            .as_str()
            .map_or(String::new(), |p| format!(" {p}"));
        let _ = writeln!(
            out,
            "  {} {}{pattern} {} .. {} score {:.1}: {}",
            a["kind"].as_str().unwrap_or(""),
            a["labels"].as_str().unwrap_or(""),
            time(&a["start"]),
            time(&a["end"]),
            a["score"].as_f64().unwrap_or(0.0),
            a["evidence"].as_str().unwrap_or("")
        );
    }
    let hours = d["hourly"].as_array().cloned().unwrap_or_default();
    let _ = writeln!(out, "\nLines per hour");
    let most = hours
        .iter()
        .map(|h| count(&h["lines"]))
        .max()
        .unwrap_or(0)
        .max(1);
    for h in &hours {
        let n = count(&h["lines"]);
        let _ = writeln!(
            out,
            "  {} {:<40} {n} ({} errors)",
            &time(&h["start"])[..16],
            bar(n, most, 40),
            count(&h["errors"])
        );
    }
    out
}

/// A bar of `width` cells for `n` of `most`, in eighths.
fn bar(n: u64, most: u64, width: u64) -> String {
    const EIGHTHS: [char; 8] = ['▏', '▎', '▍', '▌', '▋', '▊', '▉', '█'];
    let eighths = n * width * 8 / most;
    let mut s = "█".repeat((eighths / 8) as usize);
    if !eighths.is_multiple_of(8) {
        s.push(EIGHTHS[(eighths % 8) as usize - 1]);
    }
    if s.is_empty() && n > 0 {
        s.push('▏');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_and_quantities() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 1000, 4), "▏");
        assert_eq!(bar(0, 10, 4), "");
        assert_eq!(quantity(1500.0, "ms"), "1.50s");
        assert_eq!(quantity(4096.0, "bytes"), "4.0KiB");
    }
}
