//! The end-to-end matrix: for every major 10–18 and every kind of damage (ten), the whole salvage
//! as a DBA runs it, through the CLI:
//!   diagnose (the damage is named) → plan → rehearse (a real server on a copy says "safe
//!   to apply") → apply → a real server starts on the result and every row of every table
//!   reads (pg_dumpall for majors the installed pg_dumpall 15 can dump; a full read of every
//!   table in every database above that) → rollback gives back the damaged directory byte
//!   for byte (contents, modes, file times), pg_wal included where it is a link.
//! One clean cluster per major is built once and copied for each kind of damage.
#![allow(clippy::unwrap_used)]

#[macro_use]
mod common;
use common::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

type Tree = BTreeMap<String, (String, u64, u32, i64, i64)>;

const ROWS: u32 = 20000;

fn tree(d: &Path) -> Tree {
    rollback_tree(d)
}

fn cli(args: &[&str], data: &Path) -> (i32, String, String) {
    let o = pgsalvage().args(args).arg("-D").arg(data).stdin(std::process::Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// A stopped cluster with a table of ROWS rows and its primary key, written by one
/// transaction that nothing has read since (its tuples carry no hint bits: reading them
/// needs pg_xact, as in the first incident).
fn base(major: u32) -> (Cluster, String) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql(&format!("create table ziplog (id int primary key, v text); insert into ziplog select g, md5(g::text) from generate_series(1, {ROWS}) g"));
    let rel = c.relpath("ziplog");
    c.stop();
    (c, rel)
}

/// A copy of the base cluster's directory to damage.
fn fork(major: u32, base: &Cluster) -> Cluster {
    let c = Cluster::new(major, InitOpts::default());
    std::fs::remove_dir_all(&c.data).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(&base.data).arg(&c.data));
    c
}

#[derive(Clone, Copy, Debug)]
enum Damage {
    /// pg_xact/0000 deleted (the first incident's "Could not open file").
    XactDeleted,
    /// pg_xact/0000 truncated to 64 bytes: the table's transaction status is gone.
    XactTruncated,
    /// A tuple's xmin overwritten with 4294692688, checksum made right (the first
    /// incident's real cause).
    GarbageXid,
    /// A page header's pd_lower/pd_upper scribbled ("invalid page header in block 9").
    ScribbledHeader,
    /// A line pointer scribbled to point past the end of its page (checksum made right:
    /// the damage is in the page's contents).
    BrokenLinePointer,
    /// One byte of tuple data flipped under data checksums (the checksum now fails).
    ChecksumFlip,
    /// A crash (kill -9) with 1,000 rows only in WAL, then the WAL segment holding the
    /// checkpoint lost.
    LostWal,
    /// pg_control overwritten with zeros.
    ControlDestroyed,
    /// One byte of pg_control's modification time flipped: its CRC fails and the server
    /// refuses to start ("incorrect checksum in control file"); every value is still right.
    ControlCrcFlip,
    /// The second incident: pg_wal on its own file system, a crash with the current
    /// segment past 75% (the end-of-recovery checkpoint must create the next one), and the
    /// file system full. Not corruption: nothing may be lost.
    DiskFull,
}

const ALL: [Damage; 10] = [
    Damage::XactDeleted,
    Damage::XactTruncated,
    Damage::GarbageXid,
    Damage::ScribbledHeader,
    Damage::BrokenLinePointer,
    Damage::ChecksumFlip,
    Damage::LostWal,
    Damage::ControlDestroyed,
    Damage::ControlCrcFlip,
    Damage::DiskFull,
];

/// A tmpfs for pg_wal, unmounted when dropped.
struct WalFs(std::path::PathBuf);
impl Drop for WalFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// What a damage needs checked: the finding code(s) diagnose must report, plan options,
/// the action kind the plan must hold, the rows the table must have afterwards, and a
/// mounted WAL file system (DiskFull).
struct Inflicted {
    code: &'static str,
    plan_opts: Vec<String>,
    action: &'static str,
    rows: std::ops::RangeInclusive<u32>,
    walfs: Option<WalFs>,
}

