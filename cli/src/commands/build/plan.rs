//! The plan phase of `kiln build`: the context and the Dockerfile read
//! and parsed, lowered to one graph per platform, then BuildKit's build
//! checks (which know the base images lowering resolved).

use super::checks;
use super::flags::Call;
use super::remote_context;
use super::request::BuildRequest;
use super::resolver::StoreResolver;
use super::{BuildArgs, PrintFormat};
use crate::located::{Located, StepOutput};
use crate::progress::Reporter;
use anyhow::{bail, Context, Result};
use kiln_lint::Diagnostic;
use kiln_oci::Digest;
use kiln_solver::context::BuildContext;
use kiln_solver::{BuildOptions, Lowered, ProgressSink, VertexState};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The build's input: the context directory and the parsed Dockerfile.
pub(super) struct Source {
    /// The context directory (unpacked in the staging directory when it
    /// came as a tar on stdin).
    pub(super) context_dir: PathBuf,
    /// The Dockerfile's name in messages.
    pub(super) name: String,
    /// The Dockerfile's path (none when read from stdin).
    pub(super) path: Option<PathBuf>,
    /// Its decoded text.
    pub(super) text: String,
    /// The parsed Dockerfile.
    pub(super) dockerfile: kiln_parser::Dockerfile,
    /// Remote `--build-context` values (git or tarball URLs) and the
    /// directories they were fetched to.
    pub(super) fetched: std::collections::BTreeMap<String, PathBuf>,
}

impl Source {
    /// Reads the context (a directory, a tar on stdin unpacked under
    /// `staging`, or a git or tarball URL fetched there, as are remote
    /// `--build-context` values) and the Dockerfile (`-f FILE`, `-f -`, or the
    /// context's `Dockerfile`), and parses it.
    ///
    /// # Errors
    /// A context or Dockerfile that cannot be read, or a Dockerfile that
    /// does not parse (`NAME:LINE:COL: message`).
    pub(super) fn read(args: &BuildArgs, staging: &Path) -> Result<Source> {
        let context_dir = if args.context == "-" {
            let dir = staging.join("context");
            std::fs::create_dir_all(&dir)?;
            BuildContext::from_tar(std::io::stdin().lock(), &dir, None)
                .context("reading the context tar from stdin")?;
            dir
        } else if remote_context::is_remote(&args.context) {
            remote_context::fetch_main(args, staging)?
        } else {
            let dir = PathBuf::from(&args.context);
            if !dir.is_dir() {
                bail!("context {}: not a directory", dir.display());
            }
            dir
        };
        let fetched = remote_context::fetch_named(args, staging)?;
        let remote = args.context != "-" && remote_context::is_remote(&args.context);
        let (name, path, bytes) = match &args.file {
            Some(p) if p.as_os_str() == "-" => {
                if args.context == "-" {
                    bail!("-f - and a context on stdin cannot be used together");
                }
                let mut bytes = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut bytes)
                    .context("reading the Dockerfile from stdin")?;
                ("Dockerfile".to_string(), None, bytes)
            }
            Some(p) if remote => {
                // buildx: -f is relative to a remote context.
                let path = remote_context::dockerfile_in(&context_dir, p)?;
                let bytes = std::fs::read(&path).with_context(|| format!("-f {}", p.display()))?;
                (p.display().to_string(), Some(path), bytes)
            }
            Some(p) => {
                let bytes = std::fs::read(p).with_context(|| format!("-f {}", p.display()))?;
                (p.display().to_string(), Some(p.clone()), bytes)
            }
            None => {
                let p = context_dir.join("Dockerfile");
                let bytes =
                    std::fs::read(&p).with_context(|| format!("reading {}", p.display()))?;
                ("Dockerfile".to_string(), Some(p), bytes)
            }
        };
        let text = kiln_parser::decode(bytes).map_err(|e| anyhow::anyhow!("{name}:{e}"))?;
        if text.is_empty() {
            bail!("{name}:1:1: the Dockerfile cannot be empty");
        }
        let dockerfile = match kiln_parser::parse(&text) {
            Ok(d) => d,
            Err(e) => {
                let line = e.position.line;
                let message = e.kind.to_string();
                return Err(
                    Located::new(&name, &text, e.position, line..=line, &message, None).into(),
                );
            }
        };
        Ok(Source {
            context_dir,
            name,
            path,
            text,
            dockerfile,
            fetched,
        })
    }

    /// The lines the instruction that starts on `line` spans (with its
    /// continuation lines), else that line alone.
    pub(super) fn lines_at(&self, line: usize) -> std::ops::RangeInclusive<usize> {
        let d = &self.dockerfile;
        let span = d
            .global_args
            .iter()
            .chain(
                d.stages
                    .iter()
                    .flat_map(|s| std::iter::once(&s.from).chain(&s.commands)),
            )
            .map(|c| c.span)
            .find(|s| s.start.line == line);
        let Some(span) = span else {
            return line..=line;
        };
        let end = if span.end.column <= 1 && span.end.line > line {
            span.end.line - 1
        } else {
            span.end.line
        };
        line..=end.max(line)
    }

    /// The error `message` at the instruction on `line`, with the
    /// Dockerfile excerpt (and the failed step's output, if any).
    pub(super) fn located(
        &self,
        line: usize,
        message: &str,
        step: Option<StepOutput<'_>>,
    ) -> Located {
        Located::new(
            &self.name,
            &self.text,
            self.instruction_at(line),
            self.lines_at(line),
            message,
            step,
        )
    }

    /// The position of the instruction that starts on `line` (a step's
    /// errors know only its line), else the line's first column.
    pub(super) fn instruction_at(&self, line: usize) -> kiln_parser::Position {
        let d = &self.dockerfile;
        d.global_args
            .iter()
            .chain(
                d.stages
                    .iter()
                    .flat_map(|s| std::iter::once(&s.from).chain(&s.commands)),
            )
            .map(|c| c.span.start)
            .find(|p| p.line == line)
            .unwrap_or(kiln_parser::Position::new(line, 1))
    }
}

