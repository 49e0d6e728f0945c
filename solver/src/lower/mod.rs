//! Lowering: a parsed Dockerfile becomes a [`Graph`] plus the image config
//! of the target stage, with BuildKit's semantics (stages, ARG/ENV scoping,
//! config instructions, COPY/ADD options, ONBUILD triggers).
//!
//! Only stages the target needs are lowered; images are resolved through
//! an [`ImageResolver`] as they are met, so an unused stage's base is
//! never fetched.

mod copy;
mod history;
mod instructions;
mod run;
mod vars;

use crate::graph::{Graph, VertexId, VertexMeta};
use crate::op::{ContextSource, ImageSource, Op};
use crate::resolve_error::ResolveError;
use kiln_oci::{Digest, ImageConfig, Platform};
use kiln_parser::shell::Lexer;
use kiln_parser::{Command, Dockerfile, ParseError, Position};
use std::collections::BTreeMap;
use std::path::PathBuf;
use vars::Scope;

/// The default PATH BuildKit gives an image that has none.
pub(crate) const DEFAULT_PATH: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What shapes a build besides the Dockerfile.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// `--build-arg` values.
    pub build_args: BTreeMap<String, String>,
    /// `--target`: the stage to build (default: the last).
    pub target: Option<String>,
    /// The platform built for.
    pub platform: Platform,
    /// The platform the build runs on.
    pub build_platform: Platform,
    /// `--build-context NAME=VALUE`.
    pub named_contexts: BTreeMap<String, NamedContext>,
    /// `--network`: the network of RUN steps without `--network`
    /// (`default`, `host` or `none`).
    pub network: String,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            named_contexts: BTreeMap::new(),
            network: "default".into(),
        }
    }
}

/// The value of a `--build-context`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedContext {
    /// A local directory.
    Local(PathBuf),
    /// `docker-image://REF`.
    Image(String),
    /// `oci-layout://PATH[:TAG|@DIGEST]`.
    OciLayout(String),
}

impl std::str::FromStr for NamedContext {
    type Err = String;

    fn from_str(value: &str) -> std::result::Result<NamedContext, String> {
        if let Some(r) = value.strip_prefix("docker-image://") {
            return Ok(NamedContext::Image(r.to_string()));
        }
        if let Some(r) = value.strip_prefix("oci-layout://") {
            return Ok(NamedContext::OciLayout(r.to_string()));
        }
        if value.contains("://") {
            return Err(format!("unsupported build context source {value:?}"));
        }
        Ok(NamedContext::Local(PathBuf::from(value)))
    }
}

/// An image a FROM or `--from` resolved to.
#[derive(Debug, Clone)]
pub struct ResolvedImage {
    /// The normalised reference.
    pub reference: String,
    /// Its manifest digest (for the platform asked for).
    pub manifest: Digest,
    /// Its config.
    pub config: ImageConfig,
}

