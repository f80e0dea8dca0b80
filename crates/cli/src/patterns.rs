//! `skald patterns mine FILE`: the pattern miner over a file, offline.
//!
//! Prints, for every input line in order, the pattern it was finally
//! assigned (patterns found later may absorb earlier ones, so lines are
//! printed once the whole file is mined), or with `--summary` each pattern
//! with its count, most frequent first. Used to evaluate the miner on
//! labelled corpora and by people who want patterns from a file without a
//! server. Not a query against a server (that is `skald analyze`).

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use skald_analysis::{Miner, MinerConfig};
use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;

#[derive(Subcommand, Debug)]
pub enum PatternsCommand {
    /// Mine a file's lines and print each line's pattern.
    Mine(MineArgs),
}

#[derive(Args, Debug)]
pub struct MineArgs {
    /// File to read, one log line per line (`-` for standard input).
    pub file: PathBuf,
    /// Print each pattern with its line count instead of one pattern per line.
    #[arg(long)]
    pub summary: bool,
    /// Most patterns kept; past it the rarest are evicted (their lines print
    /// an empty pattern).
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub max_patterns: u64,
}

pub fn run(cmd: PatternsCommand) -> anyhow::Result<()> {
    match cmd {
        PatternsCommand::Mine(args) => mine(args),
    }
}

fn mine(args: MineArgs) -> anyhow::Result<()> {
    let input: Box<dyn BufRead> = if args.file.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        let file = std::fs::File::open(&args.file)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        Box::new(std::io::BufReader::new(file))
    };
    let mut miner = Miner::new(MinerConfig {
        track_merges: true,
        max_patterns: args.max_patterns as usize,
        ..MinerConfig::default()
    });
    let mut ids = Vec::new();
    let mut buf = Vec::new();
    let mut input = input;
    loop {
        buf.clear();
        let n = input
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        if n == 0 {
            break;
        }
        let line = String::from_utf8_lossy(&buf);
        let line = line.trim_end_matches(['\n', '\r']);
        ids.push(miner.add(line));
    }
    let mut out = BufWriter::new(std::io::stdout().lock());
    let result = if args.summary {
        let mut patterns: Vec<(u64, String)> =
            miner.patterns().map(|(_, p)| (p.count, p.text())).collect();
        patterns.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        patterns
            .iter()
            .try_for_each(|(count, text)| writeln!(out, "{count}\t{}", tab_free(text)))
    } else {
        ids.iter().try_for_each(|&id| {
            let text = miner.get(id).map(|p| p.text()).unwrap_or_default();
            writeln!(out, "{}", tab_free(&text))
        })
    };
    match result.and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) ends the output, it is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => bail!("cannot write the output: {e}"),
    }
}

/// Patterns are printed one per line: tabs and newlines inside a token
/// cannot occur (tokens are split on whitespace), so this only guards.
fn tab_free(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains(['\t', '\n', '\r']) {
        text.replace(['\t', '\n', '\r'], " ").into()
    } else {
        text.into()
    }
}
