//! The settings of a `[source]` of `type = "mysql"`, or of the Matomo preset of one
//! (`type = "matomo"`).

use serde::Deserialize;
use serde::de::IgnoredAny;

use std::path::PathBuf;

use highwater_pipeline::config::{
    DAY_SECS, DEFAULT_BATCH_ROWS, DEFAULT_LAG_SECS, DEFAULT_POLL_INTERVAL_SECS, DbUrl, HOUR_SECS, check_pool,
    check_url, within,
};
use highwater_pipeline::pool::{PoolConfig, SslMode, Tls};

pub use crate::epoch::EpochUnit;

/// A MySQL, MariaDB or TiDB database read incrementally by cursor columns.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    pub url: DbUrl,
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    #[serde(default = "default_lag_secs")]
    pub lag_secs: u64,
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    pub tables: Vec<TableConfig>,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub zero_dates: ZeroDates,
    /// The zone `DATETIME` and `DATE` cursor values are written in (the writers' session
    /// `time_zone`): a name the server knows (`Europe/Berlin`, `+08:00`, `SYSTEM`). Default:
    /// the server's global `time_zone`. `TIMESTAMP` cursors need none.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// How long the first read of a pass waits for a writing transaction that holds its bound
    /// down to commit, so that a `--once` run copies what such a transaction was about to
    /// commit. A transaction still open after the wait only delays its own rows (and those
    /// after it) to a later pass.
    #[serde(default = "default_open_transaction_wait_secs")]
    pub open_transaction_wait_secs: u64,
    #[serde(default)]
    pub ssl_mode: SslMode,
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
}

impl MysqlSourceConfig {
    pub fn tls(&self) -> Tls {
        Tls { mode: self.ssl_mode, ca: self.ssl_ca.clone() }
    }

    /// Reports, under `at` (`source`), every setting the types cannot check.
    pub fn validate(&self, at: &str, problem: &mut impl FnMut(&str, &str)) {
        let key = |name: &str| format!("{at}.{name}");
        check_url(&self.url, &key("url"), problem);
        within(problem, &key("batch_rows"), self.batch_rows as u64, 1, 1_000_000);
        within(problem, &key("lag_secs"), self.lag_secs, 0, DAY_SECS);
        within(problem, &key("poll_interval_secs"), self.poll_interval_secs, 1, DAY_SECS);
        within(problem, &key("open_transaction_wait_secs"), self.open_transaction_wait_secs, 0, HOUR_SECS);
        if self.time_zone.as_deref().is_some_and(|z| z.trim().is_empty() || z.len() > 64) {
            problem(&key("time_zone"), "must be a zone the server knows, such as \"+08:00\" or \"Asia/Shanghai\"");
        }
        check_pool(&self.pool, &key("pool"), problem);
        for (name, message) in self.tls().problems() {
            problem(&key(name), &message);
        }
        if self.tables.is_empty() {
            problem(&key("tables"), "lists no table");
        }
        for (i, t) in self.tables.iter().enumerate() {
            let key = |name: &str| format!("{at}.tables[{i}].{name}");
            if t.name.is_empty() {
                problem(&key("name"), "must not be empty");
            }
            if t.cursor.is_empty() {
                problem(&key("cursor"), "must not be empty");
            }
            within(problem, &key("reread_secs"), t.reread_secs, 0, 30 * DAY_SECS);
            if self.tables[..i].iter().any(|o| o.name == t.name) {
                problem(&key("name"), &format!("table {:?} is listed twice", t.name));
            }
        }
    }
}

/// The Matomo preset: Matomo's raw log tables, each by the column that tells when a row
/// changed, and `log_action` (a dictionary with no time column) by its increasing key.
pub const MATOMO_TABLES: [(&str, &str); 5] = [
    ("log_visit", "visit_last_action_time"),
    ("log_link_visit_action", "server_time"),
    ("log_conversion", "server_time"),
    ("log_conversion_item", "server_time"),
    ("log_action", "idaction"),
];

/// `type = "matomo"`: a Matomo database, read as a `mysql` source of [`MATOMO_TABLES`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatomoSourceConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    pub url: DbUrl,
    #[serde(default = "default_matomo_prefix")]
    pub table_prefix: String,
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    #[serde(default = "default_lag_secs")]
    pub lag_secs: u64,
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub zero_dates: ZeroDates,
    /// See [`MysqlSourceConfig::time_zone`].
    #[serde(default)]
    pub time_zone: Option<String>,
    #[serde(default = "default_open_transaction_wait_secs")]
    pub open_transaction_wait_secs: u64,
    /// Re-read this window behind each log table's checkpoint every pass: Matomo writes
    /// `time_spent` onto earlier actions and anonymises visits without moving their time.
    #[serde(default)]
    pub reread_secs: u64,
    #[serde(default)]
    pub ssl_mode: SslMode,
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
}

impl MatomoSourceConfig {
    /// The plain `mysql` source this preset stands for.
    pub fn into_mysql(self) -> MysqlSourceConfig {
        let tables = MATOMO_TABLES
            .iter()
            .map(|(name, cursor)| TableConfig {
                name: format!("{}{name}", self.table_prefix),
                cursor: (*cursor).to_owned(),
                soft_delete: None,
                cursor_unit: None,
                // log_action rows never change.
                reread_secs: if *name == "log_action" { 0 } else { self.reread_secs },
            })
            .collect();
        MysqlSourceConfig {
            _type: IgnoredAny,
            url: self.url,
            batch_rows: self.batch_rows,
            lag_secs: self.lag_secs,
            poll_interval_secs: self.poll_interval_secs,
            tables,
            pool: self.pool,
            zero_dates: self.zero_dates,
            time_zone: self.time_zone,
            open_transaction_wait_secs: self.open_transaction_wait_secs,
            ssl_mode: self.ssl_mode,
            ssl_ca: self.ssl_ca,
        }
    }
}

fn default_matomo_prefix() -> String {
    "matomo_".to_owned()
}

/// One table to replicate and the column that tells when a row changed.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub name: String,
    pub cursor: String,
    /// For an integer cursor that holds Unix time (`updated INT UNSIGNED` set to
    /// `UNIX_TIMESTAMP()`): the unit of its values. Such a cursor is read as the UTC instant it
    /// counts, with a bound below the unit still filling, as a `DATETIME` cursor is.
    #[serde(default)]
    pub cursor_unit: Option<EpochUnit>,
    /// A column that, once set (not NULL), marks the row deleted: it reaches the sink as a
    /// delete (the MySQL sink removes it, Parquet records `_hw_op = "d"`).
    #[serde(default)]
    pub soft_delete: Option<String>,
    /// Re-read the rows whose cursor is within this many seconds before the checkpoint on
    /// every pass, for rows that change without their cursor moving.
    #[serde(default)]
    pub reread_secs: u64,
}

/// What to do with a zero or partial-zero date (`0000-00-00`), which has no Arrow value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ZeroDates {
    /// Make it NULL and count it.
    #[default]
    Null,
    /// Stop with an error naming the table and column.
    Error,
}

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}
fn default_lag_secs() -> u64 {
    DEFAULT_LAG_SECS
}
fn default_poll_interval_secs() -> u64 {
    DEFAULT_POLL_INTERVAL_SECS
}
fn default_open_transaction_wait_secs() -> u64 {
    DEFAULT_OPEN_TRANSACTION_WAIT_SECS
}

/// Seconds a pass waits for a writing transaction that holds its bound down.
pub const DEFAULT_OPEN_TRANSACTION_WAIT_SECS: u64 = 5;
