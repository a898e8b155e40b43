//! Connection pools, without a driver: the `pool` settings of a database, the rules that tie
//! them to the server's limits, what a pool reports for metrics, and why opening one fails.
//!
//! The settings follow the pools our users ran before (SQLAlchemy's): `size` connections stay
//! open while idle, up to `max_overflow` more are opened under load and closed once idle,
//! every connection is closed after `recycle_secs` so the server's `wait_timeout` never cuts
//! one first, `pre_ping` proves a connection before it is handed out, and `connect_timeout_secs`
//! bounds every wait for one.

use std::time::Duration;

use serde::Deserialize;

use crate::BoxError;

/// Connections kept open while idle; a pipeline uses one or two per database at a time.
pub const DEFAULT_POOL_SIZE: usize = 10;
/// Extra connections allowed under load (closed once idle): about twice the size.
pub const DEFAULT_MAX_OVERFLOW: usize = 20;
/// Seconds a connection lives before it is closed and replaced: the common `wait_timeout` of
/// managed servers (3600 s) is the first to cut idle sessions, so it is lowered below it.
pub const DEFAULT_RECYCLE_SECS: u64 = 3600;
/// Seconds to wait for a server to answer a new connection (or for a free one).
pub const DEFAULT_CONNECT_TIMEOUT_SECS: u64 = 10;
/// The share of the server's `max_connections` one pool may take at most, so that the
/// applications that share the server keep room.
pub const MAX_SHARE_OF_SERVER_CONNECTIONS: f64 = 0.8;

/// `ssl_mode` of a source or sink: whether sessions use TLS, and what they check.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SslMode {
    /// Plain TCP (or the URL's socket).
    #[default]
    Disabled,
    /// Encrypted; the server's certificate is not checked (protects against listening, not
    /// against a server in the middle).
    Required,
    /// Encrypted, the certificate signed by `ssl_ca` (or a public root) and issued for the
    /// URL's host.
    VerifyIdentity,
}

/// TLS to a database: `ssl_mode` and `ssl_ca` of a source or sink.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    pub mode: SslMode,
    /// PEM file of the certificate authority that signed the server's certificate.
    pub ca: Option<std::path::PathBuf>,
}

impl Tls {
    /// What is wrong with the settings, as `(key, message)` under the source or sink table.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        match &self.ca {
            Some(_) if self.mode == SslMode::Disabled => {
                problems.push(("ssl_ca", "is only used with ssl_mode = \"verify_identity\"".into()))
            }
            Some(path) if !path.is_file() => {
                problems.push(("ssl_ca", format!("{} is not a readable file", path.display())))
            }
            _ => {}
        }
        problems
    }
}

/// `pool = { ... }` of a source or sink.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    #[serde(default = "default_size")]
    pub size: usize,
    #[serde(default = "default_max_overflow")]
    pub max_overflow: usize,
    /// `None`: [`DEFAULT_RECYCLE_SECS`], or less when the server's `wait_timeout` is lower.
    #[serde(default)]
    pub recycle_secs: Option<u64>,
    #[serde(default = "default_pre_ping")]
    pub pre_ping: bool,
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            size: DEFAULT_POOL_SIZE,
            max_overflow: DEFAULT_MAX_OVERFLOW,
            recycle_secs: None,
            pre_ping: true,
            connect_timeout_secs: DEFAULT_CONNECT_TIMEOUT_SECS,
        }
    }
}

fn default_size() -> usize {
    DEFAULT_POOL_SIZE
}
fn default_max_overflow() -> usize {
    DEFAULT_MAX_OVERFLOW
}
fn default_pre_ping() -> bool {
    true
}
fn default_connect_timeout_secs() -> u64 {
    DEFAULT_CONNECT_TIMEOUT_SECS
}

