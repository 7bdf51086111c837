//! A lost WAL segment whose content the surviving WAL proves: the segment holding the REDO
//! point, when it held nothing but what the checkpoint itself writes and a switch record.
//!
//! The proof, all of it from outside the lost segment:
//! - pg_control is intact: its copy of the checkpoint is the checkpoint record's content;
//! - the REDO point and the checkpoint record lie in the lost segment, and the next segment
//!   is present, starts with no record continued from the lost one, and its first record's
//!   xl_prev names the position right after the checkpoint record: a switch record, which
//!   ended the segment;
//! - the checkpoint's own records (the REDO record from 17, the running-transactions record
//!   at wal_level replica or logical) fill exactly the space from the REDO point to the
//!   checkpoint record;
//! - no page of any relation carries an LSN inside the lost segment: no change to a page
//!   was logged there.
//!
//! Rebuilt, the segment lets recovery replay every segment after it, so nothing is lost.
//! Two things in it are not known and do not matter to crash recovery: the xl_prev of the
//! first record (it only has to precede it) and the list of running transactions (read by a
//! hot standby only).

use crate::datadir::{DataDir, DirWalSource, WAL_DIR};
use crate::format::control::ControlFile;
use crate::format::types::Lsn;
use crate::format::wal::page::{validate_page_header, PageExpect};
use crate::format::wal::{WalGeometry, WalReader};

/// A lost segment with its proven content.
pub struct Proof {
    /// `pg_wal/<name>`.
    pub file: String,
    pub checkpoint: Lsn,
    pub switch: Lsn,
    pub online: bool,
    pub bytes: Vec<u8>,
}

/// Whether the checkpoint of `c` (pg_control as found, intact) was an online one: a shutdown
/// checkpoint has its REDO point at itself and no oldest active xid.
pub fn online(c: &ControlFile) -> bool {
    !(c.checkpoint.redo_lsn == c.checkpoint_lsn && c.checkpoint.oldest_active_xid == 0)
}

/// The proof for the segment `missing` (`pg_wal/<name>`), or why there is none.
/// `late_min`: the lowest page LSN past the REDO point (0: none).
pub fn prove(dd: &DataDir, c: &ControlFile, missing: &str, late_min: u64) -> Result<Proof, String> {
    let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).map_err(|e| e.to_string())?;
    let (redo, ckpt, tli) = (c.checkpoint.redo_lsn, c.checkpoint_lsn, c.checkpoint.timeline_id);
    let segno = g.segno(redo);
    let name = g.file_name(tli, segno);
    let file = format!("{WAL_DIR}/{name}");
    if missing != file || g.segno(ckpt) != segno {
        return Err(format!("the lost segment is not the one holding both the REDO point {redo} and the checkpoint record {ckpt}"));
    }
    if std::fs::symlink_metadata(dd.path(&file)).is_ok() {
        return Err(format!("{file} exists"));
    }
    let next_start = g.segment_start(segno + 1);
    if late_min != 0 && late_min <= next_start.0 {
        return Err(format!("a page carries LSN {}, inside the lost segment: it held a change to that page", Lsn(late_min)));
    }
    let src = DirWalSource::new(dd, g, tli).map_err(|e| e.to_string())?;
    let mut r = WalReader::new(src, c.major, g, Some(c.system_identifier));
    let h = r.load_page(next_start).map_err(|e| format!("the next segment cannot be read: {e}"))?;
    let expect = PageExpect { major: c.major, pageaddr: next_start, seg_size: g.seg_size, block_size: g.block_size, sysid: Some(c.system_identifier) };
    validate_page_header(&h, &expect).map_err(|e| format!("the next segment's first page: {e}"))?;
    if h.is_contrecord() || h.rem_len != 0 {
        return Err("a record of the lost segment continues into the next one: its content is not known".into());
    }
    let first = Lsn(next_start.0 + h.size() as u64);
    let rec = r.read_record(first, None).map_err(|e| format!("the next segment's first record cannot be read: {e}"))?;
    let switch = rec.record.header.prev;
    let bytes = crate::format::wal::build::checkpoint_segment(g, c.major, c.system_identifier, &c.checkpoint, online(c), c.wal_level, ckpt, switch)
        .map_err(|e| format!("the checkpoint's own records and a switch record do not fill the lost segment up to where the next one points back ({switch}): it held more ({e})"))?;
    Ok(Proof { file, checkpoint: ckpt, switch, online: online(c), bytes })
}
