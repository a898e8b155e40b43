//! The runner: ask the source, publish, write, and advance checkpoints only on `Durable`.
//!
//! Two tasks share a bounded channel: the extractor walks the tables pass by pass, keeping
//! each table's read position in memory; the loader writes batches in order and commits each
//! batch's `upto` once the sink says it is durable. After a crash the extractor starts again
//! from the committed checkpoints, so at worst the batches after the last checkpoint are
//! written again, which sinks accept (they are idempotent).
//!
//! Lag (`highwater_lag_seconds`) is "now minus the source time up to which the sink is
//! complete", set by the loader only from what is durable: the cursor of each committed batch
//! and, when the extractor catches up, the pass's bound, which it sends as a marker behind its
//! batches so the loader applies it once they are durable.
//!
//! Shutdown: one token. The extractor stops asking (the read in flight completes and is
//! published), drops its publisher; the loader drains the channel, flushes and commits; then
//! the sink shuts down. Errors of both sides are collected, not just the first.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::bus::{self, BusError, Publish, Subscribe};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::cursor::Position;
use crate::http::Health;
use crate::metrics::{self, Metrics};
use crate::progress::ProgressOutput;
use crate::retry::RetryPolicy;
use crate::schema::{TableId, TableSchema};
use crate::sink::{Sink, SinkError};
use crate::source::{Source, SourceError};
use crate::source_state::SourceState;
use crate::status::TableErrors;

mod extract;
mod load;
mod verify;

use extract::{ExtractError, Extracted};
use load::Loader;

/// How to run.
#[derive(Clone)]
pub struct RunOptions {
    /// One catch-up pass over every table, then return.
    pub once: bool,
    pub batch_rows: usize,
    pub poll_interval: Duration,
    pub bus_capacity: usize,
    pub metrics: Metrics,
    /// Ready once a pass over every table succeeded.
    pub health: Arc<Health>,
    /// Where long passes report their progress.
    pub progress: ProgressOutput,
    /// Where the run records the error each table met, for `highwater status`.
    pub table_errors: TableErrors,
    /// How long a failing read or write is retried.
    pub retry: RetryPolicy,
    /// What earlier runs saw of the source (`None`: nothing is compared).
    pub source_state: Option<Arc<SourceState>>,
    /// Go on with tables whose columns were dropped, renamed or retyped since the last run.
    pub accept_schema_change: bool,
    /// Read tables again from the start when the source is another server or went back in time.
    pub accept_source_reset: bool,
}

/// What a run did, per table.
#[derive(Clone, Debug)]
pub struct TableReport {
    pub table: TableId,
    pub rows_loaded: u64,
    pub batches: u64,
    pub zero_dates: u64,
    pub null_cursor_rows: u64,
    /// The committed checkpoint at the end of the run.
    pub checkpoint: Position,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub tables: Vec<TableReport>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn rows_loaded(&self) -> u64 {
        self.tables.iter().map(|t| t.rows_loaded).sum()
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        for t in &self.tables {
            write!(
                f,
                "{:<32} {:>10} rows {:>6} batches  checkpoint {}",
                t.table.to_string(),
                t.rows_loaded,
                t.batches,
                t.checkpoint
            )?;
            if t.zero_dates > 0 {
                write!(f, "  zero dates -> NULL: {}", t.zero_dates)?;
            }
            if t.null_cursor_rows > 0 {
                write!(f, "  NULL cursor rows: {}", t.null_cursor_rows)?;
            }
            writeln!(f)?;
        }
        let rows = self.rows_loaded();
        write!(f, "total {rows} rows in {secs:.2} s ({:.0} rows/s)", rows as f64 / secs)
    }
}

/// Why a run stopped. Several errors are kept together when both sides failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("{}", .0.iter().map(|e| format!("{e}")).collect::<Vec<_>>().join("; and "))]
    Several(Vec<RunError>),
}

