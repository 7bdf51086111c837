//! Damaged values (issue 17): TOAST chunks lost (a zeroed TOAST page, a chunk's line pointer
//! cleared), TOAST pointers that contradict themselves (a compression method id no server
//! knows, a value id that is not in the TOAST table), an inline compressed value with a bad
//! method id, and a varlena length running past its tuple. Random variants (the seed is
//! printed; PGSALVAGE_SEED replays one).
//!
//! The oracle shares no code with pgsalvage: where each attribute lies is found with
//! pageinspect's tuple_data_split before the damage; which rows are damaged is what the
//! server says when each row is read whole (a PL/pgSQL loop catching the error per row) and,
//! from 14, verify_heapam with check_toast; after plan, rehearse and apply every row reads,
//! verify_heapam is clean, the indexes check, and every value not reported equals the truth
//! recorded before the damage.
#![allow(clippy::unwrap_used)]

mod common;
use common::{next, pgsalvage, seed, Cluster, InitOpts};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let o = pgsalvage().current_dir(dir).args(args).stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
}

/// Rewrite 8 kB block `blk` of `file` with `edit`; the checksum made right.
fn edit_block(file: &Path, blk: usize, checksums: bool, edit: impl FnOnce(&mut [u8])) {
    let mut b = std::fs::read(file).unwrap();
    let page = &mut b[blk * 8192..(blk + 1) * 8192];
    edit(page);
    if checksums && page.iter().any(|&x| x != 0) {
        let sum = pgsalvage::format::checksum::page_checksum(page, blk as u32);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(file, b).unwrap();
}

/// Where attribute `att` (from 1) of the tuple at `ctid` lies in its page: (block, byte offset
/// in the page, its bytes), found by pageinspect (the attribute's bytes searched for in
/// t_data).
fn attribute_at(c: &Cluster, ctid: (u32, u16), att: usize) -> (usize, usize, Vec<u8>) {
    let q = format!(
        "select lp_off, t_hoff, encode(t_data, 'hex'), encode((tuple_data_split('docs'::regclass, t_data, t_infomask, t_infomask2, t_bits))[{att}], 'hex') \
         from heap_page_items(get_raw_page('docs', {})) where lp = {}",
        ctid.0, ctid.1
    );
    let row = c.sql(&q);
    let f: Vec<&str> = row.split('|').collect();
    let (lp_off, hoff): (usize, usize) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    let data = hex(f[2]);
    let bytes = hex(f[3]);
    let at = data.windows(bytes.len()).position(|w| w == bytes.as_slice()).unwrap_or_else(|| panic!("attribute {bytes:?} not in {data:?}"));
    (ctid.0 as usize, lp_off + hoff + at, bytes)
}

/// A TOAST pointer (external, on disk).
fn is_external(b: &[u8]) -> bool {
    b.len() == 18 && b[0] == 0x01 && b[1] == 18
}

/// An inline compressed value (4-byte header, low bits 10).
fn is_compressed(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] & 0x03 == 0x02
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len() / 2).map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap()).collect()
}

fn ctid(s: &str) -> (u32, u16) {
    let (b, o) = s.trim_matches(|c| c == '(' || c == ')').split_once(',').unwrap();
    (b.parse().unwrap(), o.parse().unwrap())
}

/// The rows the server cannot read whole: their ctids. Rows in `crashing` are not read (a
/// length past the tuple makes the backend read past it: it crashes).
fn unreadable(c: &Cluster, crashing: &BTreeSet<(u32, u16)>) -> BTreeSet<(u32, u16)> {
    let skip: Vec<String> = crashing.iter().map(|(b, o)| format!("'({b},{o})'::tid")).collect();
    let skip = if skip.is_empty() { "'(0,0)'::tid".to_string() } else { skip.join(", ") };
    let mut out: BTreeSet<(u32, u16)> =
        c.sql(&format!("select t::text from public.pg_temp_bad(array[{skip}]) t")).lines().filter(|l| !l.is_empty()).map(ctid).collect();
    out.extend(crashing);
    out
}

