//! Offline catalog reading: pg_database (shared), and per database pg_class, pg_namespace
//! and pg_index, found through the relation mapper files for mapped catalogs, so that a
//! relation file can be named `database app, table public.ziplog` instead of
//! `base/16397/1046635`. Only the fixed-width leading columns are decoded; their layout per
//! major is in [`layout`]. Tuple visibility is judged from hint bits, then pg_xact.
//! A damaged catalog is reported in `problems`, and names fall back to paths.

use crate::datadir::DataDir;
use crate::format::bytes::u32_at;
use crate::format::control::ControlFile;
use crate::format::page::{heap, verify_page, PageVerdict};
use crate::format::relmap;
use crate::format::types::xid_is_normal;
use crate::format::version::PgMajor;
use crate::format::xact::{segment_file_name, ClogGeometry, XactStatus};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

pub const PG_DATABASE: u32 = 1262;
pub const PG_CLASS: u32 = 1259;
pub const PG_NAMESPACE: u32 = 2615;
pub const PG_INDEX: u32 = 2610;
pub const PG_ATTRIBUTE: u32 = 1249;
pub const PG_AUTHID: u32 = 1260;
/// The bootstrap superuser's oid (BOOTSTRAP_SUPERUSERID).
pub const BOOTSTRAP_SUPERUSERID: u32 = 10;
/// Default tablespace oids.
pub const DEFAULTTABLESPACE: u32 = 1663;
pub const GLOBALTABLESPACE: u32 = 1664;

/// Byte offsets of the leading columns of the catalogs we read, per major (in the tuple's
/// data area, after t_hoff). Before PG12 the oid is a system column in the header.
pub mod layout {
    use crate::format::version::PgMajor;
    /// Offset where the first real column starts (after an `oid` column from PG12).
    pub fn first(major: PgMajor) -> usize {
        if major.number() >= 12 {
            4
        } else {
            0
        }
    }
    /// pg_class: relname, relnamespace, reltype, reloftype, relowner, relam, relfilenode,
    /// reltablespace, relpages, reltuples, relallvisible, [relallfrozen ≥18], reltoastrelid,
    /// relhasindex, relisshared, relpersistence, relkind.
    /// ..., relnatts, relchecks, [relhasoids ≤11], [relhaspkey 10], relhasrules,
    /// relhastriggers, relhassubclass, relrowsecurity, relforcerowsecurity, relispopulated,
    /// relreplident, relispartition, [relrewrite ≥11], relfrozenxid, relminmxid.
    pub struct Class {
        pub relname: usize,
        pub relnamespace: usize,
        pub relam: usize,
        pub relfilenode: usize,
        pub reltablespace: usize,
        pub reltoastrelid: usize,
        pub relpersistence: usize,
        pub relkind: usize,
        pub relnatts: usize,
        pub relfrozenxid: usize,
        pub relminmxid: usize,
    }
    pub fn class(major: PgMajor) -> Class {
        let f = first(major);
        let extra = if major.number() >= 18 { 4 } else { 0 };
        // From relnatts (int2 at 112) on: two int2, then 10 one-byte columns on 10 (with
        // relhasoids and relhaspkey, no relrewrite), 10 plus relrewrite on 11 (with
        // relhasoids), 9 plus relrewrite from 12; then the xids, 4-aligned.
        let frozen = match major.number() {
            10 => 128,
            11 => 132,
            _ => 128,
        };
        Class {
            relname: f,
            relnamespace: f + 64,
            relam: f + 80,
            relfilenode: f + 84,
            reltablespace: f + 88,
            reltoastrelid: f + 104 + extra,
            relpersistence: f + 110 + extra,
            relkind: f + 111 + extra,
            relnatts: f + 112 + extra,
            relfrozenxid: f + frozen + extra,
            relminmxid: f + frozen + 4 + extra,
        }
    }

