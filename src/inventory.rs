//! Every byte of WAL the cluster still has: the files in pg_wal and in any archive
//! directory (plain or compressed as archive_command and backup tools leave them),
//! identified by their page headers, not by their names. A recycled segment keeps the
//! pages of its previous life; a `.partial` file holds the end of a timeline; an archive
//! holds segments pg_wal has lost. All of it is evidence: commit statuses
//! ([`Inventory::outcomes`]), and whole segments to put back ([`Inventory::segment_copy`]).

use crate::datadir::{map_range, DataDir, Mapped, WAL_DIR};
use crate::format::control::ControlFile;
use crate::format::types::{Lsn, TimeLineId, Xid};
use crate::format::wal::reader::ReadRecord;
use crate::format::wal::runs::{on_history, page_runs, parse_history, HistoryEntry, PageRun};
use crate::format::wal::xact::decode_outcome;
use crate::format::wal::{PageFetch, SegNo, WalGeometry, WalReader, WalSource};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a file is stored, told by its first bytes (names lie: `.gz` files that are plain).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Gzip,
    Zstd,
    Lz4,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
        }
    }
    fn sniff(head: &[u8]) -> Option<Compression> {
        match head {
            [0x1f, 0x8b, ..] => Some(Compression::Gzip),
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Some(Compression::Zstd),
            [0x04, 0x22, 0x4d, 0x18, ..] => Some(Compression::Lz4),
            _ => None,
        }
    }
}

/// What a run of pages is, compared with the file's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    /// The segment the file is named for.
    Current,
    /// An older segment's pages, left when the server renamed the file for reuse: history.
    Recycled,
    /// A later segment than the name says (a file renamed by hand).
    Misplaced,
    /// Another cluster's WAL (system identifier): not evidence.
    Foreign,
}

#[derive(Clone, Debug, Serialize)]
pub struct Run {
    #[serde(flatten)]
    pub pages: PageRun,
    pub start: Lsn,
    pub end: Lsn,
    pub status: RunStatus,
}

#[derive(Clone, Debug, Serialize)]
pub struct WalFile {
    /// `pg_wal/NAME`, or the file's path in an archive directory.
    pub path: String,
    /// "pg_wal" or "archive".
    pub place: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    /// Bytes of content (after decompression).
    pub bytes: u64,
    /// A `.partial` file: the last, unfinished segment of a timeline.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub partial: bool,
    pub runs: Vec<Run>,
    /// Why nothing of the file is used, when it is not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    #[serde(skip)]
    full_path: PathBuf,
}

/// LSNs present, as one contiguous range with the files that hold it.
#[derive(Clone, Debug, Serialize)]
pub struct LsnRange {
    pub start: Lsn,
    pub end: Lsn,
    pub files: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Inventory {
    pub files: Vec<WalFile>,
    /// Timeline history files found (`NNNNNNNN.history`), by timeline.
    pub histories: BTreeMap<TimeLineId, Vec<HistoryEntry>>,
    /// The WAL present, merged over every file (foreign runs left out).
    pub ranges: Vec<LsnRange>,
    #[serde(skip)]
    geometry: Option<WalGeometry>,
    #[serde(skip)]
    major: crate::format::version::PgMajor,
    #[serde(skip)]
    sysid: u64,
}

/// The content of a file of WAL, decompressed when its first bytes say it is compressed,
/// at most `limit` bytes.
pub fn read_wal_file(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    read_content(path, limit).map(|x| x.1)
}

/// A file's content (at most `limit` bytes: a compressed file may expand without bound),
/// and how it was stored.
fn read_content(path: &Path, limit: u64) -> std::io::Result<(Option<Compression>, Vec<u8>)> {
    let mut f = File::open(path)?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head)?;
    let comp = Compression::sniff(&head[..n]);
    let f = File::open(path)?;
    let mut out = Vec::new();
    let r: Box<dyn Read> = match comp {
        None => Box::new(f),
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(f)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(f)?),
        Some(Compression::Lz4) => Box::new(lz4_flex::frame::FrameDecoder::new(f)),
    };
    r.take(limit).read_to_end(&mut out)?;
    Ok((comp, out))
}

