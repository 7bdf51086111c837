//! Full-page images in WAL as a source for damaged pages. A page the server wrote carries
//! the LSN of the last record that changed it; the record that first changed it after a
//! checkpoint carries an image of the whole page. When the latest such image is followed by
//! no other record touching the block, the image (with that record's LSN) is the page as
//! the server last had it, hint bits aside: restoring it loses nothing. After a crash,
//! recovery does exactly that for every block changed after the REDO point, so a page torn
//! or damaged there is overwritten when the server starts.

use super::{Code, Finding, Severity};
use crate::check::WalSummary;
use crate::datadir::DataDir;
use crate::format::control::{ControlFile, DbState};
use crate::format::types::Lsn;
use crate::inventory::{BlockEvent, BlockKey, Inventory};
use std::collections::{BTreeMap, HashSet};

/// A page to restore from WAL.
#[derive(Clone, Debug)]
pub struct PageImage {
    /// The record carrying the image, and where the next one starts (the page's LSN after it).
    pub lsn: Lsn,
    pub next: Lsn,
    /// The WAL file it was read in.
    pub source: String,
    pub image: Vec<u8>,
}

/// A page's pd_lsn, from the page header decoder.
fn page_lsn(p: &[u8]) -> Option<Lsn> {
    crate::format::page::PageHeader::parse(p).ok().map(|h| h.lsn)
}

/// Resource manager names (`access/rmgrlist.h`), for saying what a record is.
fn rmgr_name(id: u8) -> String {
    const NAMES: [&str; 22] = [
        "XLOG",
        "Transaction",
        "Storage",
        "CLOG",
        "Database",
        "Tablespace",
        "MultiXact",
        "RelMap",
        "Standby",
        "Heap2",
        "Heap",
        "Btree",
        "Hash",
        "Gin",
        "Gist",
        "Sequence",
        "SPGist",
        "BRIN",
        "CommitTs",
        "ReplicationOrigin",
        "Generic",
        "LogicalMessage",
    ];
    NAMES.get(id as usize).map(|s| s.to_string()).unwrap_or_else(|| format!("rmgr {id}"))
}

/// Findings about the bytes of one table page (not TOAST values, which live elsewhere, nor
/// a page LSN past WAL, which no older image can answer).
const CODES: [Code; 11] = [
    Code::TupleXidNeverAssigned,
    Code::TupleXidBeforeHorizon,
    Code::TupleMultixactOutOfRange,
    Code::TupleChainBroken,
    Code::PageInvalid,
    Code::PageChecksumFailure,
    Code::TupleHeaderInvalid,
    Code::TuplePointerInvalid,
    Code::TuplePointerHidesRow,
    Code::TupleAttributeInvalid,
    Code::TupleHintContradiction,
];

