//! `--call outline` and `--call targets`, as buildx prints them (BuildKit's
//! `frontend.outline` and `frontend.targets` subrequests), in text and, with
//! `format=json`, in their JSON shapes. Nothing is built and no image is
//! resolved: both read the Dockerfile alone.
//!
//! - outline: the target stage (`--target`, else the last), its
//!   description, the build arguments it takes (name, value, description),
//!   and the secrets and SSH agents its `RUN --mount`s use, with their
//!   required flag.
//! - targets: every stage, its description, base and platform, the default
//!   (last) one marked.
//!
//! A description is a comment on the lines right above the `FROM` or `ARG`
//! that leads with the stage's or argument's name (`# GO_VERSION sets the Go
//! version` describes `GO_VERSION` as `sets the Go version`), as BuildKit
//! reads them.

use super::flags::Call;
use super::plan::Source;
use super::request::BuildRequest;
use anyhow::{bail, Result};
use kiln_parser::instruction::{MountType, RunMount};
use kiln_parser::{Command, Dockerfile, Instruction, Stage};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

/// Runs `--call outline` or `--call targets` when asked: prints the
/// result on stdout and returns true; false for the other methods.
///
/// # Errors
/// `--target` naming no stage, or stdout closed.
pub(super) fn run(source: &Source, request: &BuildRequest) -> Result<bool> {
    let text = match request.call {
        Call::Outline { json } => {
            let outline = outline(
                &source.dockerfile,
                &source.text,
                request.options.target.as_deref(),
                &request.options.build_args,
            )?;
            if json {
                format!("{}\n", serde_json::to_string_pretty(&outline)?)
            } else {
                outline_text(&outline)
            }
        }
        Call::Targets { json } => {
            let list = targets(&source.dockerfile, &source.text);
            if json {
                format!("{}\n", serde_json::to_string_pretty(&list)?)
            } else {
                targets_text(&list)
            }
        }
        Call::Build | Call::Check { .. } => return Ok(false),
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(true)
}

/// Where an item is in the Dockerfile (BuildKit's `pb.Location` as Go's
/// JSON encoder writes it: zero fields left out, so the source index 0
/// and the characters are absent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(super) struct Location {
    ranges: Vec<Range>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Range {
    start: Line,
    end: Line,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Line {
    line: usize,
}

impl Location {
    fn of(command: &Command) -> Location {
        let start = command.span.start.line;
        let end = if command.span.end.column <= 1 && command.span.end.line > start {
            command.span.end.line - 1
        } else {
            command.span.end.line.max(start)
        };
        Location {
            ranges: vec![Range {
                start: Line { line: start },
                end: Line { line: end },
            }],
        }
    }

    fn line(&self) -> usize {
        self.ranges.first().map_or(0, |r| r.start.line)
    }
}

/// `--call outline`'s result (BuildKit's `outline.Outline`).
#[derive(Debug, Serialize)]
pub(super) struct Outline {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    args: Vec<Arg>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secrets: Vec<Needed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ssh: Vec<Needed>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    cache: Vec<CacheMount>,
    sources: Vec<String>,
}

/// A build argument of the outline.
#[derive(Debug, Serialize)]
struct Arg {
    name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    value: String,
    location: Location,
}

/// A secret or SSH agent a RUN mounts.
#[derive(Debug, Serialize)]
struct Needed {
    name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    required: bool,
    location: Location,
}

/// A cache mount.
#[derive(Debug, Serialize)]
struct CacheMount {
    #[serde(rename = "ID")]
    id: String,
    location: Location,
}

/// `--call targets`' result (BuildKit's `targets.List`).
#[derive(Debug, Serialize)]
pub(super) struct Targets {
    targets: Vec<Target>,
    sources: Vec<String>,
}

/// One stage of the targets list.
#[derive(Debug, Serialize)]
struct Target {
    #[serde(skip_serializing_if = "String::is_empty")]
    name: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    default: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    description: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    base: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    platform: String,
    location: Location,
}

/// The Dockerfile as the one source (Go encodes bytes as base64).
fn sources(text: &str) -> Vec<String> {
    use base64::Engine as _;
    vec![base64::engine::general_purpose::STANDARD.encode(text)]
}

/// The Dockerfile's comment lines by line number.
type Comments<'a> = BTreeMap<usize, &'a str>;

fn comments(dockerfile: &Dockerfile) -> Comments<'_> {
    dockerfile
        .comments
        .iter()
        .map(|c| (c.line, c.text.as_str()))
        .collect()
}

/// The description of `name` from the comment lines right above `line`:
/// the first that starts with the name and a space, without them.
fn description(by_line: &Comments<'_>, line: usize, name: &str) -> String {
    let mut block = Vec::new();
    let mut at = line;
    // A description is a line or two; a longer block is not read to its
    // top.
    while at > 1 && block.len() < 64 {
        at -= 1;
        match by_line.get(&at) {
            Some(text) => block.push(text.trim()),
            None => break,
        }
    }
    block.reverse();
    block
        .iter()
        .find_map(|text| {
            let rest = text.strip_prefix(name).or_else(|| {
                // Stage names are compared without case.
                let head = text.get(..name.len())?;
                head.eq_ignore_ascii_case(name).then(|| &text[name.len()..])
            })?;
            rest.strip_prefix(' ').map(|d| d.trim().to_string())
        })
        .unwrap_or_default()
}

/// Each stage name (lower-cased) and the first stage that has it.
type StageNames<'a> = std::collections::HashMap<&'a str, usize>;

fn stage_names(dockerfile: &Dockerfile) -> StageNames<'_> {
    let mut names = StageNames::new();
    for (i, stage) in dockerfile.stages.iter().enumerate() {
        if let Some(name) = stage.name() {
            names.entry(name).or_insert(i);
        }
    }
    names
}

