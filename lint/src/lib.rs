//! kiln's Dockerfile linter: hadolint's DL rules and BuildKit's build checks
//! in one pass over [`kiln_parser`]'s syntax tree.
//!
//! * [`lint`] / [`lint_file`] take Dockerfile text and a [`Config`] and
//!   return [`Diagnostic`]s: hadolint's codes, default severities and
//!   messages (`DL3008`), BuildKit's checks under BuildKit's names
//!   (`StageNameCasing`), and `DL1000` with a line and column when the file
//!   does not parse.
//! * Every rule implements [`Rule`]; [`rules`] lists them in evaluation
//!   order. Rules that look inside RUN use [`run_script::Script`], a small
//!   POSIX/bash command parser.
//! * Pragmas are honoured as hadolint does: `# hadolint ignore=DL3008` (next
//!   instruction), `# hadolint global ignore=...`, `# hadolint stage
//!   ignore=...`, and BuildKit's `# check=skip=...;error=true` directive.
//! * [`Config`] holds what hadolint's `.hadolint.yaml` ([`Config::merge_yaml`])
//!   and `HADOLINT_*` variables ([`Config::merge_env`]) say; a
//!   [`ShellCheck`] in it adds ShellCheck's SC findings per RUN (see
//!   [`try_lint_file`] for its errors; [`try_lint_files`] lints many files
//!   with one bulk ShellCheck run over all cores), a [`DockerIgnore`] turns on
//!   BuildKit's CopyIgnoredFile, and [`BaseImages`] (the images
//!   [`base_refs`] lists, resolved by the caller) make UndefinedVar exact
//!   and turn on InvalidBaseImagePlatform.
//! * [`Format`] writes a report (tty, json, sarif, checkstyle, gnu,
//!   codeclimate, gitlab_codeclimate, codacy, sonarqube, junit) to any
//!   `impl Write`; the crate itself never prints. [`is_failure`] gives
//!   hadolint's exit status rule and [`explain`] what a rule checks.
//!   [`check_report`] prints BuildKit's build-check reports (`kiln build`'s
//!   summary, `--check` and its JSON).
//!
//! ```
//! use kiln_lint::{lint_file, Config, Severity};
//!
//! let found = lint_file("Dockerfile", "FROM debian\nRUN apt-get install -y curl\n", &Config::default());
//! let codes: Vec<&str> = found.iter().map(|d| d.code.as_str()).collect();
//! assert_eq!(codes, ["DL3006", "DL3008", "DL3015"]);
//! assert_eq!(found[0].severity, Severity::Warning);
//! assert_eq!(found[1].line, 2);
//! ```
#![deny(missing_docs)]

mod base_image;
mod config;
mod config_file;
mod context;
mod diagnostic;
mod dockerignore;
mod explain;
mod format;
mod pragma;
mod rule;
mod rules;
pub mod run_script;
mod run_text;
mod shellcheck;
mod stages;

pub use base_image::{base_refs, BaseImage, BaseImages, BaseRef};
pub use config::Config;
pub use config_file::{config_candidates, ConfigError};
pub use context::{Context, Item};
pub use diagnostic::{Diagnostic, Diagnostics, Severity, UnknownSeverity};
pub use dockerignore::DockerIgnore;
pub use explain::explain;
pub use format::{check_report, help_uri, Format, UnknownFormat};
pub use pragma::{parse_pragma, Pragma, Pragmas};
pub use rule::{Origin, Rule};
pub use rules::{find_rule, rules};
pub use run_text::run_text;
pub use shellcheck::{
    run_scripts, Comment, RunScript, ShellCheck, ShellCheckError, DEFAULT_TIMEOUT, MAX_BATCH_BYTES,
    MAX_BATCH_SCRIPTS,
};

/// The code of the pseudo-rule for files that do not parse.
pub const PARSE_ERROR: &str = "DL1000";

/// Lints Dockerfile text; findings carry an empty file name.
pub fn lint(source: &str, config: &Config) -> Vec<Diagnostic> {
    lint_file("", source, config)
}

/// Lints Dockerfile text read from `file` (`-` for standard input), which
/// is copied into every finding.
///
/// A file that does not parse gives one `DL1000` error at the parser's line
/// and column, and no other finding. When [`Config::shellcheck`] is set and
/// ShellCheck fails to run, its findings are left out; use
/// [`try_lint_file`] to see that error.
pub fn lint_file(file: &str, source: &str, config: &Config) -> Vec<Diagnostic> {
    match try_lint_file(file, source, config) {
        Ok(found) => found,
        Err((found, _)) => found,
    }
}

/// Like [`lint_file`], but reports a ShellCheck failure.
///
/// # Errors
/// When ShellCheck was asked for and could not run: the findings of the
/// other rules, and the [`ShellCheckError`].
#[allow(clippy::result_large_err)]
pub fn try_lint_file(
    file: &str,
    source: &str,
    config: &Config,
) -> Result<Vec<Diagnostic>, (Vec<Diagnostic>, ShellCheckError)> {
    let (mut found, failure) = try_lint_files(&[Input {
        file,
        source,
        config,
    }]);
    let found = found.pop().unwrap_or_default();
    match failure {
        None => Ok(found),
        Some(e) => Err((found, e)),
    }
}

