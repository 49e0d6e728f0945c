//! What rules see: the parsed Dockerfile plus facts computed once per file
//! (the shell script of every RUN, stage parents, an instruction walk that
//! includes ONBUILD triggers).

use crate::config::Config;
use crate::run_script::Script;
use crate::run_text::{raw_text, run_text};
use kiln_parser::instruction::Run;
use kiln_parser::{Command, Dockerfile, Instruction};
use std::collections::HashMap;

/// One instruction in file order, as rules walk them.
#[derive(Debug, Clone, Copy)]
pub struct Item<'a> {
    /// The stage it belongs to (`None` for ARGs before the first FROM).
    pub stage: Option<usize>,
    /// The instruction (for an ONBUILD trigger: the trigger itself).
    pub command: &'a Command,
    /// True for the trigger of an ONBUILD (it follows its ONBUILD item).
    pub onbuild: bool,
    /// The line findings are reported at: where the instruction starts.
    pub line: usize,
}

/// The file a rule checks, with shared analysis.
#[derive(Debug)]
pub struct Context<'a> {
    /// The parsed Dockerfile.
    pub dockerfile: &'a Dockerfile,
    /// The configuration (DL3026 reads the trusted registries).
    pub config: &'a Config,
    items: Vec<Item<'a>>,
    scripts: HashMap<(usize, usize), Script>,
    parents: Vec<Option<usize>>,
}

impl<'a> Context<'a> {
    /// Analyses `dockerfile`.
    /// `source` is the text `dockerfile` was parsed from: RUN scripts are
    /// read from it as written, as hadolint does (escaped line breaks kept).
    pub fn new(dockerfile: &'a Dockerfile, source: &str, config: &'a Config) -> Self {
        let source_lines: Vec<&str> = source.lines().collect();
        let mut items = Vec::new();
        for command in &dockerfile.global_args {
            items.push(Item {
                stage: None,
                command,
                onbuild: false,
                line: command.span.start.line,
            });
        }
        for (i, stage) in dockerfile.stages.iter().enumerate() {
            for command in std::iter::once(&stage.from).chain(&stage.commands) {
                let line = command.span.start.line;
                items.push(Item {
                    stage: Some(i),
                    command,
                    onbuild: false,
                    line,
                });
                if let Instruction::Onbuild(ob) = &command.instruction {
                    items.push(Item {
                        stage: Some(i),
                        command: &ob.trigger,
                        onbuild: true,
                        line,
                    });
                }
            }
        }
        let mut scripts = HashMap::new();
        for item in &items {
            if let Instruction::Run(run) = &item.command.instruction {
                let start = item.command.span.start;
                // With the backtick escape, hadolint's text keeps "`" line
                // breaks that bash reads as substitutions; the joined text
                // agrees better with its verdicts there.
                let raw = if item.onbuild || !run.heredocs.is_empty() || dockerfile.escape != '\\' {
                    None
                } else {
                    raw_text(&source_lines, item.command, dockerfile.escape)
                };
                scripts.insert((start.line, start.column), run_script(run, raw));
            }
        }
        let parents = crate::stages::parents(dockerfile);
        Context {
            dockerfile,
            config,
            items,
            scripts,
            parents,
        }
    }

    /// Every instruction in file order; ONBUILD triggers follow their
    /// ONBUILD.
    pub fn items(&self) -> &[Item<'a>] {
        &self.items
    }

    /// The parsed shell script of a RUN instruction.
    pub fn script(&self, command: &Command) -> Option<&Script> {
        let start = command.span.start;
        self.scripts.get(&(start.line, start.column))
    }

    /// Every RUN (ONBUILD triggers included when `onbuild`), with its
    /// script.
    pub fn runs(&self, onbuild: bool) -> impl Iterator<Item = (&Item<'a>, &'a Run, &Script)> {
        self.items.iter().filter_map(move |item| {
            if item.onbuild && !onbuild {
                return None;
            }
            match &item.command.instruction {
                Instruction::Run(run) => self.script(item.command).map(|s| (item, run, s)),
                _ => None,
            }
        })
    }

    /// The stage a stage is built on (`FROM <alias>`), if any.
    pub fn parent(&self, stage: usize) -> Option<usize> {
        self.parents.get(stage).copied().flatten()
    }

    /// The stage and the stages it is built on, nearest first.
    pub fn lineage(&self, stage: usize) -> Vec<usize> {
        let mut out = vec![stage];
        let mut at = stage;
        while let Some(p) = self.parent(at) {
            if out.contains(&p) {
                break;
            }
            out.push(p);
            at = p;
        }
        out
    }

    /// The index of the stage named `name` (case-insensitive) defined
    /// before stage `before`.
    pub fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let name = name.to_ascii_lowercase();
        self.dockerfile.stages[..before.min(self.dockerfile.stages.len())]
            .iter()
            .rposition(|s| s.name() == Some(name.as_str()))
    }

    /// Lines of every FROM.
    pub fn from_lines(&self) -> Vec<usize> {
        self.dockerfile
            .stages
            .iter()
            .map(|s| s.from.span.start.line)
            .collect()
    }
}

const SHELLS: [&str; 12] = [
    "sh",
    "bash",
    "ash",
    "dash",
    "zsh",
    "ksh",
    "/bin/sh",
    "/bin/bash",
    "/bin/ash",
    "/bin/dash",
    "/bin/zsh",
    "/usr/bin/env",
];

/// Parses a RUN's script. A heredoc fed to a shell (`RUN <<EOF`, `RUN bash
/// <<EOF`) is script too, so its commands are added.
fn run_script(run: &Run, raw: Option<String>) -> Script {
    let line = Script::parse(&raw.unwrap_or_else(|| run_text(run)));
    if run.heredocs.is_empty() {
        return line;
    }
    let shell_reads_body = match line.commands().first() {
        None => true,
        Some(first) => SHELLS.contains(&first.name.as_str()),
    };
    if !shell_reads_body || line.error().is_some() {
        return line;
    }
    let body: String = run.heredocs.iter().map(|h| h.chomped_content()).collect();
    let body = Script::parse(&body);
    line.merged(body)
}
