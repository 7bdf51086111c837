use super::{json, out, EXIT_FINDINGS, EXIT_OK};
use pgsalvage::datadir::DataDir;
use pgsalvage::rehearse::{self, RehearseOptions, Report};
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RehearseArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// The plan to rehearse (made by `pgsalvage plan`)
    #[arg(long, value_name = "PLAN.json")]
    pub plan: PathBuf,
    /// Rehearse on a restore of this snapshot instead of a copy of DATADIR
    #[arg(long, value_name = "FILE.tar.zst")]
    pub from_snapshot: Option<PathBuf>,
    /// The server binaries to use (default: found by major)
    #[arg(long, value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,
    /// Where the scratch copy goes (default: the temporary directory)
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Keep the scratch copy
    #[arg(long)]
    pub keep: bool,
    /// Write the report as PREFIX.txt, PREFIX.json and PREFIX.html
    #[arg(long, value_name = "PREFIX")]
    pub report: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn text(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "rehearsal of the plan on a copy of {} (cluster {}), plan sha256 {}, {} by {}\nverdict: {}\n",
        r.data_directory,
        r.system_identifier,
        &r.plan_sha256[..16.min(r.plan_sha256.len())],
        r.made,
        r.tool,
        r.verdict
    );
    for c in &r.checks {
        let _ =
            writeln!(s, "  [{}] {}{}", if c.ok { "ok" } else { "FAILED" }, c.what, if c.detail.is_empty() { String::new() } else { format!(": {}", c.detail) });
    }
    if !r.not_fixed.is_empty() {
        let _ = writeln!(s, "\ndoes not fix:");
        for n in &r.not_fixed {
            let _ = writeln!(s, "  {n}");
        }
    }
    if !r.loses.is_empty() {
        let _ = writeln!(s, "\nloses:");
        for l in &r.loses {
            let _ = writeln!(s, "  {l}");
        }
    }
    if let Some(k) = &r.kept {
        let _ = writeln!(s, "\nkept (--keep): the copy, its rollback store and the server logs are in {k} (0700; remove it with rm -rf {k})");
    }
    let _ = writeln!(s, "\ntimeline:");
    for (t, e) in &r.timeline {
        let _ = writeln!(s, "  {t:6.1} s  {e}");
    }
    if !r.log.is_empty() {
        let _ = writeln!(s, "\nserver log lines that matter:");
        for l in r.log.iter().take(30) {
            let _ = writeln!(s, "  {l}");
        }
    }
    s
}

/// A stage of the rehearsal on standard error (a terminal only).
fn progress(stage: &str) {
    eprintln!("pgsalvage: {stage}");
}

pub fn run(a: &RehearseArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let (p, bytes) = super::load_plan(&a.plan)?;
    let r = rehearse::rehearse(
        &dd,
        &p,
        &bytes,
        &RehearseOptions {
            from_snapshot: a.from_snapshot.clone(),
            pg_bin: a.pg_bin.clone(),
            workdir: a.workdir.clone(),
            keep: a.keep,
            progress: std::io::IsTerminal::is_terminal(&std::io::stderr()).then_some(progress as fn(&str)),
        },
    )?;
    if let Some(prefix) = &a.report {
        let with = |ext: &str| PathBuf::from(format!("{}.{ext}", prefix.display()));
        for (path, body) in [(with("txt"), text(&r)), (with("json"), serde_json::to_string_pretty(&r)?), (with("html"), rehearse::html(&r))] {
            let _ = std::fs::remove_file(&path);
            pgsalvage::fsx::write_new_file(&path, body.as_bytes(), 0o600)?;
        }
    }
    if a.json {
        json(&r)?;
    } else {
        out(&text(&r))?;
    }
    Ok(if r.safe { EXIT_OK } else { EXIT_FINDINGS })
}
