//! Replacing a small file so that a crash leaves either the old content or the new, never a
//! mix: write a temporary file beside it, fsync it, rename it over the target, fsync the
//! directory (so the rename itself survives a power loss).

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`, creating its directory when missing. On failure (a full
/// disk, say) the old content stays and no temporary file is left.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let written = std::fs::File::create(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    });
    if let Err(e) = written {
        // Nothing refers to the temporary file: removing it only frees its space.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_content_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/state.json");
        replace(&path, b"one").expect("writes");
        replace(&path, b"two").expect("replaces");
        assert_eq!(std::fs::read(&path).expect("reads"), b"two");
        let names: Vec<_> =
            std::fs::read_dir(dir.path().join("sub")).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["state.json"]);
    }

    #[test]
    fn a_failed_write_leaves_the_old_content_and_no_temporary_file() {
        // /dev/full takes no byte: the write of the temporary file fails as on a full disk.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.json");
        replace(&path, b"one").expect("writes");
        std::os::unix::fs::symlink("/dev/full", dir.path().join("state.json.tmp")).expect("link");
        assert!(replace(&path, b"two").is_err());
        assert_eq!(std::fs::read(&path).expect("reads"), b"one");
        let names: Vec<_> =
            std::fs::read_dir(dir.path()).expect("dir").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["state.json"], "the temporary file is gone");
    }
}