/// The name a file of WAL carries without its compression suffix and `.partial`:
/// (base name, partial).
fn base_name(name: &str) -> (&str, bool) {
    let mut n = name;
    for ext in [".gz", ".zst", ".zstd", ".lz4"] {
        if let Some(s) = n.strip_suffix(ext) {
            n = s;
            break;
        }
    }
    match n.strip_suffix(".partial") {
        Some(s) => (s, true),
        None => (n, false),
    }
}

impl Inventory {
    /// Every WAL file of pg_wal and of `archives` (searched one level deep and in their
    /// subdirectories, as backup tools lay them out).
    pub fn scan(dd: &DataDir, c: &ControlFile, archives: &[PathBuf]) -> Inventory {
        let mut inv = Inventory {
            files: vec![],
            histories: BTreeMap::new(),
            ranges: vec![],
            geometry: WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).ok(),
            major: c.major,
            sysid: c.system_identifier,
        };
        let Some(g) = inv.geometry else { return inv };
        let mut found: Vec<(PathBuf, String, &'static str)> = Vec::new();
        // Regular files only (through links): a FIFO or device would block or never end.
        let regular = |p: &Path| std::fs::metadata(p).is_ok_and(|m| m.is_file());
        for name in dd.list(WAL_DIR).unwrap_or_default() {
            let p = dd.path(&format!("{WAL_DIR}/{name}"));
            if regular(&p) {
                found.push((p, format!("{WAL_DIR}/{name}"), "pg_wal"));
            }
        }
        for root in archives {
            let mut stack = vec![(root.clone(), 0)];
            while let Some((dir, depth)) = stack.pop() {
                let Ok(rd) = std::fs::read_dir(&dir) else { continue };
                for e in rd.flatten() {
                    let p = e.path();
                    match e.file_type() {
                        Ok(t) if t.is_dir() && depth < 3 => stack.push((p, depth + 1)),
                        Ok(t) if (t.is_file() || t.is_symlink()) && regular(&p) => found.push((p.clone(), p.display().to_string(), "archive")),
                        _ => {}
                    }
                }
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        let seg = g.seg_size as u64;
        let scanned: Vec<Option<WalFile>> = found
            .par_iter()
            .map(|(full, shown, place)| {
                let name = full.file_name()?.to_string_lossy().into_owned();
                let (base, partial) = base_name(&name);
                let named = g.parse_file_name(base);
                named?;
                let mut wf = WalFile { path: shown.clone(), place, compression: None, bytes: 0, partial, runs: vec![], problem: None, full_path: full.clone() };
                // Plain files are mapped, not read: most of their pages are never touched.
                let content = match File::open(full).and_then(|mut f| {
                    let mut head = [0u8; 4];
                    let n = f.read(&mut head)?;
                    Ok((Compression::sniff(&head[..n]), f.metadata()?.len()))
                }) {
                    Ok((None, len)) if len > seg => {
                        wf.bytes = len;
                        wf.problem = Some(format!("holds more than one segment ({seg} bytes)"));
                        return Some(wf);
                    }
                    Ok((None, len)) => {
                        File::open(full).and_then(|f| map_range(&f, full, 0, len as usize).map_err(std::io::Error::other)).map(|m| (None, Loaded::Map(m)))
                    }
                    Ok(_) => read_content(full, seg + 1).map(|(c, b)| (c, Loaded::Owned(b))),
                    Err(e) => Err(e),
                };
                match content {
                    Err(e) => wf.problem = Some(format!("cannot be read: {e}")),
                    Ok((comp, bytes)) => {
                        wf.compression = comp;
                        wf.bytes = bytes.len() as u64;
                        if bytes.len() as u64 > seg {
                            wf.problem = Some(format!("holds more than one segment ({seg} bytes)"));
                            return Some(wf);
                        }
                        let runs = page_runs(&bytes, c.major, &g);
                        // The file's own long header decides whose it is.
                        let foreign = runs.iter().find(|r| r.offset == 0).and_then(|r| r.sysid).filter(|&s| s != c.system_identifier);
                        let vouched = runs.iter().any(|r| r.offset == 0 && r.sysid == Some(c.system_identifier));
                        if let Some(s) = foreign {
                            wf.problem = Some(format!("WAL of another cluster (system identifier {s})"));
                        } else if *place == "archive" && !vouched {
                            wf.problem = Some("its first page is not a WAL page of this cluster: not used".into());
                        }
                        let named_seg = named.map(|n| n.1);
                        wf.runs = runs
                            .into_iter()
                            .map(|r| {
                                let status = if wf.problem.is_some() {
                                    RunStatus::Foreign
                                } else if Some(r.segno) == named_seg {
                                    RunStatus::Current
                                } else if Some(r.segno) < named_seg {
                                    RunStatus::Recycled
                                } else {
                                    RunStatus::Misplaced
                                };
                                Run { start: r.start(&g), end: r.end(&g), pages: r, status }
                            })
                            .collect();
                    }
                }
                Some(wf)
            })
            .collect();
        inv.files = scanned.into_iter().flatten().collect();
        // Timeline history files, plain or compressed.
        for (full, _, _) in &found {
            let name = full.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let (base, _) = base_name(&name);
            let Some(t) = base.strip_suffix(".history").filter(|t| t.len() == 8).and_then(|t| u32::from_str_radix(t, 16).ok()) else { continue };
            if let Ok((_, bytes)) = read_content(full, 1 << 20) {
                if let Some(h) = parse_history(&String::from_utf8_lossy(&bytes)) {
                    inv.histories.insert(t, h);
                }
            }
        }
        inv.ranges = inv.merge_ranges();
        inv
    }

    fn merge_ranges(&self) -> Vec<LsnRange> {
        let mut spans: Vec<(Lsn, Lsn, &str)> =
            self.files.iter().flat_map(|f| f.runs.iter().filter(|r| r.status != RunStatus::Foreign).map(move |r| (r.start, r.end, f.path.as_str()))).collect();
        spans.sort();
        let mut out: Vec<LsnRange> = Vec::new();
        for (s, e, f) in spans {
            match out.last_mut() {
                Some(r) if s <= r.end => {
                    r.end = r.end.max(e);
                    if !r.files.iter().any(|x| x == f) {
                        r.files.push(f.to_string());
                    }
                }
                _ => out.push(LsnRange { start: s, end: e, files: vec![f.to_string()] }),
            }
        }
        out
    }

    /// The inventory in words: where the files are, what they hold, the LSN ranges present.
    pub fn lines(&self) -> Vec<String> {
        let mut v = Vec::new();
        for place in ["pg_wal", "archive"] {
            let fs: Vec<&WalFile> = self.files.iter().filter(|f| f.place == place).collect();
            if fs.is_empty() {
                continue;
            }
            let mut parts = vec![crate::units::count(fs.len() as u64, "file")];
            let recycled = fs.iter().filter(|f| f.runs.iter().any(|r| r.status == RunStatus::Recycled)).count();
            if recycled > 0 {
                parts.push(format!("{recycled} holding older segments' pages left by recycling"));
            }
            let empty = fs.iter().filter(|f| f.runs.is_empty() && f.problem.is_none()).count();
            if empty > 0 {
                parts.push(format!("{empty} without WAL pages (preallocated)"));
            }
            for c in [Compression::Gzip, Compression::Zstd, Compression::Lz4] {
                let n = fs.iter().filter(|f| f.compression == Some(c)).count();
                if n > 0 {
                    parts.push(format!("{n} {}", c.name()));
                }
            }
            let partial = fs.iter().filter(|f| f.partial).count();
            if partial > 0 {
                parts.push(format!("{partial} .partial"));
            }
            v.push(format!("{place}: {}", parts.join(", ")));
            for f in fs.iter().filter(|f| f.problem.is_some()) {
                v.push(format!("  not used: {}: {}", f.path, f.problem.as_deref().unwrap_or_default()));
            }
            for f in fs.iter().filter(|f| f.runs.iter().any(|r| r.status == RunStatus::Misplaced)) {
                v.push(format!("  {} holds WAL of a later segment than its name", f.path));
            }
        }
        for (t, h) in &self.histories {
            let steps: Vec<String> = h.iter().map(|e| format!("{} until {}", e.tli, e.switchpoint)).collect();
            v.push(format!("timeline {t} history: {}", steps.join(", ")));
        }
        let shown = 12;
        for r in self.ranges.iter().take(shown) {
            let files = if r.files.len() > 2 { format!("{} and {} more", r.files[..2].join(", "), r.files.len() - 2) } else { r.files.join(", ") };
            v.push(format!("WAL {} .. {} ({}) in {files}", r.start, r.end, crate::units::human_size(r.end.0 - r.start.0)));
        }
        if self.ranges.len() > shown {
            v.push(format!("... {} more ranges (--json lists them)", self.ranges.len() - shown));
        }
        v
    }

    /// Files holding pages of an older segment than their name (recycled content).
    pub fn recycled(&self) -> usize {
        self.files.iter().filter(|f| f.runs.iter().any(|r| r.status == RunStatus::Recycled)).count()
    }

    /// A file holding the whole of segment `segno` as written on timeline `tli` or an
    /// ancestor, not in pg_wal under its own name: an archive copy, or a misnamed file. The
    /// index in [`Inventory::files`].
    pub fn segment_copy(&self, segno: SegNo, tli: TimeLineId) -> Option<usize> {
        let g = self.geometry?;
        self.files.iter().position(|f| {
            !f.partial
                && f.problem.is_none()
                && f.bytes == g.seg_size as u64
                && f.runs.iter().any(|r| r.status != RunStatus::Foreign && r.pages.segno == segno && r.pages.offset == 0 && r.pages.tli.1 <= tli)
                && !(f.place == "pg_wal" && f.runs.iter().all(|r| r.status == RunStatus::Current))
        })
    }

    /// The whole content of file `i` (decompressed).
    pub fn content(&self, i: usize) -> std::io::Result<Vec<u8>> {
        let f = self.files.get(i).ok_or_else(|| std::io::Error::other("no such file"))?;
        let limit = self.geometry.map(|g| g.seg_size as u64 + 1).unwrap_or(0);
        read_content(&f.full_path, limit).map(|x| x.1)
    }

    /// The absolute path of file `i`.
    pub fn full_path(&self, i: usize) -> Option<&Path> {
        self.files.get(i).map(|f| f.full_path.as_path())
    }

    /// Every readable record of every run (each segment's content once: pg_wal first, then
    /// archives), in parallel: `visit` sees each with the index of its file and whether it
    /// lies on the history of timeline `tli` (see [`on_history`]). Returns the parts, one per
    /// run, and the LSN spans read without a break.
    pub fn visit<T: Send>(
        &self,
        tli: TimeLineId,
        init: impl Fn() -> T + Sync,
        visit: impl Fn(&mut T, &ReadRecord, usize, bool) + Sync,
    ) -> (Vec<T>, Vec<(Lsn, Lsn)>) {
        let Some(g) = self.geometry else { return (vec![], vec![]) };
        let history: Vec<HistoryEntry> = self.histories.get(&tli).cloned().unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        let mut jobs: Vec<(usize, usize)> = Vec::new();
        let mut order: Vec<(usize, usize)> = self
            .files
            .iter()
            .enumerate()
            .flat_map(|(i, f)| f.runs.iter().enumerate().filter(|(_, r)| r.status != RunStatus::Foreign).map(move |(j, _)| (i, j)))
            .collect();
        order.sort_by_key(|&(i, _)| (self.files[i].place != "pg_wal", self.files[i].partial));
        for (i, j) in order {
            let r = &self.files[i].runs[j];
            if seen.insert((r.pages.segno, r.pages.tli.1, r.pages.offset, r.pages.len)) {
                jobs.push((i, j));
            }
        }
        let shared = Arc::new(self.clone());
        let parts: Vec<(T, Option<(Lsn, Lsn)>)> = jobs
            .par_iter()
            .map(|&(i, j)| {
                let mut t = init();
                let run = &shared.files[i].runs[j];
                let src = InventorySource::new(shared.clone(), g, i);
                let mut reader = WalReader::new(src, shared.major, g, Some(shared.sysid));
                let Some(start) = first_record_from(&mut reader, run.start, run.end) else { return (t, None) };
                let seg_end = g.segment_start(run.pages.segno + 1);
                let (run_tli, mut lsn, mut prev) = (run.pages.tli.1, start, None);
                while lsn < seg_end {
                    let Ok(rr) = reader.read_record(lsn, prev) else { break };
                    // History: no history file (timeline 1, or lost) takes every timeline's WAL.
                    let ours = run_tli == tli || history.is_empty() || on_history(tli, &history, run_tli, rr.record.lsn);
                    visit(&mut t, &rr, i, ours);
                    prev = Some(rr.record.lsn);
                    lsn = rr.next;
                }
                (t, (lsn > start).then_some((start, lsn)))
            })
            .collect();
        let mut spans: Vec<(Lsn, Lsn)> = parts.iter().filter_map(|p| p.1).collect();
        spans.sort();
        (parts.into_iter().map(|p| p.0).collect(), spans)
    }

    /// Commit and abort outcomes from every readable record of every run (recycled
    /// content, archives, other timelines of this cluster's history), each with the file it
    /// came from.
    pub fn outcomes(&self, tli: TimeLineId) -> Outcomes {
        let mut out = Outcomes { files: self.files.iter().map(|f| f.path.clone()).collect(), ..Default::default() };
        let (parts, _) = self.visit(tli, Outcomes::default, |o, rr, i, ours| {
            o.records += 1;
            if let Some(x) = decode_outcome(self.major, &rr.record) {
                if !ours {
                    o.off_history += 1;
                    return;
                }
                let current = self.files[i].runs.iter().any(|r| r.pages.tli.1 == tli && r.start <= rr.record.lsn && rr.record.lsn < r.end);
                for xid in std::iter::once(x.xid).chain(x.subxacts.iter().copied()) {
                    o.add(xid, x.committed, i as u32, current);
                }
            }
        });
        for p in parts {
            out.merge(p);
        }
        out
    }

    /// What WAL says about some blocks: every record that touches one, in LSN order, with
    /// the page its full-page image restores to (BLCKSZ `bs`), and the spans of WAL read
    /// without a break (a later change could hide only outside them).
    pub fn block_history(&self, tli: TimeLineId, targets: &std::collections::HashSet<BlockKey>, bs: usize) -> BlockHistory {
        if targets.is_empty() {
            return BlockHistory::default();
        }
        let (parts, spans) = self.visit(tli, Vec::new, |v: &mut Vec<(BlockKey, BlockEvent)>, rr, i, ours| {
            if !ours {
                return;
            }
            for b in &rr.record.blocks {
                let key = BlockKey { spc: b.spc_node, db: b.db_node, rel: b.rel_node, fork: b.fork, block: b.block };
                if !targets.contains(&key) {
                    continue;
                }
                let image = match (b.image, b.image_info) {
                    (Some((off, len)), Some(info)) if info.apply => crate::format::wal::image::restore(&rr.record.bytes[off..off + len], &info, bs).ok(),
                    _ => None,
                };
                v.push((key, BlockEvent { lsn: rr.record.lsn, next: rr.next, file: i, rmid: rr.record.header.rmid, info: rr.record.header.info, image }));
            }
        });
        let mut events: HashMap<BlockKey, Vec<BlockEvent>> = HashMap::new();
        for (k, e) in parts.into_iter().flatten() {
            events.entry(k).or_default().push(e);
        }
        for v in events.values_mut() {
            v.sort_by_key(|e| e.lsn);
            v.dedup_by_key(|e| e.lsn);
        }
        BlockHistory { events, spans, files: self.files.iter().map(|f| f.path.clone()).collect() }
    }
}

/// What a WAL reset at `from` throws away, as far as the surviving WAL shows it: the
/// transactions whose commit record lies at or after it, and the tuples they inserted,
/// updated and deleted per relation (their records before `from` included: without the
/// commit, those changes are rolled back too).
#[derive(Clone, Debug, Default, Serialize)]
pub struct Lost {
    /// (xid, LSN of the commit record, commit time in microseconds since 2000-01-01).
    pub transactions: Vec<(Xid, Lsn, i64)>,
    /// (tablespace, database, relfilenode) → [inserted, updated, deleted].
    pub relations: BTreeMap<(u32, u32, u32), [u64; 3]>,
}

/// RM_HEAP2_ID / RM_HEAP_ID and the operations counted (`access/heapam_xlog.h`).
const RM_HEAP2_ID: u8 = 9;
const RM_HEAP_ID: u8 = 10;
const XLOG_HEAP2_MULTI_INSERT: u8 = 0x50;

/// The tuples a heap record inserts, updates or deletes: ([inserted, updated, deleted]).
fn heap_change(rec: &crate::format::wal::DecodedRecord) -> Option<[u64; 3]> {
    let op = rec.header.info & 0x70;
    match rec.header.rmid {
        RM_HEAP_ID => match op {
            0x00 => Some([1, 0, 0]),
            0x10 => Some([0, 0, 1]),
            0x20 | 0x40 => Some([0, 1, 0]),
            _ => None,
        },
        // xl_heap_multi_insert: flags:u8, ntuples:u16 at 2.
        RM_HEAP2_ID if op == XLOG_HEAP2_MULTI_INSERT => rec.main_data().get(2..4).map(|b| [u16::from_le_bytes([b[0], b[1]]) as u64, 0, 0]),
        _ => None,
    }
}

impl Inventory {
    /// See [`Lost`].
    pub fn lost_after(&self, tli: TimeLineId, from: Lsn) -> Lost {
        type Rels = HashMap<(u32, u32, u32), [u64; 3]>;
        #[derive(Default)]
        struct Acc {
            changes: HashMap<Xid, Rels>,
            /// (xid, subxacts, committed, lsn, time)
            ends: Vec<(Xid, Vec<Xid>, bool, Lsn, i64)>,
        }
        let (parts, _) = self.visit(tli, Acc::default, |a, rr, _, ours| {
            if !ours {
                return;
            }
            let rec = &rr.record;
            if let Some(o) = decode_outcome(self.major, rec) {
                let time = rec.main_data().get(0..8).map(|b| i64::from_le_bytes(b.try_into().unwrap_or_default())).unwrap_or(0);
                a.ends.push((o.xid, o.subxacts, o.committed, rec.lsn, time));
            } else if let (Some(ch), Some(b)) = (heap_change(rec), rec.blocks.first()) {
                let e = a.changes.entry(rec.header.xid).or_default().entry((b.spc_node, b.db_node, b.rel_node)).or_default();
                for k in 0..3 {
                    e[k] += ch[k];
                }
            }
        });
        let mut changes: HashMap<Xid, Rels> = HashMap::new();
        let mut ends = Vec::new();
        for p in parts {
            for (x, rels) in p.changes {
                let m = changes.entry(x).or_default();
                for (k, v) in rels {
                    let e = m.entry(k).or_default();
                    for i in 0..3 {
                        e[i] += v[i];
                    }
                }
            }
            ends.extend(p.ends);
        }
        ends.sort_by_key(|e| e.3);
        ends.dedup_by_key(|e| e.3);
        let mut lost = Lost::default();
        for (xid, subs, committed, lsn, time) in ends {
            if !committed || lsn < from {
                continue;
            }
            lost.transactions.push((xid, lsn, time));
            for x in std::iter::once(xid).chain(subs) {
                for (k, v) in changes.get(&x).into_iter().flatten() {
                    let e = lost.relations.entry(*k).or_default();
                    for i in 0..3 {
                        e[i] += v[i];
                    }
                }
            }
        }
        lost
    }
}

/// A block as WAL names it: tablespace, database, relfilenode, fork, block number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey {
    pub spc: u32,
    pub db: u32,
    pub rel: u32,
    pub fork: u8,
    pub block: u32,
}

impl BlockKey {
    /// The block of a relation file path (`base/5/16384.1`, `global/1262`,
    /// `pg_tblspc/16385/PG_15_202209061/5/16390`) at relation block `block`.
    pub fn of_file(path: &str, block: u32) -> Option<BlockKey> {
        let (dir, name) = path.rsplit_once('/')?;
        let (rel, fork, _) = crate::datadir::RelFile::parse_name(name)?;
        let parts: Vec<&str> = dir.split('/').collect();
        let (spc, db) = match parts.as_slice() {
            ["base", db] => (1663, db.parse().ok()?),
            ["global"] => (1664, 0),
            ["pg_tblspc", spc, _, db] => (spc.parse().ok()?, db.parse().ok()?),
            _ => return None,
        };
        // ForkNumber: MAIN_FORKNUM 0, FSM 1, VISIBILITYMAP 2, INIT 3.
        let fork = match fork {
            "main" => 0,
            "fsm" => 1,
            "vm" => 2,
            _ => 3,
        };
        Some(BlockKey { spc, db, rel, fork, block })
    }
}

/// One record touching a block.
#[derive(Clone, Debug)]
pub struct BlockEvent {
    pub lsn: Lsn,
    /// Where the next record starts: the LSN replay gives the page after this one.
    pub next: Lsn,
    pub file: usize,
    pub rmid: u8,
    pub info: u8,
    /// The page restored from the record's full-page image, when it carries one to apply.
    pub image: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Default)]
