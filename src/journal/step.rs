//! One step type per kind of change to a data directory, each with prepare (the original
//! saved in the rollback store and fsynced, the target checked to be what the change was
//! computed from), apply, verify (the target reads back as the after-state) and undo (the
//! original back, read back as the before-state). This is the only code that writes a data
//! directory; `apply` and `rollback` are loops over these steps.
//!
//! Every file and directory it creates, in the data directory or in a rollback store beside
//! it, is given the data directory's owner when pgsalvage runs as root: a root-owned file in
//! a data directory breaks pg_basebackup and every tool that runs as the cluster's owner.

use crate::datadir::DataDir;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A file below pg_wal that relocate-wal moved (`rel` below pg_wal).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RelocatedFile {
    pub rel: String,
    pub sha256: String,
    pub mode: u32,
    pub mtime: (i64, i64),
}

/// A change as journaled: where, the original's place in the store, before and after.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum Change {
    /// `len` bytes at `offset` of a relation file rewritten in place.
    Block { path: String, offset: u64, len: u64, saved: String, before_sha256: String, after_sha256: String, mtime: (i64, i64) },
    /// A whole file replaced (temp + fsync + rename), or created when it was absent
    /// (`saved` and `before_sha256` None).
    File { path: String, saved: Option<String>, before_sha256: Option<String>, after_sha256: String, mode: u32, mtime: Option<(i64, i64)> },
    /// A file moved out of the data directory into the store (a copy there first).
    MoveAside { path: String, saved: String, sha256: String, mode: u32, mtime: (i64, i64) },
    /// pg_wal's content moved to `to` (copied, fsynced, verified), pg_wal made a link to it,
    /// the originals removed.
    RelocateWal {
        /// pg_wal's old symbolic link target; None when it was a directory.
        old_link: Option<String>,
        dir_mode: u32,
        to: String,
        dirs: Vec<(String, u32)>,
        files: Vec<RelocatedFile>,
    },
}

/// The state of a target: the sha256 of its bytes, or None when absent. For relocate-wal,
/// where pg_wal points.
pub type State = Option<String>;

pub fn sha(b: &[u8]) -> String {
    crate::plan::sha256_hex(b)
}

fn io<'a>(op: &'static str, p: &'a Path) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::io(op, p, e)
}

/// What every step needs: the data directory, the operation's store, the owner to give new
/// files.
pub struct Ctx<'a> {
    pub dd: &'a DataDir,
    pub store: &'a Path,
    pub owner: Option<(u32, u32)>,
}

impl Ctx<'_> {
    pub fn new<'a>(dd: &'a DataDir, store: &'a Path) -> Ctx<'a> {
        Ctx { dd, store, owner: owner_of(dd) }
    }
    /// Give `p` (not following a link) to the data directory's owner (as root only).
    pub fn own(&self, p: &Path) {
        chown_to(self.owner, p)
    }
    /// A private directory (0700) in the store, with its parents.
    pub fn private_dir(&self, d: &Path) -> Result<()> {
        let mut made = Vec::new();
        let mut cur = Some(d);
        while let Some(c) = cur {
            if c.exists() {
                break;
            }
            made.push(c.to_path_buf());
            cur = c.parent();
        }
        fs::DirBuilder::new().recursive(true).mode(0o700).create(d).map_err(io("create", d))?;
        for m in made {
            self.own(&m);
        }
        Ok(())
    }
    /// Save `bytes` as `rel` in the store (0600, fsynced, directory fsynced).
    fn save(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let p = self.store.join(rel);
        if let Some(d) = p.parent() {
            self.private_dir(d)?;
        }
        crate::fsx::write_new_file(&p, bytes, 0o600)?;
        self.own(&p);
        Ok(())
    }
}

/// The data directory's owner (of PG_VERSION, as PostgreSQL checks the directory itself).
pub fn owner_of(dd: &DataDir) -> Option<(u32, u32)> {
    fs::metadata(dd.root()).ok().map(|m| (m.uid(), m.gid()))
}

pub fn chown_to(owner: Option<(u32, u32)>, p: &Path) {
    if let (Some((u, g)), true) = (owner, nix::unistd::geteuid().is_root()) {
        let _ = std::os::unix::fs::lchown(p, Some(u), Some(g));
    }
}

