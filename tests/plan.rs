//! `pgsalvage plan` and `review` on real clusters: the garbage-xid tuple gets a tuple repair
//! (never pg_xact) after which the server counts every row and VACUUM (FREEZE) succeeds; a
//! scribbled header is rebuilt and every row is readable; pg_xact rebuilt from evidence
//! matches the truth better than zero-filled or all-committed files; drift; determinism.
//! Actions are carried out here by a test helper through `plan::new_bytes` (the bytes
//! `apply` will write, [7/9]).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use pgsalvage::format::control::ControlFile;
use pgsalvage::plan::{self, ActionKind, Plan};
use serde_json::Value;
use std::path::Path;

fn make_plan(data: &Path, out: &Path, extra: &[&str]) -> Plan {
    let o = pgsalvage().args(["plan", "-D"]).arg(data).arg("-o").arg(out).args(extra).output().unwrap();
    let p: Plan = serde_json::from_slice(&std::fs::read(out).unwrap()).unwrap();
    // 0 when the plan answers every finding, 1 when it leaves some unrepaired (exit-codes.md).
    let want = if p.not_repairable.is_empty() { 0 } else { 1 };
    assert_eq!(o.status.code(), Some(want), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    p
}

/// Write every block/file action's new bytes into `data` (test stand-in for `apply`).
fn apply_bytes(data: &Path, p: &Plan) {
    let c = ControlFile::parse(&std::fs::read(data.join("global/pg_control")).unwrap()).unwrap();
    let bs = c.database_block_size as usize;
    for a in &p.actions {
        let path = data.join(&a.target.path);
        match a.target.block {
            Some(b) => {
                let mut file = std::fs::read(&path).unwrap();
                let i = (b % c.blocks_per_segment) as usize * bs;
                let new = plan::new_bytes(a, Some(&file[i..i + bs]), &c).unwrap().unwrap();
                file[i..i + bs].copy_from_slice(&new);
                std::fs::write(&path, file).unwrap();
            }
            None => {
                let old = std::fs::read(&path).ok();
                if let Some(new) = plan::new_bytes(a, old.as_deref(), &c).unwrap() {
                    std::fs::write(&path, new).unwrap();
                    chown_postgres(&path);
                } else if matches!(a.kind, ActionKind::MoveAside) {
                    std::fs::remove_file(&path).unwrap();
                }
            }
        }
    }
}

fn garbage_xid_then_freeze(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    c.sql("vacuum ziplog");
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    // xmin garbage, hint bits gone, checksum made right again (the damage is in the tuple).
    garble_xmin(&c.data.join(&rel), 3, 4294692688, true);
    let work = Scratch::new("plan");
    let before = tree_state(&c.data);
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    assert_same_tree(&before, &tree_state(&c.data), "planning changed the data directory");
    assert!(!pl.actions.iter().any(|a| matches!(a.kind, ActionKind::SynthesizeXact { .. })), "PG{major}: a clog action for a garbage xid");
    let freeze = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::FreezeTuples { .. })).unwrap_or_else(|| panic!("PG{major}: {pl:?}"));
    assert_eq!((freeze.target.path.as_str(), freeze.target.block), (rel.as_str(), Some(3)));
    assert_eq!(freeze.target.relation.as_deref(), Some("table public.ziplog in database postgres"));
    // The page was all-visible (vacuumed): its visibility map bit is cleared too.
    assert!(pl.actions.iter().any(|a| matches!(a.kind, ActionKind::ClearVisibilityMap { heap_block: 3 })), "PG{major}: {:?}", pl.actions);
    apply_bytes(&c.data, &pl);
    c.start();
    assert_eq!(c.sql("select count(*) from ziplog"), "20000", "PG{major}");
    c.sql("vacuum (freeze) ziplog");
    assert_eq!(c.sql("select count(*) from ziplog where v is not null"), "20000");
}

per_major!(garbage_xid_then_freeze: plan_xid_pg10 = 10, plan_xid_pg13 = 13, plan_xid_pg15 = 15, plan_xid_pg17 = 17, plan_xid_pg18 = 18);

