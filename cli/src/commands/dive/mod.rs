//! `kiln dive IMAGE`: an image's layers explored as dive explores them:
//! an interactive view of each layer's files, or (`--ci`, `--json`)
//! dive's efficiency checks and analysis for scripts.

pub mod analysis;
pub mod ci;
pub mod source;
pub mod tui;

use crate::global::GlobalArgs;
use analysis::Analysis;
use anyhow::{bail, Context, Result};
use clap::Args;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;

/// Arguments of `kiln dive`.
#[derive(Debug, Args)]
pub struct DiveArgs {
    /// The image: a name or digest in the store, `docker://REF` (a
    /// registry, layers downloaded into the store's blobs),
    /// `oci-layout://DIR[:TAG|@DIGEST]`, or `docker-archive://FILE`.
    image: String,
    /// Read a plain name from its registry rather than the store.
    #[arg(long)]
    remote: bool,
    /// The platform to explore from a multi-platform image.
    #[arg(long)]
    platform: Option<String>,
    /// Run dive's CI checks instead of the explorer: print PASS or FAIL for
    /// each rule, exit 1 when a threshold is crossed. Rules come from the
    /// flags below, else from the CI config file, else dive's defaults
    /// (lowest efficiency 0.9, highest user wasted percent 0.1).
    #[arg(long)]
    ci: bool,
    /// The CI rules file (dive's `.dive-ci` YAML: a `rules:` map with
    /// lowestEfficiency, highestWastedBytes, highestUserWastedPercent).
    /// Default: `.dive-ci` in the current directory, when there is one.
    #[arg(long, value_name = "FILE")]
    ci_config: Option<std::path::PathBuf>,
    /// CI: fail when the efficiency score (0 to 1) is below this; or
    /// `disabled`.
    #[arg(long, value_name = "RATIO")]
    lowest_efficiency: Option<String>,
    /// CI: fail when the wasted bytes are above this (`20MB`, `1.5GiB`,
    /// `1048576`; SI units as dive reads them); or `disabled`.
    #[arg(long, value_name = "SIZE")]
    highest_wasted_bytes: Option<String>,
    /// CI: fail when wasted bytes over the bytes the layers above the base
    /// added are above this ratio (`0.1` is 10%); or `disabled`.
    #[arg(long, value_name = "RATIO")]
    highest_user_wasted_percent: Option<String>,
    /// Print the whole analysis as JSON (dive's keys: layer, image) instead
    /// of the explorer; `--json FILE` writes it to FILE (`-` is stdout; put
    /// the image first, or write `--json=FILE`).
    /// With --ci, the CI report goes to stderr when the JSON is on stdout.
    #[arg(long, value_name = "FILE", num_args = 0..=1, default_missing_value = "-")]
    json: Option<String>,
}

/// Runs `kiln dive`.
pub fn dive(global: &GlobalArgs, args: &DiveArgs) -> Result<ExitCode> {
    let interactive = !args.ci && args.json.is_none();
    if interactive && !(std::io::stdout().is_terminal() && std::io::stdin().is_terminal()) {
        bail!(
            "the explorer needs a terminal: use --ci for the efficiency checks or --json for the analysis"
        );
    }
    // Rules are read first: a bad file or flag fails before the layers
    // are read.
    let rules = if args.ci {
        Some(ci::Rules::resolve(
            args.ci_config.as_deref(),
            [
                args.lowest_efficiency.as_deref(),
                args.highest_wasted_bytes.as_deref(),
                args.highest_user_wasted_percent.as_deref(),
            ],
        )?)
    } else {
        None
    };
    let image = source::open(global, &args.image, args.remote, args.platform.as_deref())?;
    let analysis = image.analyse(global)?;
    if interactive {
        tui::run(&analysis)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut report_to_stderr = false;
    if let Some(target) = &args.json {
        let json = serde_json::to_string_pretty(&export(&analysis))?;
        if target == "-" {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{json}")?;
            report_to_stderr = true;
        } else {
            std::fs::write(target, format!("{json}\n"))
                .with_context(|| format!("--json {target}: writing the analysis"))?;
        }
    }
    let Some(rules) = rules else {
        return Ok(ExitCode::SUCCESS);
    };
    let (report, pass) = ci::evaluate(&rules, &analysis);
    if report_to_stderr {
        crate::progress::eprint_line(report.trim_end());
    } else {
        let mut out = std::io::stdout().lock();
        write!(out, "{report}")?;
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The analysis as dive's `--json` writes it (its `layer` and `image`
/// keys), with kiln's additions: per layer the counts of added, changed
/// and removed paths and the blob size; for the image the user size,
/// wasted bytes and user wasted ratio under dive's CI names.
pub fn export(a: &Analysis) -> serde_json::Value {
    let layers: Vec<serde_json::Value> = a
        .layers
        .iter()
        .zip(&a.changes)
        .map(|(l, changes)| {
            let files: Vec<&analysis::Entry> = changes
                .iter()
                .filter_map(|c| match c {
                    analysis::Change::Put(e) => Some(e),
                    _ => None,
                })
                .collect();
            let removed: Vec<String> = changes
                .iter()
                .filter_map(|c| match c {
                    analysis::Change::Remove(p) => Some(format!("/{p}")),
                    analysis::Change::Opaque(d) => Some(format!("/{d}/.wh..wh..opq")),
                    analysis::Change::Put(_) => None,
                })
                .collect();
            serde_json::json!({
                "index": l.index,
                "id": l.digest,
                "digestId": l.diff_id,
                "sizeBytes": l.size,
                "blobSizeBytes": l.blob_size,
                "command": l.command,
                "added": l.added,
                "changed": l.changed,
                "removed": l.removed,
                "whiteouts": removed,
                "fileList": files,
            })
        })
        .collect();
    let files: Vec<serde_json::Value> = a
        .inefficiencies
        .iter()
        .map(|i| serde_json::json!({"count": i.count, "sizeBytes": i.size, "file": i.path}))
        .collect();
    serde_json::json!({
        "layer": layers,
        "image": {
            "name": a.name,
            "sizeBytes": a.size,
            "userSizeBytes": a.user_size,
            "inefficientBytes": a.wasted_bytes,
            "wastedBytes": a.wasted_bytes,
            "efficiencyScore": a.efficiency,
            "userWastedPercent": a.user_wasted_percent,
            "fileReference": files,
        }
    })
}

/// A size as dive prints it (go-humanize's `Bytes`: SI units, one decimal
/// below 10): `0 B`, `2.1 MB`, `12 kB`.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 10 {
        return format!("{bytes} B");
    }
    let exp = ((bytes as f64).ln() / 1000f64.ln()).floor() as usize;
    let exp = exp.min(UNITS.len() - 1);
    let value = (bytes as f64 / 1000f64.powi(exp as i32) * 10.0 + 0.5).floor() / 10.0;
    if value < 10.0 {
        format!("{value:.1} {}", UNITS[exp])
    } else {
        format!("{value:.0} {}", UNITS[exp])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn sizes_print_as_dive_prints_them() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(2_097_152), "2.1 MB");
        assert_eq!(human_bytes(12_345), "12 kB");
        assert_eq!(human_bytes(1_000_000), "1.0 MB");
    }
}
