//! `MysqlSource`: reads each configured table in `(cursor, key)` order, batch by batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::config::{MysqlSourceConfig, TableConfig, ZeroDates};
use arrow_array::RecordBatch;
use highwater_mysql::Pool;
use highwater_pipeline::batch::{BatchStats, ChangeBatch};
use highwater_pipeline::cursor::{DateTime, KeyRanges, NullsRead, Position};
use highwater_pipeline::ident::quote;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::schema::{Evolution, TableSchema};
use highwater_pipeline::source::{BatchShape, PassBound, Source, SourceError};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::bound::{Holder, OpenTransactions};
use super::clock::CursorZone;
use super::connect::{self, query_error};
use super::copy::{CopyPlan, int_key, int_param, key_int, key_span};
use super::discover::discover;
use super::page::{Page, Phase, Query, decode_error, key_params, read, row_key, snapshot};
use super::ranges::{InFlight, Ranges};
use super::reread::Seen;
use super::table::Table;

/// The server's row estimate of a table: instant (statistics), not a count.
const ESTIMATED_ROWS_SQL: &str =
    "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?";

/// The incremental MySQL/MariaDB/TiDB source.
pub struct MysqlSource {
    pool: Pool,
    database: String,
    configs: Vec<TableConfig>,
    batch_rows: usize,
    tables: Vec<Table>,
    schemas: Vec<Arc<TableSchema>>,
    lag_secs: u64,
    zero_dates: ZeroDates,
    open_transactions: OpenTransactions,
    /// The zone of the `DATETIME` and `DATE` cursors' values (`source.time_zone`).
    local_zone: CursorZone,
    /// How long a pass waits for a writer that holds its bound down.
    open_transaction_wait: Duration,
    /// The last writer that held a bound, so that a long one is waited for (and logged) once.
    last_holder: Option<Holder>,
    /// The key ranges of a first copy being read on several connections (see [`super::ranges`]).
    copy_plan: Option<CopyPlan>,
    /// The sink wants batches on few dates ([`BatchShape::FewDates`]): a first copy reads in
    /// key order only where a page's rows fall on few dates.
    few_dates: bool,
}

/// The dates a first page may span for a first copy in key order into a sink that wants
/// batches on few dates ([`BatchShape::FewDates`]); above it, cursor order is read instead.
const MAX_DATES_PER_PAGE: u64 = 8;

impl MysqlSource {
    /// Whether `table`'s first copy reads in key order: always, unless the sink wants batches
    /// on few dates and the first page's rows, or those of the page from the middle of an
    /// integer key's span, fall on more than [`MAX_DATES_PER_PAGE`] dates (cursors that do not
    /// follow the key), where cursor order keeps each batch to a date or two.
    async fn copies_in_key_order(&mut self, table: usize, bound: &DateTime) -> Result<bool, SourceError> {
        if let Some(decided) = self.tables[table].key_order {
            return Ok(decided);
        }
        let t = &self.tables[table];
        let mut decided = true;
        // Only called for tables read by cursor; an integer one makes no date files.
        if self.few_dates && t.clock.is_temporal() {
            let mut conn = self.pool.get().await?;
            let what = || format!("the first rows of {}", t.schema.id);
            let mut dates: Option<u64> = conn
                .exec_first(&t.queries.dates_in_first_page, (t.clock.param(bound),))
                .await
                .map_err(|e| query_error(what(), e))?;
            if let Some(unsigned) = t.ranged
                && dates.unwrap_or(0) <= MAX_DATES_PER_PAGE
            {
                // And the page from the middle of the keys: the first rows alone can mislead.
                if let Some((min, max)) = key_span(&mut conn, t).await.map_err(|e| query_error(what(), e))? {
                    let middle = int_param(min + (max - min) / 2, unsigned);
                    dates = conn
                        .exec_first(&t.queries.dates_in_page_from, (middle, t.clock.param(bound)))
                        .await
                        .map_err(|e| query_error(what(), e))?;
                }
            }
            decided = dates.unwrap_or(0) <= MAX_DATES_PER_PAGE;
            if !decided {
                tracing::info!(
                    table = %t.schema.id, dates = dates.unwrap_or(0),
                    "the first copy reads in cursor order: in key order its batches would span many dates, which the sink wants few of"
                );
            }
        }
        self.tables[table].key_order = Some(decided);
        Ok(decided)
    }

