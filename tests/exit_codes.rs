//! Every documented exit code, by a table of real situations: each row runs the binary and
//! checks the code and the words that say why. The table in docs/exit-codes.md is this
//! test's output (tests/common::doc_block), so the document cannot drift from the binary.
#![allow(clippy::unwrap_used)]

mod common;
use common::{chown_postgres, doc_block, garble_xmin, pgsalvage, Cluster, InitOpts, Scratch};
use std::path::Path;
use std::process::Command;

struct Row {
    code: i32,
    situation: &'static str,
    args: Vec<String>,
    env: Vec<(&'static str, &'static str)>,
    /// Words the output (stdout and stderr) must hold.
    says: &'static str,
    /// Run as this user instead (runuser).
    user: Option<&'static str>,
}

fn row(code: i32, situation: &'static str, args: &str, says: &'static str) -> Row {
    Row { code, situation, args: args.split_whitespace().map(str::to_string).collect(), env: vec![], says, user: None }
}

/// The bundled demo cluster (fixtures/demo: crashed, one tuple with a garbage xmin) at `dir`.
fn demo(dir: &Path) {
    std::fs::create_dir(dir).unwrap();
    let fixture = common::repo_root().join("fixtures/demo/ziplog.tar.zst");
    let st = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "zstd -dc '{}' | tar -C '{}' -xf - ziplog && mv '{}'/ziplog/* '{}'/ && rmdir '{}'/ziplog",
            fixture.display(),
            dir.display(),
            dir.display(),
            dir.display(),
            dir.display()
        ))
        .status()
        .unwrap();
    assert!(st.success());
    // A data directory is its owner's alone, or the server refuses it.
    std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    chown_postgres(dir);
}

/// What differs from run to run: pids, times, operation ids, the system identifiers of
/// clusters made here.
/// What varies in the table between runs: pids, times, system identifiers, and a manifest's
/// length (it records times and paths).
const EXTRA: &[(&str, &str)] = &[
    (r"pid \d+", "pid PID"),
    (r"\d+\.\d s\b", "N.N s"),
    (r"\b\d{19}\b", "SYSID"),
    (r"at byte \d+; \d+ bytes beside, \d+ inside", "at byte N; N+1 bytes beside, N inside"),
];