pub fn fsync_path(p: &Path) -> Result<()> {
    File::open(p).and_then(|f| f.sync_all()).map_err(io("fsync", p))
}

pub fn mtime_of(p: &Path) -> Option<(i64, i64)> {
    fs::symlink_metadata(p).ok().map(|m| (m.mtime(), m.mtime_nsec()))
}

pub fn set_mtime(p: &Path, t: Option<(i64, i64)>) -> Result<()> {
    if let Some((s, ns)) = t {
        let ts = nix::sys::time::TimeSpec::new(s, ns);
        nix::sys::stat::utimensat(None, p, &ts, &ts, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .map_err(|e| Error::io("set times", p, std::io::Error::from(e)))?;
    }
    Ok(())
}

/// `len` bytes at `offset` of a file, None when absent or short.
pub fn read_block(path: &Path, offset: u64, len: u64) -> Option<Vec<u8>> {
    let f = OpenOptions::new().read(true).custom_flags(nix::libc::O_NOFOLLOW).open(path).ok()?;
    let mut b = vec![0u8; len as usize];
    f.read_exact_at(&mut b, offset).ok().map(|_| b)
}

/// temp + fsync + rename + fsync dir, with `mode` and the cluster's owner. The temporary
/// name is fixed, so that an interrupted write leaves one known leftover (removed by the
/// next write or by rollback).
pub fn write_replace(path: &Path, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    let _ = fs::remove_file(&tmp); // a leftover of an interrupted write of ours
    {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).custom_flags(nix::libc::O_NOFOLLOW).open(&tmp).map_err(io("create", &tmp))?;
        f.write_all(bytes).and_then(|_| f.sync_all()).map_err(io("write", &tmp))?;
    }
    chown_to(owner, &tmp);
    fs::rename(&tmp, path).map_err(io("rename", &tmp))?;
    fsync_path(dir)
}

pub fn temp_name(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    dir.join(format!(".{}.pgsalvage-new", path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()))
}

/// A change still to be made, with the bytes it was computed from.
pub enum Pending {
    Block { path: String, offset: u64, old: Vec<u8>, new: Vec<u8> },
    File { path: String, old: Option<Vec<u8>>, new: Vec<u8> },
    MoveAside { path: String },
    RelocateWal { to: PathBuf },
}

impl Pending {
    /// The target's key: changes with the same key compose.
    pub fn key(&self) -> String {
        match self {
            Pending::Block { path, offset, .. } => format!("{path}@{offset}"),
            Pending::File { path, .. } | Pending::MoveAside { path } => path.clone(),
            Pending::RelocateWal { .. } => crate::datadir::WAL_DIR.into(),
        }
    }

    /// Save the original in the store (fsynced) and name the change. The target must still
    /// be the bytes the change was computed from.
    pub fn prepare(&self, ctx: &Ctx, step: u32) -> Result<Change> {
        let stale = |path: &str| Error::Refused {
            message: format!("{path} changed while apply was running (it is not the bytes this step was computed from)"),
            hint: "stop whatever writes to the data directory, run `pgsalvage rollback`, then plan again".into(),
        };
        match self {
            Pending::Block { path, offset, old, new } => {
                let p = ctx.dd.path(path);
                let len = old.len() as u64;
                if read_block(&p, *offset, len).as_deref() != Some(old.as_slice()) {
                    return Err(stale(path));
                }
                let saved = format!("orig/{step}.bin");
                ctx.save(&saved, old)?;
                Ok(Change::Block {
                    path: path.clone(),
                    offset: *offset,
                    len,
                    saved,
                    before_sha256: sha(old),
                    after_sha256: sha(new),
                    mtime: mtime_of(&p).unwrap_or_default(),
                })
            }
            Pending::File { path, old, new } => {
                let p = ctx.dd.path(path);
                let now = fs::read(&p).ok();
                if now != *old {
                    return Err(stale(path));
                }
                let mode = fs::metadata(&p).map(|m| m.permissions().mode() & 0o7777).unwrap_or(0o600);
                let saved = match old {
                    Some(b) => {
                        let s = format!("orig/{step}.bin");
                        ctx.save(&s, b)?;
                        Some(s)
                    }
                    None => None,
                };
                Ok(Change::File { path: path.clone(), saved, before_sha256: old.as_deref().map(sha), after_sha256: sha(new), mode, mtime: mtime_of(&p) })
            }
            Pending::MoveAside { path } => {
                let p = ctx.dd.path(path);
                let bytes = fs::read(&p).map_err(io("read", &p))?;
                let m = fs::symlink_metadata(&p).map_err(io("stat", &p))?;
                let saved = format!("moved/{path}");
                // A copy in the store first (durable), then the original goes: a move that
                // works across file systems.
                ctx.save(&saved, &bytes)?;
                Ok(Change::MoveAside {
                    path: path.clone(),
                    saved,
                    sha256: sha(&bytes),
                    mode: m.permissions().mode() & 0o7777,
                    mtime: (m.mtime(), m.mtime_nsec()),
                })
            }
            Pending::RelocateWal { to } => copy_wal(ctx, to),
        }
    }

