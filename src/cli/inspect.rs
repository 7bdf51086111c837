use super::{json, out, ReadArgs, EXIT_FINDINGS, EXIT_OK};
use pgsalvage::datadir::DataDir;

pub fn run(a: &ReadArgs) -> anyhow::Result<i32> {
    let dd = DataDir::open(&a.pgdata)?;
    let report = pgsalvage::inspect::inspect_with(&dd, &super::wal_archives(&a.wal_archive)?)?;
    if a.json {
        json(&report)?;
    } else {
        out(&pgsalvage::inspect::render_text(&report))?;
    }
    let damaged = report.control.is_none() || report.control_crc.is_some_and(|c| !c.ok());
    Ok(if damaged { EXIT_FINDINGS } else { EXIT_OK })
}