    /// pg_attribute (no oid column on any major): attrelid, attname, atttypid, then per
    /// major the columns up to attisdropped. The server's own rows for pg_attribute (attlen,
    /// attalign of each of its columns) give these offsets; `tests/catalog.rs` checks the
    /// values read against the server on every major.
    pub struct Attribute {
        pub attrelid: usize,
        pub attname: usize,
        pub attlen: usize,
        pub attnum: usize,
        pub attalign: usize,
        pub attnotnull: usize,
        pub attisdropped: usize,
    }
    pub fn attribute(major: PgMajor) -> Attribute {
        // 10-15: attstattarget:i4 attlen:i2 attnum:i2 attndims:i4 attcacheoff:i4 atttypmod:i4
        //   attbyval, then (10-13) attstorage attalign | (14-15) attalign attstorage
        //   attcompression; attnotnull atthasdef [atthasmissing 11+] attidentity
        //   [attgenerated 12+] attisdropped.
        // 16-17: attlen attnum attcacheoff:i4 atttypmod:i4 attndims:i2 attbyval attalign ...
        // 18: no attcacheoff.
        let (attlen, attalign, attnotnull, attisdropped) = match major.number() {
            10 => (76, 94, 95, 98),
            11 => (76, 94, 95, 99),
            12 | 13 => (76, 94, 95, 100),
            14 | 15 => (76, 93, 96, 101),
            16 | 17 => (72, 87, 90, 95),
            _ => (72, 83, 86, 91),
        };
        Attribute { attrelid: 0, attname: 4, attlen, attnum: attlen + 2, attalign, attnotnull, attisdropped }
    }
}

/// A column of a table as pg_attribute describes it: what decoding its tuples needs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    pub layout: crate::format::page::attrs::Column,
    pub notnull: bool,
    pub dropped: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Relation {
    pub oid: u32,
    pub name: String,
    pub namespace: String,
    pub kind: char,
    pub persistence: char,
    pub relfilenode: u32,
    pub tablespace: u32,
    pub toast_oid: u32,
    /// pg_class.relam: the access method of an index (403 btree, 405 hash, 783 GiST, 2742
    /// GIN, 4000 SP-GiST, 3580 BRIN); of a table, heap (2, from 12) or 0.
    pub am: u32,
    /// Columns of the relation (pg_class.relnatts), dropped ones included.
    pub natts: u16,
    /// No unfrozen xid of the relation may precede these (0: none, as for an index).
    pub frozenxid: u32,
    pub minmxid: u32,
    /// Whether its pg_class row is visible on evidence (xmin frozen, hinted committed, or
    /// committed in pg_xact) rather than taken as live for want of a status. Only such a
    /// relation is expected to have files: one created by a transaction the crash cut short
    /// may have none.
    #[serde(skip)]
    pub certain: bool,
    /// Its columns, attnum 1.. in order, dropped ones included (tables, TOAST tables,
    /// materialized views; empty when pg_attribute does not give all of them).
    #[serde(skip)]
    pub columns: Vec<Column>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct DbCatalog {
    pub oid: u32,
    pub name: String,
    /// The directory of its default tablespace, relative to the data directory (`base/5`,
    /// or `pg_tblspc/<ts>/PG_../<oid>` for a database created WITH TABLESPACE): where its
    /// pg_filenode.map was found.
    pub dir: String,
    /// Its default tablespace's oid (1663 for base/).
    pub tablespace: u32,
    pub relations: Vec<Relation>,
    #[serde(skip)]
    by_node: HashMap<(u32, u32), usize>,
    #[serde(skip)]
    by_oid: HashMap<u32, usize>,
    /// index oid -> table oid
    #[serde(skip)]
    index_owner: HashMap<u32, u32>,
    /// toast oid -> table oid
    #[serde(skip)]
    toast_owner: HashMap<u32, u32>,
}

/// A relation file named in the database's own words.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RelName {
    pub database: String,
    pub schema: String,
    pub name: String,
    /// table, index, TOAST table, sequence, materialized view, ...
    pub kind: String,
    /// For an index or a TOAST table: the table it belongs to (schema.name).
    pub owner: Option<String>,
    pub fork: String,
}

