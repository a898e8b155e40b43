//! The settings of a `[sink]` of `type = "mysql"`.

use std::path::PathBuf;

use highwater_pipeline::config::{DbUrl, check_pool, check_url};
use highwater_pipeline::pool::{PoolConfig, SslMode, Tls};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// Rows per multi-row INSERT of the MySQL sink: statements stay far below `max_allowed_packet`.
pub const DEFAULT_SINK_BATCH_ROWS: usize = 1_000;
/// MiB of rows (their size in memory) a bulk load of the MySQL sink takes before it commits;
/// a pass's end commits it sooner. It is also what the load adds to the process's memory (it
/// holds its batches until it commits). A 1,000,000-row copy of the bench's `orders` (3 rounds,
/// alternating, medians): a load per batch 8.81 s and 78 MB peak; 16 MiB 7.17 s, 93 MB; 32 MiB
/// 6.68 s, 110 MB; 64 MiB 7.50 s, 148 MB (`LOAD DATA INFILE` of the same rows: 6.51 s).
pub const DEFAULT_SINK_BULK_COMMIT_MB: usize = 32;

/// A MySQL-family database loaded with version-guarded upserts.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSinkConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    pub url: DbUrl,
    #[serde(default = "default_sink_batch_rows")]
    pub batch_rows: usize,
    /// See [`DEFAULT_SINK_BULK_COMMIT_MB`].
    #[serde(default = "default_sink_bulk_commit_mb")]
    pub bulk_commit_mb: usize,
    #[serde(default)]
    pub pool: PoolConfig,
    #[serde(default)]
    pub ssl_mode: SslMode,
    #[serde(default)]
    pub ssl_ca: Option<PathBuf>,
    /// Whether a first copy may load into a target table that already holds rows this
    /// pipeline did not write (it has no checkpoint for the table). `false`: refused, naming
    /// the table, as a migration checks that its target is empty. Unset: refused for a source
    /// that is being moved (a SQLite file), accepted for a MySQL source (a replica's target
    /// may hold newer rows, which the version guard keeps).
    #[serde(default)]
    pub accept_nonempty_target: Option<bool>,
    /// Whether the source's foreign keys are recreated in the target once the tables they
    /// join are copied (see `super::foreign`). Target tables are created without them.
    #[serde(default)]
    pub foreign_keys: bool,
}

impl MysqlSinkConfig {
    pub fn tls(&self) -> Tls {
        Tls { mode: self.ssl_mode, ca: self.ssl_ca.clone() }
    }

    /// Reports, under `at` (`sink`), every setting the types cannot check.
    pub fn validate(&self, at: &str, problem: &mut impl FnMut(&str, &str)) {
        let key = |name: &str| format!("{at}.{name}");
        check_url(&self.url, &key("url"), problem);
        if !(1..=100_000).contains(&self.batch_rows) {
            problem(&key("batch_rows"), "must be between 1 and 100000");
        }
        if !(1..=1024).contains(&self.bulk_commit_mb) {
            problem(&key("bulk_commit_mb"), "must be between 1 and 1024");
        }
        check_pool(&self.pool, &key("pool"), problem);
        for (name, message) in self.tls().problems() {
            problem(&key(name), &message);
        }
    }
}

fn default_sink_bulk_commit_mb() -> usize {
    DEFAULT_SINK_BULK_COMMIT_MB
}
fn default_sink_batch_rows() -> usize {
    DEFAULT_SINK_BATCH_ROWS
}
