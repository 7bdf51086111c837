//! Damaged tuple headers (issue 17), each kind verify_heapam reports, judged by the server.
//! A damaged xmax: a multixact id outside the cluster's window, with or without
//! the XMAX_COMMITTED and XMAX_INVALID hints (which VACUUM's freeze does not trust: it
//! fails with "MultiXactId ... does no longer exist -- apparent wraparound" or "found
//! multixact ... from before relminmxid"), and xmax hint bits that contradict each other on
//! an in-range xmax. Judged by the server: VACUUM (FREEZE) fails on the damage as found and
//! succeeds after apply, every row counted against the truth.
#![allow(clippy::unwrap_used)]

mod common;
use common::{pgsalvage, Cluster, InitOpts};
use std::path::Path;

/// Set the first tuple of block 0's xmax and its xmax infomask bits (the other xmax bits
/// cleared), as a stray write would; the checksum made right.
fn set_xmax(file: &Path, xmax: u32, bits: u16, checksums: bool) {
    let mut b = std::fs::read(file).unwrap();
    let page = &mut b[..8192];
    let lp = u32::from_le_bytes(page[24..28].try_into().unwrap());
    let off = (lp & 0x7FFF) as usize;
    page[off + 4..off + 8].copy_from_slice(&xmax.to_le_bytes());
    let im = (u16::from_le_bytes(page[off + 20..off + 22].try_into().unwrap()) & !0x1CD0) | bits;
    page[off + 20..off + 22].copy_from_slice(&im.to_le_bytes());
    if checksums {
        let sum = pgsalvage::format::checksum::page_checksum(page, 0);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(file, b).unwrap();
}

/// Edit tuple `item` of block 0 in place; the checksum made right.
fn edit_tuple(file: &Path, item: usize, checksums: bool, edit: impl FnOnce(&mut [u8])) {
    let mut b = std::fs::read(file).unwrap();
    let page = &mut b[..8192];
    let lp = u32::from_le_bytes(page[24 + 4 * (item - 1)..28 + 4 * (item - 1)].try_into().unwrap());
    let off = (lp & 0x7FFF) as usize;
    edit(&mut page[off..]);
    if checksums {
        let sum = pgsalvage::format::checksum::page_checksum(page, 0);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(file, b).unwrap();
}

/// The header against its table (verify_heapam's check_tuple_header, and its xid checks
/// against relfrozenxid and relminmxid): natts past the table's, t_hoff moved, an unhinted
/// xmin older than relfrozenxid, a multixact xmax older than relminmxid. diagnose must find
/// what pg_amcheck finds, at the same block and offset (PostgreSQL 14+ runs verify_heapam).
fn header_damage(major: u32) {
    let checksums = major % 2 == 0;
    let mut c = Cluster::new(major, InitOpts { checksums, ..Default::default() });
    c.start();
    c.sql("create table h (id int primary key, a text, b int); insert into h select g, case when g % 3 = 0 then null else md5(g::text) end, g from generate_series(1, 300) g");
    c.sql("create table f (id int primary key, v text); insert into f select g, md5(g::text) from generate_series(1, 300) g");
    // A multixact: a row locked by a transaction and updated by its subtransaction.
    c.sql("create table r (id int primary key, v text); insert into r select g, md5(g::text) from generate_series(1, 300) g");
    c.sql("begin; select * from r where id = 300 for key share; savepoint s; update r set v = 'x' where id = 300; commit");
    for t in ["h", "f", "r"] {
        c.sql(&format!("vacuum (freeze) {t}"));
    }
    let frozen: u32 = c.sql("select relfrozenxid::text::bigint from pg_class where relname = 'f'").parse().unwrap();
    let minmxid: u32 = c.sql("select relminmxid::text::bigint from pg_class where relname = 'r'").parse().unwrap();
    assert!(minmxid > 1, "PG{major}: no multixact was made (relminmxid {minmxid})");
    let (h, f, r) = (c.relpath("h"), c.relpath("f"), c.relpath("r"));
    c.stop();
    let what = format!("PostgreSQL {major}{}", if checksums { ", checksums" } else { "" });
    let set16 = |t: &mut [u8], at: usize, v: u16| t[at..at + 2].copy_from_slice(&v.to_le_bytes());
    let get16 = |t: &[u8], at: usize| u16::from_le_bytes([t[at], t[at + 1]]);
    edit_tuple(&c.data.join(&h), 1, checksums, |t| set16(t, 18, (get16(t, 18) & !0x07FF) | 2047));
    edit_tuple(&c.data.join(&h), 2, checksums, |t| set16(t, 18, (get16(t, 18) & !0x07FF) | 67));
    edit_tuple(&c.data.join(&h), 4, checksums, |t| t[22] -= 8);
    // xmin older than relfrozenxid, unfrozen and unhinted; xmax a multixact older than relminmxid.
    edit_tuple(&c.data.join(&f), 5, checksums, |t| {
        t[0..4].copy_from_slice(&(frozen - 5).to_le_bytes());
        set16(t, 20, get16(t, 20) & !0x0300);
    });
    edit_tuple(&c.data.join(&r), 7, checksums, |t| {
        t[4..8].copy_from_slice(&(minmxid - 1).to_le_bytes());
        set16(t, 20, (get16(t, 20) & !0x1CD0) | MULTI);
    });
    c.start();
    let amcheck: Vec<String> = if major >= 14 {
        c.sql("create extension if not exists amcheck");
        c.sql("select c.relname || ' ' || v.blkno || ' ' || v.offnum from pg_class c, verify_heapam(c.oid) v where c.relname in ('h', 'f', 'r') order by c.relname, v.blkno, v.offnum").lines().map(str::to_string).collect()
    } else {
        vec![]
    };
    c.stop();
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let v = common::diagnose_damaged(&c.data, &what);
    let mut ours: Vec<String> = vec![];
    for fd in v["findings"].as_array().unwrap().iter().filter(|x| x["severity"] == "error") {
        let t = [("h", &h), ("f", &f), ("r", &r)].iter().find(|(_, p)| fd["file"] == p.as_str()).map(|(t, _)| *t).unwrap_or("?");
        for e in fd["evidence"].as_array().unwrap() {
            if let Some(o) = e.as_str().and_then(|e| e.strip_prefix("ctid (0,")).and_then(|e| e.split(')').next()) {
                ours.push(format!("{t} 0 {o}"));
            }
        }
        let code = fd["code"].as_str().unwrap();
        let want = match t {
            "h" => "tuple-header-invalid",
            "f" => "tuple-xid-before-horizon",
            _ => "tuple-multixact-out-of-range",
        };
        assert_eq!(code, want, "{what}: {fd}");
    }
    ours.sort();
    for (kind, at) in [
        ("natts 2047 (table has 3)", "h 0 1"),
        ("natts 67 (table has 3)", "h 0 2"),
        ("t_hoff moved back by 8", "h 0 4"),
        ("unhinted xmin before relfrozenxid", "f 0 5"),
        ("multixact xmax before relminmxid", "r 0 7"),
    ] {
        let a = if major >= 14 {
            if amcheck.iter().any(|x| x == at) {
                "found, same block and offset"
            } else {
                "not found"
            }
        } else {
            "(no verify_heapam before 14)"
        };
        let d = if ours.iter().any(|x| x == at) { "found, same block and offset" } else { "NOT FOUND" };
        table_row(major, kind, a, d);
    }
    let expected: Vec<String> = ["f 0 5", "h 0 1", "h 0 2", "h 0 4", "r 0 7"].iter().map(|s| s.to_string()).collect();
    assert_eq!(ours, expected, "{what}: diagnose");
    if major >= 14 {
        assert_eq!(amcheck, expected, "{what}: pg_amcheck's verify_heapam finds these, at the same block and offset");
    }
    plan_rehearse_apply(&w, &d, &what);
    c.start();
    for (t, rows) in [("h", "297"), ("f", "300"), ("r", "300")] {
        c.sql(&format!("vacuum (freeze) {t}"));
        assert_eq!(c.sql(&format!("select count(*) from {t}")), rows, "{what}: {t}");
    }
    if major >= 14 {
        assert_eq!(c.sql("select count(*) from pg_class c, verify_heapam(c.oid) v where c.relkind in ('r', 'm', 't')"), "0", "{what}");
    }
    c.sql("checkpoint");
    c.stop();
}

#[test]
fn damaged_headers_are_found_as_amcheck_finds_them() {
    for major in common::some_majors(&[12, 15, 17]) {
        header_damage(major);
    }
}

/// One row of docs/AMCHECK.md (scripts/amcheck-table collects them from --nocapture runs):
/// the major, the kind of damage, what verify_heapam (or the server) says, what diagnose says.
pub fn table_row(major: u32, kind: &str, amcheck: &str, diagnose: &str) {
    eprintln!("AMCHECK-ROW|{major}|{kind}|{amcheck}|{diagnose}");
}

/// verify_heapam's (block, offset) complaints for table `t` (14+), as "0/5 0/7".
fn verify_heapam(c: &Cluster, t: &str) -> String {
    let (ok, rows, err) = c.try_sql(&format!("select blkno || '/' || offnum || ': ' || msg from verify_heapam('{t}') order by blkno, offnum"));
    if !ok {
        // verify_heapam itself can fail on the damage ("MultiXactId 4 has not been created yet").
        format!("fails: {}", err.lines().next().unwrap_or("").trim_start_matches("ERROR:  "))
    } else if rows.trim().is_empty() {
        "nothing".into()
    } else {
        rows.lines().collect::<Vec<_>>().join("; ")
    }
}

const COMMITTED: u16 = 0x0400;
const INVALID: u16 = 0x0800;
const MULTI: u16 = 0x1000;

/// plan (exit 0), rehearse ("safe to apply"), apply without a snapshot, in `w` on data
/// directory `d`.
fn plan_rehearse_apply(w: &Path, d: &str, what: &str) {
    let (code, out) = run(w, &["plan", "-D", d, "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    let (code, out) = run(w, &["rehearse", "-D", d, "--plan", "plan.json"]);
    assert!(code == 0 && out.contains("safe to apply"), "{what}: {out}");
    let (code, out) = run(w, &["apply", "-D", d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
}

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = pgsalvage().current_dir(dir).args(args).stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn xmax_damage(major: u32) {
    let checksums = major % 2 == 1;
    let mut c = Cluster::new(major, InitOpts { checksums, ..Default::default() });
    c.start();
    // (table, xmax, bits, what diagnose must call it)
    let cases: Vec<(&str, u32, u16, &str)> = vec![
        ("m1", 4_000_000_000, MULTI | COMMITTED | INVALID, "tuple-multixact-out-of-range"),
        ("m2", 4, MULTI | COMMITTED, "tuple-multixact-out-of-range"),
        ("m3", 4_000_000_000, MULTI | INVALID, "tuple-multixact-out-of-range"),
        ("h1", 0, COMMITTED | INVALID, "tuple-hint-contradiction"),
    ];
    for (t, ..) in &cases {
        c.sql(&format!("create table {t} (id int primary key, v text); insert into {t} select g, md5(g::text) from generate_series(1, 300) g"));
        c.sql(&format!("vacuum {t}"));
    }
    // An in-range xmax for the contradiction: a transaction that aborted (so the row is
    // visible whatever the hints would make of it once pg_xact decides).
    c.sql("begin; create table scratch (x int); rollback");
    let aborted: u32 = c.sql("select txid_current()").parse::<u32>().unwrap() - 1;
    let paths: Vec<String> = cases.iter().map(|(t, ..)| c.relpath(t)).collect();
    c.stop();
    for ((_, xmax, bits, _), p) in cases.iter().zip(&paths) {
        set_xmax(&c.data.join(p), if *xmax == 0 { aborted } else { *xmax }, *bits, checksums);
    }
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let what = format!("PostgreSQL {major}{}", if checksums { ", checksums" } else { "" });
    // The server's own verdict on the damage as found (the multixact cases).
    c.start();
    let mut server: Vec<String> = vec![];
    if major >= 14 {
        c.sql("create extension if not exists amcheck");
    }
    for (t, _, bits, _) in &cases {
        let amcheck = if major >= 14 { verify_heapam(&c, t) } else { "(no verify_heapam before 14)".into() };
        if bits & MULTI != 0 {
            let (ok, _, err) = c.try_sql(&format!("vacuum (freeze) {t}"));
            assert!(!ok, "{what}: VACUUM (FREEZE) {t} succeeded on the damage: {err}");
            server.push(format!("{amcheck}; VACUUM (FREEZE): {}", err.lines().next().unwrap_or("").trim_start_matches("ERROR:  ")));
        } else {
            server.push(amcheck);
        }
    }
    c.stop();
    let v = common::diagnose_damaged(&c.data, &what);
    for (((t, xmax, bits, code), p), amcheck) in cases.iter().zip(&paths).zip(&server) {
        let fs: Vec<&serde_json::Value> = v["findings"].as_array().unwrap().iter().filter(|f| f["file"] == p.as_str()).collect();
        assert_eq!(fs.len(), 1, "{what}: {p}: {fs:?}");
        assert_eq!(fs[0]["code"], *code, "{what}: {p}");
        let kind = match *t {
            "h1" => "xmax hints COMMITTED and INVALID both set (in-range xmax)".to_string(),
            _ => format!(
                "multixact xmax {xmax} with hints {}",
                [(COMMITTED, "COMMITTED"), (INVALID, "INVALID")].iter().filter(|(b, _)| bits & b != 0).map(|(_, n)| *n).collect::<Vec<_>>().join("+")
            ),
        };
        table_row(major, &kind, amcheck, &format!("{} at 0/1", code));
        // The starred repair is one the plan builds.
        assert!(fs[0]["repairs"][0]["least_loss"].as_bool().unwrap(), "{what}: {p}");
    }
    plan_rehearse_apply(&w, &d, &what);
    c.start();
    for (t, ..) in &cases {
        c.sql(&format!("vacuum (freeze) {t}"));
        assert_eq!(c.sql(&format!("select count(*), sum(id) from {t}")), "300|45150", "{what}: {t}");
    }
    c.sql("checkpoint");
    c.stop();
}

#[test]
fn damaged_xmax_is_repaired() {
    for major in common::some_majors(&[12, 15, 17]) {
        xmax_damage(major);
    }
}

/// Update chains broken on a page, as PostgreSQL's own verify_heapam tests break them: a
/// redirect retargeted at an unused line pointer or another redirect, an ordinary tuple marked heap-only, a
/// never-updated tuple marked HOT-updated. diagnose finds at least every offset verify_heapam
/// reports (16+ checks chains); the plan mends the links and rebuilds the indexes; every row
/// is then found by an index scan, verify_heapam is clean, VACUUM (FREEZE) succeeds.
fn broken_chains(major: u32) {
    let mut c = Cluster::new(major, InitOpts { checksums: true, ..Default::default() });
    c.start();
    c.sql("create table c (id int primary key, v int) with (fillfactor = 50); insert into c select g, g from generate_series(1, 100) g");
    for _ in 0..3 {
        c.sql("update c set v = v + 1 where id <= 10");
    }
    // Index vacuuming forced: dead line pointers become unused (14+ may skip it otherwise).
    c.sql(if major >= 12 { "vacuum (index_cleanup true) c" } else { "vacuum c" });
    let rel = c.relpath("c");
    c.stop();
    let path = c.data.join(&rel);
    let mut b = std::fs::read(&path).unwrap();
    let lp = |b: &[u8], i: usize| u32::from_le_bytes(b[24 + 4 * i..28 + 4 * i].try_into().unwrap());
    let lower = u16::from_le_bytes([b[12], b[13]]) as usize;
    let n = (lower - 24) / 4;
    let flags = |raw: u32| (raw >> 15) & 3;
    let redirects: Vec<usize> = (0..n).filter(|&i| flags(lp(&b, i)) == 2).collect();
    assert!(redirects.len() >= 2, "PG{major}: pruned HOT chains leave redirects");
    let redirect = redirects[0];
    // Retargeted at an unused line pointer where one is left (14+ truncates trailing ones),
    // else at another redirect.
    let (other, other_kind) = match (0..n).find(|&i| flags(lp(&b, i)) == 0) {
        Some(u) => (u, "unused"),
        None => (redirects[1], "redirect"),
    };
    let target = (lp(&b, redirect) & 0x7FFF) as usize - 1;
    // Ordinary, never-updated tuples: normal, not heap-only, xmax 0.
    let plain: Vec<usize> = (0..n)
        .filter(|&i| {
            let raw = lp(&b, i);
            let off = (raw & 0x7FFF) as usize;
            flags(raw) == 1 && u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) == 0 && u16::from_le_bytes([b[off + 18], b[off + 19]]) & 0x8000 == 0
        })
        .collect();
    let (a, z) = (plain[plain.len() / 2], plain[plain.len() / 2 + 1]);
    let new_lp = (lp(&b, redirect) & !0x7FFF) | (other as u32 + 1);
    b[24 + 4 * redirect..28 + 4 * redirect].copy_from_slice(&new_lp.to_le_bytes());
    for (i, bit) in [(a, 0x8000u16), (z, 0x4000u16)] {
        let off = (lp(&b, i) & 0x7FFF) as usize;
        let im2 = u16::from_le_bytes([b[off + 18], b[off + 19]]) | bit;
        b[off + 18..off + 20].copy_from_slice(&im2.to_le_bytes());
    }
    let sum = pgsalvage::format::checksum::page_checksum(&b[..8192], 0);
    b[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, b).unwrap();
    let what = format!("PostgreSQL {major}: redirect {} -> {other_kind} {}, {} marked heap-only, {} marked HOT-updated", redirect + 1, other + 1, a + 1, z + 1);
    c.start();
    let amcheck: Vec<u32> = if major >= 16 {
        c.sql("create extension if not exists amcheck");
        c.sql("select offnum from verify_heapam('c') order by 1").lines().map(|l| l.parse().unwrap()).collect()
    } else {
        vec![]
    };
    c.stop();
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let v = common::diagnose_damaged(&c.data, &what);
    let out = v.to_string();
    let chain = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "tuple-chain-broken").unwrap_or_else(|| panic!("{what}: {out}"));
    let ours: Vec<u32> =
        chain["evidence"].as_array().unwrap().iter().filter_map(|e| e.as_str()?.strip_prefix("ctid (0,")?.split(')').next()?.parse().ok()).collect();
    for (kind, o) in [
        (format!("redirect retargeted at {other_kind} line pointer"), redirect + 1),
        ("heap-only tuple nothing leads to (the redirect's old target)".to_string(), target + 1),
        ("ordinary tuple marked heap-only".to_string(), a + 1),
        ("never-updated tuple marked HOT-updated".to_string(), z + 1),
    ] {
        assert!(ours.contains(&(o as u32)), "{what}: diagnose misses offset {o}: {ours:?}");
        let am = if major >= 16 {
            if amcheck.contains(&(o as u32)) {
                "found, same offset"
            } else {
                "not found"
            }
        } else {
            "(no chain checks before 16)"
        };
        table_row(major, &kind, am, "tuple-chain-broken, same offset");
    }
    for o in &amcheck {
        assert!(ours.contains(o), "{what}: verify_heapam reports offset {o}, diagnose does not: ours {ours:?}, amcheck {amcheck:?}");
    }
    plan_rehearse_apply(&w, &d, &what);
    c.start();
    c.sql("reindex table c");
    assert_eq!(c.sql("select count(*), sum(id) from c"), "100|5050", "{what}");
    for id in 1..=100 {
        let n = c.sql(&format!("set enable_seqscan = off; set enable_bitmapscan = off; select count(*) from c where id = {id}"));
        assert_eq!(n.lines().last().unwrap(), "1", "{what}: id {id} by index");
    }
    if major >= 14 {
        c.sql("create extension if not exists amcheck");
        assert_eq!(c.sql("select count(*) from verify_heapam('c')"), "0", "{what}");
    }
    c.sql("vacuum (freeze) c");
    c.sql("checkpoint");
    c.stop();
    eprintln!("{what}: diagnose {ours:?}, verify_heapam {amcheck:?}");
}

#[test]
fn broken_update_chains_are_mended() {
    for major in common::some_majors(&[12, 16, 17, 18]) {
        broken_chains(major);
    }
}

/// A version whose inserter aborted, HOT-updated into a version hinted committed
/// (verify_heapam 16+'s "tuple with aborted xmin ... was updated to produce a tuple ... with
/// committed xmin"): by its xmin hint (`hinted`), or with no hint and an xid pg_xact says
/// aborted (verify_heapam judges only this one: it does not follow an XMIN_INVALID hint).
/// Found at the same offset; which version is right cannot be told offline, so the plan
/// names it and builds nothing.
fn aborted_updater(major: u32, hinted: bool) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table a (id int primary key, v int) with (fillfactor = 50); insert into a select g, g from generate_series(1, 50) g");
    c.sql("update a set v = v + 1 where id = 7");
    let aborted: u64 = c.sql("begin; select txid_current(); insert into a values (1000, 1000); rollback").lines().find_map(|l| l.trim().parse().ok()).unwrap();
    // Hint bits set on every version; pg_xact on disk.
    c.sql("select count(*) from a");
    c.sql("checkpoint");
    let rel = c.relpath("a");
    c.stop();
    let path = c.data.join(&rel);
    let mut b = std::fs::read(&path).unwrap();
    // The HOT-updated tuple: infomask2 HEAP_HOT_UPDATED.
    let lower = u16::from_le_bytes([b[12], b[13]]) as usize;
    let updated = (0..(lower - 24) / 4)
        .find(|&i| {
            let raw = u32::from_le_bytes(b[24 + 4 * i..28 + 4 * i].try_into().unwrap());
            let off = (raw & 0x7FFF) as usize;
            (raw >> 15) & 3 == 1 && u16::from_le_bytes([b[off + 18], b[off + 19]]) & 0x4000 != 0
        })
        .expect("a HOT-updated tuple");
    let off = (u32::from_le_bytes(b[24 + 4 * updated..28 + 4 * updated].try_into().unwrap()) & 0x7FFF) as usize;
    let mut im = u16::from_le_bytes([b[off + 20], b[off + 21]]) & !0x0300;
    if hinted {
        im |= 0x0200;
    } else {
        b[off..off + 4].copy_from_slice(&(aborted as u32).to_le_bytes());
    }
    b[off + 20..off + 22].copy_from_slice(&im.to_le_bytes());
    // Through the server's buffers (a stray write in memory): checksummed (ignored where
    // the cluster has no checksums).
    let sum = pgsalvage::format::checksum::page_checksum(&b[..8192], 0);
    b[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, b).unwrap();
    let how = if hinted { "hinted aborted".to_string() } else { format!("set to aborted xid {aborted}, unhinted") };
    let what = format!("PostgreSQL {major}: the xmin of HOT-updated offset {} {how}", updated + 1);
    c.start();
    let amcheck: Vec<String> = if major >= 16 {
        c.sql("create extension if not exists amcheck");
        c.sql("select offnum || ': ' || msg from verify_heapam('a') order by 1").lines().map(str::to_string).collect()
    } else {
        vec![]
    };
    c.stop();
    let v = common::diagnose_damaged(&c.data, &what);
    let chain = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "tuple-chain-broken").unwrap_or_else(|| panic!("{what}: {v}"));
    let ours: Vec<String> =
        chain["evidence"].as_array().unwrap().iter().filter_map(|e| e.as_str()?.strip_prefix("ctid (0,").map(|e| e.replace(')', ""))).collect();
    let said = format!("{}: tuple with aborted xmin", updated + 1);
    assert!(ours.iter().any(|e| e.starts_with(&said)), "{what}: {ours:?}");
    let am = match (major >= 16, amcheck.iter().any(|e| e.starts_with(&said))) {
        (false, _) => "(no chain checks before 16)",
        (true, true) => "found, same offset",
        (true, false) => "not found (verify_heapam does not judge a tuple hinted XMIN_INVALID)",
    };
    if major >= 16 && !hinted {
        assert_eq!(am, "found, same offset", "{what}: verify_heapam says {amcheck:?}");
    }
    let kind = format!("aborted version HOT-updated into a committed one ({})", if hinted { "by the hint bit" } else { "by pg_xact" });
    table_row(major, &kind, am, "tuple-chain-broken, same offset (named, not repaired)");
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert!(code == 1 && out.contains("cannot be told offline"), "{what}: {out}");
    eprintln!("{what}: diagnose {ours:?}, verify_heapam {amcheck:?}");
}

#[test]
fn aborted_updater_is_named_not_guessed() {
    for major in common::some_majors(&[12, 16, 18]) {
        aborted_updater(major, true);
        aborted_updater(major, false);
    }
}

/// A heap-only tuple a HOT update leads to, with HEAP_UPDATED lost (verify_heapam 16+:
/// "tuple is heap only, but not the result of an update"): found at verify_heapam's offset,
/// mended (the flag set back), no row lost. Beside it, a row locked FOR UPDATE carries
/// HEAP_XMAX_LOCK_ONLY with HEAP_KEYS_UPDATED, as the server writes it: no finding (an
/// unreleased draft of verify_heapam called that corruption).
fn flag_damage(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table f (id int primary key, v int) with (fillfactor = 50); insert into f select g, g from generate_series(1, 50) g");
    c.sql("update f set v = v + 1 where id = 7");
    c.sql("begin; select * from f where id = 20 for update; commit");
    c.sql("select count(*) from f");
    c.sql("checkpoint");
    let rel = c.relpath("f");
    let successor: usize = c.sql("select (ctid::text::point)[1]::int from f where id = 7").parse().unwrap();
    c.stop();
    let path = c.data.join(&rel);
    let mut b = std::fs::read(&path).unwrap();
    let off = |b: &[u8], item: usize| (u32::from_le_bytes(b[24 + 4 * (item - 1)..28 + 4 * (item - 1)].try_into().unwrap()) & 0x7FFF) as usize;
    let o1 = off(&b, successor);
    let im = u16::from_le_bytes([b[o1 + 20], b[o1 + 21]]) & !0x2000; // HEAP_UPDATED lost
    b[o1 + 20..o1 + 22].copy_from_slice(&im.to_le_bytes());
    let locked = off(&b, 20);
    assert_eq!(u16::from_le_bytes([b[locked + 18], b[locked + 19]]) & 0x2000, 0x2000, "PG{major}: FOR UPDATE sets HEAP_KEYS_UPDATED");
    let sum = pgsalvage::format::checksum::page_checksum(&b[..8192], 0);
    b[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&path, b).unwrap();
    let what = format!("PostgreSQL {major}: HEAP_UPDATED lost on heap-only offset {successor}");
    c.start();
    let amcheck: Vec<u32> = if major >= 14 {
        c.sql("create extension if not exists amcheck");
        c.sql("select offnum from verify_heapam('f') order by 1").lines().map(|l| l.parse().unwrap()).collect()
    } else {
        vec![]
    };
    c.stop();
    let v = common::diagnose_damaged(&c.data, &what);
    let mut ours: Vec<(String, u32)> = vec![];
    for fd in v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] != "info") {
        for e in fd["evidence"].as_array().unwrap() {
            if let Some(o) = e.as_str().and_then(|e| e.strip_prefix("ctid (0,")).and_then(|e| e.split(')').next()).and_then(|o| o.parse().ok()) {
                ours.push((fd["code"].as_str().unwrap().to_string(), o));
            }
        }
    }
    assert_eq!(ours, vec![("tuple-chain-broken".to_string(), successor as u32)], "{what}");
    let am = match (major >= 16, amcheck.contains(&(successor as u32))) {
        (false, _) => "(verify_heapam checks it from 16)",
        (true, true) => "found, same offset",
        (true, false) => "not found",
    };
    if major >= 16 {
        assert_eq!(amcheck, vec![successor as u32], "{what}: verify_heapam");
    } else if major >= 14 {
        assert!(amcheck.is_empty(), "{what}: verify_heapam {amcheck:?}");
    }
    table_row(major, "heap-only tuple with HEAP_UPDATED lost", am, "tuple-chain-broken, same offset (mended; no row lost)");
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    plan_rehearse_apply(&w, &d, &what);
    c.start();
    c.sql("reindex table f");
    assert_eq!(c.sql("select count(*), sum(v) from f"), "50|1276", "{what}");
    assert_eq!(c.sql("set enable_seqscan = off; set enable_bitmapscan = off; select v from f where id = 7").lines().last().unwrap(), "8", "{what}");
    if major >= 14 {
        assert_eq!(c.sql("select count(*) from verify_heapam('f')"), "0", "{what}");
    }
    c.sql("vacuum (freeze) f");
    c.sql("checkpoint");
    c.stop();
}

#[test]
fn damaged_header_flags_are_mended() {
    for major in common::some_majors(&[12, 16, 17]) {
        flag_damage(major);
    }
}