/// The stage `name` refers to (a name, case-insensitive, or an index),
/// among the stages before `before`.
fn stage_named(names: &StageNames<'_>, name: &str, before: usize) -> Option<usize> {
    names
        .get(name.to_ascii_lowercase().as_str())
        .copied()
        .filter(|i| *i < before)
        .or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
}

/// The global ARGs' values: defaults, with `--build-arg`s on top.
fn global_values(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut values = BTreeMap::new();
    for command in &dockerfile.global_args {
        if let Instruction::Arg(decls) = &command.instruction {
            for d in decls {
                let value = build_args.get(&d.name).cloned().or_else(|| {
                    let default = d.default.as_deref()?;
                    let lexer = kiln_parser::shell::Lexer::new(dockerfile.escape);
                    Some(
                        lexer
                            .process_word(default, &values)
                            .unwrap_or_else(|_| default.to_string()),
                    )
                });
                if let Some(v) = value {
                    values.insert(d.name.clone(), v);
                }
            }
        }
    }
    values
}

/// The stage's FROM expanded with the global ARGs.
fn expanded_base(
    dockerfile: &Dockerfile,
    stage: &Stage,
    globals: &BTreeMap<String, String>,
) -> String {
    let lexer = kiln_parser::shell::Lexer::new(dockerfile.escape);
    let image = &stage.base().image;
    lexer
        .process_word(image, globals)
        .unwrap_or_else(|_| image.clone())
}

/// The mounts a RUN makes.
fn mounts(command: &Command) -> impl Iterator<Item = &RunMount> {
    let run = match &command.instruction {
        Instruction::Run(run) => Some(run),
        _ => None,
    };
    run.into_iter()
        .flat_map(|r| r.mounts.iter().map(|m| &m.mount))
}

/// The stages `target` needs, itself included, in file order.
fn needed_stages(
    dockerfile: &Dockerfile,
    target: usize,
    globals: &BTreeMap<String, String>,
) -> Vec<usize> {
    let names = stage_names(dockerfile);
    let mut seen = BTreeSet::from([target]);
    let mut work = vec![target];
    while let Some(i) = work.pop() {
        let stage = &dockerfile.stages[i];
        let mut refs = vec![expanded_base(dockerfile, stage, globals)];
        for command in &stage.commands {
            match &command.instruction {
                Instruction::Copy(c) | Instruction::Add(c) => refs.extend(c.from.clone()),
                _ => {}
            }
            refs.extend(mounts(command).filter_map(|m| m.from.clone()));
        }
        for r in refs {
            if let Some(dep) = stage_named(&names, &r, i) {
                if seen.insert(dep) {
                    work.push(dep);
                }
            }
        }
    }
    seen.into_iter().collect()
}