impl Damage {
    fn inflict(self, c: &mut Cluster, rel: &str) -> Inflicted {
        let (code, opts, action, rows) = self.damage(c, rel);
        let walfs = matches!(self, Damage::DiskFull).then(|| WalFs(c.scratch.path().join("walfs")));
        Inflicted { code, plan_opts: opts, action, rows, walfs }
    }

    fn damage(self, c: &mut Cluster, rel: &str) -> (&'static str, Vec<String>, &'static str, std::ops::RangeInclusive<u32>) {
        let file = c.data.join(rel);
        match self {
            Damage::XactDeleted => {
                std::fs::remove_file(c.data.join("pg_xact/0000")).unwrap();
                // The commit record is in WAL: the rebuilt status is "committed", no row lost.
                ("xact-status-lost", vec![], "synthesize-xact", ROWS..=ROWS)
            }
            Damage::XactTruncated => {
                std::fs::OpenOptions::new().write(true).open(c.data.join("pg_xact/0000")).unwrap().set_len(64).unwrap();
                ("xact-status-lost|xact-segment-short", vec![], "synthesize-xact", ROWS..=ROWS)
            }
            Damage::GarbageXid => {
                garble_xmin(&file, 3, 4294692688, true);
                ("tuple-xid-never-assigned|tuple-xid-beyond-next", vec![], "freeze-tuples", ROWS..=ROWS)
            }
            Damage::ScribbledHeader => {
                scribble(&file, 9 * 8192 + 12, &[0xFF, 0x7F]);
                ("page-invalid", vec![], "rebuild-page-header", ROWS..=ROWS)
            }
            Damage::BrokenLinePointer => {
                // Line pointer 5: offset 8100, normal, length 400 (past the page's end).
                break_line_pointer(&file, 7, 5);
                ("tuple-pointer-invalid", vec![], "kill-tuples", ROWS - 1..=ROWS - 1)
            }
            Damage::ChecksumFlip => {
                // A byte in the middle of block 5's tuple data (tuples fill the page from its end).
                let b = std::fs::read(&file).unwrap()[5 * 8192 + 6000];
                scribble(&file, 5 * 8192 + 6000, &[b ^ 0x20]);
                // The structure is sound: accepting the content is an explicit opt-in (the
                // DBA read the rows with ignore_checksum_failure first); no row is lost.
                ("page-checksum-failure", vec!["--accept-checksum-failures".into()], "accept-checksum", ROWS..=ROWS)
            }
            Damage::LostWal => {
                c.start();
                c.sql(&format!("insert into ziplog select g, md5(g::text) from generate_series({}, {}) g", ROWS + 1, ROWS + 1000));
                let redo = c.sql("select redo_wal_file from pg_control_checkpoint()");
                c.crash();
                std::fs::remove_file(c.data.join("pg_wal").join(&redo)).unwrap();
                // What reached the heap before the crash may survive; nothing from before.
                ("wal-lost", vec!["--reset-wal".into()], "reset-wal", ROWS..=ROWS + 1000)
            }
            Damage::ControlDestroyed => {
                std::fs::write(c.data.join("global/pg_control"), vec![0u8; 8192]).unwrap();
                // Rewritten from the checkpoint record in WAL: no flags, no WAL reset, nothing lost.
                ("control-unreadable", vec![], "write-control", ROWS..=ROWS)
            }
            Damage::ControlCrcFlip => {
                let p = c.data.join("global/pg_control");
                let b = std::fs::read(&p).unwrap()[24];
                scribble(&p, 24, &[b ^ 0x01]);
                ("control-crc-mismatch", vec![], "write-control", ROWS..=ROWS)
            }
            Damage::DiskFull => {
                let mnt = c.scratch.path().join("walfs");
                std::fs::create_dir(&mnt).unwrap();
                let st = Command::new("mount").args(["-t", "tmpfs", "-o", "size=192M"]).arg("tmpfs").arg(&mnt).status().unwrap();
                assert!(st.success(), "mounting a tmpfs needs root");
                run_ok(Command::new("cp").arg("-a").arg(c.data.join("pg_wal")).arg(mnt.join("pg_wal")));
                std::fs::remove_dir_all(c.data.join("pg_wal")).unwrap();
                // Odd majors get a relative link (`pg_wal -> ../walfs/pg_wal`), even ones an
                // absolute one: the rehearsal must copy either from the original's place.
                if c.major() % 2 == 1 {
                    std::os::unix::fs::symlink("../walfs/pg_wal", c.data.join("pg_wal")).unwrap();
                } else {
                    std::os::unix::fs::symlink(mnt.join("pg_wal"), c.data.join("pg_wal")).unwrap();
                }
                chown_postgres(&mnt);
                c.start();
                let seg = 16u64 << 20;
                let off = |c: &Cluster| c.sql("select pg_current_wal_insert_lsn() - '0/0'::pg_lsn").parse::<u64>().unwrap() % seg;
                if off(c) > seg * 8 / 10 {
                    c.sql("select pg_switch_wal()");
                    c.sql("select pg_logical_emit_message(false, 'pgsalvage', 'x')");
                }
                while off(c) < seg * 85 / 100 {
                    let room = (seg * 85 / 100 - off(c)).min(4 << 20);
                    c.sql(&format!("select pg_logical_emit_message(false, 'pgsalvage', repeat('x', {}))", room.max(100)));
                }
                // A transaction that wrote WAL flushes all WAL before its commit to disk (one
                // that only took an xid commits asynchronously): recovery will find WAL up to
                // past 75% of the segment, and its end-of-recovery checkpoint must create the next.
                c.sql("select pg_logical_emit_message(true, 'pgsalvage', 'flush')");
                let current = c.sql("select pg_walfile_name(pg_current_wal_insert_lsn())");
                c.crash();
                for e in std::fs::read_dir(mnt.join("pg_wal")).unwrap() {
                    let name = e.unwrap().file_name().to_string_lossy().into_owned();
                    if name.len() == 24 && name > current {
                        std::fs::remove_file(mnt.join("pg_wal").join(&name)).unwrap();
                    }
                }
                let free = || {
                    let st = nix::sys::statvfs::statvfs(&mnt).unwrap();
                    st.blocks_available() as u64 * st.fragment_size() as u64
                };
                for i in 0..3 {
                    let _ = Command::new("dd").args(["if=/dev/zero", "bs=64k"]).arg(format!("of={}", mnt.join(format!("filler{i}")).display())).output();
                }
                assert!(free() < 1 << 20, "the WAL file system should be full: {} bytes free", free());
                let roomy = c.scratch.path().join("roomy-wal");
                ("not-corruption-wal-disk-full", vec!["--wal-dir".into(), roomy.display().to_string()], "relocate-wal", ROWS..=ROWS)
            }
        }
    }
}

