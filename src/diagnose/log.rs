//! Server logs: stderr with any log_line_prefix, csvlog and jsonlog. Each line is reduced to
//! its message (and detail), then matched against the messages that matter in a salvage.

use regex::Regex;
use serde::Serialize;
use std::sync::OnceLock;

/// What a relevant log line says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum LogEvent {
    XactStatusMissing {
        xid: u32,
    },
    XactFileMissing {
        file: String,
    },
    InvalidPage {
        block: u32,
        relation: String,
    },
    ChecksumFailure {
        calculated: u32,
        expected: u32,
    },
    NoCheckpointRecord,
    /// The server refuses pg_control itself (its CRC, its version, its compile-time values,
    /// or cannot open it).
    ControlFileRefused,
    NoSpace,
    CorruptionHint,
    InterruptedRecovery,
    InvalidRecordLength,
    InvalidPagesReferenced,
    MultixactMissing {
        multi: u32,
    },
}

#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    pub file: String,
    pub line: usize,
    pub text: String,
    pub event: LogEvent,
}

/// A message pattern and how to turn its captures into an event.
type Pattern = (Regex, fn(&regex::Captures) -> Option<LogEvent>);

fn patterns() -> &'static [Pattern] {
    static P: OnceLock<Vec<Pattern>> = OnceLock::new();
    P.get_or_init(|| {
        let r = |s: &str| Regex::new(s).unwrap_or_else(|_| Regex::new("$^").unwrap_or_else(|_| unreachable!()));
        vec![
            (r(r"could not access status of transaction (\d+)"), |c| Some(LogEvent::XactStatusMissing { xid: c[1].parse().ok()? })),
            (r(r#"[Cc]ould not open file "(pg_(?:xact|clog)/[0-9A-F]+)""#), |c| Some(LogEvent::XactFileMissing { file: c[1].to_string() })),
            (r(r#"invalid page(?: header)? in block (\d+) of relation "?([^"\s]+)"?"#), |c| {
                Some(LogEvent::InvalidPage { block: c[1].parse().ok()?, relation: c[2].to_string() })
            }),
            (r(r"page verification failed, calculated checksum (\d+) but expected (\d+)"), |c| {
                Some(LogEvent::ChecksumFailure { calculated: c[1].parse().ok()?, expected: c[2].parse().ok()? })
            }),
            (r(r"could not locate a valid checkpoint record"), |_| Some(LogEvent::NoCheckpointRecord)),
            (
                r(r#"incorrect checksum in control file|database files are incompatible with server|could not open file "global/pg_control"|could not read file "global/pg_control""#),
                |_| Some(LogEvent::ControlFileRefused),
            ),
            (r(r"No space left on device"), |_| Some(LogEvent::NoSpace)),
            (r(r"This probably means that some data is corrupted"), |_| Some(LogEvent::CorruptionHint)),
            (r(r"database system was interrupted while in recovery"), |_| Some(LogEvent::InterruptedRecovery)),
            (r(r"invalid record length at"), |_| Some(LogEvent::InvalidRecordLength)),
            (r(r"WAL contains references to invalid pages"), |_| Some(LogEvent::InvalidPagesReferenced)),
            (r(r"(?:could not access status of|has not been created yet).*?MultiXactId (\d+)|MultiXactId (\d+) has not been created yet"), |c| {
                Some(LogEvent::MultixactMissing { multi: c.get(1).or(c.get(2))?.as_str().parse().ok()? })
            }),
        ]
    })
}

/// The message text of a line: jsonlog's message+detail, csvlog's message+detail fields,
/// or the line itself (stderr with any prefix).
fn message_of(line: &str) -> String {
    let t = line.trim();
    if t.starts_with('{') {
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(t) {
            let m = v.get("message").and_then(|m| m.as_str()).unwrap_or_default();
            let d = v.get("detail").and_then(|m| m.as_str()).unwrap_or_default();
            return format!("{m} {d}");
        }
    }
    if let Some(fields) = csv_fields(t) {
        if fields.len() >= 15 {
            return format!("{} {}", fields[13], fields[14]);
        }
    }
    t.to_string()
}

/// Split one csvlog line (quotes doubled inside quoted fields); None if it is not CSV-like.
fn csv_fields(line: &str) -> Option<Vec<String>> {
    if !line.as_bytes().first().is_some_and(|b| b.is_ascii_digit()) || line.matches(',').count() < 14 {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(ch) = chars.next() {
        match (ch, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    out.push(cur);
    Some(out)
}

/// Every relevant line of a log file's text.
pub fn parse(file: &str, text: &str) -> Vec<LogLine> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let msg = message_of(line);
        for (re, make) in patterns() {
            if let Some(c) = re.captures(&msg) {
                if let Some(event) = make(&c) {
                    out.push(LogLine { file: file.to_string(), line: i + 1, text: line.trim().chars().take(400).collect(), event });
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_file_refusals() {
        let l = parse(
            "s.log",
            "2026-12-01 19:19:19.093 UTC [2940] FATAL:  incorrect checksum in control file\nFATAL:  database files are incompatible with server\n",
        );
        assert_eq!(l.len(), 2);
        assert!(l.iter().all(|x| x.event == LogEvent::ControlFileRefused));
    }

    #[test]
    fn all_three_formats() {
        let stderr = "2012-05-18 16:15:00 JST [123] ERROR:  could not access status of transaction 4294692688\n\
                      DETAIL:  Could not open file \"pg_clog/0FFF\": No such file or directory.\n\
                      ERROR: invalid page header in block 30526 of relation base/16397/1046635\n";
        let v = parse("log", stderr);
        assert_eq!(v[0].event, LogEvent::XactStatusMissing { xid: 4294692688 });
        assert_eq!(v[1].event, LogEvent::XactFileMissing { file: "pg_clog/0FFF".into() });
        assert_eq!(v[2].event, LogEvent::InvalidPage { block: 30526, relation: "base/16397/1046635".into() });
        let csv = r#"2026-11-22 10:00:00.000 UTC,"postgres","app",123,"[local]",abc.1,1,"SELECT",2026-11-22 10:00:00 UTC,3/4,0,ERROR,XX001,"invalid page in block 7 of relation ""base/5/16384""",,,,,,"select 1",,,"psql","client backend",,0"#;
        assert_eq!(parse("csv", csv)[0].event, LogEvent::InvalidPage { block: 7, relation: "base/5/16384".into() });
        let json =
            r#"{"timestamp":"2026-11-22","error_severity":"PANIC","message":"could not write to file \"pg_wal/xlogtemp.123\": No space left on device"}"#;
        assert_eq!(parse("json", json)[0].event, LogEvent::NoSpace);
    }
}
