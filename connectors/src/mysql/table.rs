//! One configured table of the MySQL source: what discovery found, the statements that read
//! it, and where its passes stand.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, RecordBatch};
use highwater_pipeline::batch::{ChangeBatch, Op};
use highwater_pipeline::cursor::{DateTime, Position};
use highwater_pipeline::schema::TableSchema;
use highwater_pipeline::source::SourceError;

use super::clock::{CursorClock, CursorZone};
use super::config::TableConfig;
use super::discover::Discovered;
use super::page::{Page, Shape};
use super::query::TableQueries;
use super::reread::Seen;
use super::types::Kind;

/// One configured table, ready to read.
pub(super) struct Table {
    pub(super) schema: Arc<TableSchema>,
    pub(super) kinds: Vec<Kind>,
    pub(super) queries: TableQueries,
    /// Read by key alone: the cursor is the table's integer primary key.
    pub(super) incrementing: bool,
    /// A first copy reads in parallel key ranges: the key is one integer column (`Some`,
    /// whether unsigned), and no re-read filter needs the rows in turn.
    pub(super) ranged: Option<bool>,
    /// Whether this table's first copy reads in key order; `None` until its first read.
    pub(super) key_order: Option<bool>,
    /// The zone and unit of the cursor's values: the pass's bound is taken in them.
    pub(super) clock: CursorClock,
    /// The rows whose cursor is NULL are read before the next read in cursor order: at a
    /// pass's start, and after a page of them that filled its limit (see [`NullsRead`]).
    pub(super) sweep_nulls: bool,
    /// The soft-delete column: a row where it is set is a delete.
    pub(super) soft_delete: Option<usize>,
    /// With `reread_secs`: the window, and the rows let through lately (see [`reread`]).
    pub(super) reread_window: Option<Duration>,
    pub(super) seen: Option<Seen>,
    /// The server's estimate of the table's rows when the source connected.
    pub(super) estimated_rows: Option<u64>,
    /// The clock-only bound of this pass, and of the pass before it: rows read now at or
    /// below the latter arrived behind the clock (see [`BatchStats::late_rows`]).
    pub(super) clock_bound: Option<DateTime>,
    pub(super) late_floor: Option<DateTime>,
}

impl Table {
    /// A discovered table, configured by `config` (`source.tables[i]`).
    pub(super) fn new(
        found: Discovered,
        config: &TableConfig,
        i: usize,
        batch_rows: usize,
        local: &CursorZone,
    ) -> Result<Table, SourceError> {
        let soft_delete = match &config.soft_delete {
            None => None,
            Some(name) => Some(soft_delete_column(&found.schema, name, i)?),
        };
        let ranged = match found.schema.key.as_slice() {
            [k] if config.reread_secs == 0 => match found.kinds[*k] {
                Kind::Int8 | Kind::Int16 | Kind::Int32 | Kind::Int64 => Some(false),
                Kind::UInt8 | Kind::UInt16 | Kind::UInt32 | Kind::UInt64 => Some(true),
                _ => None,
            },
            _ => None,
        };
        let schema = Arc::new(found.schema);
        let reread_window = (config.reread_secs > 0).then(|| Duration::from_secs(config.reread_secs));
        Ok(Table {
            reread_window,
            seen: reread_window.map(Seen::new),
            estimated_rows: None,
            queries: TableQueries::new(&schema, batch_rows),
            clock: match found.epoch {
                Some(unit) => CursorClock::epoch(unit),
                None => CursorClock::of_column(&schema.cursor_column().source_type, local),
            },
            sweep_nulls: false,
            key_order: None,
            kinds: found.kinds,
            incrementing: found.incrementing,
            ranged,
            soft_delete,
            schema,
            clock_bound: None,
            late_floor: None,
        })
    }
}

/// The index of `soft_delete` (`source.tables[i].soft_delete`): a column that is NULL while
/// the row lives. A NOT NULL one would make every row a delete.
pub(super) fn soft_delete_column(schema: &TableSchema, name: &str, i: usize) -> Result<usize, SourceError> {
    let key = format!("source.tables[{i}].soft_delete");
    let Some(c) = schema.columns.iter().position(|c| c.name.eq_ignore_ascii_case(name)) else {
        return Err(SourceError::MissingColumn { table: schema.id.clone(), column: name.to_owned(), key });
    };
    if !schema.columns[c].source_nullable {
        return Err(SourceError::SoftDeleteNotNull {
            table: schema.id.clone(),
            column: schema.columns[c].name.clone(),
            key,
        });
    }
    Ok(c)
}

impl Table {
    pub(super) fn shape(&self) -> Shape<'_> {
        Shape { schema: &self.schema, kinds: &self.kinds, clock: &self.clock }
    }

    /// The batch of a page read after `after`.
    pub(super) fn batch(&self, after: &Position, page: Page) -> ChangeBatch {
        ChangeBatch {
            table: self.schema.clone(),
            ops: ops(&page.rows, self.soft_delete),
            rows: page.rows,
            after: after.clone(),
            upto: page.upto,
            stats: page.stats,
            piece: None,
        }
    }
}

/// Each row's operation: a delete where the soft-delete column is set, else an upsert.
pub(super) fn ops(rows: &RecordBatch, soft_delete: Option<usize>) -> Vec<Op> {
    match soft_delete {
        None => vec![Op::Upsert; rows.num_rows()],
        Some(c) => {
            let column = rows.column(c);
            (0..rows.num_rows()).map(|i| if column.is_valid(i) { Op::Delete } else { Op::Upsert }).collect()
        }
    }
}
