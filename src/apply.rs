//! `apply` and `rollback`: the plan's actions carried out with an undo-first journal.
//!
//! For each change: the original bytes (the block, or the whole file) are copied into the
//! rollback store and fsynced, then a journal record naming them is appended and fsynced,
//! and only then is the data directory touched; after the change the target is fsynced and
//! its after-hash journaled. Files a plan removes are moved into the store, never deleted.
//! Whatever stops an apply, `rollback` restores every started step from the store.
//! The store and the journal are 0700/0600, outside the data directory.

use crate::datadir::{DataDir, Postmaster};
use crate::error::{Error, Result};
use crate::plan::{self, ActionKind, Plan};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

pub const HISTORY_FILE: &str = "pgsalvage.history";
pub const JOURNAL: &str = "journal.jsonl";

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Begin {
        operation: String,
        plan_sha256: String,
        data_directory: String,
        time: String,
        /// Modification times of the directories the plan may change (relative; "" is the
        /// data directory itself), taken before anything was written: rollback sets them last.
        #[serde(default)]
        dir_mtimes: Vec<(String, (i64, i64))>,
    },
    /// The original is safe in the store; the change may start.
    Saved {
        step: u32,
        action: String,
        path: String,
        offset: Option<u64>,
        len: Option<u64>,
        saved: Option<String>,
        before_sha256: Option<String>,
        mode: Option<u32>,
        /// The file's modification time before the change (seconds, nanoseconds).
        #[serde(default)]
        mtime: Option<(i64, i64)>,
    },
    /// pg_wal is moving to `to` (relocate-wal): every file below it was copied there,
    /// fsynced and verified; the originals go and pg_wal becomes a link only after this.
    Relocated {
        step: u32,
        action: String,
        /// pg_wal's old symbolic link target; None when it was a directory.
        old_link: Option<String>,
        /// pg_wal's directory mode (when it was a directory).
        dir_mode: u32,
        to: String,
        /// Directories below pg_wal (archive_status, summaries) with their modes.
        #[serde(default)]
        dirs: Vec<(String, u32)>,
        files: Vec<RelocatedFile>,
    },
    /// The change is done and durable.
    Done {
        step: u32,
        after_sha256: Option<String>,
    },
    Commit {
        time: String,
    },
    RolledBack {
        time: String,
    },
}

/// A file below pg_wal that relocate-wal moved (`rel` below pg_wal).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RelocatedFile {
    pub rel: String,
    pub sha256: String,
    pub mode: u32,
    pub mtime: (i64, i64),
}

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

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, p, e)
}

struct Journal {
    file: File,
    path: PathBuf,
    steps: u32,
}

impl Journal {
    fn append(&mut self, r: &Record) -> Result<()> {
        let mut line = serde_json::to_vec(r).map_err(|e| Error::Usage(e.to_string()))?;
        line.push(b'\n');
        self.file.write_all(&line).and_then(|_| self.file.sync_all()).map_err(io("write journal", &self.path))?;
        self.steps += 1;
        // Fault injection for the tests: stop dead after the k-th journal record.
        if let Ok(k) = std::env::var("PGSALVAGE_TEST_ABORT_AFTER_RECORD") {
            if k.parse::<u32>().ok() == Some(self.steps) {
                std::process::abort();
            }
        }
        Ok(())
    }
}

fn fsync_path(p: &Path) -> Result<()> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io("fsync", p))
}

fn mtime_of(p: &Path) -> Option<(i64, i64)> {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(p).ok().map(|m| (m.mtime(), m.mtime_nsec()))
}

fn set_mtime(p: &Path, t: Option<(i64, i64)>) -> Result<()> {
    if let Some((s, ns)) = t {
        let ts = nix::sys::time::TimeSpec::new(s, ns);
        nix::sys::stat::utimensat(None, p, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Error::io("set times", p, std::io::Error::from(e)))?;
    }
    Ok(())
}

fn sha(b: &[u8]) -> String {
    plan::sha256_hex(b)
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
}

