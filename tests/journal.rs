//! The transaction layer on real clusters (PostgreSQL 15): a plan whose steps compose on one
//! block; kill -9 after every journal record of apply *and* of rollback, each followed by a
//! rollback that ends byte-exact; a damaged middle journal record; the "absent"
//! precondition; a plan applied twice; a failure part-way (exit 5); the owner of what apply
//! leaves, and pg_basebackup of a repaired cluster; `rollback --force` after the server ran.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

type Tree = BTreeMap<String, (String, u64, u32, i64, i64)>;

fn tree(d: &Path) -> Tree {
    rollback_tree(d)
}

fn apply_cmd(d: &Path, plan: &Path, store: &Path) -> Command {
    let mut cmd = pgsalvage();
    cmd.args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"]).arg(plan).arg("--rollback-dir").arg(store).arg("-D").arg(d);
    cmd.stdin(std::process::Stdio::null());
    cmd
}

/// A stopped cluster whose block 3 has both a garbage xmin (tuple 1) and a broken line
/// pointer (5): the plan freezes and kills on the same heap block and clears the same
/// visibility map bit twice, so steps compose.
fn composed() -> (Cluster, String) {
    let (c, rel) = ziplog_cluster(15, true);
    let file = c.data.join(&rel);
    garble_xmin(&file, 3, 4294692688, true);
    break_line_pointer(&file, 3, 5);
    (c, rel)
}

fn plan_of(data: &Path, plan: &Path) -> serde_json::Value {
    let (code, out, err) = cli(&["plan", "-o"], &[plan, Path::new("-D"), data]);
    assert_eq!(code, 0, "{out}{err}");
    serde_json::from_slice(&std::fs::read(plan).unwrap()).unwrap()
}

#[test]
fn kill_at_every_record_of_apply_and_of_rollback() {
    let (c, rel) = composed();
    let work = Scratch::new("journal");
    let plan = work.path().join("plan.json");
    let p = plan_of(&c.data, &plan);
    let on_block3 = p["actions"].as_array().unwrap().iter().filter(|a| a["target"]["path"] == rel.as_str() && a["target"]["block"] == 3).count();
    assert!(on_block3 >= 2, "the plan should change block 3 twice: {p}");
    let original = tree(&c.data);
    // kill -9 after apply's k-th record, then rollback.
    let mut apply_records = 0;
    for k in 1.. {
        let d = work.path().join(format!("a{k}"));
        copy_tree(&c.data, &d);
        let o = apply_cmd(&d, &plan, &work.path().join(format!("sa{k}"))).env("PGSALVAGE_TEST_ABORT_AFTER_RECORD", k.to_string()).output().unwrap();
        let finished = o.status.success();
        if !finished {
            assert_eq!(o.status.code(), None, "k={k}: killed by a signal: {}", String::from_utf8_lossy(&o.stderr));
        }
        let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
        assert!(code == 0 || (k == 1 && err.contains("no pgsalvage operation")), "apply killed at {k}: {out}{err}");
        assert_same_tree(&original, &tree(&d), &format!("apply killed after record {k}, then rollback"));
        std::fs::remove_dir_all(&d).unwrap();
        if finished {
            apply_records = k;
            break;
        }
    }
    assert!(apply_records > 8, "apply wrote {apply_records} records");
    // A whole apply, then kill -9 after rollback's k-th record, then rollback again (which
    // resumes), possibly killed again: the end is byte-exact.
    let mut rollback_records = 0;
    for k in 1.. {
        let d = work.path().join(format!("r{k}"));
        copy_tree(&c.data, &d);
        let o = apply_cmd(&d, &plan, &work.path().join(format!("sr{k}"))).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = pgsalvage().args(["rollback", "-D"]).arg(&d).env("PGSALVAGE_TEST_ABORT_AFTER_RECORD", k.to_string()).output().unwrap();
        let finished = o.status.success();
        if !finished {
            assert_eq!(o.status.code(), None, "rollback k={k}: {}", String::from_utf8_lossy(&o.stderr));
            // The resumed rollback killed once more, one record in.
            let o = pgsalvage().args(["rollback", "-D"]).arg(&d).env("PGSALVAGE_TEST_ABORT_AFTER_RECORD", "2").output().unwrap();
            assert!(o.status.success() || o.status.code().is_none(), "{}", String::from_utf8_lossy(&o.stderr));
            let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
            assert_eq!(code, 0, "rollback killed after record {k}, resumed: {out}{err}");
        }
        assert_same_tree(&original, &tree(&d), &format!("rollback killed after record {k}, then rollback"));
        let (code, out, _) = cli(&["audit", "-D"], &[&d]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("rolled back") && !out.contains("CHANGED"), "{out}");
        std::fs::remove_dir_all(&d).unwrap();
        if finished {
            rollback_records = k;
            break;
        }
    }
    assert!(rollback_records > 8, "rollback wrote {rollback_records} records");
    eprintln!("apply: {apply_records} journal records, rollback: {rollback_records}; a kill after each one, then rollback: byte-exact every time");
}

