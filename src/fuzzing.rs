//! The bodies of the fuzz targets (`fuzz/fuzz_targets/*.rs` call these; so does
//! `tests/fuzz_regressions.rs`, which replays every seed and every input a fuzzer ever
//! found on the stable toolchain). Each takes arbitrary bytes and must return without a
//! panic, an abort, or unbounded allocation; each also checks the invariants that hold
//! for whatever does parse. Not part of the tool's interface.

use crate::format::control::{CheckPoint, ControlFile};
use crate::format::page::{self, heap, PageHeader};
use crate::format::types::Lsn;
use crate::format::version::PgMajor;
use crate::format::wal::{self, reader::MemorySource, WalGeometry, WalPageHeader, WalReader};
use crate::format::xact::{parse_segment_file_name, ClogGeometry, XactStatus};
use crate::plan::{bytes, Plan};

/// A fuzz target's body.
pub type Target = fn(&[u8]);

/// One seed input: (target, name, bytes).
pub type Seed = (&'static str, String, Vec<u8>);

/// The fuzz targets, by name: what `scripts/fuzz` runs and the regression test replays.
pub const TARGETS: &[(&str, Target)] = &[
    ("control", control),
    ("wal_segment", wal_segment),
    ("wal_record", wal_record),
    ("xact", xact),
    ("page", page),
    ("plan", plan),
    ("manifest", manifest),
    ("tar", tar),
    ("log", log),
];

const CONTROL_15: &[u8] = include_bytes!("../fixtures/pg15/pg_control");
const PAGES_15: &[u8] = include_bytes!("../fixtures/pg15/pages.bin");
const XACT_15: &[u8] = include_bytes!("../fixtures/pg15/xact_0000");

fn major_of(b: u8) -> PgMajor {
    PgMajor::new(10 + u32::from(b & 0x7f) % 9).unwrap_or(PgMajor::MIN)
}

/// pg_control (every major), the checkpoint struct, the relation map and PG_VERSION: the
/// small files of global/.
pub fn control(data: &[u8]) {
    if let Ok(c) = ControlFile::parse(data) {
        // What parses re-encodes to bytes that parse to the same thing.
        let once = c.encode();
        let again = ControlFile::parse(&once).expect("an encoded pg_control parses");
        assert_eq!(again.encode(), once, "encode(parse(encode(x))) differs from encode(x)");
        let _ = c.sanity_problems();
    }
    if let Ok((c, _)) = ControlFile::parse_lenient(data) {
        let _ = c.sanity_problems();
    }
    let _ = ControlFile::detect_major(data);
    for m in PgMajor::all() {
        if let Ok(cp) = CheckPoint::decode(m, data) {
            let again = CheckPoint::decode(m, &cp.encode(m)).expect("an encoded checkpoint decodes");
            assert_eq!(again.encode(m), cp.encode(m));
        }
        let _ = crate::format::relmap::parse(m, data);
    }
    let _ = PgMajor::from_pg_version_file(data);
}

/// A WAL segment's first bytes (after one byte choosing the major): page headers, records
/// across pages, checkpoints and commit records, as `check` and `diagnose` read them.
pub fn wal_segment(data: &[u8]) {
    let Some((&sel, seg)) = data.split_first() else { return };
    let major = major_of(sel);
    let g = WalGeometry::new(1 << 20, 8192).expect("1 MB segments are valid");
    // Start the source where the page address says, so that real seeds read past the header.
    let segno = WalPageHeader::parse(seg).map(|h| g.segno(h.pageaddr)).unwrap_or(0);
    let sysid = if sel & 0x80 != 0 { WalPageHeader::parse(seg).ok().and_then(|h| h.long.map(|l| l.sysid)) } else { None };
    // What the inventory makes of the same bytes as a file: runs of pages, and a history.
    for run in wal::runs::page_runs(seg, major, &g) {
        assert!(run.offset % 8192 == 0 && run.len > 0 && run.offset + run.len <= seg.len() as u64, "a run outside the file: {run:?}");
    }
    let _ = wal::runs::parse_history(&String::from_utf8_lossy(seg));
    let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg.to_vec()] }, major, g, sysid);
    let Ok(Some(mut lsn)) = r.first_record_in_segment(segno) else { return };
    for _ in 0..2000 {
        match r.read_record(lsn, None) {
            Ok(rr) => {
                assert!(rr.next > lsn, "the reader did not advance at {lsn}");
                if rr.record.is_checkpoint() {
                    let _ = wal::decode_checkpoint(major, &rr.record);
                }
                let _ = wal::xact::decode_outcome(major, &rr.record);
                lsn = rr.next;
            }
            Err(e) => {
                let _ = e.to_string();
                break;
            }
        }
    }
}