/// Carry out a plan. The caller has checked confirmation and the snapshot.
pub fn apply(dd: &DataDir, p: &Plan, plan_bytes: &[u8], opts: &ApplyOptions) -> Result<Applied> {
    p.validate().map_err(|e| Error::Usage(format!("the plan: {e}")))?;
    if let Postmaster::Alive { pid } = dd.postmaster() {
        return Err(Error::Refused {
            message: format!("a postmaster (pid {pid}) is running on {}", dd.root().display()),
            hint: "stop the server first (pg_ctl stop -m fast)".into(),
        });
    }
    let _lock = lock(dd)?;
    let (same_control, drift) = plan::drift(dd, p)?;
    if !drift.is_empty() || !same_control {
        return Err(Error::Refused {
            message: format!(
                "the data directory changed since the plan was made: {} action(s) stale{}",
                drift.len(),
                if same_control { "" } else { ", pg_control differs" }
            ),
            hint: "run `pgsalvage review PLAN -D DATADIR` to see which, then make a new plan".into(),
        });
    }
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
    let (c, _, _) = dd.control().map_err(|_| ()).or_else(|_| {
        // A rebuild plan: the control file is unreadable by definition.
        p.actions
            .iter()
            .find_map(|a| match &a.kind {
                ActionKind::RebuildControl { guessed, time, .. } => {
                    plan::reset::control_from(guessed, *time).ok().map(|c| (c, crate::format::control::CrcCheck { stored: 0, computed: 0, offset: 0 }, 0))
                }
                _ => None,
            })
            .ok_or_else(|| Error::Usage("pg_control unreadable and the plan does not rebuild it".into()))
    })?;
    let dir_mtimes: Vec<(String, (i64, i64))> = dirs_touched(p).into_iter().filter_map(|d| dir_mtime(&dd.path(&d)).map(|t| (d, t))).collect();
    let operation = format!("{}-{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"), std::process::id());
    let store_root = opts.store_root.clone().unwrap_or_else(|| default_store_root(dd));
    fs::DirBuilder::new().recursive(true).mode(0o700).create(&store_root).map_err(io("create rollback store", &store_root))?;
    let store = store_root.join(&operation);
    fs::DirBuilder::new().mode(0o700).create(&store).map_err(io("create rollback store", &store))?;
    let jpath = store.join(JOURNAL);
    let jfile = OpenOptions::new().append(true).create_new(true).mode(0o600).open(&jpath).map_err(io("create journal", &jpath))?;
    let mut j = Journal { file: jfile, path: jpath, steps: 0 };
    fsync_path(&store_root)?;
    let plan_sha = sha(plan_bytes);
    // The plan itself goes into the store, so that a rollback knows what was done.
    crate::fsx::write_new_file(&store.join("plan.json"), plan_bytes, 0o600)?;
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
    let bs = c.database_block_size as u64;
    let mut step = 0u32;
    for a in &p.actions {
        match (&a.kind, a.target.block) {
            (ActionKind::MoveAside, _) => {
                step += 1;
                move_into_store(dd, &mut j, step, &a.id, &a.target.path, &store)?;
            }
            (ActionKind::RelocateWal { to }, _) => {
                step += 1;
                relocate_wal(dd, &mut j, step, &a.id, opts.wal_dir_override.as_deref().unwrap_or(Path::new(to)))?;
            }
            (ActionKind::ResetWal { wal_file, moves, .. }, _) | (ActionKind::RebuildControl { wal_file, moves, .. }, _) => {
                for m in moves {
                    step += 1;
                    move_into_store(dd, &mut j, step, &a.id, m, &store)?;
                }
                let old = dd.read(crate::datadir::CONTROL_PATH).ok();
                let new = plan::new_bytes(a, old.as_deref(), &c).map_err(|e| Error::Usage(format!("action {}: {e}", a.id)))?.unwrap_or_default();
                step += 1;
                replace_file(dd, &mut j, step, &a.id, crate::datadir::CONTROL_PATH, &new, &store)?;
                let seg = plan::reset::segment_bytes(&crate::format::control::ControlFile::parse(&new).map_err(|e| Error::Usage(e.to_string()))?);
                step += 1;
                replace_file(dd, &mut j, step, &a.id, &format!("pg_wal/{wal_file}"), &seg, &store)?;
            }
            (_, Some(block)) => {
                step += 1;
                let path = dd.path(&a.target.path);
                let offset = (block % c.blocks_per_segment) as u64 * bs;
                let f = OpenOptions::new().read(true).write(true).custom_flags(nix::libc::O_NOFOLLOW).open(&path).map_err(io("open", &path))?;
                let mut old = vec![0u8; bs as usize];
                f.read_exact_at(&mut old, offset).map_err(io("read", &path))?;
                let saved = format!("orig/{step}-{}.bin", a.id);
                save(&store, &saved, &old)?;
                j.append(&Record::Saved {
                    step,
                    action: a.id.clone(),
                    path: a.target.path.clone(),
                    offset: Some(offset),
                    len: Some(bs),
                    saved: Some(saved),
                    before_sha256: Some(sha(&old)),
                    mode: None,
                    mtime: mtime_of(&path),
                })?;
                let new = plan::new_bytes(a, Some(&old), &c).map_err(|e| Error::Usage(format!("action {}: {e}", a.id)))?.unwrap_or(old);
                f.write_all_at(&new, offset).and_then(|_| f.sync_all()).map_err(io("write", &path))?;
                j.append(&Record::Done { step, after_sha256: Some(sha(&new)) })?;
            }
            (_, None) => {
                let old = dd.read(&a.target.path).ok();
                let new = plan::new_bytes(a, old.as_deref(), &c).map_err(|e| Error::Usage(format!("action {}: {e}", a.id)))?;
                if let Some(new) = new {
                    step += 1;
                    replace_file(dd, &mut j, step, &a.id, &a.target.path, &new, &store)?;
                }
            }
        }
    }
    j.append(&Record::Commit { time: now() })?;
    append_history(dd, "apply", &operation, &plan_sha, &store)?;
    Ok(Applied { operation, store: store.display().to_string(), steps: step })
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

