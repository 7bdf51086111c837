//! Commit status from evidence, for pg_xact pages that are lost: commit and abort records
//! still in WAL (with their subtransactions), then the hint bits tuples carry, and a policy
//! only for the rest. Never for xids outside [oldestXID, NextXID).

use super::{xact_pages_needed, ActionKind, XactPolicy, XactSources};
use crate::datadir::DataDir;
use crate::format::control::ControlFile;
use crate::format::types::Xid;
use crate::format::xact::{parse_segment_file_name, ClogGeometry, XactStatus};
use crate::inventory::{Inventory, Outcomes};
use std::collections::HashMap;

/// Outcomes of transactions in [a, b] found in the WAL still in pg_wal: every file, by
/// what its pages hold (recycled segments too), see [`Inventory::outcomes`].
pub fn wal_outcomes(dd: &DataDir, c: &ControlFile, a: Xid, b: Xid) -> HashMap<Xid, bool> {
    let o = Inventory::scan(dd, c, &[]).outcomes(c.checkpoint.timeline_id);
    o.status.iter().filter(|(x, _)| x.wrapping_sub(a) <= b.wrapping_sub(a)).map(|(x, s)| (*x, s.0)).collect()
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
    (hints, wal): (&[(Xid, XactStatus)], &Outcomes),
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
    let hinted: HashMap<Xid, bool> =
        hints.iter().filter(|(x, _)| x.wrapping_sub(a) <= b.wrapping_sub(a)).map(|(x, s)| (*x, *s == XactStatus::Committed)).collect();
    let mut sources = XactSources::default();
    let mut committed: Vec<(Xid, Xid)> = Vec::new();
    let mut x = a;
    loop {
        let (c_, source) = if let Some((w, file)) = wal.get(x) {
            sources.from_wal += 1;
            *sources.wal_files.entry(file.to_string()).or_default() += 1;
            (w, file)
        } else if let Some(&h) = hinted.get(&x) {
            sources.from_hint_bits += 1;
            (h, "hint bits")
        } else {
            sources.from_policy += 1;
            (policy == XactPolicy::Committed, "policy")
        };
        match sources.by_xid.last_mut() {
            Some(r) if r.1.wrapping_add(1) == x && r.2 == source => r.1 = x,
            _ => sources.by_xid.push((x, x, source.to_string())),
        }
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
    Ok(ActionKind::SynthesizeXact { pages, first_xid: a, last_xid: b, committed, sources, policy_rows: vec![] })
}
