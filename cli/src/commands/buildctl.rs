//! `kiln buildctl build ...`: BuildKit's `buildctl` syntax, as CI scripts
//! and BuildKit's docs write it, read into the `kiln build` flags that mean
//! the same, so one implementation does the work.
//!
//! Only the `dockerfile.v0` frontend exists here. Front-end options
//! (`--opt KEY=VALUE`) map onto `kiln build` flags; `--local NAME=DIR`
//! names the directories that `context`, `dockerfile` and
//! `context:NAME=local:NAME` refer to.

use super::build::BuildArgs;
use anyhow::{bail, Context, Result};
use clap::{Args, FromArgMatches, Subcommand};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Arguments of `kiln buildctl`.
#[derive(Debug, Args)]
pub struct BuildctlArgs {
    /// buildctl's daemon address: accepted for scripts and ignored (kiln
    /// has no daemon).
    #[arg(long, value_name = "ADDRESS", global = true)]
    addr: Option<String>,
    /// The buildctl command.
    #[command(subcommand)]
    command: BuildctlCommand,
}

/// buildctl's commands kiln has.
#[derive(Debug, Subcommand)]
enum BuildctlCommand {
    /// Build, as `buildctl build` (mapped onto `kiln build`).
    Build(Box<BuildctlBuild>),
}

/// `buildctl build`'s flags.
#[derive(Debug, Args)]
struct BuildctlBuild {
    /// The frontend: only `dockerfile.v0` (or `dockerfile`, `gateway.v0`
    /// is not supported).
    #[arg(long, default_value = "dockerfile.v0")]
    frontend: String,
    /// A local directory by name (repeatable): `context=DIR`,
    /// `dockerfile=DIR`, or another name a `context:` option refers to.
    #[arg(long = "local", value_name = "NAME=DIR")]
    locals: Vec<String>,
    /// A frontend option (repeatable): `filename=F`, `target=T`,
    /// `platform=P[,P]`, `build-arg:K=V`, `label:K=V`,
    /// `context:NAME=VALUE`, `add-hosts=H:IP[,H:IP]`,
    /// `force-network-mode=host|none`, `no-cache=[STAGES]`,
    /// `image-resolve-mode=pull`, `attest:provenance=V`, `attest:sbom=V`.
    #[arg(long = "opt", value_name = "KEY=VALUE")]
    opts: Vec<String>,
    /// An output (repeatable), as `kiln build --output`.
    #[arg(short = 'o', long = "output")]
    outputs: Vec<String>,
    /// Export the build cache (repeatable), as `kiln build --cache-to`.
    #[arg(long = "export-cache", value_name = "CACHE")]
    export_cache: Vec<String>,
    /// Import a build cache (repeatable), as `kiln build --cache-from`.
    #[arg(long = "import-cache", value_name = "CACHE")]
    import_cache: Vec<String>,
    /// A secret (repeatable), as `kiln build --secret`.
    #[arg(long)]
    secret: Vec<String>,
    /// An SSH agent or key (repeatable), as `kiln build --ssh`.
    #[arg(long)]
    ssh: Vec<String>,
    /// Grant an entitlement (repeatable), as `kiln build --allow`.
    #[arg(long)]
    allow: Vec<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Progress output: auto, tty, plain, rawjson or quiet.
    #[arg(long, env = "BUILDKIT_PROGRESS")]
    progress: Option<String>,
    /// Write the build result metadata to this file as JSON.
    #[arg(long)]
    metadata_file: Option<PathBuf>,
}

/// Reads `kiln buildctl ...` as the `kiln build` it means.
///
/// # Errors
/// A frontend other than the Dockerfile one, an option kiln does not
/// know, a `--local` that is missing or malformed, each named with its
/// flag.
pub fn to_build_args(args: &BuildctlArgs) -> Result<Box<BuildArgs>> {
    if let Some(addr) = &args.addr {
        crate::progress::eprint_line(&format!(
            "NOTE: kiln has no daemon; --addr {addr} is ignored"
        ));
    }
    let BuildctlCommand::Build(build) = &args.command;
    let argv = build_argv(build)?;
    let command = BuildArgs::augment_args(clap::Command::new("build"));
    let matches = command
        .try_get_matches_from(std::iter::once("build".to_string()).chain(argv))
        .map_err(|e| anyhow::anyhow!("kiln buildctl build: {}", first_line(&e.to_string())))?;
    Ok(Box::new(BuildArgs::from_arg_matches(&matches)?))
}

/// The first non-empty line of clap's multi-line message, without its
/// `error: ` prefix.
fn first_line(text: &str) -> String {
    let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or(text);
    line.trim_start_matches("error: ").to_string()
}

