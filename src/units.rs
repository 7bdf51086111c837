//! Byte counts for people: `1.5 GB`, `16.0 MB`, `8 kB` (binary units, PostgreSQL's spelling).

pub fn human_size(b: u64) -> String {
    match b {
        b if b >= 1 << 30 => format!("{:.1} GB", b as f64 / (1u64 << 30) as f64),
        b if b >= 1 << 20 => format!("{:.1} MB", b as f64 / (1u64 << 20) as f64),
        b => format!("{} kB", b.div_ceil(1024)),
    }
}

/// `1 step`, `2 steps`: a count with its noun in agreement (`many` for irregular plurals,
/// else the noun with an `s`).
pub fn count(n: impl Into<u64>, one: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counts_agree() {
        assert_eq!(super::count(1u32, "step"), "1 step");
        assert_eq!(super::count(0u32, "step"), "0 steps");
        assert_eq!(super::count(2u64, "line pointer"), "2 line pointers");
    }
}
