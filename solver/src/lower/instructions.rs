//! One function per instruction family: how each changes the stage's
//! filesystem vertex, image config, variables and history.

use super::history;
use super::{LowerError, Lowerer, StageState, Step};
use crate::op::{FileAction, FileOp, Op, Owner};
use kiln_oci::HealthConfig;
use kiln_parser::instruction::{CommandLine, Healthcheck};
use kiln_parser::{Command, Instruction};
use std::collections::BTreeMap;

impl Lowerer<'_> {
    /// Applies one instruction to the stage.
    pub(crate) fn dispatch(&mut self, st: &mut StageState, cmd: &Command) -> Step<()> {
        st.step += 1;
        let at = cmd.span.start;
        // CMD, ENTRYPOINT, SHELL, ONBUILD and RUN's command are not
        // expanded (RUN's shell does it); `expand` knows which words are.
        let env = st.scope.expansion_env();
        let expanded = cmd.expand(&self.lexer, &env)?;
        match &expanded.instruction {
            Instruction::From(_) => Err(LowerError::Invalid {
                at,
                message: "FROM inside a stage".into(),
            }
            .into()),
            Instruction::Env(kv) => {
                let mut text = Vec::new();
                for pair in &kv.pairs {
                    set_env(&mut st.config.config.env, &pair.key, &pair.value);
                    st.scope.set(&pair.key, &pair.value, false);
                    text.push(format!("{}={}", pair.key, pair.value));
                }
                st.history(format!("ENV {}", text.join(" ")), true);
                Ok(())
            }
            Instruction::Label(kv) => {
                let labels = st.config.config.labels.get_or_insert_with(BTreeMap::new);
                let mut text = Vec::new();
                for pair in &kv.pairs {
                    labels.insert(pair.key.clone(), pair.value.clone());
                    text.push(format!("{}={}", pair.key, pair.value));
                }
                st.history(format!("LABEL {}", text.join(" ")), true);
                Ok(())
            }
            Instruction::Maintainer(name) => {
                st.config.author = Some(name.clone());
                st.history(format!("MAINTAINER {name}"), true);
                Ok(())
            }
            Instruction::Expose(ports) => {
                let mut these = BTreeMap::new();
                for p in ports {
                    for port in
                        expand_port(p).map_err(|message| LowerError::Invalid { at, message })?
                    {
                        these.insert(port, serde_json::json!({}));
                    }
                }
                let all = st
                    .config
                    .config
                    .exposed_ports
                    .get_or_insert_with(BTreeMap::new);
                all.extend(these.clone());
                st.history(history::expose(&these), true);
                Ok(())
            }
            Instruction::Volume(paths) => {
                let all = st.config.config.volumes.get_or_insert_with(BTreeMap::new);
                for p in paths {
                    all.insert(p.clone(), serde_json::json!({}));
                }
                st.history(format!("VOLUME {}", history::go_list(paths)), true);
                Ok(())
            }
            Instruction::User(user) => {
                st.config.config.user = Some(user.clone());
                st.history(format!("USER {user}"), true);
                Ok(())
            }
            Instruction::Stopsignal(sig) => {
                st.config.config.stop_signal = Some(sig.clone());
                st.history(format!("STOPSIGNAL {sig}"), true);
                Ok(())
            }
            Instruction::Workdir(dir) => self.workdir(st, cmd, dir),
            Instruction::Healthcheck(h) => {
                let config = match h {
                    Healthcheck::None => HealthConfig {
                        test: Some(vec!["NONE".into()]),
                        ..HealthConfig::default()
                    },
                    Healthcheck::Cmd(c) => HealthConfig {
                        test: Some(c.test.clone()),
                        interval: c.interval.map(nanos),
                        timeout: c.timeout.map(nanos),
                        start_period: c.start_period.map(nanos),
                        start_interval: c.start_interval.map(nanos),
                        retries: c.retries,
                    },
                };
                st.history(history::healthcheck(&config), true);
                st.config.config.healthcheck = Some(config);
                Ok(())
            }
            Instruction::Cmd(line_) => {
                let argv = self.command_argv(st, line_);
                st.history(format!("CMD {}", history::go_quoted_list(&argv)), true);
                st.config.config.cmd = (!argv.is_empty()).then_some(argv);
                st.config.config.args_escaped = true;
                st.cmd_set = true;
                Ok(())
            }
            Instruction::Entrypoint(line_) => {
                let argv = self.command_argv(st, line_);
                st.history(
                    format!("ENTRYPOINT {}", history::go_quoted_list(&argv)),
                    true,
                );
                st.config.config.entrypoint = (!argv.is_empty()).then_some(argv);
                // An ENTRYPOINT resets a CMD inherited from the base, not
                // one set earlier in this stage.
                if !st.cmd_set {
                    st.config.config.cmd = None;
                }
                Ok(())
            }
            Instruction::Shell(shell) => {
                st.config.config.shell = Some(shell.clone());
                st.history(format!("SHELL {}", history::go_list(shell)), true);
                Ok(())
            }
            Instruction::Onbuild(o) => {
                st.config
                    .config
                    .on_build
                    .get_or_insert_with(Vec::new)
                    .push(o.expression.clone());
                Ok(())
            }
            Instruction::Arg(decls) => {
                let mut text = Vec::new();
                for d in decls {
                    let value =
                        self.arg_value(d)
                            .or_else(|| match self.global_declared.get(&d.name) {
                                Some(v) => v.clone(),
                                None => self.global.get(&d.name).cloned(),
                            });
                    // Without a value from anywhere, an ARG leaves what the
                    // stage already has under that name (BuildKit adds no
                    // env then): `ARG C=x` then `ARG C` keeps x.
                    st.scope.declare(&d.name, value.as_deref());
                    text.push(match &d.default {
                        Some(def) => format!("{}={def}", d.name),
                        None => d.name.clone(),
                    });
                }
                st.history(format!("ARG {}", text.join(" ")), true);
                Ok(())
            }
            Instruction::Copy(c) => self.copy(st, cmd, c, false),
            Instruction::Add(c) => self.copy(st, cmd, c, true),
            Instruction::Run(run) => self.run(st, cmd, run),
            Instruction::Unknown(u) => Err(LowerError::UnknownInstruction {
                at,
                keyword: u.keyword.clone(),
            }
            .into()),
        }
    }

    /// CMD/ENTRYPOINT argv: exec form as is, shell form through SHELL.
    fn command_argv(&self, st: &StageState, line: &CommandLine) -> Vec<String> {
        match line {
            CommandLine::Exec(args) => args.clone(),
            CommandLine::Shell(text) => {
                let mut argv = st.shell();
                argv.push(text.clone());
                argv
            }
        }
    }

    /// WORKDIR, as BuildKit: an absolute path is kept in the config as
    /// written (a relative one is joined and cleaned), the cleaned path is
    /// made, and `WORKDIR /` makes no layer.
    fn workdir(&mut self, st: &mut StageState, cmd: &Command, dir: &str) -> Step<()> {
        let written = if dir.starts_with('/') {
            dir.to_string()
        } else {
            clean_path(&format!("{}/{dir}", st.workdir()))
        };
        st.config.config.working_dir = Some(written.clone());
        if written == "/" {
            st.history("WORKDIR /".to_string(), true);
            return Ok(());
        }
        let owner = st
            .config
            .config
            .user
            .as_deref()
            .filter(|u| !u.is_empty())
            .map(owner_spec);
        let op = Op::File(FileOp {
            actions: vec![FileAction::Mkdir {
                path: clean_path(&written),
                mode: 0o755,
                owner,
                parents: true,
            }],
        });
        let meta = st.meta(cmd);
        st.vertex = self.graph.add(op, vec![st.vertex], meta);
        st.history(format!("WORKDIR {written}"), false);
        Ok(())
    }
}

