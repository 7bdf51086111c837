//! Relation pages: every block of every fork segment in global/, base/ and the tablespaces,
//! checked as PageIsVerified does (header, checksum when the cluster has them, all-zero new
//! pages), plus file-level checks (partial blocks, segment gaps, short middle segments).
//! Files are split into windows of at most WINDOW bytes, scanned in parallel, each through
//! its own read-only memory map that is unmapped when done: memory stays bounded.

use super::Progress;
use crate::datadir::{map_range, DataDir, RelFile};
use crate::error::{Error, Result};
use crate::finding::{Area, Code, Finding};
use crate::format::control::ControlFile;
use crate::format::page::{verify_page, PageVerdict};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs::File;

/// Bytes scanned per work item (and mapped at once per thread). 16 MB measured best on the
/// benchmark machine (docs/BENCHMARKS.md): fewer map/unmap calls than 4–8 MB, and resident
/// memory stays about 2 × 16 MB.
const WINDOW: u64 = 16 << 20;

#[derive(Clone, Debug, Default, Serialize)]
pub struct PageSummary {
    pub files: usize,
    pub bytes: u64,
    pub blocks: u64,
    pub all_zero_blocks: u64,
    pub checksums_verified: bool,
    pub bad_blocks: u64,
    /// The highest pd_lsn of a page the server accepts: WAL must reach at least this far,
    /// or the next write of that page makes every checkpoint fail.
    pub max_page_lsn: crate::format::types::Lsn,
    /// Accepted pages whose pd_lsn lies past the latest checkpoint's REDO location (file,
    /// block, pd_lsn), at most LATE_KEPT of them; compared with the end of WAL by `check`.
    #[serde(skip)]
    pub late_pages: Vec<(String, u32, u64)>,
    #[serde(skip)]
    pub late_count: u64,
    /// The lowest pd_lsn past the REDO location (0: none).
    #[serde(skip)]
    pub late_min: u64,
}

/// How many pages past the REDO location are kept for the comparison with the end of WAL.
const LATE_KEPT: usize = 4096;

struct Item {
    file: usize,
    offset: u64,
    len: u64,
}

#[derive(Default)]
struct Tally {
    blocks: u64,
    zero: u64,
    bad: u64,
    findings: Vec<Finding>,
    max_lsn: u64,
    late: Vec<(String, u32, u64)>,
    late_count: u64,
    late_min: u64,
}

impl Tally {
    fn merge(mut self, mut o: Tally) -> Tally {
        self.blocks += o.blocks;
        self.zero += o.zero;
        self.bad += o.bad;
        self.findings.extend(o.findings);
        self.max_lsn = self.max_lsn.max(o.max_lsn);
        self.late_count += o.late_count;
        self.late_min = match (self.late_min, o.late_min) {
            (0, m) | (m, 0) => m,
            (a, b) => a.min(b),
        };
        // Keep the highest LSNs: they are the ones past the end of WAL, if any are.
        self.late.append(&mut o.late);
        if self.late.len() > LATE_KEPT {
            self.late.sort_by_key(|x| std::cmp::Reverse(x.2));
            self.late.truncate(LATE_KEPT);
        }
        self
    }
}

pub fn scan(dd: &DataDir, c: &ControlFile, progress: &dyn Progress) -> Result<(PageSummary, Vec<Finding>)> {
    let files = dd.relation_files(&super::version_dir(c))?;
    let bs = c.database_block_size as u64;
    let checksums = c.data_page_checksum_version > 0;
    let mut findings = file_level(&files, bs, c.blocks_per_segment as u64);
    let mut items = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let usable = f.len - f.len % bs;
        let mut off = 0;
        while off < usable {
            let len = WINDOW.min(usable - off);
            items.push(Item { file: i, offset: off, len });
            off += len;
        }
    }
    let total: u64 = items.iter().map(|i| i.len).sum();
    progress.start(total);
    let tally = items
        .par_iter()
        .map(|it| scan_item(dd, &files[it.file], it, bs, c.blocks_per_segment, checksums, c.checkpoint.redo_lsn.0, progress))
        .try_reduce(Tally::default, |a, b| Ok(a.merge(b)))?;
    findings.extend(tally.findings);
    let summary = PageSummary {
        files: files.len(),
        bytes: total,
        blocks: tally.blocks,
        all_zero_blocks: tally.zero,
        checksums_verified: checksums,
        bad_blocks: tally.bad,
        max_page_lsn: crate::format::types::Lsn(tally.max_lsn),
        late_pages: tally.late,
        late_count: tally.late_count,
        late_min: tally.late_min,
    };
    Ok((summary, findings))
}