fn run(work: &Path, args: &[&str]) -> (i32, String) {
    let o = pgsalvage().current_dir(work).args(args).stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

fn ok(work: &Path, args: &[&str]) {
    let (code, out) = run(work, args);
    assert!(code <= 1, "{args:?}: {out}");
}

#[test]
fn every_documented_exit_code() {
    let scratch = Scratch::new("exit-codes");
    let w = scratch.path();
    // The situations.
    demo(&w.join("demo"));
    let healthy = Cluster::new(15, InitOpts::default());
    common::copy_tree(&healthy.data, &w.join("healthy"));
    ok(w, &["plan", "-D", "demo", "-o", "demo-plan.json"]);
    ok(w, &["snapshot", "create", "-D", "demo", "-o", "demo.tar.zst"]);
    let mut p: serde_json::Value = serde_json::from_slice(&std::fs::read(w.join("demo-plan.json")).unwrap()).unwrap();
    p["cluster"]["system_identifier"] = "7000000000000000001".into();
    std::fs::write(w.join("foreign-plan.json"), serde_json::to_vec_pretty(&p).unwrap()).unwrap();
    // The manifest beside an archive, edited: it has no checksum of its own, so it must be
    // byte for byte the one inside.
    std::fs::copy(w.join("demo.tar.zst"), w.join("edited.tar.zst")).unwrap();
    let mut side = std::fs::read(w.join("demo.tar.zst.manifest.json")).unwrap();
    side.push(b' ');
    std::fs::write(w.join("edited.tar.zst.manifest.json"), side).unwrap();
    std::fs::write(w.join("notes.json"), "these are my notes, not a plan\n").unwrap();
    std::fs::write(w.join("photo.tar.zst"), [0x89u8, b'P', b'N', b'G', 13, 10, 26, 10]).unwrap();
    std::fs::write(w.join("existing.tar.zst"), b"").unwrap();
    std::fs::create_dir(w.join("nonempty")).unwrap();
    std::fs::write(w.join("nonempty/keep"), b"x").unwrap();
    // A file only root can read inside the healthy copy: a finding no plan repairs.
    common::copy_tree(&w.join("healthy"), &w.join("rootfile"));
    std::fs::write(w.join("rootfile/base/1/99999"), b"").unwrap();
    std::fs::set_permissions(w.join("rootfile/base/1/99999"), std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let root = nix::unistd::geteuid().is_root();
    // A relation file cut mid-block (a torn extend).
    common::copy_tree(&w.join("healthy"), &w.join("torn"));
    let pg_class = w.join("torn/base/1/1259");
    std::fs::OpenOptions::new().append(true).open(&pg_class).unwrap().set_len(std::fs::metadata(&pg_class).unwrap().len() - 100).unwrap();
    // Drift: the plan's target block changed after planning.
    common::copy_tree(&w.join("demo"), &w.join("drifted"));
    ok(w, &["plan", "-D", "drifted", "-o", "drifted-plan.json"]);
    let target = p["actions"][0]["target"]["path"].as_str().unwrap().to_string();
    common::scribble(&w.join("drifted").join(&target), 8000, b"drift");
    // A snapshot older than the file apply changes.
    common::copy_tree(&w.join("demo"), &w.join("older"));
    ok(w, &["snapshot", "create", "-D", "older", "-o", "older-then.tar.zst"]);
    garble_xmin(&w.join("older").join(&target), 1, 4_000_000_000, false);
    ok(w, &["plan", "-D", "older", "-o", "older-plan.json"]);
    // Applied, then changed behind pgsalvage's back.
    common::copy_tree(&w.join("demo"), &w.join("changed"));
    ok(w, &["plan", "-D", "changed", "-o", "changed-plan.json"]);
    ok(w, &["snapshot", "create", "-D", "changed", "-o", "changed.tar.zst"]);
    let (code, out) = run(w, &["apply", "-D", "changed", "--plan", "changed-plan.json", "--snapshot", "changed.tar.zst", "--yes"]);
    assert_eq!(code, 0, "{out}");
    common::scribble(&w.join("changed").join(&target), 8000, b"later");
    // Two steps, the second one failing.
    common::copy_tree(&w.join("demo"), &w.join("partial"));
    garble_xmin(&w.join("partial").join(&target), 1, 4_000_000_000, false);
    ok(w, &["plan", "-D", "partial", "-o", "partial-plan.json"]);
    ok(w, &["snapshot", "create", "-D", "partial", "-o", "partial.tar.zst"]);
    // A running server.
    let mut running = Cluster::new(15, InitOpts::default());
    running.start();
    std::os::unix::fs::symlink(&running.data, w.join("running")).unwrap();
    let bad = common::repo_root().join("fixtures/bad");
    let bad = bad.display();

    let mut rows = vec![
        row(0, "nothing wrong found", "check -D healthy", "0 errors, 0 warnings"),
        row(0, "nothing wrong found", "diagnose -D healthy", "0 errors, 0 warnings"),
        row(0, "a plan that answers every finding", "plan -D demo -o plan-again.json", "0 findings not repairable"),
        row(0, "the snapshot matches its manifest", "snapshot verify demo.tar.zst", "OK,"),
        row(0, "a read-only command on a running server that allows it", "diagnose --allow-running -D running", "READ WHILE THE SERVER RAN"),
        row(1, "damage found", "check -D torn", "relation-partial-block"),
        row(1, "damage found", "diagnose -D demo", "tuple-xid-never-assigned"),
        row(1, "a plan that leaves a finding unrepaired", "plan -D rootfile -o rootfile-plan.json", "1 finding not repairable"),
        row(1, "the data directory changed since the plan", "review drifted-plan.json -D drifted", "STALE"),
        row(1, "a file changed since apply left it", "audit -D changed", "CHANGED since"),
        row(1, "a damaged snapshot", &format!("snapshot verify {bad}/archive.flipped-byte.tar.zst"), "corrupt"),
        row(1, "a manifest beside the archive that is not the one inside", "snapshot verify edited.tar.zst", "not byte for byte"),
        row(1, "a damaged snapshot", &format!("snapshot list {bad}/archive.truncated.tar.zst"), "truncated"),
        row(1, "a damaged snapshot", &format!("snapshot restore {bad}/archive.truncated.tar.zst -D restored"), "nothing of it was kept"),
        row(2, "no data directory given", "inspect", "PGDATA"),
        row(2, "an unknown option value", "check -D healthy --only everything", "invalid value"),
        row(2, "an unknown finding code", "plan -D demo -o x.json --only tuple-xid-never", "not a diagnose finding code"),
        row(2, "a malformed option", "snapshot restore demo.tar.zst -D r2 --tablespace-map /old", "expected OLD=NEW"),
        row(3, "a server is running", "diagnose -D running", "is running"),
        row(3, "no snapshot given to apply", "apply -D demo --plan demo-plan.json --yes", "no snapshot"),
        row(
            3,
            "a snapshot that does not hold what apply changes",
            "apply -D older --plan older-plan.json --snapshot older-then.tar.zst --yes",
            "differs from the data directory",
        ),
        row(3, "a plan for another cluster", "review foreign-plan.json -D demo", "the plan is for cluster"),
        row(3, "a plan for another cluster", "rehearse -D demo --plan foreign-plan.json", "the plan is for cluster"),
        row(3, "a plan for another cluster", "apply -D demo --plan foreign-plan.json --snapshot demo.tar.zst --yes", "the plan is for cluster"),
        row(3, "a hostile plan", &format!("review {bad}/plan.path-traversal"), "no plan made by pgsalvage holds this"),
        row(3, "restore into a directory that is not empty", "snapshot restore demo.tar.zst -D nonempty", "is not empty"),
        row(4, "not a data directory", "inspect -D /nonexistent", "No such file"),
        row(4, "not a data directory", "inspect -D notes.json", "not a directory"),
        row(4, "a file that does not exist", "snapshot verify missing.tar.zst", "No such file"),
        row(4, "a file that is not a snapshot", "snapshot verify photo.tar.zst", "not a pgsalvage snapshot"),
        row(4, "a file that does not exist", "review missing.json", "No such file"),
        row(4, "a file that is not a plan", "review notes.json", "not a pgsalvage plan"),
        row(4, "a log file that does not exist", "diagnose -D demo --log missing.log", "could not read log file"),
        row(4, "an output file that exists", "snapshot create -D healthy -o existing.tar.zst", "never overwrites"),
        row(4, "an output directory that does not exist", "plan -D demo -o nodir/plan.json", "does not exist"),
        Row {
            env: vec![("PGSALVAGE_TEST_FAIL_BEFORE_STEP", "2")],
            ..row(
                5,
                "apply stopped after its first change",
                "apply -D partial --plan partial-plan.json --snapshot partial.tar.zst --yes",
                "partly changed: run `pgsalvage rollback",
            )
        },
        row(0, "rollback of that apply", "rollback -D partial", "rolled back"),
    ];
    if root {
        // A data directory restored or copied as root: the server would refuse it.
        common::copy_tree(&w.join("healthy"), &w.join("rootowned"));
        assert!(Command::new("chown").args(["-R", "root:root"]).arg(w.join("rootowned")).status().unwrap().success());
        let at = rows.iter().position(|r| r.code == 2).unwrap();
        rows.insert(at, row(1, "a data directory owned by root", "diagnose -D rootowned", "ownership-wrong"));
        rows.insert(at, row(0, "a data directory owned by root (inspect reads pg_control and warns)", "inspect -D rootowned", "belongs to root"));
        // Permission denied: the directory's owner is the user to run as.
        rows.insert(
            rows.iter().position(|r| r.code == 5).unwrap(),
            Row { user: Some("nobody"), ..row(4, "permission denied", &format!("inspect -D {}", w.join("demo").display()), "Permission denied") },
        );
    }
    let mut table = String::from("| exit | situation | command | says |\n|---|---|---|---|\n");
    for r in &rows {
        let mut cmd = match r.user {
            Some(u) => {
                let mut c = Command::new("runuser");
                c.args(["-u", u, "--", env!("CARGO_BIN_EXE_pgsalvage")]);
                c
            }
            None => pgsalvage(),
        };
        cmd.current_dir(w).args(&r.args).env_remove("PGDATA").stdin(std::process::Stdio::null());
        for (k, v) in &r.env {
            cmd.env(k, v);
        }
        let o = cmd.output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert_eq!(o.status.code(), Some(r.code), "pgsalvage {}: {text}", r.args.join(" "));
        assert!(text.contains(r.says), "pgsalvage {}: expected {:?} in:\n{text}", r.args.join(" "), r.says);
        let line = text.lines().find(|l| l.contains(r.says)).unwrap_or("").trim();
        let clean =
            |s: &str| common::normalise(&s.replace(&w.display().to_string(), "WORK").replace(&bad.to_string(), "fixtures/bad"), w, EXTRA).replace('|', "\\|");
        table.push_str(&format!(
            "| {} | {} | `{}pgsalvage {}` | {} |\n",
            r.code,
            r.situation,
            r.user.map(|u| format!("runuser -u {u} -- ")).unwrap_or_default(),
            clean(&r.args.join(" ")),
            clean(line).chars().take(140).collect::<String>()
        ));
    }
    running.stop();
    // The documented table holds the rows only root can build (CI runs as root).
    if root {
        doc_block("docs/exit-codes.md", "exit-code-table", &table);
    } else {
        eprintln!("not root: docs/exit-codes.md's table (it has rows only root can build) is not compared");
    }
    // A progress bar only on a terminal that can draw it: under a pseudo-terminal (script(1))
    // TERM=dumb gets no escape sequence, an ordinary terminal does.
    if Path::new("/usr/bin/script").exists() {
        let on_tty = |term: &str| {
            let o = Command::new("script")
                .current_dir(w)
                .args(["-qc", &format!("'{}' check -D demo", env!("CARGO_BIN_EXE_pgsalvage")), "/dev/null"])
                .env("TERM", term)
                .env_remove("NO_COLOR")
                .output()
                .unwrap();
            o.stdout.contains(&0x1b)
        };
        assert!(!on_tty("dumb"), "TERM=dumb got escape sequences");
        assert!(on_tty("xterm"), "no progress bar on a terminal (the test of TERM=dumb would prove nothing)");
    }
    // Standard error closed (2>&-): files opened later may get descriptor 2; a rehearsal once
    // exited 101 so. Its verdict must not depend on it.
    let o = Command::new("sh")
        .current_dir(w)
        .arg("-c")
        .arg(format!("'{}' rehearse -D demo --plan demo-plan.json 2>&-", env!("CARGO_BIN_EXE_pgsalvage")))
        .env_remove("PGDATA")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "rehearse with standard error closed: {}", String::from_utf8_lossy(&o.stdout));
    assert!(String::from_utf8_lossy(&o.stdout).contains("verdict: safe to apply"));
}
