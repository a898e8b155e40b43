//! One read of a MySQL source table: a statement run in a snapshot, its rows decoded into a
//! page of Arrow columns with the position after its last row.

use arrow_array::RecordBatch;
use highwater_pipeline::batch::BatchStats;
use highwater_pipeline::cursor::{DateTime, Key, Position};
use highwater_pipeline::schema::{TableId, TableSchema};
use highwater_pipeline::source::SourceError;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Params, Row, TxOpts, Value};

use super::clock::CursorClock;
use super::config::ZeroDates;
use super::connect::query_error;
use super::decode::{self, ColumnBuilder, Pushed};
use super::reread::{self, Seen};
use super::types::Kind;

/// A key as the parameters of its expanded comparison (see [`super::query::key_after`]):
/// every column but the last twice, the last once.
pub(super) fn key_params(key: &Key) -> Vec<Value> {
    let n = key.len();
    key.iter()
        .enumerate()
        .flat_map(|(i, v)| {
            let p = decode::key_param(v);
            if i + 1 < n { vec![p.clone(), p] } else { vec![p] }
        })
        .collect()
}

/// One statement of a read, with its parameters and the part of the read order it walks.
pub(super) struct Query<'a> {
    pub(super) sql: &'a str,
    pub(super) params: Vec<Value>,
    pub(super) phase: Phase,
}

/// Which part of the read order a read walks.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Phase {
    /// Rows with a NULL cursor, by key.
    NullCursor,
    /// Rows by `(cursor, key)`; rows at or below the floor are late (counted).
    Cursor(Option<DateTime>),
    /// Rows by key alone (incrementing tables).
    Key,
    /// A first copy by key, of the rows whose cursor is NULL or at most this bound.
    Copy(DateTime),
}

/// Runs one read and decodes its rows; `None` when it found none.
pub(super) async fn read(
    tx: &mut mysql_async::Transaction<'_>,
    t: &Shape<'_>,
    query: Query<'_>,
    max_rows: usize,
    zero_dates: ZeroDates,
    mut seen: Option<&mut Seen>,
) -> Result<Option<Page>, SourceError> {
    let Query { sql, params, phase } = query;
    let id = &t.schema.id;
    let mut builders: Vec<ColumnBuilder> = t.kinds.iter().map(|k| ColumnBuilder::new(*k, max_rows)).collect();
    let mut stats = BatchStats::default();
    let mut failure: Option<SourceError> = None;
    let mut last: Option<Row> = None;
    let mut count = 0usize;
    let mut fetched = 0usize;
    // Rows come in cursor order: the late ones, if any, come first.
    let mut late_floor = match phase {
        Phase::Cursor(floor) => floor,
        _ => None,
    };
    let cursor = t.schema.cursor;
    let mut result =
        tx.exec_iter(sql, Params::Positional(params)).await.map_err(|e| query_error(format!("table {id}"), e))?;
    result
        .for_each(|row| {
            if failure.is_some() {
                return;
            }
            fetched += 1;
            if let Some(seen) = seen.as_deref_mut() {
                let key = reread::hash_row(&row, t.schema.key.iter().copied());
                let content = reread::hash_row(&row, 0..t.kinds.len());
                let at = row.as_ref(cursor).and_then(|v| t.clock.value(v).ok()).and_then(|d| d.unix_micros());
                if !seen.changed(key, content, at.unwrap_or(i64::MIN)) {
                    // Re-read and unchanged: the position moves past it, nothing is sent.
                    last = Some(row);
                    return;
                }
            }
            for (i, builder) in builders.iter_mut().enumerate() {
                match builder.push(row.as_ref(i)) {
                    Ok(Pushed::Value) => {}
                    Ok(Pushed::ZeroDate) if zero_dates == ZeroDates::Null => stats.zero_dates += 1,
                    Ok(Pushed::ZeroDate) => {
                        failure =
                            Some(decode_error(t, i, "holds a zero date and source.zero_dates = \"error\"".into()));
                        return;
                    }
                    Err(reason) => {
                        failure = Some(decode_error(t, i, reason));
                        return;
                    }
                }
            }
            if let Some(floor) = late_floor {
                match row.as_ref(cursor).map(|v| t.clock.value(v)) {
                    Some(Ok(c)) if c <= floor => stats.late_rows += 1,
                    _ => late_floor = None,
                }
            }
            if matches!(phase, Phase::Copy(_)) && matches!(row.as_ref(cursor), Some(Value::NULL)) {
                stats.null_cursor_rows += 1;
            }
            count += 1;
            last = Some(row);
        })
        .await
        .map_err(|e| query_error(format!("table {id}"), e))?;
    drop(result);
    if let Some(e) = failure {
        return Err(e);
    }
    let Some(last) = last else { return Ok(None) };
    if phase == Phase::NullCursor {
        stats.null_cursor_rows = count as u64;
    }

    let key = row_key(t, &last, |_, i| i)?;
    let upto = match phase {
        Phase::NullCursor => Position::NullCursor { key },
        Phase::Key => Position::Key { key },
        Phase::Copy(bound) => Position::Copy { bound, key, ranges: None },
        Phase::Cursor(_) => {
            let c = t.schema.cursor;
            let value = last.as_ref(c).unwrap_or(&Value::NULL);
            let cursor = t.clock.value(value).map_err(|reason| decode_error(t, c, reason))?;
            Position::At { cursor, key, nulls: None }
        }
    };
    let columns = builders.iter_mut().map(ColumnBuilder::finish).collect();
    let batch = RecordBatch::try_new(t.schema.arrow.clone(), columns)
        .map_err(|e| decode_error(t, t.schema.cursor, format!("cannot assemble the batch: {e}")))?;
    Ok(Some(Page { rows: batch, upto, stats, fetched }))
}

/// A read-only transaction with a consistent snapshot: the rows of one read all come from it.
pub(super) async fn snapshot<'c>(
    conn: &'c mut Conn,
    id: &TableId,
) -> Result<mysql_async::Transaction<'c>, SourceError> {
    let mut opts = TxOpts::default();
    opts.with_consistent_snapshot(true).with_readonly(Some(true));
    conn.start_transaction(opts).await.map_err(|e| query_error(format!("a snapshot of {id}"), e))
}

/// What one read found.
pub(super) struct Page {
    pub(super) rows: RecordBatch,
    pub(super) upto: Position,
    pub(super) stats: BatchStats,
    /// Rows the server sent, including re-read ones left out of `rows` as unchanged: fewer
    /// than the read's limit means the read reached the end of its range.
    pub(super) fetched: usize,
}

/// What decoding a table's rows needs of it.
pub(super) struct Shape<'a> {
    pub(super) schema: &'a TableSchema,
    pub(super) kinds: &'a [Kind],
    pub(super) clock: &'a CursorClock,
}

/// The key of `row`, whose `n`th key column (the table's column `i`) stands at `at(n, i)`:
/// `i` in rows of every column, `n` in rows of the key alone.
pub(super) fn row_key(t: &Shape<'_>, row: &Row, at: impl Fn(usize, usize) -> usize) -> Result<Key, SourceError> {
    (t.schema.key.iter().enumerate())
        .map(|(n, &i)| {
            let v = row.as_ref(at(n, i)).unwrap_or(&Value::NULL);
            decode::key_value(t.kinds[i], v).map_err(|reason| decode_error(t, i, reason))
        })
        .collect()
}

pub(super) fn decode_error(t: &Shape<'_>, column: usize, reason: String) -> SourceError {
    SourceError::Decode { table: t.schema.id.clone(), column: t.schema.columns[column].name.clone(), reason }
}
