//! `diagnose`: inspect + check + the tuple scan, correlated into findings that say, in the
//! words of the database itself, what broke, what it means, what doing nothing costs and
//! what each way out loses. Read-only.

pub mod images;
pub mod log;
pub mod storage;
pub mod toast;
pub mod tuples;
pub mod walloss;

use crate::catalog::Catalog;
use crate::check::{self, CheckOptions, CheckReport, Progress};
use crate::datadir::{DataDir, Postmaster, WAL_DIR};
use crate::error::{Error, Result};
use crate::finding::{Code as CheckCode, Finding as CheckFinding, Location, Severity};
use crate::format::control::{ControlFile, DbState};
use crate::format::types::Xid;
use crate::units::count;
use crate::units::human_size as size;
use log::{LogEvent, LogLine};
use serde::Serialize;
use std::collections::BTreeMap;
use tuples::{TupleProblem, TupleProblemKind};

crate::finding::finding_codes! {
    /// What `diagnose` concludes (docs/diagnose.md lists them); `plan` matches on every one.
    pub enum Code {
        NotCorruptionWalDiskFull = ("not-corruption-wal-disk-full", Error, "crash recovery cannot finish because pg_wal's file system is full: NOT corruption; make room or move pg_wal"),
        TupleXidNeverAssigned = ("tuple-xid-never-assigned", Error, "tuples name xids the cluster never assigned: damaged tuple data, not missing pg_xact"),
        TupleXidBeforeHorizon = ("tuple-xid-before-horizon", Error, "tuples carry unfrozen xids older than the freeze horizon (oldestXID)"),
        TupleMultixactOutOfRange = ("tuple-multixact-out-of-range", Error, "tuples name multixacts outside the cluster's multixact window"),
        TuplePointerInvalid = ("tuple-pointer-invalid", Error, "line pointers point outside the page or at garbage"),
        TuplePointerHidesRow = ("tuple-pointer-hides-row", Error, "line pointers marked unused or dead still point at intact tuples: rows no query sees"),
        TupleHeaderInvalid = ("tuple-header-invalid", Error, "a tuple's header contradicts its table or itself (more attributes than the table has, data not where t_hoff says): the row cannot be decoded"),
        TupleChainBroken = ("tuple-chain-broken", Error, "a page's update chains contradict themselves (a redirect to nowhere valid, a heap-only tuple nothing leads to, HOT flags the successor denies): index scans miss rows or find the wrong ones"),
        TupleAttributeInvalid = ("tuple-attribute-invalid", Error, "a tuple's attribute cannot be decoded (a length running past the tuple, an unknown TOAST tag) or contradicts itself (a compression method no server knows, a TOAST pointer naming another table): queries reading the row fail"),
        TupleToastValueMissing = ("tuple-toast-value-missing", Error, "a row's TOAST pointer leads to a value whose chunks are missing or damaged in its TOAST table (\"missing chunk number 0 for toast value ...\")"),
        TupleHintContradiction = ("tuple-hint-contradiction", Warning, "tuples carry hint-bit combinations the server never sets"),
        XactStatusLost = ("xact-status-lost", Error, "pg_xact pages holding the commit status of live xids are missing"),
        PageInvalid = ("page-invalid", Error, "a page the server rejects (invalid page in block N): header, or a new page with bytes set"),
        PageChecksumFailure = ("page-checksum-failure", Error, "a page's data checksum does not match its contents"),
        PageLsnPastWal = ("page-lsn-past-wal", Error, "a page's pd_lsn lies past the end of valid WAL: its next write makes every checkpoint fail"),
        IndexPageInvalid = ("index-page-invalid", Error, "an index page is not its access method's (the metapage's magic or version, a page id, flags, links past the index, btree siblings that disagree): the index is damaged; REINDEX rebuilds it from the table"),
        SequencePageInvalid = ("sequence-page-invalid", Error, "a sequence's page is not a sequence page (\"bad magic number in sequence\")"),
        RelationFileMissing = ("relation-file-missing", Error, "a relation the catalog lists has no file on disk: every query that reads it fails (could not open file ...)"),
        RelationFileDamaged = ("relation-file-damaged", Error, "a relation file is cut short, has a partial block, or a segment is missing between others"),
        WalLost = ("wal-lost", Error, "WAL needed from the REDO point is missing or damaged while valid WAL follows: recovery would stop early and lose what follows"),
        WalCheckpointUnreadable = ("wal-checkpoint-unreadable", Error, "the latest checkpoint record cannot be read: the server cannot start"),
        WalForeignFile = ("wal-foreign-file", Error, "a file in pg_wal belongs to another cluster or major, or carries another segment's addresses"),
        WalFileWrongSize = ("wal-file-wrong-size", Warning, "a WAL segment file is not the cluster's segment size"),
        ControlUnreadable = ("control-unreadable", Error, "global/pg_control is missing, short, zeroed or of no supported version; each field rebuilt from evidence"),
        ControlCrcMismatch = ("control-crc-mismatch", Error, "global/pg_control's CRC fails; each field checked against evidence"),
        ControlValuesInvalid = ("control-values-invalid", Error, "pg_control holds values PostgreSQL does not allow; each field checked against evidence"),
        PostmasterPidStale = ("postmaster-pid-stale", Warning, "postmaster.pid names a pid that now belongs to another process: the server refuses to start"),
        PostmasterPidLeft = ("postmaster-pid-left", Info, "postmaster.pid of a postmaster that no longer runs: harmless, the server replaces it"),
        ClusterState = ("cluster-state", Info, "the state in pg_control, what the next start will do, and how far WAL replay moves the counters"),
        OwnershipWrong = ("ownership-wrong", Warning, "the data directory belongs to root, or files in it belong to another user than the directory: the server refuses to start or cannot open them"),
        CatalogUnreadable = ("catalog-unreadable", Warning, "the system catalogs cannot be read offline: relations are named by file path"),
    }
}

/// How the title of a finding that forbids starting the cluster begins; such a finding is
/// listed first.
const DO_NOT_START: &str = "do not start this cluster";

#[derive(Clone, Debug, Serialize)]
pub struct Repair {
    /// What it does.
    pub action: String,
    /// What data it loses (or "nothing").
    pub loses: String,
    /// The plan issue ([5/9]) builds the repairs marked here first.
    pub least_loss: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub title: String,
    /// Where: the relation in the database's own words when the finding is about one, the
    /// file, block, offset, LSN and xid range (the same [`Location`] as check's findings).
    #[serde(flatten)]
    pub at: Location,
    pub explanation: String,
    pub if_nothing_is_done: String,
    pub repairs: Vec<Repair>,
    pub evidence: Vec<String>,
    /// Server log lines this finding explains.
    pub log: Vec<String>,
}

