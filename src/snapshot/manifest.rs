//! The snapshot manifest (JSON; docs/snapshot-manifest.md documents it).

use serde::{Deserialize, Serialize};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
}

/// One archive entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Path inside the archive (`data/base/5/1259`, `links/pg_wal/000000010000000000000001`).
    pub path: String,
    pub kind: EntryKind,
    #[serde(default)]
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Modification time: seconds and nanoseconds since the Unix epoch.
    pub mtime: i64,
    #[serde(default)]
    pub mtime_nsec: u32,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub sha256: Option<String>,
    /// For symbolic links: where the link pointed on the original machine.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub link_target: Option<String>,
    /// The file changed size while it was read (possible only with --allow-running).
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub changed_while_reading: bool,
}

/// A directory outside the data directory that it links to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkEntry {
    /// The link inside the data directory: `pg_wal` or `pg_tblspc/<oid>`.
    pub name: String,
    /// Where it pointed (an absolute path on the original machine).
    pub target: String,
    /// Where its contents are in the archive: `links/pg_wal`, `links/pg_tblspc-<oid>`.
    pub archive_prefix: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub tool: String,
    pub created_at: String,
    pub host: String,
    pub user: String,
    pub data_directory: String,
    pub major: u32,
    /// As a string: JSON readers in other languages lose precision past 2^53. Empty when
    /// neither pg_control nor WAL could give it.
    pub system_identifier: String,
    /// Where the system identifier comes from: "pg_control", or "WAL page headers" when
    /// pg_control is damaged (absent in manifests of older versions).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub system_identifier_source: Option<String>,
    /// False when taken with --allow-running while a postmaster was alive.
    pub consistent: bool,
    pub postmaster: String,
    pub zstd_level: i32,
    /// pg_control as `inspect --json` shows it.
    pub control: serde_json::Value,
    pub links: Vec<LinkEntry>,
    pub files: Vec<FileEntry>,
    /// Data-directory paths left out, as pg_basebackup leaves them out.
    pub skipped: Vec<String>,
    pub total_files: u64,
    pub total_bytes: u64,
}

/// Why a manifest does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON of the expected shape: {0}")]
    NotJson(String),
    #[error("manifest format {0} is not supported (this pgsalvage reads format {FORMAT_VERSION})")]
    Format(u32),
}

impl Manifest {
    /// Parse and check the format version.
    pub fn from_json(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        let m: Manifest = serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
        if m.format != FORMAT_VERSION {
            return Err(ManifestError::Format(m.format));
        }
        Ok(m)
    }
    pub fn entry(&self, path: &str) -> Option<&FileEntry> {
        self.files.iter().find(|f| f.path == path)
    }
    /// The archive path of a data-directory path (through pg_wal's or a tablespace's link).
    pub fn archive_path(&self, rel: &str) -> String {
        for l in &self.links {
            if let Some(rest) = rel.strip_prefix(&l.name).and_then(|r| r.strip_prefix('/')) {
                return format!("{}/{rest}", l.archive_prefix);
            }
        }
        format!("data/{rel}")
    }
}