/// Create the parent directories of `p` inside the store, private.
fn private_parent(p: &Path) -> Result<()> {
    match p.parent() {
        Some(d) => fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(io("create", d)),
        None => Ok(()),
    }
}

fn save(store: &Path, rel: &str, bytes: &[u8]) -> Result<()> {
    let p = store.join(rel);
    private_parent(&p)?;
    crate::fsx::write_new_file(&p, bytes, 0o600)
}

/// Replace (or create) a whole file: the original saved first, then temp + rename + fsync.
fn replace_file(dd: &DataDir, j: &mut Journal, step: u32, action: &str, rel: &str, new: &[u8], store: &Path) -> Result<()> {
    let path = dd.path(rel);
    let old = fs::read(&path).ok();
    let mode = fs::metadata(&path).ok().map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    let saved = match &old {
        Some(b) => {
            let s = format!("orig/{step}-{action}.bin");
            save(store, &s, b)?;
            Some(s)
        }
        None => None,
    };
    j.append(&Record::Saved {
        step,
        action: action.into(),
        path: rel.into(),
        offset: None,
        len: None,
        saved,
        before_sha256: old.as_ref().map(|b| sha(b)),
        mode,
        mtime: mtime_of(&path),
    })?;
    write_replace(&path, new, mode.unwrap_or(0o600), owner_of(dd))?;
    j.append(&Record::Done { step, after_sha256: Some(sha(new)) })
}

/// As root, give `p` (not following a link) to the cluster's owner.
fn chown_to(owner: Option<(u32, u32)>, p: &Path) {
    if let (Some((u, g)), true) = (owner, nix::unistd::geteuid().is_root()) {
        let _ = std::os::unix::fs::lchown(p, Some(u), Some(g));
    }
}

fn owner_of(dd: &DataDir) -> Option<(u32, u32)> {
    fs::metadata(dd.path("PG_VERSION")).ok().map(|m| (std::os::unix::fs::MetadataExt::uid(&m), std::os::unix::fs::MetadataExt::gid(&m)))
}

/// temp + fsync + rename + fsync dir, keeping mode and (as root) the cluster's owner.
fn write_replace(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(".{}.pgsalvage-new", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    let _ = fs::remove_file(&tmp); // a leftover of an interrupted apply of ours
    {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io("write", &tmp))?;
    }
    if let (Some((u, g)), true) = (owner, nix::unistd::geteuid().is_root()) {
        let _ = nix::unistd::chown(&tmp, Some(u.into()), Some(g.into()));
    }
    fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    fsync_path(dir)
}

