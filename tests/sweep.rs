//! The adversarial sweep: random variants of every damage kind the planner knows, injected
//! into real clusters laid out in random ways (pg_wal a directory, an absolute or a relative
//! link; a tablespace behind an absolute or a relative link), each run through
//! diagnose → plan → rehearse → apply, and the result judged by an oracle that shares no code
//! with `rehearse`: the test harness's own pg_ctl start, CHECKPOINT, every row of every table
//! against the truth recorded before the damage (count and md5 of the contents), amcheck, a
//! fast stop that pg_control calls "shut down", a second start without recovery.
//!
//! Its table, per damage kind: how often rehearse said "safe" and the oracle agreed, and the
//! two ways to disagree (a false "safe", a false "does not fix"). Both must be 0.
//!
//! Size: PGSALVAGE_SWEEP_CASES cases per kind (default 1), on PGSALVAGE_SWEEP_MAJORS
//! (default "15"); PGSALVAGE_SEED is the first seed (default 20261201, so that the suite is
//! deterministic). `scripts/sweep` runs it large with a new seed each time. Every seed that
//! once disagreed is in REGRESSIONS and runs every time.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// 24 random bytes over the header of a random heap page.
    PageHeader,
    /// 1 to 8 random bytes at a random place in a random tuple's header (the page checksum
    /// made right half of the time, so the damage is in the structure).
    TupleHeader,
    /// A random line pointer of a random page replaced by a random value (checksum made right).
    LinePointer,
    /// One random byte of pg_control's first 296 bytes XORed with a random non-zero value.
    ControlByte,
    /// pg_xact/0000 truncated to a random length.
    XactTruncated,
    /// A crash after work since the last checkpoint, then a random WAL segment at or after
    /// the REDO segment removed.
    WalSegment,
}

const KINDS: [Kind; 6] = [Kind::PageHeader, Kind::TupleHeader, Kind::LinePointer, Kind::ControlByte, Kind::XactTruncated, Kind::WalSegment];

/// Seeds that once made rehearse and the oracle disagree, or made rehearse say "loses
/// nothing" over rows that were gone, kept as regression cases: (major, kind, seed).
/// - line pointers whose flags turned unused or dead (0x11de03a2: unused, offset 930;
///   0xcec7bdd1: dead, offset past the page): diagnose saw nothing (before
///   `tuple-pointer-hides-row` and the unused/dead-with-storage check);
const REGRESSIONS: &[(u32, Kind, u64)] = &[(15, Kind::LinePointer, 106011459832071), (15, Kind::LinePointer, 121861540233378)];

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        self.0 >> 17
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Clone, Copy, Debug)]
enum WalLayout {
    Dir,
    Absolute,
    Relative,
}

/// What one case came to.
#[derive(Debug, Default)]
struct Outcome {
    rehearse_safe: bool,
    rehearse_verdict: String,
    oracle_ok: bool,
    oracle_why: String,
    rows_equal: bool,
    note: String,
}

/// Run pgsalvage with a time limit; (exit code or -1 when killed, stdout, stderr).
fn run(args: &[&str], paths: &[&Path], limit: Duration) -> (i32, String, String) {
    let mut cmd = pgsalvage();
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    let out = tempfile::NamedTempFile::new().unwrap();
    let err = tempfile::NamedTempFile::new().unwrap();
    let mut child = cmd.stdin(Stdio::null()).stdout(out.reopen().unwrap()).stderr(err.reopen().unwrap()).spawn().unwrap();
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code().unwrap_or(-9);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(out.path()).unwrap_or_default(), std::fs::read_to_string(err.path()).unwrap_or_default())
}

/// The truth: per table, its row count and the md5 of its rows in key order.
fn truth(c: &Cluster) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for t in ["t_main", "t_space", "t_fresh"] {
        let (ok, out, err) = c.try_sql(&format!("select count(*) || ' ' || md5(coalesce(string_agg(x::text, '|' order by id), '')) from {t} x"));
        m.insert(t.to_string(), if ok { out } else { format!("ERROR {err}") });
    }
    m
}

