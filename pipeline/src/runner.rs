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

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::batch::ChangeBatch;
use crate::bus::{self, Message, Publisher, Subscriber};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::cursor::{DateTime, Position};
use crate::http::Health;
use crate::metrics::{self, Metrics};
use crate::progress::{Progress, ProgressOutput};
use crate::schema::{TableId, TableSchema};
use crate::sink::{Durability, Sink, SinkError};
use crate::source::{PassBound, Source, SourceError};
use crate::status::TableErrors;

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
    #[error("{}", .0.iter().map(|e| format!("{e}")).collect::<Vec<_>>().join("; and "))]
    Several(Vec<RunError>),
}

/// Runs the pipeline until caught up (`once`) or until `shutdown` is cancelled.
pub async fn run<Src, Snk, St>(
    source: Src,
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
    sink.prepare(&tables).await?;

    let mut checkpoints = Vec::with_capacity(tables.len());
    for t in &tables {
        checkpoints.push(store.load(&t.id).await?.unwrap_or_default());
    }
    let positions = checkpoints.iter().map(|c| c.position.clone()).collect();

    let (publisher, subscriber) = bus::channel(options.bus_capacity);
    let extractor = tokio::spawn(extract(source, publisher, positions, options.clone(), shutdown.clone()));
    let mut loader = Loader::new(&tables, checkpoints, options.metrics.clone(), options.table_errors.clone());
    let load_result = loader.run(&mut sink, &store, subscriber).await;
    // If the loader failed its subscriber is gone: the extractor's next publish fails and it
    // returns. A panic in the extractor is a bug, and is raised here as one.
    let extract_result = match extractor.await {
        Ok(r) => r,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    };
    let shutdown_result = sink.shutdown().await;

    let mut errors = Vec::new();
    let count = |stage: &str, retryable: bool| {
        let kind = if retryable { metrics::KIND_RETRYABLE } else { metrics::KIND_OPERATOR };
        options.metrics.errors.with_label_values(&[stage, kind]).inc();
    };
    if let Err(e) = load_result {
        count(metrics::STAGE_LOAD, matches!(&e, RunError::Sink(s) if s.is_retryable()));
        errors.push(e);
    }
    match extract_result {
        // The bus only closes early when the loader failed, which is reported above.
        Ok(()) | Err(ExtractError::BusClosed) => {}
        Err(ExtractError::Source(e)) => {
            count(metrics::STAGE_EXTRACT, e.is_retryable());
            errors.push(e.into());
        }
    }
    if let Err(e) = shutdown_result {
        count(metrics::STAGE_LOAD, e.is_retryable());
        errors.push(e.into());
    }
    if !errors.is_empty() {
        options.health.set_ready(false);
    }
    match errors.len() {
        0 => Ok(RunReport { tables: loader.into_reports(), elapsed: started.elapsed() }),
        1 => Err(errors.remove(0)),
        _ => Err(RunError::Several(errors)),
    }
}

enum ExtractError {
    Source(SourceError),
    BusClosed,
}

impl ExtractError {
    fn source(table: &TableId, errors: &TableErrors, e: SourceError) -> Self {
        errors.record(table, &e);
        ExtractError::Source(e)
    }
}