/// The outline of the build of `target` (the last stage when `None`).
///
/// # Errors
/// `--target` names no stage, or the Dockerfile has none.
pub(super) fn outline(
    dockerfile: &Dockerfile,
    text: &str,
    target: Option<&str>,
    build_args: &BTreeMap<String, String>,
) -> Result<Outline> {
    let last = dockerfile.stages.len();
    let index = match target {
        Some(t) => match stage_named(&stage_names(dockerfile), t, last) {
            Some(i) => i,
            None => bail!("--target: target stage {t:?} could not be found"),
        },
        None if last == 0 => bail!("the Dockerfile has no stage (no FROM)"),
        None => last - 1,
    };
    let globals = global_values(dockerfile, build_args);
    let notes = comments(dockerfile);
    let stage = &dockerfile.stages[index];
    let lexer = kiln_parser::shell::Lexer::new(dockerfile.escape);
    let empty: BTreeMap<String, String> = BTreeMap::new();

    // Global ARGs a needed FROM uses, and every ARG a needed stage
    // declares (a global it declares again keeps the global's place).
    let mut used_globals = BTreeSet::new();
    let mut declared: Vec<(&kiln_parser::instruction::ArgDecl, &Command)> = Vec::new();
    let mut secrets: BTreeMap<String, Needed> = BTreeMap::new();
    let mut ssh: BTreeMap<String, Needed> = BTreeMap::new();
    let mut cache: BTreeMap<String, CacheMount> = BTreeMap::new();
    for i in needed_stages(dockerfile, index, &globals) {
        let s = &dockerfile.stages[i];
        let base = s.base();
        for word in std::iter::once(&base.image).chain(base.platform.as_ref()) {
            if let Ok(e) = lexer.process_word_with_matches(word, &empty) {
                used_globals.extend(e.unmatched);
            }
        }
        for command in &s.commands {
            if let Instruction::Arg(decls) = &command.instruction {
                declared.extend(decls.iter().map(|d| (d, command)));
            }
            for m in mounts(command) {
                let location = Location::of(command);
                match m.kind {
                    MountType::Secret => {
                        let id = m.id.clone().filter(|i| !i.is_empty()).or_else(|| {
                            m.target
                                .as_deref()
                                .and_then(|t| t.rsplit('/').find(|c| !c.is_empty()))
                                .map(str::to_string)
                        });
                        if let Some(id) = id {
                            let entry = secrets.entry(id.clone()).or_insert(Needed {
                                name: id,
                                required: false,
                                location,
                            });
                            entry.required |= m.required;
                        }
                    }
                    MountType::Ssh => {
                        let id =
                            m.id.clone()
                                .filter(|i| !i.is_empty())
                                .unwrap_or_else(|| "default".into());
                        let entry = ssh.entry(id.clone()).or_insert(Needed {
                            name: id,
                            required: false,
                            location,
                        });
                        entry.required |= m.required;
                    }
                    MountType::Cache => {
                        if let Some(id) =
                            m.id.clone().filter(|i| !i.is_empty()).or(m.target.clone())
                        {
                            cache
                                .entry(id.clone())
                                .or_insert(CacheMount { id, location });
                        }
                    }
                    MountType::Bind | MountType::Tmpfs => {}
                }
            }
        }
    }

    let declared_names: BTreeSet<&str> = declared.iter().map(|(d, _)| d.name.as_str()).collect();
    let mut args: BTreeMap<String, Arg> = BTreeMap::new();
    for command in &dockerfile.global_args {
        let Instruction::Arg(decls) = &command.instruction else {
            continue;
        };
        for d in decls {
            let redeclared = declared_names.contains(d.name.as_str());
            if !used_globals.contains(&d.name) && !redeclared {
                continue;
            }
            args.insert(
                d.name.clone(),
                Arg {
                    name: d.name.clone(),
                    description: description(&notes, command.span.start.line, &d.name),
                    value: globals.get(&d.name).cloned().unwrap_or_default(),
                    location: Location::of(command),
                },
            );
        }
    }
    for (d, command) in declared {
        if kiln_parser::predefined::is_automatic_arg(&d.name) {
            continue;
        }
        let own = description(&notes, command.span.start.line, &d.name);
        let value = build_args
            .get(&d.name)
            .cloned()
            .or_else(|| d.default.clone())
            .or_else(|| globals.get(&d.name).cloned())
            .unwrap_or_default();
        match args.get_mut(&d.name) {
            Some(arg) => {
                if arg.description.is_empty() {
                    arg.description = own;
                }
                if d.default.is_some() && !build_args.contains_key(&d.name) {
                    arg.value = value;
                }
            }
            None => {
                args.insert(
                    d.name.clone(),
                    Arg {
                        name: d.name.clone(),
                        description: own,
                        value,
                        location: Location::of(command),
                    },
                );
            }
        }
    }
    let mut args: Vec<Arg> = args.into_values().collect();
    args.sort_by_key(|a| (a.location.line(), a.name.clone()));
    let mut secrets: Vec<Needed> = secrets.into_values().collect();
    secrets.sort_by_key(|s| (s.location.line(), s.name.clone()));
    let mut ssh: Vec<Needed> = ssh.into_values().collect();
    ssh.sort_by_key(|s| (s.location.line(), s.name.clone()));
    let mut cache: Vec<CacheMount> = cache.into_values().collect();
    cache.sort_by_key(|c| (c.location.line(), c.id.clone()));

    let name = stage
        .base()
        .stage_name_as_written
        .clone()
        .unwrap_or_default();
    Ok(Outline {
        description: if name.is_empty() {
            String::new()
        } else {
            description(&notes, stage.from.span.start.line, &name)
        },
        name,
        args,
        secrets,
        ssh,
        cache,
        sources: sources(text),
    })
}

