//! WAL as evidence (issue 18), judged by real servers: a lost segment put back from a
//! compressed archive, and commit statuses read from recycled segments, counted against
//! pg_waldump over the same files renamed to what their pages hold.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = pgsalvage().current_dir(dir).args(args).stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// `rehearse` of plan.json, which must say safe, then `apply` without a snapshot.
fn rehearse_and_apply(w: &Path, d: &str, what: &str) {
    let (code, out) = run(w, &["rehearse", "-D", d, "--plan", "plan.json"]);
    assert!(code == 0 && out.contains("safe to apply"), "{what}: {out}");
    let (code, out) = run(w, &["apply", "-D", d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
}

fn append_conf(c: &Cluster, lines: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(c.data.join("postgresql.conf")).unwrap();
    writeln!(f, "{lines}").unwrap();
}

/// The segment number a WAL file's first page says it holds.
fn page_segno(file: &Path, seg: u64) -> Option<u64> {
    let b = std::fs::read(file).ok()?;
    let addr = u64::from_le_bytes(b.get(8..16)?.try_into().ok()?);
    (u16::from_le_bytes([b[0], b[1]]) != 0 && addr % seg == 0).then_some(addr / seg)
}

/// A crashed cluster with archiving on: a segment between the REDO point and the end of
/// WAL is lost from pg_wal; its archived copy (gzip, zstd, lz4 or plain, at random) is
/// found, put back, and the server replays every committed row.
fn archived_segment(major: u32) {
    let seed = seed();
    let mut s = seed;
    let (tool, ext) = [("gzip -c", ".gz"), ("zstd -q -c", ".zst"), ("lz4 -q -c", ".lz4"), ("cat", "")][(next(&mut s) % 4) as usize];
    let what = format!("PostgreSQL {major}, archive {tool}, seed {seed} (PGSALVAGE_SEED replays it)");
    eprintln!("{what}");
    let mut c = Cluster::new(major, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    let archive = c.scratch.path().join("archive");
    std::fs::create_dir(&archive).unwrap();
    chown_postgres(&archive);
    append_conf(&c, &format!("archive_mode = on\narchive_command = '{tool} %p > {}/%f{ext}'", archive.display()));
    c.start();
    c.sql("create extension amcheck; create table t (id int primary key, v text); checkpoint");
    let batches = 6 + next(&mut s) % 10;
    for i in 0..batches {
        c.sql(&format!("insert into t select g, md5(g::text) from generate_series({}, {}) g", i * 2000, i * 2000 + 1999));
        if next(&mut s) % 3 == 0 {
            c.sql(&format!("delete from t where id % 7 = {}", i % 7));
        }
    }
    let truth = c.sql("select count(*), sum(id), md5(string_agg(v, ',' order by id)) from t");
    let last = c.sql("select pg_walfile_name(pg_switch_wal())");
    c.sql("insert into t values (-1, 'after the switch')");
    let truth_after = c.sql("select count(*), sum(id), md5(string_agg(v, ',' order by id)) from t");
    for _ in 0..600 {
        if c.sql("select coalesce(last_archived_wal, '') from pg_stat_archiver") >= last {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let redo = c.sql("select redo_wal_file from pg_control_checkpoint()");
    c.crash();
    assert_ne!(truth, truth_after);
    // A random segment from the REDO segment to the last archived one.
    let g = pgsalvage::format::wal::WalGeometry::new(1 << 20, 8192).unwrap();
    let (_, a) = g.parse_file_name(&redo).unwrap();
    let (_, b) = g.parse_file_name(&last).unwrap();
    let lost = g.file_name(1, a + next(&mut s) % (b - a + 1));
    assert!(archive.join(format!("{lost}{ext}")).exists(), "{what}: {lost} was not archived");
    std::fs::remove_file(c.data.join("pg_wal").join(&lost)).unwrap();
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let arch = archive.display().to_string();
    // Without the archive: the loss is named; with it, a copy.
    let (code, out) = run(&w, &["check", "-D", &d]);
    assert_eq!(code, 1, "{what}: {out}");
    let (code, out) = run(&w, &["check", "-D", &d, "--wal-archive", &arch, "--json"]);
    assert_eq!(code, 1, "{what}: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(out.contains("a whole copy of it is in"), "{what}: {out}");
    assert!(v["wal_inventory"]["files"].as_array().unwrap().iter().any(|f| f["place"] == "archive"), "{what}");
    let (code, out) = run(&w, &["plan", "-D", &d, "--wal-archive", &arch, "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    assert!(out.contains("restore-wal-segment") && out.contains("loses: nothing"), "{what}: {out}");
    rehearse_and_apply(&w, &d, &what);
    let (up, log) = c.try_start();
    assert!(up, "{what}: {log}");
    assert_eq!(c.sql("select count(*), sum(id), md5(string_agg(v, ',' order by id)) from t"), truth_after, "{what}: rows after apply");
    c.sql("select bt_index_check('t_pkey', true); checkpoint");
    c.stop();
    c.start();
    assert_eq!(c.sql("select count(*) from t where id = -1"), "1", "{what}");
    c.stop();
}

#[test]
fn archived_segment_is_put_back() {
    for major in some_majors(&[11, 15, 18]) {
        if major >= 11 {
            archived_segment(major);
        }
    }
}

/// pg_waldump's count: the distinct xids of COMMIT and ABORT records (subtransactions
/// included) in every WAL file of `pg_wal`, each copied under the name its pages give it.
fn waldump_outcomes(pg_wal: &Path, work: &Path, seg: u64) -> std::collections::BTreeSet<u32> {
    let dir = work.join("renamed");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let g = pgsalvage::format::wal::WalGeometry::new(seg as u32, 8192).unwrap();
    let mut names = vec![];
    for e in std::fs::read_dir(pg_wal).unwrap().flatten() {
        if e.file_type().unwrap().is_file() {
            if let Some(segno) = page_segno(&e.path(), seg) {
                let name = g.file_name(1, segno);
                std::fs::copy(e.path(), dir.join(&name)).unwrap();
                names.push(name);
            }
        }
    }
    let mut xids = std::collections::BTreeSet::new();
    let re = regex::Regex::new(r"(COMMIT|ABORT)").unwrap();
    let num = regex::Regex::new(r"tx:\s+(\d+)").unwrap();
    let subs = regex::Regex::new(r"subxacts: ([\d ]+)").unwrap();
    for n in names {
        let o = Command::new(PgBin::system_tool("pg_waldump")).args(["-p"]).arg(&dir).args(["-r", "Transaction", &n, &n]).output().unwrap();
        for line in String::from_utf8_lossy(&o.stdout).lines().filter(|l| re.is_match(l)) {
            if let Some(x) = num.captures(line).and_then(|c| c[1].parse::<u32>().ok()).filter(|&x| x != 0) {
                xids.insert(x);
            }
            if let Some(c) = subs.captures(line) {
                xids.extend(c[1].split_whitespace().filter_map(|x| x.parse::<u32>().ok()));
            }
            // COMMIT PREPARED names the prepared xid in the description.
        }
    }
    xids
}

/// pgbench with recycling on, a checkpoint mid-way, a crash, pg_xact/0000 removed. The
/// statuses the plan takes from WAL cover what pg_waldump finds in the same files (≥ 99 %),
/// and after apply the server holds every committed row.
#[test]
fn statuses_from_recycled_wal() {
    for major in some_majors(&[12, 15, 18]).into_iter().filter(|&m| m >= 12) {
        recycled_wal(major);
    }
}

fn recycled_wal(major: u32) {
    let mut c = Cluster::new(major, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    append_conf(&c, "wal_recycle = on\nmin_wal_size = 256MB\nmax_wal_size = 512MB");
    c.start();
    c.pgbench_init(1);
    c.pgbench_run(1500);
    c.sql("checkpoint");
    c.pgbench_run(50);
    let truth = c.sql("select (select count(*) from pgbench_history), (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers)");
    let history_file = c.relpath("pgbench_history");
    c.crash();
    let w = c.scratch.path().to_path_buf();
    std::fs::rename(c.data.join("pg_xact/0000"), w.join("xact-0000")).unwrap();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["diagnose", "-D", &d]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("do not start this cluster"), "{out}");
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert!(code == 0 || code == 1, "{out}");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("plan.json")).unwrap()).unwrap();
    let a = plan["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "synthesize-xact").unwrap_or_else(|| panic!("{out}"));
    let src = &a["sources"];
    let (first, last) = (a["first_xid"].as_u64().unwrap() as u32, a["last_xid"].as_u64().unwrap() as u32);
    // pg_waldump 15 reads the WAL of 15 only.
    let dumped: Vec<u32> =
        if major == 15 { waldump_outcomes(&c.data.join("pg_wal"), &w, 1 << 20).into_iter().filter(|x| (first..=last).contains(x)).collect() } else { vec![] };
    let from_wal = src["from_wal"].as_u64().unwrap();
    // Statuses read in files whose pages are an older segment than their name (recycled).
    let g = pgsalvage::format::wal::WalGeometry::new(1 << 20, 8192).unwrap();
    let recycled: u64 = src["wal_files"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(f, _)| {
            let name = f.trim_start_matches("pg_wal/");
            g.parse_file_name(name).map(|n| n.1) != page_segno(&c.data.join(f.as_str()), 1 << 20)
        })
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    eprintln!("statuses read in recycled files: {recycled}");
    assert!(recycled > 0, "no status came from a recycled file: {}", src["wal_files"]);
    eprintln!(
        "PostgreSQL {major}: pg_waldump: {} xids with COMMIT/ABORT in {first}..{last}; plan: {from_wal} from WAL, {} from hint bits, {} from the policy",
        dumped.len(),
        src["from_hint_bits"],
        src["from_policy"]
    );
    assert!(major != 15 || dumped.len() > 500, "the test must leave commits in recycled segments: {}", dumped.len());
    // Every xid pg_waldump finds, the plan takes from WAL (or from a hint bit, checked first
    // is WAL: so from_wal counts them all).
    let by_xid = src["by_xid"].as_array().unwrap();
    let source_of =
        |x: u32| by_xid.iter().find(|r| r[0].as_u64().unwrap() as u32 <= x && x <= r[1].as_u64().unwrap() as u32).map(|r| r[2].as_str().unwrap().to_string());
    let from_wal_too = dumped.iter().filter(|&&x| source_of(x).is_some_and(|s| s.starts_with("pg_wal/"))).count();
    assert!(from_wal_too * 100 >= dumped.len() * 99, "{from_wal_too} of {} pg_waldump xids taken from WAL", dumped.len());
    let (code, out) = run(&w, &["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{out}");
    // The row versions the policy hides are in the salvage file, as found.
    let store = regex::Regex::new(r"rollback store (\S+)").unwrap().captures(&out).map(|c| c[1].to_string()).unwrap();
    let salvage = std::fs::read_to_string(Path::new(&store).join("salvage.csv")).unwrap_or_default();
    let hidden = salvage.lines().filter(|l| l.contains(&history_file) && l.contains("policy-hides")).count() as i64;
    let (up, log) = c.try_start();
    assert!(up, "{log}");
    let after = c.sql("select (select count(*) from pgbench_history), (select sum(abalance) from pgbench_accounts), (select sum(bbalance) from pgbench_branches), (select sum(tbalance) from pgbench_tellers)");
    // Rows whose transaction left no evidence anywhere are the policy's: the plan lists
    // them per table, and no more are lost.
    let listed = |table: &str| -> i64 {
        let loss = a["data_loss"].as_str().unwrap();
        regex::Regex::new(&format!(r"public\.{table} (\d+)")).unwrap().captures(loss).map(|c| c[1].parse().unwrap()).unwrap_or(0)
    };
    let n = |s: &str| s.split('|').next().unwrap().parse::<i64>().unwrap();
    eprintln!("history rows: {} before the crash, {} after apply; the plan listed {} as the policy's", n(&truth), n(&after), listed("pgbench_history"));
    assert!(n(&truth) - n(&after) <= listed("pgbench_history"), "{after} against {truth}: {}", a["data_loss"]);
    eprintln!("history row versions in salvage.csv as hidden by the policy: {hidden}");
    assert!(hidden >= n(&truth) - n(&after), "{hidden} history rows in salvage.csv, {} lost", n(&truth) - n(&after));
    if src["from_policy"].as_u64() == Some(0) || !a["data_loss"].as_str().unwrap().contains("public.") {
        assert_eq!(after, truth, "rows after apply against the truth before the crash");
    }
    c.stop();
}

/// A byte flipped at random in the tuples of a table page whose latest change carries a
/// full-page image: after a clean stop, the plan restores the page from WAL (recycled
/// segments included) and the rows equal the truth; after a crash, diagnose says recovery
/// overwrites the page, and starting the server is the whole repair.
fn page_from_image(major: u32, crash: bool) {
    let seed = seed();
    let mut s = seed;
    let what = format!("PostgreSQL {major}, {}, seed {seed} (PGSALVAGE_SEED replays it)", if crash { "crashed" } else { "stopped" });
    eprintln!("{what}");
    let mut c = Cluster::new(major, InitOpts { checksums: true, ..Default::default() });
    c.start();
    c.sql("create extension amcheck; create table t (id int primary key, v text) with (fillfactor = 50); insert into t select g, md5(g::text) from generate_series(1, 3000) g");
    c.sql("vacuum t");
    c.sql("checkpoint");
    // A HOT update of a random row (hint bits were set before the checkpoint): the first
    // change of its page after the checkpoint, so its record carries the page's image.
    let id = 1 + next(&mut s) % 2500;
    c.sql(&format!("update t set v = 'changed {id}' where id = {id}"));
    let ctid = c.sql(&format!("select ctid from t where id = {id}"));
    let block: u64 = ctid.trim_matches(|ch| ch == '(' || ch == ')').split(',').next().unwrap().parse().unwrap();
    let truth = c.sql("select count(*), md5(string_agg(v, ',' order by id)) from t");
    let path = c.data.join(c.relpath("t"));
    if crash {
        c.crash();
    } else {
        c.stop();
    }
    // A byte in the tuple area of that page (pd_upper .. 8192), changed.
    let page = std::fs::read(&path).unwrap()[(block * 8192) as usize..((block + 1) * 8192) as usize].to_vec();
    let upper = u16::from_le_bytes([page[14], page[15]]) as u64;
    let off = block * 8192 + upper + next(&mut s) % (8192 - upper);
    let old = page[(off - block * 8192) as usize];
    scribble(&path, off, &[old ^ (1 + (next(&mut s) % 255) as u8)]);
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["diagnose", "-D", &d, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: {e}: {out}"));
    let said = |f: &serde_json::Value, s: &str| {
        f["title"].as_str().unwrap().contains(s) || f["evidence"].as_array().unwrap().iter().any(|e| e.as_str().unwrap().contains(s))
    };
    let on_block: Vec<&serde_json::Value> = v["findings"].as_array().unwrap().iter().filter(|f| f["block"].as_u64() == Some(block)).collect();
    assert!(!on_block.is_empty(), "{what}: no finding on block {block}: {out}");
    if crash {
        assert_eq!(code, 0, "{what}: {out}");
        assert!(on_block.iter().all(|f| said(f, "crash recovery overwrites this block") && f["severity"] == "info"), "{what}: {out}");
    } else {
        assert_eq!(code, 1, "{what}: {out}");
        assert!(on_block.iter().all(|f| said(f, "no later record touches the block")), "{what}: {out}");
        let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
        assert_eq!(code, 0, "{what}: {out}");
        assert!(out.contains("restore-page") && !out.contains("zero-page") && !out.contains("kill-tuples"), "{what}: {out}");
        rehearse_and_apply(&w, &d, &what);
    }
    let (up, log) = c.try_start();
    assert!(up, "{what}: {log}");
    assert_eq!(c.sql("select count(*), md5(string_agg(v, ',' order by id)) from t"), truth, "{what}: rows");
    if major >= 14 {
        assert_eq!(c.sql("select count(*) from verify_heapam('t')"), "0", "{what}: verify_heapam");
    }
    c.sql(if major >= 11 { "select bt_index_check('t_pkey', true)" } else { "select bt_index_check('t_pkey')" });
    c.sql("checkpoint");
    c.stop();
}

#[test]
fn page_restored_from_full_page_image() {
    for major in some_majors(&[10, 15, 18]) {
        page_from_image(major, false);
        page_from_image(major, true);
    }
}

/// A CHECKPOINT, a switch to a new segment, work there, a crash, and the segment holding the
/// REDO point lost. When nothing but the checkpoint was written before the switch, the
/// surviving WAL proves the lost segment's content: rebuilt, recovery replays the rest and
/// no row is lost. When the lost segment held a change too (`held`), no rebuild is offered;
/// the reset's loss, listed from the surviving WAL per table, equals what the server lost.
fn lost_redo_segment(major: u32, held: bool) {
    let what = format!("PostgreSQL {major}, {}", if held { "the lost segment held a change" } else { "nothing but the checkpoint" });
    eprintln!("{what}");
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table t1 (id int primary key, v text); create table t2 (id int primary key, n int); create table t3 (id int primary key); create table t4 (id int)");
    c.sql("insert into t2 select g, 0 from generate_series(1, 500) g; insert into t3 select generate_series(1, 500)");
    c.sql("checkpoint");
    if held {
        c.sql("insert into t4 select generate_series(1, 10)");
    }
    c.sql("select pg_switch_wal()");
    c.sql("insert into t1 select g, md5(g::text) from generate_series(1, 1500) g");
    c.sql("insert into t1 select g, md5(g::text) from generate_series(1501, 3000) g");
    c.sql("update t2 set n = 1 where id <= 60");
    c.sql("update t2 set n = 2 where id > 60 and id <= 100");
    c.sql("delete from t3 where id <= 30");
    c.sql("delete from t3 where id > 30 and id <= 50");
    let count = "select (select count(*) from t1), (select count(*) from t2 where n > 0), (select count(*) from t3), (select count(*) from t4)";
    let truth = c.sql(count);
    let redo = c.sql("select redo_wal_file from pg_control_checkpoint()");
    c.crash();
    std::fs::rename(c.data.join("pg_wal").join(&redo), c.scratch.path().join(&redo)).unwrap();
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    if !held {
        let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
        assert_eq!(code, 0, "{what}: {out}");
        assert!(out.contains("rebuild-wal-segment") && !out.contains("reset-wal on"), "{what}: {out}");
        rehearse_and_apply(&w, &d, &what);
        let (up, log) = c.try_start();
        assert!(up, "{what}: {log}");
        assert_eq!(c.sql(count), truth, "{what}: rows after apply");
        c.sql("checkpoint");
        c.stop();
        return;
    }
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert_eq!(code, 1, "{what}: without --reset-wal the loss is not planned: {out}");
    assert!(!out.contains("rebuild-wal-segment"), "{what}: {out}");
    std::fs::remove_file(w.join("plan.json")).unwrap();
    let (code, out) = run(&w, &["plan", "-D", &d, "--reset-wal", "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("plan.json")).unwrap()).unwrap();
    let loss = plan["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "reset-wal").map(|a| a["data_loss"].as_str().unwrap().to_string()).unwrap();
    // The oracle is the SQL above: 6 transactions after the switch.
    for want in ["6 transactions", "public.t1 3000 inserted", "public.t2 100 updated", "public.t3 50 deleted"] {
        assert!(loss.contains(want), "{what}: {want:?} not in the listed loss: {loss}");
    }
    let (code, out) = run(&w, &["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
    let (up, log) = c.try_start();
    assert!(up, "{what}: {log}");
    let n = |s: &str| s.split('|').map(|x| x.parse::<i64>().unwrap()).collect::<Vec<_>>();
    let (before, after) = (n(&truth), n(&c.sql(count)));
    eprintln!("{what}: rows before the crash {before:?}, after the reset {after:?}");
    // What the server lost per table equals the listed loss for the tables the surviving
    // WAL shows; t4's insert was in the lost segment, which nothing can list.
    assert_eq!(before[0] - after[0], 3000, "{what}: t1");
    assert_eq!(before[1] - after[1], 100, "{what}: t2");
    assert_eq!(after[2] - before[2], 50, "{what}: t3");
    c.sql("checkpoint");
    c.stop();
}

#[test]
fn lost_redo_segment_rebuilt_or_listed() {
    for major in some_majors(&[11, 15, 18]) {
        lost_redo_segment(major, false);
        lost_redo_segment(major, true);
    }
}

/// Two timelines: work on timeline 1, a promotion (timeline 2, `00000002.history`), more
/// work, a crash, pg_xact/0000 removed. The statuses come from the WAL of both timelines,
/// read by their page headers (the first segment of timeline 2 holds timeline 1's pages
/// before the switch), and the server keeps every committed row.
fn two_timelines(major: u32) {
    let what = format!("PostgreSQL {major}, promoted to timeline 2");
    eprintln!("{what}");
    let mut c = Cluster::new(major, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    append_conf(&c, "wal_recycle = on\nmin_wal_size = 64MB\nmax_wal_size = 128MB\nrestore_command = 'false'");
    c.start();
    c.sql("create table t (id int primary key, tli int)");
    for i in 0..200 {
        c.sql(&format!("insert into t values ({i}, 1)"));
    }
    c.stop();
    std::fs::write(c.data.join("standby.signal"), "").unwrap();
    chown_postgres(&c.data.join("standby.signal"));
    c.start();
    run_ok(as_postgres(Command::new(c.bin.tool("pg_ctl")).arg("-D").arg(&c.data).args(["-w", "promote"])));
    for _ in 0..100 {
        if c.sql("select pg_is_in_recovery()") == "f" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(c.sql("select timeline_id from pg_control_checkpoint()"), "2", "{what}");
    for i in 200..400 {
        c.sql(&format!("insert into t values ({i}, 2)"));
    }
    // A checkpoint on timeline 2: the statuses before it must come from WAL of both.
    c.sql("checkpoint");
    for i in 400..420 {
        c.sql(&format!("insert into t values ({i}, 2)"));
    }
    let truth = c.sql("select count(*), sum(id), sum(tli) from t");
    c.crash();
    assert!(c.data.join("pg_wal/00000002.history").exists(), "{what}");
    let w = c.scratch.path().to_path_buf();
    std::fs::rename(c.data.join("pg_xact/0000"), w.join("xact-0000")).unwrap();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["inspect", "-D", &d]);
    assert!(code == 0 || code == 1, "{what}: {out}");
    assert!(out.contains("timeline 2 history: 1 until"), "{what}: {out}");
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert!(code == 0 || code == 1, "{what}: {out}");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("plan.json")).unwrap()).unwrap();
    let a = plan["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "synthesize-xact").unwrap_or_else(|| panic!("{what}: {out}"));
    let files: Vec<&String> = a["sources"]["wal_files"].as_object().unwrap().keys().collect();
    eprintln!(
        "{what}: {} from WAL ({files:?}), {} from hint bits, {} from the policy",
        a["sources"]["from_wal"], a["sources"]["from_hint_bits"], a["sources"]["from_policy"]
    );
    assert!(files.iter().any(|f| f.contains("pg_wal/00000002")), "{what}: no status from timeline 2's files: {files:?}");
    let (code, out) = run(&w, &["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
    std::fs::remove_file(c.data.join("standby.signal")).ok();
    let (up, log) = c.try_start();
    assert!(up, "{what}: {log}");
    assert_eq!(c.sql("select count(*), sum(id), sum(tli) from t"), truth, "{what}: rows after apply");
    c.stop();
}

#[test]
fn statuses_from_two_timelines() {
    for major in some_majors(&[12, 18]).into_iter().filter(|&m| m >= 12) {
        two_timelines(major);
    }
}

/// `--page-source`: a copy of the data directory taken after the page's last change holds it
/// with the same LSN and replaces the damaged page (WAL cannot: its latest image of the
/// block is followed by another change); a copy taken before that change is older, named,
/// and not used.
fn page_from_copy(major: u32, older: bool) {
    let seed = seed();
    let mut s = seed;
    let what = format!("PostgreSQL {major}, {} copy, seed {seed}", if older { "an older" } else { "a current" });
    eprintln!("{what}");
    let mut c = Cluster::new(major, InitOpts { checksums: true, ..Default::default() });
    c.start();
    c.sql("create extension amcheck; create table t (id int primary key, v text) with (fillfactor = 50); insert into t select g, md5(g::text) from generate_series(1, 3000) g");
    c.sql("vacuum t");
    c.sql("checkpoint");
    let id = 1 + next(&mut s) % 2900;
    // Two changes to one page: the first carries its image, the second does not.
    c.sql(&format!("update t set v = 'one' where id = {id}"));
    let copy = c.scratch.path().join("copy");
    if older {
        c.stop();
        run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&copy));
        c.start();
    }
    c.sql(&format!("update t set v = 'two' where id = {id}"));
    let ctid = c.sql(&format!("select ctid from t where id = {id}"));
    let block: u64 = ctid.trim_matches(|ch| ch == '(' || ch == ')').split(',').next().unwrap().parse().unwrap();
    let truth = c.sql("select count(*), md5(string_agg(v, ',' order by id)) from t");
    let path = c.data.join(c.relpath("t"));
    c.stop();
    if !older {
        run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&copy));
    }
    let page = std::fs::read(&path).unwrap()[(block * 8192) as usize..((block + 1) * 8192) as usize].to_vec();
    let upper = u16::from_le_bytes([page[14], page[15]]) as u64;
    let off = block * 8192 + upper + next(&mut s) % (8192 - upper);
    scribble(&path, off, &[page[(off - block * 8192) as usize] ^ 0x10]);
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let cp = copy.display().to_string();
    let (code, out) = run(&w, &["plan", "-D", &d, "--page-source", &cp, "-o", "plan.json"]);
    if older {
        assert_eq!(code, 1, "{what}: {out}");
        assert!(!out.contains("restore-page"), "{what}: {out}");
        let (_, out) = run(&w, &["diagnose", "-D", &d, "--page-source", &cp, "--json"]);
        assert!(out.contains("the copy is older"), "{what}: {out}");
        return;
    }
    assert_eq!(code, 0, "{what}: {out}");
    let plan: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("plan.json")).unwrap()).unwrap();
    let a = plan["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "restore-page").unwrap_or_else(|| panic!("{what}: {out}"));
    assert!(a["source"].as_str().unwrap().starts_with(&cp), "{what}: restored from {}", a["source"]);
    rehearse_and_apply(&w, &d, &what);
    let (up, log) = c.try_start();
    assert!(up, "{what}: {log}");
    assert_eq!(c.sql("select count(*), md5(string_agg(v, ',' order by id)) from t"), truth, "{what}: rows");
    if major >= 14 {
        assert_eq!(c.sql("select count(*) from verify_heapam('t')"), "0", "{what}: verify_heapam");
    }
    c.stop();
}

#[test]
fn page_restored_from_a_copy() {
    for major in some_majors(&[11, 16]) {
        page_from_copy(major, false);
        page_from_copy(major, true);
    }
}
