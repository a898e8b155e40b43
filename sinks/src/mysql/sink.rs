//! `MysqlSink`: each batch and its checkpoint in one transaction, so the target is exactly
//! once: after a crash the batch either is there with its checkpoint or neither is.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use highwater_mysql::Pool;
use highwater_pipeline::batch::{ChangeBatch, Op};
use highwater_pipeline::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use highwater_pipeline::config::MysqlSinkConfig;
use highwater_pipeline::cursor::Position;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::sink::{Durability, Sink, SinkError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, TxOpts};

use super::upsert::UpsertSql;
use super::{ddl, infile};

/// The table, in the target database, that holds this sink's checkpoints.
pub const CHECKPOINT_TABLE: &str = "_highwater_checkpoints";

const CREATE_CHECKPOINTS: &str = "CREATE TABLE IF NOT EXISTS `_highwater_checkpoints` (
  `pipeline` VARCHAR(128) NOT NULL,
  `source_database` VARCHAR(64) NOT NULL,
  `source_table` VARCHAR(64) NOT NULL,
  `position` TEXT NOT NULL,
  `rows_loaded` BIGINT UNSIGNED NOT NULL,
  `updated_at` DATETIME(6) NOT NULL,
  PRIMARY KEY (`pipeline`, `source_database`, `source_table`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4";

const SELECT_CHECKPOINT: &str = "SELECT `position`, `rows_loaded` FROM `_highwater_checkpoints` \
     WHERE `pipeline` = ? AND `source_database` = ? AND `source_table` = ?";

const UPSERT_CHECKPOINT: &str = "INSERT INTO `_highwater_checkpoints` \
     (`pipeline`, `source_database`, `source_table`, `position`, `rows_loaded`, `updated_at`) \
     VALUES (?, ?, ?, ?, ?, NOW(6)) ON DUPLICATE KEY UPDATE `position` = VALUES(`position`), \
     `rows_loaded` = VALUES(`rows_loaded`), `updated_at` = VALUES(`updated_at`)";

/// Every session of the sink (new, and after each reset of a pooled one): 4-byte text intact,
/// TIMESTAMPs in UTC, strict (a value that does not fit is an error, never silently truncated),
/// no foreign-key checks (the target has none, and a replica loads tables in any order), 0
/// stored as 0 in AUTO_INCREMENT columns.
const SESSION_SETUP: [&str; 4] = [
    "SET NAMES utf8mb4",
    "SET time_zone = '+00:00'",
    "SET sql_mode = 'STRICT_ALL_TABLES,NO_AUTO_VALUE_ON_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET FOREIGN_KEY_CHECKS = 0",
];

const TARGET_COLUMNS: &str =
    "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?";

/// MySQL's "table doesn't exist".
const NO_SUCH_TABLE: u16 = 1146;
/// Parts of a batch bulk-loaded at once, each on a connection of its own. Measured on the
/// 2-core target (1,000,000 rows, median of 3): one part 7.3 s, two 6.6 s, three 5.75 s,
/// four 5.7 s (`LOAD DATA INFILE` of the same rows: 5.2-5.7 s).
const BULK_PARTS: usize = 3;
/// Rows below which a part is not worth a connection of its own.
const MIN_PART_ROWS: usize = 1_000;

/// The size of each packet of a `LOAD DATA LOCAL` file: far below the 1 MiB minimum of
/// `max_allowed_packet`, large enough that per-packet work does not count.
const INFILE_CHUNK_BYTES: usize = 256 << 10;

/// "The used command is not allowed with this MySQL version", MySQL's "Loading local data is
/// disabled" and MariaDB's "... has disabled the local infile capability": the server
/// (`local_infile = OFF`) refuses `LOAD DATA LOCAL`.
const LOCAL_INFILE_REFUSED: [u16; 3] = [1148, 3948, 4166];

/// The config table of the sink, for messages and the pool's metric label.
const SECTION: &str = "sink";

pub struct MysqlSink {
    pool: Pool,
    pipeline: String,
    batch_rows: usize,
    statements: HashMap<TableId, Statements>,
    /// Whether the server takes `LOAD DATA LOCAL` (until it refuses once).
    local_infile: bool,
    /// Parts a bulk load is split in: [`BULK_PARTS`], or fewer when the pool has fewer
    /// connections (a load holds one per part at once).
    bulk_parts: usize,
}

/// A table's statements, and whether its new rows still go by `LOAD DATA LOCAL`.
struct Statements {
    upsert: UpsertSql,
    load: String,
    /// Cleared, for the rest of the run, when a load found rows the target already had.
    bulk: bool,
    /// Whether a bulk load worked (logged once).
    bulk_loaded: bool,
}

/// What a bulk load of a batch did.
enum Bulk {
    /// Every row inserted, the checkpoint with them: the batch is durable.
    Loaded,
    /// Rolled back; the batch goes by upserts. Why, for the log.
    Declined(String),
}

impl MysqlSink {
    /// Connects to the target database; `pipeline` names this pipeline's checkpoint rows.
    /// With `metrics`, the pool's usage and waits are reported there.
    pub async fn connect(
        config: &MysqlSinkConfig,
        pipeline: &str,
        metrics: Option<&Metrics>,
    ) -> Result<Self, SinkError> {
        let pool = Pool::open_tls(&config.url, &config.pool, &config.tls(), SECTION, &SESSION_SETUP, metrics).await?;
        Ok(MysqlSink {
            pool,
            pipeline: pipeline.to_owned(),
            batch_rows: config.batch_rows,
            statements: HashMap::new(),
            local_infile: true,
            bulk_parts: BULK_PARTS.min(config.pool.size + config.pool.max_overflow).max(1),
        })
    }

    /// The store that reads (and, outside a batch, writes) this sink's checkpoints.
    pub fn checkpoint_store(&self) -> MysqlCheckpointStore {
        MysqlCheckpointStore { pool: self.pool.clone(), pipeline: self.pipeline.clone() }
    }

    async fn conn(&self) -> Result<Conn, SinkError> {
        Ok(self.pool.get().await?)
    }
}

impl Sink for MysqlSink {
    fn name(&self) -> &'static str {
        "mysql"
    }

    fn commits_checkpoints(&self) -> bool {
        true
    }

    async fn prepare(&mut self, tables: &[Arc<TableSchema>]) -> Result<(), SinkError> {
        let mut conn = self.conn().await?;
        conn.query_drop(CREATE_CHECKPOINTS).await.map_err(|e| db_error("creating the checkpoint table", e))?;
        for t in tables {
            conn.query_drop(ddl::create_table(t))
                .await
                .map_err(|e| db_error(&format!("creating the target table of {}", t.id), e))?;
            // The source's table may have gained columns since the target was created.
            let existing: Vec<String> = conn
                .exec(TARGET_COLUMNS, (&t.id.table,))
                .await
                .map_err(|e| db_error(&format!("reading the columns of the target of {}", t.id), e))?;
            if let Some(alter) = ddl::add_columns(t, &existing) {
                tracing::info!(table = %t.id, "adding the source's new columns to the target: {alter}");
                conn.query_drop(&alter)
                    .await
                    .map_err(|e| db_error(&format!("adding columns to the target of {}", t.id), e))?;
            }
            // A table prepared again (new columns) keeps what its loads found out.
            let (bulk, bulk_loaded) = self.statements.get(&t.id).map_or((true, false), |s| (s.bulk, s.bulk_loaded));
            let statements = Statements { upsert: UpsertSql::new(t), load: infile::statement(t), bulk, bulk_loaded };
            self.statements.insert(t.id.clone(), statements);
        }
        Ok(())
    }

    async fn write(&mut self, batch: &ChangeBatch) -> Result<Durability, SinkError> {
        let id = &batch.table.id;
        let Some(statements) = self.statements.get(id) else {
            let reason = "the sink was not prepared for this table".into();
            return Err(SinkError::Data { table: id.clone(), reason });
        };
        let data_error = |reason: String| SinkError::Data { table: id.clone(), reason };
        // A first copy (or an insert-only table) brings rows the target does not have yet:
        // they go by the server's bulk path while that holds.
        let new_rows = matches!(batch.after, Position::Start | Position::Copy { .. } | Position::Key { .. });
        let bulk = statements.bulk && self.local_infile && batch.num_rows() > 0;
        if new_rows && bulk && batch.ops.iter().all(|op| *op == Op::Upsert) {
            match self.load(batch).await? {
                Bulk::Loaded => {
                    if let Some(s) = self.statements.get_mut(id)
                        && !std::mem::replace(&mut s.bulk_loaded, true)
                    {
                        tracing::info!(table = %id, "new rows load by LOAD DATA LOCAL");
                    }
                    return Ok(Durability::Durable);
                }
                Bulk::Declined(why) => {
                    tracing::info!(table = %id, "{why}: this table's new rows go by upserts for the rest of the run");
                    if let Some(s) = self.statements.get_mut(id) {
                        s.bulk = false;
                    }
                }
            }
        }
        let sql = &self.statements[id].upsert;
        let mut statements = Vec::new();
        for (op, range) in op_runs(&batch.ops) {
            statements.extend(match op {
                Op::Upsert => sql.upserts(&batch.rows, range, self.batch_rows).map_err(data_error)?,
                Op::Delete => sql.deletes(&batch.table, &batch.rows, range).map_err(data_error)?,
            });
        }

        let what = format!("loading a batch of {id}");
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(|e| db_error(&what, e))?;
        for statement in &statements {
            tx.query_drop(statement).await.map_err(|e| db_error(&what, e))?;
        }
        advance_checkpoint(&mut tx, &self.pipeline, batch).await.map_err(|e| db_error(&what, e))?;
        tx.commit().await.map_err(|e| db_error(&what, e))?;
        Ok(Durability::Durable)
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }

    async fn shutdown(self) -> Result<(), SinkError> {
        self.pool.disconnect().await.map_err(|e| db_error("closing the sink's connections", e))
    }
}

