//! pg_control (`global/pg_control`): `ControlFileData` and the embedded `CheckPoint`, PG10–18.
//!
//! Header: `src/include/catalog/pg_control.h`. The file is PG_CONTROL_FILE_SIZE (8192) bytes;
//! the struct sits at offset 0, the rest is zero. Layout, as a grammar of C members laid out
//! with LP64 alignment by [`CLayout`] (native little-endian):
//!
//! ```text
//! ControlFileData := system_identifier:u64 pg_control_version:u32 catalog_version_no:u32
//!   state:int time:i64 checkPoint:u64 [prevCheckPoint:u64 ≤10] checkPointCopy:CheckPoint
//!   unloggedLSN:u64 minRecoveryPoint:u64 minRecoveryPointTLI:u32 backupStartPoint:u64
//!   backupEndPoint:u64 backupEndRequired:bool wal_level:int wal_log_hints:bool MaxConnections:int
//!   max_worker_processes:int [max_wal_senders:int ≥12] max_prepared_xacts:int
//!   max_locks_per_xact:int track_commit_timestamp:bool maxAlign:u32 floatFormat:double
//!   blcksz relseg_size xlog_blcksz xlog_seg_size nameDataLen indexMaxKeys
//!   toast_max_chunk_size loblksize:u32 [float4ByVal:bool ≤12] float8ByVal:bool
//!   data_checksum_version:u32 [default_char_signedness:bool ≥18]
//!   mock_authentication_nonce:char[32] crc:u32
//! CheckPoint := redo:u64 ThisTimeLineID:u32 PrevTimeLineID:u32 fullPageWrites:bool
//!   [wal_level:int ≥17] (nextXidEpoch:u32 nextXid:u32 ≤11 | nextXid:FullTransactionId ≥12)
//!   nextOid:u32 nextMulti:u32 nextMultiOffset:u32 oldestXid:u32 oldestXidDB:u32
//!   oldestMulti:u32 oldestMultiDB:u32 time:i64 oldestCommitTsXid:u32 newestCommitTsXid:u32
//!   oldestActiveXid:u32
//! ```
//! The CRC-32C covers bytes `0..offsetof(crc)`. Every member list below is walked by one
//! function per struct for both decoding and encoding, so the two can never disagree.

use super::bytes::{put_u32, put_u64, CLayout, FormatError, Reader};
use super::types::{FullXid, Lsn, Oid, TimeLineId, Xid};
use super::version::PgMajor;
use serde::Serialize;

/// PG_CONTROL_FILE_SIZE: the bytes PostgreSQL writes for pg_control.
pub const CONTROL_FILE_SIZE: usize = 8192;
/// MOCK_AUTH_NONCE_LEN.
pub const MOCK_AUTH_NONCE_LEN: usize = 32;
/// FLOATFORMAT_VALUE: a double written to detect float format mismatches.
pub const FLOAT_FORMAT: f64 = 1234567.0;

/// TOAST_MAX_CHUNK_SIZE (heaptoast.h) for a block size: EXTERN_TUPLE_MAX_SIZE for four
/// tuples per page, less the tuple header, chunk_id, chunk_seq and the varlena header
/// (1996 for 8 kB blocks).
pub fn toast_max_chunk_size(bs: u32) -> u32 {
    use super::bytes::maxalign;
    let max_tuple = ((bs as usize).saturating_sub(maxalign(24 + 4 * 4)) / 4) & !7;
    max_tuple.saturating_sub(maxalign(23) + 4 + 4 + 4) as u32
}

/// DBState: `state` of pg_control.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DbState {
    StartingUp,
    ShutDown,
    ShutDownInRecovery,
    ShuttingDown,
    InCrashRecovery,
    InArchiveRecovery,
    InProduction,
    Unknown(i32),
}