impl Finding {
    fn new(code: Code, title: impl Into<String>) -> Finding {
        let severity = code.severity();
        Finding {
            code,
            severity,
            title: title.into(),
            at: Location::default(),
            explanation: String::new(),
            if_nothing_is_done: String::new(),
            repairs: vec![],
            evidence: vec![],
            log: vec![],
        }
    }
    fn explain(mut self, e: impl Into<String>, nothing: impl Into<String>) -> Self {
        self.explanation = e.into();
        self.if_nothing_is_done = nothing.into();
        self
    }
    fn repair(mut self, action: impl Into<String>, loses: impl Into<String>, least: bool) -> Self {
        self.repairs.push(Repair { action: action.into(), loses: loses.into(), least_loss: least });
        self
    }
    fn with_check(mut self, f: &CheckFinding) -> Self {
        self.at = Location { relation: self.at.relation.take(), ..f.at.clone() };
        self.evidence.push(f.message.clone());
        self.evidence.extend(f.evidence.iter().cloned());
        self
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Diagnosis {
    pub data_directory: String,
    pub major: Option<u32>,
    /// The pid of the postmaster that was running while diagnose read (--allow-running):
    /// every finding may then be an artefact of pages being written.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read_while_running: Option<i32>,
    pub state: Option<DbState>,
    pub findings: Vec<Finding>,
    /// Relevant log lines no finding explains.
    pub unexplained_log: Vec<LogLine>,
    pub heap_pages_scanned: u64,
    pub tuples_scanned: u64,
    /// The tuple scan itself (with hint-bit evidence for the xids whose pg_xact pages are
    /// lost), for `plan`, which must not read every heap page a second time.
    #[serde(skip)]
    pub tuples: tuples::TupleScan,
    /// The relation files the catalog expects and the disk lacks, for `plan`.
    #[serde(skip)]
    pub missing: Vec<storage::MissingFile>,
    /// The catalog's relations by file (see [`storage::relations`]): a damaged index page is
    /// answered by REINDEX, not by editing it; a mended table gets its indexes rebuilt.
    #[serde(skip)]
    pub relations: std::collections::BTreeMap<String, storage::RelRef>,
    /// The names of the databases, by oid (for the statements plan lists).
    #[serde(skip)]
    pub database_names: std::collections::BTreeMap<u32, String>,
    /// What pg_control's fields rest on, when it is damaged (the values every finding was
    /// judged with, and what `plan` writes back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<check::control::ControlEvidence>,
    /// The highest pd_lsn of any page the server accepts: a WAL reset must start past it.
    #[serde(skip)]
    pub max_page_lsn: Option<crate::format::types::Lsn>,
    /// Every WAL file found (pg_wal, archives), for `plan`.
    #[serde(skip)]
    pub wal_inventory: Option<std::sync::Arc<crate::inventory::Inventory>>,
    /// The lowest page LSN past the REDO point (0: none), for `plan`.
    #[serde(skip)]
    pub late_min_lsn: u64,
    /// Damaged pages WAL holds an exact image of, by (file, block), for `plan`.
    #[serde(skip)]
    pub page_images: BTreeMap<(String, u32), images::PageImage>,
}

impl Diagnosis {
    pub fn damage(&self) -> usize {
        self.findings.iter().filter(|f| f.severity <= Severity::Warning).count()
    }
}

#[derive(Clone, Debug, Default)]
pub struct DiagnoseOptions {
    /// Server log files: (name, text).
    pub logs: Vec<(String, String)>,
    pub jobs: Option<usize>,
    /// Read a cluster whose server is running (read-only; the result may be inconsistent:
    /// pages being written can look damaged).
    pub allow_running: bool,
    /// Directories of archived WAL (see [`crate::inventory`]).
    pub wal_archives: Vec<std::path::PathBuf>,
    /// Other copies of this cluster's data directory, for damaged pages.
    pub page_sources: Vec<std::path::PathBuf>,
}

/// `text` ending with a full stop (a check message quoted inside a longer explanation).
fn sentence(text: &str) -> String {
    let t = text.trim_end();
    if t.ends_with(['.', '!', '?', ':']) {
        t.to_string()
    } else {
        format!("{t}.")
    }
}

/// Free bytes on the file system holding `path` (following links), for unprivileged users.
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let s = nix::sys::statvfs::statvfs(path).ok()?;
    Some(s.blocks_available() as u64 * s.fragment_size() as u64)
}

pub fn diagnose(dd: &DataDir, opts: &DiagnoseOptions, progress: &dyn Progress) -> Result<Diagnosis> {
    diagnose_with(dd, opts, progress, check::control::examine(dd))
}

/// [`diagnose`] with pg_control already examined (plan examines it first: reading WAL for
/// the checkpoint record once is enough).
pub fn diagnose_with(dd: &DataDir, opts: &DiagnoseOptions, progress: &dyn Progress, ev: check::control::ControlEvidence) -> Result<Diagnosis> {
    let running = match dd.postmaster() {
        Postmaster::Alive { pid } if opts.allow_running => Some(pid),
        _ => None,
    };
    if let (Postmaster::Alive { pid }, None) = (dd.postmaster(), running) {
        return Err(Error::Refused {
            message: format!(
                "a postmaster (pid {pid}) is running on {}: diagnose reads a stopped cluster (running, its files change under the reader)",
                dd.root().display()
            ),
            hint: "stop the server first (pg_ctl stop -m fast); if it cannot be stopped, pass --allow-running (read-only; the result may be inconsistent)"
                .into(),
        });
    }
    let logs: Vec<LogLine> = opts.logs.iter().flat_map(|(name, text)| log::parse(name, text)).collect();
    let mut out = Vec::new();
    let mut d = Diagnosis {
        data_directory: dd.root().display().to_string(),
        major: None,
        read_while_running: running,
        state: None,
        findings: vec![],
        unexplained_log: vec![],
        heap_pages_scanned: 0,
        tuples: Default::default(),
        missing: vec![],
        database_names: Default::default(),
        relations: Default::default(),
        tuples_scanned: 0,
        max_page_lsn: None,
        control: None,
        wal_inventory: None,
        page_images: BTreeMap::new(),
        late_min_lsn: 0,
    };
    if let Some(root) = control_root(&ev) {
        out.push(root);
    }
    let Some(c) = ev.trusted.clone().map(|c| c.with_usable_geometry().0) else {
        d.major = dd.pg_version().ok().map(|m| m.number());
        d.findings = out;
        return Ok(d);
    };
    d.major = Some(c.major.number());
    d.state = Some(c.state);
    let postmaster = dd.postmaster();
    out.push(state_finding(&c, &postmaster, !ev.intact()));
    match &postmaster {
        Postmaster::Stale { pid, reason, reused: true } => out.push(
            Finding::new(Code::PostmasterPidStale, format!("postmaster.pid names pid {pid}, which now belongs to another process"))
                .explain(
                    format!("{reason}. The server left postmaster.pid behind when it stopped without shutting down, and the pid was given to another process since."),
                    "the server refuses to start: \"lock file \"postmaster.pid\" already exists\" (it cannot tell that process from a running postmaster)",
                )
                .repair("move postmaster.pid aside (pgsalvage plan)", "nothing", true),
        ),
        Postmaster::Stale { pid, reason, reused: false } => out.push(
            Finding::new(Code::PostmasterPidLeft, format!("postmaster.pid names pid {pid}, which no longer runs"))
                .explain(
                    format!("{reason}. The server left postmaster.pid behind when it stopped without shutting down."),
                    "nothing: the server sees that no process has that pid and replaces the file at start",
                ),
        ),
        _ => {}
    }
    out.extend(ownership(dd));
    let report = check::check_with(dd, &CheckOptions { jobs: opts.jobs, only: None, wal_archives: opts.wal_archives.clone() }, progress, ev.clone())?;
    d.control = (!ev.intact()).then_some(ev);
    d.wal_inventory = report.wal_inventory.clone();
    // pg_control's counters are those of the last checkpoint; after a crash, the WAL replay
    // will carry them forward. Tuples are judged against where replay leaves them.
    let control_next = c.checkpoint.next_xid;
    let c = match report.wal.as_ref().map(|w| &w.advance).filter(|a| !a.is_empty()) {
        Some(a) => {
            if let Some(f) = out.iter_mut().find(|f| f.code == Code::ClusterState) {
                f.evidence.push(describe_advance(&c, a));
            }
            a.apply(&c)
        }
        None => c,
    };
    d.max_page_lsn = report.pages.as_ref().map(|p| p.max_page_lsn);
    d.late_min_lsn = report.pages.as_ref().map(|p| p.late_min).unwrap_or(0);
    let catalog = Catalog::load(dd, &c);
    if !catalog.problems.is_empty() {
        let mut f = Finding::new(Code::CatalogUnreadable, "parts of the system catalogs cannot be read: some relations are named by file path only").explain(
            "pgsalvage reads pg_database, pg_class, pg_namespace and pg_index from disk to name relations; where they are damaged, names fall back to paths",
            "the damage in the catalog is itself reported by its own findings",
        );
        f.evidence = catalog.problems.clone();
        out.push(f);
    }
    let name_of = |file: &str| -> Option<String> {
        let (dir, base) = file.rsplit_once('/')?;
        let (node, fork, _) = crate::datadir::RelFile::parse_name(base)?;
        catalog.name_file(dir, node, fork).map(|n| n.to_string())
    };
    let files = dd.relation_files(&check::version_dir(&c))?;
    // Hint bits are evidence for the xids whose pg_xact pages are lost (check knows which).
    let lost: Vec<(Xid, Xid)> =
        report.findings.iter().filter(|f| matches!(f.code, CheckCode::XactSegmentMissing | CheckCode::XactSegmentShort)).filter_map(|f| f.at.xids).collect();
    let version_dir = check::version_dir(&c);
    let rels: tuples::RelInfos = catalog
        .databases
        .iter()
        .flat_map(|db| {
            let version_dir = &version_dir;
            db.relations.iter().filter(|r| matches!(r.kind, 'r' | 'm' | 't') && r.certain).map(move |r| {
                let toast = db
                    .relations
                    .iter()
                    .find(|t| t.oid == r.toast_oid && r.toast_oid != 0 && t.kind == 't')
                    .map(|t| (t.oid, format!("{}/{}", db.dir_of(t, version_dir), t.relfilenode)));
                let info = tuples::RelInfo {
                    natts: r.natts,
                    frozenxid: r.frozenxid,
                    minmxid: r.minmxid,
                    columns: std::sync::Arc::new(r.columns.clone()),
                    toast,
                    toast_oid: r.toast_oid,
                };
                ((db.dir_of(r, version_dir), r.relfilenode), info)
            })
        })
        .collect();
    // The tuple scan on as many threads as check's page scan: -j N in a pool of its own;
    // by default rayon's global pool (measured 1.25 s against 1.7 s in a built pool of the
    // same size on the 2 GB benchmark cluster, scripts/bench 130 diagnose).
    let mut ts = match opts.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))?
            .install(|| tuples::scan(dd, &c, &files, &lost, &rels)),
        None => tuples::scan(dd, &c, &files, &lost, &rels),
    };
    toast::settle(dd, &c, &mut ts);
    d.heap_pages_scanned = ts.heap_pages;
    d.tuples_scanned = ts.tuples;
    out.extend(disk_full(dd, &c, &report, &logs));
    out.extend(from_check(dd, &c, control_next, &report, &ts, &name_of));
    out.extend(from_tuples(dd, &c, control_next, &ts.problems, &name_of));
    d.missing = storage::missing(&catalog, &files, &check::version_dir(&c));
    d.relations = storage::relations(&catalog, &check::version_dir(&c));
    // A damaged page of an index: the index is built again from its table, which loses
    // nothing, instead of editing or emptying the page.
    for f in out.iter_mut().filter(|f| matches!(f.code, Code::PageInvalid | Code::PageChecksumFailure)) {
        let Some(base) = f.at.file.as_deref().map(|p| p.split_once('.').map_or(p, |(b, _)| b)) else { continue };
        if let Some(ix) = d.relations.get(base).filter(|r| r.kind == 'i') {
            let rest: Vec<Repair> = f.repairs.drain(..).map(|r| Repair { least_loss: false, ..r }).collect();
            f.repairs.push(Repair {
                action: format!(
                    "REINDEX INDEX {} once the server runs: it is built again from its table and no page of it is read (the plan lists it; rehearse runs it)",
                    ix.qualified
                ),
                loses: "nothing".into(),
                least_loss: true,
            });
            f.repairs.extend(rest);
        }
    }
    // A lost REDO segment whose content the surviving WAL proves.
    if let Some(raw) = dd.control().ok().map(|x| x.0).filter(|_| d.control.is_none()) {
        for f in out.iter_mut().filter(|f| f.code == Code::WalLost) {
            let Some(missing) = f.at.file.clone() else { continue };
            match crate::plan::gap::prove(dd, &raw, &missing, d.late_min_lsn) {
                Ok(p) => {
                    f.evidence.push(format!(
                        "the surviving WAL proves what {missing} held: the checkpoint's own records from the REDO point {} to the checkpoint record at {}, then a switch record at {} (the next segment's first record points back to it), and no page carries an LSN inside it",
                        raw.checkpoint.redo_lsn, p.checkpoint, p.switch
                    ));
                    for r in f.repairs.iter_mut() {
                        r.least_loss = false;
                    }
                    f.repairs.insert(
                        0,
                        Repair {
                            action: format!("rebuild {missing} from that proof (pgsalvage plan): recovery then replays every segment after it"),
                            loses: "nothing".into(),
                            least_loss: true,
                        },
                    );
                }
                Err(why) => f.evidence.push(format!("what {missing} held cannot be rebuilt: {why}")),
            }
        }
    }
    if let Some(inv) = d.wal_inventory.clone() {
        let is_index = |p: &str| d.relations.get(p.split_once('.').map_or(p, |(b, _)| b)).is_some_and(|r| r.kind == 'i');
        d.page_images = images::from_wal(dd, &c, &mut out, &inv, report.wal.as_ref(), &is_index);
    }
    if !opts.page_sources.is_empty() {
        let is_index = |p: &str| d.relations.get(p.split_once('.').map_or(p, |(b, _)| b)).is_some_and(|r| r.kind == 'i');
        images::from_copies(dd, &c, &mut out, &opts.page_sources, &mut d.page_images, &is_index);
    }
    d.database_names = catalog.databases.iter().map(|db| (db.oid, db.name.clone())).collect();
    d.missing.extend(storage::bad_first_pages(dd, &catalog, &files, &check::version_dir(&c), c.database_block_size as usize, c.blocks_per_segment));
    out.extend(d.missing.iter().map(missing_file));
    fold_suspect(&mut out, d.control.as_ref());
    attach_logs(&mut out, &logs, &mut d.unexplained_log);
    out.sort_by_key(|f| f.severity);
    // What must not be done comes first: starting a crashed cluster whose pg_xact is missing.
    out.sort_by_key(|f| !f.title.starts_with(DO_NOT_START));
    d.findings = out;
    d.tuples = ts;
    Ok(d)
}