impl MysqlSink {
    /// Inserts every row of `batch` with `LOAD DATA LOCAL`, and its checkpoint. The rows go in
    /// up to [`BULK_PARTS`] consecutive parts, each in a transaction on a connection of its
    /// own, loaded at once (the server inserts on as many threads); the parts commit in order,
    /// the last with the checkpoint. A crash between those commits leaves rows without their
    /// checkpoint: the replay's load meets them, is rolled back, and the guarded upserts make
    /// the batch whole. Any part that did not insert every row with no warning (a row the
    /// target had, a value that does not fit) rolls all of them back.
    async fn load(&mut self, batch: &ChangeBatch) -> Result<Bulk, SinkError> {
        let id = &batch.table.id;
        let what = format!("bulk-loading a batch of {id}");
        let data_error = |reason: String| SinkError::Data { table: id.clone(), reason };
        let n = batch.num_rows();
        let parts = self.bulk_parts.min(n / MIN_PART_ROWS).max(1);
        let mut conns = Vec::with_capacity(parts);
        let mut sizes = Vec::with_capacity(parts);
        for p in 0..parts {
            let rows = p * n / parts..(p + 1) * n / parts;
            sizes.push(rows.len() as u64);
            let data = infile::encode(&batch.rows, rows).map_err(data_error)?;
            let mut conn = self.conn().await?;
            // A one-time handler: the next LOAD DATA LOCAL on this connection reads `data`, in
            // packets well under any `max_allowed_packet` (the driver sends each chunk as one).
            let bytes = bytes::Bytes::from(data);
            let chunks: Vec<std::io::Result<bytes::Bytes>> = (0..bytes.len())
                .step_by(INFILE_CHUNK_BYTES)
                .map(|at| Ok(bytes.slice(at..bytes.len().min(at + INFILE_CHUNK_BYTES))))
                .collect();
            conn.set_infile_handler(async move { Ok(futures_util::stream::iter(chunks).boxed()) });
            conns.push(conn);
        }
        let sql = &self.statements[id].load;
        let loads = conns.iter_mut().zip(&sizes).map(|(conn, &rows)| load_part(conn, sql, rows));
        let outcomes = futures_util::future::join_all(loads).await;
        let mut failed = None;
        let mut declined = None;
        for outcome in outcomes {
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(why)) => declined = declined.or(Some(why)),
                Err(e) => failed = failed.or(Some(e)),
            }
        }
        if failed.is_some() || declined.is_some() {
            for conn in &mut conns {
                // A connection that failed is reset by the pool, which rolls back as well.
                let _ = conn.query_drop("ROLLBACK").await;
            }
        }
        match failed {
            Some(mysql_async::Error::Server(e)) if LOCAL_INFILE_REFUSED.contains(&e.code) => {
                self.local_infile = false;
                tracing::info!(
                    "the sink's server refuses LOAD DATA LOCAL ({}): rows go by INSERT statements; \
                     SET GLOBAL local_infile = ON there makes first copies about twice as fast",
                    e.message
                );
                return Ok(Bulk::Declined("LOAD DATA LOCAL refused".into()));
            }
            Some(e) => return Err(db_error(&what, e)),
            None => {}
        }
        if let Some(why) = declined {
            return Ok(Bulk::Declined(why));
        }
        let (last, first) = conns.split_last_mut().expect("one part at least");
        for conn in first {
            conn.query_drop("COMMIT").await.map_err(|e| db_error(&what, e))?;
        }
        advance_checkpoint(last, &self.pipeline, batch).await.map_err(|e| db_error(&what, e))?;
        last.query_drop("COMMIT").await.map_err(|e| db_error(&what, e))?;
        Ok(Bulk::Loaded)
    }
}