/// A fresh cluster of `major` in a random layout, with three tables (one in a tablespace,
/// one whose rows nobody has read, so without hint bits), stopped cleanly; the truth.
fn build(major: u32, rng: &mut Rng) -> (Cluster, BTreeMap<String, String>, String) {
    let mut c = Cluster::new(major, InitOpts::default());
    let outer = c.scratch.path().to_path_buf();
    std::fs::create_dir(outer.join("ts")).unwrap();
    chown_postgres(&outer.join("ts"));
    c.start();
    c.sql(&format!("create tablespace ts location '{}'", outer.join("ts").display()));
    c.sql("create table t_main (id int primary key, v text); insert into t_main select g, md5(g::text) from generate_series(1, 8000) g");
    c.sql("create table t_space (id int primary key, v text) tablespace ts; insert into t_space select g, repeat(md5(g::text), 3) from generate_series(1, 3000) g");
    c.sql("vacuum t_main");
    c.sql("vacuum t_space");
    c.sql("create table t_fresh (id int, v text); insert into t_fresh select g, md5(g::text) from generate_series(1, 4000) g");
    c.sql("checkpoint");
    let ts_oid = c.sql("select oid from pg_tablespace where spcname = 'ts'");
    c.stop();
    let mut layout = String::new();
    let wal = match rng.below(3) {
        0 => WalLayout::Dir,
        1 => WalLayout::Absolute,
        _ => WalLayout::Relative,
    };
    if !matches!(wal, WalLayout::Dir) {
        std::fs::create_dir(outer.join("walfs")).unwrap();
        std::fs::rename(c.data.join("pg_wal"), outer.join("walfs/pg_wal")).unwrap();
        let target: PathBuf = if matches!(wal, WalLayout::Relative) { "../walfs/pg_wal".into() } else { outer.join("walfs/pg_wal") };
        std::os::unix::fs::symlink(target, c.data.join("pg_wal")).unwrap();
        chown_postgres(&outer.join("walfs"));
    }
    layout.push_str(&format!("pg_wal {wal:?}"));
    if rng.below(2) == 1 {
        let link = c.data.join("pg_tblspc").join(&ts_oid);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("../../ts", &link).unwrap();
        layout.push_str(", tablespace Relative");
    } else {
        layout.push_str(", tablespace Absolute");
    }
    // The truth, read by a server on the final layout (before the damage).
    c.start();
    let t = truth(&c);
    c.stop();
    (c, t, layout)
}

fn rel_file(c: &Cluster, table: &str) -> PathBuf {
    let mut s = Cluster::at(c.major(), &c.data);
    s.start();
    let p = s.relpath(table);
    s.stop();
    c.data.join(p)
}

fn fix_checksum(page: &mut [u8], blkno: u32) {
    let sum = pgsalvage::format::checksum::page_checksum(page, blkno);
    page[8..10].copy_from_slice(&sum.to_le_bytes());
}

