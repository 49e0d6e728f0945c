//! One stage: its state while lowered, its FROM (with the base's ONBUILD
//! triggers), and its instructions, paused and resumed when one needs a
//! stage that is not lowered yet.

use super::vars::Scope;
use super::{flag_at, Flow, LowerError, Lowerer, Step, DEFAULT_PATH};
use crate::graph::{VertexId, VertexMeta};
use crate::op::Op;
use kiln_oci::{ImageConfig, Platform};
use kiln_parser::{Command, Position};

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
    /// The platform RUN steps run as: the base's, as its config says (a
    /// stage on a `FROM --platform=$BUILDPLATFORM` stage runs natively).
    pub(crate) fn run_platform(&self) -> Platform {
        if self.config.architecture.is_empty() || self.config.os.is_empty() {
            return self.platform.clone();
        }
        Platform::new(
            &self.config.os,
            &self.config.architecture,
            self.config.variant.as_deref().unwrap_or(""),
        )
    }

    /// The working directory steps run in: the config's, cleaned (the
    /// config keeps an absolute WORKDIR as written).
    pub(crate) fn workdir(&self) -> String {
        match self.config.config.working_dir.as_deref() {
            Some(w) if !w.is_empty() => super::instructions::clean_path(&format!("/{w}")),
            _ => "/".into(),
        }
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

impl Lowerer<'_> {
    /// Lowers stage `index`, or goes on where it paused for a stage it
    /// needed (so a stage that needs many is not lowered again for each).
    pub(super) fn lower_stage(&mut self, index: usize) -> Step<StageOut> {
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
        let (vertex, mut config) = if base_name.eq_ignore_ascii_case("scratch") {
            let v = self.graph.add(Op::Scratch, vec![], VertexMeta::default());
            let mut config = ImageConfig {
                architecture: platform.architecture.clone(),
                os: platform.os.clone(),
                // BuildKit leaves arm64's default v8 out.
                variant: Some(platform.short_variant().to_string()).filter(|v| !v.is_empty()),
                ..ImageConfig::default()
            };
            config.config.working_dir = Some("/".into());
            (v, config)
        } else if let Some(parent) =
            super::order::stage_index(&self.dockerfile.stages, &base_name, Some(index))
        {
            let out = self.stage(parent, at)?;
            (out.vertex, out.config)
        } else {
            let (v, c) = self.image(&base_name, &platform, at)?;
            (v, c)
        };
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

/// A trigger moved to the FROM that fired it (its flags too).
fn moved_to(cmd: &Command, at: Position) -> Command {
    let mut cmd = cmd.clone();
    cmd.span = kiln_parser::Span::point(at);
    for flag in &mut cmd.flags {
        flag.span = kiln_parser::Span::point(at);
    }
    cmd
}
