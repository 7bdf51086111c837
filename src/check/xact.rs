//! pg_xact coverage: every page holding the status of an xid in [oldestXID, NextXID) must
//! exist (clog.c reads them; a missing one is `could not access status of transaction`).

use crate::datadir::{DataDir, XACT_DIR};
use crate::error::Result;
use crate::finding::{Area, Code, Finding};
use crate::format::control::ControlFile;
use crate::format::types::Xid;
use crate::format::xact::{segment_file_name, ClogGeometry, SLRU_PAGES_PER_SEGMENT};
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Serialize)]
pub struct XactSummary {
    pub oldest_xid: Xid,
    pub next_xid: Xid,
    pub pages_needed: u32,
    pub segments_needed: Vec<String>,
    pub segments_present: usize,
}

pub fn scan(dd: &DataDir, c: &ControlFile) -> Result<(XactSummary, Vec<Finding>)> {
    let g = ClogGeometry::new(c.database_block_size);
    let oldest = c.checkpoint.oldest_xid;
    let next = c.checkpoint.next_xid.xid();
    let mut findings = Vec::new();
    // Pages needed, in xid order, with the xid range each covers inside the window.
    let mut needed: BTreeMap<u32, Vec<(u32, Xid, Xid)>> = BTreeMap::new(); // segno -> (page, first, last)
    let count = next.wrapping_sub(oldest) as u64;
    let per_page = g.xacts_per_page() as u64;
    let mut done = 0u64;
    let mut xid = oldest;
    let mut pages_needed = 0;
    while done < count {
        let page = g.page_of(xid);
        let (_, page_last) = g.page_xids(page);
        let span = (page_last as u64 - xid as u64 + 1).min(count - done).min(per_page);
        let last = xid.wrapping_add(span as u32 - 1);
        needed.entry(g.segment_of_page(page)).or_default().push((page, xid, last));
        pages_needed += 1;
        done += span;
        xid = last.wrapping_add(1);
    }
    let present: Vec<String> = dd.list(XACT_DIR)?;
    let bs = c.database_block_size as u64;
    let mut segments_needed = Vec::new();
    for (segno, pages) in &needed {
        let name = segment_file_name(*segno);
        let rel = format!("{XACT_DIR}/{name}");
        segments_needed.push(name.clone());
        let (first, last) = (pages[0].1, pages[pages.len() - 1].2);
        if !present.contains(&name) {
            findings.push(
                Finding::new(
                    Code::XactSegmentMissing,
                    Area::Xact,
                    format!("{rel} is missing; it holds the commit status of xids {first}..{last}, which are between oldestXID {oldest} and NextXID {next}"),
                )
                .file(rel)
                .xids(first, last)
                .evidence(format!("the server fails with: could not access status of transaction {first} / Could not open file \"{XACT_DIR}/{name}\"")),
            );
            continue;
        }
        let len = std::fs::metadata(dd.path(&rel)).map(|m| m.len()).unwrap_or(0);
        let short: Vec<&(u32, Xid, Xid)> = pages.iter().filter(|(p, _, _)| ((p % SLRU_PAGES_PER_SEGMENT) as u64 + 1) * bs > len).collect();
        if let (Some(a), Some(b)) = (short.first(), short.last()) {
            let have = len / bs;
            findings.push(
                Finding::new(
                    Code::XactSegmentShort,
                    Area::Xact,
                    format!(
                        "{rel} is {len} bytes ({have} pages); the status of xids {}..{} is on pages it lacks ({}..{} of the segment)",
                        a.1,
                        b.2,
                        a.0 % SLRU_PAGES_PER_SEGMENT,
                        b.0 % SLRU_PAGES_PER_SEGMENT
                    ),
                )
                .file(rel)
                .offset(len)
                .xids(a.1, b.2)
                .evidence(format!(
                    "the server fails with: could not access status of transaction {} / could not read from file \"{XACT_DIR}/{name}\" at offset {}",
                    a.1,
                    (a.0 % SLRU_PAGES_PER_SEGMENT) as u64 * bs
                )),
            );
        }
    }
    let segments_present = present.iter().filter(|n| crate::format::xact::parse_segment_file_name(n).is_some()).count();
    Ok((XactSummary { oldest_xid: oldest, next_xid: next, pages_needed, segments_needed, segments_present }, findings))
}