/// Every stage as a target, the last one the default.
pub(super) fn targets(dockerfile: &Dockerfile, text: &str) -> Targets {
    let notes = comments(dockerfile);
    let last = dockerfile.stages.len().saturating_sub(1);
    let targets = dockerfile
        .stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let base = stage.base();
            let name = base.stage_name_as_written.clone().unwrap_or_default();
            Target {
                description: if name.is_empty() {
                    String::new()
                } else {
                    description(&notes, stage.from.span.start.line, &name)
                },
                name,
                default: i == last,
                base: base.image.clone(),
                platform: base.platform.clone().unwrap_or_default(),
                location: Location::of(&stage.from),
            }
        })
        .collect();
    Targets {
        targets,
        sources: sources(text),
    }
}

/// Rows as Go's `text/tabwriter` aligns them: every cell but a row's last
/// padded to its column's widest cell plus `padding` spaces.
fn table(rows: &[Vec<String>], padding: usize) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let mut widths = vec![0; columns];
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(row.len().saturating_sub(1)) {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            out.push_str(cell);
            if i + 1 < row.len() {
                let pad = widths[i] + padding - cell.chars().count();
                out.push_str(&" ".repeat(pad));
            }
        }
        out.push('\n');
    }
    out
}

/// buildx's text for `--call outline`: the target and its description,
/// then tables of build arguments, secrets and SSH agents, each followed by
/// a blank line.
pub(super) fn outline_text(outline: &Outline) -> String {
    let mut out = String::new();
    if !outline.name.is_empty() || !outline.description.is_empty() {
        let name = if outline.name.is_empty() {
            "(default)".to_string()
        } else {
            outline.name.clone()
        };
        let mut rows = vec![vec!["TARGET:".to_string(), name]];
        if !outline.description.is_empty() {
            rows.push(vec!["DESCRIPTION:".into(), outline.description.clone()]);
        }
        out.push_str(&table(&rows, 1));
        out.push('\n');
    }
    if !outline.args.is_empty() {
        let mut rows = vec![vec![
            "BUILD ARG".to_string(),
            "VALUE".into(),
            "DESCRIPTION".into(),
        ]];
        rows.extend(
            outline
                .args
                .iter()
                .map(|a| vec![a.name.clone(), a.value.clone(), a.description.clone()]),
        );
        out.push_str(&table(&rows, 3));
        out.push('\n');
    }
    for (title, list) in [("SECRET", &outline.secrets), ("SSH", &outline.ssh)] {
        if list.is_empty() {
            continue;
        }
        let mut rows = vec![vec![title.to_string(), "REQUIRED".into()]];
        rows.extend(list.iter().map(|n| {
            vec![
                n.name.clone(),
                if n.required {
                    "true".into()
                } else {
                    String::new()
                },
            ]
        }));
        out.push_str(&table(&rows, 3));
        out.push('\n');
    }
    out
}

