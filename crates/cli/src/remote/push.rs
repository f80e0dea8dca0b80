//! `skald push`: lines from stdin or files into a stream, in batches.

use super::{Failure, Remote, ServerArgs};
use clap::Args;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Args, Debug)]
pub struct PushArgs {
    /// Files to read (default: standard input).
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub server: ServerArgs,
    /// A stream label `name=value`, repeatable. Default: `job=skald-push`.
    #[arg(long = "label", short = 'L', value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Lines per push request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Keep reading the file as it grows, reopening it when it is rotated
    /// (like `tail -F`); one file only.
    #[arg(long, short = 'f')]
    pub follow: bool,
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not name=value"))?;
    let valid = k
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(format!(
            "{k:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        ));
    }
    Ok((k.to_string(), v.to_string()))
}

struct Batcher<'a> {
    remote: &'a Remote,
    labels: serde_json::Map<String, serde_json::Value>,
    values: Vec<serde_json::Value>,
    batch: usize,
    last_ns: i64,
    pushed: u64,
}

impl Batcher<'_> {
    fn add(&mut self, line: &str) -> Result<(), Failure> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        // Strictly increasing, so that equal lines read in the same
        // nanosecond are not taken for duplicates.
        self.last_ns = now.max(self.last_ns + 1);
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        self.values.push(json!([self.last_ns.to_string(), line]));
        if self.values.len() >= self.batch {
            self.send()?;
        }
        Ok(())
    }

    fn send(&mut self) -> Result<(), Failure> {
        if self.values.is_empty() {
            return Ok(());
        }
        let values = std::mem::take(&mut self.values);
        let n = values.len() as u64;
        let body = json!({"streams": [{"stream": self.labels, "values": values}]});
        self.remote
            .post_json("/loki/api/v1/push", body.to_string().into_bytes())?;
        self.pushed += n;
        Ok(())
    }
}

pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let remote = Remote::new(&args.server)?;
    let mut labels = serde_json::Map::new();
    if args.labels.is_empty() {
        labels.insert("job".into(), "skald-push".into());
    }
    for (k, v) in &args.labels {
        labels.insert(k.clone(), v.clone().into());
    }
    let mut b = Batcher {
        remote: &remote,
        labels,
        values: Vec::new(),
        batch: args.batch.max(1),
        last_ns: 0,
        pushed: 0,
    };
    if args.follow {
        anyhow::ensure!(args.files.len() == 1, "--follow reads exactly one file");
        follow(&args.files[0], &mut b)?;
    } else if args.files.is_empty() {
        read_all(std::io::stdin().lock(), &mut b)?;
    } else {
        for f in &args.files {
            let file = std::fs::File::open(f)
                .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", f.display()))?;
            read_all(BufReader::new(file), &mut b)?;
        }
    }
    b.send()?;
    eprintln!("pushed {} lines", b.pushed);
    Ok(())
}

/// Reads lines; bytes that are not UTF-8 are replaced, never fatal.
fn read_all(mut r: impl BufRead, b: &mut Batcher) -> anyhow::Result<()> {
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(());
        }
        b.add(&String::from_utf8_lossy(&buf))?;
    }
}

/// Follows `path` like `tail -F`: from its end, through growth, truncation
/// and rotation (a new file under the name). Pushes a partial batch after a
/// second of quiet. Runs until interrupted.
fn follow(path: &Path, b: &mut Batcher) -> anyhow::Result<()> {
    let open = |path: &Path| -> Option<(std::fs::File, u64)> {
        let f = std::fs::File::open(path).ok()?;
        let ino = f.metadata().ok()?.ino();
        Some((f, ino))
    };
    let (mut file, mut ino) =
        open(path).ok_or_else(|| anyhow::anyhow!("cannot open {}", path.display()))?;
    let mut pos = file.seek(SeekFrom::End(0))?;
    let mut pending = Vec::new();
    let mut last_data = Instant::now();
    loop {
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        if !chunk.is_empty() {
            pos += chunk.len() as u64;
            pending.extend_from_slice(&chunk);
            while let Some(i) = pending.iter().position(|&c| c == b'\n') {
                let line: Vec<u8> = pending.drain(..=i).collect();
                b.add(&String::from_utf8_lossy(&line))?;
            }
            last_data = Instant::now();
            continue;
        }
        if last_data.elapsed() > Duration::from_secs(1) {
            b.send()?;
        }
        std::thread::sleep(Duration::from_millis(200));
        let len = std::fs::metadata(path).ok().map(|m| (m.ino(), m.len()));
        match len {
            Some((new_ino, _)) if new_ino != ino => {
                // Rotated: finish the old file's partial line, read the new one from its start.
                if !pending.is_empty() {
                    b.add(&String::from_utf8_lossy(&std::mem::take(&mut pending)))?;
                }
                if let Some((f, i)) = open(path) {
                    file = f;
                    ino = i;
                    pos = 0;
                }
            }
            Some((_, len)) if len < pos => {
                // Truncated in place.
                pos = file.seek(SeekFrom::Start(0))?;
                pending.clear();
            }
            _ => {}
        }
    }
}
