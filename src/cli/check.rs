use super::{json, out, EXIT_FINDINGS, EXIT_OK};
use clap::ValueEnum;
use pgsalvage::check::{CheckOptions, CheckReport};
use pgsalvage::datadir::DataDir;
use pgsalvage::finding::{Area, Severity};
use pgsalvage::units::count;
use pgsalvage::units::human_size as size;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct CheckArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// Worker threads (default: one per core)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Check only one area
    #[arg(long, value_enum)]
    pub only: Option<Only>,
    /// A directory of archived WAL (archive_command's target, a backup's WAL): plain,
    /// .gz, .zst or .lz4 segments, .partial and .history files; repeatable
    #[arg(long = "wal-archive", value_name = "DIR")]
    pub wal_archive: Vec<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum Only {
    Pages,
    Xact,
    Wal,
}

pub fn run(a: &CheckArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    if let pgsalvage::datadir::Postmaster::Alive { pid } = dd.postmaster() {
        eprintln!("pgsalvage: warning: a postmaster (pid {pid}) is running on this data directory; pages being written now may be reported as damaged");
    }
    let only = a.only.map(|o| match o {
        Only::Pages => Area::Pages,
        Only::Xact => Area::Xact,
        Only::Wal => Area::Wal,
    });
    let opts = CheckOptions { jobs: a.jobs, only, wal_archives: super::wal_archives(&a.wal_archive)? };
    let bar = super::Bar::new("checking pages", 0, a.json);
    let report = pgsalvage::check::check(&dd, &opts, bar.as_progress());
    bar.finish();
    let report = report?;
    if a.json {
        json(&report)?;
    } else {
        out(&render(&report))?;
    }
    Ok(if report.damage() > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

pub fn render(r: &CheckReport) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pgsalvage check of {} (PostgreSQL {})\n", r.data_directory, r.major);
    for f in &r.findings {
        let sev = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "INFO",
        };
        let _ = writeln!(s, "{sev:<8}{:<28}{}", f.code, f.at);
        let _ = writeln!(s, "{:8}{}", "", f.message);
        for e in &f.evidence {
            let _ = writeln!(s, "{:8}- {e}", "");
        }
    }
    if !r.findings.is_empty() {
        let _ = writeln!(s);
    }
    let bad = |area: Area| r.findings.iter().filter(|f| f.area == area && f.severity <= Severity::Warning).count();
    let verdict = |n: usize| if n == 0 { "ok".to_string() } else { count(n as u64, "problem") };
    let _ = writeln!(s, "{:<9}{:<12}scanned", "area", "result");
    if let Some(p) = &r.pages {
        let what = format!(
            "{}, {}, {} ({} all-zero), checksums {}",
            count(p.files as u64, "relation file"),
            size(p.bytes),
            count(p.blocks, "block"),
            p.all_zero_blocks,
            if p.checksums_verified { "verified" } else { "off in this cluster" }
        );
        let _ = writeln!(s, "{:<9}{:<12}{what}", "pages", verdict(bad(Area::Pages)));
    }
    if let Some(x) = &r.xact {
        let segs = match (x.segments_needed.first(), x.segments_needed.last()) {
            (Some(a), Some(b)) if a != b => format!("segments {a}..{b}"),
            (Some(a), _) => format!("segment {a}"),
            _ => "no segment".into(),
        };
        let what = format!("xids {}..{} (oldestXID..NextXID): {} in {segs}", x.oldest_xid, x.next_xid, count(x.pages_needed as u64, "page"));
        let _ = writeln!(s, "{:<9}{:<12}{what}", "pg_xact", verdict(bad(Area::Xact)));
    }
    if let Some(w) = &r.wal {
        let what = format!(
            "{} .. {} ({}, {}, {}), checkpoint record {}",
            w.redo_lsn,
            w.end_of_valid_wal,
            size(w.bytes),
            count(w.records, "record"),
            count(w.segments_replayed.len() as u64, "segment"),
            if w.checkpoint_record_ok { "ok" } else { "NOT readable" }
        );
        let _ = writeln!(s, "{:<9}{:<12}{what}", "WAL", verdict(bad(Area::Wal)));
        let _ = writeln!(s, "{:21}end of valid WAL: {}", "", w.end_reason);
        if let Some(inv) = &r.wal_inventory {
            for line in inv.lines() {
                let _ = writeln!(s, "{:21}{line}", "");
            }
        }
    }
    let errors = r.findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = r.findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let _ = writeln!(s, "\n{}, {} in {:.1} s", count(errors as u64, "error"), count(warnings as u64, "warning"), r.elapsed_ms as f64 / 1000.0);
    // check reads what the server checks when it reads a block; the tuples inside are
    // diagnose's (a garbage xid leaves every page header and checksum intact).
    let _ = writeln!(s, "check reads page headers, checksums, pg_xact and WAL, not the tuples inside the pages: `pgsalvage diagnose` reads those too.");
    s
}
