//! `skald debug`: human-readable views of Skald's files.

use anyhow::Context;
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum DebugCommand {
    /// Describe a segment file: header, streams, chunks, sizes, filters.
    Segment {
        file: PathBuf,
        /// Also decompress every block and check its checksum.
        #[arg(long)]
        verify: bool,
    },
    /// Summarise a WAL directory: files, records, torn tails, corruption.
    Wal { dir: PathBuf },
}

pub fn run(cmd: DebugCommand) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    match cmd {
        DebugCommand::Segment { file, verify } => {
            let text = skald_chunk::describe_segment(&file, verify)
                .with_context(|| format!("reading {}", file.display()))?;
            out = text;
        }
        DebugCommand::Wal { dir } => {
            let mut per_file: std::collections::BTreeMap<u64, (u64, u64, u64)> = Default::default();
            let report = skald_wal::inspect(&dir, |seq, payload| {
                let e = per_file.entry(seq).or_default();
                e.0 += 1;
                e.1 += payload.len() as u64;
                match skald_store::record::decode(payload) {
                    Ok((_, streams)) => {
                        e.2 += streams.iter().map(|s| s.entries.len() as u64).sum::<u64>()
                    }
                    Err(err) => {
                        let _ = writeln!(out, "file {seq}: undecodable record: {err}");
                    }
                }
            })?;
            for (seq, (records, bytes, entries)) in &per_file {
                let _ = writeln!(
                    out,
                    "file {seq:020}.wal: {records} records, {bytes} bytes, {entries} entries"
                );
            }
            let _ = writeln!(
                out,
                "{} files, {} records, {} bytes; torn tail {} bytes",
                report.files, report.records, report.bytes, report.torn_tail_bytes
            );
            for c in &report.corruptions {
                let _ = writeln!(out, "corruption: {c}");
            }
        }
    }
    // A reader that stops early (`| head`) is not an error.
    use std::io::Write as _;
    match std::io::stdout().lock().write_all(out.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