impl Damage {
    /// What the server itself says about the damage (checked on PostgreSQL 15, where it is
    /// cheap): it does not start, or the table cannot be read. None: not deterministic (a
    /// line pointer past the page makes the server read whatever lies beyond it).
    fn server_error(self) -> Option<(bool, &'static [&'static str])> {
        // (the server starts?, any of these words in its log or the query's error)
        match self {
            Damage::XactDeleted | Damage::XactTruncated => Some((false, &["pg_xact/0000"])),
            Damage::GarbageXid => Some((true, &["could not access status of transaction 4294692688"])),
            Damage::ScribbledHeader => Some((true, &["invalid page in block 9"])),
            Damage::ChecksumFlip => Some((true, &["page verification failed", "invalid page in block 5"])),
            Damage::LostWal => Some((false, &["checkpoint record"])),
            Damage::ControlDestroyed => Some((false, &["incompatible with server", "incorrect checksum in control file"])),
            Damage::ControlCrcFlip => Some((false, &["incorrect checksum in control file"])),
            Damage::DiskFull => Some((false, &["No space left on device"])),
            Damage::BrokenLinePointer => None,
        }
    }
}

/// The damage is real: a server on it fails the way the kind says. On a copy, except for a
/// full WAL file system, which is tried in place (as in the incident: the failed start is
/// what the DBA saw before reaching for pgsalvage).
fn server_sees_damage(major: u32, c: &Cluster, damage: Damage, work: &Path) {
    let Some((starts, words)) = damage.server_error() else { return };
    let data = if matches!(damage, Damage::DiskFull) {
        c.data.clone()
    } else {
        let d = work.join("before");
        run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&d));
        d
    };
    let mut s = Cluster::at(major, &data);
    let (up, mut said) = s.try_start();
    assert_eq!(up, starts, "PG{major} {damage:?}: the server {} on the damage:\n{said}", if up { "started" } else { "did not start" });
    if up {
        let o = s.psql_cmd("postgres").arg("-c").arg("select count(*), sum(length(v)) from ziplog").output().unwrap();
        said.push_str(&String::from_utf8_lossy(&o.stderr));
        assert!(!o.status.success(), "PG{major} {damage:?}: the table reads despite the damage");
        s.stop();
    }
    assert!(
        words.iter().any(|w| said.contains(w)),
        "PG{major} {damage:?}: expected one of {words:?} from the server:\n{}",
        &said[said.len().saturating_sub(3000)..]
    );
}

