//! The settings of a `[bus]` of `type = "kafka"`: Kafka topics, so that extraction and loading
//! can run in different processes (`--role extract`, `--role load`) and several sink groups can
//! read the same changes.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// Partitions of each topic the extractor creates: loaders of one group share them.
pub const DEFAULT_PARTITIONS: i32 = 3;
/// Copies of each partition the extractor asks for; production clusters want 3.
pub const DEFAULT_REPLICATION_FACTOR: i32 = 1;
/// The largest message produced: Kafka's default `message.max.bytes` (about 1 MB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 1_000_000;
/// Seconds a loader may be silent before its group gives its partitions to another loader.
pub const DEFAULT_SESSION_TIMEOUT_SECS: u64 = 10;
/// Seconds a `--once` loader waits, with nothing moving in its group, for partitions it cannot
/// confirm loaded before it fails the run.
pub const DEFAULT_ONCE_STUCK_SECS: u64 = 120;

/// How message values are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// One message per row, a Debezium-style JSON envelope any consumer can read.
    #[default]
    Json,
    /// One message per batch (per partition), Arrow IPC: highwater to highwater, fastest.
    Arrow,
}

/// `type = "kafka"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaBusConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    /// `host:port[,host:port...]`.
    pub brokers: String,
    /// Topics are `<prefix><source database>.<table>`.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    #[serde(default)]
    pub encoding: Encoding,
    /// The consumer group of this pipeline's loaders; another group gets the same changes.
    pub group: String,
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    #[serde(default = "default_session_timeout_secs")]
    pub session_timeout_secs: u64,
    /// `--once`: how long a loader waits, with no message for it and no offset of its group
    /// advancing, for a partition it cannot confirm loaded to its end, before it fails.
    #[serde(default = "default_once_stuck_secs")]
    pub once_stuck_secs: u64,
}

impl KafkaBusConfig {
    /// Problems the values alone show, as `(key under [bus], message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.brokers.trim().is_empty() {
            out.push(("brokers", "must name at least one host:port".to_owned()));
        }
        if self.group.trim().is_empty() {
            out.push(("group", "must not be empty".to_owned()));
        }
        let topic_chars = |s: &str| s.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        if !topic_chars(&self.topic_prefix) {
            out.push(("topic_prefix", "may hold only letters, digits, '.', '_' and '-'".to_owned()));
        }
        if !(1..=10_000).contains(&self.partitions) {
            out.push(("partitions", "must be between 1 and 10000".to_owned()));
        }
        if !(1..=1000).contains(&self.replication_factor) {
            out.push(("replication_factor", "must be between 1 and 1000".to_owned()));
        }
        if !(1024..=1 << 30).contains(&self.max_message_bytes) {
            out.push(("max_message_bytes", "must be between 1024 and 1073741824".to_owned()));
        }
        if !(1..=3600).contains(&self.session_timeout_secs) {
            out.push(("session_timeout_secs", "must be between 1 and 3600".to_owned()));
        }
        if !(1..=86_400).contains(&self.once_stuck_secs) {
            out.push(("once_stuck_secs", "must be between 1 and 86400".to_owned()));
        }
        out
    }
}

fn default_topic_prefix() -> String {
    "highwater.".to_owned()
}
fn default_partitions() -> i32 {
    DEFAULT_PARTITIONS
}
fn default_replication_factor() -> i32 {
    DEFAULT_REPLICATION_FACTOR
}
fn default_max_message_bytes() -> usize {
    DEFAULT_MAX_MESSAGE_BYTES
}
fn default_session_timeout_secs() -> u64 {
    DEFAULT_SESSION_TIMEOUT_SECS
}
fn default_once_stuck_secs() -> u64 {
    DEFAULT_ONCE_STUCK_SECS
}