/// Look up every damaged page of a table in WAL. Findings whose page crash recovery will
/// overwrite become information; those with an exact image get it as the repair that loses
/// least; the images, by (file, block), for `plan`.
pub fn from_wal(
    dd: &DataDir,
    c: &ControlFile,
    out: &mut [Finding],
    inv: &Inventory,
    wal: Option<&WalSummary>,
    is_index: &dyn Fn(&str) -> bool,
) -> BTreeMap<(String, u32), PageImage> {
    let mut images = BTreeMap::new();
    let bs = c.database_block_size as usize;
    let wanted = |f: &Finding| CODES.contains(&f.code) && f.at.file.as_deref().is_some_and(|p| !is_index(p)) && f.at.block.is_some();
    let targets: HashSet<BlockKey> = out.iter().filter(|f| wanted(f)).filter_map(|f| BlockKey::of_file(f.at.file.as_deref()?, f.at.block?)).collect();
    if targets.is_empty() {
        return images;
    }
    let h = inv.block_history(c.checkpoint.timeline_id, &targets, bs);
    let crashed = matches!(c.state, DbState::InProduction | DbState::InCrashRecovery);
    let redo = c.checkpoint.redo_lsn;
    let end = wal.map(|w| w.end_of_valid_wal).unwrap_or(redo);
    for f in out.iter_mut().filter(|f| wanted(f)) {
        let (Some(file), Some(block)) = (f.at.file.clone(), f.at.block) else { continue };
        let Some(key) = BlockKey::of_file(&file, block) else { continue };
        let Some(events) = h.events.get(&key) else { continue };
        let source = |e: &BlockEvent| h.files.get(e.file).cloned().unwrap_or_default();
        // After a crash, replay from REDO: the first record touching the block restores it
        // from its image without reading what is on disk.
        if crashed {
            if let Some(e) = events.iter().find(|e| e.lsn >= redo && e.lsn < end) {
                if e.image.is_some() {
                    f.severity = Severity::Info;
                    f.if_nothing_is_done = "nothing: crash recovery writes the block from WAL when the server starts".into();
                    f.title = format!(
                        "{} (crash recovery overwrites this block from the full-page image at {}: not damage once the server has started)",
                        f.title, e.lsn
                    );
                    f.evidence.push(format!(
                        "the first record after the REDO point {redo} that touches block {block} ({} at {}, in {}) carries an image of the whole page: recovery writes it without reading the page on disk, as it does for pages torn by a crash",
                        rmgr_name(e.rmid),
                        e.lsn,
                        source(e)
                    ));
                    f.repairs.insert(
                        0,
                        super::Repair {
                            action: "start the server: crash recovery rewrites the page from WAL".into(),
                            loses: "nothing".into(),
                            least_loss: true,
                        },
                    );
                    for r in f.repairs.iter_mut().skip(1) {
                        r.least_loss = false;
                    }
                    continue;
                }
            }
        }
        let Some((i, latest)) = events.iter().enumerate().rev().find(|(_, e)| e.image.is_some()) else {
            let what: Vec<String> = events.iter().rev().take(3).map(|e| format!("{} record at {} (info {:#04x})", rmgr_name(e.rmid), e.lsn, e.info)).collect();
            f.evidence.push(format!("WAL records touch block {block} ({}), but none found carries an image of the whole page", what.join(", ")));
            continue;
        };
        let later: Vec<&BlockEvent> = events[i + 1..].iter().collect();
        let on_disk = crate::plan::block_bytes(dd, &file, block, bs, c.blocks_per_segment);
        let pd_lsn = on_disk.as_deref().and_then(page_lsn);
        if !later.is_empty() {
            let what: Vec<String> = later.iter().take(5).map(|e| format!("{} record at {} (info {:#04x})", rmgr_name(e.rmid), e.lsn, e.info)).collect();
            f.evidence.push(format!(
                "WAL holds a full-page image of block {block} at {} ({}), but {} change the block after it: {}{}; the image alone would undo them",
                latest.lsn,
                source(latest),
                crate::units::count(later.len() as u64, "later record"),
                what.join(", "),
                if later.len() > 5 { ", ..." } else { "" }
            ));
            continue;
        }
        // The page on disk was last changed by this very record (its LSN says so), or no
        // WAL from the image to the end of valid WAL is missing and none of it touches the
        // block (and the page does not claim a later change).
        let exact = pd_lsn == Some(latest.next) || (h.covered(latest.next, end) && pd_lsn.is_none_or(|l| l <= latest.next));
        if !exact {
            f.evidence.push(format!(
                "WAL holds a full-page image of block {block} at {} ({}), but WAL after it is missing or the page claims a later change (pd_lsn {}): a later change could be lost",
                latest.lsn,
                source(latest),
                pd_lsn.map(|l| l.to_string()).unwrap_or_else(|| "unreadable".into())
            ));
            continue;
        }
        let Some(image) = latest.image.clone() else { continue };
        f.evidence.push(format!(
            "WAL holds a full-page image of block {block} at {} ({}), and no later record touches the block{}",
            latest.lsn,
            source(latest),
            if pd_lsn == Some(latest.next) {
                format!(": the page's own LSN {} is that record's", latest.next)
            } else {
                format!("; WAL up to {end} is present")
            }
        ));
        for r in f.repairs.iter_mut() {
            r.least_loss = false;
        }
        f.repairs.insert(
            0,
            super::Repair {
                action: format!("restore block {block} from the full-page image in WAL at {} (pgsalvage plan)", latest.lsn),
                loses: "nothing: the page as the server last wrote it to WAL (hint bits set since are set again)".into(),
                least_loss: true,
            },
        );
        images.insert((file, block), PageImage { lsn: latest.lsn, next: latest.next, source: source(latest), image });
    }
    images
}

