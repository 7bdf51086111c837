//! `pgsalvage check` on real clusters of every major: no false positives (fresh, pgbench,
//! tablespace, after a crash), each injected damage found at the exact file and block/LSN
//! with nothing else reported, and the data directory untouched.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use pgsalvage::datadir::{DataDir, DirWalSource};
use pgsalvage::format::control::ControlFile;
use pgsalvage::format::types::Lsn;
use pgsalvage::format::wal::{WalGeometry, WalReader};
use serde_json::Value;
use std::path::Path;

fn check_json(data: &Path, extra: &[&str]) -> (i32, Value) {
    let out = pgsalvage().args(["check", "--json", "-D"]).arg(data).args(extra).output().unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

fn findings(v: &Value) -> Vec<Value> {
    v["findings"].as_array().unwrap().clone()
}

/// A cluster with WAL across several segments after the REDO point, crashed (kill -9),
/// plus a table in a tablespace. Returns it stopped.
fn crashed(major: u32) -> (Cluster, [String; 3]) {
    let opts = InitOpts { checksums: true, wal_segsize_mb: if major >= 11 { Some(1) } else { None } };
    let mut c = Cluster::new(major, opts);
    let ts = c.scratch.path().join("ts");
    std::fs::create_dir(&ts).unwrap();
    chown_postgres(&ts);
    c.start();
    c.sql(&format!("create tablespace ts location '{}'", ts.display()));
    c.sql("create table in_ts tablespace ts as select g, md5(g::text) from generate_series(1, 20000) g");
    c.sql("checkpoint");
    c.pgbench_init(if major >= 11 { 2 } else { 4 });
    c.pgbench_run(200);
    let names = [c.relpath("pgbench_accounts"), c.relpath("pgbench_branches"), c.relpath("in_ts")];
    c.crash();
    (c, names)
}

fn healthy(major: u32) {
    // A fresh cluster straight from initdb.
    let fresh = Cluster::new(major, InitOpts::default());
    let (code, v) = check_json(&fresh.data, &[]);
    assert_eq!((code, findings(&v)), (0, vec![]), "PG{major}: fresh cluster");
    let (c, _) = crashed(major);
    let ins = inspect_json(&c.data);
    assert_eq!(ins["layout"]["tablespaces"].as_array().unwrap().len(), 1, "PG{major}: {}", ins["layout"]["tablespaces"]);
    assert_eq!(ins["layout"]["tablespaces"][0]["version_dirs"][0].as_str().unwrap(), format!("PG_{major}_{}", ins["control"]["catalog_version_no"]));
    let before = tree_state(&c.data);
    let (code, v) = check_json(&c.data, &[]);
    assert_eq!(findings(&v), Vec::<Value>::new(), "PG{major}: a crashed but healthy cluster has no findings");
    assert_eq!(code, 0);
    assert!(v["pages"]["blocks"].as_u64().unwrap() > 3000);
    assert_eq!(v["pages"]["checksums_verified"], true);
    assert!(v["pages"]["files"].as_u64().unwrap() > 900);
    assert_eq!(v["wal"]["checkpoint_record_ok"], true);
    assert!(v["wal"]["records"].as_u64().unwrap() > 100);
    assert_eq!(before, tree_state(&c.data), "PG{major}: check changed the data directory");
    // The tablespace's files were scanned too.
    let (_, only) = check_json(&c.data, &["--only", "pages", "-j", "1"]);
    assert_eq!(only["pages"]["blocks"], v["pages"]["blocks"]);
    assert!(only.get("wal").is_none());
}

fn one_finding(v: &Value, code: &str) -> Value {
    let f = findings(v);
    assert_eq!(f.len(), 1, "expected exactly one finding {code}, got {}", serde_json::to_string_pretty(&f).unwrap());
    assert_eq!(f[0]["code"], code);
    f[0].clone()
}

fn damage(major: u32) {
    let (c, [accounts, branches, in_ts]) = crashed(major);
    assert!(in_ts.starts_with("pg_tblspc/"));
    let work = Scratch::new("damage");
    let copy = |name: &str| {
        let d = work.path().join(name);
        run_ok(std::process::Command::new("cp").arg("-a").arg(&c.data).arg(&d));
        d
    };

    // Scribbled page header.
    let d = copy("header");
    scribble(&d.join(&accounts), 5 * 8192 + 12, &[0xFF, 0x7F]);
    let (code, v) = check_json(&d, &[]);
    let f = one_finding(&v, "page-invalid-header");
    assert_eq!((f["file"].as_str().unwrap(), f["block"].as_u64().unwrap()), (accounts.as_str(), 5), "PG{major}");
    assert_eq!(code, 1);

    // A flipped tuple byte under checksums, in the tablespace.
    let d = copy("flip");
    let p = d.join(&in_ts);
    let b = std::fs::read(&p).unwrap();
    scribble(&p, 7 * 8192 + 7000, &[b[7 * 8192 + 7000] ^ 0x04]);
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "page-checksum-failure");
    assert_eq!((f["file"].as_str().unwrap(), f["block"].as_u64().unwrap()), (in_ts.as_str(), 7), "PG{major}");
    // The tablespace is shared by the copies (pg_tblspc holds a symbolic link): undo.
    scribble(&p, 7 * 8192 + 7000, &[b[7 * 8192 + 7000]]);

    // A partial block at the end of a relation file.
    let d = copy("partial");
    let p = d.join(&branches);
    let len = std::fs::metadata(&p).unwrap().len();
    std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(len - 100).unwrap();
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "relation-partial-block");
    assert_eq!(f["file"], branches.as_str());

    // Deleted and truncated pg_xact segment.
    let d = copy("clog-deleted");
    std::fs::remove_file(d.join("pg_xact/0000")).unwrap();
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "xact-segment-missing");
    assert_eq!(f["file"], "pg_xact/0000");
    let d = copy("clog-truncated");
    std::fs::OpenOptions::new().write(true).open(d.join("pg_xact/0000")).unwrap().set_len(0).unwrap();
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "xact-segment-short");
    assert_eq!(f["file"], "pg_xact/0000");

    // WAL: the chain from REDO, to pick a segment and a record in the middle.
    let ctl = ControlFile::parse(&std::fs::read(c.data.join("global/pg_control")).unwrap()).unwrap();
    let g = WalGeometry::new(ctl.bytes_per_wal_segment, ctl.wal_block_size).unwrap();
    let dd = DataDir::open(&c.data).unwrap();
    let mut r = WalReader::new(DirWalSource::new(&dd, g, 1).unwrap(), ctl.major, g, Some(ctl.system_identifier));
    let (mut lsn, mut chain) = (ctl.checkpoint.redo_lsn, Vec::new());
    while let Ok(rr) = r.read_record(lsn, None) {
        chain.push((rr.record.lsn, rr.end));
        lsn = rr.next;
    }
    let first_seg = g.segno(ctl.checkpoint.redo_lsn);
    let last_seg = g.segno(chain.last().unwrap().0);
    assert!(last_seg >= first_seg + 2, "PG{major}: need WAL over 3 segments");

    // A deleted WAL segment after the REDO point.
    let mid = first_seg + 1;
    let d = copy("wal-deleted");
    let name = g.file_name(1, mid);
    std::fs::remove_file(d.join("pg_wal").join(&name)).unwrap();
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "wal-segment-missing");
    assert_eq!(f["file"].as_str().unwrap(), format!("pg_wal/{name}"));
    let stop: Lsn = f["lsn"].as_str().unwrap().parse().unwrap();
    assert_eq!(g.segno(stop), mid, "PG{major}: stops in the missing segment");

    // A torn record in the middle of the chain: bytes inside it overwritten.
    let (rec, end) = chain[chain.len() / 2];
    let d = copy("wal-torn");
    let seg = g.segno(rec);
    let off = g.offset_in_segment(Lsn(rec.0 + 16.min(end.0 - rec.0 - 1))) as u64;
    scribble(&d.join("pg_wal").join(g.file_name(1, seg)), off, &[0xDE, 0xAD]);
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "wal-record-broken");
    assert_eq!(f["lsn"].as_str().unwrap(), rec.to_string(), "PG{major}: {f}");

    // A segment of another cluster (another system identifier) dropped into pg_wal.
    let other = Cluster::new(major, InitOpts { checksums: false, wal_segsize_mb: if major >= 11 { Some(1) } else { None } });
    let other_seg = std::fs::read_dir(other.data.join("pg_wal")).unwrap().map(|e| e.unwrap().path()).find(|p| p.is_file()).unwrap();
    let d = copy("wal-foreign");
    let foreign = g.file_name(1, last_seg + 5);
    std::fs::copy(&other_seg, d.join("pg_wal").join(&foreign)).unwrap();
    let (_, v) = check_json(&d, &[]);
    let f = one_finding(&v, "wal-foreign-segment");
    assert_eq!(f["file"].as_str().unwrap(), format!("pg_wal/{foreign}"));
}

