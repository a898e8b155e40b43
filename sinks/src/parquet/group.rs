//! Files made durable together: the Parquet sink's group commit.
//!
//! Each file of a batch is written in full to a hidden temporary name beside its final one, and
//! nothing is fsynced yet. When the files held add up to `sink.commit_mb`, or when a pass ends
//! (the runner's flush), the group becomes durable at once:
//!
//! 1. every temporary file is fsynced (by a thread of the group's own as each file is written, so
//!    that the disk writes them while the next batches are read, and the group only waits for
//!    the last ones);
//! 2. each table's record (`<table>/.hw-group.json`, replaced durably) names the group's files
//!    and the position the table's first batch in it started from;
//! 3. every file is renamed to its final name, and each directory is fsynced once;
//!
//! and only then is the write `Durable` and the runner commits the checkpoints. That is one
//! fsync per file and per directory for the whole group, where a file and a checkpoint made
//! durable with every batch took two each (a first copy of 1,000,000 rows made 456 fsyncs).
//!
//! After a crash: before step 3 only hidden temporaries are left, which `prepare` removes;
//! during or after it but before the checkpoint moved, files the checkpoint does not cover are
//! visible. [`discard_uncommitted`] finds them from the record: when the table's checkpoint is
//! still where the group started, the group never committed and its files go.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::thread;

use highwater_pipeline::cursor::Position;
use highwater_pipeline::durable;
use highwater_pipeline::sink::SinkError;
use serde::{Deserialize, Serialize};

/// The name of a table's [`Record`], in its directory.
pub const RECORD: &str = ".hw-group.json";

/// What a table's record of the group being made durable says.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The position the table's first batch in the group started from.
    after: Position,
    /// The group's files of the table, relative to its directory.
    files: Vec<String>,
}

/// The files written since the group last became durable.
#[derive(Default)]
pub struct Group {
    /// In the order written.
    files: Vec<Staged>,
    bytes: u64,
    /// Per table directory: what its record will say.
    tables: BTreeMap<PathBuf, Record>,
    /// Fsyncs the files as they are written; started with the group's first file.
    syncer: Option<Syncer>,
}

/// A thread that fsyncs each file sent to it, in turn, and reports the first failure.
struct Syncer {
    files: mpsc::Sender<PathBuf>,
    thread: thread::JoinHandle<Result<(), SinkError>>,
}

impl Syncer {
    fn start() -> std::io::Result<Syncer> {
        let (files, receive) = mpsc::channel::<PathBuf>();
        let thread = thread::Builder::new().name("parquet-fsync".into()).spawn(move || {
            for path in receive {
                File::open(&path).and_then(|f| f.sync_all()).map_err(|source| SinkError::Io { path, source })?;
            }
            Ok(())
        })?;
        Ok(Syncer { files, thread })
    }

    /// Waits until every file sent is fsynced.
    fn finish(self) -> Result<(), SinkError> {
        drop(self.files);
        self.thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    }
}

/// A file written in full to `tmp`, to be renamed to `path`.
struct Staged {
    tmp: PathBuf,
    path: PathBuf,
    bytes: u64,
}

impl Group {
    /// The size of the files held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Holds `tmp`, a whole file of `bytes` for `path` under `table_dir`, from a batch that
    /// started at `after`. The same `path` again (a retried batch) replaces the first.
    pub fn add(
        &mut self,
        table_dir: &Path,
        after: &Position,
        tmp: PathBuf,
        path: PathBuf,
        bytes: u64,
    ) -> Result<(), SinkError> {
        if self.syncer.is_none() {
            let syncer = Syncer::start().map_err(|source| SinkError::Io { path: tmp.clone(), source })?;
            self.syncer = Some(syncer);
        }
        if let Some(i) = self.files.iter().position(|f| f.path == path) {
            self.bytes -= self.files.remove(i).bytes;
        }
        let relative = path.strip_prefix(table_dir).unwrap_or(&path).to_string_lossy().into_owned();
        let record = self
            .tables
            .entry(table_dir.to_owned())
            .or_insert_with(|| Record { after: after.clone(), files: Vec::new() });
        if !record.files.contains(&relative) {
            record.files.push(relative);
        }
        self.bytes += bytes;
        // Sent after the file was written in full (again, for a retried batch): what the
        // thread fsyncs is its final content. A thread that stopped on a failure reports it
        // from `make_durable`.
        if let Some(syncer) = &self.syncer {
            let _ = syncer.files.send(tmp.clone());
        }
        self.files.push(Staged { tmp, path, bytes });
        Ok(())
    }

    /// Makes every file held durable under its final name (steps 1-3 above). On an error the
    /// files may be lost whatever a retry would report (a failed fsync drops the pages it
    /// could not write), so the caller must not take the group as written.
    pub fn make_durable(&mut self) -> Result<(), SinkError> {
        if self.files.is_empty() {
            return Ok(());
        }
        let io = |path: &Path, source| SinkError::Io { path: path.to_owned(), source };
        if let Some(syncer) = self.syncer.take() {
            syncer.finish()?;
        }
        for (dir, record) in &self.tables {
            let path = dir.join(RECORD);
            let text = serde_json::to_vec(record).map_err(|e| io(&path, e.into()))?;
            durable::replace(&path, &text).map_err(|e| io(&path, e))?;
        }
        let mut dirs = BTreeSet::new();
        for f in &self.files {
            // Named by the file renamed: the one missing, when one is.
            std::fs::rename(&f.tmp, &f.path).map_err(|e| {
                io(&f.tmp, std::io::Error::new(e.kind(), format!("renaming it to {}: {e}", f.path.display())))
            })?;
            dirs.insert(f.path.parent().unwrap_or(Path::new(".")).to_owned());
        }
        for dir in dirs {
            File::open(&dir).and_then(|d| d.sync_all()).map_err(|e| io(&dir, e))?;
        }
        *self = Group::default();
        Ok(())
    }

    /// Removes the temporary files of a group that will never be made durable.
    pub fn abandon(&mut self) {
        let group = std::mem::take(self);
        if let Some(syncer) = group.syncer {
            let _ = syncer.finish();
        }
        for f in group.files {
            let _ = std::fs::remove_file(&f.tmp);
        }
    }
}

/// Removes the files of `table_dir`'s last group when `checkpoint` is still where that group
/// started (it was renamed, never checkpointed), then its record.
pub fn discard_uncommitted(table_dir: &Path, checkpoint: &Position) -> Result<(), SinkError> {
    let path = table_dir.join(RECORD);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => return Err(SinkError::Io { path, source }),
    };
    let unreadable = |reason: String| SinkError::Io {
        path: path.clone(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{reason} (move it away to go on)")),
    };
    let record: Record = serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))?;
    if &record.after == checkpoint {
        // Only files below the table's directory, as the sink names them.
        let ours = |name: &&String| {
            name.ends_with(".parquet") && Path::new(name).components().all(|c| matches!(c, Component::Normal(_)))
        };
        for name in record.files.iter().filter(ours) {
            let file = table_dir.join(name);
            match std::fs::remove_file(&file) {
                Ok(()) => tracing::info!(
                    path = %file.display(),
                    "removed a file written after the checkpoint by a run that stopped before committing it"
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => return Err(SinkError::Io { path: file, source }),
            }
        }
    }
    std::fs::remove_file(&path).map_err(|source| SinkError::Io { path, source })
}
