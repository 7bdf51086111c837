use super::{json, out, Bar, EXIT_FINDINGS, EXIT_OK};
use pgsalvage::datadir::{DataDir, Postmaster};
use pgsalvage::snapshot::{create, restore, verify};
use pgsalvage::units::human_size as size;
use std::fmt::Write as _;
use std::path::PathBuf;

#[derive(clap::Subcommand)]
pub enum SnapshotCommand {
    /// Archive the data directory (with tablespaces and a symlinked pg_wal) into FILE.tar.zst, with a sha256 of every file
    Create {
        /// The data directory (defaults to PGDATA)
        #[arg(short = 'D', long = "pgdata", env = "PGDATA", value_name = "DATADIR")]
        pgdata: PathBuf,
        /// The archive to write (must not exist); the manifest goes beside it, with .manifest.json appended to the name
        #[arg(short = 'o', long = "output", value_name = "FILE.tar.zst")]
        output: PathBuf,
        /// zstd compression level (1-19)
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=19))]
        level: i32,
        /// zstd worker threads (default: one per core)
        #[arg(short = 'j', long = "jobs", value_name = "N")]
        jobs: Option<u32>,
        /// Snapshot even while a postmaster is running; the manifest marks it inconsistent
        #[arg(long)]
        allow_running: bool,
        /// Print the manifest summary as JSON
        #[arg(long)]
        json: bool,
    },
    /// Decompress an archive and check every file against its manifest
    Verify {
        /// The snapshot archive (made by `pgsalvage snapshot create`)
        file: PathBuf,
        /// Print machine-readable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Show an archive's manifest
    List {
        /// The snapshot archive (made by `pgsalvage snapshot create`)
        file: PathBuf,
        /// Print machine-readable JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Restore an archive into an empty or new directory, checking every hash
    Restore {
        /// The snapshot archive (made by `pgsalvage snapshot create`)
        file: PathBuf,
        /// The directory to restore into (absent or empty)
        #[arg(short = 'D', long = "pgdata", value_name = "NEWDIR")]
        pgdata: PathBuf,
        /// Put the linked directory (tablespace or pg_wal) that pointed at OLD into NEW and link to it
        #[arg(short = 'T', long = "tablespace-map", value_name = "OLD=NEW")]
        tablespace_map: Vec<String>,
        /// Print machine-readable JSON instead of text
        #[arg(long)]
        json: bool,
    },
}

pub fn run(c: SnapshotCommand) -> anyhow::Result<i32> {
    match c {
        SnapshotCommand::Create { pgdata, output, level, jobs, allow_running, json: as_json } => {
            let dd = DataDir::open(&pgdata)?;
            if let Postmaster::Stale { pid, reason, .. } = dd.postmaster() {
                eprintln!("pgsalvage: note: postmaster.pid is stale (pid {pid}: {reason}); it is left out of the snapshot");
            }
            let bar = Bar::new("snapshot", create::estimate_bytes(&dd), as_json);
            let r = create::create(&dd, &output, &create::CreateOptions { level, jobs: jobs.unwrap_or(0), allow_running }, bar.as_progress());
            bar.finish();
            let r = r?;
            let m = &r.manifest;
            if as_json {
                json(&serde_json::json!({
                    "archive": r.archive, "manifest": r.sidecar, "files": m.total_files, "bytes": m.total_bytes,
                    "compressed_bytes": r.compressed_bytes, "consistent": m.consistent, "links": m.links, "skipped": m.skipped,
                }))?;
            } else {
                let mut s = String::new();
                let _ = writeln!(s, "snapshot of {} (PostgreSQL {}, system identifier {})", m.data_directory, m.major, m.system_identifier);
                let _ = writeln!(
                    s,
                    "  archive:    {} ({}, {:.1}x smaller than the {} of files)",
                    r.archive.display(),
                    size(r.compressed_bytes),
                    m.total_bytes as f64 / r.compressed_bytes.max(1) as f64,
                    size(m.total_bytes)
                );
                let _ = writeln!(s, "  manifest:   {} ({} files with sha256)", r.sidecar.display(), m.total_files);
                for l in &m.links {
                    let _ = writeln!(s, "  linked:     {} -> {}", l.name, l.target);
                }
                let _ = writeln!(
                    s,
                    "  skipped:    {}, as pg_basebackup skips them{}",
                    pgsalvage::units::count(m.skipped.len() as u64, "path"),
                    if m.skipped.is_empty() { String::new() } else { format!(": {}", m.skipped.join(", ")) }
                );
                if !m.consistent {
                    let _ = writeln!(s, "  WARNING: taken while a postmaster was running: NOT consistent");
                }
                out(&s)?;
            }
            Ok(EXIT_OK)
        }
        SnapshotCommand::Verify { file, json: as_json } => {
            pgsalvage::snapshot::check_archive_file(&file)?;
            let total = verify::read_manifest(&file).map(|m| m.total_bytes).unwrap_or(0);
            let bar = Bar::new("verifying", total, as_json);
            let r = verify::verify(&file, bar.as_progress());
            bar.finish();
            if as_json {
                json(&r)?;
            } else if r.ok {
                out(&format!(
                    "{}: OK, {} files ({}) match the manifest{}\n",
                    r.archive,
                    r.files,
                    size(r.bytes),
                    if r.used_sidecar { " (inside and beside the archive)" } else { "" }
                ))?;
            } else {
                let mut s = format!("{}: {}\n", r.archive, pgsalvage::units::count(r.problems.len() as u64, "problem"));
                for p in &r.problems {
                    let _ = writeln!(s, "  {p}");
                }
                out(&s)?;
            }
            Ok(if r.ok { EXIT_OK } else { EXIT_FINDINGS })
        }
        SnapshotCommand::List { file, json: as_json } => {
            pgsalvage::snapshot::check_archive_file(&file)?;
            let m = verify::read_manifest(&file).map_err(|e| pgsalvage::error::Error::Damaged {
                path: file.clone(),
                message: {
                    let e = e.to_string();
                    e.strip_prefix(&format!("{}: ", file.display())).unwrap_or(&e).to_string()
                },
                hint: "run `pgsalvage snapshot verify` on it; a damaged snapshot cannot be listed or restored".into(),
            })?;
            if as_json {
                json(&m)?;
            } else {
                let mut s = String::new();
                let _ = writeln!(
                    s,
                    "{} by {} on {} ({}), {}",
                    m.tool,
                    m.user,
                    m.host,
                    m.created_at,
                    if m.consistent { "consistent" } else { "NOT consistent (server was running)" }
                );
                let _ = writeln!(s, "data directory {} (PostgreSQL {}, system identifier {})", m.data_directory, m.major, m.system_identifier);
                if let Some(state) = m.control.get("state").and_then(|v| v.as_str()) {
                    let _ = writeln!(s, "cluster state {state}, latest checkpoint {}", m.control.get("checkpoint_lsn").and_then(|v| v.as_str()).unwrap_or("?"));
                }
                for l in &m.links {
                    let _ = writeln!(s, "linked {} -> {}", l.name, l.target);
                }
                let _ = writeln!(s, "{} files, {}; {} skipped\n", m.total_files, size(m.total_bytes), m.skipped.len());
                for f in &m.files {
                    let _ = writeln!(
                        s,
                        "{:04o} {:>12} {} {}{}",
                        f.mode,
                        f.size,
                        f.sha256.as_deref().map(|h| &h[..16]).unwrap_or(match f.kind {
                            pgsalvage::snapshot::EntryKind::Dir => "dir             ",
                            _ => "link            ",
                        }),
                        f.path,
                        f.link_target.as_ref().map(|t| format!(" -> {t}")).unwrap_or_default()
                    );
                }
                out(&s)?;
            }
            Ok(EXIT_OK)
        }
        SnapshotCommand::Restore { file, pgdata, tablespace_map, json: as_json } => {
            let mut map = Vec::new();
            for m in tablespace_map {
                let (old, new) = m.split_once('=').ok_or_else(|| pgsalvage::error::Error::Usage(format!("--tablespace-map {m:?}: expected OLD=NEW")))?;
                map.push((old.to_string(), PathBuf::from(new)));
            }
            pgsalvage::snapshot::check_archive_file(&file)?;
            let total = verify::read_manifest(&file).map(|m| m.total_bytes).unwrap_or(0);
            let bar = Bar::new("restoring", total, as_json);
            let r = restore::restore(&file, &pgdata, &restore::RestoreOptions { tablespace_map: map }, bar.as_progress());
            bar.finish();
            let r = r?;
            if as_json {
                json(&r)?;
            } else {
                let mut s = format!("restored {} files ({}) into {}; every sha256 matched the manifest\n", r.files, size(r.bytes), r.target);
                for (name, dest, linked) in &r.links {
                    let _ = writeln!(
                        s,
                        "  {name}: {}",
                        if *linked {
                            format!("linked to {dest}")
                        } else {
                            format!("restored as a directory {dest} (use --tablespace-map OLD=NEW to restore it elsewhere and link it)")
                        }
                    );
                }
                for w in &r.warnings {
                    let _ = writeln!(s, "  WARNING: {w}");
                }
                out(&s)?;
            }
            Ok(EXIT_OK)
        }
    }
}
