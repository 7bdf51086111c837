//! pg_control is evidence, not truth (issue 15): healthy clusters after a crash are not
//! damaged; a damaged pg_control is one root finding, rebuilt from what WAL and the data
//! directory prove, and the real server is the judge.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

/// A write load that leaves pages written after the last checkpoint on disk (a tiny
/// shared_buffers evicts them), with subtransactions and multixacts, then a crash: kill -9
/// of the postmaster (`immediate` false) or `pg_ctl -m immediate`.
fn crashed_under_load(major: u32, immediate: bool) -> Cluster {
    let mut c = Cluster::new(major, InitOpts::default());
    std::fs::write(c.data.join("postgresql.auto.conf"), "shared_buffers = '256kB'\ncheckpoint_timeout = '1h'\nmax_wal_size = '1GB'\n").unwrap();
    c.start();
    c.sql("create table t (id int primary key, v int, pad text)");
    c.sql("insert into t select g, 0, repeat('x', 200) from generate_series(1, 5000) g");
    c.sql("checkpoint");
    // After the checkpoint: many transactions, subtransactions, multixacts, new relations.
    for i in 0..40 {
        c.sql(&format!("insert into t select g, {i}, repeat('y', 200) from generate_series({0}, {0} + 199) g", 10_000 + i * 200));
    }
    c.sql("begin; select count(*) from (select * from t where id < 400 for share) s; savepoint a; update t set v = v + 1 where id < 400; commit");
    c.sql("create table after_ckpt as select g as id from generate_series(1, 3000) g");
    c.sql("do $$ begin for i in 1..200 loop begin insert into t values (100000 + i, i, 'z'); exception when others then null; end; end loop; end $$");
    // A load still running when the server dies.
    let mut load = Command::new(PgBin::system_tool("pgbench"))
        .args(["-n", "-c", "2", "-T", "30", "-f", "-", "-h"])
        .arg(&c.sockdir)
        .arg("-p")
        .arg(c.port.to_string())
        .args(["-U", "postgres", "postgres"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = load.stdin.take().unwrap();
        stdin.write_all(b"\\set id random(1, 5000)\nupdate t set v = v + 1 where id = :id;\ninsert into after_ckpt values (:id);\n").unwrap();
    }
    std::thread::sleep(Duration::from_secs(3));
    if immediate {
        run_ok(as_postgres(Command::new(c.bin.tool("pg_ctl")).arg("-D").arg(&c.data).args(["-m", "immediate", "stop"])));
    } else {
        c.crash();
    }
    let _ = load.kill();
    let _ = load.wait();
    c
}

fn json(args: &[&str], data: &Path) -> serde_json::Value {
    let (code, out, err) = cli(args, &[Path::new("-D"), data, Path::new("--json")]);
    assert!(code == 0 || code == 1, "{args:?}: exit {code}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

fn crash(major: u32) {
    for immediate in [false, true] {
        let mut c = crashed_under_load(major, immediate);
        let d = json(&["diagnose"], &c.data);
        let bad: Vec<&serde_json::Value> = d["findings"].as_array().unwrap().iter().filter(|f| f["severity"] != "info").collect();
        assert!(bad.is_empty(), "PG{major} (immediate: {immediate}): a crashed healthy cluster has no damage, got {bad:#?}");
        let state = d["findings"].as_array().unwrap().iter().find(|f| f["code"] == "cluster-state").unwrap();
        assert!(text(&state["title"]).contains("crashed"), "{state}");
        assert!(text(&state["evidence"]).contains("moves the counters forward"), "PG{major}: the load ran past the checkpoint: {state}");
        let s = Scratch::new("crash-plan");
        let plan = s.path().join("plan.json");
        let (code, out, err) = cli(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
        assert_eq!(code, 0, "{out}{err}");
        let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
        assert!(p["actions"].as_array().unwrap().is_empty(), "PG{major}: empty plan expected, got {:#}", p["actions"]);
        // The oracle: the server recovers it by itself.
        c.start();
        assert!(c.sql("select count(*) from after_ckpt").parse::<u64>().unwrap() >= 3000);
        c.stop();
    }
}

per_major!(crash: crash_pg10 = 10, crash_pg15 = 15, crash_pg18 = 18);
