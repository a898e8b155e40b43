//! The loading side: takes messages off the bus, writes batches, and once the sink says they
//! are durable advances the checkpoints and acks the bus. Lag is set here, from what is durable.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{RunError, RunOptions, TableReport};
use crate::batch::ChangeBatch;
use crate::bus::{Message, Subscribe};
use crate::checkpoint::{Checkpoint, CheckpointStore};
use crate::cursor::{DateTime, Position};
use crate::http::Health;
use crate::metrics::{self, Metrics};
use crate::retry::{Backoff, RetryPolicy, Tried, retrying};
use crate::schema::{TableId, TableSchema};
use crate::sink::{Durability, Sink, SinkError};
use crate::status::TableErrors;

/// How long the bus may bring nothing before the loader flushes what the sink holds.
const QUIET_FLUSH: std::time::Duration = std::time::Duration::from_secs(1);

/// Writes batches and advances checkpoints on `Durable`.
pub(super) struct Loader {
    metrics: Metrics,
    retry: RetryPolicy,
    errors: TableErrors,
    index: HashMap<TableId, usize>,
    reports: Vec<TableReport>,
    committed: Vec<Checkpoint>,
    /// Tables the sink was prepared for, with the schema it was prepared for: a batch with
    /// other columns (the source's table gained some) prepares it again.
    prepared: HashMap<TableId, Arc<TableSchema>>,
    /// Batches written but not yet durable: (table index, upto, rows).
    pending: Vec<(usize, Position, u64)>,
    /// Pass bounds reached behind batches not yet durable: (table index, bound).
    caught_up: Vec<(usize, DateTime)>,
}

impl Loader {
    pub(super) fn new(tables: &[TableId], checkpoints: Vec<Checkpoint>, options: &RunOptions) -> Self {
        let reports = tables
            .iter()
            .zip(&checkpoints)
            .map(|(t, c)| TableReport {
                table: t.clone(),
                rows_loaded: 0,
                batches: 0,
                zero_dates: 0,
                null_cursor_rows: 0,
                checkpoint: c.position.clone(),
            })
            .collect();
        Loader {
            metrics: options.metrics.clone(),
            retry: options.retry,
            errors: options.table_errors.clone(),
            index: tables.iter().enumerate().map(|(i, t)| (t.clone(), i)).collect(),
            reports,
            committed: checkpoints,
            prepared: HashMap::new(),
            pending: Vec::new(),
            caught_up: Vec::new(),
        }
    }

    /// The sink was prepared for these tables before the run.
    pub(super) fn prepared(&mut self, tables: &[Arc<TableSchema>]) {
        self.prepared.extend(tables.iter().map(|t| (t.id.clone(), t.clone())));
    }

    /// Loads until the bus ends or `shutdown`, then flushes, commits and acks what is durable.
    pub(super) async fn run<Sub: Subscribe, Snk: Sink, St: CheckpointStore>(
        &mut self,
        sink: &mut Snk,
        store: &St,
        subscriber: &mut Sub,
        shutdown: &CancellationToken,
        health: &Health,
    ) -> Result<(), RunError> {
        let mut acks = Vec::new();
        loop {
            let next = tokio::select! {
                biased;
                // 1. Shutdown (a remote bus; the channel ends when the extractor stops).
                _ = shutdown.cancelled(), if !subscriber.local() => break,
                // 2. The next message, in order.
                next = subscriber.next() => next?,
                // 3. A quiet bus while the sink holds batches: no pass end is coming soon (an
                //    extractor stopped mid-pass, or waits), so what it holds becomes durable now.
                () = tokio::time::sleep(QUIET_FLUSH), if !self.pending.is_empty() => {
                    self.flush_and_ack(sink, store, subscriber, &mut acks, shutdown).await?;
                    continue;
                }
            };
            let Some((message, ack)) = next else { break };
            acks.push(ack);
            let batch = match message {
                Message::Batch(batch) => batch,
                Message::CaughtUp { table, bound } => {
                    if !subscriber.local() {
                        health.set_ready(true);
                    }
                    if let Some(&i) = self.index.get(&table) {
                        self.caught_up.push((i, bound));
                    }
                    if self.pending.is_empty() {
                        self.apply_caught_up();
                    } else {
                        // A pass ends here: what the sink holds of it becomes durable now,
                        // not with a later pass's first batch.
                        self.flush_and_ack(sink, store, subscriber, &mut acks, shutdown).await?;
                    }
                    if self.index.contains_key(&table) {
                        self.caught_up(sink, &table, shutdown).await?;
                    }
                    continue;
                }
            };
            if subscriber.local() {
                self.metrics.bus_in_flight.dec();
            }
            let Some(&i) = self.index.get(&batch.table.id) else {
                // A table this pipeline does not list (a shared topic): not ours to load.
                continue;
            };
            if self.load(sink, i, &batch, shutdown).await? == Durability::Durable {
                self.commit_pending(sink.commits_checkpoints(), store).await?;
                subscriber.ack(std::mem::take(&mut acks)).await?;
                if !subscriber.local() {
                    // A loader on its own is ready once the bus and the sink took a batch.
                    health.set_ready(true);
                }
            }
        }
        self.flush_and_ack(sink, store, subscriber, &mut acks, shutdown).await
    }

