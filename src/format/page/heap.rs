//! Heap tuple headers (`src/include/access/htup_details.h`) with their hint bits, and the
//! per-tuple structural checks an offline amcheck-like scan needs.

use super::{line_pointers, ItemId, LpFlags, PageHeader};
use crate::format::bytes::{FormatError, Reader};
use crate::format::types::Xid;
use serde::Serialize;

/// offsetof(HeapTupleHeaderData, t_bits).
pub const SIZEOF_HEAP_TUPLE_HEADER: usize = 23;

pub mod infomask {
    pub const HASNULL: u16 = 0x0001;
    pub const HASVARWIDTH: u16 = 0x0002;
    pub const HASEXTERNAL: u16 = 0x0004;
    /// HEAP_HASOID before PG12 (HEAP_HASOID_OLD after).
    pub const HASOID_OLD: u16 = 0x0008;
    pub const XMAX_KEYSHR_LOCK: u16 = 0x0010;
    pub const COMBOCID: u16 = 0x0020;
    pub const XMAX_EXCL_LOCK: u16 = 0x0040;
    pub const XMAX_LOCK_ONLY: u16 = 0x0080;
    pub const XMIN_COMMITTED: u16 = 0x0100;
    pub const XMIN_INVALID: u16 = 0x0200;
    pub const XMIN_FROZEN: u16 = XMIN_COMMITTED | XMIN_INVALID;
    pub const XMAX_COMMITTED: u16 = 0x0400;
    pub const XMAX_INVALID: u16 = 0x0800;
    pub const XMAX_IS_MULTI: u16 = 0x1000;
    pub const UPDATED: u16 = 0x2000;
    pub const MOVED_OFF: u16 = 0x4000;
    pub const MOVED_IN: u16 = 0x8000;
}

pub mod infomask2 {
    pub const NATTS_MASK: u16 = 0x07FF;
    pub const KEYS_UPDATED: u16 = 0x2000;
    pub const HOT_UPDATED: u16 = 0x4000;
    pub const ONLY_TUPLE: u16 = 0x8000;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HeapTupleHeader {
    pub xmin: Xid,
    pub xmax: Xid,
    pub cid_or_xvac: u32,
    pub ctid_block: u32,
    pub ctid_offset: u16,
    pub infomask2: u16,
    pub infomask: u16,
    pub hoff: u8,
}

impl HeapTupleHeader {
    pub fn parse(tuple: &[u8]) -> Result<HeapTupleHeader, FormatError> {
        let r = Reader::new("heap tuple header", tuple);
        r.need(0, SIZEOF_HEAP_TUPLE_HEADER)?;
        Ok(HeapTupleHeader {
            xmin: r.u32(0)?,
            xmax: r.u32(4)?,
            cid_or_xvac: r.u32(8)?,
            ctid_block: ((r.u16(12)? as u32) << 16) | r.u16(14)? as u32,
            ctid_offset: r.u16(16)?,
            infomask2: r.u16(18)?,
            infomask: r.u16(20)?,
            hoff: r.u8(22)?,
        })
    }
    pub fn natts(&self) -> u16 {
        self.infomask2 & infomask2::NATTS_MASK
    }
    pub fn has(&self, bits: u16) -> bool {
        self.infomask & bits == bits
    }
    /// HeapTupleHeaderXminFrozen.
    pub fn xmin_frozen(&self) -> bool {
        self.has(infomask::XMIN_FROZEN)
    }
    pub fn xmin_committed_hint(&self) -> bool {
        self.has(infomask::XMIN_COMMITTED) && !self.xmin_frozen()
    }
    pub fn xmin_invalid_hint(&self) -> bool {
        self.has(infomask::XMIN_INVALID) && !self.xmin_frozen()
    }
    /// Hint-bit combinations the server never writes.
    pub fn hint_contradictions(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.has(infomask::XMAX_COMMITTED | infomask::XMAX_INVALID) {
            v.push("HEAP_XMAX_COMMITTED and HEAP_XMAX_INVALID both set");
        }
        if self.has(infomask::XMAX_IS_MULTI) && self.has(infomask::XMAX_COMMITTED) {
            v.push("a multixact xmax marked HEAP_XMAX_COMMITTED (multixact should not be marked committed)");
        }
        // HEAP_XMAX_LOCK_ONLY beside HEAP_KEYS_UPDATED is no contradiction: SELECT ... FOR
        // UPDATE sets both (released verify_heapam does not report it either).
        v
    }
}

/// One tuple slot of a heap page as found: the line pointer and, for normal ones whose
/// bounds are sane, the header.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TupleSlot {
    /// Item number, from 1.
    pub offnum: u16,
    pub item: ItemId,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<HeapTupleHeader>,
    /// Why the tuple could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// An unused or dead line pointer that still points at an intact tuple (PostgreSQL
    /// zeroes the offset and length of every pointer it makes unused or dead on a heap
    /// page): the row is there but hidden from every query.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<HeapTupleHeader>,
}