/// Lowers the Dockerfile once per platform; a multi-platform build names
/// its steps with their platform, as buildx shows them.
///
/// # Errors
/// The first lowering error, at `NAME:LINE:COL` when it has a position.
pub(super) fn lower(
    source: &Source,
    request: &BuildRequest,
    resolver: &StoreResolver<'_>,
) -> Result<Vec<Lowered>> {
    lower_with(source, request, resolver, &mut |_, _| Ok(()))
}

/// [`lower`], with `adjust` changing each platform's options (by the
/// platform's index) first: `kiln bake` adds its `target:` contexts.
///
/// # Errors
/// What `adjust` returns, or the first lowering error.
pub(super) fn lower_with(
    source: &Source,
    request: &BuildRequest,
    resolver: &StoreResolver<'_>,
    adjust: &mut dyn FnMut(usize, &mut BuildOptions) -> Result<()>,
) -> Result<Vec<Lowered>> {
    let mut lowered_all = Vec::new();
    for (i, p) in request.platforms.iter().enumerate() {
        let mut options = BuildOptions {
            platform: p.clone(),
            ..request.options.clone()
        };
        adjust(i, &mut options)?;
        let mut lowered =
            kiln_solver::lower(&source.dockerfile, &options, resolver, &source.context_dir)
                .map_err(|e| match e.position() {
                    Some(at) => anyhow::Error::new(Located::new(
                        &source.name,
                        &source.text,
                        at,
                        source.lines_at(at.line),
                        &e.message(),
                        None,
                    )),
                    None => anyhow::anyhow!("{e}"),
                })?;
        if request.multi_platform() {
            lowered.graph.prefix_names(&p.short_string());
        }
        lowered_all.push(lowered);
    }
    Ok(lowered_all)
}

/// The state of each vertex in the last build (cached, built, failed),
/// which `--print dag` colours nodes by: from the newest build record
/// (`kiln builds`); none when there is no record.
pub(super) fn last_build_states(store: &kiln_oci::LocalStore) -> HashMap<Digest, VertexState> {
    kiln_solver::builds::last_build_states(store)
}