pub struct BlockHistory {
    pub events: HashMap<BlockKey, Vec<BlockEvent>>,
    pub spans: Vec<(Lsn, Lsn)>,
    pub files: Vec<String>,
}

impl BlockHistory {
    /// Whether WAL from `a` to `b` was read without a break.
    pub fn covered(&self, a: Lsn, b: Lsn) -> bool {
        let mut reach = a;
        for &(s, e) in &self.spans {
            if s <= reach && e > reach {
                reach = e;
            }
            if reach >= b {
                return true;
            }
        }
        reach >= b
    }
}

/// Where the first record starting at or after the page at `page` begins (past the rest of
/// a record continued from before it), before `end`.
fn first_record_from<S: WalSource>(r: &mut WalReader<S>, page: Lsn, end: Lsn) -> Option<Lsn> {
    let g = r.geometry;
    if g.offset_in_segment(page) == 0 {
        return r.first_record_in_segment(g.segno(page)).ok().flatten().filter(|&s| s < end);
    }
    let bs = g.block_size as u64;
    let mut p = page;
    let h = r.load_page(p).ok()?;
    let mut rem = if h.is_contrecord() { h.rem_len as u64 } else { 0 };
    let mut hsize = h.size() as u64;
    while p < end {
        let avail = bs - hsize;
        if rem <= avail {
            let s = Lsn(crate::format::bytes::maxalign((p.0 + hsize + rem) as usize) as u64);
            // (A start at a page boundary is read past that page's header.)
            return (s < end).then_some(s);
        }
        rem -= avail;
        p = Lsn(p.0 + bs);
        let h = r.load_page(p).ok()?;
        hsize = h.size() as u64;
    }
    None
}

