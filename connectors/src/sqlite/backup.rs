//! An online backup of the source file: SQLite's backup API copies every page in one step
//! under a read transaction, so the copy is one consistent state of the database even while an
//! application writes to it (in WAL mode the writer is not blocked at all).

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};

/// Copies the database at `source` into `dir` as `<file name>.backup.<UTC time>`, written to a
/// temporary name, synced and renamed; returns the backup's path.
pub fn backup(source: &Path, dir: &Path, utc: &str) -> Result<PathBuf, String> {
    let name = source.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "sqlite".into());
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {} (source.backup_dir): {e}", dir.display()))?;
    let target = dir.join(format!("{name}.backup.{utc}"));
    let partial = dir.join(format!(".{name}.backup.{utc}.partial"));
    let failed = |e: &dyn std::fmt::Display| format!("backing up {} into {}: {e}", source.display(), target.display());
    let from = Connection::open_with_flags(source, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(|e| failed(&e))?;
    let _ = std::fs::remove_file(&partial);
    let mut to = Connection::open(&partial).map_err(|e| failed(&e))?;
    let copied = copy_in_one_step(&from, &mut to).and_then(|()| to.execute_batch("PRAGMA journal_mode = DELETE"));
    drop(to);
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&partial);
        return Err(failed(&e));
    }
    std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| failed(&e))?;
    std::fs::rename(&partial, &target).map_err(|e| failed(&e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(target)
}

/// Every page in one step, so that no write between steps makes the copy start over; a
/// writer holding the file is waited for.
fn copy_in_one_step(from: &Connection, to: &mut Connection) -> rusqlite::Result<()> {
    use rusqlite::backup::{Backup, StepResult};
    let backup = Backup::new(from, to)?;
    loop {
        match backup.step(-1)? {
            StepResult::Done => return Ok(()),
            StepResult::More | StepResult::Busy | StepResult::Locked => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_is_a_database_equal_to_the_source() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("gateway.db");
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);
             INSERT INTO t (v) VALUES ('a'), ('b');",
        )
        .expect("fill");
        let copy = backup(&path, &dir.path().join("backup"), "20261205T030000Z").expect("backup");
        assert_eq!(copy.file_name().and_then(|n| n.to_str()), Some("gateway.db.backup.20261205T030000Z"));
        let read = Connection::open(&copy).expect("open copy");
        let n: i64 = read.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).expect("count");
        assert_eq!(n, 2);
        let missing = backup(&dir.path().join("nope.db"), dir.path(), "x").expect_err("missing");
        assert!(missing.contains("nope.db"), "{missing}");
    }
}
