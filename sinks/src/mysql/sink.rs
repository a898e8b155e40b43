//! `MysqlSink`: rows and their checkpoint in one transaction (a batch's, or a bulk load's of
//! many batches, see [`super::bulk`]), so the target is exactly once: after a crash the rows
//! either are there with their checkpoint or neither is.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::config::MysqlSinkConfig;
use highwater_mysql::Pool;
use highwater_pipeline::batch::{ChangeBatch, Op};
use highwater_pipeline::checkpoint::{Checkpoint, CheckpointError, CheckpointStore};
use highwater_pipeline::cursor::Position;
use highwater_pipeline::ident::quote;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::sink::{Durability, Sink, SinkError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, TxOpts};

use super::bulk::{Finished, OpenLoad};
use super::foreign::ForeignKeys;
use super::lock::TargetLock;
use super::upsert::{self, UpsertSql};
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
    /// The longest upsert statement: below the server's `max_allowed_packet` (read at
    /// prepare), and [`upsert::MAX_STATEMENT_BYTES`] at most.
    max_statement_bytes: usize,
    statements: HashMap<TableId, Statements>,
    /// Whether the server takes `LOAD DATA LOCAL` (until it refuses once).
    local_infile: bool,
    /// Parts a bulk load is split in: [`BULK_PARTS`], or fewer when the pool has fewer
    /// connections (a load holds one per part at once).
    bulk_parts: usize,
    /// The rows' size in memory at which a bulk load commits (`sink.bulk_commit_mb`).
    bulk_commit_bytes: usize,
    /// The bulk load under way, if any.
    open: Option<OpenLoad>,
    /// This run's lock on the pipeline's tables in the sink, once taken ([`MysqlSink::lock`]).
    lock: Option<TargetLock>,
    /// Batches of a load that did not commit, to write by upserts before anything else.
    replays: VecDeque<ChangeBatch>,
    /// The table, end and piece of the last batch taken into a load: a write of it again (the
    /// runner retries a failed write) is already in hand. The piece tells apart the parts of
    /// one source batch that a bus split by partition: they share their end, and one after
    /// another they are not a retry.
    last_taken: Option<Taken>,
    /// See [`MysqlSinkConfig::accept_nonempty_target`] and [`MysqlSink::refuse_nonempty_targets`].
    accept_nonempty_target: bool,
    /// The source's foreign keys, recreated once their tables are complete
    /// (`sink.foreign_keys`).
    foreign_keys: ForeignKeys,
}

/// What tells a batch taken into a load from another: its table, end and piece.
type Taken = (TableId, Position, Option<(i32, u32)>);

