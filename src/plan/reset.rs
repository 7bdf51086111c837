//! WAL reset, as pg_resetwal does it (`src/bin/pg_resetwal/pg_resetwal.c`: FindEndOfXLOG,
//! RewriteControlFile, WriteEmptyXLOG, KillExistingXLOG/ArchiveStatus/WALSummaries), but
//! computed first and shown: the new pg_control, the new first WAL segment holding a
//! shutdown checkpoint record, and the files moved out of pg_wal. Pure: the caller gives
//! the directory listings and the time.

use crate::format::control::{CheckPoint, ControlFile, DbState};
use crate::format::types::{FullXid, Lsn};
use crate::format::wal::page::{LONG_HEADER_SIZE, XLP_LONG_HEADER};
use crate::format::wal::record::{record_crc, RM_XLOG_ID, SIZE_OF_XLOG_RECORD, XLOG_CHECKPOINT_SHUTDOWN, XLR_BLOCK_ID_DATA_SHORT, XL_CRC_OFFSET};
use crate::format::wal::{segment::is_wal_file_name, WalGeometry};
use crate::format::xact::parse_segment_file_name;
use serde::{Deserialize, Serialize};

/// pg_resetwal's options that set values by hand.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct ResetOverrides {
    /// -x
    pub next_xid: Option<u32>,
    /// -e
    pub epoch: Option<u32>,
    /// -o
    pub next_oid: Option<u32>,
    /// -m next,oldest
    pub multixact: Option<(u32, u32)>,
    /// -O
    pub multixact_offset: Option<u32>,
    /// -c oldest,newest
    pub commit_ts: Option<(u32, u32)>,
    /// -l: the first new WAL file name (at least)
    pub wal_file: Option<String>,
}

/// A value of the reset and where it came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Sourced {
    pub field: String,
    pub value: String,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Reset {
    pub control: ControlFile,
    pub segment_name: String,
    pub sources: Vec<Sourced>,
    /// pg_wal entries the reset moves out (segments, partial segments, archive_status files,
    /// WAL summaries), relative to the data directory.
    pub moves: Vec<String>,
}

/// What the data directory shows: names in pg_wal, pg_wal/archive_status, pg_wal/summaries,
/// pg_xact, pg_multixact/offsets, pg_multixact/members.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    pub wal: Vec<String>,
    pub archive_status: Vec<String>,
    pub summaries: Vec<String>,
    pub xact: Vec<String>,
    pub multi_offsets: Vec<String>,
    pub multi_members: Vec<String>,
}

fn highest_slru(names: &[String]) -> Option<u32> {
    names.iter().filter_map(|n| parse_segment_file_name(n)).max()
}

