//! WAL reset, as pg_resetwal does it (`src/bin/pg_resetwal/pg_resetwal.c`: FindEndOfXLOG,
//! RewriteControlFile, WriteEmptyXLOG, KillExistingXLOG/ArchiveStatus/WALSummaries), but
//! computed first and shown: the new pg_control, the new first WAL segment holding a
//! shutdown checkpoint record, and the files moved out of pg_wal. Pure: the caller gives
//! the directory listings and the time.

use crate::format::control::{CheckPoint, ControlFile, DbState};
use crate::format::types::{FullXid, Lsn};
use crate::format::wal::page::LONG_HEADER_SIZE;
use crate::format::wal::record::{RM_XLOG_ID, XLOG_CHECKPOINT_SHUTDOWN};
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
    /// The segment after the one holding the highest page LSN: new WAL starts there at the
    /// least (a page ahead of WAL makes every checkpoint fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub past_pages: Option<String>,
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
pub fn compute(c: &ControlFile, l: &Listing, o: &ResetOverrides, now: i64) -> Result<Reset, ResetError> {
    let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).map_err(|e| ResetError::Geometry(e.to_string()))?;
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
    if let Some(f) = &o.past_pages {
        let (_, s) = g.parse_file_name(f).ok_or_else(|| ResetError::NotWalName { name: f.clone(), seg_size: g.seg_size, option: "" })?;
        if s > segno {
            segno = s;
            from = "the segment holding the highest page LSN (pd_lsn) in the data files";
        }
    }
    if let Some(f) = &o.wal_file {
        let (_, s) = g.parse_file_name(f).ok_or_else(|| ResetError::NotWalName { name: f.clone(), seg_size: g.seg_size, option: "-l " })?;
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
    use crate::format::wal::build::{record, SegmentWriter};
    let redo = c.checkpoint.redo_lsn;
    let Ok(g) = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size) else { return vec![] };
    let mut w = SegmentWriter::new(g, c.major, c.checkpoint.timeline_id, c.system_identifier, g.segno(redo));
    let rec = record(RM_XLOG_ID, XLOG_CHECKPOINT_SHUTDOWN, 0, Lsn(0), &CheckPoint::encode(&c.checkpoint, c.major));
    // The REDO point is the segment's first record position (compute() puts it there).
    if w.put(redo, &rec).is_err() {
        return vec![];
    }
    w.finish()
}

/// What the data directory itself says, for rebuilding an unreadable pg_control.
#[derive(Clone, Debug, Default)]
pub struct DirEvidence {
    /// From a WAL segment's long page header: (system identifier, segment size, block size, timeline).
    pub wal_header: Option<(u64, u32, u32, u32)>,
    /// Highest relfilenode seen in any database directory.
    pub max_relfilenode: u32,
    /// Whether pages carry valid data checksums (checked on real pages).
    pub checksums: Option<bool>,
    pub block_size: Option<u32>,
}

/// The values a rebuilt pg_control is made from (the deterministic parameters of a plan's
/// rebuild action).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Guessed {
    pub major: u32,
    pub system_identifier: String,
    pub timeline: u32,
    pub wal_segment_size: u32,
    pub wal_block_size: u32,
    pub block_size: u32,
    pub checksums: bool,
    pub next_oid: u32,
    pub next_xid: u32,
    pub next_multixact_id: u32,
    pub next_multi_offset: u32,
}

/// Rebuild a pg_control from guesses, as pg_resetwal's GuessControlValues, with better
/// guesses from the directory (each in `sources`); then a reset makes it consistent.
pub fn guess_control(major: crate::format::version::PgMajor, l: &Listing, e: &DirEvidence, now: i64) -> Result<(ControlFile, Vec<Sourced>), ResetError> {
    let (c, s, _) = guess(major, l, e, now)?;
    Ok((c, s))
}

/// Why a reset cannot be computed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResetError {
    #[error("{0}")]
    Geometry(String),
    #[error("{option}{name}: not a WAL file name for {seg_size} byte segments")]
    NotWalName { name: String, seg_size: u32, option: &'static str },
    #[error("unsupported major {0}")]
    UnsupportedMajor(u32),
    #[error("bad system identifier {0:?}")]
    BadSystemIdentifier(String),
    #[error("no WAL segment with a readable long page header: the system identifier and segment size cannot be guessed")]
    NoWalHeader,
}

/// The ControlFile for guessed values.
pub fn control_from(g: &Guessed, now: i64) -> Result<ControlFile, ResetError> {
    let major = crate::format::version::PgMajor::new(g.major).ok_or(ResetError::UnsupportedMajor(g.major))?;
    let sysid: u64 = g.system_identifier.parse().map_err(|_| ResetError::BadSystemIdentifier(g.system_identifier.clone()))?;
    let e = DirEvidence {
        wal_header: Some((sysid, g.wal_segment_size, g.wal_block_size, g.timeline)),
        max_relfilenode: g.next_oid.saturating_sub(1),
        checksums: Some(g.checksums),
        block_size: Some(g.block_size),
    };
    let (mut c, _, _) = guess(major, &Listing::default(), &e, now)?;
    c.checkpoint.next_xid = FullXid::new(0, g.next_xid);
    c.checkpoint.next_multixact_id = g.next_multixact_id;
    c.checkpoint.next_multi_offset = g.next_multi_offset;
    c.checkpoint.next_oid = g.next_oid;
    Ok(c)
}

