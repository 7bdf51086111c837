//! A data directory on disk, opened read-only: its layout per major, tablespaces, WAL and
//! pg_xact files, postmaster liveness. Nothing here writes; files are opened with
//! `File::open` only. This module owns the crate's only memory maps.

use crate::error::{Error, Result};
use crate::format::control::{ControlFile, CrcCheck};
use crate::format::version::PgMajor;
use crate::format::wal::{self, PageFetch, SegNo, WalGeometry, WalSource};
use crate::format::FormatError;
use serde::Serialize;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

pub const CONTROL_PATH: &str = "global/pg_control";
pub const WAL_DIR: &str = "pg_wal";
pub const XACT_DIR: &str = "pg_xact";

/// An opened data directory.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

/// What postmaster.pid says and whether that process lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Postmaster {
    /// No postmaster.pid.
    NotRunning,
    /// postmaster.pid names a live postmaster of this data directory.
    Alive { pid: i32 },
    /// postmaster.pid names a process that no longer exists (`reused` false: the server
    /// removes the file at start), or a live process that is not this cluster's postmaster
    /// (`reused` true: the server refuses to start, "lock file already exists").
    Stale { pid: i32, reason: String, reused: bool },
    /// postmaster.pid exists but does not start with a pid.
    Unreadable { reason: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Tablespace {
    pub oid: u32,
    /// Where pg_tblspc/<oid> points.
    pub location: String,
    /// The PG_<major>_<catversion> directories found there.
    pub version_dirs: Vec<String>,
}

/// "Run as the owner", naming the owner: the usual mistake is forgetting `sudo -u postgres`.
fn owner_hint(md: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    let owner = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(md.uid())).ok().flatten().map(|u| u.name).unwrap_or_else(|| format!("uid {}", md.uid()));
    format!("the data directory belongs to {owner}: run pgsalvage as that user (sudo -u {owner} pgsalvage ...) or as root")
}