impl std::fmt::Display for RelName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}.{}", self.kind, self.schema, self.name)?;
        if let Some(o) = &self.owner {
            write!(f, " (of table {o})")?;
        }
        write!(f, " in database {}", self.database)?;
        if self.fork != "main" {
            write!(f, ", {} fork", self.fork)?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Catalog {
    pub databases: Vec<DbCatalog>,
    /// Why some names could not be read (a damaged catalog); names then fall back to paths.
    pub problems: Vec<String>,
}

/// Commit status lookups in pg_xact, with segments cached.
pub struct Clog<'a> {
    dd: &'a DataDir,
    g: ClogGeometry,
    cache: HashMap<u32, Option<Vec<u8>>>,
    /// NextXID of the latest checkpoint: later xids' status may be only in WAL.
    checkpoint_next: u32,
}

impl<'a> Clog<'a> {
    pub fn new(dd: &'a DataDir, block_size: u32, checkpoint_next: u32) -> Clog<'a> {
        Clog { dd, g: ClogGeometry::new(block_size), cache: HashMap::new(), checkpoint_next }
    }
    /// Whether `xid` was assigned after the latest checkpoint.
    pub fn after_checkpoint(&self, xid: u32) -> bool {
        !crate::format::types::xid_precedes(xid, self.checkpoint_next)
    }
    /// None when the segment or page is missing.
    pub fn status(&mut self, xid: u32) -> Option<XactStatus> {
        let seg = self.g.segment_of(xid);
        let dd = self.dd;
        let bytes = self.cache.entry(seg).or_insert_with(|| dd.read(&format!("pg_xact/{}", segment_file_name(seg))).ok());
        self.g.status_in_segment(bytes.as_ref()?, xid).ok()
    }
}

/// Whether a catalog tuple is the live version: inserted by a committed transaction, not
/// deleted by one. Hint bits first, then pg_xact. After a crash, pg_xact on disk lags: the
/// status of transactions since the latest checkpoint is only in WAL, so those (marked in
/// progress on disk) are taken as committed, and [`live_rows`] keeps the newest version.
fn live(h: &heap::HeapTupleHeader, clog: &mut Clog) -> Option<bool> {
    use heap::infomask::*;
    // Some(true): committed on evidence; Some(false): taken as committed (no status).
    let committed = |x: u32, clog: &mut Clog| -> Option<bool> {
        if !xid_is_normal(x) {
            return Some(true);
        }
        match clog.status(x) {
            Some(XactStatus::Committed) => Some(true),
            Some(XactStatus::InProgress) | None if clog.after_checkpoint(x) => Some(false),
            _ => None,
        }
    };
    let xmin = if h.xmin_frozen() || h.has(XMIN_COMMITTED) {
        true
    } else if h.has(XMIN_INVALID) {
        return None;
    } else {
        committed(h.xmin, clog)?
    };
    if h.has(XMAX_INVALID) || h.xmax == 0 || h.has(XMAX_LOCK_ONLY) || h.has(XMAX_IS_MULTI) {
        return Some(xmin);
    }
    if h.has(XMAX_COMMITTED) {
        return None;
    }
    match committed(h.xmax, clog) {
        // Deleted: by a committed transaction, or (taken as committed) by one without status.
        Some(_) => None,
        None => Some(xmin),
    }
}

fn name_at(data: &[u8], off: usize) -> Option<String> {
    let b = data.get(off..off + 64)?;
    let end = b.iter().position(|&c| c == 0).unwrap_or(64);
    Some(String::from_utf8_lossy(&b[..end]).into_owned())
}

/// Live tuples of a heap relation file (all segments): (oid, data area).
/// Each with whether it is visible on evidence (see [`live`]).
fn live_rows(dd: &DataDir, rel: &str, major: PgMajor, c: &ControlFile, clog: &mut Clog, problems: &mut Vec<String>) -> Vec<(u32, Vec<u8>, bool)> {
    let out = live_versions(dd, rel, major, c, clog, problems);
    // Several versions of one row may look live (see `live`): keep the newest. Rows without
    // an oid (pg_index before PG12 has none) are all kept.
    let mut newest: HashMap<u32, usize> = HashMap::new();
    let mut keep = vec![true; out.len()];
    for (i, (oid, xmin, _, _)) in out.iter().enumerate() {
        if *oid == 0 {
            continue;
        }
        match newest.get(oid) {
            Some(&j) if crate::format::types::xid_precedes(*xmin, out[j].1) => keep[i] = false,
            Some(&j) => {
                keep[j] = false;
                newest.insert(*oid, i);
            }
            None => {
                newest.insert(*oid, i);
            }
        }
    }
    out.into_iter().zip(keep).filter(|(_, k)| *k).map(|((o, _, d, sure), _)| (o, d, sure)).collect()
}

/// Every version of a row that looks live: (oid or 0, xmin, data area, visible on evidence).
fn live_versions(dd: &DataDir, rel: &str, major: PgMajor, c: &ControlFile, clog: &mut Clog, problems: &mut Vec<String>) -> Vec<(u32, u32, Vec<u8>, bool)> {
    let bs = c.database_block_size as usize;
    let mut out: Vec<(u32, u32, Vec<u8>, bool)> = Vec::new();
    for segno in 0.. {
        let path = if segno == 0 { rel.to_string() } else { format!("{rel}.{segno}") };
        let Ok(bytes) = dd.read(&path) else {
            if segno == 0 {
                problems.push(format!("{path}: cannot be read"));
            }
            break;
        };
        for (i, page) in bytes.chunks_exact(bs).enumerate() {
            let blk = segno * c.blocks_per_segment + i as u32;
            match verify_page(page, blk, false) {
                Ok(PageVerdict::Valid) => {}
                Ok(PageVerdict::AllZero) => continue,
                _ => {
                    problems.push(format!("{path}: block {blk} is damaged; the rows on it are not used for names"));
                    continue;
                }
            }
            let Ok(tuples) = heap::tuples(page) else { continue };
            for t in tuples {
                let Some(h) = t.header else { continue };
                let Some(certain) = live(&h, clog) else { continue };
                let off = t.item.off as usize;
                let data = &page[off + h.hoff as usize..off + t.item.len as usize];
                let oid = if major.number() >= 12 {
                    u32_at(data, 0).unwrap_or(0)
                } else if h.has(heap::infomask::HASOID_OLD) && h.hoff as usize >= 4 + heap::SIZEOF_HEAP_TUPLE_HEADER {
                    u32_at(page, off + h.hoff as usize - 4).unwrap_or(0)
                } else {
                    0
                };
                out.push((oid, h.xmin, data.to_vec(), certain));
            }
        }
        if bytes.len() < bs * c.blocks_per_segment as usize {
            break;
        }
    }
    out
}

/// The columns of the relations `want` (oid -> relnatts), from pg_attribute: only complete
/// sets (attnum 1..=relnatts, each once, in the newest live version).
#[allow(clippy::too_many_arguments)]
fn columns_of(
    dd: &DataDir,
    dir: &str,
    local: &[(u32, u32)],
    major: PgMajor,
    c: &ControlFile,
    clog: &mut Clog,
    problems: &mut Vec<String>,
    want: &HashMap<u32, u16>,
) -> HashMap<u32, Vec<Column>> {
    let Some(&(_, node)) = local.iter().find(|(o, _)| *o == PG_ATTRIBUTE) else {
        problems.push(format!("{dir}/pg_filenode.map has no entry for pg_attribute"));
        return HashMap::new();
    };
    let l = layout::attribute(major);
    let i16_at = |d: &[u8], o: usize| d.get(o..o + 2).map(|b| i16::from_le_bytes([b[0], b[1]]));
    let mut found: HashMap<(u32, i16), (u32, Column)> = HashMap::new();
    for (_, xmin, d, _) in live_versions(dd, &format!("{dir}/{node}"), major, c, clog, problems) {
        let (Some(rel), Some(name), Some(len), Some(num), Some(&align), Some(&notnull), Some(&dropped)) = (
            u32_at(&d, l.attrelid),
            name_at(&d, l.attname),
            i16_at(&d, l.attlen),
            i16_at(&d, l.attnum),
            d.get(l.attalign),
            d.get(l.attnotnull),
            d.get(l.attisdropped),
        ) else {
            continue;
        };
        if num <= 0 || !want.contains_key(&rel) {
            continue;
        }
        let col = Column { name, layout: crate::format::page::attrs::Column { len, align: align as char }, notnull: notnull != 0, dropped: dropped != 0 };
        match found.get(&(rel, num)) {
            Some((x, _)) if crate::format::types::xid_precedes(xmin, *x) => {}
            _ => {
                found.insert((rel, num), (xmin, col));
            }
        }
    }
    let mut out = HashMap::new();
    for (&rel, &natts) in want {
        let cols: Option<Vec<Column>> = (1..=natts as i16).map(|n| found.remove(&(rel, n)).map(|(_, c)| c)).collect();
        if let Some(cols) = cols {
            out.insert(rel, cols);
        }
    }
    out
}

/// The name of the bootstrap superuser (the role initdb made, oid 10: `postgres` unless
/// initdb was given -U), read from pg_authid offline. Its first column is rolname.
pub fn bootstrap_superuser(dd: &DataDir, c: &ControlFile) -> Option<String> {
    let c = &c.with_usable_geometry().0;
    let major = c.major;
    let shared = relmap::parse(major, &dd.read("global/pg_filenode.map").ok()?).ok()?;
    let &(_, node) = shared.iter().find(|(o, _)| *o == PG_AUTHID)?;
    let mut clog = Clog::new(dd, c.database_block_size, c.checkpoint.next_xid.xid());
    let mut problems = Vec::new();
    live_rows(dd, &format!("global/{node}"), major, c, &mut clog, &mut problems)
        .into_iter()
        .find(|(oid, _, _)| *oid == BOOTSTRAP_SUPERUSERID)
        .and_then(|(_, data, _)| name_at(&data, layout::first(major)))
        .filter(|n| !n.is_empty())
}

impl Catalog {
    /// Read the catalogs of every database. Never fails: what cannot be read is a problem.
    pub fn load(dd: &DataDir, c: &ControlFile) -> Catalog {
        let major = c.major;
        let mut cat = Catalog::default();
        let mut clog = Clog::new(dd, c.database_block_size, c.checkpoint.next_xid.xid());
        let shared = match dd
            .read("global/pg_filenode.map")
            .map_err(|e| e.to_string())
            .and_then(|b| relmap::parse(major, &b).map_err(|e| format!("global/pg_filenode.map: {e}")))
        {
            Ok(m) => m,
            Err(e) => {
                cat.problems.push(e);
                return cat;
            }
        };
        let Some(&(_, dbnode)) = shared.iter().find(|(o, _)| *o == PG_DATABASE) else {
            cat.problems.push("global/pg_filenode.map has no entry for pg_database".into());
            return cat;
        };
        let first = layout::first(major);
        let version_dir = crate::check::version_dir(c);
        let tablespaces: Vec<String> = dd.list("pg_tblspc").unwrap_or_default();
        for (oid, data, _) in live_rows(dd, &format!("global/{dbnode}"), major, c, &mut clog, &mut cat.problems) {
            let Some(name) = name_at(&data, first) else { continue };
            // Its default tablespace is where its relation map is (pg_database's
            // dattablespace moves between majors; the map's place does not).
            let (dir, tablespace) = std::iter::once((format!("base/{oid}"), DEFAULTTABLESPACE))
                .chain(tablespaces.iter().filter_map(|t| Some((format!("pg_tblspc/{t}/{version_dir}/{oid}"), t.parse().ok()?))))
                .find(|(d, _)| dd.path(&format!("{d}/pg_filenode.map")).is_file())
                .unwrap_or((format!("base/{oid}"), DEFAULTTABLESPACE));
            let mut db = DbCatalog { oid, name, dir, tablespace, ..Default::default() };
            db.load(dd, c, &mut clog, &mut cat.problems);
            cat.databases.push(db);
        }
        cat
    }

