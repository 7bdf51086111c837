//! `plan` and `review`: a repair as a file a second DBA can read, question and approve, in
//! which every action is bound to the exact bytes it was planned against (sha256 of the
//! target block or file) and carries the deterministic parameters its new bytes are
//! computed from ([`bytes`]), what it loses and what it risks. Planning writes only the
//! plan file. Format: docs/plan-format.md.

pub mod bytes;
pub mod evidence;
pub mod gap;
mod repairs;
pub mod reset;

use crate::datadir::{DataDir, Postmaster};
use crate::diagnose::Code;
use crate::diagnose::{self, DiagnoseOptions};
use crate::error::{Error, Result};
use crate::format::types::{Lsn, Xid};
use crate::format::xact::{ClogGeometry, SLRU_PAGES_PER_SEGMENT};
use crate::units::count;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const FORMAT_VERSION: u32 = 1;

/// The most tuple versions a pg_xact rebuild lists for the salvage file (the rest are
/// counted, not listed).
pub const MAX_POLICY_ROWS: usize = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum XactPolicy {
    /// Evidence (WAL, hint bits) first; the rest aborted (no committed row is invented).
    #[default]
    Infer,
    Committed,
    Aborted,
}

impl XactPolicy {
    /// What the policy does to an xid with no evidence, in the words plan prints.
    pub fn describe(self) -> &'static str {
        match self {
            XactPolicy::Infer => "--xact-status infer: evidence first, the rest set aborted",
            XactPolicy::Committed => "--xact-status committed: set committed",
            XactPolicy::Aborted => "--xact-status aborted: set aborted",
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PlanOptions {
    pub xact_status: XactPolicy,
    pub zero_pages: bool,
    pub reset_wal: bool,
    pub accept_checksum_failures: bool,
    /// Directory to move pg_wal to when its file system is full.
    pub wal_dir: Option<String>,
    /// Only the findings with these codes (empty: all).
    pub only: Vec<String>,
    /// Directories of archived WAL searched for evidence and for segments to put back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wal_archive: Vec<String>,
    /// Other copies of this cluster's data directory, searched for damaged pages.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page_source: Vec<String>,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            xact_status: XactPolicy::Infer,
            zero_pages: true,
            reset_wal: false,
            accept_checksum_failures: false,
            wal_dir: None,
            only: vec![],
            wal_archive: vec![],
            page_source: vec![],
        }
    }
}

/// Where statuses of a rebuilt pg_xact range came from.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct XactSources {
    pub from_wal: u64,
    pub from_hint_bits: u64,
    pub from_policy: u64,
    /// Statuses from WAL, by the file they were read in (pg_wal, recycled content, archives).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub wal_files: std::collections::BTreeMap<String, u64>,
    /// Every xid's source, as ranges of consecutive xids with one source: a WAL file,
    /// "hint bits" or "policy".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub by_xid: Vec<(Xid, Xid, String)>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ActionKind {
    /// Mark tuples frozen (pg_surgery heap_force_freeze): rows kept.
    FreezeTuples { offnums: Vec<u16> },
    /// Mark tuples dead (heap_force_kill): rows dropped.
    KillTuples { offnums: Vec<u16> },
    /// Clear contradictory xmax hint bits: the server looks the status up again.
    ClearHintBits { offnums: Vec<u16> },
    /// Set attributes NULL (item, attnums): each tuple laid out again without them, never
    /// longer; `columns` is the table's layout (attlen, attalign) when planned.
    NullAttributes { items: Vec<(u16, Vec<u16>)>, columns: Vec<crate::format::page::attrs::Column> },
    /// Mend TOAST pointers whose values are whole (item, attnum, method): the compression
    /// method id set from the value's first chunk when given, HEAP_HASEXTERNAL set.
    FixToastPointers { items: Vec<(u16, u16, Option<u8>)>, columns: Vec<crate::format::page::attrs::Column> },
    /// Mend the update chains of a page: per line pointer, the edit (see heap::ChainFix).
    RepairChains { items: Vec<(u16, crate::format::page::heap::ChainFix)> },
    /// Make unused or dead line pointers that still point at intact tuples normal again:
    /// (item, offset, length) each, as found: the hidden rows come back.
    RestorePointers { items: Vec<(u16, u16, u16)> },
    /// Clear a heap block's all-visible/all-frozen bits in the visibility map.
    ClearVisibilityMap { heap_block: u32 },
    /// Rewrite the page header from the page's contents: rows kept.
    RebuildPageHeader { header: bytes::HeaderRebuild },
    /// Replace the page with the full-page image WAL holds of it (`image`, hex), with the
    /// LSN replay would give it (`lsn`: where the next record after the image's starts) and
    /// its checksum. `source`: the WAL file and record it was read from.
    RestorePage { image: String, lsn: u64, source: String },
    /// Replace the page with an empty (all-zero) one; the original goes to a salvage file.
    ZeroPage { rows: Option<u32> },
    /// Store the checksum of the page's current content (explicit opt-in).
    AcceptChecksum { checksum: u16 },
    /// Set pd_lsn (a page whose LSN is past the end of WAL) to `lsn`, the latest
    /// checkpoint's REDO location; the content stays; checksum recomputed.
    SetPageLsn { lsn: u64 },
    /// Store the CRC of pg_control's current content, after its values were checked against
    /// WAL's checkpoint record and the data directory (only the 4 CRC bytes change).
    FixControlCrc { crc: u32 },
    /// Write pg_control rebuilt from evidence: `image` is the control data (hex, zero padding
    /// to 8192 bytes follows), with its CRC; `fields` say what each value rests on.
    WriteControl { image: String, fields: Vec<crate::check::control::FieldCheck> },
    /// Write a lost WAL segment whose content the surviving WAL proves (see [`gap`]): the
    /// checkpoint's own records from pg_control's copy of it, the checkpoint record at
    /// `checkpoint`, a switch record at `switch`; the result must hash to `sha256`.
    RebuildWalSegment { checkpoint: u64, switch: u64, online: bool, sha256: String },
    /// Write a pg_xact segment: existing bytes kept, missing pages added, statuses set.
    /// `policy_rows`: the tuples whose unhinted xmin or xmax got its status from the policy
    /// ((file, block, item, xid, "xmin" or "xmax")): apply writes them to the salvage file.
    SynthesizeXact {
        pages: u32,
        first_xid: Xid,
        last_xid: Xid,
        committed: Vec<(Xid, Xid)>,
        sources: XactSources,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        policy_rows: Vec<(String, u32, u16, Xid, String)>,
    },
    /// Move pg_wal's contents to `to` and leave a symbolic link.
    RelocateWal { to: String },
    /// Put a missing WAL segment back (the target, in pg_wal) from a whole copy found
    /// elsewhere: `source` (an absolute path; gzip, zstd or lz4 when `compression` says),
    /// whose content must still hash to `sha256`.
    RestoreWalSegment {
        source: String,
        sha256: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        compression: Option<String>,
    },
    /// Move a file out of the data directory into the rollback store.
    MoveAside,
    /// Create an empty relation file where the catalog expects one and the disk has none (a
    /// table then reads as empty; a materialized view is refreshed after). Rollback moves it
    /// to the rollback store.
    CreateEmptyFile,
    /// Reset WAL as pg_resetwal does: pg_control rewritten (target), `wal_file` written with
    /// a shutdown checkpoint, `moves` taken out of pg_wal. `time` is the checkpoint time
    /// (the plan's timestamp); `overrides` hold every value chosen, with `sources`.
    ResetWal { overrides: reset::ResetOverrides, wal_file: String, moves: Vec<String>, time: i64, sources: Vec<reset::Sourced> },
    /// pg_control rebuilt from guessed values (GUESSED: see sources), then a WAL reset.
    RebuildControl { guessed: reset::Guessed, wal_file: String, moves: Vec<String>, time: i64, sources: Vec<reset::Sourced> },
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    Low,
    Medium,
    High,
}