/// Damaged table pages that another copy of this cluster holds intact (`--page-source`: a
/// data directory restored from a snapshot, a standby stopped, a file-level copy). Its page
/// stands in for the damaged one only when both carry the same LSN: the copy then holds
/// the page as the server last changed it, hint bits aside. An older copy is named, not
/// used. Pages WAL already answers are left alone.
pub fn from_copies(
    dd: &DataDir,
    c: &ControlFile,
    out: &mut [Finding],
    sources: &[std::path::PathBuf],
    images: &mut BTreeMap<(String, u32), PageImage>,
    is_index: &dyn Fn(&str) -> bool,
) {
    let bs = c.database_block_size as usize;
    let checksums = c.data_page_checksum_version > 0;
    let copies: Vec<(String, DataDir)> = sources
        .iter()
        .filter_map(|p| {
            let d = DataDir::open(p).ok()?;
            let (sc, _, _) = d.control().ok()?;
            (sc.system_identifier == c.system_identifier).then(|| (p.display().to_string(), d))
        })
        .collect();
    for f in out.iter_mut().filter(|f| CODES.contains(&f.code) && f.severity != Severity::Info) {
        let (Some(file), Some(block)) = (f.at.file.clone(), f.at.block) else { continue };
        if is_index(&file) || images.contains_key(&(file.clone(), block)) {
            continue;
        }
        let damaged = crate::plan::block_bytes(dd, &file, block, bs, c.blocks_per_segment);
        let want = damaged.as_deref().and_then(page_lsn);
        for (name, copy) in &copies {
            let Some(page) = crate::plan::block_bytes(copy, &file, block, bs, c.blocks_per_segment) else { continue };
            if !matches!(crate::format::page::verify_page(&page, block, checksums), Ok(crate::format::page::PageVerdict::Valid)) {
                f.evidence.push(format!("{name} holds block {block} of {file}, but damaged too"));
                continue;
            }
            let have = page_lsn(&page);
            if have.is_some() && have == want {
                f.evidence.push(format!(
                    "{name} holds block {block} intact, with the damaged page's own LSN {}: the same page as the server last changed it",
                    have.unwrap_or_default()
                ));
                for r in f.repairs.iter_mut() {
                    r.least_loss = false;
                }
                f.repairs.insert(
                    0,
                    super::Repair {
                        action: format!("restore block {block} from the copy in {name} (pgsalvage plan --page-source)"),
                        loses: "nothing: the page as the server last changed it (hint bits set since are set again)".into(),
                        least_loss: true,
                    },
                );
                let lsn = have.unwrap_or_default();
                images.insert((file.clone(), block), PageImage { lsn, next: lsn, source: format!("{name}/{file}"), image: page });
                break;
            }
            f.evidence.push(format!(
                "{name} holds block {block} with LSN {}, the damaged page has {}: {}",
                have.map(|l| l.to_string()).unwrap_or_else(|| "?".into()),
                want.map(|l| l.to_string()).unwrap_or_else(|| "an unreadable one".into()),
                match (have, want) {
                    (Some(h), Some(w)) if h < w => "the copy is older, and using it would lose the changes since",
                    (Some(_), Some(_)) => "the copy is newer than this cluster's page: not the same history",
                    _ => "they cannot be compared, so the copy is not used",
                }
            ));
        }
    }
}