    pub fn database(&self, oid: u32) -> Option<&DbCatalog> {
        self.databases.iter().find(|d| d.oid == oid)
    }

    /// Name the relation a file belongs to: `dir` as in RelFile (`base/5`, `global`,
    /// `pg_tblspc/<ts>/PG_../<db>`).
    pub fn name_file(&self, dir: &str, relfilenode: u32, fork: &str) -> Option<RelName> {
        let (db_oid, ts) = if dir == "global" {
            (0, GLOBALTABLESPACE)
        } else if let Some(db) = dir.strip_prefix("base/") {
            (db.parse().ok()?, DEFAULTTABLESPACE)
        } else {
            let parts: Vec<&str> = dir.split('/').collect();
            (parts.get(3)?.parse().ok()?, parts.get(1)?.parse().ok()?)
        };
        let (db, rel) = if db_oid == 0 {
            // Shared catalogs: listed in every database's pg_class; use the first.
            self.databases.iter().find_map(|d| d.by_node.get(&(GLOBALTABLESPACE, relfilenode)).map(|&i| (d, &d.relations[i])))?
        } else {
            let d = self.database(db_oid)?;
            let i = *d.by_node.get(&(ts, relfilenode))?;
            (d, &d.relations[i])
        };
        let kind = match rel.kind {
            'r' => "table",
            'i' | 'I' => "index",
            't' => "TOAST table",
            'S' => "sequence",
            'm' => "materialized view",
            'p' => "partitioned table",
            _ => "relation",
        };
        let owner_oid = match rel.kind {
            'i' | 'I' => db.index_owner.get(&rel.oid).copied(),
            't' => db.toast_owner.get(&rel.oid).copied(),
            _ => None,
        };
        let owner = owner_oid.and_then(|o| db.by_oid.get(&o)).map(|&i| format!("{}.{}", db.relations[i].namespace, db.relations[i].name));
        Some(RelName {
            database: if db_oid == 0 { "(shared)".into() } else { db.name.clone() },
            schema: rel.namespace.clone(),
            name: rel.name.clone(),
            kind: kind.into(),
            owner,
            fork: fork.into(),
        })
    }
}

/// The pg_class columns read past the name (see [`layout::Class`]).
struct Extra {
    am: u32,
    natts: u16,
    frozenxid: u32,
    minmxid: u32,
}

impl DbCatalog {
    /// The directory a relation of this database lives in, relative to the data directory.
    pub fn dir_of(&self, rel: &Relation, version_dir: &str) -> String {
        match rel.tablespace {
            GLOBALTABLESPACE => "global".to_string(),
            t if t == self.tablespace => self.dir.clone(),
            DEFAULTTABLESPACE => format!("base/{}", self.oid),
            t => format!("pg_tblspc/{t}/{version_dir}/{}", self.oid),
        }
    }

