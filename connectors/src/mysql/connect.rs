//! Sessions of the source database.
//!
//! Every session runs `SET NAMES utf8mb4` (4-byte text arrives intact) and
//! `time_zone = '+00:00'` (TIMESTAMP values and the upper bound do not shift with DST), on
//! every new connection and after every reset of a pooled one.

use super::config::MysqlSourceConfig;
use highwater_mysql::Pool;
use highwater_pipeline::metrics::Metrics;
use highwater_pipeline::source::SourceError;

/// Statements every session of the source runs.
const SESSION_SETUP: [&str; 2] = ["SET NAMES utf8mb4", "SET time_zone = '+00:00'"];

/// The config table of the source, for messages and the pool's metric label.
const SECTION: &str = "source";

/// Opens the source's pool, proving the server and the login.
pub async fn open(config: &MysqlSourceConfig, metrics: Option<&Metrics>) -> Result<Pool, SourceError> {
    Ok(Pool::open_tls(&config.url, &config.pool, &config.tls(), SECTION, &SESSION_SETUP, metrics).await?)
}

/// Wraps a statement's failure, naming what was being read.
pub fn query_error(what: impl Into<String>, e: mysql_async::Error) -> SourceError {
    SourceError::Query { what: what.into(), retryable: highwater_mysql::is_retryable(&e), source: Box::new(e) }
}
