//! Relation pages: the page header and its validation as the server does it, line pointers,
//! heap tuple headers with hint bits. Header: `src/include/storage/bufpage.h`,
//! `storage/itemid.h`, `access/htup_details.h`; checks from `PageIsVerified[Extended]` in
//! `src/backend/storage/page/bufpage.c` (unchanged in substance 10–18).
//!
//! ```text
//! Page := PageHeaderData ItemIdData[n] free-space tuples special
//! PageHeaderData (24 bytes) := pd_lsn:{xlogid:u32 xrecoff:u32} pd_checksum:u16 pd_flags:u16
//!   pd_lower:u16 pd_upper:u16 pd_special:u16 pd_pagesize_version:u16 pd_prune_xid:u32
//! ItemIdData (u32) := lp_off:15 lp_flags:2 lp_len:15   (bit-fields, low bits first)
//! HeapTupleHeaderData := t_xmin:u32 t_xmax:u32 t_cid|t_xvac:u32 t_ctid:{bi_hi:u16 bi_lo:u16
//!   ip_posid:u16} t_infomask2:u16 t_infomask:u16 t_hoff:u8 t_bits[...]
//! ```

pub mod attrs;
pub mod heap;
pub mod special;

use super::bytes::{maxalign, FormatError, Reader};
use super::checksum::page_checksum;
use super::types::Lsn;
use serde::Serialize;

pub const SIZE_OF_PAGE_HEADER: usize = 24;
pub const SIZE_OF_ITEM_ID: usize = 4;
/// PD_HAS_FREE_LINES | PD_PAGE_FULL | PD_ALL_VISIBLE.
pub const PD_VALID_FLAG_BITS: u16 = 0x0007;
pub const PG_PAGE_LAYOUT_VERSION: u8 = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct PageHeader {
    pub lsn: Lsn,
    pub checksum: u16,
    pub flags: u16,
    pub lower: u16,
    pub upper: u16,
    pub special: u16,
    pub pagesize_version: u16,
    pub prune_xid: u32,
}

impl PageHeader {
    pub fn parse(page: &[u8]) -> Result<PageHeader, FormatError> {
        let r = Reader::new("page header", page);
        r.need(0, SIZE_OF_PAGE_HEADER)?;
        let hi = r.u32(0)? as u64;
        let lo = r.u32(4)? as u64;
        Ok(PageHeader {
            lsn: Lsn((hi << 32) | lo),
            checksum: r.u16(8)?,
            flags: r.u16(10)?,
            lower: r.u16(12)?,
            upper: r.u16(14)?,
            special: r.u16(16)?,
            pagesize_version: r.u16(18)?,
            prune_xid: r.u32(20)?,
        })
    }
    /// Page size recorded in the header (PageGetPageSize).
    pub fn page_size(&self) -> usize {
        (self.pagesize_version & 0xFF00) as usize
    }
    pub fn layout_version(&self) -> u8 {
        (self.pagesize_version & 0x00FF) as u8
    }
    /// PageIsNew: pd_upper == 0.
    pub fn is_new(&self) -> bool {
        self.upper == 0
    }
    /// Number of line pointers (PageGetMaxOffsetNumber).
    pub fn item_count(&self) -> usize {
        (self.lower as usize).saturating_sub(SIZE_OF_PAGE_HEADER) / SIZE_OF_ITEM_ID
    }
    /// The header checks of PageIsVerified, each failed one named.
    pub fn header_problems(&self, block_size: usize) -> Vec<HeaderProblem> {
        let mut p = Vec::new();
        if self.flags & !PD_VALID_FLAG_BITS != 0 {
            p.push(HeaderProblem::InvalidFlags(self.flags));
        }
        if self.lower > self.upper {
            p.push(HeaderProblem::LowerAboveUpper { lower: self.lower, upper: self.upper });
        }
        if self.upper > self.special {
            p.push(HeaderProblem::UpperAboveSpecial { upper: self.upper, special: self.special });
        }
        if self.special as usize > block_size {
            p.push(HeaderProblem::SpecialBeyondPage { special: self.special, block_size });
        }
        if self.special as usize != maxalign(self.special as usize) {
            p.push(HeaderProblem::SpecialNotAligned(self.special));
        }
        if (self.lower as usize) < SIZE_OF_PAGE_HEADER && self.lower != 0 {
            p.push(HeaderProblem::LowerInsideHeader(self.lower));
        }
        p
    }
}

