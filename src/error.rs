//! The engine's error type: what went wrong, where (file relative to the data directory,
//! offset), and a hint with the next step. Damage found in the data is not an error but a
//! finding; errors are for what stops a command from running at all.

use crate::format::FormatError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: not a PostgreSQL data directory: {reason}\nhint: {hint}")]
    NotADataDirectory { path: PathBuf, reason: String, hint: String },
    #[error("could not {op} \"{path}\": {source}\nhint: {hint}")]
    Io { op: &'static str, path: PathBuf, source: std::io::Error, hint: String },
    #[error("\"{path}\": {source}\nhint: {hint}")]
    Format { path: PathBuf, source: FormatError, hint: String },
    #[error("{message}\nhint: {hint}")]
    Refused { message: String, hint: String },
    #[error("{0}")]
    Usage(String),
    /// A file given to the command is not what it needs (not a plan, not a snapshot): exit 4.
    #[error("{path}: {message}\nhint: {hint}")]
    Unusable { path: PathBuf, message: String, hint: String },
    /// The command examined its input and found it damaged (an archive that fails its
    /// checksums): exit 1, like damage found in a data directory.
    #[error("{path}: {message}\nhint: {hint}")]
    Damaged { path: PathBuf, message: String, hint: String },
    /// A bug in pgsalvage, not a problem of the cluster or of the input.
    #[error("internal error: {0}\nhint: this is a bug in pgsalvage; nothing was changed by this step. Please report it with the command line")]
    Internal(String),
    /// An apply or a rollback stopped after its first change: the data directory is neither
    /// as it was nor as planned until `rollback` runs (again).
    #[error("{message}\npartly changed: run `pgsalvage rollback -D {datadir}` to put every changed byte back{also}")]
    Partial { message: String, datadir: String, also: String },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let path = path.into();
        let hint = io_hint(op, &path, &source);
        Error::Io { op, path, source, hint }
    }
    pub fn format(path: impl Into<PathBuf>, source: FormatError, hint: impl Into<String>) -> Error {
        Error::Format { path: path.into(), source, hint: hint.into() }
    }
}

/// The next step for an I/O error: it depends on what failed and on what pgsalvage was doing
/// (a missing plan file is not a wrong -D).
fn io_hint(op: &str, path: &std::path::Path, e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    let creating = op.starts_with("create") || op.starts_with("write") || op.starts_with("rename");
    let datadir = op.contains("data directory");
    match e.kind() {
        K::PermissionDenied => "run pgsalvage as the user that owns the data directory (usually postgres: sudo -u postgres pgsalvage ...), or as root".into(),
        K::NotFound if datadir => "check the path; pgsalvage takes the data directory with -D/--pgdata or the PGDATA environment variable".into(),
        K::NotFound if creating => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            format!("the directory \"{}\" does not exist: create it, or choose another path", dir.display())
        }
        K::NotFound => "check the path".into(),
        K::AlreadyExists => "pgsalvage never overwrites a file: choose another name, or move the existing one aside".into(),
        K::StorageFull => "free space on that file system (df -h) and try again".into(),
        K::ReadOnlyFilesystem => "that file system is mounted read-only: choose a path on a writable one".into(),
        _ => "check the file system (dmesg, df -h) and try again".into(),
    }
}

/// A format error located in a file: what `check`/`inspect` report for damaged files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    /// Path relative to the data directory.
    pub file: String,
    pub offset: usize,
    pub message: String,
}

impl Located {
    pub fn new(file: impl Into<String>, e: &FormatError) -> Located {
        Located { file: file.into(), offset: e.offset(), message: e.to_string() }
    }
}

impl std::fmt::Display for Located {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (offset {}): {}", self.file, self.offset, self.message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
