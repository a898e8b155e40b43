//! Checkpoints: how far each table's rows are safely in the sink.
//!
//! A checkpoint is written by the side that makes data durable, after (or in the same
//! transaction as) the data. Stores are monotonic: storing a position behind the stored one is
//! a no-op, never a rewind.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::cursor::Position;
use crate::schema::TableId;
use crate::source::BoxError;

/// What a store keeps for one table.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The last row durably in the sink.
    pub position: Position,
    /// Rows loaded into the sink over the pipeline's life, replays included.
    pub rows_loaded: u64,
}

/// Where checkpoints live.
pub trait CheckpointStore: Send + Sync + 'static {
    /// The stored checkpoint of a table; `None` when the table was never loaded.
    fn load(&self, table: &TableId) -> impl Future<Output = Result<Option<Checkpoint>, CheckpointError>> + Send;

    /// Forgets a table's checkpoint: the next read starts from the beginning. The only way a
    /// checkpoint moves back, for a source that was accepted as reset.
    fn reset(&self, table: &TableId) -> impl Future<Output = Result<(), CheckpointError>> + Send;

    /// Stores a checkpoint atomically, unless it is behind the stored one.
    fn commit(
        &self,
        table: &TableId,
        checkpoint: &Checkpoint,
    ) -> impl Future<Output = Result<(), CheckpointError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("reading or writing the state file {path} (pipeline.state_dir) failed")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("state file {path} is not valid: {reason} (move it away to start over)")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{what} failed")]
    Database {
        what: String,
        #[source]
        source: BoxError,
    },
}

/// One JSON file per pipeline in `state_dir`, replaced atomically on every commit
/// (see [`crate::durable`]).
pub struct FileCheckpointStore {
    path: PathBuf,
    /// The file's content; the lock is never held across an await.
    entries: Mutex<Vec<FileEntry>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct FileEntry {
    database: String,
    table: String,
    #[serde(flatten)]
    checkpoint: Checkpoint,
}

#[derive(Serialize, Deserialize)]
struct FileContent {
    version: u32,
    tables: Vec<FileEntry>,
}

const FILE_VERSION: u32 = 1;

impl FileCheckpointStore {
    /// Opens (or prepares to create) `state_dir/<pipeline>.checkpoints.json`.
    pub fn open(state_dir: &Path, pipeline: &str) -> Result<Self, CheckpointError> {
        let path = state_dir.join(format!("{pipeline}.checkpoints.json"));
        let entries = match std::fs::read(&path) {
            Ok(bytes) => {
                let content: FileContent = serde_json::from_slice(&bytes)
                    .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
                if content.version != FILE_VERSION {
                    return Err(CheckpointError::Corrupt {
                        path,
                        reason: format!("version {} is not {FILE_VERSION}", content.version),
                    });
                }
                content.tables
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        Ok(FileCheckpointStore { path, entries: Mutex::new(entries) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write_file(&self, entries: &[FileEntry]) -> Result<(), CheckpointError> {
        let io = |source| CheckpointError::Io { path: self.path.clone(), source };
        let content = FileContent { version: FILE_VERSION, tables: entries.to_vec() };
        let bytes = serde_json::to_vec_pretty(&content).map_err(|e| io(std::io::Error::other(e)))?;
        crate::durable::replace(&self.path, &bytes).map_err(io)
    }
}

impl CheckpointStore for FileCheckpointStore {
    async fn load(&self, table: &TableId) -> Result<Option<Checkpoint>, CheckpointError> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        Ok(entries
            .iter()
            .find(|e| e.database == table.database && e.table == table.table)
            .map(|e| e.checkpoint.clone()))
    }

    async fn reset(&self, table: &TableId) -> Result<(), CheckpointError> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let next: Vec<FileEntry> =
            entries.iter().filter(|e| !(e.database == table.database && e.table == table.table)).cloned().collect();
        self.write_file(&next)?;
        *entries = next;
        Ok(())
    }

    async fn commit(&self, table: &TableId, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        // A poisoned lock only means another commit panicked; the Vec is still whole.
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = entries.clone();
        match next.iter_mut().find(|e| e.database == table.database && e.table == table.table) {
            Some(e) if checkpoint.position.is_behind(&e.checkpoint.position) => return Ok(()),
            Some(e) => e.checkpoint = checkpoint.clone(),
            None => next.push(FileEntry {
                database: table.database.clone(),
                table: table.table.clone(),
                checkpoint: checkpoint.clone(),
            }),
        }
        // The file is small (one entry per table); writing it synchronously keeps the commit
        // ordered with the data it follows.
        self.write_file(&next)?;
        *entries = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cursor::{DateTime, KeyValue};

    fn at(c: &str, k: i64) -> Checkpoint {
        Checkpoint {
            position: Position::At {
                cursor: c.parse::<DateTime>().expect("datetime"),
                key: vec![KeyValue::Int(k)],
                nulls: None,
            },
            rows_loaded: k as u64,
        }
    }

    fn table() -> TableId {
        TableId { database: "shop".into(), table: "order_tab".into() }
    }

    #[tokio::test]
    async fn commits_survive_reopening_and_never_move_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FileCheckpointStore::open(dir.path(), "p").expect("opens");
        assert_eq!(store.load(&table()).await.expect("loads"), None);
        store.commit(&table(), &at("2026-01-01 00:00:00", 5)).await.expect("commits");
        store.commit(&table(), &at("2025-01-01 00:00:00", 9)).await.expect("ignored");
        let reopened = FileCheckpointStore::open(dir.path(), "p").expect("opens");
        assert_eq!(reopened.load(&table()).await.expect("loads"), Some(at("2026-01-01 00:00:00", 5)));
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["p.checkpoints.json"], "no temporary file is left behind");
        reopened.reset(&table()).await.expect("resets");
        assert_eq!(
            FileCheckpointStore::open(dir.path(), "p").expect("opens").load(&table()).await.expect("loads"),
            None
        );
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("p.checkpoints.json"), "{").expect("writes");
        let err = FileCheckpointStore::open(dir.path(), "p").err().expect("corrupt").to_string();
        assert!(err.contains("p.checkpoints.json") && err.contains("not valid"), "{err}");
    }
}
