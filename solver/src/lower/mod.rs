//! Lowering: a parsed Dockerfile becomes a [`Graph`] plus the image config
//! of the target stage, with BuildKit's semantics (stages, ARG/ENV scoping,
//! config instructions, COPY/ADD options, ONBUILD triggers).
//!
//! Only stages the target needs are lowered; images are resolved through
//! an [`ImageResolver`] as they are met, so an unused stage's base is
//! never fetched.

mod copy;
mod error;
mod history;
mod instructions;
mod order;
mod run;
mod sources;
mod stage;
mod vars;

pub(crate) use error::{Flow, Step};
pub use error::{LowerError, Result};
pub use sources::{import_lowered, ImageResolver, LinkedTarget, NamedContext, ResolvedImage};
use stage::Paused;
pub(crate) use stage::{StageOut, StageState};

use crate::graph::{Graph, VertexId};
use crate::op::NetworkMode;
use kiln_oci::{ImageConfig, Platform};
use kiln_parser::instruction::ArgDecl;
use kiln_parser::shell::Lexer;
use kiln_parser::{Command, Dockerfile, Position};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// `--network`: the network of RUN steps without `--network`.
    pub network: NetworkMode,
    /// `--add-host NAME:IP`: extra `/etc/hosts` entries of RUN steps, in
    /// order.
    pub extra_hosts: Vec<(String, std::net::IpAddr)>,
    /// `--shm-size`, `--ulimit` and `--cgroup-parent`: the resources of
    /// every RUN step.
    pub run_resources: kiln_executor::Resources,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            build_args: BTreeMap::new(),
            target: None,
            platform: Platform::host(),
            build_platform: Platform::host(),
            named_contexts: BTreeMap::new(),
            network: NetworkMode::Default,
            extra_hosts: Vec::new(),
            run_resources: kiln_executor::Resources::default(),
        }
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

/// The lowering of one Dockerfile: the graph being built, the global ARGs,
/// and what became of each stage.
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
    let deps = order::static_deps(dockerfile);
    order::check_cycles(dockerfile, &deps)?;
    let target = match &options.target {
        Some(t) => order::stage_index(&dockerfile.stages, t, Some(dockerfile.stages.len()))
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
                    let value = self.arg_value(d);
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

    /// An ARG's own value: its `--build-arg`, else its default.
    pub(crate) fn arg_value(&self, decl: &ArgDecl) -> Option<String> {
        self.options
            .build_args
            .get(&decl.name)
            .cloned()
            .or_else(|| decl.default.clone())
    }
}