/// `--print`: writes the (first platform's) graph to stdout, its nodes
/// filled by `states` (see [`last_build_states`]); `dag=svg` and
/// `dag=png` draw it through Graphviz's `dot`.
///
/// # Errors
/// Writing to stdout, or `dot` missing or failing.
pub(super) fn print(
    lowered: &Lowered,
    format: PrintFormat,
    states: &HashMap<Digest, VertexState>,
) -> Result<()> {
    let dot = || lowered.graph.to_dot(&[lowered.root], states);
    let mut out = std::io::stdout().lock();
    match format {
        PrintFormat::Dag => write!(out, "{}", dot())?,
        PrintFormat::DagSvg => render(&dot(), "svg")?,
        PrintFormat::DagPng => render(&dot(), "png")?,
        PrintFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &lowered.graph.to_json(&[lowered.root]))?;
            writeln!(out)?;
        }
    }
    Ok(())
}

/// Pipes `dot` (DOT text) through Graphviz's `dot -T<format>` to stdout.
fn render(dot: &str, format: &str) -> Result<()> {
    let flag = format!("--print dag={format}");
    let mut child = match std::process::Command::new("dot")
        .arg(format!("-T{format}"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{flag}: Graphviz's `dot` is not installed (not found on PATH); install graphviz, or use --print dag and render the DOT elsewhere"
        ),
        Err(e) => return Err(e).with_context(|| format!("{flag}: running Graphviz's `dot`")),
    };
    let written = match child.stdin.take() {
        Some(mut stdin) => stdin.write_all(dot.as_bytes()),
        None => Ok(()),
    };
    let status = child
        .wait()
        .with_context(|| format!("{flag}: waiting for Graphviz's `dot`"))?;
    // Killed by SIGPIPE: whoever read stdout stopped (`| head`), as
    // with kiln's own output that is no error.
    if std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGPIPE) {
        return Ok(());
    }
    if !status.success() {
        bail!("{flag}: Graphviz's `dot` failed ({status})");
    }
    written.with_context(|| format!("{flag}: writing the graph to Graphviz's `dot`"))?;
    Ok(())
}

/// What the build checks decided.
pub(super) enum Checked {
    /// Build; these findings are listed at the end.
    Build(Vec<Diagnostic>),
    /// `--check` / `--call check`: the report was printed and nothing
    /// was found.
    Done,
}

/// Runs BuildKit's build checks on the Dockerfile, knowing the base
/// images `resolver` resolved while lowering. With `--check` prints the
/// report instead of building.
///
/// # Errors
/// With `--check`, anything found; else a check the Dockerfile makes an
/// error (`# check=error=true`).
pub(super) fn check(
    source: &Source,
    request: &BuildRequest,
    resolver: &StoreResolver<'_>,
) -> Result<Checked> {
    let name = &source.name;
    let found = checks::run(
        name,
        &source.text,
        &checks::through_contexts(&resolver.resolved.borrow(), &request.options.named_contexts),
        &request.options.platform,
        &request.options.build_args,
    );
    if let Call::Check { json } = request.call {
        if json {
            let report = checks::report_json(&found, name, &source.text);
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", checks::report(&found, &source.text));
        }
        if !found.is_empty() {
            bail!(
                "{name}: {} build check{} found something",
                found.len(),
                if found.len() == 1 { "" } else { "s" }
            );
        }
        return Ok(Checked::Done);
    }
    if checks::has_errors(&found) {
        bail!(
            "{name}: lint violation found for rules: {}\n{}",
            checks::rule_names(&found),
            checks::summary(&found).join("\n")
        );
    }
    Ok(Checked::Build(found))
}

/// Lists what the build checks found at the end of a build: the summary
/// lines, or a note per finding when the progress mode prints no
/// summary.
pub(super) fn list_found(found: &[Diagnostic], source: &Source, reporter: &Reporter) {
    if found.is_empty() {
        return;
    }
    if reporter.prints_summary() {
        for line in checks::summary(found) {
            crate::progress::eprint_line(&line);
        }
    } else {
        for d in found {
            reporter.event(kiln_solver::Event::Note {
                name: format!("[lint] {}", source.name),
                message: format!("{}: {} (line {})", d.code, d.message, d.line),
            });
        }
    }
}