    /// Connects and discovers every configured table; any problem is reported before a read.
    /// The pool's usage and waits are reported in `metrics`.
    pub async fn connect(config: &MysqlSourceConfig, metrics: &Metrics) -> Result<Self, SourceError> {
        let pool = connect::open(config, Some(metrics)).await?;
        let mut conn = pool.get().await?;
        let database = config.url.database().unwrap_or_default().to_owned();
        let open_transactions = OpenTransactions::probe(&mut conn).await?;
        let local_zone = CursorZone::resolve(&mut conn, config.time_zone.as_deref()).await?;
        if let OpenTransactions::Hidden(why) = &open_transactions {
            tracing::warn!("{why}");
        }
        let mut tables = Vec::with_capacity(config.tables.len());
        for (i, t) in config.tables.iter().enumerate() {
            let found = discover(&mut conn, &database, t, &format!("source.tables[{i}]")).await?;
            let estimated_rows: Option<Option<u64>> =
                conn.exec_first(ESTIMATED_ROWS_SQL, (&database, &t.name))
                    .await
                    .map_err(|e| query_error(format!("the size of {database}.{}", t.name), e))?;
            let mut table = Table::new(found, t, i, config.batch_rows, &local_zone)?;
            table.estimated_rows = estimated_rows.flatten();
            tables.push(table);
        }
        drop(conn);
        let schemas = tables.iter().map(|t| t.schema.clone()).collect();
        Ok(MysqlSource {
            pool,
            database,
            configs: config.tables.clone(),
            batch_rows: config.batch_rows,
            tables,
            schemas,
            lag_secs: config.lag_secs,
            zero_dates: config.zero_dates,
            open_transactions,
            local_zone,
            open_transaction_wait: Duration::from_secs(config.open_transaction_wait_secs),
            last_holder: None,
            copy_plan: None,
            few_dates: false,
        })
    }

    /// The bound of a new pass over `table`. When an open writer holds it below the clock,
    /// waits up to `open_transaction_wait` for that writer to commit (once per writer).
    async fn take_bound(&mut self, conn: &mut Conn, table: usize) -> Result<DateTime, SourceError> {
        let deadline = Instant::now() + self.open_transaction_wait;
        let b = loop {
            let b = self.open_transactions.bound(conn, self.lag_secs).await?;
            match b.holder {
                Some(h) if Some(h) != self.last_holder && Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                _ => break b,
            }
        };
        let t = &mut self.tables[table];
        if let Some(h) = b.holder {
            if Some(h) != self.last_holder {
                tracing::info!(
                    table = %t.schema.id, session = h.session, started = %h.started,
                    "an open transaction holds the pass below its start; rows after it wait for its commit"
                );
            }
            self.last_holder = Some(h);
        }
        if let Some(seen) = &mut t.seen {
            seen.prune();
            tracing::debug!(table = %t.schema.id, rows = seen.len(), "rows remembered for re-reading");
        }
        t.sweep_nulls = t.schema.cursor_column().source_nullable;
        let (upper, clock) = t.clock.bound(conn, b.upper, b.clock).await?;
        t.late_floor = t.clock_bound.max(t.late_floor);
        t.clock_bound = Some(clock);
        Ok(upper)
    }
}

impl Source for MysqlSource {
    fn shape_batches(&mut self, shape: BatchShape) {
        self.few_dates = shape == BatchShape::FewDates;
    }

    fn tables(&self) -> &[Arc<TableSchema>] {
        &self.schemas
    }

    fn estimated_rows(&self, table: usize) -> Option<u64> {
        self.tables[table].estimated_rows
    }

    fn reread(&self, table: usize) -> Option<Duration> {
        self.tables[table].reread_window
    }