    /// Carry out a prepared change.
    pub fn apply(&self, ctx: &Ctx, change: &Change) -> Result<()> {
        match (self, change) {
            (Pending::Block { path, offset, new, .. }, _) => {
                let p = ctx.dd.path(path);
                let f = OpenOptions::new().write(true).custom_flags(nix::libc::O_NOFOLLOW).open(&p).map_err(io("open", &p))?;
                f.write_all_at(new, *offset).and_then(|_| f.sync_all()).map_err(io("write", &p))
            }
            (Pending::File { path, new, .. }, Change::File { mode, .. }) => write_replace(&ctx.dd.path(path), new, *mode, ctx.owner),
            (Pending::MoveAside { path }, _) => {
                let p = ctx.dd.path(path);
                fs::remove_file(&p).map_err(io("move", &p))?;
                fsync_path(p.parent().unwrap_or(Path::new(".")))
            }
            (Pending::RelocateWal { to }, Change::RelocateWal { old_link, .. }) => switch_wal(ctx, to, old_link.is_some()),
            _ => Err(Error::Internal("a step and its journal record disagree".into())),
        }
    }
}

/// Why an original cannot be put back: checked for every step before any undo starts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginalMissing {
    #[error("{0} is not the saved original (its sha256 differs from the journal's)")]
    Differs(String),
    #[error("{path}: {message}")]
    Unreadable { path: String, message: String },
    #[error("the journal names a saved copy without its hash")]
    NoHash,
    #[error("pg_wal/{rel} as relocate-wal moved it is neither in {to} nor back in pg_wal (the server ran and recycled or removed it?)")]
    MovedWal { rel: String, to: String },
}

impl Change {
    /// The target's key: changes with the same key compose (see [`Pending::key`]).
    pub fn key(&self) -> String {
        match self {
            Change::Block { path, offset, .. } => format!("{path}@{offset}"),
            Change::File { path, .. } | Change::MoveAside { path, .. } => path.clone(),
            Change::RelocateWal { .. } => crate::datadir::WAL_DIR.into(),
        }
    }

    /// In words, for messages.
    pub fn describe(&self) -> String {
        match self {
            Change::Block { path, offset, len, .. } => format!("{path} (block at byte {offset}, {len} bytes)"),
            Change::File { path, saved: None, .. } => format!("{path} (created)"),
            Change::File { path, .. } => format!("{path} (replaced)"),
            Change::MoveAside { path, .. } => format!("{path} (moved aside)"),
            Change::RelocateWal { to, .. } => format!("pg_wal (moved to {to})"),
        }
    }

    /// The path the change is on, relative to the data directory.
    pub fn path(&self) -> &str {
        match self {
            Change::Block { path, .. } | Change::File { path, .. } | Change::MoveAside { path, .. } => path,
            Change::RelocateWal { .. } => crate::datadir::WAL_DIR,
        }
    }

    pub fn before(&self) -> State {
        match self {
            Change::Block { before_sha256, .. } => Some(before_sha256.clone()),
            Change::File { before_sha256, .. } => before_sha256.clone(),
            Change::MoveAside { sha256, .. } => Some(sha256.clone()),
            Change::RelocateWal { old_link, .. } => Some(format!("pg_wal: {}", old_link.as_deref().unwrap_or("a directory"))),
        }
    }

