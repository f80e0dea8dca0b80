//! The `skald` binary: `skald serve` runs the server; the other commands
//! inspect its files and measure it.
//!
//! Configuration: a TOML file (`--config`) says what Skald stores and
//! serves (store and API limits); flags, each with a `SKALD_*` variable,
//! say how this process runs (where its data is, which addresses it binds).
//! Flags win over the file, the file over the defaults.

mod bench;
mod config;
mod debug;
mod serve;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "skald",
    version,
    about = "A log aggregation server that speaks Grafana Loki's API"
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
    Bench(bench::BenchArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Debug(cmd) => debug::run(cmd),
        Command::Bench(args) => bench::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("skald: {e:#}");
            ExitCode::from(1)
        }
    }
}