    async fn server_id(&mut self) -> Result<Option<String>, SourceError> {
        let mut conn = self.pool.get().await?;
        let id: Option<Option<String>> = match conn.query_first("SELECT @@server_uuid").await {
            Ok(id) => id,
            // MariaDB names it differently.
            Err(_) => conn.query_first("SELECT @@server_uid").await.unwrap_or(None),
        };
        Ok(id.flatten().filter(|id| !id.is_empty()))
    }

    async fn highest_cursor(&mut self, table: usize) -> Result<Option<DateTime>, SourceError> {
        let t = &self.tables[table];
        if t.incrementing {
            return Ok(None);
        }
        let mut conn = self.pool.get().await?;
        let sql = format!(
            "SELECT MAX({}) FROM {}.{}",
            quote(&t.schema.cursor_column().name),
            quote(&t.schema.id.database),
            quote(&t.schema.id.table)
        );
        let row: Option<Row> =
            conn.query_first(sql).await.map_err(|e| query_error(format!("the newest row of {}", t.schema.id), e))?;
        match row.and_then(|mut r| r.take::<Value, _>(0)) {
            None | Some(Value::NULL) => Ok(None),
            Some(v) => t.clock.value(&v).map(Some).map_err(|reason| decode_error(&t.shape(), t.schema.cursor, reason)),
        }
    }

    async fn begin_pass(&mut self, table: usize) -> Result<Option<Arc<TableSchema>>, SourceError> {
        if !self.tables[table].clock.is_temporal() {
            // A count of time in the wrong unit (milliseconds read as seconds) lies past 9999:
            // its rows would wait above every bound, unread. The newest value says so.
            self.highest_cursor(table).await?;
        }
        let config = &self.configs[table];
        let mut conn = self.pool.get().await?;
        let key = format!("source.tables[{table}]");
        let found = discover(&mut conn, &self.database, config, &key).await?;
        let old = &self.tables[table];
        match old.schema.evolution(&found.schema) {
            Evolution::Same => Ok(None),
            Evolution::Breaking(change) => Err(SourceError::SchemaChanged { table: old.schema.id.clone(), change }),
            Evolution::Added(columns) => {
                tracing::info!(table = %old.schema.id, ?columns, "the table has new columns: they are read from now on and the sink adds them");
                let mut next = Table::new(found, config, table, self.batch_rows, &self.local_zone)?;
                next.estimated_rows = old.estimated_rows;
                next.clock_bound = old.clock_bound;
                next.late_floor = old.late_floor;
                self.schemas[table] = next.schema.clone();
                self.tables[table] = next;
                Ok(Some(self.schemas[table].clone()))
            }
        }
    }

    async fn next_batch(
        &mut self,
        table: usize,
        after: &Position,
        bound: &mut PassBound,
        max_rows: usize,
    ) -> Result<Option<ChangeBatch>, SourceError> {
        if !self.tables[table].incrementing && bound.0.is_none() {
            let mut conn = self.pool.get().await?;
            // Taken before the snapshot: see `bound`.
            bound.0 = Some(self.take_bound(&mut conn, table).await?);
        }
        let key_order = match (after, bound.0) {
            (Position::Start, Some(upper)) if !self.tables[table].incrementing => {
                self.copies_in_key_order(table, &upper).await?
            }
            _ => true,
        };
        if let Some(upper) = bound.0
            && key_order
            && matches!(after, Position::Start | Position::Copy { .. })
            && self.tables[table].ranged.is_some()
            && let Some(batch) = self.next_range(table, after, upper, max_rows).await?
        {
            return Ok(Some(batch));
        }
        let mut seen = self.tables[table].seen.take();
        let result = self.read_batch(table, after, bound, max_rows, key_order, seen.as_mut()).await;
        self.tables[table].seen = seen;
        result
    }
}

