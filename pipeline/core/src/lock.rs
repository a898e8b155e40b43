//! One run per pipeline: `state_dir/<pipeline>.lock`, held with an exclusive advisory lock for
//! the whole run. Two runs of one pipeline (a cron pass that overran into the next, a daemon and
//! a manual `--once`) would each rewrite the checkpoint file from their own memory and could
//! move another table's checkpoint back; the second run is refused instead. The lock goes with
//! the process, however it ends (kill -9 included), so there is no stale lock to clean up.
//!
//! A Parquet sink's directory has a lock of its own (`<path>/.highwater.lock`, see
//! [`RunLock::output`]): runs of other config files (another state directory) writing the
//! same files would add versions twice and remove each other's temporary files.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Held while the run lasts; dropping it releases the lock.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "another highwater run of pipeline {pipeline} is using {path} (process {holder}): wait for it to end, \
         or stop it; two runs of one pipeline would overwrite each other's checkpoints"
    )]
    Held { pipeline: String, path: PathBuf, holder: String },
    #[error(
        "another highwater run is writing {dir} (process {holder}, lock {path}): wait for it to end, or stop it; \
         two runs writing the same files would write rows twice and remove each other's temporary files"
    )]
    OutputHeld { dir: PathBuf, path: PathBuf, holder: String },
    #[error("cannot lock {path} ({key})")]
    Io {
        path: PathBuf,
        key: &'static str,
        #[source]
        source: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock of `pipeline` in `state_dir`, creating the directory, or says who holds it.
    pub fn acquire(state_dir: &Path, pipeline: &str) -> Result<RunLock, LockError> {
        let path = state_dir.join(format!("{pipeline}.lock"));
        RunLock::take(state_dir, path, "pipeline.state_dir", |path, holder| LockError::Held {
            pipeline: pipeline.to_owned(),
            path,
            holder,
        })
    }

    /// Takes the lock of the output directory `dir` (a Parquet sink's `path`), or says who holds it.
    pub fn output(dir: &Path) -> Result<RunLock, LockError> {
        RunLock::take(dir, dir.join(".highwater.lock"), "sink.path", |path, holder| LockError::OutputHeld {
            dir: dir.to_owned(),
            path,
            holder,
        })
    }

    fn take(
        dir: &Path,
        path: PathBuf,
        key: &'static str,
        held: impl FnOnce(PathBuf, String) -> LockError,
    ) -> Result<RunLock, LockError> {
        let io = |source| LockError::Io { path: path.clone(), key, source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
                let holder = if holder.is_empty() { "unknown".to_owned() } else { holder };
                return Err(held(path, holder));
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // The holder's pid, for the message a second run prints.
        file.set_len(0).and_then(|()| write!(file, "{}", std::process::id())).map_err(io)?;
        Ok(RunLock { _file: file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = RunLock::acquire(&dir.path().join("state"), "p").expect("free");
        let err = RunLock::acquire(&dir.path().join("state"), "p").expect_err("held").to_string();
        assert!(err.contains("pipeline p") && err.contains(&std::process::id().to_string()), "{err}");
        assert!(RunLock::acquire(&dir.path().join("state"), "other").is_ok(), "per pipeline");
        drop(first);
        RunLock::acquire(&dir.path().join("state"), "p").expect("free again");
        let out = RunLock::output(&dir.path().join("out")).expect("free");
        let err = RunLock::output(&dir.path().join("out")).expect_err("held").to_string();
        assert!(err.contains("is writing") && err.contains(&std::process::id().to_string()), "{err}");
        drop(out);
    }
}