impl DbState {
    pub fn from_raw(v: i32) -> DbState {
        match v {
            0 => DbState::StartingUp,
            1 => DbState::ShutDown,
            2 => DbState::ShutDownInRecovery,
            3 => DbState::ShuttingDown,
            4 => DbState::InCrashRecovery,
            5 => DbState::InArchiveRecovery,
            6 => DbState::InProduction,
            v => DbState::Unknown(v),
        }
    }
    pub fn raw(self) -> i32 {
        match self {
            DbState::StartingUp => 0,
            DbState::ShutDown => 1,
            DbState::ShutDownInRecovery => 2,
            DbState::ShuttingDown => 3,
            DbState::InCrashRecovery => 4,
            DbState::InArchiveRecovery => 5,
            DbState::InProduction => 6,
            DbState::Unknown(v) => v,
        }
    }
    /// pg_controldata's wording (dbState() in pg_controldata.c).
    pub fn text(self) -> &'static str {
        match self {
            DbState::StartingUp => "starting up",
            DbState::ShutDown => "shut down",
            DbState::ShutDownInRecovery => "shut down in recovery",
            DbState::ShuttingDown => "shutting down",
            DbState::InCrashRecovery => "in crash recovery",
            DbState::InArchiveRecovery => "in archive recovery",
            DbState::InProduction => "in production",
            DbState::Unknown(_) => "unrecognized status code",
        }
    }
}

/// pg_controldata's wording for the wal_level enum (wal_level_str()).
pub fn wal_level_text(v: i32) -> &'static str {
    match v {
        0 => "minimal",
        1 => "replica",
        2 => "logical",
        _ => "unrecognized wal_level",
    }
}

/// `CheckPoint`, the struct stored in pg_control and in checkpoint WAL records.
/// Field names follow the columns of `pg_control_checkpoint()`.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct CheckPoint {
    pub redo_lsn: Lsn,
    pub timeline_id: TimeLineId,
    pub prev_timeline_id: TimeLineId,
    pub full_page_writes: bool,
    /// The wal_level in force at the checkpoint (PG17+).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint_wal_level: Option<i32>,
    pub next_xid: FullXid,
    pub next_oid: Oid,
    pub next_multixact_id: u32,
    pub next_multi_offset: u32,
    pub oldest_xid: Xid,
    pub oldest_xid_dbid: Oid,
    pub oldest_multi_xid: u32,
    pub oldest_multi_dbid: Oid,
    /// Seconds since the Unix epoch.
    pub checkpoint_time: i64,
    pub oldest_commit_ts_xid: Xid,
    pub newest_commit_ts_xid: Xid,
    pub oldest_active_xid: Xid,
}

/// `ControlFileData`. Field names follow the columns of `pg_control_system()`,
/// `pg_control_checkpoint()`, `pg_control_init()` and `pg_control_recovery()` where those
/// exist, so a differential test can compare them one to one.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ControlFile {
    /// Derived from pg_control_version/catalog_version_no, not a member.
    pub major: PgMajor,
    pub system_identifier: u64,
    pub pg_control_version: u32,
    pub catalog_version_no: u32,
    pub state: DbState,
    /// Seconds since the Unix epoch.
    pub pg_control_last_modified: i64,
    pub checkpoint_lsn: Lsn,
    /// PG10 only: the checkpoint before the latest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prior_lsn: Option<Lsn>,
    #[serde(flatten)]
    pub checkpoint: CheckPoint,
    pub unlogged_lsn: Lsn,
    pub min_recovery_end_lsn: Lsn,
    pub min_recovery_end_timeline: TimeLineId,
    pub backup_start_lsn: Lsn,
    pub backup_end_lsn: Lsn,
    pub end_of_backup_record_required: bool,
    pub wal_level: i32,
    pub wal_log_hints: bool,
    pub max_connections: i32,
    pub max_worker_processes: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_wal_senders: Option<i32>,
    pub max_prepared_xacts: i32,
    pub max_locks_per_xact: i32,
    pub track_commit_timestamp: bool,
    pub max_data_alignment: u32,
    pub float_format: f64,
    pub database_block_size: u32,
    pub blocks_per_segment: u32,
    pub wal_block_size: u32,
    pub bytes_per_wal_segment: u32,
    pub max_identifier_length: u32,
    pub max_index_columns: u32,
    pub max_toast_chunk_size: u32,
    pub large_object_chunk_size: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub float4_pass_by_value: Option<bool>,
    pub float8_pass_by_value: bool,
    pub data_page_checksum_version: u32,
    /// PG18+: whether `char` was signed on the machine that ran initdb.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_char_signedness: Option<bool>,
    #[serde(serialize_with = "ser_hex")]
    pub mock_authentication_nonce: [u8; MOCK_AUTH_NONCE_LEN],
    pub crc: u32,
}

