//! One run at a time writes a pipeline's tables in a MySQL sink: a named lock on the sink's
//! server (`GET_LOCK`), held by a session of its own for the whole run. Runs of other config
//! files (another state directory, another machine) are refused as the file lock refuses runs
//! of one. The server releases the lock with the session, however the run ends.
//!
//! A session can be lost (the server restarted, `wait_timeout` passed while nothing was
//! written): before a write, at most every [`CHECK_EVERY`], the session is pinged and, if it
//! is gone, a new one takes the lock again, or the write fails if another run has it now.

use std::time::{Duration, Instant};

use highwater_mysql::Pool;
use highwater_pipeline::sink::SinkError;
use mysql_async::Conn;
use mysql_async::prelude::Queryable;

/// How often a write looks at the lock's session.
const CHECK_EVERY: Duration = Duration::from_secs(10);
/// `GET_LOCK` names are at most 64 characters.
const MAX_NAME: usize = 64;

/// The lock, held while this lives.
pub struct TargetLock {
    conn: Conn,
    name: String,
    target: String,
    checked: Instant,
}

impl TargetLock {
    /// Takes the lock of `pipeline` writing `database`, or says who holds it.
    pub async fn acquire(pool: &Pool, database: &str, pipeline: &str) -> Result<TargetLock, SinkError> {
        let name = lock_name(database, pipeline);
        let target = format!("database {database} of the sink for pipeline {pipeline}");
        let conn = take(pool, &name, &target).await?;
        Ok(TargetLock { conn, name, target, checked: Instant::now() })
    }

    /// Before a write: the lock is still this run's (see the module's doc).
    pub async fn hold(&mut self, pool: &Pool) -> Result<(), SinkError> {
        if self.checked.elapsed() < CHECK_EVERY {
            return Ok(());
        }
        if self.conn.ping().await.is_err() {
            tracing::warn!(lock = %self.name, "the session holding the sink's lock was lost: taking the lock again");
            self.conn = take(pool, &self.name, &self.target).await?;
        }
        self.checked = Instant::now();
        Ok(())
    }
}

/// A new session that holds `name`.
async fn take(pool: &Pool, name: &str, target: &str) -> Result<Conn, SinkError> {
    let mut conn = pool.connect_alone().await?;
    let error = |e: mysql_async::Error| SinkError::Database {
        what: format!("locking {target}"),
        retryable: highwater_mysql::is_retryable(&e),
        source: Box::new(e),
    };
    let got: Option<Option<i64>> = conn.exec_first("SELECT GET_LOCK(?, 0)", (name,)).await.map_err(error)?;
    if got.flatten() == Some(1) {
        return Ok(conn);
    }
    let holder: Option<Option<u64>> = conn.exec_first("SELECT IS_USED_LOCK(?)", (name,)).await.map_err(error)?;
    let holder = holder.flatten().map_or("unknown".to_owned(), |id| id.to_string());
    Err(SinkError::Locked { target: target.to_owned(), holder })
}

/// `highwater:<database>:<pipeline>`, or a stable hash of it where that is too long.
fn lock_name(database: &str, pipeline: &str) -> String {
    let name = format!("highwater:{database}:{pipeline}");
    if name.len() <= MAX_NAME {
        return name;
    }
    let hash =
        name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3));
    format!("highwater:{hash:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_servers_limit_and_stay_apart() {
        assert_eq!(lock_name("replica", "shop"), "highwater:replica:shop");
        let long = lock_name(&"d".repeat(64), "p");
        assert!(long.len() <= MAX_NAME && long.starts_with("highwater:"), "{long}");
        assert_ne!(long, lock_name(&"d".repeat(64), "q"));
        assert_eq!(long, lock_name(&"d".repeat(64), "p"), "stable");
    }
}