#[test]
fn scribbled_header_is_rebuilt_and_every_row_readable() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.pgbench_init(1);
    c.sql("checkpoint");
    let rel = c.relpath("pgbench_accounts");
    c.stop();
    let p = c.data.join(&rel);
    let mut b = std::fs::read(&p).unwrap();
    b[11 * 8192 + 12..11 * 8192 + 18].copy_from_slice(&[0xFF, 0x7F, 0x10, 0x00, 0x03, 0x00]); // pd_lower, pd_upper, pd_special
    std::fs::write(&p, b).unwrap();
    let work = Scratch::new("plan");
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    let a = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::RebuildPageHeader { .. })).unwrap_or_else(|| panic!("{pl:?}"));
    assert_eq!(a.target.block, Some(11));
    assert!(a.data_loss.contains("all 61 rows kept"), "{}", a.data_loss);
    // Drift: one changed byte in the target block makes exactly that action stale.
    let copy = work.path().join("drifted");
    run_ok(std::process::Command::new("cp").arg("-a").arg(&c.data).arg(&copy));
    scribble(&copy.join(&rel), 11 * 8192 + 5000, &[0x42]);
    let out = pgsalvage().arg("review").arg(work.path().join("plan.json")).arg("--json").arg("-D").arg(&copy).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let stale: Vec<&str> = v["drift"]["stale_actions"].as_array().unwrap().iter().map(|d| d["action"].as_str().unwrap()).collect();
    assert_eq!(stale, vec![a.id.as_str()]);
    let out = pgsalvage().arg("review").arg(work.path().join("plan.json")).arg("-D").arg(&c.data).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // Determinism: the same state and options give the same plan but for created_at.
    let again = make_plan(&c.data, &work.path().join("plan2.json"), &[]);
    let (mut x, mut y) = (serde_json::to_value(&pl).unwrap(), serde_json::to_value(&again).unwrap());
    x["created_at"] = Value::Null;
    y["created_at"] = Value::Null;
    assert_eq!(x, y);
    apply_bytes(&c.data, &pl);
    c.start();
    assert_eq!(c.sql("set max_parallel_workers_per_gather = 0; select count(*), count(filler) from pgbench_accounts"), "100000|100000");
}

