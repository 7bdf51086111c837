//! `check`: one read of the whole data directory that says exactly what is damaged —
//! relation pages (header checks as the server makes them, data checksums), the pg_xact
//! segments the live xid window needs, and the WAL from the REDO point to its end.
//! Read-only; memory bounded by the scan window per thread, whatever the cluster size.

pub mod control;
mod pages;
mod wal;
mod xact;

use crate::datadir::DataDir;
use crate::error::Result;
use crate::finding::{Area, Code, Finding, Severity};
use crate::format::control::ControlFile;
use crate::format::version::PgMajor;
use serde::Serialize;
use std::time::Instant;

pub use pages::PageSummary;
pub use wal::{Advance, WalSummary};
pub use xact::XactSummary;

/// Receives progress in bytes (the CLI draws a bar on a TTY; the library stays silent).
pub trait Progress: Sync {
    fn start(&self, _total_bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}

/// How a WAL finding's evidence starts when a whole copy of the missing segment is found.
pub const COPY_ELSEWHERE: &str = "a whole copy of it is in";

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Worker threads; None = one per core.
    pub jobs: Option<usize>,
    /// Check only one area.
    pub only: Option<Area>,
    /// Directories of archived WAL (see [`crate::inventory`]).
    pub wal_archives: Vec<std::path::PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub data_directory: String,
    pub major: PgMajor,
    pub findings: Vec<Finding>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<PageSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xact: Option<XactSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal: Option<WalSummary>,
    /// Every file of WAL in pg_wal and the archives, by what its pages hold.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wal_inventory: Option<std::sync::Arc<crate::inventory::Inventory>>,
    /// What pg_control's fields rest on, when it is damaged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<control::ControlEvidence>,
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// Findings that count as damage (errors and warnings).
    pub fn damage(&self) -> usize {
        self.findings.iter().filter(|f| f.severity <= Severity::Warning).count()
    }
}

/// Run the checks. pg_control is examined first ([`control::examine`]): when it is damaged,
/// the directory is judged with the values the evidence gives, and the damage is one root
/// finding that lists each field.
pub fn check(dd: &DataDir, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    check_with(dd, opts, progress, control::examine(dd))
}

/// The values to read the directory with: pg_control's when intact, else those the
/// evidence gives (an error only when nothing at all can be built).
pub fn trusted_control(dd: &DataDir) -> Result<ControlFile> {
    let ev = control::examine(dd);
    match ev.trusted {
        Some(c) => Ok(c.with_usable_geometry().0),
        None => dd.control().map(|(c, _, _)| c.with_usable_geometry().0),
    }
}

/// The root finding for a damaged pg_control, for check and diagnose alike.
pub fn control_root(ev: &control::ControlEvidence) -> Option<Finding> {
    let (code, what) = match &ev.condition {
        control::Condition::Intact => return None,
        control::Condition::CrcMismatch { stored, computed, .. } => {
            (Code::ControlCrcMismatch, format!("pg_control CRC mismatch: stored {stored:#010x}, computed {computed:#010x}"))
        }
        control::Condition::ValuesInvalid { problems } => {
            (Code::ControlValuesInvalid, format!("pg_control holds values PostgreSQL does not allow: {}", problems.join("; ")))
        }
        control::Condition::Unreadable { reason } => (Code::ControlUnreadable, format!("pg_control cannot be read: {reason}")),
    };
    let (c, x, r, u) = (
        ev.count(control::Verdict::Confirmed),
        ev.count(control::Verdict::Contradicted),
        ev.count(control::Verdict::Rebuilt),
        ev.count(control::Verdict::Unverifiable),
    );
    let tail = match (&ev.not_rebuildable, ev.checkpoint_record) {
        (None, Some(l)) => format!("; each field checked against evidence outside it: {c} confirmed, {x} contradicted, {r} absent and taken from the evidence, {u} unverifiable; the checkpoint record at {l} is readable, so it can be rewritten without a WAL reset"),
        (Some(why), _) => format!("; no rebuild from evidence ({why})"),
        _ => String::new(),
    };
    let mut f = Finding::new(code, Area::Control, format!("{what}{tail}")).file(crate::datadir::CONTROL_PATH);
    if let control::Condition::CrcMismatch { offset, .. } = ev.condition {
        f = f.offset(offset as u64);
    }
    f.evidence = ev.lines();
    Some(f)
}