/// Commit statuses taken from WAL.
#[derive(Clone, Debug, Default)]
pub struct Outcomes {
    /// xid → (committed, index of the file in `files`, from the current timeline).
    pub status: HashMap<Xid, (bool, u32, bool)>,
    pub files: Vec<String>,
    /// Records read.
    pub records: u64,
    /// xids with a commit in one record and an abort in another (left without status).
    pub conflicts: u64,
    /// Commit/abort records on a branch of history the cluster did not take.
    pub off_history: u64,
}

impl Outcomes {
    fn add(&mut self, xid: Xid, committed: bool, file: u32, current: bool) {
        match self.status.get(&xid) {
            None => {
                self.status.insert(xid, (committed, file, current));
            }
            Some(&(c, _, cur)) if c != committed => {
                // The current timeline wins over an ancestor's; otherwise no status at all.
                if current && !cur {
                    self.status.insert(xid, (committed, file, current));
                } else if current == cur {
                    self.conflicts += 1;
                    self.status.remove(&xid);
                }
            }
            Some(_) => {}
        }
    }
    fn merge(&mut self, o: Outcomes) {
        self.records += o.records;
        self.conflicts += o.conflicts;
        self.off_history += o.off_history;
        for (x, (c, f, cur)) in o.status {
            self.add(x, c, f, cur);
        }
    }
    /// The outcome of `xid` and the file it came from.
    pub fn get(&self, xid: Xid) -> Option<(bool, &str)> {
        self.status.get(&xid).map(|&(c, f, _)| (c, self.files.get(f as usize).map(String::as_str).unwrap_or("WAL")))
    }
}