/// Walks the tables pass by pass and publishes what it reads.
async fn extract<Src: Source>(
    mut source: Src,
    publisher: Publisher,
    mut positions: Vec<Position>,
    options: RunOptions,
    shutdown: CancellationToken,
) -> Result<(), ExtractError> {
    let tables: Vec<Arc<TableSchema>> = source.tables().to_vec();
    'passes: loop {
        for (i, table) in tables.iter().enumerate() {
            let pass_started = Instant::now();
            let label = table.id.to_string();
            let mut bound = PassBound::default();
            // A first copy knows roughly how much is ahead of it.
            let total = (positions[i] == Position::Start).then(|| source.estimated_rows(i)).flatten();
            let mut progress = Progress::start(table.id.clone(), total, options.progress, pass_started);
            let (mut rows, mut nulls, mut zeros) = (0u64, 0u64, 0u64);
            loop {
                if shutdown.is_cancelled() {
                    break 'passes;
                }
                let started = Instant::now();
                let batch = source
                    .next_batch(i, &positions[i], &mut bound, options.batch_rows)
                    .await
                    .map_err(|e| ExtractError::source(&table.id, &options.table_errors, e))?;
                let m = &options.metrics;
                m.stage_seconds.with_label_values(&[metrics::STAGE_EXTRACT]).observe(started.elapsed().as_secs_f64());
                let Some(batch) = batch else {
                    // Caught up to the pass's bound: once what was published before is
                    // durable, the sink is complete up to the bound (the loader sets the lag).
                    if let Some(bound) = bound.0 {
                        let marker = Message::CaughtUp { table: table.id.clone(), bound };
                        tokio::select! {
                            biased;
                            _ = shutdown.cancelled() => break 'passes,
                            sent = publisher.publish(marker) => sent.map_err(|_| ExtractError::BusClosed)?,
                        }
                    }
                    break;
                };
                m.rows_extracted.with_label_values(&[&label]).inc_by(batch.num_rows() as u64);
                m.null_cursor_rows.with_label_values(&[&label]).inc_by(batch.stats.null_cursor_rows);
                m.zero_dates.with_label_values(&[&label]).inc_by(batch.stats.zero_dates);
                rows += batch.num_rows() as u64;
                progress.advance(batch.num_rows() as u64, Instant::now());
                nulls += batch.stats.null_cursor_rows;
                zeros += batch.stats.zero_dates;
                positions[i] = batch.upto.clone();
                // Counted before the hand-over: the loader may take it at once.
                options.metrics.bus_in_flight.inc();
                tokio::select! {
                    biased;
                    // 1. Shutdown: the batch in hand is dropped unpublished; it is after the
                    //    last checkpoint, so the next run reads it again.
                    _ = shutdown.cancelled() => {
                        options.metrics.bus_in_flight.dec();
                        break 'passes;
                    }
                    // 2. Hand over, waiting while the bus is full (backpressure).
                    sent = publisher.publish(Message::Batch(batch)) => sent.map_err(|_| ExtractError::BusClosed)?,
                }
            }
            progress.finish();
            report_pass(&table.id, table.cursor_column().name.as_str(), rows, nulls, zeros, pass_started.elapsed());
        }
        options.health.set_ready(true);
        if options.once {
            break;
        }
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(options.poll_interval) => {}
        }
    }
    Ok(())
}

/// Logs one pass over one table, and warns once per pass about what will not replicate well.
fn report_pass(table: &TableId, cursor: &str, rows: u64, nulls: u64, zeros: u64, took: Duration) {
    if rows > 0 {
        let rate = rows as f64 / took.as_secs_f64().max(1e-9);
        tracing::info!(%table, rows, seconds = took.as_secs_f64(), rows_per_second = rate.round(), "pass read rows");
    } else {
        tracing::debug!(%table, "pass found no change");
    }
    if nulls > 0 {
        tracing::warn!(
            %table, rows = nulls, column = cursor,
            "rows with a NULL cursor were copied once; later changes to them cannot be seen until the cursor column is set"
        );
    }
    if zeros > 0 {
        tracing::warn!(%table, values = zeros, "zero or partial-zero dates have no Arrow value and were loaded as NULL");
    }
}

/// The loading side: writes batches and advances checkpoints on `Durable`.
struct Loader {
    metrics: Metrics,
    errors: TableErrors,
    index: HashMap<TableId, usize>,
    reports: Vec<TableReport>,
    committed: Vec<Checkpoint>,
    /// Batches written but not yet durable: (table index, upto, rows).
    pending: Vec<(usize, Position, u64)>,
    /// Pass bounds reached behind batches not yet durable: (table index, bound).
    caught_up: Vec<(usize, DateTime)>,
}

