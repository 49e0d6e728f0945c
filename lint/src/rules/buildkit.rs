//! BuildKit's build checks (`docker build --check`), under BuildKit's names.

use super::variables;
use crate::base_image::{global_defaults, normalize_platform, platforms, stage_base};
use crate::context::Context;
use crate::diagnostic::Diagnostics;
use crate::{BaseImage, BaseRef};
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
            if !global.contains(var.as_str()) && !kiln_parser::predefined::is_automatic_arg(&var) {
                out.at_with(
                    stage.from.span.start.line,
                    format!("FROM argument '{var}' is not declared"),
                );
            }
        }
    }
}

pub(crate) fn no_empty_continuation(cx: &Context<'_>, out: &mut Diagnostics) {
    for w in &cx.dockerfile.warnings {
        if w.message.starts_with("Empty continuation line") {
            out.at_with(w.span.start.line, "Empty continuation line".to_string());
        }
    }
}

/// The port specs of every EXPOSE, with the line.
fn exposed<'a>(cx: &Context<'a>) -> Vec<(usize, &'a str)> {
    cx.items()
        .iter()
        .filter(|i| !i.onbuild)
        .filter_map(|i| match &i.command.instruction {
            Instruction::Expose(ports) => Some(ports.iter().map(move |p| (i.line, p.as_str()))),
            _ => None,
        })
        .flatten()
        .collect()
}

pub(crate) fn expose_proto_casing(cx: &Context<'_>, out: &mut Diagnostics) {
    for (line, port) in exposed(cx) {
        if let Some((_, proto)) = port.split_once('/') {
            if proto != proto.to_lowercase() {
                out.at_with(
                    line,
                    format!("Defined protocol '{port}' in EXPOSE instruction should be lowercase"),
                );
            }
        }
    }
}

pub(crate) fn expose_invalid_format(cx: &Context<'_>, out: &mut Diagnostics) {
    for (line, port) in exposed(cx) {
        if port.contains(':') {
            out.at_with(
                line,
                format!("EXPOSE instruction should not define an IP address or host-port mapping, found '{port}'"),
            );
        }
    }
}

const OSES: [&str; 4] = ["linux", "windows", "darwin", "freebsd"];

pub(crate) fn from_platform_flag_const_disallowed(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in &cx.dockerfile.stages {
        let Some(platform) = stage.base().platform.as_deref() else {
            continue;
        };
        if platform.contains('$') {
            continue;
        }
        let mut parts = platform.split('/');
        let os = parts.next().unwrap_or_default().to_ascii_lowercase();
        let arch = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !OSES.contains(&os.as_str()) {
            continue;
        }
        let name = stage.name().unwrap_or_default();
        let named = name.contains(&os) || (!arch.is_empty() && name.contains(&arch));
        if !named {
            out.at_with(
                stage.from.span.start.line,
                format!("FROM --platform flag should not use constant value {platform:?}"),
            );
        }
    }
}

