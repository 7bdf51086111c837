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
    if major == 15 {
        assert!(out.contains("[ok] pg_amcheck --all"), "{out}");
        screenshot_shows_the_map(&work.path().join("report.html"), &work.path().join("report.png"));
        // Interrupted (SIGKILL) at several moments: the original stays as it was.
        for ms in [50u64, 300, 1500] {
            let mut child = pgsalvage()
                .args(["rehearse", "--plan"])
                .arg(&full)
                .arg("-D")
                .arg(&c.data)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(ms));
            let _ = child.kill();
            let _ = child.wait();
            assert_same_tree(&before, &tree_state(&c.data), &format!("rehearse killed after {ms} ms changed the original"));
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
    assert_eq!(code, 0, "{err}");
    // Without the opt-in the checksum failure stays: the verdict says so.
    let (code, out, _) = run(&["rehearse", "--plan"], &[&plain, Path::new("-D"), &c.data]);
    assert_eq!(code, 1);
    assert!(out.contains("page verification failed") || out.contains("stay unrepaired"), "{out}");
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
