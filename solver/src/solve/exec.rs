//! The exec op (RUN): a process run in the sandbox on top of input 0, with
//! its mounts ([`super::mounts`]); what it writes becomes the layer. Its
//! key covers the context files its bind mounts show.
//!
//! The process does not count against the CPU pool ([`super::CpuPool`]):
//! a step that sleeps or downloads holds no slot. The checksum of the
//! context files it binds and the packing of its layer (diff, tar,
//! hashes, compression) each take a slot.
//!
//! Cancellation: the step checks the token before it starts the process
//! (a cancelled solve starts no new process) and hands the runtime the
//! token's [`kiln_executor::CancelSignal`]: a process already running is
//! killed with its whole tree when the token is cancelled, and the step
//! fails with [`StepError::Cancelled`].

use super::mounts;
use super::step::{combined, key_parts, run_step, HostInputs, Input, StepEnv, VertexResult};
use super::{CancelToken, Entitlement, Event, ProgressSink, SolveError, StepError};
use crate::graph::{Graph, Vertex, VertexId};
use crate::layer;
use crate::op::{ExecMount, ExecOp, NetworkMode, Op, SecurityMode};
use kiln_executor::LayerStack;

/// Refuses, before anything runs, a RUN step that needs a secret or SSH
/// agent that was not given, or a privilege `allow` does not grant.
pub(super) fn preflight(
    host: &HostInputs,
    exec: &ExecOp,
    allow: &[Entitlement],
) -> Result<(), StepError> {
    let needs = [
        (
            exec.network == NetworkMode::Host,
            Entitlement::NetworkHost,
            "--network=host",
        ),
        (
            exec.security == SecurityMode::Insecure,
            Entitlement::SecurityInsecure,
            "--security=insecure",
        ),
    ];
    for (asked, entitlement, flag) in needs {
        if asked && !allow.contains(&entitlement) {
            return Err(StepError::NotAllowed { flag, entitlement });
        }
    }
    Ok(mounts::check(host, exec)?)
}

/// Makes sure, before anything runs, that the RUN steps among `order`
/// of another architecture (`--platform linux/arm64` here on amd64) can
/// run: a binfmt_misc handler with QEMU is there, or `register`
/// (`--emulate`) registers one, said once as a note of the first such
/// step. Refuses the first step that cannot run, with what to install or
/// run.
pub(super) fn emulation(
    graph: &Graph,
    order: &[VertexId],
    register: bool,
    progress: &dyn ProgressSink,
) -> Result<(), SolveError> {
    let binfmt = kiln_executor::Binfmt::from_env();
    for id in order {
        let v = graph.vertex(*id);
        let Op::Exec(exec) = &v.op else {
            continue;
        };
        let Ok(platform) = exec.platform.parse::<kiln_oci::Platform>() else {
            continue;
        };
        let note = binfmt
            .ensure(&platform, register)
            .map_err(|e| super::step_error(&v.meta, StepError::Emulation(Box::new(e))))?;
        if let Some(message) = note {
            progress.event(Event::Note {
                name: v.meta.name.clone(),
                message,
            });
        }
    }
    Ok(())
}

/// Runs the RUN step `exec` of `vertex`: a cache hit, or the process.
pub(super) fn run(
    env: &StepEnv,
    vertex: &Vertex,
    exec: &ExecOp,
    inputs: &[Input],
    cancel: &CancelToken,
) -> Result<Input, StepError> {
    let Some((VertexResult::Fs(base), _)) = inputs.first() else {
        return Err(StepError::NoFilesystem { what: "RUN" });
    };
    // The context files a bind mount shows are part of its key.
    let mut sums = Vec::new();
    for m in &exec.mounts {
        if let ExecMount::Bind { source, .. } = m {
            if let Some((VertexResult::Context(ctx), _)) = inputs.get(source.input) {
                let path = source.path.trim_matches('/');
                let path = if path.is_empty() { "." } else { path };
                let sum = env
                    .cpu
                    .run(cancel, || env.host.checksum(ctx, &[path.to_string()]))?;
                sums.push(sum);
            }
        }
    }
    let parts = key_parts(&vertex.digest, inputs, combined(&sums));
    run_step(env, vertex, base, parts, cancel, || {
        env.materialize_inputs(inputs)?;
        run_process(
            env,
            &vertex.meta.name,
            exec,
            inputs,
            &layer::stack_of(base),
            cancel,
        )
    })
}

