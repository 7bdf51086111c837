//! `apply`: a plan's actions carried out as journaled steps ([`crate::journal`]).
//!
//! For each change: the original bytes (the block, or the whole file) are copied into the
//! rollback store and fsynced, a `Prepared` record naming them and the before- and
//! after-states is appended and fsynced, and only then is the data directory touched; after
//! the change the target is read back and `Done` is journaled. Files a plan removes are moved
//! into the store, never deleted. Whatever stops an apply, `rollback` ([`crate::rollback`])
//! restores every started step from the store. The store and the journal are 0700/0600,
//! outside the data directory, owned by the data directory's owner.

use crate::datadir::{DataDir, Postmaster};
use crate::error::{Error, Result};
use crate::journal::step::{self, Ctx, Pending};
use crate::journal::{Journal, Record};
use crate::plan::{self, ActionKind, Plan};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const HISTORY_FILE: &str = "pgsalvage.history";

/// One line of the history file in the data directory.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct History {
    pub event: String,
    pub operation: String,
    pub time: String,
    pub user: String,
    pub host: String,
    pub tool: String,
    pub plan_sha256: String,
    pub store: String,
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, p, e)
}

/// Where an operation's rollback store goes by default: beside the data directory.
pub fn default_store_root(dd: &DataDir) -> PathBuf {
    let root = dd.root();
    let name = root.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "data".into());
    root.parent().unwrap_or(Path::new("/")).join(format!("{name}.pgsalvage-rollback"))
}

/// An exclusive lock on the data directory (flock on the directory itself: nothing created).
pub struct Lock(#[allow(dead_code)] nix::fcntl::Flock<File>);

pub fn lock(dd: &DataDir) -> Result<Lock> {
    let f = File::open(dd.root()).map_err(io("open", dd.root()))?;
    nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock).map(Lock).map_err(|_| Error::Refused {
        message: format!("another pgsalvage apply or rollback is working on {}", dd.root().display()),
        hint: "wait for it to finish; if none runs, the lock went with its process and this cannot happen".into(),
    })
}

#[derive(Clone, Debug, Default)]
pub struct ApplyOptions {
    pub store_root: Option<PathBuf>,
    /// Relocate pg_wal here instead of where the plan says (rehearse: inside its copy).
    pub wal_dir_override: Option<PathBuf>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub operation: String,
    pub store: String,
    pub steps: u32,
    /// The salvage file written before any change: the rows and values the plan kills or
    /// sets NULL, as found (None: the plan touches none).
    pub salvage: Option<String>,
}

/// SALVAGE_FILE in the rollback store: one CSV line per tuple a plan kills or per value it
/// sets NULL, written (0600) before the first change, with the bytes as found: relation,
/// file, block, item, what the plan does, attribute (empty: the whole tuple), and the bytes
/// in hex (a TOAST pointer's 18 bytes name the value id the chunks had).
pub const SALVAGE_FILE: &str = "salvage.csv";