/// A relation file the catalog expects and the disk lacks: what it costs, per kind.
fn missing_file(m: &storage::MissingFile) -> Finding {
    if let Some(problem) = &m.first_page {
        let table = m.table.as_ref().map(|t| t.1.clone()).unwrap_or_default();
        let f = if m.kind == 'i' {
            let page = if m.block == 0 { "the first page".to_string() } else { format!("block {}", m.block) };
            Finding::new(Code::IndexPageInvalid, format!("{page} of {} is not its access method's: {problem}", m.name))
                .explain(
                    format!(
                        "the page header is valid, but what the index's access method wrote in {} is damaged: {problem}. The table's rows are intact; the index can be built again from them",
                        if m.block == 0 { "the metapage (or root page)".to_string() } else { format!("block {}", m.block) }
                    ),
                    format!("every query using the index fails (\"index ... is not a btree\", \"index ... has wrong hash version\", or similar), and so may every INSERT or UPDATE of table {table}"),
                )
                .repair(format!("REINDEX INDEX {} once the server runs (the plan lists it; rehearse runs it)", m.qualified), "nothing", true)
        } else {
            Finding::new(Code::SequencePageInvalid, format!("the page of {} is not a sequence page: {problem}", m.name))
                .explain(
                    format!("a sequence keeps its state in one page; its special space is damaged: {problem}"),
                    "nextval() fails: \"bad magic number in sequence\"",
                )
                .repair(
                    "DROP and CREATE the sequence with START past the highest value in use (or put the file back from a backup)",
                    "nothing if START is past every value in use",
                    false,
                )
        };
        return Finding {
            at: Location { relation: Some(m.name.clone()), file: Some(m.path.clone()), block: Some(m.block), ..Default::default() },
            evidence: vec![problem.clone()],
            ..f
        };
    }
    let fail = format!("every query that reads it fails: could not open file \"{}\": No such file or directory", m.path);
    let table = m.table.as_ref().map(|t| t.1.clone()).unwrap_or_default();
    let f = Finding::new(Code::RelationFileMissing, format!("the file of {} is missing: {}", m.name, m.path));
    let f = match m.kind {
        'i' => f
            .explain(
                "the index's file is gone; the table's rows are intact, and the index can be built again from them",
                format!("{fail}; so does every INSERT or UPDATE of table {table}"),
            )
            .repair(format!("REINDEX INDEX {} once the server runs (the plan lists it; rehearse runs it)", m.qualified), "nothing", true),
        'm' => f.explain("the materialized view's file is gone; its rows are the result of its query, which can be run again", fail).repair(
            format!("an empty file in its place, then REFRESH MATERIALIZED VIEW {} once the server runs (its indexes are rebuilt with it)", m.qualified),
            "nothing: the query makes the rows again",
            true,
        ),
        'r' => f
            .explain("the table's file is gone: its rows are not on this disk. A backup or a snapshot of this cluster may still hold the file", fail)
            .repair("put the file back from a backup or snapshot taken since the table last changed (pgsalvage snapshot restore, or a copy)", "nothing", true)
            .repair(
                format!("an empty file in its place (the table reads as empty), then REINDEX TABLE {} once the server runs (pgsalvage plan)", m.qualified),
                "every row of the table",
                false,
            ),
        't' => f
            .explain(
                format!("the TOAST table of {table} is gone: the values it stored out of line (long text, bytea, jsonb) are not on this disk"),
                format!("{fail}: every read of a long value of {table} fails"),
            )
            .repair("put the file back from a backup or snapshot taken since the table last changed", "nothing", false),
        _ => {
            f.explain("the sequence's file is gone: its current value is not on this disk", format!("{fail}: nextval() and every INSERT using it fail")).repair(
                "put the file back from a backup; or DROP and CREATE the sequence with START past the highest value the table holds",
                "nothing if START is past every value in use",
                false,
            )
        }
    };
    Finding { at: Location { relation: Some(m.name.clone()), file: Some(m.path.clone()), ..Default::default() }, ..f }
}

