//! pg_control as evidence, not truth. When its CRC fails, or it is short, zeroed, missing or
//! of an unknown version, every value in it is a suspect: each field is cross-checked
//! against evidence that does not come from pg_control —
//!
//! - the checkpoint record in WAL (CRC-protected; found by scanning pg_wal when the
//!   pointer itself is damaged) for the checkpoint location and the whole checkPointCopy,
//! - WAL page headers for the system identifier, the WAL segment and block sizes and the
//!   timeline, and what follows the checkpoint record for the cluster's state,
//! - relation page headers for the block size, and page checksums for whether checksums
//!   are on,
//! - PG_VERSION and the major's compile-time constants for the rest,
//!
//! and the result, [`ControlEvidence::trusted`], is what every other check and the planner
//! judge the data directory with (and what `plan` writes back). Read-only.

use crate::datadir::{DataDir, DirWalSource, CONTROL_PATH, WAL_DIR};
use crate::format::control::{toast_max_chunk_size, CheckPoint, ControlFile, DbState};
use crate::format::types::Lsn;
use crate::format::version::PgMajor;
use crate::format::wal::{decode_checkpoint, WalGeometry, WalPageHeader, WalReader};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;

/// What one field of the rebuilt pg_control rests on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Independent evidence gives the same value.
    Confirmed,
    /// Independent evidence gives another value: the evidence's is used.
    Contradicted,
    /// pg_control holds no value (missing, short, zeroed): the evidence's is used.
    Rebuilt,
    /// Nothing outside pg_control says what it should be: the value found is kept (or, if
    /// impossible or absent, the default), and the server sets it again at start.
    Unverifiable,
}

#[derive(Clone, Debug, PartialEq, Serialize, serde::Deserialize)]
pub struct FieldCheck {
    /// The field, named as in `inspect --json`.
    pub field: String,
    /// What pg_control holds (None: absent or unreadable).
    pub found: Option<String>,
    /// What the rebuilt pg_control holds.
    pub used: String,
    pub verdict: Verdict,
    /// Where `used` comes from.
    pub evidence: String,
}

/// The state of the file itself.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Condition {
    /// CRC right and every value one the server accepts.
    Intact,
    /// It decodes, but its CRC fails.
    CrcMismatch { stored: u32, computed: u32, offset: usize },
    /// CRC right, values impossible (`problems`).
    ValuesInvalid { problems: Vec<String> },
    /// Missing, short, zeroed, or of a version no supported major writes.
    Unreadable { reason: String },
}

#[derive(Clone, Debug, Serialize)]
pub struct ControlEvidence {
    pub condition: Condition,
    /// pg_control as decoded (loosely: any bool byte accepted), when it decodes.
    #[serde(skip)]
    pub found: Option<ControlFile>,
    /// The values to judge the directory with and to write back: `found` when intact.
    #[serde(skip)]
    pub trusted: Option<ControlFile>,
    /// One entry per field, when the file is not intact.
    pub fields: Vec<FieldCheck>,
    /// The checkpoint record the rebuild rests on, when one was read from WAL.
    pub checkpoint_record: Option<Lsn>,
    /// Why no rebuild from evidence is possible (no PG_VERSION, no WAL of this cluster, no
    /// checkpoint record): then only a WAL reset on guesses remains.
    pub not_rebuildable: Option<String>,
    /// Offsets of bytes the server never writes that way (a C bool other than 0 or 1).
    pub odd_bytes: Vec<usize>,
}

