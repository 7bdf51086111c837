//! Offline catalog reading against the server's own pg_class, on every major.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use pgsalvage::catalog::Catalog;
use pgsalvage::datadir::DataDir;

fn catalog_matches(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create database app");
    c.sql_in("app", "create schema shop; create table shop.orders(id int primary key, note text); insert into shop.orders select g, repeat('x', 3000) from generate_series(1, 50) g; create index on shop.orders(note)");
    c.sql_in("app", "alter table shop.orders add column flag bool not null default true, add column gone numeric, add column d timestamptz; alter table shop.orders drop column gone");
    c.pgbench_init(1);
    c.sql("update pgbench_branches set bbalance = 1"); // a dead catalog-independent version
    c.sql_in("app", "alter table shop.orders rename to orders2; alter table shop.orders2 rename to orders"); // dead pg_class versions
    let q = "select c.oid, c.relname, n.nspname, c.relkind, pg_relation_filenode(c.oid), c.reltablespace, c.relam, c.relnatts, c.relfrozenxid, c.relminmxid from pg_class c join pg_namespace n on n.oid = c.relnamespace where pg_relation_filenode(c.oid) is not null order by 1";
    let server: Vec<(String, String)> = ["postgres", "app"].iter().map(|db| (db.to_string(), c.sql_in(db, q))).collect();
    let qa = "select a.attrelid, a.attnum, a.attname, a.attlen, a.attalign, a.attnotnull, a.attisdropped from pg_attribute a join pg_class c on c.oid = a.attrelid where c.relkind in ('r', 't', 'm') and a.attnum > 0 order by 1, 2";
    let server_columns: Vec<(String, String)> = ["postgres", "app"].iter().map(|db| (db.to_string(), c.sql_in(db, qa))).collect();
    let paths: Vec<(String, String)> = [
        ("postgres", "pgbench_accounts"),
        ("postgres", "pgbench_accounts_pkey"),
        ("app", "shop.orders"),
        ("postgres", "pg_class"),
        ("postgres", "pg_database"),
    ]
    .iter()
    .map(|(db, t)| (t.to_string(), c.sql_in(db, &format!("select pg_relation_filepath('{t}')"))))
    .collect();
    let toast = c.sql_in("app", "select pg_relation_filepath(reltoastrelid) from pg_class where relname = 'orders'");
    c.stop();
    let dd = DataDir::open(&c.data).unwrap();
    let (ctl, _, _) = dd.control().unwrap();
    let cat = Catalog::load(&dd, &ctl);
    assert!(cat.problems.is_empty(), "PG{major}: {:?}", cat.problems);
    for (db, rows) in server {
        let d = cat.databases.iter().find(|d| d.name == db).unwrap_or_else(|| panic!("PG{major}: no database {db}"));
        let mut ours: Vec<String> = d
            .relations
            .iter()
            .filter(|r| r.relfilenode != 0 && "ritSm".contains(r.kind))
            .map(|r| {
                format!(
                    "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
                    r.oid,
                    r.name,
                    r.namespace,
                    r.kind,
                    r.relfilenode,
                    if r.tablespace == 1663 { 0 } else { r.tablespace },
                    r.am,
                    r.natts,
                    r.frozenxid,
                    r.minmxid
                )
            })
            .collect();
        ours.sort_by_key(|l| l.split('|').next().unwrap().parse::<u32>().unwrap());
        let theirs: Vec<String> = rows.lines().map(str::to_string).collect();
        assert_eq!(ours, theirs, "PG{major} database {db}");
    }
    for (db, rows) in server_columns {
        let d = cat.databases.iter().find(|d| d.name == db).unwrap();
        let ours: Vec<String> = d
            .relations
            .iter()
            .filter(|r| "rtm".contains(r.kind))
            .flat_map(|r| {
                assert_eq!(r.columns.len(), r.natts as usize, "PG{major} {db}: columns of {}", r.name);
                r.columns.iter().enumerate().map(move |(i, c)| {
                    format!(
                        "{}|{}|{}|{}|{}|{}|{}",
                        r.oid,
                        i + 1,
                        c.name,
                        c.layout.len,
                        c.layout.align,
                        if c.notnull { "t" } else { "f" },
                        if c.dropped { "t" } else { "f" }
                    )
                })
            })
            .collect();
        let mut ours = ours;
        ours.sort_by_key(|l| {
            let mut it = l.split('|');
            (it.next().unwrap().parse::<u32>().unwrap(), it.next().unwrap().parse::<u32>().unwrap())
        });
        let theirs: Vec<String> = rows.lines().map(str::to_string).collect();
        assert_eq!(ours.len(), theirs.len(), "PG{major} database {db}: column count");
        assert_eq!(ours, theirs, "PG{major} database {db}: columns");
    }
    let name = |p: &str| {
        let (dir, node) = p.rsplit_once('/').unwrap();
        cat.name_file(dir, node.parse().unwrap(), "main").unwrap().to_string()
    };
    assert_eq!(name(&paths[0].1), "table public.pgbench_accounts in database postgres");
    assert_eq!(name(&paths[1].1), "index public.pgbench_accounts_pkey (of table public.pgbench_accounts) in database postgres");
    assert_eq!(name(&paths[2].1), "table shop.orders in database app");
    assert_eq!(name(&paths[3].1), "table pg_catalog.pg_class in database postgres");
    assert_eq!(name(&paths[4].1), "table pg_catalog.pg_database in database (shared)");
    assert!(name(&toast).starts_with("TOAST table pg_toast.pg_toast_") && name(&toast).ends_with("(of table shop.orders) in database app"), "{}", name(&toast));
}

per_major!(catalog_matches: catalog_pg10 = 10, catalog_pg11 = 11, catalog_pg12 = 12, catalog_pg13 = 13, catalog_pg14 = 14, catalog_pg15 = 15, catalog_pg16 = 16, catalog_pg17 = 17, catalog_pg18 = 18);
