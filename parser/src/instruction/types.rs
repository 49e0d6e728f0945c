//! The typed instructions.

use crate::heredoc::Heredoc;
use crate::instruction::mount::RunMount;
use crate::span::Span;
use serde::Serialize;
use std::time::Duration;

/// One instruction with where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Command {
    /// The typed instruction.
    pub instruction: Instruction,
    /// The keyword as written (`RUN`, `run`, ...).
    pub keyword: String,
    /// The instruction line after continuation lines were joined.
    pub original: String,
    /// From the keyword to the end of the last line (heredoc bodies included).
    pub span: Span,
    /// The flags as written, with their spans.
    pub flags: Vec<crate::raw::RawFlag>,
}

/// A Dockerfile instruction, one variant per keyword, with typed flags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "value", rename_all = "lowercase")]
pub enum Instruction {
    /// `FROM [--platform=P] image [AS name]`
    From(From),
    /// `RUN [--mount=...] [--network=...] [--security=...] command`
    Run(Run),
    /// `CMD command`
    Cmd(CommandLine),
    /// `ENTRYPOINT command`
    Entrypoint(CommandLine),
    /// `SHELL ["executable", "parameters"]`
    Shell(Vec<String>),
    /// `LABEL key=value ...`
    Label(KeyValues),
    /// `ENV key=value ...`
    Env(KeyValues),
    /// `MAINTAINER name` (deprecated)
    Maintainer(String),
    /// `EXPOSE port[/proto] ...`
    Expose(Vec<String>),
    /// `ADD [flags] src... dest`
    Add(FileCopy),
    /// `COPY [flags] src... dest`
    Copy(FileCopy),
    /// `VOLUME path ...`
    Volume(Vec<String>),
    /// `USER user[:group]`
    User(String),
    /// `WORKDIR path`
    Workdir(String),
    /// `ARG name[=default] ...`
    Arg(Vec<ArgDecl>),
    /// `ONBUILD instruction`
    Onbuild(Onbuild),
    /// `STOPSIGNAL signal`
    Stopsignal(String),
    /// `HEALTHCHECK NONE` or `HEALTHCHECK [options] CMD command`
    Healthcheck(Healthcheck),
    /// A keyword kiln does not know; the solver rejects it.
    Unknown(Unknown),
}

impl Instruction {
    /// The canonical upper-case keyword (`RUN`); for unknown instructions,
    /// the keyword as written.
    pub fn name(&self) -> &str {
        match self {
            Instruction::From(_) => "FROM",
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Shell(_) => "SHELL",
            Instruction::Label(_) => "LABEL",
            Instruction::Env(_) => "ENV",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::Stopsignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Unknown(u) => &u.keyword,
        }
    }
}

/// `FROM`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct From {
    /// The base: an image reference, a stage name or `scratch` (unexpanded).
    pub image: String,
    /// The stage name after `AS`, lower-cased as BuildKit does.
    pub stage_name: Option<String>,
    /// The `AS` keyword as written, for casing checks.
    pub as_keyword: Option<String>,
    /// The stage name as written.
    pub stage_name_as_written: Option<String>,
    /// `--platform` (unexpanded).
    pub platform: Option<String>,
}

/// A command in shell or exec (JSON) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "form", content = "args", rename_all = "lowercase")]
pub enum CommandLine {
    /// Shell form: run through the stage's SHELL.
    Shell(String),
    /// Exec form: the JSON array's elements.
    Exec(Vec<String>),
}

impl CommandLine {
    /// True for the JSON (exec) form.
    pub fn is_exec(&self) -> bool {
        matches!(self, CommandLine::Exec(_))
    }

    /// The words of the command: the exec array, or the shell text as one.
    pub fn args(&self) -> Vec<String> {
        match self {
            CommandLine::Shell(s) => vec![s.clone()],
            CommandLine::Exec(v) => v.clone(),
        }
    }
}

/// `RUN --network` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkMode {
    /// The default network.
    Default,
    /// No network at all.
    None,
    /// The host's network.
    Host,
}

/// `RUN --security` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// The normal sandbox.
    Sandbox,
    /// Full privileges (needs an entitlement).
    Insecure,
}

/// One `--mount` flag: the text as written plus what it says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountFlag {
    /// The value after `--mount=`, unexpanded.
    pub spec: String,
    /// Where the flag is.
    pub span: Span,
    /// The mount read without expansion; fields holding `$` are unset
    /// here, so callers with variables re-read `spec` with
    /// [`RunMount::parse_with`].
    pub mount: RunMount,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Run {
    /// The command.
    pub command: CommandLine,
    /// Heredoc bodies (`RUN <<EOF`).
    pub heredocs: Vec<Heredoc>,
    /// `--mount` flags.
    pub mounts: Vec<MountFlag>,
    /// `--network`.
    pub network: Option<NetworkMode>,
    /// `--security`.
    pub security: Option<SecurityMode>,
}

/// One `key=value` pair of ENV or LABEL, quotes and escapes as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValue {
    /// The key as written.
    pub key: String,
    /// The value as written (quotes kept; expansion removes them).
    pub value: String,
}

/// The pairs of an ENV or LABEL instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyValues {
    /// The pairs in order.
    pub pairs: Vec<KeyValue>,
    /// Written in the legacy `KEY value` form (one pair, no `=`).
    pub legacy: bool,
}

/// A source of COPY or ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", content = "value", rename_all = "lowercase")]
pub enum CopySource {
    /// A path in the context (or stage, or image), a glob or a URL.
    Path(String),
    /// An inline file from a heredoc.
    Heredoc(Heredoc),
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FileCopy {
    /// The sources, in order.
    pub sources: Vec<CopySource>,
    /// The destination.
    pub dest: String,
    /// Written as a JSON array.
    pub json: bool,
    /// `--from` (COPY only).
    pub from: Option<String>,
    /// `--chown`.
    pub chown: Option<String>,
    /// `--chmod`.
    pub chmod: Option<String>,
    /// `--link`.
    pub link: bool,
    /// `--parents`.
    pub parents: bool,
    /// `--exclude`, repeatable.
    pub excludes: Vec<String>,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: Option<bool>,
    /// `--unpack` (ADD only).
    pub unpack: Option<bool>,
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArgDecl {
    /// The argument name.
    pub name: String,
    /// The default value as written, unexpanded.
    pub default: Option<String>,
}

/// ONBUILD: the trigger, parsed, plus its text as the image config stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Onbuild {
    /// The trigger instruction.
    pub trigger: Box<Command>,
    /// The trigger's text after `ONBUILD`, unexpanded, with its heredocs'
    /// bodies and delimiters on the lines after it (as BuildKit stores it).
    pub expression: String,
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    /// `HEALTHCHECK [options] CMD ...`.
    Cmd(HealthcheckCmd),
}

/// The options and test of `HEALTHCHECK CMD`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthcheckCmd {
    /// The test: `["CMD", args...]` for exec form, `["CMD-SHELL", text]` for
    /// shell form, as in the image config.
    pub test: Vec<String>,
    /// `--interval` (zero means the default).
    pub interval: Option<Duration>,
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--start-period`.
    pub start_period: Option<Duration>,
    /// `--start-interval`.
    pub start_interval: Option<Duration>,
    /// `--retries`.
    pub retries: Option<u32>,
}

/// An instruction kiln does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unknown {
    /// The keyword as written.
    pub keyword: String,
    /// Everything after the keyword and flags.
    pub args: String,
}
