//! pgsalvage: safe, explainable, reversible last-resort salvage for stopped PostgreSQL
//! 10–18 data directories.
//!
//! Layers, each depending only on those above it:
//! - [`format`]: pure parse/encode of on-disk structures (no I/O);
//! - [`datadir`]: a data directory on disk (read-only access, postmaster liveness);
//! - [`inspect`]: the `inspect` report.
//!
//! The CLI (`src/cli`, binary only) is a thin clap layer over these.

pub mod apply;
pub mod catalog;
pub mod check;
pub mod datadir;
pub mod diagnose;
pub mod error;
pub mod finding;
pub mod format;
pub mod fsx;
#[doc(hidden)]
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod inspect;
pub mod inventory;
pub mod journal;
pub mod plan;
pub mod rehearse;
pub mod rollback;
pub mod snapshot;
pub mod units;
