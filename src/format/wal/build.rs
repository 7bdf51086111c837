//! Writing WAL: records (header, main data, CRC) laid out in a segment with the page
//! headers and continuation flags a reader expects. Used for the segment a WAL reset
//! writes and for a lost segment whose content the surviving WAL proves.
//!
//! The records rebuilt here are the ones a checkpoint writes by itself (`CreateCheckPoint`):
//!
//! ```text
//! 17+ online:  XLOG_CHECKPOINT_REDO (main data: wal_level:i32) at the REDO point
//! online, wal_level >= replica: Standby XLOG_RUNNING_XACTS (xl_running_xacts, 24 bytes:
//!              xcnt:i32 subxcnt:i32 subxid_overflow:bool nextXid oldestRunningXid latestCompletedXid)
//! the checkpoint record (XLOG_CHECKPOINT_ONLINE or _SHUTDOWN, main data: CheckPoint)
//! XLOG_SWITCH (no data): the rest of the segment is unused
//! ```

use super::page::{LONG_HEADER_SIZE, SHORT_HEADER_SIZE, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER};
use super::record::{
    record_crc, RM_XLOG_ID, SIZE_OF_XLOG_RECORD, XLOG_CHECKPOINT_ONLINE, XLOG_CHECKPOINT_SHUTDOWN, XLOG_SWITCH, XLR_BLOCK_ID_DATA_LONG,
    XLR_BLOCK_ID_DATA_SHORT, XL_CRC_OFFSET,
};
use super::segment::{SegNo, WalGeometry};
use crate::format::bytes::{maxalign, FormatError};
use crate::format::control::CheckPoint;
use crate::format::types::{Lsn, TimeLineId, Xid};
use crate::format::version::PgMajor;

pub const RM_STANDBY_ID: u8 = 8;
pub const XLOG_RUNNING_XACTS: u8 = 0x10;
/// PG17+.
pub const XLOG_CHECKPOINT_REDO: u8 = 0xE0;

