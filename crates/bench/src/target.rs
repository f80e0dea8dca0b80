//! The server under test: a child `skald serve` on free ports over a data
//! directory of its own, or a server already running elsewhere.
//!
//! For a child we also see what only the operating system knows: its
//! memory (`VmHWM` and `VmRSS` from `/proc/<pid>/status`) and the bytes
//! under its data directory.

use anyhow::{Context, bail};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a server may take to answer `/ready`, or to stop on SIGTERM
/// (the shutdown flush of a large head included).
const READY_TIMEOUT: Duration = Duration::from_secs(120);
const STOP_TIMEOUT: Duration = Duration::from_secs(600);

/// A `skald serve` child process.
pub struct ChildServer {
    exe: PathBuf,
    pub data_dir: PathBuf,
    pub log_path: PathBuf,
    http_port: u16,
    grpc_port: u16,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl ChildServer {
    pub fn new(
        data_dir: PathBuf,
        log_path: PathBuf,
        extra_args: Vec<String>,
    ) -> anyhow::Result<ChildServer> {
        Ok(ChildServer {
            exe: std::env::current_exe().context("locating the skald binary")?,
            data_dir,
            log_path,
            http_port: free_port()?,
            grpc_port: free_port()?,
            extra_args,
            child: None,
        })
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn grpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Starts the server and waits until `/ready` answers 200; returns how
    /// long that took.
    pub fn start(&mut self, client: &reqwest::blocking::Client) -> anyhow::Result<Duration> {
        anyhow::ensure!(self.child.is_none(), "the server is already running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let started = Instant::now();
        let child = Command::new(&self.exe)
            .arg("serve")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--http-addr")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--grpc-addr")
            .arg(format!("127.0.0.1:{}", self.grpc_port))
            .args(&self.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {} serve", self.exe.display()))?;
        self.child = Some(child);
        let ready_url = format!("{}/ready", self.base_url());
        loop {
            if let Ok(r) = client
                .get(&ready_url)
                .timeout(Duration::from_secs(5))
                .send()
                && r.status().is_success()
            {
                return Ok(started.elapsed());
            }
            if let Some(status) = self.child.as_mut().expect("started").try_wait()? {
                self.child = None;
                bail!(
                    "the server exited with {status} before it was ready; {}",
                    self.log_tail()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                bail!(
                    "the server was not ready after {READY_TIMEOUT:?}; {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit while sampling memory: the
    /// server flushes its head into segments before it exits.
    pub fn stop(&mut self) -> anyhow::Result<(Duration, MemorySample)> {
        let mut child = self.child.take().context("the server is not running")?;
        let pid = child.id();
        let mut memory = MemorySample::read(pid).unwrap_or_default();
        let started = Instant::now();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        anyhow::ensure!(status.success(), "kill -TERM {pid} failed");
        loop {
            if let Some(status) = child.try_wait()? {
                anyhow::ensure!(
                    status.success(),
                    "the server exited with {status} on SIGTERM; {}",
                    self.log_tail()
                );
                return Ok((started.elapsed(), memory));
            }
            if let Some(now) = MemorySample::read(pid) {
                memory = memory.max(now);
            }
            if started.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "the server did not stop within {STOP_TIMEOUT:?} of SIGTERM; {}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("its log ({}) ends with:\n{tail}", self.log_path.display())
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")
        .context("finding a free port")?
        .local_addr()?
        .port())
}

/// A process's memory, from `/proc/<pid>/status`, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemorySample {
    /// Peak resident set size since the process started (`VmHWM`).
    pub peak_rss: u64,
    /// Resident set size now (`VmRSS`); in a maximum, the largest seen.
    pub rss: u64,
}

impl MemorySample {
    pub fn read(pid: u32) -> Option<MemorySample> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kib * 1024)
        };
        Some(MemorySample {
            peak_rss: field("VmHWM:")?,
            rss: field("VmRSS:")?,
        })
    }

    /// Starts a new peak: `VmHWM` becomes the current RSS (Linux's
    /// `clear_refs` 5). Returns the sample from just before, whose peak
    /// the new one no longer covers.
    pub fn reset_peak(pid: u32) -> Option<MemorySample> {
        let before = MemorySample::read(pid)?;
        std::fs::write(format!("/proc/{pid}/clear_refs"), "5").ok()?;
        Some(before)
    }

    pub fn max(self, other: MemorySample) -> MemorySample {
        MemorySample {
            peak_rss: self.peak_rss.max(other.peak_rss),
            rss: self.rss.max(other.rss),
        }
    }
}

/// Samples a process's memory every 50 ms until `stop` is set; returns the
/// maxima. `VmHWM` alone would do for the peak; the samples also catch the
/// largest `VmRSS`, and a process that exits early.
pub fn sample_memory(pid: u32, stop: &AtomicBool) -> MemorySample {
    let mut max = MemorySample::default();
    while !stop.load(Ordering::Relaxed) {
        if let Some(now) = MemorySample::read(pid) {
            max = max.max(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if let Some(now) = MemorySample::read(pid) {
        max = max.max(now);
    }
    max
}

/// Bytes under a data directory.
#[derive(Debug, Clone, Default)]
pub struct DiskUsage {
    /// Sum of the files' lengths.
    pub bytes: u64,
    /// Blocks the file system allocated for them.
    pub allocated: u64,
    pub files: u64,
    /// Lengths per top-level entry (`wal`, `tenants`, markers).
    pub by_entry: Vec<(String, u64)>,
}

impl DiskUsage {
    pub fn measure(dir: &Path) -> anyhow::Result<DiskUsage> {
        let mut usage = DiskUsage::default();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let before = usage.bytes;
            usage.add(&entry.path())?;
            usage.by_entry.push((
                entry.file_name().to_string_lossy().into_owned(),
                usage.bytes - before,
            ));
        }
        Ok(usage)
    }

    fn add(&mut self, path: &Path) -> anyhow::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("reading {}", path.display()))?;
        if meta.is_dir() {
            for entry in
                std::fs::read_dir(path).with_context(|| format!("reading {}", path.display()))?
            {
                self.add(&entry?.path())?;
            }
        } else {
            self.bytes += meta.len();
            self.allocated += meta.blocks() * 512;
            self.files += 1;
        }
        Ok(())
    }
}

/// The server's own ingest counters, from its Prometheus `/metrics`; each
/// is `None` when the server does not export it.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerCounters {
    pub ingested_entries: Option<u64>,
    pub rejected_entries: Option<u64>,
    pub duplicate_entries: Option<u64>,
    pub flushes: Option<u64>,
    pub wal_syncs: Option<u64>,
    /// Raw bytes in the head (not yet in segments).
    pub head_bytes: Option<u64>,
    /// Whether a compaction runs or the policy asks for one.
    pub compaction_pending: Option<u64>,
}

impl ServerCounters {
    pub fn read(client: &reqwest::blocking::Client, base_url: &str) -> ServerCounters {
        let text = client
            .get(format!("{base_url}/metrics"))
            .send()
            .and_then(|r| r.error_for_status())
            .and_then(|r| r.text())
            .unwrap_or_default();
        let value = |name: &str| -> Option<u64> {
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .map(|v| v as u64)
        };
        ServerCounters {
            ingested_entries: value("skald_ingested_entries_total"),
            rejected_entries: value("skald_rejected_entries_total"),
            duplicate_entries: value("skald_duplicate_entries_total"),
            flushes: value("skald_flushes_total"),
            wal_syncs: value("skald_wal_syncs_total"),
            head_bytes: value("skald_head_bytes"),
            compaction_pending: value("skald_compaction_pending"),
        }
    }
}