/// pg_xact lost after a clean stop: statuses rebuilt from WAL (recent transactions) and hint
/// bits (older ones, read before they left the WAL), compared with the truth.
#[test]
fn xact_rebuilt_from_evidence_beats_zero_and_all_committed() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t(i int, note text)");
    let mut truth: Vec<(u32, bool)> = Vec::new();
    let run = |c: &Cluster, from: u32, to: u32, truth: &mut Vec<(u32, bool)>| {
        for i in from..to {
            let commit = i % 3 != 0;
            let xid: u64 = c
                .sql(&format!("begin; insert into t values ({i}, 'row {i}'); select txid_current(); {}", if commit { "commit;" } else { "rollback;" }))
                .lines()
                .find(|l| !l.is_empty())
                .unwrap()
                .parse()
                .unwrap();
            truth.push((xid as u32, commit));
        }
    };
    run(&c, 0, 90, &mut truth);
    // Phase 1 gets hint bits (a reader sees the outcomes), then its WAL leaves pg_wal.
    c.sql("select count(*) from t");
    for _ in 0..3 {
        c.sql("select pg_switch_wal(); checkpoint");
    }
    // Phase 2: no reader, no hint bits; its commit records stay in the current segment.
    run(&c, 90, 180, &mut truth);
    // Subtransactions: one released (committed with its parent), one rolled back.
    c.sql("create table s(i int)");
    let out = c.sql("begin; insert into s values (1); savepoint a; insert into s values (2); select xmin from s where i = 2; release a; savepoint b; insert into s values (3); select xmin from s where i = 3; rollback to b; commit;");
    let subs: Vec<u32> = out.lines().filter(|l| !l.is_empty()).map(|l| l.parse().unwrap()).collect();
    assert_eq!(subs.len(), 2);
    c.stop();
    let committed_rows = truth.iter().filter(|t| t.1).count();
    let work = Scratch::new("xact");
    let variant = |name: &str| {
        let d = work.path().join(name);
        run_ok(std::process::Command::new("cp").arg("-a").arg(&c.data).arg(&d));
        std::fs::remove_file(d.join("pg_xact/0000")).unwrap();
        d
    };
    let d = variant("evidence");
    let pl = make_plan(&d, &work.path().join("plan.json"), &[]);
    let a = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::SynthesizeXact { .. })).unwrap_or_else(|| panic!("{pl:?}"));
    let ActionKind::SynthesizeXact { committed, sources, first_xid, last_xid, .. } = &a.kind else { unreachable!() };
    let planned = |x: u32| committed.iter().any(|(a, b)| x >= *a && x <= *b);
    for (x, commit) in &truth {
        assert!(x >= first_xid && x <= last_xid);
        assert_eq!(planned(*x), *commit, "xid {x}");
    }
    assert!(planned(subs[0]), "the released subtransaction {} committed with its parent", subs[0]);
    assert!(!planned(subs[1]), "the rolled-back subtransaction {} aborted", subs[1]);
    assert!(sources.from_wal >= 90, "{sources:?}");
    assert!(sources.from_hint_bits >= 55, "{sources:?}"); // phase 1's committed (60) and aborted (30) rows, where hinted
    assert!(!pl.actions.iter().any(|a| matches!(a.kind, ActionKind::FreezeTuples { .. })));
    let visible = |d: &Path| -> (usize, usize) {
        let mut r = Cluster::at(15, d);
        r.start();
        let rows: Vec<u32> = r.sql("select i from t").lines().map(|l| l.parse().unwrap()).collect();
        r.stop();
        let lost = truth.iter().enumerate().filter(|(i, t)| t.1 && !rows.contains(&(*i as u32))).count();
        let phantom = rows.iter().filter(|i| !truth[**i as usize].1).count();
        (lost, phantom)
    };
    apply_bytes(&d, &pl);
    let evidence = visible(&d);
    assert_eq!(evidence, (0, 0), "rows after a rebuild from evidence");
    // The wrong fixes: a zero-filled segment (dd) and an all-committed one.
    let z = variant("zeroed");
    std::fs::write(z.join("pg_xact/0000"), vec![0u8; 262144]).unwrap();
    chown_postgres(&z.join("pg_xact/0000"));
    let zero = visible(&z);
    let ac = variant("all-committed");
    std::fs::write(ac.join("pg_xact/0000"), vec![0x55u8; 262144]).unwrap();
    chown_postgres(&ac.join("pg_xact/0000"));
    let all = visible(&ac);
    assert!(zero.0 > evidence.0, "zero-filled loses committed rows: {zero:?}");
    assert!(all.1 > evidence.1, "all-committed resurrects aborted rows: {all:?}");
    assert!(committed_rows > 0);
}

/// COMMIT PREPARED and ROLLBACK PREPARED records are evidence too: the prepared
/// transaction's xid sits after the relation, dropped-statistics and invalidation parts
/// (whose sizes differ by major), not in the record header.
fn prepared_xacts_are_evidence(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("alter system set max_prepared_transactions = 5");
    c.stop();
    c.start();
    c.sql("create table t(i int); create table doomed(i int); create table doomed2(i int)");
    let xid = |out: String| -> u32 { out.lines().find(|l| !l.is_empty()).unwrap().parse().unwrap() };
    // Committed: drops a table (relation files, dropped statistics 15+, invalidations).
    let a = xid(c.sql("begin; insert into t values (1); drop table doomed; select txid_current(); prepare transaction 'a'"));
    c.sql("commit prepared 'a'");
    // Rolled back, with a subtransaction and a dropped table.
    let b = xid(
        c.sql("begin; insert into t values (2); savepoint s; insert into t values (3); drop table doomed2; select txid_current(); prepare transaction 'b'")
    );
    c.sql("rollback prepared 'b'");
    let plain = xid(c.sql("begin; insert into t values (4); select txid_current(); commit"));
    c.stop();
    let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
    let (ctl, _, _) = dd.control().unwrap();
    let got = pgsalvage::plan::evidence::wal_outcomes(&dd, &ctl, a.min(b), plain);
    assert_eq!(got.get(&a), Some(&true), "PG{major}: COMMIT PREPARED of {a}: {got:?}");
    assert_eq!(got.get(&b), Some(&false), "PG{major}: ROLLBACK PREPARED of {b}: {got:?}");
    assert_eq!(got.get(&plain), Some(&true), "PG{major}: plain commit of {plain}");
}

