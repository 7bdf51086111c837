//! Replays fuzz corpora (DIR/<target>/*) through the target bodies in this build, e.g. a
//! debug build with overflow checks: `cargo run --features fuzzing --example fuzz-replay -- target/fuzz-corpus`.
//! Exit status 1 and the file names when any input panics.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/fuzz-corpus".into()));
    std::panic::set_hook(Box::new(|_| {}));
    let mut failed = Vec::new();
    for (name, f) in pgsalvage::fuzzing::TARGETS {
        let Ok(rd) = std::fs::read_dir(dir.join(name)) else { continue };
        let mut n = 0;
        for e in rd.flatten() {
            let Ok(bytes) = std::fs::read(e.path()) else { continue };
            n += 1;
            if std::panic::catch_unwind(|| f(&bytes)).is_err() {
                failed.push(e.path());
            }
        }
        println!("{name}: {n} inputs replayed");
    }
    for p in &failed {
        eprintln!("fuzz-replay: panicked on {}", p.display());
    }
    std::process::exit(if failed.is_empty() { 0 } else { 1 });
}