const BAD_ROWS: &str = "create or replace function pg_temp_bad(skip tid[]) returns setof tid language plpgsql as $$ \
    declare r record; begin for r in select ctid as c from docs where ctid <> all(skip) loop \
    begin perform md5(d::text) from docs d where ctid = r.c; exception when others then return next r.c; end; \
    end loop; end $$";

/// What was done to one row: (ctid, column, what).
type Damage = ((u32, u16), usize, &'static str);

/// Truth per row: ctid -> [id, md5(note), md5(small), md5(body), md5(packed), n].
type Truth = BTreeMap<(u32, u16), Vec<String>>;

/// A cluster with table docs (see the columns below), running; its truth recorded.
fn docs_cluster(major: u32, seed: u64, s: &mut u64) -> (Cluster, bool, String, Truth) {
    let checksums = next(s) % 2 == 0;
    let what = format!("PostgreSQL {major}{}, seed {seed}", if checksums { ", checksums" } else { "" });
    eprintln!("toast damage: {what}");
    let mut c = Cluster::new(major, InitOpts { checksums, ..Default::default() });
    c.start();
    c.sql("create extension pageinspect");
    if major >= 14 {
        c.sql("create extension amcheck");
    }
    // note: NOT NULL, toasted on every 10th row; small: inline compressed; body: external,
    // not compressed; packed: external, compressed (lz4 from 14 on odd seeds).
    c.sql("create table docs (id int primary key, note text not null, small text, body text, packed text, n int)");
    c.sql("alter table docs alter column body set storage external");
    if major >= 14 && seed % 2 == 1 {
        // Where the server was built with lz4 (not every build is).
        let (ok, _, _) = c.try_sql("alter table docs alter column packed set compression lz4");
        eprintln!("{what}: lz4 {}", if ok { "used" } else { "not in this build" });
    }
    c.sql(
        "insert into docs select g, \
         case when g % 10 = 0 then (select string_agg(md5(g::text || 'n' || i), '') from generate_series(1, 80) i) else 'note ' || g end, \
         repeat(md5(g::text), 100), \
         (select string_agg(md5(g::text || i::text), '') from generate_series(1, 60 + (g * 7) % 200) i), \
         (select string_agg(repeat(md5(g::text || 'p' || i), 4), '') from generate_series(1, 150) i), \
         g from generate_series(1, 120) g",
    );
    c.sql("create index docs_n on docs (n); create index docs_note on docs (md5(note))");
    // A table whose foreign key references docs: a killed docs row orphans its row here.
    c.sql("create table refs (id serial primary key, doc int references docs (id)); insert into refs (doc) select id from docs");
    if next(s) % 2 == 0 {
        c.sql("vacuum (freeze) docs");
    }
    c.sql(BAD_ROWS.replace("pg_temp_bad", "public.pg_temp_bad").as_str());
    let truth: Truth = c
        .sql("select ctid::text, id, md5(note), md5(small), md5(body), md5(packed), n from docs")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (ctid(f[0]), f[1..].iter().map(|x| x.to_string()).collect())
        })
        .collect();
    (c, checksums, what, truth)
}

