use super::{json, out, EXIT_OK};
use pgsalvage::apply;
use pgsalvage::datadir::DataDir;
use pgsalvage::error::Error;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct ApplyArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// The plan to carry out (made by `pgsalvage plan`)
    #[arg(long, value_name = "PLAN.json")]
    pub plan: PathBuf,
    /// A snapshot of this cluster taken before (verified first)
    #[arg(long, value_name = "FILE.tar.zst")]
    pub snapshot: Option<PathBuf>,
    /// Apply without a snapshot: if the rollback store is lost too, nothing brings the old bytes back
    #[arg(long)]
    pub without_snapshot_i_may_lose_data: bool,
    /// Where the rollback store goes (default: DATADIR.pgsalvage-rollback beside the data directory)
    #[arg(long, value_name = "DIR")]
    pub rollback_dir: Option<PathBuf>,
    /// Do not ask for confirmation (scripts)
    #[arg(long)]
    pub yes: bool,
}

#[derive(clap::Args)]
pub struct RollbackArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// The operation to undo (default: the latest)
    #[arg(long, value_name = "ID")]
    pub operation: Option<String>,
    /// Restore even what changed since the apply (it will be overwritten)
    #[arg(long)]
    pub force: bool,
}

#[derive(clap::Args)]
pub struct AuditArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

pub fn run_apply(a: &ApplyArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let (p, bytes) = super::load_plan(&a.plan)?;
    // The plan's cluster first: a foreign plan is the problem, not the snapshot.
    pgsalvage::plan::same_cluster(&dd, &p)?;
    match (&a.snapshot, a.without_snapshot_i_may_lose_data) {
        (Some(s), _) => {
            pgsalvage::snapshot::check_archive_file(s)?;
            let m = pgsalvage::snapshot::verify::read_manifest(s)
                .map_err(|e| Error::Refused { message: e.to_string(), hint: "give a snapshot made by `pgsalvage snapshot create`".into() })?;
            let current = |rel: &str| dd.read(rel).ok().map(|b| pgsalvage::plan::sha256_hex(&b));
            let stands = pgsalvage::apply::snapshot_stands_for(&m, &p, &current).map_err(|why| Error::Refused {
                message: format!("{}: {why}", s.display()),
                hint: format!("take a snapshot of this data directory now: pgsalvage snapshot create -D {} -o FILE.tar.zst", dd.root().display()),
            })?;
            let r = pgsalvage::snapshot::verify::verify(s, &pgsalvage::check::Quiet);
            if !r.ok {
                return Err(Error::Refused {
                    message: format!("{} does not verify: {}", s.display(), r.problems.join("; ")),
                    hint: "take a new snapshot".into(),
                }
                .into());
            }
            eprintln!("pgsalvage: snapshot {} verified ({}, every sha256 matches): {stands}", s.display(), pgsalvage::units::count(r.files as u64, "file"));
        }
        (None, true) => eprintln!("pgsalvage: warning: applying without a snapshot"),
        (None, false) => {
            return Err(Error::Refused {
                message: "no snapshot of this cluster was given".into(),
                hint: "take one (pgsalvage snapshot create -D DATADIR -o FILE.tar.zst) and pass --snapshot FILE, or pass --without-snapshot-i-may-lose-data"
                    .into(),
            }
            .into())
        }
    }
    let review = std::process::Command::new(std::env::current_exe()?)
        .arg("review")
        .arg(&a.plan)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !a.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Refused {
                message: "apply asks for confirmation on a terminal; there is none".into(),
                hint: "review the plan, then pass --yes".into(),
            }
            .into());
        }
        eprintln!("{review}");
        let sysid = &p.cluster.system_identifier;
        let tail = &sysid[sysid.len().saturating_sub(6)..];
        let typed: String = dialoguer::Input::new()
            .with_prompt(format!("type the last 6 digits of the system identifier ({}……) to apply", &sysid[..sysid.len().saturating_sub(6)]))
            .interact_text()?;
        if typed.trim() != tail {
            return Err(
                Error::Refused { message: "confirmation did not match; nothing was changed".into(), hint: "run again and type the digits".into() }.into()
            );
        }
    }
    let r = apply::apply(&dd, &p, &bytes, &apply::ApplyOptions { store_root: a.rollback_dir.clone(), wal_dir_override: None })?;
    out(&format!(
        "applied {} as operation {}; rollback store {}\nundo with: pgsalvage rollback -D {} --operation {}\n",
        pgsalvage::units::count(r.steps, "step"),
        r.operation,
        r.store,
        dd.root().display(),
        r.operation
    ))?;
    if let Some(s) = &r.salvage {
        out(&format!("the tuples and values the plan kills or sets NULL were exported first, as found: {s}\n"))?;
    }
    if !p.post_repair.is_empty() {
        let mut t = String::from("then, once the server runs, the plan needs these (the server rebuilds what no byte edit can):\n");
        for pr in &p.post_repair {
            // Quoted for a POSIX shell: the statement may hold single quotes.
            let quote = |x: &str| format!("'{}'", x.replace('\'', "'\\''"));
            t.push_str(&format!("  psql -d {} -c {}\n", quote(&pr.database), quote(&format!("{};", pr.statement()))));
        }
        out(&t)?;
    }
    Ok(EXIT_OK)
}

pub fn run_rollback(a: &RollbackArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let r = pgsalvage::rollback::rollback(&dd, a.operation.as_deref(), a.force)?;
    if r.already {
        out(&format!("operation {} was already rolled back; nothing to do\n", r.operation))?;
    } else {
        out(&format!("rolled back operation {}: {} restored from the rollback store\n", r.operation, pgsalvage::units::count(r.restored as u64, "step")))?;
    }
    Ok(EXIT_OK)
}

pub fn run_audit(a: &AuditArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let (hist, ops) = pgsalvage::rollback::audit(&dd);
    let changed = ops.iter().any(|o| o.journal_error.is_some() || o.steps.iter().any(|s| s.changed_since));
    if a.json {
        json(&serde_json::json!({"history": hist, "operations": ops}))?;
    } else {
        let mut text = String::new();
        for h in &hist {
            let _ = writeln!(
                text,
                "{} {} operation {} by {}@{} ({}), plan sha256 {}",
                h.time,
                h.event,
                h.operation,
                h.user,
                h.host,
                h.tool,
                &h.plan_sha256[..16.min(h.plan_sha256.len())]
            );
        }
        for o in &ops {
            let _ = writeln!(
                text,
                "operation {} ({}; store {}):",
                o.operation,
                if o.rolled_back {
                    "rolled back"
                } else if o.committed {
                    "applied"
                } else {
                    "apply stopped part-way: run pgsalvage rollback"
                },
                o.store
            );
            if let Some(e) = &o.journal_error {
                let _ = writeln!(text, "    the journal cannot be read: {e}");
            }
            for s in &o.steps {
                let _ = writeln!(text, "    step {} {} {}: {}", s.step, s.action, s.what, s.state);
            }
        }
        out(if text.is_empty() { "no pgsalvage operation recorded\n" } else { &text })?;
    }
    Ok(if changed { super::EXIT_FINDINGS } else { EXIT_OK })
}