per_major!(prepared_xacts_are_evidence: prepared_pg10 = 10, prepared_pg14 = 14, prepared_pg15 = 15, prepared_pg18 = 18);

/// A pg_control whose CRC fails is rewritten from evidence: a flipped time (nothing checks
/// it) is kept and only the CRC changes; a flipped REDO location in the checkpoint copy is
/// contradicted by WAL's checkpoint record and the rewrite gives back the original bytes.
#[test]
fn control_rewritten_from_wal_evidence() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.stop();
    let work = Scratch::new("ctlcrc");
    let ctl = |d: &Path| d.join("global/pg_control");
    let original = std::fs::read(ctl(&c.data)).unwrap();
    let variant = |name: &str, offset: u64| {
        let d = work.path().join(name);
        run_ok(std::process::Command::new("cp").arg("-a").arg(&c.data).arg(&d));
        let b = std::fs::read(ctl(&d)).unwrap()[offset as usize];
        scribble(&ctl(&d), offset, &[b ^ 0x01]);
        d
    };
    let write = |p: &plan::Plan| p.actions.iter().find(|a| matches!(a.kind, ActionKind::WriteControl { .. })).cloned().unwrap_or_else(|| panic!("{p:?}"));
    // The time field: unverifiable, kept; only the CRC changes.
    let d = variant("time", 24);
    let before = std::fs::read(ctl(&d)).unwrap();
    let p = make_plan(&d, &work.path().join("time.json"), &[]);
    let a = write(&p);
    assert!(a.effect.contains("no value changes"), "{}", a.effect);
    let cf = ControlFile::parse_lenient(&before).unwrap().0;
    let new = plan::new_bytes(&a, Some(&before), &cf).unwrap().unwrap();
    let changed: Vec<usize> = (0..before.len()).filter(|&i| before[i] != new[i]).collect();
    let crc = pgsalvage::format::control::crc_offset(cf.major);
    assert!(!changed.is_empty() && changed.iter().all(|&i| (crc..crc + 4).contains(&i)), "{changed:?}");
    assert!(ControlFile::parse(&new).is_ok(), "the CRC checks out after the fix");
    // The REDO location in the checkpoint copy: WAL's record wins; the original comes back.
    let d = variant("redo", 41);
    let before = std::fs::read(ctl(&d)).unwrap();
    let p = make_plan(&d, &work.path().join("redo.json"), &[]);
    let a = write(&p);
    assert!(a.effect.contains("changed: redo_lsn"), "{}", a.effect);
    let new = plan::new_bytes(&a, Some(&before), &cf).unwrap().unwrap();
    assert!(new == original, "the rewrite is the original pg_control");
}

/// A garbage xmin on a page whose checksum also fails (found by the sweep, PG10 seed
/// 70449307957080: the freeze stored a new checksum and so accepted the page silently).
/// Without the opt-in no action rewrites that page and the plan says why; with it, the
/// freeze and the accepted checksum compose on the page and every row reads.
#[test]
fn checksum_failed_page_is_not_rewritten_without_the_opt_in() {
    let (mut c, rel) = ziplog_cluster(15, false);
    garble_xmin(&c.data.join(&rel), 3, 4294692688, false);
    let work = Scratch::new("plan-checksum");
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    assert!(!pl.actions.iter().any(|a| a.target.block == Some(3)), "{:?}", pl.actions);
    assert!(pl.not_repairable.iter().any(|n| n.code.starts_with("tuple-xid") && n.reason.contains("--accept-checksum-failures")), "{:?}", pl.not_repairable);
    let pl = make_plan(&c.data, &work.path().join("accept.json"), &["--accept-checksum-failures"]);
    let on3: Vec<&str> = pl.actions.iter().filter(|a| a.target.block == Some(3) && a.target.path == rel).map(|a| a.finding.as_str()).collect();
    assert!(on3.len() == 2, "a freeze and an accepted checksum on block 3: {on3:?}");
    apply_bytes(&c.data, &pl);
    c.start();
    assert_eq!(c.sql("select count(*) from ziplog"), "20000");
}

