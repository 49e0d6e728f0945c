//! ShellCheck on every RUN, as hadolint does, through an installed
//! `shellcheck` binary (hadolint links ShellCheck 0.11 in; kiln runs it).
//!
//! Each shell-form RUN becomes a script: `#!<shell>`, one `export V=1` per
//! ARG/ENV known at that point (plus the proxy variables), then the RUN
//! text (heredoc bodies included). All scripts of a file go to one
//! `shellcheck -f json1` run, and a comment is reported at its RUN's
//! line, column 1, as `SC<code>`: only the last one of each RUN, as
//! hadolint 2.15.1 keeps one per line. RUNs are skipped when the shell is
//! PowerShell or cmd (SHELL or `# hadolint shell=`), in exec form, or when
//! the text starts with a `#!` other than sh/bash/ksh.

use crate::diagnostic::{Diagnostic, Severity};
use crate::pragma::Pragmas;
use kiln_parser::instruction::CommandLine;
use kiln_parser::{Dockerfile, Instruction};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

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
}

/// An installed `shellcheck`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellCheck {
    program: PathBuf,
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

/// The scripts hadolint would give ShellCheck for this file.
pub fn run_scripts(dockerfile: &Dockerfile, source: &str) -> Vec<RunScript> {
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
                    for v in vars.iter() {
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
        }
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
    /// program cannot be started, or its output is not json1.
    pub fn check(
        &self,
        dockerfile: &Dockerfile,
        source: &str,
        file: &str,
    ) -> Result<Vec<Diagnostic>, ShellCheckError> {
        let scripts = run_scripts(dockerfile, source);
        if scripts.is_empty() {
            return Ok(Vec::new());
        }
        let dir = tempfile::tempdir().map_err(ShellCheckError::Scripts)?;
        let mut paths = Vec::new();
        for (i, s) in scripts.iter().enumerate() {
            let path = dir.path().join(format!("run{i}.sh"));
            std::fs::write(&path, &s.script).map_err(ShellCheckError::Scripts)?;
            paths.push(path);
        }
        let output = Process::new(&self.program)
            .args(["-f", "json1", "-S", "style", "-e", "2187,1090,1091"])
            .args(&paths)
            .output()
            .map_err(|source| ShellCheckError::Spawn {
                program: self.program.clone(),
                source,
            })?;
        let bad = |message: String| ShellCheckError::Output {
            program: self.program.clone(),
            message,
        };
        let value: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(|e| {
            bad(format!(
                "{e}; stderr: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
        let comments = value["comments"]
            .as_array()
            .ok_or_else(|| bad("no \"comments\" array".into()))?;
        // hadolint keeps one SC finding per RUN: its findings are a set
        // ordered by line only, so a later comment replaces an earlier one.
        // ShellCheck lists comments by position; the last one stays.
        let mut last: Vec<Option<Diagnostic>> = vec![None; scripts.len()];
        for c in comments {
            let Some(path) = c["file"].as_str() else {
                continue;
            };
            let Some(index) = paths.iter().position(|p| p.as_os_str() == path) else {
                continue;
            };
            let severity = match c["level"].as_str() {
                Some("error") => Severity::Error,
                Some("warning") => Severity::Warning,
                Some("info") => Severity::Info,
                _ => Severity::Style,
            };
            last[index] = Some(Diagnostic {
                code: format!("SC{}", c["code"].as_u64().unwrap_or(0)),
                severity,
                line: scripts[index].line,
                column: 1,
                message: c["message"].as_str().unwrap_or_default().to_string(),
                file: file.to_string(),
            });
        }
        Ok(last.into_iter().flatten().collect())
    }
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
}
