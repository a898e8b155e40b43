//! Batches as bytes, for a bus between processes (Kafka). Driver-free and deterministic:
//!
//! - [`route`]: which partition a row goes to (a stable hash of its primary key), and the
//!   split of a batch into per-partition pieces, so every version of a row stays in order on
//!   one partition and a replay splits a batch the same way again.
//! - [`json`]: one Debezium-style JSON document per row (`op`, `before`, `after`, `source`,
//!   `ts_ms`), and the rows of a piece back into an Arrow batch.
//! - [`ipc`]: a piece as one Arrow IPC stream.

pub mod ipc;
pub mod json;
pub mod route;
