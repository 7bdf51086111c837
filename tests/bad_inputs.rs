//! The broken inputs of docs/BAD-INPUTS.md (fixtures/bad, made by fixtures/bad/make-bad),
//! each placed in a minimal data directory built from the real PostgreSQL 15 fixtures: the
//! exact exit code and the words of the response. The table in the document is printed by
//! this test (`cargo test --test bad_inputs -- --nocapture`).
#![allow(clippy::unwrap_used)]

mod common;
use common::{pgsalvage, repo_root};
use std::path::Path;

fn datadir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let f = repo_root().join("fixtures/pg15");
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(f.join("expected.json")).unwrap()).unwrap();
    for dir in ["global", "pg_wal", "pg_xact", "base/5"] {
        std::fs::create_dir_all(d.path().join(dir)).unwrap();
    }
    std::fs::write(d.path().join("PG_VERSION"), "15\n").unwrap();
    std::fs::copy(f.join("pg_control"), d.path().join("global/pg_control")).unwrap();
    std::fs::copy(f.join("xact_0000"), d.path().join("pg_xact/0000")).unwrap();
    let seg = zstd::decode_all(&std::fs::read(f.join("wal.zst")).unwrap()[..]).unwrap();
    std::fs::write(d.path().join("pg_wal").join(exp["wal_file"].as_str().unwrap()), seg).unwrap();
    std::fs::copy(f.join("pages.bin"), d.path().join("base/5/16384")).unwrap();
    d
}

