//! `inspect`: everything pg_controldata shows, in its wording, plus a layout summary of the
//! data directory. Read-only.

use crate::datadir::{read_checkpoint_record, DataDir, Postmaster, Tablespace, WAL_DIR, XACT_DIR};
use crate::error::Result;
use crate::format::control::{wal_level_text, ControlFile, CrcCheck};
use crate::format::version::PgMajor;
use crate::format::wal::WalGeometry;
use crate::format::xact;
use serde::Serialize;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct InspectReport {
    pub data_directory: String,
    /// Major from PG_VERSION, when readable.
    pub pg_version_file: Option<PgMajor>,
    /// pg_control decoded (also when its CRC is wrong: see `control_crc`).
    pub control: Option<ControlFile>,
    pub control_crc: Option<CrcCheck>,
    pub control_file_size: Option<u64>,
    /// Why pg_control could not be decoded at all.
    pub control_error: Option<String>,
    pub redo_wal_file: Option<String>,
    pub checkpoint_record: Option<CheckpointRecord>,
    pub layout: Layout,
    /// Every file of WAL in pg_wal and the archives, by what its pages hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_inventory: Option<crate::inventory::Inventory>,
    /// Things a DBA should know before doing anything else.
    pub warnings: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckpointRecord {
    pub readable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The record's CheckPoint equals pg_control's copy.
    pub matches_control: bool,
    pub shutdown: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Layout {
    pub major: Option<PgMajor>,
    pub block_size: Option<u32>,
    pub wal_segment_size: Option<u32>,
    pub wal_block_size: Option<u32>,
    pub data_checksums: Option<bool>,
    pub tablespaces: Vec<Tablespace>,
    pub wal: WalSummary,
    pub xact: XactSummary,
    pub postmaster: Postmaster,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WalSummary {
    pub directory: &'static str,
    /// Target when pg_wal is a symbolic link.
    pub link: Option<String>,
    pub segments: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    /// Segment files whose size is not the segment size.
    pub wrong_size: Vec<String>,
    pub other_files: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct XactSummary {
    pub directory: &'static str,
    pub segments: usize,
    pub first: Option<String>,
    pub last: Option<String>,
    pub other_files: usize,
}

/// Build the report for a data directory.
pub fn inspect(dd: &DataDir) -> Result<InspectReport> {
    inspect_with(dd, &[])
}

/// [`inspect`], with archives of WAL to list beside pg_wal.
pub fn inspect_with(dd: &DataDir, archives: &[std::path::PathBuf]) -> Result<InspectReport> {
    let mut warnings = Vec::new();
    // The server refuses to run as root and refuses a data directory its user does not own.
    {
        use std::os::unix::fs::MetadataExt;
        if std::fs::metadata(dd.root()).is_ok_and(|m| m.uid() == 0) {
            warnings
                .push("the data directory belongs to root: the server will not start; chown -R it to the user the server runs as (usually postgres)".into());
        }
    }
    let pg_version_file = match dd.pg_version() {
        Ok(m) => Some(m),
        Err(e) => {
            warnings.push(format!("PG_VERSION: {e}"));
            None
        }
    };
    let (control, control_crc, control_file_size, control_error) = match dd.control() {
        Ok((c, crc, size)) => (Some(c), Some(crc), Some(size), None),
        Err(e) => (None, None, None, Some(e.to_string())),
    };
    if let Some(crc) = &control_crc {
        if !crc.ok() {
            warnings.push(format!(
                "pg_control CRC mismatch: stored {:#010x}, computed {:#010x} over bytes 0..{}; the values shown may be wrong and the server will refuse to start",
                crc.stored, crc.computed, crc.offset
            ));
        }
    }
    if let Some(size) = control_file_size {
        if size != crate::format::control::CONTROL_FILE_SIZE as u64 {
            warnings.push(format!("global/pg_control is {size} bytes, expected 8192"));
        }
    }
    if let (Some(c), Some(v)) = (&control, pg_version_file) {
        if c.major != v {
            warnings.push(format!("PG_VERSION says {v} but pg_control is from PostgreSQL {}", c.major));
        }
    }
    if let Some(c) = &control {
        for (field, expected, found) in c.sanity_problems() {
            warnings.push(format!("pg_control field {field}: expected {expected}, found {found}"));
        }
    }
    // A damaged pg_control's geometry may be the damage: WAL files are listed with what the
    // evidence gives (WAL page headers), as check and diagnose read them.
    let damaged = control_error.is_some() || control_crc.is_some_and(|c| !c.ok()) || control.as_ref().is_some_and(|c| !c.sanity_problems().is_empty());
    let trusted = if damaged { crate::check::control::examine(dd).trusted } else { None };
    if damaged {
        warnings.push("pg_control is damaged: `pgsalvage diagnose` checks each of its values against WAL and the data directory".into());
    }
    let geometry = trusted.as_ref().or(control.as_ref()).and_then(|c| WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).ok());
    let redo_wal_file = match (&control, &geometry) {
        (Some(c), Some(g)) => Some(g.file_name(c.checkpoint.timeline_id, g.segno(c.checkpoint.redo_lsn))),
        _ => None,
    };
    let checkpoint_record = control.as_ref().filter(|_| geometry.is_some()).map(|c| match read_checkpoint_record(dd, c) {
        Ok((rec, cp)) => CheckpointRecord { readable: true, error: None, matches_control: cp == c.checkpoint, shutdown: rec.header.info & 0xF0 == 0 },
        Err(e) => CheckpointRecord { readable: false, error: Some(e.to_string()), matches_control: false, shutdown: false },
    });
    if let Some(cr) = &checkpoint_record {
        if let Some(e) = &cr.error {
            warnings.push(format!("the latest checkpoint record cannot be read: {e}"));
        } else if !cr.matches_control {
            warnings.push("the latest checkpoint record differs from pg_control's copy of it".into());
        }
    }

    let postmaster = dd.postmaster();
    match &postmaster {
        Postmaster::Alive { pid } => {
            warnings.push(format!("a postmaster (pid {pid}) is running on this data directory: values change under you; stop the server before any repair"))
        }
        Postmaster::Stale { pid, reason, .. } => {
            warnings.push(format!("postmaster.pid is stale (pid {pid}: {reason}); the server will remove it on the next start"))
        }
        Postmaster::Unreadable { reason } => warnings.push(format!("postmaster.pid is unreadable: {reason}")),
        Postmaster::NotRunning => {}
    }

    let mut wal = WalSummary { directory: WAL_DIR, link: dd.wal_link().map(|p| p.display().to_string()), ..Default::default() };
    let names = dd.list(WAL_DIR)?;
    for name in &names {
        if let Some(g) = &geometry {
            if g.parse_file_name(name).is_some() {
                wal.segments += 1;
                if wal.first.is_none() {
                    wal.first = Some(name.clone());
                }
                wal.last = Some(name.clone());
                let len = std::fs::metadata(dd.path(&format!("{WAL_DIR}/{name}"))).map(|m| m.len()).unwrap_or(0);
                if len != g.seg_size as u64 {
                    wal.wrong_size.push(format!("{name} ({len} bytes)"));
                }
                continue;
            }
        }
        wal.other_files += 1;
    }
    let mut xs = XactSummary { directory: XACT_DIR, ..Default::default() };
    for name in dd.list(XACT_DIR)? {
        if xact::parse_segment_file_name(&name).is_some() {
            xs.segments += 1;
            if xs.first.is_none() {
                xs.first = Some(name.clone());
            }
            xs.last = Some(name);
        } else {
            xs.other_files += 1;
        }
    }

    let wal_inventory = trusted.as_ref().or(control.as_ref()).map(|c| crate::inventory::Inventory::scan(dd, c, archives));
    let layout = Layout {
        major: control.as_ref().map(|c| c.major).or(pg_version_file),
        block_size: control.as_ref().map(|c| c.database_block_size),
        wal_segment_size: control.as_ref().map(|c| c.bytes_per_wal_segment),
        wal_block_size: control.as_ref().map(|c| c.wal_block_size),
        data_checksums: control.as_ref().map(|c| c.data_page_checksum_version > 0),
        tablespaces: dd.tablespaces()?,
        wal,
        xact: xs,
        postmaster,
    };
    Ok(InspectReport {
        data_directory: dd.root().display().to_string(),
        pg_version_file,
        control,
        control_crc,
        control_file_size,
        control_error,
        redo_wal_file,
        checkpoint_record,
        layout,
        wal_inventory,
        warnings,
    })
}

fn time_text(t: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(t, 0) {
        chrono::LocalResult::Single(d) => d.format("%a %b %e %H:%M:%S %Y %:z").to_string(),
        _ => format!("(invalid time {t})"),
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// pg_controldata's lines for a decoded pg_control, with its labels for the major.
pub fn controldata_lines(c: &ControlFile, redo_wal_file: Option<&str>) -> Vec<(&'static str, String)> {
    let cp = &c.checkpoint;
    let mut v: Vec<(&'static str, String)> = vec![
        ("pg_control version number", c.pg_control_version.to_string()),
        ("Catalog version number", c.catalog_version_no.to_string()),
        ("Database system identifier", c.system_identifier.to_string()),
        ("Database cluster state", c.state.text().to_string()),
        ("pg_control last modified", time_text(c.pg_control_last_modified)),
        ("Latest checkpoint location", c.checkpoint_lsn.to_string()),
    ];
    if let Some(p) = c.prior_lsn {
        v.push(("Prior checkpoint location", p.to_string()));
    }
    v.extend([
        ("Latest checkpoint's REDO location", cp.redo_lsn.to_string()),
        ("Latest checkpoint's REDO WAL file", redo_wal_file.unwrap_or("(unknown: invalid WAL segment size)").to_string()),
        ("Latest checkpoint's TimeLineID", cp.timeline_id.to_string()),
        ("Latest checkpoint's PrevTimeLineID", cp.prev_timeline_id.to_string()),
        ("Latest checkpoint's full_page_writes", on_off(cp.full_page_writes).to_string()),
        ("Latest checkpoint's NextXID", cp.next_xid.to_string()),
        ("Latest checkpoint's NextOID", cp.next_oid.to_string()),
        ("Latest checkpoint's NextMultiXactId", cp.next_multixact_id.to_string()),
        ("Latest checkpoint's NextMultiOffset", cp.next_multi_offset.to_string()),
        ("Latest checkpoint's oldestXID", cp.oldest_xid.to_string()),
        ("Latest checkpoint's oldestXID's DB", cp.oldest_xid_dbid.to_string()),
        ("Latest checkpoint's oldestActiveXID", cp.oldest_active_xid.to_string()),
        ("Latest checkpoint's oldestMultiXid", cp.oldest_multi_xid.to_string()),
        ("Latest checkpoint's oldestMulti's DB", cp.oldest_multi_dbid.to_string()),
        ("Latest checkpoint's oldestCommitTsXid", cp.oldest_commit_ts_xid.to_string()),
        ("Latest checkpoint's newestCommitTsXid", cp.newest_commit_ts_xid.to_string()),
        ("Time of latest checkpoint", time_text(cp.checkpoint_time)),
        ("Fake LSN counter for unlogged rels", c.unlogged_lsn.to_string()),
        ("Minimum recovery ending location", c.min_recovery_end_lsn.to_string()),
        ("Min recovery ending loc's timeline", c.min_recovery_end_timeline.to_string()),
        ("Backup start location", c.backup_start_lsn.to_string()),
        ("Backup end location", c.backup_end_lsn.to_string()),
        ("End-of-backup record required", if c.end_of_backup_record_required { "yes" } else { "no" }.to_string()),
        ("wal_level setting", wal_level_text(c.wal_level).to_string()),
        ("wal_log_hints setting", on_off(c.wal_log_hints).to_string()),
        ("max_connections setting", c.max_connections.to_string()),
        ("max_worker_processes setting", c.max_worker_processes.to_string()),
    ]);
    if let Some(s) = c.max_wal_senders {
        v.push(("max_wal_senders setting", s.to_string()));
    }
    v.extend([
        ("max_prepared_xacts setting", c.max_prepared_xacts.to_string()),
        ("max_locks_per_xact setting", c.max_locks_per_xact.to_string()),
        ("track_commit_timestamp setting", on_off(c.track_commit_timestamp).to_string()),
        ("Maximum data alignment", c.max_data_alignment.to_string()),
        ("Database block size", c.database_block_size.to_string()),
        ("Blocks per segment of large relation", c.blocks_per_segment.to_string()),
        ("WAL block size", c.wal_block_size.to_string()),
        ("Bytes per WAL segment", c.bytes_per_wal_segment.to_string()),
        ("Maximum length of identifiers", c.max_identifier_length.to_string()),
        ("Maximum columns in an index", c.max_index_columns.to_string()),
        ("Maximum size of a TOAST chunk", c.max_toast_chunk_size.to_string()),
        ("Size of a large-object chunk", c.large_object_chunk_size.to_string()),
        ("Date/time type storage", "64-bit integers".to_string()),
    ]);
    let by_value = |b: bool| if b { "by value" } else { "by reference" }.to_string();
    if let Some(f4) = c.float4_pass_by_value {
        v.push(("Float4 argument passing", by_value(f4)));
    }
    v.push(("Float8 argument passing", by_value(c.float8_pass_by_value)));
    v.push(("Data page checksum version", c.data_page_checksum_version.to_string()));
    if let Some(s) = c.default_char_signedness {
        v.push(("Default char data signedness", if s { "signed" } else { "unsigned" }.to_string()));
    }
    v.push(("Mock authentication nonce", crate::format::bytes::hex(&c.mock_authentication_nonce)));
    v
}

/// The human form: pg_controldata's block (labels padded as it pads them), then the layout.
pub fn render_text(r: &InspectReport) -> String {
    let mut s = String::new();
    if let Some(c) = &r.control {
        for (label, value) in controldata_lines(c, r.redo_wal_file.as_deref()) {
            let _ = writeln!(s, "{:<38}{value}", format!("{label}:"));
        }
    } else if let Some(e) = &r.control_error {
        let _ = writeln!(s, "pg_control: unreadable: {e}");
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "Layout of {}", r.data_directory);
    let l = &r.layout;
    let opt = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    let _ = writeln!(s, "  {:<30}{}", "PostgreSQL major:", opt(l.major.map(|m| m.to_string())));
    let _ = writeln!(s, "  {:<30}{}", "PG_VERSION file:", opt(r.pg_version_file.map(|m| m.to_string())));
    let _ = writeln!(s, "  {:<30}{}", "Block size:", opt(l.block_size.map(|b| b.to_string())));
    let _ = writeln!(s, "  {:<30}{}", "WAL segment size:", opt(l.wal_segment_size.map(|b| format!("{b} ({} MB)", b >> 20))));
    let _ = writeln!(s, "  {:<30}{}", "Data checksums:", opt(l.data_checksums.map(|b| if b { "on" } else { "off" }.to_string())));
    if let Some(cr) = &r.checkpoint_record {
        let v = match (&cr.error, cr.matches_control) {
            (Some(e), _) => format!("UNREADABLE: {e}"),
            (None, true) => format!("readable ({}), matches pg_control", if cr.shutdown { "shutdown checkpoint" } else { "online checkpoint" }),
            (None, false) => "readable, but DIFFERS from pg_control".into(),
        };
        let _ = writeln!(s, "  {:<30}{v}", "Latest checkpoint record:");
    }
    let wal = &l.wal;
    let range = |f: &Option<String>, t: &Option<String>| match (f, t) {
        (Some(f), Some(t)) if f != t => format!(", {f} .. {t}"),
        (Some(f), _) => format!(", {f}"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "  {:<30}{}{}{}{}",
        "WAL directory (pg_wal):",
        crate::units::count(wal.segments as u64, "segment file"),
        range(&wal.first, &wal.last),
        wal.link.as_ref().map(|t| format!(", symbolic link to {t}")).unwrap_or_default(),
        if wal.other_files > 0 {
            format!(", {}", if wal.other_files == 1 { "1 other entry".to_string() } else { format!("{} other entries", wal.other_files) })
        } else {
            String::new()
        }
    );
    for w in &wal.wrong_size {
        let _ = writeln!(s, "  {:<30}wrong size: {w}", "");
    }
    if let Some(inv) = &r.wal_inventory {
        for (i, line) in inv.lines().iter().enumerate() {
            let _ = writeln!(s, "  {:<30}{line}", if i == 0 { "WAL found (by page headers):" } else { "" });
        }
    }
    let x = &l.xact;
    let _ = writeln!(s, "  {:<30}{}{}", "Commit log (pg_xact):", crate::units::count(x.segments as u64, "segment file"), range(&x.first, &x.last));
    if l.tablespaces.is_empty() {
        let _ = writeln!(s, "  {:<30}none besides pg_default and pg_global", "Tablespaces:");
    }
    for t in &l.tablespaces {
        let _ = writeln!(s, "  {:<30}{} -> {} ({})", "Tablespace:", t.oid, t.location, t.version_dirs.join(", "));
    }
    let pm = match &l.postmaster {
        Postmaster::NotRunning => "not running (no postmaster.pid)".to_string(),
        Postmaster::Alive { pid } => format!("RUNNING (pid {pid})"),
        Postmaster::Stale { pid, reason, .. } => format!("stale postmaster.pid (pid {pid}: {reason})"),
        Postmaster::Unreadable { reason } => format!("postmaster.pid unreadable: {reason}"),
    };
    let _ = writeln!(s, "  {:<30}{pm}", "Postmaster:");
    if !r.warnings.is_empty() {
        let _ = writeln!(s);
        for w in &r.warnings {
            let _ = writeln!(s, "WARNING: {w}");
        }
    }
    s
}
