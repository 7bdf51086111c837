use super::{json, out, Bar, EXIT_FINDINGS, EXIT_OK};
use pgsalvage::datadir::DataDir;
use pgsalvage::diagnose::{diagnose, DiagnoseOptions, Diagnosis};
use pgsalvage::finding::Severity;
use pgsalvage::units::count;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct DiagnoseArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// A server log file to explain (stderr with any log_line_prefix, csvlog or jsonlog); repeatable
    #[arg(long = "log", value_name = "FILE")]
    pub log: Vec<PathBuf>,
    /// Worker threads (default: one per core)
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    pub jobs: Option<usize>,
    /// Read even though a server is running (read-only; findings may be artefacts of pages being written)
    #[arg(long)]
    pub allow_running: bool,
    /// A directory of archived WAL (archive_command's target, a backup's WAL): plain,
    /// .gz, .zst or .lz4 segments, .partial and .history files; repeatable
    #[arg(long = "wal-archive", value_name = "DIR")]
    pub wal_archive: Vec<PathBuf>,
    /// Another copy of this cluster's data directory (a snapshot restored elsewhere, a stopped
    /// standby): a damaged page it holds with the same LSN is restored from it; repeatable
    #[arg(long = "page-source", value_name = "DIR")]
    pub page_source: Vec<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: &DiagnoseArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let mut logs = Vec::new();
    for p in &a.log {
        let b = std::fs::read(p).map_err(|e| pgsalvage::error::Error::io("read log file", p, e))?;
        logs.push((p.display().to_string(), String::from_utf8_lossy(&b).into_owned()));
    }
    let bar = Bar::new("reading pages", 0, a.json);
    let d = diagnose(
        &dd,
        &DiagnoseOptions {
            logs,
            jobs: a.jobs,
            allow_running: a.allow_running,
            wal_archives: super::wal_archives(&a.wal_archive)?,
            page_sources: super::readable_dirs("--page-source", &a.page_source)?,
        },
        bar.as_progress(),
    );
    bar.finish();
    let d = d?;
    if let Some(pid) = d.read_while_running {
        eprintln!("pgsalvage: warning: a postmaster (pid {pid}) is running on this data directory; pages being written now may be reported as damaged: the result is possibly inconsistent");
    }
    if a.json {
        json(&d)?;
    } else {
        out(&render(&d))?;
    }
    Ok(if d.damage() > 0 { EXIT_FINDINGS } else { EXIT_OK })
}

fn wrap(s: &mut String, indent: usize, text: &str) {
    let width = 100usize.saturating_sub(indent).max(40);
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > width {
            let _ = writeln!(s, "{:indent$}{line}", "");
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        let _ = writeln!(s, "{:indent$}{line}", "");
    }
}

pub fn render(d: &Diagnosis) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "pgsalvage diagnose of {} (PostgreSQL {})", d.data_directory, d.major.map(|m| m.to_string()).unwrap_or_else(|| "?".into()));
    if let Some(pid) = d.read_while_running {
        wrap(&mut s, 0, &format!("READ WHILE THE SERVER RAN (postmaster pid {pid}): pages being written may look damaged and counters move; treat every finding as possibly inconsistent, and stop the server before planning a repair."));
    }
    for (sev, head) in [(Severity::Error, "ERRORS"), (Severity::Warning, "WARNINGS"), (Severity::Info, "FOR INFORMATION")] {
        let fs: Vec<_> = d.findings.iter().filter(|f| f.severity == sev).collect();
        if fs.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n== {head} ({}) ==", fs.len());
        for f in fs {
            let _ = writeln!(s, "\n[{}] {}", f.code, f.title);
            if !f.at.is_empty() {
                wrap(&mut s, 2, &format!("where: {}", f.at));
            }
            wrap(&mut s, 2, &format!("what it means: {}", f.explanation));
            if !f.if_nothing_is_done.is_empty() {
                wrap(&mut s, 2, &format!("if nothing is done: {}", f.if_nothing_is_done));
            }
            for (i, r) in f.repairs.iter().enumerate() {
                wrap(&mut s, 2, &format!("{} {}. {} — loses: {}", if r.least_loss { "*" } else { " " }, i + 1, r.action, r.loses));
            }
            for e in f.evidence.iter().take(8) {
                wrap(&mut s, 4, &format!("- {e}"));
            }
            if f.evidence.len() > 8 {
                let _ = writeln!(s, "    - ... {} more (see --json)", f.evidence.len() - 8);
            }
            for l in &f.log {
                wrap(&mut s, 4, &format!("log: {l}"));
            }
        }
    }
    if !d.unexplained_log.is_empty() {
        let _ = writeln!(s, "\nLog lines no finding explains:");
        for l in &d.unexplained_log {
            wrap(&mut s, 2, &format!("{}:{}: {}", l.file, l.line, l.text));
        }
    }
    let errors = d.findings.iter().filter(|f| f.severity == Severity::Error).count();
    let warnings = d.findings.iter().filter(|f| f.severity == Severity::Warning).count();
    let starred = d.findings.iter().any(|f| f.repairs.iter().any(|r| r.least_loss));
    let _ = writeln!(
        s,
        "\n{}, {}; {} and {} scanned.{}",
        count(errors as u64, "error"),
        count(warnings as u64, "warning"),
        count(d.heap_pages_scanned, "heap page"),
        count(d.tuples_scanned, "tuple"),
        if starred { " Repairs marked * lose the least." } else { "" }
    );
    s
}
