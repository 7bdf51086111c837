//! The new bytes of each repair, computed from the old bytes and the action's parameters
//! only (pure; no I/O): what `apply` and `rehearse` write, and what tests check.

use crate::format::checksum::page_checksum;
use crate::format::page::attrs;
use crate::format::page::heap::{infomask, infomask2, ChainFix, SIZEOF_HEAP_TUPLE_HEADER};
use crate::format::page::{line_pointers, ItemId, LpFlags, PD_VALID_FLAG_BITS, SIZE_OF_ITEM_ID, SIZE_OF_PAGE_HEADER};
use crate::format::types::FROZEN_XID;
use crate::format::xact::{ClogGeometry, XactStatus};

/// pd_flags bits (bufpage.h).
const PD_HAS_FREE_LINES: u16 = 0x0001;
const PD_PAGE_FULL: u16 = 0x0002;
const PD_ALL_VISIBLE: u16 = 0x0004;
/// HEAP_XACT_MASK: every visibility bit of t_infomask.
const HEAP_XACT_MASK: u16 = 0xFFF0;

fn put16(p: &mut [u8], o: usize, v: u16) {
    p[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
fn put32(p: &mut [u8], o: usize, v: u32) {
    p[o..o + 4].copy_from_slice(&v.to_le_bytes());
}

/// Recompute pd_checksum when the cluster has data checksums.
pub fn set_checksum(page: &mut [u8], blkno: u32, checksums: bool) {
    if checksums && page.iter().any(|&b| b != 0) {
        let c = page_checksum(page, blkno);
        put16(page, 8, c);
    }
}

/// Why a planned page change cannot be made on these bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    #[error("{0}")]
    Page(#[from] crate::format::FormatError),
    #[error("no line pointer {0}")]
    NoPointer(u16),
    #[error("line pointer {0} is not a normal tuple")]
    NotATuple(u16),
    #[error("line pointer {offnum} is not the unused or dead pointer with offset {off} and length {len} it was planned for")]
    NotAsPlanned { offnum: u16, off: u16, len: u16 },
    #[error("line pointer {offnum}: offset {off} and length {len} run past the page")]
    PastPage { offnum: u16, off: u16, len: u16 },
    #[error("line pointer {0} is not a redirect")]
    NotARedirect(u16),
    #[error("attribute {1} of the tuple at line pointer {0} is not a TOAST pointer")]
    NotAToastPointer(u16, u16),
    #[error("the tuple at line pointer {0} cannot be laid out again with those attributes NULL (its values cannot be decoded, or it would grow)")]
    CannotNull(u16),
}

fn tuple_offset(page: &[u8], offnum: u16) -> Result<(usize, ItemId), EditError> {
    let items = line_pointers(page)?;
    let it = *(offnum as usize).checked_sub(1).and_then(|i| items.get(i)).ok_or(EditError::NoPointer(offnum))?;
    if it.flags != LpFlags::Normal || it.off as usize + SIZEOF_HEAP_TUPLE_HEADER > page.len() {
        return Err(EditError::NotATuple(offnum));
    }
    Ok((it.off as usize, it))
}

/// heap_force_freeze (pg_surgery) offline: xmin frozen, xmax invalid, no update chain;
/// the page loses PD_ALL_VISIBLE (its visibility map bit is cleared by its own action).
pub fn freeze_tuples(page: &[u8], offnums: &[u16], blkno: u32, checksums: bool) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    for &o in offnums {
        let (off, _) = tuple_offset(&p, o)?;
        put32(&mut p, off, FROZEN_XID);
        put32(&mut p, off + 4, 0);
        let mut im = u16::from_le_bytes([p[off + 20], p[off + 21]]);
        if im & infomask::MOVED_OFF != 0 {
            put32(&mut p, off + 8, 0);
        } else if im & infomask::MOVED_IN != 0 {
            put32(&mut p, off + 8, FROZEN_XID);
        }
        im &= !HEAP_XACT_MASK;
        im |= infomask::XMIN_FROZEN | infomask::XMAX_INVALID;
        put16(&mut p, off + 20, im);
        let mut im2 = u16::from_le_bytes([p[off + 18], p[off + 19]]);
        im2 &= !(infomask2::HOT_UPDATED | infomask2::KEYS_UPDATED);
        put16(&mut p, off + 18, im2);
        // t_ctid points at itself: the tuple is the end of its chain.
        put16(&mut p, off + 12, (blkno >> 16) as u16);
        put16(&mut p, off + 14, blkno as u16);
        put16(&mut p, off + 16, o);
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// Clear the xmax hint bits (HEAP_XMAX_COMMITTED and HEAP_XMAX_INVALID) of tuples whose
/// hints contradict each other: the server then looks the xmax status up again (its xmax is
/// in range: a tuple whose xmax is not gets frozen instead). The page stops being
/// all-visible, since a row's visibility may change.
pub fn clear_hint_bits(page: &[u8], offnums: &[u16], blkno: u32, checksums: bool) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    for &o in offnums {
        let (off, _) = tuple_offset(&p, o)?;
        let im = u16::from_le_bytes([p[off + 20], p[off + 21]]) & !(infomask::XMAX_COMMITTED | infomask::XMAX_INVALID);
        put16(&mut p, off + 20, im);
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// Mend a page's update chains: a redirect made dead without storage, a tuple's
/// HEAP_ONLY_TUPLE or HEAP_HOT_UPDATED flag cleared (a chain that ends here gets t_ctid
/// pointing at itself). The page stops being all-visible.
pub fn repair_chains(page: &[u8], items: &[(u16, ChainFix)], blkno: u32, checksums: bool) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    for &(o, fix) in items {
        match fix {
            ChainFix::DeadRedirect => {
                let lps = line_pointers(&p)?;
                let at = SIZE_OF_PAGE_HEADER + (o as usize - 1) * SIZE_OF_ITEM_ID;
                if o == 0 || lps.get(o as usize - 1).is_none_or(|it| it.flags != LpFlags::Redirect) {
                    return Err(EditError::NotARedirect(o));
                }
                put32(&mut p, at, ItemId { off: 0, flags: LpFlags::Dead, len: 0 }.raw());
            }
            ChainFix::SetUpdated => {
                let (off, _) = tuple_offset(&p, o)?;
                let im = u16::from_le_bytes([p[off + 20], p[off + 21]]) | infomask::UPDATED;
                put16(&mut p, off + 20, im);
            }
            ChainFix::ClearHeapOnly | ChainFix::ClearHotUpdated => {
                let (off, _) = tuple_offset(&p, o)?;
                let mut im2 = u16::from_le_bytes([p[off + 18], p[off + 19]]);
                if fix == ChainFix::ClearHeapOnly {
                    im2 &= !infomask2::ONLY_TUPLE;
                } else {
                    im2 &= !infomask2::HOT_UPDATED;
                    put16(&mut p, off + 12, (blkno >> 16) as u16);
                    put16(&mut p, off + 14, blkno as u16);
                    put16(&mut p, off + 16, o);
                }
                put16(&mut p, off + 18, im2);
            }
        }
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// heap_force_kill (pg_surgery) offline: the line pointers become dead. A line pointer
/// that points outside the page (or at too little room for a tuple header) becomes dead
/// without storage (offset and length 0), so nothing ever reads where it pointed; dead, not
/// unused, because index entries may still point at it (VACUUM removes them first).
pub fn kill_tuples(page: &[u8], offnums: &[u16], blkno: u32, checksums: bool) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    let items = line_pointers(&p)?;
    for &o in offnums {
        let dead = match tuple_offset(&p, o) {
            Ok((_, it)) => ItemId { off: it.off, flags: LpFlags::Dead, len: it.len },
            Err(_) if (o as usize).checked_sub(1).and_then(|i| items.get(i)).is_some() => ItemId { off: 0, flags: LpFlags::Dead, len: 0 },
            Err(e) => return Err(e),
        };
        put32(&mut p, SIZE_OF_PAGE_HEADER + 4 * (o as usize - 1), dead.raw());
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// Attributes set NULL in place (`items`: item, attnums from 1): each tuple laid out again
/// with [`attrs::with_nulls`] at the same offset, never longer (lp_len shrinks; the bytes
/// freed are zeroed). `columns` is the table's layout, `maxalign` the cluster's.
pub fn null_attributes(
    page: &[u8],
    items: &[(u16, Vec<u16>)],
    columns: &[attrs::Column],
    major: u32,
    maxalign: usize,
    blkno: u32,
    checksums: bool,
) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    for (o, attnums) in items {
        let (off, it) = tuple_offset(&p, *o)?;
        let tuple = p.get(off..off + it.len as usize).ok_or(EditError::PastPage { offnum: *o, off: it.off, len: it.len })?;
        let h = crate::format::page::heap::HeapTupleHeader::parse(tuple)?;
        let new = attrs::with_nulls(tuple, &h, columns, major, attnums, maxalign).filter(|n| n.len() <= tuple.len()).ok_or(EditError::CannotNull(*o))?;
        let old_len = it.len as usize;
        p[off..off + new.len()].copy_from_slice(&new);
        p[off + new.len()..off + old_len].fill(0);
        let lp = ItemId { off: it.off, flags: LpFlags::Normal, len: new.len() as u16 };
        put32(&mut p, SIZE_OF_PAGE_HEADER + 4 * (*o as usize - 1), lp.raw());
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// TOAST pointers mended in place (`items`: item, attnum, method): the compression method
/// id of the pointer set to `method` when given (its sizes kept), and HEAP_HASEXTERNAL set
/// on the tuple. The attribute must decode as an on-disk TOAST pointer.
pub fn fix_toast_pointers(
    page: &[u8],
    items: &[(u16, u16, Option<u8>)],
    columns: &[attrs::Column],
    major: u32,
    blkno: u32,
    checksums: bool,
) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    for &(o, attnum, method) in items {
        let (off, it) = tuple_offset(&p, o)?;
        let tuple = p.get(off..off + it.len as usize).ok_or(EditError::PastPage { offnum: o, off: it.off, len: it.len })?;
        let h = crate::format::page::heap::HeapTupleHeader::parse(tuple)?;
        let a = attrs::decode(tuple, &h, columns, major)
            .ok()
            .and_then(|v| v.into_iter().find(|a| a.attnum == attnum))
            .ok_or(EditError::NotAToastPointer(o, attnum))?;
        let attrs::Value::External(ptr) = a.value else { return Err(EditError::NotAToastPointer(o, attnum)) };
        if let Some(m) = method {
            // va_extinfo: 6 bytes into the 18-byte pointer (2-byte header, va_rawsize).
            put32(&mut p, off + a.off + 6, ptr.extinfo_with_method(m));
        }
        let im = u16::from_le_bytes([p[off + 20], p[off + 21]]) | infomask::HASEXTERNAL;
        put16(&mut p, off + 20, im);
    }
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

/// Unused or dead line pointers made normal again with the offset and length they kept
/// (`items`: item, offset, length). Each must still be unused or dead with exactly that
/// offset and length, or the page is not the one planned.
pub fn restore_pointers(page: &[u8], items: &[(u16, u16, u16)], blkno: u32, checksums: bool) -> Result<Vec<u8>, EditError> {
    let mut p = page.to_vec();
    let lps = line_pointers(&p)?;
    for &(o, off, len) in items {
        let it = (o as usize).checked_sub(1).and_then(|i| lps.get(i)).ok_or(EditError::NoPointer(o))?;
        if !matches!(it.flags, LpFlags::Unused | LpFlags::Dead) || it.off != off || it.len != len {
            return Err(EditError::NotAsPlanned { offnum: o, off, len });
        }
        if off as usize + len as usize > p.len() {
            return Err(EditError::PastPage { offnum: o, off, len });
        }
        let normal = ItemId { off, flags: LpFlags::Normal, len };
        put32(&mut p, SIZE_OF_PAGE_HEADER + 4 * (o as usize - 1), normal.raw());
    }
    clear_all_visible(&mut p);
    set_checksum(&mut p, blkno, checksums);
    Ok(p)
}

fn clear_all_visible(p: &mut [u8]) {
    let flags = u16::from_le_bytes([p[10], p[11]]) & !PD_ALL_VISIBLE;
    put16(p, 10, flags);
}

/// Header values a rebuild derives from a heap page's contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct HeaderRebuild {
    pub lower: u16,
    pub upper: u16,
    pub special: u16,
    pub flags: u16,
    pub rows: u32,
    /// The pd_lsn written: the REDO location of pg_control's latest checkpoint (see
    /// [`derive_header`]).
    #[serde(default)]
    pub lsn: u64,
}

/// Derive a whole page header from the line pointer array and the tuples, when they are
/// consistent: every pointer plausible, tuples inside the page, after the array, not
/// overlapping. None when they are not (then only emptying the page is left).
///
/// Nothing of the damaged header is kept:
/// - pd_lower, pd_upper, pd_special from the line pointers and tuples;
/// - pd_flags recomputed: PD_HAS_FREE_LINES when a pointer is unused, PD_PAGE_FULL and
///   PD_ALL_VISIBLE off (the planner clears the page's visibility map bits with it);
/// - pd_prune_xid 0 (no prune hint: the next prune decides for itself);
/// - pd_lsn = `redo_lsn`, the REDO location of pg_control's latest checkpoint. The buffer
///   manager flushes WAL up to a dirty page's pd_lsn before writing it, so a pd_lsn past the
///   end of WAL makes every checkpoint fail ("xlog flush request ... is not satisfied"). The
///   REDO location is at or before the end of WAL at any start (the checkpoint record the
///   server starts from lies after it). Lowering a page's LSN to it is safe: with
///   full_page_writes on, the first record that touches the page after REDO carries a full
///   image of it, which replay restores whole instead of comparing LSNs, and the next
///   change after the repair logs a full image again because the LSN is not past REDO;
/// - pd_pagesize_version from the page size and layout version 4; pd_checksum recomputed.
pub fn derive_header(page: &[u8], redo_lsn: u64) -> Option<HeaderRebuild> {
    let bs = page.len();
    let mut items: Vec<ItemId> = Vec::new();
    loop {
        let at = SIZE_OF_PAGE_HEADER + 4 * items.len();
        let b = page.get(at..at + 4)?;
        let it = ItemId::from_raw(u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        let ok = match it.flags {
            LpFlags::Normal => {
                it.off as usize >= at + 4 && it.off % 8 == 0 && it.off as usize + it.len as usize <= bs && it.len as usize >= SIZEOF_HEAP_TUPLE_HEADER
            }
            LpFlags::Unused => it.off == 0 && it.len == 0 && !items.is_empty(),
            LpFlags::Dead => it.off as usize + it.len as usize <= bs,
            LpFlags::Redirect => it.len == 0 && it.off >= 1,
        };
        if !ok {
            break;
        }
        items.push(it);
    }
    // Trailing unused pointers are not part of the array's used end.
    while items.last().is_some_and(|i| i.flags == LpFlags::Unused) {
        items.pop();
    }
    if items.is_empty() {
        return None;
    }
    let lower = SIZE_OF_PAGE_HEADER + 4 * items.len();
    let mut spans: Vec<(usize, usize)> = items
        .iter()
        .filter(|i| matches!(i.flags, LpFlags::Normal) || (i.flags == LpFlags::Dead && i.len > 0))
        .map(|i| (i.off as usize, i.off as usize + i.len as usize))
        .collect();
    spans.sort();
    if spans.windows(2).any(|w| w[0].1 > w[1].0) || spans.first().is_some_and(|s| s.0 < lower) {
        return None;
    }
    // Every tuple header must look like one.
    for it in items.iter().filter(|i| i.flags == LpFlags::Normal) {
        let t = &page[it.off as usize..];
        let hoff = t[22] as usize;
        if hoff < SIZEOF_HEAP_TUPLE_HEADER || hoff > it.len as usize || hoff % 8 != 0 {
            return None;
        }
    }
    let upper = spans.first().map(|s| s.0).unwrap_or(bs);
    let flags = if items.iter().any(|i| i.flags == LpFlags::Unused) { PD_HAS_FREE_LINES } else { 0 };
    let rows = items.iter().filter(|i| i.flags == LpFlags::Normal).count() as u32;
    Some(HeaderRebuild { lower: lower as u16, upper: upper as u16, special: bs as u16, flags, rows, lsn: redo_lsn })
}

/// The page with the header of [`derive_header`] written over bytes 0..24.
pub fn rebuild_header(page: &[u8], h: &HeaderRebuild, blkno: u32, checksums: bool) -> Vec<u8> {
    let mut p = page.to_vec();
    // pd_lsn: xlogid (high half) then xrecoff, each in native (little-endian) order.
    put32(&mut p, 0, (h.lsn >> 32) as u32);
    put32(&mut p, 4, h.lsn as u32);
    put16(&mut p, 8, 0);
    put16(&mut p, 10, h.flags & PD_VALID_FLAG_BITS & !(PD_ALL_VISIBLE | PD_PAGE_FULL));
    put32(&mut p, 20, 0);
    put16(&mut p, 12, h.lower);
    put16(&mut p, 14, h.upper);
    put16(&mut p, 16, h.special);
    put16(&mut p, 18, (page.len() as u16 & 0xFF00) | 4);
    set_checksum(&mut p, blkno, checksums);
    p
}

/// The visibility map block with heap block `heap_block`'s all-visible and all-frozen
/// bits cleared (visibilitymap.c: two bits per heap block after the page header).
pub fn clear_vm_bits(vm_page: &[u8], heap_block: u32, vm_blkno: u32, checksums: bool) -> Vec<u8> {
    let mut p = vm_page.to_vec();
    let per_page = (p.len() - SIZE_OF_PAGE_HEADER) as u32 * 4;
    let idx = heap_block % per_page;
    let byte = SIZE_OF_PAGE_HEADER + (idx / 4) as usize;
    p[byte] &= !(0b11 << ((idx % 4) * 2));
    set_checksum(&mut p, vm_blkno, checksums);
    p
}

/// (VM block number, heap blocks per VM page) for a heap block.
pub fn vm_block_of(heap_block: u32, block_size: usize) -> u32 {
    heap_block / ((block_size - SIZE_OF_PAGE_HEADER) as u32 * 4)
}

/// A pg_xact segment with the given statuses written over `base` (the existing bytes, or
/// empty for a missing file), extended with zero pages up to `pages` pages.
pub fn clog_segment(base: &[u8], pages: u32, block_size: u32, statuses: &[(u32, XactStatus)]) -> Result<Vec<u8>, crate::format::FormatError> {
    let g = ClogGeometry::new(block_size);
    let mut seg = base.to_vec();
    let want = pages as usize * block_size as usize;
    if seg.len() < want {
        seg.resize(want, 0);
    }
    for (xid, st) in statuses {
        g.set_status(&mut seg, *xid, *st)?;
    }
    Ok(seg)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::format::page::{heap, verify_page, PageVerdict};

    fn page_with_tuples(n: usize) -> Vec<u8> {
        let mut p = vec![0u8; 8192];
        let mut upper = 8192;
        for i in 0..n {
            upper -= 40;
            let it = ItemId { off: upper as u16, flags: LpFlags::Normal, len: 40 };
            p[24 + 4 * i..28 + 4 * i].copy_from_slice(&it.raw().to_le_bytes());
            p[upper..upper + 4].copy_from_slice(&(1000 + i as u32).to_le_bytes());
            p[upper + 22] = 24;
            p[upper + 18] = 2;
            p[upper + 16] = (i + 1) as u8; // t_ctid: itself
        }
        put16(&mut p, 12, (24 + 4 * n) as u16);
        put16(&mut p, 14, upper as u16);
        put16(&mut p, 16, 8192);
        put16(&mut p, 18, 8192 | 4);
        p
    }

    #[test]
    fn header_rebuild_restores_a_scribbled_header() {
        let good = page_with_tuples(5);
        let mut bad = good.clone();
        put16(&mut bad, 12, 0x7FFF);
        put16(&mut bad, 16, 3);
        assert!(!verify_page(&bad, 0, false).unwrap().is_ok());
        // The whole header scribbled (the sweep's shape): pd_lsn, flags, prune xid too.
        bad[0..12].copy_from_slice(&[0xCD; 12]);
        bad[20..24].copy_from_slice(&[0xEE; 4]);
        let h = derive_header(&bad, 0x0100_0028).unwrap();
        assert_eq!(h.rows, 5);
        let fixed = rebuild_header(&bad, &h, 0, true);
        assert_eq!(verify_page(&fixed, 0, true).unwrap(), PageVerdict::Valid);
        assert_eq!(&fixed[12..18], &good[12..18]);
        let ph = crate::format::page::PageHeader::parse(&fixed).unwrap();
        assert_eq!((ph.lsn.0, ph.flags, ph.prune_xid), (0x0100_0028, 0, 0));
        assert_eq!(&fixed[24..], &bad[24..], "only the header changes");
        assert!(derive_header(&[0u8; 8192], 0).is_none());
    }

    #[test]
    fn freeze_and_kill() {
        let p = page_with_tuples(3);
        let f = freeze_tuples(&p, &[2], 7, true).unwrap();
        let t = heap::tuples(&f).unwrap();
        let h = t[1].header.unwrap();
        assert!(h.xmin_frozen() && h.has(infomask::XMAX_INVALID) && h.xmin == FROZEN_XID);
        assert_eq!(t[0].header.unwrap().xmin, 1000);
        assert_eq!(verify_page(&f, 7, true).unwrap(), PageVerdict::Valid);
        let k = kill_tuples(&p, &[1], 7, false).unwrap();
        assert_eq!(heap::tuples(&k).unwrap()[0].item.flags, LpFlags::Dead);
        assert!(freeze_tuples(&p, &[9], 7, false).is_err());
    }

    #[test]
    fn hidden_rows_are_found_and_restored() {
        let p = page_with_tuples(4);
        let mut hid = p.clone();
        // Item 2 turned unused and item 3 dead, their offsets and lengths kept (flag bits
        // flipped); item 4's pointer replaced by junk (unused, pointing past the page).
        for (i, flags) in [(1usize, 0u32), (2, 3)] {
            let raw = u32::from_le_bytes(hid[24 + 4 * i..28 + 4 * i].try_into().unwrap());
            let v = (raw & !(3 << 15)) | (flags << 15);
            hid[24 + 4 * i..28 + 4 * i].copy_from_slice(&v.to_le_bytes());
        }
        hid[36..40].copy_from_slice(&(8100u32 | (400 << 17)).to_le_bytes());
        let t = heap::tuples(&hid).unwrap();
        assert!(t[0].hidden.is_none() && t[0].problem.is_none());
        assert!(t[1].hidden.is_some() && t[2].hidden.is_some());
        assert!(t[3].hidden.is_none() && t[3].problem.as_deref().unwrap_or("").contains("the row it held is lost"));
        let items = vec![(2, t[1].item.off, t[1].item.len), (3, t[2].item.off, t[2].item.len)];
        let fixed = restore_pointers(&hid, &items, 0, true).unwrap();
        assert_eq!(&fixed[24..36], &p[24..36]);
        assert_eq!(verify_page(&fixed, 0, true).unwrap(), PageVerdict::Valid);
        // Planned for other bytes: refused.
        assert!(restore_pointers(&p, &items, 0, true).is_err());
    }

    #[test]
    fn vm_and_clog() {
        let mut vm = vec![0u8; 8192];
        vm[24 + 1] = 0xFF; // heap blocks 4..7
        let c = clear_vm_bits(&vm, 5, 0, false);
        assert_eq!(c[25], 0b1111_0011);
        assert_eq!(vm_block_of(32672, 8192), 1);
        let seg = clog_segment(&[], 2, 8192, &[(5, XactStatus::Committed), (40000, XactStatus::Aborted)]).unwrap();
        assert_eq!(seg.len(), 16384);
        let g = ClogGeometry::new(8192);
        assert_eq!(g.status_in_segment(&seg, 5).unwrap(), XactStatus::Committed);
        assert_eq!(g.status_in_segment(&seg, 40000).unwrap(), XactStatus::Aborted);
    }
}
