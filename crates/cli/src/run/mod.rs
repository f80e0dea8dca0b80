//! `skald run pipeline.yaml`: starts a pipeline's components, shows their
//! output as one interleaved, colour-coded view, and stores every line.
//!
//! ```yaml
//! name: etl                 # default: the file's name without extension
//! components:
//!   extract:
//!     command: python3
//!     args: [extract.py]
//!     env: {BATCH: "100"}
//!     workdir: ./jobs       # relative to the pipeline file
//!     restart: on-failure   # no (default) | on-failure | always
//!     max_restarts: 5
//!     labels: {team: data}
//!     format: json          # hint: json | logfmt | text
//! ```
//!
//! Every line is stored with the labels `pipeline`, `component`,
//! `stream` (stdout or stderr) and `level` (detected, or `unknown`), plus
//! the component's own labels: in an embedded store under `--data-dir` by
//! default, or pushed to a Skald or Loki at `--addr`. With the embedded
//! store, Loki's HTTP API is served on a local port while the pipeline runs
//! (written to `<data-dir>/run.addr`) so that `skald logs -f` can follow it.
//!
//! Ctrl-C (or SIGTERM) stops the components: SIGTERM, then SIGKILL after
//! `--stop-timeout`; then everything captured is stored and the store is
//! flushed.

pub mod detect;
pub mod logs;
mod sink;

use crate::remote::ServerArgs;
use crate::remote::output::stream_color;
use anyhow::Context;
use clap::Args;
use detect::{Detected, FormatHint};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Exit code for a pipeline file that cannot be read or is invalid.
pub const EXIT_BAD_PIPELINE: u8 = 6;
/// Exit code when a component cannot be started.
pub const EXIT_COMPONENT_FAILED: u8 = 7;

/// Longest line kept whole; longer output is cut into pieces of this size.
const MAX_LINE_BYTES: usize = 256 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    pub name: Option<String>,
    pub components: BTreeMap<String, Component>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub command: String,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    pub workdir: Option<PathBuf>,
    #[serde(default)]
    pub restart: Restart,
    #[serde(default = "default_max_restarts")]
    pub max_restarts: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    pub format: Option<FormatHint>,
}

fn default_max_restarts() -> u32 {
    5
}

#[derive(Debug, Deserialize, Clone, Copy, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    #[default]
    No,
    OnFailure,
    Always,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// The pipeline file (YAML).
    pub file: PathBuf,
    /// Data directory of the embedded store.
    #[arg(long, env = "SKALD_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// Store in a running Skald or Loki at this URL instead of the
    /// embedded store.
    #[arg(long)]
    pub addr: Option<String>,
    #[arg(long, env = "SKALD_TENANT")]
    pub tenant: Option<String>,
    #[command(flatten)]
    pub tls: crate::remote::tls::TlsArgs,
    #[command(flatten)]
    pub filter: ViewFilter,
    /// Seconds between SIGTERM and SIGKILL when stopping components.
    #[arg(long, default_value_t = 5)]
    pub stop_timeout: u64,
    /// Don't print the live view (lines are still stored).
    #[arg(long, short = 'q')]
    pub quiet: bool,
    #[arg(long, value_enum, default_value_t = crate::remote::ColorChoice::Auto)]
    pub color: crate::remote::ColorChoice,
}

/// Filters of the live view (and of `skald logs`).
#[derive(Args, Debug, Clone, Default)]
pub struct ViewFilter {
    /// Only these components (comma-separated).
    #[arg(long = "component", short = 'c', value_delimiter = ',')]
    pub components: Vec<String>,
    /// Only these levels (comma-separated: error,warn,...).
    #[arg(long = "level", short = 'l', value_delimiter = ',')]
    pub levels: Vec<String>,
    /// Only lines matching this regex.
    #[arg(long)]
    pub grep: Option<String>,
}

/// One captured line.
#[derive(Debug, Clone)]
pub struct Captured {
    pub component: String,
    pub stream: &'static str,
    pub ts: i64,
    pub line: String,
    pub detected: Detected,
}

pub fn load(path: &Path) -> Result<PipelineFile, crate::remote::Failure> {
    let bad = |message: String| crate::remote::Failure {
        code: EXIT_BAD_PIPELINE,
        message,
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("cannot read {}: {e}", path.display())))?;
    let file: PipelineFile = serde_saphyr::from_str(&text).map_err(|e| {
        let first = e.to_string();
        let first = first
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_string();
        bad(format!("{}: {first}", path.display()))
    })?;
    if file.components.is_empty() {
        return Err(bad(format!("{}: no components", path.display())));
    }
    for name in file.components.keys() {
        if name.is_empty() || name.contains(',') {
            return Err(bad(format!(
                "{}: invalid component name {name:?}",
                path.display()
            )));
        }
    }
    Ok(file)
}

pub fn pipeline_name(path: &Path, file: &PipelineFile) -> String {
    file.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pipeline".into())
    })
}

pub struct Filter {
    components: Vec<String>,
    levels: Vec<String>,
    grep: Option<Regex>,
}

