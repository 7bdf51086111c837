//! `snapshot restore`: write an archive into an empty directory, checking every entry
//! before it is written and every hash against the manifest, never writing outside the
//! target or the tablespace locations the user mapped explicitly. On failure everything
//! it wrote is removed (or, if that fails, the target is marked).

use super::manifest::EntryKind;
use super::verify::{compare, scan, Place, Sink};
use super::EntryError;
use crate::error::{Error, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};

/// The file left in a target whose failed restore could not be cleaned up.
pub const FAILED_MARKER: &str = "PGSALVAGE-RESTORE-FAILED";

#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// OLD=NEW: restore the linked directory (tablespace, or a symlinked pg_wal) that pointed
    /// at OLD into NEW (absolute, empty or absent) and link to it. Unmapped linked
    /// directories are restored inside the target as plain directories.
    pub tablespace_map: Vec<(String, PathBuf)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RestoreReport {
    pub target: String,
    pub files: usize,
    pub bytes: u64,
    /// Linked directories: (name in the data directory, where its contents went, linked?).
    pub links: Vec<(String, String, bool)>,
    pub warnings: Vec<String>,
}

struct Writer {
    target: PathBuf,
    map: BTreeMap<String, PathBuf>,
    /// name -> (destination root, make a symlink to it)
    link_dest: BTreeMap<String, (PathBuf, bool)>,
    other_links: Vec<(PathBuf, String)>,
    created: Vec<PathBuf>,
    warnings: Vec<String>,
}

fn clean_relative(rel: &str) -> bool {
    Path::new(rel).components().all(|c| matches!(c, Component::Normal(_)))
}

impl Writer {
    fn dest(&self, place: &Place) -> Result<PathBuf, EntryError> {
        match place {
            Place::Data(rel) if rel.is_empty() => Ok(self.target.clone()),
            Place::Data(rel) => Ok(self.target.join(rel)),
            Place::Link { name, rel } => {
                let (root, _) = self.link_dest.get(name).ok_or_else(|| EntryError::LinkWithoutLink(name.clone()))?;
                Ok(if rel.is_empty() { root.clone() } else { root.join(rel) })
            }
        }
    }

    /// Create missing directories down to `dir` (inside a root we own), refusing anything
    /// in the way that is not a plain directory.
    fn ensure_dir(&mut self, dir: &Path) -> Result<(), EntryError> {
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => return Err(EntryError::NotADirectory(dir.display().to_string())),
            Err(_) => {}
        }
        if let Some(parent) = dir.parent() {
            self.ensure_dir(parent)?;
        }
        fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| EntryError::io("cannot create", dir.display(), e))?;
        self.created.push(dir.to_path_buf());
        Ok(())
    }

    fn under_roots(&self, p: &Path) -> bool {
        p.starts_with(&self.target) || self.link_dest.values().any(|(r, _)| p.starts_with(r))
    }
}

impl Sink for Writer {
    fn dir(&mut self, path: &str, place: &Place, _: &tar::Header) -> Result<(), EntryError> {
        let d = self.dest(place)?;
        if !self.under_roots(&d) {
            return Err(EntryError::Outside(path.to_string()));
        }
        self.ensure_dir(&d)
    }

    fn file(&mut self, path: &str, place: &Place, _: &tar::Header, data: &mut dyn Read) -> Result<(String, u64), EntryError> {
        let d = self.dest(place)?;
        if !self.under_roots(&d) {
            return Err(EntryError::Outside(path.to_string()));
        }
        if let Some(parent) = d.parent() {
            self.ensure_dir(parent)?;
        }
        // create_new + O_NOFOLLOW: never through a link, never over anything.
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(&d)
            .map_err(|e| EntryError::io("cannot create", d.display(), e))?;
        self.created.push(d.clone());
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut n = 0u64;
        loop {
            let k = data.read(&mut buf).map_err(|e| EntryError::io("cannot read", path, e))?;
            if k == 0 {
                break;
            }
            h.update(&buf[..k]);
            f.write_all(&buf[..k]).map_err(|e| EntryError::io("cannot write", d.display(), e))?;
            n += k as u64;
        }
        Ok((format!("{:x}", h.finalize()), n))
    }

