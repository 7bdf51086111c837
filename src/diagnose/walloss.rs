//! What a WAL reset loses, in words: the transactions the surviving WAL shows committing at
//! or after the break, and their tuples per relation.

use crate::format::control::ControlFile;
use crate::inventory::Lost;
use crate::units::count;

/// The relation file path of a (tablespace, database, relfilenode) as WAL names it.
pub fn rel_path(c: &ControlFile, (spc, db, rel): (u32, u32, u32)) -> String {
    match spc {
        1663 => format!("base/{db}/{rel}"),
        1664 => format!("global/{rel}"),
        _ => format!("pg_tblspc/{spc}/{}/{db}/{rel}", crate::check::version_dir(c)),
    }
}

/// PostgreSQL's timestamps count microseconds from 2000-01-01 UTC.
fn time_text(t: i64) -> String {
    chrono::DateTime::from_timestamp(t.div_euclid(1_000_000) + 946_684_800, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// One sentence, or None when the surviving WAL shows no committed transaction lost.
pub fn describe(lost: &Lost, c: &ControlFile, name_of: &dyn Fn(&str) -> Option<String>) -> Option<String> {
    let (first, last) = (lost.transactions.first()?, lost.transactions.last()?);
    let mut rels: Vec<(String, [u64; 3])> = lost
        .relations
        .iter()
        .map(|(k, v)| {
            let p = rel_path(c, *k);
            (name_of(&p).unwrap_or(p), *v)
        })
        .collect();
    rels.sort_by(|a, b| (b.1[0] + b.1[1] + b.1[2]).cmp(&(a.1[0] + a.1[1] + a.1[2])).then(a.0.cmp(&b.0)));
    let shown: Vec<String> = rels
        .iter()
        .take(10)
        .map(|(n, v)| {
            let parts: Vec<String> =
                [(v[0], "inserted"), (v[1], "updated"), (v[2], "deleted")].iter().filter(|(k, _)| *k > 0).map(|(k, w)| format!("{k} {w}")).collect();
            format!("{n} {}", parts.join(", "))
        })
        .collect();
    let xids: Vec<String> = lost.transactions.iter().take(8).map(|t| t.0.to_string()).collect();
    Some(format!(
        "the WAL that survives after the break shows {} committed there, whose changes are lost with it (xids {}{}; committed {} .. {}){}",
        count(lost.transactions.len() as u64, "transaction"),
        xids.join(", "),
        if lost.transactions.len() > 8 { ", ..." } else { "" },
        time_text(first.2),
        time_text(last.2),
        if shown.is_empty() {
            String::new()
        } else {
            format!(": {}{}", shown.join("; "), if rels.len() > 10 { format!("; and {} more relations", rels.len() - 10) } else { String::new() })
        }
    ))
}
