//! ShellCheck on every RUN, as hadolint does, through an installed
//! `shellcheck` binary (hadolint links ShellCheck 0.11 in; kiln runs it).
//!
//! Each shell-form RUN becomes a script: `#!<shell>`, one `export V=1` per
//! ARG/ENV known at that point (plus the proxy variables), then the RUN
//! text (heredoc bodies included). A comment is reported at its RUN's
//! line, column 1, as `SC<code>`: only the last one of each RUN, as
//! hadolint 2.15.1 keeps one per line. RUNs are skipped when the shell is
//! PowerShell or cmd (SHELL or `# hadolint shell=`), in exec form, or when
//! the text starts with a `#!` other than sh/bash/ksh.
//!
//! The scripts of all the files linted together are checked in bulk
//! ([`ShellCheck::check_scripts`]): identical scripts once, the rest in
//! batches of at most [`MAX_BATCH_SCRIPTS`] scripts (and
//! [`MAX_BATCH_BYTES`]), one `shellcheck -f json1` process per batch, as
//! many processes at a time as there are cores. Scripts are written to
//! private files (0600 in a 0700 directory); json1 names the file of each
//! comment, which maps it back to its script. With
//! [`ShellCheck::with_cache_dir`], verdicts are remembered between runs
//! (keyed by the program, its arguments and the script), so only new
//! scripts are checked.

use crate::diagnostic::{Diagnostic, Severity};
use crate::pragma::Pragmas;
use kiln_parser::instruction::CommandLine;
use kiln_parser::{Dockerfile, Instruction};
use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::Duration;

mod cache;
use cache::VerdictCache;

/// The most scripts given to one `shellcheck` process.
pub const MAX_BATCH_SCRIPTS: usize = 64;
/// The most script bytes given to one `shellcheck` process (a larger
/// script goes alone).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How long one `shellcheck` process may run before it is killed, unless
/// [`ShellCheck::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// The arguments every `shellcheck` process gets before the script files.
const ARGS: [&str; 6] = ["-f", "json1", "-S", "style", "-e", "2187,1090,1091"];
/// The most output read from one `shellcheck` process (stdout, stderr).
const MAX_OUTPUT: u64 = 64 << 20;

/// Why ShellCheck could not be run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShellCheckError {
    /// Writing the scripts to a temporary directory failed.
    #[error("writing scripts for shellcheck: {0}")]
    Scripts(#[source] std::io::Error),
    /// The program could not be started.
    #[error("running {program}: {source}")]
    Spawn {
        /// The program.
        program: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Its output was not ShellCheck's json1.
    #[error("reading {program}'s output: {message}")]
    Output {
        /// The program.
        program: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// It crashed or exited with a status other than 0 or 1.
    #[error("{program} failed ({status}) on {scripts} scripts: {stderr}")]
    Failed {
        /// The program.
        program: PathBuf,
        /// How it ended.
        status: ExitStatus,
        /// How many scripts it was given.
        scripts: usize,
        /// The first line of its standard error.
        stderr: String,
    },
    /// It ran longer than its deadline and was killed.
    #[error("{program} ran longer than {seconds:.1} s on {scripts} scripts and was killed")]
    Timeout {
        /// The program.
        program: PathBuf,
        /// The deadline.
        seconds: f64,
        /// How many scripts it was given.
        scripts: usize,
    },
}

/// ShellCheck's verdict on one script: its last comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// The SC number (`2086`).
    pub code: u64,
    /// Its level.
    pub severity: Severity,
    /// Its message.
    pub message: String,
}

impl Comment {
    /// The finding at a RUN's `line` of `file`.
    pub fn at(&self, file: &str, line: usize) -> Diagnostic {
        Diagnostic {
            code: format!("SC{}", self.code),
            severity: self.severity,
            line,
            column: 1,
            message: self.message.clone(),
            file: file.to_string(),
        }
    }
}

/// An installed `shellcheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCheck {
    program: PathBuf,
    timeout: Duration,
    cache_dir: Option<PathBuf>,
}

/// One script handed to ShellCheck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunScript {
    /// The RUN's first line (where findings go).
    pub line: usize,
    /// The whole script (shebang, exports, RUN text).
    pub script: String,
}

