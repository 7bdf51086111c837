//! One function per kind of diagnose finding: the actions that answer it, each bound to the
//! bytes it was planned on, or the reason none does. [`super::plan`] dispatches on
//! [`crate::diagnose::Code`] with no `_` arm, so a new finding kind does not compile until it
//! has a function here or a stated reason why it needs none.

use super::{block_bytes, bytes, current_precondition, evidence, past_page_lsn, reset, vm_block, vm_effect};
use super::{Action, ActionKind, PlanOptions, Risk, Target, XactPolicy};
use crate::check::control::{ControlEvidence, Verdict};
use crate::datadir::DataDir;
use crate::diagnose::{tuples, Code, Diagnosis, Finding};
use crate::error::{Error, Result};
use crate::format::control::ControlFile;
use crate::format::page::heap;
use crate::units::count;
use std::collections::{BTreeMap, BTreeSet};

/// What a finding gets: the ids of the actions that answer it (none: nothing to do on this
/// page after all), or why no action does.
pub type Answer = std::result::Result<Vec<String>, String>;

/// Any rewrite of a page whose checksum fails stores a new checksum, which accepts whatever
/// else changed in the page: it needs the same opt-in as accepting it.
const CHECKSUM_TOO: &str = "the page also fails its data checksum: rewriting it stores a new checksum, which accepts whatever else changed in it. Read its rows first (SET ignore_checksum_failure = on), then plan with --accept-checksum-failures";

/// The planning of one diagnosis: what every repair function reads, and the actions so far.
pub struct Planner<'a> {
    pub dd: &'a DataDir,
    pub opts: &'a PlanOptions,
    /// pg_control as trusted (rebuilt from evidence when damaged), counters where WAL replay
    /// leaves them.
    pub c: &'a ControlFile,
    pub d: &'a Diagnosis,
    pub ev: &'a ControlEvidence,
    /// pg_control's bytes as found (None: the file is missing).
    pub control: Option<&'a [u8]>,
    pub now: i64,
    pub actions: Vec<Action>,
    /// What the server must run once it is up (REINDEX, REFRESH).
    pub post_repair: Vec<super::PostRepair>,
    by_page: BTreeMap<(String, u32), Vec<&'a tuples::TupleProblem>>,
    checksum_failed: BTreeSet<(String, u32)>,
    /// Commit statuses from every WAL file found, read once for all pg_xact rebuilds.
    outcomes: std::cell::OnceCell<crate::inventory::Outcomes>,
}

