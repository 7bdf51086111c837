//! `pgsalvage snapshot` on real clusters (tablespace and symlinked pg_wal): round trip to a
//! byte-identical tree and a server that starts with the same rows; hostile archives
//! refused with nothing written outside the target; live and stale postmasters.
#![allow(clippy::unwrap_used)]

mod common;
use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str], extra: &[&Path]) -> (i32, String, String) {
    let mut c = pgsalvage();
    c.args(args);
    for e in extra {
        c.arg(e);
    }
    let o = c.output().unwrap();
    (o.status.code().unwrap(), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A stopped cluster with a tablespace and pg_wal moved out and symlinked.
fn linked_cluster(major: u32) -> (Cluster, PathBuf, PathBuf, BTreeMap<String, String>) {
    let mut c = Cluster::new(major, InitOpts::default());
    let ts = c.scratch.path().join("ts");
    let wal = c.scratch.path().join("walstore");
    std::fs::create_dir(&ts).unwrap();
    chown_postgres(&ts);
    run_ok(Command::new("mv").arg(c.data.join("pg_wal")).arg(&wal));
    std::os::unix::fs::symlink(&wal, c.data.join("pg_wal")).unwrap();
    run_ok(Command::new("chown").arg("-h").arg("postgres:postgres").arg(c.data.join("pg_wal")));
    c.start();
    c.sql(&format!("create tablespace ts location '{}'", ts.display()));
    c.sql("create table in_ts tablespace ts as select g, md5(g::text) m from generate_series(1, 30000) g");
    c.pgbench_init(1);
    let mut counts = BTreeMap::new();
    for t in ["in_ts", "pgbench_accounts", "pgbench_history", "pgbench_branches"] {
        counts.insert(t.to_string(), c.sql(&format!("select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from {t} t")));
    }
    c.stop();
    (c, ts, wal, counts)
}

/// Tree state minus what snapshots leave out on purpose.
fn comparable(root: &Path) -> BTreeMap<String, (String, u64, u32, i64, i64)> {
    tree_state(root)
        .into_iter()
        .filter(|(k, _)| {
            !k.starts_with("pg_subtrans/")
                && !k.starts_with("pg_notify/")
                && !k.starts_with("pg_stat_tmp/")
                && !k.starts_with("pg_serial/")
                && !k.starts_with("pg_snapshots/")
                && !k.starts_with("pg_dynshmem/")
                && k != "postmaster.opts"
                && k != "postmaster.pid"
                && !k.ends_with("pg_internal.init")
                && !k.contains("pgsql_tmp")
        })
        .collect()
}

fn round_trip(major: u32) {
    let (c, ts, wal, counts) = linked_cluster(major);
    let work = Scratch::new("snap");
    let archive = work.path().join("snap.tar.zst");
    let before = (comparable(&c.data), tree_state(&ts), tree_state(&wal));
    let (code, out, err) = run(&["snapshot", "create", "-o"], &[&archive, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("linked:     pg_wal ->") && out.contains("linked:     pg_tblspc/"), "{out}");
    assert_same_tree(&before.0, &comparable(&c.data), "create changed the data directory");
    assert_same_tree(&before.1, &tree_state(&ts), "create changed the tablespace");
    for p in [archive.clone(), PathBuf::from(format!("{}.manifest.json", archive.display()))] {
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600, "{}", p.display());
    }
    let (code, out, _) = run(&["snapshot", "verify"], &[&archive]);
    assert_eq!(code, 0, "{out}");
    // Restore with both linked directories mapped to new places.
    let new = work.path().join("restored");
    let (new_ts, new_wal) = (work.path().join("ts2"), work.path().join("wal2"));
    let map_ts = format!("{}={}", ts.display(), new_ts.display());
    let map_wal = format!("{}={}", wal.display(), new_wal.display());
    let (code, out, err) = run(&["snapshot", "restore", "-T", &map_ts, "-T", &map_wal, "-D"], &[&new, &archive]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(std::fs::metadata(&new).unwrap().permissions().mode() & 0o777, 0o700);
    // Byte-identical trees (contents, sizes, modes, mtimes), links pointing at the new places.
    let mut b = before.0.clone();
    let mut a = comparable(&new);
    let oid = std::fs::read_dir(c.data.join("pg_tblspc")).unwrap().next().unwrap().unwrap().file_name().to_string_lossy().into_owned();
    for k in ["pg_wal".to_string(), format!("pg_tblspc/{oid}")] {
        b.remove(&k);
        a.remove(&k);
    }
    assert_same_tree(&b, &a, "restored data directory");
    assert_same_tree(&before.1, &tree_state(&new_ts), "restored tablespace");
    assert_same_tree(&before.2, &tree_state(&new_wal), "restored pg_wal");
    assert_eq!(std::fs::read_link(new.join("pg_wal")).unwrap(), new_wal);
    assert_eq!(std::fs::read_link(new.join("pg_tblspc").join(&oid)).unwrap(), new_ts);
    // A real server starts on it and returns the same rows.
    let mut r = Cluster::at(major, &new);
    r.start();
    for (t, want) in &counts {
        assert_eq!(&r.sql(&format!("select count(*) || ':' || coalesce(sum(hashtext(t::text)), 0) from {t} t")), want, "PG{major} {t}");
    }
    r.stop();
    // Restoring without a map puts the linked directories inside the target.
    let plain = work.path().join("plain");
    let (code, out, err) = run(&["snapshot", "restore", "-D"], &[&plain, &archive]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(std::fs::symlink_metadata(plain.join("pg_wal")).unwrap().is_dir());
    assert_same_tree(&before.1, &tree_state(&plain.join("pg_tblspc").join(&oid)), "unmapped tablespace");
    // Into a non-empty directory: refused.
    let (code, _, err) = run(&["snapshot", "restore", "-D"], &[&plain, &archive]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("not empty"), "{err}");
}

#[test]
fn round_trip_pg15() {
    round_trip(15);
}
#[test]
fn round_trip_pg10() {
    round_trip(10);
}
#[test]
fn round_trip_pg18() {
    round_trip(18);
}

#[test]
fn live_and_stale_postmaster() {
    let mut c = Cluster::new(15, InitOpts::default());
    c.start();
    let work = Scratch::new("snaplive");
    let a = work.path().join("a.tar.zst");
    let (code, _, err) = run(&["snapshot", "create", "-o"], &[&a, Path::new("-D"), &c.data]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("is running") && err.contains("--allow-running"), "{err}");
    assert!(!a.exists());
    let (code, out, err) = run(&["snapshot", "create", "--allow-running", "-o"], &[&a, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("NOT consistent"));
    let (_, list, _) = run(&["snapshot", "list", "--json"], &[&a]);
    let m: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(m["consistent"], false);
    c.crash();
    let b = work.path().join("b.tar.zst");
    let (code, _, err) = run(&["snapshot", "create", "-o"], &[&b, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("postmaster.pid is stale"), "{err}");
    let (_, list, _) = run(&["snapshot", "list", "--json"], &[&b]);
    let m: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(m["consistent"], true);
    assert!(m["skipped"].as_array().unwrap().iter().any(|s| s == "postmaster.pid"));
}

// ---- hostile archives -------------------------------------------------------------

/// A raw ustar header with any name (the tar crate refuses `..` and absolute names).
fn raw_header(name: &str, kind: tar::EntryType, size: u64, link: Option<&str>) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_size(size);
    h.set_mode(0o600);
    let u = h.as_ustar_mut().unwrap();
    u.name = [0; 100];
    u.name[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(l) = link {
        u.linkname = [0; 100];
        u.linkname[..l.len()].copy_from_slice(l.as_bytes());
    }
    h.set_cksum();
    h
}

fn hostile(path: &Path, entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) {
    let f = std::fs::File::create(path).unwrap();
    let enc = zstd::stream::Encoder::new(f, 3).unwrap().auto_finish();
    let mut b = tar::Builder::new(enc);
    for (name, kind, data, link) in entries {
        let h = raw_header(name, *kind, data.len() as u64, *link);
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap();
}

#[test]
fn hostile_archives_are_refused_and_nothing_is_written_outside() {
    use tar::EntryType::*;
    let work = Scratch::new("hostile");
    let outside = work.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    let victim = outside.join("victim");
    std::fs::write(&victim, b"precious").unwrap();
    let v = victim.display().to_string();
    let o = format!("{}/planted", outside.display());
    type Entries<'a> = Vec<(&'a str, tar::EntryType, &'a [u8], Option<&'a str>)>;
    let cases: Vec<(&str, Entries, &str)> = vec![
        ("traversal", vec![("data/", Directory, b"", None), ("data/../../outside/planted", Regular, b"x", None)], "'..'"),
        ("absolute", vec![("data/", Directory, b"", None), (o.as_str(), Regular, b"x", None)], "absolute path"),
        (
            "symlink then write-through",
            vec![("data/", Directory, b"", None), ("data/evil", Symlink, b"", Some(outside.to_str().unwrap())), ("data/evil/planted", Regular, b"x", None)],
            "no pgsalvage-manifest.json",
        ),
        ("hardlink escape", vec![("data/", Directory, b"", None), ("data/hl", Link, b"", Some(v.as_str()))], "Link"),
        ("device node", vec![("data/", Directory, b"", None), ("data/dev", Char, b"", None)], "Char"),
        ("fifo", vec![("data/", Directory, b"", None), ("data/fifo", Fifo, b"", None)], "Fifo"),
        ("outside data/", vec![("etc/passwd", Regular, b"x", None)], "outside data/"),
        ("duplicate", vec![("data/", Directory, b"", None), ("data/a", Regular, b"1", None), ("data/a", Regular, b"2", None)], "appears twice"),
    ];
    for (what, entries, want) in cases {
        let a = work.path().join(format!("{}.tar.zst", what.replace([' ', '/'], "-")));
        hostile(&a, &entries);
        let target = work.path().join(format!("t-{}", what.replace([' ', '/'], "-")));
        let (code, out, err) = run(&["snapshot", "restore", "-D"], &[&target, &a]);
        // A hostile archive is a damaged one: exit 1 (docs/exit-codes.md).
        assert_eq!(code, 1, "{what}: {out}{err}");
        assert!(err.contains(want), "{what}: expected {want:?} in: {err}");
        assert!(!target.exists(), "{what}: the failed restore left {}", target.display());
        assert_eq!(std::fs::read(&victim).unwrap(), b"precious", "{what}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "{what}: something was written outside");
        let (code, _, _) = run(&["snapshot", "verify"], &[&a]);
        assert_eq!(code, 1, "{what}: verify must fail too");
    }
}

#[test]
fn damaged_archives_are_refused() {
    let c = Cluster::new(15, InitOpts::default());
    let work = Scratch::new("damaged");
    let a = work.path().join("good.tar.zst");
    let (code, _, err) = run(&["snapshot", "create", "-o"], &[&a, Path::new("-D"), &c.data]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&a).unwrap();
    let side = std::fs::read(format!("{}.manifest.json", a.display())).unwrap();
    let variant = |name: &str, data: &[u8], sidecar: Option<&[u8]>| {
        let p = work.path().join(name);
        std::fs::write(&p, data).unwrap();
        if let Some(s) = sidecar {
            std::fs::write(format!("{}.manifest.json", p.display()), s).unwrap();
        }
        p
    };
    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x20;
    let mut disagree: serde_json::Value = serde_json::from_slice(&side).unwrap();
    let files = disagree["files"].as_array_mut().unwrap();
    let i = files.iter().position(|f| f["path"] == "data/global/pg_control").unwrap();
    files[i]["sha256"] = serde_json::Value::String("0".repeat(64));
    let cases = [
        ("truncated", variant("truncated.tar.zst", &bytes[..bytes.len() / 2], None), "truncated"),
        ("flipped byte", variant("flipped.tar.zst", &flipped, None), ""),
        ("manifest disagrees", variant("disagree.tar.zst", &bytes, Some(&serde_json::to_vec(&disagree).unwrap())), "disagrees"),
    ];
    for (what, p, want) in cases {
        let (code, out, _) = run(&["snapshot", "verify"], &[&p]);
        assert_eq!(code, 1, "{what}: {out}");
        assert!(out.contains(want), "{what}: {out}");
        let target = work.path().join(format!("r-{}", what.replace([' ', '/'], "-")));
        let (code, _, err) = run(&["snapshot", "restore", "-D"], &[&target, &p]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(!target.exists(), "{what}: left a partial restore");
    }
}
