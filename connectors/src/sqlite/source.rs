//! The `Source` over a SQLite file.
//!
//! Each read is one read transaction: a snapshot of the file (WAL or rollback journal) that a
//! writer goes on around (WAL) or waits for no longer than one batch (rollback journal). The
//! blocking calls run on tokio's blocking threads, one at a time on the source's connection.
//!
//! A table with a cursor is read as a MySQL table is: a first copy by key of every row at or
//! below the first pass's bound, then by `(cursor, key)` after the highest such row, with the
//! rows whose cursor is NULL swept by key each pass. A table without one is copied whole by key
//! on each run's first pass (positions `Copy` with the run's start as their bound), then
//! followed by its increasing key for the rest of the run.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow_array::RecordBatch;
use highwater_pipeline::batch::{BatchStats, ChangeBatch, Op};
use highwater_pipeline::cursor::{DateTime, Key, NullsRead, Position};
use highwater_pipeline::schema::{Evolution, TableSchema};
use highwater_pipeline::source::{PassBound, Source, SourceError};
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, Transaction};

use super::clock::{Clock, SQLITE_FORM, TextForm};
use super::config::{SqliteSourceConfig, SqliteTableConfig};
use super::decode::{Column, key_param, key_value};
use super::discover::{Cursor, Found, all_tables, discover};
use super::query::Queries;
use super::{query_error, quote_sqlite};

/// One table being read.
struct Table {
    found: Found,
    queries: Queries,
    clock: Option<Clock>,
    rows: Option<u64>,
}

/// A SQLite database file, read table by table.
pub struct SqliteSource {
    path: PathBuf,
    database: String,
    conn: Option<Connection>,
    busy_timeout: Duration,
    configs: Vec<(SqliteTableConfig, super::config::OnTypeMismatch)>,
    tables: Vec<Arc<Table>>,
    schemas: Vec<Arc<TableSchema>>,
    offset_secs: i64,
    lag_micros: i64,
    batch_rows: usize,
    /// The bound of the whole copies of this run.
    run_started: DateTime,
}

impl SqliteSource {
    /// Opens the file and discovers its tables; errors name the path or the table.
    pub fn open(config: &SqliteSourceConfig) -> Result<Self, SourceError> {
        let busy_timeout = Duration::from_secs(config.busy_timeout_secs);
        let conn = open(&config.path, busy_timeout)?;
        let database = database_name(&config.path);
        let configs: Vec<_> = match &config.tables {
            Some(tables) => tables.iter().map(|t| (t.clone(), config.mismatch_for(t))).collect(),
            None => all_tables(&conn)?
                .into_iter()
                .map(|name| {
                    let t = SqliteTableConfig { name, cursor: None, cursor_unit: None, on_type_mismatch: None };
                    let mismatch = config.mismatch_for(&t);
                    (t, mismatch)
                })
                .collect(),
        };
        let offset_secs = config.offset_secs().unwrap_or(0);
        let mut tables = Vec::new();
        for (i, (table, mismatch)) in configs.iter().enumerate() {
            let found = discover(&conn, &database, table, *mismatch, &format!("source.tables[{i}]"))?;
            let mut t = Table::new(found, config.batch_rows);
            t.rows = count(&conn, &t.found.schema)?;
            t.clock = clock(&conn, &t, offset_secs)?;
            tables.push(Arc::new(t));
        }
        let schemas = tables.iter().map(|t| Arc::new(t.found.schema.clone())).collect();
        let run_started = DateTime::from_unix_micros(now_micros());
        Ok(SqliteSource {
            path: config.path.clone(),
            database,
            conn: Some(conn),
            busy_timeout,
            configs,
            tables,
            schemas,
            offset_secs,
            lag_micros: config.lag_secs as i64 * 1_000_000,
            batch_rows: config.batch_rows,
            run_started,
        })
    }

