//! Reading archives safely: every entry's path and type checked before anything is done
//! with it, every file hashed, the manifest (the last entry, and the one beside the archive
//! when there is one) compared with what the archive really holds. `verify` is this with a
//! sink that only hashes; `restore` uses a sink that writes.

use super::manifest::{EntryKind, Manifest};
use super::stream::ArchiveReader;
use super::{sidecar_path, EntryError, DATA_PREFIX, LINKS_PREFIX, MANIFEST_ENTRY};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::Path;

/// Where an entry belongs, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// `data/<rel>` (rel may be empty: the data directory itself).
    Data(String),
    /// `links/<name>/<rel>`; name is `pg_wal` or `pg_tblspc/<oid>`.
    Link { name: String, rel: String },
}

/// Why an archive entry's path is refused (a hostile or foreign archive).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathRefused {
    #[error("absolute path {0:?}")]
    Absolute(String),
    #[error("path {0:?} has an empty, '.' or '..' component")]
    BadComponent(String),
    #[error("path {path:?} is under links/ but {name:?} is not pg_wal or pg_tblspc-<oid>")]
    UnknownLink { path: String, name: String },
    #[error("path {0:?} is outside data/ and links/")]
    Outside(String),
}

/// Check an entry path: relative, plain components, under data/ or links/<known name>/.
pub fn place_of(path: &str) -> Result<Place, PathRefused> {
    if path.starts_with('/') {
        return Err(PathRefused::Absolute(path.to_string()));
    }
    let comps: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if comps.iter().any(|c| c.is_empty() || *c == "." || *c == ".." || c.contains('\0')) {
        return Err(PathRefused::BadComponent(path.to_string()));
    }
    match comps.as_slice() {
        [DATA_PREFIX, rest @ ..] => Ok(Place::Data(rest.join("/"))),
        [LINKS_PREFIX, name, rest @ ..] => {
            let name = if *name == "pg_wal" {
                "pg_wal".to_string()
            } else if let Some(oid) = name.strip_prefix("pg_tblspc-").filter(|o| !o.is_empty() && o.bytes().all(|b| b.is_ascii_digit())) {
                format!("pg_tblspc/{oid}")
            } else {
                return Err(PathRefused::UnknownLink { path: path.to_string(), name: name.to_string() });
            };
            Ok(Place::Link { name, rel: rest.join("/") })
        }
        _ => Err(PathRefused::Outside(path.to_string())),
    }
}

/// What a sink does with entries that passed validation.
pub trait Sink {
    fn dir(&mut self, path: &str, place: &Place, h: &tar::Header) -> Result<(), EntryError>;
    /// Consume `data`, returning its sha256 (hex) and length.
    fn file(&mut self, path: &str, place: &Place, h: &tar::Header, data: &mut dyn Read) -> Result<(String, u64), EntryError>;
    fn symlink(&mut self, path: &str, place: &Place, h: &tar::Header, target: &str) -> Result<(), EntryError>;
}

/// Hash a stream.
pub fn hash_reader(data: &mut dyn Read) -> io::Result<(String, u64)> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let k = data.read(&mut buf)?;
        if k == 0 {
            break;
        }
        h.update(&buf[..k]);
        n += k as u64;
    }
    Ok((format!("{:x}", h.finalize()), n))
}

#[derive(Clone, Debug, Serialize)]
pub struct Seen {
    pub kind: EntryKind,
    pub sha256: Option<String>,
    pub size: u64,
    pub link_target: Option<String>,
}

/// What reading an archive found.
#[derive(Debug, Default)]
pub struct Scan {
    pub manifest: Option<Manifest>,
    pub sidecar: Option<Manifest>,
    /// The exact bytes of both manifests: the one beside the archive has no checksum of its
    /// own, so it must be byte for byte the one inside (which the zstd frame checksums cover).
    pub sidecar_bytes: Option<Vec<u8>>,
    pub manifest_bytes: Option<Vec<u8>>,
    pub seen: BTreeMap<String, Seen>,
    /// Fatal: the archive could not be read to its end, or held an entry refused outright.
    pub fatal: Option<String>,
    pub entries_after_manifest: usize,
    pub file_bytes: u64,
}

/// Read an archive through `sink`. Stops at the first fatal problem (a refused entry, a
/// corrupt stream); mismatches against the manifest are found afterwards by [`compare`].
pub fn scan(archive: &Path, sink: &mut dyn Sink, progress: &dyn super::Progress) -> Scan {
    let mut s = Scan::default();
    let side = sidecar_path(archive);
    if let Ok(b) = std::fs::read(&side) {
        match Manifest::from_json(&b) {
            Ok(m) => {
                s.sidecar = Some(m);
                s.sidecar_bytes = Some(b);
            }
            Err(e) => {
                s.fatal = Some(format!("{}: {e}", side.display()));
                return s;
            }
        }
    }
    let reader = match ArchiveReader::open(archive) {
        Ok(r) => r,
        Err(e) => {
            s.fatal = Some(format!("{}: cannot open: {e}", archive.display()));
            return s;
        }
    };
    scan_tar(reader, &archive.display().to_string(), sink, progress, s)
}