    fn symlink(&mut self, path: &str, place: &Place, _: &tar::Header, target: &str) -> Result<(), EntryError> {
        let Place::Data(rel) = place else { return Err(EntryError::LinkOutsideData(path.to_string())) };
        let is_link_dir = rel == "pg_wal" || rel.strip_prefix("pg_tblspc/").is_some_and(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit()));
        if is_link_dir {
            if self.link_dest.contains_key(rel) {
                return Err(EntryError::Twice(path.to_string()));
            }
            let (root, link) = match self.map.get(target) {
                Some(new) => {
                    if !new.is_absolute() {
                        return Err(EntryError::MapNotAbsolute(new.display().to_string()));
                    }
                    match fs::read_dir(new).map(|mut rd| rd.next().is_some()) {
                        Ok(true) => return Err(EntryError::MapNotEmpty { target: new.display().to_string(), from: target.to_string() }),
                        Ok(false) => {}
                        Err(_) => {
                            fs::DirBuilder::new().mode(0o700).create(new).map_err(|e| EntryError::io("cannot create", new.display(), e))?;
                            self.created.push(new.clone());
                        }
                    }
                    (new.clone(), true)
                }
                None => (self.target.join(rel), false),
            };
            self.link_dest.insert(rel.clone(), (root.clone(), link));
            if !link {
                self.ensure_dir(&root)?;
            }
            return Ok(());
        }
        // Any other link is recreated at the end, only if it stays inside the data directory.
        let inside = !target.starts_with('/') && {
            let depth = rel.matches('/').count();
            let mut level = depth as i64;
            Path::new(target).components().all(|c| match c {
                Component::ParentDir => {
                    level -= 1;
                    level >= 0
                }
                Component::Normal(_) => {
                    level += 1;
                    true
                }
                _ => true,
            })
        };
        if inside {
            self.other_links.push((self.target.join(rel), target.to_string()));
        } else {
            self.warnings
                .push(format!("{path}: symbolic link to {target} not restored (it points outside the data directory); recreate it by hand if it is needed"));
        }
        Ok(())
    }
}

fn cleanup(w: &Writer, target_created: bool) -> Option<String> {
    let mut failed = None;
    for p in w.created.iter().rev() {
        let r = match fs::symlink_metadata(p) {
            Ok(m) if m.is_dir() => fs::remove_dir(p),
            Ok(_) => fs::remove_file(p),
            Err(_) => Ok(()),
        };
        if let Err(e) = r {
            failed = Some(format!("{}: {e}", p.display()));
        }
    }
    if target_created && failed.is_none() {
        let _ = fs::remove_dir(&w.target);
    }
    failed
}

/// Restore `archive` into `target` (absent or an empty directory).
pub fn restore(archive: &Path, target: &Path, opts: &RestoreOptions, progress: &dyn super::Progress) -> Result<RestoreReport> {
    restore_with(&archive.display().to_string(), |w| scan(archive, w, progress), target, opts)
}

/// [`restore`] from an uncompressed tar stream (no sidecar manifest): what the fuzzer
/// drives, so that hostile entries are tried against the real writer.
pub fn restore_tar(tar: impl Read, label: &str, target: &Path, opts: &RestoreOptions) -> Result<RestoreReport> {
    restore_with(label, |w| super::verify::scan_tar(tar, label, w, &crate::check::Quiet, Default::default()), target, opts)
}