    /// [`SqliteSource::open`] on a blocking thread (it counts each table's rows).
    pub async fn open_async(config: &SqliteSourceConfig) -> Result<Self, SourceError> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || SqliteSource::open(&config)).await.map_err(|e| SourceError::Query {
            what: format!("opening {}", e),
            retryable: false,
            source: Box::new(e),
        })?
    }

    /// The tables copied whole on each run, by name.
    pub fn whole_copies(&self) -> Vec<&str> {
        self.tables
            .iter()
            .filter(|t| t.found.cursor == Cursor::None)
            .map(|t| t.found.schema.id.table.as_str())
            .collect()
    }

    /// Runs `f` on the connection on a blocking thread (opening it again if a panic lost it).
    async fn with_conn<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut Connection) -> Result<T, SourceError> + Send + 'static,
    ) -> Result<T, SourceError> {
        let mut conn = match self.conn.take() {
            Some(conn) => conn,
            None => open(&self.path, self.busy_timeout)?,
        };
        let (conn, result) = tokio::task::spawn_blocking(move || {
            let result = f(&mut conn);
            (conn, result)
        })
        .await
        .map_err(|e| SourceError::Query {
            what: format!("{}", self.path.display()),
            retryable: true,
            source: Box::new(e),
        })?;
        self.conn = Some(conn);
        result
    }
}

impl Table {
    fn new(found: Found, batch_rows: usize) -> Table {
        let table_sql = quote_sqlite(&found.schema.id.table);
        let queries = Queries::new(&found, &table_sql, batch_rows);
        Table { found, queries, clock: None, rows: None }
    }
}

impl Source for SqliteSource {
    fn tables(&self) -> &[Arc<TableSchema>] {
        &self.schemas
    }

    fn estimated_rows(&self, table: usize) -> Option<u64> {
        self.tables[table].rows
    }

    async fn highest_cursor(&mut self, table: usize) -> Result<Option<DateTime>, SourceError> {
        let t = self.tables[table].clone();
        let Some(clock) = t.clock else { return Ok(None) };
        self.with_conn(move |conn| {
            let v: Option<Value> = first(conn, &t.queries.highest, &[], &t.found.schema)?;
            v.map(|v| clock.value((&v).into()).map_err(|reason| decode_error(&t.found, t.found.schema.cursor, reason)))
                .transpose()
        })
        .await
    }

    async fn begin_pass(&mut self, table: usize) -> Result<Option<Arc<TableSchema>>, SourceError> {
        let (config, mismatch) = self.configs[table].clone();
        let database = self.database.clone();
        let (batch_rows, offset_secs) = (self.batch_rows, self.offset_secs);
        let old = self.tables[table].clone();
        let next = self
            .with_conn(move |conn| {
                let found = discover(conn, &database, &config, mismatch, &format!("source.tables[{table}]"))?;
                let mut next = Table::new(found, batch_rows);
                next.rows = old.rows;
                next.clock = clock(conn, &next, offset_secs)?;
                Ok(next)
            })
            .await?;
        let evolved = match self.tables[table].found.schema.evolution(&next.found.schema) {
            Evolution::Same => None,
            Evolution::Breaking(change) => {
                return Err(SourceError::SchemaChanged { table: next.found.schema.id.clone(), change });
            }
            Evolution::Added(columns) => {
                tracing::info!(table = %next.found.schema.id, ?columns, "the table has new columns: they are read from now on and the sink adds them");
                self.schemas[table] = Arc::new(next.found.schema.clone());
                Some(self.schemas[table].clone())
            }
        };
        self.tables[table] = Arc::new(next);
        Ok(evolved)
    }