/// The `#!` script file a RUN that is only a heredoc runs from
/// `/dev/pipes/NAME`.
pub(crate) fn heredoc_file(
    text: &str,
    heredocs: &[kiln_parser::Heredoc],
) -> Option<crate::op::ExecFile> {
    let script = heredoc_script(text, heredocs);
    let h = heredocs.first()?;
    (heredocs.len() == 1 && script == format!("/dev/pipes/{}", h.name)).then(|| {
        crate::op::ExecFile {
            path: script,
            data: h.chomped_content().into_bytes(),
        }
    })
}

/// The script a shell-form RUN hands its shell, with BuildKit's heredoc
/// rules: a command that is only a heredoc runs the heredoc's body (a `#!`
/// script is run from `/dev/pipes/NAME`); otherwise the bodies follow the
/// command line, each closed by its delimiter.
pub(crate) fn heredoc_script(text: &str, heredocs: &[kiln_parser::Heredoc]) -> String {
    if heredocs.is_empty() {
        return text.to_string();
    }
    let only_marker = heredocs.len() == 1 && {
        let t = text.trim();
        let name = &heredocs[0].name;
        [
            format!("<<{name}"),
            format!("<<-{name}"),
            format!("<<'{name}'"),
            format!("<<\"{name}\""),
            format!("<<-'{name}'"),
            format!("<<-\"{name}\""),
        ]
        .iter()
        .any(|m| t == m)
    };
    if only_marker {
        let body = heredocs[0].chomped_content();
        if body.starts_with("#!") {
            return format!("/dev/pipes/{}", heredocs[0].name);
        }
        return body;
    }
    let bodies: Vec<String> = heredocs
        .iter()
        .map(|h| format!("{}{}", h.chomped_content(), h.name))
        .collect();
    format!("{text}\n{}", bodies.join("\n"))
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Sets `KEY=value` in an env list, replacing an existing entry in place.
pub(crate) fn set_env(env: &mut Option<Vec<String>>, key: &str, value: &str) {
    let env = env.get_or_insert_with(Vec::new);
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map(|(k, _)| k) == Some(key))
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// `user[:group]` as an [`Owner`]: numeric ids when both parts are numbers.
pub(crate) fn owner_spec(spec: &str) -> Owner {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    match (user.parse::<u32>(), group.map(|g| g.parse::<u32>())) {
        (Ok(uid), None) => Owner::Ids { uid, gid: uid },
        (Ok(uid), Some(Ok(gid))) => Owner::Ids { uid, gid },
        _ => Owner::Names {
            user: user.to_string(),
            group: group.map(str::to_string),
        },
    }
}

/// `8000-8002/TCP` → `8000/tcp`, `8001/tcp`, `8002/tcp`.
fn expand_port(spec: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    let bad = || format!("invalid port {spec:?}");
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (
            a.parse::<u16>().map_err(|_| bad())?,
            b.parse::<u16>().map_err(|_| bad())?,
        ),
        None => {
            let p = ports.parse::<u16>().map_err(|_| bad())?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(bad());
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// Lexically cleans an absolute path (Go's `path.Clean`).
pub(crate) fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    format!("/{}", parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(expand_port("80").expect("ok"), vec!["80/tcp"]);
        assert_eq!(expand_port("9000/TCP").expect("ok"), vec!["9000/tcp"]);
        assert_eq!(expand_port("8000-8002").expect("ok").len(), 3);
        assert!(expand_port("x").is_err());
    }

    #[test]
    fn clean() {
        assert_eq!(clean_path("/a/b/../c"), "/a/c");
        assert_eq!(clean_path("/../x"), "/x");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn owners() {
        assert_eq!(
            owner_spec("1234"),
            Owner::Ids {
                uid: 1234,
                gid: 1234
            }
        );
        assert_eq!(owner_spec("1:2"), Owner::Ids { uid: 1, gid: 2 });
        assert!(matches!(owner_spec("app"), Owner::Names { .. }));
    }
}
