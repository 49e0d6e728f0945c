//! DL rules over RUN's shell commands (other than package managers).

use crate::context::Context;
use crate::diagnostic::Diagnostics;
use crate::run_script::{Command, Script};
use kiln_parser::Instruction;

/// Reports every RUN (ONBUILD triggers too when `onbuild`) whose script has
/// a command for which `bad` holds.
pub(crate) fn per_run(
    cx: &Context<'_>,
    out: &mut Diagnostics,
    onbuild: bool,
    bad: impl Fn(&Command) -> bool,
) {
    for (item, _, script) in cx.runs(onbuild) {
        if script.commands().iter().any(&bad) {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl3001(cx: &Context<'_>, out: &mut Diagnostics) {
    const NAMES: [&str; 9] = [
        "free", "kill", "mount", "ps", "service", "shutdown", "ssh", "top", "vim",
    ];
    per_run(cx, out, true, |c| NAMES.contains(&c.name.as_str()));
}

pub(crate) fn dl3003(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, false, |c| c.name == "cd");
}

pub(crate) fn dl3004(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| c.name == "sudo");
}

pub(crate) fn dl3027(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| c.name == "apt");
}

pub(crate) fn dl3046(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        if c.name != "useradd" || c.has_any_flag(&["l", "no-log-init"]) {
            return false;
        }
        flag_values(c, "u").iter().any(|uid| uid.len() > 5)
    });
}

/// The arguments directly after each occurrence of flag `name`.
pub(crate) fn flag_values<'c>(c: &'c Command, name: &str) -> Vec<&'c str> {
    c.flags()
        .iter()
        .filter(|f| f.name == name)
        .filter_map(|f| c.args.get(f.arg + 1).map(String::as_str))
        .collect()
}

pub(crate) fn dl3047(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| {
        c.name == "wget"
            && !c.has_flag("progress")
            && !c.has_any_flag(&[
                "q",
                "quiet",
                "o",
                "output-file",
                "a",
                "append-output",
                "nv",
                "no-verbose",
            ])
            && !c.has_arg("-nv")
    });
}

/// How many commands hadolint's DL3059 sees in a script.
fn command_count(script: &Script) -> usize {
    script.commands().len()
}

pub(crate) fn dl3059(cx: &Context<'_>, out: &mut Diagnostics) {
    // (flags as written, command count) of the RUN just before.
    let mut previous: Option<(Vec<String>, usize)> = None;
    for item in cx.items() {
        if item.onbuild {
            continue;
        }
        match &item.command.instruction {
            Instruction::Run(_) => {
                let flags: Vec<String> =
                    item.command.flags.iter().map(|f| f.text.clone()).collect();
                let count = cx.script(item.command).map(command_count).unwrap_or(0);
                if let Some((prev_flags, prev_count)) = &previous {
                    if *prev_flags == flags && count <= 1 && *prev_count <= 1 {
                        out.at(item.line);
                    }
                }
                previous = Some((flags, count));
            }
            _ => previous = None,
        }
    }
}

pub(crate) fn dl4001(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut stage = None;
    let (mut curl, mut wget) = (false, false);
    for (item, _, script) in cx.runs(true) {
        if item.stage != stage {
            stage = item.stage;
            curl = false;
            wget = false;
        }
        let uses_curl = script.has_command("curl");
        let uses_wget = script.has_command("wget");
        curl |= uses_curl;
        wget |= uses_wget;
        if curl && wget && (uses_curl || uses_wget) {
            out.at(item.line);
        }
    }
}

pub(crate) fn dl4005(cx: &Context<'_>, out: &mut Diagnostics) {
    per_run(cx, out, true, |c| c.name == "ln" && c.has_arg("/bin/sh"));
}

const NON_POSIX: [&str; 3] = ["pwsh", "powershell", "cmd"];

pub(crate) fn dl4006(cx: &Context<'_>, out: &mut Diagnostics) {
    // Per stage: SHELL set pipefail, or a non-POSIX shell.
    let mut safe = false;
    for item in cx.items() {
        if item.onbuild {
            continue;
        }
        match &item.command.instruction {
            Instruction::From(_) => safe = false,
            Instruction::Shell(words) => {
                let text = words.join(" ");
                safe = NON_POSIX.iter().any(|p| text.starts_with(p)) || shell_sets_pipefail(words);
            }
            Instruction::Run(_)
                if !safe && cx.script(item.command).is_some_and(Script::has_pipes) =>
            {
                out.at(item.line);
            }
            _ => {}
        }
    }
}

/// `SHELL ["/bin/bash", "-o", "pipefail", "-c"]`: a bash, zsh or ash with
/// `-o pipefail`.
fn shell_sets_pipefail(words: &[String]) -> bool {
    let script = Script::parse(&words.join(" "));
    script.commands().iter().any(|c| {
        let base = c.name.rsplit('/').next().unwrap_or(&c.name);
        ["bash", "zsh", "ash"].contains(&base) && c.has_flag("o") && c.has_arg("pipefail")
    })
}

const EXTRACTORS: [&str; 9] = [
    "unzip",
    "gunzip",
    "bunzip2",
    "unlzma",
    "unxz",
    "zgz",
    "uncompress",
    "zcat",
    "gzcat",
];

fn basename(path: &str) -> &str {
    let p = super::instructions::unquote(path).trim_end_matches('/');
    p.rsplit('/').next().unwrap_or(p)
}

pub(crate) fn dl3010(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        // (COPY line, archive basename, already reported)
        let mut copied: Vec<(usize, String, bool)> = Vec::new();
        for c in &stage.commands {
            match &c.instruction {
                Instruction::Copy(copy) if copy.from.is_none() => {
                    for s in &copy.sources {
                        if let kiln_parser::instruction::CopySource::Path(p) = s {
                            if super::instructions::is_archive(super::instructions::unquote(p)) {
                                copied.push((c.span.start.line, basename(p).to_string(), false));
                            }
                        }
                    }
                }
                Instruction::Run(_) => {
                    let Some(script) = cx.script(c) else { continue };
                    for cmd in script.commands() {
                        let extracts = (cmd.name == "tar"
                            && cmd.has_any_flag(&["x", "extract", "get"]))
                            || EXTRACTORS.contains(&cmd.name.as_str());
                        if !extracts {
                            continue;
                        }
                        for entry in copied.iter_mut() {
                            if !entry.2 && cmd.args.iter().any(|a| basename(a) == entry.1) {
                                entry.2 = true;
                                out.at(entry.0);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
    }
}
