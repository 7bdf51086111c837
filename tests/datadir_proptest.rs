//! Whole data directories with random damage: a minimal PostgreSQL 15 directory built from
//! the real fixtures (pg_control, a WAL segment, pg_xact, a table's pages), then random bytes
//! overwritten, files truncated or removed. `inspect`, `check`, `diagnose` and `plan` (the
//! library, so a panic is caught and reported with its input) return a value or an error,
//! never panic, and never write to the directory.
#![allow(clippy::unwrap_used)]

mod common;
use common::{repo_root, tree_state};
use proptest::prelude::*;
use std::path::Path;

const FILES: [&str; 5] = ["global/pg_control", "pg_xact/0000", "base/5/16384", "WAL", "PG_VERSION"];

fn datadir(root: &Path) -> String {
    let f = repo_root().join("fixtures/pg15");
    let exp: serde_json::Value = serde_json::from_slice(&std::fs::read(f.join("expected.json")).unwrap()).unwrap();
    for dir in ["global", "pg_wal", "pg_xact", "base/5"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    std::fs::write(root.join("PG_VERSION"), "15\n").unwrap();
    std::fs::copy(f.join("pg_control"), root.join("global/pg_control")).unwrap();
    std::fs::copy(f.join("xact_0000"), root.join("pg_xact/0000")).unwrap();
    let wal = format!("pg_wal/{}", exp["wal_file"].as_str().unwrap());
    std::fs::write(root.join(&wal), zstd::decode_all(&std::fs::read(f.join("wal.zst")).unwrap()[..]).unwrap()).unwrap();
    std::fs::copy(f.join("pages.bin"), root.join("base/5/16384")).unwrap();
    wal
}

#[derive(Clone, Debug)]
enum Damage {
    Bytes { file: usize, at: usize, bytes: Vec<u8> },
    Truncate { file: usize, to: usize },
    Remove { file: usize },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (0..FILES.len(), any::<usize>(), proptest::collection::vec(any::<u8>(), 1..64)).prop_map(|(file, at, bytes)| Damage::Bytes { file, at, bytes }),
        1 => (0..FILES.len(), any::<usize>()).prop_map(|(file, to)| Damage::Truncate { file, to }),
        1 => (0..FILES.len()).prop_map(|file| Damage::Remove { file }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    #[test]
    fn damaged_directories_never_panic(damages in proptest::collection::vec(damage(), 1..4)) {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let wal = datadir(root);
        let path = |i: usize| root.join(if FILES[i] == "WAL" { wal.as_str() } else { FILES[i] });
        for d in &damages {
            match d {
                Damage::Bytes { file, at, bytes } => {
                    if let Ok(mut b) = std::fs::read(path(*file)) {
                        if !b.is_empty() {
                            let at = at % b.len();
                            for (i, x) in bytes.iter().enumerate() {
                                if let Some(slot) = b.get_mut(at + i) { *slot = *x; }
                            }
                            std::fs::write(path(*file), b).unwrap();
                        }
                    }
                }
                Damage::Truncate { file, to } => {
                    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(path(*file)) {
                        let len = f.metadata().unwrap().len().max(1);
                        f.set_len(*to as u64 % len).unwrap();
                    }
                }
                Damage::Remove { file } => { let _ = std::fs::remove_file(path(*file)); }
            }
        }
        let before = tree_state(root);
        let r = std::panic::catch_unwind(|| {
            let Ok(dd) = pgsalvage::datadir::DataDir::open(root) else { return };
            let _ = pgsalvage::inspect::inspect(&dd);
            let _ = pgsalvage::check::check(&dd, &Default::default(), &pgsalvage::check::Quiet);
            let _ = pgsalvage::diagnose::diagnose(&dd, &Default::default(), &pgsalvage::check::Quiet);
            let _ = pgsalvage::plan::plan(&dd, &Default::default());
            let _ = pgsalvage::plan::plan(&dd, &pgsalvage::plan::PlanOptions { reset_wal: true, ..Default::default() });
        });
        prop_assert!(r.is_ok(), "a command panicked on {:?}", damages);
        prop_assert_eq!(before, tree_state(root), "a read-only command wrote to the directory");
    }
}

/// The undamaged directory goes all the way through (so the damaged runs reach deep code).
#[test]
fn the_undamaged_directory_reads() {
    let tmp = tempfile::tempdir().unwrap();
    datadir(tmp.path());
    let dd = pgsalvage::datadir::DataDir::open(tmp.path()).unwrap();
    pgsalvage::inspect::inspect(&dd).unwrap();
    let c = pgsalvage::check::check(&dd, &Default::default(), &pgsalvage::check::Quiet).unwrap();
    assert_eq!(c.pages.as_ref().map(|p| p.blocks), Some(3), "{c:?}");
    assert!(c.wal.is_some() && c.xact.is_some(), "{c:?}");
    let d = pgsalvage::diagnose::diagnose(&dd, &Default::default(), &pgsalvage::check::Quiet).unwrap();
    assert!(d.heap_pages_scanned > 0, "{d:?}");
    pgsalvage::plan::plan(&dd, &Default::default()).unwrap();
}
