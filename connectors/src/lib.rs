//! highwater-connectors: sources of change batches.
//!
//! - [`mysql`]: the incremental MySQL/MariaDB/TiDB source (`type = "mysql"`), made of
//!   - `connect`: pools and sessions (`time_zone = '+00:00'`, utf8mb4), login errors;
//!   - `discover`: columns and primary key from `information_schema`, checked against config;
//!   - `types`: the lossless MySQL -> Arrow type mapping;
//!   - `query`: the keyset-pagination statements (never OFFSET);
//!   - `decode`: wire values into Arrow arrays, zero dates counted;
//!   - `extract`: the `Source` implementation tying them together.

pub mod mysql;