/// One part of a bulk load: a transaction begun and the part loaded, not committed.
/// `Ok(Err(why))` when it did not insert all of its `rows` rows with no warning.
async fn load_part(conn: &mut Conn, sql: &str, rows: u64) -> Result<Result<(), String>, mysql_async::Error> {
    conn.query_drop("START TRANSACTION").await?;
    conn.query_drop(sql).await?;
    let (inserted, warnings) = (conn.affected_rows(), conn.get_warnings());
    if inserted == rows && warnings == 0 {
        return Ok(Ok(()));
    }
    let first: Option<(String, u16, String)> = conn.query_first("SHOW WARNINGS LIMIT 1").await?;
    let first = first.map_or(String::new(), |(_, code, message)| format!(", first: {code} {message}"));
    Ok(Err(format!("a bulk load inserted {inserted} of {rows} rows with {warnings} warnings{first} (rolled back)")))
}

/// Moves the checkpoint to the end of `batch`, in the caller's transaction (never back: a
/// replayed older batch still lands, idempotently, but leaves the checkpoint where it is).
async fn advance_checkpoint(
    conn: &mut impl Queryable,
    pipeline: &str,
    batch: &ChangeBatch,
) -> Result<(), mysql_async::Error> {
    let id = &batch.table.id;
    let stored = read_checkpoint(conn, pipeline, id, true).await?;
    let rows_loaded = stored.as_ref().map_or(0, |c| c.rows_loaded) + batch.num_rows() as u64;
    if !stored.is_some_and(|c| batch.upto.is_behind(&c.position)) {
        write_checkpoint(conn, pipeline, id, &Checkpoint { position: batch.upto.clone(), rows_loaded }).await?;
    }
    Ok(())
}

