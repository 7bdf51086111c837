//! `check`: one read of the whole data directory that says exactly what is damaged —
//! relation pages (header checks as the server makes them, data checksums), the pg_xact
//! segments the live xid window needs, and the WAL from the REDO point to its end.
//! Read-only; memory bounded by the scan window per thread, whatever the cluster size.

mod pages;
mod wal;
mod xact;

use crate::datadir::DataDir;
use crate::error::Result;
use crate::finding::{Area, Finding, Severity};
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

/// No progress reporting.
pub struct Quiet;
impl Progress for Quiet {}

#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Worker threads; None = one per core.
    pub jobs: Option<usize>,
    /// Check only one area.
    pub only: Option<Area>,
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
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// Findings that count as damage (errors and warnings).
    pub fn damage(&self) -> usize {
        self.findings.iter().filter(|f| f.severity <= Severity::Warning).count()
    }
}

/// Run the checks. pg_control must be decodable (its CRC may be wrong: that is a finding,
/// and the values are used as they are).
pub fn check(dd: &DataDir, opts: &CheckOptions, progress: &dyn Progress) -> Result<CheckReport> {
    let started = Instant::now();
    let (raw, crc, _) = dd.control()?;
    let (control, notes) = raw.with_usable_geometry();
    let mut findings = Vec::new();
    if !notes.is_empty() {
        let mut f = Finding::new("control-values-invalid", Area::Control, "pg_control holds a page or WAL geometry PostgreSQL does not allow".to_string())
            .file(crate::datadir::CONTROL_PATH);
        f.evidence = notes;
        findings.push(f);
    }
    if !crc.ok() {
        findings.push(
            Finding::new(
                "control-crc-mismatch",
                Area::Control,
                format!("pg_control CRC mismatch: stored {:#010x}, computed {:#010x}", crc.stored, crc.computed),
            )
            .file(crate::datadir::CONTROL_PATH)
            .offset(crc.offset as u64),
        );
    }
    let want = |a: Area| opts.only.is_none_or(|o| o == a);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(opts.jobs.unwrap_or(0))
        .build()
        .map_err(|e| crate::error::Error::Usage(format!("cannot start worker threads: {e}")))?;
    // Pages in parallel on the pool; WAL and pg_xact on this thread meanwhile.
    let (pages, (xact, wal)) = pool.install(|| {
        rayon::join(
            || want(Area::Pages).then(|| pages::scan(dd, &control, progress)),
            || (want(Area::Xact).then(|| xact::scan(dd, &control)), want(Area::Wal).then(|| wal::scan(dd, &control))),
        )
    });
    let pages = pages.transpose()?;
    let xact = xact.transpose()?;
    let wal = wal.transpose()?;
    let mut wal = wal;
    if let (Some((p, _)), Some((w, wf))) = (pages.as_ref(), wal.as_mut()) {
        findings.extend(pages_past_wal(p, w, wf));
    }
    for part in [pages.as_ref().map(|p| &p.1), xact.as_ref().map(|x| &x.1), wal.as_ref().map(|w| &w.1)].into_iter().flatten() {
        findings.extend(part.iter().cloned());
    }
    findings.sort_by(|a, b| (a.severity, a.area, &a.file, a.block, a.lsn).cmp(&(b.severity, b.area, &b.file, b.block, b.lsn)));
    Ok(CheckReport {
        data_directory: dd.root().display().to_string(),
        major: control.major,
        findings,
        pages: pages.map(|p| p.0),
        xact: xact.map(|x| x.0),
        wal: wal.map(|w| w.0),
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
    if let Some(brk) = wf.iter_mut().find(|f| matches!(f.code, "wal-segment-missing" | "wal-record-broken")) {
        brk.evidence.push(format!(
            "{} page(s) carry LSNs past the end of valid WAL {}, up to {} (first: {} block {}): the server wrote them from WAL that is lost",
            past.len(),
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
                "page-lsn-past-wal",
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
            last.evidence.push(format!("{} more page(s) like it are not listed", past.len() - shown));
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