/// Every row of every table of every database read by a real server: pg_dumpall where the
/// installed client (15) can dump the server, and a full read of each table besides.
fn read_everything(s: &Cluster) {
    if s.major() <= 15 {
        let d = s.pg_dumpall();
        assert!(d.status.success(), "PG{}: pg_dumpall: {}", s.major(), String::from_utf8_lossy(&d.stderr));
    }
    for db in s.sql("select datname from pg_database where datallowconn order by 1").lines() {
        let gen = "select format('select %L, count(*), sum(length(t::text)) from %I.%I t', n.nspname || '.' || c.relname, n.nspname, c.relname) \
                   from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'm') \\gexec";
        let mut child = s
            .psql_cmd(db)
            .args(["-v", "ON_ERROR_STOP=1", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), gen.as_bytes()).unwrap();
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "PG{}: reading every table of {db}: {}", s.major(), String::from_utf8_lossy(&o.stderr));
    }
}

fn salvage(major: u32, base: &Cluster, rel: &str, damage: Damage) {
    let what = format!("PG{major} {damage:?}");
    let mut c = fork(major, base);
    let Inflicted { code, plan_opts, action, rows, walfs } = damage.inflict(&mut c, rel);
    // pg_wal may be a link out of the data directory: its target is compared too.
    let wal_tree = |d: &Path| (std::fs::read_link(d.join("pg_wal")).ok(), tree(&std::fs::canonicalize(d.join("pg_wal")).unwrap()));
    let work = Scratch::new("matrix");
    if major == 15 {
        server_sees_damage(major, &c, damage, work.path());
    }
    // diagnose names the damage.
    let (_, out, err) = cli(&["diagnose", "--json"], &c.data);
    let d: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: diagnose --json: {e}: {out}{err}"));
    let codes: Vec<&str> = d["findings"].as_array().unwrap().iter().filter_map(|f| f["code"].as_str()).collect();
    if !code.split('|').any(|k| codes.contains(&k)) {
        let (_, wal, _) = cli(&["check", "--only", "wal", "--json"], &c.data);
        let ls = Command::new("ls").arg("-l").arg(c.data.join("pg_wal/")).output().unwrap();
        panic!(
            "{what}: diagnose did not report {code}: {codes:?}\n{}\ncheck: {wal}\npg_wal: {}",
            serde_json::to_string_pretty(&d["findings"]).unwrap(),
            String::from_utf8_lossy(&ls.stdout)
        );
    }
    // plan answers it.
    let plan = work.path().join("plan.json");
    let mut args = vec!["plan", "-o", plan.to_str().unwrap()];
    args.extend(plan_opts.iter().map(|o| o.as_str()));
    let (status, out, err) = cli(&args, &c.data);
    assert_eq!(status, 0, "{what}: plan: {out}{err}");
    let p: serde_json::Value = serde_json::from_slice(&std::fs::read(&plan).unwrap()).unwrap();
    let kinds: Vec<&str> = p["actions"].as_array().unwrap().iter().filter_map(|a| a["kind"].as_str()).collect();
    assert!(kinds.contains(&action), "{what}: the plan has no {action}: {kinds:?}");
    // rehearse proves it on a copy.
    let (status, out, err) = cli(&["rehearse", "--plan", plan.to_str().unwrap()], &c.data);
    assert_eq!(status, 0, "{what}: rehearse: {out}{err}");
    assert!(out.contains("verdict: safe to apply"), "{what}: {out}");
    // apply.
    let before = tree(&c.data);
    let wal_before = wal_tree(&c.data);
    let store = work.path().join("store");
    let (status, out, err) =
        cli(&["apply", "--yes", "--without-snapshot-i-may-lose-data", "--plan", plan.to_str().unwrap(), "--rollback-dir", store.to_str().unwrap()], &c.data);
    assert_eq!(status, 0, "{what}: apply: {out}{err}");
    let changed = tree(&c.data) != before || std::fs::read_link(c.data.join("pg_wal")).ok() != wal_before.0;
    assert!(changed, "{what}: apply changed nothing");
    // The server starts on (a copy of) the result; every row reads.
    let trial = work.path().join("trial");
    run_ok(Command::new("cp").arg("-a").arg(&c.data).arg(&trial));
    if let Ok(target) = std::fs::read_link(trial.join("pg_wal")) {
        // The trial server must not write into the applied directory's WAL.
        let own = work.path().join("trial-wal");
        run_ok(Command::new("cp").arg("-a").arg(&target).arg(&own));
        std::fs::remove_file(trial.join("pg_wal")).unwrap();
        std::os::unix::fs::symlink(&own, trial.join("pg_wal")).unwrap();
    }
    let mut s = Cluster::at(major, &trial);
    let (started, log) = s.try_start();
    assert!(started, "{what}: the server does not start after apply:\n{log}");
    let n: u32 = s.sql("select count(*) from ziplog").parse().unwrap();
    assert!(rows.contains(&n), "{what}: {n} rows after apply, expected {rows:?}");
    read_everything(&s);
    s.stop();
    // rollback: the damaged directory, byte for byte.
    let (status, out, err) = cli(&["rollback"], &c.data);
    assert_eq!(status, 0, "{what}: rollback: {out}{err}");
    assert_same_tree(&before, &tree(&c.data), &format!("{what}: after rollback"));
    let wal_after = wal_tree(&c.data);
    assert_eq!(wal_before.0, wal_after.0, "{what}: pg_wal's link after rollback");
    assert_same_tree(&wal_before.1, &wal_after.1, &format!("{what}: pg_wal after rollback"));
    drop(walfs);
    eprintln!("{what}: diagnosed {code}, planned {kinds:?}, rehearsed safe, applied, {n} rows read, rolled back byte-exact");
}

fn matrix(major: u32) {
    let (b, rel) = base(major);
    for d in ALL {
        salvage(major, &b, &rel, d);
    }
}

per_major!(matrix: pg10 = 10, pg11 = 11, pg12 = 12, pg13 = 13, pg14 = 14, pg15 = 15, pg16 = 16, pg17 = 17, pg18 = 18);
