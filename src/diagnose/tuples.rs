//! Tuple-level scan of heap pages, offline, as amcheck's heap verification does it: line
//! pointers and lengths in bounds, xmin/xmax inside the cluster's window
//! [oldestXID, NextXID) (modulo-2^32 order, so epochs and wraparound need no special case),
//! multixact ids inside [oldestMulti, nextMulti), hint bits that contradict each other.
//! Heap pages are told from index pages by their special space (heap pages have none).

use crate::datadir::{map_range, DataDir, RelFile};
use crate::format::control::ControlFile;
use crate::format::page::{attrs, heap, verify_page, PageHeader, PageVerdict};
use crate::format::types::{xid_is_normal, xid_place, Xid, XidPlace};
use crate::format::xact::XactStatus;
use rayon::prelude::*;
use serde::Serialize;
use std::fs::File;

/// One problem with one tuple.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct TupleProblem {
    pub file: String,
    pub block: u32,
    pub offnum: u16,
    pub kind: TupleProblemKind,
    pub xid: Option<Xid>,
    pub detail: String,
    /// For a broken update chain: the edit that mends it (None: no safe edit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chain_fix: Option<heap::ChainFix>,
    /// The column whose value alone is damaged (its length is sound): setting it NULL keeps
    /// the row.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<ColumnRef>,
    /// A TOAST pointer whose value is whole but whose header is wrong: the mend that loses
    /// nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub toast_fix: Option<ToastFix>,
}

/// A TOAST pointer mended in place: its compression method id set to what the value's
/// first chunk says (None: kept), and HEAP_HASEXTERNAL set on the tuple.
#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq)]
pub struct ToastFix {
    pub attnum: u16,
    pub method: Option<u8>,
}

/// A column of a damaged tuple.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ColumnRef {
    pub attnum: u16,
    pub name: String,
    /// Not declared NOT NULL.
    pub nullable: bool,
}

#[derive(Clone, Copy, Debug, Serialize, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum TupleProblemKind {
    /// xmin or xmax at or after NextXID: no such transaction ever ran.
    XidInFuture,
    /// xmin (not frozen) or xmax before oldestXID: its status may be truncated away.
    XidBeforeHorizon,
    MultiOutOfRange,
    PointerInvalid,
    /// An unused or dead line pointer still pointing at an intact tuple: a hidden row.
    PointerHidesRow,
    HintContradiction,
    /// The header contradicts its table or itself: more attributes than the table has, or
    /// t_hoff not where the attribute count and null bitmap put the data (verify_heapam's
    /// checks): the row cannot be decoded.
    HeaderInvalid,
    /// The page's update chains contradict themselves (verify_heapam 16+'s checks).
    ChainBroken,
    /// An attribute cannot be decoded (length past the tuple, unknown TOAST tag), or its
    /// value contradicts itself (compression method, TOAST pointer fields).
    AttributeInvalid,
    /// A TOAST pointer leads to a value whose chunks are missing, out of place or of the
    /// wrong size in the TOAST table.
    ToastMissing,
}

/// What the catalog says of a heap relation, for the checks that need it.
#[derive(Clone, Debug)]
pub struct RelInfo {
    /// pg_class.relnatts.
    pub natts: u16,
    /// pg_class.relfrozenxid and relminmxid (0: not known).
    pub frozenxid: Xid,
    pub minmxid: u32,
    /// Its columns (empty: not known; attributes are then not decoded).
    pub columns: std::sync::Arc<Vec<crate::catalog::Column>>,
    /// Its TOAST table: oid and main fork path (`base/5/16393`); None when it has none
    /// (`toast_oid` 0) or the catalog does not show it (its pointers are then not judged).
    pub toast: Option<(u32, String)>,
    /// pg_class.reltoastrelid.
    pub toast_oid: u32,
}

/// A TOAST pointer of a tuple, to be looked up in its TOAST table once the tuple is known
/// to be live (see [`Pending`]).
#[derive(Clone, Debug)]
pub struct ToastRef {
    pub file: String,
    pub block: u32,
    pub offnum: u16,
    pub column: ColumnRef,
    pub pointer: attrs::ToastPointer,
    /// The TOAST table's main fork path.
    pub toast_file: String,
    pub when: Pending,
    /// The tuple lacks HEAP_HASEXTERNAL.
    pub no_flag: bool,
}

