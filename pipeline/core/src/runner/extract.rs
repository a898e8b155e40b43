//! The extracting side: walks the tables pass by pass and publishes what it reads. On a
//! durable bus (Kafka) it also checkpoints each batch once the bus has it; on the channel the
//! loader checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{RunOptions, verify};
use crate::batch::{BatchStats, ChangeBatch};
use crate::bus::{Message, Publish};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::cursor::{DateTime, Position};
use crate::metrics;
use crate::progress::Progress;
use crate::retry::{Backoff, Tried, retrying};
use crate::schema::{TableId, TableSchema};
use crate::source::{PassBound, Source, SourceError};
use crate::status::TableErrors;

pub(super) enum ExtractError {
    Source(SourceError),
    /// Tables stopped by errors of their own while the others went on.
    Tables(Vec<SourceError>),
    Checkpoint(CheckpointError),
    /// The loader went away; its own error says why.
    BusClosed,
    Bus(crate::bus::BusError),
}

impl ExtractError {
    fn source(table: &TableId, errors: &TableErrors, e: SourceError) -> Self {
        errors.record(table, &e);
        ExtractError::Source(e)
    }

    fn bus(table: &TableId, errors: &TableErrors, e: crate::bus::BusError) -> Self {
        match e {
            crate::bus::BusError::Closed => ExtractError::BusClosed,
            e => {
                errors.record(table, &e);
                ExtractError::Bus(e)
            }
        }
    }
}

/// Stops reading one table: the error is logged, recorded for `status`, counted in
/// `highwater_errors_total` and takes `/ready` down now, and is reported with the run's result
/// at its end.
fn stop(table: &TableId, options: &RunOptions, slot: &mut Option<SourceError>, e: SourceError) {
    stopped_now(table, options, &e);
    *slot = Some(e);
}

/// What [`stop`] does at once: one log line, one record, one count.
fn stopped_now(table: &TableId, options: &RunOptions, e: &SourceError) {
    tracing::error!(%table, "{e}");
    options.table_errors.record(table, e);
    options.metrics.errors.with_label_values(&[metrics::STAGE_EXTRACT, metrics::KIND_OPERATOR]).inc();
    options.health.table_stopped();
}

/// What one table's reading did, for the run's report.
#[derive(Clone, Debug, Default)]
pub(super) struct Extracted {
    pub rows: u64,
    pub batches: u64,
    pub zero_dates: u64,
    pub null_cursor_rows: u64,
    pub late_rows: u64,
}

impl Extracted {
    fn add_batch(&mut self, rows: u64, stats: &BatchStats) {
        self.rows += rows;
        self.batches += 1;
        self.zero_dates += stats.zero_dates;
        self.null_cursor_rows += stats.null_cursor_rows;
        self.late_rows += stats.late_rows;
    }

    fn add(&mut self, pass: &Extracted) {
        self.rows += pass.rows;
        self.batches += pass.batches;
        self.zero_dates += pass.zero_dates;
        self.null_cursor_rows += pass.null_cursor_rows;
        self.late_rows += pass.late_rows;
    }
}

/// How a step of a pass ended when the pass cannot go on.
enum Halt {
    /// The table stopped on an error of its own; the other tables go on.
    Table(SourceError),
    /// Shutdown was asked for.
    Shutdown,
    /// The run fails.
    Run(ExtractError),
}

/// Reads from `positions` on, publishing every batch; with `store` (a durable bus), commits
/// each batch's `upto` once it is published.
pub(super) async fn extract<Src: Source, P: Publish, St: CheckpointStore>(
    source: Src,
    publisher: P,
    checkpoints: Vec<Checkpoint>,
    stopped: Vec<Option<SourceError>>,
    store: Option<St>,
    options: RunOptions,
    shutdown: CancellationToken,
) -> (Vec<Extracted>, Vec<Checkpoint>, Result<(), ExtractError>) {
    let tables: Vec<Arc<TableSchema>> = source.tables().to_vec();
    // Tables stopped by an error of their own (a schema change, a value that cannot be read):
    // the other tables go on, and the run reports these at its end.
    for (table, e) in tables.iter().zip(&stopped) {
        if let Some(e) = e {
            stopped_now(&table.id, &options, e);
        }
    }
    let done = vec![Extracted::default(); tables.len()];
    let mut x = Extractor { source, publisher, store, tables, checkpoints, stopped, done, options, shutdown };
    let result = x.passes().await;
    let stopped: Vec<SourceError> = x.stopped.into_iter().flatten().collect();
    let result = match result {
        Ok(()) if !stopped.is_empty() => Err(ExtractError::Tables(stopped)),
        other => other,
    };
    (x.done, x.checkpoints, result)
}

/// The extracting side's state: the source, where each table's reading stands, the bus.
struct Extractor<Src, P, St> {
    source: Src,
    publisher: P,
    /// Where a durable bus's extractor commits what the bus holds.
    store: Option<St>,
    tables: Vec<Arc<TableSchema>>,
    checkpoints: Vec<Checkpoint>,
    stopped: Vec<Option<SourceError>>,
    done: Vec<Extracted>,
    options: RunOptions,
    shutdown: CancellationToken,
}

