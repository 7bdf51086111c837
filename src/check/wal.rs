//! WAL: the segment files in pg_wal (foreign, misplaced, wrong size), and the record chain
//! from the latest checkpoint's REDO point to the end of valid WAL, with CRCs. Where the
//! chain stops, it tells the normal end of WAL (zeroes, a recycled page) from damage (more
//! valid WAL follows the break), as recovery would meet it.

use crate::datadir::{DataDir, DirWalSource, WAL_DIR};
use crate::error::Result;
use crate::finding::{Area, Code, Finding};
use crate::format::control::{ControlFile, DbState};
use crate::format::types::Lsn;
use crate::format::wal::page::{validate_page_header, PageExpect, PageHeaderProblem, WalPageHeader};
use crate::format::wal::{decode_checkpoint, SegNo, WalError, WalGeometry, WalReader, WalSource};
use rayon::prelude::*;
use serde::Serialize;
use std::fs::File;
use std::io::Read;

#[derive(Clone, Debug, Serialize)]
pub struct WalSummary {
    pub redo_lsn: Lsn,
    pub checkpoint_lsn: Lsn,
    pub checkpoint_record_ok: bool,
    /// Where replay from the REDO point would stop.
    pub end_of_valid_wal: Lsn,
    /// Why it stops there.
    pub end_reason: String,
    pub records: u64,
    pub bytes: u64,
    pub segment_files: usize,
    /// Segments from the REDO segment to the one holding the end of valid WAL.
    pub segments_replayed: Vec<String>,
    /// What replaying the valid WAL from the REDO point moves forward: pg_control's
    /// counters are those of the last checkpoint, and a crashed cluster has assigned more.
    pub advance: Advance,
}

/// Counters the valid WAL after the REDO point carries past pg_control's checkpoint values,
/// as replay would set them (None: WAL moves nothing).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Advance {
    /// One past the highest xid any replayed record carries (xl_xid, subtransactions of
    /// commits and aborts), when that is past the checkpoint's NextXID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_xid: Option<crate::format::types::FullXid>,
    /// The highest XLOG_NEXTOID value, when past the checkpoint's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_oid: Option<u32>,
    /// One past the highest multixact created, and the member offset after it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_multixact: Option<(u32, u32)>,
}

impl Advance {
    /// `c` with its counters moved forward as replay would move them.
    pub fn apply(&self, c: &ControlFile) -> ControlFile {
        let mut n = c.clone();
        if let Some(x) = self.next_xid {
            n.checkpoint.next_xid = x;
        }
        if let Some(o) = self.next_oid {
            n.checkpoint.next_oid = o;
        }
        if let Some((m, off)) = self.next_multixact {
            n.checkpoint.next_multixact_id = m;
            n.checkpoint.next_multi_offset = off;
        }
        n
    }
    pub fn is_empty(&self) -> bool {
        *self == Advance::default()
    }
}

/// The farthest counters seen in records, each as a distance ahead of the checkpoint's
/// value in the 32-bit circular order (negative: behind, ignored).
#[derive(Clone, Copy, Debug, Default)]
struct Ahead {
    xid: Option<u32>,
    oid: Option<u32>,
    multi: Option<(u32, u32)>,
}

/// RM_MULTIXACT_ID and XLOG_MULTIXACT_CREATE_ID (multixact.h); XLOG_NEXTOID (pg_control.h).
const RM_MULTIXACT_ID: u8 = 6;
const XLOG_MULTIXACT_CREATE_ID: u8 = 0x20;
const XLOG_NEXTOID: u8 = 0x30;