#[allow(clippy::too_many_arguments)]
fn scan_item(dd: &DataDir, f: &RelFile, it: &Item, bs: u64, blocks_per_segment: u32, checksums: bool, redo: u64, progress: &dyn Progress) -> Result<Tally> {
    let rel = f.path();
    let path = dd.path(&rel);
    let file = File::open(&path).map_err(|e| Error::io("open relation file", &path, e))?;
    let map = map_range(&file, &path, it.offset, it.len as usize)?;
    let mut t = Tally::default();
    let first_block = (it.offset / bs) as u32;
    for (i, page) in map.chunks_exact(bs as usize).enumerate() {
        let in_seg = first_block + i as u32;
        let blkno = f.segno.wrapping_mul(blocks_per_segment).wrapping_add(in_seg);
        t.blocks += 1;
        let offset = in_seg as u64 * bs;
        let v = verify_page(page, blkno, checksums).map_err(|e| Error::format(&path, e.shifted(offset as usize), "unexpected block size"))?;
        let finding = match v {
            PageVerdict::Valid => {
                // pd_lsn: xlogid then xrecoff, native (little-endian) order.
                let lsn =
                    (u32::from_le_bytes([page[0], page[1], page[2], page[3]]) as u64) << 32 | u32::from_le_bytes([page[4], page[5], page[6], page[7]]) as u64;
                t.max_lsn = t.max_lsn.max(lsn);
                if lsn > redo {
                    t.late_count += 1;
                    t.late_min = if t.late_min == 0 { lsn } else { t.late_min.min(lsn) };
                    if t.late.len() < LATE_KEPT {
                        t.late.push((rel.clone(), blkno, lsn));
                    }
                }
                None
            }
            PageVerdict::AllZero => {
                t.zero += 1;
                None
            }
            PageVerdict::ChecksumFailure(cf) => Some(
                Finding::new(
                    Code::PageChecksumFailure,
                    Area::Pages,
                    format!("page verification failed, calculated checksum {} but expected {}", cf.calculated, cf.stored),
                )
                .evidence("the page header is sane: the damage is in the contents (tuples), or the checksum itself"),
            ),
            PageVerdict::InvalidHeader { problems, checksum_failure } => {
                let mut fd = Finding::new(Code::PageInvalidHeader, Area::Pages, format!("invalid page in block {blkno} of relation {}", f.dir_relpath()));
                for p in problems {
                    fd = fd.evidence(p.to_string());
                }
                if let Some(cf) = checksum_failure {
                    fd = fd.evidence(format!("checksum also fails: calculated {} but expected {}", cf.calculated, cf.stored));
                }
                Some(fd)
            }
            PageVerdict::NewButNotZero { first_nonzero } => Some(
                Finding::new(Code::PageNewNotZero, Area::Pages, format!("invalid page in block {blkno} of relation {}", f.dir_relpath()))
                    .evidence(format!("pd_upper is 0 (a new page) but byte {first_nonzero} is not zero")),
            ),
        };
        if let Some(fd) = finding {
            t.bad += 1;
            t.findings.push(fd.file(rel.clone()).block(blkno).offset(offset));
        }
    }
    progress.advance(it.len);
    Ok(t)
}

impl RelFile {
    /// The relation path the server names in messages (`base/5/16384`, without segment).
    pub fn dir_relpath(&self) -> String {
        let fork = if self.fork == "main" { String::new() } else { format!("_{}", self.fork) };
        format!("{}/{}{fork}", self.dir, self.relfilenode)
    }
}

