//! Commit status from evidence, for pg_xact pages that are lost: commit and abort records
//! still in WAL (with their subtransactions), then the hint bits tuples carry, and a policy
//! only for the rest. Never for xids outside [oldestXID, NextXID).

use super::{xact_pages_needed, ActionKind, XactPolicy, XactSources};
use crate::datadir::{DataDir, DirWalSource};
use crate::format::control::ControlFile;
use crate::format::types::Xid;
use crate::format::wal::xact::decode_outcome;
use crate::format::wal::{WalGeometry, WalReader};
use crate::format::xact::{parse_segment_file_name, ClogGeometry, XactStatus};
use std::collections::HashMap;

/// Outcomes of transactions in [a, b] found in the WAL still in pg_wal (every segment,
/// read segment by segment so that one break does not hide the rest).
pub fn wal_outcomes(dd: &DataDir, c: &ControlFile, a: Xid, b: Xid) -> HashMap<Xid, bool> {
    let mut out = HashMap::new();
    let Ok(g) = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size) else { return out };
    let Ok(src) = DirWalSource::new(dd, g, c.checkpoint.timeline_id) else { return out };
    let Ok(segs) = dd.wal_segments(&g) else { return out };
    let inside = |x: Xid| x.wrapping_sub(a) <= b.wrapping_sub(a);
    let mut r = WalReader::new(src, c.major, g, Some(c.system_identifier));
    let mut segnos: Vec<u64> = segs.iter().map(|s| s.1).collect();
    segnos.sort();
    segnos.dedup();
    for segno in segnos {
        let end = g.segment_start(segno + 1);
        let Ok(Some(mut lsn)) = r.first_record_in_segment(segno) else { continue };
        while lsn < end {
            let Ok(rr) = r.read_record(lsn, None) else { break };
            if let Some(o) = decode_outcome(c.major, &rr.record) {
                for x in std::iter::once(o.xid).chain(o.subxacts.iter().copied()) {
                    if inside(x) {
                        out.insert(x, o.committed);
                    }
                }
            }
            lsn = rr.next;
        }
    }
    out
}

/// Why no pg_xact is synthesized for a range.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NotSynthesized {
    #[error("{0} is not a pg_xact segment name")]
    NotASegment(String),
    #[error("xids {a}..{b} are not all inside [oldestXID {oldest}, NextXID {next}): no pg_xact is planned outside it")]
    OutsideWindow { a: Xid, b: Xid, oldest: Xid, next: Xid },
}

/// The SynthesizeXact action for one segment file whose xids a..b lost their status.
pub fn synthesize(
    dd: &DataDir,
    c: &ControlFile,
    file: &str,
    a: Xid,
    b: Xid,
    hints: &[(Xid, XactStatus)],
    policy: XactPolicy,
) -> Result<ActionKind, NotSynthesized> {
    let name = file.rsplit('/').next().unwrap_or(file);
    let segno = parse_segment_file_name(name).ok_or_else(|| NotSynthesized::NotASegment(file.to_string()))?;
    let g = ClogGeometry::new(c.database_block_size);
    // Inside the live window only (the finding's range already is; keep the guarantee here).
    let (oldest, next) = (c.checkpoint.oldest_xid, c.checkpoint.next_xid.xid());
    let live = |x: Xid| x.wrapping_sub(oldest) < next.wrapping_sub(oldest);
    if !live(a) || !live(b) {
        return Err(NotSynthesized::OutsideWindow { a, b, oldest, next });
    }
    let wal = wal_outcomes(dd, c, a, b);
    let hinted: HashMap<Xid, bool> =
        hints.iter().filter(|(x, _)| x.wrapping_sub(a) <= b.wrapping_sub(a)).map(|(x, s)| (*x, *s == XactStatus::Committed)).collect();
    let mut sources = XactSources::default();
    let mut committed: Vec<(Xid, Xid)> = Vec::new();
    let mut x = a;
    loop {
        let c_ = if let Some(&w) = wal.get(&x) {
            sources.from_wal += 1;
            w
        } else if let Some(&h) = hinted.get(&x) {
            sources.from_hint_bits += 1;
            h
        } else {
            sources.from_policy += 1;
            policy == XactPolicy::Committed
        };
        if c_ {
            match committed.last_mut() {
                Some(r) if r.1.wrapping_add(1) == x => r.1 = x,
                _ => committed.push((x, x)),
            }
        }
        if x == b {
            break;
        }
        x = x.wrapping_add(1);
    }
    let existing = std::fs::metadata(dd.path(file)).map(|m| m.len() / c.database_block_size as u64).unwrap_or(0) as u32;
    let pages = xact_pages_needed(&g, segno, b).max(existing);
    Ok(ActionKind::SynthesizeXact { pages, first_xid: a, last_xid: b, committed, sources })
}