/// What must still be true for an action to apply.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Precondition {
    /// "block", "file", or "absent" (the file must not exist).
    pub scope: String,
    /// sha256 of the block (or file) as read at planning time.
    pub sha256: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Target {
    /// Relative to the data directory.
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub block: Option<u32>,
    /// The relation in words, when the target is one.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub relation: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Action {
    pub id: String,
    /// The finding it answers.
    pub finding: String,
    #[serde(flatten)]
    pub kind: ActionKind,
    pub target: Target,
    pub precondition: Precondition,
    pub effect: String,
    pub data_loss: String,
    pub risk: Risk,
    /// Server log lines (substrings) this action makes the server write on purpose: the
    /// rehearsal does not count them as failures. Empty for every action planned today.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_log: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Alternative {
    pub action: String,
    pub loses: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Answered {
    pub code: String,
    pub title: String,
    pub actions: Vec<String>,
    /// Repairs not chosen, with what each would lose.
    pub alternatives: Vec<Alternative>,
}

/// SQL the server must run once it is up, because no byte edit can do it (the server
/// rebuilds an index from its table). Named by oids only: rehearse looks the names up in the
/// server itself, so a plan file cannot smuggle SQL in.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PostRepair {
    pub what: PostRepairKind,
    pub database_oid: u32,
    pub relation_oid: u32,
    /// schema.name and the database's name, as read from the catalog at planning time (for
    /// people; not used to build SQL).
    pub relation: String,
    pub database: String,
    /// Why: the finding it answers.
    pub finding: String,
}

/// In the order they must run: while an index file is missing, every query the planner plans
/// on its table fails (it reads the index's size), REFRESH of a view over that table too.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "kebab-case")]
pub enum PostRepairKind {
    ReindexIndex,
    ReindexTable,
    RefreshMaterializedView,
    /// Rows or values of the table are removed: rows of other tables whose foreign keys
    /// referenced them are orphaned. Checked last, once the indexes are rebuilt.
    CheckReferences,
}

impl PostRepairKind {
    /// The statement on relation `name` (as the server quotes it) whose oid is `oid`.
    pub fn statement(self, name: &str, oid: u32) -> String {
        match self {
            PostRepairKind::ReindexIndex => format!("REINDEX INDEX {name}"),
            PostRepairKind::ReindexTable => format!("REINDEX TABLE {name}"),
            PostRepairKind::RefreshMaterializedView => format!("REFRESH MATERIALIZED VIEW {name}"),
            PostRepairKind::CheckReferences => format!(
                "DO $$ DECLARE q text; r record; BEGIN FOR q IN {} LOOP EXECUTE q INTO r; IF r.orphans > 0 THEN RAISE WARNING '% rows of % reference rows of % that are gone (foreign key %)', r.orphans, r.child, {oid}::regclass, r.fk; END IF; END LOOP; END $$",
                reference_checks_sql(oid)
            ),
        }
    }
}

/// A query listing, per foreign key that references table `oid`, a query counting the rows
/// whose key (all columns set: MATCH SIMPLE) no longer finds its referenced row; each counts
/// into columns `fk`, `child`, `orphans`.
pub fn reference_checks_sql(oid: u32) -> String {
    let cols = |keys: &str, rel: &str, alias: &str| {
        format!(
            "(select string_agg(format('{alias}.%I', a.attname), ', ' order by k.i) from unnest({keys}) with ordinality k(n, i) join pg_attribute a on a.attrelid = {rel} and a.attnum = k.n)"
        )
    };
    format!(
        "select format('select %L as fk, %L as child, count(*) as orphans from %s c where (%s) is not null and not exists (select 1 from %s p where (%s) = (%s))', \
         conname, conrelid::regclass::text, conrelid::regclass, {cc}, confrelid::regclass, {pc}, {cc}) \
         from pg_constraint where contype = 'f' and confrelid = {oid} order by conname",
        cc = cols("conkey", "conrelid", "c"),
        pc = cols("confkey", "confrelid", "p"),
    )
}

