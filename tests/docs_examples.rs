//! The documentation's example outputs are this test's output: every command shown in
//! docs/inspect.md, check.md, diagnose.md, snapshot.md, plan.md, rehearse.md and apply.md runs
//! here, in order, on the bundled demo cluster (fixtures/demo: a crash, one tuple with a
//! garbage xmin, the server's log), and the finding-code tables come from the code's own
//! tables. A document that no longer matches the binary fails the build; `scripts/docs-examples`
//! (PGSALVAGE_BLESS=1) rewrites the blocks. Paths, times, pids and operation ids are
//! normalised.
#![allow(clippy::unwrap_used)]

mod common;
use common::{doc_block, pgsalvage, Scratch};
use std::path::Path;
use std::process::Command;

/// What differs from run to run or machine to machine (a rehearsal also says when it removed
/// what killed rehearsals left in /tmp: the machine's state, not the example's).
fn normalise(s: &str, work: &Path) -> String {
    // A machine's leftovers of killed rehearsals are not the example's.
    let s: String = s.lines().filter(|l| !l.contains("by rehearsals that were killed")).map(|l| format!("{l}\n")).collect();
    let extra = [
        (r"/tmp/pgsalvage-rehearse-[A-Za-z0-9-]+", "/tmp/pgsalvage-rehearse-XXXXXX"),
        // The timeline's seconds, right-aligned in six columns: 9.9 and 10.1 align differently.
        (r"(?m)^ +\d+\.\d s  ", "     N.N s  "),
        (r"\bin \d+\.\d s\b", "in N.N s"),
        (r"\d+(\.\d+)? s\)", "N.N s)"),
        (r"\(\d+(\.\d+)? MB/s\)", "(N MB/s)"),
        (r"PostgreSQL 15\.\d+[^)\n]*", "PostgreSQL 15.N"),
        (r"pid \d+ ", "pid PID "),
        (r"port \d+", "port PORT"),
        // Where the server binary was found depends on the machine.
        (r"server \S+/postgres \(PostgreSQL", "server /usr/lib/postgresql/15/bin/postgres (PostgreSQL"),
        // A plan's bytes hold the time it was made.
        (r"plan sha256 [0-9a-f]{16}", "plan sha256 5aa735ddb8ed9997"),
    ];
    common::normalise(&s, work, &extra)
}

/// `$ pgsalvage ARGS` and what it printed (standard error, then standard output), the first
/// `head` lines when given, in a fenced block.
fn example(work: &Path, runs: &[(&str, Option<usize>)]) -> String {
    let mut out = String::from("```\n");
    for (i, (args, head)) in runs.iter().enumerate() {
        let argv: Vec<&str> = args.split_whitespace().collect();
        let o = pgsalvage().current_dir(work).args(&argv).stdin(std::process::Stdio::null()).env("TERM", "dumb").output().unwrap();
        let code = o.status.code().unwrap_or(-9);
        // Notes and warnings on standard error come first, as on a terminal.
        let mut text = String::from_utf8_lossy(&o.stderr).into_owned();
        text.push_str(&String::from_utf8_lossy(&o.stdout));
        assert!(code <= 1, "pgsalvage {args}: exit {code}: {text}");
        let shown: Vec<&str> = text.lines().collect();
        let shown = match head {
            Some(n) if shown.len() > *n => [&shown[..*n], &["..."]].concat(),
            _ => shown,
        };
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!("$ pgsalvage {args}{}\n", head.map(|n| format!(" | head -{n}")).unwrap_or_default()));
        for l in shown {
            out.push_str(l.trim_end());
            out.push('\n');
        }
        if code != 0 {
            out.push_str(&format!("(exit status {code})\n"));
        }
    }
    out.push_str("```\n");
    normalise(&out, work)
}

fn table(rows: impl Iterator<Item = (&'static str, pgsalvage::finding::Severity, &'static str)>) -> String {
    let mut t = String::from("| code | severity | meaning |\n|---|---|---|\n");
    for (code, sev, doc) in rows {
        let sev = serde_json::to_value(sev).unwrap().as_str().unwrap().to_string();
        t.push_str(&format!("| `{code}` | {sev} | {doc} |\n"));
    }
    t
}

#[test]
fn finding_code_tables() {
    use pgsalvage::diagnose::Code as D;
    use pgsalvage::finding::Code as C;
    doc_block("docs/check.md", "check-codes", &table(C::ALL.iter().map(|c| (c.as_str(), c.severity(), c.doc()))));
    doc_block("docs/diagnose.md", "diagnose-codes", &table(D::ALL.iter().map(|c| (c.as_str(), c.severity(), c.doc()))));
}

/// The bundled demo cluster (and its server log) unpacked into `w`.
fn unpack_demo(w: &Path) {
    let fixture = common::repo_root().join("fixtures/demo/ziplog.tar.zst");
    let st = Command::new("sh").arg("-c").arg(format!("zstd -dc '{}' | tar -C '{}' -xf -", fixture.display(), w.display())).status().unwrap();
    assert!(st.success());
    common::chown_postgres(w);
}

