//! Pure on-disk format code: bytes in, checked values (or a precise [`FormatError`]) out.
//!
//! Nothing below this module touches the filesystem, the clock or the environment; callers
//! read the bytes and attach the file name to errors (see [`crate::error::Located`]).
//! Per-version differences of a structure live in that structure's module, in one place.

pub mod bytes;
pub mod checksum;
pub mod control;
pub mod page;
pub mod relmap;
pub mod types;
pub mod version;
pub mod wal;
pub mod xact;

pub use bytes::FormatError;
