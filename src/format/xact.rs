//! pg_xact (clog) SLRU: 2 status bits per xid (`src/backend/access/transam/clog.c`,
//! `access/slru.h`). Unchanged in 10–18 apart from the directory name (pg_clog before 10)
//! and PG17's optional long SLRU names, which pg_xact does not use.
//!
//! ```text
//! segment file "%04X" := page[SLRU_PAGES_PER_SEGMENT = 32]
//! page (BLCKSZ bytes) := byte[BLCKSZ], byte b holds xids 4b..4b+3, xid k at bits 2(k%4)..
//! ```
//! With 8 KB blocks a page holds 32,768 xids and a 256 KB segment 1,048,576.

use super::bytes::FormatError;
use super::types::Xid;
use serde::Serialize;

pub const BITS_PER_XACT: u32 = 2;
pub const XACTS_PER_BYTE: u32 = 4;
pub const SLRU_PAGES_PER_SEGMENT: u32 = 32;

/// TRANSACTION_STATUS_* values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum XactStatus {
    InProgress,
    Committed,
    Aborted,
    SubCommitted,
}

impl XactStatus {
    pub fn from_bits(b: u8) -> XactStatus {
        match b & 3 {
            0 => XactStatus::InProgress,
            1 => XactStatus::Committed,
            2 => XactStatus::Aborted,
            _ => XactStatus::SubCommitted,
        }
    }
    pub fn bits(self) -> u8 {
        match self {
            XactStatus::InProgress => 0,
            XactStatus::Committed => 1,
            XactStatus::Aborted => 2,
            XactStatus::SubCommitted => 3,
        }
    }
}

/// Page/segment arithmetic for a block size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClogGeometry {
    pub block_size: u32,
}

impl ClogGeometry {
    pub fn new(block_size: u32) -> ClogGeometry {
        ClogGeometry { block_size }
    }
    pub fn xacts_per_page(&self) -> u32 {
        self.block_size * XACTS_PER_BYTE
    }
    pub fn xacts_per_segment(&self) -> u64 {
        self.xacts_per_page() as u64 * SLRU_PAGES_PER_SEGMENT as u64
    }
    pub fn segment_bytes(&self) -> u64 {
        self.block_size as u64 * SLRU_PAGES_PER_SEGMENT as u64
    }
    /// TransactionIdToPage.
    pub fn page_of(&self, xid: Xid) -> u32 {
        xid / self.xacts_per_page()
    }
    /// The segment number holding a page.
    pub fn segment_of_page(&self, page: u32) -> u32 {
        page / SLRU_PAGES_PER_SEGMENT
    }
    pub fn segment_of(&self, xid: Xid) -> u32 {
        self.segment_of_page(self.page_of(xid))
    }
    /// Byte offset of the xid's status inside its segment file, and the bit shift.
    pub fn position(&self, xid: Xid) -> (u64, u32) {
        let page = self.page_of(xid);
        let in_page = xid % self.xacts_per_page();
        let byte = (page % SLRU_PAGES_PER_SEGMENT) as u64 * self.block_size as u64 + (in_page / XACTS_PER_BYTE) as u64;
        (byte, (in_page % XACTS_PER_BYTE) * BITS_PER_XACT)
    }
    /// The first and last xid stored on a page.
    pub fn page_xids(&self, page: u32) -> (Xid, Xid) {
        let first = page as u64 * self.xacts_per_page() as u64;
        (first as Xid, (first + self.xacts_per_page() as u64 - 1).min(u32::MAX as u64) as Xid)
    }
    /// Status of `xid` from the bytes of its segment file.
    pub fn status_in_segment(&self, segment: &[u8], xid: Xid) -> Result<XactStatus, FormatError> {
        let (byte, shift) = self.position(xid);
        match segment.get(byte as usize) {
            Some(b) => Ok(XactStatus::from_bits(b >> shift)),
            None => Err(FormatError::Truncated { what: "pg_xact segment", offset: byte as usize, needed: 1, have: segment.len() }),
        }
    }
    /// Write a status into segment bytes (for synthesized pages; bounds are the caller's).
    pub fn set_status(&self, segment: &mut [u8], xid: Xid, status: XactStatus) -> Result<(), FormatError> {
        let (byte, shift) = self.position(xid);
        let len = segment.len();
        let b = segment.get_mut(byte as usize).ok_or(FormatError::Truncated { what: "pg_xact segment", offset: byte as usize, needed: 1, have: len })?;
        *b = (*b & !(3 << shift)) | (status.bits() << shift);
        Ok(())
    }
}

/// File name of a pg_xact segment: `%04X` (SlruFileName with short names; the name widens
/// past 4 digits only for segment numbers above 0xFFFF, which 32-bit xids never reach
/// with 8 KB pages).
pub fn segment_file_name(segno: u32) -> String {
    format!("{segno:04X}")
}

/// Parse a segment file name back (4 to 6 upper-case hex digits as SlruScanDirectory accepts).
pub fn parse_segment_file_name(name: &str) -> Option<u32> {
    if !(4..=6).contains(&name.len()) || !name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
        return None;
    }
    u32::from_str_radix(name, 16).ok()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn incident_xid_maps_to_0fff() {
        // `could not access status of transaction 4294692688 / Could not open file "pg_clog/0FFF"`
        let g = ClogGeometry::new(8192);
        assert_eq!(segment_file_name(g.segment_of(4294692688)), "0FFF");
        // ... and the second one, 2319990784 -> 08A4
        assert_eq!(segment_file_name(g.segment_of(2319990784)), "08A4");
        assert_eq!(g.xacts_per_segment(), 1_048_576);
        assert_eq!(g.segment_bytes(), 262_144);
    }

    #[test]
    fn status_bits() {
        let g = ClogGeometry::new(8192);
        let mut seg = vec![0u8; 262_144];
        g.set_status(&mut seg, 5, XactStatus::Committed).unwrap();
        g.set_status(&mut seg, 6, XactStatus::Aborted).unwrap();
        assert_eq!(seg[1], 0b0010_0100);
        assert_eq!(g.status_in_segment(&seg, 5).unwrap(), XactStatus::Committed);
        assert_eq!(g.status_in_segment(&seg, 6).unwrap(), XactStatus::Aborted);
        assert_eq!(g.status_in_segment(&seg, 7).unwrap(), XactStatus::InProgress);
        assert!(g.status_in_segment(&seg[..10], 100).is_err());
        assert_eq!(parse_segment_file_name("0FFF"), Some(0xFFF));
        assert_eq!(parse_segment_file_name("0fff"), None);
        assert_eq!(parse_segment_file_name("0FFF.tmp"), None);
    }
}