impl<Src: Source, P: Publish, St: CheckpointStore> Extractor<Src, P, St> {
    /// Pass after pass over every table, until caught up (`once`), every table stopped, or
    /// shutdown.
    async fn passes(&mut self) -> Result<(), ExtractError> {
        loop {
            for i in 0..self.tables.len() {
                if self.stopped[i].is_some() {
                    continue;
                }
                match self.pass(i).await {
                    Ok(()) => {}
                    Err(Halt::Table(e)) => stop(&self.tables[i].id, &self.options, &mut self.stopped[i], e),
                    Err(Halt::Shutdown) => return Ok(()),
                    Err(Halt::Run(e)) => return Err(e),
                }
            }
            self.options.health.set_ready(true);
            if self.options.once || self.stopped.iter().all(Option::is_some) {
                return Ok(());
            }
            tokio::select! {
                biased;
                _ = self.shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(self.options.poll_interval) => {}
            }
        }
    }

    /// One pass over table `i`, up to the bound its first read takes.
    async fn pass(&mut self, i: usize) -> Result<(), Halt> {
        self.begin(i).await?;
        self.step_back_for_reread(i);
        let started = Instant::now();
        // A first copy knows roughly how much is ahead of it.
        let first_copy = matches!(self.checkpoints[i].position, Position::Start | Position::Copy { .. });
        let total = first_copy.then(|| self.source.estimated_rows(i)).flatten();
        let mut progress = Progress::start(self.tables[i].id.clone(), total, self.options.progress, started);
        let mut pass = Extracted::default();
        let read = self.batches(i, &mut pass, &mut progress).await;
        progress.finish();
        read?;
        let table = &self.tables[i];
        report_pass(&table.id, table.cursor_column().name.as_str(), &pass, started.elapsed());
        self.done[i].add(&pass);
        Ok(())
    }

    /// Looks at table `i` again before a pass: added columns are read from now on.
    async fn begin(&mut self, i: usize) -> Result<(), Halt> {
        let what = format!("looking at {}", self.tables[i].id);
        let (source, options) = (&mut self.source, &self.options);
        let mut backoff = Backoff::new(options.retry, &options.metrics, metrics::STAGE_EXTRACT);
        let evolved = match retrying!(backoff, &what, &self.shutdown, source.begin_pass(i).await) {
            Tried::Done { value, .. } => value,
            Tried::Shutdown(_) => return Err(Halt::Shutdown),
            Tried::GaveUp(e) => return Err(self.gave_up(i, e)),
        };
        if let Some(schema) = evolved {
            if let Some(state) = &self.options.source_state {
                state.set_schema(&schema).map_err(|e| Halt::Run(ExtractError::Checkpoint(e)))?;
            }
            self.tables[i] = schema;
        }
        Ok(())
    }

    /// With `reread_secs`, starts the pass that far behind the checkpoint (strictly before its
    /// first microsecond, so any key will do). Durable checkpoints never move back.
    fn step_back_for_reread(&mut self, i: usize) {
        if let (Some(window), Position::At { cursor, key, nulls }) =
            (self.source.reread(i), &self.checkpoints[i].position)
            && let Some(us) = cursor.unix_micros()
        {
            let back = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
            let cursor = DateTime::from_unix_micros(us.saturating_sub(back).saturating_sub(1));
            self.checkpoints[i].position = Position::At { cursor, key: key.clone(), nulls: nulls.clone() };
        }
    }

    /// Reads and publishes batches of table `i` until it is caught up to the pass's bound.
    async fn batches(&mut self, i: usize, pass: &mut Extracted, progress: &mut Progress) -> Result<(), Halt> {
        let mut bound = PassBound::default();
        loop {
            if self.shutdown.is_cancelled() {
                return Err(Halt::Shutdown);
            }
            let Some(batch) = self.read(i, &mut bound).await? else {
                return self.caught_up(i, &bound).await;
            };
            let ends_copy = matches!((&batch.after, &batch.upto), (Position::Copy { .. }, Position::At { .. }));
            if batch.num_rows() == 0 && !ends_copy {
                // Re-read rows, all unchanged: nothing to send, the read moves on.
                self.checkpoints[i].position = batch.upto;
                continue;
            }
            let rows = batch.num_rows() as u64;
            let (m, label) = (&self.options.metrics, self.tables[i].id.to_string());
            m.rows_extracted.with_label_values(&[&label]).inc_by(rows);
            m.null_cursor_rows.with_label_values(&[&label]).inc_by(batch.stats.null_cursor_rows);
            m.zero_dates.with_label_values(&[&label]).inc_by(batch.stats.zero_dates);
            m.late_rows.with_label_values(&[&label]).inc_by(batch.stats.late_rows);
            pass.add_batch(rows, &batch.stats);
            progress.advance(rows, Instant::now());
            self.publish(i, batch).await?;
        }
    }

