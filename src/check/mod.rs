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
pub use wal::WalSummary;
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
    let (control, crc, _) = dd.control()?;
    let mut findings = Vec::new();
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

/// The tablespace version directory name of a cluster: `PG_<major>_<catversion>`.
pub fn version_dir(c: &ControlFile) -> String {
    format!("PG_{}_{}", c.major, c.catalog_version_no)
}