fn move_into_store(dd: &DataDir, j: &mut Journal, step: u32, action: &str, rel: &str, store: &Path) -> Result<()> {
    let from = dd.path(rel);
    let saved = format!("moved/{rel}");
    let to = store.join(&saved);
    private_parent(&to)?;
    let bytes = fs::read(&from).map_err(io("read", &from))?;
    // A copy in the store first (durable), then the original goes: a move across file systems.
    crate::fsx::write_new_file(&to, &bytes, 0o600)?;
    let mode = fs::metadata(&from).ok().map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    j.append(&Record::Saved {
        step,
        action: action.into(),
        path: rel.into(),
        offset: None,
        len: None,
        saved: Some(saved),
        before_sha256: Some(sha(&bytes)),
        mode,
        mtime: mtime_of(&from),
    })?;
    fs::remove_file(&from).map_err(io("move", &from))?;
    fsync_path(from.parent().unwrap_or(Path::new(".")))?;
    j.append(&Record::Done { step, after_sha256: None })
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

/// Every file below `dir` as a path relative to it, directories first (sorted).
fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, bool)>) -> Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir).map_err(io("list", dir))?.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    for e in names {
        let name = format!("{rel}{}", e.file_name().to_string_lossy());
        let ft = e.file_type().map_err(io("stat", &e.path()))?;
        if ft.is_dir() {
            out.push((name.clone(), true));
            walk(&e.path(), &format!("{name}/"), out)?;
        } else if ft.is_file() {
            out.push((name, false));
        }
    }
    Ok(())
}

/// relocate-wal: copy everything below pg_wal to `to` (fsync, verify), journal the list with
/// hashes, make pg_wal a link to `to`, then remove the originals: a move across file
/// systems, so that the full one gets its space back. Rollback moves them back.
fn relocate_wal(dd: &DataDir, j: &mut Journal, step: u32, action: &str, to: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let wal = dd.path(crate::datadir::WAL_DIR);
    let old_link = fs::read_link(&wal).ok();
    let src = fs::canonicalize(&wal).map_err(io("resolve", &wal))?;
    let dir_mode = fs::metadata(&src).map_err(io("stat", &src))?.permissions().mode() & 0o7777;
    let owner = owner_of(dd);
    let chown = |p: &Path| chown_to(owner, p);
    fs::DirBuilder::new().recursive(true).mode(0o700).create(to).map_err(io("create", to))?;
    chown(to);
    let mut entries = Vec::new();
    walk(&src, "", &mut entries)?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for (rel, is_dir) in &entries {
        let (from, dest) = (src.join(rel), to.join(rel));
        let m = fs::metadata(&from).map_err(io("stat", &from))?;
        if *is_dir {
            fs::DirBuilder::new().mode(m.permissions().mode() & 0o7777).create(&dest).map_err(io("create", &dest))?;
            chown(&dest);
            dirs.push((rel.clone(), m.permissions().mode() & 0o7777));
            continue;
        }
        let bytes = fs::read(&from).map_err(io("read", &from))?;
        {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(m.permissions().mode() & 0o7777).open(&dest).map_err(io("create", &dest))?;
            f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io("write", &dest))?;
        }
        chown(&dest);
        set_mtime(&dest, Some((m.mtime(), m.mtime_nsec())))?;
        let digest = sha(&bytes);
        if fs::read(&dest).map(|b| sha(&b)).ok().as_ref() != Some(&digest) {
            return Err(Error::Refused { message: format!("{} does not read back as written", dest.display()), hint: "check the target file system".into() });
        }
        files.push(RelocatedFile { rel: rel.clone(), sha256: digest, mode: m.permissions().mode() & 0o7777, mtime: (m.mtime(), m.mtime_nsec()) });
    }
    for (rel, _) in entries.iter().filter(|e| e.1).rev() {
        // The copies' directory times as the originals' (set after their entries exist).
        set_mtime(&to.join(rel), dir_mtime(&src.join(rel)))?;
        fsync_path(&to.join(rel))?;
    }
    fsync_path(to)?;
    j.append(&Record::Relocated {
        step,
        action: action.into(),
        old_link: old_link.as_ref().map(|l| l.display().to_string()),
        dir_mode,
        to: to.display().to_string(),
        dirs,
        files,
    })?;
    // pg_wal becomes the link: a directory is renamed aside (same file system, atomic), a link
    // is replaced by rename.
    let aside = dd.path("pg_wal.pgsalvage-old");
    let tmp_link = dd.path(".pg_wal.pgsalvage-new");
    let _ = fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(to, &tmp_link).map_err(io("create link", &tmp_link))?;
    chown(&tmp_link);
    if old_link.is_none() {
        fs::rename(&wal, &aside).map_err(io("rename", &wal))?;
    }
    fs::rename(&tmp_link, &wal).map_err(io("rename", &tmp_link))?;
    fsync_path(dd.root())?;
    // The originals go (each verified in its new place above), deepest first.
    let old_root = if old_link.is_none() { aside.clone() } else { src.clone() };
    for (rel, is_dir) in entries.iter().rev() {
        let p = old_root.join(rel);
        let r = if *is_dir { fs::remove_dir(&p) } else { fs::remove_file(&p) };
        r.map_err(io("remove", &p))?;
    }
    if old_link.is_none() {
        fs::remove_dir(&aside).map_err(io("remove", &aside))?;
    } else {
        fsync_path(&old_root)?;
    }
    fsync_path(dd.root())?;
    j.append(&Record::Done { step, after_sha256: None })
}