/// The tar half of [`scan`]: entries of an uncompressed tar stream (`label` names it in
/// errors), on top of what `s` already holds (the sidecar manifest).
pub fn scan_tar(reader: impl Read, label: &str, sink: &mut dyn Sink, progress: &dyn super::Progress, mut s: Scan) -> Scan {
    let where_ = |what: String| format!("{label}: {what}");
    let mut ar = tar::Archive::new(reader);
    let entries = match ar.entries() {
        Ok(e) => e,
        Err(e) => {
            s.fatal = Some(where_(format!("not a tar stream: {e}")));
            return s;
        }
    };
    for e in entries {
        let mut e = match e {
            Ok(e) => e,
            Err(err) => {
                s.fatal = Some(where_(format!("corrupt or truncated archive: {err}")));
                return s;
            }
        };
        let path = match e.path() {
            Ok(p) => p.to_string_lossy().into_owned(),
            Err(err) => {
                s.fatal = Some(where_(format!("unreadable entry name: {err}")));
                return s;
            }
        };
        let h = e.header().clone();
        if s.manifest.is_some() {
            s.entries_after_manifest += 1;
        }
        if path == MANIFEST_ENTRY {
            let mut b = Vec::new();
            if let Err(err) = e.read_to_end(&mut b) {
                s.fatal = Some(where_(format!("cannot read the manifest: {err}")));
                return s;
            }
            match Manifest::from_json(&b) {
                Ok(m) => {
                    s.manifest = Some(m);
                    s.manifest_bytes = Some(b);
                }
                Err(err) => {
                    s.fatal = Some(where_(format!("{MANIFEST_ENTRY}: {err}")));
                    return s;
                }
            }
            continue;
        }
        let place = match place_of(&path) {
            Ok(p) => p,
            Err(err) => {
                s.fatal = Some(where_(format!("refusing entry: {err}")));
                return s;
            }
        };
        let key = path.trim_end_matches('/').to_string();
        if s.seen.contains_key(&key) {
            s.fatal = Some(where_(format!("refusing entry: {key:?} appears twice")));
            return s;
        }
        let res = match h.entry_type() {
            tar::EntryType::Directory => sink.dir(&key, &place, &h).map(|_| Seen { kind: EntryKind::Dir, sha256: None, size: 0, link_target: None }),
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let declared = h.size().unwrap_or(0);
                sink.file(&key, &place, &h, &mut e).and_then(|(sha, n)| {
                    if n != declared {
                        return Err(EntryError::SizeMismatch { path: key.clone(), actual: n, declared });
                    }
                    progress.advance(n);
                    Ok(Seen { kind: EntryKind::File, sha256: Some(sha), size: n, link_target: None })
                })
            }
            tar::EntryType::Symlink => {
                let target = e.link_name().ok().flatten().map(|t| t.to_string_lossy().into_owned()).unwrap_or_default();
                if !matches!(place, Place::Data(_)) {
                    Err(EntryError::LinkInsideLinked(key.clone()))
                } else {
                    sink.symlink(&key, &place, &h, &target).map(|_| Seen { kind: EntryKind::Symlink, sha256: None, size: 0, link_target: Some(target) })
                }
            }
            other => Err(EntryError::Kind { path: key.clone(), kind: format!("{other:?}") }),
        };
        match res {
            Ok(seen) => {
                s.file_bytes += seen.size;
                s.seen.insert(key, seen);
            }
            Err(err) => {
                s.fatal = Some(where_(err.to_string()));
                return s;
            }
        }
    }
    s
}