/// Who owns what: the server runs as the data directory's owner (never root) and must be
/// able to open every file in it. A file created or copied as root (`dd` into pg_xact, a
/// `cp` without -a) makes it fail with "Permission denied"; a data directory owned by root
/// makes it refuse to start. pg_wal and tablespaces are followed through their links.
fn ownership(dd: &DataDir) -> Option<Finding> {
    use std::os::unix::fs::MetadataExt;
    let root_md = std::fs::metadata(dd.root()).ok()?;
    let (owner, group) = (root_md.uid(), root_md.gid());
    // What the owner may do with a file it does not own: through its group, or as "other"
    // (read and write; directories also search).
    let usable = |md: &std::fs::Metadata| {
        let need = if md.is_dir() { 0o7 } else { 0o6 };
        md.uid() == owner || md.mode() & need == need || (md.gid() == group && (md.mode() >> 3) & need == need)
    };
    let name = |uid: u32| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten().map(|u| u.name).unwrap_or_else(|| format!("uid {uid}"));
    let mut others: Vec<(String, u32)> = Vec::new();
    let mut count = 0usize;
    let mut stack: Vec<(std::path::PathBuf, String)> = vec![(dd.root().to_path_buf(), String::new())];
    while let Some((dir, rel)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else { continue };
        for e in rd.flatten() {
            let child = format!("{rel}{}", e.file_name().to_string_lossy());
            let Ok(md) = e.path().symlink_metadata() else { continue };
            // Links the server follows: pg_wal and the tablespaces (their targets are checked).
            let followed = md.file_type().is_symlink() && (child == crate::datadir::WAL_DIR || child.starts_with("pg_tblspc/"));
            let md = if followed { std::fs::metadata(e.path()).unwrap_or(md) } else { md };
            if !usable(&md) {
                count += 1;
                if others.len() < 8 {
                    others.push((child.clone(), md.uid()));
                }
            }
            if md.is_dir() && (!md.file_type().is_symlink() || followed) {
                stack.push((e.path(), format!("{child}/")));
            }
        }
    }
    if owner != 0 && count == 0 {
        return None;
    }
    let dir = std::fs::canonicalize(dd.root()).unwrap_or_else(|_| dd.root().to_path_buf());
    let dir = dir.display();
    let mut f = if owner == 0 {
        Finding::new(Code::OwnershipWrong, "the data directory belongs to root: the server will not start").explain(
            "PostgreSQL refuses to run as root, and refuses a data directory that is not owned by the user it runs as (\"data directory ... has wrong ownership\"). A directory restored or copied as root keeps root as its owner",
            "the server does not start",
        )
    } else {
        let files = if count == 1 { "1 file in the data directory is".to_string() } else { format!("{count} files in the data directory are") };
        Finding::new(Code::OwnershipWrong, format!("{files} owned by another user and not readable and writable by {}, the directory's owner", name(owner))).explain(
            format!("the server runs as {} and must open every file of the data directory; a file created or copied by another user (root running dd or cp) cannot be opened or written: queries or startup fail with \"Permission denied\"", name(owner)),
            "the server fails on those files",
        )
    };
    let user = if owner == 0 { "postgres".to_string() } else { name(owner) };
    f = f.repair(format!("as root: chown -R {user}: {dir} (and the directories pg_wal and the tablespaces link to)"), "nothing", true);
    f.evidence = others.iter().map(|(p, uid)| format!("{p}: owned by {}", name(*uid))).collect();
    if count > others.len() {
        f.evidence.push(format!("... {} more", count - others.len()));
    }
    Some(f)
}

/// The one root finding for a damaged pg_control: what is wrong with the file, each field
/// as confirmed, contradicted or unverifiable, and what a rewrite from the evidence costs.
fn control_root(ev: &check::control::ControlEvidence) -> Option<Finding> {
    use check::control::Condition;
    let rebuild = ev.rebuilt().is_some();
    let x = ev.count(check::control::Verdict::Contradicted);
    let (code, title, what) = match &ev.condition {
        Condition::Intact => return None,
        Condition::CrcMismatch { stored, computed, offset } => (
            Code::ControlCrcMismatch,
            "pg_control's checksum does not match its contents".to_string(),
            format!("global/pg_control stores CRC {stored:#010x} but its first {offset} bytes give {computed:#010x}: some of its bytes changed after it was written (a torn write, a bad disk, a hand edit), so every value in it is a suspect"),
        ),
        Condition::ValuesInvalid { problems } => (
            Code::ControlValuesInvalid,
            "pg_control holds values PostgreSQL does not allow".to_string(),
            format!("{}: the server refuses such a file whatever its CRC says", problems.join("; ")),
        ),
        Condition::Unreadable { reason } => (Code::ControlUnreadable, "pg_control cannot be read".to_string(), reason.clone()),
    };
    let judged = if rebuild {
        format!(
            " Each field was checked against evidence that does not come from pg_control (the checkpoint record at {}, CRC-checked; WAL page headers; page headers and checksums; PG_VERSION and the server's compile-time values): {} confirmed, {x} contradicted, {} absent and taken from the evidence, {} unverifiable (settings the server writes again at start, and values nothing else records). Every other finding below was judged with the values the evidence gives.",
            ev.checkpoint_record.unwrap_or_default(),
            ev.count(check::control::Verdict::Confirmed),
            ev.count(check::control::Verdict::Rebuilt),
            ev.count(check::control::Verdict::Unverifiable)
        )
    } else {
        format!(" pg_control cannot be rebuilt from evidence: {}. Findings about xids, multixacts and WAL below were judged with its suspect values and may be effects of this damage, not damage of their own.", ev.not_rebuildable.clone().unwrap_or_default())
    };
    let nothing = match &ev.condition {
        Condition::Unreadable { .. } => "the server cannot start: it reads everything else through pg_control",
        Condition::ValuesInvalid { .. } => "the server refuses to start (\"database files are incompatible with server\")",
        _ => "the server refuses to start: \"incorrect checksum in control file\"",
    };
    let mut f = Finding::new(code, title).explain(format!("{what}.{judged}"), nothing);
    f = if rebuild {
        f.repair(
            format!("rewrite pg_control from the evidence (pgsalvage plan): the checkpoint copy from the record at {} verbatim, confirmed values kept, contradicted ones replaced; the server then replays WAL from the REDO point as after any stop", ev.checkpoint_record.unwrap_or_default()),
            "nothing: no WAL is reset",
            true,
        )
        .repair("pg_resetwal -f", "every transaction after the last checkpoint that only WAL holds; it keeps whatever damaged values it can read, or guesses", false)
    } else {
        f.repair(
            "rebuild pg_control from guesses taken from the data directory and reset WAL (pgsalvage plan --reset-wal; move pg_control aside first if it decodes)",
            "transactions in WAL after the last checkpoint",
            true,
        )
        .repair("pg_resetwal -f with values guessed by hand", "the same, with worse guesses", false)
    };
    f.at.file = Some(crate::datadir::CONTROL_PATH.into());
    f.evidence = ev.lines();
    Some(f)
}

/// No cascade: when pg_control is damaged and no checkpoint record confirms its values,
/// the findings judged with them (pg_xact coverage from NextXID, tuples' xids and
/// multixacts against the counters, the WAL chain from REDO, segment sizes) may be its
/// effects. They go under the root finding as counted evidence, not as errors of their own,
/// and `plan` does not act on them.
fn fold_suspect(out: &mut Vec<Finding>, ev: Option<&check::control::ControlEvidence>) {
    const DERIVED: &[Code] = &[
        Code::XactStatusLost,
        Code::TupleXidNeverAssigned,
        Code::TupleXidBeforeHorizon,
        Code::TupleMultixactOutOfRange,
        Code::WalLost,
        Code::WalCheckpointUnreadable,
        Code::WalFileWrongSize,
        Code::PageLsnPastWal,
    ];
    if !ev.is_some_and(check::control::ControlEvidence::suspect) {
        return;
    }
    let mut folded: BTreeMap<Code, (usize, String)> = BTreeMap::new();
    out.retain(|f| {
        if DERIVED.contains(&f.code) {
            let e = folded.entry(f.code).or_insert((0, f.title.clone()));
            e.0 += 1;
            false
        } else {
            true
        }
    });
    if let Some(root) = out.iter_mut().find(|f| matches!(f.code, Code::ControlUnreadable | Code::ControlCrcMismatch | Code::ControlValuesInvalid)) {
        for (code, (n, first)) in folded {
            root.evidence.push(format!("judged with pg_control's suspect values, so not reported on their own: {n} × {code} (first: {first})"));
        }
    }
}

/// What replay of the WAL after the checkpoint moves forward, in words.
fn describe_advance(c: &ControlFile, a: &check::Advance) -> String {
    let cp = &c.checkpoint;
    let mut parts = Vec::new();
    if let Some(x) = a.next_xid {
        parts.push(format!("NextXID {}:{} → {}:{}", cp.next_xid.epoch(), cp.next_xid.xid(), x.epoch(), x.xid()));
    }
    if let Some(o) = a.next_oid {
        parts.push(format!("NextOID {} → {o}", cp.next_oid));
    }
    if let Some((m, off)) = a.next_multixact {
        parts.push(format!("NextMultiXactId {} → {m}, NextMultiOffset {} → {off}", cp.next_multixact_id, cp.next_multi_offset));
    }
    format!("the WAL after the latest checkpoint moves the counters forward when it is replayed ({}); tuples are judged against those values", parts.join("; "))
}