impl<'a> Planner<'a> {
    pub fn new(
        dd: &'a DataDir,
        opts: &'a PlanOptions,
        c: &'a ControlFile,
        d: &'a Diagnosis,
        ev: &'a ControlEvidence,
        control: Option<&'a [u8]>,
        now: i64,
    ) -> Planner<'a> {
        let mut by_page: BTreeMap<(String, u32), Vec<&tuples::TupleProblem>> = BTreeMap::new();
        for p in &d.tuples.problems {
            by_page.entry((p.file.clone(), p.block)).or_default().push(p);
        }
        let checksum_failed =
            d.findings.iter().filter(|f| f.code == Code::PageChecksumFailure).filter_map(|f| Some((f.at.file.clone()?, f.at.block?))).collect();
        Planner { dd, opts, c, d, ev, control, now, actions: Vec::new(), post_repair: Vec::new(), by_page, checksum_failed, outcomes: Default::default() }
    }

    fn bs(&self) -> usize {
        self.c.database_block_size as usize
    }

    /// Add an action for finding `f` on `path` (a block of it, or the whole file), bound to
    /// the bytes there now; its id.
    #[allow(clippy::too_many_arguments)]
    fn push(&mut self, f: &Finding, kind: ActionKind, path: &str, block: Option<u32>, scope: &str, effect: String, loss: String, risk: Risk) -> String {
        let id = format!("A{}", self.actions.len() + 1);
        let target = Target { path: path.to_string(), block, relation: f.at.relation.clone() };
        let precondition = current_precondition(self.dd, &target, scope, self.bs(), self.c.blocks_per_segment);
        self.actions.push(Action {
            id: id.clone(),
            finding: f.code.to_string(),
            kind,
            target,
            precondition,
            effect,
            data_loss: loss,
            risk,
            expected_log: vec![],
        });
        id
    }

    /// A repair that changes tuples must not leave the heap block marked all-visible or
    /// all-frozen: its visibility map bits are cleared too, where the map has the block.
    fn clear_vm(&mut self, f: &Finding, file: &str, block: u32) -> Option<String> {
        let (vm, vblk) = vm_block(self.dd, file, block, self.bs(), self.c.blocks_per_segment)?;
        Some(self.push(f, ActionKind::ClearVisibilityMap { heap_block: block }, &vm, Some(vblk), "block", vm_effect(block), "nothing".into(), Risk::Low))
    }

    fn hides_checksum_failure(&self, file: &str, block: u32) -> bool {
        !self.opts.accept_checksum_failures && self.checksum_failed.contains(&(file.to_string(), block))
    }

    /// The damaged tuples of a page, of the kinds `keep` selects.
    fn offnums(&self, file: &str, block: u32, keep: impl Fn(tuples::TupleProblemKind) -> bool) -> Vec<u16> {
        self.by_page.get(&(file.to_string(), block)).map(|v| v.iter().filter(|p| keep(p.kind)).map(|p| p.offnum).collect()).unwrap_or_default()
    }

    /// The page of a block finding, when it may be rewritten.
    fn page_target<'f>(&self, f: &'f Finding) -> std::result::Result<Option<(&'f str, u32)>, String> {
        let (Some(file), Some(block)) = (f.at.file.as_deref(), f.at.block) else { return Ok(None) };
        if self.hides_checksum_failure(file, block) {
            return Err(CHECKSUM_TOO.into());
        }
        Ok(Some((file, block)))
    }

    /// tuple-xid-never-assigned, tuple-xid-before-horizon, tuple-multixact-out-of-range:
    /// freeze the tuples (pg_surgery's heap_force_freeze), rows kept.
    pub fn freeze_tuples(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let offnums = self.offnums(file, block, |k| !matches!(k, tuples::TupleProblemKind::PointerInvalid | tuples::TupleProblemKind::HeaderInvalid));
        if offnums.is_empty() {
            return Ok(vec![]);
        }
        let n = offnums.len() as u64;
        let ctids = {
            let list: Vec<String> = offnums.iter().take(5).map(|o| format!("({block},{o})")).collect();
            format!("ctid {}{}", list.join(", "), if offnums.len() > 5 { ", ..." } else { "" })
        };
        let effect = format!(
            "{} marked frozen (xmin frozen, xmax invalid): the server stops asking pg_xact about the damaged ids and the rows are visible",
            count(n, "tuple")
        );
        let loss = format!("nothing is deleted; the {} may hold damaged values: check {ctids}", count(n, "row"));
        let mut ids = vec![self.push(f, ActionKind::FreezeTuples { offnums }, file, Some(block), "block", effect, loss, Risk::Medium)];
        ids.extend(self.clear_vm(f, file, block));
        Ok(ids)
    }

    /// tuple-hint-contradiction (the tuples' xmin and xmax are in range, or the tuple would
    /// have an xid finding that freezes it): the xmax hint bits cleared, so that the server
    /// looks the status up again. Tuples another action of the plan freezes already are
    /// answered by it.
    pub fn clear_hint_bits(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let offnums = self.offnums(file, block, |k| k == tuples::TupleProblemKind::HintContradiction);
        if offnums.is_empty() {
            return Ok(vec![]);
        }
        if let Some(a) = self.actions.iter().find(|a| {
            a.target.path == file
                && a.target.block == Some(block)
                && matches!(&a.kind, ActionKind::FreezeTuples { offnums: o } if offnums.iter().all(|x| o.contains(x)))
        }) {
            return Ok(vec![a.id.clone()]);
        }
        let n = offnums.len() as u64;
        let effect = format!("the xmax hint bits of {} cleared: the server looks the status of their xmax up in pg_xact again", count(n, "tuple"));
        let loss =
            "nothing is deleted by the edit; a row whose deleting transaction committed (as pg_xact says) stops being visible, as it should have".to_string();
        let mut ids = vec![self.push(f, ActionKind::ClearHintBits { offnums }, file, Some(block), "block", effect, loss, Risk::Low)];
        ids.extend(self.clear_vm(f, file, block));
        Ok(ids)
    }

    /// tuple-pointer-hides-row: the line pointers made normal again, rows back.
    pub fn restore_pointers(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let Some(page) = block_bytes(self.dd, file, block, self.bs(), self.c.blocks_per_segment) else { return Ok(vec![]) };
        let Ok(slots) = crate::format::page::heap::tuples(&page) else { return Ok(vec![]) };
        let items: Vec<(u16, u16, u16)> = slots.iter().filter(|t| t.hidden.is_some()).map(|t| (t.offnum, t.item.off, t.item.len)).collect();
        if items.is_empty() {
            return Ok(vec![]);
        }
        let effect = format!(
            "{} made normal again, with the offset and length they kept: the hidden rows are read again, under the usual visibility rules",
            count(items.len() as u64, "line pointer")
        );
        let mut ids = vec![self.push(f, ActionKind::RestorePointers { items }, file, Some(block), "block", effect, "nothing".into(), Risk::Medium)];
        ids.extend(self.clear_vm(f, file, block));
        Ok(ids)
    }

    /// tuple-pointer-invalid: the broken line pointers marked dead (heap_force_kill).
    pub fn kill_pointers(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let offnums = self.offnums(file, block, |k| k == tuples::TupleProblemKind::PointerInvalid);
        if offnums.is_empty() {
            return Ok(vec![]);
        }
        let n = offnums.len() as u64;
        let effect = format!(
            "{} marked dead without storage, as heap_force_kill does: nothing reads where they pointed; the next VACUUM removes their index entries",
            count(n, "broken line pointer")
        );
        let loss = format!("{}: whatever those pointers once found (they point at garbage now)", count(n, "row"));
        let mut ids = vec![self.push(f, ActionKind::KillTuples { offnums }, file, Some(block), "block", effect, loss, Risk::Medium)];
        // Index-only scans must not trust the page as all-visible any more.
        ids.extend(self.clear_vm(f, file, block));
        self.check_references(f, file);
        Ok(ids)
    }

    /// tuple-header-invalid: the tuples marked dead (heap_force_kill); their rows cannot be
    /// decoded. Their bytes stay in the page (and the rollback store keeps the page).
    pub fn kill_damaged_headers(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let offnums = self.offnums(file, block, |k| k == tuples::TupleProblemKind::HeaderInvalid);
        if offnums.is_empty() {
            return Ok(vec![]);
        }
        let n = offnums.len() as u64;
        let list: Vec<String> = offnums.iter().take(5).map(|o| format!("({block},{o})")).collect();
        let effect = format!(
            "{} with a damaged header marked dead, as heap_force_kill does: no query decodes them; the next VACUUM removes them and their index entries",
            count(n, "tuple")
        );
        let loss = format!(
            "{}: ctid {}{} (their bytes are kept in the rollback store's copy of the page)",
            count(n, "row"),
            list.join(", "),
            if offnums.len() > 5 { ", ..." } else { "" }
        );
        let mut ids = vec![self.push(f, ActionKind::KillTuples { offnums }, file, Some(block), "block", effect, loss, Risk::Medium)];
        ids.extend(self.clear_vm(f, file, block));
        self.check_references(f, file);
        Ok(ids)
    }

    /// page-invalid: the header rebuilt from the line pointers and tuples when they are
    /// consistent enough, else (when allowed) the page emptied.
    pub fn page_invalid(&mut self, f: &Finding) -> Answer {
        if let Some(answer) = self.reindex_instead(f) {
            return answer;
        }
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let Some(page) = block_bytes(self.dd, file, block, self.bs(), self.c.blocks_per_segment) else { return Ok(vec![]) };
        if let Some(h) = bytes::derive_header(&page, self.c.checkpoint.redo_lsn.0) {
            let effect = format!(
                "page header rewritten from the line pointers and tuples (pd_lower {}, pd_upper {}, pd_special {}, pd_lsn {} = the latest checkpoint's REDO location, no prune hint, flags recomputed); the page is readable again",
                h.lower,
                h.upper,
                h.special,
                crate::format::types::Lsn(h.lsn)
            );
            let loss = format!("nothing: all {} rows kept", h.rows);
            let mut ids = vec![self.push(f, ActionKind::RebuildPageHeader { header: h }, file, Some(block), "block", effect, loss, Risk::Medium)];
            // The rebuilt page is not marked all-visible: neither may its map bit be.
            ids.extend(self.clear_vm(f, file, block));
            return Ok(ids);
        }
        if !self.opts.zero_pages {
            return Err("the line pointers are not consistent enough to rebuild the header, and --no-zero-pages forbids emptying the page".into());
        }
        let rows = tuples::rows_on_page(&page).map(|r| r as u32);
        let loss = match rows {
            Some(r) => format!("{r} rows on the page"),
            None => "every row on the page (how many is unknown: its line pointers are lost)".into(),
        };
        let effect = "the page is replaced by an empty one (the server accepts all-zero pages); its original bytes stay in the rollback store".into();
        let id = self.push(f, ActionKind::ZeroPage { rows }, file, Some(block), "block", effect, loss, Risk::High);
        self.check_references(f, file);
        Ok(vec![id])
    }

    /// A damaged page of an index: REINDEX builds the index again from its table, reading
    /// none of the old pages, and loses nothing; no page of it is edited. Once per index.
    /// None when the page is not an index's.
    fn reindex_instead(&mut self, f: &Finding) -> Option<Answer> {
        let file = f.at.file.as_deref()?;
        let base = file.split_once('.').map_or(file, |(b, _)| b);
        let ix = self.d.relations.get(base).filter(|r| r.kind == 'i')?.clone();
        self.post_repair_once(super::PostRepairKind::ReindexIndex, ix.database_oid, ix.relation_oid, &ix.qualified, f);
        Some(Ok(vec![]))
    }

    /// Add a statement for the server to run after apply, unless the plan has it already.
    /// `qualified` is schema.name, for people; the statement is built from the oids.
    fn post_repair_once(&mut self, what: super::PostRepairKind, database_oid: u32, relation_oid: u32, qualified: &str, f: &Finding) {
        if self.post_repair.iter().any(|p| p.what == what && p.relation_oid == relation_oid && p.database_oid == database_oid) {
            return;
        }
        let database = self.d.database_names.get(&database_oid).cloned().unwrap_or_else(|| format!("(database {database_oid})"));
        self.post_repair.push(super::PostRepair { what, database_oid, relation_oid, relation: qualified.to_string(), database, finding: f.code.to_string() });
    }

    /// Rows or values of the table `file` belongs to are removed: rows of other tables whose
    /// foreign keys referenced them are counted once the server runs.
    fn check_references(&mut self, f: &Finding, file: &str) {
        let base = file.split_once('.').map_or(file, |(b, _)| b);
        if let Some(t) = self.d.relations.get(base).filter(|t| t.kind == 'r').cloned() {
            self.post_repair_once(super::PostRepairKind::CheckReferences, t.database_oid, t.relation_oid, &t.qualified, f);
        }
    }

    /// tuple-chain-broken: the links mended on the page (bad redirects dead, heap-only or
    /// HOT-updated flags cleared where nothing leads), then REINDEX TABLE so that every row
    /// has index entries of its own. Two pointers to one version: no safe edit.
    pub fn repair_chains(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let ps: Vec<&tuples::TupleProblem> = self
            .by_page
            .get(&(file.to_string(), block))
            .map(|v| v.iter().filter(|p| p.kind == tuples::TupleProblemKind::ChainBroken).copied().collect())
            .unwrap_or_default();
        if ps.is_empty() {
            return Ok(vec![]);
        }
        let Some(items) = ps.iter().map(|p| p.chain_fix.map(|x| (p.offnum, x))).collect::<Option<Vec<_>>>() else {
            let first = ps.iter().find(|p| p.chain_fix.is_none()).map(|p| p.detail.clone()).unwrap_or_default();
            return Err(format!("{first}: which version is right cannot be told offline; check the rows by hand (pageinspect), then REINDEX TABLE"));
        };
        let base = file.split_once('.').map_or(file, |(b, _)| b);
        let Some(table) = self.d.relations.get(base).cloned() else {
            return Err("the table of this page cannot be named from the catalog, so its indexes cannot be listed for rebuilding".into());
        };
        let effect = format!(
            "{} mended: {}",
            count(items.len() as u64, "link"),
            items
                .iter()
                .map(|(o, x)| format!(
                    "{o} {}",
                    match x {
                        heap::ChainFix::DeadRedirect => "redirect made dead",
                        heap::ChainFix::ClearHeapOnly => "no longer heap-only",
                        heap::ChainFix::ClearHotUpdated => "no longer HOT-updated",
                        heap::ChainFix::SetUpdated => "marked as the result of an update",
                    }
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut ids = vec![self.push(
            f,
            ActionKind::RepairChains { items },
            file,
            Some(block),
            "block",
            effect,
            "nothing: every tuple stays; REINDEX TABLE gives each row its index entries".into(),
            Risk::Medium,
        )];
        ids.extend(self.clear_vm(f, file, block));
        self.post_repair_once(super::PostRepairKind::ReindexTable, table.database_oid, table.relation_oid, &table.qualified, f);
        Ok(ids)
    }

    /// tuple-attribute-invalid and tuple-toast-value-missing, per page: a value whose length
    /// is sound and whose column may be NULL is set NULL (the row stays); a tuple that cannot
    /// be decoded, or whose column is NOT NULL, is marked dead. Then REINDEX TABLE: index
    /// entries were built from the old values. Both findings of a page are answered by the
    /// first that comes (the second finds its tuples done).
    pub fn null_or_kill_values(&mut self, f: &Finding) -> Answer {
        let Some((file, block)) = self.page_target(f)? else { return Ok(vec![]) };
        let ours = [Code::TupleAttributeInvalid.to_string(), Code::TupleToastValueMissing.to_string()];
        let done: Vec<String> =
            self.actions.iter().filter(|a| ours.contains(&a.finding) && a.target.path == file && a.target.block == Some(block)).map(|a| a.id.clone()).collect();
        if !done.is_empty() {
            return Ok(done);
        }
        let ps: Vec<&tuples::TupleProblem> = self
            .by_page
            .get(&(file.to_string(), block))
            .map(|v| {
                v.iter().filter(|p| matches!(p.kind, tuples::TupleProblemKind::AttributeInvalid | tuples::TupleProblemKind::ToastMissing)).copied().collect()
            })
            .unwrap_or_default();
        if ps.is_empty() {
            return Ok(vec![]);
        }
        let base = file.split_once('.').map_or(file, |(b, _)| b);
        let Some(table) = self.d.relations.get(base).cloned() else {
            return Err("the table of this page cannot be named from the catalog, so its columns are not known".into());
        };
        let Some(page) = block_bytes(self.dd, file, block, self.bs(), self.c.blocks_per_segment) else { return Ok(vec![]) };
        // Per tuple: the attributes to set NULL, or None when it must die; TOAST pointers
        // whose values are whole are mended instead (the tuple keeps everything).
        let mut per_tuple: BTreeMap<u16, Option<Vec<u16>>> = BTreeMap::new();
        let mut mends: Vec<(u16, u16, Option<u8>)> = Vec::new();
        for p in &ps {
            if let Some(fix) = p.toast_fix {
                mends.push((p.offnum, fix.attnum, fix.method));
                continue;
            }
            let e = per_tuple.entry(p.offnum).or_insert_with(|| Some(vec![]));
            match (&p.column, e.as_mut()) {
                (Some(c), Some(v)) if c.nullable && !table.columns.is_empty() => v.push(c.attnum),
                _ => *e = None,
            }
        }
        let maxalign = if self.c.max_data_alignment == 4 { 4 } else { 8 };
        let mut nulls: Vec<(u16, Vec<u16>)> = Vec::new();
        let mut kills: Vec<u16> = Vec::new();
        for (o, attnums) in per_tuple {
            match attnums {
                Some(a) if bytes::null_attributes(&page, &[(o, a.clone())], &table.columns, self.c.major.number(), maxalign, block, false).is_ok() => {
                    nulls.push((o, a))
                }
                _ => kills.push(o),
            }
        }
        let mut ids = Vec::new();
        mends.retain(|(o, _, _)| !kills.contains(o));
        let values_change = !nulls.is_empty() || !kills.is_empty();
        let has_kills = !kills.is_empty();
        if !mends.is_empty() {
            let n = mends.len() as u64;
            let effect = format!(
                "{} mended from their values' first chunks (the compression method id the value itself holds; HEAP_HASEXTERNAL set): {}",
                count(n, "TOAST pointer"),
                mends
                    .iter()
                    .take(5)
                    .map(|(o, a, m)| format!("({block},{o}) attribute {a}{}", m.map(|m| format!(" method {m}")).unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            ids.push(self.push(
                f,
                ActionKind::FixToastPointers { items: mends, columns: table.columns.clone() },
                file,
                Some(block),
                "block",
                effect,
                "nothing: every value stays".into(),
                Risk::Low,
            ));
        }
        if !nulls.is_empty() {
            let n = nulls.len() as u64;
            let list: Vec<String> =
                nulls.iter().take(5).map(|(o, a)| format!("({block},{o}) attribute {}", a.iter().map(u16::to_string).collect::<Vec<_>>().join(","))).collect();
            let effect =
                format!("{} laid out again with the damaged values set NULL (the other values kept, byte for byte): the rows read again", count(n, "tuple"));
            let loss = format!(
                "the damaged value of {}: {}{} (the original tuples stay in the rollback store's copy of the page)",
                count(n, "row"),
                list.join(", "),
                if nulls.len() > 5 { ", ..." } else { "" }
            );
            ids.push(self.push(
                f,
                ActionKind::NullAttributes { items: nulls, columns: table.columns.clone() },
                file,
                Some(block),
                "block",
                effect,
                loss,
                Risk::Medium,
            ));
        }
        if !kills.is_empty() {
            let n = kills.len() as u64;
            let list: Vec<String> = kills.iter().take(5).map(|o| format!("({block},{o})")).collect();
            let effect = format!("{} whose values cannot be decoded or set NULL (a NOT NULL column) marked dead, as heap_force_kill does", count(n, "tuple"));
            let loss = format!(
                "{}: ctid {}{} (their bytes are kept in the rollback store's copy of the page)",
                count(n, "row"),
                list.join(", "),
                if kills.len() > 5 { ", ..." } else { "" }
            );
            ids.push(self.push(f, ActionKind::KillTuples { offnums: kills }, file, Some(block), "block", effect, loss, Risk::Medium));
        }
        // Only values that changed need their index entries built again.
        if values_change {
            ids.extend(self.clear_vm(f, file, block));
            self.post_repair_once(super::PostRepairKind::ReindexTable, table.database_oid, table.relation_oid, &table.qualified, f);
        }
        // Killed rows may be referenced; a value set NULL is an out-of-line one, which no key
        // a foreign key references is in practice (a key's index entry holds it whole).
        if has_kills {
            self.check_references(f, file);
        }
        Ok(ids)
    }

    /// page-lsn-past-wal: pd_lsn set back to the REDO location.
    pub fn page_lsn(&mut self, f: &Finding) -> Answer {
        let (Some(file), Some(block)) = (f.at.file.as_deref(), f.at.block) else { return Ok(vec![]) };
        let lsn = self.c.checkpoint.redo_lsn;
        let effect = format!(
            "pd_lsn set to {lsn}, the latest checkpoint's REDO location, which the server's WAL always reaches; the content stays; checksum recomputed"
        );
        let loss = "nothing, if the pd_lsn bytes were the damage; if WAL was lost from the end of pg_wal, the changes it held are lost already and this page may disagree with others".into();
        Ok(vec![self.push(f, ActionKind::SetPageLsn { lsn: lsn.0 }, file, Some(block), "block", effect, loss, Risk::Medium)])
    }

    /// page-checksum-failure: only with --accept-checksum-failures, the checksum of the
    /// content as it is stored.
    pub fn accept_checksum(&mut self, f: &Finding) -> Answer {
        if let Some(answer) = self.reindex_instead(f) {
            return answer;
        }
        let (Some(file), Some(block)) = (f.at.file.as_deref(), f.at.block) else { return Ok(vec![]) };
        if !self.opts.accept_checksum_failures {
            return Err("the page structure is sound; rewriting its checksum accepts content that may be wrong, so it is an explicit opt-in (--accept-checksum-failures); read the rows with ignore_checksum_failure=on first".into());
        }
        let Some(page) = block_bytes(self.dd, file, block, self.bs(), self.c.blocks_per_segment) else { return Ok(vec![]) };
        let checksum = crate::format::checksum::page_checksum(&page, block);
        let effect = "the checksum of the page's current content is stored: the server reads it again".into();
        let loss = "nothing, but THE CONTENT MAY BE WRONG: whatever changed the bytes is now accepted".into();
        Ok(vec![self.push(f, ActionKind::AcceptChecksum { checksum }, file, Some(block), "block", effect, loss, Risk::High)])
    }

    /// xact-status-lost: the missing pg_xact pages rebuilt from WAL and hint bits, the
    /// policy for the rest.
    pub fn synthesize_xact(&mut self, f: &Finding) -> Answer {
        let (Some(file), Some((a, b))) = (f.at.file.as_deref(), f.at.xids) else { return Ok(vec![]) };
        let tli = self.c.checkpoint.timeline_id;
        let wal = self.outcomes.get_or_init(|| self.d.wal_inventory.as_ref().map(|i| i.outcomes(tli)).unwrap_or_default());
        let kind = evidence::synthesize(self.dd, self.c, file, a, b, (&self.d.tuples.hints, wal), self.opts.xact_status).map_err(|e| e.to_string())?;
        let (scope, desc) = if self.dd.path(file).exists() { ("file", "extended") } else { ("absent", "created") };
        let mut kind = kind;
        if let ActionKind::SynthesizeXact { sources, policy_rows, .. } = &mut kind {
            if sources.from_policy > 0 {
                let policy: std::collections::HashSet<crate::format::types::Xid> = sources
                    .by_xid
                    .iter()
                    .filter(|r| r.2 == "policy")
                    .flat_map(|r| {
                        let n = r.1.wrapping_sub(r.0);
                        (0..=n).map(move |i| r.0.wrapping_add(i))
                    })
                    .collect();
                policy_rows.extend(
                    self.d
                        .tuples
                        .lost_refs
                        .iter()
                        .filter(|r| policy.contains(&r.0))
                        .take(super::MAX_POLICY_ROWS)
                        .map(|(x, f, b, o, w)| (f.clone(), *b, *o, *x, w.to_string())),
                );
            }
        }
        let ActionKind::SynthesizeXact { sources, policy_rows, .. } = &kind else { return Ok(vec![]) };
        // Every status from evidence: nothing is guessed, nothing lost.
        let loss = if sources.from_policy == 0 {
            "nothing: every status comes from evidence".to_string()
        } else {
            // The tuple versions whose visibility the policy decides, per relation.
            // by_xid runs from a to b in order: a binary search per tuple.
            let off = |x: crate::format::types::Xid| x.wrapping_sub(a);
            let guessed = |x: crate::format::types::Xid| {
                off(x) <= off(b) && {
                    let i = sources.by_xid.partition_point(|r| off(r.0) <= off(x));
                    i > 0 && sources.by_xid[i - 1].2 == "policy" && off(x) <= off(sources.by_xid[i - 1].1)
                }
            };
            let mut per: BTreeMap<String, u64> = BTreeMap::new();
            for (_, rel) in self.d.tuples.unhinted.iter().filter(|(x, _)| guessed(*x)) {
                let base = rel.split_once('.').map_or(rel.as_str(), |(b, _)| b);
                let name = self.d.relations.get(base).map(|r| r.qualified.clone()).unwrap_or_else(|| rel.clone());
                *per.entry(name).or_default() += 1;
            }
            let mut per: Vec<(String, u64)> = per.into_iter().collect();
            per.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let rels: Vec<String> = per.iter().take(8).map(|(n, k)| format!("{n} {k}")).collect();
            format!(
                "the statuses of {} come from the policy ({}), not from evidence: {}; tuple versions whose visibility the policy decides: {}{}; apply writes them ({}) to salvage.csv in the rollback store first, as found",
                count(sources.from_policy, "xid"),
                self.opts.xact_status.describe(),
                match self.opts.xact_status {
                    XactPolicy::Committed => "rows of aborted transactions may reappear, and rows deleted by them vanish",
                    _ => "rows those transactions inserted vanish if they had committed, and rows they deleted come back",
                },
                if per.is_empty() { "none found in the tables".to_string() } else { rels.join(", ") },
                if per.len() > 8 { format!(" and {} more relations", per.len() - 8) } else { String::new() },
                count(policy_rows.len() as u64, "tuple version")
            )
        };
        let files: Vec<String> = sources.wal_files.iter().map(|(f, n)| format!("{n} in {f}")).collect();
        let effect = format!(
            "{file} {desc}: {} statuses from commit/abort records in WAL{}, {} from hint bits, {} from the policy",
            sources.from_wal,
            if files.is_empty() {
                String::new()
            } else if files.len() <= 4 {
                format!(" ({})", files.join(", "))
            } else {
                format!(" ({} and {} more files)", files[..4].join(", "), files.len() - 4)
            },
            sources.from_hint_bits,
            sources.from_policy
        );
        Ok(vec![self.push(f, kind, file, None, scope, effect, loss, Risk::Medium)])
    }

    /// A damaged page WAL holds an exact image of: the image, once per page (several
    /// findings on one page share the action).
    pub fn restore_page(&mut self, f: &Finding, img: &crate::diagnose::images::PageImage) -> Vec<String> {
        let (Some(file), Some(block)) = (f.at.file.as_deref(), f.at.block) else { return vec![] };
        if let Some(a) =
            self.actions.iter().find(|a| matches!(a.kind, ActionKind::RestorePage { .. }) && a.target.path == file && a.target.block == Some(block))
        {
            return vec![a.id.clone()];
        }
        let effect =
            format!("block {block} becomes the page the full-page image at {} holds (read in {}), with LSN {} and its checksum", img.lsn, img.source, img.next);
        let kind = ActionKind::RestorePage { image: crate::format::bytes::hex(&img.image), lsn: img.next.0, source: format!("{} at {}", img.source, img.lsn) };
        let loss = "nothing: no later record touches the block (hint bits set since are set again)".into();
        vec![self.push(f, kind, file, Some(block), "block", effect, loss, Risk::Low)]
    }

    /// wal-lost, wal-checkpoint-unreadable: the missing segment, and each missing one after
    /// it, put back from a whole copy found in an archive (or in pg_wal under another
    /// name). Empty when there is no copy of the first.
    pub fn restore_wal(&mut self, f: &Finding) -> Answer {
        let Some(inv) = self.d.wal_inventory.clone() else { return Ok(vec![]) };
        let Ok(g) = crate::format::wal::WalGeometry::new(self.c.bytes_per_wal_segment, self.c.wal_block_size) else { return Ok(vec![]) };
        let Some((tli, first)) = f.at.file.as_deref().and_then(|p| p.strip_prefix("pg_wal/")).and_then(|n| g.parse_file_name(n)) else { return Ok(vec![]) };
        let mut ids = Vec::new();
        for segno in first..first.saturating_add(4096) {
            let rel = format!("{}/{}", crate::datadir::WAL_DIR, g.file_name(tli, segno));
            if segno != first && std::fs::symlink_metadata(self.dd.path(&rel)).is_ok() {
                break;
            }
            let Some(i) = inv.segment_copy(segno, tli) else { break };
            let Some(source) = inv.full_path(i).and_then(|p| std::path::absolute(p).ok()) else { break };
            let bytes = inv.content(i).map_err(|e| format!("{}: cannot be read: {e}", source.display()))?;
            if bytes.len() as u64 != g.seg_size as u64 {
                break;
            }
            let compression = inv.files[i].compression.map(|c| c.name().to_string());
            let effect = format!(
                "{rel} is put back from {}{}: recovery replays it",
                source.display(),
                compression.as_deref().map(|c| format!(" ({c} compressed)")).unwrap_or_default()
            );
            let kind = ActionKind::RestoreWalSegment { source: source.display().to_string(), sha256: super::sha256_hex(&bytes), compression };
            ids.push(self.push(f, kind, &rel, None, "absent", effect, "nothing".into(), Risk::Low));
        }
        Ok(ids)
    }

    /// wal-lost: the segment holding the REDO point, lost, rebuilt where the surviving WAL
    /// proves it held only the checkpoint's own records and a switch ([`super::gap`]).
    /// Empty when it cannot be proven (the reason goes with the reset's alternatives).
    pub fn rebuild_wal(&mut self, f: &Finding) -> Answer {
        // pg_control as found (not with the counters WAL would advance), and intact.
        let (Some(raw), true) = (self.control.and_then(|b| crate::format::control::ControlFile::parse(b).ok()), self.ev.intact()) else { return Ok(vec![]) };
        let Some(missing) = f.at.file.as_deref() else { return Ok(vec![]) };
        let Ok(proof) = super::gap::prove(self.dd, &raw, missing, self.d.late_min_lsn) else { return Ok(vec![]) };
        let effect = format!(
            "{} rebuilt from what proves its content: pg_control's copy of the {} checkpoint at {} with the records the checkpoint writes before it from the REDO point {}, and the switch record at {} that the next segment's first record points back to; recovery then replays every segment after it",
            proof.file,
            if proof.online { "online" } else { "shutdown" },
            proof.checkpoint,
            raw.checkpoint.redo_lsn,
            proof.switch
        );
        let kind = ActionKind::RebuildWalSegment {
            checkpoint: proof.checkpoint.0,
            switch: proof.switch.0,
            online: proof.online,
            sha256: super::sha256_hex(&proof.bytes),
        };
        let loss = "nothing: the lost segment held no other record (docs/wal-evidence.md)".into();
        Ok(vec![self.push(f, kind, &proof.file, None, "absent", effect, loss, Risk::Medium)])
    }

    /// not-corruption-wal-disk-full: pg_wal moved to --wal-dir; nothing else is a repair.
    pub fn relocate_wal(&mut self, f: &Finding) -> Answer {
        let Some(to) = self.opts.wal_dir.clone() else {
            return Err(
                "make room on pg_wal's file system by hand, or pass --wal-dir DIR (a directory on a file system with room) to plan moving pg_wal there".into(),
            );
        };
        let effect = format!("pg_wal's segments move to {to}; pg_wal becomes a symbolic link; recovery finishes there");
        Ok(vec![self.push(f, ActionKind::RelocateWal { to }, crate::datadir::WAL_DIR, None, "file", effect, "nothing".into(), Risk::Low)])
    }

    /// postmaster-pid-stale, wal-foreign-file: the file moved to the rollback store.
    pub fn move_aside(&mut self, f: &Finding, path: &str, effect: String) -> Answer {
        Ok(vec![self.push(f, ActionKind::MoveAside, path, None, "file", effect, "nothing".into(), Risk::Low)])
    }

    /// wal-lost, wal-checkpoint-unreadable with --reset-wal: one reset, as pg_resetwal does,
    /// starting past the highest page LSN.
    pub fn reset_wal(&mut self, f: &Finding) -> Result<Answer> {
        if self.actions.iter().any(|a| matches!(a.kind, ActionKind::ResetWal { .. })) {
            return Ok(Ok(vec![])); // one reset answers every WAL finding
        }
        let dd = self.dd;
        let listing = reset::Listing {
            wal: dd.list("pg_wal")?.into_iter().filter(|n| n != "archive_status" && n != "summaries").collect(),
            archive_status: dd.list("pg_wal/archive_status")?,
            summaries: dd.list("pg_wal/summaries")?,
            xact: dd.list("pg_xact")?,
            multi_offsets: dd.list("pg_multixact/offsets")?,
            multi_members: dd.list("pg_multixact/members")?,
        };
        // New WAL must start past the highest page LSN, or the first write of that page makes
        // every checkpoint fail (pg_resetwal leaves that to -l).
        let past_pages = past_page_lsn(self.c, self.d.max_page_lsn);
        let r = reset::compute(self.c, &listing, &reset::ResetOverrides { past_pages, ..Default::default() }, self.now).map_err(|e| Error::Refused {
            message: format!("cannot plan a WAL reset: {e}"),
            hint: "see docs/reset.md; the values can be given by hand with pg_resetwal".into(),
        })?;
        let cp = &r.control.checkpoint;
        // Only what differs from pg_control is an override: the rest is read from it again.
        let guessed = |field: &str| r.sources.iter().any(|s| s.field == field && s.source != "pg_control");
        let overrides = reset::ResetOverrides {
            next_xid: guessed("next_xid").then_some(cp.next_xid.xid()),
            multixact: guessed("next_multixact_id").then_some((cp.next_multixact_id, cp.oldest_multi_xid)),
            wal_file: Some(r.segment_name.clone()),
            ..Default::default()
        };
        let lost = self.d.findings.iter().filter_map(|f| (f.code == Code::WalLost).then_some(f.at.lsn).flatten()).min();
        let loss = match lost {
            Some(l) => {
                format!("every transaction whose WAL is at or after {l} (it never reaches the data files), and consistency between pages written after it")
            }
            None => "the transactions after the latest checkpoint that only WAL holds".into(),
        };
        // What the surviving WAL shows of it.
        let from = lost.unwrap_or(self.c.checkpoint.redo_lsn);
        let shown = self.d.wal_inventory.as_ref().and_then(|inv| {
            let names = |p: &str| self.d.relations.get(p).map(|r| r.qualified.clone());
            crate::diagnose::walloss::describe(&inv.lost_after(self.c.checkpoint.timeline_id, from), self.c, &names)
        });
        let loss = match shown {
            Some(s) => format!("{loss}; {s}"),
            None => loss,
        };
        let effect = format!(
            "pg_control rewritten as pg_resetwal does (state shut down, checkpoint at the start of {}, NextXID {}:{}), {} written with a shutdown checkpoint, {} moved out of pg_wal",
            r.segment_name,
            cp.next_xid.epoch(),
            cp.next_xid.xid(),
            r.segment_name,
            count(r.moves.len() as u64, "file")
        );
        let kind = ActionKind::ResetWal { overrides, wal_file: r.segment_name.clone(), moves: r.moves.clone(), time: self.now, sources: r.sources.clone() };
        Ok(Ok(vec![self.push(f, kind, crate::datadir::CONTROL_PATH, None, "file", effect, loss, Risk::High)]))
    }

    /// control-crc-mismatch, control-values-invalid, control-unreadable: pg_control written
    /// from the evidence (docs/control.md), or why it cannot be.
    /// relation-file-missing, index-page-invalid, sequence-page-invalid.
    /// A relation file the catalog expects and the disk lacks: an index is rebuilt by the
    /// server (REINDEX, nothing lost); a materialized view gets an empty file and is
    /// refreshed (nothing lost); a table gets an empty file (its rows are lost: the finding
    /// names putting the file back from a backup first) and its indexes are rebuilt; a TOAST
    /// table gets an empty file (its values are lost; the rows pointing at them are answered
    /// by their own findings). A sequence has no repair here.
    pub fn relation_file_missing(&mut self, f: &Finding) -> Answer {
        use super::PostRepairKind as K;
        let Some(m) = f.at.file.as_deref().and_then(|p| self.d.missing.iter().find(|m| m.path == p)).cloned() else { return Ok(vec![]) };
        match m.kind {
            'i' => {
                self.post_repair_once(K::ReindexIndex, m.database_oid, m.relation_oid, &m.qualified, f);
                Ok(vec![])
            }
            'S' if m.first_page.is_some() => Err("a sequence's page cannot be rebuilt offline (its last value is in it): DROP and CREATE the sequence with START past the highest value in use, or put the file back from a backup".into()),
            'r' | 'm' => {
                let (effect, loss, then) = if m.kind == 'm' {
                    (format!("{} is created empty; REFRESH MATERIALIZED VIEW {} fills it once the server runs", m.path, m.qualified), "nothing: the view's query makes its rows again".to_string(), K::RefreshMaterializedView)
                } else {
                    (format!("{} is created empty: {} reads as empty; REINDEX TABLE {} once the server runs", m.path, m.name, m.qualified), format!("every row of {} (put the file back from a backup instead, if one has it)", m.name), K::ReindexTable)
                };
                let id = self.push(f, ActionKind::CreateEmptyFile, &m.path, None, "absent", effect, loss, if m.kind == 'm' { Risk::Low } else { Risk::High });
                self.post_repair_once(then, m.database_oid, m.relation_oid, &m.qualified, f);
                if m.kind == 'r' {
                    self.post_repair_once(K::CheckReferences, m.database_oid, m.relation_oid, &m.qualified, f);
                }
                Ok(vec![id])
            }
            't' => {
                // The values are gone with the file. An empty TOAST table makes every pointer
                // into it a tuple-toast-value-missing finding of this same diagnosis (set NULL,
                // or the row killed for a NOT NULL column); REINDEX TABLE of its table also
                // rebuilds the TOAST index.
                let Some((owner, table)) = m.table.clone() else {
                    return Err("the table this TOAST table belongs to cannot be named from the catalog: put the file back from a backup".into());
                };
                let effect = format!("{} is created empty: no out-of-line value of {table} is left; REINDEX TABLE {table} once the server runs rebuilds its TOAST index", m.path);
                let loss = format!("every out-of-line value of {table} (put the file back from a backup instead, if one has it); the rows pointing at them are repaired by the tuple-toast-value-missing findings");
                let id = self.push(f, ActionKind::CreateEmptyFile, &m.path, None, "absent", effect, loss, Risk::High);
                self.post_repair_once(K::ReindexTable, m.database_oid, owner, &table, f);
                self.post_repair_once(K::CheckReferences, m.database_oid, owner, &table, f);
                Ok(vec![id])
            }
            _ => Err("a sequence's file cannot be made empty (the server needs its page): put it back from a backup, or DROP and CREATE the sequence with START past the highest value in use".into()),
        }
    }

    pub fn write_control(&mut self, f: &Finding) -> Answer {
        let ev = self.ev;
        let Some(t) = ev.rebuilt() else {
            return Err(format!(
                "pg_control cannot be rebuilt from evidence ({}): move it aside and plan --reset-wal to rebuild it from guesses (rehearse first)",
                ev.not_rebuildable.clone().unwrap_or_default()
            ));
        };
        let fields = ev.fields.clone();
        let changed: Vec<String> = fields
            .iter()
            .filter(|f| f.verdict == Verdict::Contradicted)
            .map(|f| format!("{} {} → {}", f.field, f.found.as_deref().unwrap_or("(absent)"), f.used))
            .collect();
        let image = crate::format::bytes::hex(&t.encode()[..crate::format::control::struct_size(t.major)]);
        let scope = if self.control.is_some() { "file" } else { "absent" };
        let effect = format!(
            "pg_control {} from evidence: checkpoint copy from the record at {} verbatim; {}; the server then starts from REDO {}",
            if ev.found.is_some() { "rewritten" } else { "written anew" },
            ev.checkpoint_record.unwrap_or_default(),
            match (ev.found.is_some(), changed.is_empty()) {
                (false, _) => format!(
                    "every value from the evidence listed under the finding (system identifier {}, NextXID {}, data checksums {})",
                    t.system_identifier,
                    t.checkpoint.next_xid,
                    if t.data_page_checksum_version > 0 { "on" } else { "off" }
                ),
                (true, true) => "no value changes (only the CRC and bytes the server never writes that way)".to_string(),
                (true, false) => format!("changed: {}", changed.join(", ")),
            },
            t.checkpoint.redo_lsn
        );
        let loss = "nothing: WAL is kept and replayed; settings the server records again at start may differ until it does".into();
        Ok(vec![self.push(f, ActionKind::WriteControl { image, fields }, crate::datadir::CONTROL_PATH, None, scope, effect, loss, Risk::Medium)])
    }
}