/// One WAL record's bytes (after a byte choosing the major): header, block references,
/// main data, and the checkpoint and transaction payloads.
pub fn wal_record(data: &[u8]) {
    let Some((&sel, rec)) = data.split_first() else { return };
    let major = major_of(sel);
    let _ = wal::record::RecordHeader::parse(rec);
    let _ = wal::record::record_crc(rec);
    if let Ok(d) = wal::record::decode_record(major, Lsn(0x100_0000), rec.to_vec()) {
        let _ = d.main_data();
        if d.is_checkpoint() {
            let _ = wal::decode_checkpoint(major, &d);
        }
        let _ = wal::xact::decode_outcome(major, &d);
        // Full-page images as a damaged page's source.
        for b in &d.blocks {
            if let (Some((off, len)), Some(info)) = (b.image, b.image_info) {
                if let Ok(p) = wal::image::restore(&d.bytes[off..off + len], &info, 8192) {
                    assert_eq!(p.len(), 8192, "a restored image is one page");
                }
            }
        }
    }
    let _ = WalPageHeader::parse(rec);
    let _ = wal::image::pglz_decompress(rec, 8192);
}

/// A pg_xact segment (after 4 bytes of xid and 1 of block-size choice): statuses read and
/// set, segment names, and the segment a plan would synthesize.
pub fn xact(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let xid = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let bs = [1024u32, 2048, 4096, 8192, 16384, 32768][data[4] as usize % 6];
    let seg = &data[5..];
    let g = ClogGeometry::new(bs);
    for x in [xid, xid.wrapping_add(1), xid.wrapping_mul(31), 3, g.xacts_per_page() - 1] {
        let _ = g.status_in_segment(seg, x);
        let _ = g.page_of(x);
        let _ = g.position(x);
    }
    let mut copy = seg.to_vec();
    if g.set_status(&mut copy, xid, XactStatus::Committed).is_ok() {
        assert_eq!(g.status_in_segment(&copy, xid).ok(), Some(XactStatus::Committed));
    }
    let _ = parse_segment_file_name(&String::from_utf8_lossy(seg.get(..seg.len().min(12)).unwrap_or_default()));
    // A synthesized segment: at most a segment's worth of pages, statuses from the input.
    let pages = 1 + (data[4] as u32 % crate::format::xact::SLRU_PAGES_PER_SEGMENT);
    let first = xid % (pages * g.xacts_per_page());
    let statuses: Vec<(u32, XactStatus)> =
        seg.iter().take(4096).enumerate().map(|(i, b)| (first.wrapping_add(i as u32) % (pages * g.xacts_per_page()), XactStatus::from_bits(*b))).collect();
    if let Ok(s) = bytes::clog_segment(seg, pages, bs, &statuses) {
        assert!(s.len() >= pages as usize * bs as usize);
    }
}

/// A relation page (after 4 bytes of block number and a flags byte): the server's header
/// checks, the checksum, line pointers, heap tuples, and the page rewrites plans make.
pub fn page(data: &[u8]) {
    if data.len() < 5 {
        return;
    }
    let blk = u32::from_le_bytes([data[0], data[1], data[2], data[3]]);
    let flags = data[4];
    let raw = &data[5..];
    let mut full = raw.to_vec();
    if flags & 1 != 0 {
        full.resize(8192, 0);
    }
    let p = &full[..];
    let checksums = flags & 2 != 0;
    let _ = page::verify_page(p, blk, checksums);
    if let Ok(h) = PageHeader::parse(p) {
        let _ = h.header_problems(p.len());
    }
    let _ = page::line_pointers(p);
    if let Ok(ts) = heap::tuples(p) {
        for t in ts {
            let _ = format!("{t:?}");
        }
    }
    let _ = crate::diagnose::tuples::rows_on_page(p);
    if p.len() == 8192 {
        let offnums: Vec<u16> = raw.iter().take(8).map(|b| u16::from(*b) % 300).collect();
        for r in [bytes::freeze_tuples(p, &offnums, blk, checksums), bytes::kill_tuples(p, &offnums, blk, checksums)].into_iter().flatten() {
            assert_eq!(r.len(), p.len());
        }
        if let Some(h) = bytes::derive_header(p, 0) {
            let rebuilt = bytes::rebuild_header(p, &h, blk, checksums);
            assert_eq!(rebuilt.len(), p.len());
        }
        let vm = bytes::clear_vm_bits(p, blk, 0, checksums);
        assert_eq!(vm.len(), p.len());
    }
}

