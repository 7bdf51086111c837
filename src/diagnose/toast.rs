//! The second half of the tuple scan: what waits on commit status, and every TOAST pointer
//! of a live tuple against its TOAST table, read offline, as verify_heapam's
//! `check_toasted_attribute` and `check_toast_tuple` do it through the TOAST index: the
//! value's chunks present, numbered 0..n without gap or excess, each TOAST_MAX_CHUNK_SIZE
//! long but the last.
//!
//! TOAST table tuple := chunk_id:oid chunk_seq:int4 chunk_data:bytea (1-byte header when
//! short; never compressed or external).

use super::tuples::{Pending, ToastFix, TupleProblem, TupleProblemKind, TupleScan};
use crate::catalog::Clog;
use crate::datadir::DataDir;
use crate::format::bytes::u32_at;
use crate::format::control::ControlFile;
use crate::format::page::{heap, PageHeader};
use crate::format::types::xid_is_normal;
use crate::format::xact::XactStatus;
use std::collections::{BTreeMap, HashMap, HashSet};

/// The chunks found for a value: sequence number -> data size (None: a header no chunk has).
type Chunks = BTreeMap<i32, Option<u32>>;

/// A value's chunks, and the first 4 bytes of chunk 0's data (a compressed value's
/// va_tcinfo: raw size and, from PG14, the compression method the server decompresses by).
#[derive(Default)]
struct Found {
    chunks: Chunks,
    head: Option<u32>,
}

/// Resolve what waited on pg_xact, then check the TOAST values; the problems join
/// `scan.problems`.
pub fn settle(dd: &DataDir, c: &ControlFile, scan: &mut TupleScan) {
    let mut clog = Clog::new(dd, c.database_block_size, c.checkpoint.next_xid.xid());
    let mut holds = |p: &Pending| -> bool {
        if p.ruled_out {
            return false;
        }
        let committed = p.committed.is_none_or(|x| !xid_is_normal(x) || clog.status(x) == Some(XactStatus::Committed));
        committed && p.aborted.is_none_or(|x| clog.status(x) == Some(XactStatus::Aborted))
    };
    for (p, when) in std::mem::take(&mut scan.pending) {
        if holds(&when) {
            scan.problems.push(p);
        }
    }
    let refs: Vec<_> = std::mem::take(&mut scan.toast_refs).into_iter().filter(|r| holds(&r.when)).collect();
    let mut wanted: HashMap<&str, HashSet<u32>> = HashMap::new();
    for r in &refs {
        wanted.entry(r.toast_file.as_str()).or_default().insert(r.pointer.valueid);
    }
    let chunks: HashMap<&str, HashMap<u32, Found>> = wanted.iter().map(|(f, ids)| (*f, chunks_of(dd, c, f, ids))).collect();
    // pg_control's copy must equal the server's compile-time value; it is the block size's
    // unless pg_control is damaged, so the block size decides.
    let size = crate::format::control::toast_max_chunk_size(c.database_block_size);
    for r in &refs {
        let found = chunks.get(r.toast_file.as_str()).and_then(|m| m.get(&r.pointer.valueid));
        let problem = |kind, detail: String, toast_fix| TupleProblem {
            file: r.file.clone(),
            block: r.block,
            offnum: r.offnum,
            kind,
            xid: None,
            detail: format!("attribute {} ({}): {detail}", r.column.attnum, r.column.name),
            chain_fix: None,
            column: Some(r.column.clone()),
            toast_fix,
        };
        let valueid = r.pointer.valueid;
        if let Some(detail) = judge(valueid, r.pointer.chunks(size), size, found.map(|f| &f.chunks)) {
            scan.problems.push(problem(TupleProblemKind::ToastMissing, detail, None));
            continue;
        }
        // The value is whole: a wrong method id or a missing HEAP_HASEXTERNAL is mended from
        // the value's own first chunk, which the server decompresses by.
        let head_method = found.and_then(|f| f.head).map(|t| (t >> 30) as u8);
        match r.pointer.method_invalid() {
            Some(m) => match head_method.filter(|&h| h <= 1) {
                Some(h) => scan.problems.push(problem(
                    TupleProblemKind::AttributeInvalid,
                    format!("toast value {valueid} has invalid compression method id {m}; its first chunk says {h} ({})", if h == 0 { "pglz" } else { "lz4" }),
                    Some(ToastFix { attnum: r.column.attnum, method: Some(h) }),
                )),
                None => scan.problems.push(problem(
                    TupleProblemKind::AttributeInvalid,
                    format!("toast value {valueid} has invalid compression method id {m}, and so has its first chunk"),
                    None,
                )),
            },
            None if r.no_flag => scan.problems.push(problem(
                TupleProblemKind::AttributeInvalid,
                format!("toast value {valueid} is external but tuple header flag HEAP_HASEXTERNAL not set"),
                Some(ToastFix { attnum: r.column.attnum, method: None }),
            )),
            None => {}
        }
    }
    scan.problems.sort_by(|a, b| (&a.file, a.block, a.offnum).cmp(&(&b.file, b.block, b.offnum)));
}