/// Differences between what an archive holds and its manifest(s), one sentence each.
pub fn compare(s: &Scan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(f) = &s.fatal {
        out.push(f.clone());
        return out;
    }
    let Some(m) = &s.manifest else {
        out.push(format!("the archive has no {MANIFEST_ENTRY}: it is incomplete (a snapshot that did not finish) or not a pgsalvage snapshot"));
        return out;
    };
    if s.entries_after_manifest > 0 {
        out.push(format!("{} entries follow the manifest (it must be the last entry)", s.entries_after_manifest));
    }
    if let Some(side) = &s.sidecar {
        if side != m {
            let first = side.files.iter().zip(&m.files).find(|(a, b)| a != b).map(|(a, _)| format!(" (first difference at {})", a.path)).unwrap_or_default();
            out.push(format!("the manifest beside the archive disagrees with the one inside it{first}"));
        } else if let (Some(a), Some(b)) = (&s.sidecar_bytes, &s.manifest_bytes) {
            if a != b {
                let at = a.iter().zip(b.iter()).position(|(x, y)| x != y).unwrap_or(a.len().min(b.len()));
                out.push(format!(
                    "the manifest beside the archive is not byte for byte the one inside it (first difference at byte {at}; {} bytes beside, {} inside)",
                    a.len(),
                    b.len()
                ));
            }
        }
    }
    let mut listed = std::collections::BTreeSet::new();
    for f in &m.files {
        listed.insert(f.path.as_str());
        match s.seen.get(&f.path) {
            None => out.push(format!("{}: in the manifest but not in the archive", f.path)),
            Some(seen) if seen.kind != f.kind => out.push(format!("{}: a {:?} in the archive but a {:?} in the manifest", f.path, seen.kind, f.kind)),
            Some(seen) if seen.kind == EntryKind::File && (seen.sha256 != f.sha256 || seen.size != f.size) => out.push(format!(
                "{}: sha256 {} ({} bytes) but the manifest says {} ({} bytes)",
                f.path,
                seen.sha256.as_deref().unwrap_or("-"),
                seen.size,
                f.sha256.as_deref().unwrap_or("-"),
                f.size
            )),
            Some(seen) if seen.kind == EntryKind::Symlink && seen.link_target != f.link_target => {
                out.push(format!("{}: links to {:?} but the manifest says {:?}", f.path, seen.link_target, f.link_target))
            }
            _ => {}
        }
    }
    for p in s.seen.keys() {
        if !listed.contains(p.as_str()) {
            out.push(format!("{p}: in the archive but not in the manifest"));
        }
    }
    out
}

/// A sink that only hashes.
pub struct HashOnly;
impl Sink for HashOnly {
    fn dir(&mut self, _: &str, _: &Place, _: &tar::Header) -> Result<(), EntryError> {
        Ok(())
    }
    fn file(&mut self, path: &str, _: &Place, _: &tar::Header, data: &mut dyn Read) -> Result<(String, u64), EntryError> {
        hash_reader(data).map_err(|e| EntryError::io("cannot read", path, e))
    }
    fn symlink(&mut self, _: &str, _: &Place, _: &tar::Header, _: &str) -> Result<(), EntryError> {
        Ok(())
    }
}

#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub archive: String,
    pub ok: bool,
    pub files: usize,
    pub bytes: u64,
    pub used_sidecar: bool,
    pub problems: Vec<String>,
}

/// Decompress and check every file against the manifest.
pub fn verify(archive: &Path, progress: &dyn super::Progress) -> VerifyReport {
    let s = scan(archive, &mut HashOnly, progress);
    let problems = compare(&s);
    VerifyReport {
        archive: archive.display().to_string(),
        ok: problems.is_empty(),
        files: s.seen.values().filter(|v| v.kind == EntryKind::File).count(),
        bytes: s.file_bytes,
        used_sidecar: s.sidecar.is_some(),
        problems,
    }
}

/// Why the manifest of an archive cannot be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestUnreadable {
    /// The manifest beside the archive does not read.
    #[error("{path}: {error}")]
    Sidecar { path: String, error: super::manifest::ManifestError },
    /// Reading the archive to its manifest stopped (the reason names the archive).
    #[error("{0}")]
    Archive(String),
    #[error("{0}: no manifest inside")]
    Missing(String),
}

/// The manifest of an archive: beside it if present, else from inside (reads to the end).
pub fn read_manifest(archive: &Path) -> Result<Manifest, ManifestUnreadable> {
    if let Ok(b) = std::fs::read(sidecar_path(archive)) {
        return Manifest::from_json(&b).map_err(|error| ManifestUnreadable::Sidecar { path: sidecar_path(archive).display().to_string(), error });
    }
    let s = scan(archive, &mut HashOnly, &crate::check::Quiet);
    if let Some(f) = s.fatal {
        return Err(ManifestUnreadable::Archive(f));
    }
    s.manifest.ok_or_else(|| ManifestUnreadable::Missing(archive.display().to_string()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hostile_paths_are_refused() {
        assert_eq!(place_of("data/base/5/1259").unwrap(), Place::Data("base/5/1259".into()));
        assert_eq!(place_of("links/pg_tblspc-16384/PG_15_1/5/1").unwrap(), Place::Link { name: "pg_tblspc/16384".into(), rel: "PG_15_1/5/1".into() });
        for bad in ["/etc/passwd", "data/../../etc/passwd", "data/./x", "data//x", "links/etc/x", "links/pg_tblspc-/x", "other/x", "links/pg_tblspc-1a/x"] {
            assert!(place_of(bad).is_err(), "{bad}");
        }
    }
}
