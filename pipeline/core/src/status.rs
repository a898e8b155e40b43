//! What runs leave for `highwater status`: how the last run ended and each table's last error,
//! in `state_dir/<pipeline>.status.json` (checkpoints stay in their store; this file only
//! explains them).
//!
//! The runner records errors per table in [`TableErrors`] while it runs; the binary writes
//! the file when a run ends, successful or not, and while a daemon runs, whenever a table met
//! a new error. The file is replaced atomically and a damaged
//! one is reported, never trusted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::cursor::DateTime;
use crate::schema::TableId;

const FILE_VERSION: u32 = 1;

/// The status file's content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: u32,
    pub last_run: Option<RunRecord>,
    /// By table (`database.table`).
    pub tables: BTreeMap<String, TableRecord>,
}

/// How one run went.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// UTC, `YYYY-MM-DD HH:MM:SS.ffffff`.
    pub started_at: String,
    pub finished_at: String,
    /// `once` or `daemon`.
    pub mode: String,
    pub ok: bool,
    pub rows_loaded: u64,
    /// The error that ended it, with its causes.
    pub error: Option<String>,
}

/// What is known of one table beyond its checkpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TableRecord {
    pub last_error: Option<String>,
    pub last_error_at: Option<String>,
    /// The end of the last run that read this table without an error.
    pub last_ok_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("status file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("status file {path} is not valid: {reason} (move it away; checkpoints are not in it)")]
    Corrupt { path: PathBuf, reason: String },
}

/// `state_dir/<pipeline>.status.json`.
pub fn path(state_dir: &Path, pipeline: &str) -> PathBuf {
    state_dir.join(format!("{pipeline}.status.json"))
}

impl Status {
    /// The file's content; the default when there is none yet.
    pub fn read(path: &Path) -> Result<Status, StatusError> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let status: Status = serde_json::from_slice(&bytes)
                    .map_err(|e| StatusError::Corrupt { path: path.to_owned(), reason: e.to_string() })?;
                if status.version != FILE_VERSION {
                    let reason = format!("version {} is not {FILE_VERSION}", status.version);
                    return Err(StatusError::Corrupt { path: path.to_owned(), reason });
                }
                Ok(status)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Ok(Status { version: FILE_VERSION, ..Status::default() })
            }
            Err(source) => Err(StatusError::Io { path: path.to_owned(), source }),
        }
    }

    /// Records a finished run: its outcome, and for each of `tables` either the error this
    /// run met on it or that it went through.
    pub fn record_run(&mut self, run: RunRecord, tables: &[TableId], errors: &TableErrors) {
        let errors = errors.snapshot();
        for t in tables {
            let entry = self.tables.entry(t.to_string()).or_default();
            match errors.get(t) {
                Some(e) => {
                    entry.last_error = Some(e.clone());
                    entry.last_error_at = Some(run.finished_at.clone());
                }
                None if run.ok => entry.last_ok_at = Some(run.finished_at.clone()),
                None => {}
            }
        }
        self.last_run = Some(run);
    }

    /// Records the errors tables met in a run still going (a daemon whose other tables go
    /// on), leaving the last finished run's record as it is.
    pub fn record_errors(&mut self, errors: &BTreeMap<TableId, String>, at: &str) {
        for (table, error) in errors {
            let entry = self.tables.entry(table.to_string()).or_default();
            if entry.last_error.as_ref() != Some(error) {
                entry.last_error = Some(error.clone());
                entry.last_error_at = Some(at.to_owned());
            }
        }
    }

    /// Replaces the file atomically (see [`crate::durable`]).
    pub fn write(&self, path: &Path) -> Result<(), StatusError> {
        let io = |source| StatusError::Io { path: path.to_owned(), source };
        let mut content = self.clone();
        content.version = FILE_VERSION;
        let bytes = serde_json::to_vec_pretty(&content).map_err(|e| io(std::io::Error::other(e)))?;
        crate::durable::replace(path, &bytes).map_err(io)
    }
}

/// An error and its causes, `: `-separated, as status and logs show it.
pub fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut chain = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(c) = cause {
        chain.push(c.to_string());
        cause = c.source();
    }
    join_causes(chain)
}