/// A normalised image reference as BuildKit accepts it (enough to catch
/// `busybox:` and empty names).
fn is_valid_reference(image: &str) -> bool {
    let (rest, digest) = match image.split_once('@') {
        Some((r, d)) => (r, Some(d)),
        None => (image, None),
    };
    if digest.is_some_and(|d| !d.contains(':') || d.ends_with(':')) {
        return false;
    }
    let slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
    let (name, tag) = match rest[slash..].rfind(':') {
        Some(i) => (&rest[..slash + i], Some(&rest[slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = !tag.is_empty()
            && tag.len() <= 128
            && tag
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
            && !tag.starts_with(['.', '-']);
        if !ok {
            return false;
        }
    }
    let mut components = name.split('/').peekable();
    let mut first = true;
    while let Some(c) = components.next() {
        let is_domain =
            first && components.peek().is_some() && (c.contains(['.', ':']) || c == "localhost");
        first = false;
        if is_domain {
            continue;
        }
        let ok = !c.is_empty()
            && c.chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || "._-".contains(ch))
            && c.starts_with(|ch: char| ch.is_ascii_alphanumeric())
            && c.ends_with(|ch: char| ch.is_ascii_alphanumeric());
        if !ok {
            return false;
        }
    }
    true
}

pub(crate) fn invalid_default_arg_in_from(cx: &Context<'_>, out: &mut Diagnostics) {
    // BuildKit defines the platform args in the global scope.
    let (target, build) = platforms(cx.config);
    let (defaults, declared) = global_defaults(cx.dockerfile, target, build);
    let lexer = kiln_parser::shell::Lexer::new(cx.dockerfile.escape);
    for stage in &cx.dockerfile.stages {
        let image = &stage.base().image;
        let used: Vec<String> = variables(image)
            .into_iter()
            .filter(|v| declared.contains(v))
            .collect();
        if used.is_empty() {
            continue;
        }
        let expanded = match lexer.process_word(image, &defaults) {
            Ok(e) => e,
            Err(_) => continue,
        };
        if !is_valid_reference(&expanded) {
            out.at_with(
                stage.from.span.start.line,
                format!(
                    "Default value for ARG {} results in empty or invalid base image name",
                    used.join(", ")
                ),
            );
        }
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(prev + usize::from(ca != *cb));
            prev = cur;
        }
    }
    row[b.len()]
}

/// The words BuildKit expands at build time for `instruction`.
fn expanded_words(instruction: &Instruction) -> Vec<&str> {
    match instruction {
        Instruction::Env(kv) | Instruction::Label(kv) => kv
            .pairs
            .iter()
            .flat_map(|p| [p.key.as_str(), p.value.as_str()])
            .collect(),
        Instruction::Add(c) | Instruction::Copy(c) => c
            .sources
            .iter()
            .filter_map(|s| match s {
                kiln_parser::instruction::CopySource::Path(p) => Some(p.as_str()),
                kiln_parser::instruction::CopySource::Heredoc(_) => None,
            })
            .chain(std::iter::once(c.dest.as_str()))
            .chain(c.chown.as_deref())
            .chain(c.chmod.as_deref())
            .collect(),
        Instruction::Workdir(w) | Instruction::User(w) | Instruction::Stopsignal(w) => vec![w],
        Instruction::Volume(v) => v.iter().map(String::as_str).collect(),
        Instruction::Arg(args) => args.iter().filter_map(|a| a.default.as_deref()).collect(),
        Instruction::Run(run) => run.mounts.iter().map(|m| m.spec.as_str()).collect(),
        _ => Vec::new(),
    }
}

/// Variables almost every base image sets.
const BASE_IMAGE_ENV: [&str; 8] = [
    "PATH", "HOME", "USER", "HOSTNAME", "LANG", "PWD", "SHELL", "TERM",
];

pub(crate) fn undefined_var(cx: &Context<'_>, out: &mut Diagnostics) {
    // Per stage: the names in scope so far, and whether the base image is
    // known (a chain of stages rooted at scratch), so that an unknown name
    // cannot come from the base image's ENV.
    let stages = cx.dockerfile.stages.len();
    let mut scope: Vec<HashSet<String>> = vec![HashSet::new(); stages];
    let mut known_base = vec![false; stages];
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let Some(stage) = item.stage else { continue };
        let instruction = &item.command.instruction;
        if let Instruction::From(f) = instruction {
            match cx.parent(stage) {
                Some(p) => {
                    scope[stage] = scope[p].clone();
                    known_base[stage] = known_base[p];
                }
                None => match resolved_base(cx, stage) {
                    Some((_, image)) => {
                        scope[stage] = image.env.iter().cloned().collect();
                        known_base[stage] = true;
                    }
                    None => known_base[stage] = f.image == "scratch",
                },
            }
            continue;
        }
        for word in expanded_words(instruction) {
            for var in variables(word) {
                if scope[stage].contains(&var) || kiln_parser::predefined::is_proxy_arg(&var) {
                    continue;
                }
                let suggestion = scope[stage]
                    .iter()
                    .filter(|n| distance(n, &var) <= 2)
                    .min_by_key(|n| (distance(n, &var), (*n).clone()))
                    .cloned();
                // With an unknown base image, only a near miss of a name in
                // scope is worth reporting: anything else may come from the
                // image's ENV.
                let near_miss = suggestion
                    .as_ref()
                    .is_some_and(|s| distance(s, &var) <= 1 && var.len() >= 4);
                if !known_base[stage] && (!near_miss || BASE_IMAGE_ENV.contains(&var.as_str())) {
                    continue;
                }
                let hint = suggestion
                    .map(|s| format!(" (did you mean ${s}?)"))
                    .unwrap_or_default();
                out.at_with(
                    item.line,
                    format!("Usage of undefined variable '${var}'{hint}"),
                );
            }
        }
        match instruction {
            Instruction::Arg(args) => scope[stage].extend(args.iter().map(|a| a.name.clone())),
            Instruction::Env(env) => scope[stage].extend(env.pairs.iter().map(|p| p.key.clone())),
            _ => {}
        }
    }
}

