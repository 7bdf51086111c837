//! Every relation with storage has its files, and its first page is its access method's:
//! the catalog, read offline, against the disk.
//! A relation whose pg_class row is visible on evidence (not merely taken as live for want
//! of a commit status) and whose first segment is missing is a file the server will fail
//! to open ("could not open file ...: No such file or directory").

use crate::catalog::Catalog;
use crate::datadir::RelFile;
use std::collections::BTreeSet;

/// A relation file the catalog expects and the disk lacks, or whose first page is not its
/// access method's (an index's metapage, a sequence's page).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingFile {
    /// The first segment, relative to the data directory.
    pub path: String,
    /// None: the file is missing; Some: what is wrong with a page of it (block `block`).
    pub first_page: Option<String>,
    /// The damaged page (0: the first).
    pub block: u32,
    pub database_oid: u32,
    pub relation_oid: u32,
    /// pg_class.relkind: 'r', 'i', 't', 'S', 'm'.
    pub kind: char,
    /// The relation in the database's own words.
    pub name: String,
    /// schema.name, for SQL in the plan's post-repair list.
    pub qualified: String,
    /// The table an index or TOAST table belongs to: (oid, schema.name).
    pub table: Option<(u32, String)>,
}

impl MissingFile {
    /// The entry for relation `rel` of `db`, whose file in `dir` is `path`, named from the
    /// catalog (the path when it cannot be named).
    fn of(cat: &Catalog, db: &crate::catalog::DbCatalog, rel: &crate::catalog::Relation, dir: &str, path: String, first_page: Option<String>) -> MissingFile {
        let table = db.owner_of(rel).and_then(|o| db.relations.iter().find(|r| r.oid == o)).map(|t| (t.oid, format!("{}.{}", t.namespace, t.name)));
        MissingFile {
            name: cat.name_file(dir, rel.relfilenode, "main").map(|n| n.to_string()).unwrap_or_else(|| path.clone()),
            path,
            first_page,
            block: 0,
            database_oid: db.oid,
            relation_oid: rel.oid,
            kind: rel.kind,
            qualified: format!("{}.{}", rel.namespace, rel.name),
            table,
        }
    }
}

/// The relations with storage whose main fork (unlogged ones: init fork) has no first
/// segment among `files`.
pub fn missing(cat: &Catalog, files: &[RelFile], version_dir: &str) -> Vec<MissingFile> {
    let present: BTreeSet<(&str, u32, &str)> = files.iter().filter(|f| f.segno == 0).map(|f| (f.dir.as_str(), f.relfilenode, f.fork)).collect();
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for db in &cat.databases {
        for rel in &db.relations {
            // Temporary relations live and die with their session; views, composite types,
            // foreign and partitioned tables have no storage.
            if !rel.certain || rel.relfilenode == 0 || !matches!(rel.kind, 'r' | 'i' | 't' | 'S' | 'm') || !matches!(rel.persistence, 'p' | 'u') {
                continue;
            }
            let dir = db.dir_of(rel, version_dir);
            // Shared catalogs are listed in every database.
            if !seen.insert((dir.clone(), rel.relfilenode)) {
                continue;
            }
            let fork = if rel.persistence == 'u' { "init" } else { "main" };
            if present.contains(&(dir.as_str(), rel.relfilenode, fork)) {
                continue;
            }
            let path = format!("{dir}/{}{}", rel.relfilenode, if fork == "main" { String::new() } else { format!("_{fork}") });
            out.push(MissingFile::of(cat, db, rel, &dir, path, None));
        }
    }
    out
}