/// The first half of a page zeroed (a torn write that lost its first sector): the header
/// and line pointers are gone, the tuples in the second half are not. diagnose and plan
/// must not say "0 rows" (found walking the README as a new DBA): how many rows the page
/// held is unknown, and emptying the page loses every one of them.
#[test]
fn torn_page_does_not_claim_zero_rows() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table orders as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    c.sql("checkpoint");
    let rel = c.relpath("orders");
    c.stop();
    scribble(&c.data.join(&rel), 10 * 8192, &[0u8; 4096]);
    let o = pgsalvage().args(["diagnose", "-D"]).arg(&c.data).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("count unknown") && !out.contains("loses: 0 rows") && !out.contains("holds 0 rows"), "{out}");
    let work = Scratch::new("torn");
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    let a = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::ZeroPage { .. })).unwrap_or_else(|| panic!("{pl:?}"));
    assert!(a.data_loss.contains("how many is unknown"), "{}", a.data_loss);
    assert!(
        pl.findings.iter().all(|f| f.alternatives.iter().all(|alt| !alt.action.starts_with("replace the page"))),
        "the chosen repair is not listed as not chosen: {:?}",
        pl.findings
    );
}

/// Line pointers whose flag bits turned them unused or dead while their offset and length
/// still point at intact tuples (the sweep's silent losses: diagnose saw nothing and rehearse
/// said "loses nothing" while rows were missing). Now: found, restored, every row back; a
/// dead pointer with junk storage (VACUUM would fail on it) is killed, its row named lost.
fn hidden_rows_come_back(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table ziplog (id int primary key, v text); insert into ziplog select g, md5(g::text) from generate_series(1, 20000) g");
    c.sql("vacuum ziplog");
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    let file = c.data.join(&rel);
    let mut b = std::fs::read(&file).unwrap();
    for (blk, item, flags) in [(4usize, 7usize, 0u32), (4, 8, 3), (9, 1, 0)] {
        let at = blk * 8192 + 24 + 4 * (item - 1);
        let raw = u32::from_le_bytes(b[at..at + 4].try_into().unwrap());
        b[at..at + 4].copy_from_slice(&((raw & !(3 << 15)) | (flags << 15)).to_le_bytes());
    }
    // Block 12, item 3: dead, pointing past the page.
    let at = 12 * 8192 + 24 + 8;
    b[at..at + 4].copy_from_slice(&(8100u32 | (3 << 15) | (400 << 17)).to_le_bytes());
    for blk in [4usize, 9, 12] {
        let page = &mut b[blk * 8192..(blk + 1) * 8192];
        let sum = pgsalvage::format::checksum::page_checksum(page, blk as u32);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(&file, b).unwrap();
    // What the server says: nothing, and three rows are missing.
    c.start();
    assert_eq!(c.sql("select count(*) from ziplog"), "19996", "PG{major}");
    c.stop();
    let work = Scratch::new("hidden");
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    let restores: Vec<&plan::Action> = pl.actions.iter().filter(|a| matches!(a.kind, ActionKind::RestorePointers { .. })).collect();
    assert_eq!(
        restores.iter().map(|a| (a.target.block, a.data_loss.as_str())).collect::<Vec<_>>(),
        vec![(Some(4), "nothing"), (Some(9), "nothing")],
        "PG{major}: {pl:?}"
    );
    let kill = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::KillTuples { .. })).unwrap_or_else(|| panic!("PG{major}: {pl:?}"));
    assert_eq!(kill.target.block, Some(12));
    apply_bytes(&c.data, &pl);
    c.start();
    assert_eq!(c.sql("select count(*) from ziplog"), "19999", "PG{major}: every hidden row back, the junk pointer's row lost");
    assert_eq!(c.sql("select count(*) from ziplog where id in (select id from ziplog)"), "19999");
    c.sql("vacuum ziplog");
}

per_major!(hidden_rows_come_back: hidden_pg10 = 10, hidden_pg15 = 15, hidden_pg18 = 18);