/// A table's statements, and whether its new rows still go by `LOAD DATA LOCAL`.
struct Statements {
    upsert: UpsertSql,
    load: String,
    /// Cleared, for the rest of the run, when a load found rows the target already had.
    bulk: bool,
    /// Whether a bulk load worked (logged once).
    bulk_loaded: bool,
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
            max_statement_bytes: upsert::MAX_STATEMENT_BYTES,
            statements: HashMap::new(),
            local_infile: true,
            bulk_parts: BULK_PARTS.min(config.pool.size + config.pool.max_overflow).max(1),
            bulk_commit_bytes: config.bulk_commit_mb << 20,
            open: None,
            lock: None,
            replays: VecDeque::new(),
            last_taken: None,
            accept_nonempty_target: config.accept_nonempty_target.unwrap_or(true),
            foreign_keys: ForeignKeys::new(config.foreign_keys),
        })
    }

    /// Takes the lock that keeps other runs of `pipeline` (from other config files or machines)
    /// from writing this sink while this one does (see [`super::lock`]). Loaders of one Kafka
    /// group share the work and do not take it.
    pub async fn lock(&mut self, database: &str, pipeline: &str) -> Result<(), SinkError> {
        self.lock = Some(TargetLock::acquire(&self.pool, database, pipeline).await?);
        Ok(())
    }

    /// Refuses first copies into target tables holding rows this pipeline did not write,
    /// unless the config says otherwise (`by_default`: what applies when it says nothing).
    pub fn refuse_nonempty_targets(&mut self, config: &MysqlSinkConfig, by_default: bool) {
        let refuse = config.accept_nonempty_target.map_or(by_default, |accept| !accept);
        self.accept_nonempty_target = !refuse;
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
        let packet: Option<u64> = conn
            .query_first("SELECT @@max_allowed_packet")
            .await
            .map_err(|e| db_error("reading the sink's max_allowed_packet", e))?;
        self.max_statement_bytes = upsert::statement_limit(packet);
        self.foreign_keys.know(tables);
        for t in tables {
            conn.query_drop(ddl::create_table(t))
                .await
                .map_err(|e| db_error(&format!("creating the target table of {}", t.id), e))?;
            if !self.accept_nonempty_target && !self.statements.contains_key(&t.id) {
                self.refuse_foreign_rows(&mut conn, t).await?;
            }
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
                let computed = ddl::computed_defaults_among_added(t, &existing);
                if !computed.is_empty() {
                    tracing::warn!(
                        table = %t.id, columns = ?computed,
                        "new columns with an expression default: the rows copied before hold NULL in them, not the \
                         values the source computed, until each row changes; touch those rows' cursor to send them"
                    );
                }
            }
            // A table prepared again (new columns) keeps what its loads found out.
            let (bulk, bulk_loaded) = self.statements.get(&t.id).map_or((true, false), |s| (s.bulk, s.bulk_loaded));
            let statements = Statements { upsert: UpsertSql::new(t), load: infile::statement(t), bulk, bulk_loaded };
            self.statements.insert(t.id.clone(), statements);
        }
        Ok(())
    }

    async fn write(&mut self, batch: &ChangeBatch) -> Result<Durability, SinkError> {
        if let Some(lock) = &mut self.lock {
            lock.hold(&self.pool).await?;
        }
        let id = &batch.table.id;
        // The runner writes a batch again when the write failed. One the sink had taken into
        // a load is in that load still, or queued to be written by upserts.
        let again = self
            .last_taken
            .as_ref()
            .is_some_and(|(t, upto, piece)| t == id && *upto == batch.upto && *piece == batch.piece);
        self.write_replays().await?;
        if again {
            return Ok(self.durability());
        }
        let Some(statements) = self.statements.get(id) else {
            let reason = "the sink was not prepared for this table".into();
            return Err(SinkError::Data { table: id.clone(), reason });
        };
        // A first copy (or an insert-only table) brings rows the target does not have yet:
        // they go by the server's bulk path while that holds.
        let new_rows = matches!(batch.after, Position::Start | Position::Copy { .. } | Position::Key { .. });
        // An empty page (a gap in the keys) joins the load under way, if any.
        let rows = batch.num_rows() > 0 || self.open.as_ref().is_some_and(|open| open.table == *id);
        let bulk =
            new_rows && statements.bulk && self.local_infile && rows && batch.ops.iter().all(|op| *op == Op::Upsert);
        if self.open.as_ref().is_some_and(|open| !bulk || open.table != *id) {
            self.finish_load().await?;
        }
        if !bulk {
            self.upsert(batch).await?;
            return Ok(Durability::Durable);
        }
        if self.open.is_none() {
            let parts = self.bulk_parts.min(batch.num_rows() / MIN_PART_ROWS).max(1);
            let mut conns = Vec::with_capacity(parts);
            for _ in 0..parts {
                conns.push(self.conn().await?);
            }
            self.open = Some(OpenLoad::open(id.clone(), conns, &self.statements[id].load));
        }
        self.last_taken = Some((id.clone(), batch.upto.clone(), batch.piece));
        let open = self.open.as_mut().expect("opened above");
        let fed = open.feed(batch).await;
        if let Err(reason) = fed {
            tracing::info!(table = %id, "a value cannot go by LOAD DATA LOCAL ({reason}): the load's batches go by upserts");
            self.finish_load().await?;
        } else if open.held_bytes >= self.bulk_commit_bytes {
            self.finish_load().await?;
        }
        Ok(self.durability())
    }

    async fn flush(&mut self) -> Result<(), SinkError> {
        self.write_replays().await?;
        if self.open.is_some() {
            self.finish_load().await?;
        }
        Ok(())
    }

    async fn caught_up(&mut self, table: &TableId) -> Result<(), SinkError> {
        if !self.foreign_keys.wanted() {
            return Ok(());
        }
        let mut conn = self.conn().await?;
        self.foreign_keys.caught_up(&mut conn, table).await
    }

    async fn shutdown(self) -> Result<(), SinkError> {
        self.pool.disconnect().await.map_err(|e| db_error("closing the sink's connections", e))
    }
}

