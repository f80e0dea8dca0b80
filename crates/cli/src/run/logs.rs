//! `skald logs <pipeline>`: the stored history of a pipeline's components,
//! filtered, optionally followed live or exported.
//!
//! It reads through Loki's HTTP API: `--addr` if given, else the local API
//! of a `skald run` still running on the data directory, else the embedded
//! store opened for the duration of the command.

use super::{Filter, ViewFilter, render};
use crate::remote::output::{csv_field, format_time};
use crate::remote::{Remote, ServerArgs};
use clap::{Args, ValueEnum};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Write;
use std::path::PathBuf;

/// How each line is printed (like `skald query -o`).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogsOutput {
    /// `[component] 15:04:05 LEVEL message`, coloured on a terminal.
    Default,
    /// The line as the component wrote it.
    Raw,
    /// One JSON object per line: timestamp, component, stream, level, line.
    Jsonl,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogsExport {
    Json,
    Csv,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The pipeline's name (its file name without extension, or `name:`).
    pub pipeline: String,
    /// Keep printing new lines as they arrive.
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// How far back to start, as a duration.
    #[arg(long, default_value = "24h")]
    pub since: String,
    #[command(flatten)]
    pub filter: ViewFilter,
    /// How to print each line; works with --follow.
    #[arg(long, short = 'o', value_enum, default_value_t = LogsOutput::Default,
          conflicts_with = "export")]
    pub output: LogsOutput,
    /// Print the lines as JSON or CSV instead of the view (a snapshot: not
    /// with --follow).
    #[arg(long, value_enum, conflicts_with = "follow")]
    pub export: Option<LogsExport>,
    /// Data directory of the embedded store.
    #[arg(long, env = "SKALD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Read from a Skald or Loki at this URL instead.
    #[arg(long)]
    pub addr: Option<String>,
    #[arg(long, env = "SKALD_TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub tls: crate::remote::tls::TlsArgs,
    #[arg(long, value_enum, default_value_t = crate::remote::ColorChoice::Auto)]
    pub color: crate::remote::ColorChoice,
}

/// A LogQL string literal.
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// `{pipeline="p", component=~"a|b", level=~"error|warn"} |~ "re"`
pub fn build_query(pipeline: &str, f: &ViewFilter) -> String {
    let alternatives = |vals: &[String]| {
        let escaped: Vec<String> = vals.iter().map(|v| regex::escape(v)).collect();
        quote(&escaped.join("|"))
    };
    let mut sel = vec![format!("pipeline={}", quote(pipeline))];
    if !f.components.is_empty() {
        sel.push(format!("component=~{}", alternatives(&f.components)));
    }
    if !f.levels.is_empty() {
        let levels: Vec<String> = f
            .levels
            .iter()
            .map(|l| {
                super::detect::normalise_level(l).map_or(l.to_ascii_lowercase(), str::to_string)
            })
            .collect();
        sel.push(format!("level=~{}", alternatives(&levels)));
    }
    let mut q = format!("{{{}}}", sel.join(", "));
    if let Some(g) = &f.grep {
        q.push_str(&format!(" |~ {}", quote(g)));
    }
    q
}

struct Row {
    ts: i64,
    component: String,
    stream: String,
    level: String,
    line: String,
}

impl Row {
    fn from_entry(ts: i64, labels: &Value, line: String) -> Row {
        let label = |n: &str| labels[n].as_str().unwrap_or_default().to_string();
        Row {
            ts,
            component: label("component"),
            stream: label("stream"),
            level: label("level"),
            line,
        }
    }
}

impl Row {
    /// The row as `--export json` and `-o jsonl` print it.
    fn to_json(&self) -> Value {
        json!({"timestamp": format_time(self.ts, true), "component": self.component,
               "stream": self.stream, "level": self.level, "line": self.line})
    }
}

/// Prints rows in one of the [`LogsOutput`] formats; the default view is
/// aligned on the widest component seen so far.
struct Printer {
    output: LogsOutput,
    color: bool,
    width: usize,
}

impl Printer {
    fn line(&mut self, r: &Row) -> String {
        match self.output {
            LogsOutput::Raw => r.line.clone(),
            LogsOutput::Jsonl => r.to_json().to_string(),
            LogsOutput::Default => {
                self.width = self.width.max(r.component.len());
                let message = super::detect::detect(&r.line, None).message;
                let text = message.as_deref().unwrap_or(&r.line);
                render(&r.component, r.ts, &r.level, text, self.color, self.width)
            }
        }
    }
}

pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    // Check the regex here, for a clear message before any request.
    let filter = Filter::new(&args.filter)?;
    let mut local = None;
    let url = match &args.addr {
        Some(a) => a.clone(),
        None => {
            let running = std::fs::read_to_string(super::sink::addr_file(&args.data_dir))
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|a| std::net::TcpStream::connect(a.trim_start_matches("http://")).is_ok());
            match running {
                Some(a) => a,
                None => {
                    anyhow::ensure!(
                        args.data_dir.join("wal").exists()
                            || args.data_dir.join("tenants").exists(),
                        "no pipeline data in {} (run `skald run` first, or give --data-dir or --addr)",
                        args.data_dir.display()
                    );
                    let config = skald_store::StoreConfig {
                        data_dir: args.data_dir.clone(),
                        ..Default::default()
                    };
                    let store = std::sync::Arc::new(skald_store::Store::open(config)?);
                    let (url, stop, thread) = super::sink::serve_local(store.clone())?;
                    local = Some((store, stop, thread));
                    url
                }
            }
        }
    };
    let remote = Remote::new(&ServerArgs {
        addr: url,
        tenant: args.tenant.clone(),
        token: None,
        basic_auth: None,
        timeout: 60,
        tls: args.tls.clone(),
    })?;
    let result = show(&args, &remote, &filter);
    if let Some((store, stop, thread)) = local {
        let _ = stop.send(());
        let _ = thread.join();
        store.close()?;
    }
    result
}

fn show(args: &LogsArgs, remote: &Remote, filter: &Filter) -> anyhow::Result<()> {
    let query = build_query(&args.pipeline, &args.filter);
    let color = crate::remote::output::Style::new(args.color, false).color;
    let mut printer = Printer {
        output: args.output,
        color,
        width: 0,
    };
    if args.follow {
        // History and then live lines, across server restarts, each once.
        return crate::remote::follow::follow(remote, &query, &args.since, |entries| {
            let mut out = std::io::stdout().lock();
            for e in entries {
                let r = Row::from_entry(e.ts, &e.labels, e.line);
                if !filter.shows(&r.component, &r.level, &r.line) {
                    continue;
                }
                if writeln!(out, "{}", printer.line(&r)).is_err() {
                    return Ok(false);
                }
            }
            Ok(out.flush().is_ok())
        });
    }
    let mut out = std::io::stdout().lock();
    let mut start: Option<i64> = None;
    let mut seen_at_start: HashSet<(String, String, String)> = HashSet::new();
    let mut all = Vec::new();
    loop {
        let mut params = vec![
            ("query", query.clone()),
            ("limit", "5000".to_string()),
            ("direction", "forward".to_string()),
        ];
        match start {
            Some(s) => params.push(("start", s.to_string())),
            None => params.push(("since", args.since.clone())),
        }
        let v = remote.get_json("/loki/api/v1/query_range", &params)?;
        let mut rows = Vec::new();
        for s in v["data"]["result"].as_array().into_iter().flatten() {
            for e in s["values"].as_array().into_iter().flatten() {
                let ts = e[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
                let line = e[1].as_str().unwrap_or_default().to_string();
                rows.push(Row::from_entry(ts, &s["stream"], line));
            }
        }
        rows.sort_by(|a, b| a.ts.cmp(&b.ts).then_with(|| a.component.cmp(&b.component)));
        let full = rows.len() >= 5000;
        let mut fresh = 0;
        for r in rows {
            let key = (r.component.clone(), r.stream.clone(), r.line.clone());
            if Some(r.ts) == start && seen_at_start.contains(&key) {
                continue;
            }
            if Some(r.ts) != start {
                start = Some(r.ts);
                seen_at_start.clear();
            }
            seen_at_start.insert(key);
            fresh += 1;
            if !filter.shows(&r.component, &r.level, &r.line) {
                continue;
            }
            if args.export.is_some() {
                all.push(r);
                continue;
            }
            if writeln!(out, "{}", printer.line(&r)).is_err() {
                return Ok(());
            }
        }
        let _ = out.flush();
        if full && fresh > 0 {
            continue;
        }
        // An export is a snapshot (clap refuses it with --follow).
        break;
    }
    match args.export {
        Some(LogsExport::Json) => {
            let rows: Vec<Value> = all.iter().map(Row::to_json).collect();
            writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
        }
        Some(LogsExport::Csv) => {
            writeln!(out, "timestamp,component,stream,level,line")?;
            for r in &all {
                writeln!(
                    out,
                    "{},{},{},{},{}",
                    format_time(r.ts, true),
                    csv_field(&r.component),
                    r.stream,
                    r.level,
                    csv_field(&r.line)
                )?;
            }
        }
        None => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_valid_logql() {
        let f = ViewFilter {
            components: vec!["a.b".into(), "c".into()],
            levels: vec!["ERROR".into(), "warning".into()],
            grep: Some(r#"say "hi"\d"#.into()),
        };
        let q = build_query("etl", &f);
        assert_eq!(
            q,
            r#"{pipeline="etl", component=~"a\\.b|c", level=~"error|warn"} |~ "say \"hi\"\\d""#
        );
        skald_logql::parse_expr(&q).unwrap();
        assert_eq!(
            build_query("p", &ViewFilter::default()),
            r#"{pipeline="p"}"#
        );
    }
}