    /// The next batch of table `i` after its position, retried while failures can pass.
    async fn read(&mut self, i: usize, bound: &mut PassBound) -> Result<Option<ChangeBatch>, Halt> {
        let started = Instant::now();
        let what = format!("reading {}", self.tables[i].id);
        let (source, options, position) = (&mut self.source, &self.options, &self.checkpoints[i].position);
        let mut backoff = Backoff::new(options.retry, &options.metrics, metrics::STAGE_EXTRACT);
        let batch = match retrying!(
            backoff,
            &what,
            &self.shutdown,
            source.next_batch(i, position, bound, options.batch_rows).await
        ) {
            Tried::Done { value, recovered } => {
                if recovered {
                    self.still_the_same_source(i).await?;
                }
                value
            }
            Tried::Shutdown(_) => return Err(Halt::Shutdown),
            Tried::GaveUp(e) => return Err(self.gave_up(i, e)),
        };
        let seconds = started.elapsed().as_secs_f64();
        self.options.metrics.stage_seconds.with_label_values(&[metrics::STAGE_EXTRACT]).observe(seconds);
        Ok(batch)
    }

    /// Reads failed and work again: is it still the same source?
    async fn still_the_same_source(&mut self, i: usize) -> Result<(), Halt> {
        let state = self.options.source_state.as_deref();
        match verify::after_recovery(&mut self.source, i, &self.checkpoints[i].position, state).await {
            Ok(None) => Ok(()),
            Ok(Some(what)) => Err(Halt::Table(SourceError::SourceReset { table: self.tables[i].id.clone(), what })),
            Err(e) => Err(Halt::Table(e)),
        }
    }

    /// A failure retried for good: a table's own error stops the table, any other the run.
    fn gave_up(&self, i: usize, e: SourceError) -> Halt {
        if e.table().is_some() {
            Halt::Table(e)
        } else {
            Halt::Run(ExtractError::source(&self.tables[i].id, &self.options.table_errors, e))
        }
    }

    /// Caught up to the pass's bound: once what was published before is durable, the sink is
    /// complete up to the bound (the loader sets the lag).
    async fn caught_up(&mut self, i: usize, bound: &PassBound) -> Result<(), Halt> {
        let Some(bound) = bound.0 else { return Ok(()) };
        let table = self.tables[i].id.clone();
        let marker = Message::CaughtUp { table: table.clone(), bound };
        let sent = tokio::select! {
            biased;
            _ = self.shutdown.cancelled() => return Err(Halt::Shutdown),
            sent = self.publisher.publish(marker) => sent,
        };
        sent.map_err(|e| Halt::Run(ExtractError::bus(&table, &self.options.table_errors, e)))
    }

    /// Hands `batch` to the bus (waiting while it is full), then moves the table's position
    /// past it, and on a durable bus commits that position.
    async fn publish(&mut self, i: usize, batch: ChangeBatch) -> Result<(), Halt> {
        let (rows, upto, table) = (batch.num_rows() as u64, batch.upto.clone(), self.tables[i].id.clone());
        // Counted before the hand-over: the loader may take it at once.
        self.options.metrics.bus_in_flight.inc();
        let sent = tokio::select! {
            biased;
            // The batch in hand is dropped unpublished: it is after the last checkpoint, so
            // the next run reads it again.
            _ = self.shutdown.cancelled() => None,
            sent = self.publisher.publish(Message::Batch(batch)) => Some(sent),
        };
        match sent {
            None => {
                self.options.metrics.bus_in_flight.dec();
                return Err(Halt::Shutdown);
            }
            Some(sent) => sent.map_err(|e| Halt::Run(ExtractError::bus(&table, &self.options.table_errors, e)))?,
        }
        self.checkpoints[i].position = upto;
        self.checkpoints[i].rows_loaded += rows;
        if let Some(store) = &self.store {
            // The bus holds the batch: reading may go on from after it.
            self.options.metrics.bus_in_flight.dec();
            store.commit(&table, &self.checkpoints[i]).await.map_err(|e| {
                self.options.table_errors.record(&table, &e);
                Halt::Run(ExtractError::Checkpoint(e))
            })?;
        }
        Ok(())
    }
}

/// Logs one pass over one table, and warns once per pass about what will not replicate well.
fn report_pass(table: &TableId, cursor: &str, pass: &Extracted, took: Duration) {
    if pass.rows > 0 {
        let rate = pass.rows as f64 / took.as_secs_f64().max(1e-9);
        tracing::info!(%table, rows = pass.rows, seconds = took.as_secs_f64(), rows_per_second = rate.round(), "pass read rows");
    } else {
        tracing::debug!(%table, seconds = took.as_secs_f64(), "pass found no change");
    }
    if pass.null_cursor_rows > 0 {
        tracing::warn!(
            %table, rows = pass.null_cursor_rows, column = cursor,
            "rows with a NULL cursor were copied once; later changes to them cannot be seen until the cursor column is set"
        );
    }
    if pass.late_rows > 0 {
        tracing::info!(%table, rows = pass.late_rows, "rows committed behind the clock were caught (late commits)");
    }
    if pass.zero_dates > 0 {
        tracing::warn!(%table, values = pass.zero_dates, "zero or partial-zero dates have no Arrow value and were loaded as NULL");
    }
}