impl MysqlSink {
    /// Refuses a table this pipeline has no checkpoint for whose target already holds rows.
    async fn refuse_foreign_rows(&self, conn: &mut Conn, t: &TableSchema) -> Result<(), SinkError> {
        let what = format!("looking for rows in the target of {}", t.id);
        let checkpoint: Option<(String, u64)> = conn
            .exec_first(SELECT_CHECKPOINT, (&self.pipeline, &t.id.database, &t.id.table))
            .await
            .map_err(|e| db_error(&what, e))?;
        if checkpoint.is_some() {
            return Ok(());
        }
        let any: Option<u8> = conn
            .query_first(format!("SELECT 1 FROM {} LIMIT 1", quote(&t.id.table)))
            .await
            .map_err(|e| db_error(&what, e))?;
        match any {
            None => Ok(()),
            Some(_) => Err(SinkError::Data {
                table: t.id.clone(),
                reason: format!(
                    "the target table {} already holds rows that pipeline {:?} did not write (it has no checkpoint \
                     for the table): a first copy would merge into them. Empty or drop it, or set \
                     sink.accept_nonempty_target = true to load over its rows",
                    quote(&t.id.table),
                    self.pipeline
                ),
            }),
        }
    }

    /// `Durable` when no batch waits in a load or for a replay.
    fn durability(&self) -> Durability {
        if self.open.is_none() && self.replays.is_empty() { Durability::Durable } else { Durability::Buffered }
    }

    /// Writes `batch` by guarded upserts and deletes, with its checkpoint, in one transaction.
    async fn upsert(&mut self, batch: &ChangeBatch) -> Result<(), SinkError> {
        let id = &batch.table.id;
        let data_error = |reason: String| SinkError::Data { table: id.clone(), reason };
        let Some(statements) = self.statements.get(id) else {
            return Err(data_error("the sink was not prepared for this table".into()));
        };
        let sql = &statements.upsert;
        let mut statements = Vec::new();
        for (op, range) in op_runs(&batch.ops) {
            statements.extend(match op {
                Op::Upsert => sql
                    .upserts(&batch.table, &batch.rows, range, self.batch_rows, self.max_statement_bytes)
                    .map_err(data_error)?,
                Op::Delete => sql.deletes(&batch.table, &batch.rows, range).map_err(data_error)?,
            });
        }

        let what = format!("loading a batch of {id}");
        let mut conn = self.conn().await?;
        let mut tx = conn.start_transaction(TxOpts::default()).await.map_err(|e| db_error(&what, e))?;
        for statement in &statements {
            tx.query_drop(statement).await.map_err(|e| db_error(&what, e))?;
        }
        advance_checkpoint(&mut tx, &self.pipeline, id, &batch.upto, batch.num_rows() as u64)
            .await
            .map_err(|e| db_error(&what, e))?;
        tx.commit().await.map_err(|e| db_error(&what, e))
    }

