//! `pgsalvage diagnose` on real clusters: each situation told apart from the others with the
//! right relation name, block, xid range or LSN, and nothing spurious; the two incidents of
//! the project's brief reproduced; read-only.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn diagnose(data: &Path, logs: &[&Path]) -> (i32, Value) {
    let mut c = pgsalvage();
    c.args(["diagnose", "--json", "-D"]).arg(data);
    for l in logs {
        c.arg("--log").arg(l);
    }
    let out = c.output().unwrap();
    let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap(), v)
}

/// Findings other than the informational ones.
fn problems(v: &Value) -> Vec<Value> {
    v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] != "info").cloned().collect()
}

fn only(v: &Value, code: &str) -> Value {
    let p = problems(v);
    assert_eq!(p.len(), 1, "expected only {code}: {}", serde_json::to_string_pretty(&p).unwrap());
    assert_eq!(p[0]["code"], code);
    p[0].clone()
}

fn healthy_and_incident_1(major: u32) {
    // Without data checksums, as in the incident (a checksum would catch the flipped bytes first).
    let mut c = Cluster::new(major, InitOpts { checksums: false, wal_segsize_mb: None });
    c.start();
    c.sql("create database common");
    c.sql_in("common", "create table public.ziplog (zipcd text, address1 text, address2 text, logaction text, logdate date); insert into ziplog select lpad(g::text, 7, '0'), 'Tokyo', 'Chiyoda ' || g, 'add', date '2012-05-01' + g % 17 from generate_series(1, 20000) g; checkpoint");
    let rel = c.sql_in("common", "select pg_relation_filepath('ziplog')");
    c.pgbench_init(1);
    c.crash();
    // Healthy (crashed, nothing lost): information only, exit 0, nothing written.
    let before = tree_state(&c.data);
    let (code, v) = diagnose(&c.data, &[]);
    assert_eq!(problems(&v), Vec::<Value>::new(), "PG{major}");
    assert_eq!(code, 0);
    let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
    assert!(codes.contains(&"cluster-state") && codes.contains(&"postmaster-pid-left"), "{codes:?}");
    assert!(v["findings"][0]["title"].as_str().unwrap().contains("crashed"), "{}", v["findings"][0]);
    assert_same_tree(&before, &tree_state(&c.data), "diagnose changed the data directory");

    // The incident: a tuple's xmin becomes 4294692688; the server asks for pg_xact/0FFF.
    c.start();
    c.stop();
    garble_xmin(&c.data.join(&rel), 30, 4294692688, false);
    c.start();
    let (ok, _, err) = c.try_sql_in("common", "select count(*) from ziplog");
    assert!(!ok && err.contains("could not access status of transaction 4294692688"), "PG{major}: {err}");
    c.stop();
    let log = c.scratch.path().join("client.log");
    std::fs::write(&log, format!("{err}\n{}", std::fs::read_to_string(&c.log).unwrap())).unwrap();
    let (code, v) = diagnose(&c.data, &[&log]);
    assert_eq!(code, 1);
    let f = only(&v, "tuple-xid-never-assigned");
    assert_eq!(f["relation"], "table public.ziplog in database common", "PG{major}");
    assert_eq!(f["block"], 30);
    assert_eq!(f["xids"], serde_json::json!([4294692688u32, 4294692688u32]));
    assert!(f["explanation"].as_str().unwrap().contains("NOT missing commit status"));
    assert!(f["explanation"].as_str().unwrap().contains("pg_xact/0FFF"));
    assert!(f["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("4294692688")), "{f}");
    assert!(!problems(&v).iter().any(|f| f["code"] == "xact-status-lost"));
}

trait TrySqlIn {
    fn try_sql_in(&self, db: &str, sql: &str) -> (bool, String, String);
}
impl TrySqlIn for Cluster {
    fn try_sql_in(&self, db: &str, sql: &str) -> (bool, String, String) {
        let out = self.psql_cmd(db).arg("-c").arg(sql).stdin(std::process::Stdio::null()).output().unwrap();
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

per_major!(healthy_and_incident_1: incident_xid_pg10 = 10, incident_xid_pg11 = 11, incident_xid_pg12 = 12, incident_xid_pg13 = 13, incident_xid_pg14 = 14, incident_xid_pg15 = 15, incident_xid_pg16 = 16, incident_xid_pg17 = 17, incident_xid_pg18 = 18);

/// The second incident: crash recovery that cannot finish because pg_wal's file system is
/// full. Diagnosed as "needs space", not corruption.
#[test]
fn incident_disk_full_during_crash_recovery() {
    let mut c = Cluster::new(15, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    let mnt = c.scratch.path().join("walfs");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=24M"]).arg("tmpfs").arg(&mnt).status().unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _u = Unmount(mnt.clone());
    run_ok(Command::new("cp").arg("-a").arg(c.data.join("pg_wal")).arg(mnt.join("pg_wal")));
    std::fs::remove_dir_all(c.data.join("pg_wal")).unwrap();
    std::os::unix::fs::symlink(mnt.join("pg_wal"), c.data.join("pg_wal")).unwrap();
    chown_postgres(&mnt);
    c.start();
    c.sql("create table t as select g, md5(g::text) from generate_series(1, 40000) g");
    // Leave the current WAL segment more than 75% full, so that the end-of-recovery
    // checkpoint must preallocate the next segment (PreallocXlogFiles), as in the incident.
    let seg = 1u64 << 20;
    let off = |c: &Cluster| c.sql("select pg_current_wal_insert_lsn() - '0/0'::pg_lsn").parse::<u64>().unwrap() % seg;
    if off(&c) > seg * 8 / 10 {
        c.sql("select pg_switch_wal()");
        c.sql("select pg_logical_emit_message(false, 'pgsalvage', 'x')");
    }
    while off(&c) < seg * 85 / 100 {
        let room = (seg * 85 / 100 - off(&c)).min(60000);
        c.sql(&format!("select pg_logical_emit_message(false, 'pgsalvage', repeat('x', {}))", room.max(100)));
    }
    let current = c.sql("select pg_walfile_name(pg_current_wal_insert_lsn())");
    c.crash();
    // No spare (recycled) segments after the current one: recovery must create the next.
    for e in std::fs::read_dir(mnt.join("pg_wal")).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if name.len() == 24 && name > current {
            std::fs::remove_file(mnt.join("pg_wal").join(&name)).unwrap();
        }
    }
    // The file system fills up (another process's file).
    let _ = Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}", mnt.join("filler").display())).output();
    let (up, log) = c.try_start();
    assert!(!up, "the server should not come up with pg_wal full");
    assert!(log.contains("No space left on device"), "{}", &log[log.len().saturating_sub(3000)..]);
    let (code, v) = diagnose(&c.data, &[&c.log]);
    assert_eq!(code, 1);
    let f = only(&v, "not-corruption-wal-disk-full");
    assert!(f["title"].as_str().unwrap().starts_with("NOT corruption"));
    let repairs = serde_json::to_string(&f["repairs"]).unwrap();
    assert!(repairs.contains("make room") && repairs.contains("do NOT delete WAL") && repairs.contains("pg_resetwal"), "{repairs}");
    assert!(f["log"].as_array().unwrap().iter().any(|l| l.as_str().unwrap().contains("No space left on device")), "{f}");
    let state = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "cluster-state").unwrap().clone();
    assert!(state["title"].as_str().unwrap().contains("in crash recovery"), "{state}");
    let human = String::from_utf8_lossy(&pgsalvage().args(["diagnose", "--log"]).arg(&c.log).arg("-D").arg(&c.data).output().unwrap().stdout).into_owned();
    std::fs::write(repo_root().join("target/diagnose-disk-full.txt"), &human).unwrap();
    // The plan moves pg_wal when given a place with room, and never resets WAL for this.
    let plan_file = c.scratch.path().join("plan.json");
    let out = pgsalvage().args(["plan", "--reset-wal", "--wal-dir", "/var/lib/roomy"]).arg("-D").arg(&c.data).arg("-o").arg(&plan_file).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let p: Value = serde_json::from_slice(&std::fs::read(&plan_file).unwrap()).unwrap();
    let kinds: Vec<&str> = p["actions"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"relocate-wal") && !kinds.contains(&"reset-wal"), "{kinds:?}");
    // Making room is the whole fix: the server recovers and nothing is lost.
    std::fs::remove_file(mnt.join("filler")).unwrap();
    c.start();
    assert_eq!(c.sql("select count(*) from t"), "40000");
}

/// Missing clog, a scribbled page header, lost WAL, a damaged pg_control, a live server:
/// each its own finding with names, and nothing else.
#[test]
fn situations_told_apart() {
    let mut c = Cluster::new(15, InitOpts { checksums: false, wal_segsize_mb: Some(1) });
    c.start();
    c.pgbench_init(1);
    // The catalog rows naming the tables must be on disk (a checkpoint) for names after a crash.
    c.sql("checkpoint");
    c.pgbench_run(400);
    let accounts = c.relpath("pgbench_accounts");
    // A live postmaster: refused.
    let out = pgsalvage().args(["diagnose", "-D"]).arg(&c.data).output().unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stop the server first"));
    c.crash();
    let work = Scratch::new("diag");
    let copy = |name: &str| {
        let d = work.path().join(name);
        run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&d));
        d
    };
    // pg_xact lost: genuinely missing commit status, with the tuples that need it.
    let d = copy("clog");
    std::fs::remove_file(d.join("pg_xact/0000")).unwrap();
    let (_, v) = diagnose(&d, &[]);
    let f = only(&v, "xact-status-lost");
    assert!(f["explanation"].as_str().unwrap().contains("this is genuinely missing commit status"));
    assert!(!f["explanation"].as_str().unwrap().contains(" 0 tuples"), "{}", f["explanation"]);
    // A scribbled page header: named, with the rows it holds, and the server's message attached.
    let d = copy("page");
    scribble(&d.join(&accounts), 7 * 8192 + 12, &[0xFF, 0x7F]);
    let log = work.path().join("page.log");
    std::fs::write(&log, format!("2026-11-22 10:00:00 UTC [1] ERROR:  invalid page in block 7 of relation {accounts}\n")).unwrap();
    let (_, v) = diagnose(&d, &[&log]);
    // pgbench may have changed block 7 after the checkpoint: its first change then carries a
    // full-page image, crash recovery writes the page from it, and the finding is information
    // (which the server itself then confirms).
    let f = if problems(&v).is_empty() {
        let f = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "page-invalid").cloned().unwrap_or_else(|| panic!("{v}"));
        assert!(f["title"].as_str().unwrap().contains("crash recovery overwrites this block"), "{f}");
        let mut s = Cluster::at(15, &d);
        let (up, log) = s.try_start();
        assert!(up, "{log}");
        assert_eq!(s.sql("select count(*) from pgbench_accounts"), "100000");
        s.stop();
        f
    } else {
        only(&v, "page-invalid")
    };
    assert_eq!(f["relation"], "table public.pgbench_accounts in database postgres");
    assert_eq!(f["block"], 7);
    assert!(f["explanation"].as_str().unwrap().contains("The page holds 61 rows"), "{}", f["explanation"]);
    assert_eq!(f["log"].as_array().unwrap().len(), 1);
    // A lost WAL segment after the REDO point: reset is a candidate, with what it loses.
    let d = copy("wal");
    let ctl = pgsalvage::format::control::ControlFile::parse(&std::fs::read(d.join("global/pg_control")).unwrap()).unwrap();
    let g = pgsalvage::format::wal::WalGeometry::new(ctl.bytes_per_wal_segment, 8192).unwrap();
    let seg = g.segno(ctl.checkpoint.redo_lsn) + 1;
    std::fs::remove_file(d.join("pg_wal").join(g.file_name(1, seg))).unwrap();
    let (_, v) = diagnose(&d, &[]);
    let f = only(&v, "wal-lost");
    assert_eq!(g.segno(f["lsn"].as_str().unwrap().parse().unwrap()), seg);
    assert!(serde_json::to_string(&f["repairs"]).unwrap().contains("reset WAL"));
    // pg_control: CRC mismatch, then truncated.
    let d = copy("control");
    scribble(&d.join("global/pg_control"), 60, &[0x55]);
    let (_, v) = diagnose(&d, &[]);
    assert_eq!(only(&v, "control-crc-mismatch")["file"], "global/pg_control");
    std::fs::OpenOptions::new().write(true).open(d.join("global/pg_control")).unwrap().set_len(100).unwrap();
    let (code, v) = diagnose(&d, &[]);
    assert_eq!(code, 1);
    assert_eq!(only(&v, "control-unreadable")["file"], "global/pg_control");
    // Not a data directory.
    let out = pgsalvage().args(["diagnose", "-D"]).arg(work.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(4));
}