impl MysqlSource {
    /// One read of [`Source::next_batch`], with the table's [`Seen`] rows taken out of it.
    async fn read_batch(
        &mut self,
        table: usize,
        after: &Position,
        bound: &PassBound,
        max_rows: usize,
        key_order: bool,
        mut seen: Option<&mut Seen>,
    ) -> Result<Option<ChangeBatch>, SourceError> {
        let mut conn = self.pool.get().await?;
        let t = &self.tables[table];
        let id = &t.schema.id;
        let mut tx = snapshot(&mut conn, id).await?;
        let mut sweep_next = None;
        let result = if t.incrementing {
            let (sql, params) = match after {
                Position::Key { key } => (&t.queries.key_after, key_params(key)),
                _ => (&t.queries.key_first, Vec::new()),
            };
            let query = Query { sql, params, phase: Phase::Key };
            read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen.as_deref_mut()).await?
        } else {
            let upper = bound.0.expect("taken above");
            // A first copy reads by key; one begun earlier goes on up to its own bound.
            let copy = match after {
                Position::Start if key_order => Some((upper, None)),
                Position::Copy { bound, key, .. } => Some((*bound, Some(key))),
                _ => None,
            };
            let mut result = None;
            if let Some((copy_bound, key)) = copy {
                let (sql, mut params) = match key {
                    Some(key) => (&t.queries.copy_after, key_params(key)),
                    None => (&t.queries.copy_first, Vec::new()),
                };
                params.push(t.clock.param(&copy_bound));
                let query = Query { sql, params, phase: Phase::Copy(copy_bound) };
                result = read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen.as_deref_mut()).await?;
                if result.as_ref().is_none_or(|page| page.fetched < t.queries.limit) {
                    // The copy is complete: cursor order takes over from its highest row.
                    match (&mut result, handover(&mut tx, t, &copy_bound).await?) {
                        (Some(page), Some(at)) => page.upto = at,
                        (None, Some(at)) => {
                            let query = cursor_query(t, &at, &upper);
                            result = read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen).await?;
                            // Nothing changed since: the batch is empty but moves the checkpoint over.
                            let rows = RecordBatch::new_empty(t.schema.arrow.clone());
                            let stats = BatchStats::default();
                            result = result.or(Some(Page { rows, upto: at, stats, fetched: 0 }));
                        }
                        // Nothing at or below the bound (any more): rows above it, by cursor.
                        (None, None) if key.is_some() => {
                            let params = vec![t.clock.param(&copy_bound), t.clock.param(&upper)];
                            let query =
                                Query { sql: &t.queries.cursor_above, params, phase: Phase::Cursor(t.late_floor) };
                            result = read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen).await?;
                        }
                        _ => {}
                    }
                }
            } else {
                if t.sweep_nulls && matches!(after, Position::At { .. }) {
                    result = sweep_nulls(&mut tx, t, after, max_rows, self.zero_dates).await?;
                    sweep_next = Some(result.as_ref().is_some_and(|page| page.fetched >= t.queries.limit));
                }
                // A first copy in cursor order reads the rows whose cursor is NULL first, by key.
                let nulls = match after {
                    Position::Start if t.schema.cursor_column().source_nullable => {
                        Some((&t.queries.nulls_first, Vec::new()))
                    }
                    Position::NullCursor { key } => Some((&t.queries.nulls_after, key_params(key))),
                    _ => None,
                };
                if let Some((sql, params)) = nulls.filter(|_| result.is_none()) {
                    let query = Query { sql, params, phase: Phase::NullCursor };
                    result = read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen.as_deref_mut()).await?;
                }
                if result.is_none() {
                    let query = match after {
                        Position::At { .. } => cursor_query(t, after, &upper),
                        _ => Query {
                            sql: &t.queries.cursor_first,
                            params: vec![t.clock.param(&upper)],
                            phase: Phase::Cursor(t.late_floor),
                        },
                    };
                    result = read(&mut tx, &t.shape(), query, max_rows, self.zero_dates, seen).await?;
                }
            }
            // Positions in cursor order carry how far the NULL-cursor rows are read.
            if let Some(Page { upto: Position::At { nulls: mark @ None, .. }, .. }) = &mut result {
                *mark = nulls_mark(&mut tx, t, after).await?;
            }
            result
        };
        tx.commit().await.map_err(|e| query_error(format!("the end of a read of {id}"), e))?;
        let batch = result.map(|page| t.batch(after, page));
        if let Some(more) = sweep_next {
            self.tables[table].sweep_nulls = more;
        }
        Ok(batch)
    }

    /// The next page of a first copy read in key ranges (see [`super::ranges`]); `None` when the
    /// copy is better read in turn: an empty table, or nothing left to plan.
    async fn next_range(
        &mut self,
        table: usize,
        after: &Position,
        upper: DateTime,
        max_rows: usize,
    ) -> Result<Option<ChangeBatch>, SourceError> {
        let t = &self.tables[table];
        let unsigned = t.ranged.expect("checked by the caller");
        let mut plan = match self.copy_plan.take() {
            Some(plan) if plan.table == table && &plan.expects == after => plan,
            _ => {
                // A new copy, or one resumed (after a restart or a retry): plan from `after`,
                // in the ranges it was read in when it has them.
                let (bound, lo, planned) = match after {
                    Position::Copy { bound, key, ranges } => (*bound, key.first().and_then(key_int), ranges.as_ref()),
                    _ => (upper, None, None),
                };
                let ranges = match (lo, planned.and_then(|r| Some((key_int(&r.max)?, r.step)))) {
                    (Some(lo), Some((max, step))) => Ranges::resume(lo, max, step),
                    _ => {
                        let mut conn = self.pool.get().await?;
                        let span = key_span(&mut conn, t).await;
                        let what = || format!("the keys of {}", t.schema.id);
                        let Some((min, max)) = span.map_err(|e| query_error(what(), e))? else { return Ok(None) };
                        let lo = match lo {
                            Some(lo) => lo,
                            // Below the lowest key, unless that is the lowest an i64 holds.
                            None if min > i128::from(i64::MIN) => min - 1,
                            None => return Ok(None),
                        };
                        Ranges::new(lo, min, max, t.estimated_rows.unwrap_or(0), t.queries.limit)
                    }
                };
                CopyPlan { table, bound, expects: after.clone(), ranges, reads: InFlight::default() }
            }
        };
        let (step, max) = plan.ranges.plan();
        let key_ranges = Some(Box::new(KeyRanges { step, max: int_key(max, unsigned) }));
        plan.fill(&self.pool, t, self.zero_dates, max_rows, unsigned);
        let Some((_, hi, task)) = plan.reads.pop_front() else { return Ok(None) };
        let read = task.await.map_err(|e| SourceError::Query {
            what: format!("a key range of {}", t.schema.id),
            retryable: true,
            source: Box::new(e),
        })??;
        let copied_up_to =
            |k: i128| Position::Copy { bound: plan.bound, key: vec![int_key(k, unsigned)], ranges: key_ranges.clone() };
        let mut page = match read {
            Some(mut page) if page.fetched >= t.queries.limit => {
                // The range filled its page: the rest of it comes next, before any other.
                let last = match &mut page.upto {
                    Position::Copy { key, ranges, .. } => {
                        *ranges = key_ranges.clone();
                        key.first().and_then(key_int)
                    }
                    _ => None,
                };
                if let Some(last) = last {
                    let task = plan.spawn(&self.pool, t, self.zero_dates, max_rows, last, hi, unsigned);
                    plan.reads.push_front(last, hi, task);
                }
                page
            }
            Some(mut page) => {
                page.upto = copied_up_to(hi);
                page
            }
            None => Page {
                rows: RecordBatch::new_empty(t.schema.arrow.clone()),
                upto: copied_up_to(hi),
                stats: BatchStats::default(),
                fetched: 0,
            },
        };
        plan.fill(&self.pool, t, self.zero_dates, max_rows, unsigned);
        if plan.reads.is_empty() {
            // Every range is read: cursor order takes over from the highest row copied.
            let mut conn = self.pool.get().await?;
            let id = &t.schema.id;
            let mut tx = snapshot(&mut conn, id).await?;
            if let Some(at) = handover(&mut tx, t, &plan.bound).await? {
                page.upto = at;
            }
            tx.commit().await.map_err(|e| query_error(format!("the end of a read of {id}"), e))?;
        } else {
            plan.expects = page.upto.clone();
            self.copy_plan = Some(plan);
        }
        Ok(Some(t.batch(after, page)))
    }
}