/// Consecutive rows with the same operation.
fn op_runs(ops: &[Op]) -> Vec<(Op, std::ops::Range<usize>)> {
    let mut runs: Vec<(Op, std::ops::Range<usize>)> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match runs.last_mut() {
            Some((last, range)) if last == op => range.end = i + 1,
            _ => runs.push((*op, i..i + 1)),
        }
    }
    runs
}

/// Reads and writes the checkpoints the sink commits with its batches.
#[derive(Clone)]
pub struct MysqlCheckpointStore {
    pool: Pool,
    pipeline: String,
}

impl CheckpointStore for MysqlCheckpointStore {
    async fn load(&self, table: &TableId) -> Result<Option<Checkpoint>, CheckpointError> {
        let what = format!("reading the checkpoint of {table}");
        let mut conn = self.pool.get().await.map_err(|e| pool_cp_error(&what, e))?;
        match read_checkpoint(&mut conn, &self.pipeline, table, false).await {
            // No checkpoint table yet: nothing was ever loaded into this database.
            Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_TABLE => Ok(None),
            other => other.map_err(|e| cp_error(&what, e)),
        }
    }

    async fn reset(&self, table: &TableId) -> Result<(), CheckpointError> {
        let what = format!("resetting the checkpoint of {table}");
        let mut conn = self.pool.get().await.map_err(|e| pool_cp_error(&what, e))?;
        let sql = "DELETE FROM `_highwater_checkpoints` WHERE `pipeline` = ? AND `source_database` = ? AND `source_table` = ?";
        match conn.exec_drop(sql, (&self.pipeline, &table.database, &table.table)).await {
            Err(mysql_async::Error::Server(e)) if e.code == NO_SUCH_TABLE => Ok(()),
            other => other.map_err(|e| cp_error(&what, e)),
        }
    }