/// A plan file: parsed and validated as apply does, then every action's new bytes computed
/// against real target bytes (a page, pg_control, a pg_xact segment).
pub fn plan(data: &[u8]) {
    let Ok(p) = Plan::from_json(data, "fuzz.plan") else { return };
    let c = ControlFile::parse(CONTROL_15).expect("the fixture pg_control parses");
    for a in &p.actions {
        use crate::plan::ActionKind as K;
        let old: Option<&[u8]> = match &a.kind {
            K::SynthesizeXact { .. } => Some(XACT_15),
            K::ResetWal { .. } | K::RebuildControl { .. } | K::FixControlCrc { .. } | K::WriteControl { .. } => Some(CONTROL_15),
            K::RelocateWal { .. } | K::MoveAside => None,
            _ => Some(&PAGES_15[..8192]),
        };
        let _ = crate::plan::new_bytes(a, old, &c);
        let _ = crate::plan::new_bytes(a, old.map(|o| &o[..o.len() / 2]), &c);
        let _ = crate::plan::new_bytes(a, None, &c);
    }
    let again = serde_json::to_vec(&p).expect("a plan serializes");
    assert_eq!(Plan::from_json(&again, "again").ok().as_ref(), Some(&p), "a valid plan does not survive a round trip");
}

/// A snapshot manifest.
pub fn manifest(data: &[u8]) {
    if let Ok(m) = crate::snapshot::manifest::Manifest::from_json(data) {
        let again = serde_json::to_vec(&m).expect("a manifest serializes");
        let m2 = crate::snapshot::manifest::Manifest::from_json(&again).expect("a valid manifest survives a round trip");
        assert_eq!(m2.files.len(), m.files.len());
    }
}

/// An uncompressed tar stream as a snapshot holds: verified (hash-only), then restored into
/// an empty directory, after which nothing may exist outside that directory.
pub fn tar(data: &[u8]) {
    let s = crate::snapshot::verify::scan_tar(data, "fuzz.tar", &mut crate::snapshot::verify::HashOnly, &crate::check::Quiet, Default::default());
    let _ = crate::snapshot::verify::compare(&s);
    let Ok(sandbox) = tempfile::tempdir() else { return };
    let target = sandbox.path().join("target");
    let _ = std::fs::create_dir(&target);
    let _ = crate::snapshot::restore::restore_tar(data, "fuzz.tar", &target, &Default::default());
    let outside: Vec<_> = std::fs::read_dir(sandbox.path()).map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(outside.iter().all(|n| n == "target"), "restore wrote outside its target: {outside:?}");
}

/// Server log text in any of the three formats.
pub fn log(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for name in ["postgresql.log", "postgresql.csv", "postgresql.json"] {
        for l in crate::diagnose::log::parse(name, &text) {
            assert!(l.line >= 1);
        }
    }
}