/// The read in cursor order strictly after `at` (an `At` position), up to the pass's bound.
fn cursor_query<'a>(t: &'a Table, at: &Position, upper: &DateTime) -> Query<'a> {
    let Position::At { cursor, key, .. } = at else { unreachable!("cursor_query takes At positions") };
    let c = t.clock.param(cursor);
    let mut params = vec![c.clone(), c];
    params.extend(key_params(key));
    params.push(t.clock.param(upper));
    Query { sql: &t.queries.cursor_after, params, phase: Phase::Cursor(t.late_floor) }
}

/// The highest `(cursor, key)` at or below a finished copy's bound, in the server's order:
/// where cursor order takes over from the copy (see [`Position::Copy`]). `None`: no such row.
async fn handover(
    tx: &mut mysql_async::Transaction<'_>,
    t: &Table,
    copy_bound: &DateTime,
) -> Result<Option<Position>, SourceError> {
    let id = &t.schema.id;
    let row: Option<Row> = tx
        .exec_first(&t.queries.highest_at_or_below, (t.clock.param(copy_bound),))
        .await
        .map_err(|e| query_error(format!("the end of the first copy of {id}"), e))?;
    let Some(row) = row else { return Ok(None) };
    let nulls = highest_nulls(tx, t).await?;
    let t = &t.shape();
    let c = t.schema.cursor;
    let cursor = t.clock.value(row.as_ref(0).unwrap_or(&Value::NULL)).map_err(|reason| decode_error(t, c, reason))?;
    let key = row_key(t, &row, |n, _| n + 1)?;
    Ok(Some(Position::At { cursor, key, nulls }))
}