fn is_non_posix(shell: &str) -> bool {
    ["pwsh", "powershell", "cmd"]
        .iter()
        .any(|s| shell.contains(s))
}

fn allowed_shebang(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("#!") else {
        return true;
    };
    let first = rest.lines().next().unwrap_or_default().trim();
    [
        "/bin/sh",
        "/bin/bash",
        "/bin/ksh",
        "/usr/bin/env sh",
        "/usr/bin/env bash",
        "/usr/bin/env ksh",
    ]
    .contains(&first)
}

/// Shell variables whose value changes how the shell itself splits,
/// expands or starts: always exported when set, named in the RUN or not.
const SHELL_VARIABLES: [&str; 8] = [
    "IFS",
    "CDPATH",
    "GLOBIGNORE",
    "POSIXLY_CORRECT",
    "BASHOPTS",
    "SHELLOPTS",
    "BASH_ENV",
    "ENV",
];

/// Whether the script of `run_text` needs `export name=1`: hadolint
/// exports every ARG and ENV known at the RUN, but an exported variable the
/// text never names cannot change ShellCheck's verdict on it (it only
/// tells ShellCheck the variable is set), and those exports were about
/// 60% of ShellCheck's time on the corpus. Kept: names that are not plain
/// identifiers (ShellCheck comments on the export line itself),
/// [`SHELL_VARIABLES`], all of them when the text lists variables by
/// prefix (`${!prefix*}`), names the text contains anywhere, and names
/// within two edits of a word of the text (SC2153, "Possible misspelling:
/// X may not be assigned. Did you mean Y?", looks for such a Y among the
/// variables set).
fn needs_export(name: &str, words: &BTreeSet<String>, run_text: &str) -> bool {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !plain
        || SHELL_VARIABLES.contains(&name)
        || run_text.contains("${!")
        || run_text.contains(name)
    {
        return true;
    }
    let name = name.to_ascii_lowercase();
    words
        .iter()
        .any(|w| w.len().abs_diff(name.len()) <= 2 && strsim::levenshtein(w, &name) <= 2)
}

/// The identifier-like words of `text`, lowercased.
fn words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// The scripts kiln gives ShellCheck for this file: hadolint's, but for
/// the exports of variables the RUN text never names (see
/// `needs_export`), which give the same verdicts.
pub fn run_scripts(dockerfile: &Dockerfile, source: &str) -> Vec<RunScript> {
    scripts(dockerfile, source, true)
}