impl DataDir {
    /// Open `path` if it looks like a data directory (PG_VERSION and global/pg_control).
    pub fn open(path: impl AsRef<Path>) -> Result<DataDir> {
        let root = path.as_ref().to_path_buf();
        let md = fs::metadata(&root).map_err(|e| Error::io("open data directory", &root, e))?;
        if !md.is_dir() {
            return Err(Error::NotADataDirectory {
                path: root,
                reason: "it is not a directory".into(),
                hint: "pass the data directory (the one holding PG_VERSION) with -D".into(),
            });
        }
        let pgv = root.join("PG_VERSION");
        let ctl = root.join(CONTROL_PATH);
        // exists() says "no" for a file it may not look at: ask, so that a permission problem
        // (forgetting `sudo -u postgres`) is not reported as the wrong directory.
        for p in [&pgv, &ctl] {
            if let Err(e) = fs::symlink_metadata(p) {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    return Err(Error::Io { op: "read data directory", path: root.clone(), source: e, hint: owner_hint(&md) });
                }
            }
        }
        if !pgv.exists() && !ctl.exists() {
            return Err(Error::NotADataDirectory {
                path: root,
                reason: "neither PG_VERSION nor global/pg_control exists".into(),
                hint: "pass the data directory itself (for Debian: /var/lib/postgresql/<major>/main, not /etc/postgresql)".into(),
            });
        }
        Ok(DataDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The directory as an absolute path, for what is recorded (a plan, a manifest): a
    /// relative one means nothing elsewhere.
    pub fn absolute(&self) -> String {
        fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone()).display().to_string()
    }
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Read a whole (small) file relative to the data directory.
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let p = self.path(rel);
        fs::read(&p).map_err(|e| Error::io("read file", p, e))
    }

    /// `len` bytes at `offset` of a file relative to the data directory (one block of a
    /// relation file, without reading the gigabyte around it).
    pub fn read_range(&self, rel: &str, offset: u64, len: usize) -> Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let p = self.path(rel);
        let f = fs::File::open(&p).map_err(|e| Error::io("open file", &p, e))?;
        let mut b = vec![0u8; len];
        f.read_exact_at(&mut b, offset).map_err(|e| Error::io("read file", &p, e))?;
        Ok(b)
    }

    /// The major from PG_VERSION.
    pub fn pg_version(&self) -> Result<PgMajor> {
        let b = self.read("PG_VERSION")?;
        PgMajor::from_pg_version_file(&b).map_err(|e| Error::format(self.path("PG_VERSION"), e, "pgsalvage supports PostgreSQL 10 to 18"))
    }

    /// pg_control, decoded leniently (a CRC mismatch is reported, not fatal).
    pub fn control(&self) -> Result<(ControlFile, CrcCheck, u64)> {
        let b = self.read(CONTROL_PATH)?;
        let (c, crc) = ControlFile::parse_lenient(&b).map_err(|e| {
            Error::format(self.path(CONTROL_PATH), e, "pg_control is damaged; `pgsalvage diagnose` will explain the options (a rebuild from guesses)")
        })?;
        Ok((c, crc, b.len() as u64))
    }

    /// postmaster.pid and the liveness of its pid. A pid counts as this cluster's live
    /// postmaster when the process exists and its working directory is this data directory
    /// (a postmaster chdirs there); a live process elsewhere is a reused pid.
    pub fn postmaster(&self) -> Postmaster {
        let p = self.path("postmaster.pid");
        let text = match fs::read_to_string(&p) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Postmaster::NotRunning,
            Err(e) => return Postmaster::Unreadable { reason: e.to_string() },
        };
        let Some(pid) = text.lines().next().and_then(|l| l.trim().parse::<i32>().ok()).filter(|&p| p > 0) else {
            return Postmaster::Unreadable { reason: "the first line is not a process id".into() };
        };
        match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None) {
            Err(nix::errno::Errno::ESRCH) => Postmaster::Stale { pid, reason: format!("no process {pid} exists"), reused: false },
            _ => {
                let cwd = fs::read_link(format!("/proc/{pid}/cwd"));
                let ours = fs::canonicalize(&self.root).ok();
                match (cwd, ours) {
                    (Ok(c), Some(o)) if c != o => {
                        Postmaster::Stale { pid, reason: format!("process {pid} exists but works in {} (a reused pid)", c.display()), reused: true }
                    }
                    _ => Postmaster::Alive { pid },
                }
            }
        }
    }

    /// Names in a directory relative to the data directory (sorted); an absent directory is empty.
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        let p = self.path(rel);
        let rd = match fs::read_dir(&p) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io("list directory", p, e)),
        };
        let mut v: Vec<String> = rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        Ok(v)
    }

    /// pg_tblspc entries.
    pub fn tablespaces(&self) -> Result<Vec<Tablespace>> {
        let mut out = Vec::new();
        for name in self.list("pg_tblspc")? {
            let Ok(oid) = name.parse::<u32>() else { continue };
            let link = self.path(&format!("pg_tblspc/{name}"));
            let location = fs::read_link(&link).map(|t| t.display().to_string()).unwrap_or_else(|_| link.display().to_string());
            let version_dirs = fs::read_dir(&link)
                .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("PG_")).collect())
                .unwrap_or_default();
            out.push(Tablespace { oid, location, version_dirs });
        }
        Ok(out)
    }

    /// Where pg_wal points when it is a symbolic link.
    pub fn wal_link(&self) -> Option<PathBuf> {
        fs::read_link(self.path(WAL_DIR)).ok()
    }

    /// WAL segment files in pg_wal as (timeline, segno, name, length).
    pub fn wal_segments(&self, g: &WalGeometry) -> Result<Vec<(u32, SegNo, String, u64)>> {
        let mut v = Vec::new();
        for name in self.list(WAL_DIR)? {
            if let Some((tli, segno)) = g.parse_file_name(&name) {
                let len = fs::metadata(self.path(&format!("{WAL_DIR}/{name}"))).map(|m| m.len()).unwrap_or(0);
                v.push((tli, segno, name, len));
            }
        }
        Ok(v)
    }

    /// Memory-map a file read-only. Empty files map to an empty slice.
    #[allow(unsafe_code)]
    pub fn map(&self, rel: &str) -> Result<Mapped> {
        let p = self.path(rel);
        let f = File::open(&p).map_err(|e| Error::io("open file", &p, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat file", &p, e))?.len();
        if len == 0 {
            return Ok(Mapped::Empty);
        }
        // SAFETY: the map is read-only and private. pgsalvage works on stopped clusters; if
        // another process truncates the file while mapped, reads could fault, which is why
        // writers refuse to run while a postmaster lives and read-only commands warn.
        let m = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| Error::io("map file", &p, e))?;
        Ok(Mapped::Map(m))
    }
}

