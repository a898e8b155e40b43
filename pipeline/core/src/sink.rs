//! The sink contract.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

use crate::batch::ChangeBatch;
use crate::pool::PoolError;
use crate::schema::{TableId, TableSchema};
use crate::source::BoxError;

/// Whether a written batch is safe yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// This batch and every earlier one survive a crash: the checkpoint may advance.
    Durable,
    /// Taken, not yet safe: the checkpoint waits for a later `Durable` or for `flush`.
    Buffered,
}

/// A destination of change batches.
///
/// A sink may see a batch twice (after a crash, the runner replays from the last checkpoint)
/// and must be idempotent: writing a batch again leaves the same result. It is called from one
/// task at a time, batches of a table in read order. A write is durable when it returns
/// [`Durability::Durable`]; `flush` makes everything durable.
pub trait Sink: Send + 'static {
    /// Short name for logs: `parquet`, `mysql`.
    fn name(&self) -> &'static str;

    /// Whether a `Durable` write already committed the batch's checkpoint (`batch.upto`) in
    /// the same transaction as its rows. Then the runner writes no checkpoint of its own.
    fn commits_checkpoints(&self) -> bool;

    /// Makes the targets ready (creates missing tables, removes half-written files).
    fn prepare(&mut self, tables: &[Arc<TableSchema>]) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Before loading from `checkpoint` on: removes what a crash may have left of the batch
    /// after it (written, its checkpoint not committed), so that the replay, which may cover
    /// other rows, does not leave a second copy. Sinks that commit checkpoints with their
    /// rows have nothing to do.
    fn discard_after(
        &mut self,
        _table: &TableSchema,
        _checkpoint: &crate::cursor::Position,
    ) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    fn write(&mut self, batch: &ChangeBatch) -> impl Future<Output = Result<Durability, SinkError>> + Send;

    fn flush(&mut self) -> impl Future<Output = Result<(), SinkError>> + Send;

    /// Every change of `table` up to a pass's bound is durable in the sink (called after every
    /// pass; after the first, the first copy is whole there). Sinks that build something over
    /// whole tables (constraints) do it here.
    fn caught_up(&mut self, _table: &TableId) -> impl Future<Output = Result<(), SinkError>> + Send {
        async { Ok(()) }
    }

    /// Called once, at the end, after the last flush.
    fn shutdown(self) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// Why a sink failed. The message names the table, path or config key.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The database could not be reached, refused the login, or its pool cannot serve.
    #[error(transparent)]
    Pool(#[from] PoolError),
    #[error("writing {path} failed")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("table {table}: {reason}")]
    Data { table: TableId, reason: String },
    #[error(
        "another highwater run is writing {target} (the sink server's connection {holder} holds its lock): \
         wait for it to end, or stop it"
    )]
    Locked { target: String, holder: String },
    #[error("{what} failed")]
    Database {
        what: String,
        retryable: bool,
        #[source]
        source: BoxError,
    },
}

impl SinkError {
    /// Whether trying again can help.
    pub fn is_retryable(&self) -> bool {
        match self {
            SinkError::Pool(e) => e.is_retryable(),
            SinkError::Database { retryable, .. } => *retryable,
            _ => false,
        }
    }
}
