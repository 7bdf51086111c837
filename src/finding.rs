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

/// Declares a finding-code enum from one table: each variant's stable kebab-case string, its
/// severity and its one-line meaning (the documentation's code tables are generated from it).
/// Code that acts on findings `match`es on the enum with no `_` arm, so a code nobody
/// handles does not compile, and a misspelt code is not a silent string mismatch.
macro_rules! finding_codes {
    ($(#[$meta:meta])* $vis:vis enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = ($code:literal, $sev:ident, $doc:literal),)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name { $($(#[$vmeta])* $variant,)* }
        impl $name {
            /// Every code, in table order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            /// The stable kebab-case code.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code,)* }
            }
            pub const fn severity(self) -> $crate::finding::Severity {
                match self { $($name::$variant => $crate::finding::Severity::$sev,)* }
            }
            /// What the code means, in one line.
            pub const fn doc(self) -> &'static str {
                match self { $($name::$variant => $doc,)* }
            }
            /// The code for its string (`--only CODE`).
            pub fn parse(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|c| c.as_str() == s)
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    };
}
pub(crate) use finding_codes;

finding_codes! {
    /// What `check` finds in the bytes (docs/check.md lists them).
    pub enum Code {
        ControlUnreadable = ("control-unreadable", Error, "global/pg_control cannot be decoded"),
        ControlCrcMismatch = ("control-crc-mismatch", Error, "global/pg_control's CRC does not match its contents"),
        ControlValuesInvalid = ("control-values-invalid", Error, "pg_control holds a block size, segment size or WAL geometry PostgreSQL does not allow (the defaults are used to read the files)"),
        PageInvalidHeader = ("page-invalid-header", Error, "a page header fails the server's checks (invalid page in block N)"),
        PageChecksumFailure = ("page-checksum-failure", Error, "a page's data checksum does not match its contents"),
        PageNewNotZero = ("page-new-not-zero", Error, "a page with pd_upper 0 holds non-zero bytes (the server rejects it)"),
        PageLsnPastWal = ("page-lsn-past-wal", Error, "a page's pd_lsn lies past the end of valid WAL (its next write makes every checkpoint fail)"),
        RelationPartialBlock = ("relation-partial-block", Error, "a relation file's size is not a multiple of the block size"),
        RelationSegmentGap = ("relation-segment-gap", Error, "a relation segment file is missing between others"),
        RelationSegmentShort = ("relation-segment-short", Error, "a relation segment that is not the last is shorter than a full segment"),
        XactSegmentMissing = ("xact-segment-missing", Error, "a pg_xact segment needed for xids between oldestXID and NextXID is missing"),
        XactSegmentShort = ("xact-segment-short", Error, "a pg_xact segment lacks pages needed for xids between oldestXID and NextXID"),
        WalSegmentMissing = ("wal-segment-missing", Error, "a WAL segment needed to replay from the REDO point is missing"),
        WalCheckpointUnreadable = ("wal-checkpoint-unreadable", Error, "the latest checkpoint record cannot be read"),
        WalCheckpointMismatch = ("wal-checkpoint-mismatch", Error, "the latest checkpoint record differs from pg_control's copy"),
        WalRecordBroken = ("wal-record-broken", Error, "valid WAL stops at a damaged record or page, and more WAL follows it"),
        WalForeignSegment = ("wal-foreign-segment", Error, "a file in pg_wal belongs to another cluster or major"),
        WalSegmentMisplaced = ("wal-segment-misplaced", Error, "a WAL segment's pages carry addresses of another segment"),
        WalSegmentWrongSize = ("wal-segment-wrong-size", Warning, "a WAL segment file is not the cluster's segment size"),
    }
}

/// Where a finding is, in the words of the database and of the file system. Both `check`'s
/// and `diagnose`'s findings carry one (flattened into their JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Location {
    /// The relation in the database's own words (`table public.t in database app`), when
    /// the catalog names it (diagnose).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
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
}

impl Location {
    pub fn is_empty(&self) -> bool {
        *self == Location::default()
    }
}

/// In one phrase: `table public.t in database app, base/5/16384, block 3, offset 24576`.
impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        parts.extend(self.relation.clone());
        parts.extend(self.file.clone());
        parts.extend(self.block.map(|b| format!("block {b}")));
        parts.extend(self.offset.map(|o| format!("offset {o}")));
        parts.extend(self.lsn.map(|l| format!("LSN {l}")));
        parts.extend(self.xids.map(|(a, b)| if a == b { format!("xid {a}") } else { format!("xids {a}..{b}") }));
        f.write_str(&parts.join(", "))
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    pub code: Code,
    pub severity: Severity,
    pub area: Area,
    #[serde(flatten)]
    pub at: Location,
    pub message: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

impl Finding {
    /// A finding with the registered severity of `code`.
    pub fn new(code: Code, area: Area, message: impl Into<String>) -> Finding {
        Finding { code, severity: code.severity(), area, at: Location::default(), message: message.into(), evidence: Vec::new() }
    }
    pub fn file(mut self, f: impl Into<String>) -> Self {
        self.at.file = Some(f.into());
        self
    }
    pub fn block(mut self, b: u32) -> Self {
        self.at.block = Some(b);
        self
    }
    pub fn offset(mut self, o: u64) -> Self {
        self.at.offset = Some(o);
        self
    }
    pub fn lsn(mut self, l: Lsn) -> Self {
        self.at.lsn = Some(l);
        self
    }
    pub fn xids(mut self, a: Xid, b: Xid) -> Self {
        self.at.xids = Some((a, b));
        self
    }
    pub fn evidence(mut self, e: impl Into<String>) -> Self {
        self.evidence.push(e.into());
        self
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case() {
        let check: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        let diagnose: Vec<&str> = crate::diagnose::Code::ALL.iter().map(|c| c.as_str()).collect();
        for table in [&check, &diagnose] {
            let mut seen = std::collections::HashSet::new();
            for code in table.iter() {
                assert!(seen.insert(*code), "duplicate code {code}");
                assert!(code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{code}");
            }
        }
        // A code both commands use means the same in both.
        for c in Code::ALL {
            if let Some(d) = crate::diagnose::Code::parse(c.as_str()) {
                assert_eq!(c.severity(), d.severity(), "{c}");
            }
        }
    }
}