fn ser_hex<S: serde::Serializer>(b: &[u8; MOCK_AUTH_NONCE_LEN], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&super::bytes::hex(b))
}

/// One side of a member walk: decoding reads each member into the value, encoding writes it.
trait Member {
    fn u32(&mut self, off: usize, v: &mut u32) -> Result<(), FormatError>;
    fn u64(&mut self, off: usize, v: &mut u64) -> Result<(), FormatError>;
    fn bool(&mut self, off: usize, v: &mut bool) -> Result<(), FormatError>;
    fn bytes(&mut self, off: usize, v: &mut [u8]) -> Result<(), FormatError>;
    fn i32(&mut self, off: usize, v: &mut i32) -> Result<(), FormatError> {
        let mut u = *v as u32;
        self.u32(off, &mut u)?;
        *v = u as i32;
        Ok(())
    }
    fn i64(&mut self, off: usize, v: &mut i64) -> Result<(), FormatError> {
        let mut u = *v as u64;
        self.u64(off, &mut u)?;
        *v = u as i64;
        Ok(())
    }
    fn f64(&mut self, off: usize, v: &mut f64) -> Result<(), FormatError> {
        let mut u = v.to_bits();
        self.u64(off, &mut u)?;
        *v = f64::from_bits(u);
        Ok(())
    }
    fn opt_i32(&mut self, off: usize, v: &mut Option<i32>) -> Result<(), FormatError> {
        self.i32(off, v.get_or_insert(0))
    }
    fn opt_bool(&mut self, off: usize, v: &mut Option<bool>) -> Result<(), FormatError> {
        self.bool(off, v.get_or_insert(false))
    }
}

/// Decoding; `loose` takes any non-zero byte as a true C bool and records its offset in
/// `odd` (to read what a damaged file still says), where the strict reader refuses it.
struct Decode<'a>(Reader<'a>, bool, Vec<usize>);
impl Member for Decode<'_> {
    fn u32(&mut self, off: usize, v: &mut u32) -> Result<(), FormatError> {
        *v = self.0.u32(off)?;
        Ok(())
    }
    fn u64(&mut self, off: usize, v: &mut u64) -> Result<(), FormatError> {
        *v = self.0.u64(off)?;
        Ok(())
    }
    fn bool(&mut self, off: usize, v: &mut bool) -> Result<(), FormatError> {
        if self.1 {
            let b = self.0.u8(off)?;
            if b > 1 {
                self.2.push(off);
            }
            *v = b != 0;
        } else {
            *v = self.0.bool(off)?;
        }
        Ok(())
    }
    fn bytes(&mut self, off: usize, v: &mut [u8]) -> Result<(), FormatError> {
        v.copy_from_slice(self.0.need(off, v.len())?);
        Ok(())
    }
}

struct Encode<'a>(&'a mut [u8]);
impl Member for Encode<'_> {
    fn u32(&mut self, off: usize, v: &mut u32) -> Result<(), FormatError> {
        put_u32(self.0, off, *v);
        Ok(())
    }
    fn u64(&mut self, off: usize, v: &mut u64) -> Result<(), FormatError> {
        put_u64(self.0, off, *v);
        Ok(())
    }
    fn bool(&mut self, off: usize, v: &mut bool) -> Result<(), FormatError> {
        self.0[off] = *v as u8;
        Ok(())
    }
    fn bytes(&mut self, off: usize, v: &mut [u8]) -> Result<(), FormatError> {
        self.0[off..off + v.len()].copy_from_slice(v);
        Ok(())
    }
}