impl PoolConfig {
    /// The most connections the pool ever holds open.
    pub fn max_connections(&self) -> usize {
        self.size + self.max_overflow
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    /// Problems the values alone show, as `(key under the pool table, message)`.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        if self.size == 0 {
            out.push(("size", "must be at least 1".to_owned()));
        }
        if !(1..=3600).contains(&self.connect_timeout_secs) {
            out.push(("connect_timeout_secs", "must be between 1 and 3600".to_owned()));
        }
        if self.size > 1000 {
            out.push(("size", "must be at most 1000".to_owned()));
        }
        if self.max_overflow > 1000 {
            out.push(("max_overflow", "must be at most 1000".to_owned()));
        }
        if self.recycle_secs.is_some_and(|r| r == 0 || r > 31_536_000) {
            out.push(("recycle_secs", "must be between 1 and 31536000".to_owned()));
        }
        out
    }

    /// The pool's settings against the server's: the recycle age to use, or what must change.
    /// `wait_timeout` is the server's idle limit for this session (s); `max_connections` its
    /// connection limit (0: none, as on TiDB).
    pub fn fit_to_server(&self, wait_timeout: u64, max_connections: u64) -> Result<Duration, (&'static str, String)> {
        let recycle = match self.recycle_secs {
            Some(r) if r >= wait_timeout => {
                return Err((
                    "recycle_secs",
                    format!(
                        "{r} must be below the server's wait_timeout ({wait_timeout} s), or the server closes \
                         idle connections before the pool recycles them"
                    ),
                ));
            }
            Some(r) => r,
            // Below the server's limit by a tenth, as a server with wait_timeout = 3600 needs.
            None => DEFAULT_RECYCLE_SECS.min(wait_timeout - wait_timeout / 10).max(1),
        };
        let most = self.max_connections() as f64;
        if max_connections > 0 && most > MAX_SHARE_OF_SERVER_CONNECTIONS * max_connections as f64 {
            return Err((
                "max_overflow",
                format!(
                    "size + max_overflow = {} is more than {:.0}% of the server's max_connections ({max_connections}): \
                     lower size or max_overflow",
                    self.max_connections(),
                    MAX_SHARE_OF_SERVER_CONNECTIONS * 100.0
                ),
            ));
        }
        Ok(Duration::from_secs(recycle))
    }
}

/// What a pool holds right now, for `highwater_pool_connections`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolUsage {
    /// Open and waiting in the pool.
    pub idle: usize,
    /// Checked out by the pipeline.
    pub in_use: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// Why a pool could not be opened or give a connection. `section` is `source` or `sink`: the
/// config table whose keys the message names.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("cannot connect to {url} ({section}.url)")]
    Connect {
        url: String,
        section: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("TLS with {url} failed: check {section}.ssl_mode and {section}.ssl_ca")]
    Tls {
        url: String,
        section: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("no answer from {url} within {secs} s ({section}.pool.connect_timeout_secs)")]
    ConnectTimeout { url: String, section: &'static str, secs: u64 },
    #[error(
        "no free connection to {url} within {secs} s: all {max} (size + max_overflow) are in use \
         ({section}.pool.max_overflow)"
    )]
    Exhausted { url: String, section: &'static str, secs: u64, max: usize },
    #[error("{url} refused the login: check the user and password in {section}.url")]
    Auth {
        url: String,
        section: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{section}.pool.{key}: {message}")]
    Limit { section: &'static str, key: &'static str, message: String },
}

impl PoolError {
    /// Whether trying again can help: the server may come back, connections may free up.
    pub fn is_retryable(&self) -> bool {
        matches!(self, PoolError::Connect { .. } | PoolError::ConnectTimeout { .. } | PoolError::Exhausted { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_recycle_stays_below_the_servers_wait_timeout() {
        let pool = PoolConfig::default();
        assert_eq!(pool.fit_to_server(28_800, 151), Ok(Duration::from_secs(3600)));
        // The field's servers cut idle sessions at 3600 s: recycle first.
        assert_eq!(pool.fit_to_server(3600, 151), Ok(Duration::from_secs(3240)));
        assert_eq!(pool.fit_to_server(1, 151), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn an_explicit_recycle_at_or_over_wait_timeout_names_the_key() {
        let pool = PoolConfig { recycle_secs: Some(3600), ..PoolConfig::default() };
        let (key, message) = pool.fit_to_server(3600, 151).expect_err("not below");
        assert_eq!(key, "recycle_secs");
        assert!(message.contains("wait_timeout (3600 s)"), "{message}");
        assert_eq!(pool.fit_to_server(3601, 151), Ok(Duration::from_secs(3600)));
    }

    #[test]
    fn a_pool_may_take_at_most_80_percent_of_max_connections() {
        let pool = PoolConfig { size: 10, max_overflow: 20, ..PoolConfig::default() };
        assert!(pool.fit_to_server(28_800, 38).is_ok(), "30 <= 30.4");
        let (key, message) = pool.fit_to_server(28_800, 37).expect_err("30 > 29.6");
        assert_eq!(key, "max_overflow");
        assert!(message.contains("size + max_overflow = 30") && message.contains("(37)"), "{message}");
        assert!(pool.fit_to_server(28_800, 0).is_ok(), "0: the server sets no limit");
    }

    #[test]
    fn zero_values_are_problems() {
        let pool = PoolConfig { size: 0, connect_timeout_secs: 0, recycle_secs: Some(0), ..PoolConfig::default() };
        let keys: Vec<_> = pool.problems().into_iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["size", "connect_timeout_secs", "recycle_secs"]);
    }
}
