//! PostgreSQL scalar types with their text forms: LSNs (`0/16B3F38`), full transaction ids
//! (`epoch:xid`, as pg_controldata prints NextXID), and the xid window arithmetic of
//! `src/include/access/transam.h` (modulo-2^32 comparison of normal xids).

use serde::{Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

/// A WAL location (XLogRecPtr). Displays as PostgreSQL does: `%X/%X` of the high and low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

impl Serialize for Lsn {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Text that is not an LSN (`X/X`, hexadecimal).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid LSN {0:?}: expected X/X in hexadecimal")]
pub struct LsnParseError(pub String);

impl FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(s: &str) -> Result<Self, LsnParseError> {
        let bad = || LsnParseError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(bad)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| bad())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| bad())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

/// A 32-bit transaction id as stored in tuples and most of pg_control.
pub type Xid = u32;

pub const INVALID_XID: Xid = 0;
pub const BOOTSTRAP_XID: Xid = 1;
pub const FROZEN_XID: Xid = 2;
pub const FIRST_NORMAL_XID: Xid = 3;

/// True for xids that are not special (0, 1, 2).
pub fn xid_is_normal(x: Xid) -> bool {
    x >= FIRST_NORMAL_XID
}

/// `a` precedes `b` in PostgreSQL's circular xid order (TransactionIdPrecedes).
pub fn xid_precedes(a: Xid, b: Xid) -> bool {
    if !xid_is_normal(a) || !xid_is_normal(b) {
        return a < b;
    }
    (a.wrapping_sub(b) as i32) < 0
}

/// A 64-bit transaction id: epoch in the high 32 bits (FullTransactionId, PG12+ on disk;
/// composed from nextXidEpoch/nextXid on PG10/11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct FullXid(pub u64);

impl FullXid {
    pub fn new(epoch: u32, xid: Xid) -> Self {
        FullXid(((epoch as u64) << 32) | xid as u64)
    }
    pub fn epoch(self) -> u32 {
        (self.0 >> 32) as u32
    }
    pub fn xid(self) -> Xid {
        self.0 as u32
    }
}

impl fmt::Display for FullXid {
    /// pg_controldata's form: `epoch:xid`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.epoch(), self.xid())
    }
}

impl Serialize for FullXid {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

pub type Oid = u32;
pub type TimeLineId = u32;
pub type BlockNumber = u32;
pub type MultiXactId = u32;
pub type MultiXactOffset = u32;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn lsn_text_round_trip() {
        let l: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(l.0, 0x16_B374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn(0).to_string(), "0/0");
        assert!("16B374D848".parse::<Lsn>().is_err());
    }

    #[test]
    fn xid_circular_order() {
        assert!(xid_precedes(3, 4));
        assert!(xid_precedes(u32::MAX - 5, 10)); // wrapped
        assert!(!xid_precedes(10, u32::MAX - 5));
        assert!(xid_precedes(2, 3));
        assert_eq!(FullXid::new(1, 5).to_string(), "1:5");
    }
}

/// Where a 32-bit xid found in a tuple lies relative to the cluster's live window
/// [oldestXID, NextXID), with epoch arithmetic: an xid numerically below NextXID belongs to
/// NextXID's epoch, one at or above it to the epoch before, which does not exist in epoch 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum XidPlace {
    /// Inside the window: its status is in pg_xact.
    Live,
    /// Before oldestXID: it must have been frozen; its status may be truncated away.
    BeforeHorizon,
    /// Never assigned: at or after NextXID in epoch 0 (there is no earlier epoch).
    NeverAssigned,
}

pub fn xid_place(x: Xid, oldest: Xid, next: FullXid) -> XidPlace {
    let (e, n) = (next.epoch() as u64, next.xid());
    let full = if x < n {
        (e << 32) | x as u64
    } else if e == 0 {
        return XidPlace::NeverAssigned;
    } else {
        ((e - 1) << 32) | x as u64
    };
    let oldest_full = if oldest <= n { (e << 32) | oldest as u64 } else { (e.saturating_sub(1) << 32) | oldest as u64 };
    if full < oldest_full {
        XidPlace::BeforeHorizon
    } else {
        XidPlace::Live
    }
}

#[cfg(test)]
mod place_tests {
    use super::*;

    #[test]
    fn epochs_and_wraparound() {
        let next = FullXid::new(0, 1_000_000);
        assert_eq!(xid_place(4294692688, 716, next), XidPlace::NeverAssigned); // the incident
        assert_eq!(xid_place(999_999, 716, next), XidPlace::Live);
        assert_eq!(xid_place(1_000_000, 716, next), XidPlace::NeverAssigned);
        assert_eq!(xid_place(500, 716, next), XidPlace::BeforeHorizon);
        // Epoch 1, wrapped: next 100, oldest 4,000,000,000 (of epoch 0).
        let next = FullXid::new(1, 100);
        assert_eq!(xid_place(50, 4_000_000_000, next), XidPlace::Live);
        assert_eq!(xid_place(4_100_000_000, 4_000_000_000, next), XidPlace::Live);
        assert_eq!(xid_place(3_000_000_000, 4_000_000_000, next), XidPlace::BeforeHorizon);
    }
}