fn state_finding(c: &ControlFile, pm: &Postmaster, rebuilt: bool) -> Finding {
    let crashed = !matches!(pm, Postmaster::Alive { .. });
    let (title, meaning) = match c.state {
        DbState::ShutDown => ("shut down cleanly", "the next start needs no recovery"),
        DbState::InProduction if crashed => (
            "in production, but no server runs: it crashed or was killed",
            "the next start runs crash recovery from the latest checkpoint's REDO location, replaying the WAL in pg_wal; it needs every WAL segment from there to the end and room in pg_wal",
        ),
        DbState::InProduction => ("in production", "a server is running"),
        DbState::InCrashRecovery => (
            "in crash recovery: a crash recovery was itself interrupted",
            "the next start repeats crash recovery from the same REDO location (\"database system was interrupted while in recovery\"); whatever stopped it before (a full disk, a missing segment, a damaged page) will stop it again unless fixed",
        ),
        DbState::InArchiveRecovery => (
            "in archive recovery (a standby, or a restore from archive)",
            "the next start continues recovery with restore_command or streaming; it must reach the minimum recovery point before it is consistent",
        ),
        DbState::ShutDownInRecovery => ("shut down in recovery (a standby that was stopped)", "the next start resumes recovery as a standby; promote it to make it writable"),
        DbState::ShuttingDown => ("shutting down: the server stopped during its shutdown checkpoint", "the next start runs crash recovery"),
        DbState::StartingUp => ("starting up: the server stopped while starting", "the next start runs recovery again"),
        DbState::Unknown(_) => ("in an unknown state (pg_control is damaged?)", "the server may refuse to start"),
    };
    let mut f = Finding::new(Code::ClusterState, format!("the cluster is {title}")).explain(
        format!(
            "{} \"{}\"; latest checkpoint at {}, REDO location {}, on timeline {}",
            if rebuilt { "pg_control as the evidence rebuilds it says" } else { "pg_control says" },
            c.state.text(),
            c.checkpoint_lsn,
            c.checkpoint.redo_lsn,
            c.checkpoint.timeline_id
        ),
        meaning,
    );
    f.at.lsn = Some(c.checkpoint.redo_lsn);
    f
}

/// A crash (or interrupted) recovery that will need more room in pg_wal than there is.
fn disk_full(dd: &DataDir, c: &ControlFile, r: &CheckReport, logs: &[LogLine]) -> Option<Finding> {
    let needs_recovery = matches!(c.state, DbState::InProduction | DbState::InCrashRecovery | DbState::ShuttingDown | DbState::StartingUp);
    let wal = dd.path(WAL_DIR);
    let free = free_bytes(&wal)?;
    let seg = c.bytes_per_wal_segment as u64;
    let logged = logs.iter().any(|l| l.event == LogEvent::NoSpace);
    // Recovery writes new WAL (the end-of-recovery checkpoint, and a new segment when the end
    // of WAL is late in its segment; PostgreSQL 15 was seen creating one earlier than that).
    // Without the server's own "No space left on device" in a log this is a prediction, said
    // as one: less than two segments free.
    let need = 2 * seg;
    if !needs_recovery || (free >= need && !logged) {
        return None;
    }
    let replay = r.wal.as_ref().map(|w| w.bytes).unwrap_or(0);
    let target = dd.wal_link().map(|p| p.display().to_string()).unwrap_or_else(|| wal.display().to_string());
    let title = if logged {
        "NOT corruption: recovery cannot finish because the WAL file system is full"
    } else {
        "NOT corruption: the WAL file system is full, and crash recovery needs room for new WAL"
    };
    let mut f = Finding::new(Code::NotCorruptionWalDiskFull, title)
        .explain(
            format!(
                "crash recovery replays {} of WAL from the REDO location {} and then must write new WAL (a new {} segment for the end-of-recovery checkpoint); the file system of pg_wal ({target}) has {} free. The server stops with: could not write to file \"pg_wal/xlogtemp.N\": No space left on device; and later says \"This probably means that some data is corrupted\" — it is not: {}",
                size(replay),
                c.checkpoint.redo_lsn,
                size(seg),
                size(free),
                if r.findings.iter().any(|f| f.severity == Severity::Error) { "other findings below are separate problems" } else { "check found every page, pg_xact and the WAL intact" }
            ),
            "the server will not start, and every attempt ends the same way; nothing is lost while it waits",
        )
        .repair(
            format!("make room on the file system of pg_wal: at least {} free ({} more), better a few segments more; remove files that are not PostgreSQL's, or grow the volume", size(need), size(need.saturating_sub(free))),
            "nothing",
            true,
        )
        .repair(format!("move pg_wal to a file system with room and leave a symbolic link (pgsalvage plan: relocate-wal); {} of segments move", size(r.wal.as_ref().map(|w| w.segment_files as u64 * seg).unwrap_or(0))), "nothing", true)
        .repair("do NOT delete WAL segments and do NOT run pg_resetwal: both throw away committed transactions that are still only in WAL, to fix a problem that is only disk space", "transactions after the last checkpoint, and consistency", false);
    f.evidence.push(format!("free on {target}: {free} bytes; needed: {need} bytes (2 segments of {seg})"));
    Some(f)
}

fn rows_on(dd: &DataDir, file: &str, block: u32, c: &ControlFile) -> Option<usize> {
    tuples::rows_on_page(&page_on(dd, file, block, c)?)
}

/// The bytes of one block of a relation file.
fn page_on(dd: &DataDir, file: &str, block: u32, c: &ControlFile) -> Option<Vec<u8>> {
    let bs = c.database_block_size as u64;
    let in_seg = block as u64 % c.blocks_per_segment as u64;
    let bytes = dd.read(file).ok()?;
    bytes.get((in_seg * bs) as usize..((in_seg + 1) * bs) as usize).map(<[u8]>::to_vec)
}

