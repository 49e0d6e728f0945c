//! `kiln du`, `kiln prune`, and the `gc.max-storage` cap applied after
//! each build (see `kiln_solver::gc` for what belongs to which kind).

use crate::config::Config;
use crate::global::GlobalArgs;
use crate::units::{ago, docker_size, parse_size};
use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_oci::{Lease, LocalStore};
use kiln_solver::gc::{self, Kind, PruneOptions, Reclaim};
use std::io::{IsTerminal, Write};
use std::time::{Duration, SystemTime};

/// Arguments of `kiln du`.
#[derive(Debug, Args)]
pub struct DuArgs {
    /// List every entry (id, kind, size, last use, shared, what prunes it).
    #[arg(long, short)]
    verbose: bool,
}

/// Runs `kiln du`.
pub fn du(global: &GlobalArgs, args: &DuArgs) -> Result<()> {
    let store = global.store()?;
    let usage = gc::usage(&store)?;
    let now = SystemTime::now();
    let mut out = std::io::stdout().lock();
    if args.verbose {
        for e in &usage.entries {
            writeln!(out, "ID:\t\t{}", e.id)?;
            writeln!(out, "Kind:\t\t{}", e.kind.name())?;
            writeln!(out, "Description:\t{}", e.description)?;
            writeln!(out, "Size:\t\t{}", docker_size(e.size))?;
            if let Some(t) = e.last_used {
                writeln!(
                    out,
                    "Last used:\t{}",
                    ago(now.duration_since(t).unwrap_or_default())
                )?;
            }
            writeln!(out, "Shared:\t\t{}", e.shared)?;
            writeln!(
                out,
                "Reclaimable:\t{}",
                match e.reclaim {
                    Reclaim::Default => "kiln prune",
                    Reclaim::All => "kiln prune --all",
                    Reclaim::Never => "no",
                }
            )?;
            writeln!(out)?;
        }
    }
    writeln!(
        out,
        "{:<18}{:>8}{:>14}{:>14}",
        "TYPE", "COUNT", "SIZE", "RECLAIMABLE"
    )?;
    for kind in Kind::ALL {
        let (count, size) = usage.by_kind(kind);
        let count = if kind == Kind::Other {
            "-".to_string()
        } else {
            count.to_string()
        };
        writeln!(
            out,
            "{:<18}{:>8}{:>14}{:>14}",
            kind.label(),
            count,
            docker_size(size),
            docker_size(usage.reclaimable(Some(kind), false))
        )?;
    }
    writeln!(out)?;
    writeln!(
        out,
        "Reclaimable:\t{} (kiln prune), {} (kiln prune --all)",
        docker_size(usage.reclaimable(None, false)),
        docker_size(usage.reclaimable(None, true))
    )?;
    writeln!(out, "Total:\t\t{}", docker_size(usage.total))?;
    Ok(())
}

/// Arguments of `kiln prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Also remove what builds re-create from images: cache mounts
    /// (`RUN --mount=type=cache`), unpacked layers of named images, and
    /// cache records whose layer a named image holds.
    #[arg(long, short)]
    all: bool,
    /// Remove least recently used first, only until the store takes at
    /// most this much (e.g. `5GB`; powers of 1024, as Docker reads it).
    #[arg(long, value_name = "SIZE")]
    keep_storage: Option<String>,
    /// `until=DURATION` (e.g. `24h`, `90m`): only what was last used longer
    /// ago. Repeatable.
    #[arg(long, value_name = "FILTER")]
    filter: Vec<String>,
    /// Do not ask for confirmation (asked only when stdin is a terminal).
    #[arg(long, short)]
    force: bool,
}

/// Runs `kiln prune`: build cache least recently used first (see
/// [`PruneArgs`]), then blobs no name reaches and abandoned downloads.
pub fn prune(global: &GlobalArgs, args: &PruneArgs) -> Result<()> {
    let mut opts = PruneOptions {
        all: args.all,
        ..PruneOptions::default()
    };
    if let Some(size) = &args.keep_storage {
        opts.keep_storage =
            Some(parse_size(size).map_err(|e| anyhow::anyhow!("--keep-storage: {e}"))?);
    }
    for filter in &args.filter {
        match filter.split_once('=') {
            Some(("until", value)) => {
                let age = humantime::parse_duration(value).with_context(|| {
                    format!("--filter {filter}: expected a duration such as 24h or 90m")
                })?;
                opts.used_before = Some(SystemTime::now() - age);
            }
            _ => bail!("--filter {filter:?}: only until=DURATION is supported"),
        }
    }
    if !args.force && std::io::stdin().is_terminal() {
        eprint!(
            "WARNING! This will remove {}build cache. Are you sure you want to continue? [y/N] ",
            if args.all { "all " } else { "unused " }
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(());
        }
    }
    let store = global.store()?;
    let lock = store.lock_exclusive()?;
    let report = gc::prune(&store, &lock, &opts)?;
    let mut out = std::io::stdout().lock();
    if !report.removed.is_empty() {
        writeln!(out, "Deleted build cache objects:")?;
        for r in &report.removed {
            writeln!(out, "{}\t{}\t{}", r.id, r.kind.name(), docker_size(r.freed))?;
        }
        writeln!(out)?;
    }
    let swept = gc::sweep(&store, &lock, &opts)?;
    writeln!(
        out,
        "Deleted {} blobs{}; kept {}.",
        report.blobs_removed + swept.removed.len(),
        if swept.stale_ingests > 0 {
            format!(" and {} abandoned downloads", swept.stale_ingests)
        } else {
            String::new()
        },
        swept.kept,
    )?;
    let freed = report.freed + swept.freed;
    writeln!(out, "Total reclaimed space: {}", docker_size(freed))?;
    writeln!(out, "Total:\t{}", docker_size(freed))?;
    Ok(())
}

/// Applies the config's `gc.max-storage` after a successful build, as
/// `kiln prune --all --keep-storage SIZE` would, sparing what the build
/// used (everything used since `lease` was taken, with a 100 ms margin for
/// the kernel's coarse file timestamps). Needs the store to itself: when another build,
/// pull or load holds a lease, the cap waits for the next build. Never
/// fails the build; problems are warnings.
pub fn enforce_cap(store: &LocalStore, config: &Config, lease: Lease) {
    let Some(limit) = config.checked.max_storage else {
        return;
    };
    let since = lease.acquired() - Duration::from_millis(100);
    let lock = match lease.try_exclusive() {
        Ok(Ok(lock)) => lock,
        Ok(Err(_lease)) => return,
        Err(e) => {
            eprintln!("WARNING: {}: {e}", config.origin("gc.max-storage"));
            return;
        }
    };
    let opts = PruneOptions {
        all: true,
        keep_storage: Some(limit),
        used_before: None,
        protect_since: Some(since),
    };
    match gc::prune(store, &lock, &opts) {
        Ok(report) if !report.removed.is_empty() => eprintln!(
            "gc: {} = {}: removed {} least recently used cache entries, {} freed",
            config.origin("gc.max-storage"),
            docker_size(limit),
            report.removed.len(),
            docker_size(report.freed)
        ),
        Ok(_) => {}
        Err(e) => eprintln!("WARNING: {}: {e}", config.origin("gc.max-storage")),
    }
}
