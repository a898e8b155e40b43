//! The settings of a `[source]` of `type = "sqlite"`: a SQLite database file.

use std::path::PathBuf;

use serde::Deserialize;
use serde::de::IgnoredAny;

use highwater_pipeline::config::{DAY_SECS, DEFAULT_BATCH_ROWS, DEFAULT_LAG_SECS, DEFAULT_POLL_INTERVAL_SECS, within};

use crate::epoch::EpochUnit;

/// A SQLite file read table by table, incrementally where a table names a cursor column.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSourceConfig {
    #[serde(rename = "type")]
    _type: IgnoredAny,
    /// The database file (relative paths are taken from the config file's directory).
    pub path: PathBuf,
    /// The tables to read; absent: every table of the file, parents before the tables whose
    /// foreign keys reference them.
    #[serde(default)]
    pub tables: Option<Vec<SqliteTableConfig>>,
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    #[serde(default = "default_lag_secs")]
    pub lag_secs: u64,
    #[serde(default = "default_poll_interval_secs")]
    pub poll_interval_secs: u64,
    /// The UTC offset text dates are written in (`+00:00`, what SQLite's `CURRENT_TIMESTAMP`
    /// and JavaScript's `toISOString()` write; `+08:00` for `datetime('now', 'localtime')` on a
    /// machine in that zone).
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// How long a read waits for a writer that holds the file locked before failing.
    #[serde(default = "default_busy_timeout_secs")]
    pub busy_timeout_secs: u64,
    /// The default for every table: what to do with a value whose storage class does not fit
    /// its column's declared type.
    #[serde(default)]
    pub on_type_mismatch: OnTypeMismatch,
    /// Where a successful `--once` run leaves an online backup of the file
    /// (`<file name>.backup.<UTC time>`).
    #[serde(default)]
    pub backup_dir: Option<PathBuf>,
}

/// One table, and the column that tells when a row changed (if it has one).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteTableConfig {
    pub name: String,
    /// Without one, the table is copied whole on each run's first pass.
    #[serde(default)]
    pub cursor: Option<String>,
    /// For an integer cursor that holds Unix time: the unit of its values.
    #[serde(default)]
    pub cursor_unit: Option<EpochUnit>,
    /// Overrides the source's `on_type_mismatch` for this table.
    #[serde(default)]
    pub on_type_mismatch: Option<OnTypeMismatch>,
}

/// What to do with a value whose storage class does not fit its column (text in an INTEGER
/// column: SQLite keeps it, a typed sink cannot).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTypeMismatch {
    /// Stop the table with an error naming the column, the row's key and the value's class.
    #[default]
    Fail,
    /// Carry every column other than the key and the cursor as text: numbers in SQLite's own
    /// text form, blobs that are not UTF-8 as hex (`x'…'`).
    Text,
}

impl SqliteSourceConfig {
    /// The setting that applies to a table: its own, else the source's.
    pub fn mismatch_for(&self, table: &SqliteTableConfig) -> OnTypeMismatch {
        table.on_type_mismatch.unwrap_or(self.on_type_mismatch)
    }

    /// The configured offset of text dates, in seconds east of UTC (`None`: not an offset).
    pub fn offset_secs(&self) -> Option<i64> {
        parse_offset(&self.time_zone)
    }

    /// Reports, under `at` (`source`), every setting the types cannot check.
    pub fn validate(&self, at: &str, problem: &mut impl FnMut(&str, &str)) {
        let key = |name: &str| format!("{at}.{name}");
        if self.path.as_os_str().is_empty() {
            problem(&key("path"), "must name the SQLite database file");
        }
        within(problem, &key("batch_rows"), self.batch_rows as u64, 1, 1_000_000);
        within(problem, &key("lag_secs"), self.lag_secs, 0, DAY_SECS);
        within(problem, &key("poll_interval_secs"), self.poll_interval_secs, 1, DAY_SECS);
        within(problem, &key("busy_timeout_secs"), self.busy_timeout_secs, 0, 3600);
        if self.offset_secs().is_none() {
            problem(&key("time_zone"), "must be a UTC offset such as \"+00:00\" or \"+08:00\" (or \"UTC\")");
        }
        if self.backup_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            problem(&key("backup_dir"), "must name a directory (or be left out)");
        }
        let tables = self.tables.as_deref().unwrap_or_default();
        if self.tables.is_some() && tables.is_empty() {
            problem(&key("tables"), "lists no table (leave it out to read every table)");
        }
        for (i, t) in tables.iter().enumerate() {
            let key = |name: &str| format!("{at}.tables[{i}].{name}");
            if t.name.is_empty() {
                problem(&key("name"), "must not be empty");
            }
            if t.cursor.as_deref().is_some_and(str::is_empty) {
                problem(&key("cursor"), "must not be empty (leave it out to copy the table whole)");
            }
            if t.cursor.is_none() && t.cursor_unit.is_some() {
                problem(&key("cursor_unit"), "is set but the table has no cursor");
            }
            if tables[..i].iter().any(|o| o.name == t.name) {
                problem(&key("name"), &format!("table {:?} is listed twice", t.name));
            }
        }
    }
}

/// `+HH:MM`, `-HH:MM` or `UTC`/`Z`, in seconds east of UTC.
pub fn parse_offset(text: &str) -> Option<i64> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("utc") || t == "Z" {
        return Some(0);
    }
    let (sign, rest) = match t.as_bytes().first()? {
        b'+' => (1, &t[1..]),
        b'-' => (-1, &t[1..]),
        _ => return None,
    };
    let (h_text, m_text) = rest.split_once(':')?;
    if h_text.len() != 2 || m_text.len() != 2 {
        return None;
    }
    let (h, m): (i64, i64) = (h_text.parse().ok()?, m_text.parse().ok()?);
    ((0..=14).contains(&h) && (0..60).contains(&m)).then_some(sign * (h * 3600 + m * 60))
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
fn default_time_zone() -> String {
    "+00:00".to_owned()
}
fn default_busy_timeout_secs() -> u64 {
    10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_parse_and_nonsense_does_not() {
        assert_eq!(parse_offset("+00:00"), Some(0));
        assert_eq!(parse_offset("UTC"), Some(0));
        assert_eq!(parse_offset("+08:00"), Some(8 * 3600));
        assert_eq!(parse_offset("-05:30"), Some(-(5 * 3600 + 1800)));
        for bad in ["", "8", "+8", "+15:00", "+08:60", "Asia/Shanghai", "+008:00"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn every_bad_setting_is_named_by_its_key() {
        let text = r#"
            type = "sqlite"
            path = ""
            batch_rows = 0
            time_zone = "Mars/Olympus"
            tables = [{ name = "a", cursor = "" }, { name = "a", cursor_unit = "seconds" }]
        "#;
        let config: SqliteSourceConfig = toml::from_str(text).expect("parses");
        let mut problems = Vec::new();
        config.validate("source", &mut |k, m| problems.push(format!("{k}: {m}")));
        let keys: Vec<&str> = problems.iter().map(|p| p.split(':').next().unwrap_or_default()).collect();
        assert_eq!(
            keys,
            [
                "source.path",
                "source.batch_rows",
                "source.time_zone",
                "source.tables[0].cursor",
                "source.tables[1].cursor_unit",
                "source.tables[1].name"
            ]
        );
    }
}
