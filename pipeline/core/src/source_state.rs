//! What the extracting side last saw of its source, kept beside the checkpoints
//! (`state_dir/<pipeline>.source.json`) so that a later run notices what changed meanwhile:
//!
//! - the server's identity (`@@server_uuid`, MariaDB's `@@server_uid`): another server behind
//!   the same address (a failover, a rebuilt host) may not hold what the checkpoints point at;
//! - each table's columns: a column dropped, renamed or retyped between two cron runs is as
//!   much a break as one dropped under a daemon.
//!
//! The file is replaced atomically (see [`crate::durable`]) whenever something in it changes,
//! which is rare: at the first run, and after accepted changes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::checkpoint::CheckpointError;
use crate::schema::{TableId, TableSchema};

const FILE_VERSION: u32 = 1;

#[derive(Clone, Default, Serialize, Deserialize)]
struct Content {
    version: u32,
    /// The source server's identity, once seen.
    server: Option<String>,
    /// By `database.table`: the schema's JSON form ([`TableSchema::to_json`]).
    schemas: BTreeMap<String, String>,
}

/// The source state file of one pipeline.
pub struct SourceState {
    path: PathBuf,
    content: Mutex<Content>,
}

impl SourceState {
    pub fn open(state_dir: &Path, pipeline: &str) -> Result<Self, CheckpointError> {
        let path = state_dir.join(format!("{pipeline}.source.json"));
        let content = match std::fs::read(&path) {
            Ok(bytes) => {
                let c: Content = serde_json::from_slice(&bytes)
                    .map_err(|e| CheckpointError::Corrupt { path: path.clone(), reason: e.to_string() })?;
                if c.version != FILE_VERSION {
                    let reason = format!("version {} is not {FILE_VERSION}", c.version);
                    return Err(CheckpointError::Corrupt { path, reason });
                }
                c
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Content { version: FILE_VERSION, ..Content::default() }
            }
            Err(source) => return Err(CheckpointError::Io { path, source }),
        };
        Ok(SourceState { path, content: Mutex::new(content) })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Content> {
        // A poisoned lock only means an update panicked; the content is still whole.
        self.content.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn server(&self) -> Option<String> {
        self.lock().server.clone()
    }

    /// The schema last seen of `table`; `None` when never seen (or not readable, which a
    /// newer version of the file could cause: then it is seen afresh).
    pub fn schema(&self, table: &TableId) -> Option<TableSchema> {
        self.lock().schemas.get(&table.to_string()).and_then(|json| TableSchema::from_json(json).ok())
    }

    pub fn set_server(&self, server: &str) -> Result<(), CheckpointError> {
        self.update(|c| c.server = Some(server.to_owned()))
    }

    pub fn set_schema(&self, schema: &TableSchema) -> Result<(), CheckpointError> {
        self.update(|c| {
            c.schemas.insert(schema.id.to_string(), schema.to_json());
        })
    }

    fn update(&self, change: impl FnOnce(&mut Content)) -> Result<(), CheckpointError> {
        let mut content = self.lock();
        let mut next = content.clone();
        change(&mut next);
        let io = |source| CheckpointError::Io { path: self.path.clone(), source };
        let bytes = serde_json::to_vec_pretty(&next).map_err(|e| io(std::io::Error::other(e)))?;
        crate::durable::replace(&self.path, &bytes).map_err(io)?;
        *content = next;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::ColumnSchema;
    use arrow_schema::DataType;

    #[test]
    fn server_and_schemas_survive_reopening() {
        let dir = tempfile::tempdir().expect("tempdir");
        let id = TableId { database: "shop".into(), table: "orders".into() };
        let col = |name: &str| ColumnSchema {
            name: name.into(),
            source_type: "bigint(20)".into(),
            charset: None,
            collation: None,
            source_nullable: false,
            data_type: DataType::Int64,
            nullable: false,
            default: None,
            default_computed: false,
        };
        let schema = TableSchema::new(id.clone(), vec![col("id"), col("v")], vec![0], 1);
        let state = SourceState::open(dir.path(), "p").expect("opens");
        assert_eq!((state.server(), state.schema(&id).is_none()), (None, true));
        state.set_server("uuid-1").expect("writes");
        state.set_schema(&schema).expect("writes");
        let again = SourceState::open(dir.path(), "p").expect("opens");
        assert_eq!(again.server().as_deref(), Some("uuid-1"));
        assert_eq!(again.schema(&id).expect("schema").columns, schema.columns);
    }
}
