//! Raw nodes to typed instructions: BuildKit's `instructions.ParseInstruction`.

use super::duration::parse_duration;
use super::flags::{FlagKind, Flags};
use super::mount::RunMount;
use super::types::*;
use crate::error::{ErrorKind, ParseError};
use crate::raw::RawNode;
use crate::span::Position;
use std::time::Duration;

const COPY_FLAGS: &[(&str, FlagKind)] = &[
    ("from", FlagKind::String),
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("parents", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
];

const ADD_FLAGS: &[(&str, FlagKind)] = &[
    ("chown", FlagKind::String),
    ("chmod", FlagKind::String),
    ("link", FlagKind::Bool),
    ("parents", FlagKind::Bool),
    ("exclude", FlagKind::Strings),
    ("checksum", FlagKind::String),
    ("keep-git-dir", FlagKind::Bool),
    ("unpack", FlagKind::Bool),
];

const RUN_FLAGS: &[(&str, FlagKind)] = &[
    ("mount", FlagKind::Strings),
    ("network", FlagKind::String),
    ("security", FlagKind::String),
];

const HEALTHCHECK_FLAGS: &[(&str, FlagKind)] = &[
    ("interval", FlagKind::String),
    ("timeout", FlagKind::String),
    ("start-period", FlagKind::String),
    ("start-interval", FlagKind::String),
    ("retries", FlagKind::String),
];

/// Turns one raw node into a typed command.
pub(crate) fn build_command(node: &RawNode) -> Result<Command, ParseError> {
    let instruction = build_instruction(node)?;
    Ok(Command {
        instruction,
        keyword: node.keyword.clone(),
        original: node.original.clone(),
        span: node.span,
        flags: node.flags.clone(),
    })
}

fn err(at: Position, kind: ErrorKind) -> ParseError {
    ParseError::new(at, kind)
}

fn exactly_one(node: &RawNode, name: &str) -> Result<String, ParseError> {
    match node.args.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(err(
            node.span.start,
            ErrorKind::Arguments(format!("{name} requires exactly one argument")),
        )),
    }
}

fn at_least_one(node: &RawNode, name: &str) -> Result<(), ParseError> {
    if node.args.is_empty() && node.nested.is_none() {
        return Err(err(
            node.span.start,
            ErrorKind::Arguments(format!("{name} requires at least one argument")),
        ));
    }
    Ok(())
}

fn no_flags(node: &RawNode) -> Result<(), ParseError> {
    Flags::parse(&node.flags, &[]).map(|_| ())
}

fn command_line(node: &RawNode, args: &[String]) -> CommandLine {
    if node.json {
        CommandLine::Exec(args.to_vec())
    } else {
        CommandLine::Shell(args.join(" "))
    }
}

fn build_instruction(node: &RawNode) -> Result<Instruction, ParseError> {
    let cmd = node.command();
    let name = cmd.to_uppercase();
    Ok(match cmd.as_str() {
        "from" => Instruction::From(build_from(node)?),
        "run" => Instruction::Run(build_run(node)?),
        "cmd" => {
            no_flags(node)?;
            Instruction::Cmd(command_line(node, &node.args))
        }
        "entrypoint" => {
            no_flags(node)?;
            Instruction::Entrypoint(command_line(node, &node.args))
        }
        "shell" => {
            no_flags(node)?;
            if !node.json {
                return Err(err(
                    node.args_position,
                    ErrorKind::Invalid("SHELL requires the arguments to be in JSON form".into()),
                ));
            }
            if node.args.is_empty() {
                return Err(err(
                    node.span.start,
                    ErrorKind::Arguments("SHELL requires at least one argument".into()),
                ));
            }
            Instruction::Shell(node.args.clone())
        }
        "label" | "env" => {
            no_flags(node)?;
            at_least_one(node, &name)?;
            let kv = key_values(node, &name)?;
            if cmd == "env" {
                Instruction::Env(kv)
            } else {
                Instruction::Label(kv)
            }
        }
        "maintainer" => {
            no_flags(node)?;
            Instruction::Maintainer(exactly_one(node, &name)?)
        }
        "user" => {
            no_flags(node)?;
            Instruction::User(exactly_one(node, &name)?)
        }
        "workdir" => {
            no_flags(node)?;
            Instruction::Workdir(exactly_one(node, &name)?)
        }
        "stopsignal" => {
            no_flags(node)?;
            Instruction::Stopsignal(exactly_one(node, &name)?)
        }
        "expose" => {
            no_flags(node)?;
            at_least_one(node, &name)?;
            Instruction::Expose(node.args.clone())
        }
        "volume" => {
            no_flags(node)?;
            at_least_one(node, &name)?;
            if node.args.iter().any(|v| v.trim().is_empty()) {
                return Err(err(
                    node.args_position,
                    ErrorKind::Invalid("VOLUME specified can not be an empty string".into()),
                ));
            }
            Instruction::Volume(node.args.clone())
        }
        "copy" => Instruction::Copy(build_copy(node, "COPY", COPY_FLAGS)?),
        "add" => Instruction::Add(build_copy(node, "ADD", ADD_FLAGS)?),
        "arg" => {
            no_flags(node)?;
            at_least_one(node, &name)?;
            Instruction::Arg(build_args(node)?)
        }
        "onbuild" => Instruction::Onbuild(build_onbuild(node)?),
        "healthcheck" => Instruction::Healthcheck(build_healthcheck(node)?),
        _ => Instruction::Unknown(Unknown {
            keyword: node.keyword.clone(),
            args: node
                .original
                .trim()
                .get(node.keyword.len()..)
                .unwrap_or("")
                .trim()
                .to_string(),
        }),
    })
}

