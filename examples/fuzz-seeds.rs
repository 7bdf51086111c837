//! Writes the fuzz seed corpora (made from the real fixtures, see
//! `pgsalvage::fuzzing::seeds`) into DIR/<target>/: `cargo run --features fuzzing --example fuzz-seeds -- DIR`.
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "target/fuzz-corpus".into()));
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seeds = match pgsalvage::fuzzing::seeds(repo) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fuzz-seeds: {e}");
            std::process::exit(1);
        }
    };
    for (target, name, bytes) in &seeds {
        let d = dir.join(target);
        if let Err(e) = std::fs::create_dir_all(&d).and_then(|_| std::fs::write(d.join(name), bytes)) {
            eprintln!("fuzz-seeds: {}: {e}", d.display());
            std::process::exit(1);
        }
    }
    println!("{} seeds in {}", seeds.len(), dir.display());
}