impl ControlEvidence {
    pub fn intact(&self) -> bool {
        self.condition == Condition::Intact
    }
    /// The values rebuilt from evidence, when pg_control is damaged and a checkpoint record
    /// in WAL made the rebuild possible (what `write-control` writes).
    pub fn rebuilt(&self) -> Option<&ControlFile> {
        self.trusted.as_ref().filter(|_| !self.intact() && self.not_rebuildable.is_none())
    }
    /// pg_control is damaged and nothing confirms its values: what is judged with them
    /// (the counters, REDO) may be an effect of the damage.
    pub fn suspect(&self) -> bool {
        !self.intact() && self.not_rebuildable.is_some()
    }
    pub fn count(&self, v: Verdict) -> usize {
        self.fields.iter().filter(|f| f.verdict == v).count()
    }
    /// The evidence lines of the root finding: contradicted fields first (with evidence),
    /// then the unverifiable ones, then the confirmed ones by name.
    pub fn lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in self.fields.iter().filter(|f| f.verdict == Verdict::Contradicted) {
            out.push(format!("{}: CONTRADICTED: pg_control holds {}, {} gives {}", f.field, f.found.as_deref().unwrap_or("nothing"), f.evidence, f.used));
        }
        let rebuilt: Vec<String> =
            self.fields.iter().filter(|f| f.verdict == Verdict::Rebuilt).map(|f| format!("{} {} ({})", f.field, f.used, f.evidence)).collect();
        if !rebuilt.is_empty() {
            out.push(format!("absent from pg_control, taken from the evidence: {}", rebuilt.join("; ")));
        }
        for f in self.fields.iter().filter(|f| f.verdict == Verdict::Unverifiable) {
            match &f.found {
                Some(_) => out.push(format!("{}: unverifiable, {} kept ({})", f.field, f.used, f.evidence)),
                None => out.push(format!("{}: unverifiable, {} ({})", f.field, f.used, f.evidence)),
            }
        }
        let confirmed: Vec<&str> = self.fields.iter().filter(|f| f.verdict == Verdict::Confirmed).map(|f| f.field.as_str()).collect();
        if !confirmed.is_empty() {
            out.push(format!("confirmed by evidence outside pg_control: {}", confirmed.join(", ")));
        }
        if !self.odd_bytes.is_empty() {
            out.push(format!("bytes at offsets {:?} hold booleans other than 0 or 1, which the server never writes", self.odd_bytes));
        }
        if let Some(why) = &self.not_rebuildable {
            out.push(format!("no rebuild from evidence: {why}"));
        }
        out
    }
}

/// Examine pg_control. Cheap when it is intact (nothing else is read).
pub fn examine(dd: &DataDir) -> ControlEvidence {
    let bytes = dd.read(CONTROL_PATH).ok();
    let pg_version = dd.pg_version().ok();
    let strict = bytes.as_deref().map(ControlFile::parse_lenient);
    if let Some(Ok((c, crc))) = &strict {
        if crc.ok() && c.sanity_problems().is_empty() && pg_version.is_none_or(|m| m == c.major) {
            return ControlEvidence {
                condition: Condition::Intact,
                found: Some(c.clone()),
                trusted: Some(c.clone()),
                fields: vec![],
                checkpoint_record: None,
                not_rebuildable: None,
                odd_bytes: vec![],
            };
        }
    }
    let major = pg_version.or_else(|| bytes.as_deref().and_then(|b| ControlFile::detect_major(b).ok()));
    let loose = match (bytes.as_deref(), major) {
        (Some(b), Some(m)) => Some(ControlFile::parse_salvage(b, m)),
        _ => None,
    };
    let zeroed = bytes.as_deref().is_some_and(|b| b.iter().all(|&x| x == 0));
    let loose = loose.filter(|_| !zeroed);
    let (found, condition, odd) = match (&loose, bytes.as_deref()) {
        (Some(Ok((c, crc, odd))), _) if !crc.ok() => {
            (Some(c.clone()), Condition::CrcMismatch { stored: crc.stored, computed: crc.computed, offset: crc.offset }, odd.clone())
        }
        (Some(Ok((c, _, odd))), _) => {
            let mut problems: Vec<String> = c.sanity_problems().iter().map(|(f, want, got)| format!("{f} is {got}, expected {want}")).collect();
            if let Some(m) = pg_version.filter(|m| *m != c.major) {
                problems.push(format!("its version fields say PostgreSQL {}, PG_VERSION says {}", c.major, m));
            }
            (Some(c.clone()), Condition::ValuesInvalid { problems }, odd.clone())
        }
        (Some(Err(e)), Some(b)) => (None, Condition::Unreadable { reason: unreadable_reason(b, &e.to_string()) }, vec![]),
        (_, None) => (None, Condition::Unreadable { reason: "global/pg_control does not exist".into() }, vec![]),
        (None, Some(b)) => (
            None,
            Condition::Unreadable { reason: unreadable_reason(b, "neither PG_VERSION nor its version fields name a supported major (10 to 18)") },
            vec![],
        ),
    };
    let mut ev = ControlEvidence { condition, found, trusted: None, fields: vec![], checkpoint_record: None, not_rebuildable: None, odd_bytes: odd };
    let Some(major) = major else {
        ev.not_rebuildable = Some("PG_VERSION is missing or unreadable and pg_control names no supported major".into());
        return ev;
    };
    rebuild(dd, major, &mut ev);
    ev
}

