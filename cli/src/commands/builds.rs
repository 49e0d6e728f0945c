//! `kiln builds`: the build records in the store, after `docker buildx
//! history`: `ls` (the default), `show`, `trace` (the Chrome trace event
//! format) and `rm`. A record is named by its id, a unique prefix of it,
//! `latest` or `^N` (the Nth before the newest). Listing, showing and
//! tracing only read, so they work on a read-only store. The records
//! themselves are `kiln_solver::builds`'.

use crate::global::GlobalArgs;
use crate::units::{ago, docker_size};
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use kiln_solver::builds::{chrome_trace, BuildRecord, BuildRecords, StepState};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Arguments of `kiln builds`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BuildsArgs {
    #[command(subcommand)]
    command: Option<BuildsCommand>,
    #[command(flatten)]
    ls: LsArgs,
}

#[derive(Debug, Subcommand)]
enum BuildsCommand {
    /// List the build records, newest first (the default).
    Ls(LsArgs),
    /// Show a build: what was asked for, how it ended, and its steps with
    /// their times, cache use and layer sizes.
    Show(ShowArgs),
    /// Write a build's timeline in the Chrome trace event format (for
    /// Perfetto or chrome://tracing).
    Trace(TraceArgs),
    /// Remove build records.
    Rm(RmArgs),
}

/// Arguments of `kiln builds ls`.
#[derive(Debug, Args)]
struct LsArgs {
    /// `table` (the default) or `json`: one record per line, with its
    /// steps.
    #[arg(long, default_value = "table")]
    format: String,
    /// Do not cut names.
    #[arg(long)]
    no_trunc: bool,
}

/// Arguments of `kiln builds show`.
#[derive(Debug, Args)]
struct ShowArgs {
    /// The build: an id, a unique prefix, `latest` or `^N`.
    #[arg(default_value = "latest")]
    build: String,
    /// `pretty` (the default) or `json`: the record as stored.
    #[arg(long, default_value = "pretty")]
    format: String,
    /// Do not cut step names and miss reasons.
    #[arg(long)]
    no_trunc: bool,
}

/// Arguments of `kiln builds trace`.
#[derive(Debug, Args)]
struct TraceArgs {
    /// The build: an id, a unique prefix, `latest` or `^N`.
    #[arg(default_value = "latest")]
    build: String,
    /// Where to write the trace (`-`: stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    output: PathBuf,
}

/// Arguments of `kiln builds rm`.
#[derive(Debug, Args)]
struct RmArgs {
    /// The builds: ids, unique prefixes, `latest` or `^N`.
    #[arg(required_unless_present = "all")]
    builds: Vec<String>,
    /// Remove every record.
    #[arg(long, conflicts_with = "builds")]
    all: bool,
}

/// Runs `kiln builds`.
pub fn builds(global: &GlobalArgs, args: &BuildsArgs) -> Result<()> {
    let store = global.store()?;
    let records = BuildRecords::new(store.layout());
    match &args.command {
        None => ls(&records, &args.ls),
        Some(BuildsCommand::Ls(a)) => ls(&records, a),
        Some(BuildsCommand::Show(a)) => show(&records, a),
        Some(BuildsCommand::Trace(a)) => trace(&records, a),
        Some(BuildsCommand::Rm(a)) => rm(&records, a),
    }
}

fn ls(records: &BuildRecords, args: &LsArgs) -> Result<()> {
    if args.format != "table" && args.format != "json" {
        bail!("--format {:?}: kiln prints table or json", args.format);
    }
    let list = records.list()?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        for r in &list {
            writeln!(out, "{}", serde_json::to_string(r)?)?;
        }
        return Ok(());
    }
    let now = SystemTime::now();
    let mut table = vec![[
        "BUILD ID".to_string(),
        "NAME".into(),
        "STATUS".into(),
        "CREATED AT".into(),
        "DURATION".into(),
    ]];
    for r in &list {
        table.push([
            r.id.clone(),
            cut(&r.info.name, 40, args.no_trunc),
            r.status.label().into(),
            ago(now.duration_since(r.started()).unwrap_or_default()),
            duration(r.duration_ms),
        ]);
    }
    Ok(crate::table::write(&mut out, &table)?)
}

