use super::{json, out, EXIT_FINDINGS, EXIT_OK};
use clap::ValueEnum;
use pgsalvage::datadir::DataDir;
use pgsalvage::plan::{self, Plan, PlanOptions, XactPolicy};
use pgsalvage::units::count;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(Clone, Copy, ValueEnum)]
pub enum Policy {
    /// Statuses from WAL and hint bits; every xid without evidence set ABORTED (no committed row is invented)
    Infer,
    /// Every xid without evidence set COMMITTED (rows of aborted transactions may reappear)
    Committed,
    /// Every xid without evidence set ABORTED (rows of committed transactions may vanish)
    Aborted,
}

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// The plan file to write (must not exist)
    #[arg(short = 'o', long = "output", value_name = "PLAN.json")]
    pub output: PathBuf,
    /// Status for lost transactions with no evidence in WAL or hint bits (infer sets them aborted)
    #[arg(long, value_enum, default_value_t = Policy::Infer)]
    pub xact_status: Policy,
    /// Allow emptying pages that cannot be rebuilt (the default)
    #[arg(long, overrides_with = "no_zero_pages")]
    pub zero_pages: bool,
    /// Never plan emptying a page
    #[arg(long)]
    pub no_zero_pages: bool,
    /// Allow planning a WAL reset where WAL is lost
    #[arg(long, overrides_with = "no_reset_wal")]
    pub reset_wal: bool,
    /// Never plan a WAL reset (the default)
    #[arg(long)]
    pub no_reset_wal: bool,
    /// Accept the current content of pages whose checksum fails (the content may be wrong)
    #[arg(long)]
    pub accept_checksum_failures: bool,
    /// Where to move pg_wal when its file system is full
    #[arg(long, value_name = "DIR")]
    pub wal_dir: Option<String>,
    /// A directory of archived WAL (archive_command's target, a backup's WAL): plain,
    /// .gz, .zst or .lz4 segments, .partial and .history files; repeatable
    #[arg(long = "wal-archive", value_name = "DIR")]
    pub wal_archive: Vec<PathBuf>,
    /// Another copy of this cluster's data directory (a snapshot restored elsewhere, a stopped
    /// standby): a damaged page it holds with the same LSN is restored from it; repeatable
    #[arg(long = "page-source", value_name = "DIR")]
    pub page_source: Vec<PathBuf>,
    /// Only answer findings with this code (repeatable)
    #[arg(long = "only", value_name = "CODE")]
    pub only: Vec<String>,
}

#[derive(clap::Args)]
pub struct ReviewArgs {
    /// The plan file
    pub plan: PathBuf,
    /// Check every precondition against this data directory (drift)
    #[arg(short = 'D', long = "pgdata", value_name = "DATADIR")]
    pub pgdata: Option<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run_plan(a: &PlanArgs) -> anyhow::Result<i32> {
    if let Some(bad) = a.only.iter().find(|o| pgsalvage::diagnose::Code::parse(o).is_none()) {
        let known: Vec<&str> = pgsalvage::diagnose::Code::ALL.iter().map(|c| c.as_str()).collect();
        return Err(pgsalvage::error::Error::Usage(format!("--only {bad}: not a diagnose finding code; the codes are: {}", known.join(", "))).into());
    }
    let dd = DataDir::open(&a.pgdata)?;
    plan::ensure_stopped(&dd)?;
    let opts = PlanOptions {
        xact_status: match a.xact_status {
            Policy::Infer => XactPolicy::Infer,
            Policy::Committed => XactPolicy::Committed,
            Policy::Aborted => XactPolicy::Aborted,
        },
        zero_pages: !a.no_zero_pages,
        reset_wal: a.reset_wal && !a.no_reset_wal,
        accept_checksum_failures: a.accept_checksum_failures,
        wal_dir: a.wal_dir.clone(),
        only: a.only.clone(),
        page_source: super::readable_dirs("--page-source", &a.page_source)?
            .iter()
            .map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string())
            .collect(),
        wal_archive: super::wal_archives(&a.wal_archive)?.iter().map(|p| std::path::absolute(p).unwrap_or_else(|_| p.clone()).display().to_string()).collect(),
    };
    let p = plan::plan(&dd, &opts)?;
    let bytes = serde_json::to_vec_pretty(&p)?;
    pgsalvage::fsx::write_new_file(&a.output, &bytes, 0o600)?;
    out(&render(&p, None))?;
    out(&format!(
        "\nplan written to {} ({}, {} not repairable by this plan)\n",
        a.output.display(),
        count(p.actions.len() as u64, "action"),
        count(p.not_repairable.len() as u64, "finding")
    ))?;
    // A plan that leaves findings unanswered is "problems remain" (docs/exit-codes.md).
    Ok(if p.not_repairable.is_empty() { EXIT_OK } else { super::EXIT_FINDINGS })
}