/// What is wrong with a value's chunks, in verify_heapam's words (the first few).
fn judge(valueid: u32, (n, last): (u32, u32), size: u32, found: Option<&Chunks>) -> Option<String> {
    let Some(found) = found.filter(|f| !f.is_empty()) else {
        return Some(format!("toast value {valueid} not found in toast table"));
    };
    let mut out = Vec::new();
    let mut expect = 0i32;
    for (&seq, &len) in found {
        if seq != expect {
            out.push(format!("toast value {valueid} index scan returned chunk {seq} when expecting chunk {expect}"));
        }
        expect = seq + 1;
        let last_seq = n as i32 - 1;
        if seq > last_seq {
            out.push(format!("toast value {valueid} chunk {seq} follows last expected chunk {last_seq}"));
            continue;
        }
        let want = if seq < last_seq { size } else { last };
        match len {
            None => out.push(format!("toast value {valueid} chunk {seq} has invalid varlena header")),
            Some(l) if l != want => out.push(format!("toast value {valueid} chunk {seq} has size {l}, but expected size {want}")),
            _ => {}
        }
    }
    if expect < n as i32 {
        out.push(format!("toast value {valueid} was expected to end at chunk {}, but ended while expecting chunk {expect}", n as i32 - 1));
    }
    if out.is_empty() {
        return None;
    }
    let more = out.len().saturating_sub(3);
    out.truncate(3);
    if more > 0 {
        out.push(format!("and {more} more"));
    }
    Some(out.join("; "))
}

/// The chunks of the values `ids` in a TOAST table (every segment of its main fork). Pages
/// the server would reject are read too when their line pointers hold (a rebuilt header
/// keeps their chunks); all-zero pages hold none. Chunks of inserts hinted aborted are not
/// counted.
fn chunks_of(dd: &DataDir, c: &ControlFile, file: &str, ids: &HashSet<u32>) -> HashMap<u32, Found> {
    let bs = c.database_block_size as usize;
    let mut out: HashMap<u32, Found> = HashMap::new();
    // Each segment in 1 MB pieces: a TOAST table can be the largest relation there is.
    let piece = 128 * bs;
    for segno in 0.. {
        let path = if segno == 0 { file.to_string() } else { format!("{file}.{segno}") };
        let Ok(len) = std::fs::metadata(dd.path(&path)).map(|m| m.len() as usize) else { break };
        let usable = len - len % bs;
        for at in (0..usable).step_by(piece) {
            let Ok(bytes) = dd.read_range(&path, at as u64, piece.min(usable - at)) else { break };
            for page in bytes.chunks_exact(bs) {
                if PageHeader::parse(page).map_or(true, |h| h.special as usize != bs) {
                    continue;
                }
                let Ok(slots) = heap::tuples(page) else { continue };
                for t in slots {
                    let Some(h) = t.header else { continue };
                    if h.xmin_invalid_hint() {
                        continue;
                    }
                    let off = t.item.off as usize + h.hoff as usize;
                    let data = &page[off..t.item.off as usize + t.item.len as usize];
                    let (Some(id), Some(seq)) = (u32_at(data, 0), u32_at(data, 4)) else { continue };
                    if !ids.contains(&id) {
                        continue;
                    }
                    let bytea = &data[8.min(data.len())..];
                    let f = out.entry(id).or_default();
                    f.chunks.insert(seq as i32, chunk_len(bytea));
                    if seq == 0 {
                        let start = if bytea.first().is_some_and(|b| b & 0x01 == 0x01) { 1 } else { 4 };
                        f.head = u32_at(bytea, start);
                    }
                }
            }
        }
        if len < bs * c.blocks_per_segment as usize {
            break;
        }
    }
    out
}

/// The data size of a chunk's bytea: 1-byte or plain 4-byte header (None: another kind,
/// "should never happen").
fn chunk_len(b: &[u8]) -> Option<u32> {
    let &b0 = b.first()?;
    if b0 & 0x01 == 0x01 && b0 != 0x01 {
        Some((b0 >> 1) as u32 - 1)
    } else if b0 & 0x03 == 0 {
        // A 4-byte header is 4-aligned: after chunk_seq at 8 it needs no padding.
        Some((u32_at(b, 0)? >> 2).checked_sub(4)?)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sequences_are_judged_as_verify_heapam_does() {
        let full = |n: i32, last: u32| -> Chunks { (0..n).map(|s| (s, Some(if s == n - 1 { last } else { 1996 }))).collect() };
        assert_eq!(judge(7, (3, 100), 1996, Some(&full(3, 100))), None);
        assert_eq!(judge(7, (3, 100), 1996, None).as_deref(), Some("toast value 7 not found in toast table"));
        let mut gap = full(3, 100);
        gap.remove(&1);
        assert_eq!(judge(7, (3, 100), 1996, Some(&gap)).as_deref(), Some("toast value 7 index scan returned chunk 2 when expecting chunk 1"));
        let mut short = full(3, 100);
        short.remove(&2);
        assert_eq!(judge(7, (3, 100), 1996, Some(&short)).as_deref(), Some("toast value 7 was expected to end at chunk 2, but ended while expecting chunk 2"));
        let mut extra = full(3, 100);
        extra.insert(3, Some(5));
        assert_eq!(judge(7, (3, 100), 1996, Some(&extra)).as_deref(), Some("toast value 7 chunk 3 follows last expected chunk 2"));
        let mut wrong = full(3, 100);
        wrong.insert(0, Some(1000));
        assert_eq!(judge(7, (3, 100), 1996, Some(&wrong)).as_deref(), Some("toast value 7 chunk 0 has size 1000, but expected size 1996"));
    }
}