/// Standby states: "in archive recovery" (killed) and "shut down in recovery" (stopped),
/// and a checksum failure named with its rows.
#[test]
fn standby_states_and_checksum_failure() {
    let mut p = Cluster::new(15, InitOpts::default());
    p.start();
    p.pgbench_init(1);
    let accounts = p.relpath("pgbench_accounts");
    let mut s = Cluster::new(15, InitOpts::default());
    std::fs::remove_dir_all(&s.data).unwrap();
    run_ok(as_postgres(Command::new(PgBin::system_tool("pg_basebackup")).arg("-D").arg(&s.data).arg("-h").arg(&p.sockdir).args([
        "-p",
        &p.port.to_string(),
        "-U",
        "postgres",
        "-R",
        "-X",
        "stream",
        "-c",
        "fast",
    ])));
    s.start();
    s.stop();
    let (code, v) = diagnose(&s.data, &[]);
    assert_eq!(code, 0, "{v}");
    let state = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "cluster-state").unwrap().clone();
    assert!(state["title"].as_str().unwrap().contains("shut down in recovery"), "{state}");
    s.start();
    s.crash();
    let (_, v) = diagnose(&s.data, &[]);
    let state = v["findings"].as_array().unwrap().iter().find(|f| f["code"] == "cluster-state").unwrap().clone();
    assert!(state["title"].as_str().unwrap().contains("in archive recovery"), "{state}");
    // A flipped byte in a tuple under checksums on the primary.
    p.stop();
    let f = p.data.join(&accounts);
    let b = std::fs::read(&f).unwrap();
    scribble(&f, 9 * 8192 + 6000, &[b[9 * 8192 + 6000] ^ 0x08]);
    let (_, v) = diagnose(&p.data, &[]);
    let f = only(&v, "page-checksum-failure");
    assert_eq!(f["relation"], "table public.pgbench_accounts in database postgres");
    assert_eq!(f["block"], 9);
    assert!(f["explanation"].as_str().unwrap().contains("The page holds 61 rows"), "{}", f["explanation"]);
}