#[test]
fn damaged_middle_record_stops_rollback() {
    let (c, _) = composed();
    let work = Scratch::new("journal-damaged");
    let plan = work.path().join("plan.json");
    plan_of(&c.data, &plan);
    let store = work.path().join("store");
    let o = apply_cmd(&c.data, &plan, &store).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let op = std::fs::read_dir(&store).unwrap().next().unwrap().unwrap().path();
    let journal = op.join("journal.log");
    let bytes = std::fs::read(&journal).unwrap();
    // Record 3 (a step's Prepared or Done), one byte flipped in its JSON.
    let starts: Vec<usize> = std::iter::once(0).chain(bytes.iter().enumerate().filter(|(_, b)| **b == b'\n').map(|(i, _)| i + 1)).collect();
    let mut bad = bytes.clone();
    bad[starts[2] + 30] ^= 0x04;
    std::fs::write(&journal, &bad).unwrap();
    let applied = tree(&c.data);
    let (code, out, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains(&format!("record 3 (byte offset {})", starts[2])) && err.contains("damaged"), "{err}");
    assert_same_tree(&applied, &tree(&c.data), "a refused rollback changed the data directory");
    let (code, _, err) = cli(&["rollback", "--force", "-D"], &[&c.data]);
    assert_eq!(code, 3, "--force does not skip a damaged record: {err}");
    // The torn last record of a killed process is not damage: cut the last record short.
    std::fs::write(&journal, &bytes[..bytes.len() - 7]).unwrap();
    let (code, out, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "a torn last record: {out}{err}");
}

#[test]
fn preconditions_hold() {
    // "absent": planned while pg_xact/0000 was missing; the genuine file put back since.
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t as select g from generate_series(1, 100) g");
    c.stop();
    let work = Scratch::new("preconditions");
    let genuine = work.path().join("0000");
    std::fs::rename(c.data.join("pg_xact/0000"), &genuine).unwrap();
    let plan = work.path().join("plan.json");
    let p = plan_of(&c.data, &plan);
    assert!(p["actions"].as_array().unwrap().iter().any(|a| a["precondition"]["scope"] == "absent"), "{p}");
    copy_tree(&genuine, &c.data.join("pg_xact/0000"));
    let before = tree(&c.data);
    let o = apply_cmd(&c.data, &plan, &work.path().join("s1")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("changed since the plan was made"), "{err}");
    assert_same_tree(&before, &tree(&c.data), "a refused apply changed the data directory");
    std::fs::remove_file(c.data.join("pg_xact/0000")).unwrap();
    // The same plan twice: refused while the first apply is in place, fine after a rollback.
    let before = tree(&c.data);
    let o = apply_cmd(&c.data, &plan, &work.path().join("s2")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let applied = tree(&c.data);
    let o = apply_cmd(&c.data, &plan, &work.path().join("s3")).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("still in place"), "{err}");
    assert_eq!(applied, tree(&c.data));
    let (code, _, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&before, &tree(&c.data), "after rollback");
    let o = apply_cmd(&c.data, &plan, &work.path().join("s4")).output().unwrap();
    assert!(o.status.success(), "after a rollback the plan applies again: {}", String::from_utf8_lossy(&o.stderr));
    let (code, _, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{err}");
    // A failure after the first change: exit 5, the words, and rollback puts it all back.
    let (c, _) = composed();
    let plan = work.path().join("composed.json");
    plan_of(&c.data, &plan);
    let before = tree(&c.data);
    let o = apply_cmd(&c.data, &plan, &work.path().join("s5")).env("PGSALVAGE_TEST_FAIL_BEFORE_STEP", "3").output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("apply stopped after 3 steps") && err.contains("partly changed: run `pgsalvage rollback -D"), "{err}");
    assert_ne!(before, tree(&c.data));
    let (code, _, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&before, &tree(&c.data), "after a failed apply and a rollback");
    // Before the first change: an ordinary error, nothing changed.
    let o = apply_cmd(&c.data, &plan, &work.path().join("s6")).env("PGSALVAGE_TEST_FAIL_BEFORE_STEP", "1").output().unwrap();
    assert_eq!(o.status.code(), Some(4), "{}", String::from_utf8_lossy(&o.stderr));
}