/// Walk the line pointers of a heap page and decode each normal tuple whose pointer is in
/// bounds (amcheck's `check_tuple` preconditions: lp_off + lp_len inside the page, above
/// pd_upper, MAXALIGNed, at least the header long, t_hoff within lp_len).
pub fn tuples(page: &[u8]) -> Result<Vec<TupleSlot>, FormatError> {
    let h = PageHeader::parse(page)?;
    let items = line_pointers(page)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, &item) in items.iter().enumerate() {
        let offnum = (i + 1) as u16;
        let mut slot = TupleSlot { offnum, item, header: None, problem: None, hidden: None };
        if item.flags == LpFlags::Normal {
            let (off, len) = (item.off as usize, item.len as usize);
            slot.problem = if off + len > page.len() {
                Some(format!("line pointer {offnum}: tuple at {off} with length {len} ends past the page ({})", page.len()))
            } else if off < h.upper as usize {
                Some(format!("line pointer {offnum}: tuple offset {off} is below pd_upper {}", h.upper))
            } else if off % 8 != 0 {
                Some(format!("line pointer {offnum}: tuple offset {off} is not MAXALIGNed"))
            } else if len < SIZEOF_HEAP_TUPLE_HEADER {
                Some(format!("line pointer {offnum}: length {len} is shorter than a tuple header"))
            } else {
                match HeapTupleHeader::parse(&page[off..off + len]) {
                    Ok(t) if (t.hoff as usize) > len => Some(format!("line pointer {offnum}: t_hoff {} beyond tuple length {len}", t.hoff)),
                    Ok(t) if t.hoff as usize % 8 != 0 => Some(format!("line pointer {offnum}: t_hoff {} is not MAXALIGNed", t.hoff)),
                    Ok(t) => {
                        slot.header = Some(t);
                        None
                    }
                    Err(e) => Some(e.shifted(off).to_string()),
                }
            };
        } else if item.flags == LpFlags::Redirect && (item.off as usize == 0 || item.off as usize > items_len_hint(page)) {
            slot.problem = Some(format!("line pointer {offnum}: redirect to {} outside the line pointer array", item.off));
        } else if matches!(item.flags, LpFlags::Unused | LpFlags::Dead) && (item.off != 0 || item.len != 0) {
            let (what, off, len) = (if item.flags == LpFlags::Unused { "unused" } else { "dead" }, item.off, item.len);
            match hidden_tuple(page, &h, &items, i) {
                Some(t) => slot.hidden = Some(t),
                // PageRepairFragmentation (VACUUM, pruning) errors on a used pointer with
                // storage outside [pd_upper, pd_special): "corrupted line pointer".
                None => {
                    slot.problem = Some(format!(
                        "line pointer {offnum}: {what} but keeps offset {off} and length {len}, where no tuple is: the row it held is lost{}",
                        if item.flags == LpFlags::Dead { "; VACUUM fails on it with \"corrupted line pointer\"" } else { "" }
                    ))
                }
            }
        }
        out.push(slot);
    }
    Ok(out)
}

