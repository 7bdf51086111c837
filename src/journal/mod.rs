//! The undo journal of one operation (an `apply` and its `rollback`): what was changed, where
//! the original bytes are kept, and how far each step and each undo got.
//!
//! Owns: the record types, their framing on disk, and appending/reading the journal file.
//! Depends on: [`crate::error`] only; the steps that write the data directory are in [`step`].
//!
//! On disk (`journal.log` in the operation's rollback store, 0600), append-only:
//!
//! ```text
//! journal := record*
//! record  := LEN ' ' CRC ' ' JSON '\n'
//! LEN     := the byte length of JSON, in decimal
//! CRC     := CRC-32C of JSON, 8 lowercase hex digits
//! JSON    := one Record (serde, tagged by "record")
//! ```
//!
//! A record is appended and fsynced before the change it announces starts. A process that dies
//! while appending leaves a torn *last* record, without its newline: it is ignored (its step
//! never began). A record
//! that fails its frame anywhere else means the journal was damaged or edited: reading stops
//! with an error naming the record's number and byte offset, never skipping it, because a
//! skipped record could be a lost undo step.
//!
//! The order of records for one step of apply: `Prepared` (the original is safe in the store
//! and fsynced; both the before- and the after-state are named) → the change → `Done` (the
//! change is durable and read back as planned). Rollback appends `RollbackBegin`, then for each
//! step it undoes `Undoing` → the undo → `Undone` (the target reads back as the original), then
//! `RolledBack`. Rollback can therefore be interrupted and run again: it resumes.

pub mod step;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The journal's file name inside an operation's store.
pub const JOURNAL: &str = "journal.log";

/// One journal record.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    Begin {
        operation: String,
        plan_sha256: String,
        data_directory: String,
        time: String,
        /// Modification times of the directories the plan may change (relative; "" is the
        /// data directory itself), taken before anything was written: rollback sets them last.
        #[serde(default)]
        dir_mtimes: Vec<(String, (i64, i64))>,
    },
    /// The original of `change` is safe (saved and fsynced); the change may start.
    Prepared {
        step: u32,
        action: String,
        change: step::Change,
    },
    /// The change is durable and reads back as its after-state.
    Done {
        step: u32,
    },
    /// Every step is done. `control_sha256`: pg_control as the apply left it (a later
    /// difference means the server ran since).
    Commit {
        time: String,
        #[serde(default)]
        control_sha256: Option<String>,
    },
    /// A rollback starts (or resumes).
    RollbackBegin {
        time: String,
        force: bool,
    },
    /// The undo of `step` starts: its target may be half-restored until `Undone`.
    Undoing {
        step: u32,
    },
    /// The target of `step` reads back as its original.
    Undone {
        step: u32,
    },
    RolledBack {
        time: String,
    },
}

/// A record framed for the journal file.
pub fn frame(r: &Record) -> Vec<u8> {
    // Serializing these plain structs cannot fail (no maps with non-string keys, no
    // non-finite floats); an empty object would be refused on read anyway.
    let json = serde_json::to_vec(r).unwrap_or_default();
    let mut line = format!("{} {:08x} ", json.len(), crc32c::crc32c(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    line
}

/// Why a framed record does not read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("not a framed record (LEN CRC JSON)")]
    NotFramed,
    #[error("length {0:?} is not a number")]
    BadLength(String),
    #[error("the record is {actual} bytes, its frame says {framed}")]
    LengthMismatch { actual: usize, framed: usize },
    #[error("CRC {0:?} is not hexadecimal")]
    BadCrc(String),
    #[error("CRC-32C mismatch: stored {stored:08x}, computed {computed:08x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("not a journal record: {0}")]
    NotARecord(String),
}

fn unframe(line: &[u8]) -> std::result::Result<Record, FrameError> {
    let text = std::str::from_utf8(line).map_err(|_| FrameError::NotUtf8)?;
    let mut it = text.splitn(3, ' ');
    let (Some(len), Some(crc), Some(json)) = (it.next(), it.next(), it.next()) else {
        return Err(FrameError::NotFramed);
    };
    let framed: usize = len.parse().map_err(|_| FrameError::BadLength(len.to_string()))?;
    if json.len() != framed {
        return Err(FrameError::LengthMismatch { actual: json.len(), framed });
    }
    let stored = u32::from_str_radix(crc, 16).map_err(|_| FrameError::BadCrc(crc.to_string()))?;
    let computed = crc32c::crc32c(json.as_bytes());
    if computed != stored {
        return Err(FrameError::CrcMismatch { stored, computed });
    }
    serde_json::from_str(json).map_err(|e| FrameError::NotARecord(e.to_string()))
}

/// A journal that failed to read: the record (1-based) and its byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damaged {
    pub record: usize,
    pub offset: usize,
    pub why: FrameError,
}