/// The `kiln build` command line a `buildctl build` means.
fn build_argv(build: &BuildctlBuild) -> Result<Vec<String>> {
    if !matches!(build.frontend.as_str(), "dockerfile.v0" | "dockerfile") {
        bail!(
            "--frontend {}: kiln has only the Dockerfile frontend (dockerfile.v0)",
            build.frontend
        );
    }
    let mut locals = BTreeMap::new();
    for local in &build.locals {
        let (name, dir) = local
            .split_once('=')
            .filter(|(n, d)| !n.is_empty() && !d.is_empty())
            .with_context(|| format!("--local {local:?}: expected NAME=DIR"))?;
        locals.insert(name.to_string(), dir.to_string());
    }
    let context = locals
        .get("context")
        .with_context(|| "--local context=DIR is required (the build context)".to_string())?
        .clone();
    let mut argv: Vec<String> = Vec::new();
    let mut filename = "Dockerfile".to_string();
    for opt in &build.opts {
        let (key, value) = opt.split_once('=').unwrap_or((opt.as_str(), ""));
        if let Some(arg) = key.strip_prefix("build-arg:") {
            argv.push(format!("--build-arg={arg}={value}"));
        } else if let Some(label) = key.strip_prefix("label:") {
            argv.push(format!("--label={label}={value}"));
        } else if let Some(name) = key.strip_prefix("context:") {
            let value = match value.strip_prefix("local:") {
                Some(local) => locals
                    .get(local)
                    .with_context(|| {
                        format!("--opt {opt}: no --local {local}=DIR names that directory")
                    })?
                    .clone(),
                None => value.to_string(),
            };
            argv.push(format!("--build-context={name}={value}"));
        } else {
            match key {
                "filename" => filename = value.to_string(),
                "target" => argv.push(format!("--target={value}")),
                "platform" => argv.push(format!("--platform={value}")),
                "add-hosts" => {
                    for host in value.split(',').filter(|h| !h.is_empty()) {
                        argv.push(format!("--add-host={host}"));
                    }
                }
                "force-network-mode" => argv.push(format!("--network={value}")),
                "no-cache" if value.is_empty() => argv.push("--no-cache".into()),
                "no-cache" => argv.push(format!("--no-cache-filter={value}")),
                "image-resolve-mode" if value == "pull" => argv.push("--pull".into()),
                "image-resolve-mode" if value == "default" || value == "local" => {}
                "attest:provenance" => argv.push(format!("--provenance={value}")),
                "attest:sbom" => argv.push(format!("--sbom={value}")),
                _ => bail!("--opt {opt}: not a Dockerfile frontend option kiln knows"),
            }
        }
    }
    let dockerfile_dir = locals.get("dockerfile").unwrap_or(&context);
    argv.push(format!(
        "--file={}",
        PathBuf::from(dockerfile_dir).join(&filename).display()
    ));
    let pairs = [
        ("--output", &build.outputs),
        ("--cache-to", &build.export_cache),
        ("--cache-from", &build.import_cache),
        ("--secret", &build.secret),
        ("--ssh", &build.ssh),
        ("--allow", &build.allow),
    ];
    for (flag, values) in pairs {
        argv.extend(values.iter().map(|v| format!("{flag}={v}")));
    }
    if build.no_cache {
        argv.push("--no-cache".into());
    }
    if let Some(progress) = &build.progress {
        argv.push(format!("--progress={progress}"));
    }
    if let Some(file) = &build.metadata_file {
        argv.push(format!("--metadata-file={}", file.display()));
    }
    // The context last, after `--` so a directory named like a flag stays
    // a directory.
    argv.push("--".into());
    argv.push(context);
    Ok(argv)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BuildctlArgs,
    }

    fn argv(line: &[&str]) -> Result<Vec<String>> {
        let cli = Cli::try_parse_from(std::iter::once("buildctl").chain(line.iter().copied()))?;
        let BuildctlCommand::Build(build) = &cli.args.command;
        build_argv(build)
    }

    #[test]
    fn the_documented_invocation_maps_flag_by_flag() {
        let got = argv(&[
            "build",
            "--frontend",
            "dockerfile.v0",
            "--local",
            "context=/src",
            "--local",
            "dockerfile=/df",
            "--opt",
            "build-arg:A=1",
            "--opt",
            "filename=Dockerfile.prod",
            "--opt",
            "target=final",
            "--opt",
            "platform=linux/amd64,linux/arm64",
            "--output",
            "type=image,name=r.example/app:1,push=true",
            "--export-cache",
            "type=inline",
            "--import-cache",
            "type=registry,ref=r.example/app:cache",
            "--secret",
            "id=s,src=/s",
            "--ssh",
            "default",
            "--progress",
            "plain",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "--build-arg=A=1",
                "--target=final",
                "--platform=linux/amd64,linux/arm64",
                "--file=/df/Dockerfile.prod",
                "--output=type=image,name=r.example/app:1,push=true",
                "--cache-to=type=inline",
                "--cache-from=type=registry,ref=r.example/app:cache",
                "--secret=id=s,src=/s",
                "--ssh=default",
                "--progress=plain",
                "--",
                "/src",
            ]
        );
    }

    #[test]
    fn named_local_contexts_resolve_to_their_directories() {
        let got = argv(&[
            "build",
            "--local",
            "context=.",
            "--local",
            "extra=/x",
            "--opt",
            "context:lib=local:extra",
            "--opt",
            "context:base=docker-image://busybox",
            "--opt",
            "no-cache=",
        ])
        .unwrap();
        assert!(
            got.contains(&"--build-context=lib=/x".to_string()),
            "{got:?}"
        );
        assert!(got.contains(&"--build-context=base=docker-image://busybox".to_string()));
        assert!(got.contains(&"--no-cache".to_string()));
        assert!(got.contains(&"--file=./Dockerfile".to_string()), "{got:?}");
    }

    #[test]
    fn what_kiln_cannot_do_is_named() {
        let err = |line: &[&str]| argv(line).unwrap_err().to_string();
        assert_eq!(
            err(&["build", "--frontend", "gateway.v0", "--local", "context=."]),
            "--frontend gateway.v0: kiln has only the Dockerfile frontend (dockerfile.v0)"
        );
        assert_eq!(
            err(&["build"]),
            "--local context=DIR is required (the build context)"
        );
        assert_eq!(
            err(&["build", "--local", "context=.", "--opt", "source=x"]),
            "--opt source=x: not a Dockerfile frontend option kiln knows"
        );
        assert_eq!(
            err(&[
                "build",
                "--local",
                "context=.",
                "--opt",
                "context:a=local:nope"
            ]),
            "--opt context:a=local:nope: no --local nope=DIR names that directory"
        );
    }
}