/// What a repair of a broken update chain does to one line pointer or tuple.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum ChainFix {
    /// A redirect that leads nowhere valid becomes dead without storage.
    DeadRedirect,
    /// A heap-only tuple nothing leads to becomes an ordinary tuple (its table's indexes
    /// are then rebuilt so that they find it).
    ClearHeapOnly,
    /// A tuple marked HOT-updated whose successor is not heap-only ends its chain.
    ClearHotUpdated,
    /// A heap-only tuple a HOT update leads to, not marked HEAP_UPDATED: marked so (it is
    /// the result of an update).
    SetUpdated,
}

/// The update chains within one heap page, as verify_heapam checks them (PostgreSQL 16+):
/// redirects must lead to a heap-only tuple; a tuple's successor on the same page (t_ctid,
/// with its xmin the updater's xid) must be heap-only exactly when the update was HOT; no
/// two pointers may lead to one successor; a heap-only tuple must have a predecessor; a
/// HOT-updated tuple must have an xmax. Each problem: the offset, the message, and the fix
/// (None: no safe edit, as for two predecessors).
pub fn chain_problems(slots: &[TupleSlot], blkno: u32) -> Vec<(u16, String, Option<ChainFix>)> {
    let n = slots.len();
    let mut out = Vec::new();
    let mut pred: Vec<Option<u16>> = vec![None; n + 1];
    let header = |o: usize| slots.get(o.wrapping_sub(1)).filter(|s| s.item.flags == LpFlags::Normal).and_then(|s| s.header);
    let heap_only = |h: &HeapTupleHeader| h.infomask2 & infomask2::ONLY_TUPLE != 0;
    for s in slots {
        let o = s.offnum;
        match s.item.flags {
            LpFlags::Redirect if s.problem.is_none() => {
                let t = s.item.off as usize;
                let Some(target) = slots.get(t.wrapping_sub(1)) else { continue };
                let bad = match target.item.flags {
                    LpFlags::Unused => Some(format!("redirected line pointer points to an unused item at offset {t}")),
                    LpFlags::Redirect => Some(format!("redirected line pointer points to another redirected line pointer at offset {t}")),
                    LpFlags::Normal => {
                        target.header.filter(|h| !heap_only(h)).map(|_| format!("redirected line pointer points to a non-heap-only tuple at offset {t}"))
                    }
                    LpFlags::Dead => None,
                };
                if let Some(m) = bad {
                    out.push((o, m, Some(ChainFix::DeadRedirect)));
                    continue;
                }
                match pred[t] {
                    Some(p) => out.push((o, format!("redirect line pointer points to offset {t}, but offset {p} also points there"), None)),
                    None => pred[t] = Some(o),
                }
            }
            LpFlags::Normal => {
                let Some(h) = s.header else { continue };
                let hot = h.infomask2 & infomask2::HOT_UPDATED != 0;
                if hot && h.xmax == 0 {
                    out.push((o, "tuple has been HOT updated, but xmax is 0".into(), Some(ChainFix::ClearHotUpdated)));
                    continue;
                }
                // An update (not a lock) whose new version is on this page. A multixact xmax
                // hides the updater's xid in pg_multixact: its successor is taken on t_ctid.
                let updated = h.xmax != 0 && h.infomask & infomask::XMAX_LOCK_ONLY == 0;
                let multi = h.infomask & infomask::XMAX_IS_MULTI != 0;
                let next = h.ctid_offset as usize;
                if !updated || h.ctid_block != blkno || next == o as usize || next == 0 || next > n {
                    continue;
                }
                let Some(nh) = header(next).filter(|nh| multi || nh.xmin == h.xmax) else { continue };
                if hot && !heap_only(&nh) {
                    out.push((o, format!("heap-only update produced a non-heap only tuple at offset {next}"), Some(ChainFix::ClearHotUpdated)));
                    continue;
                }
                if !hot && heap_only(&nh) {
                    out.push((next as u16, format!("non-heap-only update produced a heap-only tuple at offset {next}"), Some(ChainFix::ClearHeapOnly)));
                }
                // A version whose inserter aborted cannot have been updated by a committed
                // transaction (the hint bits say so here; see `updates_of_unhinted` for
                // pg_xact's word).
                if h.xmin_invalid_hint() && (nh.xmin_frozen() || nh.xmin_committed_hint()) {
                    out.push((o, aborted_updated(h.xmin, next, nh.xmin), None));
                }
                match pred[next] {
                    Some(p) => out.push((o, format!("tuple points to new version at offset {next}, but offset {p} also points there"), None)),
                    None => pred[next] = Some(o),
                }
            }
            _ => {}
        }
    }
    for s in slots.iter().filter(|s| s.item.flags == LpFlags::Normal && s.header.is_some_and(|h| heap_only(&h))) {
        let o = s.offnum as usize;
        if out.iter().any(|(x, ..)| *x as usize == o) {
            continue;
        }
        if pred[o].is_none() {
            out.push((s.offnum, "tuple is root of chain but is marked as heap-only tuple".into(), Some(ChainFix::ClearHeapOnly)));
        } else if s.header.is_some_and(|h| h.infomask & infomask::UPDATED == 0) {
            // verify_heapam's header check; reached by a HOT update, so HEAP_UPDATED is the bit lost.
            out.push((s.offnum, "tuple is heap only, but not the result of an update".into(), Some(ChainFix::SetUpdated)));
        }
    }
    out.sort_by_key(|x| x.0);
    out
}

