//! `--version`, every subcommand's `--help`, completions and the man page.
#![allow(clippy::unwrap_used)]

mod common;
use common::pgsalvage;

#[test]
fn help_version_completions_man() {
    let o = pgsalvage().arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), format!("pgsalvage {}", env!("CARGO_PKG_VERSION")));
    for sub in ["inspect", "check", "diagnose", "plan", "review", "rehearse", "apply", "rollback", "audit", "snapshot", "completions", "man"] {
        let o = pgsalvage().args([sub, "--help"]).output().unwrap();
        assert!(o.status.success(), "{sub} --help");
        let text = String::from_utf8_lossy(&o.stdout);
        assert!(text.contains("Usage: pgsalvage"), "{sub}: {text}");
        undocumented_options(sub, &text);
        if !["review", "snapshot", "completions", "man"].contains(&sub) {
            assert!(text.contains("-D, --pgdata"), "{sub} takes -D/--pgdata: {text}");
        }
    }
    for sub in ["create", "verify", "list", "restore"] {
        let o = pgsalvage().args(["snapshot", sub, "--help"]).output().unwrap();
        undocumented_options(sub, &String::from_utf8_lossy(&o.stdout));
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = pgsalvage().args(["completions", shell]).output().unwrap();
        assert!(o.status.success() && String::from_utf8_lossy(&o.stdout).contains("pgsalvage"), "{shell}");
    }
    let o = pgsalvage().arg("man").output().unwrap();
    let man = String::from_utf8_lossy(&o.stdout);
    assert!(man.starts_with(".ie") && man.contains(".TH pgsalvage 1"), "{man}");
    // A page per subcommand, nested ones included, and every long option of each in its page;
    // the SEE ALSO names of pgsalvage(1) are pages that exist.
    let dir = tempfile::tempdir().unwrap();
    let o = pgsalvage().arg("man").arg("--dir").arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let subs: Vec<Vec<&str>> = vec![
        vec!["inspect"],
        vec!["check"],
        vec!["diagnose"],
        vec!["plan"],
        vec!["review"],
        vec!["rehearse"],
        vec!["apply"],
        vec!["rollback"],
        vec!["audit"],
        vec!["snapshot", "create"],
        vec!["snapshot", "verify"],
        vec!["snapshot", "list"],
        vec!["snapshot", "restore"],
    ];
    let long = regex::Regex::new(r"(?m)^\s+(?:-[a-zA-Z], )?(--[a-z-]+)").unwrap();
    for sub in subs {
        let page = std::fs::read_to_string(dir.path().join(format!("pgsalvage-{}.1", sub.join("-")))).unwrap();
        assert!(page.contains(&format!(".TH pgsalvage-{} 1", sub.join("-"))), "{sub:?}");
        let help = String::from_utf8_lossy(&pgsalvage().args(&sub).arg("--help").output().unwrap().stdout).into_owned();
        for opt in long.captures_iter(&help).map(|c| c[1].to_string()) {
            assert!(page.contains(&opt.replace('-', "\\-")), "pgsalvage-{}(1) lacks {opt}", sub.join("-"));
        }
        let single = String::from_utf8_lossy(&pgsalvage().args(["man", &sub.join("-")]).output().unwrap().stdout).into_owned();
        assert_eq!(single, page, "man {} prints the same page", sub.join("-"));
    }
    for see in regex::Regex::new(r"pgsalvage\\?-([a-z-]+)\(1\)").unwrap().captures_iter(&man) {
        assert!(dir.path().join(format!("pgsalvage-{}.1", see[1].replace("\\", ""))).exists(), "pgsalvage(1) refers to {}", &see[0]);
    }
    // A usage error is exit code 2.
    assert_eq!(pgsalvage().args(["check", "--only", "bogus", "-D", "/tmp"]).output().unwrap().status.code(), Some(2));
}

/// Every option in a help text says what it does (a line with only the flag is a gap).
fn undocumented_options(sub: &str, text: &str) {
    let re = regex::Regex::new(r"^\s+((-[a-zA-Z], )?--[a-z-]+( <[^>]+>)?|<[^>]+>)\s*$").unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // clap puts a long description on the next line, further indented.
    let described_below = |i: usize| lines.get(i + 1).is_some_and(|n| n.starts_with("          ") && !n.trim_start().starts_with('-'));
    let bare: Vec<&str> = lines.iter().enumerate().filter(|(i, l)| re.is_match(l) && !described_below(*i)).map(|(_, l)| *l).collect();
    assert!(bare.is_empty(), "{sub} --help has options without a description: {bare:?}");
}

/// The user-visible contract: `--help` of every command pinned (tests/snapshots). A change to
/// a help text shows as a diff here; accept it with `INSTA_UPDATE=always cargo test --test
/// cli_help` (or cargo insta review) after reading it as a user would.
#[test]
fn help_texts_are_pinned() {
    let commands: &[&[&str]] = &[
        &[],
        &["inspect"],
        &["check"],
        &["diagnose"],
        &["plan"],
        &["review"],
        &["rehearse"],
        &["apply"],
        &["rollback"],
        &["audit"],
        &["snapshot"],
        &["snapshot", "create"],
        &["snapshot", "verify"],
        &["snapshot", "list"],
        &["snapshot", "restore"],
        &["completions"],
        &["man"],
    ];
    for c in commands {
        let o = pgsalvage().args(*c).arg("--help").env("COLUMNS", "100").output().unwrap();
        let name = if c.is_empty() { "pgsalvage".to_string() } else { format!("pgsalvage-{}", c.join("-")) };
        insta::assert_snapshot!(name, String::from_utf8_lossy(&o.stdout));
    }
}