/// A whole record: header with `xl_tot_len` and CRC, then the main data.
pub fn record(rmid: u8, info: u8, xid: Xid, prev: Lsn, data: &[u8]) -> Vec<u8> {
    let mut r = vec![0u8; SIZE_OF_XLOG_RECORD];
    if !data.is_empty() {
        if data.len() <= 255 {
            r.extend([XLR_BLOCK_ID_DATA_SHORT, data.len() as u8]);
        } else {
            r.push(XLR_BLOCK_ID_DATA_LONG);
            r.extend((data.len() as u32).to_le_bytes());
        }
        r.extend_from_slice(data);
    }
    let tot = r.len() as u32;
    r[0..4].copy_from_slice(&tot.to_le_bytes());
    r[4..8].copy_from_slice(&xid.to_le_bytes());
    r[8..16].copy_from_slice(&prev.0.to_le_bytes());
    r[16] = info;
    r[17] = rmid;
    let crc = record_crc(&r);
    r[XL_CRC_OFFSET..XL_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    r
}

/// The records a checkpoint writes by itself, from the REDO point on, for `cp` (the copy
/// pg_control keeps): each as (rmid, info, main data). `online`: an online checkpoint;
/// `wal_level`: pg_control's.
pub fn checkpoint_records(major: PgMajor, cp: &CheckPoint, online: bool, wal_level: i32) -> Vec<(u8, u8, Vec<u8>)> {
    let mut v = Vec::new();
    if online && major.number() >= 17 {
        v.push((RM_XLOG_ID, XLOG_CHECKPOINT_REDO, wal_level.to_le_bytes().to_vec()));
    }
    // wal_level: minimal 0, replica 1, logical 2 (10+).
    if online && wal_level >= 1 {
        let next = cp.next_xid.xid();
        let oldest = if cp.oldest_active_xid != 0 { cp.oldest_active_xid } else { next };
        let mut d = vec![0u8; 24];
        d[12..16].copy_from_slice(&next.to_le_bytes());
        d[16..20].copy_from_slice(&oldest.to_le_bytes());
        d[20..24].copy_from_slice(&next.wrapping_sub(1).max(3).to_le_bytes());
        v.push((RM_STANDBY_ID, XLOG_RUNNING_XACTS, d));
    }
    v.push((RM_XLOG_ID, if online { XLOG_CHECKPOINT_ONLINE } else { XLOG_CHECKPOINT_SHUTDOWN }, CheckPoint::encode(cp, major)));
    v
}

/// A segment being written: zeroes with a long page header, records placed at their LSNs.
pub struct SegmentWriter {
    g: WalGeometry,
    magic: u16,
    tli: TimeLineId,
    start: Lsn,
    bytes: Vec<u8>,
}

impl SegmentWriter {
    pub fn new(g: WalGeometry, major: PgMajor, tli: TimeLineId, sysid: u64, segno: SegNo) -> SegmentWriter {
        let mut w = SegmentWriter { g, magic: major.wal_page_magic(), tli, start: g.segment_start(segno), bytes: vec![0u8; g.seg_size as usize] };
        w.page_header(0, 0, 0);
        w.bytes[24..32].copy_from_slice(&sysid.to_le_bytes());
        w.bytes[32..36].copy_from_slice(&g.seg_size.to_le_bytes());
        w.bytes[36..40].copy_from_slice(&g.block_size.to_le_bytes());
        w
    }

    /// The header of the page at `off` in the segment: long for the first page.
    fn page_header(&mut self, off: usize, flags: u16, rem_len: u32) {
        let info = flags | if off == 0 { XLP_LONG_HEADER } else { 0 };
        let b = &mut self.bytes[off..off + SHORT_HEADER_SIZE];
        b[0..2].copy_from_slice(&self.magic.to_le_bytes());
        b[2..4].copy_from_slice(&info.to_le_bytes());
        b[4..8].copy_from_slice(&self.tli.to_le_bytes());
        b[8..16].copy_from_slice(&(self.start.0 + off as u64).to_le_bytes());
        b[16..20].copy_from_slice(&rem_len.to_le_bytes());
    }

    fn header_size(off: usize, bs: usize) -> usize {
        if off % bs != 0 {
            0
        } else if off == 0 {
            LONG_HEADER_SIZE
        } else {
            SHORT_HEADER_SIZE
        }
    }

    /// Write `rec` at `lsn`; where the next record starts.
    pub fn put(&mut self, lsn: Lsn, rec: &[u8]) -> Result<Lsn, FormatError> {
        self.place(lsn, rec.len(), Some(rec))
    }

    fn place(&mut self, lsn: Lsn, len: usize, rec: Option<&[u8]>) -> Result<Lsn, FormatError> {
        let bs = self.g.block_size as usize;
        let seg = self.g.seg_size as usize;
        let bad = |what: String| FormatError::bad("rebuilt WAL segment", 0, "a record inside the segment", what);
        let mut off = lsn.0.checked_sub(self.start.0).filter(|&o| o < seg as u64).ok_or_else(|| bad(format!("{lsn}")))? as usize;
        let page = off - off % bs;
        if off == page {
            off += Self::header_size(page, bs);
        } else if off - page < Self::header_size(page, bs) || off % 8 != 0 {
            return Err(bad(format!("{lsn} inside a page header or not aligned")));
        }
        if rec.is_some() {
            self.ensure_page(Lsn(self.start.0 + page as u64));
        }
        let mut done = 0;
        loop {
            let take = (bs - off % bs).min(len - done);
            if let Some(r) = rec {
                self.bytes[off..off + take].copy_from_slice(&r[done..done + take]);
            }
            done += take;
            off += take;
            if done == len {
                break;
            }
            // The rest goes on the next page, after a header saying how much is left.
            if off >= seg {
                return Err(bad(format!("a record at {lsn} running past the segment")));
            }
            if rec.is_some() {
                self.page_header(off, XLP_FIRST_IS_CONTRECORD, (len - done) as u32);
            }
            off += SHORT_HEADER_SIZE;
        }
        Ok(Lsn(self.start.0 + maxalign(off) as u64))
    }

    /// Give the page holding `lsn` a header if it has none yet.
    fn ensure_page(&mut self, lsn: Lsn) {
        let bs = self.g.block_size as usize;
        let off = (lsn.0 - self.start.0) as usize;
        let page = off - off % bs;
        if page != 0 && self.bytes[page..page + 2] == [0, 0] {
            self.page_header(page, 0, 0);
        }
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// A lost segment rebuilt from what proves its content: the checkpoint's own records from
/// the REDO point (`redo`) to the checkpoint record (`checkpoint`), then a switch record at
/// `switch`. `first_prev`: xl_prev of the first record (unknown; recovery, starting there,
/// only checks that it precedes it). Err when the records do not land exactly on those
/// positions: then the segment held something else too and cannot be rebuilt.
#[allow(clippy::too_many_arguments)]
pub fn checkpoint_segment(
    g: WalGeometry,
    major: PgMajor,
    sysid: u64,
    cp: &CheckPoint,
    online: bool,
    wal_level: i32,
    checkpoint: Lsn,
    switch: Lsn,
) -> Result<Vec<u8>, FormatError> {
    let redo = cp.redo_lsn;
    let segno = g.segno(redo);
    let mut w = SegmentWriter::new(g, major, cp.timeline_id, sysid, segno);
    let mismatch = |what: &str, at: Lsn, want: Lsn| FormatError::bad("rebuilt WAL segment", 0, format!("{what} at {want}"), format!("{at}"));
    let (mut at, mut prev) = (redo, g.segment_start(segno));
    for (rmid, info, data) in checkpoint_records(major, cp, online, wal_level) {
        if rmid == RM_XLOG_ID && matches!(info, XLOG_CHECKPOINT_ONLINE | XLOG_CHECKPOINT_SHUTDOWN) && at != checkpoint {
            return Err(mismatch("the checkpoint record", at, checkpoint));
        }
        let rec = record(rmid, info, 0, prev, &data);
        let next = w.put(at, &rec)?;
        prev = at;
        at = next;
    }
    if at != switch {
        return Err(mismatch("the switch record", at, switch));
    }
    w.put(at, &record(RM_XLOG_ID, XLOG_SWITCH, 0, prev, &[]))?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::super::reader::{MemorySource, WalReader};
    use super::*;

    #[test]
    fn records_cross_pages_with_continuation_headers() {
        let major = PgMajor::new(15).expect("15");
        let g = WalGeometry::new(1 << 20, 8192).expect("geometry");
        let mut w = SegmentWriter::new(g, major, 1, 42, 3);
        let start = Lsn(3 * (1 << 20) + 8192 - 48);
        let big = record(RM_XLOG_ID, 0x20, 0, Lsn(5), &[7u8; 300]);
        let next = w.put(start, &big).expect("fits");
        let small = record(RM_XLOG_ID, 0x20, 0, start, &[1, 2, 3]);
        w.put(next, &small).expect("fits");
        let mut r = WalReader::new(MemorySource { first_segno: 3, segments: vec![w.finish()] }, major, g, Some(42));
        let a = r.read_record(start, None).expect("first record reads across the page");
        assert_eq!(a.record.main_data(), &[7u8; 300][..]);
        assert_eq!(a.next, next);
        let b = r.read_record(next, Some(start)).expect("second record follows");
        assert_eq!(b.record.main_data(), &[1, 2, 3]);
    }
}
