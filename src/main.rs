//! The `highwater` binary: parse the CLI, load the config, and run a command. Exit codes:
//! 0 done, 1 failed (or `check` found a problem), 2 invalid config or usage.
//!
//! - `run` (module [`run`]): replicate, once or as a daemon; over Kafka (module [`kafka`]) as
//!   separate extract and load roles.
//! - `check`, `indexes` (module [`check`]): prove the source can be read incrementally.
//! - `status` (module [`status`]): checkpoints, rows, lag and last errors.
//! - [`logging`]: text or JSON logs on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` through [`stdout::line`]: a closed pipe ends the output, not the process.
macro_rules! out {
    () => {
        $crate::stdout::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::stdout::line(format_args!($($arg)*))
    };
}

mod build;
mod check;
mod config;
mod kafka;
mod logging;
mod malloc;
mod reconcile;
mod run;
mod status;
mod stdout;

use crate::config::{Config, SinkConfig};
use clap::{Parser, Subcommand};
use highwater_pipeline::status::join_causes;

use crate::logging::LogFormat;

/// Incremental replication of MySQL-family databases into MySQL or Parquet.
#[derive(Parser)]
#[command(name = "highwater", version)]
struct Cli {
    /// Log lines as text for people, or as one JSON object per line for collectors.
    #[arg(long, global = true, value_enum, default_value_t)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Replicate: catch every table up, then keep polling until SIGINT/SIGTERM.
    Run {
        /// The pipeline's TOML file.
        #[arg(long, short)]
        config: PathBuf,
        /// One catch-up pass over every table, then exit (for cron, systemd timers, Airflow).
        /// A Kafka loader exits once the bus has had nothing for it for 3 s.
        #[arg(long)]
        once: bool,
        /// With a Kafka bus: `extract` reads and publishes, `load` consumes and writes,
        /// `all` does both in this process.
        #[arg(long, value_enum, default_value_t)]
        role: run::Role,
        /// Go on with tables whose columns were dropped, renamed or retyped since the last run
        /// (after making the sink's copy match).
        #[arg(long)]
        accept_schema_change: bool,
        /// Read tables again from the start when the source is another server, or its newest
        /// rows are older than the checkpoints (restored from a backup).
        #[arg(long)]
        accept_source_reset: bool,
    },
    /// Prove every table can be read incrementally: cursor type, cursor index, EXPLAIN.
    /// Exits 0 only when every table holds.
    Check {
        /// The pipeline's TOML file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
    },
    /// Print the CREATE INDEX statements for missing cursor indexes and their rollback.
    Indexes {
        /// The pipeline's TOML file.
        #[arg(long, short)]
        config: PathBuf,
        /// Create the missing indexes, one at a time.
        #[arg(long)]
        apply: bool,
    },
    /// Delete from a MySQL sink the rows the source deleted (polling cannot see hard deletes):
    /// compares both sides by key ranges and fetches keys only where they differ.
    Reconcile {
        /// The pipeline's TOML file.
        #[arg(long, short)]
        config: PathBuf,
        /// Only this table (its name in source.tables).
        #[arg(long)]
        table: Option<String>,
        /// About this many keys per compared range.
        #[arg(long, default_value_t = 1_000)]
        chunk_rows: u64,
        /// Report what would be deleted, delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Per table: the checkpoint, rows loaded, lag and the last error.
    Status {
        /// The pipeline's TOML file.
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
    },
}

const EXIT_FAILED: u8 = 1;
const EXIT_INVALID_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let path = match &cli.command {
        Command::Run { config, .. }
        | Command::Check { config, .. }
        | Command::Indexes { config, .. }
        | Command::Reconcile { config, .. }
        | Command::Status { config, .. } => config,
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    if matches!(config.sink, SinkConfig::Parquet(_)) {
        malloc::keep_freed_memory();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let source = &config.source;
    let outcome = match cli.command {
        Command::Run { once, role, accept_schema_change, accept_source_reset, .. } => {
            let accept = run::Accept { schema_change: accept_schema_change, source_reset: accept_source_reset };
            runtime.block_on(run::run(config, once, role, accept, cli.log_format)).map(|report| {
                out!("{report}");
                true
            })
        }
        Command::Check { json, .. } => runtime.block_on(check::run_check(source, json)),
        Command::Indexes { apply, .. } => runtime.block_on(check::run_indexes(source, apply)),
        Command::Status { json, .. } => runtime.block_on(status::run_status(&config, json)).map(|()| true),
        Command::Reconcile { table, chunk_rows, dry_run, .. } => runtime
            .block_on(reconcile::run_reconcile(&config, table.as_deref(), chunk_rows.max(1), dry_run))
            .map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("error: {}", join_causes(e.chain().map(ToString::to_string)));
            ExitCode::from(EXIT_FAILED)
        }
    }
}