    pub fn after(&self) -> State {
        match self {
            Change::Block { after_sha256, .. } | Change::File { after_sha256, .. } => Some(after_sha256.clone()),
            Change::MoveAside { .. } => None,
            Change::RelocateWal { to, .. } => Some(format!("pg_wal: {to}")),
        }
    }

    /// The target as it is now, in the terms of [`Change::before`] and [`Change::after`].
    pub fn state(&self, dd: &DataDir) -> State {
        match self {
            Change::Block { path, offset, len, .. } => read_block(&dd.path(path), *offset, *len).map(|b| sha(&b)),
            Change::File { path, .. } | Change::MoveAside { path, .. } => {
                let p = dd.path(path);
                match fs::symlink_metadata(&p) {
                    Ok(m) if m.is_file() => fs::read(&p).ok().map(|b| sha(&b)),
                    Ok(_) => Some("not a regular file".into()),
                    Err(_) => None,
                }
            }
            Change::RelocateWal { .. } => {
                let l = fs::read_link(dd.path(crate::datadir::WAL_DIR)).ok();
                Some(format!("pg_wal: {}", l.map(|l| l.display().to_string()).unwrap_or_else(|| "a directory".into())))
            }
        }
    }

    /// Whether undoing this change touches pg_control or WAL: after the server has run, such
    /// an undo would leave pg_control and WAL that do not belong together.
    pub fn is_cluster_state(&self) -> bool {
        let p = self.path();
        p == crate::datadir::CONTROL_PATH || p == crate::datadir::WAL_DIR || p.starts_with("pg_wal/")
    }

    /// Check, before any undo starts, that the original can be put back: the saved copy is in
    /// the store with the journaled hash (relocate-wal: every moved file is in pg_wal or in
    /// its new directory with its hash).
    pub fn original_available(&self, dd: &DataDir, store: &Path) -> std::result::Result<(), OriginalMissing> {
        let check = |rel: &str, want: &str| -> std::result::Result<(), OriginalMissing> {
            let p = store.join(rel);
            match fs::read(&p) {
                Ok(b) if sha(&b) == want => Ok(()),
                Ok(_) => Err(OriginalMissing::Differs(p.display().to_string())),
                Err(e) => Err(OriginalMissing::Unreadable { path: p.display().to_string(), message: e.to_string() }),
            }
        };
        match self {
            Change::Block { saved, before_sha256, .. } => check(saved, before_sha256),
            Change::File { saved: Some(s), before_sha256: Some(b), .. } => check(s, b),
            Change::File { saved: None, before_sha256: None, .. } => Ok(()),
            Change::File { .. } => Err(OriginalMissing::NoHash),
            Change::MoveAside { saved, sha256, .. } => check(saved, sha256),
            Change::RelocateWal { to, files, old_link, .. } => {
                let here = original_wal_root(dd, old_link);
                for f in files {
                    let ok = |p: PathBuf| fs::read(p).map(|b| sha(&b) == f.sha256).unwrap_or(false);
                    if !(ok(Path::new(to).join(&f.rel)) || here.as_ref().is_some_and(|h| ok(h.join(&f.rel)))) {
                        return Err(OriginalMissing::MovedWal { rel: f.rel.clone(), to: to.clone() });
                    }
                }
                Ok(())
            }
        }
    }

