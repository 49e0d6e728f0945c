//! BuildKit's build checks (`docker build --check`), under BuildKit's names.

use super::variables;
use crate::context::Context;
use crate::diagnostic::Diagnostics;
use kiln_parser::instruction::CommandLine;
use kiln_parser::Instruction;
use std::collections::HashSet;

pub(crate) fn stage_name_casing(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if let Some(name) = &stage.base().stage_name_as_written {
            if *name != name.to_lowercase() {
                out.at_with(
                    stage.from.span.start.line,
                    format!("Stage name '{name}' should be lowercase"),
                );
            }
        }
    }
}

fn is_upper(s: &str) -> bool {
    s == s.to_uppercase()
}

fn is_lower(s: &str) -> bool {
    s == s.to_lowercase()
}

pub(crate) fn from_as_casing(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let from = &stage.from.keyword;
        let Some(as_kw) = &stage.base().as_keyword else {
            continue;
        };
        let mismatch = (is_upper(from) && !is_upper(as_kw)) || (is_lower(from) && !is_lower(as_kw));
        if (is_upper(from) || is_lower(from)) && mismatch {
            out.at_with(
                stage.from.span.start.line,
                format!("'{as_kw}' and '{from}' keywords' casing do not match"),
            );
        }
    }
}

pub(crate) fn json_args_recommended(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut has_shell = vec![false; cx.dockerfile.stages.len()];
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let Some(stage) = item.stage else { continue };
        match &item.command.instruction {
            Instruction::From(_) => {
                has_shell[stage] = cx.parent(stage).is_some_and(|p| has_shell[p]);
            }
            Instruction::Shell(_) => has_shell[stage] = true,
            Instruction::Cmd(CommandLine::Shell(_))
            | Instruction::Entrypoint(CommandLine::Shell(_))
                if !has_shell[stage] =>
            {
                let name = item.command.instruction.name();
                out.at_with(
                    item.line,
                    format!(
                        "JSON arguments recommended for {name} to prevent unintended behavior related to OS signals"
                    ),
                );
            }
            _ => {}
        }
    }
}

pub(crate) fn maintainer_deprecated(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        if matches!(item.command.instruction, Instruction::Maintainer(_)) {
            out.at(item.line);
        }
    }
}

pub(crate) fn consistent_instruction_casing(cx: &Context<'_>, out: &mut Diagnostics) {
    let keywords: Vec<(&str, usize)> = cx
        .dockerfile
        .stages
        .iter()
        .flat_map(|s| std::iter::once(&s.from).chain(&s.commands))
        .map(|c| (c.keyword.as_str(), c.span.start.line))
        .collect();
    let lower = keywords
        .iter()
        .filter(|(k, _)| is_lower(k) && !is_upper(k))
        .count();
    let upper = keywords
        .iter()
        .filter(|(k, _)| is_upper(k) && !is_lower(k))
        .count();
    let majority_lower = lower > upper;
    for (k, line) in keywords {
        let ok = if majority_lower {
            is_lower(k)
        } else {
            is_upper(k)
        };
        if !ok {
            let case = if majority_lower {
                "lowercase"
            } else {
                "uppercase"
            };
            out.at_with(
                line,
                format!("Command '{k}' should match the case of the command majority ({case})"),
            );
        }
    }
}

pub(crate) fn duplicate_stage_name(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut seen = HashSet::new();
    for stage in &cx.dockerfile.stages {
        if let Some(name) = stage.name() {
            if !seen.insert(name) {
                out.at_with(
                    stage.from.span.start.line,
                    format!("Duplicate stage name {name:?}, stage names should be unique"),
                );
            }
        }
    }
}

pub(crate) fn reserved_stage_name(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if let Some(name @ ("scratch" | "context")) = stage.name() {
            out.at_with(
                stage.from.span.start.line,
                format!("Stage name should not use the same name as reserved stage {name:?}"),
            );
        }
    }
}

