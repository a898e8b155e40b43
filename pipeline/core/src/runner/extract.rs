//! The extracting side: walks the tables pass by pass and publishes what it reads. On a
//! durable bus (Kafka) it also checkpoints each batch once the bus has it; on the channel the
//! loader checkpoints.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::{RunOptions, verify};
use crate::bus::{Message, Publish};
use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use crate::cursor::{DateTime, Position};
use crate::metrics;
use crate::progress::Progress;
use crate::retry::{Backoff, Next};
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

/// Reads from `positions` on, publishing every batch; with `store` (a durable bus), commits
/// each batch's `upto` once it is published.
pub(super) async fn extract<Src: Source, P: Publish, St: CheckpointStore>(
    mut source: Src,
    mut publisher: P,
    mut checkpoints: Vec<Checkpoint>,
    mut stopped: Vec<Option<SourceError>>,
    store: Option<St>,
    options: RunOptions,
    shutdown: CancellationToken,
) -> (Vec<Extracted>, Vec<Checkpoint>, Result<(), ExtractError>) {
    let mut tables: Vec<Arc<TableSchema>> = source.tables().to_vec();
    let mut done = vec![Extracted::default(); tables.len()];
    // Tables stopped by an error of their own (a schema change, a value that cannot be read):
    // the other tables go on, and the run reports these at its end.
    for (table, e) in tables.iter().zip(&stopped) {
        if let Some(e) = e {
            stopped_now(&table.id, &options, e);
        }
    }
    let result = async {
        'passes: loop {
            'tables: for i in 0..tables.len() {
                if stopped[i].is_some() {
                    continue;
                }
                let errors = &options.table_errors;
                let mut backoff = Backoff::new(options.retry, &options.metrics, metrics::STAGE_EXTRACT);
                loop {
                    match source.begin_pass(i).await {
                        Ok(evolved) => {
                            if let Some(schema) = evolved {
                                if let Some(state) = &options.source_state {
                                    state.set_schema(&schema).map_err(ExtractError::Checkpoint)?;
                                }
                                tables[i] = schema;
                            }
                            break;
                        }
                        Err(e) => {
                            let what = format!("looking at {}", tables[i].id);
                            match backoff.failed(&what, &e, e.is_retryable(), &shutdown).await {
                                Next::Retry => continue,
                                Next::Shutdown => break 'passes,
                                Next::GiveUp if e.table().is_some() => {
                                    stop(&tables[i].id, &options, &mut stopped[i], e);
                                    continue 'tables;
                                }
                                Next::GiveUp => return Err(ExtractError::source(&tables[i].id, errors, e)),
                            }
                        }
                    }
                }
                let table = &tables[i];
                if let (Some(window), Position::At { cursor, key, nulls }) = (source.reread(i), &checkpoints[i].position)
                    && let Some(us) = cursor.unix_micros()
                {
                    // Start the pass `window` behind the checkpoint (strictly before its first
                    // microsecond, so any key will do). Durable checkpoints never move back.
                    let back = i64::try_from(window.as_micros()).unwrap_or(i64::MAX);
                    let cursor = DateTime::from_unix_micros(us.saturating_sub(back).saturating_sub(1));
                    checkpoints[i].position = Position::At { cursor, key: key.clone(), nulls: nulls.clone() };
                }
                let pass_started = Instant::now();
                let label = table.id.to_string();
                let errors = &options.table_errors;
                let mut bound = PassBound::default();
                // A first copy knows roughly how much is ahead of it.
                let first_copy = matches!(checkpoints[i].position, Position::Start | Position::Copy { .. });
                let total = first_copy.then(|| source.estimated_rows(i)).flatten();
                let mut progress = Progress::start(table.id.clone(), total, options.progress, pass_started);
                let mut pass = Extracted::default();
                loop {
                    if shutdown.is_cancelled() {
                        break 'passes;
                    }
                    let started = Instant::now();
                    let mut backoff = Backoff::new(options.retry, &options.metrics, metrics::STAGE_EXTRACT);
                    let batch = loop {
                        match source.next_batch(i, &checkpoints[i].position, &mut bound, options.batch_rows).await {
                            Ok(batch) => break batch,
                            Err(e) => {
                                let what = format!("reading {}", table.id);
                                match backoff.failed(&what, &e, e.is_retryable(), &shutdown).await {
                                    Next::Retry => continue,
                                    Next::Shutdown => break 'passes,
                                    Next::GiveUp if e.table().is_some() => {
                                        progress.finish();
                                        stop(&table.id, &options, &mut stopped[i], e);
                                        continue 'tables;
                                    }
                                    Next::GiveUp => return Err(ExtractError::source(&table.id, errors, e)),
                                }
                            }
                        }
                    };
                    if backoff.succeeded() {
                        // Reads failed and work again: is it still the same source?
                        let state = options.source_state.as_deref();
                        let reset = match verify::after_recovery(&mut source, i, &checkpoints[i].position, state).await {
                            Ok(reset) => reset.map(|what| SourceError::SourceReset { table: table.id.clone(), what }),
                            Err(e) => Some(e),
                        };
                        if let Some(e) = reset {
                            progress.finish();
                            stop(&table.id, &options, &mut stopped[i], e);
                            continue 'tables;
                        }
                    }
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
                                sent = publisher.publish(marker) => sent.map_err(|e| ExtractError::bus(&table.id, errors, e))?,
                            }
                        }
                        break;
                    };
                    let ends_copy = matches!((&batch.after, &batch.upto), (Position::Copy { .. }, Position::At { .. }));
                    if batch.num_rows() == 0 && !ends_copy {
                        // Re-read rows, all unchanged: nothing to send, the read moves on.
                        checkpoints[i].position = batch.upto;
                        continue;
                    }
                    let rows = batch.num_rows() as u64;
                    m.rows_extracted.with_label_values(&[&label]).inc_by(rows);
                    m.null_cursor_rows.with_label_values(&[&label]).inc_by(batch.stats.null_cursor_rows);
                    m.zero_dates.with_label_values(&[&label]).inc_by(batch.stats.zero_dates);
                    m.late_rows.with_label_values(&[&label]).inc_by(batch.stats.late_rows);
                    pass.rows += rows;
                    pass.batches += 1;
                    pass.null_cursor_rows += batch.stats.null_cursor_rows;
                    pass.zero_dates += batch.stats.zero_dates;
                    pass.late_rows += batch.stats.late_rows;
                    progress.advance(rows, Instant::now());
                    let upto = batch.upto.clone();
                    // Counted before the hand-over: the loader may take it at once.
                    m.bus_in_flight.inc();
                    tokio::select! {
                        biased;
                        // 1. Shutdown: the batch in hand is dropped unpublished; it is after the
                        //    last checkpoint, so the next run reads it again.
                        _ = shutdown.cancelled() => {
                            m.bus_in_flight.dec();
                            break 'passes;
                        }
                        // 2. Hand over, waiting while the bus is full (backpressure).
                        sent = publisher.publish(Message::Batch(batch)) => {
                            sent.map_err(|e| ExtractError::bus(&table.id, errors, e))?;
                        }
                    }
                    checkpoints[i].position = upto;
                    checkpoints[i].rows_loaded += rows;
                    if let Some(store) = &store {
                        // The bus holds the batch: reading may go on from after it.
                        m.bus_in_flight.dec();
                        store.commit(&table.id, &checkpoints[i]).await.map_err(|e| {
                            errors.record(&table.id, &e);
                            ExtractError::Checkpoint(e)
                        })?;
                    }
                }
                progress.finish();
                report_pass(&table.id, table.cursor_column().name.as_str(), &pass, pass_started.elapsed());
                let total = &mut done[i];
                total.rows += pass.rows;
                total.batches += pass.batches;
                total.zero_dates += pass.zero_dates;
                total.null_cursor_rows += pass.null_cursor_rows;
                total.late_rows += pass.late_rows;
            }
            options.health.set_ready(true);
            if options.once || stopped.iter().all(Option::is_some) {
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
    .await;
    let stopped: Vec<SourceError> = stopped.into_iter().flatten().collect();
    let result = match result {
        Ok(()) if !stopped.is_empty() => Err(ExtractError::Tables(stopped)),
        other => other,
    };
    (done, checkpoints, result)
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
