//! `RUN --mount` sources: persistent cache directories in the store,
//! secrets (passed to the runtime by value, which keeps the files in the
//! step's own mount namespace; or given as an environment variable) for
//! the step only, forwarded SSH agents, tmpfs, and binds of other inputs
//! (stages and images as throwaway overlays, contexts copied with
//! `.dockerignore` applied).

use super::context_tree::ContextTree;
use super::step::{HostInputs, Input, VertexResult};
use super::SecretSource;
use crate::layer;
use crate::op::{CacheSharing, ExecMount, ExecOp, MountSource};
use kiln_executor::{CopyAction, FileAction};
use kiln_executor::{LayerStack, Mount, Source, SourceTree};
use kiln_oci::LocalStore;
use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

mod error;
mod ssh;

pub use error::MountError;

/// What a step's mounts need while it runs; dropping it releases cache
/// locks and stops SSH forwarding.
pub(super) struct Prepared {
    /// The mounts for the runtime.
    pub mounts: Vec<Mount>,
    /// `KEY=value` added to the process environment (secrets with `env=`);
    /// never part of a cache key or a log line.
    pub env: Vec<String>,
    _locks: Vec<File>,
    _agents: Vec<ssh::Forwarder>,
}

/// Checks, before anything runs, that what `exec` requires was given.
pub(super) fn check(host: &HostInputs, exec: &ExecOp) -> Result<(), MountError> {
    for m in &exec.mounts {
        match m {
            ExecMount::Secret {
                id, required: true, ..
            } if !host.secrets.contains_key(id) => {
                return Err(MountError::SecretMissing { id: id.clone() });
            }
            ExecMount::Ssh {
                id, required: true, ..
            } if !host.ssh.contains_key(id) => {
                return Err(MountError::SshMissing { id: id.clone() });
            }
            _ => {}
        }
    }
    Ok(())
}