    /// Put the original back, then check it reads back as the before-state.
    pub fn undo(&self, ctx: &Ctx) -> Result<()> {
        match self {
            Change::Block { path, offset, saved, mtime, .. } => {
                let orig = fs::read(ctx.store.join(saved)).map_err(io("read rollback store", ctx.store))?;
                let p = ctx.dd.path(path);
                let f = OpenOptions::new().write(true).custom_flags(nix::libc::O_NOFOLLOW).open(&p).map_err(io("open", &p))?;
                f.write_all_at(&orig, *offset).and_then(|_| f.sync_all()).map_err(io("write", &p))?;
                set_mtime(&p, Some(*mtime))?;
            }
            Change::File { path, saved: Some(s), mode, mtime, .. } => {
                let orig = fs::read(ctx.store.join(s)).map_err(io("read rollback store", ctx.store))?;
                let p = ctx.dd.path(path);
                write_replace(&p, &orig, *mode, ctx.owner)?;
                set_mtime(&p, *mtime)?;
            }
            // The step created the file: it moves into the store (never deleted).
            Change::File { path, saved: None, .. } => {
                let p = ctx.dd.path(path);
                if fs::symlink_metadata(&p).is_ok() {
                    let mut to = ctx.store.join("created").join(path);
                    let mut n = 1;
                    while to.exists() {
                        to = ctx.store.join(format!("created.{n}")).join(path);
                        n += 1;
                    }
                    if let Some(d) = to.parent() {
                        ctx.private_dir(d)?;
                    }
                    if fs::rename(&p, &to).is_err() {
                        let b = fs::read(&p).map_err(io("read", &p))?;
                        crate::fsx::write_new_file(&to, &b, 0o600)?;
                        fs::remove_file(&p).map_err(io("move", &p))?;
                    }
                    fsync_path(p.parent().unwrap_or(Path::new(".")))?;
                }
            }
            Change::MoveAside { path, saved, mode, mtime, .. } => {
                let orig = fs::read(ctx.store.join(saved)).map_err(io("read rollback store", ctx.store))?;
                let p = ctx.dd.path(path);
                write_replace(&p, &orig, *mode, ctx.owner)?;
                set_mtime(&p, Some(*mtime))?;
            }
            Change::RelocateWal { old_link, dir_mode, to, dirs, files } => undo_relocation(ctx, old_link, *dir_mode, Path::new(to), dirs, files)?,
        }
        let now = self.state(ctx.dd);
        let relocation_files_back = match self {
            Change::RelocateWal { old_link, files, .. } => {
                let root = original_wal_root(ctx.dd, old_link);
                files.iter().all(|f| root.as_ref().and_then(|r| fs::read(r.join(&f.rel)).ok()).is_some_and(|b| sha(&b) == f.sha256))
            }
            _ => true,
        };
        if now != self.before() || !relocation_files_back {
            return Err(Error::Refused {
                message: format!("{} does not read back as the original after the undo", self.describe()),
                hint: "check the file system (dmesg, df), then run `pgsalvage rollback` again".into(),
            });
        }
        Ok(())
    }

    /// Check the change reads back as its after-state.
    pub fn verify(&self, dd: &DataDir) -> Result<()> {
        if self.state(dd) != self.after() {
            return Err(Error::Refused {
                message: format!("{} does not read back as written", self.describe()),
                hint: "check the file system (dmesg, df); then run `pgsalvage rollback`".into(),
            });
        }
        Ok(())
    }
}

/// Where pg_wal's original content lives once pg_wal is back as it was: the directory
/// itself, or the old link's target (resolved from the data directory).
fn original_wal_root(dd: &DataDir, old_link: &Option<String>) -> Option<PathBuf> {
    match old_link {
        None => {
            let w = dd.path(crate::datadir::WAL_DIR);
            fs::symlink_metadata(&w).ok().filter(|m| m.is_dir()).map(|_| w)
        }
        Some(l) => Some(dd.root().join(l)),
    }
}

