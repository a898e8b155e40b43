//! highwater-sinks: where change batches land.
//!
//! - [`parquet`]: Parquet files, Hive-partitioned by the date of the cursor, written to a
//!   temporary name, fsynced and renamed; names derive from the cursor range, so a replay
//!   rewrites the same file instead of adding a duplicate.
//! - [`mysql`]: a MySQL-family database, made of
//!   - `ddl`: target tables created from the source schema (no foreign keys, TiDB-safe);
//!   - `literal`: Arrow values back into exact SQL literals;
//!   - `upsert`: version-guarded multi-row `INSERT ... ON DUPLICATE KEY UPDATE` statements;
//!   - `sink`: the `Sink`, committing each batch and its checkpoint in one transaction, and
//!     the `CheckpointStore` that reads those checkpoints back.

pub mod mysql;
pub mod parquet;