fn salvage_csv(dd: &DataDir, p: &Plan, c: &crate::format::control::ControlFile) -> Option<String> {
    use crate::format::page::{attrs, heap};
    let bs = c.database_block_size as usize;
    let mut out = String::from("relation,file,block,item,action,attribute,bytes_hex\n");
    let mut rows = 0;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // The tuple versions a pg_xact rebuild's policy decides, as found, per page.
    let committed_policy = p.options.xact_status == plan::XactPolicy::Committed;
    for a in &p.actions {
        let ActionKind::SynthesizeXact { policy_rows, .. } = &a.kind else { continue };
        type Items<'a> = Vec<(u16, u32, &'a str)>;
        let mut by_page: std::collections::BTreeMap<(&str, u32), Items> = Default::default();
        for (f, b, o, x, w) in policy_rows {
            by_page.entry((f.as_str(), *b)).or_default().push((*o, *x, w.as_str()));
        }
        for ((file, blk), items) in by_page {
            let Some(page) = plan::block_bytes(dd, file, blk, bs, c.blocks_per_segment) else { continue };
            let Ok(slots) = heap::tuples(&page) else { continue };
            for (o, x, w) in items {
                let Some(t) = slots.iter().find(|t| t.offnum == o && t.item.len > 0) else { continue };
                let tuple = &page[(t.item.off as usize).min(page.len())..(t.item.off as usize + t.item.len as usize).min(page.len())];
                // The policy hides an insert it sets aborted, and a delete it sets committed.
                let hides = (w == "xmin") != committed_policy;
                out.push_str(&format!(",{file},{blk},{o},{},{w}={x},{}\n", if hides { "policy-hides" } else { "policy-shows" }, hex(tuple)));
                rows += 1;
            }
        }
    }
    for a in &p.actions {
        let (items, columns): (Vec<(u16, Vec<u16>)>, &[attrs::Column]) = match &a.kind {
            ActionKind::NullAttributes { items, columns } => (items.clone(), columns),
            ActionKind::KillTuples { offnums } => (offnums.iter().map(|&o| (o, vec![])).collect(), &[]),
            _ => continue,
        };
        let Some(blk) = a.target.block else { continue };
        let Some(page) = plan::block_bytes(dd, &a.target.path, blk, bs, c.blocks_per_segment) else { continue };
        let Ok(slots) = heap::tuples(&page) else { continue };
        let relation = a.target.relation.clone().unwrap_or_default().replace('"', "\"\"");
        for (o, attnums) in items {
            let Some(t) = slots.iter().find(|t| t.offnum == o && t.item.len > 0) else { continue };
            // A broken line pointer (killed by the plan) may point past the page: what of it
            // lies inside is exported, nothing when none does.
            let start = (t.item.off as usize).min(page.len());
            let tuple = &page[start..(t.item.off as usize + t.item.len as usize).min(page.len())];
            let line = |what: &str, att: String, bytes: &[u8]| format!("\"{relation}\",{},{blk},{o},{what},{att},{}\n", a.target.path, hex(bytes));
            let decoded = t.header.and_then(|h| attrs::decode(tuple, &h, columns, c.major.number()).ok());
            if attnums.is_empty() || decoded.is_none() {
                out.push_str(&line(if attnums.is_empty() { "kill" } else { "set-null" }, String::new(), tuple));
            } else {
                for at in decoded.iter().flatten().filter(|x| attnums.contains(&x.attnum)) {
                    out.push_str(&line("set-null", at.attnum.to_string(), &tuple[at.off..at.off + at.len]));
                }
            }
            rows += 1;
        }
    }
    (rows > 0).then_some(out)
}

/// Operations of this plan (by its sha256) that were applied and are still in place: not
/// rolled back per the history, nor per their journal.
pub fn applied_and_in_place(dd: &DataDir, plan_sha: &str) -> Vec<History> {
    let hist = read_history(dd);
    let mut out: Vec<History> = Vec::new();
    for h in hist.iter().filter(|h| h.plan_sha256 == plan_sha && h.event == "apply-started") {
        let rolled_in_history = hist.iter().any(|x| x.operation == h.operation && x.event == "rollback");
        let rolled_in_journal = crate::journal::read(Path::new(&h.store)).is_ok_and(|r| r.iter().any(|r| matches!(r, Record::RolledBack { .. })));
        if !rolled_in_history && !rolled_in_journal {
            out.push(h.clone());
        }
    }
    out
}

/// Why a snapshot does not stand for the bytes apply is about to change.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotMismatch {
    #[error("it is a snapshot of cluster {snapshot}, the plan is for {plan}")]
    OtherCluster { snapshot: String, plan: String },
    #[error("it does not hold {path}, which the plan changes (action {action})")]
    Lacks { path: String, action: String },
    #[error("it holds {path}, which the data directory no longer has (action {action})")]
    HoldsRemoved { path: String, action: String },
    #[error("its copy of {path} differs from the data directory's (action {action}): it was taken before the file last changed, or of another copy")]
    Differs { path: String, action: String },
}