per_major!(healthy: healthy_pg10 = 10, healthy_pg11 = 11, healthy_pg12 = 12, healthy_pg13 = 13, healthy_pg14 = 14, healthy_pg15 = 15, healthy_pg16 = 16, healthy_pg17 = 17, healthy_pg18 = 18);
per_major!(damage: damage_pg10 = 10, damage_pg11 = 11, damage_pg12 = 12, damage_pg13 = 13, damage_pg14 = 14, damage_pg15 = 15, damage_pg16 = 16, damage_pg17 = 17, damage_pg18 = 18);

/// A pg_xact segment cut short in the middle of the xid window (more than one clog page
/// of xids: 40,000 transactions).
#[test]
fn clog_segment_truncated_mid_window() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    let script = c.scratch.path().join("xid.sql");
    std::fs::write(&script, "select txid_current();\n").unwrap();
    run_ok(
        std::process::Command::new(PgBin::system_tool("pgbench")).args(["-n", "-c", "2", "-t", "20000", "-f"]).arg(&script).arg("-h").arg(&c.sockdir).args([
            "-p",
            &c.port.to_string(),
            "-U",
            "postgres",
            "postgres",
        ]),
    );
    c.sql("checkpoint");
    c.stop();
    let (_, v) = check_json(&c.data, &[]);
    assert_eq!(findings(&v), Vec::<Value>::new());
    assert!(v["xact"]["pages_needed"].as_u64().unwrap() >= 2);
    std::fs::OpenOptions::new().write(true).open(c.data.join("pg_xact/0000")).unwrap().set_len(8192).unwrap();
    let (_, v) = check_json(&c.data, &[]);
    let f = one_finding(&v, "xact-segment-short");
    assert_eq!(f["xids"][0], 32768, "the first xid of page 1");
    assert_eq!(f["offset"], 8192);
    // The server agrees: the status of an xid on the lost page cannot be read.
    let (up, log) = c.try_start();
    assert!(!up && log.contains("could not access status of transaction"), "{log}");
}