    async fn commit(&self, table: &TableId, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let what = format!("writing the checkpoint of {table}");
        let mut conn = self.pool.get().await.map_err(|e| pool_cp_error(&what, e))?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(|e| cp_error(&what, e))?;
        let stored = read_checkpoint(&mut tx, &self.pipeline, table, true).await.map_err(|e| cp_error(&what, e))?;
        if !stored.is_some_and(|c| checkpoint.position.is_behind(&c.position)) {
            write_checkpoint(&mut tx, &self.pipeline, table, checkpoint).await.map_err(|e| cp_error(&what, e))?;
        }
        tx.commit().await.map_err(|e| cp_error(&what, e))
    }
}

async fn read_checkpoint(
    conn: &mut impl Queryable,
    pipeline: &str,
    table: &TableId,
    for_update: bool,
) -> Result<Option<Checkpoint>, mysql_async::Error> {
    let sql = if for_update { format!("{SELECT_CHECKPOINT} FOR UPDATE") } else { SELECT_CHECKPOINT.to_owned() };
    let row: Option<Row> = conn.exec_first(sql, (pipeline, &table.database, &table.table)).await?;
    let Some(mut row) = row else { return Ok(None) };
    let text: String = row.take(0).unwrap_or_default();
    let rows_loaded: u64 = row.take(1).unwrap_or_default();
    let position: Position = serde_json::from_str(&text).map_err(|e| {
        mysql_async::Error::Other(format!("{CHECKPOINT_TABLE} holds a position that is not valid: {e}").into())
    })?;
    Ok(Some(Checkpoint { position, rows_loaded }))
}

async fn write_checkpoint(
    conn: &mut impl Queryable,
    pipeline: &str,
    table: &TableId,
    checkpoint: &Checkpoint,
) -> Result<(), mysql_async::Error> {
    let position = serde_json::to_string(&checkpoint.position)
        .map_err(|e| mysql_async::Error::Other(format!("cannot encode a position: {e}").into()))?;
    conn.exec_drop(UPSERT_CHECKPOINT, (pipeline, &table.database, &table.table, position, checkpoint.rows_loaded)).await
}

fn db_error(what: &str, e: mysql_async::Error) -> SinkError {
    SinkError::Database { what: what.to_owned(), retryable: highwater_mysql::is_retryable(&e), source: Box::new(e) }
}

fn cp_error(what: &str, e: mysql_async::Error) -> CheckpointError {
    CheckpointError::Database { what: what.to_owned(), source: Box::new(e) }
}

fn pool_cp_error(what: &str, e: highwater_pipeline::pool::PoolError) -> CheckpointError {
    CheckpointError::Database { what: what.to_owned(), source: Box::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_runs_group_consecutive_operations() {
        let ops = [Op::Upsert, Op::Upsert, Op::Delete, Op::Upsert];
        assert_eq!(op_runs(&ops), [(Op::Upsert, 0..2), (Op::Delete, 2..3), (Op::Upsert, 3..4)]);
    }
}