fn guess(major: crate::format::version::PgMajor, l: &Listing, e: &DirEvidence, now: i64) -> Result<(ControlFile, Vec<Sourced>, Guessed), ResetError> {
    let mut s = Vec::new();
    let mut src = |f: &str, v: String, how: &str| s.push(Sourced { field: f.into(), value: v, source: how.into() });
    let (sysid, seg, wbs, tli) = e.wal_header.ok_or(ResetError::NoWalHeader)?;
    src("system_identifier", sysid.to_string(), "a WAL segment's long page header");
    src("bytes_per_wal_segment", seg.to_string(), "a WAL segment's long page header");
    src("timeline", tli.to_string(), "the highest timeline in WAL file names");
    let bs = e.block_size.unwrap_or(8192);
    src("database_block_size", bs.to_string(), if e.block_size.is_some() { "page headers of relation files" } else { "default" });
    let checksums = e.checksums.unwrap_or(false);
    src(
        "data_page_checksum_version",
        (checksums as u32).to_string(),
        if e.checksums.is_some() { "page checksums verified on relation files" } else { "default (off)" },
    );
    let next_oid = (e.max_relfilenode.max(16383)).saturating_add(1);
    src("next_oid", next_oid.to_string(), "one past the highest relfilenode on disk");
    let next_xid = highest_slru(&l.xact).map(|h| ((h as u64 + 1) * 1_048_576).min(u32::MAX as u64) as u32).unwrap_or(3);
    src("next_xid", next_xid.to_string(), "(highest pg_xact segment + 1) * 1048576");
    let next_multi = highest_slru(&l.multi_offsets).map(|h| ((h as u64 + 1) * 65_536) as u32).unwrap_or(1);
    src("next_multixact_id", next_multi.to_string(), "(highest pg_multixact/offsets segment + 1) * 65536");
    let next_off = highest_slru(&l.multi_members).map(|h| ((h as u64 + 1) * 52_352) as u32).unwrap_or(0);
    src("next_multi_offset", next_off.to_string(), "(highest pg_multixact/members segment + 1) * 52352");
    let n = major.number();
    let c = ControlFile {
        major,
        system_identifier: sysid,
        pg_control_version: major.control_version(),
        catalog_version_no: major.release_catalog_version(),
        state: DbState::ShutDown,
        pg_control_last_modified: now,
        checkpoint_lsn: Lsn(0),
        prior_lsn: (n <= 10).then_some(Lsn(0)),
        checkpoint: CheckPoint {
            redo_lsn: Lsn(0),
            timeline_id: tli,
            prev_timeline_id: tli,
            full_page_writes: false,
            checkpoint_wal_level: (n >= 17).then_some(0),
            next_xid: FullXid::new(0, next_xid),
            next_oid,
            next_multixact_id: next_multi,
            next_multi_offset: next_off,
            oldest_xid: 3,
            oldest_xid_dbid: 0,
            oldest_multi_xid: 1,
            oldest_multi_dbid: 0,
            checkpoint_time: now,
            oldest_commit_ts_xid: 0,
            newest_commit_ts_xid: 0,
            oldest_active_xid: 0,
        },
        unlogged_lsn: Lsn(1000),
        min_recovery_end_lsn: Lsn(0),
        min_recovery_end_timeline: 0,
        backup_start_lsn: Lsn(0),
        backup_end_lsn: Lsn(0),
        end_of_backup_record_required: false,
        wal_level: 0,
        wal_log_hints: false,
        max_connections: 100,
        max_worker_processes: 8,
        max_wal_senders: (n >= 12).then_some(10),
        max_prepared_xacts: 0,
        max_locks_per_xact: 64,
        track_commit_timestamp: false,
        max_data_alignment: 8,
        float_format: crate::format::control::FLOAT_FORMAT,
        database_block_size: bs,
        blocks_per_segment: (1u32 << 30) / bs,
        wal_block_size: wbs,
        bytes_per_wal_segment: seg,
        max_identifier_length: 64,
        max_index_columns: 32,
        // TOAST_MAX_CHUNK_SIZE and LOBLKSIZE for the block size, as the server computes them.
        max_toast_chunk_size: toast_chunk(bs),
        large_object_chunk_size: bs / 4,
        float4_pass_by_value: (n <= 12).then_some(true),
        float8_pass_by_value: true,
        data_page_checksum_version: checksums as u32,
        default_char_signedness: (n >= 18).then_some(true),
        mock_authentication_nonce: [0; crate::format::control::MOCK_AUTH_NONCE_LEN],
        crc: 0,
    };
    let g = Guessed {
        major: n,
        system_identifier: sysid.to_string(),
        timeline: tli,
        wal_segment_size: seg,
        wal_block_size: wbs,
        block_size: bs,
        checksums,
        next_oid,
        next_xid,
        next_multixact_id: next_multi,
        next_multi_offset: next_off,
    };
    Ok((c, s, g))
}

/// The guessed values of a directory, as the plan records them.
pub fn guessed_values(major: crate::format::version::PgMajor, l: &Listing, e: &DirEvidence) -> Result<(Guessed, Vec<Sourced>), ResetError> {
    let (_, s, g) = guess(major, l, e, 0)?;
    Ok((g, s))
}

fn toast_chunk(bs: u32) -> u32 {
    crate::format::control::toast_max_chunk_size(bs)
}

#[cfg(test)]
mod tests {
    #[test]
    fn toast_chunk_size() {
        assert_eq!(super::toast_chunk(8192), 1996);
    }
}
