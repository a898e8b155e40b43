//! The settings of a `[sink]` of `type = "parquet"`.

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;

/// The Parquet sink makes the files it wrote durable together (fsync, rename, checkpoint) once
/// they add up to this many MiB, and at each pass's end: a first copy made durable batch by
/// batch waited on the disk for about a sixth of its time (456 fsyncs for 1,000,000 rows). The
/// files wait in the page cache, not in the process; a crash re-reads at most this much.
pub const DEFAULT_SINK_COMMIT_MB: usize = 64;

/// Parquet files under `path`, one directory per table, Hive-partitioned by date.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParquetSinkConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    pub path: PathBuf,
    /// See [`DEFAULT_SINK_COMMIT_MB`].
    #[serde(default = "default_sink_commit_mb")]
    pub commit_mb: usize,
}

impl ParquetSinkConfig {
    /// Reports, under `at` (`sink`), every setting the types cannot check.
    pub fn validate(&self, at: &str, problem: &mut impl FnMut(&str, &str)) {
        if self.path.as_os_str().is_empty() {
            problem(&format!("{at}.path"), "must not be empty");
        }
        if !(1..=4096).contains(&self.commit_mb) {
            problem(&format!("{at}.commit_mb"), "must be between 1 and 4096");
        }
    }
}

fn default_sink_commit_mb() -> usize {
    DEFAULT_SINK_COMMIT_MB
}