/// Lays out nothing: used to learn a struct's size for a major.
struct Measure;
impl Member for Measure {
    fn u32(&mut self, _: usize, _: &mut u32) -> Result<(), FormatError> {
        Ok(())
    }
    fn u64(&mut self, _: usize, _: &mut u64) -> Result<(), FormatError> {
        Ok(())
    }
    fn bool(&mut self, _: usize, _: &mut bool) -> Result<(), FormatError> {
        Ok(())
    }
    fn bytes(&mut self, _: usize, _: &mut [u8]) -> Result<(), FormatError> {
        Ok(())
    }
}

/// The one member list of `CheckPoint`, per major. Returns the struct layout.
fn walk_checkpoint(major: PgMajor, base: usize, m: &mut impl Member, cp: &mut CheckPoint) -> Result<CLayout, FormatError> {
    let n = major.number();
    let mut l = CLayout::new();
    m.u64(base + l.u64(), &mut cp.redo_lsn.0)?;
    m.u32(base + l.u32(), &mut cp.timeline_id)?;
    m.u32(base + l.u32(), &mut cp.prev_timeline_id)?;
    m.bool(base + l.bool(), &mut cp.full_page_writes)?;
    if n >= 17 {
        m.opt_i32(base + l.u32(), &mut cp.checkpoint_wal_level)?;
    }
    if n >= 12 {
        m.u64(base + l.u64(), &mut cp.next_xid.0)?;
    } else {
        let (mut epoch, mut xid) = (cp.next_xid.epoch(), cp.next_xid.xid());
        m.u32(base + l.u32(), &mut epoch)?;
        m.u32(base + l.u32(), &mut xid)?;
        cp.next_xid = FullXid::new(epoch, xid);
    }
    m.u32(base + l.u32(), &mut cp.next_oid)?;
    m.u32(base + l.u32(), &mut cp.next_multixact_id)?;
    m.u32(base + l.u32(), &mut cp.next_multi_offset)?;
    m.u32(base + l.u32(), &mut cp.oldest_xid)?;
    m.u32(base + l.u32(), &mut cp.oldest_xid_dbid)?;
    m.u32(base + l.u32(), &mut cp.oldest_multi_xid)?;
    m.u32(base + l.u32(), &mut cp.oldest_multi_dbid)?;
    m.i64(base + l.u64(), &mut cp.checkpoint_time)?;
    m.u32(base + l.u32(), &mut cp.oldest_commit_ts_xid)?;
    m.u32(base + l.u32(), &mut cp.newest_commit_ts_xid)?;
    m.u32(base + l.u32(), &mut cp.oldest_active_xid)?;
    Ok(l)
}

/// sizeof(CheckPoint) for a major (80 on PG10/11, 88 from PG12).
pub fn checkpoint_size(major: PgMajor) -> usize {
    walk_checkpoint(major, 0, &mut Measure, &mut CheckPoint::default()).map(|l| l.size()).unwrap_or(0)
}

impl CheckPoint {
    /// Decode a CheckPoint struct (e.g. the main data of a checkpoint WAL record).
    pub fn decode(major: PgMajor, bytes: &[u8]) -> Result<CheckPoint, FormatError> {
        let size = checkpoint_size(major);
        let r = Reader::new("checkpoint record", bytes);
        r.need(0, size)?;
        let mut cp = CheckPoint::default();
        walk_checkpoint(major, 0, &mut Decode(r, false, vec![]), &mut cp)?;
        Ok(cp)
    }
    /// Encode as sizeof(CheckPoint) bytes (padding zero).
    pub fn encode(&self, major: PgMajor) -> Vec<u8> {
        let mut buf = vec![0u8; checkpoint_size(major)];
        let mut cp = self.clone();
        // Encoding into a buffer sized by the same walk cannot fail.
        let _ = walk_checkpoint(major, 0, &mut Encode(&mut buf), &mut cp);
        buf
    }
}