/// Resolves image references for FROM and `COPY --from` while lowering.
pub trait ImageResolver {
    /// The image `reference` names, for `platform`.
    ///
    /// # Errors
    /// Why it cannot be resolved (the caller adds the line).
    fn resolve(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError>;

    /// The image in an OCI layout (`PATH[:TAG|@DIGEST]`), for
    /// `--build-context NAME=oci-layout://...`.
    ///
    /// # Errors
    /// Why it cannot be read. The default refuses.
    fn resolve_layout(
        &self,
        layout: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        let _ = platform;
        Err(ResolveError::LayoutUnsupported {
            layout: layout.to_string(),
        })
    }
}

/// What lowering produced.
#[derive(Debug, Clone)]
pub struct Lowered {
    /// The graph.
    pub graph: Graph,
    /// The target stage's filesystem.
    pub root: VertexId,
    /// The target stage's image config (its `rootfs` still lists only the
    /// base image's layers; the solver adds the new ones).
    pub config: ImageConfig,
    /// Local directories the graph reads, by context name.
    pub contexts: BTreeMap<String, PathBuf>,
}

/// Why a Dockerfile cannot be lowered. Every variant that comes from an
/// instruction carries its position (`LINE:COL`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LowerError {
    /// A word did not expand, or an expanded value is invalid.
    #[error(transparent)]
    Expand(#[from] ParseError),
    /// The Dockerfile has ARGs but no FROM.
    #[error("{at}: dockerfile contains no stages to build")]
    NoStages {
        /// Where the file starts.
        at: Position,
    },
    /// An instruction kiln (and BuildKit) does not know.
    #[error("{at}: unknown instruction: {keyword}")]
    UnknownInstruction {
        /// Position.
        at: Position,
        /// The keyword as written.
        keyword: String,
    },
    /// Stages that depend on each other.
    #[error("{at}: circular dependency detected on stage: {stage}")]
    Circular {
        /// Position of the reference that closed the cycle.
        at: Position,
        /// The stage.
        stage: String,
    },
    /// `--target` names no stage.
    #[error("--target: target stage {0:?} could not be found")]
    NoTarget(String),
    /// An image could not be resolved.
    #[error("{at}: {reference}: {message}")]
    Image {
        /// Position.
        at: Position,
        /// The reference.
        reference: String,
        /// Why.
        message: String,
    },
    /// An instruction's value is invalid.
    #[error("{at}: {message}")]
    Invalid {
        /// Position (of the flag at fault when there is one).
        at: Position,
        /// What is wrong.
        message: String,
    },
}

impl LowerError {
    /// The Dockerfile position the error is about, when there is one.
    pub fn position(&self) -> Option<Position> {
        match self {
            LowerError::Expand(e) => Some(e.position),
            LowerError::NoStages { at }
            | LowerError::UnknownInstruction { at, .. }
            | LowerError::Circular { at, .. }
            | LowerError::Image { at, .. }
            | LowerError::Invalid { at, .. } => Some(*at),
            LowerError::NoTarget(_) => None,
        }
    }

    /// The Dockerfile line the error is about, when there is one.
    pub fn line(&self) -> Option<usize> {
        self.position().map(|p| p.line)
    }

    /// The message without its position.
    pub fn message(&self) -> String {
        match self {
            LowerError::Expand(e) => e.kind.to_string(),
            LowerError::NoStages { .. } => "dockerfile contains no stages to build".into(),
            LowerError::UnknownInstruction { keyword, .. } => {
                format!("unknown instruction: {keyword}")
            }
            LowerError::Circular { stage, .. } => {
                format!("circular dependency detected on stage: {stage}")
            }
            LowerError::Image {
                reference, message, ..
            } => format!("{reference}: {message}"),
            LowerError::Invalid { message, .. } => message.clone(),
            LowerError::NoTarget(_) => self.to_string(),
        }
    }
}

/// Shorthand for lowering results.
pub type Result<T> = std::result::Result<T, LowerError>;

/// How lowering a stage can stop: an error, or the need of another stage
/// that is not lowered yet (the driver lowers that one first and tries
/// again, so lowering never recurses on the depth of stage chains).
#[derive(Debug)]
pub(crate) enum Flow {
    /// A real error.
    Error(LowerError),
    /// Stage `0` must be lowered first; the reference is at `1`.
    Need(usize, Position),
}

impl From<LowerError> for Flow {
    fn from(e: LowerError) -> Flow {
        Flow::Error(e)
    }
}

impl From<ParseError> for Flow {
    fn from(e: ParseError) -> Flow {
        Flow::Error(LowerError::Expand(e))
    }
}

/// Results inside stage lowering.
pub(crate) type Step<T> = std::result::Result<T, Flow>;

/// The position of flag `--name` of `cmd` as written, else the
/// instruction's.
pub(crate) fn flag_at(cmd: &Command, name: &str) -> Position {
    cmd.flags
        .iter()
        .find(|f| {
            f.text
                .strip_prefix("--")
                .and_then(|t| t.strip_prefix(name))
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
        })
        .map(|f| f.span.start)
        .unwrap_or(cmd.span.start)
}

/// A lowered stage.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub(crate) vertex: VertexId,
    pub(crate) config: ImageConfig,
}

/// The state of the stage being lowered.
pub(crate) struct StageState {
    pub(crate) index: usize,
    pub(crate) name: String,
    pub(crate) vertex: VertexId,
    pub(crate) config: ImageConfig,
    pub(crate) scope: Scope,
    pub(crate) cmd_set: bool,
    pub(crate) platform: Platform,
    pub(crate) step: usize,
}