/// The server's own csvlog (and jsonlog, 15+) files, written by its logging collector while
/// a query hits the first incident's garbage xid: diagnose reads each and attaches the line.
fn real_csv_and_json_logs(major: u32) {
    let mut c = Cluster::new(major, InitOpts { checksums: false, wal_segsize_mb: None });
    c.start();
    let dest = if major >= 15 { "stderr,csvlog,jsonlog" } else { "stderr,csvlog" };
    c.sql("alter system set logging_collector = on");
    c.sql(&format!("alter system set log_destination = '{dest}'"));
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 5000) g; checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    garble_xmin(&c.data.join(&rel), 2, 4294692688, false);
    c.start();
    let out = c.psql_cmd("postgres").arg("-c").arg("select count(*) from ziplog").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("4294692688"));
    c.stop();
    let logs: Vec<std::path::PathBuf> = std::fs::read_dir(c.data.join("log")).unwrap().map(|e| e.unwrap().path()).collect();
    for ext in dest.split(',').skip(1).map(|d| if d == "csvlog" { "csv" } else { "json" }) {
        let file = logs.iter().find(|p| p.extension().is_some_and(|e| e == ext)).unwrap_or_else(|| panic!("PG{major}: no .{ext} log in {logs:?}"));
        let (code, v) = diagnose(&c.data, &[file]);
        assert_eq!(code, 1);
        let f = only(&v, "tuple-xid-never-assigned");
        let lines: Vec<&str> = f["log"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
        assert!(lines.iter().any(|l| l.contains("could not access status of transaction 4294692688")), "PG{major} .{ext}: {lines:?}");
        assert!(lines.iter().all(|l| l.contains(&file.display().to_string())), "PG{major} .{ext}: the line names its file: {lines:?}");
    }
}

