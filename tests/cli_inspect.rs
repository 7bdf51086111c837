//! `pgsalvage inspect` as a user runs it: exit codes, errors that name file and offset,
//! PGDATA, JSON, and the read-only guarantee (tree hash and mtimes unchanged).
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;

fn run(args: &[&str], data: &Path) -> (i32, String, String) {
    let out = pgsalvage().args(args).arg("-D").arg(data).output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A minimal data directory holding a fixture's pg_control (no server needed).
fn fixture_datadir(major: u32) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("global")).unwrap();
    std::fs::create_dir_all(d.path().join("pg_wal")).unwrap();
    std::fs::write(d.path().join("PG_VERSION"), format!("{major}\n")).unwrap();
    std::fs::copy(repo_root().join(format!("fixtures/pg{major}/pg_control")), d.path().join("global/pg_control")).unwrap();
    d
}

#[test]
fn good_pg_control_exit_0_and_json() {
    let d = fixture_datadir(17);
    let (code, out, _) = run(&["inspect"], d.path());
    assert_eq!(code, 0);
    assert!(out.contains("pg_control version number:            1700"));
    assert!(out.contains("Latest checkpoint record:     UNREADABLE"), "{out}");
    let (code, out, _) = run(&["inspect", "--json"], d.path());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["layout"]["major"], 17);
    assert_eq!(v["control"]["pg_control_version"], 1700);
}

#[test]
fn pgdata_environment_variable_is_the_default() {
    let d = fixture_datadir(13);
    let out = pgsalvage().arg("inspect").env("PGDATA", d.path()).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("Catalog version number:               2020"));
    let out = pgsalvage().arg("inspect").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "no -D and no PGDATA is a usage error");
}

#[test]
fn bad_pg_control_inputs_name_file_and_offset() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "truncated: need 4 bytes at offset 8"),
        ("truncated", std::fs::read(repo_root().join("fixtures/pg15/pg_control")).unwrap()[..100].to_vec(), "truncated"),
        ("random", (0..8192u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect(), "unsupported version at offset 8"),
        (
            "wrong version (9.6)",
            {
                let mut b = std::fs::read(repo_root().join("fixtures/pg15/pg_control")).unwrap();
                b[8..12].copy_from_slice(&960u32.to_le_bytes());
                b
            },
            "pg_control version 960",
        ),
    ];
    for (what, bytes, want) in cases {
        let d = fixture_datadir(15);
        std::fs::write(d.path().join("global/pg_control"), &bytes).unwrap();
        let (code, out, err) = run(&["inspect"], d.path());
        assert_eq!(code, 1, "{what}: {err}");
        assert!(out.contains("pg_control: unreadable:") && out.contains("global/pg_control") && out.contains(want), "{what}: {out}");
    }
    // A CRC mismatch still shows the values, loudly flagged.
    let d = fixture_datadir(15);
    let p = d.path().join("global/pg_control");
    let mut b = std::fs::read(&p).unwrap();
    b[40] ^= 0xFF;
    std::fs::write(&p, b).unwrap();
    let (code, out, _) = run(&["inspect"], d.path());
    assert_eq!(code, 1);
    assert!(out.contains("WARNING: pg_control CRC mismatch") && out.contains("over bytes 0..288"), "{out}");
}

#[test]
fn not_a_data_directory() {
    let d = tempfile::tempdir().unwrap();
    let (code, _, err) = run(&["inspect"], d.path());
    assert_eq!(code, 4);
    assert!(err.contains("not a PostgreSQL data directory") && err.contains("hint:"), "{err}");
    let (code, _, err) = run(&["inspect"], &d.path().join("nope"));
    assert_eq!(code, 4);
    assert!(err.contains("nope") && err.contains("hint:"), "{err}");
}

#[test]
fn inspect_is_read_only_and_sees_live_and_stale_postmasters() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t as select 1");
    let before = tree_state(&c.data);
    let (code, out, _) = run(&["inspect"], &c.data);
    assert_eq!(code, 0);
    assert!(out.contains("Postmaster:                   RUNNING"), "{out}");
    let _ = run(&["inspect", "--json"], &c.data);
    let after = tree_state(&c.data);
    // The running server itself may touch files; only compare what inspect could have.
    for k in ["global/pg_control", "PG_VERSION", "postmaster.pid"] {
        assert_eq!(before.get(k), after.get(k), "{k}");
    }
    c.crash();
    // Stopped (crashed: stale postmaster.pid): nothing at all may change.
    let before = tree_state(&c.data);
    let (code, out, _) = run(&["inspect"], &c.data);
    assert_eq!(code, 0);
    assert!(out.contains("stale postmaster.pid"), "{out}");
    assert!(out.contains("Database cluster state:               in production"));
    let _ = run(&["inspect", "--json"], &c.data);
    assert_eq!(before, tree_state(&c.data), "inspect changed the data directory");
}