/// The one member list of `ControlFileData`, per major. Returns (layout, offsetof(crc)).
fn walk_control(major: PgMajor, m: &mut impl Member, c: &mut ControlFile) -> Result<(CLayout, usize), FormatError> {
    let n = major.number();
    let mut l = CLayout::new();
    m.u64(l.u64(), &mut c.system_identifier)?;
    m.u32(l.u32(), &mut c.pg_control_version)?;
    m.u32(l.u32(), &mut c.catalog_version_no)?;
    let mut state = c.state.raw();
    m.i32(l.u32(), &mut state)?;
    c.state = DbState::from_raw(state);
    m.i64(l.u64(), &mut c.pg_control_last_modified)?;
    m.u64(l.u64(), &mut c.checkpoint_lsn.0)?;
    if n <= 10 {
        m.u64(l.u64(), &mut c.prior_lsn.get_or_insert(Lsn(0)).0)?;
    }
    let cp_base = l.member(checkpoint_size(major), 8);
    walk_checkpoint(major, cp_base, m, &mut c.checkpoint)?;
    m.u64(l.u64(), &mut c.unlogged_lsn.0)?;
    m.u64(l.u64(), &mut c.min_recovery_end_lsn.0)?;
    m.u32(l.u32(), &mut c.min_recovery_end_timeline)?;
    m.u64(l.u64(), &mut c.backup_start_lsn.0)?;
    m.u64(l.u64(), &mut c.backup_end_lsn.0)?;
    m.bool(l.bool(), &mut c.end_of_backup_record_required)?;
    m.i32(l.u32(), &mut c.wal_level)?;
    m.bool(l.bool(), &mut c.wal_log_hints)?;
    m.i32(l.u32(), &mut c.max_connections)?;
    m.i32(l.u32(), &mut c.max_worker_processes)?;
    if n >= 12 {
        m.opt_i32(l.u32(), &mut c.max_wal_senders)?;
    }
    m.i32(l.u32(), &mut c.max_prepared_xacts)?;
    m.i32(l.u32(), &mut c.max_locks_per_xact)?;
    m.bool(l.bool(), &mut c.track_commit_timestamp)?;
    m.u32(l.u32(), &mut c.max_data_alignment)?;
    m.f64(l.u64(), &mut c.float_format)?;
    m.u32(l.u32(), &mut c.database_block_size)?;
    m.u32(l.u32(), &mut c.blocks_per_segment)?;
    m.u32(l.u32(), &mut c.wal_block_size)?;
    m.u32(l.u32(), &mut c.bytes_per_wal_segment)?;
    m.u32(l.u32(), &mut c.max_identifier_length)?;
    m.u32(l.u32(), &mut c.max_index_columns)?;
    m.u32(l.u32(), &mut c.max_toast_chunk_size)?;
    m.u32(l.u32(), &mut c.large_object_chunk_size)?;
    if n <= 12 {
        m.opt_bool(l.bool(), &mut c.float4_pass_by_value)?;
    }
    m.bool(l.bool(), &mut c.float8_pass_by_value)?;
    m.u32(l.u32(), &mut c.data_page_checksum_version)?;
    if n >= 18 {
        m.opt_bool(l.bool(), &mut c.default_char_signedness)?;
    }
    m.bytes(l.member(MOCK_AUTH_NONCE_LEN, 1), &mut c.mock_authentication_nonce)?;
    let crc_off = l.u32();
    m.u32(crc_off, &mut c.crc)?;
    Ok((l, crc_off))
}

/// offsetof(ControlFileData, crc) for a major: the end of the CRC-covered range.
pub fn crc_offset(major: PgMajor) -> usize {
    walk_control(major, &mut Measure, &mut ControlFile::empty(major)).map(|(_, o)| o).unwrap_or(0)
}