/// Seed inputs for every target, made from the real fixtures (see fixtures/make-fixtures):
/// pg_control, WAL, pg_xact and pages of every major; real plans made by `plan` on the demo
/// cluster after damage of each kind; a real snapshot of a small data directory (its tar
/// stream and manifest); server log lines of the incidents. `(target, name, bytes)`.
pub fn seeds(repo: &std::path::Path) -> Result<Vec<Seed>, String> {
    use std::fs;
    let fx = repo.join("fixtures");
    let read = |p: std::path::PathBuf| fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let mut out: Vec<Seed> = Vec::new();
    for m in PgMajor::all() {
        let n = m.number();
        let dir = fx.join(format!("pg{n}"));
        let sel = (n - 10) as u8;
        out.push(("control", format!("pg{n}_control"), read(dir.join("pg_control"))?));
        let seg = zstd::decode_all(&read(dir.join("wal.zst"))?[..]).map_err(|e| e.to_string())?;
        for (k, len) in [(0u8, 64 << 10), (0x80, 256 << 10)] {
            let mut s = vec![sel | k];
            s.extend_from_slice(&seg[..len.min(seg.len())]);
            out.push(("wal_segment", format!("pg{n}_{}k", len >> 10), s));
        }
        // Records of each resource manager seen in the segment.
        let g = WalGeometry::new(seg.len() as u32, 8192).map_err(|e| e.to_string())?;
        let h = WalPageHeader::parse(&seg).map_err(|e| e.to_string())?;
        let segno = g.segno(h.pageaddr);
        let mut r = WalReader::new(MemorySource { first_segno: segno, segments: vec![seg.clone()] }, m, g, None);
        let mut seen = std::collections::BTreeSet::new();
        if let Ok(Some(mut lsn)) = r.first_record_in_segment(segno) {
            while let Ok(rr) = r.read_record(lsn, None) {
                if seen.insert((rr.record.header.rmid, rr.record.header.info & 0xf0)) {
                    let mut s = vec![sel];
                    s.extend_from_slice(&rr.record.bytes);
                    out.push(("wal_record", format!("pg{n}_rm{}_{:02x}", rr.record.header.rmid, rr.record.header.info), s));
                }
                lsn = rr.next;
            }
        }
        let mut x = vec![0xD0, 0x02, 0, 0, 3];
        x.extend_from_slice(&read(dir.join("xact_0000"))?);
        out.push(("xact", format!("pg{n}_0000"), x));
        for (i, p) in read(dir.join("pages.bin"))?.chunks(8192).enumerate() {
            let mut s = vec![i as u8, 0, 0, 0, 3];
            s.extend_from_slice(p);
            out.push(("page", format!("pg{n}_block{i}"), s));
        }
    }
    for e in fs::read_dir(fx.join("bad")).map_err(|e| e.to_string())?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let b = fs::read(e.path()).map_err(|e| e.to_string())?;
        if name.starts_with("pg_control") {
            out.push(("control", format!("bad_{name}"), b));
        } else if name.starts_with("page") {
            out.push(("page", format!("bad_{name}"), [&[0u8, 0, 0, 0, 2][..], &b].concat()));
        } else if name.starts_with("archive.") && name.ends_with(".tar.zst") {
            // The hostile archives' tar streams (the damaged ones do not decompress).
            if let Ok(t) = zstd::decode_all(&b[..]) {
                out.push(("tar", format!("bad_{name}"), t));
            }
        } else if name.starts_with("archive.") && name.ends_with(".manifest.json") {
            out.push(("manifest", format!("bad_{name}"), b));
        } else if name.starts_with("plan.") {
            out.push(("plan", format!("bad_{name}"), b));
        } else if name.starts_with("pg_xact") {
            out.push(("xact", format!("bad_{name}"), [&[1u8, 0, 0, 0, 3][..], &b].concat()));
        }
    }
    plan_seeds(repo, &mut out)?;
    snapshot_seeds(&mut out)?;
    for (i, l) in LOG_SEEDS.iter().enumerate() {
        out.push(("log", format!("incident_{i}"), l.as_bytes().to_vec()));
    }
    Ok(out)
}