impl StageState {
    pub(crate) fn workdir(&self) -> String {
        self.config
            .config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".into())
    }

    pub(crate) fn shell(&self) -> Vec<String> {
        self.config
            .config
            .shell
            .clone()
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    pub(crate) fn meta(&self, cmd: &Command) -> VertexMeta {
        VertexMeta {
            name: format!("[{} {}] {}", self.name, self.step, cmd.original.trim()),
            line: Some(cmd.span.start.line),
            stage: Some(self.name.clone()),
        }
    }

    pub(crate) fn history(&mut self, created_by: String, empty_layer: bool) {
        self.config.history.push(kiln_oci::History {
            created_by: Some(created_by),
            comment: Some("buildkit.dockerfile.v0".into()),
            empty_layer,
            ..kiln_oci::History::default()
        });
    }
}

/// A stage waiting for a stage it needs: its state and where to go on.
pub(crate) struct Paused {
    state: StageState,
    triggers: Vec<Command>,
    /// The instruction to dispatch again (triggers first, then the
    /// stage's own).
    next: usize,
}

pub(crate) struct Lowerer<'a> {
    pub(crate) dockerfile: &'a Dockerfile,
    pub(crate) options: &'a BuildOptions,
    pub(crate) resolver: &'a dyn ImageResolver,
    pub(crate) graph: Graph,
    pub(crate) lexer: Lexer,
    pub(crate) global: BTreeMap<String, String>,
    pub(crate) global_declared: BTreeMap<String, Option<String>>,
    done: Vec<Option<StageOut>>,
    in_progress: Vec<bool>,
    /// Stages paused at an instruction that needs another stage.
    paused: Vec<Option<Paused>>,
    pub(crate) context: Option<VertexId>,
    pub(crate) contexts: BTreeMap<String, PathBuf>,
    pub(crate) context_dir: PathBuf,
}

/// Lowers `dockerfile` for `options`, reading the main context from
/// `context_dir` (recorded in [`Lowered::contexts`]).
///
/// # Errors
/// A [`LowerError`] naming the line of the instruction at fault.
pub fn lower(
    dockerfile: &Dockerfile,
    options: &BuildOptions,
    resolver: &dyn ImageResolver,
    context_dir: &std::path::Path,
) -> Result<Lowered> {
    let mut l = Lowerer {
        dockerfile,
        options,
        resolver,
        graph: Graph::new(),
        lexer: Lexer::new(dockerfile.escape),
        global: vars::predefined(&options.platform, &options.build_platform),
        global_declared: BTreeMap::new(),
        done: vec![None; dockerfile.stages.len()],
        in_progress: vec![false; dockerfile.stages.len()],
        paused: std::iter::repeat_with(|| None)
            .take(dockerfile.stages.len())
            .collect(),
        context: None,
        contexts: BTreeMap::new(),
        context_dir: context_dir.to_path_buf(),
    };
    l.global_args()?;
    if dockerfile.stages.is_empty() {
        return Err(LowerError::NoStages {
            at: Position::new(1, 1),
        });
    }
    let deps = static_deps(dockerfile);
    check_cycles(dockerfile, &deps)?;
    let target = match &options.target {
        Some(t) => dockerfile
            .stages
            .iter()
            .position(|s| s.name() == Some(t.to_ascii_lowercase().as_str()))
            .ok_or_else(|| LowerError::NoTarget(t.clone()))?,
        None => dockerfile.stages.len().saturating_sub(1),
    };
    let out = l.lower_target(target, &deps)?;
    Ok(Lowered {
        graph: l.graph,
        root: out.vertex,
        config: out.config,
        contexts: l.contexts,
    })
}