impl Loader {
    fn new(tables: &[Arc<TableSchema>], checkpoints: Vec<Checkpoint>, metrics: Metrics, errors: TableErrors) -> Self {
        let reports = tables
            .iter()
            .zip(&checkpoints)
            .map(|(t, c)| TableReport {
                table: t.id.clone(),
                rows_loaded: 0,
                batches: 0,
                zero_dates: 0,
                null_cursor_rows: 0,
                checkpoint: c.position.clone(),
            })
            .collect();
        Loader {
            metrics,
            errors,
            index: tables.iter().enumerate().map(|(i, t)| (t.id.clone(), i)).collect(),
            reports,
            committed: checkpoints,
            pending: Vec::new(),
            caught_up: Vec::new(),
        }
    }

    async fn run<Snk: Sink, St: CheckpointStore>(
        &mut self,
        sink: &mut Snk,
        store: &St,
        mut subscriber: Subscriber,
    ) -> Result<(), RunError> {
        while let Some(message) = subscriber.next().await {
            let batch = match message {
                Message::Batch(batch) => batch,
                Message::CaughtUp { table, bound } => {
                    self.caught_up.push((self.index[&table], bound));
                    if self.pending.is_empty() {
                        self.apply_caught_up();
                    }
                    continue;
                }
            };
            self.metrics.bus_in_flight.dec();
            let started = Instant::now();
            let durability = sink.write(&batch).await.inspect_err(|e| self.errors.record(&batch.table.id, e))?;
            let load = self.metrics.stage_seconds.with_label_values(&[metrics::STAGE_LOAD]);
            load.observe(started.elapsed().as_secs_f64());
            self.record(&batch);
            if durability == Durability::Durable {
                self.commit_pending(sink.commits_checkpoints(), store).await?;
            }
        }
        sink.flush().await?;
        self.commit_pending(sink.commits_checkpoints(), store).await
    }

    fn record(&mut self, batch: &ChangeBatch) {
        let i = self.index[&batch.table.id];
        let report = &mut self.reports[i];
        report.rows_loaded += batch.num_rows() as u64;
        report.batches += 1;
        report.zero_dates += batch.stats.zero_dates;
        report.null_cursor_rows += batch.stats.null_cursor_rows;
        self.pending.push((i, batch.upto.clone(), batch.num_rows() as u64));
    }

    async fn commit_pending<St: CheckpointStore>(&mut self, in_sink: bool, store: &St) -> Result<(), RunError> {
        for (i, upto, rows) in std::mem::take(&mut self.pending) {
            let checkpoint = &mut self.committed[i];
            checkpoint.position = upto;
            checkpoint.rows_loaded += rows;
            if !in_sink {
                let started = Instant::now();
                store
                    .commit(&self.reports[i].table, checkpoint)
                    .await
                    .inspect_err(|e| self.errors.record(&self.reports[i].table, e))?;
                let stage = self.metrics.stage_seconds.with_label_values(&[metrics::STAGE_CHECKPOINT]);
                stage.observe(started.elapsed().as_secs_f64());
            }
            let label = self.reports[i].table.to_string();
            let m = &self.metrics;
            m.rows_loaded.with_label_values(&[&label]).inc_by(rows);
            m.batches.with_label_values(&[&label]).inc();
            if let Position::At { cursor, .. } = &checkpoint.position
                && let Some(us) = cursor.unix_micros()
            {
                // Rows come in cursor order: every change up to this cursor is in the sink.
                m.checkpoint_cursor.with_label_values(&[&label]).set(us as f64 / 1e6);
                m.set_complete_up_to(&label, us as f64 / 1e6);
            }
            self.reports[i].checkpoint = checkpoint.position.clone();
        }
        self.apply_caught_up();
        Ok(())
    }

    /// Every batch before the markers is durable: each table is complete up to its bound.
    fn apply_caught_up(&mut self) {
        for (i, bound) in std::mem::take(&mut self.caught_up) {
            if let Some(us) = bound.unix_micros() {
                self.metrics.set_complete_up_to(&self.reports[i].table.to_string(), us as f64 / 1e6);
            }
        }
    }

    fn into_reports(self) -> Vec<TableReport> {
        self.reports
    }
}
