//! `ChangeBatch`: the unit that flows from a source through the bus to a sink.

use std::sync::Arc;

use arrow_array::RecordBatch;

use crate::cursor::Position;
use crate::schema::TableSchema;

/// What a row of a batch does to the sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert the row, or replace an older version of it.
    Upsert,
    /// Remove the row.
    Delete,
}

impl Op {
    /// The one-letter code written to Parquet's `_hw_op` column.
    pub fn code(self) -> &'static str {
        match self {
            Op::Upsert => "u",
            Op::Delete => "d",
        }
    }
}

/// Counts of notable values seen while reading a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchStats {
    /// Zero or partial-zero dates that became NULL.
    pub zero_dates: u64,
    /// Rows whose cursor column is NULL.
    pub null_cursor_rows: u64,
    /// Rows whose cursor is at or below the clock bound of an earlier pass: rows that became
    /// visible only after a poller trusting the clock would have passed them (a transaction
    /// that committed late, or rows held back behind one).
    pub late_rows: u64,
}

/// Rows of one table, in read order, covering the positions `(after, upto]`.
#[derive(Clone, Debug)]
pub struct ChangeBatch {
    pub table: Arc<TableSchema>,
    /// The rows, with `table.arrow` as their schema.
    pub rows: RecordBatch,
    /// What each row does, one per row.
    pub ops: Vec<Op>,
    /// The position just before the first row of the batch.
    pub after: Position,
    /// The position of the last row of the batch: the checkpoint once the batch is durable.
    pub upto: Position,
    pub stats: BatchStats,
    /// Which piece of a source batch this is, when a bus split it by partition:
    /// `(partition, index)`. Sinks that name files after batches add it to the name.
    pub piece: Option<(i32, u32)>,
}

impl ChangeBatch {
    pub fn num_rows(&self) -> usize {
        self.rows.num_rows()
    }
}