/// Compute the reset. `now` is the Unix time written as the checkpoint and file time.
pub fn compute(c: &ControlFile, l: &Listing, o: &ResetOverrides, now: i64) -> Result<Reset, String> {
    let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).map_err(|e| e.to_string())?;
    let mut n = c.clone();
    let mut sources = Vec::new();
    let mut src = |f: &str, v: String, s: &str| sources.push(Sourced { field: f.into(), value: v, source: s.into() });
    let cp = &mut n.checkpoint;
    // Values pg_control may hold too low after damage: what the directories prove, if higher.
    let xact_guess = highest_slru(&l.xact).map(|s| (s as u64 + 1) * 1_048_576);
    let next32 = cp.next_xid.xid();
    if let Some(x) = o.next_xid {
        // As pg_resetwal 14+: -x sets NextXID only (oldestXID has its own -u there).
        let epoch = cp.next_xid.epoch();
        cp.next_xid = FullXid::new(epoch, x);
        src("next_xid", x.to_string(), "-x (given)");
    } else if let Some(g) = xact_guess.filter(|&g| g <= u32::MAX as u64 && g as u32 > next32 && highest_slru(&l.xact) > Some(next32 / 1_048_576)) {
        cp.next_xid = FullXid::new(cp.next_xid.epoch(), g as u32);
        src("next_xid", g.to_string(), "pg_xact holds segments past pg_control's NextXID: (highest segment + 1) * 1048576");
    } else {
        src("next_xid", next32.to_string(), "pg_control");
    }
    if let Some(e) = o.epoch {
        cp.next_xid = FullXid::new(e, cp.next_xid.xid());
        src("epoch", e.to_string(), "-e (given)");
    } else {
        src("epoch", cp.next_xid.epoch().to_string(), "pg_control");
    }
    if let Some(x) = o.next_oid {
        cp.next_oid = x;
        src("next_oid", x.to_string(), "-o (given)");
    } else {
        src("next_oid", cp.next_oid.to_string(), "pg_control");
    }
    if let Some((next, oldest)) = o.multixact {
        cp.next_multixact_id = next;
        cp.oldest_multi_xid = oldest;
        cp.oldest_multi_dbid = 0;
        src("next_multixact_id", format!("{next} (oldest {oldest})"), "-m (given)");
    } else {
        let guess = highest_slru(&l.multi_offsets).map(|s| (s as u64 + 1) * 65_536);
        match guess.filter(|&g| g <= u32::MAX as u64 && highest_slru(&l.multi_offsets) > Some(cp.next_multixact_id / 65_536)) {
            Some(g) => {
                cp.next_multixact_id = g as u32;
                src("next_multixact_id", g.to_string(), "pg_multixact/offsets holds segments past pg_control's: (highest + 1) * 65536");
            }
            None => src("next_multixact_id", cp.next_multixact_id.to_string(), "pg_control"),
        }
    }
    if let Some(x) = o.multixact_offset {
        cp.next_multi_offset = x;
        src("next_multi_offset", x.to_string(), "-O (given)");
    } else {
        src("next_multi_offset", cp.next_multi_offset.to_string(), "pg_control");
    }
    if let Some((oldest, newest)) = o.commit_ts {
        cp.oldest_commit_ts_xid = oldest;
        cp.newest_commit_ts_xid = newest;
        src("commit_ts", format!("{oldest},{newest}"), "-c (given)");
    }
    // FindEndOfXLOG: past the REDO segment and every segment-named file in pg_wal.
    let mut segno = g.segno(c.checkpoint.redo_lsn);
    let mut from = "the latest checkpoint's REDO segment";
    for name in &l.wal {
        let base = name.strip_suffix(".partial").unwrap_or(name);
        if is_wal_file_name(base) {
            if let Some((_, s)) = g.parse_file_name(base) {
                if s > segno {
                    segno = s;
                    from = "the highest segment name in pg_wal";
                }
            }
        }
    }
    segno += 1;
    if let Some(f) = &o.wal_file {
        let (_, s) = g.parse_file_name(f).ok_or_else(|| format!("-l {f}: not a WAL file name for {} byte segments", g.seg_size))?;
        if s > segno {
            segno = s;
            from = "-l (given)";
        }
    }
    src("next WAL segment", g.file_name(cp.timeline_id, segno), &format!("one past {from}"));
    // RewriteControlFile.
    let redo = Lsn(g.segment_start(segno).0 + LONG_HEADER_SIZE as u64);
    cp.redo_lsn = redo;
    cp.checkpoint_time = now;
    if let Some(w) = cp.checkpoint_wal_level.as_mut() {
        *w = 0;
    }
    n.state = DbState::ShutDown;
    n.checkpoint_lsn = redo;
    if n.prior_lsn.is_some() {
        n.prior_lsn = Some(Lsn(0));
    }
    n.min_recovery_end_lsn = Lsn(0);
    n.min_recovery_end_timeline = 0;
    n.backup_start_lsn = Lsn(0);
    n.backup_end_lsn = Lsn(0);
    n.end_of_backup_record_required = false;
    n.wal_level = 0;
    n.wal_log_hints = false;
    n.track_commit_timestamp = false;
    n.max_connections = 100;
    if n.max_wal_senders.is_some() {
        n.max_wal_senders = Some(10);
    }
    n.max_worker_processes = 8;
    n.max_prepared_xacts = 0;
    n.max_locks_per_xact = 64;
    n.pg_control_last_modified = now;
    let mut moves: Vec<String> = l.wal.iter().filter(|w| is_wal_file_name(w.strip_suffix(".partial").unwrap_or(w))).map(|w| format!("pg_wal/{w}")).collect();
    moves.extend(l.archive_status.iter().map(|a| format!("pg_wal/archive_status/{a}")));
    if c.major.number() >= 17 {
        moves.extend(l.summaries.iter().filter(|s| s.ends_with(".summary")).map(|s| format!("pg_wal/summaries/{s}")));
    }
    moves.sort();
    Ok(Reset { segment_name: g.file_name(n.checkpoint.timeline_id, segno), control: n, sources, moves })
}

/// WriteEmptyXLOG: a whole segment, a long page header and a shutdown checkpoint record at
/// its start, zeroes after.
pub fn segment_bytes(c: &ControlFile) -> Vec<u8> {
    let seg = c.bytes_per_wal_segment as usize;
    let mut b = vec![0u8; seg];
    let page_addr = c.checkpoint.redo_lsn.0 - LONG_HEADER_SIZE as u64;
    b[0..2].copy_from_slice(&c.major.wal_page_magic().to_le_bytes());
    b[2..4].copy_from_slice(&XLP_LONG_HEADER.to_le_bytes());
    b[4..8].copy_from_slice(&c.checkpoint.timeline_id.to_le_bytes());
    b[8..16].copy_from_slice(&page_addr.to_le_bytes());
    b[24..32].copy_from_slice(&c.system_identifier.to_le_bytes());
    b[32..36].copy_from_slice(&c.bytes_per_wal_segment.to_le_bytes());
    b[36..40].copy_from_slice(&c.wal_block_size.to_le_bytes());
    let cp: Vec<u8> = CheckPoint::encode(&c.checkpoint, c.major);
    let tot = SIZE_OF_XLOG_RECORD + 2 + cp.len();
    let mut rec = vec![0u8; tot];
    rec[0..4].copy_from_slice(&(tot as u32).to_le_bytes());
    rec[16] = XLOG_CHECKPOINT_SHUTDOWN;
    rec[17] = RM_XLOG_ID;
    rec[SIZE_OF_XLOG_RECORD] = XLR_BLOCK_ID_DATA_SHORT;
    rec[SIZE_OF_XLOG_RECORD + 1] = cp.len() as u8;
    rec[SIZE_OF_XLOG_RECORD + 2..].copy_from_slice(&cp);
    let crc = record_crc(&rec);
    rec[XL_CRC_OFFSET..XL_CRC_OFFSET + 4].copy_from_slice(&crc.to_le_bytes());
    b[LONG_HEADER_SIZE..LONG_HEADER_SIZE + tot].copy_from_slice(&rec);
    b
}
