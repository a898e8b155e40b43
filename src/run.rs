//! `highwater run`: serve metrics, build the source and the sink from the config, hand them to
//! the runner, and record how the run went for `highwater status`.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use highwater_pipeline::checkpoint::FileCheckpointStore;
use highwater_pipeline::config::{DEFAULT_METRICS_LISTEN, PipelineConfig};

use crate::config::{BusConfig, Config, SinkConfig, SourceConfig};
use highwater_pipeline::http::{self, Health};
use highwater_pipeline::lock::RunLock;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::progress::ProgressOutput;
use highwater_pipeline::retry::RetryPolicy;
use highwater_pipeline::runner::{self, RunOptions, RunReport};
use highwater_pipeline::source::BatchShape;
use highwater_pipeline::source_state::SourceState;
use highwater_pipeline::status::{self, RunRecord, Status, TableErrors};
use highwater_sinks::mysql::MysqlSink;
use highwater_sinks::parquet::ParquetSink;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::build::Role;
use crate::build::{configured_tables, connect_source};
use crate::kafka;
use crate::logging::LogFormat;

/// Changes of the source the operator accepts for this run (`--accept-...`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Accept {
    pub schema_change: bool,
    pub source_reset: bool,
}

/// Runs the pipeline and records the outcome in the status file, whatever it was.
pub async fn run(
    config: Config,
    once: bool,
    role: Role,
    accept: Accept,
    log_format: LogFormat,
) -> anyhow::Result<RunReport> {
    // Refused before anything is recorded: the status file belongs to the run holding the lock.
    // Loaders of a Kafka group share their work through the group, not the state directory.
    let lock = match role {
        Role::Load => None,
        Role::Extract | Role::All => Some(RunLock::acquire(&config.pipeline.state_dir, &config.pipeline.name)?),
    };
    if let Some(lock) = &lock {
        tracing::debug!(lock = %lock.path().display(), "holding the pipeline's lock");
    }
    // And the files a run of both roles writes (loaders of one Kafka group share them).
    let output_lock = match (&config.sink, role) {
        (SinkConfig::Parquet(p), Role::All) => Some(RunLock::output(&p.path)?),
        _ => None,
    };
    let started_at = status::now_text();
    let table_errors = TableErrors::default();
    // A daemon goes on with its other tables when one fails: `status` shows that one at once.
    let watcher =
        (!once).then(|| tokio::spawn(record_errors_while_running(config.pipeline.clone(), table_errors.clone())));
    let mut result = run_pipeline(&config, once, role, accept, log_format, table_errors.clone()).await;
    if once && role != Role::Load && result.is_ok() {
        result = result.and_then(|report| back_up_source(&config).map(|()| report));
    }
    if let Some(w) = watcher {
        w.abort();
    }
    let run = RunRecord {
        started_at,
        finished_at: status::now_text(),
        mode: format!("{}{}", if once { "once" } else { "daemon" }, role.suffix()),
        ok: result.is_ok(),
        rows_loaded: result.as_ref().map_or(0, RunReport::rows_loaded),
        error: result.as_ref().err().map(|e| status::join_causes(e.chain().map(ToString::to_string))),
    };
    if let Err(e) = record(&config, run, &table_errors) {
        // The run's own outcome matters more than its record: report and go on.
        let e = status::join_causes(e.chain().map(ToString::to_string));
        tracing::warn!(error = %e, "cannot record the run for highwater status");
    }
    drop(output_lock);
    drop(lock);
    result
}

/// After a successful `--once`, an online backup of a SQLite source file into its `backup_dir`.
fn back_up_source(config: &Config) -> anyhow::Result<()> {
    let SourceConfig::Sqlite(source) = &config.source else { return Ok(()) };
    let Some(dir) = &source.backup_dir else { return Ok(()) };
    let utc = status::now_text().replace(['-', ':'], "").replace(' ', "T");
    let utc = utc.split('.').next().unwrap_or(&utc).to_owned() + "Z";
    let path = highwater_connectors::sqlite::backup::backup(&source.path, dir, &utc).map_err(anyhow::Error::msg)?;
    tracing::info!(backup = %path.display(), "kept a backup of the source file");
    Ok(())
}