impl Filter {
    pub fn new(f: &ViewFilter) -> anyhow::Result<Filter> {
        let grep = match &f.grep {
            Some(g) => Some(Regex::new(g).map_err(|e| {
                // The regex crate's message spans lines; keep its last one.
                let text = e.to_string();
                let reason = text
                    .lines()
                    .last()
                    .unwrap_or_default()
                    .trim_start_matches("error: ")
                    .to_string();
                anyhow::anyhow!("--grep {g:?}: {reason}")
            })?),
            None => None,
        };
        Ok(Filter {
            components: f.components.clone(),
            levels: f
                .levels
                .iter()
                .map(|l| detect::normalise_level(l).map_or(l.to_ascii_lowercase(), str::to_string))
                .collect(),
            grep,
        })
    }

    pub fn shows(&self, component: &str, level: &str, line: &str) -> bool {
        (self.components.is_empty() || self.components.iter().any(|c| c == component))
            && (self.levels.is_empty() || self.levels.iter().any(|l| l == level))
            && self.grep.as_ref().is_none_or(|g| g.is_match(line))
    }
}

/// `[component] 15:04:05 LEVEL message`, coloured.
pub fn render(
    component: &str,
    ts: i64,
    level: &str,
    text: &str,
    color: bool,
    width: usize,
) -> String {
    let time = crate::remote::output::format_time(ts, false);
    let clock = time.get(11..19).unwrap_or("--:--:--");
    let level_up = level.to_ascii_uppercase();
    if !color {
        return format!("[{component:<width$}] {clock} {level_up:<5} {text}");
    }
    let level_code = match level {
        "fatal" | "critical" => "1;31",
        "error" => "31",
        "warn" => "33",
        "debug" | "trace" => "2",
        _ => "32",
    };
    format!(
        "\x1b[{}m[{component:<width$}]\x1b[0m \x1b[2m{clock}\x1b[0m \x1b[{level_code}m{level_up:<5}\x1b[0m {text}",
        stream_color(component)
    )
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = load(&args.file)?;
    let name = pipeline_name(&args.file, &file);
    let filter = Filter::new(&args.filter)?;
    let color = crate::remote::output::Style::new(args.color, false).color;
    let base_dir = args
        .file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();

    let mut sink = match &args.addr {
        Some(addr) => sink::Sink::remote(&ServerArgs {
            addr: addr.clone(),
            tenant: args.tenant.clone(),
            token: None,
            basic_auth: None,
            timeout: 30,
            tls: args.tls.clone(),
        })?,
        None => sink::Sink::embedded(&args.data_dir, args.tenant.as_deref())?,
    };

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        install_stop_handler(move || stop.store(true, Ordering::SeqCst))?;
    }
    let (tx, rx) = mpsc::sync_channel::<Captured>(10_000);
    let children: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let width = file.components.keys().map(String::len).max().unwrap_or(0);

    // Start everything first: a component that cannot start stops the run.
    let mut supervisors = Vec::new();
    let mut first: BTreeMap<String, Child> = BTreeMap::new();
    for (cname, comp) in &file.components {
        match spawn(comp, &base_dir) {
            Ok(child) => {
                first.insert(cname.clone(), child);
            }
            Err(e) => {
                for (_, mut c) in first {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                sink.close()?;
                return Err(crate::remote::Failure {
                    code: EXIT_COMPONENT_FAILED,
                    message: format!(
                        "component {cname} failed to start: {} {}: {e}",
                        comp.command,
                        comp.args.join(" ")
                    ),
                }
                .into());
            }
        }
    }
    for (cname, child) in first {
        let comp = file.components[&cname].clone();
        let tx = tx.clone();
        let stop = stop.clone();
        let children = children.clone();
        let base_dir = base_dir.clone();
        supervisors.push(std::thread::spawn(move || {
            supervise(&cname, &comp, child, &base_dir, tx, &stop, &children)
        }));
    }
    drop(tx);

    // The collector: print and store until every component is done.
    let mut pending: Vec<Captured> = Vec::new();
    let mut last_flush = Instant::now();
    let mut stopping_since: Option<Instant> = None;
    loop {
        if stop.load(Ordering::SeqCst) && stopping_since.is_none() {
            stopping_since = Some(Instant::now());
            signal_all(&children, libc::SIGTERM);
        }
        if let Some(since) = stopping_since
            && since.elapsed() > Duration::from_secs(args.stop_timeout)
        {
            signal_all(&children, libc::SIGKILL);
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(c) => {
                if !args.quiet {
                    let level = c.detected.level.unwrap_or("unknown");
                    if filter.shows(&c.component, level, &c.line) {
                        let text = c.detected.message.as_deref().unwrap_or(&c.line);
                        println!("{}", render(&c.component, c.ts, level, text, color, width));
                    }
                }
                pending.push(c);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        if pending.len() >= 1000 || last_flush.elapsed() > Duration::from_millis(250) {
            sink.store(&name, &file, std::mem::take(&mut pending))?;
            last_flush = Instant::now();
        }
    }
    sink.store(&name, &file, pending)?;
    for s in supervisors {
        let _ = s.join();
    }
    sink.close()?;
    Ok(())
}

fn spawn(comp: &Component, base_dir: &Path) -> std::io::Result<Child> {
    let mut cmd = Command::new(&comp.command);
    cmd.args(&comp.args)
        .envs(&comp.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &comp.workdir {
        cmd.current_dir(base_dir.join(dir));
    } else if !base_dir.as_os_str().is_empty() {
        cmd.current_dir(base_dir);
    }
    // Its own process group, so a terminal's Ctrl-C reaches us first and
    // the components are stopped in order.
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    cmd.spawn()
}

fn supervise(
    name: &str,
    comp: &Component,
    mut child: Child,
    base_dir: &Path,
    tx: mpsc::SyncSender<Captured>,
    stop: &AtomicBool,
    children: &Mutex<BTreeMap<String, u32>>,
) {
    let mut restarts = 0;
    loop {
        children
            .lock()
            .unwrap()
            .insert(name.to_string(), child.id());
        let readers = [
            child
                .stdout
                .take()
                .map(|o| capture(name, "stdout", comp.format, Box::new(o), tx.clone())),
            child
                .stderr
                .take()
                .map(|e| capture(name, "stderr", comp.format, Box::new(e), tx.clone())),
        ];
        let status = child.wait();
        for r in readers.into_iter().flatten() {
            let _ = r.join();
        }
        children.lock().unwrap().remove(name);
        let ok = status.as_ref().is_ok_and(|s| s.success());
        let note = match &status {
            Ok(s) => format!("exited: {s}"),
            Err(e) => format!("wait failed: {e}"),
        };
        let again = !stop.load(Ordering::SeqCst)
            && restarts < comp.max_restarts
            && match comp.restart {
                Restart::No => false,
                Restart::OnFailure => !ok,
                Restart::Always => true,
            };
        let _ = tx.send(system_line(
            name,
            &if again {
                format!(
                    "{note}; restarting ({} of {})",
                    restarts + 1,
                    comp.max_restarts
                )
            } else {
                note
            },
            if ok { "info" } else { "error" },
        ));
        if !again {
            return;
        }
        restarts += 1;
        std::thread::sleep(Duration::from_millis(200 * u64::from(restarts.min(10))));
        match spawn(comp, base_dir) {
            Ok(c) => child = c,
            Err(e) => {
                let _ = tx.send(system_line(name, &format!("restart failed: {e}"), "error"));
                return;
            }
        }
    }
}

/// A line about a component, from the supervisor itself.
fn system_line(component: &str, text: &str, level: &'static str) -> Captured {
    Captured {
        component: component.to_string(),
        stream: "stderr",
        ts: now_ns(),
        line: format!("[skald] {text}"),
        detected: Detected {
            level: Some(level),
            ts: None,
            message: None,
        },
    }
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// Reads one pipe line by line: partial lines at exit, very long lines (cut)
/// and bytes that are not UTF-8 (replaced) all come through.
fn capture(
    component: &str,
    stream: &'static str,
    hint: Option<FormatHint>,
    pipe: Box<dyn Read + Send>,
    tx: mpsc::SyncSender<Captured>,
) -> std::thread::JoinHandle<()> {
    let component = component.to_string();
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(64 * 1024, pipe);
        let mut buf = Vec::new();
        let mut last_ts = 0i64;
        loop {
            buf.clear();
            let n = match (&mut reader)
                .take(MAX_LINE_BYTES as u64)
                .read_until(b'\n', &mut buf)
            {
                Ok(n) => n,
                Err(_) => return,
            };
            if n == 0 {
                return;
            }
            while matches!(buf.last(), Some(b'\n' | b'\r')) {
                buf.pop();
            }
            let line = String::from_utf8_lossy(&buf).into_owned();
            let detected = detect::detect(&line, hint);
            // The capture time orders and stores the line; strictly
            // increasing per pipe, so equal lines are not taken for
            // duplicates.
            let now = now_ns();
            last_ts = now.max(last_ts + 1);
            let c = Captured {
                component: component.clone(),
                stream,
                ts: last_ts,
                line,
                detected,
            };
            if tx.send(c).is_err() {
                return;
            }
        }
    })
}

fn signal_all(children: &Mutex<BTreeMap<String, u32>>, sig: libc::c_int) {
    for &pid in children.lock().unwrap().values() {
        // SAFETY: kill has no memory effects; the pid is a child we started,
        // signalled as its process group.
        unsafe {
            libc::kill(-(pid as libc::pid_t), sig);
        }
    }
}

/// Runs `f` on SIGINT or SIGTERM.
fn install_stop_handler(f: impl Fn() + Send + 'static) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the signal thread")?;
    std::thread::Builder::new()
        .name("skald-signals".into())
        .spawn(move || {
            runtime.block_on(async {
                use tokio::signal::unix::{SignalKind, signal};
                let Ok(mut term) = signal(SignalKind::terminate()) else {
                    return;
                };
                let Ok(mut int) = signal(SignalKind::interrupt()) else {
                    return;
                };
                loop {
                    tokio::select! {
                        _ = term.recv() => f(),
                        _ = int.recv() => f(),
                    }
                }
            })
        })
        .context("starting the signal thread")?;
    Ok(())
}