impl Lowerer<'_> {
    /// Evaluates the ARGs before the first FROM.
    fn global_args(&mut self) -> Result<()> {
        for cmd in &self.dockerfile.global_args {
            let expanded = cmd.expand(&self.lexer, &self.global)?;
            if let kiln_parser::Instruction::Arg(decls) = &expanded.instruction {
                for d in decls {
                    let value = self
                        .options
                        .build_args
                        .get(&d.name)
                        .cloned()
                        .or_else(|| d.default.clone());
                    self.global_declared.insert(d.name.clone(), value.clone());
                    if let Some(v) = value {
                        self.global.insert(d.name.clone(), v);
                    } else {
                        self.global.remove(&d.name);
                    }
                }
            }
        }
        Ok(())
    }

    /// The main build context's vertex.
    pub(crate) fn context_vertex(&mut self) -> VertexId {
        if let Some(v) = self.context {
            return v;
        }
        let v = self.graph.add(
            Op::Context(ContextSource {
                name: "context".into(),
            }),
            vec![],
            VertexMeta {
                name: "[context] load build context".into(),
                line: None,
                stage: None,
            },
        );
        self.contexts
            .insert("context".into(), self.context_dir.clone());
        self.context = Some(v);
        v
    }

    /// The vertex of a named local context.
    pub(crate) fn named_context_vertex(&mut self, name: &str, dir: &std::path::Path) -> VertexId {
        let v = self.graph.add(
            Op::Context(ContextSource {
                name: name.to_string(),
            }),
            vec![],
            VertexMeta {
                name: format!("[context {name}] load build context"),
                line: None,
                stage: None,
            },
        );
        self.contexts.insert(name.to_string(), dir.to_path_buf());
        v
    }

    /// Finds a stage by name (case-insensitive) or index.
    pub(crate) fn find_stage(&self, name: &str) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self
            .dockerfile
            .stages
            .iter()
            .position(|s| s.name() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>()
            .ok()
            .filter(|i| *i < self.dockerfile.stages.len())
    }

    /// Lowers stage `target` and, first, every stage it needs, with an
    /// explicit work stack: a chain of thousands of stages needs no deeper
    /// native stack than one stage. `deps` are the stage references as
    /// written (lowered before a stage is tried); at a reference only known
    /// after expansion, the stage pauses until the one it names is
    /// lowered.
    fn lower_target(&mut self, target: usize, deps: &[Vec<(usize, Position)>]) -> Result<StageOut> {
        // (stage, whether its written references were pushed already)
        let mut work = vec![(target, false)];
        while let Some(&(index, pushed)) = work.last() {
            if self.done[index].is_some() {
                work.pop();
                continue;
            }
            self.in_progress[index] = true;
            if !pushed {
                if let Some(top) = work.last_mut() {
                    top.1 = true;
                }
                let waiting: Vec<usize> = deps[index]
                    .iter()
                    .map(|(j, _)| *j)
                    .filter(|j| *j != index && self.done[*j].is_none() && !self.in_progress[*j])
                    .collect();
                if !waiting.is_empty() {
                    work.extend(waiting.into_iter().rev().map(|j| (j, false)));
                    continue;
                }
            }
            match self.lower_stage(index) {
                Ok(out) => {
                    self.done[index] = Some(out);
                    self.in_progress[index] = false;
                    work.pop();
                }
                Err(Flow::Need(dep, at)) if self.in_progress[dep] => {
                    return Err(LowerError::Circular {
                        at,
                        stage: self.stage_name(dep),
                    });
                }
                Err(Flow::Need(dep, _)) => work.push((dep, false)),
                Err(Flow::Error(e)) => return Err(e),
            }
        }
        self.done[target]
            .clone()
            .ok_or(LowerError::NoTarget(target.to_string()))
    }

    /// A stage's name, or its index when it has none.
    fn stage_name(&self, index: usize) -> String {
        self.dockerfile.stages[index]
            .name()
            .map(str::to_string)
            .unwrap_or_else(|| index.to_string())
    }

    /// The output of stage `index`, referenced at `at`; when it is not
    /// lowered yet, [`Flow::Need`] asks the driver to lower it first.
    pub(crate) fn stage(&mut self, index: usize, at: Position) -> Step<StageOut> {
        match &self.done[index] {
            Some(out) => Ok(out.clone()),
            None => Err(Flow::Need(index, at)),
        }
    }

    /// The `--build-context` a FROM or `--from` name selects, matched the
    /// way BuildKit matches: the familiar name with its tag, then without a
    /// `:latest` tag.
    pub(crate) fn named_context(&self, name: &str) -> Option<(String, NamedContext)> {
        let contexts = &self.options.named_contexts;
        if contexts.is_empty() {
            return None;
        }
        let mut candidates = vec![name.to_string()];
        if let Ok(r) = kiln_oci::Reference::parse(name) {
            let familiar = r.familiar();
            if let Some(bare) = familiar.strip_suffix(":latest") {
                candidates.push(bare.to_string());
            }
            candidates.insert(0, familiar);
        }
        candidates
            .into_iter()
            .find_map(|c| contexts.get(&c).map(|v| (c, v.clone())))
    }

    /// Resolves an image reference into an image vertex and its config,
    /// honouring `--build-context` replacements.
    pub(crate) fn image(
        &mut self,
        reference: &str,
        platform: &Platform,
        at: Position,
    ) -> Result<(VertexId, ImageConfig)> {
        let resolved = self
            .lookup_image(reference, platform)
            .map_err(|e| LowerError::Image {
                at,
                reference: reference.to_string(),
                message: e.to_string(),
            })?;
        let vertex = self.graph.add(
            Op::Image(ImageSource {
                reference: resolved.reference.clone(),
                manifest: resolved.manifest.to_string(),
                platform: platform.to_string(),
            }),
            vec![],
            VertexMeta {
                name: format!("[internal] load {}", resolved.reference),
                line: Some(at.line),
                stage: None,
            },
        );
        Ok((vertex, resolved.config))
    }

    /// Asks the resolver for `reference`, honouring `--build-context`.
    fn lookup_image(
        &self,
        reference: &str,
        platform: &Platform,
    ) -> std::result::Result<ResolvedImage, ResolveError> {
        match self.named_context(reference) {
            Some((_, NamedContext::Image(r))) => self.resolver.resolve(&r, platform),
            Some((_, NamedContext::OciLayout(layout))) => {
                self.resolver.resolve_layout(&layout, platform)
            }
            Some((name, NamedContext::Local(_))) => Err(ResolveError::LocalContext { name }),
            None => self.resolver.resolve(reference, platform),
        }
    }

    /// Lowers stage `index`, or goes on where it paused for a stage it
    /// needed (so a stage that needs many is not lowered again for each).
    fn lower_stage(&mut self, index: usize) -> Step<StageOut> {
        let (mut state, triggers, start) = match self.paused[index].take() {
            Some(p) => (p.state, p.triggers, p.next),
            None => {
                let (state, triggers) = self.begin_stage(index)?;
                (state, triggers, 0)
            }
        };
        let commands = &self.dockerfile.stages[index].commands;
        for i in start..triggers.len() + commands.len() {
            let cmd = match i.checked_sub(triggers.len()) {
                Some(c) => &commands[c],
                None => &triggers[i],
            };
            let step = state.step;
            if let Err(e) = self.dispatch(&mut state, cmd) {
                if let Flow::Need(..) = e {
                    // Only the step count changes before a need is met.
                    state.step = step;
                    self.paused[index] = Some(Paused {
                        state,
                        triggers,
                        next: i,
                    });
                }
                return Err(e);
            }
        }
        Ok(StageOut {
            vertex: state.vertex,
            config: state.config,
        })
    }

    /// A stage's FROM: its state before its first instruction, and the
    /// ONBUILD triggers of its base (moved to the FROM's position).
    fn begin_stage(&mut self, index: usize) -> Step<(StageState, Vec<Command>)> {
        let dockerfile = self.dockerfile;
        let stage = &dockerfile.stages[index];
        let from_cmd = stage.from.expand(&self.lexer, &self.global)?;
        let kiln_parser::Instruction::From(from) = &from_cmd.instruction else {
            return Err(LowerError::Invalid {
                at: stage.from.span.start,
                message: "a stage must start with FROM".into(),
            }
            .into());
        };
        let at = stage.from.span.start;
        let platform = match &from.platform {
            Some(p) if !p.is_empty() => p.parse::<Platform>().map_err(|e| LowerError::Invalid {
                at: flag_at(&stage.from, "platform"),
                message: format!("FROM --platform: {e}"),
            })?,
            _ => self.options.platform.clone(),
        };
        let base_name = from.image.clone();
        let (vertex, mut config, from_stage) = if base_name.eq_ignore_ascii_case("scratch") {
            let v = self.graph.add(Op::Scratch, vec![], VertexMeta::default());
            let mut config = ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                // BuildKit leaves arm64's default v8 out.
                variant: Some(platform.short_variant().to_string()).filter(|v| !v.is_empty()),
                ..ImageConfig::default()
            };
            config.config.working_dir = Some("/".into());
            (v, config, false)
        } else if let Some(parent) = self.find_stage(&base_name).filter(|i| *i < index) {
            let out = self.stage(parent, at)?;
            (out.vertex, out.config, true)
        } else {
            let (v, c) = self.image(&base_name, &platform, at)?;
            (v, c, false)
        };
        let _ = from_stage;
        // Every image gets a PATH.
        let env = config.config.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        let mut scope = Scope::default();
        for e in config.config.env.iter().flatten() {
            if let Some((k, v)) = e.split_once('=') {
                scope.set(k, v, false);
            }
        }
        let triggers = config.config.on_build.take().unwrap_or_default();
        let state = StageState {
            index,
            name: stage
                .name()
                .map(str::to_string)
                .unwrap_or_else(|| format!("stage-{index}")),
            vertex,
            config,
            scope,
            cmd_set: false,
            platform,
            step: 0,
        };
        let mut commands = Vec::new();
        for trigger in triggers {
            let parsed =
                kiln_parser::parse(&format!("FROM scratch\n{trigger}\n")).map_err(|e| {
                    LowerError::Invalid {
                        at,
                        message: format!("ONBUILD trigger {trigger:?} of the base image: {e}"),
                    }
                })?;
            for stage in &parsed.stages {
                // Triggers report the FROM's position.
                commands.extend(stage.commands.iter().map(|cmd| moved_to(cmd, at)));
            }
        }
        Ok((state, commands))
    }
}