pub fn run_review(a: &ReviewArgs) -> anyhow::Result<i32> {
    let (p, _) = super::load_plan(&a.plan)?;
    let drift = match &a.pgdata {
        Some(d) => Some(plan::drift(&DataDir::open(d)?, &p)?),
        None => None,
    };
    if a.json {
        json(
            &serde_json::json!({ "plan": p, "drift": drift.as_ref().map(|(same, d)| serde_json::json!({"pg_control_unchanged": same, "stale_actions": d})) }),
        )?;
    } else {
        out(&render(&p, drift.as_ref()))?;
    }
    Ok(if drift.as_ref().is_some_and(|(_, d)| !d.is_empty()) { EXIT_FINDINGS } else { EXIT_OK })
}

fn render(p: &Plan, drift: Option<&(bool, Vec<plan::Drift>)>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "repair plan for cluster {} (PostgreSQL {}), {}, made {}",
        p.cluster.system_identifier, p.cluster.major, p.cluster.data_directory, p.created_at
    );
    for f in &p.findings {
        let _ = writeln!(s, "\n[{}] {}", f.code, f.title);
        for id in &f.actions {
            if let Some(a) = p.actions.iter().find(|a| &a.id == id) {
                let kind = serde_json::to_value(&a.kind).ok().and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(str::to_string)).unwrap_or_default();
                let stale = drift.is_some_and(|(_, d)| d.iter().any(|x| &x.action == id));
                let _ = writeln!(
                    s,
                    "  {id} {kind} on {}{}{}  [risk {:?}]{}",
                    a.target.path,
                    a.target.block.map(|b| format!(" block {b}")).unwrap_or_default(),
                    a.target.relation.as_ref().map(|r| format!(" ({r})")).unwrap_or_default(),
                    a.risk,
                    if stale { "  STALE: the target changed since planning" } else { "" }
                );
                let _ = writeln!(s, "     does: {}", a.effect);
                let _ = writeln!(s, "     loses: {}", a.data_loss);
            }
        }
        for alt in &f.alternatives {
            let _ = writeln!(s, "  not chosen: {} — would lose: {}", alt.action, alt.loses);
        }
    }
    if !p.post_repair.is_empty() {
        let _ = writeln!(s, "\nonce the server runs after apply (rehearse runs these on its copy; after apply, you do):");
        for r in &p.post_repair {
            let _ = writeln!(s, "  {} -- in database {} ({})", r.describe(), r.database, r.finding);
        }
    }
    if !p.not_repairable.is_empty() {
        let _ = writeln!(s, "\nnot repairable by this plan:");
        for n in &p.not_repairable {
            let _ = writeln!(s, "  [{}] {}\n     why: {}", n.code, n.title, n.reason);
        }
    }
    if let Some((same, d)) = drift {
        let _ = writeln!(
            s,
            "\ndrift check: {}",
            if d.is_empty() { "every precondition still holds".to_string() } else { format!("{} STALE", pgsalvage::units::count(d.len() as u64, "action")) }
        );
        if !same {
            let _ = writeln!(s, "  note: pg_control changed since planning (the server ran, or the cluster was changed)");
        }
    }
    s
}
