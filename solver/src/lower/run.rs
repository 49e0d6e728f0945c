//! RUN: the process, its environment, network and security mode, and its
//! `--mount`s (whose sources become extra inputs of the exec vertex).

use super::instructions::{clean_path, heredoc_file, heredoc_script, set_env};
use super::{history, Flow, LowerError, Lowerer, StageState, Step};
use crate::graph::VertexId;
use crate::op::{CacheSharing, ExecMount, ExecOp, MountSource, NetworkMode, Op, SecurityMode};
use kiln_parser::instruction::{self as parsed, CommandLine, MountType, Run, RunMount, Sharing};
use kiln_parser::Command;

impl Lowerer<'_> {
    /// Lowers a RUN instruction to an exec vertex.
    pub(crate) fn run(&mut self, st: &mut StageState, cmd: &Command, run: &Run) -> Step<()> {
        let mut files = Vec::new();
        let argv = match &run.command {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(text) => {
                let mut argv = st.shell();
                argv.push(heredoc_script(text, &run.heredocs));
                if let Some(file) = heredoc_file(text, &run.heredocs) {
                    files.push(file);
                }
                argv
            }
        };
        let mut env = Some(st.config.config.env.clone().unwrap_or_default());
        for (k, v) in st.scope.live_args() {
            set_env(&mut env, &k, &v);
        }
        // The proxy ARGs reach RUN without a declaration, and never the
        // history.
        for &name in super::vars::PROXY_ARGS {
            if let Some(v) = self.options.build_args.get(name) {
                set_env(&mut env, name, v);
            }
        }
        let mut inputs = vec![st.vertex];
        let mut mounts = Vec::new();
        let mut ssh_count = 0;
        for flag in &run.mounts {
            let mount = self
                .exec_mount(
                    st,
                    &flag.mount,
                    &mut inputs,
                    &mut ssh_count,
                    flag.span.start,
                )
                .map_err(|e| match e {
                    Flow::Error(LowerError::Invalid { at, message }) => {
                        Flow::Error(LowerError::Invalid {
                            at,
                            message: format!("--mount={}: {message}", flag.spec),
                        })
                    }
                    other => other,
                })?;
            // The first forwarded agent is the one ssh clients find.
            if let ExecMount::Ssh { target, .. } = &mount {
                if ssh_count == 1 {
                    set_env(&mut env, "SSH_AUTH_SOCK", target);
                }
            }
            mounts.push(mount);
        }
        let exec = ExecOp {
            args: argv.clone(),
            env: env.unwrap_or_default(),
            cwd: st.workdir(),
            user: st.config.config.user.clone().unwrap_or_default(),
            network: match run.network {
                Some(parsed::NetworkMode::None) => NetworkMode::None,
                Some(parsed::NetworkMode::Host) => NetworkMode::Host,
                Some(parsed::NetworkMode::Default) | None => self.options.network,
            },
            security: match run.security {
                Some(parsed::SecurityMode::Insecure) => SecurityMode::Insecure,
                Some(parsed::SecurityMode::Sandbox) | None => SecurityMode::Sandbox,
            },
            files,
            mounts,
            extra_hosts: self.options.extra_hosts.clone(),
            shm_size: self.options.run_resources.shm_size,
            ulimits: self.options.run_resources.ulimits.clone(),
            cgroup_parent: self.options.run_resources.cgroup_parent.clone(),
            platform: st.run_platform().short_string(),
        };
        let meta = st.meta(cmd);
        st.vertex = self.graph.add(Op::Exec(exec), inputs, meta);
        st.history(history::run(&st.scope.declared_args(), &argv), false);
        Ok(())
    }

    /// One `--mount`; its source (for `bind` and a seeded `cache`) is
    /// added to `inputs`.
    fn exec_mount(
        &mut self,
        st: &StageState,
        spec: &RunMount,
        inputs: &mut Vec<VertexId>,
        ssh_count: &mut usize,
        at: kiln_parser::Position,
    ) -> Step<ExecMount> {
        let invalid = |message: &str| LowerError::Invalid {
            at,
            message: message.to_string(),
        };
        let workdir = st.workdir();
        let abs = |t: &str| {
            if t.starts_with('/') {
                clean_path(t)
            } else {
                clean_path(&format!("{workdir}/{t}"))
            }
        };
        let source_path = |s: Option<&str>| clean_path(&format!("/{}", s.unwrap_or("")));
        Ok(match spec.kind {
            MountType::Bind => {
                let target = abs(spec
                    .target
                    .as_deref()
                    .ok_or_else(|| invalid("a bind mount needs a target"))?);
                let reader = super::copy::Reader::Mount {
                    target: spec.target.as_deref().unwrap_or_default(),
                };
                let vertex = self.source_vertex(st, spec.from.as_deref(), at, reader)?;
                inputs.push(vertex);
                ExecMount::Bind {
                    target,
                    source: MountSource {
                        input: inputs.len() - 1,
                        path: source_path(spec.source.as_deref()),
                    },
                    readonly: spec.readonly,
                }
            }
            MountType::Cache => {
                let target = abs(spec
                    .target
                    .as_deref()
                    .ok_or_else(|| invalid("a cache mount needs a target"))?);
                let seed = match spec.from.as_deref().filter(|f| !f.is_empty()) {
                    Some(from) => {
                        let reader = super::copy::Reader::Mount {
                            target: spec.target.as_deref().unwrap_or_default(),
                        };
                        let vertex = self.source_vertex(st, Some(from), at, reader)?;
                        inputs.push(vertex);
                        Some(MountSource {
                            input: inputs.len() - 1,
                            path: source_path(spec.source.as_deref()),
                        })
                    }
                    None => None,
                };
                ExecMount::Cache {
                    id: spec
                        .id
                        .clone()
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| target.clone()),
                    target,
                    mode: spec.mode.unwrap_or(0o755),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    sharing: match spec.sharing {
                        Some(Sharing::Locked) => CacheSharing::Locked,
                        Some(Sharing::Private) => CacheSharing::Private,
                        Some(Sharing::Shared) | None => CacheSharing::Shared,
                    },
                    readonly: spec.readonly,
                    seed,
                    owner_given: spec.uid.is_some() || spec.gid.is_some() || spec.mode.is_some(),
                }
            }
            MountType::Secret => {
                let id = spec
                    .id
                    .clone()
                    .filter(|i| !i.is_empty())
                    .or_else(|| {
                        spec.target
                            .as_deref()
                            .and_then(|t| t.rsplit('/').find(|c| !c.is_empty()))
                            .map(str::to_string)
                    })
                    .ok_or_else(|| invalid("a secret mount needs an id or a target"))?;
                // With only env=, the secret is not a file.
                let target = match (&spec.target, &spec.env) {
                    (Some(t), _) => Some(abs(t)),
                    (None, Some(_)) => None,
                    (None, None) => Some(format!("/run/secrets/{id}")),
                };
                ExecMount::Secret {
                    id,
                    target,
                    env: spec.env.clone().filter(|e| !e.is_empty()),
                    mode: spec.mode.unwrap_or(0o400),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    required: spec.required,
                }
            }
            MountType::Ssh => {
                *ssh_count += 1;
                ExecMount::Ssh {
                    id: spec
                        .id
                        .clone()
                        .filter(|i| !i.is_empty())
                        .unwrap_or_else(|| "default".into()),
                    target: spec
                        .target
                        .as_deref()
                        .map(abs)
                        .unwrap_or_else(|| format!("/run/buildkit/ssh_agent.{}", *ssh_count - 1)),
                    mode: spec.mode.unwrap_or(0o600),
                    uid: spec.uid.unwrap_or(0),
                    gid: spec.gid.unwrap_or(0),
                    required: spec.required,
                }
            }
            MountType::Tmpfs => ExecMount::Tmpfs {
                target: abs(spec
                    .target
                    .as_deref()
                    .ok_or_else(|| invalid("a tmpfs mount needs a target"))?),
                size: spec.size,
            },
        })
    }
}
