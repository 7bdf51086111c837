//! WAL reset: pgsalvage's computed reset against pg_resetwal 15 on identical copies (clean,
//! crashed, missing REDO segment, forced values, 1 MB segments), and on every major a reset
//! by pgsalvage alone after which the server starts, takes writes, survives a restart and a
//! crash-restart, and every row reads back.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use pgsalvage::format::control::ControlFile;
use pgsalvage::plan::reset::{self, Listing, ResetOverrides};
use std::path::Path;
use std::process::Command;

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect()).unwrap_or_default()
}

/// Carry out a reset computed by pgsalvage (test stand-in for `apply`).
fn pgsalvage_reset(data: &Path, o: &ResetOverrides) -> String {
    let c = ControlFile::parse_lenient(&std::fs::read(data.join("global/pg_control")).unwrap()).unwrap().0;
    let l = Listing {
        wal: names(&data.join("pg_wal")).into_iter().filter(|n| n != "archive_status" && n != "summaries").collect(),
        archive_status: names(&data.join("pg_wal/archive_status")),
        summaries: names(&data.join("pg_wal/summaries")),
        xact: names(&data.join("pg_xact")),
        multi_offsets: names(&data.join("pg_multixact/offsets")),
        multi_members: names(&data.join("pg_multixact/members")),
    };
    let r = reset::compute(&c, &l, o, chrono::Utc::now().timestamp()).unwrap();
    for m in &r.moves {
        std::fs::remove_file(data.join(m)).unwrap();
    }
    std::fs::write(data.join("global/pg_control"), r.control.encode()).unwrap();
    let seg = data.join("pg_wal").join(&r.segment_name);
    std::fs::write(&seg, reset::segment_bytes(&r.control)).unwrap();
    chown_postgres(&data.join("pg_wal"));
    chown_postgres(&data.join("global/pg_control"));
    r.segment_name
}

fn controldata(data: &Path) -> Vec<String> {
    let out = run_ok(Command::new(PgBin::system_tool("pg_controldata")).arg(data).env("LC_ALL", "C"));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("pg_control last modified") && !l.starts_with("Time of latest checkpoint"))
        .map(str::to_string)
        .collect()
}

fn wal_files(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = names(&data.join("pg_wal")).into_iter().filter(|n| n.len() == 24).collect();
    v.sort();
    v
}

