//! The tools every component's settings use: errors that name file, line and key,
//! `${ENV}` interpolation, reading one section as its concrete type, bounds, and database URLs
//! (`DbUrl`: printed redacted, never `Serialize`). The file itself, one source, one sink and a
//! bus chosen by `type`, is the binary's (`src/config.rs`); the runner's own sections
//! (`[pipeline]`, `[metrics]`) are here.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;

use crate::pool::PoolConfig;

mod env;
pub use env::interpolate;

/// Rows per source read: big enough to amortise a round trip, small enough to bound memory.
pub const DEFAULT_BATCH_ROWS: usize = 10_000;
/// Seconds behind the source clock a pass stops, for application clocks and short commits.
pub const DEFAULT_LAG_SECS: u64 = 2;
/// Seconds between passes of a daemon.
pub const DEFAULT_POLL_INTERVAL_SECS: u64 = 5;
/// Batches in flight between extraction and loading; with `batch_rows` it bounds memory.
pub const DEFAULT_BUS_CAPACITY: usize = 4;
/// Seconds a failing step is retried before the run fails: a database restart fits in it.
pub const DEFAULT_RETRY_FOR_SECS: u64 = 300;

/// Where daemons serve `/metrics`, `/health` and `/ready` when the file says nothing: loopback.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// `[metrics]`: serve `/metrics`, `/health` and `/ready` (in `--once` runs too).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port`; loopback unless you mean otherwise.
    pub listen: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Names the pipeline in checkpoints; letters, digits, `_`, `-` and `.`.
    pub name: String,
    /// Where sinks without a database keep their checkpoints.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default = "default_bus_capacity")]
    pub bus_capacity: usize,
    /// How long a step that failed for a passing reason (the database restarting, a dropped
    /// connection, a deadlock) is retried, backing off, before the run fails. 0: never retry.
    #[serde(default = "default_retry_for_secs")]
    pub retry_for_secs: u64,
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("./state")
}
fn default_retry_for_secs() -> u64 {
    DEFAULT_RETRY_FOR_SECS
}
fn default_bus_capacity() -> usize {
    DEFAULT_BUS_CAPACITY
}

/// A database URL, `mysql://user:password@host:port/database`. It holds a password, so it
/// prints with the password replaced by `***` and cannot be serialized.
#[derive(Clone, Deserialize)]
#[serde(from = "String")]
pub struct DbUrl(SecretString);

impl DbUrl {
    pub fn new(url: impl Into<String>) -> Self {
        DbUrl(SecretString::from(url.into()))
    }

    /// The URL with its password, for the driver only.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The database named in the URL's path, if any.
    pub fn database(&self) -> Option<&str> {
        let rest = self.expose().strip_prefix("mysql://")?;
        // After the user part, which ends at the last '@' (see `redact_url`).
        let head = &rest[..rest.find('?').unwrap_or(rest.len())];
        let rest = &rest[head.rfind('@').map_or(0, |at| at + 1)..];
        let (_, path) = rest.split_once('/')?;
        let db = path.split(['?', '#']).next().unwrap_or_default();
        (!db.is_empty()).then_some(db)
    }
}

impl From<String> for DbUrl {
    fn from(s: String) -> Self {
        DbUrl::new(s)
    }
}

impl fmt::Display for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(self.expose()))
    }
}

impl fmt::Debug for DbUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DbUrl({self})")
    }
}

