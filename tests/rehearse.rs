//! `pgsalvage rehearse`: a plan that fixes the damage gets "safe to apply" from a real
//! server on the copy; an incomplete plan gets "does not fix" with the server's own error;
//! the original data directory is unchanged either way (contents, modes, mtimes).
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::cli as run;
use common::*;
use std::path::{Path, PathBuf};

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
    if major == 15 {
        assert!(out.contains("[ok] amcheck of postgres (verify_heapam, bt_index_check)") && out.contains("[ok] CHECKPOINT"), "{out}");
        screenshot_shows_the_map(&work.path().join("report.html"), &work.path().join("report.png"));
        // Interrupted (SIGKILL) at several moments: the original stays as it was, and the
        // next rehearsal removes the work directories the killed ones left.
        let wd = tempfile::tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(wd.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        for ms in [50u64, 300, 1500] {
            let mut child = pgsalvage()
                .args(["rehearse", "--plan"])
                .arg(&full)
                .arg("-D")
                .arg(&c.data)
                .arg("--workdir")
                .arg(wd.path())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = child.kill();
            let _ = child.wait();
            assert_same_tree(&before, &tree_state(&c.data), &format!("rehearse killed after {ms} ms changed the original"));
        }
        let left = || std::fs::read_dir(wd.path()).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("pgsalvage-rehearse-")).count();
        let killed_left = left();
        let o = pgsalvage().args(["rehearse", "--plan"]).arg(&full).arg("-D").arg(&c.data).arg("--workdir").arg(wd.path()).output().unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{out}");
        assert_eq!(left(), 0, "the work directories of {killed_left} killed rehearsals stay");
        if killed_left > 0 {
            assert!(out.contains("left in") && out.contains("by rehearsals that were killed"), "{out}");
        }
    }
}

