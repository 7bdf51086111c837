//! The format layer against real clusters of every major: WAL chains across pages and
//! segments (and, for 15, record by record against pg_waldump), pg_xact statuses against
//! the transactions the test ran, every relation page's header and checksum, heap tuple
//! headers against the server's xmin/xmax, and damage as the server itself reports it.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use pgsalvage::datadir::{DataDir, DirWalSource};
use pgsalvage::format::control::ControlFile;
use pgsalvage::format::page::{self, heap, PageVerdict};
use pgsalvage::format::types::Lsn;
use pgsalvage::format::version::PgMajor;
use pgsalvage::format::wal::{self, WalError, WalGeometry, WalReader};
use pgsalvage::format::xact::{ClogGeometry, XactStatus};
use std::path::Path;
use std::process::Command;

fn control(data: &Path) -> ControlFile {
    ControlFile::parse(&std::fs::read(data.join("global/pg_control")).unwrap()).unwrap()
}

/// Read records from `start` until the WAL ends; returns (LSNs read, the error that ended it).
fn read_chain(data: &Path, c: &ControlFile, start: Lsn) -> (Vec<Lsn>, WalError, usize) {
    let dd = DataDir::open(data).unwrap();
    let g = WalGeometry::new(c.bytes_per_wal_segment, c.wal_block_size).unwrap();
    let src = DirWalSource::new(&dd, g, c.checkpoint.timeline_id).unwrap();
    let mut r = WalReader::new(src, c.major, g, Some(c.system_identifier));
    let (mut lsn, mut prev) = (start, None);
    let mut lsns = Vec::new();
    let mut checkpoints = 0;
    loop {
        match r.read_record(lsn, prev) {
            Ok(rr) => {
                if rr.record.is_checkpoint() {
                    wal::decode_checkpoint(c.major, &rr.record).expect("checkpoint record decodes");
                    checkpoints += 1;
                }
                lsns.push(rr.record.lsn);
                prev = Some(rr.record.lsn);
                lsn = rr.next;
            }
            Err(e) => return (lsns, e, checkpoints),
        }
    }
}

fn wal_chain(major: u32) {
    let opts = InitOpts { checksums: true, wal_segsize_mb: if major >= 11 { Some(1) } else { None } };
    let mut c = Cluster::new(major, opts);
    c.start();
    c.sql("checkpoint");
    let redo: Lsn = c.sql("select redo_lsn from pg_control_checkpoint()").parse().unwrap();
    c.pgbench_init(3);
    c.pgbench_run(300);
    let flushed: Lsn = c.sql("select pg_current_wal_flush_lsn()").parse().unwrap();
    c.crash();
    let ctl = control(&c.data);
    let (lsns, end, checkpoints) = read_chain(&c.data, &ctl, redo);
    let g = WalGeometry::new(ctl.bytes_per_wal_segment, ctl.wal_block_size).unwrap();
    let last = *lsns.last().unwrap();
    assert!(last >= Lsn(flushed.0 - 8192.min(flushed.0)), "PG{major}: chain ended at {last} before the flushed {flushed}: {end}");
    assert!(g.segno(last) >= g.segno(redo) + 2, "PG{major}: the chain should cross several segments");
    assert!(checkpoints >= 1, "PG{major}: the explicit checkpoint record must be in the chain");
    // The chain ends the way valid WAL ends: zeroes or a recycled page, not a CRC error.
    assert!(
        matches!(end, WalError::ZeroLength { .. } | WalError::InvalidPageHeader { .. } | WalError::MissingSegment { .. }),
        "PG{major}: unexpected end {end}"
    );
    if major == 15 {
        // Record by record against pg_waldump from the same start to the end of WAL.
        let out = Command::new(PgBin::system_tool("pg_waldump")).arg("-p").arg(c.data.join("pg_wal")).arg("-s").arg(redo.to_string()).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let theirs: Vec<Lsn> = text.lines().filter_map(|l| l.split("lsn: ").nth(1)).map(|s| s.split(',').next().unwrap().parse().unwrap()).collect();
        assert_eq!(theirs.len(), lsns.len(), "record count vs pg_waldump");
        assert_eq!(theirs, lsns);
    }
    // The server recovers from the same WAL.
    c.start();
    assert_eq!(c.sql("select count(*) from pgbench_accounts"), "300000");
}

