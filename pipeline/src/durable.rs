//! Replacing a small file so that a crash leaves either the old content or the new, never a
//! mix: write a temporary file beside it, fsync it, rename it over the target, fsync the
//! directory (so the rename itself survives a power loss).

use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`, creating its directory when missing.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
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
}
