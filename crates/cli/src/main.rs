//! The `skald` binary: `skald serve` runs the server; the other commands
//! inspect its files and measure it.
//!
//! Configuration: a TOML file (`--config`) says what Skald stores and
//! serves (store and API limits); flags, each with a `SKALD_*` variable,
//! say how this process runs (where its data is, which addresses it binds).
//! Flags win over the file, the file over the defaults.

mod analyze;
mod catalog;
mod cluster;
mod config;
mod debug;
mod patterns;
mod reload;
mod remote;
mod rules;
mod run;
mod serve;
mod storage;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "skald",
    version,
    about = "A log aggregation server that speaks Grafana Loki's API",
    after_help = "Exit codes: 0 success, 1 failure (including unusable `serve` TLS files), \
2 bad command line (including unusable --ca-cert, --cert or --key files), \
3 server unreachable (including failed TLS handshakes), \
4 request refused by the server (4xx), 5 server error (5xx), 6 invalid pipeline or rule file, \
7 a pipeline component could not be started."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: Loki's HTTP API and the gRPC endpoint, on embedded storage.
    Serve(serve::ServeArgs),
    /// Inspect Skald's files.
    #[command(subcommand)]
    Debug(debug::DebugCommand),
    /// Measure the server: ingest throughput, memory, bytes on disk and
    /// query latency on a generated dataset.
    Bench(skald_bench::BenchArgs),
    /// Run a LogQL query against a server and print the result.
    Query(remote::QueryArgs),
    /// List label names, or the values of one label.
    Labels(remote::LabelsArgs),
    /// List the streams matching a selector.
    Series(remote::SeriesArgs),
    /// Follow a log query: print new entries as they arrive (Loki's
    /// websocket tail; reconnects when the server restarts, no line twice).
    Tail(remote::TailArgs),
    /// Streams, chunks, entries and bytes a selector covers (index stats).
    Stats(remote::IndexArgs),
    /// Bytes per stream, or per label value with --by.
    Volume {
        #[command(flatten)]
        index: remote::IndexArgs,
        /// Aggregate by these labels (comma-separated).
        #[arg(long)]
        by: Option<String>,
        /// Most rows.
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Push lines from standard input or files into a stream.
    Push(remote::PushArgs),
    /// Export every entry of a log query to a JSONL, JSON or CSV file.
    Export(remote::export::ExportArgs),
    /// Run a pipeline's components from a YAML file: one live, colour-coded
    /// view of their output, every line stored.
    Run(run::RunArgs),
    /// Show (and follow) the stored output of a pipeline run.
    Logs(run::logs::LogsArgs),
    /// Analyse a log query on a server: totals, errors, anomalies, top
    /// patterns with their numbers, error groups, lines per hour.
    Analyze(analyze::AnalyzeArgs),
    /// Mine log patterns from a file.
    #[command(subcommand)]
    Patterns(patterns::PatternsCommand),
    /// Manage API tokens: create (prints the token), list, revoke.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Alerting and recording rules: check files offline, list a
    /// server's rules, upload a directory.
    #[command(subcommand)]
    Rules(rules::RulesCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Debug(cmd) => debug::run(cmd),
        Command::Bench(args) => skald_bench::run(args),
        Command::Query(args) => remote::query(args),
        Command::Labels(args) => remote::labels(args),
        Command::Series(args) => remote::series(args),
        Command::Push(args) => remote::push::run(args),
        Command::Tail(args) => remote::tail(args),
        Command::Stats(args) => remote::stats(args),
        Command::Volume { index, by, limit } => remote::volume(index, by, limit),
        Command::Export(args) => remote::export::run(args),
        Command::Run(args) => run::run(args),
        Command::Logs(args) => run::logs::run(args),
        Command::Analyze(args) => analyze::run(args),
        Command::Patterns(cmd) => patterns::run(cmd),
        Command::Token(cmd) => token::run(cmd),
        Command::Rules(cmd) => rules::run(cmd),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "skald", &mut std::io::stdout());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skald: {e:#}");
            let code = e.downcast_ref::<remote::Failure>().map_or(1, |f| f.code);
            ExitCode::from(code)
        }
    }
}
