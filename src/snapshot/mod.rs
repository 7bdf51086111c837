//! Snapshots: the exact bytes of a stopped data directory (with its tablespaces and a
//! symlinked pg_wal) in one POSIX tar stream compressed with multi-threaded zstd, with a
//! manifest holding the sha256 of every file, inside the archive (its last entry) and beside
//! it (`FILE.manifest.json`). `verify` checks an archive against its manifest; `restore`
//! writes it into an empty directory, checking every hash, never outside the target.
//!
//! Archive layout:
//! ```text
//! data/...                      the data directory (pg_wal and pg_tblspc/<oid> as symlink entries
//!                               when they were links)
//! links/<name>/...              the contents of a linked directory: `pg_wal`, `pg_tblspc-<oid>`
//! pgsalvage-manifest.json       the manifest (last)
//! ```

pub mod create;
pub mod manifest;
pub mod restore;
pub mod stream;
pub mod verify;

pub use manifest::{EntryKind, FileEntry, LinkEntry, Manifest};

/// Name of the manifest entry inside the archive (always the last entry).
pub const MANIFEST_ENTRY: &str = "pgsalvage-manifest.json";
pub const DATA_PREFIX: &str = "data";
pub const LINKS_PREFIX: &str = "links";

/// Path of the manifest beside an archive.
pub fn sidecar_path(archive: &std::path::Path) -> std::path::PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".manifest.json");
    std::path::PathBuf::from(s)
}

/// Progress in bytes of file data (the CLI draws a bar on a TTY).
pub use crate::check::Progress;