fn restore_with(label: &str, scan: impl FnOnce(&mut Writer) -> super::verify::Scan, target: &Path, opts: &RestoreOptions) -> Result<RestoreReport> {
    let target_created = match fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() => {
            if fs::read_dir(target).map_err(|e| Error::io("list directory", target, e))?.next().is_some() {
                return Err(Error::Refused {
                    message: format!("{} is not empty: snapshot restore writes only into an empty or new directory", target.display()),
                    hint: "choose a new directory, e.g. -D /var/lib/postgresql/restored".into(),
                });
            }
            false
        }
        Ok(_) => return Err(Error::Refused { message: format!("{} exists and is not a directory", target.display()), hint: "choose a new directory".into() }),
        Err(_) => {
            fs::DirBuilder::new().mode(0o700).create(target).map_err(|e| Error::io("create directory", target, e))?;
            true
        }
    };
    let target = fs::canonicalize(target).map_err(|e| Error::io("resolve", target, e))?;
    let mut w = Writer {
        target: target.clone(),
        map: opts.tablespace_map.iter().cloned().collect(),
        link_dest: BTreeMap::new(),
        other_links: Vec::new(),
        created: Vec::new(),
        warnings: Vec::new(),
    };
    let s = scan(&mut w);
    let mut problems = compare(&s);
    // Damage in the archive (exit 1) or a failure to write the copy (exit 4).
    let damaged = !problems.is_empty();
    if problems.is_empty() {
        if let Err(e) = finish(&w, &s) {
            problems.push(e.to_string());
        }
    }
    if !problems.is_empty() {
        let leftover = cleanup(&w, target_created);
        let what = match &leftover {
            None => "nothing of it was kept".to_string(),
            Some(e) => {
                let _ = fs::write(target.join(FAILED_MARKER), format!("this restore failed and could not be removed: {e}\n{}\n", problems.join("\n")));
                format!("cleaning up failed ({e}); {FAILED_MARKER} marks the directory")
            }
        };
        let message = format!("restore failed; {what}:\n  {}", problems.iter().take(20).cloned().collect::<Vec<_>>().join("\n  "));
        return Err(if damaged {
            Error::Damaged { path: label.into(), message, hint: "run `pgsalvage snapshot verify` on the archive; a damaged archive cannot be restored".into() }
        } else {
            Error::Unusable { path: target.clone(), message, hint: "check the space, permissions and ownership of the target".into() }
        });
    }
    let m = s.manifest.as_ref();
    Ok(RestoreReport {
        target: target.display().to_string(),
        files: m.map(|m| m.total_files as usize).unwrap_or(0),
        bytes: s.file_bytes,
        links: w.link_dest.iter().map(|(n, (d, l))| (n.clone(), d.display().to_string(), *l)).collect(),
        warnings: w.warnings,
    })
}

/// After every hash matched: links, then modes, ownership (as root) and times from the
/// manifest, deepest first; then flush everything to disk.
fn finish(w: &Writer, s: &super::verify::Scan) -> Result<(), EntryError> {
    let Some(m) = &s.manifest else { return Err(EntryError::NoManifest) };
    for (name, (root, link)) in &w.link_dest {
        if *link {
            std::os::unix::fs::symlink(root, w.target.join(name)).map_err(|e| EntryError::io("cannot link", format!("{name} to {}", root.display()), e))?;
        }
    }
    for (at, to) in &w.other_links {
        std::os::unix::fs::symlink(to, at).map_err(|e| EntryError::io("cannot create link", at.display(), e))?;
    }
    let root = nix::unistd::geteuid().is_root();
    let mut entries: Vec<_> = m.files.iter().collect();
    entries.sort_by_key(|e| std::cmp::Reverse(e.path.matches('/').count()));
    for e in entries {
        let place = super::verify::place_of(&e.path).map_err(|_| EntryError::BadManifestPath(e.path.clone()))?;
        let d = match (&place, e.kind.clone()) {
            (Place::Data(rel), EntryKind::Symlink) if w.link_dest.contains_key(rel) => continue,
            (Place::Data(_), EntryKind::Symlink) => {
                if root {
                    let d = w.dest(&place)?;
                    let _ = nix::unistd::fchownat(None, &d, Some(e.uid.into()), Some(e.gid.into()), nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW);
                }
                continue;
            }
            _ => w.dest(&place)?,
        };
        if !clean_relative(e.path.trim_start_matches('/')) {
            return Err(EntryError::BadManifestPath(e.path.clone()));
        }
        if root {
            nix::unistd::chown(&d, Some(e.uid.into()), Some(e.gid.into())).map_err(|err| EntryError::io("cannot chown", d.display(), err.into()))?;
        }
        fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(e.mode & 0o777))
            .map_err(|err| EntryError::io("cannot chmod", d.display(), err))?;
        let t = nix::sys::time::TimeSpec::new(e.mtime, e.mtime_nsec as i64);
        nix::sys::stat::utimensat(None, &d, &t, &t, nix::sys::stat::UtimensatFlags::NoFollowSymlink)
            .map_err(|err| EntryError::io("cannot set times of", d.display(), err.into()))?;
    }
    // One flush of the whole file system instead of an fsync per file.
    if let Ok(f) = fs::File::open(&w.target) {
        let _ = nix::unistd::syncfs(std::os::fd::AsRawFd::as_raw_fd(&f));
    }
    Ok(())
}