    /// Writes the batches of a load that did not commit, in order, by upserts; a batch that
    /// fails stays first in the queue for the next write or flush.
    async fn write_replays(&mut self) -> Result<(), SinkError> {
        while let Some(batch) = self.replays.pop_front() {
            if let Err(e) = self.upsert(&batch).await {
                self.replays.push_front(batch);
                return Err(e);
            }
        }
        Ok(())
    }

    /// Ends the open load: its parts commit in order, the last with the checkpoint of its last
    /// batch. A crash between those commits leaves rows without their checkpoint: the replay's
    /// load meets them, is rolled back, and the guarded upserts make the batches whole. A load
    /// that does not insert every row with no warning is rolled back, and its batches are
    /// written by upserts.
    async fn finish_load(&mut self) -> Result<(), SinkError> {
        let Some(mut open) = self.open.take() else { return Ok(()) };
        let batches = std::mem::take(&mut open.batches);
        let id = open.table.clone();
        let what = format!("bulk-loading batches of {id}");
        let finished = open.finish().await;
        let (Some(first), Some(last)) = (batches.first(), batches.last()) else { return Ok(()) };
        // A failure worth a warning (what was refused or declined is logged as such).
        let failure = match finished {
            Finished::Inserted(mut conns) => {
                let rows = batches.iter().map(|b| b.num_rows() as u64).sum();
                let outcome = async {
                    let (last_part, parts) = conns.split_last_mut().expect("one part at least");
                    for conn in parts {
                        conn.query_drop("COMMIT").await?;
                    }
                    advance_checkpoint(last_part, &self.pipeline, &id, &last.upto, rows).await?;
                    last_part.query_drop("COMMIT").await
                }
                .await;
                match outcome {
                    Ok(()) => {
                        tracing::debug!(table = %id, batches = batches.len(), rows, "a bulk load committed");
                        if let Some(s) = self.statements.get_mut(&id)
                            && !std::mem::replace(&mut s.bulk_loaded, true)
                        {
                            tracing::info!(table = %id, "new rows load by LOAD DATA LOCAL");
                        }
                        return Ok(());
                    }
                    Err(e) => Some(db_error(&what, e)),
                }
            }
            Finished::Failed(mysql_async::Error::Server(e)) if LOCAL_INFILE_REFUSED.contains(&e.code) => {
                self.local_infile = false;
                tracing::info!(
                    "the sink's server refuses LOAD DATA LOCAL ({}): rows go by INSERT statements; \
                     SET GLOBAL local_infile = ON there makes first copies about twice as fast",
                    e.message
                );
                None
            }
            Finished::Failed(e) => Some(db_error(&what, e)),
            Finished::Declined(why) => {
                tracing::info!(table = %id, "{why}: this table's new rows go by upserts for the rest of the run");
                if let Some(s) = self.statements.get_mut(&id) {
                    s.bulk = false;
                }
                None
            }
        };
        if let Some(e) = failure {
            tracing::warn!(table = %id, "{e}; its {} batches from {} go by upserts", batches.len(), first.after);
        }
        self.replays.extend(batches);
        self.write_replays().await
    }
}

/// Moves the checkpoint of `id` to `upto`, `rows` more loaded, in the caller's transaction
/// (never back: a replayed older batch still lands, idempotently, but leaves the checkpoint
/// where it is).
async fn advance_checkpoint(
    conn: &mut impl Queryable,
    pipeline: &str,
    id: &TableId,
    upto: &Position,
    rows: u64,
) -> Result<(), mysql_async::Error> {
    let stored = read_checkpoint(conn, pipeline, id, true).await?;
    let rows_loaded = stored.as_ref().map_or(0, |c| c.rows_loaded) + rows;
    if !stored.is_some_and(|c| upto.is_behind(&c.position)) {
        write_checkpoint(conn, pipeline, id, &Checkpoint { position: upto.clone(), rows_loaded }).await?;
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