fn differential(state: &str, segsize: Option<u32>, forced: bool) {
    let mut c = Cluster::new(15, InitOpts { checksums: true, wal_segsize_mb: segsize });
    c.start();
    c.pgbench_init(1);
    c.sql("checkpoint"); // the tables must outlive a reset that drops the WAL after it
    c.pgbench_run(200);
    let redo_file = c.sql("select redo_wal_file from pg_control_checkpoint()");
    match state {
        "clean" => c.stop(),
        _ => c.crash(),
    }
    // Forced values, as a DBA would pick them: past the current ones, inside existing pg_xact
    // and pg_multixact pages (the server reads those at start).
    let ctl = ControlFile::parse(&std::fs::read(c.data.join("global/pg_control")).unwrap()).unwrap();
    let cp = &ctl.checkpoint;
    let (x, oid, mnext, moff) = (cp.next_xid.xid() + 100, cp.next_oid + 1000, cp.next_multixact_id + 5, cp.next_multi_offset + 50);
    let wal_file = pgsalvage::format::wal::WalGeometry::new(ctl.bytes_per_wal_segment, 8192).unwrap().file_name(1, 0x50);
    let owned: Vec<String> = if forced {
        vec![
            "-x".into(),
            x.to_string(),
            "-e".into(),
            "2".into(),
            "-o".into(),
            oid.to_string(),
            "-m".into(),
            format!("{mnext},{}", cp.oldest_multi_xid),
            "-O".into(),
            moff.to_string(),
            "-l".into(),
            wal_file.clone(),
            "-c".into(),
            format!("{},{}", x - 50, x - 10),
        ]
    } else {
        vec![]
    };
    let args: Vec<&str> = owned.iter().map(|s| s.as_str()).collect();
    let o = if forced {
        ResetOverrides {
            next_xid: Some(x),
            epoch: Some(2),
            next_oid: Some(oid),
            multixact: Some((mnext, cp.oldest_multi_xid)),
            multixact_offset: Some(moff),
            commit_ts: Some((x - 50, x - 10)),
            wal_file: Some(wal_file),
            past_pages: None,
        }
    } else {
        ResetOverrides::default()
    };
    if state == "missing-redo" {
        std::fs::remove_file(c.data.join("pg_wal").join(&redo_file)).unwrap();
    }
    let theirs = Scratch::new("reset-theirs");
    let ours = Scratch::new("reset-ours");
    let (t, u) = (theirs.path().join("data"), ours.path().join("data"));
    run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&t));
    run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&u));
    // pg_resetwal refuses while postmaster.pid exists; a DBA removes the stale one first.
    let _ = std::fs::remove_file(t.join("postmaster.pid"));
    let _ = std::fs::remove_file(u.join("postmaster.pid"));
    run_ok(as_postgres(Command::new(PgBin::system_tool("pg_resetwal")).arg("-f").args(&args).arg("-D").arg(&t)));
    let seg = pgsalvage_reset(&u, &o);
    let (cu, ct) = (controldata(&u), controldata(&t));
    let diff: Vec<String> = cu.iter().zip(&ct).filter(|(a, b)| a != b).map(|(a, b)| format!("ours: {a}\ntheirs: {b}")).collect();
    assert!(diff.is_empty() && cu.len() == ct.len(), "{state}: pg_control after the reset differs:\n{}", diff.join("\n"));
    assert_eq!(wal_files(&u), wal_files(&t), "{state}: pg_wal after the reset");
    assert_eq!(wal_files(&u), vec![seg.clone()]);
    // The new segments' checkpoint records decode to the same values (times aside).
    let dec = |d: &Path| {
        let ctl = ControlFile::parse(&std::fs::read(d.join("global/pg_control")).unwrap()).unwrap();
        let g = pgsalvage::format::wal::WalGeometry::new(ctl.bytes_per_wal_segment, 8192).unwrap();
        let src = pgsalvage::format::wal::reader::MemorySource {
            first_segno: g.segno(ctl.checkpoint_lsn),
            segments: vec![std::fs::read(d.join("pg_wal").join(&seg)).unwrap()],
        };
        let mut r = pgsalvage::format::wal::WalReader::new(src, ctl.major, g, Some(ctl.system_identifier));
        let rec = r.read_record(ctl.checkpoint_lsn, None).unwrap();
        let mut cp = pgsalvage::format::wal::decode_checkpoint(ctl.major, &rec.record).unwrap();
        cp.checkpoint_time = 0;
        (cp, rec.record.header.info, rec.record.header.tot_len)
    };
    assert_eq!(dec(&u), dec(&t), "{state}: checkpoint record");
    // Both servers start.
    for d in [&u, &t] {
        let mut s = Cluster::at(15, d);
        s.start();
        assert_eq!(s.sql("select count(*) from pgbench_branches"), "1");
        s.stop();
    }
}

#[test]
fn same_as_pg_resetwal_clean() {
    differential("clean", None, false);
}
#[test]
fn same_as_pg_resetwal_crashed_1mb_segments() {
    differential("crashed", Some(1), false);
}
#[test]
fn same_as_pg_resetwal_missing_redo_segment() {
    differential("missing-redo", Some(1), false);
}
#[test]
fn same_as_pg_resetwal_clean_64mb_segments() {
    differential("clean", Some(64), false);
}
#[test]
fn same_as_pg_resetwal_forced_values() {
    differential("clean", None, true);
}