/// What a position after `after` has read of the rows whose cursor is NULL (see
/// [`NullsRead`]); `None` for a cursor that is NOT NULL.
async fn nulls_mark(
    tx: &mut mysql_async::Transaction<'_>,
    t: &Table,
    after: &Position,
) -> Result<Option<NullsRead>, SourceError> {
    Ok(match after {
        _ if !t.schema.cursor_column().source_nullable => None,
        Position::At { nulls: Some(mark), .. } => Some(mark.clone()),
        Position::NullCursor { key } => Some(NullsRead { upto: Some(key.clone()) }),
        // The start, a copy's end, or a checkpoint older than the mark: every such row the
        // snapshot holds was read.
        _ => highest_nulls(tx, t).await?,
    })
}

/// The highest key among the rows whose cursor is NULL, as a mark of having read them all.
async fn highest_nulls(tx: &mut mysql_async::Transaction<'_>, t: &Table) -> Result<Option<NullsRead>, SourceError> {
    if !t.schema.cursor_column().source_nullable {
        return Ok(None);
    }
    let id = &t.schema.id;
    let row: Option<Row> = tx
        .query_first(&t.queries.highest_null_key)
        .await
        .map_err(|e| query_error(format!("the rows of {id} whose cursor is NULL"), e))?;
    let Some(row) = row else { return Ok(Some(NullsRead { upto: None })) };
    Ok(Some(NullsRead { upto: Some(row_key(&t.shape(), &row, |n, _| n)?) }))
}

/// The rows whose cursor is NULL and whose key is above what `after` (an `At` position) has
/// read of them, by key; the page's position is `after` with the mark moved to its last row.
async fn sweep_nulls(
    tx: &mut mysql_async::Transaction<'_>,
    t: &Table,
    after: &Position,
    max_rows: usize,
    zero_dates: ZeroDates,
) -> Result<Option<Page>, SourceError> {
    let Position::At { cursor, key, .. } = after else { return Ok(None) };
    let Some(mark) = nulls_mark(tx, t, after).await? else { return Ok(None) };
    let (sql, params) = match &mark.upto {
        Some(upto) => (&t.queries.nulls_after, key_params(upto)),
        None => (&t.queries.nulls_first, Vec::new()),
    };
    let query = Query { sql, params, phase: Phase::NullCursor };
    let Some(mut page) = read(tx, &t.shape(), query, max_rows, zero_dates, None).await? else { return Ok(None) };
    let Position::NullCursor { key: last } = &page.upto else { return Ok(None) };
    let nulls = Some(NullsRead { upto: Some(last.clone()) });
    page.upto = Position::At { cursor: *cursor, key: key.clone(), nulls };
    Ok(Some(page))
}