/// The scripts of the RUNs, as hadolint builds them (`prune` false) or
/// without the exports ShellCheck's verdict cannot depend on.
fn scripts(dockerfile: &Dockerfile, source: &str, prune: bool) -> Vec<RunScript> {
    let source_lines: Vec<&str> = source.lines().collect();
    let pragmas = Pragmas::read(dockerfile);
    let first_from = dockerfile
        .stages
        .first()
        .map(|s| s.from.span.start.line)
        .unwrap_or(usize::MAX);
    let default_shell = pragmas
        .shell
        .iter()
        .rfind(|(l, _)| *l < first_from)
        .map(|(_, s)| s.clone())
        .unwrap_or_else(|| "/bin/sh -c".to_string());
    // A stage built on an image starts afresh: global ARGs are not
    // exported (hadolint resets its state at FROM).
    let global: BTreeSet<String> = kiln_parser::predefined::CLASSIC_PROXY_ARGS
        .iter()
        .map(|s| s.to_string())
        .collect();
    // (shell, vars) at the end of each stage, for `FROM <alias>`.
    let mut finals: Vec<(String, BTreeSet<String>)> = Vec::new();
    let mut out = Vec::new();
    let parents = crate::stages::parents(dockerfile);
    for (stage, parent) in dockerfile.stages.iter().zip(parents) {
        let (mut shell, mut vars) = match parent.and_then(|p| finals.get(p)) {
            Some((s, v)) => (s.clone(), v.clone()),
            None => (default_shell.clone(), global.clone()),
        };
        let mut pragma_shells = pragmas
            .shell
            .iter()
            .filter(|(l, _)| *l > stage.from.span.start.line)
            .peekable();
        // ONBUILD triggers have their own state, as hadolint checks them
        // with a separate instance of the rule that sees only triggers.
        let mut ob_shell = default_shell.clone();
        let mut ob_vars = global.clone();
        for command in &stage.commands {
            let line = command.span.start.line;
            while let Some((_, s)) = pragma_shells.next_if(|(l, _)| *l < line) {
                shell = s.clone();
            }
            let (instruction, onbuild) = match &command.instruction {
                Instruction::Onbuild(ob) => (&ob.trigger.instruction, true),
                other => (other, false),
            };
            let (shell, vars) = if onbuild {
                (&mut ob_shell, &mut ob_vars)
            } else {
                (&mut shell, &mut vars)
            };
            match instruction {
                Instruction::Shell(words) => *shell = words.join(" "),
                Instruction::Arg(args) => vars.extend(args.iter().map(|a| a.name.clone())),
                Instruction::Env(env) => vars.extend(env.pairs.iter().map(|p| p.key.clone())),
                Instruction::Run(run) => {
                    let CommandLine::Shell(text) = &run.command else {
                        continue;
                    };
                    if is_non_posix(shell) {
                        continue;
                    }
                    let text = if !onbuild && run.heredocs.is_empty() && dockerfile.escape == '\\' {
                        crate::run_text::raw_text(&source_lines, command, dockerfile.escape)
                            .unwrap_or_else(|| text.clone())
                    } else {
                        text.clone()
                    };
                    let mut body = text.clone();
                    for h in &run.heredocs {
                        body.push('\n');
                        body.push_str(&h.content);
                        body.push_str(&h.name);
                    }
                    let run_text = if text.trim_start().starts_with("<<") {
                        run.heredocs
                            .iter()
                            .map(|h| h.chomped_content())
                            .collect::<String>()
                    } else {
                        body
                    };
                    if !allowed_shebang(&run_text) {
                        continue;
                    }
                    let interpreter = shell.split_whitespace().next().unwrap_or("/bin/sh");
                    let mut script = format!("#!{interpreter}\n");
                    let words = if prune {
                        words(&run_text)
                    } else {
                        BTreeSet::new()
                    };
                    for v in vars
                        .iter()
                        .filter(|v| !prune || needs_export(v, &words, &run_text))
                    {
                        script.push_str(&format!("export {v}=1\n"));
                    }
                    script.push_str(&run_text);
                    script.push('\n');
                    out.push(RunScript { line, script });
                }
                _ => {}
            }
        }
        finals.push((shell, vars));
    }
    out
}