/// Undo relocate-wal: pg_wal back as it was (a directory, or the old link), every journaled
/// file back in it from wherever it is now (still in place, or in the new directory),
/// verified against the journal. The copies in the new directory stay (never deleted).
fn undo_relocation(dd: &DataDir, old_link: &Option<String>, dir_mode: u32, to: &Path, dirs: &[(String, u32)], files: &[RelocatedFile]) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let wal = dd.path(crate::datadir::WAL_DIR);
    let aside = dd.path("pg_wal.pgsalvage-old");
    let owner = owner_of(dd);
    let chown = |p: &Path| chown_to(owner, p);
    let _ = fs::remove_file(dd.path(".pg_wal.pgsalvage-new"));
    match old_link {
        None => {
            if fs::read_link(&wal).is_ok() {
                fs::remove_file(&wal).map_err(io("remove link", &wal))?;
            }
            if aside.exists() && !wal.exists() {
                fs::rename(&aside, &wal).map_err(io("rename", &aside))?;
            }
            if !wal.exists() {
                fs::DirBuilder::new().mode(dir_mode).create(&wal).map_err(io("create", &wal))?;
                chown(&wal);
            }
            let _ = fs::set_permissions(&wal, fs::Permissions::from_mode(dir_mode));
        }
        Some(l) => {
            if fs::read_link(&wal).ok().as_deref() != Some(Path::new(l)) {
                let tmp = dd.path(".pg_wal.pgsalvage-new");
                std::os::unix::fs::symlink(l, &tmp).map_err(io("create link", &tmp))?;
                chown(&tmp);
                fs::rename(&tmp, &wal).map_err(io("rename", &tmp))?;
            }
        }
    }
    let root = fs::canonicalize(&wal).map_err(io("resolve", &wal))?;
    for (rel, mode) in dirs {
        let d = root.join(rel);
        if !d.is_dir() {
            fs::DirBuilder::new().mode(*mode).create(&d).map_err(io("create", &d))?;
            chown(&d);
        }
        let _ = fs::set_permissions(&d, fs::Permissions::from_mode(*mode));
    }
    for f in files {
        let dest = root.join(&f.rel);
        if fs::read(&dest).map(|b| sha(&b)).ok().as_deref() == Some(f.sha256.as_str()) {
            set_mtime(&dest, Some(f.mtime))?;
            continue;
        }
        let from = to.join(&f.rel);
        let bytes = fs::read(&from).map_err(io("read", &from))?;
        if sha(&bytes) != f.sha256 {
            return Err(Error::Refused {
                message: format!("{} is not the file relocate-wal moved there (its sha256 differs)", from.display()),
                hint: "restore from the snapshot taken before apply".into(),
            });
        }
        if let Some(parent) = dest.parent() {
            if !parent.exists() {
                fs::DirBuilder::new().recursive(true).mode(0o700).create(parent).map_err(io("create", parent))?;
                chown(parent);
            }
        }
        write_replace(&dest, &bytes, f.mode, owner)?;
        set_mtime(&dest, Some(f.mtime))?;
    }
    fsync_path(&root)?;
    fsync_path(dd.root())
}

