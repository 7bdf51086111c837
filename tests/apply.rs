//! `apply`, `rollback`, `audit` on real clusters: end to end (snapshot, plan, apply, the
//! server on the result, rollback to a byte-identical tree, audit); an abort after every
//! journal record and SIGKILLs at random moments, each followed by a byte-exact rollback;
//! the lock; refusals; a full rollback store.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

type Tree = BTreeMap<String, (String, u64, u32, i64, i64)>;

fn tree(d: &Path) -> Tree {
    rollback_tree(d)
}

/// A stopped PG15 cluster with three kinds of damage the planner repairs: a garbage xmin
/// (freeze + VM), a scribbled page header (rebuild) and a stale postmaster.pid (left: the server replaces it).
fn damaged() -> (Cluster, String) {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    c.sql("vacuum ziplog");
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.crash();
    c.start();
    c.sql("checkpoint");
    c.crash(); // leaves a stale postmaster.pid, nothing lost
    let p = c.data.join(&rel);
    garble_xmin(&p, 3, 4294692688, true);
    scribble(&p, 9 * 8192 + 12, &[0xFF, 0x7F]);
    (c, rel)
}

fn make_plan(data: &Path, plan: &Path) {
    let (code, out, err) = cli(&["plan", "-o"], &[plan, Path::new("-D"), data]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn end_to_end_and_refusals() {
    let (c, rel) = damaged();
    let work = Scratch::new("apply");
    let (snap, plan, store) = (work.path().join("s.tar.zst"), work.path().join("plan.json"), work.path().join("store"));
    let original = tree(&c.data);
    let (code, _, err) = cli(&["snapshot", "create", "-o"], &[&snap, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    make_plan(&c.data, &plan);
    // Refusals: no snapshot, no terminal without --yes, another apply holding the lock.
    let (code, _, err) = cli(&["apply", "--yes", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("--without-snapshot-i-may-lose-data"));
    let (code, _, err) = cli(&["apply", "--plan"], &[&plan, Path::new("--snapshot"), &snap, Path::new("-D"), &c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("pass --yes"));
    {
        let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
        let _held = pgsalvage::apply::lock(&dd).unwrap();
        let (code, _, err) = cli(&["apply", "--yes", "--plan"], &[&plan, Path::new("--snapshot"), &snap, Path::new("-D"), &c.data]);
        assert_eq!(code, 3, "{err}");
        assert!(err.contains("another pgsalvage apply"), "{err}");
    }
    assert_same_tree(&original, &tree(&c.data), "refused applies changed nothing");
    // Apply.
    let (code, out, err) =
        cli(&["apply", "--yes", "--plan"], &[&plan, Path::new("--snapshot"), &snap, Path::new("--rollback-dir"), &store, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    for e in std::fs::read_dir(&store).unwrap() {
        let p = e.unwrap().path();
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o700, "{}", p.display());
        assert_eq!(std::fs::metadata(p.join("journal.log")).unwrap().permissions().mode() & 0o777, 0o600);
    }
    // The stale postmaster.pid stays: the server replaces it at start.
    // The real server on a copy of the result: every row, VACUUM (FREEZE), pg_dumpall.
    let trial = work.path().join("trial");
    copy_tree(&c.data, &trial);
    let mut s = Cluster::at(15, &trial);
    s.start();
    assert_eq!(s.sql("select count(*) from ziplog"), "20000");
    s.sql("vacuum (freeze) ziplog");
    let d = s.pg_dumpall();
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    s.stop();
    // Rollback: byte-identical to before; twice is harmless; audit shows both.
    let (code, out, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert_same_tree(&original, &tree(&c.data), "after rollback");
    let (code, out, _) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0);
    assert!(out.contains("already rolled back"));
    let (_, out, _) = cli(&["audit", "-D"], &[&c.data]);
    assert!(out.contains(" apply operation") && out.contains(" rollback operation") && out.contains("as before the apply"), "{out}");
    assert!(out.contains(&rel));
    // Apply again, let the "server" change a target, and rollback refuses without --force.
    let (code, _, err) =
        cli(&["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"], &[&plan, Path::new("--rollback-dir"), &store, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    scribble(&c.data.join(&rel), 3 * 8192 + 4000, &[0x77]);
    let (code, _, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("changed since") && err.contains("--force"), "{err}");
    let (_, out, _) = cli(&["audit", "-D"], &[&c.data]);
    assert!(out.contains("CHANGED since"), "{out}");
    let (code, _, err) = cli(&["rollback", "--force", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{err}");
    assert_same_tree(&original, &tree(&c.data), "after a forced rollback");
}

use std::os::unix::fs::PermissionsExt;

/// Abort after each journal record in turn, then roll back: always the original bytes.
#[test]
fn abort_at_every_journal_step_then_rollback() {
    let (c, _) = damaged();
    let work = Scratch::new("fault");
    let plan = work.path().join("plan.json");
    make_plan(&c.data, &plan);
    let original = tree(&c.data);
    let mut k = 1;
    loop {
        let d = work.path().join(format!("k{k}"));
        copy_tree(&c.data, &d);
        let store = work.path().join(format!("store{k}"));
        let o = pgsalvage()
            .args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"])
            .arg(&plan)
            .arg("--rollback-dir")
            .arg(&store)
            .arg("-D")
            .arg(&d)
            .env("PGSALVAGE_TEST_ABORT_AFTER_RECORD", k.to_string())
            .output()
            .unwrap();
        let finished = o.status.success();
        let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
        // Stopped right after the journal's first record: nothing was written to the data
        // directory (not even the history line), so there is nothing to roll back.
        assert!(code == 0 || (k == 1 && err.contains("no pgsalvage operation")), "k={k}: {out}{err}");
        assert_same_tree(&original, &tree(&d), &format!("after an abort at journal record {k} and a rollback"));
        // A second apply then works.
        let (code, _, err) =
            cli(&["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"], &[&plan, Path::new("--rollback-dir"), &store, Path::new("-D"), &d]);
        assert_eq!(code, 0, "k={k}: second apply: {err}");
        std::fs::remove_dir_all(&d).unwrap();
        if finished {
            assert!(k > 5, "the plan should have several steps");
            break;
        }
        k += 1;
    }
}

/// SIGKILL at random moments (the apply runs as a child process), then rollback.
#[test]
fn sigkill_at_random_moments_then_rollback() {
    let (c, _) = damaged();
    let work = Scratch::new("kill");
    let plan = work.path().join("plan.json");
    make_plan(&c.data, &plan);
    let original = tree(&c.data);
    let mut seed = std::process::id() as u64;
    for i in 0..12 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = std::time::Duration::from_micros((seed >> 33) % 40_000);
        let d: PathBuf = work.path().join(format!("r{i}"));
        copy_tree(&c.data, &d);
        let mut child = pgsalvage()
            .args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"])
            .arg(&plan)
            .arg("--rollback-dir")
            .arg(work.path().join(format!("store{i}")))
            .arg("-D")
            .arg(&d)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
        // Killed before the apply recorded anything: nothing to roll back, nothing changed.
        if code != 0 {
            assert!(err.contains("no pgsalvage operation"), "run {i}: {out}{err}");
        }
        assert_same_tree(&original, &tree(&d), &format!("run {i}: SIGKILL after {delay:?}, then rollback"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}

/// A rollback store on a full file system: the apply stops before the first change.
#[test]
fn full_rollback_store_stops_before_any_change() {
    let (c, _) = damaged();
    let work = Scratch::new("full");
    let plan = work.path().join("plan.json");
    make_plan(&c.data, &plan);
    let mnt = work.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    assert!(Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k"]).arg("tmpfs").arg(&mnt).status().unwrap().success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=1k"]).arg(format!("of={}", mnt.join("filler").display())).output();
    let original = tree(&c.data);
    let (code, _, err) = cli(
        &["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"],
        &[&plan, Path::new("--rollback-dir"), &mnt.join("store"), Path::new("-D"), &c.data],
    );
    assert_eq!(code, 4, "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert_same_tree(&original, &tree(&c.data), "a failed apply changed the data directory");
}

/// The other damage kinds end to end: plan, apply, the real server on a copy, rollback.
fn round(c: &Cluster, plan_args: &[&str], check: &str, want: &str) {
    let work = Scratch::new("kinds");
    let plan = work.path().join("plan.json");
    let mut a: Vec<&str> = vec!["plan"];
    a.extend_from_slice(plan_args);
    a.push("-o");
    let (code, out, err) = cli(&a, &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    let original = tree(&c.data);
    let (code, out, err) = cli(
        &["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"],
        &[&plan, Path::new("--rollback-dir"), &work.path().join("store"), Path::new("-D"), &c.data],
    );
    assert_eq!(code, 0, "{out}{err}");
    let trial = work.path().join("trial");
    copy_tree(&c.data, &trial);
    let mut s = Cluster::at(c.major(), &trial);
    s.start();
    assert_eq!(s.sql(check), want);
    s.stop();
    let (code, out, err) = cli(&["rollback", "-D"], &[&c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert_same_tree(&original, &tree(&c.data), "after rollback");
}

#[test]
fn lost_wal_and_lost_clog_end_to_end() {
    // A WAL segment lost after a crash: reset.
    let c = lost_wal_segment();
    round(&c, &["--reset-wal"], "select count(*) from pgbench_branches", "1");
    // pg_xact lost after a clean stop: rebuilt from evidence.
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t as select g from generate_series(1, 100) g");
    c.sql("begin; insert into t values (1000); rollback");
    c.stop();
    std::fs::remove_file(c.data.join("pg_xact/0000")).unwrap();
    round(&c, &[], "select count(*) from t", "100");
}

/// relocate-wal stopped after each journal record in turn, and SIGKILLed at random moments:
/// rollback gives back the data directory and pg_wal (a directory again, every file, mode and
/// time) each time; the finished relocation leaves pg_wal a link to verified copies.
#[test]
fn relocate_wal_interrupted_then_rollback() {
    use pgsalvage::plan::{Action, ActionKind, Risk, Target};
    let mut c = Cluster::new(15, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    c.start();
    c.sql("create table t as select g, md5(g::text) from generate_series(1, 20000) g");
    c.crash();
    let work = Scratch::new("relocate");
    let wal_tree = |d: &Path| tree(&std::fs::canonicalize(d.join("pg_wal")).unwrap());
    let original = tree(&c.data);
    let original_wal = wal_tree(&c.data);
    let plan_for = |to: &Path| {
        let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
        let mut p = pgsalvage::plan::plan(&dd, &Default::default()).unwrap();
        p.actions.push(Action {
            id: "A99".into(),
            finding: "not-corruption-wal-disk-full".into(),
            kind: ActionKind::RelocateWal { to: to.display().to_string() },
            target: Target { path: "pg_wal".into(), block: None, relation: None },
            precondition: pgsalvage::plan::current_precondition(&dd, &Target { path: "pg_wal".into(), block: None, relation: None }, "file", 8192, 131072),
            effect: "pg_wal moves".into(),
            data_loss: "nothing".into(),
            risk: Risk::Low,
            expected_log: vec![],
        });
        let f = work.path().join(format!("plan-{}.json", to.file_name().unwrap().to_string_lossy()));
        std::fs::write(&f, serde_json::to_vec(&p).unwrap()).unwrap();
        f
    };
    let apply = |d: &Path, plan: &Path, store: &Path| {
        let mut cmd = pgsalvage();
        cmd.args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"]).arg(plan).arg("--rollback-dir").arg(store).arg("-D").arg(d);
        cmd
    };
    let check_back = |d: &Path, what: &str| {
        assert!(std::fs::symlink_metadata(d.join("pg_wal")).unwrap().is_dir(), "{what}: pg_wal is a directory again");
        assert_same_tree(&original, &tree(d), what);
        assert_same_tree(&original_wal, &wal_tree(d), &format!("{what} (pg_wal)"));
    };
    // The action is bound to pg_wal's listing: a segment that appears since is drift.
    {
        let d = work.path().join("drift");
        copy_tree(&c.data, &d);
        let plan = plan_for(&work.path().join("wal-drift"));
        std::fs::write(d.join("pg_wal/000000010000000000000099"), b"new").unwrap();
        let o = apply(&d, &plan, &work.path().join("store-drift")).output().unwrap();
        assert_eq!(o.status.code(), Some(3), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains("changed since the plan"));
        assert!(std::fs::symlink_metadata(d.join("pg_wal")).unwrap().is_dir());
    }
    let mut k = 1;
    loop {
        let d = work.path().join(format!("k{k}"));
        copy_tree(&c.data, &d);
        let to = work.path().join(format!("wal{k}"));
        let plan = plan_for(&to);
        let o = apply(&d, &plan, &work.path().join(format!("store{k}"))).env("PGSALVAGE_TEST_ABORT_AFTER_RECORD", k.to_string()).output().unwrap();
        let finished = o.status.success();
        if finished {
            assert_eq!(std::fs::read_link(d.join("pg_wal")).unwrap(), to);
            assert_same_tree(&original_wal, &tree(&to), "the relocated WAL");
            let (_, out, _) = cli(&["audit", "-D"], &[&d]);
            assert!(out.contains(&format!("A99 pg_wal (moved to {}): as applied", to.display())), "{out}");
        }
        let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
        // Stopped right after the journal's first record: nothing was written to the data
        // directory (not even the history line), so there is nothing to roll back.
        assert!(code == 0 || (k == 1 && err.contains("no pgsalvage operation")), "k={k}: {out}{err}");
        check_back(&d, &format!("after an abort at journal record {k} and a rollback"));
        if finished {
            let (_, out, _) = cli(&["audit", "-D"], &[&d]);
            assert!(out.contains("A99 pg_wal (moved to") && out.contains("): as before the apply"), "{out}");
            assert!(k > 3, "the plan should have several journal records");
            break;
        }
        k += 1;
    }
    let mut seed = std::process::id() as u64;
    for i in 0..8 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let delay = std::time::Duration::from_micros((seed >> 33) % 30_000);
        let d = work.path().join(format!("r{i}"));
        copy_tree(&c.data, &d);
        let plan = plan_for(&work.path().join(format!("walr{i}")));
        let mut child =
            apply(&d, &plan, &work.path().join(format!("storer{i}"))).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let (code, out, err) = cli(&["rollback", "-D"], &[&d]);
        // Killed before the history line: nothing to roll back, nothing changed.
        assert!(code == 0 || err.contains("no pgsalvage operation"), "run {i}: {out}{err}");
        check_back(&d, &format!("after a SIGKILL at {delay:?} and a rollback"));
    }
}

/// A relation file replaced by a symbolic link to a file outside the data directory (same
/// bytes, so every precondition still holds): apply refuses before writing anything, and the
/// outside file is untouched.
#[test]
fn planted_symlink_is_refused() {
    let (c, rel) = damaged();
    let work = Scratch::new("symlink");
    let plan = work.path().join("plan.json");
    make_plan(&c.data, &plan);
    let outside = work.path().join("outside-copy");
    std::fs::copy(c.data.join(&rel), &outside).unwrap();
    std::fs::remove_file(c.data.join(&rel)).unwrap();
    std::os::unix::fs::symlink(&outside, c.data.join(&rel)).unwrap();
    let before = std::fs::read(&outside).unwrap();
    let tree_before = tree(&c.data);
    let (code, out, err) = cli(&["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 3, "{out}{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert_eq!(before, std::fs::read(&outside).unwrap(), "the file outside was written");
    assert_same_tree(&tree_before, &tree(&c.data), "a refused apply changed the data directory");
}

/// A WAL reset starts past the highest page LSN: a page whose pd_lsn lies in a segment past
/// every file in pg_wal (written from WAL that was lost) would otherwise make every checkpoint
/// fail after the reset. The plan says where the start comes from; the server checkpoints.
#[test]
fn reset_starts_past_the_highest_page_lsn() {
    let c = lost_wal_segment();
    // pgbench_accounts: the largest relation file in base/5 (the cluster cannot start to say).
    let rel = {
        let mut big: Vec<(u64, String)> = std::fs::read_dir(c.data.join("base/5"))
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name().to_str().filter(|n| n.chars().all(|c| c.is_ascii_digit())).map(|n| (e.metadata().unwrap().len(), format!("base/5/{n}")))
            })
            .collect();
        big.sort();
        big.last().unwrap().1.clone()
    };
    // pd_lsn of block 1 set into segment 0x50 (1 MB segments), checksum made right.
    let file = c.data.join(&rel);
    let mut b = std::fs::read(&file).unwrap();
    let page = &mut b[8192..16384];
    page[0..4].copy_from_slice(&0u32.to_le_bytes());
    page[4..8].copy_from_slice(&(0x50u32 << 20 | 0x28).to_le_bytes());
    let sum = pgsalvage::format::checksum::page_checksum(page, 1);
    page[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(&file, b).unwrap();
    let work = Scratch::new("reset-lsn");
    let plan = work.path().join("plan.json");
    let (code, out, err) = cli(&["plan", "--reset-wal", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let reset = p["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "reset-wal").unwrap_or_else(|| panic!("{p}"));
    let wal_file = reset["wal_file"].as_str().unwrap();
    assert!(wal_file >= "000000010000000000000051", "{wal_file}");
    assert!(reset["sources"].to_string().contains("highest page LSN"), "{}", reset["sources"]);
    let (code, out, err) = cli(
        &["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"],
        &[&plan, Path::new("--rollback-dir"), &work.path().join("store"), Path::new("-D"), &c.data],
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut s = Cluster::at(15, &c.data);
    s.start();
    s.sql("select count(*) from pgbench_accounts");
    s.sql("update pgbench_accounts set abalance = abalance + 1 where aid < 100");
    s.sql("checkpoint");
    s.stop();
}