/// What apply leaves in and beside the data directory belongs to the data directory's
/// owner, and pg_basebackup (which runs as that owner) copies the repaired cluster.
#[test]
fn owner_and_pg_basebackup() {
    let (c, _) = composed();
    let work = Scratch::new("owner");
    let plan = work.path().join("plan.json");
    plan_of(&c.data, &plan);
    let o = pgsalvage().args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"]).arg(&plan).arg("-D").arg(&c.data).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let owner = std::fs::metadata(&c.data).unwrap().uid();
    let hist = std::fs::metadata(c.data.join("pgsalvage.history")).unwrap();
    assert_eq!(hist.uid(), owner, "the history file's owner");
    // The default store beside the data directory, and everything in it.
    let store = PathBuf::from(format!("{}.pgsalvage-rollback", c.data.display()));
    let mut stack = vec![store.clone()];
    while let Some(p) = stack.pop() {
        let m = std::fs::symlink_metadata(&p).unwrap();
        assert_eq!(m.uid(), owner, "{}", p.display());
        assert_eq!(m.mode() & 0o077, 0, "{} is private", p.display());
        if m.is_dir() {
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
    }
    let mut s = Cluster::at(15, &c.data);
    s.start();
    let backup = s.scratch.path().join("backup");
    let o = as_postgres(
        Command::new(PgBin::system_tool("pg_basebackup")).arg("-h").arg(&s.sockdir).args(["-p", &s.port.to_string(), "-U", "postgres", "-D"]).arg(&backup),
    )
    .output()
    .unwrap();
    assert!(o.status.success(), "pg_basebackup of the repaired cluster: {}", String::from_utf8_lossy(&o.stderr));
    assert!(backup.join("pgsalvage.history").exists());
    s.stop();
    let _ = std::fs::remove_dir_all(&store);
}

/// After the server has run on an applied plan, `rollback --force` either gives a tree the
/// server starts on or refuses before any change.
#[test]
fn force_after_the_server_ran() {
    // Block repairs only: forced back, and the server starts on the result.
    let (c, rel) = composed();
    let work = Scratch::new("force");
    let plan = work.path().join("plan.json");
    plan_of(&c.data, &plan);
    let o = apply_cmd(&c.data, &plan, &work.path().join("s1")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut s = Cluster::at(15, &c.data);
    s.start();
    s.sql("vacuum (freeze) ziplog");
    s.sql("checkpoint");
    s.stop();
    let ran = tree(&c.data);
    let (code, _, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&rel) && err.contains("--force"), "{err}");
    assert_same_tree(&ran, &tree(&c.data), "a refused rollback wrote");
    let (code, _, err) = cli(&["rollback", "--force", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{err}");
    let (up, log) = s.try_start();
    assert!(up, "the server does not start after a forced rollback:\n{log}");
    s.stop();
    // relocate-wal, then the server ran on the new pg_wal and recycled segments: refused,
    // with or without --force, before any change; the server still starts.
    let mut c = Cluster::new(15, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    c.start();
    c.sql("create table t as select g, md5(g::text) from generate_series(1, 20000) g");
    c.crash();
    let to = work.path().join("newwal");
    let plan = work.path().join("relocate.json");
    {
        use pgsalvage::plan::{Action, ActionKind, Risk, Target};
        let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
        let mut p = pgsalvage::plan::plan(&dd, &Default::default()).unwrap();
        let t = Target { path: "pg_wal".into(), block: None, relation: None };
        p.actions.push(Action {
            id: "A99".into(),
            finding: "not-corruption-wal-disk-full".into(),
            kind: ActionKind::RelocateWal { to: to.display().to_string() },
            precondition: pgsalvage::plan::current_precondition(&dd, &t, "file", 8192, 131072),
            target: t,
            effect: "pg_wal moves".into(),
            data_loss: "nothing".into(),
            risk: Risk::Low,
            expected_log: vec![],
        });
        std::fs::write(&plan, serde_json::to_vec(&p).unwrap()).unwrap();
    }
    let o = apply_cmd(&c.data, &plan, &work.path().join("s2")).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    chown_postgres(&to);
    let mut s = Cluster::at(15, &c.data);
    s.start();
    for _ in 0..6 {
        s.sql("insert into t select g, md5(g::text) from generate_series(1, 20000) g; select pg_switch_wal(); checkpoint");
    }
    s.stop();
    let ran = tree(&c.data);
    let ran_wal = tree(&to);
    for args in [&["rollback", "-D"][..], &["rollback", "--force", "-D"][..]] {
        let (code, out, err) = cli(args, &[&c.data]);
        assert_eq!(code, 3, "{args:?}: {out}{err}");
        assert!(err.contains("nothing was changed") || err.contains("the server ran"), "{args:?}: {err}");
        assert_same_tree(&ran, &tree(&c.data), "a refused rollback wrote");
        assert_same_tree(&ran_wal, &tree(&to), "a refused rollback wrote into the relocated WAL");
    }
    let (up, log) = s.try_start();
    assert!(up, "{log}");
    assert_eq!(s.sql("select count(*) from t"), "140000");
    s.stop();
}