/// The HTML report in headless Chromium: the screenshot has the map's coloured blocks.
fn screenshot_shows_the_map(html: &Path, png: &Path) {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is needed for the report screenshot test (scripts/test installs it)");
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=900,700",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(png.exists(), "no screenshot: {}", String::from_utf8_lossy(&out.stderr));
    let decoder = png::Decoder::new(std::fs::File::open(png).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let px = info.color_type.samples();
    // The repaired blocks are drawn #5cb85c (a green no other element uses).
    let green = buf.chunks(px).filter(|p| p[0] == 0x5c && p[1] == 0xb8 && p[2] == 0x5c).count();
    assert!(green > 500, "the map's blocks are not in the screenshot ({green} green pixels)");
}

per_major!(rehearse_kinds: rehearse_pg10 = 10, rehearse_pg15 = 15, rehearse_pg18 = 18);

/// Lost pg_xact and lost WAL: the plans that fix them get "safe to apply" (pg_dump included).
#[test]
fn rehearse_clog_and_wal_repairs() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table t as select g from generate_series(1, 100) g");
    c.stop();
    std::fs::remove_file(c.data.join("pg_xact/0000")).unwrap();
    let work = Scratch::new("rehearse2");
    let plan = work.path().join("p.json");
    let (code, _, err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[ok] pg_dump of postgres"), "{out}");
    // The same from a snapshot instead of a copy.
    let snap = work.path().join("s.tar.zst");
    let (code, _, err) = run(&["snapshot", "create", "-o"], &[&snap, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("--from-snapshot"), &snap, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("restored") && out.contains("verdict: safe to apply"), "{out}");
    let c = lost_wal_segment();
    let before = tree_state(&c.data);
    let plan = work.path().join("w.json");
    let (code, _, err) = run(&["plan", "--reset-wal", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: safe to apply; loses:") && out.contains("every transaction whose WAL is at or after"), "{out}");
    assert_same_tree(&before, &tree_state(&c.data), "rehearse changed the original");
}

/// A checksum failure (accepted by opt-in) and a destroyed pg_control (rebuilt): rehearsed.
#[test]
fn rehearse_checksum_and_control_rebuild() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.pgbench_init(1);
    c.sql("checkpoint");
    let rel = c.relpath("pgbench_accounts");
    c.stop();
    let f = c.data.join(&rel);
    let b = std::fs::read(&f).unwrap();
    scribble(&f, 5 * 8192 + 7000, &[b[5 * 8192 + 7000] ^ 0x01]);
    let work = Scratch::new("rehearse3");
    let (plain, accepted) = (work.path().join("plain.json"), work.path().join("accept.json"));
    let (code, _, err) = run(&["plan", "-o"], &[&plain, Path::new("-D"), &c.data]);
    assert_eq!(code, 1, "the checksum failure is left unrepaired without the opt-in: {err}");
    // Without the opt-in the checksum failure stays: the verdict says so.
    let (code, out, _) = run(&["rehearse", "--plan"], &[&plain, Path::new("-D"), &c.data]);
    assert_eq!(code, 1);
    assert!(out.contains("page verification failed") || out.contains("unrepaired"), "{out}");
    let (code, _, err) = run(&["plan", "--accept-checksum-failures", "-o"], &[&accepted, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&accepted, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("THE CONTENT MAY BE WRONG"), "{out}");
    // pg_control destroyed: rebuilt from guesses and reset.
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table kept as select g from generate_series(1, 3000) g");
    c.sql("checkpoint");
    c.stop();
    std::fs::write(c.data.join("global/pg_control"), vec![0u8; 8192]).unwrap();
    let plan = work.path().join("rebuild.json");
    let (code, _, err) = run(&["plan", "--reset-wal", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("[ok] pg_dump of postgres"), "{out}");
}

/// 24 random bytes over a page header (the damage that made an old rebuild keep a pd_lsn
/// past the end of WAL): the plan rebuilds the whole header, the rehearsal's server
/// checkpoints, and a plan edited to keep such a pd_lsn gets "does not fix" with the
/// server's own "xlog flush request" instead of "safe".
#[test]
fn rehearse_judges_by_the_server() {
    let mut rng = seed();
    eprintln!("seed {rng}");
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table ziplog (id int primary key, v text); insert into ziplog select g, md5(g::text) from generate_series(1, 20000) g");
    c.sql("vacuum ziplog");
    // A table nothing has read since it was written: its tuples carry no hint bits, so the
    // rehearsal's first read dirties its pages.
    c.sql("create table fresh as select g as id, md5(g::text) as v from generate_series(1, 5000) g");
    c.sql("checkpoint");
    let (rel, fresh) = (c.relpath("ziplog"), c.relpath("fresh"));
    c.stop();
    let block = 1 + next(&mut rng) % 100;
    let junk: Vec<u8> = (0..24).map(|_| next(&mut rng) as u8).collect();
    scribble(&c.data.join(&rel), block * 8192, &junk);
    let junk: Vec<u8> = (0..24).map(|_| next(&mut rng) as u8).collect();
    scribble(&c.data.join(&fresh), 2 * 8192, &junk);
    let work = Scratch::new("rehearse-truth");
    let plan = work.path().join("plan.json");
    let (code, _, err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let mut p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let rebuilds: Vec<usize> =
        p["actions"].as_array().unwrap().iter().enumerate().filter(|(_, a)| a["kind"] == "rebuild-page-header").map(|(i, _)| i).collect();
    assert_eq!(rebuilds.len(), 2, "block {block}: two header rebuilds: {p}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "block {block}: {out}{err}");
    for line in [
        "[ok] CHECKPOINT",
        "[ok] fast shutdown exits 0 and pg_control says \"shut down\"",
        "[ok] second start needs no recovery",
        "[ok] no ERROR, FATAL or PANIC",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    // The old rebuild's mistake, planted: a pd_lsn far past the end of WAL.
    for i in rebuilds {
        p["actions"][i]["header"]["lsn"] = serde_json::json!(0x188F_6000_0CD1_7ECAu64);
    }
    let bad = work.path().join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&p).unwrap()).unwrap();
    let (code, out, err) = run(&["rehearse", "--plan"], &[&bad, Path::new("-D"), &c.data]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("verdict: does not fix") && out.contains("is past the end of WAL"), "{out}");
    assert!(out.contains("[FAILED] pd_lsn of the"), "{out}");
    // The server's own words, where it wrote the page itself (hint bits set by the first read
    // of `fresh`): the checkpoint fails.
    assert!(out.contains("[FAILED] CHECKPOINT") && out.contains("xlog flush request"), "{out}");
    // The good plan applied for real: the server starts, checkpoints, pg_amcheck is clean,
    // a fast stop is clean.
    let o = pgsalvage()
        .args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"])
        .arg(&plan)
        .arg("--rollback-dir")
        .arg(work.path().join("store"))
        .arg("-D")
        .arg(&c.data)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    c.start();
    assert_eq!(c.sql("select count(*) from ziplog"), "20000");
    assert_eq!(c.sql("select count(*) from fresh"), "5000");
    c.sql("update ziplog set v = v || 'x' where id % 7 = 0");
    c.sql("checkpoint");
    let am = Command::new(PgBin::system_tool("pg_amcheck"))
        .arg("-h")
        .arg(&c.sockdir)
        .args(["-p", &c.port.to_string(), "-U", "postgres", "--heapallindexed", "--install-missing", "postgres"])
        .output()
        .unwrap();
    assert!(am.status.success(), "pg_amcheck: {}{}", String::from_utf8_lossy(&am.stdout), String::from_utf8_lossy(&am.stderr));
    c.stop();
    let cd = Command::new(PgBin::system_tool("pg_controldata")).arg(&c.data).output().unwrap();
    assert!(String::from_utf8_lossy(&cd.stdout).contains("Database cluster state:               shut down"));
}

use std::process::Command;

/// Data directories laid out as DBAs lay them out: pg_wal and a tablespace behind relative
/// links, another tablespace behind an absolute one. The rehearsal copies what the links
/// point at (resolved from the original's place) and never writes there.
#[test]
fn rehearse_every_layout() {
    let mut c = Cluster::new(15, InitOpts::default());
    let outer = c.scratch.path().to_path_buf();
    for d in ["ts_abs", "ts_rel"] {
        std::fs::create_dir(outer.join(d)).unwrap();
    }
    chown_postgres(&outer);
    c.start();
    c.sql(&format!("create tablespace ts_abs location '{}'", outer.join("ts_abs").display()));
    c.sql(&format!("create tablespace ts_rel location '{}'", outer.join("ts_rel").display()));
    c.sql("create table a (id int primary key, v text) tablespace ts_abs; insert into a select g, md5(g::text) from generate_series(1, 5000) g");
    c.sql("create table r (id int primary key, v text) tablespace ts_rel; insert into r select g, md5(g::text) from generate_series(1, 5000) g");
    c.sql("checkpoint");
    let (ra, rr) = (c.relpath("a"), c.relpath("r"));
    let rel_oid = c.sql("select oid from pg_tablespace where spcname = 'ts_rel'");
    c.stop();
    // pg_wal moved out, behind a relative link; ts_rel's link made relative.
    std::fs::create_dir(outer.join("walfs")).unwrap();
    std::fs::rename(c.data.join("pg_wal"), outer.join("walfs/pg_wal")).unwrap();
    std::os::unix::fs::symlink("../walfs/pg_wal", c.data.join("pg_wal")).unwrap();
    let link = c.data.join("pg_tblspc").join(&rel_oid);
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../ts_rel", &link).unwrap();
    chown_postgres(&outer);
    // The server itself accepts the layout.
    c.start();
    assert_eq!(c.sql("select count(*) from a") + &c.sql("select count(*) from r"), "50005000");
    c.stop();
    // Damage in both tablespaces.
    garble_xmin(&c.data.join(&ra), 2, 4294692688, true);
    garble_xmin(&c.data.join(&rr), 3, 4294692688, true);
    let watched: Vec<PathBuf> = ["data", "walfs", "ts_abs", "ts_rel"].iter().map(|d| outer.join(d)).collect();
    let before: Vec<_> = watched.iter().map(|d| tree_state(d)).collect();
    let work = Scratch::new("layout");
    let plan = work.path().join("plan.json");
    let (code, _, err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: safe to apply"), "{out}");
    for (d, b) in watched.iter().zip(&before) {
        assert_same_tree(b, &tree_state(d), &format!("rehearse wrote into {}", d.display()));
    }
    // The same through the CLI from another working directory, with a relative -D.
    let o = pgsalvage().current_dir(&outer).args(["rehearse", "--plan"]).arg(&plan).args(["-D", "data"]).output().unwrap();
    assert!(o.status.success(), "{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
}

/// A cluster whose bootstrap superuser is not `postgres` (initdb -U admin, or a rename):
/// the rehearsal finds the name in pg_authid offline and connects as it (found walking the
/// README as a new DBA: every check failed with `role "postgres" does not exist`).
#[test]
fn rehearse_with_another_superuser_name() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    c.sql("create role tmp superuser login");
    let o = c.psql_cmd("postgres").args(["-U", "tmp", "-c", "alter role postgres rename to admin"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rel = c.psql_cmd("postgres").args(["-U", "tmp", "-c", "select pg_relation_filepath('ziplog')"]).output().unwrap();
    let rel = String::from_utf8_lossy(&rel.stdout).trim().to_string();
    let o = c.psql_cmd("postgres").args(["-U", "tmp", "-c", "drop role tmp"]).output().unwrap();
    assert!(!o.status.success(), "a role cannot drop itself; it stays, harmless");
    let stop = as_postgres(Command::new(c.bin.tool("pg_ctl")).arg("-D").arg(&c.data).args(["-w", "-m", "fast", "stop"])).output().unwrap();
    assert!(stop.status.success());
    let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
    let (ctl, _, _) = dd.control().unwrap();
    assert_eq!(pgsalvage::catalog::bootstrap_superuser(&dd, &ctl).as_deref(), Some("admin"));
    garble_xmin(&c.data.join(&rel), 3, 4294692688, true);
    let work = Scratch::new("superuser");
    let plan = work.path().join("plan.json");
    let (code, _, err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verdict: safe to apply") && out.contains("rows of public.ziplog in postgres (touched by A1): 20000"), "{out}");
}

/// Refusals come before anything is copied: a live postmaster, a plan for another cluster,
/// a work directory without room (it says how much is needed).
#[test]
fn rehearse_refuses_before_copying() {
    let (mut c, rel) = ziplog_cluster(15, false);
    garble_xmin(&c.data.join(&rel), 3, 4294692688, true);
    let work = Scratch::new("refuse");
    let plan = work.path().join("plan.json");
    let (code, _, err) = run(&["plan", "-o"], &[&plan, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let wd = work.path().join("wd");
    std::fs::create_dir(&wd).unwrap();
    let empty = |what: &str| assert_eq!(std::fs::read_dir(&wd).unwrap().count(), 0, "{what}: something was copied");
    // Another cluster's plan.
    let other = Cluster::new(15, InitOpts { checksums: false, wal_segsize_mb: None }); // another initdb: another system identifier
    let (code, _, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("--workdir"), &wd, Path::new("-D"), &other.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the plan is for cluster"), "{err}");
    empty("foreign plan");
    // A work directory on a file system without room.
    let small = work.path().join("small");
    std::fs::create_dir(&small).unwrap();
    assert!(Command::new("mount").args(["-t", "tmpfs", "-o", "size=2m"]).arg("tmpfs").arg(&small).status().unwrap().success());
    let (code, _, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("--workdir"), &small, Path::new("-D"), &c.data]);
    let _ = Command::new("umount").arg("-l").arg(&small).status();
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("the rehearsal needs about") && err.contains("--workdir"), "{err}");
    // A live postmaster.
    c.start();
    let (code, _, err) = run(&["rehearse", "--plan"], &[&plan, Path::new("--workdir"), &wd, Path::new("-D"), &c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("postmaster") && err.contains("is running"), "{err}");
    empty("live postmaster");
}
