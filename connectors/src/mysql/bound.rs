//! The upper bound of a pass: the source clock minus `lag_secs`, held below the start of the
//! oldest transaction that is still open and writing.
//!
//! A transaction stamps its rows when its statements run and commits later. A poller that
//! trusts the clock alone reads past those rows while they are invisible, moves its checkpoint
//! beyond them, and never sees them: the classic silent loss of `update_time` polling.
//!
//! InnoDB starts a transaction when its first statement first touches a row, but the statement
//! stamped its rows (`NOW()`) when it began: an `INSERT ... SELECT` that computes for a while,
//! or waits for a metadata lock, writes rows stamped before its transaction's `trx_started`
//! (2.5 s before it, seen with `SLEEP(2.5)` in the `SELECT`). `lag_secs` is already the time a
//! statement is granted between its start and its first row (a statement that has not touched
//! a row yet shows nowhere), so the bound is held `lag_secs` below the start of the oldest open
//! writer, whatever its age: rows up to there are all committed.
//!
//! The bound is read *before* the pass's snapshot is taken: a transaction that commits in
//! between is then either seen open (and holds the bound) or committed (and in the snapshot).
//!
//! What the server shows:
//! - MySQL and MariaDB: `information_schema.innodb_trx`, whose `trx_started` is in the server's
//!   system time zone and whole seconds (hence `CONVERT_TZ` and the microsecond below it);
//! - TiDB: `information_schema.cluster_tidb_trx`;
//! - without the PROCESS privilege neither is visible: the bound is the clock minus the lag,
//!   as it was, and `check` says so.
//!
//! Only transactions that changed or locked rows hold the bound, and never the source's own
//! session: a long read-only report does not stall replication. A statement that began before
//! the bound was read and has not yet touched its first row is covered by `lag_secs` alone.

use highwater_pipeline::cursor::DateTime;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};

use super::connect::query_error;
use super::decode;
use highwater_pipeline::source::SourceError;

/// How this server shows its open transactions to the source's login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OpenTransactions {
    /// `information_schema.innodb_trx` (MySQL, MariaDB).
    InnoDb,
    /// `information_schema.cluster_tidb_trx` (TiDB).
    Tidb,
    /// Not visible, and why (usually the PROCESS privilege is missing).
    Hidden(String),
}

/// A writing transaction that holds a pass's bound down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Holder {
    /// The server's id of the transaction's session (`SHOW PROCESSLIST`'s `Id`).
    pub session: u64,
    /// The transaction's own id: one session's transactions, one after the other, differ.
    pub transaction: u64,
    pub started: DateTime,
}

/// A pass's bound, and what it would have been on the clock alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bound {
    /// Read up to here (inclusive).
    pub upper: DateTime,
    /// `NOW(6) - lag_secs`.
    pub clock: DateTime,
    /// The oldest open writer, when it holds `upper` below `clock`.
    pub holder: Option<Holder>,
}

const INNODB_OLDEST: &str = "SELECT CONVERT_TZ(trx_started, 'SYSTEM', @@session.time_zone), trx_mysql_thread_id, \
     CAST(trx_id AS UNSIGNED) FROM information_schema.innodb_trx \
     WHERE trx_mysql_thread_id <> CONNECTION_ID() AND (trx_rows_modified > 0 OR trx_rows_locked > 0) \
     ORDER BY trx_started LIMIT 1";

const TIDB_OLDEST: &str = "SELECT START_TIME, SESSION_ID, ID FROM information_schema.cluster_tidb_trx \
     WHERE SESSION_ID <> CONNECTION_ID() ORDER BY START_TIME LIMIT 1";

impl OpenTransactions {
    /// Finds out which view this server has and whether the login may read it.
    pub async fn probe(conn: &mut Conn) -> Result<Self, SourceError> {
        let version: Option<String> =
            conn.query_first("SELECT VERSION()").await.map_err(|e| query_error("the server version", e))?;
        let tidb = version.is_some_and(|v| v.contains("TiDB"));
        let (view, sql) =
            if tidb { (OpenTransactions::Tidb, TIDB_OLDEST) } else { (OpenTransactions::InnoDb, INNODB_OLDEST) };
        match conn.query_drop(sql).await {
            Ok(()) => Ok(view),
            Err(mysql_async::Error::Server(e)) if is_denied(e.code) => Ok(OpenTransactions::Hidden(format!(
                "open transactions are not visible ({}); grant PROCESS to the source login, or only lag_secs \
                 protects rows of transactions that commit late",
                e.message
            ))),
            Err(e) => Err(query_error("the open transactions", e)),
        }
    }

