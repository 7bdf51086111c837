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
/// in the page), found by pageinspect (the attribute's bytes searched for in t_data).
fn attribute_at(c: &Cluster, ctid: (u32, u16), att: usize) -> (usize, usize) {
    let q = format!(
        "select lp_off, t_hoff, encode(t_data, 'hex'), encode((tuple_data_split('docs'::regclass, t_data, t_infomask, t_infomask2, t_bits))[{att}], 'hex') \
         from heap_page_items(get_raw_page('docs', {})) where lp = {}",
        ctid.0, ctid.1
    );
    let row = c.sql(&q);
    let f: Vec<&str> = row.split('|').collect();
    let (lp_off, hoff): (usize, usize) = (f[0].parse().unwrap(), f[1].parse().unwrap());
    let data = hex(f[2]);
    let att = hex(f[3]);
    let at = data.windows(att.len()).position(|w| w == att.as_slice()).unwrap_or_else(|| panic!("attribute {att:?} not in {data:?}"));
    (ctid.0 as usize, lp_off + hoff + at)
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
    let skip = if skip.is_empty() { "null::tid".to_string() } else { skip.join(", ") };
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

fn toast_damage(major: u32, seed: u64) {
    let mut s = seed;
    let checksums = next(&mut s) % 2 == 0;
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
        c.sql("alter table docs alter column packed set compression lz4");
    }
    c.sql(
        "insert into docs select g, \
         case when g % 10 = 0 then (select string_agg(md5(g::text || 'n' || i), '') from generate_series(1, 80) i) else 'note ' || g end, \
         repeat(md5(g::text), 60), \
         (select string_agg(md5(g::text || i::text), '') from generate_series(1, 60 + (g * 7) % 200) i), \
         (select string_agg(repeat(md5(g::text || 'p' || i), 4), '') from generate_series(1, 150) i), \
         g from generate_series(1, 120) g",
    );
    c.sql("create index docs_n on docs (n); create index docs_note on docs (md5(note))");
    if next(&mut s) % 2 == 0 {
        c.sql("vacuum (freeze) docs");
    }
    c.sql(BAD_ROWS.replace("pg_temp_bad", "public.pg_temp_bad").as_str());
    let truth: BTreeMap<(u32, u16), Vec<String>> = c
        .sql("select ctid::text, id, md5(note), md5(small), md5(body), md5(packed), n from docs")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (ctid(f[0]), f[1..].iter().map(|x| x.to_string()).collect())
        })
        .collect();
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
    let mut pick = |s: &mut u64, pred: &dyn Fn((u32, u16)) -> bool| -> (u32, u16) {
        loop {
            let t = ctids[(next(s) % ctids.len() as u64) as usize];
            if !used.contains(&t) && pred(t) {
                used.insert(t);
                return t;
            }
        }
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
                let t = pick(&mut s, &|_| true);
                let col = if *k == "toast-method-id" { 5 } else { 4 + (next(&mut s) % 2) as usize };
                let (blk, at) = attribute_at(&c, t, col);
                // va_extinfo at +6, va_valueid at +10 of the 18-byte pointer.
                let page = hex(&c.sql(&format!("select encode(get_raw_page('docs', {blk}), 'hex')")));
                if *k == "toast-method-id" {
                    let ext = u32::from_le_bytes(page[at + 6..at + 10].try_into().unwrap());
                    heap_edits.push((blk, at + 6, ((ext & 0x3FFF_FFFF) | (3 << 30)).to_le_bytes().to_vec()));
                } else {
                    heap_edits.push((blk, at + 10, 4_000_000_000u32.to_le_bytes().to_vec()));
                }
                damage.push((t, col, k));
            }
            "inline-method-id" => {
                let t = pick(&mut s, &|_| true);
                let (blk, at) = attribute_at(&c, t, 3);
                let page = hex(&c.sql(&format!("select encode(get_raw_page('docs', {blk}), 'hex')")));
                let tc = u32::from_le_bytes(page[at + 4..at + 8].try_into().unwrap());
                heap_edits.push((blk, at + 4, ((tc & 0x3FFF_FFFF) | (3 << 30)).to_le_bytes().to_vec()));
                damage.push((t, 3, k));
            }
            "length-past-tuple" => {
                let t = pick(&mut s, &|_| true);
                let (blk, at) = attribute_at(&c, t, 3);
                // small's 4-byte header (compressed: low bits 10) claims 6000 bytes.
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
    for (t, _, _) in &damage {
        assert!(bad_before.contains(t), "{what}: the server reads {t:?} despite the damage");
    }
    assert_eq!(ours, bad_before, "{what}: diagnose's rows against the rows the server cannot read");
    if major >= 14 {
        // verify_heapam looks at compression method ids of TOAST pointers only; an inline
        // value's is found by diagnose alone (the server fails on it all the same).
        let inline: BTreeSet<(u32, u16)> = damage.iter().filter(|d| d.2 == "inline-method-id").map(|d| d.0).collect();
        let beyond: BTreeSet<(u32, u16)> = ours.difference(&amcheck).copied().collect();
        assert!(amcheck.is_subset(&ours) && beyond.is_subset(&inline), "{what}: diagnose {ours:?} against verify_heapam {amcheck:?}");
    }
    for k in &chosen {
        let a = match (major >= 14, *k) {
            (true, "inline-method-id") => "not found (verify_heapam checks method ids of TOAST pointers only); the server fails reading the row",
            (true, _) => "found, same block and offset",
            _ => "(no verify_heapam before 14; the server fails reading every row reported)",
        };
        eprintln!("AMCHECK-ROW|{major}|{}|{a}|found, same block and offset", describe(k));
    }
    let w = c.scratch.path().to_path_buf();
    let d = c.data.display().to_string();
    let (code, out) = run(&w, &["plan", "-D", &d, "-o", "plan.json"]);
    assert_eq!(code, 0, "{what}: {out}");
    let plan: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(w.join("plan.json")).unwrap()).unwrap();
    let mut nulled: BTreeMap<(u32, u16), Vec<usize>> = BTreeMap::new();
    let mut killed: BTreeSet<(u32, u16)> = BTreeSet::new();
    for a in plan["actions"].as_array().unwrap() {
        let blk = a["target"]["block"].as_u64().unwrap_or(0) as u32;
        match a["kind"].as_str().unwrap() {
            "null-attributes" => {
                for it in a["items"].as_array().unwrap() {
                    nulled.insert((blk, it[0].as_u64().unwrap() as u16), it[1].as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect());
                }
            }
            "kill-tuples" => killed.extend(a["offnums"].as_array().unwrap().iter().map(|o| (blk, o.as_u64().unwrap() as u16))),
            "clear-visibility-map" => {}
            k => panic!("{what}: unexpected action {k}"),
        }
    }
    let planned: BTreeSet<(u32, u16)> = nulled.keys().copied().chain(killed.iter().copied()).collect();
    assert_eq!(planned, ours, "{what}: every damaged row is repaired, no other");
    // Rows whose only damage is in a nullable column keep the row; a NOT NULL note or an
    // undecodable tuple is killed.
    for (t, col, k) in &damage {
        if *k == "length-past-tuple" {
            assert!(killed.contains(t), "{what}: {t:?} ({k}) must be killed");
        } else {
            // Killed instead when another value of the row is damaged in a NOT NULL column.
            assert!(nulled.get(t).is_some_and(|c| c.contains(col)) || killed.contains(t), "{what}: {t:?} ({k}) must get column {col} NULL: {nulled:?}");
        }
    }
    let (code, out) = run(&w, &["rehearse", "-D", &d, "--plan", "plan.json"]);
    assert!(code == 0 && out.contains("safe to apply"), "{what}: {out}");
    let (code, out) = run(&w, &["apply", "-D", &d, "--plan", "plan.json", "--without-snapshot-i-may-lose-data", "--yes"]);
    assert_eq!(code, 0, "{what}: {out}");
    c.start();
    c.sql("reindex table docs");
    assert!(unreadable(&c, &BTreeSet::new()).is_empty(), "{what}: rows still unreadable after apply");
    let after: BTreeMap<(u32, u16), Vec<String>> = c
        .sql("select ctid::text, id, coalesce(md5(note), 'NULL'), coalesce(md5(small), 'NULL'), coalesce(md5(body), 'NULL'), coalesce(md5(packed), 'NULL'), n from docs")
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (ctid(f[0]), f[1..].iter().map(|x| x.to_string()).collect())
        })
        .collect();
    assert_eq!(after.len(), truth.len() - killed.len(), "{what}: rows after apply");
    for (t, want) in &truth {
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