/// `control_next`: NextXID of the latest checkpoint, before replay moves it.
fn from_check(
    dd: &DataDir,
    c: &ControlFile,
    control_next: crate::format::types::FullXid,
    r: &CheckReport,
    ts: &tuples::TupleScan,
    name_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for f in &r.findings {
        let rel = f.at.file.as_deref().and_then(name_of);
        let what = rel.clone().unwrap_or_else(|| f.at.file.clone().unwrap_or_default());
        let g = match f.code {
            CheckCode::PageInvalidHeader | CheckCode::PageNewNotZero | CheckCode::PageChecksumFailure => {
                let blk = f.at.block.unwrap_or(0);
                // The page read once: its rows, and whether its header can be rebuilt.
                let page = f.at.file.as_deref().and_then(|p| page_on(dd, p, blk, c));
                let rows = page.as_deref().and_then(tuples::rows_on_page);
                let rows_txt = rows.map(|n| format!("{n} rows")).unwrap_or_else(|| "the rows (count unknown: the line pointer array is unreadable)".into());
                if f.code == CheckCode::PageChecksumFailure {
                    Finding::new(Code::PageChecksumFailure, format!("checksum failure in block {blk} of {what}"))
                        .explain(
                            format!("the page header is sane but the data checksum does not match the page's contents: some bytes in the tuples (or the checksum itself) changed after the server wrote the page. The page holds {rows_txt}."),
                            format!("every query that reads block {blk} fails with \"page verification failed\"; pg_dump of this table fails"),
                        )
                        .repair("read what is on the page with ignore_checksum_failure=on and copy the rows out; then decide: the content may be wrong", "nothing yet; the damaged bytes stay", true)
                        .repair("accept the content as it is and rewrite the checksum (explicit opt-in: the content may be wrong)", "nothing, but wrong values may stay", false)
                        .repair("replace the page with an empty one, keeping the original bytes as a salvage file", rows_txt.clone(), false)
                } else {
                    // The repair offered first is the one `plan` makes: a header rebuild only
                    // when the line pointers and tuples are consistent enough to derive it.
                    let rebuildable = page.as_deref().is_some_and(|pg| crate::plan::bytes::derive_header(pg, 0).is_some());
                    let finding = Finding::new(Code::PageInvalid, format!("invalid page header in block {blk} of {what}")).explain(
                        format!(
                            "the 24-byte page header fails the checks the server makes before it uses a page (pd_lower <= pd_upper <= pd_special <= block size, valid flags), so the server refuses the whole block. The page holds {rows_txt}.{}",
                            if rebuildable { "" } else { " Its line pointers are not consistent enough to rebuild the header from them." }
                        ),
                        format!("every query that reads block {blk} fails with \"invalid page in block {blk} of relation {}\"; pg_dump of this table fails; VACUUM fails", f.at.file.as_deref().map(|p| p.split('.').next().unwrap_or(p)).unwrap_or("")),
                    );
                    let finding = if rebuildable {
                        finding.repair("rebuild the header from the line pointers and tuples", "nothing: every row stays", true)
                    } else {
                        finding
                    };
                    finding
                        .repair(
                            "replace the page with an empty one (as zero_damaged_pages does, but on disk), keeping the original bytes as a salvage file",
                            rows_txt.clone(),
                            !rebuildable,
                        )
                        .repair("restore the table from a backup", "changes since that backup", false)
                }
            }
            CheckCode::PageLsnPastWal => {
                let blk = f.at.block.unwrap_or(0);
                Finding::new(Code::PageLsnPastWal, format!("block {blk} of {what} carries an LSN past the end of WAL"))
                    .explain(
                        format!(
                            "{}. Every page's LSN is the WAL position of its last change, and the server writes WAL before the page, so no intact page is ahead of the WAL on disk: either its pd_lsn bytes are damaged (a header scribble, a bad earlier repair), or WAL written after {} is lost from the end of pg_wal",
                            f.message,
                            r.wal.as_ref().map(|w| w.end_of_valid_wal).unwrap_or_default()
                        ),
                        "the page reads well, but the first time the server writes it (a hint bit, VACUUM, any change) every checkpoint fails with \"xlog flush request ... is not satisfied\", and a fast shutdown ends abnormally",
                    )
                    .repair("set the page's pd_lsn to the latest checkpoint's REDO location (the content stays)", "nothing, if the pd_lsn bytes were the damage; if WAL was lost, the changes it held are lost already", true)
                    .repair("reset WAL to start past the highest page LSN (pgsalvage plan --reset-wal)", "the transactions after the latest checkpoint that only WAL holds", false)
            }
            CheckCode::RelationPartialBlock | CheckCode::RelationSegmentGap | CheckCode::RelationSegmentShort => {
                Finding::new(Code::RelationFileDamaged, format!("{} of {what}", f.code.as_str().replace('-', " ")))
                    .explain(
                        f.message.clone(),
                        "the server reads the relation only up to the damage: the blocks after it are unreachable, or reading them fails",
                    )
                    .repair("keep the partial bytes as a salvage file and cut or pad the file to whole blocks", "the rows in the partial block", true)
            }
            CheckCode::XactSegmentMissing | CheckCode::XactSegmentShort => {
                let (a, b) = f.at.xids.unwrap_or((0, 0));
                let affected: Vec<&(Xid, String)> = ts.unhinted.iter().filter(|(x, _)| x.wrapping_sub(a) <= b.wrapping_sub(a)).collect();
                let tables: std::collections::BTreeSet<&String> = affected.iter().map(|(_, f)| f).collect();
                let names: Vec<String> = tables.iter().take(5).map(|t| name_of(t).unwrap_or_else(|| t.to_string())).collect();
                let file = f.at.file.clone().unwrap_or_default();
                // Crash recovery reads a missing pg_xact segment as zeros and writes it back
                // with the statuses it replays: those of transactions after the checkpoint.
                // Tuples of earlier ones, unhinted, then read as aborted, silently.
                let crashed = matches!(c.state, DbState::InProduction | DbState::InCrashRecovery) && f.code == CheckCode::XactSegmentMissing;
                let before = affected.iter().filter(|(x, _)| crate::format::types::xid_precedes(*x, control_next.xid())).count() as u64;
                let title = if crashed && before > 0 {
                    format!("{DO_NOT_START}: crash recovery would zero-fill {file} and silently lose committed rows (commit status of transactions {a}..{b} is lost)")
                } else {
                    format!("commit status of transactions {a}..{b} is lost ({file})")
                };
                let nothing = if crashed && before > 0 {
                    format!("crash recovery reads the missing {file} as zeros and writes back only the statuses the WAL after the latest checkpoint holds: {} of transactions before it then read as aborted, rows vanish without an error, and afterwards pg_xact looks whole, so nothing reports the loss", count(before, "tuple"))
                } else {
                    format!("queries touching those tuples fail with \"could not access status of transaction {a}\"; the server may not start if the page it needs at startup is gone")
                };
                Finding::new(Code::XactStatusLost, title)
                    .explain(
                        format!("pg_xact holds two bits per transaction (committed, aborted, ...). {} The server needs them for tuples that carry no hint bits yet: {} in {}{}{}. These xids are inside the live window [oldestXID {}, NextXID {}): this is genuinely missing commit status, not damaged tuples.",
                            sentence(&f.message), count(affected.len() as u64, "tuple"), count(tables.len() as u64, "relation"), if names.is_empty() { String::new() } else { format!(" ({})", names.join(", ")) }, if tables.len() > 5 { format!(" and {} more", tables.len() - 5) } else { String::new() }, c.checkpoint.oldest_xid, c.checkpoint.next_xid.xid()),
                        nothing,
                    )
                    .repair("rebuild the missing pages from evidence: commit/abort records still in WAL and hint bits on tuples, with a policy only for the rest (pgsalvage plan)", "the commit status of xids with no evidence (the policy decides: committed may resurrect aborted rows, aborted may hide committed ones)", true)
                    .repair("zero-filled pg_xact pages (what `dd if=/dev/zero` does)", format!("every transaction in {a}..{b} reads as aborted or in progress: their committed rows vanish"), false)
            }
            CheckCode::WalSegmentMissing | CheckCode::WalRecordBroken => {
                let end = r.wal.as_ref().map(|w| w.end_of_valid_wal).unwrap_or_default();
                let shown = r.wal_inventory.as_ref().and_then(|inv| walloss::describe(&inv.lost_after(c.checkpoint.timeline_id, end), c, name_of));
                Finding::new(Code::WalLost, format!("WAL is lost from {}: {}", f.at.lsn.unwrap_or_default(), f.message))
                    .explain(
                        format!("recovery replays WAL from the REDO location {} and stops at {}; {}", c.checkpoint.redo_lsn, end, f.evidence.join("; ")),
                        "crash recovery stops at the break and the server starts as if the WAL ended there: every transaction committed after that LSN is silently lost, and data pages already written after it may be inconsistent",
                    )
                    .repair("find the missing segment (archive, another disk, a backup of pg_wal) and put it back", "nothing", true)
                    .repair(
                        "reset WAL past the break, as pg_resetwal does (pgsalvage plan --reset-wal)",
                        format!("every transaction after {end}; pages written after it may disagree with each other{}", shown.map(|s| format!("; {s}")).unwrap_or_default()),
                        false,
                    )
            }
            CheckCode::WalCheckpointUnreadable | CheckCode::WalCheckpointMismatch => Finding::new(Code::WalCheckpointUnreadable, "the latest checkpoint record cannot be read")
                .explain(f.message.clone(), "the server refuses to start: \"could not locate a valid checkpoint record\"")
                .repair("put back the WAL segment holding it (archive, backup)", "nothing", true)
                .repair("reset WAL, as pg_resetwal does (pgsalvage plan --reset-wal)", "the transactions after the last checkpoint that only WAL holds", false),
            CheckCode::WalForeignSegment | CheckCode::WalSegmentMisplaced => Finding::new(Code::WalForeignFile, f.message.clone())
                .explain(
                    "a file in pg_wal carries another cluster's or another segment's WAL: if recovery reaches it, it stops there",
                    "recovery may stop early at this file",
                )
                .repair("move the file out of pg_wal", "nothing", true),
            CheckCode::WalSegmentWrongSize => Finding::new(Code::WalFileWrongSize, f.message.clone())
                .explain("a WAL segment file of the wrong size cannot be replayed", "recovery stops at it")
                .repair("move it aside; find a full copy", "nothing if a copy exists", true),
            CheckCode::ControlCrcMismatch | CheckCode::ControlUnreadable => continue, // reported from pg_control's evidence
            CheckCode::ControlValuesInvalid => Finding::new(Code::ControlValuesInvalid, "pg_control holds values PostgreSQL does not allow")
                .explain(
                    format!("{}. pgsalvage read the data files with the defaults instead; every finding judged with pg_control's values may be an effect of this damage", f.evidence.join("; ")),
                    "the server refuses to start (\"database files are incompatible with server\")",
                )
                .repair("rebuild pg_control from what the data directory shows: move it aside, then pgsalvage plan --reset-wal (rehearse first)", "what only WAL held; the settings return to defaults", true),
        };
        let mut g = g.with_check(f);
        g.at.relation = rel;
        out.push(g);
    }
    out
}