/// Whether a snapshot stands for the data directory a plan is about to change: the same
/// system identifier (when the snapshot could record one: pg_control may have been
/// unreadable and WAL without a page header to read it from), and every file the plan
/// changes held in the snapshot exactly as it is now (`current` gives a file's sha256 in the
/// data directory, None when it does not exist). An older snapshot of the cluster, or one of
/// another copy with the same identifier, does not hold the bytes apply is about to change.
/// On success, says what was checked.
pub fn snapshot_stands_for(
    m: &crate::snapshot::manifest::Manifest,
    p: &Plan,
    current: &dyn Fn(&str) -> Option<String>,
) -> std::result::Result<String, SnapshotMismatch> {
    if !m.system_identifier.is_empty() && m.system_identifier != p.cluster.system_identifier {
        return Err(SnapshotMismatch::OtherCluster { snapshot: m.system_identifier.clone(), plan: p.cluster.system_identifier.clone() });
    }
    let mut seen = std::collections::BTreeSet::new();
    for a in &p.actions {
        // A move aside keeps the bytes in the data directory; a directory is moved whole.
        if a.precondition.scope == "dir" || matches!(a.kind, ActionKind::MoveAside) || !seen.insert(a.target.path.as_str()) {
            continue;
        }
        let path = m.archive_path(&a.target.path);
        let held = m.entry(&path).and_then(|e| e.sha256.clone());
        let now = current(&a.target.path);
        if held != now {
            let (path, action) = (a.target.path.clone(), a.id.clone());
            return Err(match (&held, &now) {
                (None, Some(_)) => SnapshotMismatch::Lacks { path, action },
                (Some(_), None) => SnapshotMismatch::HoldsRemoved { path, action },
                _ => SnapshotMismatch::Differs { path, action },
            });
        }
    }
    Ok(format!(
        "{} of {} taken {} on {}, holding the {} the plan changes exactly as {} now",
        if m.system_identifier.is_empty() {
            "a snapshot without a system identifier (pg_control was unreadable)".to_string()
        } else {
            format!("a snapshot of cluster {}", m.system_identifier)
        },
        m.data_directory,
        m.created_at,
        m.host,
        crate::units::count(seen.len() as u64, "file"),
        if seen.len() == 1 { "it is" } else { "they are" }
    ))
}