const LOG_SEEDS: &[&str] = &[
    "2016-03-01 10:00:01 UTC [2231]: [1-1] user=app,db=prod ERROR:  could not access status of transaction 4294692688\n2016-03-01 10:00:01 UTC [2231]: [2-1] user=app,db=prod DETAIL:  Could not open file \"pg_clog/0FFF\": No such file or directory.\n",
    "2016-03-01 10:05:00 UTC [2240]: [1-1] ERROR:  invalid page header in block 2954 of relation base/16385/16412\n",
    "2020-06-01 03:00:00.123 UTC [812] PANIC:  could not write to file \"pg_wal/xlogtemp.812\": No space left on device\n2020-06-01 03:00:00.200 UTC [800] LOG:  startup process (PID 812) was terminated by signal 6: Aborted\n2020-06-01 03:00:00.201 UTC [800] LOG:  aborting startup due to startup process failure\n2020-06-01 03:00:01 UTC [900] LOG:  database system was interrupted while in recovery at 2020-06-01 02:59:00 UTC\n2020-06-01 03:00:01 UTC [900] HINT:  This probably means that some data is corrupted and you will have to use the last backup for recovery.\n",
    "2026-01-01 00:00:00 UTC [1] WARNING:  page verification failed, calculated checksum 20137 but expected 51431\n2026-01-01 00:00:00 UTC [1] LOG:  invalid record length at 0/3000060: wanted 24, got 0\n2026-01-01 00:00:00 UTC [1] PANIC:  could not locate a valid checkpoint record\n2026-01-01 00:00:00 UTC [1] ERROR:  MultiXactId 12345 has not been created yet -- apparent wraparound\n2026-01-01 00:00:00 UTC [1] PANIC:  WAL contains references to invalid pages\n",
    "2026-01-01 00:00:00.000 UTC,\"app\",\"prod\",2231,\"[local]\",6543a1b2.8b7,1,\"SELECT\",2026-01-01 00:00:00 UTC,3/4,0,ERROR,58P01,\"could not access status of transaction 4294692688\",\"Could not open file \"\"pg_xact/0FFF\"\": No such file or directory.\",,,,,\"SELECT * FROM t\",,,\"psql\",\"client backend\",,0\n",
    "{\"timestamp\":\"2026-01-01 00:00:00.000 UTC\",\"pid\":2231,\"error_severity\":\"ERROR\",\"state_code\":\"XX001\",\"message\":\"invalid page header in block 7 of relation base/5/16384\",\"backend_type\":\"client backend\"}\n",
];