    /// Writes `batch` of table `i` (preparing the sink first for a table new to it, or whose
    /// columns changed), retried while failures can pass.
    async fn load<Snk: Sink>(
        &mut self,
        sink: &mut Snk,
        i: usize,
        batch: &ChangeBatch,
        shutdown: &CancellationToken,
    ) -> Result<Durability, RunError> {
        let prepared = self.prepared.get(&batch.table.id);
        if prepared.is_none_or(|p| !Arc::ptr_eq(p, &batch.table) && p.columns != batch.table.columns) {
            let mut backoff = Backoff::new(self.retry, &self.metrics, metrics::STAGE_LOAD);
            let what = format!("preparing the sink for {}", batch.table.id);
            let tried = retrying!(backoff, &what, shutdown, sink.prepare(std::slice::from_ref(&batch.table)).await);
            self.settled(tried, &batch.table.id)?;
            self.prepared.insert(batch.table.id.clone(), batch.table.clone());
        }
        let started = Instant::now();
        // A failed write left nothing behind (a rolled-back transaction, no visible file),
        // and writes are idempotent: the same batch is simply written again.
        let mut backoff = Backoff::new(self.retry, &self.metrics, metrics::STAGE_LOAD);
        let what = format!("loading a batch of {}", batch.table.id);
        let tried = retrying!(backoff, &what, shutdown, sink.write(batch).await);
        let durability = self.settled(tried, &batch.table.id)?;
        let load = self.metrics.stage_seconds.with_label_values(&[metrics::STAGE_LOAD]);
        load.observe(started.elapsed().as_secs_f64());
        self.record(i, batch);
        Ok(durability)
    }

    /// [`Self::flush`], then acks every message taken so far: all of it is durable now.
    async fn flush_and_ack<Sub: Subscribe, Snk: Sink, St: CheckpointStore>(
        &mut self,
        sink: &mut Snk,
        store: &St,
        subscriber: &mut Sub,
        acks: &mut Vec<Sub::Ack>,
        shutdown: &CancellationToken,
    ) -> Result<(), RunError> {
        self.flush(sink, store, shutdown).await?;
        subscriber.ack(std::mem::take(acks)).await?;
        Ok(())
    }

    /// Makes everything the sink took durable (retrying as a write does), then commits it.
    async fn flush<Snk: Sink, St: CheckpointStore>(
        &mut self,
        sink: &mut Snk,
        store: &St,
        shutdown: &CancellationToken,
    ) -> Result<(), RunError> {
        let mut backoff = Backoff::new(self.retry, &self.metrics, metrics::STAGE_LOAD);
        if let Tried::GaveUp(e) | Tried::Shutdown(e) =
            retrying!(backoff, "flushing the sink", shutdown, sink.flush().await)
        {
            // The tables whose batches the sink still held.
            for &(i, ..) in &self.pending {
                self.errors.record(&self.reports[i].table, &e);
            }
            return Err(e.into());
        }
        self.commit_pending(sink.commits_checkpoints(), store).await
    }

    /// Tells the sink that `table`'s changes up to a pass's bound are all durable in it.
    async fn caught_up<Snk: Sink>(
        &self,
        sink: &mut Snk,
        table: &TableId,
        shutdown: &CancellationToken,
    ) -> Result<(), RunError> {
        let mut backoff = Backoff::new(self.retry, &self.metrics, metrics::STAGE_LOAD);
        let what = format!("completing {} in the sink", table);
        let tried = retrying!(backoff, &what, shutdown, sink.caught_up(table).await);
        self.settled(tried, table)
    }

    /// The value of a step `retrying!` ran, or its last error, recorded against `table`.
    fn settled<T>(&self, tried: Tried<T, SinkError>, table: &TableId) -> Result<T, RunError> {
        match tried {
            Tried::Done { value, .. } => Ok(value),
            Tried::GaveUp(e) | Tried::Shutdown(e) => {
                self.errors.record(table, &e);
                Err(e.into())
            }
        }
    }

    fn record(&mut self, i: usize, batch: &ChangeBatch) {
        let report = &mut self.reports[i];
        report.rows_loaded += batch.num_rows() as u64;
        report.batches += 1;
        report.zero_dates += batch.stats.zero_dates;
        report.null_cursor_rows += batch.stats.null_cursor_rows;
        self.pending.push((i, batch.upto.clone(), batch.num_rows() as u64));
    }

    /// Moves each table's checkpoint to its last durable batch, committing it (to the store,
    /// when the sink does not commit it itself) once per table however many batches it covers.
    async fn commit_pending<St: CheckpointStore>(&mut self, in_sink: bool, store: &St) -> Result<(), RunError> {
        let mut moved = Vec::new();
        for (i, upto, rows) in std::mem::take(&mut self.pending) {
            let checkpoint = &mut self.committed[i];
            // Batches of several bus partitions interleave: the checkpoint only moves forward.
            if !upto.is_behind(&checkpoint.position) {
                checkpoint.position = upto;
            }
            checkpoint.rows_loaded += rows;
            let label = self.reports[i].table.to_string();
            self.metrics.rows_loaded.with_label_values(&[&label]).inc_by(rows);
            self.metrics.batches.with_label_values(&[&label]).inc();
            if !moved.contains(&i) {
                moved.push(i);
            }
        }
        for i in moved {
            let checkpoint = &self.committed[i];
            if !in_sink {
                let started = Instant::now();
                store
                    .commit(&self.reports[i].table, checkpoint)
                    .await
                    .inspect_err(|e| self.errors.record(&self.reports[i].table, e))?;
                let stage = self.metrics.stage_seconds.with_label_values(&[metrics::STAGE_CHECKPOINT]);
                stage.observe(started.elapsed().as_secs_f64());
            }
            if let Position::At { cursor, .. } = &checkpoint.position
                && let Some(us) = cursor.unix_micros()
            {
                // Rows come in cursor order: every change up to this cursor is in the sink.
                let (m, label) = (&self.metrics, self.reports[i].table.to_string());
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

    pub(super) fn into_reports(self) -> Vec<TableReport> {
        self.reports
    }
}