/// docs/cookbook.md, recipe 2 (the first incident): the whole order of work on the demo
/// cluster, then the server reading the table.
#[test]
fn cookbook_garbage_xid() {
    let scratch = Scratch::new("cookbook");
    let w = scratch.path();
    unpack_demo(w);
    let mut text = example(
        w,
        &[
            ("snapshot create -D ziplog -o before.tar.zst", None),
            ("diagnose -D ziplog --log ziplog.log", None),
            ("plan -D ziplog -o plan.json", None),
            ("rehearse -D ziplog --plan plan.json", None),
            ("apply -D ziplog --plan plan.json --snapshot before.tar.zst --yes", None),
        ],
    );
    let mut c = common::Cluster::at(15, &w.join("ziplog"));
    c.start();
    let n = c.sql_in("common", "select count(*) from ziplog");
    c.stop();
    text = text.trim_end().trim_end_matches("```").to_string();
    text.push_str(&format!("\n$ psql -d common -c \"select count(*) from ziplog\"\n{}\n```\n", n.trim()));
    doc_block("docs/cookbook.md", "cookbook-garbage-xid", &text);
}

#[test]
fn command_examples_on_the_demo_cluster() {
    let scratch = Scratch::new("docs");
    let w = scratch.path();
    unpack_demo(w);
    // `main`: the demo cluster with a scribbled pg_class header (block 2) and pg_xact/0000
    // cut to 10 bytes, for check and plan.
    common::copy_tree(&w.join("ziplog"), &w.join("main"));
    common::scribble(&w.join("main/base/5/1259"), 2 * 8192 + 12, &0x7fffu16.to_le_bytes());
    std::fs::OpenOptions::new().write(true).open(w.join("main/pg_xact/0000")).unwrap().set_len(10).unwrap();
    common::chown_postgres(w);
    doc_block("docs/inspect.md", "inspect-demo", &example(w, &[("inspect -D ziplog", None)]));
    doc_block("docs/check.md", "check-demo", &example(w, &[("check -D main", None)]));
    doc_block("docs/diagnose.md", "diagnose-demo", &example(w, &[("diagnose -D ziplog --log ziplog.log", None)]));
    doc_block(
        "docs/snapshot.md",
        "snapshot-demo",
        &example(
            w,
            &[
                ("snapshot create -D ziplog -o before.tar.zst", None),
                ("snapshot verify before.tar.zst", None),
                ("snapshot list before.tar.zst", Some(12)),
                ("snapshot restore before.tar.zst -D restored", None),
            ],
        ),
    );
    let plan_main = example(w, &[("plan -D main -o main-plan.json", None)]);
    common::scribble(&w.join("main/base/5/1259"), 2 * 8192 + 8000, b"!");
    let review = example(w, &[("review main-plan.json -D main", None)]);
    doc_block("docs/plan.md", "plan-demo", &format!("{plan_main}\n{review}"));
    let _ = example(w, &[("plan -D ziplog -o plan.json", None)]);
    doc_block("docs/rehearse.md", "rehearse-demo", &example(w, &[("rehearse -D ziplog --plan plan.json", None)]));
    doc_block(
        "docs/apply.md",
        "apply-demo",
        &example(
            w,
            &[
                ("apply -D ziplog --plan plan.json --snapshot before.tar.zst --yes", None),
                ("audit -D ziplog", None),
                ("rollback -D ziplog", None),
                ("audit -D ziplog", None),
            ],
        ),
    );
}

/// Every command line shown in the documentation (`$ pgsalvage ...` in docs/*.md and
/// README.md) still parses: no option or subcommand a reader would copy was renamed away.
#[test]
fn every_documented_command_parses() {
    let root = common::repo_root();
    let mut docs: Vec<std::path::PathBuf> =
        std::fs::read_dir(root.join("docs")).unwrap().flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "md")).collect();
    docs.push(root.join("README.md"));
    let mut checked = 0;
    for doc in docs {
        let text = std::fs::read_to_string(&doc).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some(cmd) = line.trim_start().strip_prefix("$ pgsalvage ").or_else(|| {
                // A usage line without synopsis notation is a command too.
                line.trim_start()
                    .strip_prefix("pgsalvage ")
                    .filter(|_| line.contains(" -D ") && !line.contains(['[', '(', '<', '|', '…']) && !line.contains("..."))
            }) else {
                continue;
            };
            let cmd = cmd.split(" | ").next().unwrap().split(" #").next().unwrap().split(" && ").next().unwrap().trim();
            let cmd = cmd.split(" 2>").next().unwrap();
            let args: Vec<&str> = cmd.split_whitespace().collect();
            let o = pgsalvage().args(&args).env("PGSALVAGE_PARSE_ONLY", "1").output().unwrap();
            assert!(o.status.success(), "{}:{}: `pgsalvage {cmd}` does not parse: {}", doc.display(), n + 1, String::from_utf8_lossy(&o.stderr));
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} command lines found");
}