/// One failed header check. The first five are the server's own (PageIsVerified); the
/// others are stricter checks pgsalvage reports as warnings only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum HeaderProblem {
    InvalidFlags(u16),
    LowerAboveUpper { lower: u16, upper: u16 },
    UpperAboveSpecial { upper: u16, special: u16 },
    SpecialBeyondPage { special: u16, block_size: usize },
    SpecialNotAligned(u16),
    LowerInsideHeader(u16),
}

impl HeaderProblem {
    /// Whether the server itself rejects the page for this (PageIsVerified).
    pub fn server_rejects(&self) -> bool {
        !matches!(self, HeaderProblem::LowerInsideHeader(_))
    }
}

impl std::fmt::Display for HeaderProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeaderProblem::InvalidFlags(v) => write!(f, "pd_flags {v:#06x} has bits outside PD_VALID_FLAG_BITS (0x0007)"),
            HeaderProblem::LowerAboveUpper { lower, upper } => write!(f, "pd_lower {lower} > pd_upper {upper}"),
            HeaderProblem::UpperAboveSpecial { upper, special } => write!(f, "pd_upper {upper} > pd_special {special}"),
            HeaderProblem::SpecialBeyondPage { special, block_size } => write!(f, "pd_special {special} > block size {block_size}"),
            HeaderProblem::SpecialNotAligned(s) => write!(f, "pd_special {s} is not MAXALIGNed"),
            HeaderProblem::LowerInsideHeader(l) => write!(f, "pd_lower {l} points inside the page header"),
        }
    }
}

/// The verdict of [`verify_page`], as the server would reach it when reading the block.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum PageVerdict {
    /// Header sane and (when enabled) checksum right.
    Valid,
    /// All bytes zero: a new page the server accepts.
    AllZero,
    /// The server would raise `invalid page in block N` (`invalid page header` before 14).
    InvalidHeader { problems: Vec<HeaderProblem>, checksum_failure: Option<ChecksumFailure> },
    /// Header sane, checksum wrong: `page verification failed, calculated checksum X but expected Y`.
    ChecksumFailure(ChecksumFailure),
    /// pd_upper == 0 but some byte is not zero: the server rejects it as invalid.
    NewButNotZero { first_nonzero: usize },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ChecksumFailure {
    pub stored: u16,
    pub calculated: u16,
}

impl PageVerdict {
    pub fn is_ok(&self) -> bool {
        matches!(self, PageVerdict::Valid | PageVerdict::AllZero)
    }
}

/// PageIsVerified for one page: `page` is exactly one block, `blkno` its absolute block
/// number in the relation fork, `checksums` whether the cluster has data checksums.
pub fn verify_page(page: &[u8], blkno: u32, checksums: bool) -> Result<PageVerdict, FormatError> {
    let h = PageHeader::parse(page)?;
    if page.len() % 128 != 0 {
        return Err(FormatError::bad("page", 0, "a block size that is a multiple of 128", page.len()));
    }
    if !h.is_new() {
        // Fast path for the common case, without allocating: sane header, right checksum.
        let sane = h.flags & !PD_VALID_FLAG_BITS == 0
            && h.lower <= h.upper
            && h.upper <= h.special
            && h.special as usize <= page.len()
            && h.special as usize == maxalign(h.special as usize);
        if sane && (!checksums || page_checksum(page, blkno) == h.checksum) {
            return Ok(PageVerdict::Valid);
        }
        let mut checksum_failure = None;
        if checksums {
            let calculated = page_checksum(page, blkno);
            if calculated != h.checksum {
                checksum_failure = Some(ChecksumFailure { stored: h.checksum, calculated });
            }
        }
        let problems: Vec<HeaderProblem> = h.header_problems(page.len()).into_iter().filter(|p| p.server_rejects()).collect();
        return Ok(match (problems.is_empty(), checksum_failure) {
            (true, None) => PageVerdict::Valid,
            (true, Some(c)) => PageVerdict::ChecksumFailure(c),
            (false, c) => PageVerdict::InvalidHeader { problems, checksum_failure: c },
        });
    }
    match page.iter().position(|&b| b != 0) {
        None => Ok(PageVerdict::AllZero),
        Some(i) => Ok(PageVerdict::NewButNotZero { first_nonzero: i }),
    }
}