fn unreadable_reason(b: &[u8], err: &str) -> String {
    if b.is_empty() {
        "global/pg_control is empty (0 bytes)".into()
    } else if b.iter().all(|&x| x == 0) {
        format!("global/pg_control is {} bytes of zeroes", b.len())
    } else if b.len() < 512 {
        format!("global/pg_control is {} bytes, shorter than the control data ({err})", b.len())
    } else {
        format!("global/pg_control cannot be decoded: {err}")
    }
}

/// What the WAL page headers in pg_wal say (each file's first page).
#[derive(Debug, Default)]
struct WalHeaders {
    /// system identifier -> files
    sysids: BTreeMap<u64, usize>,
    seg_sizes: BTreeMap<u32, usize>,
    block_sizes: BTreeMap<u32, usize>,
    highest_tli: u32,
}

fn majority<K: Copy + Ord>(m: &BTreeMap<K, usize>) -> Option<K> {
    m.iter().max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k))).map(|(k, _)| *k)
}

fn wal_headers(dd: &DataDir, major: PgMajor) -> WalHeaders {
    let mut h = WalHeaders::default();
    for name in dd.list(WAL_DIR).unwrap_or_default() {
        if !crate::format::wal::segment::is_wal_file_name(&name) {
            continue;
        }
        let mut buf = [0u8; 64];
        let Ok(mut f) = std::fs::File::open(dd.path(&format!("{WAL_DIR}/{name}"))) else { continue };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if f.read_exact(&mut buf).is_err() {
            continue;
        }
        let Ok(p) = WalPageHeader::parse(&buf) else { continue };
        let Some(l) = p.long else { continue };
        // A file whose length is its header's segment size, of this major's page format.
        if p.magic != major.wal_page_magic() || l.seg_size as u64 != len || !l.seg_size.is_power_of_two() {
            continue;
        }
        *h.sysids.entry(l.sysid).or_default() += 1;
        *h.seg_sizes.entry(l.seg_size).or_default() += 1;
        *h.block_sizes.entry(l.xlog_blcksz).or_default() += 1;
        let tli = u32::from_str_radix(&name[..8], 16).unwrap_or(0);
        h.highest_tli = h.highest_tli.max(tli.max(p.tli));
    }
    h
}

/// Block size from the page headers of catalog relations, and whether their data
/// checksums hold (None: no page to tell).
fn pages_say(dd: &DataDir) -> (Option<u32>, Option<bool>) {
    let mut sizes: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut ok, mut bad) = (0usize, 0usize);
    let mut files: Vec<String> = ["global/1262", "global/1260", "global/1213", "global/2676"].iter().map(|s| s.to_string()).collect();
    for db in dd.list("base").unwrap_or_default() {
        for rel in ["1259", "1249", "1247", "2662", "2663"] {
            files.push(format!("base/{db}/{rel}"));
        }
    }
    for f in files.iter().take(64) {
        // The first block only (at most 32 kB): catalogs can be large.
        let mut b = Vec::new();
        let Ok(file) = std::fs::File::open(dd.path(f)) else { continue };
        if file.take(32768).read_to_end(&mut b).is_err() {
            continue;
        }
        let Ok(h) = crate::format::page::PageHeader::parse(&b) else { continue };
        let bs = h.page_size();
        if !(1024..=32768).contains(&bs) || !bs.is_power_of_two() || b.len() < bs || h.is_new() {
            continue;
        }
        *sizes.entry(bs as u32).or_default() += 1;
        if h.checksum != 0 && crate::format::checksum::page_checksum(&b[..bs], 0) == h.checksum {
            ok += 1;
        } else {
            bad += 1;
        }
    }
    let checksums = match (ok, bad) {
        (0, 0) => None,
        (o, b) => Some(o > b),
    };
    (majority(&sizes), checksums)
}