/// `control_next`: NextXID as pg_control has it, before the WAL after the checkpoint moves it
/// (`c` holds where replay leaves it): a reader comparing with `inspect` sees both.
fn from_tuples(
    dd: &DataDir,
    c: &ControlFile,
    control_next: crate::format::types::FullXid,
    problems: &[TupleProblem],
    name_of: &dyn Fn(&str) -> Option<String>,
) -> Vec<Finding> {
    // One finding per page and kind.
    let mut groups: BTreeMap<(String, u32, TupleProblemKind), Vec<&TupleProblem>> = BTreeMap::new();
    for p in problems {
        groups.entry((p.file.clone(), p.block, p.kind)).or_default().push(p);
    }
    let next = c.checkpoint.next_xid;
    let mut out = Vec::new();
    for ((file, block, kind), ps) in groups {
        let rel = name_of(&file);
        let what = rel.clone().unwrap_or_else(|| file.clone());
        let rows = rows_on(dd, &file, block, c).map(|n| format!("{n} rows")).unwrap_or_else(|| "its rows".into());
        let items: Vec<String> = ps.iter().map(|p| format!("ctid ({block},{}): {}", p.offnum, p.detail)).collect();
        let n = ps.len();
        // The verb agrees with the count: "1 tuple carries", "2 tuples carry".
        let v = |one: &'static str, many: &'static str| if n == 1 { one } else { many };
        let (tuples, nrows, pointers) = (count(n as u64, "tuple"), count(n as u64, "row"), count(n as u64, "line pointer"));
        let xids: Vec<Xid> = ps.iter().filter_map(|p| p.xid).collect();
        let mut f = match kind {
            TupleProblemKind::XidInFuture => {
                let x = xids.first().copied().unwrap_or(0);
                let seg = crate::format::xact::segment_file_name(crate::format::xact::ClogGeometry::new(c.database_block_size).segment_of(x));
                Finding::new(Code::TupleXidNeverAssigned, format!("{tuples} in block {block} of {what} {} transaction ids that were never assigned", v("carries", "carry")))
                    .explain(
                        format!("the cluster has assigned transaction ids only up to NextXID {} (epoch {}{}), yet {} xid {x}{}. No transaction with that id has ever run: the tuple header bytes are damaged. This is damaged tuple data, NOT missing commit status: the server asks for pg_xact/{seg} (\"could not access status of transaction {x}\"), but creating that file, with dd or otherwise, would be wrong — it makes a garbage tuple look committed or aborted at random, hides the real damage, and the next read of the page fails elsewhere.", next.xid(), next.epoch(), if control_next != next { format!("; pg_control says {}, the WAL after its checkpoint moves it when replayed", control_next.xid()) } else { String::new() }, v("the tuple names", "these tuples name"), if xids.len() > 1 { format!(" (and {} more)", xids.len() - 1) } else { String::new() }),
                        format!("every query that reads {} fails with \"could not access status of transaction {x}\"; pg_dump of the table fails", v("this tuple", "these tuples")),
                    )
                    .repair("freeze the tuples: mark xmin frozen and xmax invalid, as pg_surgery's heap_force_freeze does", format!("nothing is deleted, but the {nrows} may hold garbage: check {} after", v("it", "them")), true)
                    .repair("kill the tuples, as heap_force_kill does", nrows.clone(), false)
                    .repair("replace the page with an empty one, keeping its bytes as a salvage file", rows.clone(), false)
                    .repair("create the missing pg_xact file", "it is the wrong fix: no pg_xact file can hold the status of an xid that was never assigned; it makes the damaged tuple look committed or aborted at random", false)
            }
            TupleProblemKind::XidBeforeHorizon => Finding::new(Code::TupleXidBeforeHorizon, format!("{tuples} in block {block} of {what} {} unfrozen transaction ids older than the freeze horizon", v("has", "have")))
                .explain(
                    format!("every tuple older than oldestXID {} must be frozen; these are not, so their status would be looked up in pg_xact pages that may already be truncated away, or that belong to a later wraparound cycle. Either VACUUM missed them (a bug or damage) or their header bytes are damaged.", c.checkpoint.oldest_xid),
                    "queries reading them may fail with \"could not access status of transaction\", or see them with the status of an unrelated newer transaction",
                )
                .repair("freeze the tuples (they are older than any live transaction, so most likely committed)", "nothing if they were committed; an aborted row would reappear", true)
                .repair("kill the tuples", nrows.clone(), false),
            TupleProblemKind::MultiOutOfRange => Finding::new(Code::TupleMultixactOutOfRange, format!("{tuples} in block {block} of {what} {} multixacts outside the cluster's range", v("names", "name")))
                .explain(format!("xmax says it is a MultiXactId, but it lies outside [oldestMulti {}, NextMultiXactId {}): the header is damaged", c.checkpoint.oldest_multi_xid, c.checkpoint.next_multixact_id), "queries fail with \"MultiXactId has not been created yet\" or \"could not access status\"")
                .repair("clear xmax (mark it invalid)", "nothing, unless the row was really deleted by that multixact", true)
                .repair("kill the tuples", nrows.clone(), false),
            TupleProblemKind::HeaderInvalid => Finding::new(Code::TupleHeaderInvalid, format!("{tuples} in block {block} of {what} {} a header that contradicts the table", v("has", "have")))
                .explain("the attribute count or the data offset (t_hoff) in the tuple header does not fit the table's columns and the null bitmap: the header bytes are damaged, and the server would decode the row's values from the wrong bytes", "queries reading these rows fail or return garbage (\"invalid memory alloc request size\", \"invalid compression method id\"), or crash the backend")
                .repair("mark the tuples dead, as heap_force_kill does (their bytes stay in the page for salvage until the next VACUUM)", nrows.clone(), true)
                .repair("replace the page with an empty one, keeping its bytes as a salvage file", rows.clone(), false),
            TupleProblemKind::ChainBroken => {
                let mendable = ps.iter().all(|p| p.chain_fix.is_some());
                let f = Finding::new(Code::TupleChainBroken, format!("{} in block {block} of {what} {} update chains", count(n as u64, "line pointer"), v("breaks", "break")))
                    .explain("an updated row's versions are linked on the page by redirects and t_ctid, with flags saying which versions have no index entries of their own (heap-only); these links contradict each other, so an index scan follows them to the wrong tuple or to nothing", "index scans miss rows or return the wrong version; VACUUM and pruning may fail or remove live rows");
                if mendable {
                    f.repair("mend the links (bad redirects made dead, heap-only or HOT-updated flags cleared where nothing leads), then REINDEX TABLE so every row has its index entries", "nothing: every tuple stays", true)
                } else {
                    f.repair("two pointers lead to one version, or an aborted version was updated by a committed one: which is right cannot be told offline; REINDEX TABLE after checking the rows by hand", "unknown", false)
                }
            }
            TupleProblemKind::AttributeInvalid => {
                let nullable = ps.iter().all(|p| p.column.as_ref().is_some_and(|c| c.nullable));
                let mend_only = ps.iter().all(|p| p.toast_fix.is_some());
                let f = Finding::new(Code::TupleAttributeInvalid, format!("{tuples} in block {block} of {what} {} a value that cannot be decoded", v("holds", "hold")))
                    .explain("a value's length, TOAST tag, compression method or TOAST pointer is not one the server ever writes: the bytes of the row are damaged", if mend_only {
                        "the server still reads these values (it decompresses by the method in the value's own first chunk), but pg_amcheck reports the table corrupt, and the pointer's bytes are damaged: what else changed with them is unknown"
                    } else {
                        "queries reading these rows fail (\"invalid compression method id\", \"invalid memory alloc request size\", \"unexpected chunk number\") or crash the backend; pg_dump of the table fails"
                    });
                if mend_only {
                    f.repair("mend the TOAST pointers from their values' first chunks, which hold the compression method the server decompresses by (and set HEAP_HASEXTERNAL)", "nothing: every value stays", true)
                        .repair("set the values NULL", format!("the value of {nrows}, readable today"), false)
                } else if nullable {
                    f.repair("set the damaged values NULL: the rest of each row is kept (the damaged bytes stay in the rollback store's copy of the page); then REINDEX TABLE", format!("the damaged value of {nrows}; the rows stay"), true)
                        .repair("mark the tuples dead, as heap_force_kill does", nrows.clone(), false)
                } else {
                    f.repair("mark the tuples dead, as heap_force_kill does (their bytes stay in the page for salvage until the next VACUUM)", nrows.clone(), true)
                        .repair("replace the page with an empty one, keeping its bytes as a salvage file", rows.clone(), false)
                }
            }
            TupleProblemKind::ToastMissing => {
                let nullable = ps.iter().all(|p| p.column.as_ref().is_some_and(|c| c.nullable));
                let f = Finding::new(Code::TupleToastValueMissing, format!("{tuples} in block {block} of {what} {} to TOAST values that are missing or damaged", v("points", "point")))
                    .explain("a large value is stored out of line in the table's TOAST table, in numbered chunks; the chunks these rows point to are gone, out of sequence or of the wrong size (a lost or zeroed TOAST page, a damaged TOAST table)", "every query that reads these values fails (\"missing chunk number 0 for toast value ...\", \"unexpected chunk number\"); pg_dump of the table fails");
                if nullable {
                    f.repair("set the values whose chunks are gone NULL: the rest of each row is kept (the TOAST pointers stay in the rollback store's copy of the page); then REINDEX TABLE", format!("the lost value of {nrows} (already unreadable); the rows stay"), true)
                        .repair("mark the tuples dead, as heap_force_kill does", nrows.clone(), false)
                } else {
                    f.repair("mark the tuples dead, as heap_force_kill does: the column is NOT NULL, so the value cannot be set NULL", nrows.clone(), true)
                        .repair("put the TOAST table's file back from a backup (pgsalvage cannot: no copy of the chunks is known)", "nothing, if the backup holds the values", false)
                }
            }
            TupleProblemKind::PointerInvalid => Finding::new(Code::TuplePointerInvalid, format!("{pointers} in block {block} of {what} {} outside the page or at garbage", v("points", "point")))
                .explain("a line pointer gives the offset and length of a tuple; these do not fit the page, so reading them can crash the server or return garbage", "queries reading the page may crash the backend")
                .repair("mark the broken line pointers dead without storage, as heap_force_kill does", nrows.clone(), true)
                .repair("replace the page with an empty one, keeping its bytes as a salvage file", rows.clone(), false),
            TupleProblemKind::PointerHidesRow => Finding::new(Code::TuplePointerHidesRow, format!("{nrows} in block {block} of {what} {} hidden: their line pointers say unused or dead, yet the tuples are intact", v("is", "are")))
                .explain("PostgreSQL zeroes the offset and length of every line pointer it makes unused or dead on a heap page; these still point at whole tuples, so their flag bits were damaged. No query, pg_dump or amcheck sees the rows", "the rows are silently missing; the next VACUUM or pruning of the page discards them for good")
                .repair("restore the line pointers to normal: the tuples are visible again under the usual visibility rules", "nothing", true)
                .repair("mark them dead without storage", nrows.clone(), false),
            TupleProblemKind::HintContradiction => Finding::new(Code::TupleHintContradiction, format!("{tuples} in block {block} of {what} {} contradictory hint bits", v("has", "have")))
                .explain("the server never sets these hint bit combinations; the header bytes changed", "visibility of these rows may be wrong")
                .repair("clear the xmax hint bits so the server looks the status up in pg_xact again", "nothing: pg_xact decides whether the row was deleted", true),
        };
        f.at.relation = rel;
        f.at.file = Some(file.clone());
        f.at.block = Some(block);
        if let (Some(a), Some(b)) = (xids.iter().min(), xids.iter().max()) {
            f.at.xids = Some((*a, *b));
        }
        f.evidence = items;
        out.push(f);
    }
    out
}