impl PostRepair {
    /// The statement, with the name as planned (`REINDEX INDEX public.t_pkey`).
    pub fn statement(&self) -> String {
        self.what.statement(&self.relation, self.relation_oid)
    }
    /// In words, for plan and review (apply prints the statement itself).
    pub fn describe(&self) -> String {
        match self.what {
            PostRepairKind::CheckReferences => {
                format!("count the rows whose foreign keys reference removed rows of {} (apply prints the statement)", self.relation)
            }
            _ => format!("{};", self.statement()),
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct NotRepairable {
    pub code: String,
    pub title: String,
    pub reason: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Cluster {
    pub system_identifier: String,
    pub major: u32,
    pub pg_control_sha256: String,
    pub data_directory: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    pub format: u32,
    pub tool: String,
    /// The only field that differs between two plans of the same state and options.
    pub created_at: String,
    pub cluster: Cluster,
    pub options: PlanOptions,
    pub findings: Vec<Answered>,
    pub actions: Vec<Action>,
    pub not_repairable: Vec<NotRepairable>,
    /// What the server must do once it runs after apply (REINDEX, REFRESH): rehearse does
    /// it on the copy; after apply, the DBA does (apply prints the statements).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_repair: Vec<PostRepair>,
}

/// Why a plan file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanFileError {
    /// Not JSON of a plan, or of another plan format version.
    #[error("{0}")]
    NotAPlan(String),
    /// A plan, but with something no plan made by `pgsalvage plan` holds (a path leaving the
    /// data directory, an unbounded range): refused for safety.
    #[error("{0}")]
    Invalid(String),
}

/// Why [`Plan::validate`] refused a plan: the action (or finding) it is about, and what is
/// wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{whose}: {reason}")]
pub struct PlanInvalid {
    /// "action a3" or "finding pg-xact-missing".
    pub whose: String,
    pub reason: String,
}

impl Plan {
    /// Read a plan file: JSON of the expected shape, this format version, and every field
    /// a hostile or hand-edited plan could abuse checked ([`Plan::validate`]). `label` names
    /// the file in errors.
    pub fn from_json(bytes: &[u8], label: &str) -> std::result::Result<Plan, PlanFileError> {
        let p: Plan = serde_json::from_slice(bytes).map_err(|e| PlanFileError::NotAPlan(format!("{label}: not a pgsalvage plan: {e}")))?;
        if p.format != FORMAT_VERSION {
            return Err(PlanFileError::NotAPlan(format!("{label}: plan format {} is not supported (this pgsalvage reads {FORMAT_VERSION})", p.format)));
        }
        p.validate().map_err(|e| PlanFileError::Invalid(format!("{label}: {e}")))?;
        Ok(p)
    }

    /// Refuse what no plan made by `pgsalvage plan` holds: paths leaving the data directory,
    /// WAL names that are not WAL names, ranges that would make apply allocate without
    /// bound, offsets that cannot be on a page.
    pub fn validate(&self) -> std::result::Result<(), PlanInvalid> {
        let mut ids = std::collections::BTreeSet::new();
        for a in &self.actions {
            let at = |reason: String| PlanInvalid { whose: format!("action {}", a.id), reason };
            if !ids.insert(a.id.as_str()) {
                return Err(at("the id appears twice".into()));
            }
            if !is_inside_relative(&a.target.path) {
                return Err(at(format!("target {:?} is not a plain path inside the data directory", a.target.path)));
            }
            if !matches!(a.precondition.scope.as_str(), "block" | "file" | "absent") {
                return Err(at(format!("precondition scope {:?} is not block, file or absent", a.precondition.scope)));
            }
            if let Some(h) = &a.precondition.sha256 {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(at("precondition sha256 is not 64 hex digits".into()));
                }
            }
            let block_action = matches!(
                a.kind,
                ActionKind::FreezeTuples { .. }
                    | ActionKind::KillTuples { .. }
                    | ActionKind::ClearHintBits { .. }
                    | ActionKind::RepairChains { .. }
                    | ActionKind::NullAttributes { .. }
                    | ActionKind::FixToastPointers { .. }
                    | ActionKind::RestorePointers { .. }
                    | ActionKind::ClearVisibilityMap { .. }
                    | ActionKind::RebuildPageHeader { .. }
                    | ActionKind::ZeroPage { .. }
                    | ActionKind::RestorePage { .. }
                    | ActionKind::AcceptChecksum { .. }
                    | ActionKind::SetPageLsn { .. }
            );
            if block_action != (a.target.block.is_some() && a.precondition.scope == "block") {
                return Err(at("a page action needs a target block and a block precondition (and only page actions have them)".into()));
            }
            match &a.kind {
                // MaxHeapTuplesPerPage for the largest block size (32 kB) is 1,291.
                ActionKind::FreezeTuples { offnums } | ActionKind::KillTuples { offnums } | ActionKind::ClearHintBits { offnums }
                    if offnums.is_empty() || offnums.len() > 2048 || offnums.iter().any(|&o| o == 0 || o > 2048) =>
                {
                    return Err(at("tuple offsets must be 1..=2048, at least one and at most 2048 of them".into()));
                }
                ActionKind::RepairChains { items } if items.is_empty() || items.len() > 2048 || items.iter().any(|&(o, _)| o == 0 || o > 2048) => {
                    return Err(at("mended links must be items 1..=2048, at least one and at most 2048 of them".into()));
                }
                ActionKind::NullAttributes { items, columns }
                    if items.is_empty()
                        || items.len() > 2048
                        || columns.is_empty()
                        || columns.len() > 1664
                        || items.iter().any(|(o, a)| *o == 0 || *o > 2048 || a.is_empty() || a.iter().any(|&n| n == 0 || n as usize > columns.len())) =>
                {
                    return Err(at("attributes set NULL must be items 1..=2048, each with attnums among the table's columns (at most 1664)".into()));
                }
                ActionKind::FixToastPointers { items, columns }
                    if items.is_empty()
                        || items.len() > 2048
                        || columns.is_empty()
                        || columns.len() > 1664
                        || items.iter().any(|&(o, a, m)| o == 0 || o > 2048 || a == 0 || a as usize > columns.len() || m.is_some_and(|m| m > 1)) =>
                {
                    return Err(at("mended TOAST pointers must be items 1..=2048, attnums among the table's columns (at most 1664), methods 0 or 1".into()));
                }
                ActionKind::RestorePointers { items }
                    if items.is_empty() || items.len() > 2048 || items.iter().any(|&(o, off, len)| o == 0 || o > 2048 || off as u32 + len as u32 > 32768) =>
                {
                    return Err(at("restored pointers must be items 1..=2048 with offset and length inside a 32 kB page".into()));
                }
                ActionKind::SynthesizeXact { pages, first_xid, last_xid, committed, .. } => {
                    // At most one segment (32 pages) of the largest block size: 4 Mi xids.
                    let span = last_xid.wrapping_sub(*first_xid) as u64 + 1;
                    if *pages == 0 || *pages > SLRU_PAGES_PER_SEGMENT || span > u64::from(*pages) * 32768 * 4 {
                        return Err(at(format!("{pages} pages cannot hold xids {first_xid}..={last_xid}")));
                    }
                    if committed.len() > 1 << 20 {
                        return Err(at("more than 1,048,576 committed ranges".into()));
                    }
                    if let ActionKind::SynthesizeXact { policy_rows, .. } = &a.kind {
                        if policy_rows.len() > MAX_POLICY_ROWS
                            || policy_rows.iter().any(|(f, _, o, _, w)| !is_inside_relative(f) || *o == 0 || *o > 2048 || (w != "xmin" && w != "xmax"))
                        {
                            return Err(at(format!(
                                "policy rows must be at most {MAX_POLICY_ROWS} relation items (1..=2048) inside the data directory, each naming xmin or xmax"
                            )));
                        }
                    }
                }
                ActionKind::RestorePage { image, .. } if a.target.block.is_none() || image.len() > 2 * 32768 || image.len() < 2 * 1024 => {
                    return Err(at("a restored page must target a block and hold one page image (1 to 32 kB)".into()));
                }
                ActionKind::RebuildWalSegment { sha256, .. }
                    if sha256.len() != 64 || !a.target.path.strip_prefix("pg_wal/").is_some_and(crate::format::wal::segment::is_wal_file_name) =>
                {
                    return Err(at(format!("a rebuilt WAL segment must go to pg_wal/<segment name> ({:?}), with a sha256", a.target.path)));
                }
                ActionKind::RestoreWalSegment { source, sha256, .. }
                    if !source.starts_with('/')
                        || source.split('/').any(|c| c == ".." || c == ".")
                        || source.contains('\0')
                        || sha256.len() != 64
                        || !a.target.path.strip_prefix("pg_wal/").is_some_and(crate::format::wal::segment::is_wal_file_name) =>
                {
                    return Err(at(format!(
                        "a WAL segment put back must come from an absolute plain path ({source:?}), with a sha256, into pg_wal/<segment name> ({:?})",
                        a.target.path
                    )));
                }
                ActionKind::RelocateWal { to } if !to.starts_with('/') || to.split('/').any(|c| c == ".." || c == ".") || to.contains('\0') => {
                    return Err(at(format!("new WAL location {to:?} is not an absolute plain path")));
                }
                ActionKind::ResetWal { wal_file, moves, overrides, .. } => {
                    if let Some(r) = wal_names_refusal(wal_file, moves) {
                        return Err(at(r));
                    }
                    if let Some(w) = &overrides.wal_file {
                        if !crate::format::wal::segment::is_wal_file_name(w) {
                            return Err(at(format!("{w:?} is not a WAL file name")));
                        }
                    }
                }
                ActionKind::RebuildControl { wal_file, moves, .. } => {
                    if let Some(r) = wal_names_refusal(wal_file, moves) {
                        return Err(at(r));
                    }
                }
                ActionKind::FixControlCrc { .. } | ActionKind::WriteControl { .. } if a.target.path != crate::datadir::CONTROL_PATH => {
                    return Err(at(format!("a pg_control action targets {:?}, not global/pg_control", a.target.path)));
                }
                ActionKind::WriteControl { image, .. } => {
                    control_image(image).map_err(|e| at(e.to_string()))?;
                }
                _ => {}
            }
        }
        for f in &self.findings {
            if let Some(x) = f.actions.iter().find(|x| !ids.contains(x.as_str())) {
                return Err(PlanInvalid { whose: format!("finding {}", f.code), reason: format!("names action {x}, which the plan does not hold") });
            }
        }
        Ok(())
    }
}

/// A relative path of plain components (no `..`, `.`, empty component or NUL).
pub fn is_inside_relative(path: &str) -> bool {
    !path.is_empty() && !path.starts_with('/') && path.split('/').all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains('\0'))
}

/// Why the WAL file and moved files of a reset or rebuild are refused, if they are (the
/// caller says which action it is).
fn wal_names_refusal(wal_file: &str, moves: &[String]) -> Option<String> {
    if !crate::format::wal::segment::is_wal_file_name(wal_file) {
        return Some(format!("{wal_file:?} is not a WAL file name"));
    }
    moves.iter().find(|m| !m.starts_with("pg_wal/") || !is_inside_relative(m)).map(|m| format!("moved file {m:?} is not inside pg_wal"))
}

pub fn sha256_hex(b: &[u8]) -> String {
    format!("{:x}", Sha256::digest(b))
}

pub fn block_bytes(dd: &DataDir, path: &str, block: u32, bs: usize, blocks_per_segment: u32) -> Option<Vec<u8>> {
    let b = dd.read(path).ok()?;
    let i = (block % blocks_per_segment) as usize;
    b.get(i * bs..(i + 1) * bs).map(|s| s.to_vec())
}

/// The most actions one plan may hold (a sane size: a relation of 100,000 damaged pages is
/// a restore from backup, not a salvage plan).
pub const MAX_ACTIONS: usize = 100_000;

/// What the plan records as pg_control's sha256 when the file does not exist.
pub const ABSENT: &str = "absent";

/// Why a write-control action's image is not a pg_control the server accepts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ControlImageError {
    #[error("the pg_control image is not hex")]
    NotHex,
    #[error("the pg_control image is {0} bytes, more than {max}", max = crate::format::control::CONTROL_FILE_SIZE)]
    TooLong(usize),
    #[error("the pg_control image does not decode: {0}")]
    Decode(crate::format::FormatError),
    #[error("the pg_control image has {field} {got}, expected {want}")]
    Refused { field: String, got: String, want: String },
}

