//! The build record of a `kiln build` (and of each target of `kiln
//! bake`): what was asked for, read from the flags, and the steps the
//! [`StepLog`] collected, written to the store when the build ends
//! (`kiln_solver::builds`); `--trace FILE` writes its timeline.

use super::BuildArgs;
use anyhow::{Context, Result};
use kiln_oci::{Digest, LocalStore};
use kiln_solver::builds::{
    chrome_trace, BuildInfo, BuildRecord, BuildRecords, BuildStatus, StepLog,
};
use std::collections::HashSet;
use std::path::Path;

/// Whether these flags run a build (not `--print`, `--check` or a
/// `--call` other than `build`): only a build leaves a record.
pub(super) fn is_build(args: &BuildArgs) -> bool {
    args.print.is_none()
        && !args.check
        && args
            .call
            .as_deref()
            .is_none_or(|c| c.split(',').next() == Some("build"))
}

/// What the flags ask for, as a record says it: `name` (a bake target)
/// or the first tag or the context's directory name; build-arg names and
/// secret ids only, never their values.
pub(super) fn info(args: &BuildArgs, name: Option<&str>) -> BuildInfo {
    let name = match (name, args.tags.first()) {
        (Some(n), _) => n.to_string(),
        (None, Some(tag)) => tag.clone(),
        (None, None) => context_name(&args.context),
    };
    let name = match &args.target {
        Some(t) => format!("{name} ({t})"),
        None => name,
    };
    let mut outputs = args.outputs.clone();
    if args.push {
        outputs.push("type=registry".into());
    }
    if args.load {
        outputs.push("type=docker".into());
    }
    BuildInfo {
        name,
        context: args.context.clone(),
        dockerfile: args
            .file
            .as_ref()
            .map_or_else(|| "Dockerfile".into(), |f| f.display().to_string()),
        target: args.target.clone(),
        platforms: args
            .platform
            .iter()
            .flat_map(|p| p.split(','))
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        tags: args.tags.clone(),
        outputs,
        build_args: args
            .build_args
            .iter()
            .map(|a| a.split_once('=').map_or(a.as_str(), |(k, _)| k).to_string())
            .collect(),
        secrets: args
            .secret
            .iter()
            .filter_map(|s| {
                s.split(',')
                    .find_map(|f| f.strip_prefix("id="))
                    .map(str::to_string)
            })
            .collect(),
    }
}

/// The last part of a context directory's path (`.` made absolute), or
/// the context as given (a URL, `-`).
fn context_name(context: &str) -> String {
    let path = Path::new(context);
    if path.is_dir() {
        let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        if let Some(name) = abs.file_name() {
            return name.to_string_lossy().into_owned();
        }
    }
    context.to_string()
}

/// How a build that returned `result` ended (cancelled when a signal
/// cancelled it), and its error's first line: what follows is an excerpt
/// or a process's output, which records do not keep.
pub(super) fn outcome(result: &Result<()>) -> (BuildStatus, Option<String>) {
    let first_line = |e: &anyhow::Error| {
        let text = crate::error_text(e);
        text.lines().next().unwrap_or_default().to_string()
    };
    match result {
        Ok(()) => (BuildStatus::Completed, None),
        Err(e) if crate::signals::build_cancel().is_cancelled() => {
            (BuildStatus::Cancelled, Some(first_line(e)))
        }
        Err(e) => (BuildStatus::Failed, Some(first_line(e))),
    }
}

/// Makes the record of a build that returned `result` (its steps those
/// of `only`, when given) and writes it to `store`, unless the store is
/// read-only (then there is no record, and no error). A record that
/// cannot be written is a warning: the build's result stands.
pub(super) fn write(
    store: Option<&LocalStore>,
    log: &StepLog,
    info: BuildInfo,
    result: &Result<()>,
    only: Option<&HashSet<Digest>>,
) -> BuildRecord {
    let (status, error) = outcome(result);
    let record = log.record(info, status, error.as_deref(), only);
    if let Some(store) = store.filter(|s| !s.is_read_only()) {
        if let Err(e) = BuildRecords::new(store.layout()).write(&record) {
            crate::progress::eprint_line(&format!("WARNING: build record: {e}"));
        }
    }
    record
}

/// Writes `record`'s timeline to `path` in the Chrome trace event format
/// (`--trace`).
///
/// # Errors
/// The file cannot be written (named with the flag).
pub(super) fn write_trace(record: &BuildRecord, path: &Path) -> Result<()> {
    let text = serde_json::to_vec_pretty(&chrome_trace(record))?;
    std::fs::write(path, text).with_context(|| format!("--trace {}", path.display()))
}
