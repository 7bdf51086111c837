//! PostgreSQL major versions 10–18 and the constants that identify them on disk.
//!
//! Sources: `src/include/catalog/pg_control.h` (PG_CONTROL_VERSION),
//! `src/include/catalog/catversion.h` (CATALOG_VERSION_NO of each release branch),
//! `src/include/access/xlog_internal.h` (XLOG_PAGE_MAGIC). 13–16 share control version
//! 1300 and are told apart by catalog version, as pgBackRest does.

use super::FormatError;
use serde::Serialize;
use std::fmt;

/// A supported PostgreSQL major version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PgMajor(u8);

impl Serialize for PgMajor {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(self.0)
    }
}

impl fmt::Display for PgMajor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// (major, PG_CONTROL_VERSION, CATALOG_VERSION_NO of the release, XLOG_PAGE_MAGIC)
const TABLE: [(u8, u32, u32, u16); 9] = [
    (10, 1002, 201707211, 0xD097),
    (11, 1100, 201809051, 0xD098),
    (12, 1201, 201909212, 0xD101),
    (13, 1300, 202007201, 0xD106),
    (14, 1300, 202107181, 0xD10D),
    (15, 1300, 202209061, 0xD110),
    (16, 1300, 202307071, 0xD113),
    (17, 1700, 202406281, 0xD116),
    (18, 1800, 202506291, 0xD118),
];

impl PgMajor {
    pub const MIN: PgMajor = PgMajor(10);
    pub const MAX: PgMajor = PgMajor(18);

    /// A major by number, if supported.
    pub fn new(n: u32) -> Option<PgMajor> {
        (10..=18).contains(&n).then_some(PgMajor(n as u8))
    }
    pub fn all() -> impl Iterator<Item = PgMajor> {
        (10u8..=18).map(PgMajor)
    }
    pub fn number(self) -> u32 {
        self.0 as u32
    }
    fn row(self) -> (u8, u32, u32, u16) {
        TABLE[(self.0 - 10) as usize]
    }
    pub fn control_version(self) -> u32 {
        self.row().1
    }
    /// CATALOG_VERSION_NO of the release branch (beta builds may differ).
    pub fn release_catalog_version(self) -> u32 {
        self.row().2
    }
    pub fn wal_page_magic(self) -> u16 {
        self.row().3
    }

    /// Parse the contents of a PG_VERSION file ("15\n", or "9.6\n" for old clusters).
    pub fn from_pg_version_file(text: &[u8]) -> Result<PgMajor, FormatError> {
        let s = std::str::from_utf8(text).map_err(|_| FormatError::bad("PG_VERSION", 0, "a version number such as \"15\"", "non-UTF-8 bytes"))?;
        let t = s.trim();
        let n: u32 = t.parse().map_err(|_| FormatError::bad("PG_VERSION", 0, "a major version number such as \"15\"", format!("{t:?}")))?;
        PgMajor::new(n).ok_or_else(|| FormatError::UnsupportedVersion { what: "PG_VERSION", offset: 0, found: t.to_string() })
    }

    /// Identify the major from pg_control's version fields. 13–16 share 1300 and are
    /// separated by catalog version ranges.
    pub fn from_control(control_version: u32, catalog_version: u32) -> Result<PgMajor, FormatError> {
        let found = || format!("pg_control version {control_version}, catalog version {catalog_version}");
        let unsupported = || FormatError::UnsupportedVersion { what: "pg_control", offset: 8, found: found() };
        if control_version == 1300 {
            // Each 13..16 major owns catalog versions from its own release number up to the next's.
            let m = match catalog_version {
                c if c < 202007201 => return Err(unsupported()),
                c if c < 202107181 => 13,
                c if c < 202209061 => 14,
                c if c < 202307071 => 15,
                c if c < 202406281 => 16,
                _ => return Err(unsupported()),
            };
            return Ok(PgMajor(m));
        }
        TABLE.iter().find(|r| r.1 == control_version).map(|r| PgMajor(r.0)).ok_or_else(unsupported)
    }

    /// The major whose WAL pages carry this magic.
    pub fn from_wal_magic(magic: u16) -> Option<PgMajor> {
        TABLE.iter().find(|r| r.3 == magic).map(|r| PgMajor(r.0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn detects_every_major_from_control_and_magic() {
        for m in PgMajor::all() {
            assert_eq!(PgMajor::from_control(m.control_version(), m.release_catalog_version()).unwrap(), m);
            assert_eq!(PgMajor::from_wal_magic(m.wal_page_magic()), Some(m));
        }
        assert!(PgMajor::from_control(960, 201608131).is_err());
        assert!(PgMajor::from_control(1300, 201909212).is_err());
        assert!(PgMajor::from_control(1902, 202605131).is_err());
    }

    #[test]
    fn pg_version_file() {
        assert_eq!(PgMajor::from_pg_version_file(b"15\n").unwrap().number(), 15);
        assert!(matches!(PgMajor::from_pg_version_file(b"9.6\n"), Err(FormatError::BadValue { .. })));
        assert!(matches!(PgMajor::from_pg_version_file(b"19\n"), Err(FormatError::UnsupportedVersion { .. })));
        assert!(PgMajor::from_pg_version_file(&[0xff, 0xfe]).is_err());
    }
}