/// The image stage `stage` starts from, when the caller resolved it.
fn resolved_base<'c>(cx: &'c Context<'_>, stage: usize) -> Option<(BaseRef, &'c BaseImage)> {
    let images = cx.config.base_images.as_ref()?;
    let base = stage_base(cx, stage)?;
    let image = images.get(&base)?;
    Some((base, image))
}

pub(crate) fn invalid_base_image_platform(cx: &Context<'_>, out: &mut Diagnostics) {
    for stage in 0..cx.dockerfile.stages.len() {
        let Some((base, image)) = resolved_base(cx, stage) else {
            continue;
        };
        let expected = normalize_platform(&base.platform);
        let actual = normalize_platform(&image.platform);
        // BuildKit compares the OS and the architecture, not the variant.
        let os_arch = |p: &str| p.split('/').take(2).collect::<Vec<_>>().join("/");
        if os_arch(&expected) != os_arch(&actual) {
            out.at_with(
                base.line,
                format!(
                    "Base image {} was pulled with platform {actual:?}, expected {expected:?} for current build",
                    base.image
                ),
            );
        }
    }
}

pub(crate) fn invalid_definition_description(cx: &Context<'_>, out: &mut Diagnostics) {
    let comment_at = |line: usize| cx.dockerfile.comments.iter().find(|c| c.line == line);
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let name = match &item.command.instruction {
            Instruction::From(f) => f.stage_name_as_written.clone(),
            Instruction::Arg(args) if args.len() == 1 => Some(args[0].name.clone()),
            _ => None,
        };
        let Some(name) = name else { continue };
        if item.line < 2 {
            continue;
        }
        if let Some(c) = comment_at(item.line - 1) {
            let text = c.text.trim_start();
            let first = text.split_whitespace().next().unwrap_or_default();
            if first != name {
                out.at(item.line);
            }
        }
    }
}

pub(crate) fn copy_ignored_file(cx: &Context<'_>, out: &mut Diagnostics) {
    let Some(ignore) = &cx.config.dockerignore else {
        return;
    };
    if ignore.has_exclusions() {
        return;
    }
    for item in cx.items().iter().filter(|i| !i.onbuild) {
        let (verb, copy) = match &item.command.instruction {
            Instruction::Copy(c) => ("Copy", c),
            Instruction::Add(c) => ("Add", c),
            _ => continue,
        };
        if copy.from.is_some() {
            continue;
        }
        for source in &copy.sources {
            let kiln_parser::instruction::CopySource::Path(path) = source else {
                continue;
            };
            let path = super::instructions::unquote(path);
            if path.contains("://") || path.starts_with("git@") {
                continue;
            }
            if ignore.matches_or_parent_matches(path) {
                out.at_with(
                    item.line,
                    format!("Attempting to {verb} file {path:?} that is excluded by .dockerignore"),
                );
            }
        }
    }
}
