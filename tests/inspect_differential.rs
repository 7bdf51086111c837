//! `inspect --json` against the server's own view of pg_control, on every major 10–18:
//! pg_control_system(), pg_control_checkpoint(), pg_control_init(), pg_control_recovery()
//! and SHOW settings of the running server; pg_controldata for 15. Fresh clusters, then
//! after a pgbench load, then after a clean shutdown.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use serde_json::Value;
use std::process::Command;

/// The server's view as one flat JSON object; timestamps as epoch seconds.
fn server_view(c: &Cluster) -> serde_json::Map<String, Value> {
    let row = c.sql(
        "select row_to_json(t) from (select s.*, k.*, i.*, r.*, \
           extract(epoch from s.pg_control_last_modified)::bigint as last_modified_epoch, \
           extract(epoch from k.checkpoint_time)::bigint as checkpoint_time_epoch \
         from pg_control_system() s, pg_control_checkpoint() k, pg_control_init() i, pg_control_recovery() r) t",
    );
    match serde_json::from_str(&row).expect("row_to_json") {
        Value::Object(m) => m,
        _ => panic!("not an object"),
    }
}

/// SHOW values that pg_control records (XLogReportParameters / initdb constants).
fn compare_settings(c: &Cluster, report: &Value, stage: &str) {
    let control = &report["control"];
    let major = c.major();
    let show = |name: &str| c.sql(&format!("show {name}"));
    let wal_level = show("wal_level");
    let want_wal_level = if wal_level == "archive" || wal_level == "hot_standby" { "replica".to_string() } else { wal_level };
    let ours_level = match control["wal_level"].as_i64() {
        Some(0) => "minimal",
        Some(1) => "replica",
        Some(2) => "logical",
        _ => "?",
    };
    assert_eq!(ours_level, want_wal_level, "PG{major} {stage}: wal_level");
    let pairs = [
        ("max_connections", "max_connections"),
        ("max_worker_processes", "max_worker_processes"),
        ("max_prepared_transactions", "max_prepared_xacts"),
        ("max_locks_per_transaction", "max_locks_per_xact"),
        ("block_size", "database_block_size"),
        ("wal_block_size", "wal_block_size"),
        ("max_index_keys", "max_index_columns"),
    ];
    for (guc, field) in pairs {
        assert_eq!(show(guc), text(&control[field]), "PG{major} {stage}: {guc}");
    }
    if major >= 12 {
        assert_eq!(show("max_wal_senders"), text(&control["max_wal_senders"]), "PG{major} {stage}: max_wal_senders");
    }
    let onoff = |b: &Value| if b.as_bool() == Some(true) { "on" } else { "off" }.to_string();
    assert_eq!(show("wal_log_hints"), onoff(&control["wal_log_hints"]), "PG{major} {stage}: wal_log_hints");
    assert_eq!(show("track_commit_timestamp"), onoff(&control["track_commit_timestamp"]), "PG{major} {stage}: track_commit_timestamp");
    assert_eq!(show("data_checksums"), onoff(&report["layout"]["data_checksums"]), "PG{major} {stage}: data_checksums");
    assert_eq!(show("full_page_writes"), onoff(&control["full_page_writes"]), "PG{major} {stage}: full_page_writes");
    assert_eq!(show("server_version_num")[..2].trim_start_matches('0'), major.to_string(), "PG{major} {stage}: server_version_num");
    assert_eq!(text(&report["layout"]["major"]), major.to_string());
    assert_eq!(show("max_identifier_length").parse::<u64>().unwrap() + 1, control["max_identifier_length"].as_u64().unwrap());
    let seg: u64 = show("wal_segment_size").trim_end_matches("MB").trim().parse::<u64>().unwrap();
    let seg_bytes = if seg < 4096 { seg << 20 } else { seg };
    if major >= 11 {
        assert_eq!(seg_bytes, control["bytes_per_wal_segment"].as_u64().unwrap(), "PG{major} {stage}: wal_segment_size");
    }
}

/// Inspect a running cluster while pg_control is quiet: the server's view before and after
/// must agree, or pg_control changed in between and we try again.
fn check_running(c: &Cluster, stage: &str) {
    for _ in 0..5 {
        let before = server_view(c);
        let report = inspect_json(&c.data);
        let after = server_view(c);
        if before != after {
            continue;
        }
        let n = compare_with_server(c.major(), &before, &report, stage);
        assert!(n >= 30, "PG{} {stage}: only {n} columns compared", c.major());
        compare_settings(c, &report, stage);
        assert_eq!(report["layout"]["postmaster"]["status"], "alive");
        assert_eq!(report["checkpoint_record"]["readable"], true, "PG{} {stage}: {}", c.major(), report["checkpoint_record"]);
        assert_eq!(report["checkpoint_record"]["matches_control"], true);
        assert_eq!(report["control_crc"]["stored"], report["control_crc"]["computed"]);
        return;
    }
    panic!("PG{} {stage}: pg_control kept changing", c.major());
}

fn differential(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("checkpoint");
    check_running(&c, "fresh");
    c.pgbench_init(2);
    c.pgbench_run(200);
    c.sql("checkpoint");
    check_running(&c, "pgbench");
    let before_stop = server_view(&c);
    c.stop();
    // After a clean shutdown: a shutdown checkpoint, state "shut down", same identity.
    let report = inspect_json(&c.data);
    let control = &report["control"];
    assert_eq!(control["state"], "shut_down");
    assert_eq!(control["system_identifier"], before_stop["system_identifier"]);
    assert_eq!(report["checkpoint_record"]["shutdown"], true);
    assert_eq!(report["checkpoint_record"]["matches_control"], true);
    assert_eq!(report["layout"]["postmaster"]["status"], "not-running");
    assert!(report["warnings"].as_array().unwrap().is_empty(), "PG{major}: warnings {}", report["warnings"]);
    if major == 15 {
        compare_with_pg_controldata(&c);
    }
}

/// For 15: every line pg_controldata prints equals inspect's line (timestamps aside).
fn compare_with_pg_controldata(c: &Cluster) {
    let theirs = run_ok(Command::new(PgBin::system_tool("pg_controldata")).arg(&c.data).env("LC_ALL", "C"));
    let ours = run_ok(pgsalvage().args(["inspect", "-D"]).arg(&c.data));
    let keep = |s: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(s)
            .lines()
            .take_while(|l| !l.is_empty())
            .filter(|l| !l.starts_with("pg_control last modified") && !l.starts_with("Time of latest checkpoint"))
            .map(str::to_string)
            .collect()
    };
    let (t, o) = (keep(&theirs.stdout), keep(&ours.stdout));
    assert_eq!(t.len(), 48);
    assert_eq!(o, t);
}

macro_rules! per_major {
    ($($name:ident = $m:expr),*) => { $(
        #[test]
        fn $name() {
            if majors().contains(&$m) { differential($m) }
        }
    )* };
}
per_major!(
    inspect_matches_server_pg10 = 10,
    inspect_matches_server_pg11 = 11,
    inspect_matches_server_pg12 = 12,
    inspect_matches_server_pg13 = 13,
    inspect_matches_server_pg14 = 14,
    inspect_matches_server_pg15 = 15,
    inspect_matches_server_pg16 = 16,
    inspect_matches_server_pg17 = 17,
    inspect_matches_server_pg18 = 18
);