/// Memory-map `len` bytes of an open file from `offset` (a multiple of the page size),
/// read-only. Used to scan large files in bounded windows.
#[allow(unsafe_code)]
pub fn map_range(file: &File, path: &Path, offset: u64, len: usize) -> Result<Mapped> {
    if len == 0 {
        return Ok(Mapped::Empty);
    }
    // SAFETY: as in DataDir::map: read-only private map of a stopped cluster's file.
    // populate: fault the whole window in one go (MAP_POPULATE) instead of page by page.
    let m = unsafe { memmap2::MmapOptions::new().offset(offset).len(len).populate().map(file) }.map_err(|e| Error::io("map file", path, e))?;
    Ok(Mapped::Map(m))
}

/// A relation fork as named on disk: `<relfilenode>[_fsm|_vm|_init][.<segno>]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct RelFile {
    /// Directory relative to the data directory (`base/5`, `global`, `pg_tblspc/16385/PG_15_202209061/5`).
    pub dir: String,
    pub relfilenode: u32,
    /// "main", "fsm", "vm" or "init".
    pub fork: &'static str,
    pub segno: u32,
    pub len: u64,
}

impl RelFile {
    /// Parse a file name in a database directory.
    pub fn parse_name(name: &str) -> Option<(u32, &'static str, u32)> {
        let (stem, segno) = match name.split_once('.') {
            Some((s, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => (s, n.parse().ok()?),
            Some(_) => return None,
            None => (name, 0),
        };
        let (node, fork) = match stem.split_once('_') {
            Some((n, "fsm")) => (n, "fsm"),
            Some((n, "vm")) => (n, "vm"),
            Some((n, "init")) => (n, "init"),
            Some(_) => return None,
            None => (stem, "main"),
        };
        if node.is_empty() || !node.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((node.parse().ok()?, fork, segno))
    }
    /// Path relative to the data directory.
    pub fn path(&self) -> String {
        let fork = if self.fork == "main" { String::new() } else { format!("_{}", self.fork) };
        let seg = if self.segno == 0 { String::new() } else { format!(".{}", self.segno) };
        format!("{}/{}{fork}{seg}", self.dir, self.relfilenode)
    }
}

impl DataDir {
    /// Every relation file in global/, base/<db>/ and each tablespace's version directory
    /// for `version_dir` (PG_<major>_<catversion>). Temporary relations (t<backend>_<node>),
    /// pg_filenode.map, pg_internal.init and other non-relation files are left out, as
    /// pg_checksums leaves them out.
    pub fn relation_files(&self, version_dir: &str) -> Result<Vec<RelFile>> {
        let mut dirs = vec!["global".to_string()];
        for db in self.list("base")? {
            if db.parse::<u32>().is_ok() {
                dirs.push(format!("base/{db}"));
            }
        }
        for ts in self.list("pg_tblspc")? {
            if ts.parse::<u32>().is_ok() {
                let vd = format!("pg_tblspc/{ts}/{version_dir}");
                for db in self.list(&vd)? {
                    if db.parse::<u32>().is_ok() {
                        dirs.push(format!("{vd}/{db}"));
                    }
                }
            }
        }
        let mut out = Vec::new();
        for dir in dirs {
            let p = self.path(&dir);
            let rd = fs::read_dir(&p).map_err(|e| Error::io("list directory", &p, e))?;
            for e in rd {
                let e = e.map_err(|e| Error::io("list directory", &p, e))?;
                let name = e.file_name().to_string_lossy().into_owned();
                let Some((relfilenode, fork, segno)) = RelFile::parse_name(&name) else { continue };
                let md = e.metadata().map_err(|err| Error::io("stat file", e.path(), err))?;
                if md.is_file() {
                    out.push(RelFile { dir: dir.clone(), relfilenode, fork, segno, len: md.len() });
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A read-only file image.
pub enum Mapped {
    Empty,
    Map(memmap2::Mmap),
}

impl std::ops::Deref for Mapped {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Mapped::Empty => &[],
            Mapped::Map(m) => m,
        }
    }
}

/// WAL pages read from pg_wal files of one timeline (or, for a segment absent on that
/// timeline, the highest lower timeline that has it, as recovery does after a switch).
/// Maps CHUNK bytes at a time (read-only, populated): no copy through the kernel, and at
/// most one window resident.
pub struct DirWalSource {
    dir: PathBuf,
    geometry: WalGeometry,
    by_segno: std::collections::BTreeMap<SegNo, Vec<(u32, String)>>,
    tli: u32,
    open: Option<(SegNo, File, u64)>,
    /// (segno, offset of the window in the segment, mapped bytes)
    chunk: Option<(SegNo, u64, Mapped)>,
}

const CHUNK: u64 = 2 << 20;

impl DirWalSource {
    pub fn new(dd: &DataDir, geometry: WalGeometry, tli: u32) -> Result<DirWalSource> {
        let mut by_segno: std::collections::BTreeMap<SegNo, Vec<(u32, String)>> = Default::default();
        for (t, segno, name, _) in dd.wal_segments(&geometry)? {
            by_segno.entry(segno).or_default().push((t, name));
        }
        Ok(DirWalSource { dir: dd.path(WAL_DIR), geometry, by_segno, tli, open: None, chunk: None })
    }
    /// The file name that holds `segno` for this timeline, if any.
    pub fn file_for(&self, segno: SegNo) -> Option<String> {
        self.by_segno.get(&segno)?.iter().filter(|(t, _)| *t <= self.tli).max_by_key(|(t, _)| *t).map(|(_, n)| n.clone())
    }
    pub fn expected_name(&self, segno: SegNo) -> String {
        self.geometry.file_name(self.tli, segno)
    }
    /// Another source over the same files, with its own open file and window (for a
    /// second reader on another thread).
    pub fn fork(&self) -> DirWalSource {
        DirWalSource { dir: self.dir.clone(), geometry: self.geometry, by_segno: self.by_segno.clone(), tli: self.tli, open: None, chunk: None }
    }
    /// The lowest segment number with a file on this timeline or an earlier one.
    pub fn first_segno(&self) -> Option<SegNo> {
        self.by_segno.iter().find(|(_, v)| v.iter().any(|(t, _)| *t <= self.tli)).map(|(s, _)| *s)
    }
    /// The highest segment number with a file on this timeline or an earlier one.
    pub fn last_segno(&self) -> Option<SegNo> {
        self.by_segno.iter().rev().find(|(_, v)| v.iter().any(|(t, _)| *t <= self.tli)).map(|(s, _)| *s)
    }
}

impl WalSource for DirWalSource {
    fn page(&mut self, segno: SegNo, offset: u32, n: usize) -> std::result::Result<&[u8], PageFetch> {
        let (off, n64) = (offset as u64, n as u64);
        let covered = matches!(&self.chunk, Some((s, start, data)) if *s == segno && off >= *start && off + n64 <= *start + data.len() as u64);
        if !covered {
            if self.open.as_ref().map(|o| o.0) != Some(segno) {
                let name = self.file_for(segno).ok_or(PageFetch::MissingSegment)?;
                let f = File::open(self.dir.join(&name)).map_err(|_| PageFetch::MissingSegment)?;
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                self.open = Some((segno, f, len));
            }
            let path = self.dir.join(self.file_for(segno).unwrap_or_default());
            let Some((_, f, len)) = self.open.as_ref() else { return Err(PageFetch::MissingSegment) };
            let len = *len;
            if off + n64 > len {
                return Err(PageFetch::ShortSegment { file_len: len });
            }
            let start = off - off % CHUNK;
            let want = CHUNK.min(len - start) as usize;
            self.chunk = None; // unmap the previous window before mapping the next
            let data = map_range(f, &path, start, want).map_err(|_| PageFetch::ShortSegment { file_len: len })?;
            self.chunk = Some((segno, start, data));
        }
        match &self.chunk {
            Some((_, start, data)) => {
                let i = (off - start) as usize;
                data.get(i..i + n).ok_or(PageFetch::ShortSegment { file_len: 0 })
            }
            None => Err(PageFetch::MissingSegment),
        }
    }
}

/// Read and decode the latest checkpoint record that pg_control points at.
/// Why the checkpoint record pg_control points at cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointRecordError {
    #[error("{0}")]
    Geometry(FormatError),
    #[error("{0}")]
    Open(Error),
    #[error("{0}")]
    Read(wal::WalError),
    #[error("{0}")]
    Decode(FormatError),
}

pub fn read_checkpoint_record(
    dd: &DataDir,
    c: &ControlFile,
) -> std::result::Result<(wal::DecodedRecord, crate::format::control::CheckPoint), CheckpointRecordError> {
    let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).map_err(CheckpointRecordError::Geometry)?;
    let src = DirWalSource::new(dd, g, c.checkpoint.timeline_id).map_err(CheckpointRecordError::Open)?;
    let mut r = wal::WalReader::new(src, c.major, g, Some(c.system_identifier));
    let rec = r.read_record(c.checkpoint_lsn, None).map_err(CheckpointRecordError::Read)?;
    let cp = wal::decode_checkpoint(c.major, &rec.record).map_err(CheckpointRecordError::Decode)?;
    Ok((rec.record, cp))
}
