//! highwater-connectors: sources of change batches.
//!
//! - [`mysql`]: the incremental MySQL/MariaDB/TiDB source (`type = "mysql"`), made of
//!   - `connect`: pools and sessions (`time_zone = '+00:00'`, utf8mb4), login errors;
//!   - `discover`: columns and primary key from `information_schema`, checked against config;
//!   - `types`: the lossless MySQL -> Arrow type mapping;
//!   - `query`: the keyset-pagination statements (never OFFSET);
//!   - `decode`: wire values into Arrow arrays, zero dates counted;
//!   - `extract`: the `Source` implementation tying them together.
//! - [`sqlite`]: a SQLite database file (`type = "sqlite"`), each table by its cursor or
//!   copied whole, with `check` by `EXPLAIN QUERY PLAN` and an online backup.
//! - [`epoch`]: integer cursors counting Unix time, for both.

pub mod epoch;
pub mod mysql;
pub mod sqlite;
