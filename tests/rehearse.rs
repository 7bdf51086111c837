//! `pgsalvage rehearse`: a plan that fixes the damage gets "safe to apply" from a real
//! server on the copy; an incomplete plan gets "does not fix" with the server's own error;
//! the original data directory is unchanged either way (contents, modes, mtimes).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::path::Path;

fn run(args: &[&str], paths: &[&Path]) -> (i32, String, String) {
    let mut c = pgsalvage();
    c.args(args);
    for p in paths {
        c.arg(p);
    }
    let o = c.stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn rehearse_kinds(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    garble_xmin(&c.data.join(&rel), 3, 4294692688, true);
    scribble(&c.data.join(&rel), 9 * 8192 + 12, &[0xFF, 0x7F]);
    let work = Scratch::new("rehearse");
    let before = tree_state(&c.data);
    // A plan that answers only the tuple damage: the header damage remains.
    let partial = work.path().join("partial.json");
    let (code, out, err) = run(&["plan", "--only", "tuple-xid-never-assigned", "-o"], &[&partial, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&partial, Path::new("-D"), &c.data]);
    assert_eq!(code, 1, "PG{major}: {out}{err}");
    assert!(out.contains("verdict: does not fix"), "PG{major}: {out}");
    assert!(out.contains("invalid page in block 9"), "PG{major}: the server's own error: {out}");
    // The full plan: safe, and the report in three forms.
    let full = work.path().join("full.json");
    let (code, _, err) = run(&["plan", "-o"], &[&full, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let report = work.path().join("report");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&full, Path::new("--report"), &report, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "PG{major}: {out}{err}");
    assert!(out.contains("verdict: safe to apply"), "PG{major}: {out}");
    assert!(out.contains("rows of public.ziplog in postgres (touched by A1): 20000"), "PG{major}: {out}");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(work.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["safe"], true);
    let html = std::fs::read_to_string(work.path().join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.matches("class=\"block\"").count() >= 2, "the map shows the repaired blocks");
    assert_same_tree(&before, &tree_state(&c.data), "rehearse changed the original data directory");
}

per_major!(rehearse_kinds: rehearse_pg10 = 10, rehearse_pg15 = 15, rehearse_pg18 = 18);