/// Real plans: the demo cluster (PostgreSQL 15, tuple damage) as it is, then with a pg_xact
/// segment gone, a page header scribbled, and pg_control destroyed.
fn plan_seeds(repo: &std::path::Path, out: &mut Vec<Seed>) -> Result<(), String> {
    use crate::plan::PlanOptions;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let f = std::fs::File::open(repo.join("fixtures/demo/ziplog.tar.zst")).map_err(|e| e.to_string())?;
    ::tar::Archive::new(zstd::Decoder::new(f).map_err(|e| e.to_string())?).unpack(tmp.path()).map_err(|e| e.to_string())?;
    let root = tmp.path().join("ziplog");
    let mut make = |name: &str, opts: PlanOptions| -> Result<(), String> {
        let dd = crate::datadir::DataDir::open(&root).map_err(|e| e.to_string())?;
        let p = crate::plan::plan(&dd, &opts).map_err(|e| e.to_string())?;
        out.push(("plan", name.to_string(), serde_json::to_vec_pretty(&p).map_err(|e| e.to_string())?));
        Ok(())
    };
    make("demo", PlanOptions::default())?;
    make("demo_committed", PlanOptions { xact_status: crate::plan::XactPolicy::Committed, ..Default::default() })?;
    let _ = std::fs::remove_file(root.join("pg_xact/0000"));
    make("lost_xact", PlanOptions::default())?;
    // The largest heap file's first block: header scribbled.
    let base = root.join("base");
    let mut largest: Option<(u64, std::path::PathBuf)> = None;
    for db in std::fs::read_dir(&base).map_err(|e| e.to_string())?.flatten() {
        for f in std::fs::read_dir(db.path()).map_err(|e| e.to_string())?.flatten() {
            let n = f.file_name().to_string_lossy().into_owned();
            let len = f.metadata().map(|m| m.len()).unwrap_or(0);
            if n.bytes().all(|b| b.is_ascii_digit()) && largest.as_ref().is_none_or(|(l, _)| len > *l) {
                largest = Some((len, f.path()));
            }
        }
    }
    if let Some((_, p)) = largest {
        let mut b = std::fs::read(&p).map_err(|e| e.to_string())?;
        b[12..16].copy_from_slice(&[0xff, 0x7f, 0x10, 0x00]);
        // Block 1, line pointer 2: past the end of the page (the checksum made right).
        if b.len() >= 2 * 8192 {
            let page = &mut b[8192..2 * 8192];
            page[28..32].copy_from_slice(&(8100u32 | (1 << 15) | (400 << 17)).to_le_bytes());
            let sum = crate::format::checksum::page_checksum(page, 1);
            page[8..10].copy_from_slice(&sum.to_le_bytes());
        }
        std::fs::write(&p, b).map_err(|e| e.to_string())?;
        make("bad_header", PlanOptions::default())?;
        make("bad_header_no_zero", PlanOptions { zero_pages: false, accept_checksum_failures: true, ..Default::default() })?;
    }
    let ctl = root.join("global/pg_control");
    let good = std::fs::read(&ctl).map_err(|e| e.to_string())?;
    // One byte of pg_control's time flipped: its CRC fails, its values check out.
    let mut flipped = good.clone();
    flipped[24] ^= 1;
    std::fs::write(&ctl, &flipped).map_err(|e| e.to_string())?;
    make("control_crc", PlanOptions::default())?;
    // Zeroed, with WAL there: rewritten from the checkpoint record (write-control).
    std::fs::write(&ctl, vec![0u8; 8192]).map_err(|e| e.to_string())?;
    make("control_zeroed", PlanOptions::default())?;
    // Zeroed, and every WAL record gone too (each segment keeps only its long page header):
    // nothing to rebuild from but guesses (rebuild-control).
    let wal: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("pg_wal"))
        .map_err(|e| e.to_string())?
        .flatten()
        .filter(|w| crate::format::wal::segment::is_wal_file_name(&w.file_name().to_string_lossy()))
        .map(|w| w.path())
        .collect();
    for w in &wal {
        let mut b = std::fs::read(w).map_err(|e| e.to_string())?;
        b.iter_mut().skip(40).for_each(|x| *x = 0);
        std::fs::write(w, b).map_err(|e| e.to_string())?;
    }
    make("rebuild_control", PlanOptions { reset_wal: true, ..Default::default() })?;
    for w in &wal {
        let _ = std::fs::remove_file(w);
    }
    std::fs::write(&ctl, good).map_err(|e| e.to_string())?;
    make("reset_wal", PlanOptions { reset_wal: true, ..Default::default() })?;
    Ok(())
}

/// A real snapshot of a small data directory with a tablespace link: its tar stream and
/// its manifest.
fn snapshot_seeds(out: &mut Vec<Seed>) -> Result<(), String> {
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let d = tmp.path().join("data");
    let ts = tmp.path().join("ts");
    let e = |e: std::io::Error| e.to_string();
    for sub in ["global", "base/1", "pg_wal/archive_status", "pg_xact", "pg_tblspc"] {
        std::fs::create_dir_all(d.join(sub)).map_err(e)?;
    }
    std::fs::create_dir_all(ts.join("PG_15_202209061/1")).map_err(e)?;
    std::fs::write(d.join("PG_VERSION"), "15\n").map_err(e)?;
    std::fs::write(d.join("global/pg_control"), CONTROL_15).map_err(e)?;
    std::fs::write(d.join("base/1/1259"), &PAGES_15[..8192]).map_err(e)?;
    std::fs::write(d.join("pg_xact/0000"), XACT_15).map_err(e)?;
    std::fs::write(ts.join("PG_15_202209061/1/16400"), &PAGES_15[8192..16384]).map_err(e)?;
    std::os::unix::fs::symlink(&ts, d.join("pg_tblspc/16399")).map_err(e)?;
    let dd = crate::datadir::DataDir::open(&d).map_err(|e| e.to_string())?;
    let archive = tmp.path().join("s.tar.zst");
    crate::snapshot::create::create(&dd, &archive, &Default::default(), &crate::check::Quiet).map_err(|e| e.to_string())?;
    let tar = zstd::decode_all(&std::fs::read(&archive).map_err(e)?[..]).map_err(e)?;
    out.push(("tar", "small_cluster".into(), tar));
    out.push(("manifest", "small_cluster".into(), std::fs::read(crate::snapshot::sidecar_path(&archive)).map_err(e)?));
    Ok(())
}