/// Relation segment size in blocks from a relation that has a second segment file.
fn blocks_per_segment(dd: &DataDir, bs: u32) -> Option<u32> {
    for db in dd.list("base").unwrap_or_default() {
        for name in dd.list(&format!("base/{db}")).unwrap_or_default() {
            if let Some(first) = name.strip_suffix(".1") {
                let len = std::fs::metadata(dd.path(&format!("base/{db}/{first}"))).ok()?.len();
                if len > 0 && len % bs as u64 == 0 {
                    return u32::try_from(len / bs as u64).ok();
                }
            }
        }
    }
    None
}

/// The newest checkpoint record in `src`: at `hint` if one is there, else by reading every
/// valid record of every segment. Returns (lsn, checkpoint, shutdown, whether WAL goes on
/// after it, the checkpoint before it).
type FoundCheckpoint = (Lsn, CheckPoint, bool, bool, Option<Lsn>);

fn find_checkpoint(dd: &DataDir, major: PgMajor, g: WalGeometry, tli: u32, sysid: u64, hint: Option<Lsn>) -> Option<FoundCheckpoint> {
    let src = DirWalSource::new(dd, g, tli).ok()?;
    let mut r = WalReader::new(src, major, g, Some(sysid));
    let continues = |r: &mut WalReader<DirWalSource>, next: Lsn| r.read_record(next, None).is_ok();
    if let Some(h) = hint.filter(|h| h.0 != 0) {
        if let Ok(rr) = r.read_record(h, None) {
            if let Ok(cp) = decode_checkpoint(major, &rr.record) {
                let shutdown = rr.record.header.info & 0xF0 == crate::format::wal::record::XLOG_CHECKPOINT_SHUTDOWN;
                let more = continues(&mut r, rr.next);
                return Some((h, cp, shutdown, more, None));
            }
        }
    }
    // Every segment from the first: the records of each, following the chain where it
    // crosses into the next segment.
    let first = r.source.first_segno()?;
    let last = r.source.last_segno()?;
    let mut best: Option<FoundCheckpoint> = None;
    let mut prev_ckpt: Option<Lsn> = None;
    let mut seg = first;
    while seg <= last {
        let Ok(Some(mut at)) = r.first_record_in_segment(seg) else {
            seg += 1;
            continue;
        };
        let mut reached = seg;
        while let Ok(rr) = r.read_record(at, None) {
            if let Ok(cp) = decode_checkpoint(major, &rr.record) {
                let shutdown = rr.record.header.info & 0xF0 == crate::format::wal::record::XLOG_CHECKPOINT_SHUTDOWN;
                if best.as_ref().is_none_or(|b| rr.record.lsn > b.0) {
                    let before = best.as_ref().map(|b| b.0).or(prev_ckpt);
                    best = Some((rr.record.lsn, cp, shutdown, false, before));
                    prev_ckpt = Some(rr.record.lsn);
                }
            } else if let Some(b) = best.as_mut() {
                if rr.record.lsn > b.0 {
                    b.3 = true; // a record after the newest checkpoint
                }
            }
            reached = g.segno(rr.next);
            at = rr.next;
        }
        seg = reached.max(seg) + 1;
    }
    best
}

/// A geometry value kept as found (no evidence) that the server would refuse, and that
/// would be a divisor: the default instead, said in the field's entry (the last one).
fn possible(fields: &mut [FieldCheck], v: &mut u32, ok: impl Fn(u32) -> bool, default: u32) {
    if !ok(*v) {
        *v = default;
        if let Some(f) = fields.last_mut() {
            f.used = default.to_string();
            f.evidence = format!("{} is impossible and nothing else gives it: the default", f.found.as_deref().unwrap_or("the value"));
        }
    }
}