per_major!(real_csv_and_json_logs: real_logs_pg10 = 10, real_logs_pg15 = 15, real_logs_pg18 = 18);

/// No false alarm from the hidden-row check: a cluster churned by pgbench (HOT updates,
/// pruning, VACUUM: redirect, dead and unused line pointers of every kind PostgreSQL makes),
/// stopped cleanly, has no tuple finding at all.
fn churned_cluster_has_no_tuple_findings(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.pgbench_init(1);
    c.pgbench_run(1500);
    c.sql("vacuum pgbench_history");
    c.pgbench_run(500);
    c.stop();
    let o = pgsalvage().args(["diagnose", "--json", "-D"]).arg(&c.data).output().unwrap();
    let d: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tuple: Vec<&serde_json::Value> = d["findings"].as_array().unwrap().iter().filter(|f| f["code"].as_str().unwrap_or("").starts_with("tuple-")).collect();
    assert!(tuple.is_empty(), "PG{major}: {tuple:?}");
}

per_major!(churned_cluster_has_no_tuple_findings: churned_pg10 = 10, churned_pg15 = 15, churned_pg18 = 18);

/// pg_control zero-filled but for its first 16 bytes (a case from PostgreSQL's own
/// pg_resetwal tests): block size, segment size and WAL geometry are 0. check, diagnose and
/// plan once divided by the block size and panicked; now they read the files with the
/// defaults, say so (`control-values-invalid`), and end with an exit code, not a panic.
#[test]
fn zeroed_geometry_is_no_panic() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t as select g from generate_series(1, 1000) g");
    c.stop();
    let p = c.data.join("global/pg_control");
    let mut b = std::fs::read(&p).unwrap();
    for x in b[16..].iter_mut() {
        *x = 0;
    }
    std::fs::write(&p, b).unwrap();
    let work = Scratch::new("zeroed");
    for args in [&["check"][..], &["diagnose"][..], &["plan", "-o", work.path().join("p.json").to_str().unwrap()][..]] {
        let o = pgsalvage().args(args).arg("-D").arg(&c.data).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(!text.contains("panicked"), "{args:?} panicked: {text}");
        assert!(matches!(o.status.code(), Some(0..=5)), "{args:?}: {:?}: {text}", o.status);
        if args[0] != "plan" {
            // One root finding: the CRC fails, and the zeroed fields are contradicted by the
            // evidence (block size by page headers, WAL geometry by WAL headers).
            assert!(text.contains("control-crc-mismatch") && text.contains("database_block_size: CONTRADICTED"), "{args:?}: {text}");
        }
    }
}

