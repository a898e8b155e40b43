//! Pools and sessions for the source database.
//!
//! Every connection of the pool starts with `SET NAMES utf8mb4` (4-byte text arrives intact)
//! and `time_zone = '+00:00'` (TIMESTAMP values and the upper bound do not shift with DST).

use std::time::Duration;

use highwater_pipeline::config::{DbUrl, PoolConfig};
use highwater_pipeline::source::SourceError;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolConstraints, PoolOpts};

/// Statements every new connection runs.
const SESSION_INIT: [&str; 2] = ["SET NAMES utf8mb4", "SET time_zone = '+00:00'"];

/// MySQL error codes that mean "the login was refused".
const ACCESS_DENIED: [u16; 3] = [1044, 1045, 1698];

/// Opens a pool and proves it by taking one connection within the connect timeout.
pub async fn open(url: &DbUrl, pool: &PoolConfig, key: &'static str) -> Result<(Pool, Conn), SourceError> {
    let shown = url.to_string();
    let opts = Opts::from_url(url.expose()).map_err(|e| SourceError::Connect {
        url: shown.clone(),
        key,
        source: Box::new(e),
    })?;
    let constraints = PoolConstraints::new(0, pool.size.max(1)).unwrap_or_default();
    let opts = OptsBuilder::from_opts(opts)
        .init(SESSION_INIT.to_vec())
        .pool_opts(PoolOpts::default().with_constraints(constraints));
    let pool_handle = Pool::new(opts);
    let secs = pool.connect_timeout_secs;
    match tokio::time::timeout(Duration::from_secs(secs), pool_handle.get_conn()).await {
        Ok(Ok(conn)) => Ok((pool_handle, conn)),
        Ok(Err(e)) => {
            // The pool holds no connection; disconnecting only releases its background task.
            let _ = pool_handle.disconnect().await;
            Err(connect_error(e, shown, key))
        }
        Err(_) => Err(SourceError::ConnectTimeout { url: shown, key, secs }),
    }
}

fn connect_error(e: mysql_async::Error, url: String, key: &'static str) -> SourceError {
    match &e {
        mysql_async::Error::Server(s) if ACCESS_DENIED.contains(&s.code) => {
            SourceError::Auth { url, key, source: Box::new(e) }
        }
        _ => SourceError::Connect { url, key, source: Box::new(e) },
    }
}

/// Whether a failed statement may succeed when tried again: a lost connection, a lock wait
/// timeout or a deadlock.
pub fn is_retryable(e: &mysql_async::Error) -> bool {
    match e {
        mysql_async::Error::Io(_) => true,
        mysql_async::Error::Driver(_) => true,
        mysql_async::Error::Server(s) => matches!(s.code, 1205 | 1213 | 2006 | 2013),
        _ => false,
    }
}

/// Wraps a statement's failure, naming what was being read.
pub fn query_error(what: impl Into<String>, e: mysql_async::Error) -> SourceError {
    SourceError::Query { what: what.into(), retryable: is_retryable(&e), source: Box::new(e) }
}
