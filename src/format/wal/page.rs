//! WAL page headers and their validation (XLogReaderValidatePageHeader).

use super::super::bytes::{FormatError, Reader};
use super::super::types::{Lsn, TimeLineId};
use super::super::version::PgMajor;
use serde::Serialize;

pub const XLP_FIRST_IS_CONTRECORD: u16 = 0x0001;
pub const XLP_LONG_HEADER: u16 = 0x0002;
pub const XLP_BKP_REMOVABLE: u16 = 0x0004;
/// Added in 15 and back-patched to the 10–14 minor releases of August 2021.
pub const XLP_FIRST_IS_OVERWRITE_CONTRECORD: u16 = 0x0008;
pub const XLP_ALL_FLAGS: u16 = 0x000F;
/// SizeOfXLogShortPHD / SizeOfXLogLongPHD (MAXALIGNed).
pub const SHORT_HEADER_SIZE: usize = 24;
pub const LONG_HEADER_SIZE: usize = 40;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct LongHeader {
    pub sysid: u64,
    pub seg_size: u32,
    pub xlog_blcksz: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct WalPageHeader {
    pub magic: u16,
    pub info: u16,
    pub tli: TimeLineId,
    pub pageaddr: Lsn,
    pub rem_len: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long: Option<LongHeader>,
}

impl WalPageHeader {
    /// Decode without judging (any bytes of sufficient length decode).
    pub fn parse(page: &[u8]) -> Result<WalPageHeader, FormatError> {
        let r = Reader::new("WAL page header", page);
        let info = r.u16(2)?;
        r.need(0, SHORT_HEADER_SIZE)?;
        let long = if info & XLP_LONG_HEADER != 0 { Some(LongHeader { sysid: r.u64(24)?, seg_size: r.u32(32)?, xlog_blcksz: r.u32(36)? }) } else { None };
        Ok(WalPageHeader { magic: r.u16(0)?, info, tli: r.u32(4)?, pageaddr: Lsn(r.u64(8)?), rem_len: r.u32(16)?, long })
    }
    /// Bytes of header before record data (MAXALIGNed).
    pub fn size(&self) -> usize {
        if self.long.is_some() {
            LONG_HEADER_SIZE
        } else {
            SHORT_HEADER_SIZE
        }
    }
    pub fn is_contrecord(&self) -> bool {
        self.info & XLP_FIRST_IS_CONTRECORD != 0
    }
}

/// What the server checks of a page header, given what it expects.
#[derive(Clone, Copy, Debug)]
pub struct PageExpect {
    pub major: PgMajor,
    /// Address of the page being read.
    pub pageaddr: Lsn,
    pub seg_size: u32,
    pub block_size: u32,
    /// The cluster's system identifier when known.
    pub sysid: Option<u64>,
}

/// Why a WAL page header is refused, in the server's words (XLogReaderValidatePageHeader).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PageHeaderProblem {
    #[error("invalid magic number {found:04X}{}, expected {expected:04X}", .other_major.map(|m| format!(" (the magic of PostgreSQL {m})")).unwrap_or_default())]
    Magic { found: u16, expected: u16, other_major: Option<PgMajor> },
    #[error("invalid info bits {0:04X}")]
    InfoBits(u16),
    #[error("WAL file is from different database system: WAL file database system identifier is {found}, pg_control database system identifier is {expected}")]
    SystemIdentifier { found: u64, expected: u64 },
    #[error("WAL file is from different database system: incorrect segment size {found} in page header, expected {expected}")]
    SegmentSize { found: u32, expected: u32 },
    #[error("WAL file is from different database system: incorrect XLOG_BLCKSZ {found} in page header, expected {expected}")]
    BlockSize { found: u32, expected: u32 },
    #[error("invalid info bits {0:04X}: the first page of a segment must have a long header")]
    NoLongHeader(u16),
    #[error("unexpected pageaddr {found} (expected {expected})")]
    PageAddress { found: Lsn, expected: Lsn },
}

/// Validate a page header the way XLogReaderValidatePageHeader does.
pub fn validate_page_header(h: &WalPageHeader, e: &PageExpect) -> Result<(), PageHeaderProblem> {
    let want_magic = e.major.wal_page_magic();
    if h.magic != want_magic {
        return Err(PageHeaderProblem::Magic { found: h.magic, expected: want_magic, other_major: PgMajor::from_wal_magic(h.magic) });
    }
    if h.info & !XLP_ALL_FLAGS != 0 {
        return Err(PageHeaderProblem::InfoBits(h.info));
    }
    let first_of_segment = e.pageaddr.0 % e.seg_size as u64 == 0;
    if let Some(l) = h.long {
        if let Some(sysid) = e.sysid {
            if l.sysid != sysid {
                return Err(PageHeaderProblem::SystemIdentifier { found: l.sysid, expected: sysid });
            }
        }
        if l.seg_size != e.seg_size {
            return Err(PageHeaderProblem::SegmentSize { found: l.seg_size, expected: e.seg_size });
        }
        if l.xlog_blcksz != e.block_size {
            return Err(PageHeaderProblem::BlockSize { found: l.xlog_blcksz, expected: e.block_size });
        }
    } else if first_of_segment {
        return Err(PageHeaderProblem::NoLongHeader(h.info));
    }
    if h.pageaddr != e.pageaddr {
        return Err(PageHeaderProblem::PageAddress { found: h.pageaddr, expected: e.pageaddr });
    }
    Ok(())
}