/// Carry out a plan. The caller has checked confirmation and the snapshot.
pub fn apply(dd: &DataDir, p: &Plan, plan_bytes: &[u8], opts: &ApplyOptions) -> Result<Applied> {
    p.validate().map_err(|e| Error::Refused { message: format!("the plan is not valid: {e}"), hint: "make the plan again with pgsalvage plan".into() })?;
    if let Postmaster::Alive { pid } = dd.postmaster() {
        return Err(Error::Refused {
            message: format!("a postmaster (pid {pid}) is running on {}", dd.root().display()),
            hint: "stop the server first (pg_ctl stop -m fast)".into(),
        });
    }
    let _lock = lock(dd)?;
    let plan_sha = step::sha(plan_bytes);
    if let Some(h) = applied_and_in_place(dd, &plan_sha).first() {
        return Err(Error::Refused {
            message: format!(
                "this plan was applied as operation {} ({}) and that apply is still in place: applying it again would change the changed bytes",
                h.operation, h.time
            ),
            hint: format!(
                "`pgsalvage audit -D {}` shows it; `pgsalvage rollback -D {} --operation {}` undoes it",
                dd.root().display(),
                dd.root().display(),
                h.operation
            ),
        });
    }
    plan::ensure_fresh(dd, p)?;
    for a in &p.actions {
        if let ActionKind::RelocateWal { to } = &a.kind {
            check_relocation_target(opts.wal_dir_override.as_deref().unwrap_or(Path::new(to)))?;
        } else {
            plain_target(dd, &a.target.path)?;
        }
        if let ActionKind::ResetWal { moves, .. } | ActionKind::RebuildControl { moves, .. } = &a.kind {
            for m in moves {
                plain_target(dd, m)?;
            }
        }
    }
    // The values the plan was made with: pg_control's, or what the evidence gives when it
    // is damaged (a write-control action writes them), or a rebuild's guesses.
    let c = crate::check::trusted_control(dd).map_err(|_| ()).or_else(|_| {
        p.actions
            .iter()
            .find_map(|a| match &a.kind {
                ActionKind::RebuildControl { guessed, time, .. } => plan::reset::control_from(guessed, *time).ok(),
                _ => None,
            })
            .ok_or_else(|| Error::Refused {
                message: "global/pg_control is unreadable and the plan does not rebuild it".into(),
                hint: "make the plan again with pgsalvage plan: it then plans the rebuild from WAL evidence".into(),
            })
    })?;
    let c = c.with_usable_geometry().0;
    let dir_mtimes: Vec<(String, (i64, i64))> = dirs_touched(p).into_iter().filter_map(|d| dir_mtime(&dd.path(&d)).map(|t| (d, t))).collect();
    let operation = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), std::process::id());
    let store_root = opts.store_root.clone().unwrap_or_else(|| default_store_root(dd));
    let store = store_root.join(&operation);
    let ctx = Ctx::new(dd, &store);
    ctx.private_dir(&store_root)?;
    fs::DirBuilder::new().mode(0o700).create(&store).map_err(io("create rollback store", &store))?;
    ctx.own(&store);
    let mut j = Journal::create(&store)?;
    ctx.own(&store.join(crate::journal::JOURNAL));
    step::fsync_path(&store_root)?;
    // The plan itself goes into the store, so that a rollback knows what was done.
    crate::fsx::write_new_file(&store.join("plan.json"), plan_bytes, 0o600)?;
    ctx.own(&store.join("plan.json"));
    // The journal's first record, then the history line (the first write to the data
    // directory): from here on a rollback finds the store, and in it the directory times.
    j.append(&Record::Begin {
        operation: operation.clone(),
        plan_sha256: plan_sha.clone(),
        data_directory: dd.root().display().to_string(),
        time: now(),
        dir_mtimes,
    })?;
    append_history(dd, "apply-started", &operation, &plan_sha, &store)?;
    // What the plan kills or sets NULL, exported before anything changes.
    let salvage = match salvage_csv(dd, p, &c) {
        Some(csv) => {
            let path = store.join(SALVAGE_FILE);
            crate::fsx::write_new_file(&path, csv.as_bytes(), 0o600)?;
            ctx.own(&path);
            Some(path.display().to_string())
        }
        None => None,
    };
    let mut run = Runner { ctx: &ctx, j: &mut j, step: 0, last_after: HashMap::new(), changed: false };
    let result = run_actions(&mut run, dd, p, &c, opts);
    let (steps, changed) = (run.step, run.changed);
    if let Err(e) = result {
        if !changed {
            return Err(e);
        }
        return Err(Error::Partial {
            message: format!("apply stopped after {} of operation {operation}: {e}", crate::units::count(steps as u64, "step")),
            datadir: dd.root().display().to_string(),
            also: String::new(),
        });
    }
    let partial = |e: Error| Error::Partial {
        message: format!("apply of operation {operation} could not be committed: {e}"),
        datadir: dd.root().display().to_string(),
        also: String::new(),
    };
    let control_sha256 = dd.read(crate::datadir::CONTROL_PATH).ok().map(|b| step::sha(&b));
    j.append(&Record::Commit { time: now(), control_sha256 }).map_err(partial)?;
    append_history(dd, "apply", &operation, &plan_sha, &store).map_err(partial)?;
    Ok(Applied { operation, store: store.display().to_string(), steps, salvage })
}

/// The loop state of one apply: each step prepared, journaled, applied, verified, journaled.
struct Runner<'a> {
    ctx: &'a Ctx<'a>,
    j: &'a mut Journal,
    step: u32,
    /// The after-state of the last step on each target: the next step on the same target
    /// must find exactly that (steps compose).
    last_after: HashMap<String, step::State>,
    changed: bool,
}