/// verify_heapam's words for a version whose inserter aborted, updated into a committed one.
pub fn aborted_updated(xmin: Xid, next: usize, next_xmin: Xid) -> String {
    format!("tuple with aborted xmin {xmin} was updated to produce a tuple at offset {next} with committed xmin {next_xmin}")
}

/// Versions with no xmin hint updated (on this page) into a version whose xmin is hinted
/// committed or frozen: (offset, its xmin, successor's offset, successor's xmin). If pg_xact
/// says the first xmin aborted, the chain is impossible ([`aborted_updated`]).
pub fn updates_of_unhinted(slots: &[TupleSlot], blkno: u32) -> Vec<(u16, Xid, usize, Xid)> {
    let header = |o: usize| slots.get(o.wrapping_sub(1)).filter(|s| s.item.flags == LpFlags::Normal).and_then(|s| s.header);
    let mut out = Vec::new();
    for s in slots.iter().filter(|s| s.item.flags == LpFlags::Normal) {
        let Some(h) = s.header else { continue };
        let unhinted = !h.xmin_frozen() && !h.has(infomask::XMIN_COMMITTED) && !h.has(infomask::XMIN_INVALID) && h.xmin >= 3;
        let updated = h.xmax != 0 && h.infomask & (infomask::XMAX_LOCK_ONLY | infomask::XMAX_IS_MULTI) == 0;
        let next = h.ctid_offset as usize;
        if !unhinted || !updated || h.ctid_block != blkno || next == s.offnum as usize {
            continue;
        }
        if let Some(nh) = header(next).filter(|nh| nh.xmin == h.xmax && (nh.xmin_frozen() || nh.xmin_committed_hint())) {
            out.push((s.offnum, h.xmin, next, nh.xmin));
        }
    }
    out
}

/// The intact tuple an unused or dead pointer (index `i`) still points at, when there is
/// one: MAXALIGNed, between pd_upper and pd_special, at least a header long, with a sane
/// t_hoff and item pointer, and overlapping no normal tuple's storage.
fn hidden_tuple(page: &[u8], h: &PageHeader, items: &[ItemId], i: usize) -> Option<HeapTupleHeader> {
    let it = items[i];
    let (off, len) = (it.off as usize, it.len as usize);
    if off % 8 != 0 || off < h.upper as usize || off + len > (h.special as usize).min(page.len()) || len < SIZEOF_HEAP_TUPLE_HEADER {
        return None;
    }
    let t = HeapTupleHeader::parse(&page[off..off + len]).ok()?;
    let hoff = t.hoff as usize;
    if hoff < SIZEOF_HEAP_TUPLE_HEADER || hoff % 8 != 0 || hoff > len || t.ctid_offset == 0 || t.ctid_offset as usize > MAX_ITEMS {
        return None;
    }
    let overlaps =
        items.iter().enumerate().any(|(j, o)| j != i && o.flags == LpFlags::Normal && (o.off as usize) < off + len && off < o.off as usize + o.len as usize);
    (!overlaps).then_some(t)
}