/// Runs the pipeline in one process over the bounded channel, until caught up (`once`) or
/// until `shutdown` is cancelled.
pub async fn run<Src, Snk, St>(
    mut source: Src,
    mut sink: Snk,
    store: St,
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunReport, RunError>
where
    Src: Source,
    Snk: Sink,
    St: CheckpointStore,
{
    let started = Instant::now();
    let tables: Vec<Arc<TableSchema>> = source.tables().to_vec();
    let mut checkpoints = load_checkpoints(tables.iter().map(|t| &t.id), &store).await?;
    let stopped = verify::at_start(&mut source, &store, &mut checkpoints, &options).await?;
    let ready: Vec<Arc<TableSchema>> =
        tables.iter().zip(&stopped).filter(|(_, s)| s.is_none()).map(|(t, _)| t.clone()).collect();
    sink.prepare(&ready).await?;
    if !sink.commits_checkpoints() {
        for (table, checkpoint) in tables.iter().zip(&checkpoints) {
            sink.discard_after(table, &checkpoint.position).await?;
        }
    }

    let (publisher, mut subscriber) = bus::channel(options.bus_capacity);
    let extractor = tokio::spawn(extract::extract(
        source,
        publisher,
        checkpoints.clone(),
        stopped,
        None::<St>,
        options.clone(),
        shutdown.clone(),
    ));
    let ids: Vec<TableId> = tables.iter().map(|t| t.id.clone()).collect();
    let mut loader = Loader::new(&ids, checkpoints, &options);
    loader.prepared(&ready);
    let load_result = loader.run(&mut sink, &store, &mut subscriber, &shutdown, &options.health).await;
    // If the loader failed, dropping its subscriber fails the extractor's next publish (it may
    // be waiting on a full channel) and it returns. A panic in the extractor is a bug, and is
    // raised here as one.
    drop(subscriber);
    let (_, _, extract_result) = match extractor.await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let shutdown_result = sink.shutdown().await;

    let mut errors = Errors::new(&options);
    errors.load(load_result);
    errors.extract(extract_result);
    errors.shutdown(shutdown_result);
    errors.finish(RunReport { tables: loader.into_reports(), elapsed: started.elapsed() })
}

/// The extracting role over a durable bus (Kafka): reads the source from its own
/// checkpoints (in `store`) and checkpoints each batch once the bus has it.
pub async fn run_extract<Src, P, St>(
    mut source: Src,
    publisher: P,
    store: St,
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunReport, RunError>
where
    Src: Source,
    P: Publish,
    St: CheckpointStore,
{
    let started = Instant::now();
    let tables: Vec<Arc<TableSchema>> = source.tables().to_vec();
    let mut checkpoints = load_checkpoints(tables.iter().map(|t| &t.id), &store).await?;
    let stopped = verify::at_start(&mut source, &store, &mut checkpoints, &options).await?;
    let (done, reached, result) =
        extract::extract(source, publisher, checkpoints, stopped, Some(store), options.clone(), shutdown).await;
    let reports = tables
        .iter()
        .zip(done)
        .zip(reached)
        .map(|((t, d), c): ((&Arc<TableSchema>, Extracted), Checkpoint)| TableReport {
            table: t.id.clone(),
            rows_loaded: d.rows,
            batches: d.batches,
            zero_dates: d.zero_dates,
            null_cursor_rows: d.null_cursor_rows,
            checkpoint: c.position,
        })
        .collect();
    let mut errors = Errors::new(&options);
    errors.extract(result);
    errors.finish(RunReport { tables: reports, elapsed: started.elapsed() })
}

/// The loading role over a remote bus (Kafka): loads `tables` as their batches arrive, until
/// the bus has nothing more for this run or `shutdown`; the bus acks what the sink made durable.
pub async fn run_load<Sub, Snk, St>(
    mut subscriber: Sub,
    mut sink: Snk,
    store: St,
    tables: &[TableId],
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<RunReport, RunError>
where
    Sub: Subscribe,
    Snk: Sink,
    St: CheckpointStore,
{
    let started = Instant::now();
    let checkpoints = load_checkpoints(tables.iter(), &store).await?;
    let mut loader = Loader::new(tables, checkpoints, &options);
    let load_result = loader.run(&mut sink, &store, &mut subscriber, &shutdown, &options.health).await;
    let shutdown_result = sink.shutdown().await;
    let mut errors = Errors::new(&options);
    errors.load(load_result);
    errors.shutdown(shutdown_result);
    errors.finish(RunReport { tables: loader.into_reports(), elapsed: started.elapsed() })
}

/// The stored checkpoint of each table, the start for a table never loaded.
async fn load_checkpoints<'a, St: CheckpointStore>(
    tables: impl Iterator<Item = &'a TableId>,
    store: &St,
) -> Result<Vec<Checkpoint>, RunError> {
    let mut checkpoints = Vec::new();
    for t in tables {
        checkpoints.push(store.load(t).await?.unwrap_or_default());
    }
    Ok(checkpoints)
}

/// The errors of both sides, counted in `highwater_errors_total` and kept together.
struct Errors<'a> {
    options: &'a RunOptions,
    all: Vec<RunError>,
}

impl<'a> Errors<'a> {
    fn new(options: &'a RunOptions) -> Self {
        Errors { options, all: Vec::new() }
    }

    fn count(&self, stage: &str, retryable: bool) {
        let kind = if retryable { metrics::KIND_RETRYABLE } else { metrics::KIND_OPERATOR };
        self.options.metrics.errors.with_label_values(&[stage, kind]).inc();
    }

    fn load(&mut self, result: Result<(), RunError>) {
        if let Err(e) = result {
            let retryable = match &e {
                RunError::Sink(s) => s.is_retryable(),
                RunError::Bus(b) => b.is_retryable(),
                _ => false,
            };
            self.count(metrics::STAGE_LOAD, retryable);
            self.all.push(e);
        }
    }

    fn extract(&mut self, result: Result<(), ExtractError>) {
        match result {
            // The bus only closes early when the loader failed, which is reported on its own.
            Ok(()) | Err(ExtractError::BusClosed) => {}
            Err(ExtractError::Source(e)) => {
                self.count(metrics::STAGE_EXTRACT, e.is_retryable());
                self.all.push(e.into());
            }
            // Each was counted when its table stopped.
            Err(ExtractError::Tables(errors)) => self.all.extend(errors.into_iter().map(RunError::from)),
            Err(ExtractError::Bus(e)) => {
                self.count(metrics::STAGE_EXTRACT, e.is_retryable());
                self.all.push(e.into());
            }
            Err(ExtractError::Checkpoint(e)) => {
                self.count(metrics::STAGE_CHECKPOINT, false);
                self.all.push(e.into());
            }
        }
    }

    fn shutdown(&mut self, result: Result<(), SinkError>) {
        if let Err(e) = result {
            self.count(metrics::STAGE_LOAD, e.is_retryable());
            self.all.push(e.into());
        }
    }

    fn finish(mut self, report: RunReport) -> Result<RunReport, RunError> {
        if !self.all.is_empty() {
            self.options.health.set_ready(false);
        }
        match self.all.len() {
            0 => Ok(report),
            1 => Err(self.all.remove(0)),
            _ => Err(RunError::Several(self.all)),
        }
    }
}