fn every_major(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.pgbench_init(1);
    c.sql("create table kept as select g, md5(g::text) m from generate_series(1, 5000) g");
    c.sql("checkpoint");
    c.stop();
    pgsalvage_reset(&c.data, &ResetOverrides::default());
    c.start();
    c.sql("create table after_reset as select g from generate_series(1, 1000) g");
    c.stop();
    c.start();
    c.sql("insert into after_reset select g from generate_series(1, 1000) g");
    c.crash();
    c.start();
    assert_eq!(c.sql("select count(*) from after_reset"), "2000", "PG{major}");
    assert_eq!(c.sql("select count(*) from kept"), "5000");
    // Every row of every table reads back.
    let tables = c.sql("select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind = 'r'");
    for t in tables.lines() {
        let out = c.psql_cmd("postgres").arg("-o").arg("/dev/null").arg("-c").arg(format!("select * from {t}")).output().unwrap();
        assert!(out.status.success(), "PG{major} {t}: {}", String::from_utf8_lossy(&out.stderr));
    }
    if major <= 15 {
        let out = c.pg_dumpall();
        assert!(out.status.success(), "PG{major}: {}", String::from_utf8_lossy(&out.stderr));
    }
}

per_major!(every_major: reset_pg10 = 10, reset_pg11 = 11, reset_pg12 = 12, reset_pg13 = 13, reset_pg14 = 14, reset_pg15 = 15, reset_pg16 = 16, reset_pg17 = 17, reset_pg18 = 18);

/// `plan --reset-wal` on a cluster that lost a WAL segment: one reset action whose new
/// pg_control equals pg_resetwal's, after which the server starts.
#[test]
fn planned_reset_for_lost_wal() {
    let mut c = lost_wal_segment();
    let _ = std::fs::remove_file(c.data.join("postmaster.pid"));
    let work = Scratch::new("planreset");
    let out = pgsalvage().args(["plan", "--reset-wal", "-D"]).arg(&c.data).arg("-o").arg(work.path().join("p.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let p: pgsalvage::plan::Plan = serde_json::from_slice(&std::fs::read(work.path().join("p.json")).unwrap()).unwrap();
    let a = p.actions.iter().find(|a| matches!(a.kind, pgsalvage::plan::ActionKind::ResetWal { .. })).unwrap_or_else(|| panic!("{p:?}"));
    let pgsalvage::plan::ActionKind::ResetWal { wal_file, moves, .. } = &a.kind else { unreachable!() };
    assert!(a.data_loss.contains("every transaction whose WAL is at or after"), "{}", a.data_loss);
    // Carry it out (test stand-in for apply) next to pg_resetwal on a copy.
    let theirs = work.path().join("theirs");
    run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&theirs));
    run_ok(as_postgres(Command::new(PgBin::system_tool("pg_resetwal")).arg("-f").arg("-D").arg(&theirs)));
    let ctl = ControlFile::parse_lenient(&std::fs::read(c.data.join("global/pg_control")).unwrap()).unwrap().0;
    let new = pgsalvage::plan::new_bytes(a, Some(&std::fs::read(c.data.join("global/pg_control")).unwrap()), &ctl).unwrap().unwrap();
    for m in moves {
        std::fs::remove_file(c.data.join(m)).unwrap();
    }
    std::fs::write(c.data.join("global/pg_control"), &new).unwrap();
    std::fs::write(c.data.join("pg_wal").join(wal_file), reset::segment_bytes(&ControlFile::parse(&new).unwrap())).unwrap();
    chown_postgres(&c.data);
    let (ours, t) = (controldata(&c.data), controldata(&theirs));
    assert_eq!(ours, t);
    assert_eq!(wal_files(&c.data), wal_files(&theirs));
    c.start();
    assert_eq!(c.sql("select count(*) from pgbench_branches"), "1");
}

