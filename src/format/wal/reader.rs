//! Reading records across pages and segments, after `XLogReadRecord` in `xlogreader.c`.
//! The pages come from a [`WalSource`] the caller implements (files, memory, an archive),
//! which keeps this module free of I/O.

use super::page::{validate_page_header, PageExpect, WalPageHeader};
use super::record::{decode_record, record_crc, DecodedRecord, RecordHeader, RM_XLOG_ID, SIZE_OF_XLOG_RECORD, XLOG_SWITCH};
use super::segment::{SegNo, WalGeometry};
use crate::format::bytes::{maxalign, FormatError};
use crate::format::types::Lsn;
use crate::format::version::PgMajor;
use serde::Serialize;

/// Why a WAL page could not be had.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageFetch {
    /// No file holds this segment.
    MissingSegment,
    /// The segment file is shorter than this page.
    ShortSegment { file_len: u64 },
}

/// Where WAL pages come from.
pub trait WalSource {
    /// The `len` bytes (one WAL block) of the page at `offset` in segment `segno`,
    /// borrowed without a copy.
    fn page(&mut self, segno: SegNo, offset: u32, len: usize) -> Result<&[u8], PageFetch>;
}

/// Why reading stopped. `EndOfWal` is how valid WAL normally ends (zeroed space, a
/// recycled segment); the others are damage when they happen before the end expected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum WalError {
    #[error("WAL segment {segno} (needed for {lsn}) is missing")]
    MissingSegment { segno: SegNo, lsn: Lsn },
    #[error("WAL segment {segno} is short ({file_len} bytes): page at {lsn} is not there")]
    ShortSegment { segno: SegNo, lsn: Lsn, file_len: u64 },
    #[error("invalid WAL page header at {lsn}: {problem}")]
    InvalidPageHeader { lsn: Lsn, problem: String, zeroed: bool, recycled: bool },
    #[error("invalid record length at {lsn}: expected at least 24, got 0")]
    ZeroLength { lsn: Lsn },
    #[error("invalid record at {lsn}: {problem}")]
    InvalidRecord { lsn: Lsn, problem: String },
    #[error("incorrect resource manager data checksum in record at {lsn}: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { lsn: Lsn, stored: u32, computed: u32 },
    #[error("there is no contrecord flag at {lsn} (record started at {record})")]
    MissingContrecord { lsn: Lsn, record: Lsn },
}

impl WalError {
    /// The LSN the error is about.
    pub fn lsn(&self) -> Lsn {
        match self {
            WalError::MissingSegment { lsn, .. }
            | WalError::ShortSegment { lsn, .. }
            | WalError::InvalidPageHeader { lsn, .. }
            | WalError::ZeroLength { lsn }
            | WalError::InvalidRecord { lsn, .. }
            | WalError::BadCrc { lsn, .. }
            | WalError::MissingContrecord { lsn, .. } => *lsn,
        }
    }
}

/// A record and where the next one starts.
#[derive(Clone, Debug)]
pub struct ReadRecord {
    pub record: DecodedRecord,
    pub end: Lsn,
    pub next: Lsn,
}

/// No WAL position comes near 2^64 (16 EB of WAL); positions past this are damage, and
/// refusing them keeps every sum below (a record of at most 4 GiB, its page headers, the
/// next segment) from overflowing.
const LSN_LIMIT: u64 = u64::MAX - (1 << 40);

pub struct WalReader<S: WalSource> {
    pub source: S,
    pub major: PgMajor,
    pub geometry: WalGeometry,
    pub sysid: Option<u64>,
    /// Pages read so far (for statistics).
    pub pages_read: u64,
}

impl<S: WalSource> WalReader<S> {
    pub fn new(source: S, major: PgMajor, geometry: WalGeometry, sysid: Option<u64>) -> Self {
        WalReader { source, major, geometry, sysid, pages_read: 0 }
    }

    /// The bytes of the page starting at `page_start`.
    fn page_bytes(&mut self, page_start: Lsn) -> Result<&[u8], WalError> {
        let segno = self.geometry.segno(page_start);
        let off = self.geometry.offset_in_segment(page_start);
        self.source.page(segno, off, self.geometry.block_size as usize).map_err(|f| match f {
            PageFetch::MissingSegment => WalError::MissingSegment { segno, lsn: page_start },
            PageFetch::ShortSegment { file_len } => WalError::ShortSegment { segno, lsn: page_start, file_len },
        })
    }