fn append_history(dd: &DataDir, event: &str, operation: &str, plan_sha: &str, store: &Path) -> Result<()> {
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
    let mut f = OpenOptions::new().append(true).create(true).mode(0o600).open(&p).map_err(io("open history", &p))?;
    let mut line = serde_json::to_vec(&h).map_err(|e| Error::Usage(e.to_string()))?;
    line.push(b'\n');
    f.write_all(&line).and_then(|_| f.sync_all()).map_err(io("write history", &p))
}

/// The sha256 of a journaled target as it is now: the block at `offset`/`len`, or the whole
/// file; None when absent.
pub fn target_sha(dd: &DataDir, path: &str, offset: Option<u64>, len: Option<u64>) -> Option<String> {
    match (offset, len) {
        (Some(o), Some(l)) => File::open(dd.path(path)).ok().and_then(|f| {
            let mut b = vec![0u8; l as usize];
            f.read_exact_at(&mut b, o).ok().map(|_| sha(&b))
        }),
        _ => fs::read(dd.path(path)).ok().map(|b| sha(&b)),
    }
}

pub fn read_history(dd: &DataDir) -> Vec<History> {
    fs::read_to_string(dd.path(HISTORY_FILE)).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

pub fn read_journal(store: &Path) -> Result<Vec<Record>> {
    let p = store.join(JOURNAL);
    let text = fs::read_to_string(&p).map_err(io("read journal", &p))?;
    // A torn last line (the process died while writing it) is ignored: its step never began.
    Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect())
}