fn toast_damage(major: u32, seed: u64) {
    let mut s = seed;
    let (mut c, checksums, what, truth) = docs_cluster(major, seed, &mut s);
    let ctids: Vec<(u32, u16)> = truth.keys().copied().collect();
    let toast = c.sql("select pg_relation_filepath(reltoastrelid) from pg_class where relname = 'docs'");
    let toast_blocks: usize = c.sql("select pg_relation_size(reltoastrelid) / 8192 from pg_class where relname = 'docs'").parse().unwrap();
    let heap = c.relpath("docs");
    // Choose the damage: two or three kinds, each on rows of its own.
    let mut kinds: Vec<&str> = vec!["zeroed-toast-page", "chunk-pointer-cleared", "value-id-changed", "length-past-tuple"];
    if major >= 14 {
        kinds.extend(["toast-method-id", "inline-method-id"]);
    }
    let mut chosen = Vec::new();
    while chosen.len() < 3 {
        let k = kinds[(next(&mut s) % kinds.len() as u64) as usize];
        if !chosen.contains(&k) {
            chosen.push(k);
        }
    }
    let mut used: BTreeSet<(u32, u16)> = BTreeSet::new();
    // A row not damaged yet whose attribute `att` passes `kind`: (ctid, block, offset, bytes).
    let mut pick = |s: &mut u64, att: usize, kind: fn(&[u8]) -> bool| -> ((u32, u16), usize, usize, Vec<u8>) {
        for _ in 0..10_000 {
            let t = ctids[(next(s) % ctids.len() as u64) as usize];
            if used.contains(&t) {
                continue;
            }
            let (blk, at, bytes) = attribute_at(&c, t, att);
            if kind(&bytes) {
                used.insert(t);
                return (t, blk, at, bytes);
            }
        }
        panic!("no row has attribute {att} of the kind wanted");
    };
    // Edits found with the server running (pageinspect), made once it is stopped.
    let mut heap_edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut toast_edits: Vec<(usize, Option<u16>)> = Vec::new();
    let mut damage: Vec<Damage> = Vec::new();
    for k in &chosen {
        match *k {
            "zeroed-toast-page" => toast_edits.push(((next(&mut s) % toast_blocks as u64) as usize, None)),
            "chunk-pointer-cleared" => {
                let blk = (next(&mut s) % toast_blocks as u64) as usize;
                let n: u64 = c.sql(&format!("select count(*) from heap_page_items(get_raw_page('{}', {blk}))", toast_name(&c))).parse().unwrap();
                toast_edits.push((blk, Some(1 + (next(&mut s) % n.max(1)) as u16)));
            }
            "value-id-changed" | "toast-method-id" => {
                let col = if *k == "toast-method-id" { 5 } else { 4 + (next(&mut s) % 2) as usize };
                // packed (5) is stored compressed: its pointer has a method id.
                let (t, blk, at, bytes) = pick(&mut s, col, is_external);
                eprintln!("{what}: {k} at {t:?} column {col}: {bytes:02x?}");
                // va_extinfo at +6, va_valueid at +10 of the 18-byte pointer.
                if *k == "toast-method-id" {
                    let ext = u32::from_le_bytes(bytes[6..10].try_into().unwrap());
                    heap_edits.push((blk, at + 6, ((ext & 0x3FFF_FFFF) | (3 << 30)).to_le_bytes().to_vec()));
                } else {
                    heap_edits.push((blk, at + 10, 4_000_000_000u32.to_le_bytes().to_vec()));
                }
                damage.push((t, col, k));
            }
            "inline-method-id" => {
                let (t, blk, at, bytes) = pick(&mut s, 3, is_compressed);
                let tc = u32::from_le_bytes(bytes[4..8].try_into().unwrap());
                heap_edits.push((blk, at + 4, ((tc & 0x3FFF_FFFF) | (3 << 30)).to_le_bytes().to_vec()));
                damage.push((t, 3, k));
            }
            "length-past-tuple" => {
                // small's 4-byte header (compressed: low bits 10) claims 6000 bytes.
                let (t, blk, at, _) = pick(&mut s, 3, is_compressed);
                heap_edits.push((blk, at, ((6000u32 << 2) | 2).to_le_bytes().to_vec()));
                damage.push((t, 3, k));
            }
            _ => unreachable!(),
        }
    }
    c.stop();
    for (blk, at, bytes) in &heap_edits {
        edit_block(&c.data.join(&heap), *blk, checksums, |p| p[*at..*at + bytes.len()].copy_from_slice(bytes));
    }
    for (blk, item) in &toast_edits {
        edit_block(&c.data.join(&toast), *blk, checksums, |p| match item {
            None => p.fill(0),
            Some(i) => {
                let at = 24 + 4 * (*i as usize - 1);
                p[at..at + 4].copy_from_slice(&[0, 0, 0, 0]);
            }
        });
    }
    eprintln!("{what}: damage {chosen:?}, heap edits {heap_edits:?}, toast edits {toast_edits:?}");
    // The server's verdict on the damage.
    c.start();
    let crashing: BTreeSet<(u32, u16)> = damage.iter().filter(|d| d.2 == "length-past-tuple").map(|d| d.0).collect();
    let bad_before = unreadable(&c, &crashing);
    let amcheck: BTreeSet<(u32, u16)> = if major >= 14 {
        c.sql("select blkno || ',' || offnum from verify_heapam('docs', check_toast => true)").lines().filter(|l| !l.is_empty()).map(ctid).collect()
    } else {
        BTreeSet::new()
    };
    // The server's own verdict on a length past the tuple: reading the row fails (its
    // backend crashes; the server restarts, which the stop below waits for).
    for (b, o) in &crashing {
        let (ok, _, err) = c.try_sql(&format!("select md5(d::text) from docs d where ctid = '({b},{o})'"));
        assert!(!ok, "{what}: the row ({b},{o}) with a length past its tuple reads");
        eprintln!("{what}: reading ({b},{o}): {}", err.lines().next().unwrap_or(""));
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    c.stop();
    let v = common::diagnose_damaged(&c.data, &what);
    let mut ours: BTreeSet<(u32, u16)> = BTreeSet::new();
    for fd in v["findings"].as_array().unwrap() {
        if fd["file"] != heap.as_str() {
            continue;
        }
        let code = fd["code"].as_str().unwrap();
        assert!(matches!(code, "tuple-attribute-invalid" | "tuple-toast-value-missing"), "{what}: {fd}");
        for e in fd["evidence"].as_array().unwrap() {
            if let Some(t) = e.as_str().and_then(|e| e.strip_prefix("ctid ")).and_then(|e| e.split(':').next()) {
                ours.insert(ctid(t));
            }
        }
    }
    let others: Vec<&serde_json::Value> = v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "error" && f["file"] != heap.as_str()).collect();
    // A zeroed TOAST page is a valid page to the server: no finding of its own.
    assert!(others.is_empty(), "{what}: findings beyond the table's: {others:?}");
    // A TOAST pointer's method id: the server decompresses by the value's own header and
    // reads the row; verify_heapam reports it.
    let readable: BTreeSet<(u32, u16)> = damage.iter().filter(|d| d.2 == "toast-method-id").map(|d| d.0).collect();
    for (t, _, k) in &damage {
        assert!(*k == "toast-method-id" || bad_before.contains(t), "{what}: the server reads {t:?} despite the damage");
    }
    let expected: BTreeSet<(u32, u16)> = bad_before.union(&readable).copied().collect();
    assert_eq!(ours, expected, "{what}: diagnose's rows against the rows the server cannot read (and the pointers verify_heapam reports)");
    if major >= 14 {
        // verify_heapam looks at compression method ids of TOAST pointers only; an inline
        // value's is found by diagnose alone (the server fails on it all the same).
        // verify_heapam 14 does not look at a TOAST pointer's method id either (15 does).
        let inline: BTreeSet<(u32, u16)> =
            damage.iter().filter(|d| d.2 == "inline-method-id" || (d.2 == "toast-method-id" && major == 14)).map(|d| d.0).collect();
        let beyond: BTreeSet<(u32, u16)> = ours.difference(&amcheck).copied().collect();
        assert!(amcheck.is_subset(&ours) && beyond.is_subset(&inline), "{what}: diagnose {ours:?} against verify_heapam {amcheck:?}");
    }
    for k in &chosen {
        let a = match (major >= 14, *k) {
            (true, "inline-method-id") => "not found (verify_heapam checks method ids of TOAST pointers only); the server fails reading the row",
            (true, "toast-method-id") if damage.iter().any(|d| d.2 == *k && !amcheck.contains(&d.0)) => {
                "not found (verify_heapam checks pointers' method ids from 15); the server still reads the row: it decompresses by the value's own header"
            }
            (true, "toast-method-id") => "found, same block and offset (the server still reads the row: it decompresses by the value's own header)",
            (true, _) => "found, same block and offset",
            _ => "(no verify_heapam before 14; the server fails reading every row reported)",
        };
        eprintln!("AMCHECK-ROW|{major}|{}|{a}|found, same block and offset", describe(k));
    }
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    let (nulled, killed, _, mended) = planned(&w, &what);
    let planned: BTreeSet<(u32, u16)> = nulled.keys().copied().chain(killed.iter().copied()).chain(mended.iter().copied()).collect();
    assert_eq!(planned, ours, "{what}: every damaged row is repaired, no other");
    // Rows whose only damage is in a nullable column keep the row; a NOT NULL note or an
    // undecodable tuple is killed.
    for (t, col, k) in &damage {
        if *k == "length-past-tuple" {
            assert!(killed.contains(t), "{what}: {t:?} ({k}) must be killed");
        } else if *k == "toast-method-id" {
            // Its value is whole: mended, nothing lost (unless another value of it is gone).
            assert!(mended.contains(t) && !nulled.get(t).is_some_and(|c| c.contains(col)), "{what}: {t:?} ({k}) must be mended, not set NULL");
        } else {
            // Killed instead when another value of the row is damaged in a NOT NULL column.
            assert!(nulled.get(t).is_some_and(|c| c.contains(col)) || killed.contains(t), "{what}: {t:?} ({k}) must get column {col} NULL: {nulled:?}");
        }
    }
    apply_and_judge(&mut c, major, &what, &truth, &nulled, &killed);
}