fn record(config: &Config, run: RunRecord, errors: &TableErrors) -> anyhow::Result<()> {
    let path = status::path(&config.pipeline.state_dir, &config.pipeline.name);
    let mut status = Status::read(&path)?;
    status.record_run(run, &configured_tables(config), errors);
    status.write(&path)?;
    Ok(())
}

/// Every 2 s, writes the errors tables met since the last look into the status file.
async fn record_errors_while_running(pipeline: PipelineConfig, errors: TableErrors) {
    let path = status::path(&pipeline.state_dir, &pipeline.name);
    let mut written = std::collections::BTreeMap::new();
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = errors.snapshot();
        if now == written {
            continue;
        }
        let result = Status::read(&path).and_then(|mut s| {
            s.record_errors(&now, &status::now_text());
            s.write(&path)
        });
        match result {
            Ok(()) => written = now,
            Err(e) => tracing::warn!(error = %e, "cannot record a table's error for highwater status"),
        }
    }
}

async fn run_pipeline(
    config: &Config,
    once: bool,
    role: Role,
    accept: Accept,
    log_format: LogFormat,
    table_errors: TableErrors,
) -> anyhow::Result<RunReport> {
    let source_config = &config.source;
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
    let progress = match (std::io::stderr().is_terminal(), log_format) {
        (true, LogFormat::Text) => ProgressOutput::Terminal,
        _ => ProgressOutput::Log,
    };
    let options = RunOptions {
        once,
        batch_rows: source_config.batch_rows(),
        poll_interval: Duration::from_secs(source_config.poll_interval_secs()),
        bus_capacity: config.pipeline.bus_capacity,
        metrics,
        health,
        progress,
        table_errors,
        retry: RetryPolicy { give_up_after: Duration::from_secs(config.pipeline.retry_for_secs) },
        source_state: match role {
            Role::Load => None,
            Role::Extract | Role::All => {
                Some(Arc::new(SourceState::open(&config.pipeline.state_dir, &config.pipeline.name)?))
            }
        },
        accept_schema_change: accept.schema_change,
        accept_source_reset: accept.source_reset,
    };

    let report = match (&config.bus, role) {
        (BusConfig::Channel, Role::All) => run_channel(config, source_config, options, shutdown).await,
        (BusConfig::Channel, role) => Err(anyhow::anyhow!(
            "--role {role} needs a bus between processes: add [bus] type = \"kafka\" to the config"
        )),
        (BusConfig::Kafka(bus), role) => kafka::run(config, bus, role, options, shutdown).await,
    };
    http_stop.cancel();
    if let Some(server) = server {
        // The server task only ends when told to; a join error is a panic already logged.
        let _ = server.await;
    }
    report
}

/// Source, channel and sink in this process.
async fn run_channel(
    config: &Config,
    source_config: &SourceConfig,
    options: RunOptions,
    shutdown: CancellationToken,
) -> anyhow::Result<RunReport> {
    // The sink merges a first copy's scattered dates itself: the copy always reads by key.
    let source = connect_source(source_config, BatchShape::Any, &options).await?;
    let name = &config.pipeline.name;
    Ok(match &config.sink {
        SinkConfig::Parquet(p) => {
            let store = FileCheckpointStore::open(&config.pipeline.state_dir, name)?;
            tracing::info!(pipeline = %name, path = %p.path.display(), checkpoints = %store.path().display(), "starting");
            runner::run(source, ParquetSink::new(p).merging_dates(), store, options, shutdown).await?
        }
        SinkConfig::Mysql(m) => {
            let mut sink = MysqlSink::connect(m, name, Some(&options.metrics)).await?;
            sink.refuse_nonempty_targets(m, source_config.is_a_move());
            sink.lock(m.url.database().unwrap_or_default(), name).await?;
            let store = sink.checkpoint_store();
            tracing::info!(pipeline = %name, sink = %m.url, "starting");
            runner::run(source, sink, store, options, shutdown).await?
        }
    })
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