/// buildx's text for `--call targets`: `TARGET DESCRIPTION`, the default
/// marked `(default)`.
pub(super) fn targets_text(list: &Targets) -> String {
    let mut rows = vec![vec!["TARGET".to_string(), "DESCRIPTION".into()]];
    for t in &list.targets {
        let name = match (t.name.is_empty(), t.default) {
            (true, true) => "(default)".to_string(),
            (false, true) => format!("{} (default)", t.name),
            _ => t.name.clone(),
        };
        rows.push(vec![name, t.description.clone()]);
    }
    table(&rows, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOCKERFILE: &str = "# syntax=docker/dockerfile:1\n\
        \n\
        # GO_VERSION sets the Go version for the build\n\
        ARG GO_VERSION=1.22\n\
        ARG UNUSED=x\n\
        \n\
        # base-builder is the base stage for building the project\n\
        FROM golang:${GO_VERSION} AS base-builder\n\
        # MODE picks the build mode\n\
        ARG MODE=release\n\
        RUN --mount=type=secret,id=token,required=true --mount=type=ssh true\n\
        \n\
        FROM base-builder AS other\n\
        \n\
        # release is the final image\n\
        FROM scratch AS release\n\
        ARG VERSION\n\
        COPY --from=base-builder /out /\n\
        RUN --mount=type=secret,target=/run/secrets/npmrc --mount=type=cache,target=/c true\n";

    fn parsed() -> Dockerfile {
        kiln_parser::parse(DOCKERFILE).expect("parses")
    }

    #[test]
    fn outline_lists_what_the_target_takes() {
        let df = parsed();
        let o = outline(&df, DOCKERFILE, None, &BTreeMap::new()).expect("outline");
        assert_eq!(
            outline_text(&o),
            "TARGET:      release\n\
             DESCRIPTION: is the final image\n\
             \n\
             BUILD ARG    VALUE     DESCRIPTION\n\
             GO_VERSION   1.22      sets the Go version for the build\n\
             MODE         release   picks the build mode\n\
             VERSION                \n\
             \n\
             SECRET   REQUIRED\n\
             token    true\n\
             npmrc    \n\
             \n\
             SSH       REQUIRED\n\
             default   \n\
             \n"
        );
        // --target and --build-arg.
        let args = BTreeMap::from([("GO_VERSION".to_string(), "1.23".to_string())]);
        let o = outline(&df, DOCKERFILE, Some("Base-Builder"), &args).expect("outline");
        let json = serde_json::to_value(&o).expect("json");
        assert_eq!(json["name"], "base-builder");
        assert_eq!(json["args"][0]["value"], "1.23");
        assert_eq!(json["args"][0]["location"]["ranges"][0]["start"]["line"], 4);
        assert_eq!(json["args"].as_array().map(Vec::len), Some(2));
        assert_eq!(
            json["secrets"][0],
            serde_json::json!({
                "name": "token", "required": true,
                "location": {"ranges": [{"start": {"line": 11}, "end": {"line": 11}}]}
            })
        );
        assert!(json.get("cache").is_none());
        assert!(outline(&df, DOCKERFILE, Some("nope"), &args).is_err());
    }

    #[test]
    fn targets_lists_every_stage_and_marks_the_default() {
        let df = parsed();
        let list = targets(&df, DOCKERFILE);
        assert_eq!(
            targets_text(&list),
            "TARGET            DESCRIPTION\n\
             base-builder      is the base stage for building the project\n\
             other             \n\
             release (default) is the final image\n"
        );
        let json = serde_json::to_value(&list).expect("json");
        assert_eq!(json["targets"][0]["base"], "golang:${GO_VERSION}");
        assert_eq!(json["targets"][2]["default"], true);
        assert!(json["targets"][0].get("default").is_none());
    }

    #[test]
    fn a_long_chain_of_stages_is_outlined_quickly() {
        let mut text = String::from("ARG G=1\nFROM scratch AS s0\n");
        for i in 1..3000 {
            text.push_str(&format!(
                "# A{i} is arg {i}\nFROM s{} AS s{i}\nARG A{i}=v\nARG G\n",
                i - 1
            ));
        }
        let df = kiln_parser::parse(&text).expect("parses");
        let started = std::time::Instant::now();
        let o = outline(&df, &text, None, &BTreeMap::new()).expect("outline");
        let list = targets(&df, &text);
        let took = started.elapsed();
        println!("3000 stages outlined and listed in {took:?}");
        assert_eq!(o.args.len(), 3000, "G and A1..A2999");
        assert_eq!(list.targets.len(), 3000);
        assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    }

    #[test]
    fn a_table_pads_every_cell_but_the_last() {
        let rows = vec![
            vec!["A".to_string(), "BB".into(), "C".into()],
            vec!["AAA".to_string(), "".into(), "".into()],
        ];
        assert_eq!(table(&rows, 3), "A     BB   C\nAAA        \n");
    }
}