/// Every file below `dir` as a path relative to it, directories first (sorted).
pub fn walk(dir: &Path, rel: &str, out: &mut Vec<(String, bool)>) -> Result<()> {
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

fn dir_mtime(p: &Path) -> Option<(i64, i64)> {
    fs::metadata(p).ok().filter(|m| m.is_dir()).map(|m| (m.mtime(), m.mtime_nsec()))
}

/// relocate-wal, prepare: copy everything below pg_wal to `to` (fsync, read back), and name
/// the files with their hashes. Nothing in the data directory changes yet.
fn copy_wal(ctx: &Ctx, to: &Path) -> Result<Change> {
    let wal = ctx.dd.path(crate::datadir::WAL_DIR);
    let old_link = fs::read_link(&wal).ok();
    let src = fs::canonicalize(&wal).map_err(io("resolve", &wal))?;
    let dir_mode = fs::metadata(&src).map_err(io("stat", &src))?.permissions().mode() & 0o7777;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(to).map_err(io("create", to))?;
    ctx.own(to);
    let mut entries = Vec::new();
    walk(&src, "", &mut entries)?;
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    for (rel, is_dir) in &entries {
        let (from, dest) = (src.join(rel), to.join(rel));
        let m = fs::metadata(&from).map_err(io("stat", &from))?;
        if *is_dir {
            fs::DirBuilder::new().mode(m.permissions().mode() & 0o7777).create(&dest).map_err(io("create", &dest))?;
            ctx.own(&dest);
            dirs.push((rel.clone(), m.permissions().mode() & 0o7777));
            continue;
        }
        let bytes = fs::read(&from).map_err(io("read", &from))?;
        {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(m.permissions().mode() & 0o7777).open(&dest).map_err(io("create", &dest))?;
            f.write_all(&bytes).and_then(|_| f.sync_all()).map_err(io("write", &dest))?;
        }
        ctx.own(&dest);
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
    Ok(Change::RelocateWal { old_link: old_link.as_ref().map(|l| l.display().to_string()), dir_mode, to: to.display().to_string(), dirs, files })
}

/// relocate-wal, apply: pg_wal becomes a link to `to` (a directory is renamed aside on the
/// same file system, a link replaced by rename), then the originals go, deepest first: the
/// full file system gets its space back. Each was verified in its new place by prepare.
fn switch_wal(ctx: &Ctx, to: &Path, was_link: bool) -> Result<()> {
    let dd = ctx.dd;
    let wal = dd.path(crate::datadir::WAL_DIR);
    let src = fs::canonicalize(&wal).map_err(io("resolve", &wal))?;
    let mut entries = Vec::new();
    walk(&src, "", &mut entries)?;
    let aside = dd.path("pg_wal.pgsalvage-old");
    let tmp_link = dd.path(".pg_wal.pgsalvage-new");
    let _ = fs::remove_file(&tmp_link);
    std::os::unix::fs::symlink(to, &tmp_link).map_err(io("create link", &tmp_link))?;
    ctx.own(&tmp_link);
    if !was_link {
        fs::rename(&wal, &aside).map_err(io("rename", &wal))?;
    }
    fs::rename(&tmp_link, &wal).map_err(io("rename", &tmp_link))?;
    fsync_path(dd.root())?;
    let old_root = if was_link { src.clone() } else { aside.clone() };
    for (rel, is_dir) in entries.iter().rev() {
        let p = old_root.join(rel);
        let r = if *is_dir { fs::remove_dir(&p) } else { fs::remove_file(&p) };
        r.map_err(io("remove", &p))?;
    }
    if was_link {
        fsync_path(&old_root)?;
    } else {
        fs::remove_dir(&aside).map_err(io("remove", &aside))?;
    }
    fsync_path(dd.root())
}

/// Undo relocate-wal: pg_wal back as it was (a directory, or the old link), every journaled
/// file back in it from wherever it is now (still in place, or in the new directory),
/// verified against the journal. The copies in the new directory stay (never deleted).
fn undo_relocation(ctx: &Ctx, old_link: &Option<String>, dir_mode: u32, to: &Path, dirs: &[(String, u32)], files: &[RelocatedFile]) -> Result<()> {
    let dd = ctx.dd;
    let wal = dd.path(crate::datadir::WAL_DIR);
    let aside = dd.path("pg_wal.pgsalvage-old");
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
                ctx.own(&wal);
            }
            let _ = fs::set_permissions(&wal, fs::Permissions::from_mode(dir_mode));
        }
        Some(l) => {
            if fs::read_link(&wal).ok().as_deref() != Some(Path::new(l)) {
                let tmp = dd.path(".pg_wal.pgsalvage-new");
                std::os::unix::fs::symlink(l, &tmp).map_err(io("create link", &tmp))?;
                ctx.own(&tmp);
                fs::rename(&tmp, &wal).map_err(io("rename", &tmp))?;
            }
        }
    }
    let root = fs::canonicalize(&wal).map_err(io("resolve", &wal))?;
    for (rel, mode) in dirs {
        let d = root.join(rel);
        if !d.is_dir() {
            fs::DirBuilder::new().mode(*mode).create(&d).map_err(io("create", &d))?;
            ctx.own(&d);
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
                ctx.own(parent);
            }
        }
        write_replace(&dest, &bytes, f.mode, ctx.owner)?;
        set_mtime(&dest, Some(f.mtime))?;
    }
    fsync_path(&root)?;
    fsync_path(dd.root())
}