    /// The table an index or a TOAST table belongs to (its oid).
    pub fn owner_of(&self, rel: &Relation) -> Option<u32> {
        match rel.kind {
            'i' | 'I' => self.index_owner.get(&rel.oid).copied(),
            't' => self.toast_owner.get(&rel.oid).copied(),
            _ => None,
        }
    }

    fn load(&mut self, dd: &DataDir, c: &ControlFile, clog: &mut Clog, problems: &mut Vec<String>) {
        let major = c.major;
        let dir = self.dir.clone();
        let local = match dd
            .read(&format!("{dir}/pg_filenode.map"))
            .map_err(|e| e.to_string())
            .and_then(|b| relmap::parse(major, &b).map_err(|e| format!("{dir}/pg_filenode.map: {e}")))
        {
            Ok(m) => m,
            Err(e) => {
                problems.push(e);
                return;
            }
        };
        let shared: Vec<(u32, u32)> = dd.read("global/pg_filenode.map").ok().and_then(|b| relmap::parse(major, &b).ok()).unwrap_or_default();
        let Some(&(_, classnode)) = local.iter().find(|(o, _)| *o == PG_CLASS) else {
            problems.push(format!("{dir}/pg_filenode.map has no entry for pg_class"));
            return;
        };
        let l = layout::class(major);
        let mut rels = Vec::new();
        for (oid, d, certain) in live_rows(dd, &format!("{dir}/{classnode}"), major, c, clog, problems) {
            let (Some(name), Some(ns), Some(mut node), Some(mut ts), Some(toast)) =
                (name_at(&d, l.relname), u32_at(&d, l.relnamespace), u32_at(&d, l.relfilenode), u32_at(&d, l.reltablespace), u32_at(&d, l.reltoastrelid))
            else {
                continue;
            };
            let kind = d.get(l.relkind).copied().unwrap_or(b'?') as char;
            let persistence = d.get(l.relpersistence).copied().unwrap_or(b'?') as char;
            let more = Extra {
                am: u32_at(&d, l.relam).unwrap_or(0),
                natts: d.get(l.relnatts..l.relnatts + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0),
                frozenxid: u32_at(&d, l.relfrozenxid).unwrap_or(0),
                minmxid: u32_at(&d, l.relminmxid).unwrap_or(0),
            };
            if node == 0 {
                // A mapped catalog: its file number is in the map of its database or the shared one.
                if let Some(&(_, n)) = local.iter().find(|(o, _)| *o == oid) {
                    node = n;
                } else if let Some(&(_, n)) = shared.iter().find(|(o, _)| *o == oid) {
                    node = n;
                    ts = GLOBALTABLESPACE;
                }
            }
            if ts == 0 {
                ts = self.tablespace;
            }
            rels.push((oid, name, ns, node, ts, toast, kind, persistence, certain, more));
        }
        // Namespaces and indexes through pg_class itself.
        let node_of = |target: u32| rels.iter().find(|r| r.0 == target).map(|r| r.3);
        let mut nsp = BTreeMap::new();
        if let Some(n) = node_of(PG_NAMESPACE) {
            for (oid, d, _) in live_rows(dd, &format!("{dir}/{n}"), major, c, clog, problems) {
                if let Some(name) = name_at(&d, layout::first(major)) {
                    nsp.insert(oid, name);
                }
            }
        }
        if let Some(n) = node_of(PG_INDEX) {
            for (_, d, _) in live_rows(dd, &format!("{dir}/{n}"), major, c, clog, problems) {
                if let (Some(i), Some(t)) = (u32_at(&d, 0), u32_at(&d, 4)) {
                    self.index_owner.insert(i, t);
                }
            }
        }
        let mut columns =
            columns_of(dd, &dir, &local, major, c, clog, problems, &rels.iter().filter(|r| matches!(r.6, 'r' | 't' | 'm')).map(|r| (r.0, r.9.natts)).collect());
        for (oid, name, ns, node, ts, toast, kind, persistence, certain, more) in rels {
            let namespace = nsp.get(&ns).cloned().unwrap_or_else(|| format!("(namespace {ns})"));
            if toast != 0 {
                self.toast_owner.insert(toast, oid);
            }
            // Only relations with storage have files (views kept a relfilenode before PG12).
            if matches!(kind, 'r' | 'i' | 't' | 'S' | 'm') {
                self.by_node.insert((ts, node), self.relations.len());
            }
            self.by_oid.insert(oid, self.relations.len());
            let Extra { am, natts, frozenxid, minmxid } = more;
            self.relations.push(Relation {
                oid,
                name,
                namespace,
                kind,
                persistence,
                relfilenode: node,
                tablespace: ts,
                toast_oid: toast,
                am,
                natts,
                frozenxid,
                minmxid,
                certain,
                columns: columns.remove(&oid).unwrap_or_default(),
            });
        }
    }
}