/// What plan.json in `w` does to rows: values set NULL per ctid, tuples killed, and the
/// other action kinds (clear-visibility-map left out), TOAST pointers mended.
type Planned = (BTreeMap<(u32, u16), Vec<usize>>, BTreeSet<(u32, u16)>, Vec<String>, BTreeSet<(u32, u16)>);
fn planned(w: &Path, what: &str) -> Planned {
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("plan.json")).unwrap()).unwrap();
    let mut nulled: BTreeMap<(u32, u16), Vec<usize>> = BTreeMap::new();
    let mut killed: BTreeSet<(u32, u16)> = BTreeSet::new();
    let mut others = Vec::new();
    let mut mended = BTreeSet::new();
    for a in plan["actions"].as_array().unwrap_or_else(|| panic!("{what}: {plan}")) {
        let blk = a["target"]["block"].as_u64().unwrap_or(0) as u32;
        match a["kind"].as_str().unwrap() {
            "null-attributes" => {
                for it in a["items"].as_array().unwrap() {
                    nulled.insert((blk, it[0].as_u64().unwrap() as u16), it[1].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect());
                }
            }
            "kill-tuples" => killed.extend(a["offnums"].as_array().unwrap().iter().map(|o| (blk, o.as_u64().unwrap() as u16))),
            "fix-toast-pointers" => mended.extend(a["items"].as_array().unwrap().iter().map(|it| (blk, it[0].as_u64().unwrap() as u16))),
            "clear-visibility-map" => {}
            k => others.push(k.to_string()),
        }
    }
    (nulled, killed, others, mended)
}