fn build_from(node: &RawNode) -> Result<From, ParseError> {
    let flags = Flags::parse(&node.flags, &[("platform", FlagKind::String)])?;
    let bad = || {
        err(
            node.span.start,
            ErrorKind::Arguments("FROM requires either one or three arguments".into()),
        )
    };
    let (image, as_keyword, name) = match node.args.as_slice() {
        [image] => (image.clone(), None, None),
        [image, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            (image.clone(), Some(as_kw.clone()), Some(name.clone()))
        }
        _ => return Err(bad()),
    };
    let stage_name = match &name {
        Some(n) => {
            let lower = n.to_lowercase();
            if !is_valid_stage_name(&lower) {
                return Err(err(
                    node.args_position,
                    ErrorKind::Invalid(format!(
                        "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                    )),
                ));
            }
            Some(lower)
        }
        None => None,
    };
    Ok(From {
        image,
        stage_name,
        as_keyword,
        stage_name_as_written: name,
        platform: flags.string("platform"),
    })
}

/// BuildKit's stage-name rule: `^[a-z][a-z0-9-_.]*$` after lower-casing.
fn is_valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn build_run(node: &RawNode) -> Result<Run, ParseError> {
    let flags = Flags::parse(&node.flags, RUN_FLAGS)?;
    let mut mounts = Vec::new();
    for flag in flags.all("mount") {
        let mount = RunMount::parse_literal(&flag.value).map_err(|message| {
            err(
                flag.span.start,
                ErrorKind::InvalidFlagValue {
                    flag: "mount".into(),
                    message,
                },
            )
        })?;
        mounts.push(MountFlag {
            spec: flag.value.clone(),
            span: flag.span,
            mount,
        });
    }
    let network = match flags.get("network") {
        None => None,
        Some(f) => Some(match f.value.as_str() {
            "default" => NetworkMode::Default,
            "none" => NetworkMode::None,
            "host" => NetworkMode::Host,
            other => {
                return Err(err(
                    f.span.start,
                    ErrorKind::InvalidFlagValue {
                        flag: "network".into(),
                        message: format!(
                            "unsupported network mode {other:?} (default, none or host)"
                        ),
                    },
                ))
            }
        }),
    };
    let security = match flags.get("security") {
        None => None,
        Some(f) => Some(match f.value.as_str() {
            "sandbox" => SecurityMode::Sandbox,
            "insecure" => SecurityMode::Insecure,
            other => {
                return Err(err(
                    f.span.start,
                    ErrorKind::InvalidFlagValue {
                        flag: "security".into(),
                        message: format!(
                            "unsupported security mode {other:?} (sandbox or insecure)"
                        ),
                    },
                ))
            }
        }),
    };
    Ok(Run {
        command: command_line(node, &node.args),
        heredocs: node.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

fn key_values(node: &RawNode, name: &str) -> Result<KeyValues, ParseError> {
    if !node.args.len().is_multiple_of(3) {
        return Err(err(
            node.span.start,
            ErrorKind::Arguments(format!("Bad input to {name}, too many arguments")),
        ));
    }
    let mut pairs = Vec::new();
    let mut legacy = false;
    for triple in node.args.chunks(3) {
        if triple[0].is_empty() {
            return Err(err(
                node.args_position,
                ErrorKind::Arguments(format!("{name} names can not be blank")),
            ));
        }
        legacy |= triple[2].is_empty();
        pairs.push(KeyValue {
            key: triple[0].clone(),
            value: triple[1].clone(),
        });
    }
    Ok(KeyValues { pairs, legacy })
}

fn build_args(node: &RawNode) -> Result<Vec<ArgDecl>, ParseError> {
    node.args
        .iter()
        .map(|word| match word.split_once('=') {
            Some(("", _)) => Err(err(
                node.args_position,
                ErrorKind::Arguments("ARG names can not be blank".into()),
            )),
            Some((name, value)) => Ok(ArgDecl {
                name: name.to_string(),
                default: Some(value.to_string()),
            }),
            None => Ok(ArgDecl {
                name: word.clone(),
                default: None,
            }),
        })
        .collect()
}

fn build_copy(
    node: &RawNode,
    name: &str,
    accepted: &[(&'static str, FlagKind)],
) -> Result<FileCopy, ParseError> {
    let flags = Flags::parse(&node.flags, accepted)?;
    if node.args.len() < 2 {
        return Err(err(
            node.span.start,
            ErrorKind::Arguments(if node.args.is_empty() {
                format!("{name} requires at least two arguments")
            } else {
                format!(
                    "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
                )
            }),
        ));
    }
    let (dest, sources) = node.args.split_last().unwrap_or((&node.args[0], &[]));
    let heredoc_for = |word: &str| {
        if node.json {
            return None;
        }
        let marker = crate::heredoc::parse_marker(word).ok().flatten()?;
        node.heredocs.iter().find(|h| h.name == marker.name)
    };
    if heredoc_for(dest).is_some() {
        return Err(err(
            node.args_position,
            ErrorKind::Invalid(format!("{name} cannot accept a heredoc as a destination")),
        ));
    }
    let sources = sources
        .iter()
        .map(|s| match heredoc_for(s) {
            Some(h) => CopySource::Heredoc(h.clone()),
            None => CopySource::Path(s.clone()),
        })
        .collect();
    Ok(FileCopy {
        sources,
        dest: dest.clone(),
        json: node.json,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link").unwrap_or(false),
        parents: flags.bool("parents").unwrap_or(false),
        excludes: flags
            .all("exclude")
            .into_iter()
            .map(|f| f.value.clone())
            .collect(),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        unpack: flags.bool("unpack"),
    })
}

fn build_onbuild(node: &RawNode) -> Result<Onbuild, ParseError> {
    no_flags(node)?;
    let Some(nested) = &node.nested else {
        return Err(err(
            node.span.start,
            ErrorKind::Arguments("ONBUILD requires at least one argument".into()),
        ));
    };
    let trigger = nested.command();
    let forbidden = match trigger.as_str() {
        "onbuild" => Some("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".to_string()),
        "from" | "maintainer" => Some(format!(
            "{} isn't allowed as an ONBUILD trigger",
            trigger.to_uppercase()
        )),
        _ => None,
    };
    if let Some(message) = forbidden {
        return Err(err(nested.span.start, ErrorKind::Misplaced(message)));
    }
    let mut nested = (**nested).clone();
    nested.span = node.span;
    // Heredoc bodies follow the ONBUILD line, so the raw parse attaches them
    // to the ONBUILD node; they belong to the trigger.
    nested.heredocs = node.heredocs.clone();
    let trigger = build_command(&nested)?;
    // As BuildKit stores it: the line, then each heredoc's body and
    // delimiter, so an image's trigger parses again whole.
    let mut expression = nested.original.trim().to_string();
    for heredoc in &nested.heredocs {
        expression.push('\n');
        expression.push_str(&heredoc.content);
        expression.push_str(&heredoc.name);
    }
    Ok(Onbuild {
        expression,
        trigger: Box::new(trigger),
    })
}

fn build_healthcheck(node: &RawNode) -> Result<Healthcheck, ParseError> {
    let Some(kind) = node.args.first() else {
        return Err(err(
            node.span.start,
            ErrorKind::Arguments("HEALTHCHECK requires at least one argument".into()),
        ));
    };
    match kind.to_uppercase().as_str() {
        "NONE" => {
            no_flags(node)?;
            if node.args.len() != 1 {
                return Err(err(
                    node.args_position,
                    ErrorKind::Arguments("HEALTHCHECK NONE takes no arguments".into()),
                ));
            }
            Ok(Healthcheck::None)
        }
        "CMD" => {
            let flags = Flags::parse(&node.flags, HEALTHCHECK_FLAGS)?;
            let command = &node.args[1..];
            if command.is_empty() {
                return Err(err(
                    node.args_position,
                    ErrorKind::Arguments("Missing command after HEALTHCHECK CMD".into()),
                ));
            }
            let test = if node.json {
                std::iter::once("CMD".to_string())
                    .chain(command.iter().cloned())
                    .collect()
            } else {
                vec!["CMD-SHELL".to_string(), command.join(" ")]
            };
            let duration = |flag: &str, label: &str| -> Result<Option<Duration>, ParseError> {
                let Some(f) = flags.get(flag) else {
                    return Ok(None);
                };
                let invalid = |message: String| {
                    err(
                        f.span.start,
                        ErrorKind::InvalidFlagValue {
                            flag: flag.to_string(),
                            message,
                        },
                    )
                };
                let d = parse_duration(&f.value).map_err(invalid)?;
                if d != Duration::ZERO && d < Duration::from_millis(1) {
                    return Err(invalid(format!(
                        "{label} {:?} cannot be less than 1ms",
                        f.value
                    )));
                }
                Ok(Some(d))
            };
            let retries = match flags.get("retries") {
                None => None,
                Some(f) => Some(f.value.parse::<u32>().map_err(|_| {
                    err(
                        f.span.start,
                        ErrorKind::InvalidFlagValue {
                            flag: "retries".into(),
                            message: format!("expected a non-negative integer, not {:?}", f.value),
                        },
                    )
                })?),
            };
            Ok(Healthcheck::Cmd(HealthcheckCmd {
                test,
                interval: duration("interval", "Interval")?,
                timeout: duration("timeout", "Timeout")?,
                start_period: duration("start-period", "StartPeriod")?,
                start_interval: duration("start-interval", "StartInterval")?,
                retries,
            }))
        }
        other => Err(err(
            node.args_position,
            ErrorKind::Invalid(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
        )),
    }
}