/// Inflict `kind` at random; returns a description, and the truth when the damage itself
/// added rows (the WAL kind writes before it crashes).
fn damage(kind: Kind, c: &mut Cluster, rng: &mut Rng) -> (String, Option<BTreeMap<String, String>>) {
    let tables = ["t_main", "t_space", "t_fresh"];
    match kind {
        Kind::PageHeader | Kind::TupleHeader | Kind::LinePointer => {
            let table = tables[rng.below(3) as usize];
            let file = rel_file(c, table);
            let mut b = std::fs::read(&file).unwrap();
            let blocks = b.len() / 8192;
            let blk = rng.below(blocks as u64) as usize;
            let page = &mut b[blk * 8192..(blk + 1) * 8192];
            let n = (u16::from_le_bytes([page[12], page[13]]) as usize).saturating_sub(24) / 4;
            let what = match kind {
                Kind::PageHeader => {
                    for x in page[..24].iter_mut() {
                        *x = rng.next() as u8;
                    }
                    format!("{table} block {blk}: 24 random bytes over the page header")
                }
                Kind::TupleHeader => {
                    let lp = rng.below(n as u64) as usize;
                    let raw = u32::from_le_bytes(page[24 + 4 * lp..28 + 4 * lp].try_into().unwrap());
                    let off = (raw & 0x7FFF) as usize;
                    let len = 1 + rng.below(8) as usize;
                    let at = off + rng.below(23) as usize;
                    for b in page[at..(at + len).min(8192)].iter_mut() {
                        *b = rng.next() as u8;
                    }
                    let fixed = rng.below(2) == 1;
                    if fixed {
                        fix_checksum(page, blk as u32);
                    }
                    format!(
                        "{table} block {blk} item {}: {len} random bytes at tuple header offset {}{}",
                        lp + 1,
                        at - off,
                        if fixed { ", checksum made right" } else { "" }
                    )
                }
                _ => {
                    let lp = rng.below(n as u64) as usize;
                    let v = rng.next() as u32;
                    page[24 + 4 * lp..28 + 4 * lp].copy_from_slice(&v.to_le_bytes());
                    fix_checksum(page, blk as u32);
                    format!("{table} block {blk} item {}: line pointer {v:#010x}, checksum made right", lp + 1)
                }
            };
            std::fs::write(&file, b).unwrap();
            (what, None)
        }
        Kind::ControlByte => {
            let p = c.data.join("global/pg_control");
            let off = rng.below(296);
            let x = 1 + rng.below(255) as u8;
            let b = std::fs::read(&p).unwrap()[off as usize];
            scribble(&p, off, &[b ^ x]);
            (format!("pg_control byte {off} XOR {x:#04x}"), None)
        }
        Kind::XactTruncated => {
            let p = c.data.join("pg_xact/0000");
            let len = std::fs::metadata(&p).unwrap().len();
            let to = rng.below(len);
            std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(to).unwrap();
            (format!("pg_xact/0000 truncated from {len} to {to} bytes"), None)
        }
        Kind::WalSegment => {
            let mut s = Cluster::at(c.major(), &c.data);
            s.start();
            let n = 1 + rng.below(3);
            for i in 0..n {
                s.sql(&format!("insert into t_main select g, md5(g::text) from generate_series({}, {}) g", 100_000 + i * 5000, 100_000 + i * 5000 + 4999));
                s.sql("select pg_switch_wal()");
            }
            let redo = s.sql("select redo_wal_file from pg_control_checkpoint()");
            let after = truth(&s);
            s.crash();
            let wal = std::fs::canonicalize(c.data.join("pg_wal")).unwrap();
            let mut segs: Vec<String> = std::fs::read_dir(&wal)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 24 && *n >= redo)
                .collect();
            segs.sort();
            let victim = segs[rng.below(segs.len() as u64) as usize].clone();
            std::fs::remove_file(wal.join(&victim)).unwrap();
            (format!("{n} batch(es) of 5,000 rows after the checkpoint, a crash, WAL segment {victim} removed (REDO in {redo})"), Some(after))
        }
    }
}

