//! The thin command-line layer: clap definitions, output rendering, exit codes.
//!
//! Exit codes (docs/exit-codes.md):
//! 0 success, nothing wrong found; 1 damage or problems found; 2 usage error;
//! 3 refused for safety; 4 operational error (cannot read, not a data directory);
//! 5 an apply or rollback stopped part-way (run `rollback`).

mod apply;
mod check;
mod diagnose;
mod inspect;
mod plan;
mod rehearse;
mod snapshot;

use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::PathBuf;

pub const EXIT_OK: i32 = 0;
pub const EXIT_FINDINGS: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_REFUSED: i32 = 3;
pub const EXIT_ERROR: i32 = 4;
/// An apply or rollback stopped after its first change: run `rollback` (again).
pub const EXIT_PARTIAL: i32 = 5;

#[derive(Parser)]
#[command(
    name = "pgsalvage",
    version,
    about = "Safe, explainable, reversible salvage for stopped PostgreSQL 10-18 data directories",
    long_about = None,
    after_help = "The usual order: snapshot create, diagnose, plan, review, rehearse, apply (rollback undoes it).\n\nExit codes: 0 nothing wrong found, 1 damage found, 2 usage error, 3 refused for safety,\n4 could not run (I/O, permissions), 5 apply or rollback stopped part-way (run rollback).\nRead-only commands never write to the data directory."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Data directory and output options shared by read commands.
#[derive(clap::Args, Clone)]
pub struct ReadArgs {
    /// The data directory (defaults to PGDATA)
    #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
    pub pgdata: PathBuf,
    /// A directory of archived WAL (archive_command's target, a backup's WAL): plain,
    /// .gz, .zst or .lz4 segments, .partial and .history files; repeatable
    #[arg(long = "wal-archive", value_name = "DIR")]
    pub wal_archive: Vec<PathBuf>,
    /// Print machine-readable JSON instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Show pg_control in pg_controldata's words, and the layout of the data directory (read-only)
    Inspect(ReadArgs),
    /// Read every relation page, the pg_xact segments and the WAL from the REDO point, and report damage (read-only)
    Check(check::CheckArgs),
    /// Explain what is wrong, what it means and what each repair would lose, with relation names (read-only)
    Diagnose(diagnose::DiagnoseArgs),
    /// Turn diagnose's findings into a reviewable repair plan bound to the bytes it was made for (writes only the plan file)
    Plan(plan::PlanArgs),
    /// Show a plan for a second pair of eyes; with -D, check every precondition still holds
    Review(plan::ReviewArgs),
    /// Try a plan on a scratch copy and prove it with a real server (the original is only read)
    Rehearse(rehearse::RehearseArgs),
    /// Carry out a reviewed plan with an undo-first journal and a rollback store
    Apply(apply::ApplyArgs),
    /// Undo an apply byte-exactly from its rollback store (also finishes an interrupted one)
    Rollback(apply::RollbackArgs),
    /// Every apply and rollback on this cluster, and whether the files are still as left
    Audit(apply::AuditArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        /// The shell to write the script for
        shell: clap_complete::Shell,
    },
    /// Print a man page (roff) generated from these definitions: pgsalvage(1), or one per subcommand
    Man {
        /// The subcommand whose page to print (`snapshot-create` for a nested one); none: pgsalvage(1)
        #[arg(value_name = "SUBCOMMAND")]
        page: Option<String>,
        /// Write every page (pgsalvage.1, pgsalvage-inspect.1, ...) into this directory instead
        #[arg(long, value_name = "DIR", conflicts_with = "page")]
        dir: Option<PathBuf>,
    },
    /// Keep the exact bytes of a data directory before touching it: create, verify, list, restore
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCommand),
}

pub fn run() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            if e.kind() == clap::error::ErrorKind::MissingRequiredArgument && e.to_string().contains("--pgdata") {
                eprintln!("hint: give the data directory with -D DATADIR, or set the PGDATA environment variable");
            }
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    // For tests/docs_examples.rs: every `$ pgsalvage ...` line in the documentation must still
    // parse; with this set, parsing is all that happens.
    if std::env::var_os("PGSALVAGE_PARSE_ONLY").is_some() {
        return EXIT_OK;
    }
    let result = match cli.command {
        Command::Inspect(a) => inspect::run(&a),
        Command::Check(a) => check::run(&a),
        Command::Snapshot(c) => snapshot::run(c),
        Command::Diagnose(a) => diagnose::run(&a),
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd, "pgsalvage", &mut buf);
            out(&String::from_utf8_lossy(&buf)).map(|_| EXIT_OK)
        }
        Command::Man { page, dir } => man(page.as_deref(), dir.as_deref()),
        Command::Plan(a) => plan::run_plan(&a),
        Command::Apply(a) => apply::run_apply(&a),
        Command::Rehearse(a) => rehearse::run(&a),
        Command::Rollback(a) => apply::run_rollback(&a),
        Command::Audit(a) => apply::run_audit(&a),
        Command::Review(a) => plan::run_review(&a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            let code = match e.downcast_ref::<pgsalvage::error::Error>() {
                Some(pgsalvage::error::Error::Refused { .. }) => EXIT_REFUSED,
                Some(pgsalvage::error::Error::Usage(_)) => EXIT_USAGE,
                Some(pgsalvage::error::Error::Partial { .. }) => EXIT_PARTIAL,
                Some(pgsalvage::error::Error::Damaged { .. }) => EXIT_FINDINGS,
                _ => EXIT_ERROR,
            };
            eprintln!("pgsalvage: error: {e}");
            code
        }
    }
}