impl Runner<'_> {
    fn run(&mut self, action: &str, pending: Pending) -> Result<()> {
        self.step += 1;
        // Fault injection for the tests: an I/O error before step k (no process death).
        if std::env::var("PGSALVAGE_TEST_FAIL_BEFORE_STEP").ok().and_then(|k| k.parse::<u32>().ok()) == Some(self.step) {
            return Err(Error::io("write", self.ctx.dd.root(), std::io::Error::other("injected failure (PGSALVAGE_TEST_FAIL_BEFORE_STEP)")));
        }
        let change = pending.prepare(self.ctx, self.step)?;
        if let Some(prev) = self.last_after.get(&change.key()) {
            if *prev != change.before() {
                return Err(Error::Refused {
                    message: format!("{}: not the state the previous step left", change.describe()),
                    hint: "stop whatever writes to the data directory, then run `pgsalvage rollback`".into(),
                });
            }
        }
        self.j.append(&Record::Prepared { step: self.step, action: action.into(), change: change.clone() })?;
        self.changed = true;
        pending.apply(self.ctx, &change)?;
        change.verify(self.ctx.dd)?;
        self.j.append(&Record::Done { step: self.step })?;
        self.last_after.insert(change.key(), change.after());
        Ok(())
    }
}

fn run_actions(r: &mut Runner, dd: &DataDir, p: &Plan, c: &crate::format::control::ControlFile, opts: &ApplyOptions) -> Result<()> {
    let bs = c.database_block_size as u64;
    let new_bytes = |a: &plan::Action, old: Option<&[u8]>| {
        plan::new_bytes(a, old, c).map_err(|e| Error::Refused {
            message: format!("action {}: {e}", a.id),
            hint: "nothing of this action was written; run pgsalvage rollback, then plan again".into(),
        })
    };
    let file = |rel: &str, new: Vec<u8>| Pending::File { path: rel.to_string(), old: fs::read(dd.path(rel)).ok(), new };
    for a in &p.actions {
        match (&a.kind, a.target.block) {
            (ActionKind::MoveAside, _) => r.run(&a.id, Pending::MoveAside { path: a.target.path.clone() })?,
            (ActionKind::RelocateWal { to }, _) => {
                r.run(&a.id, Pending::RelocateWal { to: opts.wal_dir_override.clone().unwrap_or_else(|| PathBuf::from(to)) })?
            }
            (ActionKind::ResetWal { wal_file, moves, .. }, _) | (ActionKind::RebuildControl { wal_file, moves, .. }, _) => {
                for m in moves {
                    r.run(&a.id, Pending::MoveAside { path: m.clone() })?;
                }
                let old = dd.read(crate::datadir::CONTROL_PATH).ok();
                let new = new_bytes(a, old.as_deref())?.unwrap_or_default();
                let seg = plan::reset::segment_bytes(
                    &crate::format::control::ControlFile::parse(&new)
                        .map_err(|e| Error::Internal(format!("the pg_control just built does not decode: {e}")))?,
                );
                r.run(&a.id, file(crate::datadir::CONTROL_PATH, new))?;
                r.run(&a.id, file(&format!("pg_wal/{wal_file}"), seg))?;
            }
            (_, Some(block)) => {
                let offset = (block % c.blocks_per_segment) as u64 * bs;
                let path = dd.path(&a.target.path);
                let old =
                    step::read_block(&path, offset, bs).ok_or_else(|| Error::io("read", &path, std::io::Error::from(std::io::ErrorKind::UnexpectedEof)))?;
                let new = new_bytes(a, Some(&old))?.unwrap_or_else(|| old.clone());
                r.run(&a.id, Pending::Block { path: a.target.path.clone(), offset, old, new })?;
            }
            (_, None) => {
                let old = dd.read(&a.target.path).ok();
                if let Some(new) = new_bytes(a, old.as_deref())? {
                    r.run(&a.id, Pending::File { path: a.target.path.clone(), old, new })?;
                }
            }
        }
    }
    Ok(())
}

/// The directories whose entries a plan may add, remove or rename: the data directory,
/// pg_wal and its subdirectories, and the parent of every target.
fn dirs_touched(p: &Plan) -> std::collections::BTreeSet<String> {
    let mut d: std::collections::BTreeSet<String> =
        ["", "global", "pg_wal", "pg_wal/archive_status", "pg_wal/summaries"].iter().map(|s| s.to_string()).collect();
    let parent = |path: &str| path.rsplit_once('/').map(|(a, _)| a.to_string()).unwrap_or_default();
    for a in &p.actions {
        d.insert(parent(&a.target.path));
        if let ActionKind::ResetWal { moves, .. } | ActionKind::RebuildControl { moves, .. } = &a.kind {
            d.extend(moves.iter().map(|m| parent(m)));
        }
    }
    d
}