/// The 8192-byte pg_control of a write-control action: the image, zero-padded, which must
/// decode with a right CRC and values the server accepts.
pub fn control_image(image: &str) -> std::result::Result<Vec<u8>, ControlImageError> {
    let mut b = crate::format::bytes::from_hex(image).ok_or(ControlImageError::NotHex)?;
    if b.len() > crate::format::control::CONTROL_FILE_SIZE {
        return Err(ControlImageError::TooLong(b.len()));
    }
    b.resize(crate::format::control::CONTROL_FILE_SIZE, 0);
    let c = crate::format::control::ControlFile::parse(&b).map_err(ControlImageError::Decode)?;
    if let Some((f, want, got)) = c.sanity_problems().into_iter().next() {
        return Err(ControlImageError::Refused { field: f.to_string(), got: got.to_string(), want: want.to_string() });
    }
    Ok(b)
}

/// Why an action's new bytes cannot be computed from the bytes there now.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NewBytesError {
    #[error("{0}: the target is missing")]
    Missing(String),
    #[error("{path}: the target block is {len} bytes, not one {bs}-byte page")]
    NotAPage { path: String, len: usize, bs: usize },
    #[error("{0}")]
    Edit(#[from] bytes::EditError),
    #[error("{0}")]
    Format(#[from] crate::format::FormatError),
    #[error("{0}")]
    ControlImage(#[from] ControlImageError),
    #[error("pg_control is too short for its CRC")]
    ShortControl,
    #[error("the file to create exists already")]
    Exists,
    #[error("{path}: {reason}")]
    Source { path: String, reason: String },
    #[error("{0}")]
    Reset(#[from] reset::ResetError),
}

/// The visibility map block covering a heap block (file and block), when the map has it:
/// a repair that changes tuples must not leave the page marked all-visible/all-frozen.
fn vm_block(dd: &DataDir, heap_file: &str, block: u32, bs: usize, bps: u32) -> Option<(String, u32)> {
    let vm = format!("{}_vm", heap_file.split('.').next().unwrap_or(heap_file));
    let vblk = bytes::vm_block_of(block, bs);
    block_bytes(dd, &vm, vblk, bs, bps).map(|_| (vm, vblk))
}

fn vm_effect(block: u32) -> String {
    format!("heap block {block} no longer marked all-visible/all-frozen; the next VACUUM sets it again")
}

/// The precondition of an action as the data directory is now.
pub fn current_precondition(dd: &DataDir, t: &Target, scope: &str, bs: usize, blocks_per_segment: u32) -> Precondition {
    let sha256 = match (scope, t.block) {
        ("block", Some(b)) => block_bytes(dd, &t.path, b, bs, blocks_per_segment).map(|x| sha256_hex(&x)),
        // "absent" holds while the file does not exist: a file that appeared since is drift.
        ("absent", _) => {
            std::fs::symlink_metadata(dd.path(&t.path)).ok().map(|_| dd.read(&t.path).map(|x| sha256_hex(&x)).unwrap_or_else(|_| "present".into()))
        }
        _ if dd.path(&t.path).is_dir() => listing(&dd.path(&t.path)).map(|l| sha256_hex(l.as_bytes())),
        _ => dd.read(&t.path).ok().map(|x| sha256_hex(&x)),
    };
    Precondition { scope: scope.to_string(), sha256 }
}

/// A directory (pg_wal, for relocate-wal) as text: one "path<TAB>size<TAB>sha256" line per
/// file below it, sorted; its sha256 binds the action to what it moves (names, sizes and
/// contents), wherever the directory is (a copy of it binds the same).
fn listing(dir: &std::path::Path) -> Option<String> {
    fn walk(d: &std::path::Path, rel: &str, out: &mut Vec<String>) -> Option<()> {
        for e in std::fs::read_dir(d).ok()?.flatten() {
            let name = format!("{rel}{}", e.file_name().to_string_lossy());
            let m = e.metadata().ok()?;
            if m.is_dir() {
                walk(&e.path(), &format!("{name}/"), out)?;
            } else {
                let digest = std::fs::read(e.path()).ok().map(|b| sha256_hex(&b))?;
                out.push(format!("{name}\t{}\t{digest}\n", m.len()));
            }
        }
        Some(())
    }
    let mut lines = Vec::new();
    walk(dir, "", &mut lines)?;
    lines.sort();
    Some(lines.concat())
}

/// Build the plan for a stopped data directory.
pub fn plan(dd: &DataDir, opts: &PlanOptions) -> Result<Plan> {
    let ev = crate::check::control::examine(dd);
    let Some(c) = ev.trusted.as_ref().map(|c| c.with_usable_geometry().0) else {
        if opts.reset_wal {
            return plan_rebuild(dd, opts, chrono::Utc::now().timestamp());
        }
        return Err(Error::Refused {
            message: format!(
                "pg_control cannot be read and cannot be rebuilt from evidence ({}): the only repair left is to rebuild it from guesses and reset WAL",
                ev.not_rebuildable.clone().unwrap_or_default()
            ),
            hint: "run `pgsalvage diagnose` to see why, then `pgsalvage plan --reset-wal` to plan the rebuild".into(),
        });
    };
    let dopts = DiagnoseOptions {
        wal_archives: opts.wal_archive.iter().map(std::path::PathBuf::from).collect(),
        page_sources: opts.page_source.iter().map(std::path::PathBuf::from).collect(),
        ..Default::default()
    };
    let d = diagnose::diagnose_with(dd, &dopts, &crate::check::Quiet, ev.clone())?;
    let control = dd.read(crate::datadir::CONTROL_PATH).ok();
    let now = chrono::Utc::now().timestamp();
    let mut answered = Vec::new();
    let mut not_repairable = Vec::new();
    let wanted = |code: Code| opts.only.is_empty() || opts.only.iter().any(|o| o == code.as_str());
    // pg_control is damaged and cannot be rebuilt from evidence (no checkpoint record):
    // NextXID, oldestXID and the multixact counters may be the damage. Findings judged
    // against them (lost pg_xact ranges, "never assigned" xids) are not acted on: one
    // flipped byte of NextXID would otherwise plan gigabytes of invented pg_xact.
    let counters_suspect = ev.suspect();
    const FROM_COUNTERS: &str = "judged against NextXID, oldestXID and the multixact counters of a damaged pg_control that no checkpoint record in WAL confirms: they may be the damage, not the data. Repair pg_control first (its own finding), then plan again";
    let mut p = repairs::Planner::new(dd, opts, &c, &d, &ev, control.as_deref(), now);
    for f in &d.findings {
        if !wanted(f.code) || f.severity == crate::finding::Severity::Info {
            continue;
        }
        // The repairs not chosen: all but the first (least loss), except for a WAL reset,
        // which is chosen over putting the WAL back only because that is not in our hands.
        // Likewise moving pg_wal is chosen over making room in place when --wal-dir is given.
        let restorable = f.evidence.iter().any(|e| e.starts_with(crate::check::COPY_ELSEWHERE));
        let chosen_reset = matches!(f.code, Code::WalLost | Code::WalCheckpointUnreadable) && opts.reset_wal && !restorable;
        let chosen_move = f.code == Code::NotCorruptionWalDiskFull && opts.wal_dir.is_some();
        // A table's missing file: putting it back loses least but only the DBA can; the plan
        // builds the empty file.
        let chosen_empty = f.code == Code::RelationFileMissing;
        let alternatives: Vec<Alternative> = f
            .repairs
            .iter()
            .enumerate()
            .filter(|(i, r)| match (chosen_reset, chosen_move, chosen_empty) {
                (true, _, _) => !r.action.starts_with("reset WAL"),
                (_, true, _) => !r.action.starts_with("move pg_wal"),
                (_, _, true) => !r.action.starts_with("an empty file") && !r.action.starts_with("REINDEX"),
                _ => *i > 0,
            })
            .map(|(_, r)| Alternative { action: r.action.clone(), loses: r.loses.clone() })
            .collect();
        // A finding the server itself repairs once it runs (REINDEX) is answered too.
        let post_before = p.post_repair.len();
        let answer: repairs::Answer = if counters_suspect
            && matches!(f.code, Code::XactStatusLost | Code::TupleXidNeverAssigned | Code::TupleXidBeforeHorizon | Code::TupleMultixactOutOfRange)
        {
            Err(FROM_COUNTERS.into())
        } else {
            // One function per kind of finding (repairs.rs). No `_` arm: a new diagnose code
            // does not compile until it is handled here.
            let image = match (f.at.file.as_deref(), f.at.block) {
                (Some(file), Some(block)) => d.page_images.get(&(file.to_string(), block)),
                _ => None,
            };
            if let Some(img) = image {
                Ok(p.restore_page(f, img))
            } else {
                match f.code {
                Code::TupleXidNeverAssigned | Code::TupleXidBeforeHorizon | Code::TupleMultixactOutOfRange => p.freeze_tuples(f),
                Code::TuplePointerHidesRow => p.restore_pointers(f),
                Code::TuplePointerInvalid => p.kill_pointers(f),
                Code::TupleHeaderInvalid => p.kill_damaged_headers(f),
                Code::PageInvalid => p.page_invalid(f),
                Code::PageLsnPastWal => p.page_lsn(f),
                Code::PageChecksumFailure => p.accept_checksum(f),
                Code::XactStatusLost => p.synthesize_xact(f),
                Code::NotCorruptionWalDiskFull => p.relocate_wal(f),
                Code::PostmasterPidStale => p.move_aside(f, "postmaster.pid", "postmaster.pid moves to the rollback store".into()),
                Code::WalForeignFile => match &f.at.file {
                    Some(file) => p.move_aside(f, file, format!("{file} moves to the rollback store; recovery no longer meets it")),
                    None => Ok(vec![]),
                },
                // A whole copy of the missing segment somewhere: put back, nothing lost.
                Code::WalLost | Code::WalCheckpointUnreadable => match p.restore_wal(f).and_then(|ids| if ids.is_empty() { p.rebuild_wal(f) } else { Ok(ids) }) {
                    Ok(ids) if ids.is_empty() && opts.reset_wal => p.reset_wal(f)?,
                    Ok(ids) if ids.is_empty() => Err("needs a WAL reset (--reset-wal); put the missing WAL back first if it exists anywhere (`--wal-archive DIR` finds it in an archive): that loses nothing".into()),
                    other => other,
                },
                Code::ControlCrcMismatch | Code::ControlValuesInvalid | Code::ControlUnreadable => p.write_control(f),
                Code::OwnershipWrong => Err("a plan does not change ownership: run the chown the finding shows, as root".into()),
                Code::TupleHintContradiction => p.clear_hint_bits(f),
                Code::TupleChainBroken => p.repair_chains(f),
                Code::TupleAttributeInvalid | Code::TupleToastValueMissing => p.null_or_kill_values(f),
                Code::RelationFileDamaged | Code::WalFileWrongSize => Err(format!("no repair is built for {} yet", f.code)),
                Code::RelationFileMissing | Code::IndexPageInvalid | Code::SequencePageInvalid => p.relation_file_missing(f),
                // Names fall back to paths where catalog pages are damaged; that damage has
                // findings of its own, which the plan answers.
                Code::CatalogUnreadable => Ok(vec![]),
                // Information, not damage (skipped above).
                Code::PostmasterPidLeft | Code::ClusterState => Ok(vec![]),
            }
            }
        };
        match answer {
            Ok(ids) if !ids.is_empty() || p.post_repair.len() > post_before => {
                answered.push(Answered { code: f.code.to_string(), title: f.title.clone(), actions: ids, alternatives })
            }
            Ok(_) => {}
            Err(reason) => not_repairable.push(NotRepairable { code: f.code.to_string(), title: f.title.clone(), reason }),
        }
    }
    let actions = p.actions;
    let mut post_repair = p.post_repair;
    post_repair.sort_by_key(|r| r.what);
    // Bounded work: a plan this large from one diagnosis means its premise is likely wrong
    // (a damaged counter judged every tuple), not that the cluster needs that many changes.
    if actions.len() > MAX_ACTIONS {
        return Err(Error::Refused {
            message: format!("the plan would hold {} actions, more than {MAX_ACTIONS}: that many changes from one diagnosis point at a wrong premise (see the first error of `pgsalvage diagnose`), not at that much damage", actions.len()),
            hint: "repair the root cause first, or narrow the plan to one finding with --only CODE".into(),
        });
    }
    Ok(Plan {
        format: FORMAT_VERSION,
        tool: format!("pgsalvage {}", env!("CARGO_PKG_VERSION")),
        created_at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cluster: Cluster {
            system_identifier: c.system_identifier.to_string(),
            major: c.major.number(),
            pg_control_sha256: control.as_deref().map(sha256_hex).unwrap_or_else(|| ABSENT.into()),
            data_directory: dd.absolute(),
        },
        options: opts.clone(),
        findings: answered,
        actions,
        not_repairable,
        post_repair,
    })
}

/// The WAL file name of the segment after the one holding `max` (the highest page LSN),
/// for a reset to start from.
fn past_page_lsn(c: &crate::format::control::ControlFile, max: Option<crate::format::types::Lsn>) -> Option<String> {
    let g = crate::format::wal::WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).ok()?;
    let m = max.filter(|m| m.0 > 0)?;
    Some(g.file_name(c.checkpoint.timeline_id, g.segno(m) + 1))
}

/// One action whose precondition no longer holds.
#[derive(Clone, Debug, Serialize)]
pub struct Drift {
    pub action: String,
    pub path: String,
    pub block: Option<u32>,
    pub planned: Option<String>,
    pub now: Option<String>,
}

/// Check every precondition against the data directory as it is now.
pub fn drift(dd: &DataDir, p: &Plan) -> Result<(bool, Vec<Drift>)> {
    let (bs, bps) = same_cluster(dd, p)?;
    let same_control = dd.read(crate::datadir::CONTROL_PATH).map(|b| sha256_hex(&b)).unwrap_or_else(|_| ABSENT.into()) == p.cluster.pg_control_sha256;
    let mut out = Vec::new();
    for a in &p.actions {
        let now = current_precondition(dd, &a.target, &a.precondition.scope, bs, bps);
        if now.sha256 != a.precondition.sha256 {
            out.push(Drift {
                action: a.id.clone(),
                path: a.target.path.clone(),
                block: a.target.block,
                planned: a.precondition.sha256.clone(),
                now: now.sha256,
            });
        }
    }
    Ok((same_control, out))
}

/// Refuse a plan made for another cluster (without hashing any target: apply asks this
/// first, so that a foreign plan is named before its snapshot is judged); the directory's
/// block size and blocks per segment.
pub fn same_cluster(dd: &DataDir, p: &Plan) -> Result<(usize, u32)> {
    let rebuild = p.actions.iter().find_map(|a| match &a.kind {
        ActionKind::RebuildControl { guessed, .. } => Some(guessed.clone()),
        _ => None,
    });
    // A plan that rebuilds pg_control was made for a directory whose pg_control is
    // unreadable: its identity comes from the guessed values (WAL headers).
    let (sysid, bs, bps) = match (crate::check::trusted_control(dd), &rebuild) {
        (Ok(c), _) => (c.system_identifier.to_string(), c.database_block_size as usize, c.blocks_per_segment),
        (Err(_), Some(g)) => (g.system_identifier.clone(), g.block_size as usize, (1u32 << 30) / g.block_size),
        (Err(e), None) => return Err(e),
    };
    if sysid != p.cluster.system_identifier {
        return Err(Error::Refused {
            message: format!("the plan is for cluster {} but {} is cluster {}", p.cluster.system_identifier, dd.root().display(), sysid),
            hint: "review the plan against the data directory it was made for".into(),
        });
    }
    Ok((bs, bps))
}

/// Refuse a plan for another cluster, or one whose preconditions no longer hold.
pub fn ensure_fresh(dd: &DataDir, p: &Plan) -> Result<()> {
    let (same_control, drift) = drift(dd, p)?;
    if !drift.is_empty() || !same_control {
        return Err(Error::Refused {
            message: format!(
                "the data directory changed since the plan was made: {} stale{}",
                count(drift.len() as u64, "action"),
                if same_control { "" } else { ", pg_control differs" }
            ),
            hint: "run `pgsalvage review PLAN -D DATADIR` to see which, then make a new plan".into(),
        });
    }
    Ok(())
}

/// Refuse planning while a server runs.
pub fn ensure_stopped(dd: &DataDir) -> Result<()> {
    if let Postmaster::Alive { pid } = dd.postmaster() {
        return Err(Error::Refused {
            message: format!("a postmaster (pid {pid}) is running on {}", dd.root().display()),
            hint: "stop the server first (pg_ctl stop -m fast)".into(),
        });
    }
    Ok(())
}

/// The pg_xact geometry helpers the planner and evidence share.
pub fn xact_pages_needed(g: &ClogGeometry, segno: u32, last_xid: Xid) -> u32 {
    if g.segment_of(last_xid) == segno {
        g.page_of(last_xid) % SLRU_PAGES_PER_SEGMENT + 1
    } else {
        SLRU_PAGES_PER_SEGMENT
    }
}

/// The new bytes of a block or file action, from the target's current bytes (the block,
/// or the whole file; None when absent) and the action's parameters. File moves
/// (RelocateWal, MoveAside) have no new bytes: Ok(None).
pub fn new_bytes(a: &Action, old: Option<&[u8]>, c: &crate::format::control::ControlFile) -> std::result::Result<Option<Vec<u8>>, NewBytesError> {
    let checksums = c.data_page_checksum_version > 0;
    let blk = a.target.block.unwrap_or(0);
    let bs = c.database_block_size as usize;
    let page = || match old {
        None => Err(NewBytesError::Missing(a.target.path.clone())),
        Some(p) if p.len() != bs => Err(NewBytesError::NotAPage { path: a.target.path.clone(), len: p.len(), bs }),
        Some(p) => Ok(p),
    };
    let control = || old.ok_or_else(|| NewBytesError::Missing(a.target.path.clone()));
    Ok(Some(match &a.kind {
        ActionKind::FreezeTuples { offnums } => bytes::freeze_tuples(page()?, offnums, blk, checksums)?,
        ActionKind::ClearHintBits { offnums } => bytes::clear_hint_bits(page()?, offnums, blk, checksums)?,
        ActionKind::RepairChains { items } => bytes::repair_chains(page()?, items, blk, checksums)?,
        ActionKind::FixToastPointers { items, columns } => bytes::fix_toast_pointers(page()?, items, columns, c.major.number(), blk, checksums)?,
        ActionKind::NullAttributes { items, columns } => {
            bytes::null_attributes(page()?, items, columns, c.major.number(), if c.max_data_alignment == 4 { 4 } else { 8 }, blk, checksums)?
        }
        ActionKind::KillTuples { offnums } => bytes::kill_tuples(page()?, offnums, blk, checksums)?,
        ActionKind::RestorePointers { items } => bytes::restore_pointers(page()?, items, blk, checksums)?,
        ActionKind::ClearVisibilityMap { heap_block } => bytes::clear_vm_bits(page()?, *heap_block, blk, checksums),
        ActionKind::RebuildPageHeader { header } => bytes::rebuild_header(page()?, header, blk, checksums),
        ActionKind::ZeroPage { .. } => vec![0u8; c.database_block_size as usize],
        ActionKind::RestorePage { image, lsn, .. } => {
            let mut p = crate::format::bytes::from_hex(image).filter(|p| p.len() == bs).ok_or(NewBytesError::NotAPage {
                path: a.target.path.clone(),
                len: image.len() / 2,
                bs,
            })?;
            p[0..4].copy_from_slice(&((lsn >> 32) as u32).to_le_bytes());
            p[4..8].copy_from_slice(&(*lsn as u32).to_le_bytes());
            bytes::set_checksum(&mut p, blk, checksums);
            p
        }
        // The checksum of the page as it is when the step runs: `checksum` is the value at
        // planning time, and an earlier action of the plan may have changed the page since.
        ActionKind::SetPageLsn { lsn } => {
            let mut p = page()?.to_vec();
            p[0..4].copy_from_slice(&((lsn >> 32) as u32).to_le_bytes());
            p[4..8].copy_from_slice(&(*lsn as u32).to_le_bytes());
            bytes::set_checksum(&mut p, blk, checksums);
            p
        }
        ActionKind::AcceptChecksum { .. } => {
            let mut p = page()?.to_vec();
            let sum = crate::format::checksum::page_checksum(&p, blk);
            p[8..10].copy_from_slice(&sum.to_le_bytes());
            p
        }
        ActionKind::WriteControl { image, .. } => control_image(image)?,
        ActionKind::FixControlCrc { .. } => {
            let mut b = control()?.to_vec();
            let major = crate::format::control::ControlFile::detect_major(&b)?;
            let off = crate::format::control::crc_offset(major);
            let crc = crate::format::control::compute_crc(major, &b).ok_or(NewBytesError::ShortControl)?;
            b.get_mut(off..off + 4).ok_or(NewBytesError::ShortControl)?.copy_from_slice(&crc.to_le_bytes());
            b
        }
        ActionKind::SynthesizeXact { pages, first_xid, last_xid, committed, .. } => {
            let mut statuses = Vec::new();
            let mut x = *first_xid;
            loop {
                let c_ = committed.iter().any(|(a, b)| x.wrapping_sub(*a) <= b.wrapping_sub(*a));
                statuses.push((x, if c_ { crate::format::xact::XactStatus::Committed } else { crate::format::xact::XactStatus::Aborted }));
                if x == *last_xid {
                    break;
                }
                x = x.wrapping_add(1);
            }
            bytes::clog_segment(old.unwrap_or(&[]), *pages, c.database_block_size, &statuses)?
        }
        ActionKind::ResetWal { overrides, time, .. } => {
            let (old_c, _) = crate::format::control::ControlFile::parse_lenient(control()?)?;
            reset::compute(&old_c, &reset::Listing::default(), overrides, *time)?.control.encode()
        }
        ActionKind::RebuildControl { guessed, wal_file, time, .. } => {
            let rebuilt = reset::control_from(guessed, *time)?;
            let o = reset::ResetOverrides { wal_file: Some(wal_file.clone()), ..Default::default() };
            reset::compute(&rebuilt, &reset::Listing::default(), &o, *time)?.control.encode()
        }
        ActionKind::RelocateWal { .. } | ActionKind::MoveAside => return Ok(None),
        ActionKind::RebuildWalSegment { checkpoint, switch, online, sha256 } => {
            if old.is_some() {
                return Err(NewBytesError::Exists);
            }
            let g = crate::format::wal::WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size)?;
            let bytes = crate::format::wal::build::checkpoint_segment(
                g,
                c.major,
                c.system_identifier,
                &c.checkpoint,
                *online,
                c.wal_level,
                Lsn(*checkpoint),
                Lsn(*switch),
            )?;
            let got = sha256_hex(&bytes);
            if got != *sha256 {
                return Err(NewBytesError::Source {
                    path: a.target.path.clone(),
                    reason: format!("rebuilt from pg_control as it is now, the segment hashes to {got}, not the planned {sha256}"),
                });
            }
            bytes
        }
        ActionKind::RestoreWalSegment { source, sha256, .. } => {
            if old.is_some() {
                return Err(NewBytesError::Exists);
            }
            let seg = c.bytes_per_wal_segment as u64;
            let bytes = crate::inventory::read_wal_file(std::path::Path::new(source), seg + 1)
                .map_err(|e| NewBytesError::Source { path: source.clone(), reason: format!("cannot be read: {e}") })?;
            let got = sha256_hex(&bytes);
            if bytes.len() as u64 != seg || got != *sha256 {
                return Err(NewBytesError::Source {
                    path: source.clone(),
                    reason: format!("its content changed since the plan was made ({} bytes, sha256 {got}; planned {sha256})", bytes.len()),
                });
            }
            bytes
        }
        ActionKind::CreateEmptyFile => {
            if old.is_some() {
                return Err(NewBytesError::Exists);
            }
            Vec::new()
        }
    }))
}

/// Rebuild an unreadable pg_control from the directory (system identifier, segment size
/// and timeline from WAL headers, block size and checksums from relation pages, next ids
/// from pg_xact, pg_multixact and relfilenodes). Follow it with a WAL reset.
pub fn rebuild_control(dd: &DataDir) -> Result<(crate::format::control::ControlFile, Vec<reset::Sourced>)> {
    let major = dd.pg_version()?;
    let list = |p: &str| dd.list(p);
    let l = reset::Listing {
        wal: list("pg_wal")?,
        archive_status: vec![],
        summaries: vec![],
        xact: list("pg_xact")?,
        multi_offsets: list("pg_multixact/offsets")?,
        multi_members: list("pg_multixact/members")?,
    };
    let mut e = reset::DirEvidence::default();
    // The newest WAL segment (highest timeline, then segment) with a valid long header.
    let mut wal: Vec<&String> = l.wal.iter().filter(|n| crate::format::wal::segment::is_wal_file_name(n)).collect();
    wal.sort();
    for name in wal.iter().rev() {
        let Ok(b) = dd.read(&format!("pg_wal/{name}")) else { continue };
        if let Ok(h) = crate::format::wal::WalPageHeader::parse(&b) {
            if let (Some(lh), true) = (h.long, h.magic == major.wal_page_magic()) {
                e.wal_header = Some((lh.sysid, lh.seg_size, lh.xlog_blcksz, h.tli));
                break;
            }
        }
    }
    // Block size and checksums from pg_class's first page in template1.
    for db in dd.list("base")? {
        for name in dd.list(&format!("base/{db}"))? {
            if let Some((node, "main", 0)) = crate::datadir::RelFile::parse_name(&name) {
                e.max_relfilenode = e.max_relfilenode.max(node);
            }
        }
    }
    if let Ok(b) = dd.read("base/1/1259") {
        if let Ok(h) = crate::format::page::PageHeader::parse(&b) {
            let bs = h.page_size();
            if bs >= 1024 && b.len() >= bs {
                e.block_size = Some(bs as u32);
                let page = &b[..bs];
                e.checksums = Some(h.checksum != 0 && crate::format::checksum::page_checksum(page, 0) == h.checksum);
            }
        }
    }
    reset::guess_control(major, &l, &e, chrono::Utc::now().timestamp())
        .map_err(|m| Error::Refused { message: m.to_string(), hint: "put any WAL segment of this cluster back into pg_wal".into() })
}

/// Plan for a data directory whose pg_control cannot be read: rebuild it from guesses
/// (flagged loudly) and reset WAL on top, as one action.
fn plan_rebuild(dd: &DataDir, opts: &PlanOptions, now: i64) -> Result<Plan> {
    let (c, sources) = rebuild_control(dd)?;
    let (guessed, _) = {
        let l = reset::Listing {
            wal: vec![],
            archive_status: vec![],
            summaries: vec![],
            xact: dd.list("pg_xact")?,
            multi_offsets: dd.list("pg_multixact/offsets")?,
            multi_members: dd.list("pg_multixact/members")?,
        };
        let e = reset::DirEvidence {
            wal_header: Some((c.system_identifier, c.bytes_per_wal_segment, c.wal_block_size, c.checkpoint.timeline_id)),
            max_relfilenode: c.checkpoint.next_oid.saturating_sub(1),
            checksums: Some(c.data_page_checksum_version > 0),
            block_size: Some(c.database_block_size),
        };
        reset::guessed_values(c.major, &l, &e)
            .map_err(|e| Error::Refused { message: format!("cannot plan the rebuild: {e}"), hint: "see docs/reset.md".into() })?
    };
    let listing = reset::Listing {
        wal: dd.list("pg_wal")?.into_iter().filter(|n| n != "archive_status" && n != "summaries").collect(),
        archive_status: dd.list("pg_wal/archive_status")?,
        summaries: dd.list("pg_wal/summaries")?,
        ..Default::default()
    };
    // The new WAL starts past the highest page LSN too (read with the rebuilt geometry).
    let past_pages = past_page_lsn(&c, crate::check::max_page_lsn(dd, &c).ok());
    let r = reset::compute(&c, &listing, &reset::ResetOverrides { past_pages, ..Default::default() }, now).map_err(|e| Error::Refused {
        message: format!("cannot plan a WAL reset: {e}"),
        hint: "see docs/reset.md; the values can be given by hand with pg_resetwal".into(),
    })?;
    let target = Target { path: crate::datadir::CONTROL_PATH.into(), block: None, relation: None };
    let precondition = current_precondition(dd, &target, "file", c.database_block_size as usize, c.blocks_per_segment);
    let action = Action {
        id: "A1".into(),
        finding: Code::ControlUnreadable.to_string(),
        kind: ActionKind::RebuildControl { guessed, wal_file: r.segment_name.clone(), moves: r.moves.clone(), time: now, sources },
        target,
        precondition,
        effect: format!("GUESSED VALUES: pg_control rebuilt from what the directory shows (see sources), then WAL reset to {}", r.segment_name),
        data_loss: "every transaction that only WAL held; settings in pg_control (wal_level, max_connections, ...) return to defaults; the guesses may be wrong: rehearse first".into(),
        risk: Risk::High,
        expected_log: vec![],
    };
    Ok(Plan {
        format: FORMAT_VERSION,
        tool: format!("pgsalvage {}", env!("CARGO_PKG_VERSION")),
        created_at: chrono::DateTime::from_timestamp(now, 0).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cluster: Cluster {
            system_identifier: c.system_identifier.to_string(),
            major: c.major.number(),
            pg_control_sha256: dd.read(crate::datadir::CONTROL_PATH).map(|b| sha256_hex(&b)).unwrap_or_default(),
            data_directory: dd.absolute(),
        },
        options: opts.clone(),
        findings: vec![Answered {
            code: Code::ControlUnreadable.to_string(),
            title: "pg_control cannot be read".into(),
            actions: vec!["A1".into()],
            alternatives: vec![Alternative { action: "pg_resetwal -f with values guessed by hand".into(), loses: "the same, with worse guesses".into() }],
        }],
        actions: vec![action],
        not_repairable: vec![],
        post_repair: vec![],
    })
}