#[derive(Clone, Debug, Serialize)]
pub struct RolledBack {
    pub operation: String,
    pub restored: usize,
    pub already: bool,
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
    let hist = read_history(dd);
    let h = match operation {
        Some(op) => hist.iter().rev().find(|h| h.operation == op),
        None => hist.iter().rev().find(|h| h.event == "apply-started" || h.event == "apply"),
    }
    .ok_or_else(|| Error::Refused {
        message: format!("no pgsalvage operation{} recorded in {}", operation.map(|o| format!(" {o}")).unwrap_or_default(), dd.path(HISTORY_FILE).display()),
        hint: "`pgsalvage audit` lists them".into(),
    })?;
    let store = PathBuf::from(&h.store);
    let records = read_journal(&store)?;
    if records.iter().any(|r| matches!(r, Record::RolledBack { .. })) {
        return Ok(RolledBack { operation: h.operation.clone(), restored: 0, already: true });
    }
    let done: std::collections::HashMap<u32, Option<String>> =
        records.iter().filter_map(|r| if let Record::Done { step, after_sha256 } = r { Some((*step, after_sha256.clone())) } else { None }).collect();
    let saved: Vec<&Record> = records.iter().filter(|r| matches!(r, Record::Saved { .. } | Record::Relocated { .. })).collect();
    // A journal is ours, but it sits in a directory a user can edit: never follow one out of
    // the data directory or the store.
    for r in &saved {
        if let Record::Relocated { files, dirs, to, .. } = r {
            if !Path::new(to).is_absolute() || files.iter().map(|f| &f.rel).chain(dirs.iter().map(|d| &d.0)).any(|r| !crate::plan::is_inside_relative(r)) {
                return Err(Error::Refused {
                    message: format!("{}: a relocate-wal entry names a path outside pg_wal or {to}", store.join(JOURNAL).display()),
                    hint: "the journal was edited or damaged; restore from the snapshot taken before apply".into(),
                });
            }
            continue;
        }
        let Record::Saved { path, saved: s, .. } = r else { continue };
        if !crate::plan::is_inside_relative(path) || s.as_deref().is_some_and(|s| !crate::plan::is_inside_relative(s)) {
            return Err(Error::Refused {
                message: format!("{}: a journal entry names {path:?}, which is not a plain path inside the data directory", store.join(JOURNAL).display()),
                hint: "the journal was edited or damaged; restore from the snapshot taken before apply".into(),
            });
        }
    }
    // First check that nothing changed since (a server that ran, another repair).
    if !force {
        for r in &saved {
            let Record::Saved { step, path, offset, len, .. } = r else { continue };
            let Some(Some(after)) = done.get(step) else { continue };
            if target_sha(dd, path, *offset, *len).as_ref() != Some(after) {
                return Err(Error::Refused {
                    message: format!(
                        "{path} changed since operation {} was applied (the server ran, or another change): rollback would overwrite that",
                        h.operation
                    ),
                    hint: "pass --force to restore the original bytes anyway".into(),
                });
            }
        }
    }
    if !force {
        for r in &saved {
            let Record::Relocated { step, to, files, .. } = r else { continue };
            if !done.contains_key(step) {
                continue;
            }
            // The server ran on the new pg_wal if anything there differs from what was moved.
            let mut now = Vec::new();
            let _ = walk(Path::new(to), "", &mut now);
            let moved: std::collections::HashMap<&str, &str> = files.iter().map(|f| (f.rel.as_str(), f.sha256.as_str())).collect();
            let changed = now
                .iter()
                .filter(|(_, d)| !d)
                .any(|(rel, _)| moved.get(rel.as_str()).is_none_or(|h| fs::read(Path::new(to).join(rel)).map(|b| sha(&b)).ok().as_deref() != Some(*h)))
                || files.iter().any(|f| !Path::new(to).join(&f.rel).exists());
            if changed {
                return Err(Error::Refused {
                    message: format!("WAL in {to} changed since operation {} moved it there (the server ran): rollback would lose that WAL", h.operation),
                    hint: "pass --force to put the original pg_wal back anyway".into(),
                });
            }
        }
    }
    let mut restored = 0;
    for r in saved.iter().rev() {
        if let Record::Relocated { old_link, dir_mode, to, dirs, files, .. } = r {
            undo_relocation(dd, old_link, *dir_mode, Path::new(to), dirs, files)?;
            restored += 1;
            continue;
        }
        let Record::Saved { path, offset, len, saved, mode, mtime, .. } = r else { continue };
        let target = dd.path(path);
        match (saved, offset, len) {
            (Some(s), Some(o), Some(_)) => {
                let orig = fs::read(store.join(s)).map_err(io("read rollback store", &store))?;
                let f = OpenOptions::new().write(true).custom_flags(nix::libc::O_NOFOLLOW).open(&target).map_err(io("open", &target))?;
                f.write_all_at(&orig, *o).and_then(|_| f.sync_all()).map_err(io("write", &target))?;
                set_mtime(&target, *mtime)?;
            }
            (Some(s), None, None) => {
                let orig = fs::read(store.join(s)).map_err(io("read rollback store", &store))?;
                write_replace(&target, &orig, mode.unwrap_or(0o600), owner_of(dd))?;
                set_mtime(&target, *mtime)?;
            }
            // The step created the file: it moves into the store (never deleted).
            (None, _, _) if target.exists() => {
                let to = store.join("created").join(path);
                private_parent(&to)?;
                fs::rename(&target, &to).or_else(|_| fs::copy(&target, &to).and_then(|_| fs::remove_file(&target))).map_err(io("move", &target))?;
            }
            _ => {}
        }
        restored += 1;
    }
    // Leftover temporary files of an interrupted replace.
    for r in &saved {
        if let Record::Saved { path, .. } = r {
            let p = dd.path(path);
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                let _ = fs::remove_file(dir.join(format!(".{}.pgsalvage-new", name.to_string_lossy())));
            }
        }
    }
    let jpath = store.join(JOURNAL);
    let mut j = Journal { file: OpenOptions::new().append(true).open(&jpath).map_err(io("open journal", &jpath))?, path: jpath, steps: u32::MAX / 2 };
    j.append(&Record::RolledBack { time: now() })?;
    append_history(dd, "rollback", &h.operation, &h.plan_sha256, &store)?;
    // Last, the directories' times as they were before the apply (creating, moving and
    // renaming entries changed them; the history file stays, as the record of what was done).
    if let Some(Record::Begin { dir_mtimes, .. }) = records.first() {
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