fn show(records: &BuildRecords, args: &ShowArgs) -> Result<()> {
    if args.format != "pretty" && args.format != "json" {
        bail!("--format {:?}: kiln prints pretty or json", args.format);
    }
    let r = records.find(&args.build)?;
    let mut out = std::io::stdout().lock();
    if args.format == "json" {
        writeln!(out, "{}", serde_json::to_string_pretty(&r)?)?;
        return Ok(());
    }
    write_summary(&mut out, &r)?;
    writeln!(out)?;
    let mut table = vec![[
        "#".to_string(),
        "STEP".into(),
        "START".into(),
        "DURATION".into(),
        "CACHE".into(),
        "SIZE".into(),
    ]];
    for (i, s) in r.steps.iter().enumerate() {
        let cache = match (s.state, &s.reason, &s.error) {
            (StepState::Cached, _, _) => "CACHED".to_string(),
            (StepState::Failed, _, Some(e)) => format!("ERROR: {e}"),
            (StepState::Failed, _, None) => "ERROR".into(),
            (StepState::Cancelled, _, _) => "CANCELLED".into(),
            (StepState::Built, Some(reason), _) => reason.clone(),
            (StepState::Built, None, _) => "built".into(),
        };
        table.push([
            format!("{}", i + 1),
            cut(&s.name, 50, args.no_trunc),
            format!("{:.1}s", s.start_ms / 1e3),
            duration(s.duration_ms()),
            cut(&cache.replace('\n', " "), 60, args.no_trunc),
            s.bytes.map(docker_size).unwrap_or_default(),
        ]);
    }
    crate::table::write(&mut out, &table)?;
    if r.steps_omitted > 0 {
        writeln!(out, "({} more steps not recorded)", r.steps_omitted)?;
    }
    Ok(())
}

/// The header of `kiln builds show`, as `buildx history inspect` has it.
fn write_summary(out: &mut impl Write, r: &BuildRecord) -> Result<()> {
    let info = &r.info;
    let line = |out: &mut dyn Write, key: &str, value: &str| -> std::io::Result<()> {
        if value.is_empty() {
            return Ok(());
        }
        writeln!(out, "{:<16}{value}", format!("{key}:"))
    };
    line(out, "ID", &r.id)?;
    line(out, "Name", &info.name)?;
    line(out, "Context", &info.context)?;
    line(out, "Dockerfile", &info.dockerfile)?;
    line(out, "Target", info.target.as_deref().unwrap_or_default())?;
    line(out, "Platforms", &info.platforms.join(", "))?;
    line(out, "Tags", &info.tags.join(", "))?;
    line(out, "Outputs", &info.outputs.join(", "))?;
    line(out, "Build args", &info.build_args.join(", "))?;
    line(out, "Secrets", &info.secrets.join(", "))?;
    writeln!(out)?;
    line(out, "Started", &r.started_at)?;
    line(out, "Duration", &duration(r.duration_ms))?;
    line(out, "Status", r.status.label())?;
    line(out, "Error", r.error.as_deref().unwrap_or_default())?;
    let total = r.steps.len();
    let cached = r.cached_steps();
    let percent = (cached * 100).checked_div(total).unwrap_or(0);
    line(
        out,
        "Build Steps",
        &format!("{total} ({cached} cached, {percent}%)"),
    )?;
    Ok(())
}

fn trace(records: &BuildRecords, args: &TraceArgs) -> Result<()> {
    let r = records.find(&args.build)?;
    let text = serde_json::to_vec_pretty(&chrome_trace(&r))?;
    if args.output.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        out.write_all(&text)?;
        writeln!(out)?;
        return Ok(());
    }
    std::fs::write(&args.output, text)
        .with_context(|| format!("--output {}", args.output.display()))
}

fn rm(records: &BuildRecords, args: &RmArgs) -> Result<()> {
    let ids: Vec<String> = if args.all {
        records.list()?.into_iter().map(|r| r.id).collect()
    } else {
        let mut ids = Vec::new();
        for b in &args.builds {
            ids.push(records.find(b)?.id);
        }
        ids
    };
    let mut out = std::io::stdout().lock();
    for id in ids {
        records.remove(&id)?;
        writeln!(out, "{id}")?;
    }
    Ok(())
}

/// A duration as buildx prints it: `1.4s`, `2m 5s`, `1h 3m`.
fn duration(ms: f64) -> String {
    let d = Duration::from_secs_f64((ms / 1e3).max(0.0));
    let s = d.as_secs();
    match s {
        0..=59 => format!("{:.1}s", d.as_secs_f64()),
        60..=3599 => format!("{}m {}s", s / 60, s % 60),
        _ => format!("{}h {}m", s / 3600, s % 3600 / 60),
    }
}

/// `text` cut to `max` characters with an ellipsis, unless `keep`.
fn cut(text: &str, max: usize, keep: bool) -> String {
    if keep {
        text.to_string()
    } else {
        crate::table::truncate(text, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_buildx_prints_them() {
        assert_eq!(duration(1_400.0), "1.4s");
        assert_eq!(duration(125_000.0), "2m 5s");
        assert_eq!(duration(3_780_000.0), "1h 3m");
        assert_eq!(duration(-3.0), "0.0s");
    }
}
