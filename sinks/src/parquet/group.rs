//! Files made durable together: the Parquet sink's group commit.
//!
//! Each file of a batch is written in full to a hidden temporary name beside its final one, and
//! nothing is fsynced yet. When the files held add up to `sink.commit_mb`, or when a pass ends
//! (the runner's flush), the group becomes durable at once:
//!
//! 1. every temporary file is fsynced (by threads of the group's own as each file is written, so
//!    that the disk writes them while the next batches are read, and the group only waits for
//!    the last ones);
//! 2. each table's record (`<table>/.hw-group.json`, replaced durably) names the group's files
//!    and the position the table's first batch in it started from;
//! 3. every file is renamed to its final name, and each directory is fsynced once (with the
//!    table's directory and the one above it, which a new directory is entered in);
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
use std::sync::{Arc, Mutex, mpsc};
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
    files: BTreeSet<String>,
}

/// The files written since the group last became durable.
#[derive(Default)]
pub struct Group {
    /// By final path: a file written again (a retried batch) replaces the first.
    files: BTreeMap<PathBuf, Staged>,
    bytes: u64,
    /// Per table directory: what its record will say.
    tables: BTreeMap<PathBuf, Record>,
    /// Fsyncs the files as they are written; started with the group's first file.
    syncer: Option<Syncer>,
}

/// How many threads fsync at once. A disk takes concurrent fsyncs into one journal commit: a
/// first copy of seven years into daily files (2,558 files and directories) waited 1.7 s for
/// them one at a time and 0.4 s with 16 at once on this project's machine.
const SYNC_THREADS: usize = 8;

/// Threads that fsync each file sent to them and report the first failure.
struct Syncer {
    files: mpsc::Sender<PathBuf>,
    threads: Vec<thread::JoinHandle<Result<(), SinkError>>>,
}

impl Syncer {
    fn start() -> std::io::Result<Syncer> {
        let (files, receive) = mpsc::channel::<PathBuf>();
        let receive = Arc::new(Mutex::new(receive));
        let threads = (0..SYNC_THREADS)
            .map(|_| {
                let receive = Arc::clone(&receive);
                thread::Builder::new().name("parquet-fsync".into()).spawn(move || {
                    // The lock is held only to take the next path, not while it is fsynced.
                    while let Ok(path) = { receive.lock().unwrap_or_else(|p| p.into_inner()).recv() } {
                        fsync(&path)?;
                    }
                    Ok(())
                })
            })
            .collect::<std::io::Result<_>>()?;
        Ok(Syncer { files, threads })
    }

    /// Waits until every file sent is fsynced.
    fn finish(self) -> Result<(), SinkError> {
        drop(self.files);
        let mut first = Ok(());
        for thread in self.threads {
            let done = thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            first = first.and(done);
        }
        first
    }
}

fn fsync(path: &Path) -> Result<(), SinkError> {
    File::open(path).and_then(|f| f.sync_all()).map_err(|source| SinkError::Io { path: path.to_owned(), source })
}

/// Fsyncs every directory of `dirs`, [`SYNC_THREADS`] at once; the first failure is returned.
fn fsync_all(dirs: &[PathBuf]) -> Result<(), SinkError> {
    let share = dirs.len().div_ceil(SYNC_THREADS).max(1);
    thread::scope(|scope| {
        let threads: Vec<_> =
            dirs.chunks(share).map(|chunk| scope.spawn(|| chunk.iter().try_for_each(|d| fsync(d)))).collect();
        threads.into_iter().try_for_each(|t| t.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
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
        let relative = path.strip_prefix(table_dir).unwrap_or(&path).to_string_lossy().into_owned();
        let record = self
            .tables
            .entry(table_dir.to_owned())
            .or_insert_with(|| Record { after: after.clone(), files: BTreeSet::new() });
        record.files.insert(relative);
        self.bytes += bytes;
        // Sent after the file was written in full (again, for a retried batch): what the
        // thread fsyncs is its final content. A thread that stopped on a failure reports it
        // from `make_durable`.
        if let Some(syncer) = &self.syncer {
            let _ = syncer.files.send(tmp.clone());
        }
        if let Some(replaced) = self.files.insert(path.clone(), Staged { tmp, path, bytes }) {
            self.bytes -= replaced.bytes;
        }
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
        for f in self.files.values() {
            // Named by the file renamed: the one missing, when one is.
            std::fs::rename(&f.tmp, &f.path).map_err(|e| {
                io(&f.tmp, std::io::Error::new(e.kind(), format!("renaming it to {}: {e}", f.path.display())))
            })?;
            dirs.insert(f.path.parent().unwrap_or(Path::new(".")).to_owned());
        }
        // The directories the files' own may have been created in this group, too.
        for table_dir in self.tables.keys() {
            dirs.insert(table_dir.clone());
            dirs.extend(table_dir.parent().map(Path::to_owned));
        }
        fsync_all(&dirs.into_iter().collect::<Vec<_>>())?;
        *self = Group::default();
        Ok(())
    }

    /// Removes the temporary files of a group that will never be made durable.
    pub fn abandon(&mut self) {
        let group = std::mem::take(self);
        if let Some(syncer) = group.syncer {
            let _ = syncer.finish();
        }
        for f in group.files.into_values() {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn staged(dir: &Path, name: &str, text: &str) -> PathBuf {
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).expect("tmp");
        tmp
    }

    #[test]
    fn a_file_written_again_replaces_the_first_and_every_file_lands_in_new_directories() {
        let root = tempfile::tempdir().expect("dir");
        let table = root.path().join("t");
        let mut group = Group::default();
        for day in 0..40 {
            let dir = table.join(format!("date={day}"));
            std::fs::create_dir_all(&dir).expect("dirs");
            let tmp = staged(&dir, "a", "first");
            group.add(&table, &Position::Start, tmp, dir.join("part.parquet"), 5).expect("add");
        }
        // A retried batch writes day 7's file again, longer.
        let day7 = table.join("date=7");
        let tmp = staged(&day7, "b", "second try");
        group.add(&table, &Position::Start, tmp, day7.join("part.parquet"), 10).expect("again");
        assert_eq!(group.bytes(), 39 * 5 + 10);
        group.make_durable().expect("durable");

        assert_eq!(std::fs::read_to_string(day7.join("part.parquet")).expect("day 7"), "second try");
        assert_eq!(std::fs::read_to_string(table.join("date=39/part.parquet")).expect("day 39"), "first");
        let record: Record = serde_json::from_slice(&std::fs::read(table.join(RECORD)).expect("record")).expect("json");
        assert_eq!(record.files.len(), 40, "each file once: {:?}", record.files);
        assert_eq!(group.bytes(), 0);
    }
}