/// Parse a whole journal (pure). A torn last record is dropped (`torn` true); any other bad
/// record is an error naming it.
pub fn parse(bytes: &[u8]) -> std::result::Result<(Vec<Record>, bool), Damaged> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    let mut lines: Vec<(usize, &[u8], bool)> = Vec::new();
    while offset < bytes.len() {
        let rest = &bytes[offset..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(n) => {
                lines.push((offset, &rest[..n], true));
                offset += n + 1;
            }
            None => {
                lines.push((offset, rest, false));
                offset = bytes.len();
            }
        }
    }
    let n = lines.len();
    for (i, (at, line, terminated)) in lines.into_iter().enumerate() {
        let last = i + 1 == n;
        match unframe(line) {
            Ok(r) if terminated => out.push(r),
            // A record without its newline was cut while being written.
            Ok(_) => return Ok((out, true)),
            // Only the last record can be torn, and a torn record never has its newline
            // (the newline is its last byte): a bad record that ends in one was damaged.
            Err(_) if last && !terminated => return Ok((out, true)),
            Err(why) => return Err(Damaged { record: i + 1, offset: at, why }),
        }
    }
    Ok((out, false))
}

/// Read the journal of the operation whose store is `store`.
pub fn read(store: &Path) -> Result<Vec<Record>> {
    let p = store.join(JOURNAL);
    let bytes = std::fs::read(&p).map_err(|e| Error::io("read journal", &p, e))?;
    parse(&bytes).map(|(r, _)| r).map_err(|d| Error::Refused {
        message: format!(
            "{}: record {} (byte offset {}) is damaged: {}; an undo step could be lost, so nothing was changed",
            p.display(),
            d.record,
            d.offset,
            d.why
        ),
        hint: "restore from the snapshot taken before apply, or repair the journal by hand from the files in the rollback store".into(),
    })
}

/// An open journal, appended to with an fsync per record.
pub struct Journal {
    file: File,
    path: PathBuf,
    appended: u32,
}

impl Journal {
    /// A new journal (the file must not exist).
    pub fn create(store: &Path) -> Result<Journal> {
        let path = store.join(JOURNAL);
        let file = OpenOptions::new().append(true).create_new(true).mode(0o600).open(&path).map_err(|e| Error::io("create journal", &path, e))?;
        crate::fsx::sync_dir(store)?;
        Ok(Journal { file, path, appended: 0 })
    }

    /// The journal of an existing operation, to append rollback records. A torn last record
    /// is cut off first, so that the next record starts on a line of its own.
    pub fn reopen(store: &Path) -> Result<Journal> {
        let path = store.join(JOURNAL);
        let bytes = std::fs::read(&path).map_err(|e| Error::io("read journal", &path, e))?;
        let file = OpenOptions::new().append(true).custom_flags(nix::libc::O_NOFOLLOW).open(&path).map_err(|e| Error::io("open journal", &path, e))?;
        if let Ok((_, true)) = parse(&bytes) {
            let good = bytes.iter().rposition(|&b| b == b'\n').map(|i| i + 1).unwrap_or(0);
            file.set_len(good as u64).and_then(|_| file.sync_all()).map_err(|e| Error::io("truncate journal", &path, e))?;
        }
        Ok(Journal { file, path, appended: 0 })
    }

    pub fn append(&mut self, r: &Record) -> Result<()> {
        self.file.write_all(&frame(r)).and_then(|_| self.file.sync_all()).map_err(|e| Error::io("write journal", &self.path, e))?;
        self.appended += 1;
        // Fault injection for the tests: die (as kill -9 would) after the k-th record this
        // process appended.
        if let Ok(k) = std::env::var("PGSALVAGE_TEST_ABORT_AFTER_RECORD") {
            if k.parse::<u32>().ok() == Some(self.appended) {
                let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
                std::process::abort();
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn recs() -> Vec<Record> {
        vec![
            Record::Begin { operation: "op".into(), plan_sha256: "x".into(), data_directory: "/d".into(), time: "t".into(), dir_mtimes: vec![] },
            Record::Done { step: 1 },
            Record::Done { step: 2 },
        ]
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let bytes: Vec<u8> = recs().iter().flat_map(frame).collect();
        assert_eq!(parse(&bytes).unwrap(), (recs(), false));
        // Any cut inside the last record: the first two survive, the tail is torn.
        let last = frame(&recs()[2]).len();
        for cut in 1..last {
            let (r, torn) = parse(&bytes[..bytes.len() - cut]).unwrap();
            assert_eq!(r, recs()[..2].to_vec(), "cut {cut}");
            assert!(torn);
        }
    }

    #[test]
    fn a_damaged_middle_record_is_an_error_naming_it() {
        let first = frame(&recs()[0]).len();
        let mut bytes: Vec<u8> = recs().iter().flat_map(frame).collect();
        // Every byte of the second record, flipped one at a time (its newline included).
        let second = frame(&recs()[1]).len();
        for i in 0..second {
            let mut b = bytes.clone();
            b[first + i] ^= 0x01;
            let e = parse(&b);
            match e {
                Err(d) => assert!(d.record == 2 || d.record == 3, "byte {i}: {d:?}"),
                Ok((r, _)) => panic!("byte {i}: a flipped byte was accepted: {r:?}"),
            }
        }
        bytes[first + 3] ^= 0x40;
        let d = parse(&bytes).unwrap_err();
        assert_eq!((d.record, d.offset), (2, first));
    }
}