fn run(d: &Path, args: &[&str]) -> (i32, String) {
    let o = pgsalvage().args(args).arg("-D").arg(d).output().unwrap();
    (o.status.code().unwrap(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

#[test]
fn every_bad_input_gets_its_exact_response() {
    // (fixture, where it goes, command, exit code, words the response must contain)
    let cases: &[(&str, &str, &[&str], i32, &str)] = &[
        ("pg_control.empty", "global/pg_control", &["inspect"], 1, "pg_control: truncated: need 4 bytes at offset 8, but only 0 bytes are there"),
        ("pg_control.truncated-100", "global/pg_control", &["inspect"], 1, "pg_control: truncated: need 8 bytes at offset 104, but only 0 bytes are there"),
        ("pg_control.random", "global/pg_control", &["inspect"], 1, "pg_control: unsupported version at offset 8"),
        ("pg_control.version-960", "global/pg_control", &["inspect"], 1, "pg_control version 960, catalog version 202209061"),
        ("pg_control.byte-swapped", "global/pg_control", &["inspect"], 1, "looks byte-swapped (a big-endian cluster?)"),
        ("pg_control.pg19-1902", "global/pg_control", &["inspect"], 1, "pg_control version 1902"),
        ("pg_control.crc-flipped", "global/pg_control", &["inspect"], 1, "WARNING: pg_control CRC mismatch"),
        ("pg_xact.10-bytes", "pg_xact/0000", &["check", "--only", "xact"], 1, "xact-segment-short"),
        ("page.lower-beyond-upper", "base/5/16384", &["check", "--only", "pages"], 1, "pd_lower 32767 > pd_upper"),
        ("page.flipped-bit", "base/5/16384", &["check", "--only", "pages"], 1, "page verification failed, calculated checksum"),
        ("page.new-not-zero", "base/5/16384", &["check", "--only", "pages"], 1, "pd_upper is 0 (a new page) but byte 4000 is not zero"),
        ("page.random", "base/5/16384", &["check", "--only", "pages"], 1, "page-invalid-header"),
    ];
    let mut table = String::from("| input (fixtures/bad/) | command | exit | response (excerpt) |\n|---|---|---|---|\n");
    for (file, place, args, code, words) in cases {
        let d = datadir();
        let bad = std::fs::read(repo_root().join("fixtures/bad").join(file)).unwrap();
        let target = d.path().join(place);
        if place.starts_with("base/") && bad.len() == 8192 {
            // The bad page replaces block 0 of the relation.
            let mut rel = std::fs::read(&target).unwrap();
            rel[..8192].copy_from_slice(&bad);
            std::fs::write(&target, rel).unwrap();
        } else {
            std::fs::write(&target, &bad).unwrap();
        }
        let (got, out) = run(d.path(), args);
        assert_eq!(got, *code, "{file}: {out}");
        assert!(out.contains(words), "{file}: expected {words:?} in:\n{out}");
        let line = out.lines().find(|l| l.contains(words) || l.contains(&words[..words.len().min(20)])).unwrap_or("").trim();
        table.push_str(&format!(
            "| `{file}` as {place} | `pgsalvage {}` | {got} | {} |\n",
            args.join(" "),
            line.replace(&d.path().display().to_string(), "DATADIR").replace('|', "\\|").chars().take(180).collect::<String>()
        ));
    }
    common::doc_block("docs/BAD-INPUTS.md", "bad-cluster-files", &table);
}

/// Hostile and broken plan files (fixtures/bad/plan.*, made by make-bad from a real plan):
/// `review` and `apply` refuse each before touching anything, with the words below.
#[test]
fn hostile_plans_are_refused_before_anything() {
    // exit 3: a plan holding what no plan made by pgsalvage holds is refused for safety;
    // exit 4: a file that is not a plan of this format at all (docs/exit-codes.md).
    let cases: &[(&str, &str, i32)] = &[
        ("plan.path-traversal", "target \"../../../etc/cron.d/pgsalvage\" is not a plain path inside the data directory", 3),
        ("plan.absolute-path", "target \"/etc/passwd\" is not a plain path inside the data directory", 3),
        ("plan.move-outside", "target \"pg_wal/../../outside\" is not a plain path inside the data directory", 3),
        ("plan.xact-range-unbounded", "32 pages cannot hold xids 3..=4294967295", 3),
        ("plan.offnum-zero", "tuple offsets must be 1..=2048", 3),
        ("plan.duplicate-id", "the id appears twice", 3),
        ("plan.relocate-relative", "new WAL location \"roomy/pg_wal\" is not an absolute plain path", 3),
        ("plan.format-99", "plan format 99 is not supported (this pgsalvage reads 1)", 4),
        ("plan.truncated", "not a pgsalvage plan: EOF while parsing", 4),
    ];
    let bad = repo_root().join("fixtures/bad");
    let o = pgsalvage().arg("review").arg(bad.join("plan.valid")).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "the valid plan reviews: {}", String::from_utf8_lossy(&o.stderr));
    let mut table = String::from("| input (fixtures/bad/) | command | exit | response (excerpt) |\n|---|---|---|---|\n");
    for &(file, words, code) in cases {
        let o = pgsalvage().arg("review").arg(bad.join(file)).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr).into_owned();
        assert_eq!(o.status.code(), Some(code), "{file}: {err}");
        assert!(err.contains(words), "{file}: expected {words:?} in {err}");
        // apply refuses the same way, and changes nothing.
        let d = datadir();
        let before = common::tree_state(d.path());
        let o =
            pgsalvage().args(["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan"]).arg(bad.join(file)).arg("-D").arg(d.path()).output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{file}: apply: {}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stderr).contains(words));
        assert_eq!(before, common::tree_state(d.path()), "{file}: apply changed the data directory");
        let line = err.lines().next().unwrap_or("").replace(&bad.display().to_string(), "fixtures/bad");
        table.push_str(&format!("| `{file}` | `pgsalvage review` / `apply` | {code} | {} |\n", line.replace('|', "\\|").chars().take(200).collect::<String>()));
    }
    common::doc_block("docs/BAD-INPUTS.md", "bad-plans", &table);
}