fn clog_truth(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table t(i int)");
    let mut truth = Vec::new();
    for i in 0..40 {
        let commit = i % 3 != 0;
        let sql = format!("begin; insert into t values ({i}); select txid_current(); {}", if commit { "commit;" } else { "rollback;" });
        let xid: u64 = c.sql(&sql).lines().find(|l| !l.is_empty()).unwrap().parse().unwrap();
        truth.push((xid as u32, commit));
    }
    // A subtransaction that commits with its parent, and one that rolls back.
    let out = c.sql(
        "begin; savepoint a; insert into t values (1000); select txid_current(); release a; savepoint b; insert into t values (1001); rollback to b; commit;",
    );
    let top: u32 = out.lines().find(|l| !l.is_empty()).unwrap().parse::<u64>().unwrap() as u32;
    truth.push((top, true));
    c.stop();
    let ctl = control(&c.data);
    let g = ClogGeometry::new(ctl.database_block_size);
    for (xid, commit) in truth {
        let seg = std::fs::read(c.data.join("pg_xact").join(pgsalvage::format::xact::segment_file_name(g.segment_of(xid)))).unwrap();
        let st = g.status_in_segment(&seg, xid).unwrap();
        let want = if commit { XactStatus::Committed } else { XactStatus::Aborted };
        assert_eq!(st, want, "PG{major}: xid {xid}");
    }
}

/// Every page of every relation file: the header checks and checksum agree with the server
/// (a cluster the server just wrote has no invalid page).
fn all_pages_valid(data: &Path, ctl: &ControlFile) -> usize {
    let bs = ctl.database_block_size as usize;
    let mut pages = 0;
    for top in ["base", "global"] {
        for entry in walk(&data.join(top)) {
            let name = entry.file_name().unwrap().to_string_lossy().to_string();
            let (stem, segno) = match name.split_once('.') {
                Some((s, n)) => (s.to_string(), n.parse::<u32>().unwrap_or(0)),
                None => (name.clone(), 0),
            };
            let base = stem.split('_').next().unwrap();
            if base.parse::<u32>().is_err() {
                continue;
            }
            let bytes = std::fs::read(&entry).unwrap();
            assert_eq!(bytes.len() % bs, 0, "{}: size {} not a multiple of the block size", entry.display(), bytes.len());
            for (i, p) in bytes.chunks(bs).enumerate() {
                let blkno = segno * ctl.blocks_per_segment + i as u32;
                let v = page::verify_page(p, blkno, ctl.data_page_checksum_version > 0).unwrap();
                assert!(v.is_ok(), "{} block {blkno}: {v:?}", entry.display());
                pages += 1;
            }
        }
    }
    pages
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            v.extend(walk(&p));
        } else {
            v.push(p);
        }
    }
    v
}

fn pages_and_tuples(major: u32) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.pgbench_init(1);
    c.sql("update pgbench_branches set bbalance = 7 where bid = 1");
    c.sql("checkpoint");
    let server_rows = c.sql("select ctid, xmin, xmax from pgbench_branches order by ctid");
    let accounts = c.relpath("pgbench_accounts");
    let branches = c.relpath("pgbench_branches");
    c.stop();
    let ctl = control(&c.data);
    assert!(ctl.data_page_checksum_version == 1);
    let n = all_pages_valid(&c.data, &ctl);
    assert!(n > 1500, "PG{major}: only {n} pages checked");

    // Tuple headers equal the server's system columns.
    let page0 = std::fs::read(c.data.join(&branches)).unwrap();
    let mut ours = Vec::new();
    for p in page0.chunks(8192).enumerate() {
        for s in heap::tuples(p.1).unwrap() {
            let h = s.header.unwrap_or_else(|| panic!("PG{major}: {:?}", s.problem));
            // Live rows only: the updated row's old version has xmax set and is not returned.
            if h.has(heap::infomask::XMAX_INVALID) || h.xmax == 0 {
                ours.push(format!("({},{})|{}|{}", p.0, s.offnum, h.xmin, h.xmax));
            }
        }
    }
    let theirs: Vec<String> = server_rows.lines().map(str::to_string).collect();
    assert_eq!(ours, theirs, "PG{major}: heap tuple headers");

    // Damage as the server reports it: a flipped tuple byte is a checksum failure with
    // exactly our calculated/stored values; a scribbled header is an invalid page.
    let path = c.data.join(&accounts);
    let blk = 3u64;
    let mut bytes = std::fs::read(&path).unwrap();
    let off = (blk * 8192 + 8000) as usize;
    bytes[off] ^= 0x01;
    scribble(&path, blk * 8192 + 8000, &bytes[off..off + 1]);
    let v = page::verify_page(&bytes[(blk * 8192) as usize..((blk + 1) * 8192) as usize], blk as u32, true).unwrap();
    let PageVerdict::ChecksumFailure(cf) = v else { panic!("PG{major}: expected a checksum failure, got {v:?}") };
    let hdr_blk = 5u64;
    scribble(&path, hdr_blk * 8192 + 12, &[0xFF, 0x7F]); // pd_lower = 32767 > pd_upper
    let hb = std::fs::read(&path).unwrap();
    let v = page::verify_page(&hb[(hdr_blk * 8192) as usize..((hdr_blk + 1) * 8192) as usize], hdr_blk as u32, true).unwrap();
    assert!(matches!(v, PageVerdict::InvalidHeader { .. }), "PG{major}: {v:?}");
    c.start();
    // A query that must read every heap page (count(*) could be an index-only scan).
    let scan = "set max_parallel_workers_per_gather = 0; select sum(length(filler)) from pgbench_accounts";
    let (ok, _, err) = c.try_sql(scan);
    assert!(!ok, "PG{major}: the flipped byte was accepted");
    let want = format!("page verification failed, calculated checksum {} but expected {}", cf.calculated, cf.stored);
    let log = std::fs::read_to_string(&c.log).unwrap();
    assert!(err.contains(&want) || log.contains(&want), "PG{major}: server said {err}");
    c.sql("set zero_damaged_pages = off");
    let (ok, _, err) = c.try_sql(&format!("set ignore_checksum_failure = on; {scan}"));
    assert!(!ok, "PG{major}: the scribbled header was accepted");
    assert!(err.contains(&format!("invalid page in block {hdr_blk} of relation")), "PG{major}: server said {err}");
}