/// lp_flags values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LpFlags {
    Unused,
    Normal,
    Redirect,
    Dead,
}

/// One line pointer (ItemIdData).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ItemId {
    pub off: u16,
    pub flags: LpFlags,
    pub len: u16,
}

impl ItemId {
    pub fn from_raw(raw: u32) -> ItemId {
        let flags = match (raw >> 15) & 3 {
            0 => LpFlags::Unused,
            1 => LpFlags::Normal,
            2 => LpFlags::Redirect,
            _ => LpFlags::Dead,
        };
        ItemId { off: (raw & 0x7FFF) as u16, flags, len: (raw >> 17) as u16 }
    }
    pub fn raw(&self) -> u32 {
        let f = match self.flags {
            LpFlags::Unused => 0,
            LpFlags::Normal => 1,
            LpFlags::Redirect => 2,
            LpFlags::Dead => 3,
        };
        (self.off as u32 & 0x7FFF) | (f << 15) | ((self.len as u32 & 0x7FFF) << 17)
    }
}

/// The line pointer array of a page whose header is sane enough to bound it
/// (pd_lower within the page). Item numbers start at 1 as in PostgreSQL.
pub fn line_pointers(page: &[u8]) -> Result<Vec<ItemId>, FormatError> {
    let h = PageHeader::parse(page)?;
    let lower = h.lower as usize;
    if lower < SIZE_OF_PAGE_HEADER || lower > page.len() {
        return Err(FormatError::bad("page", 12, format!("pd_lower between 24 and {}", page.len()), lower));
    }
    let r = Reader::new("line pointer array", page);
    (0..h.item_count()).map(|i| r.u32(SIZE_OF_PAGE_HEADER + i * SIZE_OF_ITEM_ID).map(ItemId::from_raw)).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn empty_heap_page() -> Vec<u8> {
        let mut p = vec![0u8; 8192];
        p[12..14].copy_from_slice(&24u16.to_le_bytes());
        p[14..16].copy_from_slice(&8192u16.to_le_bytes());
        p[16..18].copy_from_slice(&8192u16.to_le_bytes());
        p[18..20].copy_from_slice(&(8192u16 | 4).to_le_bytes());
        p
    }

    #[test]
    fn verify_follows_page_is_verified() {
        let p = empty_heap_page();
        assert_eq!(verify_page(&p, 0, false).unwrap(), PageVerdict::Valid);
        assert!(matches!(verify_page(&p, 0, true).unwrap(), PageVerdict::ChecksumFailure(_)));
        let mut with_sum = p.clone();
        let c = page_checksum(&with_sum, 7);
        with_sum[8..10].copy_from_slice(&c.to_le_bytes());
        assert_eq!(verify_page(&with_sum, 7, true).unwrap(), PageVerdict::Valid);
        assert!(matches!(verify_page(&with_sum, 8, true).unwrap(), PageVerdict::ChecksumFailure(_)));
        assert_eq!(verify_page(&[0u8; 8192], 0, true).unwrap(), PageVerdict::AllZero);
        let mut z = vec![0u8; 8192];
        z[5000] = 1;
        assert_eq!(verify_page(&z, 0, false).unwrap(), PageVerdict::NewButNotZero { first_nonzero: 5000 });
        let mut bad = p.clone();
        bad[12..14].copy_from_slice(&9000u16.to_le_bytes());
        assert!(matches!(verify_page(&bad, 0, false).unwrap(), PageVerdict::InvalidHeader { .. }));
        assert!(verify_page(&p[..10], 0, false).is_err());
    }

    #[test]
    fn item_id_bits() {
        let id = ItemId { off: 8000, flags: LpFlags::Normal, len: 120 };
        assert_eq!(ItemId::from_raw(id.raw()), id);
    }
}