/// [`check`] with pg_control already examined.
pub fn check_with(dd: &DataDir, opts: &CheckOptions, progress: &dyn Progress, ev: control::ControlEvidence) -> Result<CheckReport> {
    let started = Instant::now();
    let raw = match &ev.trusted {
        Some(c) => c.clone(),
        None => dd.control()?.0,
    };
    let (control, notes) = raw.with_usable_geometry();
    let mut findings = Vec::new();
    findings.extend(control_root(&ev));
    if !notes.is_empty() && ev.intact() {
        let mut f = Finding::new(Code::ControlValuesInvalid, Area::Control, "pg_control holds a page or WAL geometry PostgreSQL does not allow".to_string())
            .file(crate::datadir::CONTROL_PATH);
        f.evidence = notes;
        findings.push(f);
    }
    let want = |a: Area| opts.only.is_none_or(|o| o == a);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .build()
        .map_err(|e| crate::error::Error::Internal(format!("cannot start worker threads: {e}")))?;
    // Pages in parallel on the pool; WAL and pg_xact on this thread meanwhile.
    let (pages, (xact, wal, inventory)) = pool.install(|| {
        rayon::join(
            || want(Area::Pages).then(|| pages::scan(dd, &control, progress)),
            || {
                let inventory = want(Area::Wal).then(|| std::sync::Arc::new(crate::inventory::Inventory::scan(dd, &control, &opts.wal_archives)));
                (want(Area::Xact).then(|| xact::scan(dd, &control)), want(Area::Wal).then(|| wal::scan(dd, &control)), inventory)
            },
        )
    });
    let pages = pages.transpose()?;
    let xact = xact.transpose()?;
    let wal = wal.transpose()?;
    let mut wal = wal;
    if let (Some(inv), Some((_, wf))) = (inventory.as_ref(), wal.as_mut()) {
        wal::copies_elsewhere(inv, &control, wf);
    }
    if let (Some((p, _)), Some((w, wf))) = (pages.as_ref(), wal.as_mut()) {
        findings.extend(pages_past_wal(p, w, wf));
    }
    for part in [pages.as_ref().map(|p| &p.1), xact.as_ref().map(|x| &x.1), wal.as_ref().map(|w| &w.1)].into_iter().flatten() {
        findings.extend(part.iter().cloned());
    }
    findings.sort_by(|a, b| (a.severity, a.area, &a.at.file, a.at.block, a.at.lsn).cmp(&(b.severity, b.area, &b.at.file, b.at.block, b.at.lsn)));
    Ok(CheckReport {
        data_directory: dd.root().display().to_string(),
        major: control.major,
        findings,
        pages: pages.map(|p| p.0),
        xact: xact.map(|x| x.0),
        wal: wal.map(|w| w.0),
        wal_inventory: inventory,
        control: (!ev.intact()).then_some(ev),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// Pages whose pd_lsn lies past the end of valid WAL. The server flushes WAL up to a page's
/// LSN before it writes the page, so no healthy page is ever past the WAL that reached disk
/// (crash or not). Where WAL breaks (a lost segment, a broken record), such pages are
/// evidence of what was lost and go into that finding; where the checkpoint record cannot
/// even be reached, the end of WAL says nothing and they are not judged; otherwise each is a
/// finding of its own (a damaged pd_lsn, or WAL lost from its tail, which nothing else in the
/// data directory shows).
fn pages_past_wal(p: &PageSummary, w: &WalSummary, wf: &mut [Finding]) -> Vec<Finding> {
    let end = w.end_of_valid_wal.0;
    let mut past: Vec<&(String, u32, u64)> = p.late_pages.iter().filter(|(_, _, l)| *l > end).collect();
    if past.is_empty() {
        return vec![];
    }
    past.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let max = past.iter().map(|x| x.2).max().unwrap_or(end);
    if let Some(brk) = wf.iter_mut().find(|f| matches!(f.code, Code::WalSegmentMissing | Code::WalRecordBroken)) {
        brk.evidence.push(format!(
            "{} carry LSNs past the end of valid WAL {}, up to {} (first: {} block {}): the server wrote them from WAL that is lost",
            crate::units::count(past.len() as u64, "page"),
            crate::format::types::Lsn(end),
            crate::format::types::Lsn(max),
            past[0].0,
            past[0].1
        ));
        return vec![];
    }
    if !w.checkpoint_record_ok {
        return vec![];
    }
    let shown = 100;
    let mut out: Vec<Finding> = past
        .iter()
        .take(shown)
        .map(|(file, block, lsn)| {
            Finding::new(
                Code::PageLsnPastWal,
                Area::Pages,
                format!("block {block} of {file} has pd_lsn {}, past the end of valid WAL {}", crate::format::types::Lsn(*lsn), crate::format::types::Lsn(end)),
            )
            .file(file.clone())
            .block(*block)
            .lsn(crate::format::types::Lsn(*lsn))
            .evidence("the server flushes WAL up to a page's LSN before it writes the page: the next write of this one makes every checkpoint fail (\"xlog flush request ... is not satisfied\")")
        })
        .collect();
    if past.len() > shown {
        if let Some(last) = out.last_mut() {
            last.evidence.push(format!("{} more like it not listed", crate::units::count((past.len() - shown) as u64, "page")));
        }
    }
    out
}

/// The highest pd_lsn of any page the server accepts, read with the geometry of `c` (which
/// may be a rebuilt pg_control): where a WAL reset must start past.
pub fn max_page_lsn(dd: &DataDir, c: &ControlFile) -> Result<crate::format::types::Lsn> {
    pages::scan(dd, c, &Quiet).map(|(p, _)| p.max_page_lsn)
}

/// The tablespace version directory name of a cluster: `PG_<major>_<catversion>`.
pub fn version_dir(c: &ControlFile) -> String {
    format!("PG_{}_{}", c.major, c.catalog_version_no)
}