/// An error's messages, outermost first, joined by `: `; a cause whose text a message before it
/// already holds (drivers put their cause into their own message too) is left out.
pub fn join_causes(chain: impl IntoIterator<Item = String>) -> String {
    let mut text = String::new();
    for message in chain {
        if message.is_empty() || text.contains(&message) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    // And a part said twice in a row within one message (`Input/output error: Input/output error`).
    let mut parts: Vec<&str> = Vec::new();
    for part in text.split(": ") {
        if parts.last() != Some(&part) {
            parts.push(part);
        }
    }
    parts.join(": ")
}

/// The errors a run met, by table. Cloned handles share one map.
#[derive(Clone, Debug, Default)]
pub struct TableErrors(Arc<Mutex<BTreeMap<TableId, String>>>);

impl TableErrors {
    /// Keeps `error` (with its causes) as the table's error of this run.
    pub fn record(&self, table: &TableId, error: &(dyn std::error::Error + 'static)) {
        let text = with_causes(error);
        // A poisoned lock only means a recording panicked; the map is still whole.
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(table.clone(), text);
    }

    pub fn snapshot(&self) -> BTreeMap<TableId, String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// This machine's clock as a UTC timestamp text, as the status file stores times.
pub fn now_text() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default();
    DateTime::from_unix_micros(micros).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_already_told_are_not_repeated() {
        let chain = [
            "cannot connect to mysql://h:1/db (source.url)",
            "Input/output error: Connection refused (os error 111)",
            "Input/output error: Connection refused (os error 111)",
            "Connection refused (os error 111)",
        ];
        assert_eq!(
            join_causes(chain.map(str::to_owned)),
            "cannot connect to mysql://h:1/db (source.url): Input/output error: Connection refused (os error 111)"
        );
        assert_eq!(join_causes(["a".to_owned(), String::new(), "b".to_owned()]), "a: b");
        assert_eq!(join_causes(["x: io: io: refused".to_owned()]), "x: io: refused");
    }

    fn id(t: &str) -> TableId {
        TableId { database: "shop".into(), table: t.into() }
    }

    fn run(ok: bool, at: &str) -> RunRecord {
        RunRecord {
            started_at: at.into(),
            finished_at: at.into(),
            mode: "once".into(),
            ok,
            rows_loaded: 1,
            error: (!ok).then(|| "boom".into()),
        }
    }

    #[test]
    fn errors_stay_until_a_later_run_goes_through_and_survive_rereading() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "p");
        let tables = [id("orders"), id("user")];
        let errors = TableErrors::default();
        errors.record(&id("orders"), &std::io::Error::other("disk full"));
        let mut status = Status::read(&file).expect("none yet");
        status.record_run(run(false, "t1"), &tables, &errors);
        status.write(&file).expect("writes");

        let mut status = Status::read(&file).expect("reads");
        let orders = &status.tables["shop.orders"];
        assert_eq!(orders.last_error.as_deref(), Some("disk full"));
        assert_eq!(orders.last_error_at.as_deref(), Some("t1"));
        assert_eq!(status.tables["shop.user"].last_ok_at, None, "a failed run proves nothing of the others");

        status.record_run(run(true, "t2"), &tables, &TableErrors::default());
        let orders = &status.tables["shop.orders"];
        assert_eq!(orders.last_error.as_deref(), Some("disk full"), "kept, with its time");
        assert_eq!(orders.last_ok_at.as_deref(), Some("t2"), "and the later success shows it is over");
        assert!(status.last_run.as_ref().is_some_and(|r| r.ok));
    }

    #[test]
    fn an_error_keeps_its_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("reading shop.orders failed")]
        struct Outer(#[source] std::io::Error);
        let errors = TableErrors::default();
        errors.record(&id("orders"), &Outer(std::io::Error::other("connection reset")));
        assert_eq!(errors.snapshot()[&id("orders")], "reading shop.orders failed: connection reset");
    }

    #[test]
    fn a_damaged_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = path(dir.path(), "p");
        std::fs::write(&file, "{").expect("writes");
        let err = Status::read(&file).expect_err("damaged").to_string();
        assert!(err.contains("p.status.json") && err.contains("not valid"), "{err}");
    }
}
