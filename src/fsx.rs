//! The one crash-safe way pgsalvage writes a whole file: a new temporary file in the same
//! directory (create_new, given mode), written and fsynced, renamed over the target, then
//! the directory fsynced. Nothing else in the crate writes files in place.

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Write `bytes` to `path` atomically with `mode`; `path` must not exist.
pub fn write_new_file(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    if fs::symlink_metadata(path).is_ok() {
        return Err(Error::io("create", path, std::io::Error::from(std::io::ErrorKind::AlreadyExists)));
    }
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.pgsalvage-tmp-{}", std::process::id()));
    let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(|e| Error::io("create", path, e))?;
    let res = f.write_all(bytes).and_then(|_| f.sync_all());
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io("write", path, e));
    }
    fs::rename(&tmp, path).map_err(|e| Error::io("create", path, e))?;
    sync_dir(dir)
}

/// fsync a directory (after creating or renaming entries in it).
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io("fsync directory", dir, e))
}
