//! Transaction commit and abort records (RM_XACT_ID; `src/include/access/xact.h`,
//! ParseCommitRecord/ParseAbortRecord), same layout 10–18 for what is read here:
//!
//! ```text
//! main data := xact_time:i64 [xinfo:u32 if info & XLOG_XACT_HAS_INFO]
//!              [dbId:u32 tsId:u32 if xinfo & HAS_DBINFO] [nsubxacts:i32 subxacts:u32[n] if xinfo & HAS_SUBXACTS]
//!              [nrels:i32 RelFileNode[n] (12 bytes) if xinfo & HAS_RELFILENODES]
//!              [nstats:i32 xl_xact_stats_item[n] if xinfo & HAS_DROPPED_STATS (15+): 12 bytes, 16 in 18+]
//!              [nmsgs:i32 SharedInvalidationMessage[n] (16 bytes) if commit and xinfo & HAS_INVALS]
//!              [twophase_xid:u32 if xinfo & HAS_TWOPHASE] ...
//! ```
//! COMMIT PREPARED and ABORT PREPARED carry the prepared transaction's xid in the twophase
//! part (the record header's xid is the backend's that ran the command, usually 0).

use super::record::{DecodedRecord, RM_XACT_ID};
use crate::format::bytes::Reader;
use crate::format::types::Xid;
use crate::format::version::PgMajor;

pub const XLOG_XACT_COMMIT: u8 = 0x00;
pub const XLOG_XACT_ABORT: u8 = 0x20;
pub const XLOG_XACT_COMMIT_PREPARED: u8 = 0x30;
pub const XLOG_XACT_ABORT_PREPARED: u8 = 0x40;
pub const XLOG_XACT_OPMASK: u8 = 0x70;
pub const XLOG_XACT_HAS_INFO: u8 = 0x80;
pub const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
pub const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;
pub const XACT_XINFO_HAS_RELFILENODES: u32 = 1 << 2;
pub const XACT_XINFO_HAS_INVALS: u32 = 1 << 3;
pub const XACT_XINFO_HAS_TWOPHASE: u32 = 1 << 4;
pub const XACT_XINFO_HAS_DROPPED_STATS: u32 = 1 << 8;

/// Size of one xl_xact_stats_item: the one per-version difference in these records.
fn stats_item_size(major: PgMajor) -> usize {
    if major.number() >= 18 {
        16
    } else {
        12
    }
}

/// A top-level commit or abort and the subtransactions it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XactOutcome {
    pub xid: Xid,
    pub committed: bool,
    pub subxacts: Vec<Xid>,
}

/// The outcome a commit or abort record (prepared or not) gives, or None for other records.
pub fn decode_outcome(major: PgMajor, rec: &DecodedRecord) -> Option<XactOutcome> {
    if rec.header.rmid != RM_XACT_ID {
        return None;
    }
    let op = rec.header.info & XLOG_XACT_OPMASK;
    let (committed, prepared) = match op {
        XLOG_XACT_COMMIT => (true, false),
        XLOG_XACT_ABORT => (false, false),
        XLOG_XACT_COMMIT_PREPARED => (true, true),
        XLOG_XACT_ABORT_PREPARED => (false, true),
        _ => return None,
    };
    let r = Reader::new("xact record", rec.main_data());
    let mut pos = 8;
    let xinfo = if rec.header.info & XLOG_XACT_HAS_INFO != 0 {
        let x = r.u32(pos).ok()?;
        pos += 4;
        x
    } else {
        0
    };
    if xinfo & XACT_XINFO_HAS_DBINFO != 0 {
        pos += 8;
    }
    // A count, then that many items of `size` bytes.
    let skip = |pos: &mut usize, size: usize| -> Option<Vec<u32>> {
        let n = usize::try_from(r.i32(*pos).ok()?).ok()?;
        *pos += 4;
        let items = (0..n).map(|i| r.u32(*pos + size * i).ok()).collect::<Option<Vec<u32>>>()?;
        *pos += size * n;
        Some(items)
    };
    let mut subxacts = Vec::new();
    if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
        subxacts = skip(&mut pos, 4)?;
    }
    if !prepared {
        return Some(XactOutcome { xid: rec.header.xid, committed, subxacts });
    }
    if xinfo & XACT_XINFO_HAS_RELFILENODES != 0 {
        skip(&mut pos, 12)?;
    }
    if major.number() >= 15 && xinfo & XACT_XINFO_HAS_DROPPED_STATS != 0 {
        skip(&mut pos, stats_item_size(major))?;
    }
    if committed && xinfo & XACT_XINFO_HAS_INVALS != 0 {
        skip(&mut pos, 16)?;
    }
    if xinfo & XACT_XINFO_HAS_TWOPHASE == 0 {
        return None;
    }
    Some(XactOutcome { xid: r.u32(pos).ok()?, committed, subxacts })
}
