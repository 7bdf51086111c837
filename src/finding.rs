//! Findings: one per problem, with a stable kebab-case code, a severity, where it is (file
//! relative to the data directory, block, byte offset, LSN, xid range) and the evidence.
//! `check` produces them; `diagnose` explains and correlates them.

use crate::format::types::{Lsn, Xid};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Data the server cannot read, or that recovery cannot get past.
    Error,
    /// Not damage the server trips over today, but wrong.
    Warning,
    /// Worth knowing; not a problem.
    Info,
}

/// The part of the data directory a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Control,
    Pages,
    Xact,
    Wal,
}

/// Every finding code, with its severity and a one-line meaning (docs/check.md lists them).
pub const CODES: &[(&str, Severity, &str)] = &[
    ("control-unreadable", Severity::Error, "global/pg_control cannot be decoded"),
    ("control-crc-mismatch", Severity::Error, "global/pg_control's CRC does not match its contents"),
    (
        "control-values-invalid",
        Severity::Error,
        "pg_control holds a block size, segment size or WAL geometry PostgreSQL does not allow (the defaults are used to read the files)",
    ),
    ("page-invalid-header", Severity::Error, "a page header fails the server's checks (invalid page in block N)"),
    ("page-checksum-failure", Severity::Error, "a page's data checksum does not match its contents"),
    ("page-new-not-zero", Severity::Error, "a page with pd_upper 0 holds non-zero bytes (the server rejects it)"),
    ("page-lsn-past-wal", Severity::Error, "a page's pd_lsn lies past the end of valid WAL (its next write makes every checkpoint fail)"),
    ("relation-partial-block", Severity::Error, "a relation file's size is not a multiple of the block size"),
    ("relation-segment-gap", Severity::Error, "a relation segment file is missing between others"),
    ("relation-segment-short", Severity::Error, "a relation segment that is not the last is shorter than a full segment"),
    ("xact-segment-missing", Severity::Error, "a pg_xact segment needed for xids between oldestXID and NextXID is missing"),
    ("xact-segment-short", Severity::Error, "a pg_xact segment lacks pages needed for xids between oldestXID and NextXID"),
    ("wal-segment-missing", Severity::Error, "a WAL segment needed to replay from the REDO point is missing"),
    ("wal-checkpoint-unreadable", Severity::Error, "the latest checkpoint record cannot be read"),
    ("wal-checkpoint-mismatch", Severity::Error, "the latest checkpoint record differs from pg_control's copy"),
    ("wal-record-broken", Severity::Error, "valid WAL stops at a damaged record or page, and more WAL follows it"),
    ("wal-foreign-segment", Severity::Error, "a file in pg_wal belongs to another cluster or major"),
    ("wal-segment-misplaced", Severity::Error, "a WAL segment's pages carry addresses of another segment"),
    ("wal-segment-wrong-size", Severity::Warning, "a WAL segment file is not the cluster's segment size"),
];

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub area: Area,
    /// Path relative to the data directory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Absolute block number in the relation fork.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u32>,
    /// Byte offset in `file`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lsn: Option<Lsn>,
    /// Inclusive xid range concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xids: Option<(Xid, Xid)>,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding with the registered severity of `code`.
    pub fn new(code: &'static str, area: Area, message: impl Into<String>) -> Finding {
        let severity = CODES.iter().find(|c| c.0 == code).map(|c| c.1).unwrap_or(Severity::Error);
        Finding { code, severity, area, file: None, block: None, offset: None, lsn: None, xids: None, message: message.into(), evidence: Vec::new() }
    }
    pub fn file(mut self, f: impl Into<String>) -> Self {
        self.file = Some(f.into());
        self
    }
    pub fn block(mut self, b: u32) -> Self {
        self.block = Some(b);
        self
    }
    pub fn offset(mut self, o: u64) -> Self {
        self.offset = Some(o);
        self
    }
    pub fn lsn(mut self, l: Lsn) -> Self {
        self.lsn = Some(l);
        self
    }
    pub fn xids(mut self, a: Xid, b: Xid) -> Self {
        self.xids = Some((a, b));
        self
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }
    /// Where, in one phrase: `base/5/16384, block 3 (offset 24576)`, `LSN 0/3000028`.
    pub fn location(&self) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &self.file {
            parts.push(f.clone());
        }
        if let Some(b) = self.block {
            parts.push(format!("block {b}"));
        }
        if let Some(o) = self.offset {
            parts.push(format!("offset {o}"));
        }
        if let Some(l) = self.lsn {
            parts.push(format!("LSN {l}"));
        }
        if let Some((a, b)) = self.xids {
            parts.push(if a == b { format!("xid {a}") } else { format!("xids {a}..{b}") });
        }
        parts.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case() {
        let mut seen = std::collections::HashSet::new();
        for (code, _, _) in CODES {
            assert!(seen.insert(*code), "duplicate code {code}");
            assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{code}");
        }
    }
}
