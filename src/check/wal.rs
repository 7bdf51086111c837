//! WAL: the segment files in pg_wal (foreign, misplaced, wrong size), and the record chain
//! from the latest checkpoint's REDO point to the end of valid WAL, with CRCs. Where the
//! chain stops, it tells the normal end of WAL (zeroes, a recycled page) from damage (more
//! valid WAL follows the break), as recovery would meet it.

use crate::datadir::{DataDir, DirWalSource, WAL_DIR};
use crate::error::Result;
use crate::finding::{Area, Finding};
use crate::format::control::{ControlFile, DbState};
use crate::format::types::Lsn;
use crate::format::wal::page::{validate_page_header, PageExpect, WalPageHeader};
use crate::format::wal::{decode_checkpoint, PageFetch, SegNo, WalError, WalGeometry, WalReader, WalSource};
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
}

pub fn scan(dd: &DataDir, c: &ControlFile) -> Result<(WalSummary, Vec<Finding>)> {
    let mut findings = Vec::new();
    let g = match WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size) {
        Ok(g) => g,
        Err(e) => {
            findings.push(
                Finding::new("control-unreadable", Area::Control, format!("pg_control has an invalid WAL geometry: {e}")).file(crate::datadir::CONTROL_PATH),
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
                Finding::new("wal-segment-wrong-size", Area::Wal, format!("{rel} is {len} bytes; this cluster's WAL segments are {} bytes", g.seg_size))
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
        match (h.long, validate_page_header(&h, &expect)) {
            (_, Ok(())) => real_segnos.push(*segno),
            (Some(l), Err(_)) if l.sysid != c.system_identifier && h.magic == c.major.wal_page_magic() => findings.push(
                Finding::new(
                    "wal-foreign-segment",
                    Area::Wal,
                    format!("{rel} belongs to another cluster: its system identifier is {}, this cluster's is {}", l.sysid, c.system_identifier),
                )
                .file(rel)
                .offset(24)
                .evidence("the server refuses it: WAL file is from different database system"),
            ),
            (_, Err(_)) if h.magic != c.major.wal_page_magic() => {
                let other = crate::format::version::PgMajor::from_wal_magic(h.magic);
                if let Some(m) = other {
                    findings.push(
                        Finding::new(
                            "wal-foreign-segment",
                            Area::Wal,
                            format!("{rel} is WAL of PostgreSQL {m} (magic {:04X}); this cluster is PostgreSQL {}", h.magic, c.major),
                        )
                        .file(rel)
                        .offset(0),
                    );
                }
                // Other garbage in a segment's first page is judged by the chain below if it matters.
            }
            (_, Err(_)) if h.pageaddr > g.segment_start(*segno) => findings.push(
                Finding::new(
                    "wal-segment-misplaced",
                    Area::Wal,
                    format!("{rel} holds WAL of {} (page address {}), not of its own name", g.file_name(h.tli, g.segno(h.pageaddr)), h.pageaddr),
                )
                .file(rel)
                .offset(8),
            ),
            _ => {} // an older address: a recycled segment, normal
        }
    }

    // 2. The chain from REDO.
    let src = DirWalSource::new(dd, g, tli)?;
    let mut reader = WalReader::new(src, c.major, g, Some(c.system_identifier));
    let redo = c.checkpoint.redo_lsn;
    let (mut lsn, mut prev) = (redo, None);
    let (mut records, mut checkpoint_ok, mut end) = (0u64, false, redo);
    let stop = loop {
        match reader.read_record(lsn, prev) {
            Ok(rr) => {
                records += 1;
                if rr.record.lsn == c.checkpoint_lsn {
                    match decode_checkpoint(c.major, &rr.record) {
                        Ok(cp) if cp == c.checkpoint => checkpoint_ok = true,
                        Ok(_) => findings.push(
                            Finding::new(
                                "wal-checkpoint-mismatch",
                                Area::Wal,
                                format!("the checkpoint record at {} differs from pg_control's copy of it", c.checkpoint_lsn),
                            )
                            .lsn(c.checkpoint_lsn),
                        ),
                        Err(e) => findings.push(
                            Finding::new("wal-checkpoint-unreadable", Area::Wal, format!("the record at {} is not a checkpoint record: {e}", c.checkpoint_lsn))
                                .lsn(c.checkpoint_lsn),
                        ),
                    }
                }
                prev = Some(rr.record.lsn);
                end = rr.end;
                lsn = rr.next;
            }
            Err(e) => break e,
        }
    };
    let stop_lsn = stop.lsn();
    // 3. Is there valid WAL of this cluster after the stop? Then the stop is damage.
    let beyond = valid_wal_after(&mut reader, &g, stop_lsn, &real_segnos);
    let file_of = |segno: SegNo| reader.source.file_for(segno).unwrap_or_else(|| reader.source.expected_name(segno));
    let reached_checkpoint = checkpoint_ok || c.checkpoint_lsn < lsn;
    let end_reason = stop.to_string();
    match (&stop, beyond) {
        (WalError::MissingSegment { segno, .. }, Some(after)) => findings.push(
            Finding::new(
                "wal-segment-missing",
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
                "wal-segment-missing",
                Area::Wal,
                format!("{WAL_DIR}/{} is missing: it is needed to replay from the REDO point {redo}", reader.source.expected_name(*segno)),
            )
            .file(format!("{WAL_DIR}/{}", reader.source.expected_name(*segno)))
            .lsn(stop_lsn),
        ),
        (_, Some(after)) => {
            let seg = g.segno(stop_lsn);
            findings.push(
                Finding::new("wal-record-broken", Area::Wal, format!("WAL is broken at {stop_lsn}: {stop}"))
                    .file(format!("{WAL_DIR}/{}", file_of(seg)))
                    .offset(g.offset_in_segment(stop_lsn) as u64)
                    .lsn(stop_lsn)
                    .evidence(format!("valid WAL of this cluster continues at {after}: recovery stops at {stop_lsn} and loses what follows")),
            );
        }
        _ => {}
    }
    if !reached_checkpoint {
        let consequence =
            format!("the latest checkpoint record at {} lies beyond it: the server fails with: could not locate a valid checkpoint record", c.checkpoint_lsn);
        if let Some(f) = findings.iter_mut().find(|f| f.code == "wal-segment-missing" || f.code == "wal-record-broken") {
            f.evidence.push(consequence);
        } else {
            let seg = g.segno(c.checkpoint_lsn);
            findings.push(
                Finding::new("wal-checkpoint-unreadable", Area::Wal, format!("the latest checkpoint record at {} cannot be read: {stop}", c.checkpoint_lsn))
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
    };
    Ok((summary, findings))
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
    let mut buf = vec![0u8; bs as usize];
    let expect = |addr: Lsn| PageExpect { major: reader.major, pageaddr: addr, seg_size: g.seg_size, block_size: g.block_size, sysid: reader.sysid };
    let mut page = Lsn((stop.0 / bs + 1) * bs);
    while g.segno(page) == stop_seg {
        if reader.source.fetch(stop_seg, g.offset_in_segment(page), &mut buf) != PageFetch::Ok {
            break;
        }
        if let Ok(h) = WalPageHeader::parse(&buf) {
            if validate_page_header(&h, &expect(page)).is_ok() {
                return Some(page);
            }
        }
        page = Lsn(page.0 + bs);
    }
    real_segnos.iter().find(|&&s| s > stop_seg).map(|&s| g.segment_start(s))
}