/// Whether `text` holds `word` followed by exactly the number `n` (not a longer number).
fn says(text: &str, word: &str, n: u32) -> bool {
    let needle = format!("{word}{n}");
    text.match_indices(&needle).any(|(i, _)| !text[i + needle.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// Attach each relevant log line to the finding that explains it.
fn attach_logs(fs: &mut [Finding], logs: &[LogLine], unexplained: &mut Vec<LogLine>) {
    let wal_damage = fs.iter().any(|f| matches!(f.code, Code::WalLost | Code::WalCheckpointUnreadable));
    for l in logs {
        let hit = fs.iter_mut().find(|f| match &l.event {
            LogEvent::XactStatusMissing { xid } => match f.code {
                Code::TupleXidNeverAssigned | Code::TupleXidBeforeHorizon => f.at.xids.is_some_and(|(a, b)| *xid >= a && *xid <= b),
                // At startup the server reads the pg_xact page of NextXID itself, one past the
                // last xid whose status is lost: that failure is the same finding.
                Code::XactStatusLost => f.at.xids.is_some_and(|(a, b)| xid.wrapping_sub(a) <= b.wrapping_sub(a).saturating_add(1)),
                _ => false,
            },
            LogEvent::XactFileMissing { file } => {
                let seg = file.rsplit('/').next().unwrap_or("");
                (f.code == Code::XactStatusLost && f.at.file.as_deref().is_some_and(|p| p.ends_with(seg)))
                    || (f.code == Code::TupleXidNeverAssigned && f.explanation.contains(&format!("pg_xact/{seg}")))
            }
            LogEvent::InvalidPage { block, relation } => {
                matches!(f.code, Code::PageInvalid | Code::PageChecksumFailure)
                    && f.at.block == Some(*block)
                    && f.at.file.as_deref().is_some_and(|p| p.split('.').next() == Some(relation.as_str()) || p == relation)
            }
            LogEvent::ChecksumFailure { calculated, expected } => {
                // check words it "calculated checksum X but expected Y", or "calculated X but
                // expected Y" when the header is bad too: the numbers are what identify it.
                matches!(f.code, Code::PageChecksumFailure | Code::PageInvalid)
                    && f.evidence
                        .iter()
                        .any(|e| (says(e, "calculated checksum ", *calculated) || says(e, "calculated ", *calculated)) && says(e, "expected ", *expected))
            }
            LogEvent::NoCheckpointRecord => matches!(f.code, Code::WalCheckpointUnreadable | Code::WalLost | Code::ControlUnreadable),
            LogEvent::ControlFileRefused => matches!(f.code, Code::ControlUnreadable | Code::ControlCrcMismatch | Code::ControlValuesInvalid),
            LogEvent::NoSpace | LogEvent::CorruptionHint => f.code == Code::NotCorruptionWalDiskFull,
            LogEvent::InterruptedRecovery => f.code == Code::NotCorruptionWalDiskFull || f.code == Code::ClusterState,
            // Where WAL is not damaged, "invalid record length ... wanted 24, got 0" is how
            // crash recovery meets the normal end of WAL: part of the cluster's state.
            LogEvent::InvalidRecordLength if wal_damage => matches!(f.code, Code::WalLost | Code::WalCheckpointUnreadable),
            LogEvent::InvalidRecordLength => f.code == Code::ClusterState,
            LogEvent::InvalidPagesReferenced => matches!(f.code, Code::WalLost | Code::PageInvalid | Code::RelationFileDamaged),
            LogEvent::MultixactMissing { .. } => f.code == Code::TupleMultixactOutOfRange,
        });
        match hit {
            Some(f) => f.log.push(format!("{}:{}: {}", l.file, l.line, l.text)),
            None => unexplained.push(l.clone()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The server's log lines land on the finding that explains them, by the numbers they
    /// carry (issue 16: a checksum line quoted in an invalid-header finding's evidence, and the
    /// startup failure on the pg_xact page of NextXID, were listed as unexplained).
    #[test]
    fn log_lines_find_their_finding() {
        let log = "2026-11-30 10:00:00 UTC [1] WARNING:  page verification failed, calculated checksum 28170 but expected 47149\n\
                   2026-11-30 10:00:01 UTC [2] FATAL:  could not access status of transaction 6737\n\
                   2026-11-30 10:00:02 UTC [3] WARNING:  page verification failed, calculated checksum 2817 but expected 4714\n";
        let lines = log::parse("server.log", log);
        assert_eq!(lines.len(), 3);
        let mut page = Finding::new(Code::PageInvalid, "invalid page header in block 3 of t");
        page.evidence = vec!["pd_lower 32767 > pd_upper 272".into(), "checksum also fails: calculated 28170 but expected 47149".into()];
        let mut xact = Finding::new(Code::XactStatusLost, "commit status of transactions 6000..6736 is lost");
        xact.at.xids = Some((6000, 6736));
        let mut fs = vec![page, xact];
        let mut unexplained = Vec::new();
        attach_logs(&mut fs, &lines, &mut unexplained);
        assert_eq!(fs[0].log.len(), 1, "{:?}", fs[0].log);
        assert_eq!(fs[1].log.len(), 1, "{:?}", fs[1].log);
        // Numbers that only share a prefix are not the same numbers.
        assert_eq!(unexplained.len(), 1);
        assert!(unexplained[0].text.contains("2817 but expected 4714"));
    }

    #[test]
    fn says_matches_whole_numbers() {
        assert!(says("calculated 28170 but expected 47149", "expected ", 47149));
        assert!(!says("calculated 28170 but expected 47149", "expected ", 4714));
        assert!(!says("expected 4714", "expected ", 47149));
    }
}