    async fn next_batch(
        &mut self,
        table: usize,
        after: &Position,
        bound: &mut PassBound,
        max_rows: usize,
    ) -> Result<Option<ChangeBatch>, SourceError> {
        let t = self.tables[table].clone();
        let schema = self.schemas[table].clone();
        let after = after.clone();
        if t.found.cursor == Cursor::None {
            let started = self.run_started;
            // Caught up, the table is whole in the sink as of the run's start.
            bound.0.get_or_insert(started);
            return self.with_conn(move |conn| whole_copy(conn, &t, schema, &after, started, max_rows)).await;
        }
        let clock = t.clock.unwrap_or(Clock::Text { form: SQLITE_FORM, offset_secs: self.offset_secs });
        let upper = *bound.0.get_or_insert_with(|| clock.bound(now_micros(), self.lag_micros));
        self.with_conn(move |conn| by_cursor(conn, &t, schema, clock, &after, upper, max_rows)).await
    }
}

/// The next page of a table without a cursor: by key, from the start on a run's first pass.
fn whole_copy(
    conn: &mut Connection,
    t: &Table,
    schema: Arc<TableSchema>,
    after: &Position,
    started: DateTime,
    max_rows: usize,
) -> Result<Option<ChangeBatch>, SourceError> {
    let tx = snapshot(conn, t)?;
    let (sql, params) = match after {
        Position::Copy { bound, key, .. } if *bound == started => (&t.queries.copy_after, key_params(key)),
        _ => (&t.queries.copy_first, Vec::new()),
    };
    let page = read(&tx, t, None, sql, &params, max_rows)?;
    end(tx, t)?;
    Ok(page.map(|page| {
        let upto = Position::Copy { bound: started, key: page.last_key.clone(), ranges: None };
        batch(schema, after, upto, page)
    }))
}

/// The next page of a table with a cursor, up to `upper`.
fn by_cursor(
    conn: &mut Connection,
    t: &Table,
    schema: Arc<TableSchema>,
    clock: Clock,
    after: &Position,
    upper: DateTime,
    max_rows: usize,
) -> Result<Option<ChangeBatch>, SourceError> {
    let tx = snapshot(conn, t)?;
    let q = &t.queries;
    let result = match after {
        Position::At { cursor, key, nulls } => {
            let swept = match nulls {
                Some(NullsRead { upto }) => {
                    let (sql, params) = match upto {
                        Some(k) => (&q.nulls_after, key_params(k)),
                        None => (&q.nulls_first, Vec::new()),
                    };
                    read(&tx, t, Some(clock), sql, &params, max_rows)?.map(|page| {
                        let nulls = Some(NullsRead { upto: Some(page.last_key.clone()) });
                        let upto = Position::At { cursor: *cursor, key: key.clone(), nulls };
                        (page, upto)
                    })
                }
                None => None,
            };
            match swept {
                Some(found) => Some(found),
                None => after_cursor(&tx, t, clock, cursor, key, nulls.clone(), upper, max_rows)?,
            }
        }
        Position::Copy { bound, key, .. } => copy(&tx, t, clock, *bound, Some(key), max_rows)?,
        _ => copy(&tx, t, clock, upper, None, max_rows)?,
    };
    end(tx, t)?;
    Ok(result.map(|(page, upto)| batch(schema, after, upto, page)))
}

/// Rows after `(cursor, key)` up to `upper`, in cursor order.
#[allow(clippy::too_many_arguments)]
fn after_cursor(
    tx: &Transaction<'_>,
    t: &Table,
    clock: Clock,
    cursor: &DateTime,
    key: &Key,
    nulls: Option<NullsRead>,
    upper: DateTime,
    max_rows: usize,
) -> Result<Option<(Page, Position)>, SourceError> {
    let (sql, mut params) = if key.is_empty() {
        (&t.queries.cursor_above, vec![clock.param(cursor)])
    } else {
        let mut params = vec![clock.param(cursor)];
        params.extend(key_params(key));
        (&t.queries.cursor_after, params)
    };
    params.push(clock.param(&upper));
    Ok(read(tx, t, Some(clock), sql, &params, max_rows)?.map(|page| {
        let upto = Position::At {
            cursor: page.last_cursor.unwrap_or(*cursor),
            key: page.last_key.clone(),
            nulls: nulls.clone(),
        };
        (page, upto)
    }))
}

