//! Golden fixtures from real servers of every major (fixtures/make-fixtures): unit tests of
//! the format layer that need no server. Expected values are the servers' own.
#![allow(clippy::unwrap_used)]

mod common;
use common::{compare_with_server, repo_root};
use pgsalvage::format::bytes::maxalign;
use pgsalvage::format::control::ControlFile;
use pgsalvage::format::page::{self, heap, PageVerdict};
use pgsalvage::format::types::Lsn;
use pgsalvage::format::version::PgMajor;
use pgsalvage::format::wal::{self, reader::MemorySource, WalError, WalGeometry, WalPageHeader, WalReader};
use pgsalvage::format::xact::{ClogGeometry, XactStatus};
use serde_json::{json, Value};
use std::path::PathBuf;

struct Fixture {
    major: u32,
    dir: PathBuf,
    expected: Value,
}

fn fixtures() -> Vec<Fixture> {
    let v: Vec<Fixture> = (10..=18)
        .map(|major| {
            let dir = repo_root().join(format!("fixtures/pg{major}"));
            let expected = serde_json::from_slice(&std::fs::read(dir.join("expected.json")).unwrap()).unwrap();
            Fixture { major, dir, expected }
        })
        .collect();
    assert_eq!(v.len(), 9);
    v
}

fn read(f: &Fixture, name: &str) -> Vec<u8> {
    std::fs::read(f.dir.join(name)).unwrap()
}

fn wal_segment(f: &Fixture) -> Vec<u8> {
    zstd::decode_all(&read(f, "wal.zst")[..]).unwrap()
}

#[test]
fn pg_control_fields_equal_the_servers_view() {
    for f in fixtures() {
        let bytes = read(&f, "pg_control");
        let c = ControlFile::parse(&bytes).unwrap();
        assert_eq!(c.major, PgMajor::new(f.major).unwrap());
        let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).unwrap();
        let report = json!({ "control": c, "redo_wal_file": g.file_name(c.checkpoint.timeline_id, g.segno(c.checkpoint.redo_lsn)) });
        let n = compare_with_server(f.major, f.expected["server"].as_object().unwrap(), &report, "fixture");
        assert!(n >= 30);
        assert_eq!(c.encode(), bytes, "PG{}: byte-identical re-encode", f.major);
    }
}

/// Where the first record starting in a segment is: past the long header and any
/// continuation of a record from the previous segment.
fn first_record(seg: &[u8], g: &WalGeometry) -> Lsn {
    let h = WalPageHeader::parse(seg).unwrap();
    let mut off = h.size() as u64;
    if h.is_contrecord() {
        let mut rem = h.rem_len as u64;
        let mut page = 0u64;
        let bs = g.block_size as u64;
        loop {
            let avail = bs - off % bs;
            if rem <= avail {
                off = maxalign((off + rem) as usize) as u64;
                break;
            }
            rem -= avail;
            page += 1;
            off = page * bs + 24;
        }
    }
    Lsn(h.pageaddr.0 + off)
}