/// Each stage's references to other stages as written (FROM and `COPY
/// --from` naming a stage), with where they are.
fn static_deps(dockerfile: &Dockerfile) -> Vec<Vec<(usize, Position)>> {
    let stages = &dockerfile.stages;
    let find = |name: &str| {
        let lower = name.to_ascii_lowercase();
        stages
            .iter()
            .position(|s| s.name() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().filter(|i| *i < stages.len()))
    };
    stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let mut d = Vec::new();
            if let Some(j) = find(&stage.base().image).filter(|j| *j < i) {
                d.push((j, stage.from.span.start));
            }
            for cmd in &stage.commands {
                if let kiln_parser::Instruction::Copy(c) = &cmd.instruction {
                    if let Some(j) = c.from.as_deref().and_then(&find) {
                        d.push((j, flag_at(cmd, "from")));
                    }
                }
            }
            d
        })
        .collect()
}

/// Finds stage cycles the way BuildKit does: a depth-first walk of the
/// stages in file order, so the error names the first stage of the cycle.
/// The walk keeps its own stack, so chains of any length are fine.
fn check_cycles(dockerfile: &Dockerfile, deps: &[Vec<(usize, Position)>]) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Open,
        Done,
    }
    let mut mark = vec![Mark::New; deps.len()];
    for root in 0..deps.len() {
        if mark[root] != Mark::New {
            continue;
        }
        mark[root] = Mark::Open;
        // (stage, index of its next reference to follow)
        let mut stack = vec![(root, 0usize)];
        while let Some((i, next)) = stack.last_mut() {
            let Some(&(j, at)) = deps[*i].get(*next) else {
                mark[*i] = Mark::Done;
                stack.pop();
                continue;
            };
            *next += 1;
            match mark[j] {
                Mark::Done => {}
                Mark::Open => {
                    return Err(LowerError::Circular {
                        at,
                        stage: dockerfile.stages[j]
                            .name()
                            .map(str::to_string)
                            .unwrap_or_else(|| j.to_string()),
                    })
                }
                Mark::New => {
                    mark[j] = Mark::Open;
                    stack.push((j, 0));
                }
            }
        }
    }
    Ok(())
}

/// A trigger moved to the FROM that fired it (its flags too).
fn moved_to(cmd: &Command, at: Position) -> Command {
    let mut cmd = cmd.clone();
    cmd.span = kiln_parser::Span::point(at);
    for flag in &mut cmd.flags {
        flag.span = kiln_parser::Span::point(at);
    }
    cmd
}