/// Pages of WAL from the inventory: for each segment, the runs that hold it, with the runs
/// of one file preferred (the one being read, so a segment is read from one copy).
struct InventorySource {
    inv: Arc<Inventory>,
    by_segno: HashMap<SegNo, Vec<(usize, u64, u64)>>,
    loaded: Vec<(usize, Loaded)>,
}

enum Loaded {
    Map(Mapped),
    Owned(Vec<u8>),
}

impl std::ops::Deref for Loaded {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Loaded::Map(m) => m,
            Loaded::Owned(v) => v,
        }
    }
}

impl InventorySource {
    fn new(inv: Arc<Inventory>, _g: WalGeometry, prefer: usize) -> InventorySource {
        let mut by_segno: HashMap<SegNo, Vec<(usize, u64, u64)>> = HashMap::new();
        for (i, f) in inv.files.iter().enumerate() {
            for r in f.runs.iter().filter(|r| r.status != RunStatus::Foreign) {
                by_segno.entry(r.pages.segno).or_default().push((i, r.pages.offset, r.pages.offset + r.pages.len));
            }
        }
        for v in by_segno.values_mut() {
            v.sort_by_key(|&(i, _, _)| (i != prefer, inv.files[i].place != "pg_wal", i));
        }
        InventorySource { inv, by_segno, loaded: vec![] }
    }

