//! `rollback` and `audit`: an operation's journal read back, its steps undone in reverse.
//!
//! Rollback is a loop over the journal's steps, itself journaled (`RollbackBegin`,
//! `Undoing`/`Undone` per step, `RolledBack`), so an interrupted rollback resumes. Before
//! anything is written it decides, for every step, from the state of the target now:
//! - the target is the step's before-state: nothing to undo (never applied, or undone);
//! - it is the after-state (composed: the state the later steps on the same target were
//!   undone to), or the step never finished, or its undo started: the original goes back;
//! - anything else changed since the apply (the server ran, or another change): refused,
//!   unless `--force`, which restores relation blocks anyway; whole files, pg_control and
//!   WAL that changed are never forced, because pg_control and WAL from before would no
//!   longer match what the server wrote since (the cluster would not start).
//!
//! Then it checks that every original to put back is in the store with its journaled hash.
//! Only when all of that holds does the first byte change; a failure after it leaves a
//! journal from which the next `rollback` resumes.

use crate::apply::{append_history, lock, now, read_history, History, HISTORY_FILE};
use crate::datadir::{DataDir, Postmaster};
use crate::error::{Error, Result};
use crate::journal::step::{Change, Ctx, State};
use crate::journal::{self, Journal, Record};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One step of an operation as its journal tells it.
#[derive(Clone, Debug, Serialize)]
pub struct StepRecord {
    pub step: u32,
    pub action: String,
    pub change: Change,
    pub done: bool,
    pub undoing: bool,
    pub undone: bool,
}

/// An operation's journal, summarised.
#[derive(Clone, Debug)]
pub struct Operation {
    pub records: Vec<Record>,
    pub steps: Vec<StepRecord>,
    pub committed: bool,
    pub control_after: Option<String>,
    pub rolled_back: bool,
}

impl Operation {
    pub fn read(store: &Path) -> Result<Operation> {
        let records = journal::read(store)?;
        let mut steps: Vec<StepRecord> = Vec::new();
        let mut idx: HashMap<u32, usize> = HashMap::new();
        let mut committed = false;
        let mut control_after = None;
        let mut rolled_back = false;
        for r in &records {
            match r {
                Record::Prepared { step, action, change } => {
                    idx.insert(*step, steps.len());
                    steps.push(StepRecord { step: *step, action: action.clone(), change: change.clone(), done: false, undoing: false, undone: false });
                }
                Record::Done { step } => set(&mut steps, &idx, *step, |s| s.done = true),
                Record::Undoing { step } => set(&mut steps, &idx, *step, |s| s.undoing = true),
                Record::Undone { step } => set(&mut steps, &idx, *step, |s| s.undone = true),
                Record::Commit { control_sha256, .. } => {
                    committed = true;
                    control_after = control_sha256.clone();
                }
                Record::RolledBack { .. } => rolled_back = true,
                Record::Begin { .. } | Record::RollbackBegin { .. } => {}
            }
        }
        Ok(Operation { records, steps, committed, control_after, rolled_back })
    }