/// Rehearse and apply plan.json, then judge with the server: the salvage file, every row
/// readable, values set NULL where planned and equal to the truth elsewhere, verify_heapam
/// clean, the indexes checked, VACUUM (FREEZE), CHECKPOINT.
fn apply_and_judge(c: &mut Cluster, major: u32, what: &str, truth: &Truth, nulled: &BTreeMap<(u32, u16), Vec<usize>>, killed: &BTreeSet<(u32, u16)>) {
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["rehearse", "-D", &d, "--plan", "plan.json"]);
    if killed.is_empty() {
        assert!(code == 0 && out.contains("safe to apply"), "{what}: {out}");
    } else {
        // Killed rows of docs orphan rows of refs: the rehearsal counts them, and does not
        // call the plan safe.
        let said = format!("{} rows of refs reference rows of docs that are gone (foreign key refs_doc_fkey)", killed.len());
        assert!(code != 0 && out.contains(&said) && !out.contains("safe to apply"), "{what}: {said}: {out}");
    }
    let (code, out) = run(&w, &["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
    // The values set NULL and the tuples killed were exported first, as found, 0600.
    let salvage = out.lines().find_map(|l| l.split("exported first, as found: ").nth(1)).unwrap_or_else(|| panic!("{what}: no salvage file named: {out}"));
    let meta = std::fs::metadata(salvage).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{what}: {salvage}");
    let csv = std::fs::read_to_string(salvage).unwrap();
    for (t, atts) in nulled {
        for a in atts {
            let want = format!(",{},{},set-null,{a},", t.0, t.1);
            let line = csv.lines().find(|l| l.contains(&want)).unwrap_or_else(|| panic!("{what}: {want} not in {csv}"));
            // A TOAST pointer's 18 bytes (01 12 ...) or the damaged inline value.
            assert!(line.rsplit(',').next().unwrap().len() >= 16, "{what}: {line}");
        }
    }
    for t in killed {
        assert!(csv.contains(&format!(",{},{},kill,,", t.0, t.1)), "{what}: kill of {t:?} not in {csv}");
    }
    c.start();
    c.sql("reindex table docs");
    let orphans = c.sql("select count(*) from refs r where not exists (select 1 from docs d where d.id = r.doc)");
    assert_eq!(orphans, killed.len().to_string(), "{what}: orphaned rows of refs");
    // The statement apply prints for the check runs and warns as rehearse said.
    if !killed.is_empty() {
        let line = out.lines().find(|l| l.contains("DO $$")).unwrap_or_else(|| panic!("{what}: no reference check printed: {out}"));
        // Run as printed, by a shell, as the DBA would.
        let o = std::process::Command::new("sh")
            .arg("-c")
            .arg(line.trim())
            .env("PATH", format!("{}:{}", common::SYSTEM_PG15, std::env::var("PATH").unwrap_or_default()))
            .env("PGHOST", &c.sockdir)
            .env("PGPORT", c.port.to_string())
            .env("PGUSER", "postgres")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success() && err.contains("rows of refs reference rows of docs that are gone"), "{what}: {line}: {err}");
    }
    assert!(unreadable(c, &BTreeSet::new()).is_empty(), "{what}: rows still unreadable after apply");
    let after: BTreeMap<(u32, u16), Vec<String>> = c
        .sql("select ctid::text, id, coalesce(md5(note), 'NULL'), coalesce(md5(small), 'NULL'), coalesce(md5(body), 'NULL'), coalesce(md5(packed), 'NULL'), n from docs")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (ctid(f[0]), f[1..].iter().map(|x| x.to_string()).collect())
        })
        .collect();
    assert_eq!(after.len(), truth.len() - killed.len(), "{what}: rows after apply");
    for (t, want) in truth {
        if killed.contains(t) {
            assert!(!after.contains_key(t), "{what}: killed row {t:?} still read");
            continue;
        }
        let got = after.get(t).unwrap_or_else(|| panic!("{what}: row {t:?} lost"));
        for (i, (g, w_)) in got.iter().zip(want).enumerate() {
            // Column i of the list is attnum i + 1.
            if nulled.get(t).is_some_and(|c| c.contains(&(i + 1))) {
                assert_eq!(g, "NULL", "{what}: {t:?} column {}", i + 1);
            } else {
                assert_eq!(g, w_, "{what}: {t:?} column {} changed", i + 1);
            }
        }
    }
    if major >= 14 {
        assert_eq!(c.sql("select count(*) from verify_heapam('docs', check_toast => true)"), "0", "{what}");
        c.sql("select bt_index_check(i.indexrelid, true) from pg_index i where i.indrelid = 'docs'::regclass");
    }
    c.sql("vacuum (freeze) docs");
    c.sql("checkpoint");
    c.stop();
}