/// sizeof(ControlFileData) for a major.
pub fn struct_size(major: PgMajor) -> usize {
    walk_control(major, &mut Measure, &mut ControlFile::empty(major)).map(|(l, _)| l.size()).unwrap_or(0)
}

/// The CRC-32C PostgreSQL stores in pg_control (INIT/COMP/FIN_CRC32C over 0..offsetof(crc)).
pub fn compute_crc(major: PgMajor, bytes: &[u8]) -> Option<u32> {
    bytes.get(..crc_offset(major)).map(crc32c::crc32c)
}

/// What `parse_lenient` found about the CRC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct CrcCheck {
    pub stored: u32,
    pub computed: u32,
    pub offset: usize,
}

impl CrcCheck {
    pub fn ok(&self) -> bool {
        self.stored == self.computed
    }
}

impl ControlFile {
    fn empty(major: PgMajor) -> ControlFile {
        ControlFile {
            major,
            system_identifier: 0,
            pg_control_version: major.control_version(),
            catalog_version_no: major.release_catalog_version(),
            state: DbState::ShutDown,
            pg_control_last_modified: 0,
            checkpoint_lsn: Lsn(0),
            prior_lsn: None,
            checkpoint: CheckPoint::default(),
            unlogged_lsn: Lsn(0),
            min_recovery_end_lsn: Lsn(0),
            min_recovery_end_timeline: 0,
            backup_start_lsn: Lsn(0),
            backup_end_lsn: Lsn(0),
            end_of_backup_record_required: false,
            wal_level: 1,
            wal_log_hints: false,
            max_connections: 100,
            max_worker_processes: 8,
            max_wal_senders: None,
            max_prepared_xacts: 0,
            max_locks_per_xact: 64,
            track_commit_timestamp: false,
            max_data_alignment: 8,
            float_format: FLOAT_FORMAT,
            database_block_size: 8192,
            blocks_per_segment: 131072,
            wal_block_size: 8192,
            bytes_per_wal_segment: 16 * 1024 * 1024,
            max_identifier_length: 64,
            max_index_columns: 32,
            max_toast_chunk_size: 1996,
            large_object_chunk_size: 2048,
            float4_pass_by_value: None,
            float8_pass_by_value: true,
            data_page_checksum_version: 0,
            default_char_signedness: None,
            mock_authentication_nonce: [0; MOCK_AUTH_NONCE_LEN],
            crc: 0,
        }
    }

    /// The major a pg_control image belongs to, from its version fields (offsets 8 and 12).
    pub fn detect_major(bytes: &[u8]) -> Result<PgMajor, FormatError> {
        let r = Reader::new("pg_control", bytes);
        let version = r.u32(8)?;
        let catversion = r.u32(12)?;
        if version != 0 && version % 65536 == 0 {
            // PostgreSQL's own byte-order test (controldata_utils.c).
            return Err(FormatError::bad(
                "pg_control",
                8,
                "a little-endian pg_control",
                format!("pg_control version {version:#x}, which looks byte-swapped (a big-endian cluster?)"),
            ));
        }
        PgMajor::from_control(version, catversion)
    }

    /// Decode and verify the CRC.
    pub fn parse(bytes: &[u8]) -> Result<ControlFile, FormatError> {
        let (c, crc) = Self::parse_lenient(bytes)?;
        if !crc.ok() {
            return Err(FormatError::BadCrc { what: "pg_control", offset: crc.offset, stored: crc.stored, computed: crc.computed });
        }
        Ok(c)
    }

    /// Decode without failing on a CRC mismatch (to show what a damaged file still says);
    /// the caller must look at the returned [`CrcCheck`].
    pub fn parse_lenient(bytes: &[u8]) -> Result<(ControlFile, CrcCheck), FormatError> {
        let major = Self::detect_major(bytes)?;
        let r = Reader::new("pg_control", bytes);
        let mut c = ControlFile::empty(major);
        let (layout, crc_off) = walk_control(major, &mut Decode(r, false, vec![]), &mut c)?;
        r.need(0, layout.size())?;
        let computed = crc32c::crc32c(&bytes[..crc_off]);
        Ok((c.clone(), CrcCheck { stored: c.crc, computed, offset: crc_off }))
    }

