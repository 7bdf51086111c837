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

/// Why an archive entry cannot be taken: the archive is refused (hostile or damaged) or the
/// target cannot be written. Each says the entry or the path it is about.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntryError {
    #[error("{0}: would be written outside the target")]
    Outside(String),
    #[error("links/{0} comes without its link data/{0}")]
    LinkWithoutLink(String),
    #[error("{0}: symbolic link outside data/")]
    LinkOutsideData(String),
    #[error("refusing entry: symbolic link {0:?} inside a linked directory")]
    LinkInsideLinked(String),
    #[error("{0}: appears twice")]
    Twice(String),
    #[error("{path}: {actual} bytes where the header says {declared}")]
    SizeMismatch { path: String, actual: u64, declared: u64 },
    #[error("refusing entry: {path:?} is a {kind} (only files, directories and symbolic links are allowed)")]
    Kind { path: String, kind: String },
    #[error("--tablespace-map target {0} must be an absolute path")]
    MapNotAbsolute(String),
    #[error("{target} (mapped from {from}) is not empty")]
    MapNotEmpty { target: String, from: String },
    #[error("{0} exists and is not a directory")]
    NotADirectory(String),
    #[error("{0}: bad path in manifest")]
    BadManifestPath(String),
    #[error("no manifest")]
    NoManifest,
    /// The file system refused: `cannot create /x: Permission denied`.
    #[error("{what} {path}: {message}")]
    Io { what: &'static str, path: String, message: String },
}

impl EntryError {
    pub(crate) fn io(what: &'static str, path: impl std::fmt::Display, e: std::io::Error) -> EntryError {
        EntryError::Io { what, path: path.to_string(), message: e.to_string() }
    }
}

/// Before reading an archive: it exists, can be opened, and starts with a zstd frame (a
/// file that does not is not a pgsalvage snapshot at all, which is not the same as a damaged
/// one).
pub fn check_archive_file(archive: &std::path::Path) -> crate::error::Result<()> {
    use std::io::Read;
    let mut f = std::fs::File::open(archive).map_err(|e| crate::error::Error::io("open snapshot", archive, e))?;
    let mut magic = [0u8; 4];
    let n = f.read(&mut magic).map_err(|e| crate::error::Error::io("read snapshot", archive, e))?;
    // RFC 8878: a zstd frame starts with 0xFD2FB528, little-endian.
    if n < 4 || magic != [0x28, 0xb5, 0x2f, 0xfd] {
        return Err(crate::error::Error::Unusable {
            path: archive.to_path_buf(),
            message: format!(
                "not a pgsalvage snapshot: it does not start with a zstd frame (byte 0: {})",
                if n == 0 { "the file is empty".to_string() } else { crate::format::bytes::hex(&magic[..n]) }
            ),
            hint: "give the .tar.zst file written by `pgsalvage snapshot create`".into(),
        });
    }
    Ok(())
}

/// Path of the manifest beside an archive.
pub fn sidecar_path(archive: &std::path::Path) -> std::path::PathBuf {
    let mut s = archive.as_os_str().to_owned();
    s.push(".manifest.json");
    std::path::PathBuf::from(s)
}

/// Progress in bytes of file data (the CLI draws a bar on a TTY).
pub use crate::check::Progress;
