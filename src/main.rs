//! The `highwater` binary: parse the CLI, load the config, build the source, bus and sink,
//! and hand them to the runner. Exit codes: 0 done, 1 failed, 2 invalid config or usage.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

mod check;

use anyhow::Context;
use clap::{Parser, Subcommand};
use highwater_connectors::mysql::MysqlSource;
use highwater_pipeline::checkpoint::FileCheckpointStore;
use highwater_pipeline::config::{Config, DEFAULT_METRICS_LISTEN, SinkConfig, SourceConfig};
use highwater_pipeline::http::{self, Health};
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::runner::{self, RunOptions, RunReport};
use highwater_sinks::mysql::MysqlSink;
use highwater_sinks::parquet::ParquetSink;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Incremental replication of MySQL-family databases into MySQL or Parquet.
#[derive(Parser)]
#[command(name = "highwater", version)]
struct Cli {
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
        #[arg(long)]
        once: bool,
    },
    /// Prove every table can be read incrementally: cursor type, cursor index, EXPLAIN.
    /// Exits 0 only when every table holds.
    Check {
        #[arg(long, short)]
        config: PathBuf,
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
    },
    /// Print the CREATE INDEX statements for missing cursor indexes and their rollback.
    Indexes {
        #[arg(long, short)]
        config: PathBuf,
        /// Create the missing indexes, one at a time.
        #[arg(long)]
        apply: bool,
    },
}

const EXIT_FAILED: u8 = 1;
const EXIT_INVALID_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("HIGHWATER_LOG").unwrap_or_else(|_| "info".into()))
        .init();
    let path = match &cli.command {
        Command::Run { config, .. } | Command::Check { config, .. } | Command::Indexes { config, .. } => config,
    };
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_INVALID_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    let SourceConfig::Mysql(source) = &config.source;
    let outcome = match cli.command {
        Command::Run { once, .. } => runtime.block_on(run(config, once)).map(|report| {
            println!("{report}");
            true
        }),
        Command::Check { json, .. } => runtime.block_on(check::run_check(source, json)),
        Command::Indexes { apply, .. } => runtime.block_on(check::run_indexes(source, apply)).map(|()| true),
    };
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(EXIT_FAILED),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_FAILED)
        }
    }
}

async fn run(config: Config, once: bool) -> anyhow::Result<RunReport> {
    let SourceConfig::Mysql(source_config) = &config.source;
    let shutdown = CancellationToken::new();
    tokio::spawn(signal_shutdown(shutdown.clone()));

    // The HTTP endpoint outlives the run's drain and stops last.
    let metrics = Metrics::new(&config.pipeline.name)?;
    let health = Arc::new(Health::default());
    let listen = match &config.metrics {
        Some(m) => Some(m.listen.clone()),
        None if !once => Some(DEFAULT_METRICS_LISTEN.to_owned()),
        None => None,
    };
    let http_stop = CancellationToken::new();
    let server = match listen {
        Some(addr) => {
            let listener =
                TcpListener::bind(&addr).await.with_context(|| format!("cannot listen on {addr} (metrics.listen)"))?;
            tracing::info!(%addr, "serving /metrics, /health and /ready");
            Some(tokio::spawn(http::serve(listener, metrics.clone(), health.clone(), http_stop.clone())))
        }
        None => None,
    };
    let options = RunOptions {
        once,
        batch_rows: source_config.batch_rows,
        poll_interval: Duration::from_secs(source_config.poll_interval_secs),
        bus_capacity: config.pipeline.bus_capacity,
        metrics,
        health,
    };

    let source = MysqlSource::connect(source_config, &options.metrics).await?;
    let name = &config.pipeline.name;
    let report = match &config.sink {
        SinkConfig::Parquet(p) => {
            let store = FileCheckpointStore::open(&config.pipeline.state_dir, name)?;
            tracing::info!(pipeline = %name, path = %p.path.display(), checkpoints = %store.path().display(), "starting");
            runner::run(source, ParquetSink::new(p), store, options, shutdown).await?
        }
        SinkConfig::Mysql(m) => {
            let sink = MysqlSink::connect(m, name, Some(&options.metrics)).await?;
            let store = sink.checkpoint_store();
            tracing::info!(pipeline = %name, sink = %m.url, "starting");
            runner::run(source, sink, store, options, shutdown).await?
        }
    };
    http_stop.cancel();
    if let Some(server) = server {
        // The server task only ends when told to; a join error is a panic already logged.
        let _ = server.await;
    }
    Ok(report)
}

/// Cancels `token` on the first SIGINT or SIGTERM.
async fn signal_shutdown(token: CancellationToken) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            // Without a SIGTERM handler, SIGINT still works.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown requested: finishing the batch in flight");
    token.cancel();
}
