//! Every relation with storage has its files: the catalog, read offline, against the disk.
//! A relation whose pg_class row is visible on evidence (not merely taken as live for want
//! of a commit status) and whose first segment is missing is a file the server will fail
//! to open ("could not open file ...: No such file or directory").

use crate::catalog::Catalog;
use crate::datadir::RelFile;
use std::collections::BTreeSet;

/// A relation file the catalog expects and the disk lacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingFile {
    /// The missing first segment, relative to the data directory.
    pub path: String,
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
            let name = cat.name_file(&dir, rel.relfilenode, "main").map(|n| n.to_string()).unwrap_or_else(|| path.clone());
            let table = db.owner_of(rel).and_then(|o| db.relations.iter().find(|r| r.oid == o)).map(|t| (t.oid, format!("{}.{}", t.namespace, t.name)));
            out.push(MissingFile {
                path,
                database_oid: db.oid,
                relation_oid: rel.oid,
                kind: rel.kind,
                name,
                qualified: format!("{}.{}", rel.namespace, rel.name),
                table,
            });
        }
    }
    out
}