/// `scheme://user:secret@host/db` becomes `scheme://user:***@host/db`. The user part ends at
/// the last `@` before any `?`: a password may hold `/`, `@` or `:` unencoded, and none of it
/// is shown.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let head = &rest[..rest.find('?').unwrap_or(rest.len())];
    match head.rfind('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split([':', '/']).next().unwrap_or_default();
            let hidden = if userinfo.len() > user.len() { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

/// A config file that cannot be used. Every variant names where: file, line, key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}: environment variable {var} is not set (used as ${{{var}}})")]
    MissingEnv { origin: String, line: usize, var: String },
    #[error("{origin}:{line}: {problem}")]
    Env { origin: String, line: usize, problem: String },
    #[error("{origin}:{line}:{column}: {key}: {message}")]
    Parse { origin: String, line: usize, column: usize, key: String, message: String },
    #[error("{origin}: invalid config:\n  {}", problems.join("\n  "))]
    Invalid { origin: String, problems: Vec<String> },
}

/// The largest `pipeline.bus_capacity`: batches in flight between extract and load.
pub const MAX_BUS_CAPACITY: u64 = 100_000;
pub const HOUR_SECS: u64 = 3_600;
pub const DAY_SECS: u64 = 86_400;
pub const WEEK_SECS: u64 = 7 * DAY_SECS;

/// Reports `key` unless `value` is within `lo..=hi`.
pub fn within(problem: &mut impl FnMut(&str, &str), key: &str, value: u64, lo: u64, hi: u64) {
    if !(lo..=hi).contains(&value) {
        problem(key, &format!("must be between {lo} and {hi}"));
    }
}

/// Whether two URLs name the same database on the same server (user and options aside).
pub fn same_database(a: &DbUrl, b: &DbUrl) -> bool {
    let place = |u: &DbUrl| -> Option<(String, String)> {
        let rest = u.expose().split_once("://")?.1;
        let rest = &rest[..rest.find('?').unwrap_or(rest.len())];
        let rest = &rest[rest.rfind('@').map_or(0, |at| at + 1)..];
        let (host, db) = rest.split_once('/')?;
        let host = host.to_ascii_lowercase().replace("localhost", "127.0.0.1");
        let host = if host.contains(':') { host } else { format!("{host}:3306") };
        Some((host, db.to_owned()))
    };
    place(a).is_some() && place(a) == place(b)
}

pub fn check_url(url: &DbUrl, key: &str, problem: &mut impl FnMut(&str, &str)) {
    let Some(rest) = url.expose().strip_prefix("mysql://") else {
        problem(key, "must start with mysql:// (mysql://user:password@host:port/database)");
        return;
    };
    let head = &rest[..rest.find('?').unwrap_or(rest.len())];
    let at = head.rfind('@');
    if at.is_some_and(|at| head[..at].contains(['/', '@', '?', '#'])) {
        problem(key, "holds '/', '@', '?' or '#' in its user or password: write them as %2F, %40, %3F, %23");
        return;
    }
    let host = &head[at.map_or(0, |at| at + 1)..];
    let host = &host[..host.find('/').unwrap_or(host.len())];
    if let Some((_, port)) = host.rsplit_once(':').filter(|_| !host.ends_with(']'))
        && port.parse::<u16>().map_or(true, |p| p == 0)
    {
        problem(key, &format!("has port {port:?}: a port is a number from 1 to 65535"));
    } else if url.database().is_none() {
        problem(key, "names no database (mysql://user:password@host:port/database)");
    }
}

pub fn check_pool(pool: &PoolConfig, key: &str, problem: &mut impl FnMut(&str, &str)) {
    for (name, message) in pool.problems() {
        problem(&format!("{key}.{name}"), &message);
    }
}

pub fn deserialize<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| parse_error(text, origin, "", &e))?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let key = e.path().to_string();
        parse_error(text, origin, &key, e.inner())
    })
}

pub fn unknown_kind(
    text: &str,
    origin: &str,
    key: &str,
    kind: &str,
    at: &Spanned<String>,
    known: &[&str],
) -> ConfigError {
    let (line, column) = line_column(text, at.span().start);
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        column,
        key: key.to_owned(),
        message: format!("unknown type {kind:?}, expected one of {}", known.join(", ")),
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

fn parse_error(text: &str, origin: &str, key: &str, e: &toml::de::Error) -> ConfigError {
    let (line, column) = line_column(text, e.span().map(|s| s.start).unwrap_or(0));
    ConfigError::Parse {
        origin: origin.to_owned(),
        line,
        column,
        key: if key.is_empty() || key == "." { "(file)".to_owned() } else { key.to_owned() },
        message: e.message().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_only_the_password() {
        assert_eq!(redact_url("mysql://u:p@w@h:1/db"), "mysql://u:***@h:1/db");
        assert_eq!(redact_url("mysql://u@h/db"), "mysql://u@h/db");
        assert_eq!(redact_url("mysql://h/db"), "mysql://h/db");
        // Unencoded '/', '@', ':' and '?' in a password: none of it shows.
        assert_eq!(redact_url("mysql://u:pa/ss@h:1/db"), "mysql://u:***@h:1/db");
        assert_eq!(redact_url("mysql://u:a/b@c:d@h/db?ssl=1"), "mysql://u:***@h/db?ssl=1");
        assert_eq!(redact_url("mysql://u:p/w@h"), "mysql://u:***@h");
        assert_eq!(redact_url("mysql://h/db?user=a@b"), "mysql://h/db?user=a@b");
        assert_eq!(DbUrl::new("mysql://u:a/b@c@h:1/db?x=1").database(), Some("db"));
        assert_eq!(DbUrl::new("mysql://h/db").database(), Some("db"));
    }
}