    /// Load and validate the page starting at `page_start`.
    pub fn load_page(&mut self, page_start: Lsn) -> Result<WalPageHeader, WalError> {
        let expect =
            PageExpect { major: self.major, pageaddr: page_start, seg_size: self.geometry.seg_size, block_size: self.geometry.block_size, sysid: self.sysid };
        let (magic, bs) = (self.major.wal_page_magic(), self.geometry.block_size as u64);
        self.pages_read += 1;
        let page = self.page_bytes(page_start)?;
        // Only computed on the error paths: scanning every page for zeroes costs as much as its CRC.
        let zeroed = |p: &[u8]| p.iter().all(|&b| b == 0);
        let h = WalPageHeader::parse(page).map_err(|e| WalError::InvalidPageHeader {
            lsn: page_start,
            problem: e.to_string(),
            zeroed: zeroed(page),
            recycled: false,
        })?;
        validate_page_header(&h, &expect).map_err(|problem| {
            // A page from an older cycle of a recycled segment: valid magic, older address.
            let recycled = h.magic == magic && h.pageaddr < page_start && h.pageaddr.0 % bs == 0;
            WalError::InvalidPageHeader { lsn: page_start, problem: problem.to_string(), zeroed: zeroed(page), recycled }
        })?;
        Ok(h)
    }

    /// Where the first record that starts in segment `segno` begins: past the long header
    /// and past the continuation of a record from the previous segment (xlp_rem_len, over
    /// as many pages as it takes). None when no record starts in the segment.
    pub fn first_record_in_segment(&mut self, segno: SegNo) -> Result<Option<Lsn>, WalError> {
        let bs = self.geometry.block_size as u64;
        let seg_start = self.geometry.segment_start(segno);
        if seg_start.0 > LSN_LIMIT {
            return Err(WalError::InvalidRecord { lsn: seg_start, problem: format!("segment {segno} lies beyond any possible WAL position") });
        }
        let seg_end = Lsn(seg_start.0 + self.geometry.seg_size as u64);
        let mut page = seg_start;
        let mut h = self.load_page(page)?;
        let mut rem = if h.is_contrecord() { h.rem_len as u64 } else { 0 };
        loop {
            let data_start = page.0 + h.size() as u64;
            let avail = bs - h.size() as u64;
            if rem <= avail {
                let start = Lsn(maxalign((data_start + rem) as usize) as u64);
                return Ok((start < seg_end).then_some(start));
            }
            rem -= avail;
            page = Lsn(page.0 + bs);
            if page >= seg_end {
                return Ok(None);
            }
            h = self.load_page(page)?;
            if !h.is_contrecord() || h.rem_len as u64 != rem {
                return Err(WalError::InvalidRecord { lsn: page, problem: format!("invalid contrecord length {} (expected {rem})", h.rem_len) });
            }
        }
    }