/// The next page of a first copy by key of the rows at or below `bound`; once it is complete,
/// the position moves to cursor order after the highest such row.
fn copy(
    tx: &Transaction<'_>,
    t: &Table,
    clock: Clock,
    bound: DateTime,
    key: Option<&Key>,
    max_rows: usize,
) -> Result<Option<(Page, Position)>, SourceError> {
    let mut params = vec![clock.param(&bound)];
    let sql = match key {
        Some(key) => {
            params.extend(key_params(key));
            &t.queries.copy_after
        }
        None => &t.queries.copy_first,
    };
    let page = read(tx, t, Some(clock), sql, &params, max_rows)?;
    if let Some(page) = page.as_ref().filter(|p| p.fetched >= max_rows.min(t.queries.limit)) {
        let upto = Position::Copy { bound, key: page.last_key.clone(), ranges: None };
        return Ok(page.clone_upto(upto));
    }
    // The copy is complete: cursor order takes over from its highest row.
    let schema = &t.found.schema;
    let top: Option<Vec<Value>> = first_row(tx, &t.queries.handover, &[clock.param(&bound)], schema)?;
    let (cursor, key) = match top {
        Some(row) => {
            let cursor = clock.value((&row[0]).into()).map_err(|r| decode_error(&t.found, schema.cursor, r))?;
            let key = row[1..].iter().map(|v| key_value(v.into())).collect::<Result<Key, _>>();
            (cursor, key.map_err(|r| decode_error(&t.found, schema.key[0], r))?)
        }
        None => (bound, Vec::new()),
    };
    let nulls = match schema.cursor_column().source_nullable {
        false => None,
        true => {
            let top: Option<Vec<Value>> = first_row(tx, &t.queries.highest_null, &[], schema)?;
            let upto = top.map(|row| row.iter().map(|v| key_value(v.into())).collect::<Result<Key, _>>());
            Some(NullsRead { upto: upto.transpose().map_err(|r| decode_error(&t.found, schema.key[0], r))? })
        }
    };
    let at = Position::At { cursor, key, nulls };
    Ok(Some(match page {
        Some(page) => (page, at),
        None => (Page::empty(t), at),
    }))
}

/// Rows read and where they end.
struct Page {
    rows: RecordBatch,
    fetched: usize,
    last_key: Key,
    last_cursor: Option<DateTime>,
    null_cursors: u64,
}

impl Page {
    fn empty(t: &Table) -> Page {
        Page {
            rows: RecordBatch::new_empty(t.found.schema.arrow.clone()),
            fetched: 0,
            last_key: Vec::new(),
            last_cursor: None,
            null_cursors: 0,
        }
    }

    fn clone_upto(&self, upto: Position) -> Option<(Page, Position)> {
        let page = Page {
            rows: self.rows.clone(),
            fetched: self.fetched,
            last_key: self.last_key.clone(),
            last_cursor: self.last_cursor,
            null_cursors: self.null_cursors,
        };
        Some((page, upto))
    }
}

