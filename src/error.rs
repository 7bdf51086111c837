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
    /// An apply or a rollback stopped after its first change: the data directory is neither
    /// as it was nor as planned until `rollback` runs (again).
    #[error("{message}\npartly changed: run `pgsalvage rollback -D {datadir}` to put every changed byte back{also}")]
    Partial { message: String, datadir: String, also: String },
}

impl Error {
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        let hint = match source.kind() {
            std::io::ErrorKind::PermissionDenied => "run pgsalvage as the user that owns the data directory (usually postgres), or as root".to_string(),
            std::io::ErrorKind::NotFound => "check the path; pgsalvage takes the data directory with -D/--pgdata or PGDATA".to_string(),
            _ => "check the file system (dmesg, df) and try again".to_string(),
        };
        Error::Io { op, path: path.into(), source, hint }
    }
    pub fn format(path: impl Into<PathBuf>, source: FormatError, hint: impl Into<String>) -> Error {
        Error::Format { path: path.into(), source, hint: hint.into() }
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