    fn oldest_sql(&self) -> Option<&'static str> {
        match self {
            OpenTransactions::InnoDb => Some(INNODB_OLDEST),
            OpenTransactions::Tidb => Some(TIDB_OLDEST),
            OpenTransactions::Hidden(_) => None,
        }
    }

    /// Reads the bound from the server's clock and its open transactions. Call it before the
    /// snapshot that reads the rows.
    pub async fn bound(&self, conn: &mut Conn, lag_secs: u64) -> Result<Bound, SourceError> {
        let clock_sql = format!("SELECT NOW(6) - INTERVAL {lag_secs} SECOND");
        let clock: Option<Row> = conn.query_first(clock_sql).await.map_err(|e| query_error("the source clock", e))?;
        let clock = datetime(clock, "NOW(6)")?;
        let holder = match self.oldest_sql() {
            None => None,
            Some(sql) => {
                let row: Option<Row> =
                    conn.query_first(sql).await.map_err(|e| query_error("the open transactions", e))?;
                match row {
                    None => None,
                    Some(mut row) => {
                        let session = row.take::<Option<u64>, _>(1).flatten().unwrap_or_default();
                        let transaction = row.take::<Option<u64>, _>(2).flatten().unwrap_or_default();
                        let started = datetime(Some(row), "the start of the oldest open transaction")?;
                        Some(Holder { session, transaction, started })
                    }
                }
            }
        };
        Ok(hold(clock, holder, lag_secs))
    }
}

/// Whether a server error says the login may not read the view of open transactions: the
/// PROCESS privilege missing (1227), the table or the schema refused (1142, 1044), or no such
/// view on this server (1146, 1109). Only then does the source run without it; any other failure
/// (a killed query, a lock timeout, a server going away) fails the probe rather than leave the
/// source unprotected from transactions that commit late for as long as it runs.
fn is_denied(code: u16) -> bool {
    matches!(code, 1044 | 1109 | 1142 | 1146 | 1227)
}

/// The bound from the clock and the oldest writer: everything before the writer's start less
/// `lag_secs` (its `trx_started` is whole seconds, rounded down; its rows' cursors are at most
/// `lag_secs` before it). A writer younger than the lag lowers the bound by its age, rounded
/// up to the second: for the short transactions of a busy server, under a second. It is named
/// in the bound, and waited for, only once it is older than the lag: waiting for every short
/// transaction would stall each pass.
pub fn hold(clock: DateTime, holder: Option<Holder>, lag_secs: u64) -> Bound {
    let Some(h) = holder else { return Bound { upper: clock, clock, holder: None } };
    let margin = i64::try_from(lag_secs).unwrap_or(i64::MAX / 2).saturating_mul(1_000_000);
    let held = h.started.unix_micros().map(|us| DateTime::from_unix_micros(us.saturating_sub(margin) - 1));
    let upper = match held {
        Some(held) if held < clock => held,
        _ => clock,
    };
    let holder = (h.started <= clock).then_some(h);
    Bound { upper, clock, holder }
}

fn datetime(row: Option<Row>, what: &str) -> Result<DateTime, SourceError> {
    let value = row.and_then(|mut r| r.take::<Value, _>(0)).unwrap_or(Value::NULL);
    decode::datetime(&value).map_err(|reason| SourceError::Query {
        what: what.to_owned(),
        retryable: false,
        source: reason.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dt(s: &str) -> DateTime {
        s.parse().expect("datetime")
    }

    #[test]
    fn an_open_writer_holds_the_bound_below_its_start() {
        let clock = dt("2026-05-01 12:00:10");
        let writer = Holder { session: 7, transaction: 1, started: dt("2026-05-01 12:00:03") };
        let b = hold(clock, Some(writer), 0);
        assert_eq!(b.upper, dt("2026-05-01 12:00:02.999999"), "rows stamped at its start are not read");
        assert_eq!((b.clock, b.holder), (clock, Some(writer)));
        // Its first statement may have stamped rows up to lag_secs before its start.
        let b = hold(dt("2026-05-01 12:00:08"), Some(writer), 2);
        assert_eq!(b.upper, dt("2026-05-01 12:00:00.999999"));
    }

    #[test]
    fn only_a_refusal_hides_open_transactions_other_failures_are_errors() {
        // No PROCESS privilege (MySQL, MariaDB), the view refused, or no such view.
        assert!([1227, 1142, 1044, 1146, 1109].into_iter().all(is_denied));
        // Interrupted, killed, lock wait timeout, deadlock, server shutting down.
        assert!(![1317, 1927, 1205, 1213, 1053].into_iter().any(is_denied));
    }

    #[test]
    fn a_writer_younger_than_the_lag_holds_the_bound_but_is_not_waited_for() {
        // lag_secs = 2, NOW(6) 12:00:12.5: the clock alone gives 12:00:10.5. A writer that
        // started at 12:00:11 (its first statement may have stamped rows from 12:00:09 on).
        let clock = dt("2026-05-01 12:00:10.5");
        let young = Holder { session: 7, transaction: 1, started: dt("2026-05-01 12:00:11") };
        let b = hold(clock, Some(young), 2);
        assert_eq!(b, Bound { upper: dt("2026-05-01 12:00:08.999999"), clock, holder: None });
        assert_eq!(hold(clock, None, 2), Bound { upper: clock, clock, holder: None });
        // One that started after the clock was read holds nothing below it.
        let later = Holder { started: dt("2026-05-01 12:00:14"), ..young };
        assert_eq!(hold(clock, Some(later), 2), Bound { upper: clock, clock, holder: None });
    }
}