    /// As [`Self::parse_lenient`] for a file known to be damaged: a C bool that is neither
    /// 0 nor 1 reads as true, and its offset is returned. The major is `major` (from
    /// PG_VERSION) when the version fields themselves are damaged.
    pub fn parse_salvage(bytes: &[u8], major: PgMajor) -> Result<(ControlFile, CrcCheck, Vec<usize>), FormatError> {
        let major = Self::detect_major(bytes).unwrap_or(major);
        let r = Reader::new("pg_control", bytes);
        let mut c = ControlFile::empty(major);
        let mut d = Decode(r, true, vec![]);
        let (layout, crc_off) = walk_control(major, &mut d, &mut c)?;
        r.need(0, layout.size())?;
        let computed = crc32c::crc32c(&bytes[..crc_off]);
        Ok((c.clone(), CrcCheck { stored: c.crc, computed, offset: crc_off }, d.2))
    }

    /// The values initdb and the server of `major` write on x86-64 with the default build
    /// options (the compile-time constants, and the settings' defaults), system identifier
    /// and checkpoint zero.
    pub fn standard(major: PgMajor) -> ControlFile {
        let n = major.number();
        let mut c = ControlFile::empty(major);
        c.prior_lsn = (n <= 10).then_some(Lsn(0));
        c.max_wal_senders = (n >= 12).then_some(10);
        c.float4_pass_by_value = (n <= 12).then_some(true);
        c.checkpoint.checkpoint_wal_level = (n >= 17).then_some(1);
        c.default_char_signedness = (n >= 18).then_some(true);
        c.unlogged_lsn = Lsn(1000);
        c
    }

