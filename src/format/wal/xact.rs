//! Transaction commit and abort records (RM_XACT_ID; `src/include/access/xact.h`,
//! ParseCommitRecord/ParseAbortRecord), same layout 10–18 for what is read here:
//!
//! ```text
//! main data := xact_time:i64 [xinfo:u32 if info & XLOG_XACT_HAS_INFO]
//!              [dbId:u32 tsId:u32 if xinfo & HAS_DBINFO] [nsubxacts:i32 subxacts:u32[n] if xinfo & HAS_SUBXACTS] ...
//! ```
//! Prepared transactions (COMMIT/ABORT PREPARED) carry their xid further on; they are not
//! decoded here.

use super::record::{DecodedRecord, RM_XACT_ID};
use crate::format::bytes::Reader;
use crate::format::types::Xid;

pub const XLOG_XACT_COMMIT: u8 = 0x00;
pub const XLOG_XACT_ABORT: u8 = 0x20;
pub const XLOG_XACT_OPMASK: u8 = 0x70;
pub const XLOG_XACT_HAS_INFO: u8 = 0x80;
pub const XACT_XINFO_HAS_DBINFO: u32 = 1 << 0;
pub const XACT_XINFO_HAS_SUBXACTS: u32 = 1 << 1;

/// A top-level commit or abort and the subtransactions it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XactOutcome {
    pub xid: Xid,
    pub committed: bool,
    pub subxacts: Vec<Xid>,
}

pub fn decode_outcome(rec: &DecodedRecord) -> Option<XactOutcome> {
    if rec.header.rmid != RM_XACT_ID {
        return None;
    }
    let op = rec.header.info & XLOG_XACT_OPMASK;
    let committed = match op {
        XLOG_XACT_COMMIT => true,
        XLOG_XACT_ABORT => false,
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
    let mut subxacts = Vec::new();
    if xinfo & XACT_XINFO_HAS_SUBXACTS != 0 {
        let n = r.i32(pos).ok()?;
        pos += 4;
        for i in 0..n.max(0) as usize {
            subxacts.push(r.u32(pos + 4 * i).ok()?);
        }
    }
    Some(XactOutcome { xid: rec.header.xid, committed, subxacts })
}