    /// Read the record starting at `start`. With `expected_prev`, the record's xl_prev
    /// must equal it (sequential reading); without, it must merely precede `start`.
    pub fn read_record(&mut self, start: Lsn, expected_prev: Option<Lsn>) -> Result<ReadRecord, WalError> {
        if start.0 > LSN_LIMIT {
            return Err(WalError::InvalidRecord { lsn: start, problem: "the position lies beyond any possible WAL position".into() });
        }
        let bs = self.geometry.block_size as u64;
        let mut lsn = start;
        let mut page_start = Lsn(lsn.0 - lsn.0 % bs);
        let h = self.load_page(page_start)?;
        let hsize = h.size() as u64;
        let in_page = lsn.0 % bs;
        if in_page == 0 {
            lsn = Lsn(lsn.0 + hsize);
        } else if in_page < hsize {
            return Err(WalError::InvalidRecord { lsn, problem: format!("invalid record offset: {in_page} is inside the page header") });
        }
        if lsn.0 % 8 != 0 {
            return Err(WalError::InvalidRecord { lsn, problem: "record start is not MAXALIGNed".into() });
        }
        if h.is_contrecord() && lsn.0 % bs == hsize {
            return Err(WalError::InvalidRecord { lsn, problem: "contrecord is requested: the page starts with the rest of an earlier record".into() });
        }
        let mut pos = (lsn.0 % bs) as usize;
        let tot_len = {
            let p = self.page_bytes(page_start)?;
            u32::from_le_bytes([p[pos], p[pos + 1], p[pos + 2], p[pos + 3]]) as usize
        };
        if tot_len == 0 {
            return Err(WalError::ZeroLength { lsn });
        }
        if tot_len < SIZE_OF_XLOG_RECORD {
            return Err(WalError::InvalidRecord { lsn, problem: format!("invalid record length: expected at least 24, got {tot_len}") });
        }
        let mut buf: Vec<u8> = Vec::with_capacity(tot_len.min(1 << 16));
        let mut validated = false;
        let mut last_take;
        let mut last_hsize = 0u64;
        let mut multi_page = false;
        loop {
            let take = (bs as usize - pos).min(tot_len - buf.len());
            buf.extend_from_slice(&self.page_bytes(page_start)?[pos..pos + take]);
            last_take = take;
            if !validated && buf.len() >= SIZE_OF_XLOG_RECORD {
                self.validate_header(lsn, &buf, expected_prev)?;
                validated = true;
            }
            if buf.len() == tot_len {
                break;
            }
            page_start = Lsn(page_start.0 + bs);
            multi_page = true;
            let h = self.load_page(page_start).map_err(|e| match e {
                // A missing or bad continuation page is a torn record, reported at its start.
                WalError::InvalidPageHeader { lsn: pl, problem, zeroed, recycled } => {
                    WalError::InvalidPageHeader { lsn: pl, problem: format!("{problem} (while reading the rest of the record at {lsn})"), zeroed, recycled }
                }
                other => other,
            })?;
            if !h.is_contrecord() {
                return Err(WalError::MissingContrecord { lsn: page_start, record: lsn });
            }
            let remaining = tot_len - buf.len();
            if h.rem_len as usize != remaining {
                return Err(WalError::InvalidRecord {
                    lsn: page_start,
                    problem: format!("invalid contrecord length {} (expected {remaining}) for the record at {lsn}", h.rem_len),
                });
            }
            last_hsize = h.size() as u64;
            pos = h.size();
        }
        let header = RecordHeader::parse(&buf).map_err(|e| WalError::InvalidRecord { lsn, problem: e.to_string() })?;
        let computed = record_crc(&buf);
        if computed != header.crc {
            return Err(WalError::BadCrc { lsn, stored: header.crc, computed });
        }
        let end = if multi_page { Lsn(page_start.0 + last_hsize + last_take as u64) } else { Lsn(lsn.0 + tot_len as u64) };
        let mut next = Lsn(maxalign(end.0 as usize) as u64);
        if header.rmid == RM_XLOG_ID && header.info & 0xF0 == XLOG_SWITCH {
            // The rest of the segment is unused after a switch record.
            let seg = self.geometry.seg_size as u64;
            if end.0 % seg != 0 {
                next = Lsn((end.0 / seg + 1) * seg);
            }
        }
        let record = decode_record(self.major, lsn, buf).map_err(|e: FormatError| WalError::InvalidRecord { lsn, problem: e.to_string() })?;
        Ok(ReadRecord { record, end, next })
    }

    fn validate_header(&self, lsn: Lsn, buf: &[u8], expected_prev: Option<Lsn>) -> Result<(), WalError> {
        let h = RecordHeader::parse(buf).map_err(|e| WalError::InvalidRecord { lsn, problem: e.to_string() })?;
        if !h.rmid_valid(self.major) {
            return Err(WalError::InvalidRecord { lsn, problem: format!("invalid resource manager ID {}", h.rmid) });
        }
        match expected_prev {
            Some(p) if h.prev != p => Err(WalError::InvalidRecord { lsn, problem: format!("record with incorrect prev-link {} (expected {p})", h.prev) }),
            None if h.prev >= lsn => Err(WalError::InvalidRecord { lsn, problem: format!("record with incorrect prev-link {}", h.prev) }),
            _ => Ok(()),
        }
    }
}

/// WAL held in memory: consecutive segments starting at `first_segno` (tests, fixtures).
pub struct MemorySource {
    pub first_segno: SegNo,
    pub segments: Vec<Vec<u8>>,
}

impl WalSource for MemorySource {
    fn page(&mut self, segno: SegNo, offset: u32, len: usize) -> Result<&[u8], PageFetch> {
        let seg = segno.checked_sub(self.first_segno).and_then(|i| self.segments.get(i as usize)).ok_or(PageFetch::MissingSegment)?;
        let o = offset as usize;
        seg.get(o..o + len).ok_or(PageFetch::ShortSegment { file_len: seg.len() as u64 })
    }
}