impl ShellCheck {
    /// Uses `program` as the shellcheck binary.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        ShellCheck {
            program: program.into(),
            timeout: DEFAULT_TIMEOUT,
            cache_dir: None,
        }
    }

    /// Remembers verdicts in `dir` between runs (see the `cache` module):
    /// a script this program already checked with kiln's arguments is
    /// not checked again.
    pub fn with_cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Kills a `shellcheck` process that runs longer than `timeout`
    /// (default [`DEFAULT_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Finds `shellcheck` on `PATH`.
    pub fn find() -> Option<Self> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .map(|dir| dir.join("shellcheck"))
            .find(|p| p.is_file())
            .map(ShellCheck::new)
    }

    /// The program run.
    pub fn program(&self) -> &Path {
        &self.program
    }

    /// Runs ShellCheck on the RUNs of `dockerfile` (parsed from `source`);
    /// findings carry `file`.
    ///
    /// # Errors
    /// A [`ShellCheckError`] when the scripts cannot be written, the
    /// program cannot be started, crashes, times out, or its output is not
    /// json1.
    pub fn check(
        &self,
        dockerfile: &Dockerfile,
        source: &str,
        file: &str,
    ) -> Result<Vec<Diagnostic>, ShellCheckError> {
        let scripts = run_scripts(dockerfile, source);
        let texts: Vec<&str> = scripts.iter().map(|s| s.script.as_str()).collect();
        let comments = self.check_scripts(&texts)?;
        Ok(scripts
            .iter()
            .zip(comments)
            .filter_map(|(s, c)| c.map(|c| c.at(file, s.line)))
            .collect())
    }

    /// Runs ShellCheck on many scripts at once and gives, for each, its
    /// last comment (hadolint keeps one per RUN: its findings are a set
    /// ordered by line only, so a later comment replaces an earlier one).
    ///
    /// Identical scripts are checked once; the others go in batches of at
    /// most [`MAX_BATCH_SCRIPTS`] scripts and [`MAX_BATCH_BYTES`], one
    /// process per batch, as many at a time as there are cores.
    ///
    /// # Errors
    /// The first batch's [`ShellCheckError`] when one fails (the batches
    /// not yet started are then not run).
    pub fn check_scripts(&self, scripts: &[&str]) -> Result<Vec<Option<Comment>>, ShellCheckError> {
        let mut unique: Vec<&str> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        let slots: Vec<usize> = scripts
            .iter()
            .map(|s| {
                *seen.entry(s).or_insert_with(|| {
                    unique.push(s);
                    unique.len() - 1
                })
            })
            .collect();
        let mut cache = self
            .cache_dir
            .as_deref()
            .and_then(|dir| VerdictCache::load(dir, &self.program, &ARGS));
        let mut verdicts: Vec<Option<Option<Comment>>> = unique
            .iter()
            .map(|s| cache.as_ref().and_then(|c| c.get(s)))
            .collect();
        let todo: Vec<&str> = unique
            .iter()
            .zip(&verdicts)
            .filter(|(_, v)| v.is_none())
            .map(|(s, _)| *s)
            .collect();
        let mut fresh = self.check_unique(&todo)?.into_iter();
        for (script, verdict) in unique.iter().zip(verdicts.iter_mut()) {
            if verdict.is_none() {
                let found = fresh.next().flatten();
                if let Some(c) = cache.as_mut() {
                    c.put(script, found.clone());
                }
                *verdict = Some(found);
            }
        }
        if let Some(c) = cache {
            c.save(&unique);
        }
        Ok(slots
            .into_iter()
            .map(|i| verdicts[i].clone().flatten())
            .collect())
    }

    /// Checks distinct scripts in batches: the last comment on each.
    fn check_unique(&self, unique: &[&str]) -> Result<Vec<Option<Comment>>, ShellCheckError> {
        if unique.is_empty() {
            return Ok(Vec::new());
        }
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        let batches = plan_batches(unique, workers);
        let dir = tempfile::Builder::new()
            .prefix("kiln-shellcheck-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(ShellCheckError::Scripts)?;
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let results: Mutex<Vec<Option<BatchResult>>> =
            Mutex::new((0..batches.len()).map(|_| None).collect());
        std::thread::scope(|scope| {
            for _ in 0..workers.min(batches.len()) {
                scope.spawn(|| loop {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    let Some(range) = batches.get(b) else {
                        break;
                    };
                    let result = self.run_batch(dir.path(), range.clone(), &unique[range.clone()]);
                    if result.is_err() {
                        stop.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut r) = results.lock() {
                        r[b] = Some(result);
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut comments = Vec::with_capacity(unique.len());
        for result in results {
            match result {
                Some(Ok(found)) => comments.extend(found),
                Some(Err(e)) => return Err(e),
                // Not run: an earlier-started batch failed.
                None => {}
            }
        }
        if comments.len() != unique.len() {
            // Only when a batch failed, whose error came first above.
            return Err(ShellCheckError::Output {
                program: self.program.clone(),
                message: "a batch of scripts was not checked".into(),
            });
        }
        Ok(comments)
    }

    /// Checks `scripts` (numbered from `range.start`) in one process.
    fn run_batch(&self, dir: &Path, range: Range<usize>, scripts: &[&str]) -> BatchResult {
        let paths: Vec<PathBuf> = range.map(|i| dir.join(format!("{i}.sh"))).collect();
        let written = paths
            .iter()
            .zip(scripts)
            .try_for_each(|(path, script)| write_private(path, script));
        let output = written
            .map_err(ShellCheckError::Scripts)
            .and_then(|()| self.run(&paths));
        for path in &paths {
            let _ = std::fs::remove_file(path);
        }
        let (status, stdout, stderr) = output?;
        let stderr_line = || {
            String::from_utf8_lossy(&stderr)
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("no message")
                .trim()
                .to_string()
        };
        // 0: no comments, 1: comments; anything else (a signal, 2 for
        // files it could not read, 3 and 4 for bad usage) is a failure.
        if !matches!(status.code(), Some(0 | 1)) {
            return Err(ShellCheckError::Failed {
                program: self.program.clone(),
                status,
                scripts: scripts.len(),
                stderr: stderr_line(),
            });
        }
        let bad = |message: String| ShellCheckError::Output {
            program: self.program.clone(),
            message,
        };
        let value: serde_json::Value = serde_json::from_slice(&stdout)
            .map_err(|e| bad(format!("{e}; stderr: {}", stderr_line())))?;
        let comments = value["comments"]
            .as_array()
            .ok_or_else(|| bad("no \"comments\" array".into()))?;
        let index: HashMap<&std::ffi::OsStr, usize> = paths
            .iter()
            .enumerate()
            .map(|(i, p)| (p.as_os_str(), i))
            .collect();
        let mut last: Vec<Option<Comment>> = vec![None; scripts.len()];
        // ShellCheck lists each file's comments by position; the last
        // one stays.
        for c in comments {
            let Some(path) = c["file"].as_str() else {
                continue;
            };
            let Some(&i) = index.get(std::ffi::OsStr::new(path)) else {
                continue;
            };
            let severity = match c["level"].as_str() {
                Some("error") => Severity::Error,
                Some("warning") => Severity::Warning,
                Some("info") => Severity::Info,
                _ => Severity::Style,
            };
            last[i] = Some(Comment {
                code: c["code"].as_u64().unwrap_or(0),
                severity,
                message: c["message"].as_str().unwrap_or_default().to_string(),
            });
        }
        Ok(last)
    }

    /// Runs the program on `paths` within the deadline: its exit status,
    /// standard output and standard error.
    fn run(&self, paths: &[PathBuf]) -> Result<(ExitStatus, Vec<u8>, Vec<u8>), ShellCheckError> {
        let spawn_error = |source| ShellCheckError::Spawn {
            program: self.program.clone(),
            source,
        };
        let mut child = Process::new(&self.program)
            .args(ARGS)
            .args(paths)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // The pipes are read on their own threads, so a full pipe never
        // stalls the program, and the deadline holds even if a process it
        // started keeps them open.
        let (tx, rx) = mpsc::channel();
        let readers = [
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn Read + Send>),
        ];
        for (which, pipe) in readers.into_iter().enumerate() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut bytes = Vec::new();
                if let Some(pipe) = pipe {
                    let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut bytes);
                }
                let _ = tx.send((which, bytes));
            });
        }
        drop(tx);
        let deadline = std::time::Instant::now() + self.timeout;
        let mut out: [Option<Vec<u8>>; 2] = [None, None];
        while out.iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok((which, bytes)) => out[which] = Some(bytes),
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ShellCheckError::Timeout {
                        program: self.program.clone(),
                        seconds: self.timeout.as_secs_f64(),
                        scripts: paths.len(),
                    });
                }
            }
        }
        // Both pipes are closed: the program has ended or is ending.
        let status = child.wait().map_err(spawn_error)?;
        let [stdout, stderr] = out;
        Ok((
            status,
            stdout.unwrap_or_default(),
            stderr.unwrap_or_default(),
        ))
    }
}