/// A journal edited to point outside the data directory: rollback refuses and writes nothing.
#[test]
fn hostile_journal_is_refused() {
    let d = datadir();
    let store = tempfile::tempdir().unwrap();
    let outside = store.path().join("outside");
    std::fs::write(&outside, b"precious").unwrap();
    std::fs::create_dir(store.path().join("orig")).unwrap();
    std::fs::write(store.path().join("orig/1.bin"), b"evil").unwrap();
    use pgsalvage::journal::{frame, step::Change, Record};
    let journal = [
        Record::Begin {
            operation: "op1".into(),
            plan_sha256: "0".into(),
            data_directory: d.path().display().to_string(),
            time: "now".into(),
            dir_mtimes: vec![],
        },
        Record::Prepared {
            step: 1,
            action: "A1".into(),
            change: Change::File {
                path: "../../../../../../../..".to_string() + &outside.display().to_string(),
                saved: Some("orig/1.bin".into()),
                before_sha256: Some(pgsalvage::plan::sha256_hex(b"evil")),
                after_sha256: "0".into(),
                mode: 0o644,
                mtime: None,
            },
        },
    ];
    let text: Vec<u8> = journal.iter().flat_map(frame).collect();
    std::fs::write(store.path().join("journal.log"), text).unwrap();
    let hist = serde_json::json!({"event": "apply", "operation": "op1", "time": "now", "user": "x", "host": "x", "tool": "x", "plan_sha256": "0", "store": store.path()});
    std::fs::write(d.path().join("pgsalvage.history"), format!("{hist}\n")).unwrap();
    let before = common::tree_state(d.path());
    let o = pgsalvage().args(["rollback", "--force", "-D"]).arg(d.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("is not a plain path inside the data directory"), "{err}");
    assert_eq!(std::fs::read(&outside).unwrap(), b"precious");
    assert_eq!(before, common::tree_state(d.path()));
}

/// Hostile and damaged snapshot archives (fixtures/bad/archive.*, made by make-bad):
/// `snapshot verify` exits 1 and `snapshot restore` exits 3 with the words below, removes what
/// it wrote, and nothing appears outside its target (the paths they aim at are watched).
#[test]
fn bad_archives_are_refused_and_nothing_is_written_outside() {
    let bad = repo_root().join("fixtures/bad");
    let victim = Path::new("/tmp/pgsalvage-bad-archive-outside");
    let _ = std::fs::remove_dir_all(victim);
    std::fs::create_dir_all(victim).unwrap();
    let cases: &[(&str, &str)] = &[
        ("traversal", "has an empty, '.' or '..' component"),
        ("absolute", "absolute path"),
        ("symlink-write-through", "no pgsalvage-manifest.json"),
        ("hardlink", "is a Link (only files, directories and symbolic links are allowed)"),
        ("device", "is a Char"),
        ("fifo", "is a Fifo"),
        ("outside-data", "is outside data/ and links/"),
        ("duplicate", "appears twice"),
        ("truncated", "the compressed stream is corrupt or truncated"),
        ("flipped-byte", "the compressed stream is corrupt"),
        ("manifest-disagrees", "the manifest beside the archive disagrees with the one inside it"),
    ];
    let valid = bad.join("archive.valid.tar.zst");
    assert_eq!(pgsalvage().args(["snapshot", "verify"]).arg(&valid).output().unwrap().status.code(), Some(0), "the valid archive verifies");
    let mut table = String::from("| archive (fixtures/bad/) | verify | restore | response (excerpt) |\n|---|---|---|---|\n");
    for (name, words) in cases {
        let a = bad.join(format!("archive.{name}.tar.zst"));
        let v = pgsalvage().args(["snapshot", "verify"]).arg(&a).output().unwrap();
        let vout = format!("{}{}", String::from_utf8_lossy(&v.stdout), String::from_utf8_lossy(&v.stderr));
        assert_eq!(v.status.code(), Some(1), "{name}: verify: {vout}");
        assert!(vout.contains(words), "{name}: verify: expected {words:?} in {vout}");
        // Two levels below /tmp, so that data/../../ aims at the watched directory.
        let parent = tempfile::tempdir_in("/tmp").unwrap();
        let target = parent.path().join("target");
        let r = pgsalvage().args(["snapshot", "restore", "-D"]).arg(&target).arg(&a).output().unwrap();
        let err = String::from_utf8_lossy(&r.stderr).into_owned();
        assert_eq!(r.status.code(), Some(1), "{name}: restore: {err}");
        assert!(err.contains(words), "{name}: restore: expected {words:?} in {err}");
        assert!(!target.exists(), "{name}: the failed restore left its target");
        assert_eq!(std::fs::read_dir(victim).unwrap().count(), 0, "{name}: something was written outside the target");
        let line = err.lines().find(|l| l.contains(words)).unwrap_or("").trim().replace(&bad.display().to_string(), "fixtures/bad");
        table.push_str(&format!("| `archive.{name}.tar.zst` | 1 | 1 | {} |\n", line.replace('|', "\\|").chars().take(200).collect::<String>()));
    }
    common::doc_block("docs/BAD-INPUTS.md", "bad-archives", &table);
    let _ = std::fs::remove_dir_all(victim);
}