/// Every man page: (name, command), pgsalvage itself first, then each subcommand and each
/// nested one (`pgsalvage-snapshot-create`), with its own options.
fn man_pages() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, cmd: &clap::Command, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let name = format!("{prefix}-{}", sub.get_name());
            out.push((name.clone(), sub.clone().name(name.clone()).bin_name(name.replace('-', " ")).version(env!("CARGO_PKG_VERSION"))));
            // `help` mirrors every subcommand: its page is enough (SEE ALSO names it).
            if sub.get_name() != "help" {
                walk(&name, sub, out);
            }
        }
    }
    let mut cmd = <Cli as clap::CommandFactory>::command();
    cmd.build();
    let mut out = vec![("pgsalvage".to_string(), cmd.clone())];
    walk("pgsalvage", &cmd, &mut out);
    out
}

fn man(page: Option<&str>, dir: Option<&std::path::Path>) -> anyhow::Result<i32> {
    let pages = man_pages();
    let render = |cmd: &clap::Command| -> anyhow::Result<Vec<u8>> {
        let mut buf = Vec::new();
        clap_mangen::Man::new(cmd.clone()).section("1").render(&mut buf)?;
        Ok(buf)
    };
    if let Some(dir) = dir {
        for (name, cmd) in &pages {
            let path = dir.join(format!("{name}.1"));
            pgsalvage::fsx::write_new_file(&path, &render(cmd)?, 0o644)?;
        }
        out(&format!("wrote {} into {}\n", pgsalvage::units::count(pages.len() as u64, "man page"), dir.display()))?;
        return Ok(EXIT_OK);
    }
    let want = page.map(|p| if p.starts_with("pgsalvage") { p.to_string() } else { format!("pgsalvage-{p}") }).unwrap_or_else(|| "pgsalvage".into());
    let Some((_, cmd)) = pages.iter().find(|(n, _)| *n == want) else {
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        return Err(pgsalvage::error::Error::Usage(format!("no man page {want}; the pages are: {}", names.join(", "))).into());
    };
    out(&String::from_utf8_lossy(&render(cmd)?))?;
    Ok(EXIT_OK)
}

/// Read a plan file: a missing file is an I/O error and a file that is not a plan an unusable
/// input (both exit 4); a plan holding what no plan made by pgsalvage holds is refused (3).
pub fn load_plan(path: &std::path::Path) -> anyhow::Result<(pgsalvage::plan::Plan, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|e| pgsalvage::error::Error::io("read plan", path, e))?;
    let p = pgsalvage::plan::Plan::from_json(&bytes, &path.display().to_string()).map_err(|e| match e {
        pgsalvage::plan::PlanFileError::NotAPlan(message) => pgsalvage::error::Error::Unusable {
            path: path.to_path_buf(),
            message: message.strip_prefix(&format!("{}: ", path.display())).unwrap_or(&message).to_string(),
            hint: "give a plan file written by `pgsalvage plan -o FILE`".into(),
        },
        pgsalvage::plan::PlanFileError::Invalid(message) => pgsalvage::error::Error::Refused {
            message: format!("{message}: no plan made by pgsalvage holds this"),
            hint: "use the plan file exactly as `pgsalvage plan` wrote it; make a new one if in doubt".into(),
        },
    })?;
    Ok((p, bytes))
}

/// Write to stdout; a closed pipe (`| head`) is not an error.
pub fn out(text: &str) -> anyhow::Result<()> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => Ok(r?),
    }
}

pub fn json<T: serde::Serialize>(v: &T) -> anyhow::Result<()> {
    out(&(serde_json::to_string_pretty(v)? + "\n"))
}

/// A progress bar on standard error, drawn only when it is a terminal (and not for JSON).
pub struct Bar(Option<indicatif::ProgressBar>);

impl Bar {
    pub fn new(label: &str, total: u64, quiet: bool) -> Bar {
        use std::io::IsTerminal;
        // A bar redraws with cursor escapes: only on a terminal that understands them.
        if quiet || !std::io::stderr().is_terminal() || std::env::var("TERM").is_ok_and(|t| t == "dumb") {
            return Bar(None);
        }
        let style = indicatif::ProgressStyle::with_template(&format!("{label} {{bar:30}} {{bytes}}/{{total_bytes}} {{bytes_per_sec}} eta {{eta}}"))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        Bar(Some(indicatif::ProgressBar::new(total).with_style(style)))
    }
    pub fn as_progress(&self) -> &dyn pgsalvage::check::Progress {
        self
    }
    pub fn finish(&self) {
        if let Some(b) = &self.0 {
            b.finish_and_clear();
        }
    }
}

impl pgsalvage::check::Progress for Bar {
    fn start(&self, total: u64) {
        if let Some(b) = &self.0 {
            b.set_length(total);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.0 {
            b.inc(bytes);
        }
    }
}

/// `--wal-archive` directories, each checked to be a directory that can be listed: a
/// mistyped path must not silently mean "no archive".
pub fn wal_archives(dirs: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    readable_dirs("--wal-archive", dirs)
}

/// The directories an option names, each checked to be one that can be listed.
pub fn readable_dirs(option: &str, dirs: &[std::path::PathBuf]) -> anyhow::Result<Vec<std::path::PathBuf>> {
    for d in dirs {
        if let Err(e) = std::fs::read_dir(d) {
            return Err(pgsalvage::error::Error::Usage(format!("{option} {}: not a directory that can be read ({e})", d.display())).into());
        }
    }
    Ok(dirs.to_vec())
}
