//! `highwater status`: per table, the checkpoint, rows loaded, lag and last error, from the
//! checkpoint store (the file store, or the MySQL sink's table) and the status file. It reads
//! and never writes; the source is not contacted.

use crate::config::{Config, SinkConfig};
use highwater_pipeline::checkpoint::{Checkpoint, CheckpointStore, FileCheckpointStore};
use highwater_pipeline::cursor::Position;
use highwater_pipeline::progress::human;
use highwater_pipeline::status::{self, Status, TableRecord};
use highwater_sinks::mysql::MysqlSink;
use serde_json::json;

use crate::build::configured_tables;

/// One table's line of the report.
struct Row {
    table: String,
    checkpoint: Option<Checkpoint>,
    /// This machine's clock minus the checkpoint's cursor (UTC), for cursor positions.
    lag_secs: Option<f64>,
    record: TableRecord,
}

/// Prints the status; fails only when the stores cannot be read.
pub async fn run_status(config: &Config, as_json: bool) -> anyhow::Result<()> {
    let tables = configured_tables(config);
    let mut checkpoints = Vec::with_capacity(tables.len());
    match &config.sink {
        SinkConfig::Parquet(_) => {
            let store = FileCheckpointStore::open(&config.pipeline.state_dir, &config.pipeline.name)?;
            for t in &tables {
                checkpoints.push(store.load(t).await?);
            }
        }
        SinkConfig::Mysql(m) => {
            let sink = MysqlSink::connect(m, &config.pipeline.name, None).await?;
            let store = sink.checkpoint_store();
            for t in &tables {
                checkpoints.push(store.load(t).await?);
            }
        }
    }
    let status = Status::read(&status::path(&config.pipeline.state_dir, &config.pipeline.name))?;
    let rows: Vec<Row> = tables
        .iter()
        .zip(checkpoints)
        .map(|(t, checkpoint)| Row {
            table: t.to_string(),
            lag_secs: checkpoint.as_ref().and_then(|c| lag(&c.position)),
            checkpoint,
            record: status.tables.get(&t.to_string()).cloned().unwrap_or_default(),
        })
        .collect();
    if as_json {
        out!("{}", serde_json::to_string_pretty(&to_json(config, &status, &rows))?);
    } else {
        print_text(config, &status, &rows);
    }
    Ok(())
}

fn lag(position: &Position) -> Option<f64> {
    let Position::At { cursor, .. } = position else { return None };
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).ok()?;
    Some((now.as_micros() as i64 - cursor.unix_micros()?) as f64 / 1e6)
}

fn print_text(config: &Config, status: &Status, rows: &[Row]) {
    match &status.last_run {
        Some(r) if r.ok => out!(
            "pipeline {}: last run ({}) {} - {} UTC: ok, {} rows",
            config.pipeline.name,
            r.mode,
            r.started_at,
            r.finished_at,
            r.rows_loaded
        ),
        Some(r) => out!(
            "pipeline {}: last run ({}) {} - {} UTC: FAILED: {}",
            config.pipeline.name,
            r.mode,
            r.started_at,
            r.finished_at,
            r.error.as_deref().unwrap_or("(no message)")
        ),
        None => {
            out!("pipeline {}: no run recorded in {}", config.pipeline.name, config.pipeline.state_dir.display())
        }
    }
    let width = rows.iter().map(|r| r.table.len()).max().unwrap_or(5).max(5);
    out!("{:<width$}  {:>12}  {:>9}  checkpoint", "table", "rows loaded", "lag");
    for r in rows {
        let (loaded, checkpoint) = match &r.checkpoint {
            Some(c) => (c.rows_loaded.to_string(), c.position.to_string()),
            None => ("0".to_owned(), "none: never loaded".to_owned()),
        };
        let lag = r.lag_secs.map_or("-".to_owned(), |s| human(std::time::Duration::from_secs_f64(s.max(0.0))));
        out!("{:<width$}  {loaded:>12}  {lag:>9}  {checkpoint}", r.table);
        if let (Some(e), Some(at)) = (&r.record.last_error, &r.record.last_error_at) {
            let since = match &r.record.last_ok_at {
                Some(ok) if ok > at => format!(" (a run went through since, at {ok})"),
                _ => String::new(),
            };
            out!("{:<width$}  last error at {at} UTC{since}: {e}", "");
        }
    }
}

fn to_json(config: &Config, status: &Status, rows: &[Row]) -> serde_json::Value {
    json!({
        "pipeline": config.pipeline.name,
        "last_run": status.last_run,
        "tables": rows.iter().map(|r| json!({
            "table": r.table,
            "checkpoint": r.checkpoint.as_ref().map(|c| c.position.to_string()),
            "rows_loaded": r.checkpoint.as_ref().map_or(0, |c| c.rows_loaded),
            "lag_seconds": r.lag_secs,
            "last_error": r.record.last_error,
            "last_error_at": r.record.last_error_at,
            "last_ok_at": r.record.last_ok_at,
        })).collect::<Vec<_>>(),
    })
}