/// What a tuple's attribute findings wait for: verify_heapam checks the attributes only of
/// tuples whose inserter committed (an aborted one's may not match the table), and their
/// TOAST values only while no committed deleter lets VACUUM remove them. Hint bits decide
/// where they can; else the xid's status in pg_xact.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pending {
    /// Must have committed.
    pub committed: Option<Xid>,
    /// Must have aborted.
    pub aborted: Option<Xid>,
    /// Not checked at all (a deleter that committed, or a multixact).
    pub ruled_out: bool,
}

/// Heap relations by (directory, relfilenode), from the catalog.
pub type RelInfos = std::collections::HashMap<(String, u32), RelInfo>;

/// Per page: line pointers in use (rows the page holds) — for "what a page repair loses".
#[derive(Clone, Debug, Default, Serialize)]
pub struct TupleScan {
    pub problems: Vec<TupleProblem>,
    pub heap_pages: u64,
    pub tuples: u64,
    /// Tuples whose xmin or xmax needs pg_xact (no hint bit, not frozen), by xid, for
    /// counting what a lost pg_xact range affects: (xid, file).
    pub unhinted: Vec<(Xid, String)>,
    /// Statuses hint bits tell, for xids inside the ranges asked for (evidence for
    /// rebuilding pg_xact): xmin committed or invalid, xmax committed.
    pub hints: Vec<(Xid, XactStatus)>,
    /// Where the tuples are whose unhinted xmin or xmax lies in those ranges: (xid, file,
    /// block, item, "xmin" or "xmax"), for the salvage file of the rows a policy decides.
    #[serde(skip)]
    pub lost_refs: Vec<(Xid, String, u32, u16, &'static str)>,
    /// Attribute problems of tuples whose inserter's status is not hinted.
    #[serde(skip)]
    pub pending: Vec<(TupleProblem, Pending)>,
    /// TOAST pointers to check against their TOAST tables.
    #[serde(skip)]
    pub toast_refs: Vec<ToastRef>,
}

/// Whether `x` lies in [lo, hi) in modulo-2^32 order.
fn in_window(x: u32, lo: u32, hi: u32) -> bool {
    x.wrapping_sub(lo) < hi.wrapping_sub(lo)
}

pub fn scan(dd: &DataDir, c: &ControlFile, files: &[RelFile], hint_ranges: &[(Xid, Xid)], rels: &RelInfos) -> TupleScan {
    // MAXALIGN: 8 on every 64-bit platform; 4 only where pg_control says so.
    let maxalign = if c.max_data_alignment == 4 { 4 } else { 8 };
    let with_oids = c.major.number() < 12;
    let wanted = |x: Xid| hint_ranges.iter().any(|(a, b)| x.wrapping_sub(*a) <= b.wrapping_sub(*a));
    let oldest = c.checkpoint.oldest_xid;
    let next = c.checkpoint.next_xid;
    let (omulti, nmulti) = (c.checkpoint.oldest_multi_xid, c.checkpoint.next_multixact_id);
    let bs = c.database_block_size as usize;
    // One task per 16 MB window of a main fork: the threads share a large segment, and one
    // window per thread is resident (mapping a whole 1 GB segment at once made it all
    // resident, 1.3 GB peak RSS on a 2 GB cluster, and left one thread scanning it alone).
    let window = (16usize << 20) / bs * bs;
    let tasks: Vec<(&RelFile, usize)> = files
        .iter()
        .filter(|f| f.fork == "main")
        .flat_map(|f| (0..(f.len - f.len % bs as u64) as usize).step_by(window).map(move |start| (f, start)))
        .collect();
    let parts: Vec<TupleScan> = tasks
        .par_iter()
        .map(|&(f, start)| {
            let mut s = TupleScan::default();
            let rel = f.path();
            let info = rels.get(&(f.dir.clone(), f.relfilenode));
            // The columns' layout once per task, not per tuple.
            let layout: Vec<attrs::Column> = info.map(|i| i.columns.iter().map(|c| c.layout).collect()).unwrap_or_default();
            let path = dd.path(&rel);
            let Ok(file) = File::open(&path) else { return s };
            let usable = (f.len - f.len % bs as u64) as usize;
            let Ok(map) = map_range(&file, &path, start as u64, window.min(usable - start)) else { return s };
            for (j, page) in map.chunks_exact(bs).enumerate() {
                let i = start / bs + j;
                let blk = f.segno * c.blocks_per_segment + i as u32;
                let Ok(h) = PageHeader::parse(page) else { continue };
                // Only heap pages (no special space) whose header the server accepts.
                if h.special as usize != bs || !matches!(verify_page(page, blk, false), Ok(PageVerdict::Valid)) {
                    continue;
                }
                let Ok(tuples) = heap::tuples(page) else { continue };
                s.heap_pages += 1;
                for (offnum, xmin, next, next_xmin) in heap::updates_of_unhinted(&tuples, blk) {
                    let p = TupleProblem {
                        file: rel.clone(),
                        block: blk,
                        offnum,
                        kind: TupleProblemKind::ChainBroken,
                        xid: None,
                        detail: heap::aborted_updated(xmin, next, next_xmin),
                        chain_fix: None,
                        column: None,
                        toast_fix: None,
                    };
                    s.pending.push((p, Pending { aborted: Some(xmin), ..Pending::default() }));
                }
                for (offnum, detail, fix) in heap::chain_problems(&tuples, blk) {
                    s.problems.push(TupleProblem { file: rel.clone(), block: blk, offnum, kind: TupleProblemKind::ChainBroken, xid: None, detail, chain_fix: fix, column: None, toast_fix: None });
                }
                for t in tuples {
                    // Whether this tuple got a problem (its hint contradictions are then not one).
                    let found = std::cell::Cell::new(false);
                    let mut push = |kind, xid, detail: String| {
                        found.set(true);
                        s.problems.push(TupleProblem { file: rel.clone(), block: blk, offnum: t.offnum, kind, xid, detail, chain_fix: None, column: None, toast_fix: None })
                    };
                    if let Some(p) = &t.problem {
                        push(TupleProblemKind::PointerInvalid, None, p.clone());
                        continue;
                    }
                    if let Some(hid) = &t.hidden {
                        push(
                            TupleProblemKind::PointerHidesRow,
                            None,
                            format!(
                                "line pointer {}: {} but still points at an intact tuple (offset {}, length {}, xmin {})",
                                t.offnum,
                                if t.item.flags == crate::format::page::LpFlags::Unused { "unused" } else { "dead" },
                                t.item.off,
                                t.item.len,
                                hid.xmin
                            ),
                        );
                        continue;
                    }
                    let Some(h) = t.header else { continue };
                    s.tuples += 1;
                    // The header against its table and itself, as verify_heapam checks it.
                    let natts = h.natts();
                    let bitmap = if h.has(heap::infomask::HASNULL) { (natts as usize).div_ceil(8) } else { 0 };
                    let oid = if with_oids && h.has(heap::infomask::HASOID_OLD) { 4 } else { 0 };
                    let expected_hoff = (heap::SIZEOF_HEAP_TUPLE_HEADER + bitmap + oid).div_ceil(maxalign) * maxalign;
                    if let Some(i) = info.filter(|i| i.natts > 0 && natts > i.natts) {
                        push(TupleProblemKind::HeaderInvalid, None, format!("number of attributes {natts} exceeds the table's {}", i.natts));
                        continue;
                    }
                    if h.hoff as usize != expected_hoff {
                        push(
                            TupleProblemKind::HeaderInvalid,
                            None,
                            format!(
                                "tuple data should begin at byte {expected_hoff}, but actually begins at byte {} ({natts} attributes, {})",
                                h.hoff,
                                if bitmap > 0 { "has nulls" } else { "no nulls" }
                            ),
                        );
                        continue;
                    }
                    use heap::infomask::*;
                    if !hint_ranges.is_empty() {
                        if !h.xmin_frozen() && wanted(h.xmin) {
                            if h.has(XMIN_COMMITTED) {
                                s.hints.push((h.xmin, XactStatus::Committed));
                            } else if h.has(XMIN_INVALID) {
                                s.hints.push((h.xmin, XactStatus::Aborted));
                            }
                        }
                        if h.has(XMAX_COMMITTED) && !h.has(XMAX_IS_MULTI) && wanted(h.xmax) {
                            s.hints.push((h.xmax, XactStatus::Committed));
                        }
                        if !h.xmin_frozen() && wanted(h.xmin) && !h.has(XMIN_COMMITTED) && !h.has(XMIN_INVALID) {
                            s.lost_refs.push((h.xmin, rel.clone(), blk, t.offnum, "xmin"));
                        }
                        if h.xmax != 0 && !h.has(XMAX_IS_MULTI) && !h.has(XMAX_COMMITTED) && !h.has(XMAX_INVALID) && wanted(h.xmax) {
                            s.lost_refs.push((h.xmax, rel.clone(), blk, t.offnum, "xmax"));
                        }
                    }
                    if !h.xmin_frozen() && xid_is_normal(h.xmin) {
                        match xid_place(h.xmin, oldest, next) {
                            XidPlace::NeverAssigned => push(
                                TupleProblemKind::XidInFuture,
                                Some(h.xmin),
                                format!(
                                    "xmin {} is at or after NextXID {} (epoch {}): no such transaction was ever assigned",
                                    h.xmin,
                                    next.xid(),
                                    next.epoch()
                                ),
                            ),
                            XidPlace::BeforeHorizon => {
                                push(TupleProblemKind::XidBeforeHorizon, Some(h.xmin), format!("xmin {} precedes oldestXID {oldest} but is not frozen", h.xmin))
                            }
                            XidPlace::Live
                                if !h.has(XMIN_COMMITTED)
                                    && !h.has(XMIN_INVALID)
                                    && info.is_some_and(|i| xid_is_normal(i.frozenxid) && crate::format::types::xid_precedes(h.xmin, i.frozenxid)) =>
                            {
                                push(
                                    TupleProblemKind::XidBeforeHorizon,
                                    Some(h.xmin),
                                    format!("xmin {} precedes the table's relfrozenxid {} but is not frozen (VACUUM fails: \"found xmin {} from before relfrozenxid\")", h.xmin, info.map(|i| i.frozenxid).unwrap_or(0), h.xmin),
                                );
                                s.unhinted.push((h.xmin, rel.clone()));
                            }
                            XidPlace::Live if !h.has(XMIN_COMMITTED) && !h.has(XMIN_INVALID) => s.unhinted.push((h.xmin, rel.clone())),
                            XidPlace::Live => {}
                        }
                    }
                    // A multixact xmax is looked at whatever its hint bits say: VACUUM's freeze
                    // reads it ("MultiXactId ... does no longer exist -- apparent wraparound").
                    // An XMAX_INVALID hint set together with XMAX_COMMITTED is no evidence either.
                    // Locks left by pg_upgrade from before 9.3 are ignored, as the server does.
                    let locked_upgraded = h.has(XMAX_IS_MULTI) && h.has(XMAX_LOCK_ONLY) && h.infomask & (XMAX_EXCL_LOCK | XMAX_KEYSHR_LOCK) == 0;
                    let xmax_hinted_invalid = h.has(XMAX_INVALID) && !h.has(XMAX_COMMITTED);
                    if h.xmax != 0 && h.has(XMAX_IS_MULTI) && !locked_upgraded {
                        if !in_window(h.xmax, omulti, nmulti) {
                            push(
                                TupleProblemKind::MultiOutOfRange,
                                Some(h.xmax),
                                format!("multixact xmax {} is outside [oldestMulti {omulti}, NextMultiXactId {nmulti})", h.xmax),
                            );
                        } else if let Some(m) = info.map(|i| i.minmxid).filter(|&m| m != 0 && (h.xmax.wrapping_sub(m) as i32) < 0) {
                            push(
                                TupleProblemKind::MultiOutOfRange,
                                Some(h.xmax),
                                format!("multixact xmax {} precedes the table's relminmxid {m} (VACUUM fails: \"found multixact {} from before relminmxid\")", h.xmax, h.xmax),
                            );
                        }
                    } else if !xmax_hinted_invalid && h.xmax != 0 && !h.has(XMAX_IS_MULTI) && xid_is_normal(h.xmax) {
                        match xid_place(h.xmax, oldest, next) {
                            XidPlace::NeverAssigned => push(
                                TupleProblemKind::XidInFuture,
                                Some(h.xmax),
                                format!(
                                    "xmax {} is at or after NextXID {} (epoch {}): no such transaction was ever assigned",
                                    h.xmax,
                                    next.xid(),
                                    next.epoch()
                                ),
                            ),
                            XidPlace::BeforeHorizon if !h.has(XMAX_COMMITTED) => {
                                push(TupleProblemKind::XidBeforeHorizon, Some(h.xmax), format!("xmax {} precedes oldestXID {oldest}", h.xmax))
                            }
                            XidPlace::Live if !h.has(XMAX_COMMITTED) => s.unhinted.push((h.xmax, rel.clone())),
                            _ => {}
                        }
                    }
                    // A tuple whose xmax is itself out of range gets that finding, whose repair
                    // (freezing) clears every hint bit too: its contradictory hints are not a
                    // second finding, and clearing them alone would not be a fix.
                    if found.get() {
                        continue;
                    }
                    for c in h.hint_contradictions() {
                        push(TupleProblemKind::HintContradiction, None, c.to_string());
                    }
                    if found.get() {
                        continue;
                    }
                    // The attributes, with the table's columns.
                    let Some(info) = info.filter(|i| !i.columns.is_empty()) else { continue };
                    let Some(when) = attribute_checks_wait_for(&h) else { continue };
                    let off = t.item.off as usize;
                    let tuple = &page[off..off + t.item.len as usize];
                    let column = |attnum: u16| {
                        let c = &info.columns[attnum as usize - 1];
                        ColumnRef { attnum, name: c.name.clone(), nullable: !c.notnull }
                    };
                    let problem = |kind, detail: String, column: Option<ColumnRef>| TupleProblem {
                        file: rel.clone(),
                        block: blk,
                        offnum: t.offnum,
                        kind,
                        xid: None,
                        detail,
                        chain_fix: None,
                        column,
                        toast_fix: None,
                    };
                    let mut found_here = Vec::new();
                    match attrs::decode(tuple, &h, &layout, c.major.number()) {
                        Err(e) => found_here.push(problem(TupleProblemKind::AttributeInvalid, e.detail, None)),
                        Ok(values) => {
                            for a in values {
                                match a.value {
                                    attrs::Value::Broken(why) => {
                                        found_here.push(problem(TupleProblemKind::AttributeInvalid, format!("attribute {}: {why}", a.attnum), Some(column(a.attnum))))
                                    }
                                    attrs::Value::External(p) => match &info.toast {
                                        Some((toast_oid, _)) if p.toastrelid != *toast_oid => found_here.push(problem(
                                            TupleProblemKind::AttributeInvalid,
                                            format!("attribute {}: toast value {} names TOAST relation {}, not the table's {toast_oid}", a.attnum, p.valueid, p.toastrelid),
                                            Some(column(a.attnum)),
                                        )),
                                        Some((_, toast_file)) => s.toast_refs.push(ToastRef {
                                            file: rel.clone(),
                                            block: blk,
                                            offnum: t.offnum,
                                            column: column(a.attnum),
                                            pointer: p,
                                            toast_file: toast_file.clone(),
                                            when: toast_checks_wait_for(&h, when),
                                            no_flag: !h.has(heap::infomask::HASEXTERNAL),
                                        }),
                                        // The catalog names a TOAST table it does not show (a damaged
                                        // catalog page): the pointer cannot be judged.
                                        None if info.toast_oid != 0 => {}
                                        None => found_here.push(problem(
                                            TupleProblemKind::AttributeInvalid,
                                            format!("attribute {}: toast value {} is external but relation has no toast relation", a.attnum, p.valueid),
                                            Some(column(a.attnum)),
                                        )),
                                    },
                                    _ => {}
                                }
                            }
                        }
                    }
                    for p in found_here {
                        if when.committed.is_some() {
                            s.pending.push((p, when));
                        } else {
                            s.problems.push(p);
                        }
                    }
                }
            }
            s
        })
        .collect();
    let mut out = TupleScan::default();
    for p in parts {
        out.problems.extend(p.problems);
        out.heap_pages += p.heap_pages;
        out.tuples += p.tuples;
        out.unhinted.extend(p.unhinted);
        out.hints.extend(p.hints);
        out.lost_refs.extend(p.lost_refs);
        out.pending.extend(p.pending);
        out.toast_refs.extend(p.toast_refs);
    }
    out.problems.sort_by(|a, b| (&a.file, a.block, a.offnum).cmp(&(&b.file, b.block, b.offnum)));
    out
}

/// Whether a tuple's attributes are checked, and on what: None when its inserter is known
/// to have aborted (its layout may not be the table's); else the xmin that must be found
/// committed in pg_xact when no hint bit says so.
fn attribute_checks_wait_for(h: &heap::HeapTupleHeader) -> Option<Pending> {
    use heap::infomask::*;
    if h.xmin_frozen() || h.has(XMIN_COMMITTED) || !xid_is_normal(h.xmin) {
        Some(Pending::default())
    } else if h.has(XMIN_INVALID) {
        None
    } else {
        Some(Pending { committed: Some(h.xmin), ..Pending::default() })
    }
}

/// What a tuple's TOAST values are checked on: besides its inserter, no deleter may have
/// committed (VACUUM may then have removed the values already). A deleter hinted committed,
/// or a multixact, rules the check out.
fn toast_checks_wait_for(h: &heap::HeapTupleHeader, inserted: Pending) -> Pending {
    use heap::infomask::*;
    let never = Pending { ruled_out: true, ..inserted };
    if h.xmax == 0 || (h.has(XMAX_INVALID) && !h.has(XMAX_COMMITTED)) || h.has(XMAX_LOCK_ONLY) {
        inserted
    } else if h.has(XMAX_COMMITTED) || h.has(XMAX_IS_MULTI) || !xid_is_normal(h.xmax) {
        never
    } else {
        Pending { aborted: Some(h.xmax), ..inserted }
    }
}

/// Rows (normal line pointers) on a page. With a damaged pd_lower, the line pointer array
/// is walked from its start while the pointers stay plausible (inside the page, after the
/// array, pointing at something at least a tuple header long) — what a header rebuild would
/// keep.
pub fn rows_on_page(page: &[u8]) -> Option<usize> {
    let n = rows_by_line_pointers(page)?;
    // No row by the line pointers, yet bytes past them: the pointers are lost (a torn or
    // zeroed first half, say), not the rows. Their number is unknown.
    if n == 0 && page.get(crate::format::page::SIZE_OF_PAGE_HEADER..).is_some_and(|b| b.iter().any(|&x| x != 0)) {
        return None;
    }
    Some(n)
}

fn rows_by_line_pointers(page: &[u8]) -> Option<usize> {
    use crate::format::page::{ItemId, LpFlags};
    if let Ok(v) = crate::format::page::line_pointers(page) {
        return Some(v.iter().filter(|i| i.flags == LpFlags::Normal).count());
    }
    let mut rows = 0;
    let mut i = 0usize;
    loop {
        let at = 24 + 4 * i;
        let Some(b) = page.get(at..at + 4) else { break };
        let it = ItemId::from_raw(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let plausible = match it.flags {
            LpFlags::Normal => {
                (it.off as usize) >= at + 4 && it.off as usize + it.len as usize <= page.len() && it.len as usize >= heap::SIZEOF_HEAP_TUPLE_HEADER
            }
            LpFlags::Unused => it.off == 0 && it.len == 0,
            LpFlags::Dead => true,
            LpFlags::Redirect => it.len == 0 && it.off as usize <= i + 2 + page.len() / 4,
        };
        if !plausible || (it.flags == LpFlags::Unused && rows == 0 && i == 0) {
            break;
        }
        if it.flags == LpFlags::Normal {
            rows += 1;
        }
        i += 1;
    }
    Some(rows)
}

#[cfg(test)]
mod tests {
    use super::in_window;

    #[test]
    fn window_is_circular() {
        assert!(in_window(5, 3, 10));
        assert!(!in_window(10, 3, 10));
        assert!(!in_window(2, 3, 10));
        assert!(in_window(1, u32::MAX - 5, 10)); // wrapped window
        assert!(!in_window(4294692688, 716, 4000)); // the incident's xid
    }
}