/// A page whose pd_lsn is past the end of WAL (what the old header rebuild left behind, or a
/// lost WAL tail): the server reads it, then fails every checkpoint once it writes the page.
/// check names it; the plan sets pd_lsn to the REDO location; the server then checkpoints.
#[test]
fn page_lsn_past_wal_is_found_and_set_back() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table ziplog (id int primary key, v text); insert into ziplog select g, md5(g::text) from generate_series(1, 20000) g");
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    let file = c.data.join(&rel);
    let mut b = std::fs::read(&file).unwrap();
    let page = &mut b[5 * 8192..6 * 8192];
    page[0..8].copy_from_slice(&[0x00, 0x60, 0x8F, 0x18, 0xCA, 0x7E, 0xD1, 0x0C]);
    let sum = pgsalvage::format::checksum::page_checksum(page, 5);
    page[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&file, b).unwrap();
    // The server's own verdict on the damage, on a copy: reads fine, cannot checkpoint.
    let work = Scratch::new("lsn");
    let copy = work.path().join("copy");
    run_ok(std::process::Command::new("cp").arg("-a").arg(&c.data).arg(&copy));
    let mut s = Cluster::at(15, &copy);
    s.start();
    // The first read sets hint bits: the page is dirty, with its LSN as it is.
    assert_eq!(s.sql("select count(*) from ziplog"), "20000");
    let (ok, _, err) = s.try_sql("checkpoint");
    let log = std::fs::read_to_string(&s.log).unwrap();
    assert!(!ok && err.contains("checkpoint request failed") && log.contains("xlog flush request"), "the damage is real: {err}\n{log}");
    s.crash();
    let o = pgsalvage().args(["check", "--json", "-D"]).arg(&c.data).output().unwrap();
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    let f: Vec<&Value> = j["findings"].as_array().unwrap().iter().filter(|f| f["code"] == "page-lsn-past-wal").collect();
    assert_eq!(f.len(), 1, "{j}");
    assert_eq!((f[0]["file"].as_str(), f[0]["block"].as_u64()), (Some(rel.as_str()), Some(5)));
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    let a = pl.actions.iter().find(|a| matches!(a.kind, ActionKind::SetPageLsn { .. })).unwrap_or_else(|| panic!("{pl:?}"));
    assert_eq!(a.target.block, Some(5));
    apply_bytes(&c.data, &pl);
    c.start();
    c.sql("update ziplog set v = v || 'x'");
    c.sql("checkpoint");
    assert_eq!(c.sql("select count(*) from ziplog where v like '%x'"), "20000");
}

/// One flipped byte of NextXID in pg_control (offset 67 on 15: its high byte), CRC left wrong:
/// every tuple then looks "never assigned" and pg_xact "lost" up to the flipped value. The
/// plan must not act on findings judged against counters WAL does not confirm (found when a
/// sweep case planned hundreds of pg_xact segments and froze every tuple).
#[test]
fn suspect_counters_plan_no_xact_or_freeze() {
    let (c, _) = ziplog_cluster(15, false);
    let p = c.data.join("global/pg_control");
    let b = std::fs::read(&p).unwrap()[67];
    scribble(&p, 67, &[b ^ 0xFF]);
    let work = Scratch::new("counters");
    let pl = make_plan(&c.data, &work.path().join("plan.json"), &[]);
    assert!(
        !pl.actions.iter().any(|a| matches!(a.kind, ActionKind::SynthesizeXact { .. } | ActionKind::FreezeTuples { .. })),
        "{} actions: {:?}",
        pl.actions.len(),
        pl.actions.iter().take(3).collect::<Vec<_>>()
    );
    // One root cause, one action: NextXID comes back from WAL's checkpoint record.
    assert_eq!(pl.actions.len(), 1, "{:?}", pl.actions);
    match &pl.actions[0].kind {
        ActionKind::WriteControl { fields, .. } => {
            let f = fields.iter().find(|f| f.field == "next_xid").unwrap();
            assert_eq!(f.verdict, pgsalvage::check::control::Verdict::Contradicted, "{f:?}");
        }
        k => panic!("{k:?}"),
    }
    assert!(pl.not_repairable.is_empty(), "{:?}", pl.not_repairable);
}