    fn load(&mut self, i: usize) -> Option<usize> {
        if let Some(k) = self.loaded.iter().position(|(j, _)| *j == i) {
            return Some(k);
        }
        let f = &self.inv.files[i];
        let data = if f.compression.is_none() {
            let file = File::open(&f.full_path).ok()?;
            Loaded::Map(map_range(&file, &f.full_path, 0, f.bytes as usize).ok()?)
        } else {
            Loaded::Owned(read_content(&f.full_path, f.bytes).ok()?.1)
        };
        if self.loaded.len() >= 3 {
            self.loaded.remove(0);
        }
        self.loaded.push((i, data));
        Some(self.loaded.len() - 1)
    }
}

impl WalSource for InventorySource {
    fn page(&mut self, segno: SegNo, offset: u32, len: usize) -> Result<&[u8], PageFetch> {
        let (o, n) = (offset as u64, len as u64);
        let i = {
            let cands = self.by_segno.get(&segno).ok_or(PageFetch::MissingSegment)?;
            cands.iter().find(|&&(_, s, e)| o >= s && o + n <= e).map(|c| c.0).ok_or(PageFetch::MissingSegment)?
        };
        let k = self.load(i).ok_or(PageFetch::MissingSegment)?;
        self.loaded[k].1.get(offset as usize..offset as usize + len).ok_or(PageFetch::ShortSegment { file_len: self.inv.files[i].bytes })
    }
}