/// One Dockerfile for [`try_lint_files`].
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// The name copied into its findings (`-` for standard input).
    pub file: &'a str,
    /// Its text.
    pub source: &'a str,
    /// How to lint it.
    pub config: &'a Config,
}

/// Lints many files, each as [`lint_file`] would, with one ShellCheck run
/// for the RUNs of all of them ([`ShellCheck::check_scripts`]: batches of
/// scripts over all cores).
///
/// Returns the findings of each input, in order, and the first ShellCheck
/// failure, if any; then the SC findings of the files it concerns are left
/// out and the other rules' findings are still there.
pub fn try_lint_files(inputs: &[Input<'_>]) -> (Vec<Vec<Diagnostic>>, Option<ShellCheckError>) {
    let mut pending: Vec<Result<Pending, Vec<Diagnostic>>> = inputs
        .iter()
        .map(|i| prepare(i.file, i.source, i.config))
        .collect();
    // The scripts of every file, checked together per ShellCheck program.
    let mut failure = None;
    let mut programs: Vec<&ShellCheck> = Vec::new();
    for p in pending.iter().flatten() {
        if let Some(sc) = &p.shellcheck {
            if !programs.contains(&sc) {
                programs.push(sc);
            }
        }
    }
    // Per file: ShellCheck's verdict on each of its scripts, none when it
    // was not run or failed.
    let mut verdicts: Vec<Option<Vec<Option<shellcheck::Comment>>>> =
        (0..pending.len()).map(|_| None).collect();
    for sc in programs {
        let users: Vec<usize> = pending
            .iter()
            .enumerate()
            .filter(|(_, p)| p.as_ref().is_ok_and(|p| p.shellcheck.as_ref() == Some(sc)))
            .map(|(i, _)| i)
            .collect();
        let texts: Vec<&str> = users
            .iter()
            .filter_map(|&i| pending[i].as_ref().ok())
            .flat_map(|p| p.scripts.iter().map(|s| s.script.as_str()))
            .collect();
        match sc.check_scripts(&texts) {
            Ok(comments) => {
                let mut comments = comments.into_iter();
                for &i in &users {
                    let n = pending[i].as_ref().map_or(0, |p| p.scripts.len());
                    verdicts[i] = Some(comments.by_ref().take(n).collect());
                }
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    let found = pending
        .drain(..)
        .zip(verdicts)
        .map(|(p, verdict)| match p {
            Ok(p) => p.finish(verdict),
            Err(done) => done,
        })
        .collect();
    (found, failure)
}

/// Parses a file and runs the rules: its findings when it does not parse
/// (DL1000), else what ShellCheck's findings are still to join.
fn prepare<'a>(
    file: &'a str,
    source: &str,
    config: &'a Config,
) -> Result<Pending<'a>, Vec<Diagnostic>> {
    let (dockerfile, recovered) = match kiln_parser::parse(source) {
        Ok(df) => (df, Vec::new()),
        Err(err) => {
            // A file fixed up by `recover` that still fails reports the
            // later error, which is the real one.
            let err = match recover(source) {
                Some(Ok(recovered)) => return Ok(Pending::new(file, source, recovered, config)),
                Some(Err(later)) => later,
                None => err,
            };
            if config.is_ignored(PARSE_ERROR) {
                return Err(Vec::new());
            }
            return Err(vec![Diagnostic {
                code: PARSE_ERROR.to_string(),
                severity: config.severity_of(PARSE_ERROR, Severity::Error),
                line: err.position.line,
                column: err.position.column,
                message: err.kind.to_string(),
                file: file.to_string(),
            }]);
        }
    };
    Ok(Pending::new(file, source, (dockerfile, recovered), config))
}

/// A parsed file whose rules have run, waiting for ShellCheck's verdicts.
struct Pending<'a> {
    file: &'a str,
    config: &'a Config,
    found: Vec<Diagnostic>,
    pragmas: Pragmas,
    from_lines: Vec<usize>,
    /// The program to run on `scripts`, when asked for.
    shellcheck: Option<ShellCheck>,
    scripts: Vec<RunScript>,
}

impl<'a> Pending<'a> {
    /// Runs the rules on a parsed file.
    fn new(
        file: &'a str,
        source: &str,
        (dockerfile, recovered): (kiln_parser::Dockerfile, Vec<(&'static str, usize)>),
        config: &'a Config,
    ) -> Self {
        let cx = Context::new(&dockerfile, source, config);
        let pragmas = Pragmas::read_with(&dockerfile, config.check_directive.as_deref());
        let from_lines = cx.from_lines();
        let mut out = Diagnostics::new();
        for rule in rules() {
            if config.only.is_some_and(|o| o != rule.origin()) {
                continue;
            }
            let code = rule.code();
            let buildkit = rule.origin() == Origin::BuildKit;
            let default = if buildkit
                && rule.severity() == Severity::Ignore
                && pragmas.enables_experimental(code)
            {
                Severity::Warning
            } else {
                rule.severity()
            };
            let severity = config.severity_of(code, default);
            if severity == Severity::Ignore || config.is_ignored(code) {
                continue;
            }
            if pragmas.skips_check(code, buildkit) {
                continue;
            }
            let severity = if buildkit && pragmas.check_error {
                Severity::Error
            } else {
                severity
            };
            out.begin(code, severity, rule.message());
            rule.check(&cx, &mut out);
        }
        for (code, line) in recovered {
            if let Some(rule) =
                find_rule(code).filter(|r| config.only.is_none_or(|o| o == r.origin()))
            {
                let severity = config.severity_of(code, rule.severity());
                if severity != Severity::Ignore && !config.is_ignored(code) {
                    out.begin(code, severity, rule.message());
                    out.at(line);
                }
            }
        }
        // ShellCheck's findings come with hadolint's.
        let shellcheck = config
            .shellcheck
            .clone()
            .filter(|_| config.only.is_none_or(|o| o == Origin::Hadolint));
        let scripts = if shellcheck.is_some() {
            run_scripts(&dockerfile, source)
        } else {
            Vec::new()
        };
        Pending {
            file,
            config,
            found: out.into_vec(),
            pragmas,
            from_lines,
            shellcheck,
            scripts,
        }
    }

    /// Adds ShellCheck's verdict on each script (none when it failed) and
    /// applies the pragmas.
    fn finish(self, verdicts: Option<Vec<Option<shellcheck::Comment>>>) -> Vec<Diagnostic> {
        let Pending {
            file,
            config,
            mut found,
            pragmas,
            from_lines,
            scripts,
            ..
        } = self;
        for (script, comment) in scripts.iter().zip(verdicts.unwrap_or_default()) {
            let Some(mut d) = comment.map(|c| c.at(file, script.line)) else {
                continue;
            };
            d.severity = config.severity_of(&d.code, d.severity);
            if d.severity != Severity::Ignore && !config.is_ignored(&d.code) {
                found.push(d);
            }
        }
        let mut found: Vec<Diagnostic> = found
            .into_iter()
            .filter(|d| {
                config.disable_ignore_pragma || !pragmas.ignores(&d.code, d.line, &from_lines)
            })
            .filter(|d| !pragmas.skips_check_at(&d.code, d.line))
            .map(|mut d| {
                d.file = file.to_string();
                d
            })
            .collect();
        found.sort_by_key(|d| d.line);
        found
    }
}

/// Files BuildKit rejects but hadolint lints: instructions before the
/// first FROM (DL3061) and ONBUILD triggers ONBUILD may not run (DL3043).
/// Those instructions are blanked out, the rest is parsed again, and the
/// findings are returned with the Dockerfile.
#[allow(clippy::type_complexity)]
fn recover(
    source: &str,
) -> Option<Result<(kiln_parser::Dockerfile, Vec<(&'static str, usize)>), kiln_parser::ParseError>>
{
    let raw = kiln_parser::raw::parse_raw(source).ok()?;
    let mut found = Vec::new();
    let mut blank: Vec<(usize, usize)> = Vec::new();
    let mut seen_from = false;
    for node in &raw.nodes {
        let command = node.command();
        let span = node.span;
        let last = if span.end.column > 1 || span.end.line == span.start.line {
            span.end.line
        } else {
            span.end.line - 1
        };
        if command == "from" {
            seen_from = true;
        } else if !seen_from && command != "arg" {
            found.push(("DL3061", span.start.line));
            blank.push((span.start.line, last));
        }
        if command == "onbuild"
            && node
                .nested
                .as_ref()
                .is_some_and(|n| matches!(n.command().as_str(), "onbuild" | "from" | "maintainer"))
        {
            found.push(("DL3043", span.start.line));
            blank.push((span.start.line, last));
        }
    }
    if found.is_empty() {
        return None;
    }
    let text: String = source
        .split_inclusive('\n')
        .enumerate()
        .map(|(i, line)| {
            if blank.iter().any(|(a, b)| (*a..=*b).contains(&(i + 1))) {
                if line.ends_with("\r\n") {
                    "\r\n"
                } else if line.ends_with('\n') {
                    "\n"
                } else {
                    ""
                }
            } else {
                line
            }
        })
        .collect();
    Some(kiln_parser::parse(&text).map(|dockerfile| (dockerfile, found)))
}

/// True when the findings should make the run fail: a parse error, or any
/// finding at the failure threshold or more serious, unless `no_fail`.
pub fn is_failure(found: &[Diagnostic], config: &Config) -> bool {
    !config.no_fail
        && found.iter().any(|d| {
            d.code == PARSE_ERROR
                || (d.severity != Severity::Ignore && d.severity <= config.failure_threshold)
        })
}