impl Ahead {
    fn see(&mut self, c: &ControlFile, rec: &crate::format::wal::DecodedRecord) {
        let cp = &c.checkpoint;
        let mut xid = |x: u32| {
            if x >= 3 {
                let d = x.wrapping_sub(cp.next_xid.xid());
                if d < 1 << 31 {
                    self.xid = Some(self.xid.map_or(d, |m| m.max(d)));
                }
            }
        };
        xid(rec.header.xid);
        if let Some(o) = crate::format::wal::xact::decode_outcome(c.major, rec) {
            o.subxacts.iter().for_each(|&s| xid(s));
        }
        let data = rec.main_data();
        let u32_at = |o: usize| data.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        match (rec.header.rmid, rec.header.info & 0xF0) {
            (crate::format::wal::record::RM_XLOG_ID, XLOG_NEXTOID) => {
                if let Some(o) = u32_at(0) {
                    let d = o.wrapping_sub(cp.next_oid);
                    if d < 1 << 31 && d > 0 {
                        self.oid = Some(self.oid.map_or(d, |m| m.max(d)));
                    }
                }
            }
            (RM_MULTIXACT_ID, XLOG_MULTIXACT_CREATE_ID) => {
                // xl_multixact_create: mid, moff, nmembers.
                if let (Some(mid), Some(moff), Some(n)) = (u32_at(0), u32_at(4), u32_at(8)) {
                    let d = mid.wrapping_sub(cp.next_multixact_id);
                    if d < 1 << 31 && self.multi.is_none_or(|(m, _)| d >= m) {
                        self.multi = Some((d, moff.wrapping_add(n)));
                    }
                }
            }
            _ => {}
        }
    }
    fn merge(&mut self, o: Ahead) {
        self.xid = match (self.xid, o.xid) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.oid = match (self.oid, o.oid) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.multi = match (self.multi, o.multi) {
            (Some(a), Some(b)) => Some(if b.0 >= a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
    }
    fn advance(&self, c: &ControlFile) -> Advance {
        let cp = &c.checkpoint;
        let next_xid = self.xid.map(|d| {
            // One past the highest xid seen, across the epoch boundary when it wraps.
            let (e, x) = (cp.next_xid.epoch(), cp.next_xid.xid());
            let n = x as u64 + d as u64 + 1;
            let (e, n) = if n > u32::MAX as u64 { (e.wrapping_add(1), (n - (1u64 << 32)) as u32) } else { (e, n as u32) };
            crate::format::types::FullXid::new(e, n.max(3))
        });
        Advance {
            next_xid,
            next_oid: self.oid.map(|d| cp.next_oid.wrapping_add(d)),
            next_multixact: self.multi.map(|(d, off)| (cp.next_multixact_id.wrapping_add(d).wrapping_add(1).max(1), off)),
        }
    }
}

pub fn scan(dd: &DataDir, c: &ControlFile) -> Result<(WalSummary, Vec<Finding>)> {
    let mut findings = Vec::new();
    let g = match WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size) {
        Ok(g) => g,
        Err(e) => {
            findings.push(
                Finding::new(Code::ControlUnreadable, Area::Control, format!("pg_control has an invalid WAL geometry: {e}")).file(crate::datadir::CONTROL_PATH),
            );
            let s = WalSummary {
                redo_lsn: c.checkpoint.redo_lsn,
                checkpoint_lsn: c.checkpoint_lsn,
                checkpoint_record_ok: false,
                end_of_valid_wal: c.checkpoint.redo_lsn,
                end_reason: "WAL geometry unknown".into(),
                records: 0,
                bytes: 0,
                segment_files: 0,
                segments_replayed: vec![],
                advance: Advance::default(),
            };
            return Ok((s, findings));
        }
    };
    let tli = c.checkpoint.timeline_id;
    let segments = dd.wal_segments(&g)?;
    // 1. Every segment file by itself: its first page says whose and which segment it is.
    let mut real_segnos = Vec::new(); // segments whose first page is a valid page of this cluster at its own address
    for (_, segno, name, len) in &segments {
        let rel = format!("{WAL_DIR}/{name}");
        if *len != g.seg_size as u64 {
            findings.push(
                Finding::new(Code::WalSegmentWrongSize, Area::Wal, format!("{rel} is {len} bytes; this cluster's WAL segments are {} bytes", g.seg_size))
                    .file(rel.clone())
                    .offset(*len),
            );
        }
        let mut page = vec![0u8; g.block_size as usize];
        let Ok(mut f) = File::open(dd.path(&rel)) else { continue };
        if f.read_exact(&mut page).is_err() || page.iter().all(|&b| b == 0) {
            continue; // empty or preallocated: nothing to say
        }
        let Ok(h) = WalPageHeader::parse(&page) else { continue };
        let expect =
            PageExpect { major: c.major, pageaddr: g.segment_start(*segno), seg_size: g.seg_size, block_size: g.block_size, sysid: Some(c.system_identifier) };
        match validate_page_header(&h, &expect) {
            Ok(()) => real_segnos.push(*segno),
            Err(PageHeaderProblem::SystemIdentifier { found, expected }) => findings.push(
                Finding::new(
                    Code::WalForeignSegment,
                    Area::Wal,
                    format!("{rel} belongs to another cluster: its system identifier is {found}, this cluster's is {expected}"),
                )
                .file(rel)
                .offset(24)
                .evidence("the server refuses it: WAL file is from different database system"),
            ),
            Err(PageHeaderProblem::Magic { found, other_major: Some(m), .. }) => findings.push(
                Finding::new(
                    Code::WalForeignSegment,
                    Area::Wal,
                    format!("{rel} is WAL of PostgreSQL {m} (magic {found:04X}); this cluster is PostgreSQL {}", c.major),
                )
                .file(rel)
                .offset(0),
            ),
            // Other garbage in a segment's first page is judged by the chain below if it matters.
            Err(PageHeaderProblem::Magic { other_major: None, .. }) => {}
            Err(PageHeaderProblem::PageAddress { found, expected }) if found > expected => findings.push(
                Finding::new(
                    Code::WalSegmentMisplaced,
                    Area::Wal,
                    format!("{rel} holds WAL of {} (page address {found}), not of its own name", g.file_name(h.tli, g.segno(found))),
                )
                .file(rel)
                .offset(8),
            ),
            _ => {} // an older address: a recycled segment, normal
        }
    }

    // 2. The chain from REDO: each segment's records are read and CRC-checked on its own
    // thread, then the pieces are stitched (start = previous next, xl_prev = previous
    // record); where they do not fit, the segment is re-read sequentially from the chain.
    let src = DirWalSource::new(dd, g, tli)?;
    let redo = c.checkpoint.redo_lsn;
    let first = g.segno(redo);
    let last = src.last_segno().unwrap_or(first).max(first);
    let runs: Vec<SegRun> =
        (first..=last).into_par_iter().map(|segno| run_segment(&src.fork(), c, &g, segno, (segno == first).then_some(redo), None)).collect();
    let mut reader = WalReader::new(src.fork(), c.major, g, Some(c.system_identifier));
    let (mut expected, mut last_rec): (Lsn, Option<Lsn>) = (redo, None);
    let (mut records, mut checkpoint_ok, mut end) = (0u64, false, redo);
    let mut stop: Option<WalError> = None;
    let mut ahead = Ahead::default();
    for run in runs {
        let norm = normalize(&g, expected);
        if g.segno(norm) > run.segno {
            continue; // a record spans this whole segment
        }
        let fits = run.start.map(|s| normalize(&g, s)) == Some(norm) && (last_rec.is_none() || run.first_prev == last_rec || run.records == 0);
        let run = if fits { run } else { run_segment(&src.fork(), c, &g, run.segno, Some(expected), Some(last_rec)) };
        records += run.records;
        checkpoint_ok |= run.checkpoint_ok;
        ahead.merge(run.ahead);
        for f in run.findings {
            findings.push(f);
        }
        if run.records > 0 {
            last_rec = run.last;
            end = run.end;
        }
        expected = run.next;
        if let Some(e) = run.stop {
            stop = Some(e);
            break;
        }
    }
    let stop = stop.unwrap_or(WalError::MissingSegment { segno: last + 1, lsn: normalize(&g, expected) });
    let stop_lsn = stop.lsn();
    // 3. Is there valid WAL of this cluster after the stop? Then the stop is damage.
    let beyond = valid_wal_after(&mut reader, &g, stop_lsn, &real_segnos);
    let lsn = expected;
    let file_of = |segno: SegNo| reader.source.file_for(segno).unwrap_or_else(|| reader.source.expected_name(segno));
    let reached_checkpoint = checkpoint_ok || c.checkpoint_lsn < lsn;
    let end_reason = stop.to_string();
    match (&stop, beyond) {
        (WalError::MissingSegment { segno, .. }, Some(after)) => findings.push(
            Finding::new(
                Code::WalSegmentMissing,
                Area::Wal,
                format!(
                    "{WAL_DIR}/{} is missing: replay from the REDO point {redo} stops at {stop_lsn}, although WAL continues at {after}",
                    reader.source.expected_name(*segno)
                ),
            )
            .file(format!("{WAL_DIR}/{}", reader.source.expected_name(*segno)))
            .lsn(stop_lsn)
            .evidence(format!("valid WAL of this cluster resumes at {after}; everything written from {stop_lsn} on cannot be replayed")),
        ),
        (WalError::MissingSegment { segno, .. }, None) if !reached_checkpoint || needs_more(c, stop_lsn) => findings.push(
            Finding::new(
                Code::WalSegmentMissing,
                Area::Wal,
                format!("{WAL_DIR}/{} is missing: it is needed to replay from the REDO point {redo}", reader.source.expected_name(*segno)),
            )
            .file(format!("{WAL_DIR}/{}", reader.source.expected_name(*segno)))
            .lsn(stop_lsn),
        ),
        (_, Some(after)) => {
            // Recovery ends at the start of the record it cannot read, even when the
            // damage it met lies further on (a later page header of a record spanning pages).
            let at = normalize(&g, lsn).min(stop_lsn);
            let seg = g.segno(at);
            findings.push(
                Finding::new(Code::WalRecordBroken, Area::Wal, format!("WAL is broken at {at}: {stop}"))
                    .file(format!("{WAL_DIR}/{}", file_of(seg)))
                    .offset(g.offset_in_segment(at) as u64)
                    .lsn(at)
                    .evidence(format!("valid WAL of this cluster continues at {after}: recovery stops at {at} and loses what follows")),
            );
        }
        _ => {}
    }
    if !reached_checkpoint {
        let consequence =
            format!("the latest checkpoint record at {} lies beyond it: the server fails with: could not locate a valid checkpoint record", c.checkpoint_lsn);
        if let Some(f) = findings.iter_mut().find(|f| f.code == Code::WalSegmentMissing || f.code == Code::WalRecordBroken) {
            f.evidence.push(consequence);
        } else {
            let seg = g.segno(c.checkpoint_lsn);
            findings.push(
                Finding::new(Code::WalCheckpointUnreadable, Area::Wal, format!("the latest checkpoint record at {} cannot be read: {stop}", c.checkpoint_lsn))
                    .file(format!("{WAL_DIR}/{}", file_of(seg)))
                    .offset(g.offset_in_segment(c.checkpoint_lsn) as u64)
                    .lsn(c.checkpoint_lsn)
                    .evidence("the server fails with: could not locate a valid checkpoint record"),
            );
        }
    }
    let replayed = if end >= redo { (g.segno(redo)..=g.segno(Lsn(end.0.saturating_sub(1).max(redo.0)))).map(file_of).collect() } else { vec![] };
    let summary = WalSummary {
        redo_lsn: redo,
        checkpoint_lsn: c.checkpoint_lsn,
        checkpoint_record_ok: checkpoint_ok,
        end_of_valid_wal: end,
        end_reason,
        records,
        bytes: end.0.saturating_sub(redo.0),
        segment_files: segments.len(),
        segments_replayed: replayed,
        advance: ahead.advance(c),
    };
    Ok((summary, findings))
}

/// The records that start in one segment, read on their own.
struct SegRun {
    segno: SegNo,
    start: Option<Lsn>,
    /// xl_prev of the first record.
    first_prev: Option<Lsn>,
    last: Option<Lsn>,
    records: u64,
    end: Lsn,
    next: Lsn,
    stop: Option<WalError>,
    checkpoint_ok: bool,
    ahead: Ahead,
    findings: Vec<Finding>,
}

/// Read the records starting in `segno`, from `start` (or the first record boundary of the
/// segment), checking xl_prev against `prev` for the first record when given.
fn run_segment(src: &DirWalSource, c: &ControlFile, g: &WalGeometry, segno: SegNo, start: Option<Lsn>, prev: Option<Option<Lsn>>) -> SegRun {
    let mut r = WalReader::new(src.fork(), c.major, *g, Some(c.system_identifier));
    let seg_end = g.segment_start(segno + 1);
    let mut run = SegRun {
        segno,
        start: None,
        first_prev: None,
        last: None,
        records: 0,
        end: Lsn(0),
        next: Lsn(0),
        stop: None,
        checkpoint_ok: false,
        ahead: Ahead::default(),
        findings: vec![],
    };
    let start = match start {
        Some(s) => s,
        None => match r.first_record_in_segment(segno) {
            Ok(Some(s)) => s,
            Ok(None) => {
                run.next = seg_end;
                return run;
            }
            Err(e) => {
                run.next = g.segment_start(segno);
                run.stop = Some(e);
                return run;
            }
        },
    };
    run.start = Some(start);
    run.next = start;
    let mut expected_prev = prev.flatten();
    while run.next < seg_end {
        match r.read_record(run.next, expected_prev) {
            Ok(rr) => {
                if run.records == 0 {
                    run.first_prev = Some(rr.record.header.prev);
                }
                run.records += 1;
                run.ahead.see(c, &rr.record);
                if rr.record.lsn == c.checkpoint_lsn {
                    match decode_checkpoint(c.major, &rr.record) {
                        Ok(cp) if cp == c.checkpoint => run.checkpoint_ok = true,
                        Ok(_) => run.findings.push(
                            Finding::new(
                                Code::WalCheckpointMismatch,
                                Area::Wal,
                                format!("the checkpoint record at {} differs from pg_control's copy of it", c.checkpoint_lsn),
                            )
                            .lsn(c.checkpoint_lsn),
                        ),
                        Err(e) => run.findings.push(
                            Finding::new(
                                Code::WalCheckpointUnreadable,
                                Area::Wal,
                                format!("the record at {} is not a checkpoint record: {e}", c.checkpoint_lsn),
                            )
                            .lsn(c.checkpoint_lsn),
                        ),
                    }
                }
                expected_prev = Some(rr.record.lsn);
                run.last = Some(rr.record.lsn);
                run.end = rr.end;
                run.next = rr.next;
            }
            Err(e) => {
                run.stop = Some(e);
                break;
            }
        }
    }
    run
}

/// A record position at a page boundary really starts after that page's header.
fn normalize(g: &WalGeometry, lsn: Lsn) -> Lsn {
    let bs = g.block_size as u64;
    if lsn.0 % bs != 0 {
        return lsn;
    }
    Lsn(lsn.0 + if lsn.0 % g.seg_size as u64 == 0 { 40 } else { 24 })
}

/// Whether the cluster needs WAL up to a point past `stop` (archive recovery with a
/// minimum recovery point, or a backup end).
fn needs_more(c: &ControlFile, stop: Lsn) -> bool {
    matches!(c.state, DbState::InArchiveRecovery | DbState::ShutDownInRecovery) && c.min_recovery_end_lsn > stop
}

/// The first page after `stop` that is a valid WAL page of this cluster at its own address
/// and not zero: in the rest of the stop's segment, then in each later real segment.
fn valid_wal_after(reader: &mut WalReader<DirWalSource>, g: &WalGeometry, stop: Lsn, real_segnos: &[SegNo]) -> Option<Lsn> {
    let bs = g.block_size as u64;
    let stop_seg = g.segno(stop);
    let expect = |addr: Lsn| PageExpect { major: reader.major, pageaddr: addr, seg_size: g.seg_size, block_size: g.block_size, sysid: reader.sysid };
    let mut page = Lsn((stop.0 / bs + 1) * bs);
    while g.segno(page) == stop_seg {
        let Ok(buf) = reader.source.page(stop_seg, g.offset_in_segment(page), bs as usize) else { break };
        if let Ok(h) = WalPageHeader::parse(buf) {
            if validate_page_header(&h, &expect(page)).is_ok() {
                return Some(page);
            }
        }
        page = Lsn(page.0 + bs);
    }
    real_segnos.iter().find(|&&s| s > stop_seg).map(|&s| g.segment_start(s))
}

/// Where a segment recovery needs is missing from pg_wal but a whole copy of it is in an
/// archive (or in pg_wal under another name), the finding says where.
pub fn copies_elsewhere(inv: &crate::inventory::Inventory, c: &ControlFile, findings: &mut [Finding]) {
    let Ok(g) = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size) else { return };
    for f in findings.iter_mut().filter(|f| f.code == Code::WalSegmentMissing) {
        let Some(name) = f.at.file.as_deref().and_then(|p| p.rsplit('/').next()) else { continue };
        let Some((tli, segno)) = g.parse_file_name(name) else { continue };
        if let Some(i) = inv.segment_copy(segno, tli) {
            let file = &inv.files[i];
            f.evidence.push(format!(
                "{} {}{}: putting it back loses nothing (`pgsalvage plan` does)",
                super::COPY_ELSEWHERE,
                file.path,
                file.compression.map(|c| format!(" ({} compressed)", c.name())).unwrap_or_default()
            ));
        }
    }
}