/// What one batch gave: the last comment on each of its scripts.
type BatchResult = Result<Vec<Option<Comment>>, ShellCheckError>;

/// Splits `scripts` into consecutive batches: at most
/// [`MAX_BATCH_SCRIPTS`] scripts and [`MAX_BATCH_BYTES`] each, and small
/// enough that every worker gets one.
fn plan_batches(scripts: &[&str], workers: usize) -> Vec<Range<usize>> {
    let per_batch = scripts
        .len()
        .div_ceil(workers.max(1))
        .clamp(1, MAX_BATCH_SCRIPTS);
    let mut batches = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, s) in scripts.iter().enumerate() {
        if i > start && (i - start == per_batch || bytes + s.len() > MAX_BATCH_BYTES) {
            batches.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += s.len();
    }
    if start < scripts.len() {
        batches.push(start..scripts.len());
    }
    batches
}

/// Writes `text` to a new file only its owner can read (0600).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_follow_shell_and_variables() {
        let df = kiln_parser::parse(
            "ARG G\nFROM a AS base\nENV E=1\nRUN echo $E\nSHELL [\"/bin/bash\", \"-c\"]\nRUN echo b\n\
             FROM base\nRUN echo c\nFROM b\nSHELL [\"powershell\"]\nRUN Write-Host x\nRUN [\"exec\"]\n",
        )
        .unwrap();
        let s = run_scripts(&df, "");
        assert_eq!(s.len(), 3);
        assert!(s[0].script.starts_with("#!/bin/sh\n"));
        assert!(s[0].script.contains("export E=1\n") && !s[0].script.contains("export G=1\n"));
        assert!(s[0].script.ends_with("echo $E\n"));
        assert!(s[1].script.starts_with("#!/bin/bash\n"));
        assert_eq!(s[2].line, 8);
        assert!(
            s[2].script.starts_with("#!/bin/bash\n"),
            "FROM base inherits the shell"
        );
    }

    #[test]
    fn raw_text_keeps_line_breaks() {
        let src = "FROM a\nRUN --network=none echo a \\\n  # note\n\n  && echo b\n";
        let df = kiln_parser::parse(src).unwrap();
        let s = run_scripts(&df, src);
        assert!(
            s[0].script.ends_with("echo a \\\n\\\n\\\n  && echo b\n"),
            "{:?}",
            s[0].script
        );
    }

    #[test]
    fn shell_pragma_turns_shellcheck_off() {
        let df = kiln_parser::parse("# hadolint shell=powershell\nFROM a\nRUN x\n").unwrap();
        assert!(run_scripts(&df, "").is_empty());
    }

    /// A stand-in `shellcheck`: a shell script with `body`.
    fn fake(dir: &Path, body: &str) -> ShellCheck {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join("shellcheck");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write fake");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        ShellCheck::new(path)
    }

    #[test]
    fn batches_are_bounded_and_feed_every_core() {
        let small: Vec<&str> = vec!["echo\n"; 300];
        let b = plan_batches(&small, 2);
        assert!(b.iter().all(|r| r.len() <= MAX_BATCH_SCRIPTS), "{b:?}");
        assert_eq!(b.len(), 300usize.div_ceil(MAX_BATCH_SCRIPTS));
        assert_eq!(b.first().map(|r| r.start), Some(0));
        assert!(b.windows(2).all(|w| w[0].end == w[1].start));
        assert_eq!(b.last().map(|r| r.end), Some(300));
        // Few scripts still go to every core.
        assert_eq!(plan_batches(&small[..10], 2), vec![0..5, 5..10]);
        assert_eq!(plan_batches(&small[..1], 4), vec![0..1]);
        // Bytes bound a batch too; a larger script goes alone.
        let big = "x".repeat(MAX_BATCH_BYTES / 2 + 1);
        let huge = "y".repeat(MAX_BATCH_BYTES + 1);
        let mixed = [big.as_str(), big.as_str(), huge.as_str(), "a", "b"];
        assert_eq!(plan_batches(&mixed, 1), vec![0..1, 1..2, 2..3, 3..5]);
    }

    #[test]
    fn scripts_are_private_and_identical_ones_checked_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        // Records the mode of each script and of its directory, and says
        // nothing about them.
        let sc = fake(
            dir.path(),
            &format!(
                "for f in \"$@\"; do case $f in -*|json1|style|2187*) ;; *) \
                 stat -c '%a %n' \"$f\" \"$(dirname \"$f\")\" >> {log}; esac; done\n\
                 echo '{{\"comments\":[]}}'",
                log = log.display()
            ),
        );
        let found = sc.check_scripts(&["a\n", "b\n", "a\n"]).expect("check");
        assert_eq!(found, vec![None, None, None]);
        let log = std::fs::read_to_string(&log).expect("log");
        let modes: Vec<&str> = log.lines().filter_map(|l| l.split(' ').next()).collect();
        assert_eq!(
            modes,
            ["600", "700", "600", "700"],
            "two unique scripts:\n{log}"
        );
    }

    #[test]
    fn remembered_verdicts_are_not_checked_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("log");
        // Comments on every script it is given, and logs each one.
        let sc = fake(
            dir.path(),
            &format!(
                "out=''; for f in \"$@\"; do case $f in -*|json1|style|2187*) ;; *) \
                 cat \"$f\" >> {log}; \
                 out=\"$out${{out:+,}}{{\\\"file\\\":\\\"$f\\\",\\\"level\\\":\\\"info\\\",\
                 \\\"code\\\":2086,\\\"message\\\":\\\"m\\\"}}\"; esac; done\n\
                 echo \"{{\\\"comments\\\":[$out]}}\"",
                log = log.display()
            ),
        )
        .with_cache_dir(dir.path().join("cache"));
        let comment = Some(Comment {
            code: 2086,
            severity: Severity::Info,
            message: "m".into(),
        });
        let first = sc.check_scripts(&["a\n", "b\n"]).expect("check");
        assert_eq!(first, vec![comment.clone(), comment.clone()]);
        let second = sc.check_scripts(&["b\n", "c\n", "a\n"]).expect("check");
        assert_eq!(second, vec![comment.clone(); 3]);
        // Batches run in parallel, so the log's order is not fixed.
        let checked = || {
            let mut lines: Vec<String> = std::fs::read_to_string(&log)
                .expect("log")
                .lines()
                .map(str::to_string)
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(checked(), ["a", "b", "c"], "only c was new the second time");
        // Without the cache, every script is checked again.
        let uncached = ShellCheck::new(sc.program());
        uncached.check_scripts(&["a\n"]).expect("check");
        assert_eq!(checked(), ["a", "a", "b", "c"]);
    }

    #[test]
    fn a_crash_names_the_program() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = fake(dir.path(), "echo 'out of memory' >&2; kill -SEGV $$");
        let err = sc.check_scripts(&["true\n"]).expect_err("crash");
        let text = err.to_string();
        assert!(matches!(err, ShellCheckError::Failed { .. }), "{text}");
        assert!(text.contains(&sc.program().display().to_string()), "{text}");
        assert!(
            text.contains("signal") && text.contains("out of memory"),
            "{text}"
        );
        let sc = fake(dir.path(), "echo 'bad option' >&2; exit 4");
        let text = sc
            .check_scripts(&["true\n"])
            .expect_err("exit 4")
            .to_string();
        assert!(
            text.contains("exit status: 4") && text.contains("bad option"),
            "{text}"
        );
        let sc = fake(dir.path(), "echo '{\"comments\": 3}'");
        let text = sc
            .check_scripts(&["true\n"])
            .expect_err("bad json")
            .to_string();
        assert!(text.contains("\"comments\" array"), "{text}");
    }

    #[test]
    fn a_hung_shellcheck_is_killed_at_its_deadline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sc = fake(dir.path(), "exec sleep 30").with_timeout(Duration::from_millis(300));
        let started = std::time::Instant::now();
        let err = sc.check_scripts(&["true\n"]).expect_err("timeout");
        assert!(started.elapsed() < Duration::from_secs(10));
        let text = err.to_string();
        assert!(matches!(err, ShellCheckError::Timeout { .. }), "{text}");
        assert!(
            text.contains(&sc.program().display().to_string()) && text.contains("killed"),
            "{text}"
        );
    }

    /// With the real ShellCheck, checking scripts in bulk gives what
    /// checking each alone gives.
    #[test]
    fn bulk_verdicts_match_one_script_at_a_time() {
        let Some(sc) = ShellCheck::find() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: this test needs shellcheck on PATH"
            );
            eprintln!("skipped: no shellcheck on PATH");
            return;
        };
        let bodies = [
            "echo $1",
            "cd /tmp",
            "true",
            "x=1",
            "[ $a == b ]",
            "ls | grep foo",
            "echo \"ok\"",
        ];
        let scripts: Vec<String> = (0..150)
            .map(|i| format!("#!/bin/sh\nexport V{i}=1\n{}\n", bodies[i % bodies.len()]))
            .chain(std::iter::repeat_n("#!/bin/sh\necho $1\n".to_string(), 3))
            .collect();
        let texts: Vec<&str> = scripts.iter().map(String::as_str).collect();
        let bulk = sc.check_scripts(&texts).expect("bulk");
        assert_eq!(bulk.len(), texts.len());
        for (text, verdict) in texts.iter().zip(&bulk) {
            let alone = sc.check_scripts(&[text]).expect("alone");
            assert_eq!(&alone[0], verdict, "{text}");
        }
        assert!(bulk.iter().filter(|c| c.is_some()).count() > 50);
    }

    #[test]
    fn exports_the_text_cannot_see_are_left_out() {
        let src = "FROM a\nARG HTTP_PROXY\nENV USED=1 OTHER=2 IFS=: APP_HOME=/a\nARG bad-name\n\
                   RUN echo $USED $APP_HOM\nRUN echo ${!U*}\n";
        let df = kiln_parser::parse(src).unwrap();
        let s = run_scripts(&df, src);
        let has = |i: usize, v: &str| s[i].script.contains(&format!("export {v}=1\n"));
        assert!(
            has(0, "USED") && has(0, "IFS") && has(0, "bad-name"),
            "{}",
            s[0].script
        );
        assert!(has(0, "APP_HOME"), "a near miss stays: {}", s[0].script);
        assert!(!has(0, "OTHER") && !has(0, "HTTP_PROXY"), "{}", s[0].script);
        assert!(has(1, "OTHER") && has(1, "HTTP_PROXY"), "{}", s[1].script);
        let all = scripts(&df, src, false);
        assert!(all[0].script.contains("export OTHER=1\n"));
        assert!(all[0].script.contains("export https_proxy=1\n"));
    }

    /// On every RUN of the real-world corpus, ShellCheck 0.11's verdict on
    /// kiln's script is its verdict on hadolint's (all exports). A long
    /// trial (about 40 s): `cargo test -p kiln-lint -- --ignored`.
    #[test]
    #[ignore = "long trial: ShellCheck twice over the whole corpus"]
    fn left_out_exports_change_no_verdict_on_the_corpus() {
        let Some(sc) = ShellCheck::find() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: this test needs shellcheck on PATH"
            );
            eprintln!("skipped: no shellcheck on PATH");
            return;
        };
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus/realworld");
        let Ok(entries) = std::fs::read_dir(&corpus) else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: no corpus at {}",
                corpus.display()
            );
            eprintln!("skipped: no corpus at {}", corpus.display());
            return;
        };
        let (mut pruned, mut full) = (Vec::new(), Vec::new());
        for entry in entries.flatten() {
            let bytes = std::fs::read(entry.path()).expect("read");
            let text = String::from_utf8_lossy(&bytes);
            let Ok(df) = kiln_parser::parse(&text) else {
                continue;
            };
            pruned.extend(scripts(&df, &text, true).into_iter().map(|s| s.script));
            full.extend(scripts(&df, &text, false).into_iter().map(|s| s.script));
        }
        assert!(pruned.len() > 1000, "{} scripts", pruned.len());
        let shorter = pruned
            .iter()
            .zip(&full)
            .filter(|(p, f)| p.len() < f.len())
            .count();
        assert!(shorter > pruned.len() / 2, "{shorter} scripts lost exports");
        let pruned_texts: Vec<&str> = pruned.iter().map(String::as_str).collect();
        let full_texts: Vec<&str> = full.iter().map(String::as_str).collect();
        let a = sc.check_scripts(&pruned_texts).expect("pruned");
        let b = sc.check_scripts(&full_texts).expect("full");
        for ((a, b), script) in a.iter().zip(&b).zip(&full) {
            assert_eq!(a, b, "{script}");
        }
        eprintln!(
            "{} scripts, {shorter} with fewer exports, {} verdicts, all the same",
            full.len(),
            b.iter().flatten().count()
        );
    }

    /// SC2153 ("did you mean") still finds the variable a typo was meant
    /// for, though the text does not name it.
    #[test]
    fn a_misspelt_variable_still_gets_its_suggestion() {
        let Some(sc) = ShellCheck::find() else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true: this test needs shellcheck on PATH"
            );
            eprintln!("skipped: no shellcheck on PATH");
            return;
        };
        let src =
            "FROM a\nENV APP_HOME=/app LOG_LEVEL=debug\nRUN echo \"$APP_HOM\" \"$LOGLEVEL\"\n";
        let df = kiln_parser::parse(src).unwrap();
        let found = sc.check(&df, src, "Dockerfile").expect("check");
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].code.as_str(), found[0].line), ("SC2153", 3));
        assert!(
            found[0].message.contains("LOG_LEVEL"),
            "{}",
            found[0].message
        );
        let full: Vec<String> = scripts(&df, src, false)
            .into_iter()
            .map(|s| s.script)
            .collect();
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        let verdict = sc.check_scripts(&full).expect("full");
        assert_eq!(verdict[0].as_ref().map(|c| c.code), Some(2153));
    }
}
