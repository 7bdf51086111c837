//! What a file of WAL holds, told by its page headers and not by its name: runs of
//! consecutive pages that each sit at their own address (xlp_pageaddr is the segment's start
//! plus the page's offset). A segment the server recycled (renamed for reuse) keeps the
//! pages of its previous life past whatever it has written since: two runs, two segments.

use super::page::{WalPageHeader, XLP_ALL_FLAGS};
use super::segment::{SegNo, WalGeometry};
use crate::format::types::{Lsn, TimeLineId};
use crate::format::version::PgMajor;
use serde::Serialize;

/// Consecutive pages of one segment, as found in a file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PageRun {
    /// The segment the pages belong to (by their addresses).
    pub segno: SegNo,
    /// Where the first page is, in the file (equal to its offset in the segment).
    pub offset: u64,
    /// Bytes of the run (whole pages).
    pub len: u64,
    /// The lowest and highest xlp_tli of its pages (pages copied at a timeline switch keep
    /// the old timeline).
    pub tli: (TimeLineId, TimeLineId),
    /// The system identifier of the segment's long header, when the run starts at it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sysid: Option<u64>,
}

impl PageRun {
    pub fn start(&self, g: &WalGeometry) -> Lsn {
        Lsn(g.segment_start(self.segno).0 + self.offset)
    }
    pub fn end(&self, g: &WalGeometry) -> Lsn {
        Lsn(self.start(g).0 + self.len)
    }
}

/// The page at `offset` of a file, if it is a WAL page of `major` with this geometry at the
/// same offset of its own segment: (segno, tli, sysid of a long header).
fn page_at(page: &[u8], offset: u64, major: PgMajor, g: &WalGeometry) -> Option<(SegNo, TimeLineId, Option<u64>)> {
    let h = WalPageHeader::parse(page).ok()?;
    let (bs, seg) = (g.block_size as u64, g.seg_size as u64);
    if h.magic != major.wal_page_magic() || h.info & !XLP_ALL_FLAGS != 0 || h.pageaddr.0 % bs != 0 || h.pageaddr.0 % seg != offset % seg {
        return None;
    }
    // The long header is on the first page of a segment and only there.
    let first = offset % seg == 0;
    if first != h.long.is_some() {
        return None;
    }
    if let Some(l) = h.long {
        if l.seg_size != g.seg_size || l.xlog_blcksz != g.block_size {
            return None;
        }
    }
    Some((g.segno(h.pageaddr), h.tli, h.long.map(|l| l.sysid)))
}

/// The runs of WAL pages in `bytes` (a file's content from its start). Zeroed and foreign
/// pages end a run; a page of another segment starts a new one.
pub fn page_runs(bytes: &[u8], major: PgMajor, g: &WalGeometry) -> Vec<PageRun> {
    let bs = g.block_size as usize;
    // WAL is written page after page from a segment's start: when the first and the last
    // page of a whole segment both belong to it, every page between does (a recycled file
    // being written over still has its old last page). The whole file is then one run,
    // told by two pages instead of all of them.
    let n = bytes.len() / bs;
    if bytes.len() == g.seg_size as usize && n > 2 {
        let last = ((n - 1) * bs) as u64;
        if let (Some(a), Some(b)) = (page_at(&bytes[..bs], 0, major, g), page_at(&bytes[last as usize..], last, major, g)) {
            if a.0 == b.0 {
                return vec![PageRun { segno: a.0, offset: 0, len: bytes.len() as u64, tli: (a.1.min(b.1), a.1.max(b.1)), sysid: a.2 }];
            }
        }
    }
    let mut out: Vec<PageRun> = Vec::new();
    let mut open = false;
    for (i, page) in bytes.chunks_exact(bs).enumerate() {
        let offset = (i * bs) as u64;
        match page_at(page, offset, major, g) {
            Some((segno, tli, sysid)) => match out.last_mut() {
                Some(r) if open && r.segno == segno && r.offset + r.len == offset => {
                    r.len += bs as u64;
                    r.tli = (r.tli.0.min(tli), r.tli.1.max(tli));
                }
                _ => {
                    out.push(PageRun { segno, offset, len: bs as u64, tli: (tli, tli), sysid });
                    open = true;
                }
            },
            None => open = false,
        }
    }
    out
}

/// One line of a timeline history file: timeline `tli` was left at `switchpoint` for the
/// next one listed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    pub tli: TimeLineId,
    pub switchpoint: Lsn,
}