/// A crashed cluster whose pg_xact/0000 is gone. When rows committed before the latest
/// checkpoint carry no hint bits, starting it loses them silently (the server, on a copy,
/// shows it), and diagnose's first finding says not to start it. When every commit is after
/// the checkpoint, recovery restores every status from WAL (the server shows that too), no
/// such warning is given, and the plan's rebuild from WAL keeps every row.
fn crashed_without_pg_xact(major: u32, before_checkpoint: bool) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    if !before_checkpoint {
        // Every row before the checkpoint frozen (initdb leaves unhinted rows, the
        // descriptions in pg_shdescription among them); the table's catalog rows come after.
        c.sql("vacuum freeze");
        c.sql("checkpoint");
    }
    c.sql("create table t (id int primary key, v int) with (autovacuum_enabled = false)");
    // Rows are not read before the crash: no hint bits. The truth is known by construction.
    let batches = |c: &Cluster, from: u32, n: u32| {
        for i in from..from + n {
            c.sql(&format!("insert into t select g, g from generate_series({}, {}) g", i * 100 + 1, i * 100 + 100));
        }
    };
    if before_checkpoint {
        batches(&c, 0, 20);
        c.sql("checkpoint");
    }
    batches(&c, 20, 20);
    c.sql("begin; insert into t values (999999, 0); rollback");
    let first = if before_checkpoint { 1u64 } else { 2001 };
    let truth = format!("{}|{}", 4000 - first + 1, (first..=4000).sum::<u64>());
    c.crash();
    std::fs::rename(c.data.join("pg_xact/0000"), c.scratch.path().join("pg_xact-0000")).unwrap();
    let what = format!(
        "PostgreSQL {major}: crashed, pg_xact/0000 removed, {}",
        if before_checkpoint { "rows committed before the checkpoint" } else { "every commit after it" }
    );
    // The server's verdict on starting it as it is, on a copy.
    let copy = c.scratch.path().join("started-as-is");
    copy_tree(&c.data, &copy);
    let mut started = Cluster::at(major, &copy);
    started.start();
    let seen = started.sql("select count(*), sum(v) from t");
    started.stop();
    eprintln!("{what}: truth {truth}; a copy started as it is reads {seen}");
    let (code, v) = diagnose(&c.data, &[]);
    assert_eq!(code, 1, "{what}: {v}");
    let title = v["findings"][0]["title"].as_str().unwrap().to_string();
    let warned = title.starts_with("do not start this cluster: crash recovery would zero-fill pg_xact/0000 and silently lose committed rows");
    if before_checkpoint {
        assert_ne!(seen, truth, "{what}: the copy started as it is kept every row");
        assert!(warned, "{what}: first finding: {title}");
    } else {
        assert_eq!(seen, truth, "{what}: recovery restores every status from WAL");
        assert!(!warned, "{what}: {title}: {}", v["findings"][0]["explanation"]);
        let w = c.scratch.path().to_path_buf();
        let d = c.data.display().to_string();
        let run = |args: &[&str]| {
            let o = pgsalvage().current_dir(&w).args(args).stdin(std::process::Stdio::null()).output().unwrap();
            (o.status.code().unwrap_or(-9), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
        };
        let (code, out) = run(&["plan", "-D", &d, "-o", "plan.json"]);
        assert_eq!(code, 0, "{what}: {out}");
        let (code, out) = run(&["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
        assert_eq!(code, 0, "{what}: {out}");
        c.start();
        assert_eq!(c.sql("select count(*), sum(v) from t"), truth, "{what}: every committed row, none of the aborted one");
        c.stop();
    }
}

#[test]
fn crashed_cluster_without_pg_xact() {
    for major in common::some_majors(&[11, 15, 18]) {
        crashed_without_pg_xact(major, true);
        crashed_without_pg_xact(major, false);
    }
}