/// Each field judged against the evidence; `ev.trusted` set when something can be built.
fn rebuild(dd: &DataDir, major: PgMajor, ev: &mut ControlEvidence) {
    let std = ControlFile::standard(major);
    let found = ev.found.clone();
    let mut t = found.clone().unwrap_or_else(|| std.clone());
    t.major = major;
    let mut fields: Vec<FieldCheck> = Vec::new();
    // Record a field: `want` is the evidence's value (None: unverifiable).
    fn judge<T: PartialEq + ToString>(
        fields: &mut Vec<FieldCheck>,
        field: &'static str,
        found: Option<T>,
        want: Option<(T, String)>,
        fallback: (T, &str),
    ) -> T {
        match (found, want) {
            (f, Some((w, why))) => {
                let verdict = match &f {
                    None => Verdict::Rebuilt,
                    Some(v) if *v == w => Verdict::Confirmed,
                    Some(_) => Verdict::Contradicted,
                };
                fields.push(FieldCheck { field: field.into(), found: f.map(|v| v.to_string()), used: w.to_string(), verdict, evidence: why });
                w
            }
            (Some(f), None) => {
                fields.push(FieldCheck {
                    field: field.into(),
                    found: Some(f.to_string()),
                    used: f.to_string(),
                    verdict: Verdict::Unverifiable,
                    evidence: fallback.1.into(),
                });
                f
            }
            (None, None) => {
                fields.push(FieldCheck {
                    field: field.into(),
                    found: None,
                    used: fallback.0.to_string(),
                    verdict: Verdict::Unverifiable,
                    evidence: format!("absent or impossible; {}", fallback.1),
                });
                fallback.0
            }
        }
    }
    let f = found.as_ref();

    // WAL page headers: system identifier, segment and block size, timeline.
    let wh = wal_headers(dd, major);
    let n_files: usize = wh.sysids.values().sum();
    let sysid_ev = majority(&wh.sysids).map(|s| (s, format!("the long page header of {} of {n_files} WAL segment files", wh.sysids[&s])));
    t.system_identifier =
        judge(&mut fields, "system_identifier", f.map(|c| c.system_identifier), sysid_ev, (0, "no WAL segment of this cluster to read it from"));
    t.pg_control_version =
        judge(&mut fields, "pg_control_version", f.map(|c| c.pg_control_version), Some((major.control_version(), format!("PG_VERSION {major}"))), (0, ""));
    t.catalog_version_no = judge(
        &mut fields,
        "catalog_version_no",
        f.map(|c| c.catalog_version_no),
        Some((major.release_catalog_version(), format!("the catalog version of PostgreSQL {major} releases"))),
        (0, ""),
    );
    let seg_ev = majority(&wh.seg_sizes).map(|s| (s, "WAL long page headers (xlp_seg_size) and file sizes".to_string()));
    t.bytes_per_wal_segment = judge(&mut fields, "bytes_per_wal_segment", f.map(|c| c.bytes_per_wal_segment), seg_ev, (16 << 20, "the default, 16 MB"));
    possible(&mut fields, &mut t.bytes_per_wal_segment, |v| (1 << 20..=1 << 30).contains(&v) && v.is_power_of_two(), 16 << 20);
    let wbs_ev = majority(&wh.block_sizes).map(|s| (s, "WAL long page headers (xlp_xlog_blcksz)".to_string()));
    t.wal_block_size = judge(&mut fields, "wal_block_size", f.map(|c| c.wal_block_size), wbs_ev, (8192, "the default"));
    possible(&mut fields, &mut t.wal_block_size, |v| (1024..=65536).contains(&v) && v.is_power_of_two(), 8192);
    let (bs_ev, checksums_ev) = pages_say(dd);
    t.database_block_size = judge(
        &mut fields,
        "database_block_size",
        f.map(|c| c.database_block_size),
        bs_ev.map(|b| (b, "the page headers of catalog relations".to_string())),
        (8192, "the default"),
    );
    possible(&mut fields, &mut t.database_block_size, |v| (1024..=32768).contains(&v) && v.is_power_of_two(), 8192);
    let bs = t.database_block_size;
    let bps_ev = blocks_per_segment(dd, bs)
        .map(|b| (b, "the size of a relation's first segment file".to_string()))
        .unwrap_or(((1u32 << 30) / bs, "1 GB segments, the server's compile-time default (no relation has a second segment)".to_string()));
    t.blocks_per_segment = judge(&mut fields, "blocks_per_segment", f.map(|c| c.blocks_per_segment), Some(bps_ev), (0, ""));
    let ck = checksums_ev.map(|on| (on as u32, format!("data checksums {} on catalog pages", if on { "hold" } else { "do not hold" })));
    t.data_page_checksum_version = judge(&mut fields, "data_page_checksum_version", f.map(|c| c.data_page_checksum_version), ck, (0, "no page to verify on"));

    // Compile-time constants: the server refuses a pg_control that differs.
    const COMPILED: &str = "the server's compile-time value";
    t.max_data_alignment = judge(&mut fields, "max_data_alignment", f.map(|c| c.max_data_alignment), Some((8, COMPILED.into())), (8, ""));
    let ff =
        judge(&mut fields, "float_format", f.map(|c| c.float_format.to_string()), Some((std.float_format.to_string(), COMPILED.into())), (String::new(), ""));
    t.float_format = ff.parse().unwrap_or(std.float_format);
    t.max_identifier_length = judge(&mut fields, "max_identifier_length", f.map(|c| c.max_identifier_length), Some((64, COMPILED.into())), (64, ""));
    t.max_index_columns = judge(&mut fields, "max_index_columns", f.map(|c| c.max_index_columns), Some((32, COMPILED.into())), (32, ""));
    t.max_toast_chunk_size = judge(
        &mut fields,
        "max_toast_chunk_size",
        f.map(|c| c.max_toast_chunk_size),
        Some((toast_max_chunk_size(bs), format!("{COMPILED} for {bs}-byte blocks"))),
        (0, ""),
    );
    t.large_object_chunk_size = judge(
        &mut fields,
        "large_object_chunk_size",
        f.map(|c| c.large_object_chunk_size),
        Some((bs / 4, format!("{COMPILED} for {bs}-byte blocks"))),
        (0, ""),
    );
    if major.number() <= 12 {
        t.float4_pass_by_value =
            Some(judge(&mut fields, "float4_pass_by_value", f.and_then(|c| c.float4_pass_by_value), Some((true, COMPILED.into())), (true, "")));
    }
    t.float8_pass_by_value = judge(&mut fields, "float8_pass_by_value", f.map(|c| c.float8_pass_by_value), Some((true, COMPILED.into())), (true, ""));

    // The checkpoint record, CRC-protected, in WAL.
    let g = WalGeometry::new(t.bytes_per_wal_segment, t.wal_block_size).ok();
    let tli = wh.highest_tli.max(1);
    let hint = f.map(|c| c.checkpoint_lsn);
    let found_ckpt = g.and_then(|g| find_checkpoint(dd, major, g, tli, t.system_identifier, hint));
    match &found_ckpt {
        None => {
            ev.not_rebuildable = Some(if n_files == 0 {
                "pg_wal holds no WAL segment of this major with a valid long page header".into()
            } else {
                "no checkpoint record can be read from the WAL in pg_wal".into()
            });
        }
        Some((lsn, cp, shutdown, more, before)) => {
            ev.checkpoint_record = Some(*lsn);
            let how = if hint == Some(*lsn) {
                "the checkpoint record it points at (CRC-checked)".to_string()
            } else {
                "the newest checkpoint record found by reading pg_wal".to_string()
            };
            t.checkpoint_lsn = judge(&mut fields, "checkpoint_lsn", f.map(|c| c.checkpoint_lsn), Some((*lsn, how)), (Lsn(0), ""));
            if major.number() <= 10 {
                let prior_ok = f
                    .and_then(|c| c.prior_lsn)
                    .filter(|p| g.and_then(|g| find_checkpoint(dd, major, g, tli, t.system_identifier, Some(*p))).is_some_and(|x| x.0 == *p));
                // Used only when the latest checkpoint record cannot be read; one that
                // reads as a checkpoint record is confirmed, any other is kept.
                let want = prior_ok.map(|p| (p, "a checkpoint record there".to_string()));
                let fallback = before.unwrap_or(*lsn);
                t.prior_lsn = Some(judge(
                    &mut fields,
                    "prior_lsn",
                    f.and_then(|c| c.prior_lsn),
                    want,
                    (fallback, "no checkpoint record there to confirm it (its segment may be recycled)"),
                ));
            }
            let rec = format!("the checkpoint record at {lsn}");
            let fc = f.map(|c| &c.checkpoint);
            macro_rules! cp_fields {
                    ($($m:ident),+) => {
                        vec![$((stringify!($m), fc.map(|x| x.$m.to_string()), cp.$m.to_string())),+]
                    };
                }
            let mut pairs: Vec<(&'static str, Option<String>, String)> = cp_fields!(
                redo_lsn,
                timeline_id,
                prev_timeline_id,
                full_page_writes,
                next_xid,
                next_oid,
                next_multixact_id,
                next_multi_offset,
                oldest_xid,
                oldest_xid_dbid,
                oldest_multi_xid,
                oldest_multi_dbid,
                checkpoint_time,
                oldest_commit_ts_xid,
                newest_commit_ts_xid,
                oldest_active_xid
            );
            if major.number() >= 17 {
                pairs.push((
                    "checkpoint_wal_level",
                    fc.and_then(|x| x.checkpoint_wal_level).map(|v| v.to_string()),
                    cp.checkpoint_wal_level.unwrap_or(0).to_string(),
                ));
            }
            for (name, fv, wv) in pairs {
                judge(&mut fields, name, fv, Some((wv, rec.clone())), (String::new(), ""));
            }
            t.checkpoint = cp.clone();
            // The state: after a shutdown checkpoint that ends WAL, "shut down"; WAL that goes
            // on after the checkpoint means the server ran on and must replay it.
            let recovery_files = ["backup_label", "recovery.signal", "standby.signal", "recovery.conf"].into_iter().any(|p| dd.path(p).exists());
            let fs = f.map(|c| c.state);
            let state_ev = match fs {
                Some(DbState::InArchiveRecovery | DbState::ShutDownInRecovery) if recovery_files => None,
                Some(DbState::InProduction) if !*more => {
                    Some((DbState::InProduction, "WAL ends at the checkpoint record; a server that wrote nothing after its start".to_string()))
                }
                _ if *shutdown && !*more => Some((DbState::ShutDown, "WAL ends with the shutdown checkpoint record".to_string())),
                Some(DbState::InCrashRecovery) if *more => Some((DbState::InCrashRecovery, "WAL goes on after the checkpoint record".to_string())),
                _ => Some((DbState::InProduction, "WAL goes on after the checkpoint record: the server ran on; its next start replays it".to_string())),
            };
            judge(
                &mut fields,
                "state",
                fs.map(|s| s.text().to_string()),
                state_ev.as_ref().map(|(s, w)| (s.text().to_string(), w.clone())),
                (String::new(), "a standby or archive recovery: kept"),
            );
            t.state = state_ev.map(|(s, _)| s).or(fs).unwrap_or(DbState::InProduction);
            // Backup and recovery points: zero on a cluster that is not restoring a
            // backup or recovering from an archive (else the server waits for WAL it
            // will never get: "WAL ends before end of online backup").
            let primary = !recovery_files && !matches!(t.state, DbState::InArchiveRecovery | DbState::ShutDownInRecovery);
            fn zero<T>(primary: bool, v: T) -> Option<(T, String)> {
                primary.then(|| (v, "no backup_label and no recovery or standby signal file: not restoring a backup or an archive".to_string()))
            }
            t.min_recovery_end_lsn =
                judge(&mut fields, "min_recovery_end_lsn", f.map(|c| c.min_recovery_end_lsn), zero(primary, Lsn(0)), (Lsn(0), "kept for recovery"));
            t.min_recovery_end_timeline =
                judge(&mut fields, "min_recovery_end_timeline", f.map(|c| c.min_recovery_end_timeline), zero(primary, 0), (0, "kept for recovery"));
            t.backup_start_lsn = judge(&mut fields, "backup_start_lsn", f.map(|c| c.backup_start_lsn), zero(primary, Lsn(0)), (Lsn(0), "kept for recovery"));
            t.backup_end_lsn = judge(&mut fields, "backup_end_lsn", f.map(|c| c.backup_end_lsn), zero(primary, Lsn(0)), (Lsn(0), "kept for recovery"));
            t.end_of_backup_record_required = judge(
                &mut fields,
                "end_of_backup_record_required",
                f.map(|c| c.end_of_backup_record_required),
                primary.then(|| (false, "no backup_label: no backup to finish".to_string())),
                (false, "kept for recovery"),
            );
        }
    }

    // Settings: the server writes its own values at every start (XLogReportParameters);
    // out-of-range ones go back to the defaults.
    const SET_AT_START: &str = "a setting the server records again at every start";
    let range = |v: Option<i32>, lo: i32, hi: i32| v.filter(|x| (lo..=hi).contains(x));
    const MAX_BACKENDS: i32 = (1 << 18) - 1;
    t.wal_level = judge(&mut fields, "wal_level", range(f.map(|c| c.wal_level), 0, 2), None, (1, SET_AT_START));
    t.max_connections = judge(&mut fields, "max_connections", range(f.map(|c| c.max_connections), 1, MAX_BACKENDS), None, (100, SET_AT_START));
    t.max_worker_processes = judge(&mut fields, "max_worker_processes", range(f.map(|c| c.max_worker_processes), 0, MAX_BACKENDS), None, (8, SET_AT_START));
    if major.number() >= 12 {
        t.max_wal_senders = Some(judge(&mut fields, "max_wal_senders", range(f.and_then(|c| c.max_wal_senders), 0, MAX_BACKENDS), None, (10, SET_AT_START)));
    }
    t.max_prepared_xacts = judge(&mut fields, "max_prepared_xacts", range(f.map(|c| c.max_prepared_xacts), 0, MAX_BACKENDS), None, (0, SET_AT_START));
    t.max_locks_per_xact = judge(&mut fields, "max_locks_per_xact", range(f.map(|c| c.max_locks_per_xact), 10, i32::MAX), None, (64, SET_AT_START));
    t.wal_log_hints = judge(&mut fields, "wal_log_hints", f.map(|c| c.wal_log_hints), None, (false, SET_AT_START));
    t.track_commit_timestamp = judge(&mut fields, "track_commit_timestamp", f.map(|c| c.track_commit_timestamp), None, (false, SET_AT_START));
    if major.number() >= 18 {
        t.default_char_signedness = Some(judge(
            &mut fields,
            "default_char_signedness",
            f.and_then(|c| c.default_char_signedness),
            None,
            (true, "signed, as on the x86-64 machine that ran initdb"),
        ));
    }
    t.unlogged_lsn = judge(&mut fields, "unlogged_lsn", f.map(|c| c.unlogged_lsn), None, (Lsn(1000), "the first LSN given to unlogged relations"));
    let now = chrono::Utc::now().timestamp();
    let plausible = |x: i64| x > 946_684_800 && x <= now + 86_400;
    t.pg_control_last_modified = judge(
        &mut fields,
        "pg_control_last_modified",
        f.map(|c| c.pg_control_last_modified).filter(|x| plausible(*x)),
        None,
        (t.checkpoint.checkpoint_time, "the checkpoint's time"),
    );
    t.mock_authentication_nonce = f.map(|c| c.mock_authentication_nonce).unwrap_or([0; crate::format::control::MOCK_AUTH_NONCE_LEN]);
    fields.push(FieldCheck {
        field: "mock_authentication_nonce".into(),
        found: f.map(|c| crate::format::bytes::hex(&c.mock_authentication_nonce)),
        used: crate::format::bytes::hex(&t.mock_authentication_nonce),
        verdict: Verdict::Unverifiable,
        evidence: "random at initdb; only used to answer logins of roles that do not exist".into(),
    });
    ev.fields = fields;
    if ev.not_rebuildable.is_none() {
        ev.trusted = Some(t);
    } else if let Some(c) = found {
        // Judge the directory with what pg_control holds, geometry made usable.
        ev.trusted = Some(ControlFile { major, ..c }.with_usable_geometry().0);
    }
}