/// Parse a `NNNNNNNN.history` file (`parentTLI <tab> X/Y <tab> reason`, `#` comments), as
/// readTimeLineHistory does. None when a line is malformed or timelines do not increase.
pub fn parse_history(text: &str) -> Option<Vec<HistoryEntry>> {
    let mut out: Vec<HistoryEntry> = Vec::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut f = line.split_whitespace();
        let tli: TimeLineId = f.next()?.parse().ok()?;
        let (hi, lo) = f.next()?.split_once('/')?;
        let switchpoint = Lsn((u64::from(u32::from_str_radix(hi, 16).ok()?) << 32) | u64::from(u32::from_str_radix(lo, 16).ok()?));
        if out.last().is_some_and(|p| p.tli >= tli) {
            return None;
        }
        out.push(HistoryEntry { tli, switchpoint });
    }
    Some(out)
}

/// Whether WAL written on timeline `tli` at `lsn` is part of the history of `current`,
/// whose ancestors and switch points `history` lists (an ancestor's WAL counts up to the
/// point where the history left it; later WAL on it belongs to a branch not taken).
pub fn on_history(current: TimeLineId, history: &[HistoryEntry], tli: TimeLineId, lsn: Lsn) -> bool {
    tli == current || history.iter().any(|h| h.tli == tli && lsn < h.switchpoint)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(major: PgMajor, g: &WalGeometry, addr: u64, tli: u32) -> Vec<u8> {
        let mut p = vec![0u8; g.block_size as usize];
        p[0..2].copy_from_slice(&major.wal_page_magic().to_le_bytes());
        let first = addr % g.seg_size as u64 == 0;
        p[2..4].copy_from_slice(&(if first { 2u16 } else { 0 }).to_le_bytes());
        p[4..8].copy_from_slice(&tli.to_le_bytes());
        p[8..16].copy_from_slice(&addr.to_le_bytes());
        if first {
            p[24..32].copy_from_slice(&7u64.to_le_bytes());
            p[32..36].copy_from_slice(&g.seg_size.to_le_bytes());
            p[36..40].copy_from_slice(&g.block_size.to_le_bytes());
        }
        p
    }

    #[test]
    fn a_recycled_segment_holds_two_runs() {
        let major = PgMajor::new(15).expect("15");
        let g = WalGeometry::new(1 << 20, 8192).expect("geometry");
        let pages = (1 << 20) / 8192u64;
        // Segment 9 written over the first 3 pages of what was segment 2; a zero page; the rest of 2.
        let mut file = Vec::new();
        for i in 0..pages {
            let p = match i {
                0..=2 => page(major, &g, 9 * (1 << 20) + i * 8192, 1),
                3 => vec![0u8; 8192],
                _ => page(major, &g, 2 * (1 << 20) + i * 8192, 1),
            };
            file.extend(p);
        }
        let runs = page_runs(&file, major, &g);
        assert_eq!(runs.len(), 2);
        assert_eq!((runs[0].segno, runs[0].offset, runs[0].len, runs[0].sysid), (9, 0, 3 * 8192, Some(7)));
        assert_eq!((runs[1].segno, runs[1].offset, runs[1].len, runs[1].sysid), (2, 4 * 8192, (pages - 4) * 8192, None));
        // A page at the wrong offset of its segment is not part of any run.
        let mut moved = page(major, &g, 2 * (1 << 20) + 5 * 8192, 1);
        moved.extend(page(major, &g, 2 * (1 << 20) + 5 * 8192, 1));
        assert_eq!(page_runs(&moved, major, &g), vec![]);
    }

    #[test]
    fn history_files_are_read_as_the_server_reads_them() {
        let h = parse_history("# comment\n1\t0/3000158\tno recovery target specified\n\n2\t0/5000000\tat restore point \"x\"\n").expect("parses");
        assert_eq!(h, vec![HistoryEntry { tli: 1, switchpoint: Lsn(0x3000158) }, HistoryEntry { tli: 2, switchpoint: Lsn(0x5000000) }]);
        assert!(on_history(3, &h, 1, Lsn(0x3000000)));
        assert!(!on_history(3, &h, 1, Lsn(0x3000158)));
        assert!(on_history(3, &h, 3, Lsn(0x9000000)));
        assert!(!on_history(3, &h, 4, Lsn(0)));
        assert_eq!(parse_history("2\t0/1\tx\n1\t0/2\ty\n"), None);
        assert_eq!(parse_history("1\tzz\tx\n"), None);
    }
}