/// Hostile and broken files in a `--wal-archive` directory: garbage under a segment's name,
/// compressed garbage, a truncated stream, a decompression bomb, another cluster's segment,
/// a garbage history file, a FIFO, a link to /dev/zero and a directory under segment names.
/// check answers at once, uses none of them, and says why for each file it read.
#[test]
fn hostile_wal_archives() {
    use std::io::Write;
    let d = datadir();
    let a = tempfile::tempdir().unwrap();
    let f = repo_root().join("fixtures/pg15");
    let seg = zstd::decode_all(&std::fs::read(f.join("wal.zst")).unwrap()[..]).unwrap();
    let put = |name: &str, bytes: &[u8]| std::fs::write(a.path().join(name), bytes).unwrap();
    put("000000010000000000000099", &[0xA5; 1000]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&[0x5A; 70000]).unwrap();
    put("00000001000000000000009A.gz", &gz.finish().unwrap());
    let z = zstd::encode_all(&seg[..], 1).unwrap();
    put("00000001000000000000009B.zst", &z[..z.len() / 2]);
    let mut lz = lz4_flex::frame::FrameEncoder::new(Vec::new());
    for _ in 0..64 {
        lz.write_all(&vec![0u8; 1 << 20]).unwrap();
    }
    put("00000001000000000000009C.lz4", &lz.finish().unwrap());
    let mut foreign = seg.clone();
    foreign[24] ^= 0xFF;
    put("00000001000000000000009D", &foreign);
    put("00000002.history", b"not a history\n\x00\xff");
    nix::unistd::mkfifo(&a.path().join("00000001000000000000009E"), nix::sys::stat::Mode::S_IRWXU).unwrap();
    std::os::unix::fs::symlink("/dev/zero", a.path().join("00000001000000000000009F")).unwrap();
    std::fs::create_dir(a.path().join("0000000100000000000000A0")).unwrap();
    let started = std::time::Instant::now();
    let o = pgsalvage().args(["check", "--json", "--wal-archive"]).arg(a.path()).arg("-D").arg(d.path()).output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "check took {:?}", started.elapsed());
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(matches!(o.status.code(), Some(0 | 1)), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let files = v["wal_inventory"]["files"].as_array().unwrap();
    let problem = |name: &str| {
        files.iter().find(|f| f["path"].as_str().unwrap().ends_with(name)).and_then(|f| f["problem"].as_str().map(String::from)).unwrap_or_default()
    };
    assert!(problem("99").contains("not a WAL page of this cluster"), "{}", problem("99"));
    assert!(problem("9A.gz").contains("not a WAL page of this cluster"), "{}", problem("9A.gz"));
    assert!(problem("9B.zst").contains("cannot be read"), "{}", problem("9B.zst"));
    assert!(problem("9C.lz4").contains("more than one segment"), "{}", problem("9C.lz4"));
    assert!(problem("9D").contains("another cluster"), "{}", problem("9D"));
    for skipped in ["9E", "9F", "A0"] {
        assert!(!files.iter().any(|f| f["path"].as_str().unwrap().ends_with(skipped)), "{skipped} was read");
    }
    assert!(
        v["wal_inventory"]["ranges"].as_array().unwrap().iter().all(|r| r["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| !f.as_str().unwrap().contains(&a.path().display().to_string()))),
        "an archive file was used: {}",
        v["wal_inventory"]["ranges"]
    );
}
