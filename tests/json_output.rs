//! The JSON of every read command on the bundled demo cluster, pinned (tests/snapshots): a
//! change to a key or a value a script may read shows as a diff here. Accept a reviewed
//! change with `INSTA_UPDATE=always cargo test --test json_output`. Paths, times, pids and
//! operation ids are normalised; the text output of the same commands is pinned by
//! tests/docs_examples.rs (it is the documentation's).
#![allow(clippy::unwrap_used)]

mod common;
use common::{pgsalvage, Scratch};
use std::path::Path;
use std::process::Command;

/// Values a run or a machine cannot fix: how long it took, a plan's hash (its bytes hold the
/// time), who ran it, file times, where the server binary and the rehearsal's copy were.
const EXTRA: &[(&str, &str)] = &[
    (r#""elapsed_ms": \d+"#, r#""elapsed_ms": 0"#),
    (r#""(plan_sha256|sha256_of_plan)": "[0-9a-f]{64}""#, r#""$1": "PLAN-SHA256""#),
    (r#""user": "[^"]*""#, r#""user": "postgres""#),
    (r#""mtime": \d+"#, r#""mtime": 1796160475"#),
    (r"/tmp/pgsalvage-rehearse-[A-Za-z0-9-]+", "/tmp/pgsalvage-rehearse-XXXXXX"),
    (r#""server": "[^"]*""#, r#""server": "/usr/lib/postgresql/15/bin""#),
    (r"server \S+/postgres \(", "server /usr/lib/postgresql/15/bin/postgres ("),
    (r"(?m)^      \d+\.\d+,$", "      0.0,"),
];

fn json(work: &Path, args: &str) -> String {
    let o = pgsalvage().current_dir(work).args(args.split_whitespace()).stdin(std::process::Stdio::null()).output().unwrap();
    assert!(o.status.code().is_some_and(|c| c <= 1), "pgsalvage {args}: {}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    serde_json::from_str::<serde_json::Value>(&text).unwrap_or_else(|e| panic!("pgsalvage {args}: not JSON ({e}): {text}"));
    common::normalise(&text, work, EXTRA)
}

#[test]
fn json_of_every_read_command() {
    let scratch = Scratch::new("json");
    let w = scratch.path();
    let fixture = common::repo_root().join("fixtures/demo/ziplog.tar.zst");
    let st = Command::new("sh").arg("-c").arg(format!("zstd -dc '{}' | tar -C '{}' -xf - ziplog", fixture.display(), w.display())).status().unwrap();
    assert!(st.success());
    common::chown_postgres(w);
    let o = pgsalvage().current_dir(w).args(["plan", "-D", "ziplog", "-o", "plan.json"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = pgsalvage().current_dir(w).args(["snapshot", "create", "-D", "ziplog", "-o", "s.tar.zst", "--json"]).output().unwrap();
    assert!(o.status.success());
    let settings = {
        let mut s = insta::Settings::clone_current();
        s.set_prepend_module_to_snapshot(false);
        s
    };
    settings.bind(|| {
        insta::assert_snapshot!("json-inspect", json(w, "inspect -D ziplog --json"));
        insta::assert_snapshot!("json-check", json(w, "check -D ziplog --json"));
        insta::assert_snapshot!("json-diagnose", json(w, "diagnose -D ziplog --json"));
        insta::assert_snapshot!("json-review", json(w, "review plan.json -D ziplog --json"));
        insta::assert_snapshot!("json-snapshot-verify", json(w, "snapshot verify s.tar.zst --json"));
        insta::assert_snapshot!("json-audit", json(w, "audit -D ziplog --json"));
        // The manifest's every file would be 14,000 lines: its keys, the first entries and the count.
        let mut list: serde_json::Value = serde_json::from_str(&json(w, "snapshot list s.tar.zst --json")).unwrap();
        if let Some(files) = list.get_mut("files").and_then(|f| f.as_array_mut()) {
            let n = files.len();
            files.truncate(3);
            list["files_in_the_manifest"] = n.into();
        }
        insta::assert_snapshot!("json-snapshot-list", serde_json::to_string_pretty(&list).unwrap());
        insta::assert_snapshot!("json-plan", common::normalise(&std::fs::read_to_string(w.join("plan.json")).unwrap(), w, EXTRA));
        insta::assert_snapshot!("json-rehearse", json(w, "rehearse -D ziplog --plan plan.json --json"));
    });
}
