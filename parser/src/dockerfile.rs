//! The parsed Dockerfile: directives, global ARGs and build stages.

use crate::directive::Directive;
use crate::error::{ErrorKind, ParseError};
use crate::instruction::{build_command, Command, From, Instruction};
use crate::raw::{parse_raw, Comment, Warning};
use serde::Serialize;

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dockerfile {
    /// Parser directives from the top of the file.
    pub directives: Vec<Directive>,
    /// The escape character in force.
    pub escape: char,
    /// ARG instructions before the first FROM.
    pub global_args: Vec<Command>,
    /// The build stages, in file order.
    pub stages: Vec<Stage>,
    /// Every comment line (pragmas such as `# hadolint ignore=` included).
    pub comments: Vec<Comment>,
    /// Non-fatal findings of the parser.
    pub warnings: Vec<Warning>,
}

/// One build stage: a FROM and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stage {
    /// The FROM command that opens the stage.
    pub from: Command,
    /// The instructions after FROM, up to the next FROM.
    pub commands: Vec<Command>,
}

impl Stage {
    /// The stage's FROM instruction.
    pub fn base(&self) -> &From {
        match &self.from.instruction {
            Instruction::From(f) => f,
            // Stages are only ever built from FROM commands (see `parse`).
            _ => unreachable!("a stage always opens with FROM"),
        }
    }

    /// The stage name after `AS`, lower-cased.
    pub fn name(&self) -> Option<&str> {
        self.base().stage_name.as_deref()
    }
}

impl Dockerfile {
    /// The value of a parser directive (`syntax`, `escape`, `check`).
    pub fn directive(&self, name: &str) -> Option<&str> {
        self.directives
            .iter()
            .find(|d| d.name == name)
            .map(|d| d.value.as_str())
    }

    /// Every command in file order: global ARGs, then each stage's FROM and
    /// instructions.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.global_args.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from).chain(s.commands.iter())),
        )
    }
}

/// Parses a Dockerfile into typed instructions grouped by stage.
///
/// # Errors
/// A [`ParseError`] with the line and column of the first problem: what the
/// low-level parse rejects (see [`crate::raw::parse_raw`]), unknown flags,
/// bad flag values, wrong argument counts, forbidden ONBUILD triggers and
/// instructions other than ARG before the first FROM.
pub fn parse(source: &str) -> Result<Dockerfile, ParseError> {
    let raw = parse_raw(source)?;
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &raw.nodes {
        let command = build_command(node)?;
        match &command.instruction {
            Instruction::From(_) => stages.push(Stage {
                from: command,
                commands: Vec::new(),
            }),
            instruction => match stages.last_mut() {
                Some(stage) => stage.commands.push(command),
                None if matches!(instruction, Instruction::Arg(_)) => global_args.push(command),
                None => {
                    return Err(ParseError::new(
                        node.span.start,
                        ErrorKind::Misplaced("no build stage in current context".into()),
                    ))
                }
            },
        }
    }
    Ok(Dockerfile {
        directives: raw.directives,
        escape: raw.escape,
        global_args,
        stages,
        comments: raw.comments,
        warnings: raw.warnings,
    })
}