    /// Every path the journal names must be a plain path inside the data directory or the
    /// store: a journal sits in a directory a user can edit.
    fn check_paths(&self, store: &Path) -> Result<()> {
        let refuse = |what: String| Error::Refused {
            message: format!("{}: {what}", store.join(journal::JOURNAL).display()),
            hint: "the journal was edited or damaged; restore from the snapshot taken before apply".into(),
        };
        let inside = crate::plan::is_inside_relative;
        for s in &self.steps {
            match &s.change {
                Change::Block { path, saved, .. } | Change::MoveAside { path, saved, .. } if !inside(path) || !inside(saved) => {
                    return Err(refuse(format!("a journal entry names {path:?}, which is not a plain path inside the data directory")))
                }
                Change::File { path, saved, .. } if !inside(path) || saved.as_deref().is_some_and(|s| !inside(s)) => {
                    return Err(refuse(format!("a journal entry names {path:?}, which is not a plain path inside the data directory")))
                }
                Change::RelocateWal { to, files, dirs, .. }
                    if !Path::new(to).is_absolute() || files.iter().map(|f| &f.rel).chain(dirs.iter().map(|d| &d.0)).any(|r| !inside(r)) =>
                {
                    return Err(refuse(format!("a relocate-wal entry names a path outside pg_wal or {to}")))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn set(steps: &mut [StepRecord], idx: &HashMap<u32, usize>, step: u32, f: impl FnOnce(&mut StepRecord)) {
    if let Some(&i) = idx.get(&step) {
        f(&mut steps[i]);
    }
}

/// What rollback will do with one step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Skip,
    Restore,
}

/// Whether the WAL relocate-wal moved is untouched in its new directory (no file changed,
/// none added: the server has not run on it).
fn relocated_wal_untouched(c: &Change) -> bool {
    let Change::RelocateWal { to, files, .. } = c else { return true };
    let mut now = Vec::new();
    if crate::journal::step::walk(Path::new(to), "", &mut now).is_err() {
        return false;
    }
    let moved: HashMap<&str, &str> = files.iter().map(|f| (f.rel.as_str(), f.sha256.as_str())).collect();
    now.iter().filter(|(_, d)| !d).all(|(rel, _)| {
        moved.get(rel.as_str()).is_some_and(|h| std::fs::read(Path::new(to).join(rel)).map(|b| crate::journal::step::sha(&b)).ok().as_deref() == Some(*h))
    }) && files.iter().all(|f| Path::new(to).join(&f.rel).exists())
}

/// Decide every step's fate from the targets' states now, in reverse order, as if the undos
/// had already run (so that steps on one target compose). Errors name the first conflict.
fn decide(dd: &DataDir, op: &Operation, force: bool, operation: &str) -> Result<Vec<(usize, Fate)>> {
    let mut sim: HashMap<String, State> = HashMap::new();
    let mut out = Vec::new();
    for (i, s) in op.steps.iter().enumerate().rev() {
        if s.undone {
            continue; // a rollback before this one finished it
        }
        let key = s.change.key();
        let cur = sim.entry(key.clone()).or_insert_with(|| s.change.state(dd)).clone();
        let server_ran = matches!(s.change, Change::RelocateWal { .. }) && s.done && cur == s.change.after() && !relocated_wal_untouched(&s.change);
        let plan = if cur == s.change.before() && !s.undoing {
            Fate::Skip
        } else if s.undoing || !s.done || (cur == s.change.after() && !server_ran) || (force && matches!(s.change, Change::Block { .. })) {
            // Unfinished, or as the apply left it, or a block that changed since (--force).
            Fate::Restore
        } else {
            let why = if server_ran { "the server ran on the relocated WAL since".to_string() } else { "it changed since".to_string() };
            let forced = if matches!(s.change, Change::Block { .. }) {
                "pass --force to restore the original bytes anyway (what changed them is lost)".to_string()
            } else {
                "--force does not put back whole files, pg_control or WAL that changed: with pg_control and WAL from before the server would not start. Restore the snapshot taken before apply instead".to_string()
            };
            return Err(Error::Refused {
                message: format!(
                    "{} {why} operation {operation} was applied (the server ran, or another change): rollback would overwrite that",
                    s.change.describe()
                ),
                hint: forced,
            });
        };
        if plan == Fate::Restore {
            sim.insert(key, s.change.before());
        }
        out.push((i, plan));
    }
    // The server ran since the apply: putting back steps on pg_control or WAL would pair an
    // old pg_control (or old WAL) with what the server wrote since.
    if force && op.committed {
        let control_now = dd.read(crate::datadir::CONTROL_PATH).ok().map(|b| crate::journal::step::sha(&b));
        let touches = out.iter().any(|(i, p)| *p == Fate::Restore && op.steps[*i].change.is_cluster_state());
        if touches && op.control_after.is_some() && control_now != op.control_after {
            return Err(Error::Refused {
                message: format!("pg_control changed since operation {operation} was applied (the server ran): its steps on pg_control and WAL cannot be undone without leaving a cluster that does not start"),
                hint: "restore the snapshot taken before apply (pgsalvage snapshot restore)".into(),
            });
        }
    }
    Ok(out)
}

#[derive(Clone, Debug, Serialize)]
pub struct RolledBack {
    pub operation: String,
    pub restored: usize,
    pub already: bool,
}

/// The history line of the operation to undo (the latest by default).
fn find_operation(dd: &DataDir, operation: Option<&str>) -> Result<History> {
    let hist = read_history(dd);
    match operation {
        Some(op) => hist.iter().rev().find(|h| h.operation == op),
        None => hist.iter().rev().find(|h| h.event == "apply-started" || h.event == "apply"),
    }
    .cloned()
    .ok_or_else(|| Error::Refused {
        message: format!("no pgsalvage operation{} recorded in {}", operation.map(|o| format!(" {o}")).unwrap_or_default(), dd.path(HISTORY_FILE).display()),
        hint: "`pgsalvage audit` lists them".into(),
    })
}

/// Undo an operation (the latest by default): every started step, in reverse, from the store.
pub fn rollback(dd: &DataDir, operation: Option<&str>, force: bool) -> Result<RolledBack> {
    if let Postmaster::Alive { pid } = dd.postmaster() {
        return Err(Error::Refused {
            message: format!("a postmaster (pid {pid}) is running on {}", dd.root().display()),
            hint: "stop the server first".into(),
        });
    }
    let _lock = lock(dd)?;
    let h = find_operation(dd, operation)?;
    let store = PathBuf::from(&h.store);
    let op = Operation::read(&store)?;
    if op.rolled_back {
        if !read_history(dd).iter().any(|x| x.operation == h.operation && x.event == "rollback") {
            append_history(dd, "rollback", &h.operation, &h.plan_sha256, &store)?;
        }
        return Ok(RolledBack { operation: h.operation.clone(), restored: 0, already: true });
    }
    op.check_paths(&store)?;
    // Everything is decided and checked before the first byte changes.
    let plan = decide(dd, &op, force, &h.operation)?;
    for (i, p) in &plan {
        if *p == Fate::Restore {
            let s = &op.steps[*i];
            s.change.original_available(dd, &store).map_err(|why| Error::Refused {
                message: format!("step {} ({}) cannot be undone: {why}; nothing was changed", s.step, s.change.describe()),
                hint: "restore the snapshot taken before apply (pgsalvage snapshot restore)".into(),
            })?;
        }
    }
    let ctx = Ctx::new(dd, &store);
    let partial = |e: Error| Error::Partial {
        message: format!("rollback of operation {} stopped: {e}", h.operation),
        datadir: dd.root().display().to_string(),
        also: " again: it resumes where this one stopped".into(),
    };
    let mut j = Journal::reopen(&store)?;
    j.append(&Record::RollbackBegin { time: now(), force })?;
    let mut restored = 0;
    for (i, p) in &plan {
        let s = &op.steps[*i];
        if *p == Fate::Skip {
            // Journaled too: a resumed rollback must not judge this step again against a
            // target that the undos after it have since moved back past its before-state.
            j.append(&Record::Undone { step: s.step }).map_err(partial)?;
            continue;
        }
        j.append(&Record::Undoing { step: s.step }).map_err(partial)?;
        s.change.undo(&ctx).map_err(partial)?;
        j.append(&Record::Undone { step: s.step }).map_err(partial)?;
        restored += 1;
    }
    // Leftover temporary files of an interrupted replace.
    for s in &op.steps {
        let _ = std::fs::remove_file(crate::journal::step::temp_name(&dd.path(s.change.path())));
    }
    let _ = std::fs::remove_file(dd.path(".pg_wal.pgsalvage-new"));
    j.append(&Record::RolledBack { time: now() }).map_err(partial)?;
    append_history(dd, "rollback", &h.operation, &h.plan_sha256, &store).map_err(partial)?;
    // Last, the directories' times as they were before the apply (creating, moving and
    // renaming entries changed them; the history file stays, as the record of what was done).
    if let Some(Record::Begin { dir_mtimes, .. }) = op.records.first() {
        for (d, (s, ns)) in dir_mtimes.iter().rev() {
            if !crate::plan::is_inside_relative(d) && !d.is_empty() {
                continue;
            }
            let ts = nix::sys::time::TimeSpec::new(*s, *ns);
            let _ = nix::sys::stat::utimensat(None, &dd.path(d), &ts, &ts, nix::sys::stat::UtimensatFlags::FollowSymlink);
        }
    }
    Ok(RolledBack { operation: h.operation.clone(), restored, already: false })
}

/// One step as `audit` sees it now.
#[derive(Clone, Debug, Serialize)]
pub struct AuditStep {
    pub step: u32,
    pub action: String,
    pub path: String,
    pub offset: Option<u64>,
    pub what: String,
    pub state: String,
    pub changed_since: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct AuditOperation {
    pub operation: String,
    pub store: String,
    pub committed: bool,
    pub rolled_back: bool,
    /// The journal could not be read (why), so its steps are unknown.
    pub journal_error: Option<String>,
    pub steps: Vec<AuditStep>,
}

/// Every operation in the history, each step's target compared with what the operation left
/// (the after-state of the last step on it, or the original after a rollback).
pub fn audit(dd: &DataDir) -> (Vec<History>, Vec<AuditOperation>) {
    let hist = read_history(dd);
    let mut ops = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for h in &hist {
        if !seen.insert(h.operation.clone()) {
            continue;
        }
        let op = match Operation::read(Path::new(&h.store)) {
            Ok(op) => op,
            Err(e) => {
                ops.push(AuditOperation {
                    operation: h.operation.clone(),
                    store: h.store.clone(),
                    committed: false,
                    rolled_back: false,
                    journal_error: Some(e.to_string()),
                    steps: vec![],
                });
                continue;
            }
        };
        // What the operation left on each target: after a rollback the first step's before-
        // state, else the last finished step's after-state.
        let mut expected: HashMap<String, State> = HashMap::new();
        for s in &op.steps {
            let k = s.change.key();
            if op.rolled_back {
                expected.entry(k).or_insert_with(|| s.change.before());
            } else if s.done {
                expected.insert(k, s.change.after());
            }
        }
        let steps = op
            .steps
            .iter()
            .map(|s| {
                let now = s.change.state(dd);
                let want = expected.get(&s.change.key()).cloned().unwrap_or_else(|| s.change.before());
                let changed = now != want || (s.done && !op.rolled_back && !relocated_wal_untouched(&s.change));
                let state = match (changed, op.rolled_back, s.done) {
                    (true, true, _) => "CHANGED since the rollback left it",
                    (true, false, _) => "CHANGED since the apply left it",
                    (false, true, _) => "as before the apply",
                    (false, false, true) => "as applied",
                    (false, false, false) => "not applied (the apply stopped)",
                };
                let offset = if let Change::Block { offset, .. } = &s.change { Some(*offset) } else { None };
                AuditStep {
                    step: s.step,
                    action: s.action.clone(),
                    path: s.change.path().to_string(),
                    offset,
                    what: s.change.describe(),
                    state: state.into(),
                    changed_since: changed,
                }
            })
            .collect();
        ops.push(AuditOperation {
            operation: h.operation.clone(),
            store: h.store.clone(),
            committed: op.committed,
            rolled_back: op.rolled_back,
            journal_error: None,
            steps,
        });
    }
    (hist, ops)
}