/// Runs the process in the sandbox on top of `stack` and makes its layer.
fn run_process(
    env: &StepEnv,
    name: &str,
    exec: &ExecOp,
    inputs: &[Input],
    stack: &LayerStack,
    cancel: &CancelToken,
) -> Result<kiln_oci::Layer, StepError> {
    layer::new_layer(&env.store, |upper, work| {
        // Mount sources and files the step reads while it runs (heredoc
        // scripts) live in a scratch directory removed afterwards.
        let scratch = env.store.staging_dir().map_err(StepError::Scratch)?;
        let prepared = mounts::prepare(&env.host, &env.store, exec, inputs, scratch.path())?;
        let mut process_env = exec.env.clone();
        process_env.extend(prepared.env.iter().cloned());
        // Only what the process itself writes: never secret values.
        let log = |data: &[u8]| {
            env.event(Event::Log {
                name: name.to_string(),
                data: data.to_vec(),
            })
        };
        let mut request = kiln_executor::RunStep {
            lower: stack,
            upper,
            work,
            process: kiln_executor::ProcessSpec {
                args: exec.args.clone(),
                env: process_env,
                cwd: exec.cwd.clone(),
                user: exec.user.clone(),
                hostname: "buildkitsandbox".into(),
                network: exec.network.into(),
                security: exec.security.into(),
                extra_hosts: exec.extra_hosts.clone(),
                resources: kiln_executor::Resources {
                    shm_size: exec.shm_size,
                    ulimits: exec.ulimits.clone(),
                    cgroup_parent: exec.cgroup_parent.clone(),
                },
            },
            mounts: prepared.mounts.clone(),
            output: Some(kiln_executor::OutputSink(&log)),
            cancel: Some(cancel.signal()),
        };
        for (i, file) in exec.files.iter().enumerate() {
            use std::os::unix::fs::PermissionsExt;
            let source = scratch.path().join(format!("file-{i}"));
            std::fs::write(&source, &file.data)
                .and_then(|()| {
                    std::fs::set_permissions(&source, std::fs::Permissions::from_mode(0o755))
                })
                .map_err(|error| StepError::WriteFile {
                    path: source.clone(),
                    error,
                })?;
            request.mounts.push(kiln_executor::Mount::Bind {
                source,
                target: file.path.clone(),
                readonly: true,
            });
        }
        if cancel.is_cancelled() {
            return Err(StepError::Cancelled);
        }
        let out = env
            .snapshots
            .run(env.runtime.as_ref(), &request)
            .map_err(|error| {
                if matches!(error, kiln_executor::RuntimeError::Cancelled) {
                    return StepError::Cancelled;
                }
                let hint = is_exec_format_error(&error.to_string()).then(foreign_binary_hint);
                StepError::Runtime {
                    error: Box::new(error),
                    hint,
                }
            })?;
        drop(prepared);
        for message in &out.notes {
            env.event(Event::Note {
                name: name.to_string(),
                message: message.clone(),
            });
        }
        if out.status != 0 {
            let hint = is_exec_format_error(&String::from_utf8_lossy(&out.output))
                .then(foreign_binary_hint);
            return Err(StepError::Exit {
                command: exec.args.join(" "),
                status: out.status,
                hint,
                output: last_lines(&out.output, 10),
            });
        }
        // The process is done: packing its layer is kiln's own CPU work,
        // bounded by the pool (the slot is held until the blob is written).
        env.cpu.acquire(cancel)
    })
}

/// True when `text` says the kernel refused a program's format (ENOEXEC):
/// usually a binary for another architecture, as in a `--platform` build
/// of a foreign image. The built-in runtime reports it as an error, OCI
/// runtimes in the step's output.
fn is_exec_format_error(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    lower.contains("os error 8") || lower.contains("exec format error")
}

/// What to do about an exec format error: the program is for another
/// architecture than the step's platform (a foreign step's emulator was
/// checked before the build), or the handler stopped working.
fn foreign_binary_hint() -> String {
    format!(
        "the program is not built for this machine ({}); running another platform's programs \
         needs QEMU emulation registered with binfmt_misc (`apt-get install qemu-user-static \
         binfmt-support`, or as root `kiln build --emulate`), or cross-compile in a stage \
         FROM --platform=$BUILDPLATFORM",
        kiln_oci::Platform::host()
    )
}

/// The last `n` lines of a step's output, indented, for error messages.
fn last_lines(output: &[u8], n: usize) -> String {
    let text = String::from_utf8_lossy(output);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return String::new();
    }
    let tail = &lines[lines.len().saturating_sub(n)..];
    format!(
        "\n{}",
        tail.iter()
            .map(|l| format!("  > {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_errors_keep_their_text() {
        let error = StepError::Exit {
            command: "sh -c false".into(),
            status: 1,
            hint: None,
            output: last_lines(b"one\ntwo\n", 1),
        };
        assert_eq!(
            error.to_string(),
            "process \"sh -c false\" did not complete successfully: exit code: 1\n  > two"
        );
        assert_eq!(last_lines(b"", 10), "");
        assert!(is_exec_format_error("exec /bin/x: Exec format error"));
        assert!(!is_exec_format_error("no such file"));
    }
}
