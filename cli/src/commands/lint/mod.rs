//! `kiln lint`: hadolint's rules and BuildKit's checks over Dockerfiles.

mod base_images;
pub mod checks;

use crate::global::GlobalArgs;
use anyhow::{bail, Context, Result};
use clap::Args;
use kiln_lint::{
    config_candidates, explain, find_rule, is_failure, try_lint_files, Config, Format, Input,
    Severity, ShellCheck,
};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Arguments of `kiln lint`.
#[derive(Debug, Args)]
pub struct LintArgs {
    /// Dockerfiles to lint; `-` reads standard input.
    #[arg(value_name = "FILE", required_unless_present_any = ["explain", "version"])]
    files: Vec<PathBuf>,
    /// Output format: tty, json, sarif, checkstyle, gnu, codeclimate,
    /// gitlab_codeclimate, codacy, sonarqube, junit.
    #[arg(short = 'f', long)]
    format: Option<Format>,
    /// Never report this rule (repeatable).
    #[arg(long = "ignore", value_name = "CODE")]
    ignore: Vec<String>,
    /// Exit 1 only for findings at this severity or above (error, warning,
    /// info, style, ignore/none).
    #[arg(short = 't', long, value_name = "SEVERITY")]
    failure_threshold: Option<Severity>,
    /// Always exit 0 (but for unreadable files).
    #[arg(long)]
    no_fail: bool,
    /// Registry FROM images may come from (repeatable; turns DL3026 on).
    #[arg(long = "trusted-registry", value_name = "REGISTRY")]
    trusted_registry: Vec<String>,
    /// Config file (hadolint's `.hadolint.yaml` format) instead of the
    /// usual search.
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Never colour the output.
    #[arg(long)]
    no_color: bool,
    /// Run BuildKit's checks too (`true`, the default) or only hadolint's
    /// rules (`false`); also `buildkit-checks:` in the config file and
    /// `KILN_LINT_BUILDKIT_CHECKS`.
    #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
    buildkit_checks: Option<bool>,
    /// hadolint's behaviour for a CI gate: only hadolint's rules are
    /// reported and count toward the exit status (`--buildkit-checks=false`).
    #[arg(long)]
    hadolint_compatible: bool,
    /// Report these rules at error severity (repeatable).
    #[arg(long = "error", value_name = "CODE")]
    error: Vec<String>,
    /// Report these rules at warning severity (repeatable).
    #[arg(long = "warning", value_name = "CODE")]
    warning: Vec<String>,
    /// Report these rules at info severity (repeatable).
    #[arg(long = "info", value_name = "CODE")]
    info: Vec<String>,
    /// Report these rules at style severity (repeatable).
    #[arg(long = "style", value_name = "CODE")]
    style: Vec<String>,
    /// Ignore `# hadolint ignore=` pragmas.
    #[arg(long)]
    disable_ignore_pragma: bool,
    /// Run ShellCheck on each RUN and report its SC findings (the default
    /// when `shellcheck` is on PATH).
    #[arg(long, overrides_with = "no_shellcheck")]
    shellcheck: bool,
    /// Do not run ShellCheck.
    #[arg(long)]
    no_shellcheck: bool,
    /// Check every RUN with ShellCheck again instead of reusing the
    /// verdicts remembered in `$XDG_CACHE_HOME/kiln` (`~/.cache/kiln`).
    #[arg(long)]
    no_cache: bool,
    /// Require this label in every stage, with a value of this format
    /// (`text`, `url`, `semver`, `hash`, `rfc3339`, `spdx`, `email`;
    /// repeatable; turns DL3049-DL3058 on).
    #[arg(long = "require-label", value_name = "LABEL:FORMAT")]
    require_label: Vec<String>,
    /// Report labels not in the label schema (DL3050).
    #[arg(long)]
    strict_labels: bool,
    /// Write the report to this file instead of standard output.
    #[arg(short = 'o', long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// The file name to print in reports instead of the one read.
    #[arg(long, value_name = "PATH")]
    file_path_in_report: Option<String>,
    /// Print what a rule checks, then exit.
    #[arg(long, value_name = "CODE")]
    explain: Option<String>,
    /// The platform the build targets, for BuildKit's base image checks
    /// (default: this machine's).
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<kiln_oci::Platform>,
    /// Ask registries for the configs of base images the store does not
    /// have (no layers are pulled), so UndefinedVar knows their ENV and
    /// InvalidBaseImagePlatform can check them.
    #[arg(long)]
    pull: bool,
    /// Say on stderr which config file, ShellCheck and base images were
    /// used.
    #[arg(short = 'V', long)]
    verbose: bool,
    /// Print the version and what the rules follow, then exit.
    #[arg(short = 'v', long)]
    version: bool,
}