/// The oracle: start (pg_ctl), CHECKPOINT, every table against the truth, amcheck, a fast
/// stop that leaves "shut down", a second start without recovery. Nothing from src/rehearse.
fn oracle(c: &Cluster, before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> (bool, String, bool) {
    let mut s = Cluster::at(c.major(), &c.data);
    let (up, log) = s.try_start();
    if !up {
        let line = log.lines().find(|l| l.contains("FATAL") || l.contains("PANIC")).unwrap_or("").to_string();
        return (false, format!("does not start: {line}"), false);
    }
    let mut why = Vec::new();
    let now = truth(&s);
    let rows_equal = now == *before || now == *after;
    for (t, v) in &now {
        if v.starts_with("ERROR") {
            why.push(format!("{t}: {v}"));
        }
    }
    // VACUUM reads and prunes every page: latent damage ("corrupted line pointer") shows.
    let (ok, _, err) = s.try_sql("vacuum");
    if !ok {
        why.push(format!("VACUUM: {err}"));
    }
    let (ok, _, err) = s.try_sql("checkpoint");
    if !ok {
        why.push(format!("CHECKPOINT: {err}"));
    }
    // amcheck: the B-tree indexes with heapallindexed (11+), and every heap (14+).
    let (ok, _, err) = s.try_sql("create extension if not exists amcheck");
    if !ok {
        why.push(format!("amcheck: {err}"));
    } else {
        let idx = if c.major() >= 11 { "bt_index_check(c.oid, true)" } else { "bt_index_check(c.oid)" };
        let (ok, _, err) = s.try_sql(&format!("select {idx} from pg_class c join pg_am a on a.oid = c.relam join pg_index i on i.indexrelid = c.oid where a.amname = 'btree' and i.indisvalid and c.relpersistence <> 't'"));
        if !ok {
            why.push(format!("bt_index_check: {err}"));
        }
        if c.major() >= 14 {
            let (ok, out, err) = s.try_sql("select c.relname || ' ' || coalesce(v.blkno::text, '') || ' ' || v.msg from pg_class c, verify_heapam(c.oid) v where c.relkind in ('r','m','t') and c.relpersistence <> 't'");
            if !ok || !out.is_empty() {
                why.push(format!("verify_heapam: {}{}", out.lines().next().unwrap_or(""), err));
            }
        }
    }
    // A fast stop: pg_ctl's own verdict, then the next start's log must show no recovery.
    let stop = as_postgres(Command::new(s.bin.tool("pg_ctl")).arg("-D").arg(&s.data).args(["-w", "-t", "120", "-m", "fast", "stop"]))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !stop.status.success() {
        why.push(format!("fast stop: {}", String::from_utf8_lossy(&stop.stderr).trim()));
        s.crash();
    }
    let _ = std::fs::write(&s.log, "");
    let (up2, log2) = s.try_start();
    if !up2 {
        why.push(format!("second start: {}", log2.lines().find(|l| l.contains("FATAL") || l.contains("PANIC")).unwrap_or("")));
    } else if let Some(l) =
        log2.lines().find(|l| l.contains("not properly shut down") || l.contains("automatic recovery in progress") || l.contains("redo starts at"))
    {
        why.push(format!("second start needed recovery: {l}"));
    }
    for l in log.lines().chain(log2.lines()) {
        if (l.contains("PANIC:") || l.contains("FATAL:")) && !l.contains("due to administrator command") {
            why.push(format!("log: {l}"));
            break;
        }
    }
    s.stop();
    (why.is_empty(), why.join("; "), rows_equal)
}

fn one_case(major: u32, kind: Kind, seed: u64) -> Outcome {
    let mut rng = Rng(seed);
    let (mut c, t, layout) = build(major, &mut rng);
    let (what, after) = damage(kind, &mut c, &mut rng);
    let work = Scratch::new("sweep");
    let mut o = Outcome { note: format!("{layout}; {what}"), ..Default::default() };
    let limit = Duration::from_secs(300);
    let (_, d, _) = run(&["diagnose", "--json", "-D"], &[&c.data], limit);
    let codes: Vec<String> = serde_json::from_str::<serde_json::Value>(&d)
        .ok()
        .and_then(|v| v["findings"].as_array().map(|a| a.iter().filter_map(|f| f["code"].as_str().map(str::to_string)).collect()))
        .unwrap_or_default();
    o.note.push_str(&format!("; diagnose: {}", codes.iter().take(4).cloned().collect::<Vec<_>>().join(",")));
    let plan = work.path().join("plan.json");
    let (mut code, mut out, mut err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data], limit);
    // What a DBA does next when the default plan cannot repair lost WAL or pg_control.
    let unrepaired = |p: &Path| {
        std::fs::read(p)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .map(|v| v["not_repairable"].as_array().map(|a| !a.is_empty()).unwrap_or(false))
            .unwrap_or(true)
    };
    if code != 0 || unrepaired(&plan) {
        let _ = std::fs::remove_file(&plan);
        (code, out, err) = run(&["plan", "--reset-wal", "-o"], &[&plan, Path::new("-D"), &c.data], limit);
        o.note.push_str("; plan --reset-wal");
    }
    let truth_after = after.unwrap_or_else(|| t.clone());
    if code != 0 {
        o.rehearse_verdict = format!("no plan ({code}): {}", (out + &err).lines().next().unwrap_or(""));
    } else {
        let (rc, rout, rerr) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data], Duration::from_secs(900));
        o.rehearse_safe = rc == 0;
        o.rehearse_verdict =
            rout.lines().find(|l| l.starts_with("verdict:")).map(str::to_string).unwrap_or_else(|| format!("exit {rc}: {}", rerr.lines().next().unwrap_or("")));
        let store = work.path().join("store");
        let (ac, aout, aerr) = run(
            &["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"],
            &[&plan, Path::new("--rollback-dir"), &store, Path::new("-D"), &c.data],
            limit,
        );
        if ac != 0 {
            o.note.push_str(&format!("; apply exit {ac}: {}", (aout + &aerr).lines().next().unwrap_or("")));
        }
    }
    let (ok, why, rows) = oracle(&c, &t, &truth_after);
    o.oracle_ok = ok;
    o.oracle_why = why;
    o.rows_equal = rows;
    o
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn sweep() {
    let cases = env_u64("PGSALVAGE_SWEEP_CASES", 1);
    let majors: Vec<u32> = std::env::var("PGSALVAGE_SWEEP_MAJORS").unwrap_or_else(|_| "15".into()).split_whitespace().map(|m| m.parse().unwrap()).collect();
    // A fixed first seed by default, so that the suite is the same on every run; `scripts/sweep`
    // draws a new one each time (and prints it).
    let first = env_u64("PGSALVAGE_SEED", 20261201);
    eprintln!("sweep: {cases} case(s) per kind on {majors:?}, first seed {first} (PGSALVAGE_SEED={first} replays)");
    let mut runs: Vec<(u32, Kind, u64)> = REGRESSIONS.to_vec();
    let mut s = Rng(first);
    for &m in &majors {
        for k in KINDS {
            for _ in 0..cases {
                runs.push((m, k, s.next()));
            }
        }
    }
    // kind -> (cases, safe & ok, not safe & not ok, false safe, false does-not-fix, rows equal
    // truth, "loses nothing" said while rows differ from the truth)
    let mut table: BTreeMap<(u32, Kind), [u32; 7]> = BTreeMap::new();
    let mut unseen_loss = Vec::new();
    let mut disagreements = Vec::new();
    for (major, kind, seed) in runs {
        let o = one_case(major, kind, seed);
        let row = table.entry((major, kind)).or_default();
        row[0] += 1;
        let false_safe = o.rehearse_safe && !o.oracle_ok;
        let false_no_fix = !o.rehearse_safe && o.oracle_ok && o.rehearse_verdict.contains("does not fix");
        match (o.rehearse_safe, o.oracle_ok) {
            (true, true) => row[1] += 1,
            (false, false) => row[2] += 1,
            _ => {}
        }
        row[3] += false_safe as u32;
        row[4] += false_no_fix as u32;
        row[5] += o.rows_equal as u32;
        if o.rehearse_verdict.contains("loses nothing") && !o.rows_equal {
            row[6] += 1;
            unseen_loss.push(format!("PG{major} {kind:?} seed {seed}: {}", o.note));
            // Rows that WAL alone held, when the segment that held them was the last one
            // written, leave no trace in the data directory: no tool can see that loss.
            if kind != Kind::WalSegment {
                disagreements.push(format!("({major}, Kind::{kind:?}, {seed}): said \"loses nothing\" but rows differ from the truth: {}", o.note));
            }
        }
        eprintln!(
            "PG{major} {kind:?} seed {seed}: rehearse {} | oracle {} | rows {} | {}",
            o.rehearse_verdict.chars().take(140).collect::<String>(),
            if o.oracle_ok { "ok".to_string() } else { format!("FAILS: {}", o.oracle_why.chars().take(200).collect::<String>()) },
            if o.rows_equal { "= truth" } else { "differ" },
            o.note
        );
        if false_safe || false_no_fix {
            disagreements.push(format!("({major}, Kind::{kind:?}, {seed}): {} vs oracle {}: {}", o.rehearse_verdict, o.oracle_why, o.note));
        }
    }
    println!("| major | damage | cases | safe, oracle ok | not safe, oracle fails | false safe | false \"does not fix\" | rows = truth | \"loses nothing\", rows differ |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for ((m, k), r) in &table {
        println!("| {m} | {k:?} | {} | {} | {} | {} | {} | {} | {} |", r[0], r[1], r[2], r[3], r[4], r[5], r[6]);
    }
    for u in &unseen_loss {
        println!("said \"loses nothing\", rows differ: {u}");
    }
    assert!(disagreements.is_empty(), "rehearse and the oracle disagree (add these to REGRESSIONS once fixed):\n{}", disagreements.join("\n"));
}