fn toast_name(c: &Cluster) -> String {
    c.sql("select 'pg_toast.' || relname from pg_class where oid = (select reltoastrelid from pg_class where relname = 'docs')")
}

fn describe(k: &str) -> &'static str {
    match k {
        "zeroed-toast-page" => "a TOAST page zeroed (values not found, or chunks missing)",
        "chunk-pointer-cleared" => "a TOAST chunk's line pointer cleared (a chunk missing)",
        "value-id-changed" => "a TOAST pointer's value id changed (value not found)",
        "toast-method-id" => "a TOAST pointer's compression method id 3",
        "inline-method-id" => "an inline compressed value's method id 3",
        _ => "a varlena length past the end of its tuple",
    }
}

/// PGSALVAGE_ROUNDS (default 1) seeds per major; scripts/amcheck-table runs more, so that
/// every kind of damage is drawn on every major.
#[test]
fn damaged_values_are_found_and_repaired() {
    let base = seed();
    let rounds: u64 = std::env::var("PGSALVAGE_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(1);
    for (i, major) in common::some_majors(&[12, 15, 17]).into_iter().enumerate() {
        for r in 0..rounds {
            toast_damage(major, base.wrapping_add(i as u64 * 7919 + r * 104_729));
        }
    }
}

/// The TOAST table's file lost: diagnose names it and every live row that points into it;
/// the plan creates it empty, sets the values NULL (kills the rows whose NOT NULL note was
/// out of line) and rebuilds the table's indexes, TOAST index included.
fn toast_file_missing(major: u32, seed: u64) {
    let mut s = seed;
    let (mut c, _, what, truth) = docs_cluster(major, seed, &mut s);
    let toast = c.sql("select pg_relation_filepath(reltoastrelid) from pg_class where relname = 'docs'");
    let heap = c.relpath("docs");
    // The rows with a value out of line, per the server: (ctid, columns).
    let out_of_line: BTreeMap<(u32, u16), Vec<usize>> = c
        .sql(
            "select '(' || b || ',' || lp || ')', array_to_string(array(select i from unnest(a) with ordinality u(x, i) \
             where x is not null and length(x) = 18 and get_byte(x, 0) = 1), ',') from (select b, lp, \
             tuple_data_split('docs'::regclass, t_data, t_infomask, t_infomask2, t_bits) a \
             from generate_series(0, (pg_relation_size('docs') / 8192)::int - 1) b, heap_page_items(get_raw_page('docs', b)) where lp_flags = 1) x",
        )
        .lines()
        .filter_map(|l| {
            let (t, cols) = l.split_once('|')?;
            (!cols.is_empty()).then(|| (ctid(t), cols.split(',').map(|x| x.parse().unwrap()).collect()))
        })
        .collect();
    c.stop();
    let aside = c.scratch.path().join("toast-file");
    std::fs::rename(c.data.join(&toast), &aside).unwrap();
    let what = format!("{what}, TOAST file {toast} removed");
    eprintln!("{what}");
    let v = common::diagnose_damaged(&c.data, &what);
    let mut ours: BTreeSet<(u32, u16)> = BTreeSet::new();
    let mut missing = vec![];
    for fd in v["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "error") {
        match fd["code"].as_str().unwrap() {
            "relation-file-missing" => missing.push(fd["file"].as_str().unwrap().to_string()),
            "tuple-toast-value-missing" if fd["file"] == heap.as_str() => {
                for e in fd["evidence"].as_array().unwrap() {
                    if let Some(t) = e.as_str().and_then(|e| e.strip_prefix("ctid ")).and_then(|e| e.split(':').next()) {
                        ours.insert(ctid(t));
                    }
                }
            }
            _ => panic!("{what}: {fd}"),
        }
    }
    assert_eq!(missing, vec![toast.clone()], "{what}");
    assert_eq!(ours, out_of_line.keys().copied().collect::<BTreeSet<_>>(), "{what}: rows pointing into the lost TOAST table");
    eprintln!("AMCHECK-ROW|{major}|file of a TOAST table removed|(pg_amcheck needs a running server; the server fails: could not open file)|relation-file-missing, same path; tuple-toast-value-missing for every row pointing into it");
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    let (nulled, killed, others, _) = planned(&w, &what);
    assert_eq!(others, vec!["create-empty-file".to_string()], "{what}");
    for (t, cols) in &out_of_line {
        if cols.contains(&2) {
            assert!(killed.contains(t), "{what}: {t:?} has its NOT NULL note out of line: killed");
        } else {
            assert_eq!(nulled.get(t), Some(cols), "{what}: {t:?}");
        }
    }
    apply_and_judge(&mut c, major, &what, &truth, &nulled, &killed);
}

#[test]
fn lost_toast_file_is_recreated_and_its_values_set_null() {
    let base = seed();
    for (i, major) in common::some_majors(&[11, 14, 16]).into_iter().enumerate() {
        toast_file_missing(major, base.wrapping_add(i as u64 * 31));
    }
}