/// MaxHeapTuplesPerPage for the largest block size (32 kB).
const MAX_ITEMS: usize = 2048;

fn items_len_hint(page: &[u8]) -> usize {
    PageHeader::parse(page).map(|h| h.item_count()).unwrap_or(0)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_hand_built_tuple() {
        let mut p = vec![0u8; 8192];
        p[12..14].copy_from_slice(&28u16.to_le_bytes());
        p[14..16].copy_from_slice(&8152u16.to_le_bytes());
        p[16..18].copy_from_slice(&8192u16.to_le_bytes());
        let lp = ItemId { off: 8152, flags: LpFlags::Normal, len: 32 };
        p[24..28].copy_from_slice(&lp.raw().to_le_bytes());
        let t = &mut p[8152..];
        t[0..4].copy_from_slice(&1234u32.to_le_bytes());
        t[18..20].copy_from_slice(&2u16.to_le_bytes());
        t[20..22].copy_from_slice(&(infomask::XMIN_COMMITTED | infomask::XMAX_INVALID).to_le_bytes());
        t[22] = 24;
        let s = tuples(&p).unwrap();
        assert_eq!(s.len(), 1);
        let h = s[0].header.unwrap();
        assert_eq!(h.xmin, 1234);
        assert!(h.xmin_committed_hint());
        assert_eq!(h.natts(), 2);
        // broken pointer
        let lp = ItemId { off: 8180, flags: LpFlags::Normal, len: 32 };
        p[24..28].copy_from_slice(&lp.raw().to_le_bytes());
        assert!(tuples(&p).unwrap()[0].problem.is_some());
    }

    fn slot(offnum: u16, flags: LpFlags, off: u16, h: Option<(u32, u32, u16, u16, u16)>) -> TupleSlot {
        let header = h.map(|(xmin, xmax, ctid, im2, im)| HeapTupleHeader {
            xmin,
            xmax,
            cid_or_xvac: 0,
            ctid_block: 0,
            ctid_offset: ctid,
            infomask2: im2,
            infomask: im,
            hoff: 24,
        });
        TupleSlot { offnum, item: ItemId { off, flags, len: if flags == LpFlags::Normal { 40 } else { 0 } }, header, problem: None, hidden: None }
    }

    #[test]
    fn update_chains() {
        use infomask2::{HOT_UPDATED, ONLY_TUPLE};
        // 1 -> redirect to 2; 2 HOT-updated to 3; 3 heap-only: healthy. Heap-only versions
        // are the result of an update: HEAP_UPDATED, as the server sets it.
        let ok = vec![
            slot(1, LpFlags::Redirect, 2, None),
            slot(2, LpFlags::Normal, 8000, Some((10, 11, 3, HOT_UPDATED | ONLY_TUPLE, infomask::UPDATED))),
            slot(3, LpFlags::Normal, 7900, Some((11, 0, 3, ONLY_TUPLE, infomask::XMAX_INVALID | infomask::UPDATED))),
        ];
        assert_eq!(chain_problems(&ok, 0), vec![]);
        // HEAP_UPDATED lost on the last version: set back.
        let mut u = ok.clone();
        u[2].header.as_mut().unwrap().infomask = infomask::XMAX_INVALID;
        assert_eq!(chain_problems(&u, 0), vec![(3, "tuple is heap only, but not the result of an update".to_string(), Some(ChainFix::SetUpdated))]);
        // The redirect points at an unused item; 2 is then a root marked heap-only.
        let mut bad = ok.clone();
        bad[0].item.off = 4;
        bad.push(slot(4, LpFlags::Unused, 0, None));
        let p = chain_problems(&bad, 0);
        assert_eq!(p.iter().map(|x| (x.0, x.2)).collect::<Vec<_>>(), vec![(1, Some(ChainFix::DeadRedirect)), (2, Some(ChainFix::ClearHeapOnly))]);
        // HOT-updated with xmax 0.
        let mut z = ok.clone();
        z[1].header.as_mut().unwrap().xmax = 0;
        assert_eq!(chain_problems(&z, 0)[0].2, Some(ChainFix::ClearHotUpdated));
    }
}
