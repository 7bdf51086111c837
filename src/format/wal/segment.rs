//! WAL segment arithmetic and file names (`XLogFileName`, `XLByteToSeg`, `IsXLogFileName`).

use super::super::bytes::FormatError;
use super::super::types::{Lsn, TimeLineId};

pub type SegNo = u64;

/// Segment and page sizes of a cluster's WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalGeometry {
    pub seg_size: u32,
    pub block_size: u32,
}

impl WalGeometry {
    /// Valid sizes only: segment a power of two 1 MB–1 GB (IsValidWalSegSize), page a
    /// power of two 1–64 KB not larger than the segment.
    pub fn new(seg_size: u32, block_size: u32) -> Result<WalGeometry, FormatError> {
        if !seg_size.is_power_of_two() || !(1 << 20..=1 << 30).contains(&seg_size) {
            return Err(FormatError::bad("WAL segment size", 0, "a power of two from 1 MB to 1 GB", seg_size));
        }
        if !block_size.is_power_of_two() || !(1024..=65536).contains(&block_size) {
            return Err(FormatError::bad("WAL block size", 0, "a power of two from 1 KB to 64 KB", block_size));
        }
        Ok(WalGeometry { seg_size, block_size })
    }
    /// XLogSegmentsPerXLogId.
    pub fn segments_per_xlogid(&self) -> u64 {
        0x1_0000_0000 / self.seg_size as u64
    }
    /// XLByteToSeg.
    pub fn segno(&self, lsn: Lsn) -> SegNo {
        lsn.0 / self.seg_size as u64
    }
    /// XLogSegmentOffset.
    pub fn offset_in_segment(&self, lsn: Lsn) -> u32 {
        (lsn.0 % self.seg_size as u64) as u32
    }
    /// XLogSegNoOffsetToRecPtr(segno, 0).
    pub fn segment_start(&self, segno: SegNo) -> Lsn {
        Lsn(segno.saturating_mul(self.seg_size as u64))
    }
    /// XLogFileName: `%08X%08X%08X` of timeline, segno / per-id, segno % per-id.
    pub fn file_name(&self, tli: TimeLineId, segno: SegNo) -> String {
        let per = self.segments_per_xlogid();
        format!("{:08X}{:08X}{:08X}", tli, segno / per, segno % per)
    }
    /// Parse a WAL segment file name (24 upper-case hex digits) into (timeline, segno).
    /// Returns None for other names, and for names impossible at this segment size.
    pub fn parse_file_name(&self, name: &str) -> Option<(TimeLineId, SegNo)> {
        if name.len() != 24 || !name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) {
            return None;
        }
        let tli = u32::from_str_radix(&name[0..8], 16).ok()?;
        let log = u64::from_str_radix(&name[8..16], 16).ok()?;
        let seg = u64::from_str_radix(&name[16..24], 16).ok()?;
        if seg >= self.segments_per_xlogid() {
            return None;
        }
        Some((tli, log * self.segments_per_xlogid() + seg))
    }
}

/// Whether a name looks like any WAL segment file name, whatever the segment size.
pub fn is_wal_file_name(name: &str) -> bool {
    name.len() == 24 && name.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_for_every_segment_size() {
        let g = WalGeometry::new(16 << 20, 8192).unwrap();
        assert_eq!(g.file_name(1, g.segno(Lsn(0x0900_0110))), "000000010000000000000009");
        assert_eq!(g.parse_file_name("000000010000000000000009"), Some((1, 9)));
        let mut size = 1u32 << 20;
        while size <= 1 << 30 {
            let g = WalGeometry::new(size, 8192).unwrap();
            for segno in [0u64, 1, 255, g.segments_per_xlogid() - 1, g.segments_per_xlogid(), 123_456] {
                let n = g.file_name(7, segno);
                assert_eq!(g.parse_file_name(&n), Some((7, segno)), "size {size} segno {segno}");
            }
            size <<= 1;
        }
        assert!(WalGeometry::new(3 << 20, 8192).is_err());
        assert!(WalGeometry::new(1 << 19, 8192).is_err());
        assert!(WalGeometry::new(2 << 30, 8192).is_err());
        let g64 = WalGeometry::new(64 << 20, 8192).unwrap();
        assert_eq!(g64.parse_file_name("000000010000000000000040"), None);
        assert_eq!(g64.file_name(1, 64), "000000010000000100000000");
    }
}
