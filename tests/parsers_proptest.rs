//! Every parser fed random bytes, and real fixture bytes with random damage: a value or a
//! precise error, never a panic.
#![allow(clippy::unwrap_used)]

mod common;
use pgsalvage::format::control::{CheckPoint, ControlFile};
use pgsalvage::format::page::{self, heap, PageHeader};
use pgsalvage::format::types::Lsn;
use pgsalvage::format::version::PgMajor;
use pgsalvage::format::wal::{self, reader::MemorySource, WalGeometry, WalPageHeader, WalReader};
use pgsalvage::format::xact::{parse_segment_file_name, ClogGeometry};
use proptest::prelude::*;

fn fixture(major: u32, name: &str) -> Vec<u8> {
    std::fs::read(common::repo_root().join(format!("fixtures/pg{major}/{name}"))).unwrap()
}

fn any_major() -> impl Strategy<Value = PgMajor> {
    (10u32..=18).prop_map(|m| PgMajor::new(m).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn control_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..9000)) {
        let _ = ControlFile::parse(&bytes);
        let _ = ControlFile::parse_lenient(&bytes);
    }

    #[test]
    fn control_real_file_damaged(major in 10u32..=18, pos in 0usize..8192, val in any::<u8>(), cut in 0usize..8300) {
        let mut b = fixture(major, "pg_control");
        b[pos] = val;
        b.truncate(cut);
        match ControlFile::parse(&b) {
            Ok(c) => prop_assert_eq!(c.major.number(), major),
            Err(e) => prop_assert!(e.offset() <= 8192),
        }
    }

    #[test]
    fn checkpoint_random(major in any_major(), bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(cp) = CheckPoint::decode(major, &bytes) {
            // What decodes re-encodes to the same bytes (padding aside).
            let again = CheckPoint::decode(major, &cp.encode(major)).unwrap();
            prop_assert_eq!(again, cp);
        }
    }

    #[test]
    fn wal_page_header_random(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = WalPageHeader::parse(&bytes);
    }

    #[test]
    fn wal_reader_random_segment(major in any_major(), bytes in proptest::collection::vec(any::<u8>(), 0..40000), start in 0u64..40000) {
        let g = WalGeometry::new(1 << 20, 8192).unwrap();
        let mut seg = bytes;
        seg.resize(1 << 20, 0);
        let mut r = WalReader::new(MemorySource { first_segno: 0, segments: vec![seg] }, major, g, None);
        let mut lsn = Lsn(start & !7);
        for _ in 0..50 {
            match r.read_record(lsn, None) {
                Ok(rr) => { prop_assert!(rr.next > lsn); lsn = rr.next; }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn wal_reader_real_segment_damaged(major in 10u32..=18, pos in 0usize..(1 << 20), val in any::<u8>()) {
        let mut seg = zstd::decode_all(&fixture(major, "wal.zst")[..]).unwrap();
        let p = pos % seg.len();
        seg[p] = val;
        let c = ControlFile::parse(&fixture(major, "pg_control")).unwrap();
        let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).unwrap();
        let segno = g.segno(c.checkpoint_lsn);
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg] }, c.major, g, Some(c.system_identifier));
        let mut lsn = c.checkpoint_lsn;
        for _ in 0..200 {
            match r.read_record(lsn, None) {
                Ok(rr) => { if rr.record.is_checkpoint() { let _ = wal::decode_checkpoint(c.major, &rr.record); } lsn = rr.next; }
                Err(_) => break,
            }
        }
    }

    #[test]
    fn record_decode_random(major in any_major(), mut bytes in proptest::collection::vec(any::<u8>(), 24..600)) {
        let len = bytes.len() as u32;
        bytes[0..4].copy_from_slice(&len.to_le_bytes());
        let _ = wal::record::decode_record(major, Lsn(0), bytes);
    }

    #[test]
    fn page_random(bytes in proptest::collection::vec(any::<u8>(), 0..8192), blk in any::<u32>(), k in any::<bool>()) {
        let mut p = bytes;
        if p.len() > 100 { p.resize(8192, 0); }
        let _ = page::verify_page(&p, blk, k);
        let _ = PageHeader::parse(&p).map(|h| h.header_problems(8192));
        let _ = page::line_pointers(&p);
        let _ = heap::tuples(&p);
    }

    #[test]
    fn page_real_damaged(major in 10u32..=18, pos in 0usize..8192, val in any::<u8>()) {
        let mut p = fixture(major, "pages.bin")[..8192].to_vec();
        let before = p[pos];
        p[pos] = val;
        let v = page::verify_page(&p, 0, true).unwrap();
        if before != val && !(8..10).contains(&pos) {
            prop_assert!(!matches!(v, page::PageVerdict::Valid), "a changed byte at {} went unnoticed", pos);
        }
        let _ = heap::tuples(&p);
    }

    #[test]
    fn clog_random(bytes in proptest::collection::vec(any::<u8>(), 0..300), xid in any::<u32>()) {
        let g = ClogGeometry::new(8192);
        let _ = g.status_in_segment(&bytes, xid);
        let _ = parse_segment_file_name(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn pg_version_random(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
        let _ = PgMajor::from_pg_version_file(&bytes);
    }

    #[test]
    fn wal_names_random(s in "[0-9A-Fa-f]{0,30}", size_pow in 20u32..=30) {
        let g = WalGeometry::new(1 << size_pow, 8192).unwrap();
        if let Some((tli, segno)) = g.parse_file_name(&s) {
            prop_assert_eq!(g.file_name(tli, segno), s);
        }
    }
}