/// Prepares the mounts of `exec` (whose inputs are `inputs`) in `scratch`.
pub(super) fn prepare(
    host: &HostInputs,
    store: &LocalStore,
    exec: &ExecOp,
    inputs: &[Input],
    scratch: &Path,
) -> Result<Prepared, MountError> {
    let mut out = Prepared {
        mounts: Vec::new(),
        env: Vec::new(),
        _locks: Vec::new(),
        _agents: Vec::new(),
    };
    for (i, m) in exec.mounts.iter().enumerate() {
        match m {
            ExecMount::Tmpfs { target, size } => out.mounts.push(Mount::Tmpfs {
                target: target.clone(),
                size: *size,
            }),
            ExecMount::Bind {
                target,
                source,
                readonly,
            } => {
                let (lower, path) =
                    bind_source(host, inputs, source, &scratch.join(format!("bind-{i}")))?;
                out.mounts.push(Mount::Layers {
                    lower,
                    source: path,
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            ExecMount::Cache {
                target,
                id,
                mode,
                uid,
                gid,
                sharing,
                readonly,
                seed,
                ..
            } => {
                let name = crate::cache::mounts::mount_name(m).unwrap_or_else(|| id.clone());
                let (dir, lock) = cache_dir(store, &name, *sharing, |tmp| {
                    if let Some(seed) = seed {
                        copy_out(host, inputs, seed, tmp)?;
                    }
                    std::fs::set_permissions(tmp, std::fs::Permissions::from_mode(*mode))
                        .and_then(|()| std::os::unix::fs::chown(tmp, Some(*uid), Some(*gid)))
                        .map_err(|error| MountError::Cache {
                            action: "preparing",
                            id: id.clone(),
                            error,
                        })
                })?;
                out._locks.extend(lock);
                out.mounts.push(Mount::Bind {
                    source: dir,
                    target: target.clone(),
                    readonly: *readonly,
                });
            }
            ExecMount::Secret {
                id,
                target,
                env,
                mode,
                uid,
                gid,
                ..
            } => {
                let Some(value) = secret_value(host, id)? else {
                    // Not given and not required: no mount (as BuildKit).
                    continue;
                };
                if let Some(var) = env {
                    let text = String::from_utf8(value.clone()).map_err(|_| {
                        MountError::SecretNotText {
                            id: id.clone(),
                            var: var.clone(),
                        }
                    })?;
                    out.env.push(format!("{var}={text}"));
                }
                if let Some(target) = target {
                    out.mounts.push(Mount::Secret {
                        data: value,
                        target: target.clone(),
                        mode: *mode,
                        uid: *uid,
                        gid: *gid,
                    });
                }
            }
            ExecMount::Ssh {
                id,
                target,
                mode,
                uid,
                gid,
                ..
            } => {
                let Some(agent) = host.ssh.get(id) else {
                    continue;
                };
                let socket = scratch.join(format!("ssh-{i}.sock"));
                let forwarder =
                    ssh::Forwarder::start(&socket, agent, *mode, *uid, *gid).map_err(|error| {
                        MountError::SshForward {
                            id: id.clone(),
                            error,
                        }
                    })?;
                out._agents.push(forwarder);
                out.mounts.push(Mount::Bind {
                    source: socket,
                    target: target.clone(),
                    readonly: false,
                });
            }
        }
    }
    Ok(out)
}

fn secret_value(host: &HostInputs, id: &str) -> Result<Option<Vec<u8>>, MountError> {
    Ok(match host.secrets.get(id) {
        Some(SecretSource::File(path)) => {
            Some(std::fs::read(path).map_err(|error| MountError::SecretRead {
                id: id.to_string(),
                path: path.clone(),
                error,
            })?)
        }
        Some(SecretSource::Env(var)) => Some(
            std::env::var(var)
                .map_err(|_| MountError::SecretEnv {
                    id: id.to_string(),
                    var: var.clone(),
                })?
                .into_bytes(),
        ),
        None => None,
    })
}

/// The directory of the cache mount named `id` ([`mount_name`]; created
/// through `init` on first use) and the lock held while the step runs.
///
/// [`mount_name`]: crate::cache::mounts::mount_name
fn cache_dir(
    store: &LocalStore,
    id: &str,
    sharing: CacheSharing,
    init: impl Fn(&Path) -> Result<(), MountError>,
) -> Result<(PathBuf, Option<File>), MountError> {
    let root = store.layout().cache_mounts();
    let key = crate::cache::mounts::mount_dir_name(id);
    std::fs::create_dir_all(&root).map_err(|error| MountError::Create {
        path: root.clone(),
        error,
    })?;
    let cache_error = |action: &'static str| {
        move |error| MountError::Cache {
            action,
            id: id.to_string(),
            error,
        }
    };
    let open_lock = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(root.join(format!("{name}.lock")))
            .map_err(cache_error("locking"))
    };
    let (name, lock) = match sharing {
        CacheSharing::Shared => (key, None),
        CacheSharing::Locked => {
            let lock = open_lock(&key)?;
            lock.lock().map_err(cache_error("locking"))?;
            (key, Some(lock))
        }
        CacheSharing::Private => {
            // The first instance nobody else holds.
            let mut n = 0;
            loop {
                let name = if n == 0 {
                    key.clone()
                } else {
                    format!("{key}-{n}")
                };
                let lock = open_lock(&name)?;
                match lock.try_lock() {
                    Ok(()) => break (name, Some(lock)),
                    Err(std::fs::TryLockError::WouldBlock) => n += 1,
                    Err(std::fs::TryLockError::Error(e)) => return Err(cache_error("locking")(e)),
                }
            }
        }
    };
    // The lock file names the id (for `kiln du`) and its modification
    // time is the last use (for `kiln prune`); failures only cost that.
    if let Ok(mut f) = open_lock(&name) {
        use std::io::Write;
        if f.metadata().is_ok_and(|m| m.len() == 0) {
            let _ = f.write_all(id.as_bytes());
        }
        let _ = f.set_modified(std::time::SystemTime::now());
    }
    let dir = root.join(&name);
    if !dir.exists() {
        let tmp = root.join(format!(
            "{name}.tmp-{}-{:?}",
            kiln_oci::process_tag(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(cache_error("creating"))?;
        if let Err(e) = init(&tmp) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
        // When another step (of this build or another process) created it
        // first, theirs stays: they may already be writing into it.
        kiln_executor::commit_new_dir(&tmp, &dir).map_err(cache_error("creating"))?;
    }
    Ok((dir, lock))
}

/// The filesystem and path a bind mount shows: stages and images as their
/// layers; a context path copied (with `.dockerignore` applied) into
/// `scratch`.
fn bind_source(
    host: &HostInputs,
    inputs: &[Input],
    source: &MountSource,
    scratch: &Path,
) -> Result<(LayerStack, String), MountError> {
    match inputs.get(source.input).map(|(o, _)| o) {
        Some(VertexResult::Fs(layers)) => Ok((layer::stack_of(layers), source.path.clone())),
        Some(VertexResult::Dir(dir)) => {
            Ok((LayerStack::new(vec![dir.clone()]), source.path.clone()))
        }
        Some(VertexResult::Context(_)) => {
            std::fs::create_dir_all(scratch).map_err(|error| MountError::Create {
                path: scratch.to_path_buf(),
                error,
            })?;
            let is_dir = copy_out(host, inputs, source, scratch)?;
            let path = if is_dir {
                "/".to_string()
            } else {
                source
                    .path
                    .rsplit('/')
                    .find(|c| !c.is_empty())
                    .unwrap_or("")
                    .to_string()
            };
            Ok((LayerStack::new(vec![scratch.to_path_buf()]), path))
        }
        None => Err(MountError::NoInput {
            input: source.input,
        }),
    }
}

/// Copies `source` (a directory's contents, or a file by its name) into
/// the empty directory `dest`; tells whether it was a directory.
fn copy_out(
    host: &HostInputs,
    inputs: &[Input],
    source: &MountSource,
    dest: &Path,
) -> Result<bool, MountError> {
    let rel = source.path.trim_matches('/');
    let stack;
    let tree;
    let src: Source<'_> = match inputs.get(source.input).map(|(o, _)| o) {
        Some(VertexResult::Fs(layers)) => {
            stack = layer::stack_of(layers);
            Source::Tree(&stack as &dyn SourceTree)
        }
        Some(VertexResult::Dir(dir)) => {
            stack = LayerStack::new(vec![dir.clone()]);
            Source::Tree(&stack as &dyn SourceTree)
        }
        Some(VertexResult::Context(name)) => {
            let ctx = host
                .contexts
                .get(name)
                .ok_or_else(|| MountError::NoContext { name: name.clone() })?;
            tree = ContextTree(ctx.clone());
            Source::Context(&tree as &dyn SourceTree)
        }
        None => {
            return Err(MountError::NoInput {
                input: source.input,
            })
        }
    };
    let entry = match src {
        Source::Tree(t) | Source::Context(t) => {
            t.entry(rel).map_err(|e| MountError::Source(Box::new(e)))?
        }
    };
    let Some(entry) = entry else {
        return Err(MountError::NotFound {
            path: source.path.clone(),
        });
    };
    let is_dir = entry.metadata.is_dir();
    let action = FileAction::Copy(CopyAction {
        input: 0,
        sources: vec![if rel.is_empty() {
            "/".into()
        } else {
            rel.to_string()
        }],
        dest: "/".into(),
        dest_is_dir: true,
        owner: None,
        chmod: None,
        unpack: false,
        excludes: Vec::new(),
        parents: false,
    });
    kiln_executor::apply_file_actions(&LayerStack::default(), dest, &[action], &[src]).map_err(
        |e| MountError::Copy {
            path: source.path.clone(),
            error: Box::new(e),
        },
    )?;
    Ok(is_dir)
}