/// A directory's modification time (following a link: pg_wal may be one).
fn dir_mtime(p: &Path) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| (m.mtime(), m.mtime_nsec()))
}

/// A target must be reached without symbolic links but the ones PostgreSQL makes (pg_wal,
/// pg_tblspc/<oid>) and be a regular file (or absent): a link planted in the data directory
/// must not make apply (often root) write elsewhere.
fn plain_target(dd: &DataDir, rel: &str) -> Result<()> {
    let refuse = |why: String| Error::Refused {
        message: format!("{rel}: {why}; apply writes only regular files inside the data directory"),
        hint: "look at what the link points to; PostgreSQL itself makes links only for pg_wal and pg_tblspc/<oid>".into(),
    };
    let comps: Vec<&str> = rel.split('/').collect();
    let mut p = dd.root().to_path_buf();
    for (i, c) in comps.iter().enumerate() {
        p.push(c);
        let Ok(m) = fs::symlink_metadata(&p) else { return Ok(()) }; // absent from here on
        let last = i + 1 == comps.len();
        let allowed_link = (i == 0 && *c == crate::datadir::WAL_DIR) || (i == 1 && comps[0] == "pg_tblspc");
        if m.file_type().is_symlink() && (!allowed_link || last) {
            return Err(refuse(format!("{} is a symbolic link", p.display())));
        }
        if last && !m.is_file() {
            return Err(refuse(format!("{} is not a regular file", p.display())));
        }
    }
    Ok(())
}

/// The new home of pg_wal must be an absolute path that is absent or an empty directory,
/// not inside the data directory's pg_wal itself.
fn check_relocation_target(to: &Path) -> Result<()> {
    let refuse = |why: String| Error::Refused {
        message: format!("cannot move pg_wal to {}: {why}", to.display()),
        hint: "plan again with --wal-dir naming a new or empty directory on a file system with room".into(),
    };
    if !to.is_absolute() {
        return Err(refuse("not an absolute path".into()));
    }
    match fs::symlink_metadata(to) {
        Err(_) => Ok(()),
        Ok(m) if m.is_dir() => match fs::read_dir(to).map(|mut rd| rd.next().is_none()) {
            Ok(true) => Ok(()),
            _ => Err(refuse("the directory is not empty".into())),
        },
        Ok(_) => Err(refuse("it exists and is not a directory".into())),
    }
}

pub fn append_history(dd: &DataDir, event: &str, operation: &str, plan_sha: &str, store: &Path) -> Result<()> {
    let h = History {
        event: event.into(),
        operation: operation.into(),
        time: now(),
        user: nix::unistd::User::from_uid(nix::unistd::getuid()).ok().flatten().map(|u| u.name).unwrap_or_default(),
        host: hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        tool: format!("pgsalvage {}", env!("CARGO_PKG_VERSION")),
        plan_sha256: plan_sha.into(),
        store: store.display().to_string(),
    };
    let p = dd.path(HISTORY_FILE);
    let mut f = OpenOptions::new().append(true).create(true).mode(0o600).custom_flags(nix::libc::O_NOFOLLOW).open(&p).map_err(io("open history", &p))?;
    // The data directory's owner, not root: pg_basebackup and every tool that runs as the
    // cluster's owner reads every file there.
    step::chown_to(step::owner_of(dd), &p);
    let mut line = serde_json::to_vec(&h).map_err(|e| Error::Internal(e.to_string()))?;
    line.push(b'\n');
    f.write_all(&line).and_then(|_| f.sync_all()).map_err(io("write history", &p))
}

pub fn read_history(dd: &DataDir) -> Vec<History> {
    fs::read_to_string(dd.path(HISTORY_FILE)).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}
