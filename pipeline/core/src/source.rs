//! The source contract: pull-based, the caller owns the position.

use std::future::Future;
use std::sync::Arc;

use crate::batch::ChangeBatch;
use crate::cursor::{DateTime, Position};
use crate::pool::PoolError;
use crate::schema::{TableId, TableSchema};

pub use crate::BoxError;

/// What the sink needs of the batches of a first copy, besides their order. The sink says it
/// (through the binary, which builds both); the source never asks which sink it feeds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BatchShape {
    /// Any batch: the sink groups the rows itself.
    #[default]
    Any,
    /// Batches whose rows fall on few cursor dates: the sink writes a file per date and batch.
    FewDates,
}

/// A source of change batches.
///
/// The runner asks for "the next rows after this position"; the source keeps no hidden
/// progress of its own, so a restart or a replay is the ordinary path. Rows come in the total
/// order `(cursor, key...)`, NULL cursors first (see [`crate::cursor`]).
pub trait Source: Send + 'static {
    /// The tables this source reads, discovered and checked when it was built.
    fn tables(&self) -> &[Arc<TableSchema>];

    /// Takes the sink's [`BatchShape`] before the first read. A hint: a source that can read a
    /// first copy in another order to fit it does; the others read as they always do.
    fn shape_batches(&mut self, _shape: BatchShape) {}

    /// The source's estimate of the rows of `tables()[table]`, for the progress of a first copy.
    fn estimated_rows(&self, _table: usize) -> Option<u64> {
        None
    }

    /// How far behind its checkpoint each pass over `tables()[table]` starts again
    /// (`reread_secs`); the source then sends only rows that are new or changed.
    fn reread(&self, _table: usize) -> Option<std::time::Duration> {
        None
    }

    /// The identity of the server behind the source (`@@server_uuid`), when it has one: a
    /// change means another server answers at the same address.
    fn server_id(&mut self) -> impl Future<Output = Result<Option<String>, SourceError>> + Send {
        async { Ok(None) }
    }

    /// The highest cursor value `tables()[table]` holds now (`None`: no row has one). Lower
    /// than a checkpoint's cursor means the source went back in time: restored from a backup.
    fn highest_cursor(&mut self, _table: usize) -> impl Future<Output = Result<Option<DateTime>, SourceError>> + Send {
        async { Ok(None) }
    }

    /// Called before each pass over `tables()[table]`: looks at the table's columns again.
    /// `Some`: columns were added and reads carry them from now on (the returned schema);
    /// a column dropped, renamed or retyped is [`SourceError::SchemaChanged`].
    fn begin_pass(
        &mut self,
        _table: usize,
    ) -> impl Future<Output = Result<Option<Arc<TableSchema>>, SourceError>> + Send {
        async { Ok(None) }
    }

    /// Up to `max_rows` rows of `tables()[table]` strictly after `after`, with cursor values up
    /// to the pass's upper bound. The first read of a pass (`bound.0 == None`) takes the bound
    /// from the source's clock in the same snapshot as its rows and stores it in `bound`.
    /// `Ok(None)`: the table is caught up to the bound.
    fn next_batch(
        &mut self,
        table: usize,
        after: &Position,
        bound: &mut PassBound,
        max_rows: usize,
    ) -> impl Future<Output = Result<Option<ChangeBatch>, SourceError>> + Send;
}

/// The upper bound of the cursor for one pass over one table, once the pass has taken it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PassBound(pub Option<DateTime>);

/// Why a source failed. The message names the table, column or config key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The database could not be reached, refused the login, or its pool cannot serve.
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("table {table} does not exist: check {key}")]
    MissingTable { table: TableId, key: String },
    #[error("table {table} has no column {column:?}: check {key}")]
    MissingColumn { table: TableId, column: String, key: String },
    #[error(
        "table {table} column {column} ({key}) is NOT NULL: a soft-delete column marks a row deleted once it is \
         set, so every row would be a delete. Name a column that is NULL while the row lives (deleted_at)"
    )]
    SoftDeleteNotNull { table: TableId, column: String, key: String },
    #[error("table {table} has no primary key: keyset pagination needs one (add a PRIMARY KEY)")]
    NoPrimaryKey { table: TableId },
    #[error("table {table} column {column}: type {column_type} is not supported yet")]
    UnsupportedType { table: TableId, column: String, column_type: String },
    #[error(
        "table {table} cursor column {column} is {column_type}: a cursor must be DATETIME, \
         TIMESTAMP or DATE, an integer holding Unix time with its cursor_unit set (\"seconds\", \
         \"milliseconds\" or \"microseconds\"), or the table's single integer primary key (check {key})"
    )]
    UnsupportedCursor { table: TableId, column: String, column_type: String, key: String },
    #[error(
        "table {table} cursor column {column_and_type}, but {key} is set: cursor_unit is for an integer \
         cursor holding Unix time. Remove it for a date or time cursor"
    )]
    CursorUnitNotInteger { table: TableId, column_and_type: String, key: String },
    #[error(
        "the time zone {zone:?} ({from}) is not known to the server: load its zone tables \
         (mariadb-tzinfo-to-sql /usr/share/zoneinfo | mariadb mysql), or set source.time_zone to the offset \
         the cursor values are written in, such as \"+08:00\""
    )]
    UnknownTimeZone { zone: String, from: String },
    #[error("table {table} column {column}: {reason}")]
    Decode { table: TableId, column: String, reason: String },
    #[error(
        "table {table} changed: {change}. highwater stopped reading it (other tables go on). Make the sink's \
         copy match (for a MySQL sink, ALTER its table the same way; Parquet needs nothing), then run \
         highwater with --accept-schema-change: it goes on from the checkpoint with the table as it is now"
    )]
    SchemaChanged { table: TableId, change: String },
    #[error(
        "table {table}: {what}. The checkpoint may point past rows this source never had, or skip rows it has \
         now: nothing was read. If this is the source you mean, run with --accept-source-reset to read the \
         table again from the start (the sink keeps what it has; upserts make it current)"
    )]
    SourceReset { table: TableId, what: String },
    #[error("reading {what} failed")]
    Query {
        what: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

impl SourceError {
    /// The table the error is about, when it is about one.
    pub fn table(&self) -> Option<&TableId> {
        match self {
            SourceError::MissingTable { table, .. }
            | SourceError::MissingColumn { table, .. }
            | SourceError::SoftDeleteNotNull { table, .. }
            | SourceError::NoPrimaryKey { table }
            | SourceError::UnsupportedType { table, .. }
            | SourceError::UnsupportedCursor { table, .. }
            | SourceError::CursorUnitNotInteger { table, .. }
            | SourceError::Decode { table, .. }
            | SourceError::SchemaChanged { table, .. }
            | SourceError::SourceReset { table, .. } => Some(table),
            SourceError::Pool(_) | SourceError::Query { .. } | SourceError::UnknownTimeZone { .. } => None,
        }
    }

    /// Whether trying again can help (a dropped connection), as opposed to an operator having
    /// to act (a missing table, a wrong password).
    pub fn is_retryable(&self) -> bool {
        match self {
            SourceError::Pool(e) => e.is_retryable(),
            SourceError::Query { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