fn segsize(major: u32, mb: u32) {
    let mut c = Cluster::new(major, InitOpts { checksums: false, wal_segsize_mb: Some(mb) });
    c.start();
    c.sql("create table t as select g from generate_series(1, 20000) g; checkpoint");
    c.stop();
    let r = inspect_json(&c.data);
    assert_eq!(r["layout"]["wal_segment_size"], (mb as u64) << 20);
    assert_eq!(r["layout"]["data_checksums"], false);
    assert_eq!(r["checkpoint_record"]["matches_control"], true, "PG{major} {mb} MB: {}", r["checkpoint_record"]);
    let g = WalGeometry::new(mb << 20, 8192).unwrap();
    let ctl = control(&c.data);
    assert!(Path::new(&c.data.join("pg_wal").join(g.file_name(1, g.segno(ctl.checkpoint.redo_lsn)))).exists());
    assert!(r["warnings"].as_array().unwrap().is_empty(), "{}", r["warnings"]);
    assert!(all_pages_valid(&c.data, &ctl) > 100);
}

per_major!(wal_chain: wal_chain_pg10 = 10, wal_chain_pg11 = 11, wal_chain_pg12 = 12, wal_chain_pg13 = 13, wal_chain_pg14 = 14, wal_chain_pg15 = 15, wal_chain_pg16 = 16, wal_chain_pg17 = 17, wal_chain_pg18 = 18);
per_major!(clog_truth: clog_pg10 = 10, clog_pg11 = 11, clog_pg12 = 12, clog_pg13 = 13, clog_pg14 = 14, clog_pg15 = 15, clog_pg16 = 16, clog_pg17 = 17, clog_pg18 = 18);
per_major!(pages_and_tuples: pages_pg10 = 10, pages_pg11 = 11, pages_pg12 = 12, pages_pg13 = 13, pages_pg14 = 14, pages_pg15 = 15, pages_pg16 = 16, pages_pg17 = 17, pages_pg18 = 18);

#[test]
fn wal_segment_sizes_1mb_and_64mb() {
    for m in [11, 15, 18] {
        if majors().contains(&m) {
            segsize(m, 1);
            segsize(m, 64);
        }
    }
}

#[test]
fn every_major_detected_from_real_pg_control() {
    for m in majors() {
        let c = Cluster::new(m, InitOpts::default());
        let ctl = control(&c.data);
        assert_eq!(ctl.major, PgMajor::new(m).unwrap());
        // Byte-identical re-encode of the real file.
        let bytes = std::fs::read(c.data.join("global/pg_control")).unwrap();
        assert_eq!(ctl.encode(), bytes, "PG{m}: encode(parse(pg_control)) differs");
    }
}
