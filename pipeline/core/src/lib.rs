//! highwater-pipeline: the core of the replication pipeline. It knows no database driver.
//!
//! - [`cursor`]: where a table's extraction stands (`Position`) and the total order rows are
//!   read in, `(cursor column, primary key...)`.
//! - [`schema`]: a source table as the pipeline sees it (columns, Arrow types, key, cursor).
//! - [`batch`]: `ChangeBatch`, the unit that flows: Arrow rows plus the cursor range they cover.
//! - [`source`] and [`sink`]: the two contracts connectors and sinks implement.
//! - [`checkpoint`]: the `CheckpointStore` contract and the file store used by sinks that have
//!   no database of their own.
//! - [`bus`]: the bounded in-process channel between extraction and loading.
//! - [`runner`]: the loop that asks, publishes, writes and advances checkpoints, once or forever.
//! - [`config`]: the tools every component's settings use (errors with file:line:key, `${ENV}`,
//!   bounds, database URLs) and the runner's own `[pipeline]` and `[metrics]`.
//! - [`metrics`]: the Prometheus metrics, names and labels as constants.
//! - [`pool`]: connection pool settings, their fit to the server's limits, and pool errors.
//! - [`progress`]: rows done, rows/s and ETA of long passes, on a terminal or in the log.
//! - [`retry`]: backing off and trying again after failures that can pass.
//! - [`source_state`]: what earlier runs saw of the source (server identity, columns).
//! - [`status`]: what runs leave for `highwater status`: the last run and each table's last error.
//! - [`http`]: `/metrics`, `/health` and `/ready` for Prometheus and orchestrators.
//! - [`lock`]: one run per pipeline: an exclusive lock on `state_dir/<pipeline>.lock`.
//! - [`durable`]: small files replaced atomically and durably (checkpoints, status).
//! - [`ident`]: quoting of SQL identifiers, shared by every statement the pipeline writes.
//! - [`civil`]: calendar arithmetic for dates that Arrow and Parquet store as day/us counts.

/// A boxed driver error kept as the cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

pub mod batch;
pub mod bus;
pub mod checkpoint;
pub mod civil;
pub mod config;
pub mod cursor;
pub mod durable;
pub mod http;
pub mod ident;
pub mod lock;
pub mod metrics;
pub mod pool;
pub mod progress;
pub mod retry;
pub mod runner;
pub mod schema;
pub mod sink;
pub mod source;
pub mod source_state;
pub mod status;
