//! The relation mapper file `pg_filenode.map` (`src/backend/utils/cache/relmapper.c`): the
//! relfilenodes of mapped catalogs (pg_class, pg_database, ...), whose pg_class.relfilenode
//! is 0. Shared in global/, per database in base/<oid>/.
//!
//! ```text
//! RelMapFile := magic:u32 (0x592717) num_mappings:i32 mappings:{mapoid:u32 mapfilenumber:u32}[N] crc:u32 [pad]
//!   N = 62, file 512 bytes with padding, through PG15; N = 64, 524 bytes, from PG16
//! ```

use super::bytes::{FormatError, Reader};
use super::version::PgMajor;

pub const RELMAPPER_FILEMAGIC: u32 = 0x592717;

/// MAX_MAPPINGS for a major.
pub fn max_mappings(major: PgMajor) -> usize {
    if major.number() >= 16 {
        64
    } else {
        62
    }
}

/// (relation oid, relfilenode) pairs; the CRC is verified.
pub fn parse(major: PgMajor, bytes: &[u8]) -> Result<Vec<(u32, u32)>, FormatError> {
    let r = Reader::new("pg_filenode.map", bytes);
    let magic = r.u32(0)?;
    if magic != RELMAPPER_FILEMAGIC {
        return Err(FormatError::bad("pg_filenode.map", 0, format!("magic {RELMAPPER_FILEMAGIC:#x}"), format!("{magic:#x}")));
    }
    let n = r.i32(4)?;
    let max = max_mappings(major);
    if n < 0 || n as usize > max {
        return Err(FormatError::bad("pg_filenode.map", 4, format!("0 to {max} mappings"), n));
    }
    let crc_off = 8 + max * 8;
    let stored = r.u32(crc_off)?;
    let computed = crc32c::crc32c(&bytes[..crc_off]);
    if stored != computed {
        return Err(FormatError::BadCrc { what: "pg_filenode.map", offset: crc_off, stored, computed });
    }
    (0..n as usize).map(|i| Ok((r.u32(8 + i * 8)?, r.u32(12 + i * 8)?))).collect()
}