/// A destroyed pg_control, rebuilt from what the directory shows, then reset: the server
/// starts on every major and the rows are there.
fn rebuilt_control(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table kept as select g, md5(g::text) m from generate_series(1, 5000) g");
    c.sql("checkpoint");
    c.stop();
    std::fs::write(c.data.join("global/pg_control"), vec![0u8; 8192]).unwrap();
    let dd = pgsalvage::datadir::DataDir::open(&c.data).unwrap();
    let (ctl, sources) = pgsalvage::plan::rebuild_control(&dd).unwrap();
    assert!(sources.iter().any(|s| s.field == "system_identifier"));
    assert_eq!(ctl.data_page_checksum_version, 1, "PG{major}: checksums guessed from pages");
    std::fs::write(c.data.join("global/pg_control"), ctl.encode()).unwrap();
    pgsalvage_reset(&c.data, &ResetOverrides::default());
    c.start();
    assert_eq!(c.sql("select count(*) from kept"), "5000", "PG{major}");
    c.sql("create table after as select 1");
}

per_major!(rebuilt_control: rebuilt_control_pg10 = 10, rebuilt_control_pg11 = 11, rebuilt_control_pg12 = 12, rebuilt_control_pg13 = 13, rebuilt_control_pg14 = 14, rebuilt_control_pg15 = 15, rebuilt_control_pg16 = 16, rebuilt_control_pg17 = 17, rebuilt_control_pg18 = 18);

/// `plan --reset-wal` on a destroyed pg_control: one loudly flagged rebuild action; carried
/// out, the server starts with the rows.
fn planned_rebuild(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table kept as select g from generate_series(1, 3000) g");
    c.sql("checkpoint");
    c.stop();
    std::fs::OpenOptions::new().write(true).open(c.data.join("global/pg_control")).unwrap().set_len(100).unwrap();
    let work = Scratch::new("rebuild");
    // With WAL there, pg_control is rewritten from its checkpoint record (tests/control.rs).
    // With every WAL record gone too (each segment keeps only its long page header, where
    // the system identifier is), only guesses and a reset remain.
    for e in std::fs::read_dir(c.data.join("pg_wal")).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            let mut b = std::fs::read(&p).unwrap();
            b.iter_mut().skip(40).for_each(|x| *x = 0);
            std::fs::write(&p, b).unwrap();
        }
    }
    let out = pgsalvage().args(["plan", "-D"]).arg(&c.data).arg("-o").arg(work.path().join("no.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(3), "without --reset-wal the rebuild is refused");
    let out = pgsalvage().args(["plan", "--reset-wal", "-D"]).arg(&c.data).arg("-o").arg(work.path().join("p.json")).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("GUESSED VALUES"));
    let p: pgsalvage::plan::Plan = serde_json::from_slice(&std::fs::read(work.path().join("p.json")).unwrap()).unwrap();
    let a = &p.actions[0];
    let pgsalvage::plan::ActionKind::RebuildControl { wal_file, moves, .. } = &a.kind else { panic!("{a:?}") };
    let dummy = ControlFile::parse(
        &pgsalvage::plan::reset::control_from(
            &match &a.kind {
                pgsalvage::plan::ActionKind::RebuildControl { guessed, .. } => guessed.clone(),
                _ => unreachable!(),
            },
            0,
        )
        .unwrap()
        .encode(),
    )
    .unwrap();
    let new = pgsalvage::plan::new_bytes(a, Some(&std::fs::read(c.data.join("global/pg_control")).unwrap()), &dummy).unwrap().unwrap();
    for m in moves {
        std::fs::remove_file(c.data.join(m)).unwrap();
    }
    std::fs::write(c.data.join("global/pg_control"), &new).unwrap();
    std::fs::write(c.data.join("pg_wal").join(wal_file), reset::segment_bytes(&ControlFile::parse(&new).unwrap())).unwrap();
    chown_postgres(&c.data);
    c.start();
    assert_eq!(c.sql("select count(*) from kept"), "3000", "PG{major}");
}

per_major!(planned_rebuild: planned_rebuild_pg10 = 10, planned_rebuild_pg15 = 15, planned_rebuild_pg18 = 18);