#[test]
fn wal_segment_reads_to_the_checkpoint_record() {
    for f in fixtures() {
        let c = ControlFile::parse(&read(&f, "pg_control")).unwrap();
        let seg = wal_segment(&f);
        let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).unwrap();
        assert_eq!(seg.len() as u32, g.seg_size);
        let (tli, segno) = g.parse_file_name(f.expected["wal_file"].as_str().unwrap()).unwrap();
        assert_eq!(tli, c.checkpoint.timeline_id);
        let start = first_record(&seg, &g);
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg.clone()] }, c.major, g, Some(c.system_identifier));
        let (mut lsn, mut prev, mut n, mut found) = (start, None, 0, false);
        let end = loop {
            match r.read_record(lsn, prev) {
                Ok(rr) => {
                    if rr.record.lsn == c.checkpoint_lsn {
                        assert_eq!(wal::decode_checkpoint(c.major, &rr.record).unwrap(), c.checkpoint, "PG{}", f.major);
                        found = true;
                    }
                    n += 1;
                    prev = Some(rr.record.lsn);
                    lsn = rr.next;
                }
                Err(e) => break e,
            }
        };
        assert!(found, "PG{}: checkpoint record {} not reached (stopped: {end})", f.major, c.checkpoint_lsn);
        assert!(n > 20, "PG{}: only {n} records", f.major);
        assert!(
            matches!(
                end,
                WalError::ZeroLength { .. }
                    | WalError::MissingSegment { .. }
                    | WalError::InvalidPageHeader { zeroed: true, .. }
                    | WalError::InvalidPageHeader { recycled: true, .. }
            ),
            "PG{}: {end}",
            f.major
        );

        // A flipped byte inside the checkpoint record is a CRC error at that record.
        let mut bad = seg.clone();
        let off = g.offset_in_segment(c.checkpoint_lsn) as usize + 30;
        bad[off] ^= 0x40;
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![bad] }, c.major, g, Some(c.system_identifier));
        assert!(matches!(r.read_record(c.checkpoint_lsn, None), Err(WalError::BadCrc { lsn, .. }) if lsn == c.checkpoint_lsn));
        // Another cluster's WAL (system identifier) is refused at the page header.
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg.clone()] }, c.major, g, Some(c.system_identifier + 1));
        let e = r.read_record(start, None).unwrap_err();
        assert!(e.to_string().contains("different database system"), "{e}");
        // The wrong major's magic is named.
        let other = PgMajor::new(if f.major == 18 { 17 } else { f.major + 1 }).unwrap();
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg] }, other, g, None);
        let e = r.read_record(start, None).unwrap_err().to_string();
        assert!(e.contains(&format!("the magic of PostgreSQL {}", f.major)), "{e}");
    }
}

#[test]
fn clog_statuses_equal_the_transactions_run() {
    for f in fixtures() {
        let seg = read(&f, "xact_0000");
        let g = ClogGeometry::new(8192);
        let txs = f.expected["transactions"].as_array().unwrap();
        assert_eq!(txs.len(), 12);
        for t in txs {
            let xid = t["xid"].as_u64().unwrap() as u32;
            let want = if t["status"] == "committed" { XactStatus::Committed } else { XactStatus::Aborted };
            assert_eq!(g.status_in_segment(&seg, xid).unwrap(), want, "PG{} xid {xid}", f.major);
        }
    }
}

#[test]
fn pages_verify_and_tuples_equal_the_servers_xmin_xmax() {
    for f in fixtures() {
        let pages = read(&f, "pages.bin");
        let mut live = Vec::new();
        for (blk, p) in pages.chunks(8192).enumerate() {
            assert_eq!(page::verify_page(p, blk as u32, true).unwrap(), PageVerdict::Valid, "PG{} block {blk}", f.major);
            for s in heap::tuples(p).unwrap() {
                let Some(h) = s.header else { continue };
                // Visible rows: inserted by a committed transaction and not deleted/updated.
                let aborted = h.has(heap::infomask::XMIN_INVALID) && !h.xmin_frozen();
                if !aborted && (h.has(heap::infomask::XMAX_INVALID) || h.xmax == 0) {
                    live.push(json!({"ctid": format!("({blk},{})", s.offnum), "xmin": h.xmin.to_string(), "xmax": h.xmax.to_string()}));
                }
            }
            // One flipped bit anywhere is a checksum failure.
            let mut q = p.to_vec();
            q[4000] ^= 0x10;
            assert!(matches!(page::verify_page(&q, blk as u32, true).unwrap(), PageVerdict::ChecksumFailure(_)));
        }
        let want: Vec<Value> = f.expected["tuples"].as_array().unwrap().clone();
        assert!(!want.is_empty());
        assert_eq!(live, want, "PG{}", f.major);
    }
}