/// Runs a page query and decodes its rows; `None` when it returned none.
fn read(
    tx: &Transaction<'_>,
    t: &Table,
    clock: Option<Clock>,
    sql: &str,
    params: &[Value],
    max_rows: usize,
) -> Result<Option<Page>, SourceError> {
    let schema = &t.found.schema;
    let what = || format!("rows of {}", schema.id);
    let mut stmt = tx.prepare_cached(sql).map_err(|e| query_error(what(), e))?;
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(|e| query_error(what(), e))?;
    let mut columns: Vec<Column> =
        t.found.kinds.iter().zip(&t.found.as_text).map(|(k, s)| Column::new(*k, *s)).collect();
    let mut page = Page { rows: RecordBatch::new_empty(schema.arrow.clone()), ..Page::empty(t) };
    while let Some(row) = rows.next().map_err(|e| query_error(what(), e))? {
        let key: Key = (schema.key.iter())
            .map(|&i| {
                row.get_ref(i)
                    .map_err(|e| query_error(what(), e))
                    .and_then(|v| key_value(v).map_err(|r| decode_error(&t.found, i, r)))
            })
            .collect::<Result<_, _>>()?;
        for (i, column) in columns.iter_mut().enumerate() {
            let v = row.get_ref(i).map_err(|e| query_error(what(), e))?;
            column.push(v).map_err(|reason| decode_error(&t.found, i, format!("{reason} (row key {key:?})")))?;
        }
        let cursor = row.get_ref(schema.cursor).map_err(|e| query_error(what(), e))?;
        match (clock, cursor) {
            (_, rusqlite::types::ValueRef::Null) => page.null_cursors += 1,
            (Some(clock), v) => {
                let value = clock.value(v);
                page.last_cursor =
                    Some(value.map_err(|r| decode_error(&t.found, schema.cursor, format!("{r} (row key {key:?})")))?);
            }
            (None, _) => {}
        }
        page.last_key = key;
        page.fetched += 1;
        if page.fetched >= max_rows {
            break;
        }
    }
    if page.fetched == 0 {
        return Ok(None);
    }
    let arrays = columns.into_iter().map(Column::finish).collect();
    page.rows = RecordBatch::try_new(schema.arrow.clone(), arrays)
        .map_err(|e| decode_error(&t.found, 0, format!("the rows do not form a batch: {e}")))?;
    Ok(Some(page))
}

fn batch(schema: Arc<TableSchema>, after: &Position, upto: Position, page: Page) -> ChangeBatch {
    let ops = vec![Op::Upsert; page.rows.num_rows()];
    let stats = BatchStats { null_cursor_rows: page.null_cursors, ..BatchStats::default() };
    // Rows carry the columns of `schema`, which a column added since may outgrow: the page
    // was decoded with the table's current columns, which are `schema`'s.
    ChangeBatch { table: schema, rows: page.rows, ops, after: after.clone(), upto, stats, piece: None }
}

/// The table's clock for this pass: its cursor's text form, read off its lowest and highest
/// values, or its epoch unit.
fn clock(conn: &Connection, t: &Table, offset_secs: i64) -> Result<Option<Clock>, SourceError> {
    let schema = &t.found.schema;
    match t.found.cursor {
        Cursor::None => Ok(None),
        Cursor::Epoch(unit) => Ok(Some(Clock::Epoch(unit))),
        Cursor::Text => {
            let low: Option<Value> = first(conn, &t.queries.lowest, &[], schema)?;
            let high: Option<Value> = first(conn, &t.queries.highest, &[], schema)?;
            let form = |v: &Option<Value>| -> Result<Option<TextForm>, SourceError> {
                match v {
                    None => Ok(None),
                    Some(Value::Text(text)) => match TextForm::parse(text) {
                        Some((_, form)) => Ok(Some(form)),
                        None => Err(decode_error(
                            &t.found,
                            schema.cursor,
                            format!("cursor value {text:?} is not an ISO 8601 date"),
                        )),
                    },
                    Some(other) => {
                        let any = Clock::Text { form: SQLITE_FORM, offset_secs };
                        Err(decode_error(&t.found, schema.cursor, any.value(other.into()).err().unwrap_or_default()))
                    }
                }
            };
            let (low_form, high_form) = (form(&low)?, form(&high)?);
            if low_form != high_form {
                return Err(decode_error(
                    &t.found,
                    schema.cursor,
                    format!(
                        "the cursor holds dates written in two forms ({:?} and {:?}): SQLite compares text as text, \
                         so the rows would not come in time order. Rewrite them in one form",
                        low.map(|v| text_of(&v)).unwrap_or_default(),
                        high.map(|v| text_of(&v)).unwrap_or_default()
                    ),
                ));
            }
            Ok(Some(Clock::Text { form: high_form.unwrap_or(SQLITE_FORM), offset_secs }))
        }
    }
}