    /// Encode as the 8192-byte file PostgreSQL writes (struct, zero padding, recomputed CRC).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = vec![0u8; CONTROL_FILE_SIZE];
        let mut c = self.clone();
        // The walk over a buffer of CONTROL_FILE_SIZE cannot go out of bounds (struct < 512 bytes).
        if let Ok((_, crc_off)) = walk_control(self.major, &mut Encode(&mut buf), &mut c) {
            let crc = crc32c::crc32c(&buf[..crc_off]);
            put_u32(&mut buf, crc_off, crc);
        }
        buf
    }

    /// Checks PostgreSQL itself makes when it reads pg_control (ReadControlFile): the values
    /// the server was compiled with. Each problem is returned as (field, expected, found).
    /// A copy whose page and WAL geometry can be used to read the data directory: each of
    /// block size, blocks per segment, WAL segment size and WAL block size that is not a
    /// value PostgreSQL allows is replaced by the compile-time default (8192, 131072, 16 MB,
    /// 8192), with a note naming what was replaced. A value read from a damaged pg_control
    /// must not become a divisor unchecked.
    pub fn with_usable_geometry(&self) -> (ControlFile, Vec<String>) {
        let mut c = self.clone();
        let mut notes = Vec::new();
        let mut fix = |field: &str, v: &mut u32, ok: bool, default: u32| {
            if !ok {
                notes.push(format!("{field} is {v}, not a value PostgreSQL allows: the data files are read with the default {default}"));
                *v = default;
            }
        };
        let bs = c.database_block_size;
        fix("the block size", &mut c.database_block_size, (1024..=32768).contains(&bs) && bs.is_power_of_two(), 8192);
        let bps = c.blocks_per_segment;
        fix("blocks per segment of large relation", &mut c.blocks_per_segment, bps > 0 && (bps as u64) * (c.database_block_size as u64) <= 1 << 40, 131072);
        let ws = c.bytes_per_wal_segment;
        fix("the WAL segment size", &mut c.bytes_per_wal_segment, (1 << 20..=1 << 30).contains(&ws) && ws.is_power_of_two(), 16 << 20);
        let wb = c.wal_block_size;
        fix("the WAL block size", &mut c.wal_block_size, (1024..=65536).contains(&wb) && wb.is_power_of_two(), 8192);
        (c, notes)
    }

    pub fn sanity_problems(&self) -> Vec<(&'static str, String, String)> {
        let mut p = Vec::new();
        if self.float_format != FLOAT_FORMAT {
            p.push(("floatFormat", FLOAT_FORMAT.to_string(), self.float_format.to_string()));
        }
        if self.max_data_alignment != 8 {
            p.push(("maxAlign", "8".into(), self.max_data_alignment.to_string()));
        }
        let bs = self.database_block_size;
        if !(1024..=32768).contains(&bs) || !bs.is_power_of_two() {
            p.push(("blcksz", "a power of two from 1024 to 32768".into(), bs.to_string()));
        }
        let ws = self.bytes_per_wal_segment;
        if !(1 << 20..=1 << 30).contains(&ws) || !ws.is_power_of_two() {
            p.push(("xlog_seg_size", "a power of two from 1 MB to 1 GB".into(), ws.to_string()));
        }
        let wb = self.wal_block_size;
        if !(1024..=65536).contains(&wb) || !wb.is_power_of_two() {
            p.push(("xlog_blcksz", "a power of two from 1024 to 65536".into(), wb.to_string()));
        }
        if self.data_page_checksum_version > 1 {
            p.push(("data_checksum_version", "0 or 1".into(), self.data_page_checksum_version.to_string()));
        }
        if let DbState::Unknown(v) = self.state {
            p.push(("state", "a DBState from 0 to 6".into(), v.to_string()));
        }
        p
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn known_struct_sizes_and_crc_offsets() {
        let m = |n| PgMajor::new(n).unwrap();
        assert_eq!(checkpoint_size(m(10)), 80);
        assert_eq!(checkpoint_size(m(11)), 80);
        assert_eq!(checkpoint_size(m(12)), 88);
        assert_eq!(checkpoint_size(m(17)), 88);
        // offsetof(ControlFileData, crc) on x86_64 as pg_resetwal/pg_controldata see it.
        assert_eq!(crc_offset(m(15)), 288);
        assert!(struct_size(m(10)) < 512);
    }

    #[test]
    fn encode_then_parse_round_trips_every_major() {
        for major in PgMajor::all() {
            let mut c = ControlFile::empty(major);
            c.system_identifier = 0x1234_5678_9abc_def0;
            c.checkpoint.next_xid = FullXid::new(3, 12345);
            c.checkpoint.redo_lsn = Lsn(0x1_0000_0028);
            if major.number() >= 12 {
                c.max_wal_senders = Some(10);
            }
            if major.number() <= 12 {
                c.float4_pass_by_value = Some(true);
            }
            if major.number() <= 10 {
                c.prior_lsn = Some(Lsn(5));
            }
            if major.number() >= 17 {
                c.checkpoint.checkpoint_wal_level = Some(1);
            }
            if major.number() >= 18 {
                c.default_char_signedness = Some(true);
            }
            let bytes = c.encode();
            assert_eq!(bytes.len(), CONTROL_FILE_SIZE);
            let back = ControlFile::parse(&bytes).unwrap();
            c.crc = back.crc;
            assert_eq!(back, c, "major {major}");
        }
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        assert!(matches!(ControlFile::parse(&[]), Err(FormatError::Truncated { offset: 8, .. })));
        let mut c = ControlFile::empty(PgMajor::new(15).unwrap()).encode();
        c[100] ^= 1;
        assert!(matches!(ControlFile::parse(&c), Err(FormatError::BadCrc { offset: 288, .. })));
        assert!(matches!(ControlFile::parse(&c[..200]), Err(FormatError::Truncated { .. })));
        let mut v = ControlFile::empty(PgMajor::new(15).unwrap()).encode();
        v[8..12].copy_from_slice(&960u32.to_le_bytes());
        assert!(matches!(ControlFile::parse(&v), Err(FormatError::UnsupportedVersion { .. })));
    }
}