/// Indexes (of the built-in access methods) and sequences whose first page the server's
/// header checks accept but whose special space or metapage is not what their access method
/// writes: "index ... is not a btree", "bad magic number in sequence"; past the first page,
/// an index page whose special space is not its access method's, or btree siblings that
/// disagree (the first such page per index). A first page the
/// header checks reject is a page finding already; an empty file (an index being built
/// concurrently when the server stopped) has no first page.
pub fn bad_first_pages(
    dd: &crate::datadir::DataDir,
    cat: &Catalog,
    files: &[RelFile],
    version_dir: &str,
    bs: usize,
    blocks_per_segment: u32,
) -> Vec<MissingFile> {
    use crate::format::page::{special, verify_page, PageVerdict};
    let firsts: std::collections::BTreeMap<(&str, u32), &RelFile> =
        files.iter().filter(|f| f.segno == 0 && f.fork == "main" && f.len >= bs as u64).map(|f| ((f.dir.as_str(), f.relfilenode), f)).collect();
    // Each main fork's length in blocks, over its segments (one pass over the files).
    let mut blocks: std::collections::BTreeMap<(&str, u32), u64> = Default::default();
    for g in files.iter().filter(|g| g.fork == "main") {
        *blocks.entry((g.dir.as_str(), g.relfilenode)).or_default() += g.len / bs as u64;
    }
    let mut out = Vec::new();
    for db in &cat.databases {
        for rel in &db.relations {
            let index = rel.kind == 'i' && special::am_name(rel.am).is_some();
            if !rel.certain || rel.relfilenode == 0 || !(index || rel.kind == 'S') {
                continue;
            }
            let dir = db.dir_of(rel, version_dir);
            let Some(f) = firsts.get(&(dir.as_str(), rel.relfilenode)) else { continue };
            let Ok(bytes) = dd.read_range(&f.path(), 0, bs) else { continue };
            if !matches!(verify_page(&bytes, 0, false), Ok(PageVerdict::Valid)) {
                continue;
            }
            let nblocks = blocks.get(&(f.dir.as_str(), f.relfilenode)).copied().unwrap_or(0);
            let problem = if index {
                special::index_first_page_problem(rel.am, &bytes, nblocks.min(u32::MAX as u64) as u32)
            } else {
                special::sequence_page_problem(&bytes)
            };
            let (block, problem) = match problem {
                Some(p) => (0, p),
                None if index => match later_index_page_problem(dd, files, f, rel.am, bs, blocks_per_segment, nblocks.min(u32::MAX as u64) as u32) {
                    Some(found) => found,
                    None => continue,
                },
                None => continue,
            };
            let mut m = MissingFile::of(cat, db, rel, &dir, f.path(), Some(problem));
            m.block = block;
            out.push(m);
        }
    }
    out
}

/// The first page past block 0 of an index that is not its access method's, and why:
/// every segment read in 1 MB pieces; pages the header checks reject (page findings
/// already) and all-zero pages (extended, never written) are skipped. Then a btree's sibling
/// links against each other.
fn later_index_page_problem(
    dd: &crate::datadir::DataDir,
    files: &[RelFile],
    first: &RelFile,
    am: u32,
    bs: usize,
    per_seg: u32,
    nblocks: u32,
) -> Option<(u32, String)> {
    use crate::format::page::{special, verify_page, PageVerdict};
    let mut segs: Vec<&RelFile> = files.iter().filter(|g| g.fork == "main" && g.dir == first.dir && g.relfilenode == first.relfilenode).collect();
    segs.sort_by_key(|g| g.segno);
    let mut links = Vec::new();
    let piece = 128 * bs;
    for g in segs {
        let usable = (g.len - g.len % bs as u64) as usize;
        let mut at = 0;
        while at < usable {
            let len = piece.min(usable - at);
            let Ok(bytes) = dd.read_range(&g.path(), at as u64, len) else { break };
            for (i, page) in bytes.chunks_exact(bs).enumerate() {
                let block = (g.segno as u64 * per_seg as u64 + ((at / bs) + i) as u64).min(u32::MAX as u64) as u32;
                if block == 0 || !matches!(verify_page(page, block, false), Ok(PageVerdict::Valid)) {
                    continue;
                }
                let (problem, l) = special::index_page_problem(am, page, block, nblocks);
                if let Some(p) = problem {
                    return Some((block, p));
                }
                links.extend(l);
            }
            at += len;
        }
    }
    special::btree_sibling_problem(&links)
}

/// A relation of the catalog, for repairs the server finishes (REINDEX).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelRef {
    pub database_oid: u32,
    pub relation_oid: u32,
    /// schema.name.
    pub qualified: String,
    /// pg_class.relkind.
    pub kind: char,
    /// The layout of its columns (tables, TOAST tables, materialized views).
    pub columns: Vec<crate::format::page::attrs::Column>,
}

/// Every relation with storage whose pg_class row is visible on evidence, by its main
/// fork's path without segment number (`base/5/16390`).
pub fn relations(cat: &Catalog, version_dir: &str) -> std::collections::BTreeMap<String, RelRef> {
    let mut out = std::collections::BTreeMap::new();
    for db in &cat.databases {
        for rel in db.relations.iter().filter(|r| r.certain && matches!(r.kind, 'r' | 'i' | 't' | 'm' | 'S') && r.relfilenode != 0) {
            out.insert(
                format!("{}/{}", db.dir_of(rel, version_dir), rel.relfilenode),
                RelRef {
                    database_oid: db.oid,
                    relation_oid: rel.oid,
                    qualified: format!("{}.{}", rel.namespace, rel.name),
                    kind: rel.kind,
                    columns: rel.columns.iter().map(|c| c.layout).collect(),
                },
            );
        }
    }
    out
}