fn text_of(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        other => format!("{other:?}"),
    }
}

/// Opens `path` read-only in effect (`query_only`), refusing a missing file or one that is not
/// a SQLite database, with the path named.
fn open(path: &Path, busy_timeout: Duration) -> Result<Connection, SourceError> {
    let what = |why: String| SourceError::Query {
        what: format!("the SQLite file {} (source.path)", path.display()),
        retryable: false,
        source: why.into(),
    };
    if !path.is_file() {
        return Err(what("it does not exist or is not a file".into()));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| what(e.to_string()))?;
    conn.busy_timeout(busy_timeout).map_err(|e| what(e.to_string()))?;
    // The first read of the schema tells a file that is not a database, or one a writer holds.
    conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)).map_err(|e| {
        let why = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked) => {
                format!("a writer held it locked for more than {} s (source.busy_timeout_secs)", busy_timeout.as_secs())
            }
            Some(rusqlite::ErrorCode::NotADatabase) => format!("{e}: is it a SQLite database?"),
            _ => e.to_string(),
        };
        what(why)
    })?;
    conn.execute_batch("PRAGMA query_only = 1").map_err(|e| what(e.to_string()))?;
    Ok(conn)
}

/// The name tables of `path` are known by (`gateway` for `data/gateway.db`).
pub(super) fn database_name(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "sqlite".into())
}

/// The table's rows now (SQLite counts exactly; for the progress of a first copy).
fn count(conn: &Connection, schema: &TableSchema) -> Result<Option<u64>, SourceError> {
    let sql = format!("SELECT count(*) FROM {}", quote_sqlite(&schema.id.table));
    let n: i64 =
        conn.query_row(&sql, [], |r| r.get(0)).map_err(|e| query_error(format!("counting {}", schema.id), e))?;
    Ok(u64::try_from(n).ok())
}

fn snapshot<'c>(conn: &'c mut Connection, t: &Table) -> Result<Transaction<'c>, SourceError> {
    conn.transaction().map_err(|e| query_error(format!("a snapshot of {}", t.found.schema.id), e))
}

fn end(tx: Transaction<'_>, t: &Table) -> Result<(), SourceError> {
    tx.commit().map_err(|e| query_error(format!("the end of a read of {}", t.found.schema.id), e))
}

fn first(conn: &Connection, sql: &str, params: &[Value], schema: &TableSchema) -> Result<Option<Value>, SourceError> {
    Ok(first_row(conn, sql, params, schema)?.and_then(|mut row| row.drain(..).next()))
}

fn first_row(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    schema: &TableSchema,
) -> Result<Option<Vec<Value>>, SourceError> {
    let what = || format!("the cursor of {}", schema.id);
    let mut stmt = conn.prepare_cached(sql).map_err(|e| query_error(what(), e))?;
    let n = stmt.column_count();
    let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(|e| query_error(what(), e))?;
    match rows.next().map_err(|e| query_error(what(), e))? {
        None => Ok(None),
        Some(row) => {
            let values = (0..n).map(|i| row.get::<_, Value>(i)).collect::<Result<Vec<_>, _>>();
            values.map(|v| Some(v).filter(|v| v.first() != Some(&Value::Null))).map_err(|e| query_error(what(), e))
        }
    }
}

fn key_params(key: &Key) -> Vec<Value> {
    key.iter().map(key_param).collect()
}

fn decode_error(found: &Found, column: usize, reason: String) -> SourceError {
    SourceError::Decode {
        table: found.schema.id.clone(),
        column: found.schema.columns.get(column).map(|c| c.name.clone()).unwrap_or_default(),
        reason,
    }
}

/// Microseconds since 1970 on this machine's clock.
fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}