pub(crate) fn legacy_key_value_format(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let (kind, kv) = match &item.command.instruction {
            Instruction::Env(kv) => ("ENV", kv),
            Instruction::Label(kv) => ("LABEL", kv),
            _ => continue,
        };
        if kv.legacy {
            out.at_with(
                item.line,
                format!("\"{kind} key=value\" should be used instead of legacy \"{kind} key value\" format"),
            );
        }
    }
}

pub(crate) fn multiple_instructions_disallowed(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let mut last: [Option<usize>; 3] = [None; 3];
        for c in &stage.commands {
            let slot = match c.instruction {
                Instruction::Cmd(_) => 0,
                Instruction::Entrypoint(_) => 1,
                Instruction::Healthcheck(_) => 2,
                _ => continue,
            };
            if let Some(previous) = last[slot] {
                let name = c.instruction.name();
                out.at_with(
                    previous,
                    format!("Multiple {name} instructions should not be used in the same stage because only the last one will be used"),
                );
            }
            last[slot] = Some(c.span.start.line);
        }
    }
}

pub(crate) fn workdir_relative_path(cx: &Context<'_>, out: &mut Diagnostics) {
    let mut set = vec![false; cx.dockerfile.stages.len()];
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let Some(stage) = item.stage else { continue };
        match &item.command.instruction {
            Instruction::From(_) => set[stage] = cx.parent(stage).is_some_and(|p| set[p]),
            Instruction::Workdir(dir) => {
                let d = super::instructions::unquote(dir);
                let absolute = d.starts_with('/')
                    || d.starts_with('$')
                    || (d.len() >= 2 && d.as_bytes()[1] == b':');
                if !absolute && !set[stage] {
                    out.at_with(
                        item.line,
                        format!("Relative workdir {d:?} can have unexpected results if the base image changes"),
                    );
                }
                set[stage] = true;
            }
            _ => {}
        }
    }
}

const SECRET_TOKENS: [&str; 10] = [
    "apikey",
    "auth",
    "credential",
    "credentials",
    "key",
    "password",
    "pword",
    "passwd",
    "secret",
    "token",
];

fn is_secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let tokens: Vec<&str> = lower.split('_').collect();
    tokens.iter().any(|t| SECRET_TOKENS.contains(t))
        && !tokens
            .iter()
            .any(|t| ["public", "file", "version"].contains(t))
}

pub(crate) fn secrets_used_in_arg_or_env(cx: &Context<'_>, out: &mut Diagnostics) {
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let (kind, names): (&str, Vec<&str>) = match &item.command.instruction {
            Instruction::Arg(args) => ("ARG", args.iter().map(|a| a.name.as_str()).collect()),
            Instruction::Env(env) => ("ENV", env.pairs.iter().map(|p| p.key.as_str()).collect()),
            _ => continue,
        };
        for name in names.into_iter().filter(|n| is_secret_name(n)) {
            out.at_with(
                item.line,
                format!("Do not use ARG or ENV instructions for sensitive data ({kind} {name:?})"),
            );
        }
    }
}

pub(crate) fn redundant_target_platform(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        if let Some(p @ ("$TARGETPLATFORM" | "${TARGETPLATFORM}")) =
            stage.base().platform.as_deref()
        {
            out.at_with(
                stage.from.span.start.line,
                format!("Setting platform to predefined {p} in FROM is redundant as this is the default behavior"),
            );
        }
    }
}

const BUILTIN_ARGS: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

pub(crate) fn undefined_arg_in_from(cx: &Context<'_>, out: &mut Diagnostics) {
    let global: HashSet<&str> = cx
        .dockerfile
        .global_args
        .iter()
        .filter_map(|c| match &c.instruction {
            Instruction::Arg(args) => Some(args.iter().map(|a| a.name.as_str())),
            _ => None,
        })
        .flatten()
        .collect();
    for stage in &cx.dockerfile.stages {
        let base = stage.base();
        let mut text = base.image.clone();
        if let Some(p) = &base.platform {
            text.push(' ');
            text.push_str(p);
        }
        for var in variables(&text) {
            if !global.contains(var.as_str()) && !BUILTIN_ARGS.contains(&var.as_str()) {
                out.at_with(
                    stage.from.span.start.line,
                    format!("FROM argument '{var}' is not declared"),
                );
            }
        }
    }
}