/// Partial blocks, and segment sequences with gaps or short middle segments.
fn file_level(files: &[RelFile], bs: u64, blocks_per_segment: u64) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut forks: BTreeMap<(String, u32, &str), Vec<&RelFile>> = BTreeMap::new();
    for f in files {
        if f.len % bs != 0 {
            out.push(
                Finding::new(
                    Code::RelationPartialBlock,
                    Area::Pages,
                    format!("{} is {} bytes, not a multiple of the block size {bs}: its last {} bytes are a partial block", f.path(), f.len, f.len % bs),
                )
                .file(f.path())
                .offset(f.len - f.len % bs)
                .block((f.segno as u64 * blocks_per_segment + f.len / bs) as u32),
            );
        }
        forks.entry((f.dir.clone(), f.relfilenode, f.fork)).or_default().push(f);
    }
    // The server reads segment after segment while each is full (mdnblocks): the first
    // missing or short one ends the relation. Later segments left empty are normal (a
    // truncation empties the segments it no longer needs and keeps them; a drop leaves its
    // first segment empty until the next checkpoint): only later segments holding bytes are
    // data the server never reads.
    let full = blocks_per_segment * bs;
    for segs in forks.values() {
        let Some(stranded) = segs.iter().rev().find(|s| s.len > 0).map(|s| s.segno) else { continue };
        for (i, s) in segs.iter().enumerate() {
            if s.segno > stranded {
                break;
            }
            let expected = if i == 0 { 0 } else { segs[i - 1].segno + 1 };
            if s.segno != expected {
                let name = RelFile { segno: expected, ..(*s).clone() }.path();
                out.push(
                    Finding::new(
                        Code::RelationSegmentGap,
                        Area::Pages,
                        format!(
                            "{name} is missing while {} holds data: blocks from {} on are unreachable",
                            segs.iter().find(|x| x.segno == stranded).map(|x| x.path()).unwrap_or_default(),
                            expected as u64 * blocks_per_segment
                        ),
                    )
                    .file(name)
                    .block((expected as u64 * blocks_per_segment) as u32),
                );
                break;
            }
            if s.segno != stranded && s.len < full {
                out.push(
                    Finding::new(
                        Code::RelationSegmentShort,
                        Area::Pages,
                        format!(
                            "{} is {} bytes but is not the last segment holding data (a full one is {full}): the server stops at its end and never reads the later segments",
                            s.path(),
                            s.len
                        ),
                    )
                    .file(s.path())
                    .offset(s.len),
                );
                break;
            }
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rf(node: u32, segno: u32, len: u64) -> RelFile {
        RelFile { dir: "base/5".into(), relfilenode: node, fork: "main", segno, len }
    }

    #[test]
    fn file_level_problems() {
        let full = 131072 * 8192;
        let files =
            vec![rf(1, 0, full), rf(1, 1, full), rf(1, 2, 8192), rf(2, 0, full), rf(2, 2, 8192), rf(3, 0, 100 * 8192), rf(3, 1, 8192), rf(4, 0, 8192 + 10)];
        // Empty segments after the end, left by a truncation or a drop, are not damage; nor
        // is an empty first segment.
        let mut files = files;
        files.extend([rf(5, 0, 8192), rf(5, 1, 0), rf(5, 3, 0), rf(6, 2, 0), rf(7, 0, 0), rf(8, 0, full), rf(8, 1, 0), rf(8, 2, 0)]);
        files.sort();
        let f = file_level(&files, 8192, 131072);
        let codes: Vec<(Code, String)> = f.iter().map(|f| (f.code, f.at.file.clone().unwrap())).collect();
        assert_eq!(
            codes,
            vec![
                (Code::RelationPartialBlock, "base/5/4".to_string()),
                (Code::RelationSegmentGap, "base/5/2.1".to_string()),
                (Code::RelationSegmentShort, "base/5/3".to_string()),
            ]
        );
        assert_eq!(f[1].at.block, Some(131072));
    }
}
