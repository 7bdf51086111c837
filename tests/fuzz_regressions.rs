//! Every fuzz target's body (pgsalvage::fuzzing) replayed on the stable toolchain with
//! every seed made from the fixtures and every input a fuzzer ever crashed on
//! (fuzz/regressions/<target>/, kept with the fix). `scripts/fuzz` runs the fuzzers.
#![allow(clippy::unwrap_used)]

mod common;

#[test]
fn seeds_and_regressions_run_clean() {
    let repo = common::repo_root();
    let seeds = pgsalvage::fuzzing::seeds(&repo).unwrap();
    let mut counts = std::collections::BTreeMap::new();
    for (target, f) in pgsalvage::fuzzing::TARGETS {
        let mut n = 0;
        for (t, name, bytes) in &seeds {
            if t == target {
                let r = std::panic::catch_unwind(|| f(bytes));
                assert!(r.is_ok(), "fuzz target {target} panicked on seed {name}");
                n += 1;
            }
        }
        assert!(n > 0, "no seed for fuzz target {target}");
        let dir = repo.join("fuzz/regressions").join(target);
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let bytes = std::fs::read(e.path()).unwrap();
            let r = std::panic::catch_unwind(|| f(&bytes));
            assert!(r.is_ok(), "fuzz target {target} panicked on {}", e.path().display());
            n += 1;
        }
        counts.insert(*target, n);
    }
    eprintln!("replayed: {counts:?}");
}

/// Each target sees the kind of input it is for: a seed of each family parses somewhere
/// (a harness fed only junk would prove nothing).
#[test]
fn seeds_are_real_inputs() {
    let repo = common::repo_root();
    let seeds = pgsalvage::fuzzing::seeds(&repo).unwrap();
    let of = |t: &'static str| seeds.iter().filter(move |s| s.0 == t).map(|s| &s.2);
    assert!(of("control").any(|b| pgsalvage::format::control::ControlFile::parse(b).is_ok()));
    let real_plans = || seeds.iter().filter(|s| s.0 == "plan" && !s.1.starts_with("bad_")).map(|s| &s.2);
    assert!(real_plans().all(|b| pgsalvage::plan::Plan::from_json(b, "seed").is_ok()));
    assert!(of("manifest").all(|b| pgsalvage::snapshot::manifest::Manifest::from_json(b).is_ok()));
    assert!(of("log").all(|b| !pgsalvage::diagnose::log::parse("x.log", &String::from_utf8_lossy(b)).is_empty()));
    assert!(of("wal_record").count() > 9 * 5);
    let plans: Vec<String> = real_plans().map(|b| String::from_utf8_lossy(b).into_owned()).collect();
    for kind in ["freeze-tuples", "kill-tuples", "synthesize-xact", "rebuild-page-header", "reset-wal", "rebuild-control", "write-control"] {
        assert!(plans.iter().any(|p| p.contains(&format!("\"{kind}\""))), "no seed plan with a {kind} action");
    }
}