/// Runs `kiln lint`.
pub fn run(global: &GlobalArgs, args: &LintArgs) -> Result<ExitCode> {
    if args.version {
        println!(
            "kiln lint {} (hadolint 2.15.1's DL rules, BuildKit's Dockerfile checks)",
            env!("CARGO_PKG_VERSION")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(code) = &args.explain {
        let Some(text) = explain(code) else {
            bail!("unknown rule {code}");
        };
        match find_rule(code) {
            Some(rule) => println!(
                "{} ({}): {}\n\n{text}",
                rule.code(),
                rule.severity(),
                rule.message()
            ),
            None => println!("{code}\n\n{text}"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = load_config(args)?;
    let verbose = args.verbose || config.verbose;
    if verbose {
        match &config.shellcheck {
            Some(sc) => eprintln!("kiln: lint: ShellCheck: {}", sc.program().display()),
            None => eprintln!("kiln: lint: ShellCheck: not used"),
        }
    }
    let format = args.format.or(config.format).unwrap_or(Format::Tty);
    let mut unreadable = false;
    let mut sources = Vec::new();
    for file in &args.files {
        // An unreadable file is reported and the others are still linted.
        match read_source(file) {
            Ok((name, source)) => sources.push((file, name, source)),
            Err(err) => {
                eprintln!("kiln: {err:#}");
                unreadable = true;
            }
        }
    }
    let lookup = base_images::Lookup {
        global,
        target: args
            .platform
            .clone()
            .unwrap_or_else(kiln_oci::Platform::host),
        pull: args.pull,
        verbose,
    };
    let texts: Vec<&str> = sources.iter().map(|(_, _, s)| s.as_str()).collect();
    config.base_images = Some(base_images::resolve(&lookup, &texts)?);
    let mut configs = Vec::new();
    for (file, name, _) in &sources {
        let ignore = dockerignore_for(file)?;
        let config = Config {
            dockerignore: ignore,
            ..config.clone()
        };
        let name = args.file_path_in_report.clone().unwrap_or(name.clone());
        configs.push((name, config));
    }
    // One ShellCheck run for the RUNs of all the files.
    let inputs: Vec<Input> = sources
        .iter()
        .zip(&configs)
        .map(|((_, _, source), (name, config))| Input {
            file: name,
            source,
            config,
        })
        .collect();
    let (per_file, failure) = try_lint_files(&inputs);
    if let Some(err) = failure {
        eprintln!("kiln: lint: {err}; SC findings left out");
    }
    let found: Vec<_> = per_file.into_iter().flatten().collect();
    let color = format == Format::Tty
        && !args.no_color
        && !config.no_color
        && std::env::var_os("NO_COLOR").is_none()
        && std::io::stdout().is_terminal();
    match &args.output {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .with_context(|| format!("creating {}", path.display()))?;
            format.write(&found, false, &mut file)?;
            file.flush()?;
        }
        None => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            format.write(&found, color, &mut out)?;
            out.flush()?;
        }
    }
    if unreadable || (!format.never_fails() && is_failure(&found, &config)) {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The config file (given, or the first found), then the flags on top.
fn load_config(args: &LintArgs) -> Result<Config> {
    let mut config = Config::default();
    config
        .merge_env(|k| std::env::var(k).ok())
        .context("bad environment")?;
    let path = match &args.config {
        Some(p) => Some(p.clone()),
        None => {
            let cwd = std::env::current_dir().context("finding the working directory")?;
            let xdg = std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from);
            let home = std::env::var_os("HOME").map(PathBuf::from);
            config_candidates(&cwd, xdg.as_deref(), home.as_deref())
                .into_iter()
                .find(|p| p.is_file())
        }
    };
    if let Some(path) = path {
        if args.verbose {
            eprintln!("kiln: lint: config file: {}", path.display());
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading config {}", path.display()))?;
        config
            .merge_yaml(&text)
            .with_context(|| format!("bad config {}", path.display()))?;
    }
    config.ignored.extend(args.ignore.iter().cloned());
    config
        .trusted_registries
        .extend(args.trusted_registry.iter().cloned());
    for (codes, severity) in [
        (&args.error, Severity::Error),
        (&args.warning, Severity::Warning),
        (&args.info, Severity::Info),
        (&args.style, Severity::Style),
    ] {
        for code in codes {
            config.overrides.insert(code.clone(), severity);
        }
    }
    if let Some(t) = args.failure_threshold {
        config.failure_threshold = t;
    }
    config.no_fail |= args.no_fail;
    config.strict_labels |= args.strict_labels;
    if args.hadolint_compatible {
        config.set_buildkit_checks(false);
    } else if let Some(on) = args.buildkit_checks {
        config.set_buildkit_checks(on);
    }
    for spec in &args.require_label {
        let Some((label, kind)) = spec.split_once(':') else {
            bail!("--require-label {spec:?}: expected LABEL:FORMAT");
        };
        config
            .label_schema
            .insert(label.to_string(), kind.to_string());
    }
    if !args.no_shellcheck {
        config.shellcheck = ShellCheck::find().map(|sc| match user_cache_dir() {
            Some(dir) if !args.no_cache => sc.with_cache_dir(dir),
            _ => sc,
        });
        if args.shellcheck && config.shellcheck.is_none() {
            bail!("--shellcheck: no shellcheck on PATH");
        }
    }
    config.disable_ignore_pragma |= args.disable_ignore_pragma;
    Ok(config)
}

/// Where `kiln lint` remembers ShellCheck's verdicts:
/// `$XDG_CACHE_HOME/kiln`, else `$HOME/.cache/kiln`.
fn user_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    env("XDG_CACHE_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".cache")))
        .map(|d| d.join("kiln"))
}

/// `<Dockerfile>.dockerignore`, else `.dockerignore` beside the Dockerfile
/// (taken as the build context), as BuildKit picks them.
fn dockerignore_for(file: &Path) -> Result<Option<kiln_lint::DockerIgnore>> {
    if file.as_os_str() == "-" {
        return Ok(None);
    }
    let mut own = file.as_os_str().to_owned();
    own.push(".dockerignore");
    let beside = file
        .parent()
        .map(|d| d.join(".dockerignore"))
        .unwrap_or_else(|| PathBuf::from(".dockerignore"));
    for candidate in [PathBuf::from(own), beside] {
        if candidate.is_file() {
            let text = std::fs::read_to_string(&candidate)
                .with_context(|| format!("reading {}", candidate.display()))?;
            return Ok(Some(kiln_lint::DockerIgnore::parse(&text)));
        }
    }
    Ok(None)
}

fn read_source(file: &Path) -> Result<(String, String)> {
    let mut bytes = Vec::new();
    let name = if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from standard input")?;
        "-".to_string()
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        file.display().to_string()
    };
    // Rejected with its position, where BuildKit would read bytes.
    let text = kiln_parser::decode(bytes).map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
    Ok((name, text))
}
